"""Sagas with Python step handlers (plain and async), compensation, retries, and the saga API."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import threading
import time
from typing import List

import pytest

import syros
from conftest import HERE, client_options, default_sigint, run_async

FAST = syros.StepRetryPolicy(initial_interval=0.05, backoff_coefficient=2.0, maximum_interval=1.0, maximum_attempts=3)


def order_steps(name: str) -> List[syros.Step]:
    return [
        syros.Step("reserve_inventory", f"{name}-inventory", "reserve", compensation="release_inventory", timeout=10),
        syros.Step("charge_payment", f"{name}-payment", "charge", compensation="refund_payment", timeout=10),
    ]


def start_in_thread(worker: syros.Worker) -> threading.Thread:
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while worker.worker_id is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert worker.worker_id is not None, "the worker did not start"
    return thread


def test_saga_with_python_handlers_completes_and_compensates(client: syros.Client, name: str) -> None:
    log: List[str] = []
    stock = {"sku-1": 10}
    reservations = {}

    inventory = client.worker(f"{name}-inventory")

    @inventory.action("reserve")
    def reserve(task: syros.Task) -> dict:
        assert task.step_name == "reserve_inventory" and not task.is_compensation
        order = task.input
        if task.idempotency_key not in reservations:
            stock[order["sku"]] -= order["quantity"]
            reservations[task.idempotency_key] = (order["sku"], order["quantity"])
        log.append(f"reserve {order['order_id']}")
        return {"reservation": task.idempotency_key}

    @inventory.compensation("release_inventory")
    def release(task: syros.Task) -> None:
        assert task.is_compensation
        reservation = task.previous_outputs["reserve_inventory"]["reservation"]
        sku, quantity = reservations.pop(reservation)
        stock[sku] += quantity
        log.append(f"release {task.input['order_id']}")

    payment = client.worker(f"{name}-payment", max_concurrent=4)

    @payment.action("charge")
    async def charge(task: syros.Task) -> dict:  # async handler under a blocking run()
        await asyncio.sleep(0.01)
        order = task.input
        if order["card"] == "declined":
            raise syros.StepError("the bank said no", type="card_declined", non_retryable=True)
        log.append(f"charge {order['order_id']}")
        return {"charge_id": f"ch-{order['order_id']}", "attempt": task.attempt}

    @payment.compensation("refund_payment")
    def refund(task: syros.Task) -> dict:
        log.append(f"refund {task.input['order_id']}")
        return {}

    threads = [start_in_thread(inventory), start_in_thread(payment)]
    try:
        paid = client.sagas.start(
            "order_fulfillment_saga",
            order_steps(name),
            {"order_id": "o-1", "sku": "sku-1", "quantity": 3, "card": "visa"},
            idempotency_key=f"{name}-o-1",
            retry=FAST,
        )
        assert paid.name == "order_fulfillment_saga" and paid.idempotency_key == f"{name}-o-1"
        again = client.sagas.start("order_fulfillment_saga", order_steps(name), {"order_id": "o-1"}, idempotency_key=f"{name}-o-1")
        assert again.saga_id == paid.saga_id, "the same idempotency key must give the same saga"
        declined = client.sagas.start(
            "order_fulfillment_saga",
            order_steps(name),
            {"order_id": "o-2", "sku": "sku-1", "quantity": 4, "card": "declined"},
            retry=FAST,
        )
        paid = client.sagas.wait(paid.saga_id, timeout=30)
        declined = client.sagas.wait(declined.saga_id, timeout=30)
    finally:
        inventory.stop()
        payment.stop()
        for thread in threads:
            thread.join(15)
    assert not any(t.is_alive() for t in threads), "run() did not return after stop()"

    assert paid.state == "completed" and paid.is_final, paid
    assert paid.input == {"order_id": "o-1", "sku": "sku-1", "quantity": 3, "card": "visa"}
    charge_step = paid.step("charge_payment")
    assert charge_step is not None and charge_step.state == "completed"
    assert charge_step.output == {"charge_id": "ch-o-1", "attempt": 1}
    assert json.loads(charge_step.output_json) == charge_step.output
    assert paid.step("reserve_inventory").output["reservation"].startswith(paid.saga_id)

    assert declined.state == "compensated", declined
    failed = declined.step("charge_payment")
    assert failed.state == "failed"
    assert [a.error_type for a in failed.attempts] == ["card_declined"], "a non-retryable failure is not retried"
    assert failed.attempts[0].error_message == "the bank said no"
    assert declined.step("reserve_inventory").state == "compensated"
    assert declined.error

    assert stock == {"sku-1": 7}, "3 sold; the declined order's 4 were released"
    assert sorted(log) == sorted(["reserve o-1", "charge o-1", "reserve o-2", "release o-2"])


def test_failed_attempts_are_retried(client: syros.Client, name: str) -> None:
    attempts = []
    worker = client.worker(f"{name}-flaky")

    @worker.action("flaky")
    def flaky(task: syros.Task) -> dict:
        attempts.append(task.attempt)
        if task.attempt < 3:
            raise ConnectionError("the warehouse did not answer")
        return {"ok": True}

    with worker:
        saga = client.sagas.start("flaky_saga", [syros.Step("only", f"{name}-flaky", "flaky")], retry=FAST)
        saga = client.sagas.wait(saga.saga_id, timeout=30)
    assert saga.state == "completed", saga
    assert attempts == [1, 2, 3]
    step = saga.steps[0]
    assert [a.error_type for a in step.attempts] == ["ConnectionError", "ConnectionError", None]


def test_non_retryable_error_types_from_policy(client: syros.Client, name: str) -> None:
    worker = client.worker(f"{name}-strict")

    @worker.action("validate")
    def validate(task: syros.Task) -> None:
        raise ValueError("bad order")

    policy = syros.StepRetryPolicy(initial_interval=0.05, maximum_attempts=5, non_retryable_errors=["ValueError"])
    with worker:
        saga = client.sagas.start("strict_saga", [syros.Step("validate", f"{name}-strict", "validate")], retry=policy)
        saga = client.sagas.wait(saga.saga_id, timeout=30)
    assert saga.state == "compensated"
    assert len(saga.steps[0].attempts) == 1


def test_get_list_cancel_wait(client: syros.Client, name: str) -> None:
    steps = [syros.Step("never", f"{name}-nobody", "act", compensation="undo")]
    saga = client.sagas.start(f"{name}_idle", steps, {"n": 1})
    assert saga.state in ("pending", "running") and not saga.is_final
    got = client.sagas.get(saga.saga_id)
    assert got.saga_id == saga.saga_id and got.input == {"n": 1}
    assert [s.saga_id for s in client.sagas.list(name=f"{name}_idle")] == [saga.saga_id]
    assert saga.saga_id in [s.saga_id for s in client.sagas.list(state="running", limit=1000)]
    assert client.sagas.list(name=f"{name}_none") == []

    with pytest.raises(syros.DeadlineExceeded) as caught:
        client.sagas.wait(saga.saga_id, timeout=0.3)
    assert caught.value.kind == "deadline_exceeded" and caught.value.retryable

    cancelled = client.sagas.cancel(saga.saga_id)
    assert cancelled.saga_id == saga.saga_id
    final = client.sagas.wait(saga.saga_id, timeout=30)
    assert final.state == "cancelled"
    assert client.sagas.list(state="cancelled", name=f"{name}_idle")[0].saga_id == saga.saga_id

    with pytest.raises(syros.NotFound):
        client.sagas.get("no-such-saga")
    with pytest.raises(syros.InvalidArgument):
        client.sagas.list(state="sleeping")
    with pytest.raises(syros.InvalidArgument):
        client.sagas.start("bad", [])


def test_worker_needs_handlers_and_unique_names(client: syros.Client, name: str) -> None:
    worker = client.worker(f"{name}-empty")
    with pytest.raises(ValueError):
        worker.run()
    worker.action("a")(lambda task: None)
    with pytest.raises(ValueError):
        worker.compensation("a")(lambda task: None)


def test_async_worker_and_sagas(address: str, name: str) -> None:
    async def main() -> None:
        client = syros.AsyncClient([address], **client_options())
        calls: List[str] = []
        loop = asyncio.get_running_loop()
        worker = client.worker(f"{name}-svc")

        @worker.action("step_a")
        async def step_a(task: syros.Task) -> dict:
            assert asyncio.get_running_loop() is loop, "async handlers run on run_async's loop"
            calls.append("a")
            return {"a": task.input["x"] * 2}

        @worker.action("step_b")
        def step_b(task: syros.Task) -> dict:  # a plain handler under run_async: on a thread
            calls.append("b")
            if task.input.get("fail"):
                raise syros.StepError("b failed", non_retryable=True)
            return {"b": task.previous_outputs["a"]["a"] + 1}

        @worker.compensation("undo_a")
        async def undo_a(task: syros.Task) -> None:
            calls.append("undo_a")

        steps = [
            syros.Step("a", f"{name}-svc", "step_a", compensation="undo_a"),
            syros.Step("b", f"{name}-svc", "step_b"),
        ]
        running = asyncio.ensure_future(worker.run_async())
        try:
            ok = await client.sagas.start("async_saga", steps, {"x": 20}, retry=FAST)
            bad = await client.sagas.start("async_saga", steps, {"x": 1, "fail": True}, retry=FAST)
            ok = await client.sagas.wait(ok.saga_id, timeout=30)
            bad = await client.sagas.wait(bad.saga_id, timeout=30)
            assert ok.state == "completed" and ok.step("b").output == {"b": 41}
            assert bad.state == "compensated"
            assert bad.step("b").attempts[0].error_type == "StepError"
            assert sorted(calls) == sorted(["a", "b", "a", "b", "undo_a"])

            assert (await client.sagas.get(ok.saga_id)).state == "completed"
            listed = await client.sagas.list(name="async_saga", limit=1000)
            assert {ok.saga_id, bad.saga_id} <= {s.saga_id for s in listed}

            idle = await client.sagas.start("async_idle", [syros.Step("x", f"{name}-nobody", "x")])
            await client.sagas.cancel(idle.saga_id)
            assert (await client.sagas.wait(idle.saga_id, timeout=30)).state == "cancelled"
            with pytest.raises(syros.NotFound):
                await client.sagas.get("missing")
        finally:
            worker.stop()
            await asyncio.wait_for(running, 15)

        # Cancelling run_async's task stops the worker too.
        again = client.worker(f"{name}-svc2")
        again.action("noop")(lambda task: None)
        task = asyncio.ensure_future(again.run_async())
        await asyncio.sleep(0.2)
        assert again.running
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not again.running

        # async with starts and stops a worker.
        third = client.worker(f"{name}-svc3")

        @third.action("echo")
        async def echo(task: syros.Task) -> dict:
            return task.input

        async with third:
            saga = await client.sagas.start("echo_saga", [syros.Step("echo", f"{name}-svc3", "echo")], {"hello": "world"})
            saga = await client.sagas.wait(saga.saga_id, timeout=30)
        assert saga.steps[0].output == {"hello": "world"}

    run_async(main())


def test_ctrl_c_stops_a_running_worker(address: str, name: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "helpers" / "interrupted_worker.py"), address, f"{name}-sigint"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "running"
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, f"{out}\n{err}"
    assert "stopped by KeyboardInterrupt" in out
