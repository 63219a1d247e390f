"""The asyncio client: :class:`AsyncClient`. Every call returns an awaitable whose work runs on
the Rust client core's runtime; the event loop is never blocked."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any, AsyncIterator, Callable, Dict, Generator, Iterable, List, Mapping, Optional, Sequence, Union

from . import _syros
from ._client import Addresses, PathArg, TokenSource, Value, _bytes, _compute_failed, _computed, _describe, _native_client
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
from .errors import SyrosError

__all__ = ["AsyncClient", "AsyncLease", "AsyncCache", "AsyncEvents", "AsyncSagas", "AsyncSubscription"]

#: Tasks watching for a lost lease (``AsyncLease.on_lost``): held here so they are not collected.
_LEASE_WATCHERS: "set[asyncio.Task[None]]" = set()


class AsyncLease:
    """A held lock (asyncio), renewed in the background by the client core until released or
    lost. ``async with`` releases it on exit and raises :class:`syros.LockNotHeld` there if it
    was lost meanwhile."""

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
        return self._native.expires_at_ms

    @property
    def ttl(self) -> float:
        return self._native.ttl

    @property
    def info(self) -> LeaseInfo:
        return self._native.info

    @property
    def lost(self) -> bool:
        """True once the lease is lost; stop the protected work."""
        return self._native.lost

    @property
    def held(self) -> bool:
        return self._native.held

    async def wait_lost(self, timeout: Optional[float] = None) -> bool:
        """Wait until the lease is lost (True), released (False) or ``timeout`` seconds pass
        (False). Race it against your work, e.g. with ``asyncio.wait``."""
        return await self._native.wait_end(timeout, False) == "lost"

    def on_lost(self, callback: Callable[[], Any]) -> None:
        """Call ``callback()`` on the current event loop if the lease is lost (a task of the loop
        waits for the lease's end)."""
        native = self._native

        async def watch() -> None:
            try:
                end = await native.wait_end(None, False)
            except SyrosError:
                return  # the client runtime was shut down
            if end == "lost":
                callback()

        task = asyncio.get_running_loop().create_task(watch())
        _LEASE_WATCHERS.add(task)
        task.add_done_callback(_LEASE_WATCHERS.discard)

    async def renew(self) -> LeaseInfo:
        return await self._native.renew(False)

    async def release(self) -> None:
        """Release the lease (:class:`syros.LockNotHeld` if it was lost)."""
        await self._native.release(False)

    async def __aenter__(self) -> "AsyncLease":
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            await self.release()
        else:
            try:
                await self.release()
            except SyrosError:
                pass

    def __repr__(self) -> str:
        return repr(self._native)


class _LockRequest:
    """``await client.lock(...)`` gives an :class:`AsyncLease`; ``async with client.lock(...)
    as lease:`` acquires on entry and releases on exit."""

    __slots__ = ("_acquire", "_lease")

    def __init__(self, acquire: Callable[[], Any]) -> None:
        self._acquire = acquire
        self._lease: Optional[AsyncLease] = None

    async def _get(self) -> AsyncLease:
        return AsyncLease(await self._acquire())

    def __await__(self) -> Generator[Any, None, AsyncLease]:
        return self._get().__await__()

    async def __aenter__(self) -> AsyncLease:
        self._lease = await self._get()
        return self._lease

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        lease, self._lease = self._lease, None
        if lease is not None:
            await lease.__aexit__(exc_type, exc, tb)


class AsyncCache:
    """The tagged cache (``client.cache``), asyncio."""

    def __init__(self, native: Any) -> None:
        self._n = native

    async def get(self, key: str) -> Optional[bytes]:
        entry = await self._n.cache_get(key, False)
        return None if entry is None else entry.value

    async def get_entry(self, key: str) -> Optional[CacheEntry]:
        return await self._n.cache_get(key, False)

    async def set(
        self, key: str, value: Value, *, ttl: Optional[float] = None, tags: Iterable[str] = ()
    ) -> Optional[int]:
        return await self._n.cache_set(key, _bytes(value), ttl, list(tags), False)

    async def delete(self, key: str) -> bool:
        return await self._n.cache_delete(key, False)

    async def invalidate_tag(self, tag: str) -> int:
        return await self._n.cache_invalidate_tag(tag, False)

    async def get_or_compute(
        self,
        key: str,
        compute: Callable[[], Any],
        *,
        ttl: Optional[float] = None,
        tags: Iterable[str] = (),
    ) -> bytes:
        """Like :meth:`syros.Cache.get_or_compute`; ``compute`` may be a plain or an ``async
        def`` function (run on this loop)."""
        lookup = await self._n.cache_begin(key, ttl, list(tags), False)
        if isinstance(lookup, bytes):
            return lookup
        try:
            value = compute()
            if inspect.isawaitable(value):
                value = await value
            value = _computed(value)
        except Exception as err:
            await lookup.fail(_describe(err), False)
            raise _compute_failed(lookup, err) from err
        except BaseException as err:  # cancelled: fail the flight, let the cancellation through
            lookup.fail(_describe(err), True)
            raise
        return await lookup.complete(value, False)


class AsyncSubscription:
    """A live subscription: ``async for event in subscription``. Close it (or leave its
    ``async with`` block) to stop."""

    def __init__(self, native: _syros.Subscription) -> None:
        self._native = native

    async def next(self, timeout: Optional[float] = None) -> Optional[RecordedEvent]:
        """The next event, or ``None`` if ``timeout`` seconds pass first or it is closed."""
        try:
            return await self._native.next(timeout, False)
        except TimeoutError:
            return None

    @property
    def closed(self) -> bool:
        return self._native.closed

    def close(self) -> None:
        self._native.close()

    def __aiter__(self) -> AsyncIterator[RecordedEvent]:
        return self

    async def __anext__(self) -> RecordedEvent:
        event = await self._native.next(None, False)
        if event is None:
            raise StopAsyncIteration
        return event

    async def __aenter__(self) -> "AsyncSubscription":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()



class AsyncEvents:
    """The event store (``client.events``), asyncio."""

    def __init__(self, native: Any) -> None:
        self._n = native

    async def append(
        self,
        stream: str,
        events: Union[Event, Mapping[str, Any], Iterable[Union[Event, Mapping[str, Any]]]],
        *,
        expected_version: ExpectedVersion = ANY,
    ) -> AppendResult:
        if isinstance(events, (Event, Mapping)):
            events = [events]
        return await self._n.events_append(stream, [_event(e) for e in events], expected_version, False)

    async def read(
        self, stream: str, start: Optional[int] = None, *, backwards: bool = False, limit: int = 0
    ) -> ReadResult:
        if start is None and not backwards:
            start = 0
        return await self._n.events_read(stream, start, backwards, limit, False)

    async def read_all(
        self, start: Optional[int] = None, *, backwards: bool = False, limit: int = 0
    ) -> ReadResult:
        if start is None and not backwards:
            start = 0
        return await self._n.events_read(None, start, backwards, limit, False)

    async def subscribe(self, stream: str, start: StreamPosition = START) -> AsyncSubscription:
        return AsyncSubscription(await self._n.events_subscribe(stream, start, False))

    async def subscribe_all(self, start: StreamPosition = START) -> AsyncSubscription:
        return AsyncSubscription(await self._n.events_subscribe(None, start, False))


class AsyncSagas:
    """Sagas (``client.sagas``), asyncio."""

    def __init__(self, native: Any) -> None:
        self._n = native

    async def start(
        self,
        name: str,
        steps: Sequence[Step],
        input: Any = None,
        *,
        idempotency_key: Optional[str] = None,
        retry: Optional[StepRetryPolicy] = None,
    ) -> Saga:
        return await self._n.sagas_start(name, list(steps), _input_json(input), idempotency_key, retry, False)

    async def get(self, saga_id: str) -> Saga:
        return await self._n.sagas_get(saga_id, False)

    async def list(self, state: Optional[str] = None, name: Optional[str] = None, limit: int = 0) -> List[Saga]:
        return await self._n.sagas_list(state, name, limit, False)

    async def cancel(self, saga_id: str) -> Saga:
        return await self._n.sagas_cancel(saga_id, False)

    async def wait(self, saga_id: str, timeout: float = 60.0) -> Saga:
        return await self._n.sagas_wait(saga_id, timeout, False)


class AsyncClient:
    """An asyncio connection to Syros, with the same options as :class:`syros.Client`.

    Connecting starts in the background when it is created; the first call (or ``await
    client.connect()``, or ``async with``) waits for it::

        async with syros.AsyncClient(addresses=["127.0.0.1:9090"]) as client:
            async with client.lock("orders:42", ttl=10.0, wait=5.0) as lease:
                ...
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
        self._n = native
        self.cache = AsyncCache(native)
        self.events = AsyncEvents(native)
        self.sagas = AsyncSagas(native)

    async def connect(self) -> "AsyncClient":
        """Wait until connected (raises :class:`syros.Unavailable` if no server answered)."""
        await self._n.connect(False)
        return self

    @property
    def owner(self) -> str:
        """The default lock owner (once connected)."""
        return self._n.owner

    @property
    def current_address(self) -> str:
        return self._n.current_address

    def stats(self) -> Dict[str, int]:
        return dict(self._n.stats())

    async def check_health(self) -> None:
        await self._n.check_health(False)

    def lock(
        self,
        key: str,
        ttl: float = 30.0,
        wait: float = 30.0,
        *,
        owner: Optional[str] = None,
        auto_renew: bool = True,
    ) -> _LockRequest:
        """Acquire ``key``: ``lease = await client.lock(...)`` or ``async with client.lock(...)
        as lease:``. Raises :class:`syros.LockTimeout` if the wait ends first."""
        native = self._n
        return _LockRequest(lambda: native.lock(key, ttl, wait, owner, auto_renew, False))

    async def try_lock(
        self, key: str, ttl: float = 30.0, *, owner: Optional[str] = None, auto_renew: bool = True
    ) -> Optional[AsyncLease]:
        native = await self._n.try_lock(key, ttl, owner, auto_renew, False)
        return None if native is None else AsyncLease(native)

    async def lock_status(self, key: str) -> Optional[LeaseInfo]:
        return await self._n.lock_status(key, False)

    async def list_locks(self, prefix: str = "", limit: int = 0) -> List[LeaseInfo]:
        return await self._n.list_locks(prefix, limit, False)

    async def force_release(self, key: str) -> Optional[LeaseInfo]:
        return await self._n.force_release(key, False)

    def worker(self, service: str, *, max_concurrent: int = 16) -> Worker:
        """A step runner for ``service``: register handlers, then ``await worker.run_async()``."""
        return Worker(self._n, service, max_concurrent=max_concurrent)

    async def close(self) -> None:
        """Drop this client."""

    async def __aenter__(self) -> "AsyncClient":
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
