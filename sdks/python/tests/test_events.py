"""The event store, sync and asyncio: optimistic appends, reads, subscriptions."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

import syros
from conftest import Server, client_options, run_async


def test_append_and_read(client: syros.Client, name: str) -> None:
    events = client.events
    stream = f"{name}-orders"
    first = events.append(stream, syros.Event("OrderPlaced", {"order_id": 42, "total": 9.5}), expected_version=syros.NO_STREAM)
    assert first.last_version == 0 and first.first_position == first.last_position
    second = events.append(
        stream,
        [
            syros.Event("ItemAdded", {"sku": "a"}, metadata={"by": "test"}, event_id=f"{name}-e1"),
            {"type": "ItemAdded", "data": {"sku": "b"}},
        ],
        expected_version=0,
    )
    assert second.last_version == 2 and second.last_position == second.first_position + 1
    assert events.append(stream, {"type": "Noted"}).last_version == 3  # ANY by default

    read = events.read(stream)
    assert read.exists and read.last == 3 and len(read) == 4
    assert [e.version for e in read.events] == [0, 1, 2, 3]
    e0, e1 = read.events[0], read.events[1]
    assert e0.type == e0.event_type == "OrderPlaced" and e0.data == {"order_id": 42, "total": 9.5}
    assert e0.stream == stream and e0.metadata is None and e0.created_at_ms > 0
    assert e1.event_id == f"{name}-e1" and e1.metadata == {"by": "test"}
    assert read.events[3].data == {}

    assert [e.version for e in events.read(stream, 2).events] == [2, 3]
    assert [e.version for e in events.read(stream, backwards=True, limit=2).events] == [3, 2]
    assert [e.version for e in events.read(stream, 1, backwards=True).events] == [1, 0]
    assert [e.version for e in events.read(stream, 0, limit=1).events] == [0]

    missing = events.read(f"{name}-missing")
    assert not missing.exists and missing.events == []

    everything = events.read_all(e0.global_position, limit=4)
    assert [e.global_position for e in everything.events][:1] == [e0.global_position]
    newest = events.read_all(backwards=True, limit=1)
    assert newest.events[0].global_position == newest.last


def test_version_conflicts(client: syros.Client, name: str) -> None:
    stream = f"{name}-acct"
    client.events.append(stream, syros.Event("Opened", {}), expected_version=syros.NO_STREAM)
    with pytest.raises(syros.VersionConflict) as caught:
        client.events.append(stream, syros.Event("Opened", {}), expected_version=syros.NO_STREAM)
    assert caught.value.kind == "version_conflict" and not caught.value.retryable
    with pytest.raises(syros.VersionConflict):
        client.events.append(stream, syros.Event("Deposited", {"amount": 1}), expected_version=5)
    assert client.events.append(stream, syros.Event("Deposited", {"amount": 1}), expected_version=0).last_version == 1
    with pytest.raises(syros.InvalidArgument):
        client.events.append(stream, syros.Event("X", {}), expected_version="sometimes")
    with pytest.raises(TypeError):
        client.events.append(stream, [42])  # type: ignore[list-item]
    with pytest.raises(syros.InvalidArgument):
        client.events.append("", syros.Event("X", {}))


def test_subscribe_catch_up_then_live(client: syros.Client, name: str) -> None:
    stream = f"{name}-live"
    client.events.append(stream, [syros.Event("A", {"n": 0}), syros.Event("A", {"n": 1})])
    with client.events.subscribe(stream) as sub:
        assert [sub.next(5).data["n"] for _ in range(2)] == [0, 1]
        assert sub.next(timeout=0.2) is None  # nothing new yet

        def later() -> None:
            time.sleep(0.2)
            client.events.append(stream, syros.Event("A", {"n": 2}))

        threading.Thread(target=later).start()
        event = next(iter(sub))
        assert event.data == {"n": 2} and event.version == 2
    assert sub.closed
    assert sub.next(0.1) is None

    from_end = client.events.subscribe(stream, syros.END)
    client.events.append(stream, syros.Event("B", {"n": 3}))
    assert from_end.next(5).version == 3
    from_end.close()

    from_version = client.events.subscribe(stream, 1)
    assert from_version.next(5).version == 1
    from_version.close()

    everything = client.events.subscribe_all(syros.END)
    client.events.append(f"{name}-other", syros.Event("C", {}))
    got = everything.next(5)
    assert got.stream == f"{name}-other"
    everything.close()


def test_iterating_a_subscription_ends_when_closed(client: syros.Client, name: str) -> None:
    stream = f"{name}-iter"
    client.events.append(stream, [syros.Event("A", {"n": i}) for i in range(3)])
    sub = client.events.subscribe(stream)
    seen = []
    for event in sub:
        seen.append(event.data["n"])
        if len(seen) == 3:
            threading.Timer(0.2, sub.close).start()
    assert seen == [0, 1, 2]


def test_subscription_resumes_after_server_restart(dedicated_server: Server) -> None:
    client = syros.Client([dedicated_server.address], **client_options())
    client.events.append("restart-stream", syros.Event("A", {"n": 0}))
    sub = client.events.subscribe("restart-stream")
    assert sub.next(5).data == {"n": 0}
    dedicated_server.kill()
    dedicated_server.start()
    client.events.append("restart-stream", syros.Event("A", {"n": 1}))
    event = sub.next(20)
    assert event is not None and event.data == {"n": 1} and event.version == 1
    sub.close()


def test_async_events(address: str, name: str) -> None:
    async def main() -> None:
        client = await syros.AsyncClient([address], **client_options()).connect()
        events = client.events
        stream = f"{name}-async"
        result = await events.append(stream, [syros.Event("A", {"n": 0}), syros.Event("A", {"n": 1})], expected_version=syros.NO_STREAM)
        assert result.last_version == 1
        with pytest.raises(syros.VersionConflict):
            await events.append(stream, syros.Event("A", {}), expected_version=0)
        read = await events.read(stream)
        assert [e.data["n"] for e in read.events] == [0, 1]
        assert [e.version for e in (await events.read(stream, backwards=True)).events] == [1, 0]
        assert (await events.read_all(backwards=True, limit=1)).events[0].stream == stream
        assert len((await events.read_all(0, limit=2)).events) == 2

        sub = await events.subscribe(stream)
        seen = []
        async with sub:
            async for event in sub:
                seen.append(event.data["n"])
                if len(seen) == 2:
                    await events.append(stream, syros.Event("A", {"n": 2}))
                if len(seen) == 3:
                    break
        assert seen == [0, 1, 2]
        assert sub.closed

        live = await events.subscribe_all(syros.END)
        assert await live.next(timeout=0.2) is None
        await events.append(f"{name}-async-2", syros.Event("B", {"x": True}))
        event = await live.next(timeout=5)
        assert event is not None and event.data == {"x": True}

        # A pending next() returns None when the subscription is closed.
        pending = asyncio.ensure_future(live.next())
        await asyncio.sleep(0.1)
        live.close()
        assert await asyncio.wait_for(pending, 5) is None

    run_async(main())
