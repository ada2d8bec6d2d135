"""A second process for the coherence tests: writes one key ``--rate`` times a second
through all three tiers (announcing each write on the bus) and prints, per write, its
``as_of`` and the wall time (ms) the write call returned, as JSON lines.

    python -m tests.tiers._writer_process KEY CHANNEL MEMCACHED_URL REDIS_URL [--seconds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from tiers import MultiTierCache
from tiers._envelope import now_ms


async def main(args: argparse.Namespace) -> None:
    cache = MultiTierCache.from_urls(
        "memory://", args.memcached, args.redis, invalidation_channel=args.channel,
        timeout_s=1.0,
    )  # fmt: skip
    try:
        assert await cache.start(), "writer never subscribed"
        print(json.dumps({"ready": True}), flush=True)
        await asyncio.sleep(args.delay)
        loop = asyncio.get_running_loop()
        started = loop.time()
        n = 0
        while loop.time() - started < args.seconds:
            as_of = now_ms()
            await cache.set(args.key, {"n": n}, data_type="tickers", as_of=as_of)
            print(json.dumps({"as_of": as_of, "done_ms": now_ms()}), flush=True)
            n += 1
            await asyncio.sleep(max(0.0, started + n / args.rate - loop.time()))
    finally:
        await cache.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    for name in ("key", "channel", "memcached", "redis"):
        parser.add_argument(name)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--delay", type=float, default=0.5)
    asyncio.run(main(parser.parse_args()))
    sys.exit(0)
