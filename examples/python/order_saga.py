"""The seed's ``order_fulfillment_saga`` with Python step handlers (asyncio).

Reserve inventory, then charge payment; a declined card releases the reservation. The inventory
and payment workers run in this process, as they would in two services: the inventory handlers
are plain functions (run on the client's threads), the payment handlers are ``async def`` (run on
this event loop). Retries, timeouts and compensation order are the server's; the task feed and
reporting are the Rust client core's.

Run against a server (``syros serve``)::

    python examples/python/order_saga.py 127.0.0.1:9090

It checks its own outcome and exits non-zero on failure.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time

import syros

STEPS = [
    syros.Step("reserve_inventory", "inventory_service", "reserve", compensation="release_inventory", timeout=10),
    syros.Step("charge_payment", "payment_service", "charge", compensation="refund_payment", timeout=15),
]


class Inventory:
    """Stock per SKU; reservations kept by idempotency key so a redelivered task reserves once."""

    def __init__(self) -> None:
        self.stock = {"sku-1": 10}
        self.reservations: dict = {}
        self.lock = threading.Lock()  # plain handlers run on several threads

    def reserve(self, task: syros.Task) -> dict:
        order = task.input
        with self.lock:
            if task.idempotency_key not in self.reservations:
                available = self.stock.get(order["sku"], 0)
                if available < order["quantity"]:
                    raise syros.StepError(f"{order['sku']}: {available} left", type="out_of_stock", non_retryable=True)
                self.stock[order["sku"]] = available - order["quantity"]
                self.reservations[task.idempotency_key] = (order["sku"], order["quantity"])
        return {"reservation": task.idempotency_key}

    def release(self, task: syros.Task) -> dict:
        reservation = task.previous_outputs["reserve_inventory"]["reservation"]
        with self.lock:
            taken = self.reservations.pop(reservation, None)
            if taken is not None:
                sku, quantity = taken
                self.stock[sku] += quantity
        return {"released": reservation}


async def main(address: str) -> int:
    client = await syros.AsyncClient([address]).connect()
    inventory = Inventory()

    inventory_worker = client.worker("inventory_service")
    inventory_worker.action("reserve")(inventory.reserve)
    inventory_worker.compensation("release_inventory")(inventory.release)

    payment_worker = client.worker("payment_service", max_concurrent=4)

    @payment_worker.action("charge")
    async def charge(task: syros.Task) -> dict:
        await asyncio.sleep(0.01)  # the bank
        order = task.input
        if order["card"] == "declined":
            raise syros.StepError("the bank said no", type="card_declined", non_retryable=True)
        return {"charge_id": f"ch-{order['order_id']}"}

    @payment_worker.compensation("refund_payment")
    async def refund(task: syros.Task) -> dict:
        return {}

    workers = [asyncio.ensure_future(w.run_async()) for w in (inventory_worker, payment_worker)]
    run = f"{time.time_ns():x}"
    try:
        paid, declined = await asyncio.gather(
            client.sagas.start(
                "order_fulfillment_saga",
                STEPS,
                {"order_id": f"{run}-1", "sku": "sku-1", "quantity": 3, "card": "visa"},
                idempotency_key=f"order-{run}-1",  # one saga per order, however often we retry
            ),
            client.sagas.start(
                "order_fulfillment_saga",
                STEPS,
                {"order_id": f"{run}-2", "sku": "sku-1", "quantity": 4, "card": "declined"},
                idempotency_key=f"order-{run}-2",
            ),
        )
        paid, declined = await asyncio.gather(
            client.sagas.wait(paid.saga_id, timeout=30), client.sagas.wait(declined.saga_id, timeout=30)
        )
    finally:
        for worker in (inventory_worker, payment_worker):
            worker.stop()
        await asyncio.gather(*workers)

    for saga in (paid, declined):
        print(f"{saga.name} {saga.saga_id}: {saga.state}")
        for step in saga.steps:
            print(f"  {step.name:<18} {step.state:<12} attempts={len(step.attempts)} output={step.output_json or '-'}")
    left = inventory.stock["sku-1"]
    print(f"sku-1 in stock: {left} (10 - 3 sold; the declined order's 4 were released)")

    failures = []
    if paid.state != "completed":
        failures.append(f"the paid order must complete, it is {paid.state}")
    if declined.state != "compensated":
        failures.append(f"the declined order must be compensated, it is {declined.state}")
    if left != 7:
        failures.append(f"stock must be 7, is {left}")
    for failure in failures:
        print("FAILED:", failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:9090")))
