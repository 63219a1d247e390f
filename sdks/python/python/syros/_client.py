"""The blocking client: :class:`Client`. Every call waits with the GIL released, so other Python
threads keep running, and Ctrl-C interrupts a long wait."""

from __future__ import annotations

import os
import threading
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Union

from . import _otel, _syros
from ._syros import AppendResult, CacheEntry, LeaseInfo, ReadResult, RecordedEvent, Saga
from ._types import (
    ANY,
    START,
    Event,
    ExpectedVersion,
    RetryPolicy,
    Step,
    StepRetryPolicy,
    StreamPosition,
    _event,
    _input_json,
)
from ._worker import Worker
from .errors import CallbackFailed, InvalidArgument, SyrosError

__all__ = ["Client", "Lease", "Cache", "Events", "Sagas", "Subscription"]

Addresses = Union[str, Sequence[str]]
Value = Union[bytes, bytearray, memoryview, str]
PathArg = Union[str, "os.PathLike[str]"]
TokenSource = Union[str, Callable[[], Optional[str]]]


def _addresses(addresses: Addresses) -> List[str]:
    if isinstance(addresses, str):
        return [addresses]
    return list(addresses)


def _bytes(value: Value) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"a cache value is bytes or str, not {type(value).__name__}")


class _TokenRefresh:
    """The native client, with the bearer token taken from ``source()`` before every call (the
    binding API keeps one token, set with ``set_auth_token``, for the calls that follow)."""

    __slots__ = ("_native", "_source")

    def __init__(self, native: _syros.Client, source: Callable[[], Optional[str]]) -> None:
        self._native = native
        self._source = source

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._native, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self._native.set_auth_token(self._source())
            return attr(*args, **kwargs)

        return call


def _native_client(
    addresses: Addresses,
    connect_timeout: float,
    call_timeout: float,
    retry: Optional[RetryPolicy],
    resubscribe: Optional[RetryPolicy],
    owner: Optional[str],
    auth_token: Optional[TokenSource],
    keepalive_interval: Optional[float],
    tls_ca_file: Optional[PathArg] = None,
    tls_server_name: Optional[str] = None,
    tls_client_cert_file: Optional[PathArg] = None,
    tls_client_key_file: Optional[PathArg] = None,
) -> Any:
    """The native client (``_syros.Client``), behind a :class:`_TokenRefresh` when the token
    comes from a function and an :class:`_otel.Traced` when OpenTelemetry is installed."""
    if auth_token is not None and not isinstance(auth_token, str) and not callable(auth_token):
        raise InvalidArgument("auth_token must be a str or a function returning a str or None")
    native = _syros.Client(
        _addresses(addresses),
        connect_timeout=connect_timeout,
        call_timeout=call_timeout,
        retry=retry,
        resubscribe=resubscribe,
        owner=owner,
        auth_token=auth_token if isinstance(auth_token, str) else None,
        keepalive_interval=keepalive_interval,
        tls_ca_file=tls_ca_file,
        tls_server_name=tls_server_name,
        tls_client_cert_file=tls_client_cert_file,
        tls_client_key_file=tls_client_key_file,
    )
    if callable(auth_token):
        native = _TokenRefresh(native, auth_token)
    if _otel.enabled():
        native = _otel.Traced(native, _otel.CLIENT_OPS)
    return native


def _computed(value: Any) -> bytes:
    """A get_or_compute function's result as the bytes to store."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TypeError(f"get_or_compute's function must return bytes or str, not {type(value).__name__}")


def _describe(err: BaseException) -> str:
    text = str(err)
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _compute_failed(ticket: _syros.ComputeTicket, err: BaseException) -> CallbackFailed:
    """The error this caller raises when its compute function failed (the callers sharing its
    flight get theirs from the core, once the ticket is failed)."""
    return CallbackFailed(
        f"computing {ticket.key!r} failed: {_describe(err)}", details={"key": ticket.key}, cause=err
    )


def _compute_blocking(ticket: _syros.ComputeTicket, compute: Callable[[], Value]) -> bytes:
    try:
        value = _computed(compute())
    except Exception as err:
        ticket.fail(_describe(err), True)
        raise _compute_failed(ticket, err) from err
    except BaseException as err:  # Ctrl-C: fail the flight, let the interrupt through
        ticket.fail(_describe(err), True)
        raise
    return ticket.complete(value, True)


class Lease:
    """A held lock, renewed in the background by the client core (at about a third of its TTL)
    until it is released or lost. Use it as a context manager to release it on exit::

        with client.lock("orders:42", ttl=10.0, wait=5.0) as lease:
            write(order, fencing_token=lease.fencing_token)

    Leaving the ``with`` block normally raises :class:`syros.LockNotHeld` if the lease was lost
    meanwhile (the work may have overlapped with another holder).
    """

    __slots__ = ("_native",)

    def __init__(self, native: _syros.Lease) -> None:
        self._native = native

    @property
    def fencing_token(self) -> int:
        """Strictly increasing for every lease ever granted: pass it to the protected resource."""
        return self._native.fencing_token

    @property
    def key(self) -> str:
        return self._native.key

    @property
    def lease_id(self) -> str:
        return self._native.lease_id

    @property
    def owner(self) -> str:
        return self._native.owner

    @property
    def expires_at_ms(self) -> int:
        """When the lease expires unless renewed (ms since the epoch, server clock)."""
        return self._native.expires_at_ms

    @property
    def ttl(self) -> float:
        return self._native.ttl

    @property
    def info(self) -> LeaseInfo:
        return self._native.info

    @property
    def lost(self) -> bool:
        """True once the lease is lost: the server said it is not held, or renewals failed until
        it expired. Stop the protected work."""
        return self._native.lost

    @property
    def held(self) -> bool:
        """True while the lease is neither released nor lost."""
        return self._native.held

    def wait_lost(self, timeout: Optional[float] = None) -> bool:
        """Block until the lease is lost (True), released (False) or ``timeout`` seconds pass
        (False)."""
        return self._native.wait_end(timeout, True) == "lost"

    def on_lost(self, callback: Callable[[], Any]) -> None:
        """Call ``callback()`` if the lease is lost (from a background thread, which waits for
        the lease's end)."""
        native = self._native

        def watch() -> None:
            try:
                end = native.wait_end(None, True)
            except SyrosError:
                return  # the client runtime was shut down
            if end == "lost":
                callback()

        threading.Thread(target=watch, name="syros-lease-on-lost", daemon=True).start()

    def renew(self) -> LeaseInfo:
        """Extend the lease now (renewal normally happens by itself)."""
        return self._native.renew(True)

    def release(self) -> None:
        """Release the lease. Raises :class:`syros.LockNotHeld` if it was lost; a second release
        does nothing."""
        self._native.release(True)

    def __enter__(self) -> "Lease":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.release()
        else:
            try:
                self.release()
            except SyrosError:
                pass  # the body's exception matters more; the lease ends with its TTL

    def __repr__(self) -> str:
        return repr(self._native)


class Cache:
    """The tagged cache (``client.cache``). Values are bytes; ``str`` values are stored as
    UTF-8."""

    def __init__(self, native: Any) -> None:
        self._n = native

    def get(self, key: str) -> Optional[bytes]:
        """The value under ``key``, or ``None`` if absent or expired."""
        entry = self._n.cache_get(key, True)
        return None if entry is None else entry.value

    def get_entry(self, key: str) -> Optional[CacheEntry]:
        """The value with its expiry and tags, or ``None``."""
        return self._n.cache_get(key, True)

    def set(
        self, key: str, value: Value, *, ttl: Optional[float] = None, tags: Iterable[str] = ()
    ) -> Optional[int]:
        """Store ``value`` (replacing value and tags), expiring after ``ttl`` seconds (``None`` =
        never). Returns the expiry in ms since the epoch, or ``None``."""
        return self._n.cache_set(key, _bytes(value), ttl, list(tags), True)

    def delete(self, key: str) -> bool:
        """Remove ``key``; True if it existed."""
        return self._n.cache_delete(key, True)

    def invalidate_tag(self, tag: str) -> int:
        """Remove every key stored with ``tag``, atomically; returns how many."""
        return self._n.cache_invalidate_tag(tag, True)

    def get_or_compute(
        self,
        key: str,
        compute: Callable[[], Value],
        *,
        ttl: Optional[float] = None,
        tags: Iterable[str] = (),
    ) -> bytes:
        """The value under ``key``; on a miss, ``compute()``'s result, stored with ``ttl`` and
        ``tags``. Concurrent callers for the same key in this process share one lookup and one
        computation. If ``compute`` raises, :class:`syros.CallbackFailed` is raised (with your
        exception as ``__cause__``) and nothing is stored. ``compute`` runs on the calling
        thread."""
        lookup = self._n.cache_begin(key, ttl, list(tags), True)
        if isinstance(lookup, bytes):
            return lookup
        return _compute_blocking(lookup, compute)


class Subscription:
    """A live subscription: iterate over it to receive events (catch-up, then live). It
    reconnects by itself after a server restart or failover, without gaps or duplicates. Close it
    (or leave its ``with`` block) to stop."""

    def __init__(self, native: _syros.Subscription) -> None:
        self._native = native

    def next(self, timeout: Optional[float] = None) -> Optional[RecordedEvent]:
        """The next event, or ``None`` if ``timeout`` seconds pass first or the subscription is
        closed."""
        try:
            return self._native.next(timeout, True)
        except TimeoutError:
            return None

    @property
    def closed(self) -> bool:
        return self._native.closed

    def close(self) -> None:
        self._native.close()

    def __iter__(self) -> Iterator[RecordedEvent]:
        return self

    def __next__(self) -> RecordedEvent:
        event = self._native.next(None, True)
        if event is None:
            raise StopIteration
        return event

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()



class Events:
    """The event store (``client.events``): append with optimistic concurrency, read, and
    subscribe."""

    def __init__(self, native: Any) -> None:
        self._n = native

    def append(
        self,
        stream: str,
        events: Union[Event, Mapping[str, Any], Iterable[Union[Event, Mapping[str, Any]]]],
        *,
        expected_version: ExpectedVersion = ANY,
    ) -> AppendResult:
        """Append events atomically. ``expected_version``: ``syros.ANY``, ``syros.NO_STREAM``
        or the stream's exact last version; a mismatch raises :class:`syros.VersionConflict`."""
        if isinstance(events, (Event, Mapping)):
            events = [events]
        return self._n.events_append(stream, [_event(e) for e in events], expected_version, True)

    def read(
        self,
        stream: str,
        start: Optional[int] = None,
        *,
        backwards: bool = False,
        limit: int = 0,
    ) -> ReadResult:
        """Read ``stream`` from version ``start`` (inclusive; default: the first event, or the
        last when ``backwards``), at most ``limit`` events (0 = the server's default, 100)."""
        if start is None and not backwards:
            start = 0
        return self._n.events_read(stream, start, backwards, limit, True)

    def read_all(
        self, start: Optional[int] = None, *, backwards: bool = False, limit: int = 0
    ) -> ReadResult:
        """Read every stream in global order from position ``start`` (default: the first, or the
        last when ``backwards``)."""
        if start is None and not backwards:
            start = 0
        return self._n.events_read(None, start, backwards, limit, True)

    def subscribe(self, stream: str, start: StreamPosition = START) -> Subscription:
        """Follow ``stream`` from ``start`` (a version, ``syros.START`` or ``syros.END``)."""
        return Subscription(self._n.events_subscribe(stream, start, True))

    def subscribe_all(self, start: StreamPosition = START) -> Subscription:
        """Follow every stream in global order from ``start`` (a position, ``START`` or
        ``END``)."""
        return Subscription(self._n.events_subscribe(None, start, True))


class Sagas:
    """Sagas (``client.sagas``): start, inspect, cancel and wait. Steps are run by workers
    (``client.worker(service)``)."""

    def __init__(self, native: Any) -> None:
        self._n = native

    def start(
        self,
        name: str,
        steps: Sequence[Step],
        input: Any = None,
        *,
        idempotency_key: Optional[str] = None,
        retry: Optional[StepRetryPolicy] = None,
    ) -> Saga:
        """Start a saga running ``steps`` in order with JSON-serialisable ``input``. Starting
        again with the same ``idempotency_key`` returns the existing saga."""
        return self._n.sagas_start(name, list(steps), _input_json(input), idempotency_key, retry, True)

    def get(self, saga_id: str) -> Saga:
        """A saga by id (:class:`syros.NotFound` if there is none)."""
        return self._n.sagas_get(saga_id, True)

    def list(self, state: Optional[str] = None, name: Optional[str] = None, limit: int = 0) -> List[Saga]:
        """Sagas, newest first, optionally of one state and/or name (``limit`` 0 = 100)."""
        return self._n.sagas_list(state, name, limit, True)

    def cancel(self, saga_id: str) -> Saga:
        """Cancel a saga: what completed is compensated; it ends ``cancelled``."""
        return self._n.sagas_cancel(saga_id, True)

    def wait(self, saga_id: str, timeout: float = 60.0) -> Saga:
        """Block until the saga is final (completed, compensated, compensation_failed or
        cancelled), at most ``timeout`` seconds (then :class:`syros.DeadlineExceeded`)."""
        return self._n.sagas_wait(saga_id, timeout, True)


class Client:
    """A blocking connection to Syros.

    ::

        client = syros.Client(addresses=["127.0.0.1:9090"])
        with client.lock("orders:42", ttl=10.0, wait=5.0) as lease:
            ...

    ``addresses`` are tried in turn: the client talks to one and fails over to the next when it
    becomes unreachable. Calls that fail with a retryable error are retried per ``retry``
    (:class:`syros.RetryPolicy`). The constructor connects and raises
    :class:`syros.Unavailable` if no server answers. Times are in seconds.

    ``tls_ca_file`` (a PEM file, ``str`` or path) connects over TLS and checks the server's
    certificate against that CA, for the host of each address or ``tls_server_name``;
    ``tls_client_cert_file`` and ``tls_client_key_file`` present a client certificate to servers
    that require one (mutual TLS). Without ``tls_ca_file`` the connection is plaintext.

    Clients are thread-safe; share one per process. A client created before ``os.fork()`` must
    not be used in the child: create a new one there.
    """

    def __init__(
        self,
        addresses: Addresses = ("127.0.0.1:9090",),
        *,
        connect_timeout: float = 5.0,
        call_timeout: float = 10.0,
        retry: Optional[RetryPolicy] = None,
        resubscribe: Optional[RetryPolicy] = None,
        owner: Optional[str] = None,
        auth_token: Optional[TokenSource] = None,
        keepalive_interval: Optional[float] = 20.0,
        tls_ca_file: Optional[PathArg] = None,
        tls_server_name: Optional[str] = None,
        tls_client_cert_file: Optional[PathArg] = None,
        tls_client_key_file: Optional[PathArg] = None,
    ) -> None:
        native = _native_client(
            addresses, connect_timeout, call_timeout, retry, resubscribe, owner, auth_token, keepalive_interval,
            tls_ca_file, tls_server_name, tls_client_cert_file, tls_client_key_file,
        )
        native.connect(True)
        self._n = native
        #: The tagged cache.
        self.cache = Cache(native)
        #: The event store.
        self.events = Events(native)
        #: Sagas.
        self.sagas = Sagas(native)

    @property
    def owner(self) -> str:
        """The default lock owner of this client."""
        return self._n.owner

    @property
    def current_address(self) -> str:
        """The server address calls currently go to."""
        return self._n.current_address

    def stats(self) -> Dict[str, int]:
        """Calls, attempts, retries and failovers since connecting."""
        return dict(self._n.stats())

    def check_health(self) -> None:
        """Raise unless the server is serving."""
        self._n.check_health(True)

    # --- locks ----------------------------------------------------------------------------

    def lock(
        self,
        key: str,
        ttl: float = 30.0,
        wait: float = 30.0,
        *,
        owner: Optional[str] = None,
        auto_renew: bool = True,
    ) -> Lease:
        """Acquire the lock ``key``, waiting up to ``wait`` seconds while someone else holds it
        (waiters are served in order as it is released). The lease lives ``ttl`` seconds and is
        renewed in the background. Raises :class:`syros.LockTimeout` if the wait ends first."""
        return Lease(self._n.lock(key, ttl, wait, owner, auto_renew, True))

    def try_lock(
        self, key: str, ttl: float = 30.0, *, owner: Optional[str] = None, auto_renew: bool = True
    ) -> Optional[Lease]:
        """Acquire ``key`` if it is free right now; ``None`` if someone holds it."""
        native = self._n.try_lock(key, ttl, owner, auto_renew, True)
        return None if native is None else Lease(native)

    def lock_status(self, key: str) -> Optional[LeaseInfo]:
        """The current holder of ``key``, or ``None``."""
        return self._n.lock_status(key, True)

    def list_locks(self, prefix: str = "", limit: int = 0) -> List[LeaseInfo]:
        """Held locks whose key starts with ``prefix`` (``limit`` 0 = 1000)."""
        return self._n.list_locks(prefix, limit, True)

    def force_release(self, key: str) -> Optional[LeaseInfo]:
        """Administrative: drop whatever lease holds ``key``; returns it."""
        return self._n.force_release(key, True)

    # --- workers --------------------------------------------------------------------------

    def worker(self, service: str, *, max_concurrent: int = 16) -> Worker:
        """A step runner for ``service``: register handlers, then ``run()``."""
        return Worker(self._n, service, max_concurrent=max_concurrent)

    def close(self) -> None:
        """Drop this client (connections close once leases, subscriptions and workers made from
        it are gone too)."""

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client(current_address={self.current_address!r}, owner={self.owner!r})"
