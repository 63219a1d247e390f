"""An application traced with the OpenTelemetry SDK (its spans exported over OTLP/HTTP to
ENDPOINT) that takes and releases a Syros lock inside its own span ``app.checkout``.

    python traced_lock.py ADDRESS ENDPOINT KEY

Runs in its own interpreter: the global tracer provider it sets must not leak into other tests.
"""

import sys

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

import syros


def main() -> None:
    address, endpoint, key = sys.argv[1:4]
    provider = TracerProvider(resource=Resource.create({"service.name": "traced-app"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces")))
    trace.set_tracer_provider(provider)
    client = syros.Client([address], connect_timeout=5.0, call_timeout=10.0)
    with trace.get_tracer("traced-app").start_as_current_span("app.checkout"):
        with client.lock(key, ttl=10.0, wait=5.0) as lease:
            assert lease.fencing_token > 0
    provider.shutdown()


if __name__ == "__main__":
    main()
