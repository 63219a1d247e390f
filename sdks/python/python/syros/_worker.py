"""Step runners: Python functions that execute saga steps.

The task feed, the bound on tasks in flight, per-step timeouts and result reporting run in the
Rust client core, which this module pulls from (``poll_task`` / ``complete``): it runs your
functions where Python wants them — plain functions on a thread pool, ``async def`` functions on
an asyncio loop — and reports what they returned or raised. Rust never calls into Python.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Awaitable, Callable, Dict, List, Optional, Set, Tuple, TypeVar, Union

from . import _syros
from ._types import _encode_output
from .errors import SyrosError

__all__ = ["Worker", "Handler"]

_log = logging.getLogger("syros.worker")

#: A step handler: called with the :class:`syros.Task`, returns JSON-serialisable output (or an
#: awaitable of it). Raising fails the step (see :class:`syros.StepError`).
Handler = Callable[[_syros.Task], Union[Any, Awaitable[Any]]]
H = TypeVar("H", bound=Handler)

#: What a handler made of a task: ``(output_json, None)`` or ``(None, (type, message,
#: non_retryable))``.
Outcome = Tuple[Optional[str], Optional[Tuple[str, str, bool]]]


def _is_async(fn: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None))


def _failure(err: BaseException) -> Outcome:
    """A raised exception as a step failure: its ``type`` attribute (or class name) is the error
    type the retry policy matches, its ``non_retryable`` attribute whether it may be retried."""
    error_type = getattr(err, "type", None)
    if not isinstance(error_type, str) or not error_type:
        error_type = type(err).__name__
    try:
        non_retryable = bool(getattr(err, "non_retryable", False))
    except Exception:  # noqa: BLE001 - a broken attribute is not a reason to lose the report
        non_retryable = False
    try:
        message = str(err)
    except Exception:  # noqa: BLE001
        message = error_type
    return None, (error_type, message, non_retryable)


def _unknown(task: _syros.Task) -> Outcome:
    return None, ("unknown_handler", f"this worker has no handler named {task.handler!r}", True)


async def _awaited(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def _outcome_on_thread(fn: Handler, task: _syros.Task, loop: Optional[asyncio.AbstractEventLoop]) -> Outcome:
    """Run a plain handler on this thread; an awaitable it returns runs on ``loop`` (or a loop
    of its own when there is none)."""
    try:
        result = fn(task)
        if inspect.isawaitable(result):
            if loop is None:
                result = asyncio.run(_awaited(result))
            else:
                result = asyncio.run_coroutine_threadsafe(_awaited(result), loop).result()
        return _encode_output(result), None
    except BaseException as err:  # noqa: BLE001 - every failure is reported to the saga
        return _failure(err)


async def _outcome_on_loop(fn: Handler, task: _syros.Task) -> Outcome:
    try:
        result = fn(task)
        if inspect.isawaitable(result):
            result = await result
        return _encode_output(result), None
    except Exception as err:  # noqa: BLE001 - every failure is reported to the saga
        return _failure(err)


def _report(native: _syros.Worker, task: _syros.Task, outcome: Outcome, blocking: bool) -> Any:
    output, failure = outcome
    if failure is None:
        return native.complete(task.task_id, output or "null", blocking)
    error_type, message, non_retryable = failure
    return native.fail(task.task_id, error_type, message, non_retryable, blocking)


def _report_failed(task: _syros.Task, err: SyrosError) -> None:
    # The server hands the task out again after its timeout.
    _log.warning("could not report task %s of saga %s: %s", task.task_id, task.saga_id, err)


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
    at-least-once delivery harmless) and returns JSON-serialisable output. At most
    ``max_concurrent`` tasks are held at once. Plain functions run on a pool of threads;
    ``async def`` functions run on the asyncio loop (``run_async``'s, or one the worker starts for
    ``run``). A handler still running at its step's timeout is reported failed (``timeout``) by
    the client core; what it reports later is not accepted.
    """

    def __init__(self, native: Any, service: str, *, max_concurrent: int = 16) -> None:
        self._client = native
        self.service = service
        self.max_concurrent = max_concurrent
        self._handlers: Dict[str, Handler] = {}
        self._native: Optional[_syros.Worker] = None
        self._stop_requested = False
        self._executor: Optional[ThreadPoolExecutor] = None
        self._loop_thread: Optional[_LoopThread] = None
        self._poller: Optional[threading.Thread] = None
        self._polling_done = threading.Event()
        self._serving: Optional["asyncio.Future[None]"] = None

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
        native = self._native
        return native.worker_id if native is not None else None

    @property
    def running(self) -> bool:
        return self._native is not None and not self._stop_requested

    # --- running on threads (blocking) -----------------------------------------------------

    def _check(self) -> None:
        if self._native is not None:
            raise RuntimeError("the worker is already running")
        if not self._handlers:
            raise ValueError("a worker needs at least one handler: use @worker.action(name)")

    def _new_executor(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=max(1, self.max_concurrent), thread_name_prefix=f"syros-{self.service}")

    def start(self) -> "Worker":
        """Start taking tasks in the background and return at once. Stop with :meth:`close`."""
        self._check()
        native = self._client.worker(self.service, self.max_concurrent, True)
        self._executor = self._new_executor()
        if any(_is_async(fn) for fn in self._handlers.values()):
            self._loop_thread = _LoopThread()
        self._polling_done = threading.Event()
        self._native = native
        if self._stop_requested:
            native.stop()
        self._poller = threading.Thread(target=self._poll, args=(native,), name=f"syros-poll-{self.service}", daemon=True)
        self._poller.start()
        return self

    def _poll(self, native: _syros.Worker) -> None:
        """The poller thread: hand each task to the loop thread or the pool until stopped."""
        loop = self._loop_thread.loop if self._loop_thread is not None else None
        executor = self._executor
        assert executor is not None
        try:
            while True:
                task = native.poll_task(None, True)
                if task is None:
                    return
                fn = self._handlers.get(task.handler)
                if fn is not None and loop is not None and _is_async(fn):
                    asyncio.run_coroutine_threadsafe(self._run_on_loop(native, fn, task), loop)
                else:
                    executor.submit(self._run_on_thread, native, fn, task, loop)
        except SyrosError as err:  # the client runtime was shut down
            _log.warning("worker %s stopped polling: %s", self.service, err)
        finally:
            self._polling_done.set()

    @staticmethod
    def _run_on_thread(
        native: _syros.Worker, fn: Optional[Handler], task: _syros.Task, loop: Optional[asyncio.AbstractEventLoop]
    ) -> None:
        outcome = _unknown(task) if fn is None else _outcome_on_thread(fn, task, loop)
        try:
            _report(native, task, outcome, True)
        except SyrosError as err:
            _report_failed(task, err)

    @staticmethod
    async def _run_on_loop(native: _syros.Worker, fn: Handler, task: _syros.Task) -> None:
        outcome = await _outcome_on_loop(fn, task)
        try:
            await _report(native, task, outcome, False)
        except SyrosError as err:
            _report_failed(task, err)

    def stop(self) -> None:
        """Ask the worker to stop. Returns at once; :meth:`run` / :meth:`run_async` then return
        once the handlers running now have reported. Safe to call from a handler or a signal
        handler."""
        self._stop_requested = True
        native = self._native
        if native is not None:
            native.stop()

    def close(self) -> None:
        """Stop and wait until the handlers running now have reported (not from a handler)."""
        self._stop_requested = True
        native, self._native = self._native, None
        if native is None:
            return
        native.stop()
        try:
            if self._poller is not None:
                self._poller.join()
                self._poller = None
            native.stop_and_drain(True)
        finally:
            if self._executor is not None:
                # Drained: what still runs is past its step's timeout and no longer awaited.
                self._executor.shutdown(wait=False)
                self._executor = None
            if self._loop_thread is not None:
                self._loop_thread.stop()
                self._loop_thread = None

    def run(self) -> None:
        """Run until :meth:`stop` is called (or Ctrl-C, which is re-raised after the handlers
        running now have reported)."""
        self.start()
        try:
            # A wait with a time limit, so Ctrl-C is handled promptly on the main thread.
            while not self._polling_done.wait(0.25):
                pass
        finally:
            self.close()

    # --- running on asyncio ----------------------------------------------------------------

    async def _start_async(self) -> _syros.Worker:
        self._check()
        native = await self._client.worker(self.service, self.max_concurrent, False)
        self._executor = self._new_executor()
        self._native = native
        if self._stop_requested:
            native.stop()
        return native

    async def _serve(self, native: _syros.Worker) -> None:
        """Pull tasks until stopped: ``async def`` handlers as tasks of this loop, plain ones on
        the pool; then wait for them and drain."""
        loop = asyncio.get_running_loop()
        executor = self._executor
        assert executor is not None
        running: Set["asyncio.Future[None]"] = set()
        try:
            while True:
                task = await native.poll_task(None, False)
                if task is None:
                    break
                fn = self._handlers.get(task.handler)
                if fn is not None and _is_async(fn):
                    job: "asyncio.Future[None]" = loop.create_task(self._run_on_loop(native, fn, task))
                else:
                    job = loop.run_in_executor(executor, self._run_on_thread, native, fn, task, loop)
                running.add(job)
                job.add_done_callback(running.discard)
        finally:
            if self._native is native:
                self._native = None
            native.stop()
            await asyncio.shield(self._drain(native, running))

    async def _drain(self, native: _syros.Worker, running: Set["asyncio.Future[None]"]) -> None:
        if running:
            await asyncio.gather(*running, return_exceptions=True)
        await native.stop_and_drain(False)
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None

    async def run_async(self) -> None:
        """Run on the current asyncio loop until :meth:`stop` is called or the task is
        cancelled; ``async def`` handlers run on this loop."""
        native = await self._start_async()
        await self._serve(native)

    def __enter__(self) -> "Worker":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> "Worker":
        native = await self._start_async()
        self._serving = asyncio.ensure_future(self._serve(native))
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop()
        serving, self._serving = self._serving, None
        if serving is not None:
            await serving

    def __repr__(self) -> str:
        return f"Worker(service={self.service!r}, handlers={self.handlers!r}, running={self.running})"
