"""Reader API throughput on loopback: hot keys, one reader process, load from a second process.

Baseline in the same run: a bare aiohttp process answering a constant JSON body of the same
size (what the web stack alone costs). Load: wrk (apt-get install wrk) cycling over the hot
keys, 1 thread, --connections. Prints RPS, p50 and p99 per round, medians and the ratio.

    .venv/bin/python bench/bench_reader.py [--rounds 3] [--seconds 8] [--keys 100]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tiers import MultiTierCache
from topics import key_for

PREFIX = "benchreader"
BARE = textwrap.dedent(
    """
    import sys, orjson, uvloop
    from aiohttp import web
    VALUE = {"last": 64000.5, "bid": 64000.0, "ask": 64001.0}
    DOC = {"key": "x" * 48, "value": VALUE, "as_of": 1, "age_ms": 3, "tier": "memory"}
    BODY = orjson.dumps(DOC)
    async def h(request):
        return web.Response(body=BODY, content_type="application/json",
                            headers={"Cache-Control": "public, max-age=14", "ETag": '"abc"'})
    app = web.Application(); app.router.add_get("/v2/tickers/{exchange}/{symbol:.+}", h)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
    """
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"nothing listens on {port}")


def symbols(n: int) -> list[str]:
    return [f"S{i:03d}/USDT" for i in range(n)]


async def warm(n: int, memcached: str, redis: str) -> None:
    cache = MultiTierCache.from_urls(memcached, redis)
    now = int(time.time() * 1000)
    for sym in symbols(n):
        value = {
            "exchange": "binance",
            "symbol": sym,
            "last": 64000.5,
            "bid": 64000.0,
            "ask": 64001.0,
        }
        # long-lived: the benchmark must read warm keys the whole time
        await cache.set(
            key_for("tickers", "binance", sym, prefix=PREFIX),
            value,
            data_type="tickers",
            as_of=now,
            warm_interval=3600,
        )
    await cache.close()


def lua_script(n: int) -> str:
    paths = ",".join(f'"/v2/tickers/binance/{s.replace("/", "-")}"' for s in symbols(n))
    body = "  i = i % #paths + 1\n  return wrk.format(nil, paths[i])\n"
    return f"local paths = {{{paths}}}\nlocal i = 0\nrequest = function()\n{body}end\n"


UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def run_wrk(port: int, seconds: int, connections: int, script: Path) -> tuple[float, float, float]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script),
         f"http://127.0.0.1:{port}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(p: str) -> float:
        value, unit = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        return float(value) * UNIT[unit]

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise SystemExit(f"{non2xx.group(1)} non-2xx answers: the keys are not warm\n{out}")
    return rps, pct("50"), pct("99")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--keys", type=int, default=100)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("bench_reader needs wrk: apt-get install wrk")
    memcached = os.environ.get("WARMFLEET_MEMCACHED_URL", "memcached://127.0.0.1:11211")
    redis = os.environ.get("WARMFLEET_REDIS_URL", "redis://127.0.0.1:6379/0")
    asyncio.run(warm(args.keys, memcached, redis))
    tmp = Path(tempfile.mkdtemp())
    (tmp / "bare.py").write_text(BARE)
    script = tmp / "paths.lua"
    script.write_text(lua_script(args.keys))
    env = {**os.environ, "WARMFLEET_KEY_PREFIX": PREFIX, "WARMFLEET_LOG_LEVEL": "WARNING",
           "WARMFLEET_MEMCACHED_URL": memcached, "WARMFLEET_REDIS_URL": redis}  # fmt: skip
    results: dict[str, list[tuple[float, float, float]]] = {"bare aiohttp": [], "reader": []}
    ports = {"bare aiohttp": free_port(), "reader": free_port()}
    procs = {
        "bare aiohttp": subprocess.Popen(
            [sys.executable, str(tmp / "bare.py"), str(ports["bare aiohttp"])]
        ),
        "reader": subprocess.Popen(
            [sys.executable, "-m", "workers.cli", "reader", "--port", str(ports["reader"])], env=env
        ),
    }
    try:
        for port in ports.values():
            wait_port(port)
        for port in ports.values():  # warm-up: L1 fills, connections open
            run_wrk(port, 2, args.connections, script)
        for r in range(args.rounds):
            for name, port in ports.items():
                rps, p50, p99 = run_wrk(port, args.seconds, args.connections, script)
                results[name].append((rps, p50, p99))
                figures = f"{rps:>9,.0f} req/s  p50 {p50:.2f} ms  p99 {p99:.2f} ms"
                print(f"round {r + 1} {name:<13} {figures}")
    finally:
        for proc in procs.values():
            proc.terminate()
            proc.wait(10)
    setup = f"{args.rounds} rounds, {args.connections} connections, {args.keys} hot keys"
    print(f"\nmedians over {setup}:")
    med = {
        n: [statistics.median(col) for col in zip(*rs, strict=True)] for n, rs in results.items()
    }
    for name, (rps, p50, p99) in med.items():
        print(f"  {name:<13} {rps:>9,.0f} req/s  p50 {p50:.2f} ms  p99 {p99:.2f} ms")
    ratio = med["reader"][0] / med["bare aiohttp"][0]
    print(f"  reader / bare aiohttp throughput: {ratio:.2f}x")
    print(
        f"  goal >= 15,000 req/s with p99 <= 5 ms: "
        f"{'met' if med['reader'][0] >= 15000 and med['reader'][2] <= 5 else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
