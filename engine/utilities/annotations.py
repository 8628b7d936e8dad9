"""Alias of ``engine.annotations`` at the seed API's path."""

from engine.annotations import BaseAnnotation, NotSet, allow_failure, quote, unmapped

__all__ = ["BaseAnnotation", "NotSet", "allow_failure", "quote", "unmapped"]
