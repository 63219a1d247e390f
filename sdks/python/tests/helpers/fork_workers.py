"""Fork-after-use with multiprocessing, the way applications run it (issue 11, item 15).

usage: fork_workers.py ADDRESS PREFIX ROUNDS WORKERS INCREMENTS

Each round the parent uses the SDK (calls, a lock taken and released, a lease it keeps holding
while it forks), then starts WORKERS processes with the fork start method. Each worker creates
its own client and makes INCREMENTS read-pause-write increments of a shared counter under one
Syros lock (without mutual exclusion, increments get lost). A round is exact when every worker
exits 0 and the counter equals WORKERS * INCREMENTS; a worker still running at the round's
deadline is killed and counts as hung. Prints one line per round and exits 1 if any round was
not exact.
"""

import multiprocessing
import sys
import time

import syros

#: A healthy round takes about a second.
ROUND_DEADLINE = 60.0


def increments(address: str, key: str, counter, n: int) -> None:
    client = syros.Client([address], call_timeout=10.0)
    for _ in range(n):
        with client.lock(key, ttl=5.0, wait=30.0):
            value = counter.value
            time.sleep(0.002)
            counter.value = value + 1


def main() -> int:
    address, prefix = sys.argv[1], sys.argv[2]
    rounds, workers, n = (int(arg) for arg in sys.argv[3:6])
    ctx = multiprocessing.get_context("fork")
    parent = syros.Client([address], call_timeout=10.0)
    bad = 0
    for round_no in range(rounds):
        key = f"{prefix}:counter-{round_no}"
        with parent.lock(f"{prefix}:parent-{round_no}", ttl=5.0):
            parent.cache.set(f"{prefix}:parent-{round_no}", b"used before the fork")
        held = parent.lock(f"{prefix}:held-{round_no}", ttl=5.0)
        counter = ctx.Value("i", 0, lock=False)
        procs = [ctx.Process(target=increments, args=(address, key, counter, n)) for _ in range(workers)]
        for proc in procs:
            proc.start()
        deadline = time.monotonic() + ROUND_DEADLINE
        outcomes = []
        for proc in procs:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join()
                outcomes.append("hung")
            else:
                outcomes.append(proc.exitcode)  # negative: killed by that signal
        lease_kept = held.held and not held.lost
        held.release()
        exact = outcomes == [0] * workers and counter.value == workers * n and lease_kept
        bad += not exact
        print(
            f"round {round_no}: exit codes {outcomes}, counter {counter.value}/{workers * n}, "
            f"parent lease kept {lease_kept}: {'exact' if exact else 'FAILED'}",
            flush=True,
        )
    print(f"{rounds - bad} of {rounds} rounds exact", flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
