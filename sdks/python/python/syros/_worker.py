"""Step runners: Python functions that execute saga steps.

The task feed, concurrency limit, per-step timeouts, heartbeats and result reporting all run in
the Rust client core; this module registers your functions and waits.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from typing import Any, Awaitable, Callable, Dict, List, Optional, Tuple, TypeVar, Union

from . import _syros
from ._types import _encode_output

__all__ = ["Worker", "Handler"]

#: A step handler: called with the :class:`syros.Task`, returns JSON-serialisable output (or an
#: awaitable of it). Raising fails the step (see :class:`syros.StepError`).
Handler = Callable[[_syros.Task], Union[Any, Awaitable[Any]]]
H = TypeVar("H", bound=Handler)


def _is_async(fn: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None))


def _wrap(fn: Handler) -> Callable[[_syros.Task], Any]:
    """Encode the handler's return value as JSON (awaiting it first if it is awaitable)."""

    def call(task: _syros.Task) -> Any:
        result = fn(task)
        if inspect.isawaitable(result):

            async def finish() -> str:
                return _encode_output(await result)

            return finish()
        return _encode_output(result)

    return call


class _LoopThread:
    """An asyncio loop on its own thread, for ``async def`` handlers of a blocking ``run()``."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="syros-worker-loop", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self.loop.close()


class Worker:
    """Runs the actions and compensations of one service for sagas.

    Create it with ``client.worker("inventory_service")``, register handlers with the
    :meth:`action` and :meth:`compensation` decorators (plain or ``async def`` functions), then
    :meth:`run` (blocking), ``await`` :meth:`run_async`, or :meth:`start` it in the background::

        worker = client.worker("inventory_service")

        @worker.action("reserve")
        def reserve(task):
            return {"reservation": task.idempotency_key}

        @worker.compensation("release_inventory")
        def release(task):
            ...

        worker.run()    # until worker.stop() or Ctrl-C

    A handler receives a :class:`syros.Task` (``task.input``, ``task.previous_outputs``,
    ``task.idempotency_key`` — the same for every redelivery of a step, so handlers can make
    at-least-once delivery harmless) and returns JSON-serialisable output. Plain functions run on
    threads of the client core (at most ``max_concurrent`` at once); ``async def`` functions run on
    the asyncio loop (``run_async``'s, or one the worker starts for ``run``).
    """

    def __init__(self, native: "_syros.Client", service: str, *, max_concurrent: int = 16) -> None:
        self._client = native
        self.service = service
        self.max_concurrent = max_concurrent
        self._handlers: Dict[str, Handler] = {}
        self._native: Optional[_syros.Worker] = None
        self._loop_thread: Optional[_LoopThread] = None
        self._stop_requested = False

    # --- registration ---------------------------------------------------------------------

    def handler(self, name: str) -> Callable[[H], H]:
        """Register the function below as the handler named ``name`` (an action or a
        compensation; :meth:`action` and :meth:`compensation` say which, for the reader)."""

        def register(fn: H) -> H:
            if self._native is not None:
                raise RuntimeError("register handlers before starting the worker")
            if name in self._handlers:
                raise ValueError(f"a handler named {name!r} is already registered")
            self._handlers[name] = fn
            return fn

        return register

    def action(self, name: str) -> Callable[[H], H]:
        """Register the function below as the action ``name`` of this service."""
        return self.handler(name)

    def compensation(self, name: str) -> Callable[[H], H]:
        """Register the function below as the compensation ``name`` of this service."""
        return self.handler(name)

    @property
    def handlers(self) -> List[str]:
        """Names of the registered handlers."""
        return list(self._handlers)

    @property
    def worker_id(self) -> Optional[str]:
        """The id the server knows this worker by, once started."""
        return self._native.worker_id if self._native is not None else None

    @property
    def running(self) -> bool:
        return self._native is not None and not self._native.stop_requested

    # --- running --------------------------------------------------------------------------

    def _wired(self) -> List[Tuple[str, Callable[[_syros.Task], Any]]]:
        if not self._handlers:
            raise ValueError("a worker needs at least one handler: use @worker.action(name)")
        return [(name, _wrap(fn)) for name, fn in self._handlers.items()]

    def _needs_loop(self) -> bool:
        return any(_is_async(fn) for fn in self._handlers.values())

    def start(self) -> "Worker":
        """Start taking tasks in the background and return at once. Stop with :meth:`close`."""
        if self._native is not None:
            raise RuntimeError("the worker is already running")
        handlers = self._wired()
        self._client.connect(True)
        event_loop = None
        if self._needs_loop():
            self._loop_thread = _LoopThread()
            event_loop = self._loop_thread.loop
        self._native = self._client.start_worker(self.service, handlers, self.max_concurrent, event_loop)
        if self._stop_requested:
            self._native.request_stop()
        return self

    def stop(self) -> None:
        """Ask the worker to stop. Returns at once; :meth:`run` / :meth:`run_async` then return
        once the handlers running now have reported. Safe to call from a handler or a signal
        handler."""
        self._stop_requested = True
        if self._native is not None:
            self._native.request_stop()

    def close(self) -> None:
        """Stop and wait until the handlers running now have reported (not from a handler)."""
        self._stop_requested = True
        native, self._native = self._native, None
        try:
            if native is not None:
                native.stop(True)
        finally:
            if self._loop_thread is not None:
                self._loop_thread.stop()
                self._loop_thread = None

    def run(self) -> None:
        """Run until :meth:`stop` is called (or Ctrl-C, which is re-raised after the handlers
        running now have reported)."""
        self.start()
        native = self._native
        assert native is not None
        try:
            native.wait_stop_requested(True)
        finally:
            self.close()

    async def run_async(self) -> None:
        """Run on the current asyncio loop until :meth:`stop` is called or the task is
        cancelled; ``async def`` handlers run on this loop."""
        if self._native is not None:
            raise RuntimeError("the worker is already running")
        handlers = self._wired()
        await self._client.connect(False)
        native = self._client.start_worker(
            self.service, handlers, self.max_concurrent, asyncio.get_running_loop()
        )
        self._native = native
        if self._stop_requested:
            native.request_stop()
        try:
            await native.wait_stop_requested(False)
        finally:
            self._native = None
            await asyncio.shield(native.stop(False))

    def __enter__(self) -> "Worker":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> "Worker":
        if self._native is not None:
            raise RuntimeError("the worker is already running")
        handlers = self._wired()
        await self._client.connect(False)
        self._native = self._client.start_worker(
            self.service, handlers, self.max_concurrent, asyncio.get_running_loop()
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        native, self._native = self._native, None
        self._stop_requested = True
        if native is not None:
            await native.stop(False)

    def __repr__(self) -> str:
        return f"Worker(service={self.service!r}, handlers={self.handlers!r}, running={self.running})"
