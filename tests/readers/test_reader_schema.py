"""schemathesis against the reader's own /openapi.json: the schema is as strict as the reader.

Bounded (examples per operation, a fixed seed so a failure reproduces): all
of schemathesis's checks — no 5xx, every status/header/body as documented, schema-valid
input accepted, schema-invalid input refused, 405 + Allow on other methods. Before the fix it
found a 500 (a huge max_age), and inputs the schema allowed but the reader refused.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from readers import create_app, running_reader
from tiers import MultiTierCache
from topics import key_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ST = Path(sys.executable).parent / "st"


async def test_schemathesis_finds_no_difference_between_schema_and_reader(
    stack_urls: Any, namespace: str, tmp_path: Path
) -> None:
    prefix = namespace.rstrip(".")
    cache = MultiTierCache.from_urls(
        "memory://?max_entries=1000", stack_urls.memcached_url, stack_urls.redis_url
    )
    now = int(time.time() * 1000)
    # the schema's examples (binance, BTC-USDT) reach warm keys, so 200s are checked too
    for data_type, ids, value in [
        ("tickers", ("binance", "BTC/USDT"), {"last": 64_000.5}),
        ("overview", ("all",), {"scope": "all"}),
        ("overview", ("binance",), {"scope": "binance"}),
        ("volatility", ("binance", "BTC/USDT"), {"volatility": 0.01}),
        ("signals", ("binance", "BTC/USDT"), ["rsi_overbought"]),
        ("books", ("binance", "BTC/USDT"), {"bids": [[1.0, 2.0]], "asks": [[1.5, 1.0]]}),
        ("candles", ("binance", "BTC/USDT", "1m"), {"rows": [[0, 1, 2, 0.5, 1.5, 10]] * 3}),
    ]:
        key = key_for(data_type, *ids, prefix=prefix)
        await cache.set(key, value, data_type=data_type, as_of=now, warm_interval=600)
    try:
        async with running_reader(create_app(cache, key_prefix=prefix)) as base:
            proc = await asyncio.create_subprocess_exec(
                str(ST), "run", f"{base}/openapi.json",
                "--checks", "all", "--max-examples", "60",
                "--seed", "20261201", "--workers", "1", "--no-shrink",
                "--generation-database", "none", "--request-timeout", "5",
                cwd=tmp_path,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
            out, _ = await asyncio.wait_for(proc.communicate(), 150)
    finally:
        await cache.close()
    report = out.decode(errors="replace")
    assert proc.returncode == 0, report[-6000:]
    assert " passed" in report and "failures" not in report.split("SUMMARY")[-1], report[-3000:]
