"""The Python runner of the conformance scenarios (tests/conformance/scenarios), through the
public Python SDK (``import syros``), each scenario against a fresh ``syros serve``.

Prints ``PASS name`` / ``FAIL name: reason`` per scenario and ``N passed, N failed``; exits 1
when any failed or none ran.

    python tests/conformance/python/runner.py [SCENARIO_DIR] [NAME_FILTER]

``SYROS_BIN`` names the server; ``SYROS_TEST_BACKEND=redis-postgres`` picks the backend.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, List, Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent / "launcher"))

import syros  # noqa: E402
from syros_launcher import SyrosServer, backend_from_env  # noqa: E402


class StepFailed(Exception):
    pass


def ensure(condition: bool, message: str) -> None:
    if not condition:
        raise StepFailed(message)


def check_error(step: Dict[str, Any], call) -> Any:
    """Run ``call``; compare with ``expect.error`` (or require success)."""
    expected = (step.get("expect") or {}).get("error")
    try:
        value = call()
    except syros.SyrosError as err:
        if expected is None:
            raise StepFailed(f"unexpected error {err.kind}: {err}") from err
        ensure(err.kind == expected, f"expected error {expected}, got {err.kind}: {err}")
        return None
    ensure(expected is None, f"expected error {expected}, the call succeeded")
    return value


class Run:
    def __init__(self, server: SyrosServer, name: str) -> None:
        self.server = server
        self.id = f"{name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._client: Optional[syros.Client] = None
        self.leases: Dict[str, syros.Lease] = {}
        self.pending: Dict[str, Future] = {}
        self.subscriptions: Dict[str, syros.Subscription] = {}
        self.saved: Dict[str, Dict[str, Any]] = {}
        self.pool = ThreadPoolExecutor(max_workers=8)

    @property
    def client(self) -> syros.Client:
        if self._client is None:
            self._client = syros.Client([self.server.address], connect_timeout=2.0, call_timeout=10.0)
        return self._client

    def finish(self) -> None:
        for lease in self.leases.values():
            try:
                lease.release()
            except syros.SyrosError:
                pass
        for subscription in self.subscriptions.values():
            subscription.close()
        for future in self.pending.values():
            future.cancel()
        self.pool.shutdown(wait=False, cancel_futures=True)
        if self._client is not None:
            self._client.close()

    def resolve(self, value: Any) -> Any:
        if isinstance(value, str):
            if value.startswith("$"):
                name, _, field = value[1:].partition(".")
                if name not in self.saved or field not in self.saved[name]:
                    raise StepFailed(f"nothing saved as {value}")
                return self.saved[name][field]
            return value.replace("{id}", self.id)
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        return value

    def keep_lease(self, name: Optional[str], lease: syros.Lease) -> None:
        if name:
            self.leases[name] = lease
            self.saved[name] = {"lease_id": lease.lease_id, "fencing_token": lease.fencing_token, "key": lease.key}

    def scenario(self, scenario: Dict[str, Any]) -> None:
        for index, raw in enumerate(scenario["steps"], start=1):
            step = self.resolve(raw)
            op = step.get("op", "")
            try:
                self.step(op, step)
            except StepFailed as err:
                raise StepFailed(f"step {index} ({op}): {err}") from None
            except Exception as err:  # an SDK or runner error is a failure too, with its step
                raise StepFailed(f"step {index} ({op}): {type(err).__name__}: {err}") from None

    def step(self, op: str, step: Dict[str, Any]) -> None:
        expect = step.get("expect") or {}
        ttl = step.get("ttl_ms", 5000) / 1000
        wait = step.get("wait_ms", 0) / 1000
        if op == "lock":
            lease = check_error(step, lambda: self.client.lock(step["key"], ttl=ttl, wait=wait))
            if lease is not None:
                self.keep_lease(step.get("save"), lease)
        elif op == "try_lock":
            lease = self.client.try_lock(step["key"], ttl=ttl)
            if "acquired" in expect:
                ensure((lease is not None) == expect["acquired"], f"expected acquired={expect['acquired']}")
            if lease is not None:
                self.keep_lease(step.get("save"), lease)
        elif op == "lock_async":
            self.pending[step["save"]] = self.pool.submit(self.client.lock, step["key"], ttl=ttl, wait=wait)
        elif op == "await_lease":
            future = self.pending.pop(step["name"])
            try:
                lease = future.result(timeout=step.get("within_ms", 5000) / 1000)
            except TimeoutError:
                raise StepFailed(f"{step['name']} was not granted in time") from None
            self.keep_lease(step["name"], lease)
        elif op == "expect_pending":
            time.sleep(step.get("for_ms", 0) / 1000)
            ensure(not self.pending[step["name"]].done(), f"{step['name']} was already granted (out of order)")
        elif op == "release":
            self.leases[step["lease"]].release()
        elif op == "renew":
            check_error(step, lambda: self.leases[step["lease"]].renew())
        elif op == "lease_state":
            lease = self.leases[step["lease"]]
            if "held" in expect:
                ensure(lease.held == expect["held"], f"expected held={expect['held']}")
            if "lost" in expect:
                ensure(lease.lost == expect["lost"], f"expected lost={expect['lost']}")
        elif op == "wait_end":
            lease = self.leases[step["lease"]]
            lost = lease.wait_lost(timeout=step.get("timeout_ms", 1000) / 1000)
            end = "lost" if lost else ("timed_out" if lease.held else "released")
            ensure(end == expect.get("end"), f"expected {expect.get('end')}, the wait ended {end}")
        elif op == "lock_status":
            holder = self.client.lock_status(step["key"])
            if expect.get("free"):
                ensure(holder is None, f"expected free, held by {holder}")
            if "lease_id" in expect:
                ensure(holder is not None and holder.lease_id == expect["lease_id"], f"expected lease {expect['lease_id']}, holder {holder}")
        elif op == "force_release":
            self.client.force_release(step["key"])
        elif op == "cache_set":
            value = step["value"]
            if isinstance(value, dict):
                value = value.get("repeat", "x") * value.get("times", 1)
            check_error(step, lambda: self.client.cache.set(step["key"], value.encode(), ttl=(step["ttl_ms"] / 1000 if "ttl_ms" in step else None), tags=step.get("tags", [])))
        elif op == "cache_get":
            value = self.client.cache.get(step["key"])
            if expect.get("missing"):
                ensure(value is None, f"expected no value, got {value!r}")
            if "value" in expect:
                got = None if value is None else value.decode()
                ensure(got == expect["value"], f"expected {expect['value']!r}, got {got!r}")
        elif op == "cache_invalidate_tag":
            removed = self.client.cache.invalidate_tag(step["tag"])
            if "removed" in expect:
                ensure(removed == expect["removed"], f"removed {removed}, expected {expect['removed']}")
        elif op == "append":
            expected = step.get("expected", "any")
            expected = {"any": syros.ANY, "no_stream": syros.NO_STREAM}.get(expected, expected)
            events = [syros.Event(e.get("type", "Event"), e.get("data")) for e in step["events"]]
            result = check_error(step, lambda: self.client.events.append(step["stream"], events, expected_version=expected))
            if result is not None and "last_version" in expect:
                ensure(result.last_version == expect["last_version"], f"last version {result.last_version}, expected {expect['last_version']}")
        elif op == "read":
            read = self.client.events.read(step["stream"], 0)
            versions = [e.version for e in read.events]
            types = [e.type for e in read.events]
            if "versions" in expect:
                ensure(versions == expect["versions"], f"versions {versions}, expected {expect['versions']}")
            if "types" in expect:
                ensure(types == expect["types"], f"types {types}, expected {expect['types']}")
        elif op == "subscribe":
            start = step.get("from", "start")
            start = {"start": syros.START, "end": syros.END}.get(start, start)
            self.subscriptions[step["save"]] = self.client.events.subscribe(step["stream"], start)
        elif op == "next_events":
            subscription = self.subscriptions[step["subscription"]]
            deadline = time.monotonic() + step.get("timeout_ms", 5000) / 1000
            versions: List[int] = []
            while len(versions) < step.get("count", 1):
                # The SDK's next() answers None when the time passed (or the subscription closed).
                event = subscription.next(timeout=max(0.001, deadline - time.monotonic()))
                ensure(not subscription.closed, "the subscription ended")
                ensure(event is not None, f"only got versions {versions} in time")
                versions.append(event.version)
            if "versions" in expect:
                ensure(versions == expect["versions"], f"versions {versions}, expected {expect['versions']}")
        elif op == "expect_no_event":
            subscription = self.subscriptions[step["subscription"]]
            event = subscription.next(timeout=step.get("within_ms", 500) / 1000)
            ensure(not subscription.closed, "the subscription ended")
            ensure(event is None, f"expected no event, got {event}")
        elif op == "close":
            self.subscriptions[step["subscription"]].close()
        elif op == "start_saga":
            steps = [syros.Step(s["name"], s["service"], s["action"], s.get("compensation")) for s in step["steps"]]
            saga = self.client.sagas.start(step["name"], steps, step.get("input"))
            if step.get("save"):
                self.saved[step["save"]] = {"saga_id": saga.saga_id}
        elif op == "run_worker":
            self.run_worker(step)
        elif op == "compare":
            left, right, cmp = step["left"], step["right"], step.get("cmp", "==")
            holds = {">": left > right, ">=": left >= right, "==": left == right, "!=": left != right}.get(cmp)
            ensure(holds is not None, f"unknown comparison {cmp}")
            ensure(bool(holds), f"expected {left} {cmp} {right}")
        elif op == "sleep":
            time.sleep(step.get("ms", 0) / 1000)
        elif op in ("restart_server", "start_server"):
            self.server.restart()
        elif op == "stop_server":
            self.server.kill()
        else:
            raise StepFailed(f"unknown operation {op!r}")

    def run_worker(self, step: Dict[str, Any]) -> None:
        calls: List[str] = []
        worker = self.client.worker(step["service"], max_concurrent=4)
        script: Dict[str, Any] = step["script"]

        def handler_for(name: str):
            def handle(task: syros.Task) -> Any:
                calls.append(name)
                behaviour = script[name]
                if "complete" in behaviour:
                    return behaviour["complete"]
                failure = behaviour["fail"]
                raise syros.StepError(
                    failure.get("message", ""),
                    type=failure.get("error_type", "failed"),
                    non_retryable=bool(failure.get("non_retryable")),
                )

            return handle

        for name in script:
            worker.handler(name)(handler_for(name))
        with worker:
            saga = self.client.sagas.wait(step["saga"], timeout=step.get("timeout_ms", 20000) / 1000)
        if "calls" in step.get("expect", {}):
            ensure(calls == step["expect"]["calls"], f"handlers ran {calls}, expected {step['expect']['calls']}")
        if "state" in step.get("expect", {}):
            ensure(saga.state == step["expect"]["state"], f"saga ended {saga.state}, expected {step['expect']['state']}")


def main() -> int:
    scenario_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parent / "scenarios"
    name_filter = sys.argv[2] if len(sys.argv) > 2 else None
    backend = backend_from_env()
    passed = failed = 0
    for path in sorted(scenario_dir.glob("*.json")):
        try:
            scenario = json.loads(path.read_text())
        except ValueError as err:
            print(f"FAIL {path.name}: not valid JSON: {err}", flush=True)
            failed += 1
            continue
        name = scenario.get("name", path.stem)
        if name_filter and name_filter not in name:
            continue
        started = time.monotonic()
        server = SyrosServer(backend=backend)
        try:
            server.start()
        except RuntimeError as err:
            failed += 1
            print(f"FAIL {name} ({backend}): cannot start the server: {err}", flush=True)
            server.close()
            continue
        run = Run(server, name)
        try:
            run.scenario(scenario)
        except StepFailed as err:
            failed += 1
            print(f"FAIL {name} ({backend}): {err}", flush=True)
        else:
            passed += 1
            print(f"PASS {name} ({time.monotonic() - started:.1f}s, {backend})", flush=True)
        finally:
            run.finish()
            server.close()
    print(f"{passed} passed, {failed} failed", flush=True)
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
