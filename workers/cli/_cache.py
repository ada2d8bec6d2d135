"""`warmfleet cache get KEY`: where a key is warm, how old it is, how long each tier keeps it.

Asks each shared tier (L2 Memcached, L3 Redis) directly, bypassing promotion, so what it
shows is what each tier really holds. L1 is per process and not visible from here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from typing import Any

from workers.settings import Settings

HELP = "inspect a cache key in every tier: present, as_of, age, TTL left, value"


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    get = sub.add_parser("get", help="show KEY in each tier", description=HELP)
    get.add_argument("key", help="e.g. virt:v2:market:ticker:15s:binance:BTC/USDT")
    get.add_argument("--json", action="store_true", help="machine-readable output")
    get.add_argument("--timeout", type=float, default=1.0, metavar="S", help="per tier")


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


async def inspect(settings: Settings, key: str, timeout_s: float) -> dict[str, Any]:
    from tiers import RedisTier, check_key, tier_from_url
    from topics import now_ms

    check_key(key)
    report: dict[str, Any] = {"key": key, "tiers": {}, "value": None}
    best = None
    for url in (settings.memcached_url, settings.redis_url):
        tier = tier_from_url(url)
        row: dict[str, Any]
        try:
            envelope = (await asyncio.wait_for(tier.get_many([key]), timeout_s))[0]
            if envelope is None:
                row = {"present": False}
            else:
                now = now_ms()
                ttl_left = envelope.remaining_s(now)
                if isinstance(tier, RedisTier):  # the server's own clock, not the envelope's
                    pttl = await asyncio.wait_for(tier.pttl_ms(key), timeout_s)
                    ttl_left = pttl / 1000.0 if pttl >= 0 else ttl_left
                row = {
                    "present": True,
                    "as_of": envelope.as_of,
                    "as_of_iso": _iso(envelope.as_of),
                    "age_s": round((now - envelope.as_of) / 1000.0, 3),
                    "written_at_iso": _iso(envelope.written_at),
                    "ttl_left_s": None if ttl_left is None else round(ttl_left, 3),
                    "source": envelope.source,
                    "schema": envelope.schema,
                }
                if best is None or envelope.as_of > best.as_of:
                    best = envelope
        except Exception as exc:  # a tier that is down is reported, not fatal
            row = {"present": None, "error": f"{type(exc).__name__}: {exc}"}
        finally:
            await tier.close()
        report["tiers"][tier.name] = row
    report["tiers"]["memory"] = {"present": None, "note": "L1 is per process"}
    report["value"] = None if best is None else best.value
    return report


def _print(report: dict[str, Any]) -> None:
    print(f"key   {report['key']}")
    print(f"{'tier':<10} {'present':<8} {'as_of (UTC)':<30} {'age':>9} {'ttl left':>10}  source")
    for name, row in report["tiers"].items():
        if row.get("present"):
            ttl = "-" if row["ttl_left_s"] is None else f"{row['ttl_left_s']:.1f}s"
            print(
                f"{name:<10} {'yes':<8} {row['as_of_iso']:<30} {row['age_s']:>8.1f}s {ttl:>10}"
                f"  {row['source']}"
            )
        elif row.get("present") is False:
            print(f"{name:<10} {'no':<8}")
        else:
            print(f"{name:<10} {'?':<8} {row.get('error') or row.get('note')}")
    if report["value"] is not None:
        print("value " + json.dumps(report["value"], indent=2, default=str))


def run(args: argparse.Namespace) -> int:
    from topics import ConfigError

    try:
        settings = Settings.from_env()
        report = asyncio.run(inspect(settings, args.key, args.timeout))
    except (ConfigError, ValueError) as exc:
        print(f"warmfleet cache: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        _print(report)
    present = [r for r in report["tiers"].values() if r.get("present")]
    return 0 if present else 1
