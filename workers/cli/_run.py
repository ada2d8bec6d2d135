"""`warmfleet run`: the whole pipeline on loopback, started together, with a live status.

Starts the exchange simulator, the phase clock, the pollers, the analytics worker and the
HTTP reader as child processes (logs in ``~/.cache/warmfleet/run/<name>.log``), drives a
light read load through the reader so hit rates mean something, and shows the fleet's
status until Ctrl-C (or ``--duration``). Ctrl-C stops every child cleanly: SIGTERM, then
SIGKILL after a grace period. The local stack must be up (`warmfleet stack up`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import structlog
from rich.console import Console
from rich.live import Live

from topics import split_host_port
from workers.cli import _status as fleet_status
from workers.logs import configure_logging
from workers.settings import Settings

HELP = "run the whole pipeline (sim, clock, pollers, agents, reader) with a live status"
log = structlog.get_logger(__name__)

SIM_PORT = 8899
READER_PORT = 8080


@dataclass(frozen=True)
class Child:
    name: str
    argv: tuple[str, ...]
    env: dict[str, str]


def children(args: argparse.Namespace) -> list[Child]:
    sim = f"http://127.0.0.1:{args.sim_port}"
    exchanges = {"WARMFLEET_EXCHANGE_URLS": f"binance={sim},okx={sim}"}
    poller, worker, clock = (str(args.metrics_base + i) for i in range(3))
    return [
        Child("sim", ("sim", "--port", str(args.sim_port), "--seed", str(args.seed)), {}),
        Child("clock", ("clock",), {"WARMFLEET_METRICS_PORT": clock}),
        Child("poller", ("poller",), {"WARMFLEET_METRICS_PORT": poller, **exchanges}),
        Child("worker", ("worker",), {"WARMFLEET_METRICS_PORT": worker}),
        Child("reader", ("reader", "--port", str(args.reader_port)), {}),
    ]


def endpoints(args: argparse.Namespace) -> dict[str, str]:
    url = "http://127.0.0.1:{}/metrics".format
    return {
        "poller": url(args.metrics_base),
        "worker": url(args.metrics_base + 1),
        "clock": url(args.metrics_base + 2),
        "reader": url(args.reader_port),
    }


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="S",
        help="stop by itself after S seconds (default: run until Ctrl-C)",
    )
    parser.add_argument(
        "--phase",
        default=None,
        metavar="PHASE",
        help="hold this market phase for the run (e.g. market_hours: 15 s warms)",
    )
    parser.add_argument(
        "--read-rate",
        type=float,
        default=50.0,
        metavar="N",
        help="demo reads per second through the reader (0 = none)",
    )
    parser.add_argument("--sim-port", type=int, default=SIM_PORT)
    parser.add_argument("--reader-port", type=int, default=READER_PORT)
    parser.add_argument(
        "--metrics-base",
        type=int,
        default=9101,
        metavar="PORT",
        help="metrics ports: poller PORT, worker PORT+1, clock PORT+2",
    )
    parser.add_argument("--seed", type=int, default=7, help="simulator seed")
    parser.add_argument("--no-live", action="store_true", help="print a status line every 5 s")


def _log_dir() -> Path:
    home = Path(os.environ.get("WARMFLEET_HOME", Path.home() / ".cache" / "warmfleet"))
    path = home / "run"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _servers_not_answering(settings: Settings) -> list[str]:
    """The configured Kafka, Redis and Memcached that do not accept a connection."""
    import socket
    from urllib.parse import urlsplit

    redis = urlsplit(settings.redis_url)
    wanted = {
        "Kafka": settings.kafka_servers[0],
        "Redis": f"{redis.hostname or '127.0.0.1'}:{redis.port or 6379}",
        "Memcached": settings.memcached_servers[0],
    }
    missing = []
    for name, hostport in wanted.items():
        try:
            socket.create_connection(split_host_port(hostport), timeout=2).close()
        except OSError:
            missing.append(f"{name} at {hostport} does not answer")
    return missing


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM it when the supervisor dies, however it dies
    (Ctrl-C, a closed terminal, SIGKILL), so no child outlives `warmfleet run`."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _ports_in_use(args: argparse.Namespace) -> list[str]:
    import socket

    wanted = {"--sim-port": args.sim_port, "--reader-port": args.reader_port}
    wanted.update({f"--metrics-base (+{i})": args.metrics_base + i for i in range(3)})
    taken = []
    for flag, port in wanted.items():
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                taken.append(f"{port} ({flag})")
    return taken


async def _spawn(child: Child, logs: Path) -> asyncio.subprocess.Process:
    out = (logs / f"{child.name}.log").open("ab")
    try:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "workers.cli",
            *child.argv,
            env={**os.environ, "WARMFLEET_LOG_FORMAT": "json", **child.env},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    finally:
        out.close()


async def _stop(procs: dict[str, asyncio.subprocess.Process], grace_s: float = 15.0) -> None:
    for proc in procs.values():
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(asyncio.gather(*(p.wait() for p in procs.values())), grace_s)
    except TimeoutError:
        for name, proc in procs.items():
            if proc.returncode is None:
                log.warning("child_killed_after_grace", child=name, grace_s=grace_s)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
        await asyncio.gather(*(p.wait() for p in procs.values()))


async def _sim_symbols(session: aiohttp.ClientSession, port: int) -> list[str]:
    async with session.get(f"http://127.0.0.1:{port}/api/v3/exchangeInfo") as resp:
        info = await resp.json()
    return [f"{s['baseAsset']}-{s['quoteAsset']}" for s in info.get("symbols", [])]


async def _read_load(rate: float, sim_port: int, reader_port: int) -> None:
    """Zipf-ish demo reads: a few hot symbols, a long tail, the overview now and then."""
    if rate <= 0:
        return
    base = f"http://127.0.0.1:{reader_port}"
    rng = random.Random(1)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        symbols: list[str] = []
        while not symbols:
            try:
                symbols = await _sim_symbols(session, sim_port)
            except (aiohttp.ClientError, TimeoutError, ValueError):
                await asyncio.sleep(1)
        weights = [1.0 / (i + 1) ** 1.1 for i in range(len(symbols))]
        while True:
            pick = rng.random()
            if pick < 0.1:
                path = "/v2/overview"
            else:
                sym = rng.choices(symbols, weights)[0]
                kind = "tickers" if pick < 0.7 else "analysis"
                path = f"/v2/{kind}/{'binance' if rng.random() < 0.7 else 'okx'}/{sym}"
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(base + path) as resp:
                    await resp.read()
            await asyncio.sleep(1.0 / rate)


async def _hold_phase(phase: str, duration_s: float | None) -> None:
    minutes = max(1, int((duration_s or 3600) / 60) + 1)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "workers.cli",
        "phase",
        "set",
        phase,
        "--for",
        f"{minutes}m",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"warmfleet run: could not hold phase {phase}: {err.decode().strip()}")


async def _main(args: argparse.Namespace) -> int:
    configure_logging(fmt="console")
    missing = _servers_not_answering(Settings.from_env())
    if missing:
        print(
            f"warmfleet run: {'; '.join(missing)} — start the local stack with "
            "`warmfleet stack up`, or point WARMFLEET_*_URL at yours",
            file=sys.stderr,
        )
        return 2
    taken = _ports_in_use(args)
    if taken:
        print(
            f"warmfleet run: ports in use: {', '.join(taken)} — is another `warmfleet run` "
            "going? Stop it, or choose other ports with the flags named.",
            file=sys.stderr,
        )
        return 2
    logs = _log_dir()
    console = Console(stderr=True)
    if args.phase:
        await _hold_phase(args.phase, args.duration)
    procs: dict[str, asyncio.subprocess.Process] = {}
    for child in children(args):
        procs[child.name] = await _spawn(child, logs)
        console.print(
            f"started {child.name:<7} pid {procs[child.name].pid:<7} log {logs / child.name}.log"
        )
    scrape_from = endpoints(args)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    load = asyncio.create_task(_read_load(args.read_rate, args.sim_port, args.reader_port))
    deadline = None if args.duration is None else time.monotonic() + args.duration
    died: dict[str, int] = {}
    window = fleet_status.Window()
    window.push(await fleet_status.scrape(scrape_from))
    live = None if args.no_live else Live(console=console, refresh_per_second=2)
    try:
        if live:
            live.start()
        ticks = 0
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            now = await fleet_status.scrape(scrape_from)
            summary = fleet_status.summarise(now, window.push(now))
            ticks += 1
            for name, proc in procs.items():
                if proc.returncode is not None and name not in died:
                    died[name] = proc.returncode
                    console.print(
                        f"[red]{name} exited with {proc.returncode}[/]; see {logs / name}.log"
                    )
            if live:
                live.update(fleet_status.render(summary))
            elif ticks % 5 == 0:
                tiers = {t: v["hit_rate"] for t, v in summary["tiers"].items()}
                console.print(
                    f"phase={summary['phase']} published/s={summary['events_published_per_s']} "
                    f"processed/s={summary['events_processed_per_s']} hit_rate={tiers}"
                )
    finally:
        if live:
            live.stop()
        load.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await load
        console.print("stopping children ...")
        await _stop(procs)
        for name, proc in procs.items():
            console.print(f"{name:<7} exited {proc.returncode}")
    return 1 if died else 0


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_main(args))
