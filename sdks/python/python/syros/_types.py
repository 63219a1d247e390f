"""Plain values you hand to the SDK: policies, saga steps, events, step failures."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

__all__ = [
    "ANY",
    "NO_STREAM",
    "START",
    "END",
    "RetryPolicy",
    "StepRetryPolicy",
    "Step",
    "Event",
    "StepError",
    "ExpectedVersion",
    "StreamPosition",
]

#: ``expected_version`` for an append that accepts any stream version (including a new stream).
ANY = "any"
#: ``expected_version`` for an append that requires the stream not to exist yet.
NO_STREAM = "no_stream"
#: A subscription that starts at the first event.
START = "start"
#: A subscription that starts after the last event (only new events).
END = "end"

#: An int (the stream's exact last version), ``ANY`` or ``NO_STREAM``.
ExpectedVersion = Union[int, str]
#: An int (version or global position, inclusive), ``START`` or ``END``.
StreamPosition = Union[int, str]


@dataclass(frozen=True)
class RetryPolicy:
    """How the client retries calls that failed with a retryable error (exponential backoff with
    full jitter). Times are in seconds.

    Only retryable errors are retried, and a call that is not idempotent only when the client
    can make the retry safe.
    """

    initial_interval: float = 0.05
    multiplier: float = 2.0
    max_interval: float = 2.0
    #: Attempts in total, including the first (1 = no retry).
    max_attempts: int = 10
    #: Time budget of one call including retries; ``None`` = only ``max_attempts`` limits it.
    deadline: Optional[float] = 30.0


@dataclass(frozen=True)
class StepRetryPolicy:
    """How the *server* retries a failed saga step. Times are in seconds."""

    initial_interval: float = 1.0
    backoff_coefficient: float = 2.0
    maximum_interval: float = 60.0
    #: Attempts in total, including the first.
    maximum_attempts: int = 3
    #: Error types (a :class:`StepError`'s ``type``, or an exception's class name) never retried.
    non_retryable_errors: List[str] = field(default_factory=list)


@dataclass(frozen=True)
class Step:
    """One step of a saga: ``action`` run by a worker of ``service``, undone by
    ``compensation`` when a later step fails for good."""

    name: str
    service: str
    action: str
    compensation: Optional[str] = None
    #: Seconds one attempt may take (``None`` = the server's default, 30 s).
    timeout: Optional[float] = None
    #: Overrides the saga's retry policy for this step.
    retry: Optional[StepRetryPolicy] = None


@dataclass(frozen=True)
class Event:
    """An event to append: a type name and JSON-serialisable data."""

    type: str
    data: Any = None
    metadata: Optional[Any] = None
    #: Your id for the event (at most 128 bytes); the client makes a UUID when ``None``.
    event_id: Optional[str] = None

    def _wire(self) -> "WireEvent":
        data = "{}" if self.data is None else json.dumps(self.data)
        metadata = None if self.metadata is None else json.dumps(self.metadata)
        return (self.event_id, self.type, data, metadata)


def _event(value: Union[Event, Mapping[str, Any]]) -> "WireEvent":
    if isinstance(value, Event):
        return value._wire()
    if isinstance(value, Mapping):
        return Event(
            type=value["type"],
            data=value.get("data"),
            metadata=value.get("metadata"),
            event_id=value.get("event_id"),
        )._wire()
    raise TypeError(f"an event is a syros.Event or a dict with 'type' and 'data', not {type(value).__name__}")


class StepError(Exception):
    """Raise from a step handler to fail the step with an error *type* of your choice.

    ``non_retryable=True`` fails the step at once (the saga compensates) whatever the retry
    policy says. Any other exception fails the step too, with its class name as the type, and may
    be retried.
    """

    def __init__(self, message: str, *, type: Optional[str] = None, non_retryable: bool = False) -> None:
        super().__init__(message)
        self.type = type or _class_name(self)
        self.non_retryable = non_retryable


def _class_name(obj: object) -> str:
    return obj.__class__.__name__


def _encode_output(value: Any) -> str:
    return json.dumps(value)


def _input_json(value: Any) -> str:
    return "{}" if value is None else json.dumps(value)


Json = Dict[str, Any]
#: (event_id, type, data_json, metadata_json), as the binding takes it.
WireEvent = Tuple[Optional[str], str, str, Optional[str]]
