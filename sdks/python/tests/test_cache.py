"""The tagged cache, sync and asyncio, including single-flight get_or_compute."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

import syros
from conftest import client_options, run_async


def test_get_set_delete_ttl_tags(client: syros.Client, name: str) -> None:
    cache = client.cache
    assert cache.get(f"{name}:missing") is None
    assert cache.set(f"{name}:a", b"\x00\x01bytes") is None  # no TTL: no expiry
    assert cache.get(f"{name}:a") == b"\x00\x01bytes"
    expires = cache.set(f"{name}:b", "text é", ttl=60.0, tags=[f"{name}-t1", f"{name}-t2"])
    assert expires is not None and expires > time.time() * 1000
    entry = cache.get_entry(f"{name}:b")
    assert entry is not None and entry.value == "text é".encode()
    assert entry.expires_at_ms == expires and sorted(entry.tags) == [f"{name}-t1", f"{name}-t2"]
    assert cache.delete(f"{name}:a") is True
    assert cache.delete(f"{name}:a") is False
    assert cache.get(f"{name}:a") is None

    cache.set(f"{name}:short", b"x", ttl=0.2)
    time.sleep(0.5)
    assert cache.get(f"{name}:short") is None

    cache.set(f"{name}:c", b"c", tags=[f"{name}-t1"])
    cache.set(f"{name}:d", b"d", tags=[f"{name}-other"])
    assert cache.invalidate_tag(f"{name}-t1") == 2
    assert cache.get(f"{name}:b") is None and cache.get(f"{name}:c") is None
    assert cache.get(f"{name}:d") == b"d"
    assert cache.invalidate_tag(f"{name}-t1") == 0

    with pytest.raises(TypeError):
        cache.set(f"{name}:e", 42)  # type: ignore[arg-type]
    with pytest.raises(syros.PayloadTooLarge):
        cache.set(f"{name}:big", b"x" * (1024 * 1024 + 1))


def test_get_or_compute_single_flight_threads(client: syros.Client, name: str) -> None:
    calls = []
    key = f"{name}:computed"

    def compute() -> bytes:
        calls.append(threading.get_ident())
        time.sleep(0.3)
        return b"expensive"

    results = []
    threads = [
        threading.Thread(target=lambda: results.append(client.cache.get_or_compute(key, compute, ttl=30.0, tags=[name])))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert results == [b"expensive"] * 8
    assert len(calls) == 1, f"computed {len(calls)} times"
    assert client.cache.get(key) == b"expensive"
    assert client.cache.get_entry(key).tags == [name]
    # A hit does not compute.
    assert client.cache.get_or_compute(key, lambda: pytest.fail("computed on a hit")) == b"expensive"
    assert client.cache.get_or_compute(f"{name}:str", lambda: "text") == b"text"


def test_get_or_compute_failure_is_callback_failed(client: syros.Client, name: str) -> None:
    class Boom(Exception):
        pass

    def compute() -> bytes:
        raise Boom("no value today")

    with pytest.raises(syros.CallbackFailed) as caught:
        client.cache.get_or_compute(f"{name}:fail", compute)
    err = caught.value
    assert err.kind == "callback_failed" and not err.retryable
    assert "no value today" in err.message
    assert isinstance(err.__cause__, Boom)
    assert client.cache.get(f"{name}:fail") is None

    with pytest.raises(syros.CallbackFailed) as caught:
        client.cache.get_or_compute(f"{name}:wrong-type", lambda: 42)  # type: ignore[arg-type,return-value]
    assert isinstance(caught.value.__cause__, TypeError)


def test_async_cache(address: str, name: str) -> None:
    async def main() -> None:
        client = syros.AsyncClient([address], **client_options())
        cache = client.cache
        assert await cache.get(f"{name}:x") is None
        expires = await cache.set(f"{name}:x", "value", ttl=30.0, tags=[f"{name}-tag"])
        assert expires is not None
        assert await cache.get(f"{name}:x") == b"value"
        entry = await cache.get_entry(f"{name}:x")
        assert entry is not None and entry.tags == [f"{name}-tag"]
        assert await cache.invalidate_tag(f"{name}-tag") == 1
        assert await cache.get(f"{name}:x") is None
        await cache.set(f"{name}:y", b"y")
        assert await cache.delete(f"{name}:y") is True
        assert await cache.delete(f"{name}:y") is False

        calls = 0

        async def compute() -> bytes:
            nonlocal calls
            calls += 1
            await asyncio.sleep(0.2)
            return b"from-coroutine"

        values = await asyncio.gather(*(cache.get_or_compute(f"{name}:flight", compute, ttl=30.0) for _ in range(16)))
        assert values == [b"from-coroutine"] * 16 and calls == 1
        # A plain function works on the async client too.
        assert await cache.get_or_compute(f"{name}:plain", lambda: b"plain") == b"plain"

        async def failing() -> bytes:
            raise KeyError("missing")

        with pytest.raises(syros.CallbackFailed) as caught:
            await cache.get_or_compute(f"{name}:failing", failing)
        assert isinstance(caught.value.__cause__, KeyError)

    run_async(main())
