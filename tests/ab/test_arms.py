"""Both arms and the runner in-process, on the real Memcached/Redis and ccxt against the
simulator (no fleet: the multitier arm finds its keys cold, or written by the test)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from ab import Assignment, Item, Load, Runner, Zipf, universe
from ab._arms import Arm, DirectArm, MultiTierArm
from ab._origin import Origin
from sim import RunningSimulator, make_fault, running_simulator
from tests.conftest import StackURLs
from tiers import DirectCacheAdapter, MultiTierCache

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture(loop_scope="function")
async def sim() -> AsyncIterator[RunningSimulator]:
    async with running_simulator(seed=7, symbols=4, latency_s=0.01) as running:
        yield running


@pytest_asyncio.fixture(loop_scope="function")
async def both(
    sim: RunningSimulator, stack_urls: StackURLs, namespace: str
) -> AsyncIterator[dict[str, Arm]]:
    """Both arms against the test's own simulator, under the test's prefix; closed after."""
    made = await arms(sim, stack_urls, namespace.rstrip("."))
    yield made
    for arm in made.values():
        await arm.close()


async def arms(sim: RunningSimulator, stack_urls: StackURLs, prefix: str) -> dict[str, Arm]:
    origins = {"direct": Origin(sim.url), "multitier": Origin(sim.url)}
    for origin in origins.values():
        await origin.start()
    return {
        "direct": DirectArm(
            DirectCacheAdapter.from_urls(stack_urls.memcached_url, stack_urls.redis_url),
            origins["direct"], f"{prefix}d",
        ),
        "multitier": MultiTierArm(
            MultiTierCache.from_urls("memory://", stack_urls.memcached_url, stack_urls.redis_url),
            origins["multitier"], f"{prefix}m",
        ),
    }  # fmt: skip


async def test_direct_reads_through_once_then_answers_from_its_l1(both: dict[str, Arm]) -> None:
    direct = both["direct"]
    assert isinstance(direct, DirectArm)
    ticker = Item("tickers", "binance", "BTC/USDT")
    tier, as_of = await direct.read(ticker)
    assert tier == "origin" and abs(time.time() - as_of / 1000) < 5
    assert (await direct.read(ticker))[0] == "memory"
    assert direct.origin.requests == 1
    assert (await direct.read(Item("analysis", "okx", "ETH/USDT")))[0] == "origin"
    assert (await direct.read(Item("overview", "all")))[0] == "origin"
    assert direct.origin.requests == 1 + 2 + 2  # ticker+candles, both exchanges' tickers
    hit = await direct.cache.get(Item("analysis", "okx", "ETH/USDT").key(direct.prefix))
    assert hit is not None and hit.value["rsi"] is not None and hit.value["exchange"] == "okx"


async def test_multitier_serves_what_the_fleet_wrote_and_never_writes_a_miss_back(
    both: dict[str, Arm], stack_urls: StackURLs
) -> None:
    multi = both["multitier"]
    assert isinstance(multi, MultiTierArm)
    cold = Item("tickers", "okx", "BTC/USDT")
    assert (await multi.read(cold))[0] == "origin"
    assert (await multi.read(cold))[0] == "origin"  # not written back: still cold
    warm = Item("tickers", "binance", "BTC/USDT")
    writer = MultiTierCache.from_urls(stack_urls.memcached_url, stack_urls.redis_url)
    now = int(time.time() * 1000)
    await writer.set(warm.key(multi.prefix), {"last": 1.0}, data_type="tickers", as_of=now)
    assert (await multi.read(warm)) == ("memcached", now)
    assert (await multi.read(warm)) == ("memory", now)
    # older than the ticker's freshness class (15 s): served as the HTTP reader does,
    # refused by a strict reader and answered by the origin
    old = Item("tickers", "binance", "ETH/USDT")
    await writer.set(old.key(multi.prefix), {"last": 1.0}, data_type="tickers",
                     as_of=now - 20_000)  # fmt: skip
    assert (await multi.read(old))[0] in ("memcached", "memory")
    strict = MultiTierArm(MultiTierCache.from_urls(stack_urls.memcached_url),
                          multi.origin, multi.prefix, strict=True)  # fmt: skip
    assert (await strict.read(old))[0] == "origin"
    await strict.cache.close()
    await writer.close()


async def test_shadow_runs_every_read_on_both_arms_and_serves_only_direct(
    both: dict[str, Arm],
) -> None:
    load = Load(duration_s=1.5, rate=200, concurrency=4, seed=3,
                assignment=Assignment(shadow=True))  # fmt: skip
    reads = await Runner(both, Zipf(universe(["BTC/USDT", "ETH/USDT"]), 1.1), load).run()
    served = {arm for arm, s in zip(reads.arm, reads.served, strict=True) if s}
    shadowed = {arm for arm, s in zip(reads.arm, reads.served, strict=True) if not s}
    assert served == {"direct"} and shadowed == {"multitier"}
    assert reads.arm.count("direct") == reads.arm.count("multitier") > 100


async def test_a_failing_origin_is_a_counted_error_not_a_crash(
    both: dict[str, Arm], sim: RunningSimulator
) -> None:
    sim.simulator.faults.add(make_fault({"endpoint": "all", "kind": "503"}),
                             sim.simulator.now_ms())  # fmt: skip
    load = Load(duration_s=1.0, rate=50, concurrency=2, seed=1)
    reads = await Runner(both, Zipf(universe(["BTC/USDT"]), 1.1), load).run()
    assert len(reads) > 10 and set(reads.tier) == {"error"}
    assert set(reads.error) == {"OriginError"}


async def test_warm_up_reads_run_but_are_not_recorded(both: dict[str, Arm]) -> None:
    load = Load(duration_s=1.0, rate=200, concurrency=2, seed=1, warmup_s=2.0)
    runner = Runner(both, Zipf(universe(["BTC/USDT"]), 1.1), load)
    marks: list[int] = []

    async def measuring() -> None:
        marks.append(len(runner.reads))

    reads = await runner.run(None, measuring)
    assert len(marks) == 1 and marks[0] <= 2  # once, as the measurement started
    assert len(reads) > 100 and 0.0 <= min(reads.t) and max(reads.t) < 1.0
    # ~200 direct reads of 7 keys in the warm-up (the rarest has a 6 % share): every key
    # was loaded from the origin then, and none of those reads is recorded
    assert both["direct"].origin.requests >= 3
    # ... and the measurement's origin count leaves them out (it counted them before)
    assert runner.origin_requests()["direct"] == 0
    assert "origin" not in {t for a, t in zip(reads.arm, reads.tier, strict=True)
                            if a == "direct"}  # fmt: skip


async def test_one_process_per_arm_splits_the_same_seeded_sequence(both: dict[str, Arm]) -> None:
    """``only``: each arm's process runs exactly its own slots of the one sequence."""
    load = Load(duration_s=2.0, rate=40, concurrency=8, seed=5)  # no reader falls behind
    zipf = Zipf(universe(["BTC/USDT", "ETH/USDT"]), 1.1)
    full = await Runner(both, zipf, load).run()
    alone = {name: await Runner({name: both[name]}, zipf, load, only=name).run()
             for name in ("direct", "multitier")}  # fmt: skip
    for name, reads in alone.items():
        assert set(reads.arm) == {name}
        assert len(reads) == full.arm.count(name) > 25
        mine = sorted(zip(reads.t, reads.data_type, strict=True))
        theirs = sorted((t, d) for t, a, d in zip(full.t, full.arm, full.data_type,
                                                  strict=True) if a == name)  # fmt: skip
        assert [d for _, d in mine] == [d for _, d in theirs]  # the same reads, in order
