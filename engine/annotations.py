"""The argument annotations under their older path; they live in
``engine.utilities.annotations`` (where ported code imports them from)."""

from engine.utilities.annotations import (
    BaseAnnotation,
    NotSet,
    allow_failure,
    freeze,
    opaque,
    quote,
    unmapped,
)

__all__ = ["BaseAnnotation", "NotSet", "allow_failure", "freeze", "opaque", "quote", "unmapped"]
