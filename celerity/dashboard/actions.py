"""What the dashboard may change, and who may ask: retry and resume, behind a token.

Without ``CELERITY_DASHBOARD_TOKEN`` the dashboard is read-only: every action
is refused (403), whoever asks. With it, an action needs the same token as
``Authorization: Bearer <token>`` (401 otherwise); the comparison takes the same
time whatever the guess. Cancelling is not offered: the engine has no cancel
of a flow run yet.
"""

from __future__ import annotations

import hmac
import uuid
from typing import Any

from pydantic import SecretStr

ACTIONS = ("retry", "resume")


class ActionRefused(Exception):
    """An action the dashboard will not carry out; ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class TokenGuard:
    """Checks the bearer token of an action request against the configured one."""

    def __init__(self, token: SecretStr | None) -> None:
        self._token = token.get_secret_value() if token is not None else ""

    @property
    def enabled(self) -> bool:
        """Whether actions are possible at all (a token is configured)."""
        return bool(self._token)

    def check(self, authorization: str | None) -> None:
        """Raise ActionRefused unless ``authorization`` carries the configured token."""
        if not self.enabled:
            raise ActionRefused(
                "The dashboard is read-only: start it with CELERITY_DASHBOARD_TOKEN set to "
                "allow actions.",
                403,
            )
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), self._token.encode()
        ):
            raise ActionRefused("A valid token is required (Authorization: Bearer <token>).", 401)


def retry(run_id: uuid.UUID) -> str:
    """Send a Failed or Crashed flow run back to the coordinators as a new attempt."""
    from engine.exceptions import ConfigurationError
    from engine.flow_attempts import RetryRefused, retry_flow_run

    try:
        retry_flow_run(run_id, wait=False)
    except RetryRefused as exc:
        raise ActionRefused(str(exc), 409) from None
    except ConfigurationError as exc:  # e.g. no signing key here to sign the new attempt
        raise ActionRefused(f"This dashboard cannot send runs to the fleet: {exc}", 503) from None
    return f"Flow run {run_id} was sent to run again."


def resume(run_id: uuid.UUID, run_input: Any) -> str:
    """Resume a paused flow run, with run input when it waits for some."""
    from engine.flow_runs import NotPausedError, resume_flow_run

    try:
        resume_flow_run(run_id, run_input=run_input)
    except (NotPausedError, ValueError, TypeError) as exc:
        raise ActionRefused(str(exc), 409) from None
    return f"Flow run {run_id} was resumed."
