"""The client core's runtime from Python: fork safety, shutdown, the GIL and Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

import syros
from syros import _syros
from conftest import HERE, client_options, default_sigint, python_script


def test_forked_child_can_use_a_new_client(client: syros.Client, address: str, name: str) -> None:
    client.cache.set(f"{name}:parent", b"before fork")
    assert _syros.runtime_running()
    held = client.lock(f"{name}:parent-lock", ttl=5.0)
    pid = os.fork()
    if pid == 0:  # the child: report through the exit code only
        code = 1
        try:
            assert not _syros.runtime_running(), "the parent's runtime must not be reused"
            try:
                client.cache.get(f"{name}:parent")
                raise AssertionError("the parent's client must refuse to work in the child")
            except syros.InvalidArgument as err:
                assert "another process" in err.message
            child = syros.Client([address], **client_options())
            assert child.cache.get(f"{name}:parent") == b"before fork"
            child.cache.set(f"{name}:child", b"from the child")
            with child.lock(f"{name}:child-lock", ttl=5.0) as lease:
                assert lease.fencing_token > 0
            assert child.try_lock(f"{name}:parent-lock") is None, "the parent still holds it"

            async def use_async() -> None:
                ac = syros.AsyncClient([address], **client_options())
                await ac.events.append(f"{name}-child", syros.Event("ForkedChild", {"pid": os.getpid()}))

            asyncio.run(use_async())
            code = 0
        except BaseException as err:  # noqa: BLE001 - anything is a failure here
            print(f"child failed: {err!r}", file=sys.stderr, flush=True)
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, f"child exited with {status}"
    # The parent's client, lease and runtime are untouched by the fork.
    assert client.cache.get(f"{name}:child") == b"from the child"
    assert client.events.read(f"{name}-child").events[0].type == "ForkedChild"
    assert held.held and not held.lost
    held.release()


#: Fork-after-use parents (fresh interpreters), rounds per parent, workers per round, increments
#: per worker: 20 rounds of 4 workers in all (issue 11, item 15). Fresh parents matter: whether an
#: inherited corruption crashes a child depended on the parent's memory layout, so one parent could
#: pass every round while the next failed most of them.
FORK_PARENTS, FORK_ROUNDS, FORK_WORKERS, FORK_INCREMENTS = 10, 2, 4, 10


@pytest.mark.timeout(FORK_PARENTS * FORK_ROUNDS * 70 + 60)
def test_multiprocessing_fork_workers_after_use(address: str, name: str) -> None:
    """The way users run it: a parent that used the SDK (and holds a lease being renewed while it
    forks) starts ``multiprocessing`` workers with the fork start method; each creates its own
    client and increments a shared counter under a Syros lock. Every round must be exact, with no
    worker crashing or hanging (helpers/fork_workers.py kills a worker hung past its deadline)."""
    script = HERE / "helpers" / "fork_workers.py"
    failed = []
    for parent in range(FORK_PARENTS):
        args = [address, f"{name}-{parent}", str(FORK_ROUNDS), str(FORK_WORKERS), str(FORK_INCREMENTS)]
        result = python_script(script, *args, timeout=FORK_ROUNDS * 70 + 30)
        summary = f"{FORK_ROUNDS} of {FORK_ROUNDS} rounds exact"
        if result.returncode != 0 or summary not in result.stdout:
            failed.append(f"parent {parent} (exit {result.returncode}):\n{result.stdout}{result.stderr[-2000:]}")
    assert not failed, f"{len(failed)} of {FORK_PARENTS} parents had a round that was not exact:\n" + "\n".join(failed)


def test_shutdown_and_restart_in_a_subprocess(address: str) -> None:
    script = HERE / "helpers" / "shutdown_restart.py"
    result = subprocess.run([sys.executable, str(script), address], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("ok")


def test_blocking_calls_release_the_gil(client: syros.Client, name: str) -> None:
    holder = client.lock(f"{name}:gil", ttl=5.0)
    ticks = []
    stop = threading.Event()

    def ticker() -> None:
        while not stop.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.01)

    thread = threading.Thread(target=ticker)
    thread.start()
    other = syros.Client([client.current_address], owner="gil-waiter", **client_options())
    try:
        other.lock(f"{name}:gil", ttl=5.0, wait=0.5)
    except syros.LockTimeout:
        pass
    stop.set()
    thread.join()
    holder.release()
    assert len(ticks) > 20, "another Python thread must run while a call blocks"


def test_ctrl_c_interrupts_a_blocking_wait(client: syros.Client, address: str, name: str) -> None:
    key = f"{name}:sigint"
    holder = client.lock(key, ttl=30.0)
    proc = subprocess.Popen(
        [sys.executable, "-c", f"""
import sys, syros
client = syros.Client([{address!r}])
print("waiting", flush=True)
try:
    client.lock({key!r}, ttl=5.0, wait=60.0)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(0)
sys.exit(1)
"""],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "waiting"
    time.sleep(0.5)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, out + err
    assert "interrupted" in out and time.monotonic() - started < 5
    holder.release()
