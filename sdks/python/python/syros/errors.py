"""Errors raised by the Syros SDK.

Every error of the client core has a *kind*; each kind is one class below, all under
:class:`SyrosError`. Catch a specific class to branch on what went wrong, or ``SyrosError`` for
anything from Syros::

    try:
        with client.lock("orders:42", ttl=10.0, wait=0.5):
            ...
    except syros.LockTimeout as err:
        print("held by", err.details.get("holder_owner"))

Every instance carries:

``kind``
    the stable snake_case code of the kind (``"lock_timeout"``, ...), the same in every Syros SDK;
``retryable``
    whether sending the same request again later may succeed (the client has already retried
    what it safely could);
``message``
    a human-readable description;
``details``
    structured details as a ``dict[str, str]`` (``address``, ``attempts``, ``holder_owner``, ...).
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

__all__ = [
    "SyrosError",
    "InvalidArgument",
    "NotFound",
    "LockNotHeld",
    "VersionConflict",
    "PayloadTooLarge",
    "Unimplemented",
    "Unavailable",
    "Internal",
    "OutcomeUnknown",
    "LockTimeout",
    "DeadlineExceeded",
    "Cancelled",
    "Unauthenticated",
    "PermissionDenied",
    "CallbackFailed",
]


class SyrosError(Exception):
    """Base class of every Syros error."""

    #: The kind's stable code; each subclass sets its own.
    code: str = "unknown"

    kind: str
    retryable: bool
    message: str
    details: Dict[str, str]

    def __init__(
        self,
        message: str = "",
        kind: Optional[str] = None,
        retryable: Optional[bool] = None,
        details: Optional[Mapping[str, str]] = None,
        cause: Optional[BaseException] = None,
    ) -> None:
        kind = kind or type(self).code
        retryable = bool(retryable) if retryable is not None else kind in _RETRYABLE
        details = dict(details or {})
        super().__init__(message, kind, retryable, details)
        self.message = message
        self.kind = kind
        self.retryable = retryable
        self.details = details
        if cause is not None:
            self.__cause__ = cause

    def __str__(self) -> str:
        return self.message or self.kind

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, kind={self.kind!r}, retryable={self.retryable!r})"

    def __reduce__(self) -> Any:
        return (type(self), (self.message, self.kind, self.retryable, self.details))


_RETRYABLE = {"unavailable", "deadline_exceeded"}


class InvalidArgument(SyrosError, ValueError):
    """The request is malformed or out of range (bad name, TTL, JSON, address, ...)."""

    code = "invalid_argument"


class NotFound(SyrosError):
    """The named thing (a saga, ...) does not exist."""

    code = "not_found"


class LockNotHeld(SyrosError):
    """The lease is not (or no longer) held by the caller: it was lost or released."""

    code = "lock_not_held"


class VersionConflict(SyrosError):
    """Optimistic concurrency: the event stream is not at the expected version."""

    code = "version_conflict"


class PayloadTooLarge(SyrosError):
    """A value or batch exceeds a configured size limit."""

    code = "payload_too_large"


class Unimplemented(SyrosError):
    """The operation is not available on this server."""

    code = "unimplemented"


class Unavailable(SyrosError):
    """The server or its storage is unreachable; retrying later may succeed."""

    code = "unavailable"


class Internal(SyrosError):
    """A bug or an unexpected failure on the server (or in the client)."""

    code = "internal"


class OutcomeUnknown(SyrosError):
    """The request may or may not have been applied: the connection was lost after it was sent
    and before its answer came back (for example during a PostgreSQL COMMIT).

    The client retries such failures itself only for calls that are safe to repeat (appends,
    lock acquisition); for others (``force_release``), check the state before acting again.
    """

    code = "outcome_unknown"


class LockTimeout(SyrosError):
    """The lock was still held by someone else when the wait for it ended.

    ``details`` names the holder: ``holder_owner``, ``holder_fencing_token``,
    ``holder_expires_at_ms``.
    """

    code = "lock_timeout"


class DeadlineExceeded(SyrosError):
    """The call (including its retries) did not finish in time."""

    code = "deadline_exceeded"


class Cancelled(SyrosError):
    """The call was cancelled (for example, the client runtime was shut down)."""

    code = "cancelled"


class Unauthenticated(SyrosError):
    """Credentials are missing or invalid."""

    code = "unauthenticated"


class PermissionDenied(SyrosError):
    """The credentials do not allow this operation."""

    code = "permission_denied"


class CallbackFailed(SyrosError):
    """Your code, run by the client, failed (a ``get_or_compute`` function).

    When it was this call's function that raised, the original exception is ``__cause__``.
    """

    code = "callback_failed"
