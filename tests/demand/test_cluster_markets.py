"""The listed markets on a Redis Cluster: the set and its temporary key share a slot (hash
tag), and nothing is sent in a cross-slot MULTI, so a poller can publish them there."""

from __future__ import annotations

from pathlib import Path

import pytest

from demand import FleetState
from tests.tiers._cluster import start_cluster, stop_cluster

pytestmark = pytest.mark.integration


async def test_listed_markets_are_published_and_replaced_on_a_cluster(tmp_path: Path) -> None:
    ports, procs = start_cluster(tmp_path)
    try:
        fleet = FleetState.from_url(f"redis+cluster://127.0.0.1:{ports[0]}/0", "t-markets")
        try:
            assert await fleet.publish_markets("binance", ["BTC/USDT", "ETH/USDT"], 7.0) == 2
            assert await fleet.listed("binance", fresh=True) == {"BTC/USDT", "ETH/USDT"}
            assert await fleet.requests_per_s("binance") == 7.0
            # a second publish replaces the set (a delisted market leaves it)
            assert await fleet.publish_markets("binance", ["ETH/USDT"], 7.0) == 1
            assert await fleet.listed("binance", fresh=True) == {"ETH/USDT"}
        finally:
            await fleet.close()
    finally:
        stop_cluster(procs)
