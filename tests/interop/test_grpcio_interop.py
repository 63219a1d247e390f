"""A stock grpcio client, generated only from proto/*.proto, against the real syros server.

Every test opens its own grpc.insecure_channel (the `channel` fixture) and uses names (keys,
streams, tags) unique to the test, so the tests share one server without seeing each other.
"""

from __future__ import annotations

import json
import threading
import time
import uuid

import grpc
import pytest

# Per-call deadline, so that a server that never answers fails the test instead of hanging it.
T = 10.0


def unique(kind: str) -> str:
    return f"interop/{kind}/{uuid.uuid4().hex}"


def now_ms() -> int:
    return int(time.time() * 1000)


def rpc_error(fn, *args, **kwargs) -> grpc.RpcError:
    """Call `fn` and return the grpc.RpcError it raises (fail if it returns normally)."""
    with pytest.raises(grpc.RpcError) as info:
        fn(*args, timeout=T, **kwargs)
    return info.value


# --------------------------------------------------------------------------------------------
# Health
# --------------------------------------------------------------------------------------------


def test_health_check_serving(channel, protos):
    h = protos.health_pb2
    stub = protos.health_pb2_grpc.HealthStub(channel)
    resp = stub.Check(h.HealthCheckRequest(service=""), timeout=T)
    assert resp.status == h.HealthCheckResponse.SERVING


# --------------------------------------------------------------------------------------------
# Locks
# --------------------------------------------------------------------------------------------


@pytest.fixture
def locks(channel, protos):
    return protos.locks_pb2_grpc.LockServiceStub(channel)


def test_lock_lifecycle(locks, protos):
    L = protos.locks_pb2
    prefix = unique("lock") + "/"
    key = prefix + "resource"

    before = now_ms()
    first = locks.Acquire(L.AcquireLockRequest(key=key, owner="alice", ttl_ms=5000, wait_timeout_ms=0), timeout=T)
    assert first.acquired
    assert first.HasField("lease")
    lease = first.lease
    assert lease.lease_id
    assert lease.key == key
    assert lease.owner == "alice"
    assert lease.fencing_token > 0
    assert lease.expires_at_ms > lease.acquired_at_ms
    # Units: ms since the epoch on the server's clock (same machine) and a 5000 ms ttl.
    assert before - 5_000 <= lease.acquired_at_ms <= now_ms() + 5_000
    assert 4_000 <= lease.expires_at_ms - lease.acquired_at_ms <= 6_000

    status = locks.Status(L.LockStatusRequest(key=key), timeout=T)
    assert status.held
    assert status.lease.lease_id == lease.lease_id
    assert status.lease.owner == "alice"
    assert status.lease.fencing_token == lease.fencing_token

    # Held by alice: bob's try-once acquire is a normal "not acquired" answer naming the holder.
    second = locks.Acquire(L.AcquireLockRequest(key=key, owner="bob", ttl_ms=5000, wait_timeout_ms=0), timeout=T)
    assert not second.acquired
    assert second.HasField("holder")
    assert second.holder.lease_id == lease.lease_id
    assert second.holder.owner == "alice"
    assert second.lease.lease_id == ""  # no lease for bob

    renewed = locks.Renew(L.RenewLockRequest(lease_id=lease.lease_id, ttl_ms=10_000), timeout=T)
    assert renewed.lease.lease_id == lease.lease_id
    assert renewed.lease.key == key
    assert renewed.lease.expires_at_ms > lease.expires_at_ms
    assert renewed.lease.fencing_token == lease.fencing_token  # renewing is not a new grant

    listed = locks.List(L.ListLocksRequest(prefix=prefix), timeout=T)
    assert [l.key for l in listed.leases] == [key]
    assert listed.leases[0].lease_id == lease.lease_id

    released = locks.Release(L.ReleaseLockRequest(lease_id=lease.lease_id), timeout=T)
    assert released.key == key

    status = locks.Status(L.LockStatusRequest(key=key), timeout=T)
    assert not status.held
    assert status.lease.lease_id == ""
    assert list(locks.List(L.ListLocksRequest(prefix=prefix), timeout=T).leases) == []

    err = rpc_error(locks.Release, L.ReleaseLockRequest(lease_id=lease.lease_id))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION, err.details()

    third = locks.Acquire(L.AcquireLockRequest(key=key, owner="carol", ttl_ms=5000, wait_timeout_ms=0), timeout=T)
    assert third.acquired
    assert third.lease.lease_id != lease.lease_id
    assert third.lease.fencing_token > lease.fencing_token
    locks.Release(L.ReleaseLockRequest(lease_id=third.lease.lease_id), timeout=T)


def test_list_is_prefix_filtered_and_ordered_by_key(locks, protos):
    L = protos.locks_pb2
    prefix = unique("list") + "/"
    names = ["b", "a", "c"]
    leases = []
    for name in names:
        r = locks.Acquire(L.AcquireLockRequest(key=prefix + name, owner="lister", ttl_ms=5000), timeout=T)
        assert r.acquired
        leases.append(r.lease)
    # A key that shares the prefix's stem but not the prefix itself.
    outside = locks.Acquire(L.AcquireLockRequest(key=prefix[:-1] + "x", owner="lister", ttl_ms=5000), timeout=T)
    assert outside.acquired
    leases.append(outside.lease)
    try:
        listed = locks.List(L.ListLocksRequest(prefix=prefix), timeout=T)
        assert [l.key for l in listed.leases] == [prefix + n for n in sorted(names)]
        limited = locks.List(L.ListLocksRequest(prefix=prefix, limit=2), timeout=T)
        assert [l.key for l in limited.leases] == [prefix + "a", prefix + "b"]
    finally:
        for lease in leases:
            locks.Release(L.ReleaseLockRequest(lease_id=lease.lease_id), timeout=T)


def test_acquire_waits_for_release(locks, protos):
    L = protos.locks_pb2
    key = unique("wait")
    holder = locks.Acquire(L.AcquireLockRequest(key=key, owner="holder", ttl_ms=5000, wait_timeout_ms=0), timeout=T)
    assert holder.acquired

    result: dict = {}

    def waiter():
        start = time.monotonic()
        try:
            result["response"] = locks.Acquire(
                L.AcquireLockRequest(key=key, owner="waiter", ttl_ms=5000, wait_timeout_ms=5000), timeout=15
            )
        except BaseException as e:  # reported by the main thread
            result["error"] = e
        result["elapsed"] = time.monotonic() - start

    thread = threading.Thread(target=waiter, daemon=True)
    thread.start()
    time.sleep(0.2)
    assert thread.is_alive(), f"the waiting Acquire returned before the holder released: {result}"
    released_at = time.monotonic()
    locks.Release(L.ReleaseLockRequest(lease_id=holder.lease.lease_id), timeout=T)
    thread.join(timeout=15)
    assert not thread.is_alive(), "the waiting Acquire never returned"
    assert "error" not in result, result.get("error")

    got = result["response"]
    assert got.acquired, f"waiter did not get the lock: {got}"
    assert got.lease.owner == "waiter"
    assert got.lease.fencing_token > holder.lease.fencing_token
    # Woken by the release, not by the holder's ttl running out (5 s) nor the wait timeout (5 s).
    assert time.monotonic() - released_at < 3.0, f"waiter took {result['elapsed']:.2f} s"
    locks.Release(L.ReleaseLockRequest(lease_id=got.lease.lease_id), timeout=T)


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"key": ""}, id="empty-key"),
        pytest.param({"ttl_ms": 0}, id="ttl-0"),
        pytest.param({"key": "k" * 10_000}, id="key-10000-chars"),
        pytest.param({"key": "x" * 513}, id="key-513-bytes"),
        pytest.param({"key": "bad\nkey"}, id="key-control-char"),
        pytest.param({"owner": ""}, id="empty-owner"),
        pytest.param({"ttl_ms": 99}, id="ttl-below-100"),
        pytest.param({"ttl_ms": 86_400_001}, id="ttl-above-1-day"),
        pytest.param({"wait_timeout_ms": 300_001}, id="wait-above-5-min"),
    ],
)
def test_acquire_rejects_bad_input(locks, protos, overrides):
    L = protos.locks_pb2
    fields = dict(key=unique("bad"), owner="someone", ttl_ms=5000, wait_timeout_ms=0)
    fields.update(overrides)
    err = rpc_error(locks.Acquire, L.AcquireLockRequest(**fields))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()


def test_force_release(locks, protos):
    L = protos.locks_pb2
    key = unique("force")
    acquired = locks.Acquire(L.AcquireLockRequest(key=key, owner="victim", ttl_ms=5000), timeout=T)
    assert acquired.acquired

    forced = locks.ForceRelease(L.ForceReleaseLockRequest(key=key), timeout=T)
    assert forced.released
    assert forced.lease.lease_id == acquired.lease.lease_id
    assert not locks.Status(L.LockStatusRequest(key=key), timeout=T).held

    err = rpc_error(locks.Renew, L.RenewLockRequest(lease_id=acquired.lease.lease_id, ttl_ms=5000))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION, err.details()

    again = locks.ForceRelease(L.ForceReleaseLockRequest(key=key), timeout=T)
    assert not again.released


# --------------------------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------------------------


@pytest.fixture
def cache(channel, protos):
    return protos.cache_pb2_grpc.CacheServiceStub(channel)


def test_cache_set_get_invalidate_delete(cache, protos):
    C = protos.cache_pb2
    base = unique("cache")
    k1, k2, k3 = base + "/one", base + "/two", base + "/three"
    tag = base + "/t1"  # tags are global; a unique one keeps `removed` exact

    set1 = cache.Set(C.CacheSetRequest(key=k1, value=b"value", ttl_ms=0, tags=[tag]), timeout=T)
    assert set1.expires_at_ms == 0

    got = cache.Get(C.CacheGetRequest(key=k1), timeout=T)
    assert got.found
    assert got.value == b"value"
    assert list(got.tags) == [tag]
    assert got.expires_at_ms == 0

    cache.Set(C.CacheSetRequest(key=k2, value=b"\x00\xffbinary", ttl_ms=0, tags=[tag, base + "/t2"]), timeout=T)
    got2 = cache.Get(C.CacheGetRequest(key=k2), timeout=T)
    assert got2.found and got2.value == b"\x00\xffbinary"
    assert sorted(got2.tags) == sorted([tag, base + "/t2"])

    removed = cache.InvalidateTag(C.CacheInvalidateTagRequest(tag=tag), timeout=T)
    assert removed.removed == 2
    for key in (k1, k2):
        gone = cache.Get(C.CacheGetRequest(key=key), timeout=T)
        assert not gone.found
        assert gone.value == b""
    assert cache.InvalidateTag(C.CacheInvalidateTagRequest(tag=tag), timeout=T).removed == 0

    cache.Set(C.CacheSetRequest(key=k3, value=b"x"), timeout=T)
    assert cache.Delete(C.CacheDeleteRequest(key=k3), timeout=T).deleted is True
    assert cache.Delete(C.CacheDeleteRequest(key=k3), timeout=T).deleted is False
    assert not cache.Get(C.CacheGetRequest(key=k3), timeout=T).found
    assert cache.Delete(C.CacheDeleteRequest(key=base + "/never-set"), timeout=T).deleted is False


def test_cache_set_replaces_value_and_tags(cache, protos):
    C = protos.cache_pb2
    key, old_tag, new_tag = unique("replace"), unique("old-tag"), unique("new-tag")
    cache.Set(C.CacheSetRequest(key=key, value=b"v1", tags=[old_tag]), timeout=T)
    cache.Set(C.CacheSetRequest(key=key, value=b"v2", tags=[new_tag]), timeout=T)
    got = cache.Get(C.CacheGetRequest(key=key), timeout=T)
    assert got.found and got.value == b"v2" and list(got.tags) == [new_tag]
    assert cache.InvalidateTag(C.CacheInvalidateTagRequest(tag=old_tag), timeout=T).removed == 0
    assert cache.Get(C.CacheGetRequest(key=key), timeout=T).found
    assert cache.InvalidateTag(C.CacheInvalidateTagRequest(tag=new_tag), timeout=T).removed == 1


def test_cache_ttl_expires(cache, protos):
    C = protos.cache_pb2
    key = unique("ttl")
    before = now_ms()
    resp = cache.Set(C.CacheSetRequest(key=key, value=b"short-lived", ttl_ms=300), timeout=T)
    # ms since the epoch, about 300 ms from now.
    assert before + 300 - 1_000 <= resp.expires_at_ms <= now_ms() + 300 + 1_000
    got = cache.Get(C.CacheGetRequest(key=key), timeout=T)
    assert got.found and got.expires_at_ms == resp.expires_at_ms
    time.sleep(0.6)
    assert not cache.Get(C.CacheGetRequest(key=key), timeout=T).found


# --------------------------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------------------------


@pytest.fixture
def events(channel, protos):
    return protos.events_pb2_grpc.EventServiceStub(channel)


def _event(E, n: int) -> "object":
    return E.EventData(event_type="Counted", data_json=json.dumps({"n": n, "text": f"event {n}"}))


def _read_stream(events, E, stream: str, **kwargs):
    return events.ReadStream(E.ReadStreamRequest(stream=stream, **kwargs), timeout=T)


def test_event_stream(events, protos):
    E = protos.events_pb2
    stream = unique("stream")

    missing = _read_stream(events, E, stream)
    assert not missing.exists and missing.last == 0 and list(missing.events) == []

    first = events.Append(
        E.AppendEventsRequest(stream=stream, events=[_event(E, 0), _event(E, 1)],
                              expected_version=E.ExpectedVersion(no_stream=True)),
        timeout=T,
    )
    assert first.last_version == 1
    assert first.first_position >= 1
    assert first.last_position == first.first_position + 1

    # Optimistic concurrency: the stream is at version 1, not 0.
    err = rpc_error(events.Append, E.AppendEventsRequest(
        stream=stream, events=[_event(E, 99)], expected_version=E.ExpectedVersion(exact=0)))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION, err.details()
    err = rpc_error(events.Append, E.AppendEventsRequest(
        stream=stream, events=[_event(E, 99)], expected_version=E.ExpectedVersion(no_stream=True)))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION, err.details()
    after_conflict = _read_stream(events, E, stream)
    assert [e.version for e in after_conflict.events] == [0, 1]
    assert after_conflict.exists and after_conflict.last == 1

    second = events.Append(
        E.AppendEventsRequest(stream=stream, events=[_event(E, 2)], expected_version=E.ExpectedVersion(exact=1)),
        timeout=T,
    )
    assert second.last_version == 2
    assert second.first_position == second.last_position > first.last_position

    forwards = _read_stream(events, E, stream, from_version=0, direction=E.FORWARDS)
    assert forwards.exists and forwards.last == 2
    assert [e.version for e in forwards.events] == [0, 1, 2]
    for n, e in enumerate(forwards.events):
        assert e.stream == stream
        assert e.event_type == "Counted"
        assert json.loads(e.data_json) == {"n": n, "text": f"event {n}"}
        assert e.metadata_json == ""
        assert e.event_id  # the server makes one when the writer leaves it empty
        assert abs(e.created_at_ms - now_ms()) < 60_000
    assert [e.global_position for e in forwards.events] == [
        first.first_position, first.last_position, second.last_position]
    assert len({e.event_id for e in forwards.events}) == 3

    backwards = _read_stream(events, E, stream, direction=E.BACKWARDS, from_end=True)
    assert [e.version for e in backwards.events] == [2, 1, 0]
    assert [json.loads(e.data_json)["n"] for e in backwards.events] == [2, 1, 0]

    from_one = _read_stream(events, E, stream, from_version=1, direction=E.FORWARDS, limit=1)
    assert [e.version for e in from_one.events] == [1]

    everything = events.ReadAll(
        E.ReadAllRequest(from_position=first.first_position, direction=E.FORWARDS, limit=1000), timeout=T)
    assert everything.events[0].global_position == first.first_position
    ours = [e for e in everything.events if e.stream == stream]
    assert [e.version for e in ours] == [0, 1, 2]
    positions = [e.global_position for e in everything.events]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    assert everything.last >= second.last_position

    # Not JSON: rejected as a whole, with the expected version right so only the data is at fault.
    err = rpc_error(events.Append, E.AppendEventsRequest(
        stream=stream, events=[E.EventData(event_type="Broken", data_json="{not json")],
        expected_version=E.ExpectedVersion(exact=2)))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    # All or none: one bad event in a batch rejects the good one too.
    err = rpc_error(events.Append, E.AppendEventsRequest(
        stream=stream, events=[_event(E, 3), E.EventData(event_type="Broken", data_json="{not json")],
        expected_version=E.ExpectedVersion(exact=2)))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    unchanged = _read_stream(events, E, stream)
    assert [e.version for e in unchanged.events] == [0, 1, 2] and unchanged.last == 2


def test_subscribe_catches_up_then_goes_live(events, protos):
    E = protos.events_pb2
    stream = unique("subscribe")
    events.Append(
        E.AppendEventsRequest(stream=stream, events=[_event(E, n) for n in range(3)],
                              expected_version=E.ExpectedVersion(no_stream=True)),
        timeout=T,
    )

    # `from` is a Python keyword, hence the ** spelling.
    call = events.Subscribe(E.SubscribeRequest(stream=stream, start_at=0), timeout=30)
    received = []
    caught_up = threading.Event()
    done = threading.Event()
    outcome: dict = {}

    def consume():
        try:
            for event in call:
                received.append(event)
                if len(received) == 3:
                    caught_up.set()
                if len(received) >= 4:
                    call.cancel()
                    break
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.CANCELLED:
                outcome["error"] = e
        except BaseException as e:
            outcome["error"] = e
        finally:
            caught_up.set()
            done.set()

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    try:
        assert caught_up.wait(15), "subscription did not deliver the 3 existing events"
        assert "error" not in outcome, outcome.get("error")
        assert [e.version for e in received] == [0, 1, 2]

        live = events.Append(
            E.AppendEventsRequest(stream=stream, events=[_event(E, 3)], expected_version=E.ExpectedVersion(exact=2)),
            timeout=T,
        )
        assert live.last_version == 3
        assert done.wait(15), f"live event not delivered; got versions {[e.version for e in received]}"
    finally:
        call.cancel()
        thread.join(timeout=5)

    assert "error" not in outcome, outcome.get("error")
    assert [e.version for e in received] == [0, 1, 2, 3]
    assert [json.loads(e.data_json)["n"] for e in received] == [0, 1, 2, 3]
    assert all(e.stream == stream for e in received)
    assert received[3].global_position == live.last_position
    positions = [e.global_position for e in received]
    assert positions == sorted(positions) and len(set(positions)) == 4
