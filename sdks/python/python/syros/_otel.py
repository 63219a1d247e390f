"""OpenTelemetry for the Python SDK (docs/tracing.md), active when the ``opentelemetry-api``
package is installed.

Each client call runs in a ``syros.client <op>`` span (kind CLIENT) of the current
OpenTelemetry context, and its W3C ``traceparent``/``tracestate`` is handed to the native
binding (``_syros.with_trace_context``), which sends it to the server with the call: the
application's trace, this span and the server's spans form one trace. Exporting the client
spans is the application's business (its own ``TracerProvider``); without one nothing is
recorded, and the caller's context, if any, is still passed on.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any, Callable, Dict, Optional

from . import _syros

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace as otel_trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
    # Providers meaning "no SDK installed" (the proxy stands in until one is set).
    _NO_SDK_PROVIDERS = (otel_trace.NoOpTracerProvider, otel_trace.ProxyTracerProvider)
except ImportError:  # opentelemetry-api is optional
    otel_trace = None

#: Native client methods -> the operation names of the client core (``syros.client <op>``).
CLIENT_OPS: Dict[str, str] = {
    "check_health": "health.check",
    "lock": "locks.acquire",
    "try_lock": "locks.acquire",
    "lock_status": "locks.status",
    "list_locks": "locks.list",
    "force_release": "locks.force_release",
    "cache_get": "cache.get",
    "cache_set": "cache.set",
    "cache_delete": "cache.delete",
    "cache_invalidate_tag": "cache.invalidate_tag",
    "cache_begin": "cache.get_or_compute",
    "events_append": "events.append",
    "events_read": "events.read",
    "sagas_start": "sagas.start",
    "sagas_get": "sagas.get",
    "sagas_list": "sagas.list",
    "sagas_cancel": "sagas.cancel",
    "sagas_wait": "sagas.wait",
}
#: Native lease methods -> operation names.
LEASE_OPS: Dict[str, str] = {"release": "locks.release", "renew": "locks.renew"}


def enabled() -> bool:
    """Whether ``opentelemetry-api`` is installed (calls then carry the trace context)."""
    return otel_trace is not None


def idle() -> bool:
    """True when a call has nothing to trace: no OpenTelemetry SDK is installed (the API's
    no-op or not-yet-set proxy provider, so no span would be recorded) and the caller is in no
    trace whose context should be passed on. Such calls skip the span and the context hand-off,
    which otherwise cost about a third of a lock cycle's Python time (bench/python)."""
    if not isinstance(otel_trace.get_tracer_provider(), _NO_SDK_PROVIDERS):
        return False
    return not otel_trace.get_current_span().get_span_context().is_valid


class Traced:
    """A native client or lease whose calls (those named in ``ops``) run in client spans and
    carry the trace context; everything else passes through."""

    __slots__ = ("_native", "_ops")

    def __init__(self, native: Any, ops: Dict[str, str]) -> None:
        self._native = native
        self._ops = ops

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._native, name)
        op = self._ops.get(name)
        if op is None:
            return attr
        # A lease from lock/try_lock traces its release and renewals too.
        wrap = _wrap_lease if op == "locks.acquire" else None

        def call(*args: Any, **kwargs: Any) -> Any:
            if idle():
                return attr(*args, **kwargs)
            return traced_call(op, lambda: attr(*args, **kwargs), wrap)

        return call

    def __repr__(self) -> str:
        return repr(self._native)


def _wrap_lease(lease: Any) -> Any:
    return None if lease is None else Traced(lease, LEASE_OPS)


def _same(value: Any) -> Any:
    return value


def _failed(span: Any, err: BaseException) -> None:
    span.record_exception(err)
    span.set_status(otel_trace.Status(otel_trace.StatusCode.ERROR, str(err)))
    code = getattr(err, "code", None)
    if isinstance(code, str):
        span.set_attribute("syros.error_code", code)


def traced_call(op: str, call: Callable[[], Any], wrap: Optional[Callable[[Any], Any]] = None) -> Any:
    """``call()`` (one native call, blocking or returning an awaitable) in a ``syros.client
    <op>`` span, with that span's context handed to the binding. ``wrap`` maps the result."""
    wrap = wrap or _same
    tracer = otel_trace.get_tracer("syros")
    span = tracer.start_span(
        f"syros.client {op}",
        kind=otel_trace.SpanKind.CLIENT,
        attributes={"rpc.system": "grpc", "syros.op": op},
    )
    carrier: Dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier, context=otel_trace.set_span_in_context(span))
    token = otel_context.attach(otel_trace.set_span_in_context(span))
    try:
        result = _syros.with_trace_context(carrier.get("traceparent"), carrier.get("tracestate"), call)
    except BaseException as err:
        _failed(span, err)
        span.end()
        raise
    finally:
        otel_context.detach(token)
    if not inspect.isawaitable(result):
        span.end()
        return wrap(result)
    if not span.is_recording():
        span.end()
        return result if wrap is _same else _map_awaited(result, wrap)

    async def finish() -> Any:
        try:
            value = await result
        except BaseException as err:
            _failed(span, err)
            raise
        finally:
            span.end()
        return wrap(value)

    return asyncio.ensure_future(finish())


def _map_awaited(awaitable: Any, wrap: Callable[[Any], Any]) -> Any:
    async def mapped() -> Any:
        return wrap(await awaitable)

    return asyncio.ensure_future(mapped())
