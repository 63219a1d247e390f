"""Schemathesis hooks for scripts/schemathesis.sh (loaded through SCHEMATHESIS_HOOKS).

A generated lock acquire may name a key that an earlier generated request holds, with a wait of
up to five minutes: cap the wait so the run stays bounded. Everything else is sent as generated.
"""
import schemathesis

MAX_WAIT_MS = 200


@schemathesis.hook
def before_call(context, case, kwargs):
    body = case.body
    if case.path == "/api/v1/locks" and case.method.upper() == "POST" and isinstance(body, dict):
        ms = body.get("wait_timeout_ms")
        if isinstance(ms, int) and not isinstance(ms, bool) and 0 <= ms <= 300_000:
            body["wait_timeout_ms"] = min(ms, MAX_WAIT_MS)
        seconds = body.get("wait_timeout_seconds")
        if isinstance(seconds, int) and not isinstance(seconds, bool) and 0 < seconds <= 300:
            body["wait_timeout_seconds"] = 0
