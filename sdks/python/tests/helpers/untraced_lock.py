"""An application with opentelemetry-api but no SDK (no tracer provider set): the SDK's calls
skip their client spans. It takes a lock outside any trace (KEY/plain), then inside a trace
context it received from elsewhere (a remote parent, not recorded here), which must still reach
the server (KEY/propagated).

    python untraced_lock.py ADDRESS KEY TRACE_ID SPAN_ID
"""

import sys

from opentelemetry import context, trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

import syros


def main() -> None:
    address, key, trace_id, span_id = sys.argv[1:5]
    client = syros.Client([address], connect_timeout=5.0, call_timeout=10.0)
    with client.lock(f"{key}/plain", ttl=10.0, wait=5.0):
        pass
    remote = SpanContext(int(trace_id, 16), int(span_id, 16), is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    token = context.attach(trace.set_span_in_context(NonRecordingSpan(remote)))
    try:
        with client.lock(f"{key}/propagated", ttl=10.0, wait=5.0):
            pass
    finally:
        context.detach(token)


if __name__ == "__main__":
    main()
