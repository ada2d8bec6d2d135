"""The pipeline the ``multitier`` arm reads from: started by the experiment in its own
namespace on the local stack (sim, phase clock held at market hours, pollers, analytics
worker — what ``warmfleet run`` starts, minus the HTTP reader), or a running one
(``--attach``). Also samples the fleet's CPU and memory with psutil."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import structlog

log = structlog.get_logger(__name__)

#: the fleet proper (the simulator is the exchange, not the fleet)
FLEET_ROLES = ("clock", "poller", "worker")


class FleetError(Exception):
    """The pipeline could not be started or did not come up."""


@dataclass(frozen=True, slots=True)
class StackURLs:
    kafka: str
    redis: str
    memcached: str

    @classmethod
    def from_env(cls) -> StackURLs:
        env = os.environ.get
        return cls(
            env("WARMFLEET_KAFKA_URL", "kafka://127.0.0.1:9092"),
            env("WARMFLEET_REDIS_URL", "redis://127.0.0.1:6379/0"),
            env("WARMFLEET_MEMCACHED_URL", "memcached://127.0.0.1:11211"),
        )

    def unreachable(self) -> list[str]:
        """The servers that do not accept a TCP connection (first address of each)."""
        from urllib.parse import urlsplit

        missing = []
        for name, url in (("Kafka", self.kafka), ("Redis", self.redis),
                          ("Memcached", self.memcached)):  # fmt: skip
            first = url.split("://", 1)[-1].split(",")[0]
            parts = urlsplit(f"x://{first}")
            host, port = parts.hostname or "127.0.0.1", parts.port
            try:
                socket.create_connection((host, port or 0), timeout=2).close()
            except OSError:
                missing.append(f"{name} at {host}:{port} does not answer")
        return missing


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _command() -> list[str]:
    # the installed `warmfleet` script next to this interpreter, else the module
    script = Path(sys.executable).with_name("warmfleet")
    return [str(script)] if script.exists() else [sys.executable, "-m", "workers.cli"]


def sim_state(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url.rstrip("/") + "/admin/state", timeout=5) as response:
        state: dict[str, Any] = json.loads(response.read())
    return state


@dataclass
class Fleet:
    """A started (or attached) pipeline: its namespace, key prefix, simulator URL and
    processes."""

    namespace: str
    prefix: str
    sim_url: str
    stack: StackURLs
    owned: bool
    log_dir: Path | None = None
    procs: dict[str, asyncio.subprocess.Process] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)  # role -> pid (attach: found ones)

    def died(self) -> dict[str, int]:
        return {n: p.returncode for n, p in self.procs.items() if p.returncode is not None}


async def start(
    stack: StackURLs, *, seed: int, symbols: int, latency_s: float, jitter_s: float,
    log_dir: Path, hold_for_s: float,
) -> Fleet:  # fmt: skip
    tag = uuid.uuid4().hex[:8]
    fleet = Fleet(f"ab{tag}.", f"ab{tag}", f"http://127.0.0.1:{free_port()}", stack, True,
                  log_dir)  # fmt: skip
    await asyncio.to_thread(log_dir.mkdir, parents=True, exist_ok=True)
    port = fleet.sim_url.rsplit(":", 1)[1]
    env = {
        **os.environ, "WARMFLEET_NAMESPACE": fleet.namespace, "WARMFLEET_KEY_PREFIX": fleet.prefix,
        "WARMFLEET_KAFKA_URL": stack.kafka, "WARMFLEET_REDIS_URL": stack.redis,
        "WARMFLEET_MEMCACHED_URL": stack.memcached, "WARMFLEET_LOG_FORMAT": "json",
        "WARMFLEET_METRICS_PORT": "0",
        "WARMFLEET_EXCHANGE_URLS": f"binance={fleet.sim_url},okx={fleet.sim_url}",
    }  # fmt: skip
    minutes = max(1, int(hold_for_s / 60) + 2)
    held = await asyncio.create_subprocess_exec(
        *_command(), "phase", "set", "market_hours", "--for", f"{minutes}m", env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await held.communicate()
    if held.returncode != 0:
        raise FleetError(f"could not hold the market_hours phase: {err.decode().strip()}")
    roles: dict[str, Sequence[str]] = {
        "sim": ("sim", "--port", port, "--seed", str(seed), "--symbols", str(symbols),
                "--latency", f"{latency_s * 1000:g}ms", "--jitter", f"{jitter_s * 1000:g}ms"),
        "clock": ("clock",),
        "poller": ("poller",),
        "worker": ("worker",),
    }  # fmt: skip
    try:
        for role, argv in roles.items():
            with (log_dir / f"{role}.log").open("ab") as out:
                fleet.procs[role] = await asyncio.create_subprocess_exec(
                    *_command(), *argv, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=out,
                    stderr=asyncio.subprocess.STDOUT, start_new_session=True,
                )  # fmt: skip
            fleet.pids[role] = fleet.procs[role].pid
            if role == "sim":
                await _wait_sim(fleet)
    except BaseException:
        await stop(fleet)
        raise
    return fleet


async def _wait_sim(fleet: Fleet, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if fleet.procs["sim"].returncode is not None:
            raise FleetError(f"the simulator exited; see {fleet.log_dir}/sim.log")
        with contextlib.suppress(OSError, ValueError):
            await asyncio.to_thread(sim_state, fleet.sim_url)
            return
        await asyncio.sleep(0.2)
    raise FleetError(f"the simulator did not answer within {timeout_s:g} s")


def attach(stack: StackURLs, sim_url: str) -> Fleet:
    """The running fleet of this environment's namespace (``WARMFLEET_NAMESPACE``, key prefix
    ``WARMFLEET_KEY_PREFIX``); its processes are found by their environment."""
    namespace = os.environ.get("WARMFLEET_NAMESPACE", "")
    prefix = os.environ.get("WARMFLEET_KEY_PREFIX", "virt")
    fleet = Fleet(namespace, prefix, sim_url, stack, False)
    me = os.getpid()
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            cmd = proc.info["cmdline"] or []
            role = next((r for r in FLEET_ROLES if r in cmd[1:4]), None)
            if role is None or proc.pid == me or not any("warmfleet" in c or "workers.cli" in c
                                                         for c in cmd[:3]):  # fmt: skip
                continue
            if proc.environ().get("WARMFLEET_NAMESPACE", "") == namespace:
                fleet.pids.setdefault(role, proc.pid)
        except (psutil.Error, OSError):
            continue
    return fleet


async def stop(fleet: Fleet, grace_s: float = 15.0) -> None:
    """SIGTERM every process the experiment started, SIGKILL after ``grace_s``; then drop
    the namespace's topics and the phase override."""
    procs = fleet.procs
    for proc in procs.values():
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(asyncio.gather(*(p.wait() for p in procs.values())), grace_s)
    except TimeoutError:
        for name, proc in procs.items():
            if proc.returncode is None:
                log.warning("ab_child_killed_after_grace", child=name, grace_s=grace_s)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
        await asyncio.gather(*(p.wait() for p in procs.values()))
    if fleet.owned:
        await _drop_namespace(fleet)


async def _drop_namespace(fleet: Fleet) -> None:
    from topics.kafka import drop_namespace

    bootstrap = fleet.stack.kafka.split("://", 1)[-1]
    try:
        await asyncio.wait_for(drop_namespace(bootstrap, [fleet.namespace]), 60)
    except Exception as exc:  # cleanup only: the measurement stands without it
        log.warning("ab_namespace_not_dropped", namespace=fleet.namespace, error=str(exc))


class ResourceSampler:
    """CPU (% of the whole machine) and resident memory of the fleet's processes (and
    their children), sampled every second with psutil."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.procs: dict[str, psutil.Process] = {}
        for role, pid in pids.items():
            with contextlib.suppress(psutil.Error):
                self.procs[role] = psutil.Process(pid)
        self.cores = psutil.cpu_count() or 1
        self.cpu: list[float] = []  # fleet share of all cores, per sample
        self.rss: list[float] = []  # bytes, summed
        self._task: asyncio.Task[None] | None = None

    def _tree(self) -> list[psutil.Process]:
        out = []
        for role, proc in self.procs.items():
            if role not in FLEET_ROLES:
                continue
            out.append(proc)
            with contextlib.suppress(psutil.Error):
                out.extend(proc.children(recursive=True))
        return out

    def _sample(self, prime: bool = False) -> None:
        cpu = rss = 0.0
        for proc in self._tree():
            with contextlib.suppress(psutil.Error):
                cpu += proc.cpu_percent(None)
                rss += proc.memory_info().rss
        if not prime:
            self.cpu.append(cpu / self.cores)
            self.rss.append(rss)

    async def _loop(self) -> None:
        self._sample(prime=True)
        while True:
            await asyncio.sleep(1.0)
            self._sample()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def summary(self) -> dict[str, Any]:
        return {
            "processes": {r: p.pid for r, p in self.procs.items() if r in FLEET_ROLES},
            "samples": len(self.cpu),
            "cpu_pct_mean": sum(self.cpu) / len(self.cpu) if self.cpu else None,
            "cpu_pct_max": max(self.cpu) if self.cpu else None,
            "rss_bytes_max": max(self.rss) if self.rss else None,
            "cores": self.cores,
        }


def log_dir_default() -> Path:
    home = Path(os.environ.get("WARMFLEET_HOME", Path.home() / ".cache" / "warmfleet"))
    return home / "ab"


__all__ = ["Fleet", "FleetError", "ResourceSampler", "StackURLs", "attach", "start", "stop"]
