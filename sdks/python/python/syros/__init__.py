"""Syros: distributed locks, sagas, an event store and a tagged cache.

The Python SDK over the Syros Rust client core: connection and failover, retries, lease renewal,
single-flight caching, resumable subscriptions and saga step runners all run in Rust; Python gets
a blocking API (:class:`Client`) and an asyncio API (:class:`AsyncClient`)::

    import syros

    client = syros.Client(addresses=["127.0.0.1:9090"])
    with client.lock("orders:42", ttl=10.0, wait=5.0) as lease:
        print("fencing token", lease.fencing_token)
    client.cache.set("user:1", b"...", ttl=60.0, tags=["users"])
    client.events.append("orders-42", syros.Event("OrderPlaced", {"total": 10}))

Errors are :class:`SyrosError` subclasses, one per kind (:class:`LockTimeout`,
:class:`VersionConflict`, ...).
"""

from __future__ import annotations

import atexit

from . import _syros
from ._async import AsyncCache, AsyncClient, AsyncEvents, AsyncLease, AsyncSagas, AsyncSubscription
from ._client import Cache, Client, Events, Lease, Sagas, Subscription
from ._syros import (
    AppendResult,
    CacheEntry,
    LeaseInfo,
    ReadResult,
    RecordedEvent,
    Saga,
    SagaStep,
    StepAttempt,
    Task,
)
from ._types import (
    ANY,
    END,
    NO_STREAM,
    START,
    Event,
    RetryPolicy,
    Step,
    StepError,
    StepRetryPolicy,
)
from ._worker import Worker
from .errors import (
    CallbackFailed,
    Cancelled,
    DeadlineExceeded,
    Internal,
    OutcomeUnknown,
    InvalidArgument,
    LockNotHeld,
    LockTimeout,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    SyrosError,
    Unauthenticated,
    Unavailable,
    Unimplemented,
    VersionConflict,
)

__version__: str = _syros.__version__

__all__ = [
    "Client",
    "AsyncClient",
    "Lease",
    "AsyncLease",
    "Cache",
    "AsyncCache",
    "Events",
    "AsyncEvents",
    "Sagas",
    "AsyncSagas",
    "Subscription",
    "AsyncSubscription",
    "Worker",
    "Task",
    "Event",
    "Step",
    "StepError",
    "RetryPolicy",
    "StepRetryPolicy",
    "ANY",
    "NO_STREAM",
    "START",
    "END",
    "AppendResult",
    "CacheEntry",
    "LeaseInfo",
    "ReadResult",
    "RecordedEvent",
    "Saga",
    "SagaStep",
    "StepAttempt",
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
    "shutdown",
]


def shutdown() -> None:
    """Stop the client core's runtime now: lease renewal, subscriptions and workers end, pending
    calls fail with :class:`Cancelled`. The next call starts a new runtime. Called automatically at
    interpreter exit."""
    _syros.shutdown()


atexit.register(_syros.shutdown)
