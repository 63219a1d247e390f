"""Connecting, client information, failover between addresses."""

from __future__ import annotations

import syros
from conftest import client_options, free_port, run_async


def test_client_information(client: syros.Client, address: str) -> None:
    assert client.current_address == address
    assert client.owner.startswith("syros-")
    client.check_health()
    before = client.stats()
    assert set(before) == {"calls", "attempts", "retries", "failovers"}
    client.cache.get("stats-probe")
    assert client.stats()["calls"] == before["calls"] + 1
    assert "Client(" in repr(client)
    with syros.Client(address, owner="named-owner", **client_options()) as named:
        assert named.owner == "named-owner"
        with named.lock("owner-probe", ttl=5.0) as lease:
            assert lease.owner == "named-owner"


def test_fails_over_to_the_next_address(address: str) -> None:
    dead = f"127.0.0.1:{free_port()}"
    client = syros.Client([dead, address], **client_options())
    client.cache.set("failover-probe", b"1")
    assert client.current_address == address
    assert client.stats()["failovers"] >= 1


def test_async_client_information(address: str) -> None:
    async def main() -> None:
        client = syros.AsyncClient([address], **client_options())
        try:
            client.owner
        except syros.Unavailable:
            pass  # still connecting: fine either way
        async with client:
            assert client.current_address == address
            assert client.owner.startswith("syros-")
            await client.check_health()
            assert client.stats()["calls"] >= 1
        assert (await client.connect()) is client

    run_async(main())
