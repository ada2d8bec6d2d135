"""`warmfleet sim`: serve the exchange simulator, or inject / list / clear its faults.

warmfleet sim [--port 8899] [--seed 7] [--symbols 60] [--speed 1] [--latency 50ms [--jitter 10ms]]
warmfleet sim fault ENDPOINT KIND [--count N | --rate R] [--retry-after S] [--delay S]
warmfleet sim fault --list | --clear [ENDPOINT]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

HELP = "serve the local Binance/OKX-compatible exchange simulator, or inject its faults"

_UNITS_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def duration_s(text: str) -> float:
    """``50ms``, ``0.05s``, ``500us`` or a bare number of milliseconds -> seconds; anything
    else (negative, not finite, an unknown unit) is an ``argparse`` error naming it."""
    raw = text.strip().lower()
    unit = next((u for u in ("us", "ms", "s") if raw.endswith(u)), "ms")
    number = raw[: -len(unit)] if raw.endswith(unit) else raw
    try:
        value = float(number) * _UNITS_S[unit]
    except ValueError:
        value = float("nan")
    if not 0 <= value < 60:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration below 60 s (e.g. 50ms, 0.05s, 500us)"
        )
    return value


KIND_NAMES = ("429", "418", "500", "503", "slow", "timeout", "truncated", "empty", "stale")


def configure(parser: argparse.ArgumentParser) -> None:
    from sim._market import DEFAULT_SYMBOLS
    from sim._server import DEFAULT_PORT, HOST

    parser.add_argument("--host", default=HOST, help=f"bind address (default {HOST})")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="listen port")
    parser.add_argument("--seed", type=int, default=7, help="market seed (same seed, same path)")
    parser.add_argument("--symbols", type=int, default=DEFAULT_SYMBOLS, help="trading pairs")
    parser.add_argument(
        "--speed", type=float, default=1.0, help="simulated seconds per real second"
    )
    parser.add_argument(
        "--latency",
        type=duration_s,
        default=0.0,
        metavar="DURATION",
        help="hold every venue request this long before answering (50ms: the cost of a "
        "cache miss at the origin; default 0)",
    )
    parser.add_argument(
        "--jitter",
        type=duration_s,
        default=0.0,
        metavar="DURATION",
        help="spread the latency uniformly by up to ± this much (at most --latency)",
    )
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    fault = sub.add_parser("fault", help="inject, list or clear faults of a running simulator")
    fault.add_argument(
        "endpoint",
        nargs="?",
        help="a path like /api/v3/ticker/24hr or /api/v5/market/tickers, or binance, okx, all",
    )
    fault.add_argument("kind", nargs="?", choices=KIND_NAMES, help="what goes wrong")
    how = fault.add_mutually_exclusive_group()
    how.add_argument("--count", type=int, help="fire on the next N matching requests only")
    how.add_argument("--rate", type=float, help="fire on each matching request with probability R")
    fault.add_argument("--retry-after", type=int, default=2, metavar="S", help="429/418 header")
    fault.add_argument("--delay", type=float, default=3.0, metavar="S", help="slow: seconds")
    fault.add_argument("--url", default=f"http://127.0.0.1:{DEFAULT_PORT}", help="simulator URL")
    fault.add_argument("--list", action="store_true", help="show the active faults")
    fault.add_argument("--clear", action="store_true", help="remove all faults (or ENDPOINT's)")


def _call(method: str, url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def _fault(args: argparse.Namespace) -> int:
    base = args.url.rstrip("/") + "/admin/faults"
    try:
        if args.clear:
            query = f"?endpoint={urllib.parse.quote(args.endpoint)}" if args.endpoint else ""
            status, reply = _call("DELETE", base + query)
        elif args.list or args.endpoint is None:
            status, reply = _call("GET", base)
        else:
            if args.kind is None:
                print("warmfleet sim fault: give ENDPOINT and KIND", file=sys.stderr)
                return 2
            spec = {"endpoint": args.endpoint, "kind": args.kind, "count": args.count,
                    "rate": args.rate, "retry_after_s": args.retry_after,
                    "delay_s": args.delay}  # fmt: skip
            status, reply = _call("POST", base, spec)
    except OSError as exc:
        print(f"warmfleet sim fault: no simulator at {args.url} ({exc})", file=sys.stderr)
        return 1
    if status >= 400:
        print(f"warmfleet sim fault: {reply.get('error', reply)}", file=sys.stderr)
        return 2
    print(json.dumps(reply, indent=2))
    return 0


async def _serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from sim._server import create_app
    from sim._state import SIM

    app = create_app(
        args.seed, args.symbols, args.speed, latency_s=args.latency, jitter_s=args.jitter
    )
    app[SIM].warm_up()
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, args.host, args.port).start()
    except OSError as exc:
        await runner.cleanup()
        where = f"{args.host}:{args.port}"
        print(f"warmfleet sim: cannot listen on {where}: {exc.strerror}; pick another port "
              "with --port", file=sys.stderr)  # fmt: skip
        return 1
    print(
        f"warmfleet sim: serving {args.symbols} pairs (seed {args.seed}, speed {args.speed:g}x, "
        f"latency {args.latency * 1000:g} ± {args.jitter * 1000:g} ms) "
        f"on http://{args.host}:{args.port}  "
        "(Binance /api/v3, OKX /api/v5, /admin/faults, /metrics)",
        file=sys.stderr,
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
    return 0


def run(args: argparse.Namespace) -> int:
    if args.action == "fault":
        return _fault(args)
    if args.symbols < 1 or args.speed <= 0:
        print("warmfleet sim: --symbols must be >= 1 and --speed > 0", file=sys.stderr)
        return 2
    if args.jitter > args.latency:
        print("warmfleet sim: --jitter must not exceed --latency", file=sys.stderr)
        return 2
    return asyncio.run(_serve(args))
