"""The reader against nginx on loopback, in the same run: warm keys, wrk -t1 -c32.

nginx (one worker, Debian nginx-light) serves a static file of exactly the size of the
reader's warm answer: the machine's HTTP ceiling. The reader (`warmfleet reader`, a
separate process) serves 100 hot ticker keys warmed in Memcached and Redis, on its native
server ("reader") and on granian ("reader granian", `--server granian`). Beside them, in the
same rounds: a bare granian RSGI handler and the native server with a bare handler (both
answering constant bytes: each server's own ceiling for a Python app), optionally a bare
aiohttp handler and a bare uvicorn ASGI app (`--uvicorn PYTHON`: a Python that has uvicorn;
it is not a project dependency). wrk (one thread) cycles over the same paths against each,
for several rounds; the benchmark prints RPS, p50, p95 and p99 per round, the medians, the
ratios of the medians (and the median of per-round ratios), the server CPU per request,
and the goal lines. wrk and nginx-light are installed with apt-get on first use.

    .venv/bin/python bench/bench_reader.py [--rounds 5] [--seconds 8] [--keys 100]
        [--connections 32] [--workers 1] [--aiohttp] [--no-granian] [--no-reader-granian]
        [--uvicorn PYTHON] [--pin] [--against DIR]

``--against DIR`` also runs the reader of another checkout (``DIR/.venv/bin/python -m
workers.cli reader``, e.g. main before a change) in the same rounds, as "reader@DIR": a
before/after from one run. Compare them by server CPU per request and same-run ratios: on a
shared machine absolute req/s swing with whatever else runs.

Goal (issue 13): reader >= 0.5x nginx, p99 <= 2 ms at 32 connections.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from dataclasses import fields, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._http_tools import (
    P95_HOOK,
    Load,
    cpu_seconds,
    ensure_tools,
    pin,
    run_wrk,
    start_nginx,
    wait_port,
)
from readers._server import free_port
from tiers import MultiTierCache
from topics import key_for

PREFIX = "benchreader"
BARE = textwrap.dedent(
    """
    import sys, uvloop
    from aiohttp import web
    BODY = open(sys.argv[2], "rb").read()
    async def h(request):
        return web.Response(body=BODY, content_type="application/json", headers=HEADERS)
    HEADERS = {"Cache-Control": "public, max-age=15, stale-while-revalidate=3600, "
                                "stale-if-error=3600", "ETag": '"abc"', "Age": "3"}
    app = web.Application(); app.router.add_get("/v2/tickers/{exchange}/{symbol:.+}", h)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
    """
)

BARE_GRANIAN = textwrap.dedent(
    """
    import sys
    from granian.constants import HTTPModes, Interfaces, Loops
    from granian.server import Server
    BODY = open(sys.argv[2], "rb").read()
    HEADERS = [("content-type", "application/json"), ("etag", '"abc"'), ("age", "3"),
               ("cache-control", "public, max-age=15, stale-while-revalidate=3600, "
                                 "stale-if-error=3600")]
    async def app(scope, proto):
        proto.response_bytes(200, HEADERS, BODY)
    if __name__ == "__main__":
        Server("bare_granian:app", address="127.0.0.1", port=int(sys.argv[1]),
               interface=Interfaces.RSGI, http=HTTPModes.http1, loop=Loops.uvloop,
               websockets=False, log_level="warning").serve()
    """
)


BARE_NATIVE = textwrap.dedent(
    """
    import asyncio, sys
    from readers._http import NativeServer, new_event_loop
    from readers._limits import ReaderLimits
    BODY = open(sys.argv[2], "rb").read()
    HEADERS = [("content-type", "application/json"), ("etag", '"abc"'), ("age", "3"),
               ("cache-control", "public, max-age=15, stale-while-revalidate=3600, "
                                 "stale-if-error=3600")]
    class App:
        def __rsgi_init__(self, loop): pass
        def __rsgi_del__(self, loop): pass
        async def __rsgi__(self, scope, proto):
            proto.response_bytes(200, HEADERS, BODY)
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    server = NativeServer(App(), "127.0.0.1", int(sys.argv[1]), ReaderLimits())
    loop.run_until_complete(server.start())
    loop.run_forever()
    """
)

BARE_UVICORN = textwrap.dedent(
    """
    import sys, uvicorn
    BODY = open(sys.argv[2], "rb").read()
    HEADERS = [(b"content-type", b"application/json"), (b"etag", b'"abc"'), (b"age", b"3"),
               (b"cache-control", b"public, max-age=15, stale-while-revalidate=3600, "
                                  b"stale-if-error=3600")]
    START = {"type": "http.response.start", "status": 200, "headers": HEADERS}
    END = {"type": "http.response.body", "body": BODY}
    async def app(scope, receive, send):
        await send(START)
        await send(END)
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), loop="uvloop", http="httptools",
                log_level="warning", access_log=False, lifespan="off")
    """
)


def symbols(n: int) -> list[str]:
    return [f"S{i:03d}/USDT" for i in range(n)]


async def warm(n: int, memcached: str, redis: str) -> None:
    cache = MultiTierCache.from_urls(memcached, redis)
    now = int(time.time() * 1000)
    for sym in symbols(n):
        value = {
            **{"exchange": "binance", "symbol": sym, "last": 64000.5, "bid": 64000.0},
            **{"ask": 64001.0, "high": 64500.25, "low": 63010.75, "volume": 1234.5678},
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


class _Scope:
    """What ``ReaderApp.__rsgi__`` reads of granian's RSGI scope (a plain dict for headers:
    wrk sends only Host)."""

    __slots__ = ("headers", "method", "path", "query_string")

    def __init__(self, path: str) -> None:
        self.method, self.path, self.query_string = "GET", path, ""
        self.headers = {"host": "127.0.0.1"}


class _Sink:
    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        assert status == 200, status


async def l1_cache(n: int, prefix: str) -> MultiTierCache:
    """An L1-only cache holding ``n`` warm ticker keys under ``prefix``: the in-process probes'."""
    cache = MultiTierCache.from_urls("memory://?max_entries=5000", invalidation_channel=None)
    now = int(time.time() * 1000)
    for sym in symbols(n):
        key = key_for("tickers", "binance", sym, prefix=prefix)
        value = {"exchange": "binance", "symbol": sym, "last": 64000.5, "bid": 64000.0}
        await cache.set(key, value, data_type="tickers", as_of=now, warm_interval=3600)
    return cache


async def app_cost(n: int, redis: str, passes: int = 7) -> float:
    """The reader's own Python per hot request, µs: ``ReaderApp.__rsgi__`` called in this
    process on warm keys (L1 hits, the hot-set counter and XFetch on, as in ``warmfleet
    reader``), no HTTP. Beside the server CPU per request it splits the reader's cost into
    its own code and granian's (HTTP and the hand-off to the event loop)."""
    from demand import Demand
    from readers import create_app
    from readers._demand import ReaderDemand
    from tiers import HeatRecorder

    cache = await l1_cache(n, PREFIX + "inproc")
    heat = HeatRecorder(redis, prefix=PREFIX + "inproc")
    link = Demand.connect(redis_url=redis, kafka_servers=["127.0.0.1:9092"],
                          namespace="benchreader.", key_prefix=PREFIX + "inproc")  # fmt: skip
    app = create_app(
        cache, key_prefix=PREFIX + "inproc", on_read=heat.touch,
        demand=ReaderDemand(cache, link, key_prefix=PREFIX + "inproc"),
    )  # fmt: skip
    scopes = [_Scope(f"/v2/tickers/binance/{s.replace('/', '-')}") for s in symbols(n)]
    sink, size, rounds = _Sink(), len(scopes), 20_000
    for scope in scopes:  # resolve every path once
        await app.__rsgi__(scope, sink)  # type: ignore[arg-type]
    costs = []
    for _ in range(passes):
        cpu = time.process_time()
        for i in range(rounds):
            await app.__rsgi__(scopes[i % size], sink)  # type: ignore[arg-type]
        costs.append((time.process_time() - cpu) / rounds * 1e6)
    await heat.close()
    await link.close()
    await cache.close()
    return statistics.median(costs)


async def task_cost(n: int, passes: int = 7) -> tuple[float, float]:
    """µs per hot request of ``ReaderApp.__rsgi__`` (L1 hits, no HTTP), run as the native
    server runs it — a Task per request, 32 in flight, one loop pass — and driven directly
    with ``coro.send(None)`` (an L1 hit finishes without suspending). Medians: (task, send).
    The difference is what a Task-free fast path could save; it is not taken, because the
    cache's L2/L3 path needs ``asyncio.current_task()`` before it first suspends."""
    from readers import create_app

    cache = await l1_cache(n, PREFIX + "task")
    app = create_app(cache, key_prefix=PREFIX + "task")
    scopes = [_Scope(f"/v2/tickers/binance/{s.replace('/', '-')}") for s in symbols(n)]
    sink, size, rounds, batch = _Sink(), len(scopes), 20_000, 32
    for scope in scopes:
        await app.__rsgi__(scope, sink)  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    costs: dict[str, list[float]] = {"task": [], "send": []}
    for _ in range(passes):
        cpu = time.process_time()
        for i in range(0, rounds, batch):
            tasks = [
                loop.create_task(app.__rsgi__(scopes[(i + j) % size], sink))  # type: ignore[arg-type]
                for j in range(batch)
            ]
            await asyncio.sleep(0)  # one loop pass: each task runs to its end
            assert all(t.done() for t in tasks)
        costs["task"].append((time.process_time() - cpu) / rounds * 1e6)
        cpu = time.process_time()
        for i in range(rounds):
            coro = app.__rsgi__(scopes[i % size], sink)  # type: ignore[arg-type]
            try:
                coro.send(None)
            except StopIteration:
                continue
            raise AssertionError("an L1 hit suspended")
        costs["send"].append((time.process_time() - cpu) / rounds * 1e6)
    await cache.close()
    return statistics.median(costs["task"]), statistics.median(costs["send"])


async def wake_cost(passes: int = 5, batch: int = 32) -> tuple[float, float]:
    """µs of loop work per request to run a (trivial) handler: a new Task per request, as
    the native server first did, and waking a connection's parked task with a future, as it
    does now (``readers._http.Connection._serve``). Medians: (new task, wake)."""
    loop = asyncio.get_running_loop()
    rounds = 100_000 // batch * batch

    async def handler() -> None:
        return None

    waiters: list[asyncio.Future[None]] = []

    async def worker(i: int) -> None:
        while True:
            waiters[i] = loop.create_future()
            await waiters[i]
            await handler()

    costs: dict[str, list[float]] = {"task": [], "wake": []}
    for _ in range(passes):
        cpu = time.process_time()
        for _ in range(rounds // batch):
            tasks = [loop.create_task(handler()) for _ in range(batch)]
            await asyncio.sleep(0)
            del tasks
        costs["task"].append((time.process_time() - cpu) / rounds * 1e6)
        waiters[:] = [loop.create_future() for _ in range(batch)]
        workers = [loop.create_task(worker(i)) for i in range(batch)]
        await asyncio.sleep(0)
        cpu = time.process_time()
        for _ in range(rounds // batch):
            for waiter in waiters:
                waiter.set_result(None)
            await asyncio.sleep(0)
        costs["wake"].append((time.process_time() - cpu) / rounds * 1e6)
        for task in workers:
            task.cancel()
        await asyncio.sleep(0)
    return statistics.median(costs["task"]), statistics.median(costs["wake"])


def sample_cost(connections: int, samples: int = 10) -> tuple[float, float]:
    """The connection watcher's sample (``readers._connections``, once a second in a thread
    that takes the GIL between its system calls), ms per sample, median: (the reader's own
    count, psutil's ``net_connections``), with ``connections`` accepted sockets open. The
    reader's asks its own sockets; psutil reads and parses the host's whole TCP table."""
    import socket

    import psutil

    from readers._connections import client_connections

    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(connections)]
        accepted = [server.accept()[0] for _ in clients]

        def psutil_count() -> int:
            conns = psutil.Process().net_connections(kind="tcp")
            return sum(1 for c in conns if c.raddr and c.laddr and c.laddr.port == port)

        costs: dict[str, list[float]] = {"own": [], "psutil": []}
        for _ in range(samples):
            for name, count in (("own", lambda: client_connections(port)),
                                ("psutil", psutil_count)):  # fmt: skip
                started = time.perf_counter()
                assert count() == connections
                costs[name].append((time.perf_counter() - started) * 1000)
        for sock in clients + accepted:
            sock.close()
    return statistics.median(costs["own"]), statistics.median(costs["psutil"])


def lua_script(n: int) -> str:
    paths = ",".join(f'"/v2/tickers/binance/{s.replace("/", "-")}"' for s in symbols(n))
    body = "  i = i % #paths + 1\n  return wrk.format(nil, paths[i])\n"
    return f"local paths = {{{paths}}}\nlocal i = 0\nrequest = function()\n{body}end\n{P95_HOOK}"


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as resp:  # loopback only
        return bytes(resp.read())


def figures(load: Load) -> str:
    return (
        f"{load.rps:>9,.0f} req/s  p50 {load.p50:.2f} ms  p95 {load.p95:.2f} ms  "
        f"p99 {load.p99:.2f} ms  server CPU {load.cpu_us:.1f} us/req"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--keys", type=int, default=100)
    parser.add_argument("--workers", type=int, default=1, help="reader worker processes")
    parser.add_argument("--aiohttp", action="store_true", help="also a bare aiohttp handler")
    parser.add_argument(
        "--granian",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="a bare granian RSGI handler (constant bytes): the ceiling of a Python RSGI app",
    )
    parser.add_argument(
        "--reader-granian",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the reader on granian too (warmfleet reader --server granian)",
    )
    parser.add_argument(
        "--uvicorn",
        metavar="PYTHON",
        help="also a bare ASGI app on uvicorn --loop uvloop --http httptools, run by this "
        "Python (one that has uvicorn installed)",
    )
    parser.add_argument(
        "--against",
        type=Path,
        help="also the reader of this checkout (its .venv), same rounds: before/after",
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="every server on CPU 0 (all its threads), wrk on CPU 1: the same one core each",
    )
    args = parser.parse_args()
    ensure_tools("wrk", "nginx")
    memcached = os.environ.get("WARMFLEET_MEMCACHED_URL", "memcached://127.0.0.1:11211")
    redis = os.environ.get("WARMFLEET_REDIS_URL", "redis://127.0.0.1:6379/0")
    asyncio.run(warm(args.keys, memcached, redis))
    inproc_us = asyncio.run(app_cost(args.keys, redis))
    task_us = asyncio.run(task_cost(args.keys))
    import uvloop

    wake_us = uvloop.run(wake_cost())
    sample_ms = sample_cost(args.connections)
    tmp = Path(tempfile.mkdtemp(prefix="bench-reader-"))
    script = tmp / "paths.lua"
    script.write_text(lua_script(args.keys))
    env = {**os.environ, "WARMFLEET_KEY_PREFIX": PREFIX, "WARMFLEET_LOG_LEVEL": "WARNING",
           "WARMFLEET_MEMCACHED_URL": memcached, "WARMFLEET_REDIS_URL": redis}  # fmt: skip
    ports = {"nginx": free_port(), "reader": free_port()}
    readers: dict[str, tuple[str, Path | None, tuple[str, ...]]] = {
        "reader": (sys.executable, None, ())
    }
    if args.reader_granian:
        ports["reader granian"] = free_port()
        readers["reader granian"] = (sys.executable, None, ("--server", "granian"))
    if args.against is not None:
        tree = args.against.resolve()
        ports[f"reader@{tree.name}"] = free_port()
        readers[f"reader@{tree.name}"] = (str(tree / ".venv" / "bin" / "python"), tree, ())
    procs = {
        name: subprocess.Popen(
            [
                python,
                "-m",
                "workers.cli",
                "reader",
                "--port",
                str(ports[name]),
                # an older checkout's reader may predate --workers: one worker is the default
                *(("--workers", str(args.workers)) if args.workers != 1 else ()),
                *extra,
            ],
            env=env,
            cwd=cwd,
        )
        for name, (python, cwd, extra) in readers.items()
    }
    try:
        for name in readers:
            wait_port(ports[name])
        body = fetch(f"http://127.0.0.1:{ports['reader']}/v2/tickers/binance/S000-USDT")
        procs["nginx"] = start_nginx(tmp, ports["nginx"], body)
        (tmp / "body.bin").write_bytes(body)
        root = Path(__file__).resolve().parents[1]
        for name, wanted, source, python in (
            ("bare aiohttp", args.aiohttp, BARE, sys.executable),
            ("bare granian", args.granian, BARE_GRANIAN, sys.executable),
            ("bare native", True, BARE_NATIVE, sys.executable),
            ("bare uvicorn", args.uvicorn is not None, BARE_UVICORN, args.uvicorn),
        ):
            if not wanted:
                continue
            ports[name] = free_port()
            program = tmp / f"{name.replace(' ', '_')}.py"  # bare_granian.py: its module name
            program.write_text(source)
            procs[name] = subprocess.Popen(
                [python, str(program), str(ports[name]), str(tmp / "body.bin")],
                cwd=tmp,
                env={**os.environ, "PYTHONPATH": str(root)},  # bare native imports readers
            )
        for port in ports.values():
            wait_port(port)
        wrk_cpu = None
        if args.pin:
            for proc in procs.values():
                pin(proc.pid, "0")
            wrk_cpu = "1"
        pinned = "servers on CPU 0, wrk on CPU 1" if args.pin else "not pinned"
        print(
            f"body {len(body)} bytes; {args.workers} reader worker(s); {os.cpu_count()} cores; "
            f"{pinned}; load average {os.getloadavg()[0]:.1f}"
        )
        results: dict[str, list[Load]] = {name: [] for name in ports}
        for port in ports.values():  # warm-up: L1 fills, connections open
            run_wrk(f"http://127.0.0.1:{port}", 2, args.connections, script, wrk_cpu)
        order = list(ports.items())
        for r in range(args.rounds):
            # each round starts one server later: none always runs right after nginx (or
            # first), so a drift in the machine's load does not favour one of them
            for name, port in order[r % len(order) :] + order[: r % len(order)]:
                before = cpu_seconds(procs[name].pid)
                url = f"http://127.0.0.1:{port}"
                load = run_wrk(url, args.seconds, args.connections, script, wrk_cpu)
                cpu_us = (cpu_seconds(procs[name].pid) - before) / load.requests * 1e6
                load = replace(load, cpu_us=cpu_us)
                results[name].append(load)
                print(f"round {r + 1} {name:<14} {figures(load)}", flush=True)
    finally:
        for proc in procs.values():
            proc.terminate()
            proc.wait(10)
    report(results, args, inproc_us, sample_ms)
    print(
        f"  a Task per hot request vs driving the coroutine (coro.send, in process, L1 hits): "
        f"{task_us[0]:.2f} vs {task_us[1]:.2f} us ({task_us[0] - task_us[1]:.2f} us a request)"
    )
    print(
        f"  a new Task per request vs waking the connection's parked task (uvloop, 32 in "
        f"flight, trivial handler): {wake_us[0]:.2f} vs {wake_us[1]:.2f} us a request"
    )
    return 0


def report(
    results: dict[str, list[Load]],
    args: argparse.Namespace,
    inproc_us: float,
    sample_ms: tuple[float, float],
) -> None:
    setup = f"{args.rounds} rounds of {args.seconds} s, wrk -t1 -c{args.connections}"
    print(f"\nmedians over {setup}, {args.keys} hot keys:")
    med = {
        name: Load(*(statistics.median(getattr(x, f.name) for x in loads) for f in fields(Load)))
        for name, loads in results.items()
    }
    for name, load in med.items():
        print(f"  {name:<14} {figures(load)}")
    per_round = [r.rps / n.rps for r, n in zip(results["reader"], results["nginx"], strict=True)]
    ratio = med["reader"].rps / med["nginx"].rps
    print(
        f"  reader / nginx throughput: {ratio:.2f}x (median of per-round ratios "
        f"{statistics.median(per_round):.2f}x, range {min(per_round):.2f}-{max(per_round):.2f})"
    )
    cpu = med["reader"].cpu_us / med["nginx"].cpu_us
    print(
        f"  reader / nginx server CPU per request: {cpu:.2f}x (the native reader is one "
        "thread; granian spreads its share over a Rust and a Python thread)"
    )
    for other in med:
        if other not in ("nginx", "reader"):
            print(f"  {other} / nginx: {med[other].rps / med['nginx'].rps:.2f}x")
    for other in med:  # the same-run comparisons that survive a busy machine
        if other.startswith("reader@") or other in ("bare granian", "reader granian"):
            rounds = [r.rps / o.rps for r, o in zip(results["reader"], results[other], strict=True)]
            print(
                f"  reader / {other}: throughput {med['reader'].rps / med[other].rps:.2f}x "
                f"(per-round median {statistics.median(rounds):.2f}x), server CPU per request "
                f"{med['reader'].cpu_us / med[other].cpu_us:.2f}x, p99 "
                f"{med['reader'].p99 / med[other].p99:.2f}x"
            )
    print(
        f"  reader's own Python per hot request, in process (no HTTP): {inproc_us:.1f} us of its "
        f"{med['reader'].cpu_us:.1f} us server CPU per request"
        + (
            f"; bare granian's HTTP alone: {med['bare granian'].cpu_us:.1f} us"
            if "bare granian" in med
            else ""
        )
        + f"; the bare native server's: {med['bare native'].cpu_us:.1f} us"
    )
    print(
        f"  connection watcher's sample, once a second: {sample_ms[0]:.1f} ms (own sockets), "
        f"psutil "
        f"{sample_ms[1]:.1f} ms ({sample_ms[1] / max(sample_ms[0], 1e-6):.1f}x) with "
        f"{args.connections} connections and {_tcp_sockets()} TCP sockets on the host"
    )
    p99 = med["reader"].p99
    print(
        f"  p99: reader {p99:.2f} ms, nginx {med['nginx'].p99:.2f} ms in the same run "
        f"({p99 / med['nginx'].p99:.2f}x); p95 reader {med['reader'].p95:.2f} ms, nginx "
        f"{med['nginx'].p95:.2f} ms"
    )
    throughput = "met" if ratio >= 0.5 else "NOT met"
    tail = "met" if p99 <= 2.0 else "NOT met"
    print(f"  goal >= 0.5x nginx: {throughput}; goal p99 <= 2 ms at -c{args.connections}: {tail}")
    print(f"  load average at the end {os.getloadavg()[0]:.1f} (the machine is shared)")
    if os.getloadavg()[0] > 1.5:
        print(
            "  NOTE: the machine was busy: trust the CPU-per-request and same-run ratios over req/s"
        )


def _tcp_sockets() -> int:
    tables = ("/proc/net/tcp", "/proc/net/tcp6")
    try:
        return sum(len(Path(t).read_bytes().splitlines()) - 1 for t in tables)
    except OSError:
        return -1


if __name__ == "__main__":
    sys.exit(main())
