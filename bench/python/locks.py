"""Lock cycles through the Syros Python SDK (asyncio) against redis-py's asyncio lock on the same
Redis, in the same run. Not a test: it prints figures and ratios (issue 19's Python goal is
syros/redis-py >= 1.0 with 32 tasks on distinct keys).

A cycle = acquire (TTL 10 s) + release. Modes, for each side:
  seq    one task, one key, back to back: cycles/s, p50/p99 per cycle;
  c32    32 asyncio tasks, each on its own key: cycles/s;
  hot32  32 tasks on ONE key, each holding it 1 ms: cycles/s, min/max turns per task, failed
         (redis-py's lock polls every 0.1 s; Syros queues waiters first come, first served).

    python bench/python/locks.py <syros grpc address> <redis url>

Environment: BENCH_SECONDS (3 per mode and side), BENCH_WARMUP (1), BENCH_CONCURRENCY (32),
BENCH_HOLD_MS (1), BENCH_SIDES ("redis-py syros"), BENCH_NO_OTEL=1 (hide opentelemetry-api from
the SDK, so its calls are not wrapped in client spans).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid

if os.environ.get("BENCH_NO_OTEL") == "1":
    sys.modules["opentelemetry"] = None  # type: ignore[assignment]  # makes `import opentelemetry...` fail

import redis.asyncio as aredis  # noqa: E402

import syros  # noqa: E402

SECONDS = float(os.environ.get("BENCH_SECONDS", "3"))
WARMUP = float(os.environ.get("BENCH_WARMUP", "1"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "32"))
HOLD_S = float(os.environ.get("BENCH_HOLD_MS", "1")) / 1000
TTL_S = 10.0
now = time.perf_counter_ns


class Window:
    """Counts the cycles that start after the warm-up and end inside the window."""

    def __init__(self, tasks: int) -> None:
        start = now()
        self.measure = start + int(WARMUP * 1e9)
        self.stop = self.measure + int(SECONDS * 1e9)
        self.latencies: list[int] = []
        self.turns = [0] * tasks
        self.failed = 0

    def open(self) -> bool:
        return now() < self.stop

    def record(self, task: int, started: int) -> None:
        ended = now()
        if self.measure <= started and ended <= self.stop:
            self.latencies.append(ended - started)
            self.turns[task] += 1


def quantile_us(sorted_ns: list[int], q: float) -> float:
    return sorted_ns[min(len(sorted_ns) - 1, int(q * len(sorted_ns)))] / 1000 if sorted_ns else 0.0


async def run_mode(mode: str, cycle) -> dict:
    """Runs `cycle(task, key, hold_s)` in the mode's shape; returns its figures."""
    tasks = 1 if mode == "seq" else CONCURRENCY
    hold = HOLD_S if mode == "hot32" else 0.0
    run = uuid.uuid4().hex[:8]
    window = Window(tasks)

    async def loop(task: int) -> None:
        key = f"bench:{run}:hot" if mode == "hot32" else f"bench:{run}:{task}"
        while window.open():
            started = now()
            if await cycle(key, hold):
                window.record(task, started)
            else:
                window.failed += 1

    await asyncio.gather(*(loop(t) for t in range(tasks)))
    window.latencies.sort()
    return {
        "cycles_per_s": len(window.latencies) / SECONDS,
        "p50_us": quantile_us(window.latencies, 0.5),
        "p99_us": quantile_us(window.latencies, 0.99),
        "turns": (min(window.turns), max(window.turns)),
        "failed": window.failed,
    }


def redis_py_cycle(client: aredis.Redis):
    async def cycle(key: str, hold: float) -> bool:
        lock = client.lock(key, timeout=TTL_S)
        if not await lock.acquire(blocking=True, blocking_timeout=30 if hold else 5):
            return False
        if hold:
            await asyncio.sleep(hold)
        await lock.release()
        return True

    return cycle


def syros_cycle(client: syros.AsyncClient):
    async def cycle(key: str, hold: float) -> bool:
        try:
            # No renewal: the peer's lock is not renewed either (TTL 10 s, cycles are short).
            lease = await client.lock(key, ttl=TTL_S, wait=30.0, auto_renew=False)
        except syros.LockTimeout:
            return False
        if hold:
            await asyncio.sleep(hold)
        await lease.release()
        return True

    return cycle


def line(side: str, mode: str, r: dict) -> str:
    text = (
        f"{side:<9} {mode:<6} {r['cycles_per_s']:>8.0f} cycles/s  p50 {r['p50_us']:>7.0f} µs"
        f"  p99 {r['p99_us']:>7.0f} µs"
    )
    if mode == "hot32":
        text += f"  turns {r['turns'][0]}/{r['turns'][1]}  failed {r['failed']}"
    return text


async def main() -> None:
    address, redis_url = sys.argv[1], sys.argv[2]
    sides = os.environ.get("BENCH_SIDES", "redis-py syros").split()
    redis_client = aredis.Redis.from_url(redis_url)
    syros_client = syros.AsyncClient([address])
    await syros_client.connect()
    otel = "without" if os.environ.get("BENCH_NO_OTEL") == "1" else "with"
    print(f"# python {sys.version.split()[0]}, syros SDK {syros.__version__} ({otel} opentelemetry-api), "
          f"redis-py {aredis.__name__.split('.')[0]} {__import__('redis').__version__}, "
          f"{SECONDS:g} s windows, {CONCURRENCY} tasks", flush=True)
    results: dict[tuple[str, str], dict] = {}
    for mode in ("seq", "c32", "hot32"):
        for side in sides:
            cycle = redis_py_cycle(redis_client) if side == "redis-py" else syros_cycle(syros_client)
            results[side, mode] = await run_mode(mode, cycle)
            print(line(side, mode, results[side, mode]), flush=True)
    if {"redis-py", "syros"} <= set(sides):
        for mode in ("seq", "c32", "hot32"):
            a, b = results["syros", mode], results["redis-py", mode]
            ratio = a["cycles_per_s"] / b["cycles_per_s"] if b["cycles_per_s"] else float("inf")
            print(f"ratio {mode}: syros/redis-py = {ratio:.2f}x cycles/s", flush=True)
    await redis_client.aclose()
    await syros_client.close()


if __name__ == "__main__":
    asyncio.run(main())
