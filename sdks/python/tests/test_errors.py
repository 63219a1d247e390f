"""Errors arrive as the documented classes, one per kind of the client core."""

from __future__ import annotations

import pickle

import pytest

import syros
from syros import _syros, errors
from conftest import client_options, free_port, run_async


def test_one_class_per_core_error_kind() -> None:
    kinds = _syros.error_kinds()
    assert len(kinds) >= 14
    for code, class_name, retryable in kinds:
        cls = getattr(syros, class_name)
        assert issubclass(cls, syros.SyrosError) and cls is getattr(errors, class_name)
        assert cls.code == code
        err = cls("boom")
        assert err.kind == code and err.retryable is retryable and err.details == {}
        assert class_name in errors.__all__
    assert {name for _, name, _ in kinds} == set(errors.__all__) - {"SyrosError"}
    for name in ("LockNotHeld", "LockTimeout", "VersionConflict", "Unavailable", "InvalidArgument", "NotFound", "PayloadTooLarge", "DeadlineExceeded"):
        assert name in {n for _, n, _ in kinds}


def test_errors_pickle_and_print() -> None:
    err = syros.LockTimeout("k is held", "lock_timeout", False, {"holder_owner": "w1"})
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is syros.LockTimeout
    assert (again.message, again.kind, again.retryable, again.details) == ("k is held", "lock_timeout", False, {"holder_owner": "w1"})
    assert str(err) == "k is held"
    assert "LockTimeout" in repr(err)


def test_server_errors_map_to_classes(client: syros.Client, name: str) -> None:
    with pytest.raises(syros.InvalidArgument) as caught:
        client.cache.set("", b"x")
    err = caught.value
    assert err.kind == "invalid_argument" and not err.retryable and err.message
    assert err.details["address"] == client.current_address and "grpc_code" in err.details

    with pytest.raises(syros.NotFound):
        client.sagas.cancel("no-such-saga")
    with pytest.raises(syros.PayloadTooLarge) as caught:
        client.events.append(f"{name}-big", syros.Event("Big", "x" * (1024 * 1024 + 10)))
    assert caught.value.kind == "payload_too_large"
    with pytest.raises(syros.VersionConflict):
        client.events.append(f"{name}-s", syros.Event("A", {}), expected_version=3)
    lease = client.lock(f"{name}:k", ttl=5.0)
    with pytest.raises(syros.LockTimeout):
        syros.Client([client.current_address], owner="someone-else", **client_options()).lock(f"{name}:k", wait=0.1)
    client.force_release(f"{name}:k")
    assert lease.wait_lost(10)
    with pytest.raises(syros.LockNotHeld) as caught:
        lease.release()
    assert caught.value.kind == "lock_not_held"
    with pytest.raises(syros.SyrosError):
        lease.renew()


def test_unreachable_server_is_unavailable() -> None:
    dead = f"127.0.0.1:{free_port()}"
    quick = syros.RetryPolicy(initial_interval=0.01, max_interval=0.05, max_attempts=3, deadline=5.0)
    with pytest.raises(syros.Unavailable) as caught:
        syros.Client([dead], retry=quick)
    err = caught.value
    assert err.kind == "unavailable" and err.retryable is True
    assert err.details["attempts"] == "3"

    async def main() -> None:
        client = syros.AsyncClient([dead], retry=quick)
        with pytest.raises(syros.Unavailable):
            await client.connect()
        with pytest.raises(syros.Unavailable):
            await client.cache.get("k")

    run_async(main())


def test_bad_client_options_are_invalid() -> None:
    with pytest.raises(syros.InvalidArgument):
        syros.Client([])
    with pytest.raises(syros.InvalidArgument):
        syros.Client(["no-port"])
    with pytest.raises(syros.InvalidArgument):
        syros.Client(["127.0.0.1:1"], call_timeout=-1)
    with pytest.raises(syros.InvalidArgument):
        syros.Client(["127.0.0.1:1"], auth_token=42)  # type: ignore[arg-type]


def test_async_errors(address: str, name: str) -> None:
    async def main() -> None:
        client = syros.AsyncClient([address], **client_options())
        with pytest.raises(syros.InvalidArgument):
            await client.cache.set("", b"x")
        with pytest.raises(syros.NotFound):
            await client.sagas.get("nope")
        await client.events.append(f"{name}-a", syros.Event("A", {}))
        with pytest.raises(syros.VersionConflict) as caught:
            await client.events.append(f"{name}-a", syros.Event("A", {}), expected_version=syros.NO_STREAM)
        assert caught.value.details["address"] == address
        async with client.lock(f"{name}:k", ttl=5.0):
            with pytest.raises(syros.LockTimeout):
                other = syros.AsyncClient([address], owner="other", **client_options())
                await other.lock(f"{name}:k", ttl=5.0, wait=0.1)

    run_async(main())


def test_auth_token_sources(address: str) -> None:
    calls = []

    def token() -> str:
        calls.append(1)
        return "secret"

    client = syros.Client([address], auth_token=token, **client_options())
    client.cache.set("auth-probe", b"1")
    assert calls, "the token function is called for calls"
    syros.Client([address], auth_token="fixed", **client_options()).check_health()
