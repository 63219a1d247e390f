"""Traces end to end (docs/tracing.md): an application traced with the OpenTelemetry SDK takes
and releases a lock through this SDK while ``syros serve`` exports its spans over OTLP; both
export to an OTLP/HTTP receiver run by this test, which finds one trace holding the
application's span, the SDK's client spans, the server's gRPC spans and the engine and store
spans beneath them, each with the right parent.
"""

from __future__ import annotations

import gzip
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Dict, Iterator, List

import pytest
from conftest import Server, python_script
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

HELPERS = Path(__file__).resolve().parent / "helpers"


class Receiver:
    """An OTLP/HTTP (protobuf) trace receiver on a loopback port, keeping every span it gets."""

    def __init__(self) -> None:
        self.spans: List[Dict] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/traces":
                    self.send_error(404)
                    return
                receiver.add(ExportTraceServiceRequest.FromString(body))
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: object) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def add(self, request: ExportTraceServiceRequest) -> None:
        for resource_spans in request.resource_spans:
            service = next(
                (a.value.string_value for a in resource_spans.resource.attributes if a.key == "service.name"), ""
            )
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    with self.lock:
                        self.spans.append(
                            {
                                "service": service,
                                "name": span.name,
                                "kind": span.kind,
                                "trace_id": span.trace_id.hex(),
                                "span_id": span.span_id.hex(),
                                "parent": span.parent_span_id.hex(),
                                "attributes": {a.key: a.value.string_value for a in span.attributes},
                            }
                        )

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def one(spans: List[Dict], **match: object) -> Dict:
    found = [s for s in spans if all(s[k] == v for k, v in match.items())]
    assert len(found) == 1, f"expected one span with {match}, got {found}; all spans: {spans}"
    return found[0]


def test_one_trace_holds_the_client_and_server_spans(receiver: Receiver, name: str) -> None:
    server = Server(
        env={
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            # Batches leave only on shutdown: the spans arriving proves the final flush.
            "OTEL_BSP_SCHEDULE_DELAY": "600000",
        }
    ).start()
    try:
        key = f"{name}/order-1"
        run = python_script(HELPERS / "traced_lock.py", server.address, receiver.endpoint, key, timeout=60)
        assert run.returncode == 0, run.stdout + run.stderr
        server_spans_before_stop = [s for s in receiver.spans if s["service"] == "syros"]
        assert server.stop() == 0, server.log()
    finally:
        server.close()
    assert server_spans_before_stop == [], "the server exported before its batch delay"

    app = one(receiver.spans, service="traced-app", name="app.checkout")
    trace_id = app["trace_id"]
    spans = [s for s in receiver.spans if s["trace_id"] == trace_id]

    # The SDK's client spans, children of the application's span.
    acquire = one(spans, service="traced-app", name="syros.client locks.acquire")
    release = one(spans, service="traced-app", name="syros.client locks.release")
    for client_span in (acquire, release):
        assert client_span["parent"] == app["span_id"], client_span
        assert client_span["kind"] == PbSpan.SPAN_KIND_CLIENT, client_span

    # The server's gRPC spans, children of the client spans, in the same trace.
    acquire_call = one(spans, service="syros", name="syros.v1.LockService/Acquire")
    release_call = one(spans, service="syros", name="syros.v1.LockService/Release")
    assert acquire_call["parent"] == acquire["span_id"], acquire_call
    assert release_call["parent"] == release["span_id"], release_call
    for call in (acquire_call, release_call):
        assert call["kind"] == PbSpan.SPAN_KIND_SERVER, call
        assert call["attributes"]["status"] == "OK", call

    # The engine's work beneath each call, and the store's beneath the engine's.
    engine_acquire = one(spans, service="syros", name="engine.locks.acquire")
    assert engine_acquire["parent"] == acquire_call["span_id"], engine_acquire
    assert engine_acquire["attributes"]["key"] == key, engine_acquire
    by_id = {s["span_id"]: s for s in spans}

    def ancestors(span: Dict) -> List[str]:
        names = []
        while span["parent"] in by_id:
            span = by_id[span["parent"]]
            names.append(span["name"])
        return names

    # The store call's name depends on the backend: Redis keeps a waiter queue per key, so its
    # acquire and release are the queue's.
    store_acquire = [s for s in spans if s["name"] in ("store.locks.try_acquire", "store.locks.acquire_queued")]
    assert store_acquire, spans
    for store_span in store_acquire:
        assert store_span["attributes"]["key"] == key, store_span
        assert ancestors(store_span)[:2] == ["engine.locks.acquire", "syros.v1.LockService/Acquire"], store_span
    store_release = [s for s in spans if s["name"] in ("store.locks.release", "store.locks.release_queued")]
    assert len(store_release) == 1, spans
    assert ancestors(store_release[0])[:2] == ["engine.locks.release", "syros.v1.LockService/Release"], store_release
    # Every span the server made for these calls is in the caller's trace.
    assert not [
        s for s in receiver.spans if s["service"] == "syros" and s["name"].startswith("syros.v1.LockService")
        and s["trace_id"] != trace_id
    ]


def test_without_an_sdk_calls_carry_only_the_callers_context(receiver: Receiver, name: str) -> None:
    """With opentelemetry-api but no SDK, the SDK records nothing of its own, yet a trace context
    the application is in still reaches the server; outside any trace nothing is sent."""
    server = Server(env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint}).start()
    trace_id, span_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    try:
        run = python_script(HELPERS / "untraced_lock.py", server.address, name, trace_id, span_id, timeout=60)
        assert run.returncode == 0, run.stdout + run.stderr
        assert server.stop() == 0, server.log()
    finally:
        server.close()
    assert not [s for s in receiver.spans if s["service"] != "syros"], "the client recorded spans"
    acquires = [s for s in receiver.spans if s["name"] == "syros.v1.LockService/Acquire"]
    assert len(acquires) == 2, receiver.spans
    propagated = [s for s in acquires if s["trace_id"] == trace_id]
    assert len(propagated) == 1, acquires
    assert propagated[0]["parent"] == span_id, propagated
    plain = [s for s in acquires if s["trace_id"] != trace_id]
    assert len(plain) == 1 and plain[0]["parent"] == "", plain
