"""Locks: acquire/release, fencing, contention, renewal without the GIL, loss detection."""

from __future__ import annotations

import asyncio
import ctypes
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import syros
from conftest import HERE, client_options, run_async


def test_lock_context_manager_and_fencing(client: syros.Client, name: str) -> None:
    key = f"{name}:orders:42"
    with client.lock(key, ttl=10.0, wait=5.0) as lease:
        assert isinstance(lease, syros.Lease)
        assert lease.key == key
        assert lease.owner == client.owner
        assert lease.ttl == 10.0
        assert lease.held and not lease.lost
        assert lease.expires_at_ms > time.time() * 1000
        first = lease.fencing_token
        status = client.lock_status(key)
        assert status is not None and status.fencing_token == first and status.lease_id == lease.lease_id
    assert not lease.held
    assert client.lock_status(key) is None
    second = client.lock(key, ttl=5.0)
    assert second.fencing_token > first
    second.release()
    second.release()  # a second release does nothing


def test_lock_timeout_try_lock_status_list_force_release(client: syros.Client, name: str) -> None:
    key = f"{name}:busy"
    other = syros.Client([client.current_address], owner=f"{name}-other", **client_options())
    held = client.lock(key, ttl=10.0, wait=1.0)
    started = time.monotonic()
    with pytest.raises(syros.LockTimeout) as caught:
        other.lock(key, ttl=10.0, wait=0.3)
    assert 0.25 <= time.monotonic() - started < 5
    err = caught.value
    assert err.kind == "lock_timeout" and err.retryable is False
    assert err.details["holder_owner"] == client.owner
    assert int(err.details["holder_fencing_token"]) == held.fencing_token
    assert other.try_lock(key) is None

    listed = client.list_locks(prefix=f"{name}:")
    assert [info.key for info in listed] == [key]
    assert client.list_locks(prefix=f"{name}:nothing") == []

    renewed = held.renew()
    assert renewed.fencing_token == held.fencing_token

    dropped = other.force_release(key)
    assert dropped is not None and dropped.lease_id == held.lease_id
    assert held.wait_lost(timeout=10.0) is True  # the next renewal finds it gone
    assert held.lost
    with pytest.raises(syros.LockNotHeld):
        held.release()
    taken = other.try_lock(key, ttl=5.0)
    assert taken is not None and taken.fencing_token > held.fencing_token
    assert taken.wait_lost(timeout=0.1) is False
    taken.release()
    assert taken.wait_lost() is False  # released, not lost


def test_waiter_gets_the_lock_when_released(client: syros.Client, name: str) -> None:
    key = f"{name}:handoff"
    lease = client.lock(key, ttl=10.0)
    got = []

    def waiter() -> None:
        with client.lock(key, ttl=10.0, wait=10.0) as l2:
            got.append((time.monotonic(), l2.fencing_token))

    thread = threading.Thread(target=waiter)
    thread.start()
    time.sleep(0.3)
    released_at = time.monotonic()
    lease.release()
    thread.join(10)
    assert got, "the waiter never got the lock"
    assert got[0][1] > lease.fencing_token
    assert got[0][0] - released_at < 2.0


def test_with_block_body_error_releases_and_propagates(client: syros.Client, name: str) -> None:
    key = f"{name}:body"
    with pytest.raises(ZeroDivisionError):
        with client.lock(key, ttl=5.0):
            1 / 0
    assert client.lock_status(key) is None


def test_bad_lock_arguments_are_invalid(client: syros.Client) -> None:
    with pytest.raises(syros.InvalidArgument) as caught:
        client.lock("", ttl=5.0)
    assert caught.value.kind == "invalid_argument"
    assert isinstance(caught.value, ValueError)
    with pytest.raises(syros.InvalidArgument):
        client.lock("k", ttl=0.001)  # below the 100 ms minimum
    with pytest.raises(syros.InvalidArgument):
        client.lock("k", ttl=-1.0)


def _hold_gil_and_sleep(seconds: int) -> None:
    """Sleep in C *without* releasing the GIL (PyDLL keeps it): nothing Python-side can run."""
    libc = ctypes.PyDLL(None)
    libc.sleep.argtypes = [ctypes.c_uint]
    libc.sleep(seconds)


def test_lease_survives_blocking_python_past_its_ttl(client: syros.Client, name: str) -> None:
    key = f"{name}:long-work"
    other = syros.Client([client.current_address], owner=f"{name}-other", **client_options())
    with client.lock(key, ttl=1.0, wait=1.0) as lease:
        token = lease.fencing_token
        time.sleep(2.5)  # blocking sleep, 2.5 TTLs
        assert not lease.lost
        _hold_gil_and_sleep(3)  # 3 TTLs with the GIL held the whole time
        assert not lease.lost
        assert other.try_lock(key) is None, "someone else got the lock while we held it"
        status = client.lock_status(key)
        assert status is not None and status.fencing_token == token
        assert status.expires_at_ms > time.time() * 1000
    assert client.lock_status(key) is None


def test_lease_lost_when_server_gone_past_ttl(dedicated_server) -> None:
    client = syros.Client([dedicated_server.address], **client_options())
    fired = threading.Event()
    lease = client.lock("lost-key", ttl=1.0, wait=1.0)
    lease.on_lost(fired.set)
    assert not lease.lost
    dedicated_server.kill()
    started = time.monotonic()
    assert lease.wait_lost(timeout=15.0) is True
    took = time.monotonic() - started
    assert lease.lost and not lease.held
    assert fired.wait(5.0), "on_lost callback did not fire"
    assert took < 5.0, f"loss took {took:.1f}s to notice with a 1 s TTL"
    with pytest.raises(syros.LockNotHeld):
        with lease:
            pass


def test_async_lease_lost_when_server_gone(dedicated_server) -> None:
    async def main() -> None:
        client = await syros.AsyncClient([dedicated_server.address], **client_options()).connect()
        fired = asyncio.Event()
        lease = await client.lock("lost-key-async", ttl=1.0, wait=1.0)
        lease.on_lost(fired.set)
        dedicated_server.kill()
        assert await lease.wait_lost(timeout=15.0) is True
        assert lease.lost
        await asyncio.wait_for(fired.wait(), 5.0)
        with pytest.raises(syros.LockNotHeld):
            await lease.release()

    run_async(main())


def test_async_locks(address: str, name: str) -> None:
    async def main() -> None:
        client = syros.AsyncClient([address], **client_options())
        other = await syros.AsyncClient([address], owner=f"{name}-other", **client_options()).connect()
        key = f"{name}:async"
        async with client.lock(key, ttl=10.0, wait=5.0) as lease:
            assert isinstance(lease, syros.AsyncLease)
            assert lease.owner == client.owner and lease.held
            with pytest.raises(syros.LockTimeout):
                await other.lock(key, ttl=5.0, wait=0.2)
            assert await other.try_lock(key) is None
            status = await client.lock_status(key)
            assert status is not None and status.fencing_token == lease.fencing_token
            assert [i.key for i in await client.list_locks(prefix=f"{name}:")] == [key]
            assert (await lease.renew()).lease_id == lease.lease_id
            first = lease.fencing_token
        assert await client.lock_status(key) is None
        lease = await client.lock(key, ttl=5.0)
        assert lease.fencing_token > first
        dropped = await other.force_release(key)
        assert dropped is not None and dropped.lease_id == lease.lease_id
        assert await lease.wait_lost(timeout=10.0)
        with pytest.raises(syros.LockNotHeld):
            await lease.release()

        # 32 tasks on one key: every acquisition succeeds, tokens strictly increase.
        tokens = []

        async def worker() -> None:
            for _ in range(3):
                async with client.lock(f"{name}:hot", ttl=5.0, wait=30.0) as l:
                    tokens.append(l.fencing_token)
                    await asyncio.sleep(0)

        await asyncio.gather(*(worker() for _ in range(32)))
        assert len(tokens) == 96 and tokens == sorted(tokens) and len(set(tokens)) == 96

    run_async(main())


def test_cancelled_async_acquire_leaves_the_queue(address: str, name: str) -> None:
    """Cancelling the task awaiting an acquire cancels the wait on the server: the next release
    hands the key to the waiter behind it, not to the abandoned one."""

    async def main() -> None:
        holder = await syros.AsyncClient([address], owner=f"{name}-holder", **client_options()).connect()
        quitter = await syros.AsyncClient([address], owner=f"{name}-quitter", **client_options()).connect()
        patient = await syros.AsyncClient([address], owner=f"{name}-patient", **client_options()).connect()
        key = f"{name}:cancelled"
        lease = await holder.lock(key, ttl=30.0)
        abandoned = asyncio.ensure_future(quitter.lock(key, ttl=30.0, wait=30.0))
        await asyncio.sleep(0.3)
        queued_after = asyncio.ensure_future(patient.lock(key, ttl=30.0, wait=30.0))
        await asyncio.sleep(0.3)
        abandoned.cancel()
        with pytest.raises(asyncio.CancelledError):
            await abandoned
        await lease.release()
        granted = await asyncio.wait_for(queued_after, 10)
        assert granted.owner == f"{name}-patient"
        status = await holder.lock_status(key)
        assert status is not None and status.owner == f"{name}-patient"
        await granted.release()

    run_async(main())


def test_async_results_reach_their_own_loops(address: str, name: str) -> None:
    """Four event loops in four threads, 16 tasks each, share one client: every call's result
    reaches the future of the loop that made the call (results are handed to each loop in
    batches)."""
    client = syros.AsyncClient([address], **client_options())
    failures: list[BaseException] = []

    def run_loop(index: int) -> None:
        async def task(number: int) -> None:
            key = f"{name}:loop{index}:{number}"
            value = f"{index}/{number}".encode()
            await client.cache.set(key, value, ttl=30.0)
            assert await client.cache.get(key) == value

        async def main() -> None:
            await asyncio.gather(*(task(n) for n in range(16)))

        try:
            asyncio.run(main())
        except BaseException as err:  # noqa: BLE001 - reported by the test thread
            failures.append(err)

    threads = [threading.Thread(target=run_loop, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads)
    assert failures == []


def test_contention_across_four_processes_keeps_counter_exact(address: str, name: str, tmp_path: Path) -> None:
    counter = tmp_path / "counter.txt"
    counter.write_text("0")
    per_process = 25
    procs = [
        subprocess.Popen(
            [sys.executable, str(HERE / "helpers" / "counter_worker.py"), address, f"{name}:counter", str(counter), str(per_process)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    tokens = []
    for proc in procs:
        out, err = proc.communicate(timeout=150)
        assert proc.returncode == 0, f"worker failed:\n{out}\n{err}"
        tokens += [int(t) for t in out.split()]
    assert int(counter.read_text()) == 4 * per_process
    assert len(tokens) == 4 * per_process and len(set(tokens)) == len(tokens)
