"""The whole pipeline as a user runs it: `warmfleet sim`, two `warmfleet clock`s (a leader and
a standby), `warmfleet poller`, `warmfleet worker` and `warmfleet reader`, each a child
process of its own (so one can be SIGKILLed and started again), on one namespace.

The children are started through the ``warmfleet`` command, never by module path: the
commands are the contract, the modules behind them move.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

CHILDREN = ("sim", "clock-a", "clock-b", "poller", "worker", "reader")
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def warmfleet_command() -> list[str]:
    """The installed ``warmfleet`` next to this interpreter (the venv's), else on PATH."""
    beside = Path(sys.executable).parent / "warmfleet"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("warmfleet")
    if found is None:
        raise RuntimeError("the `warmfleet` command is not installed (pip install -e .)")
    return [found]


def parse(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def total(samples: Samples, name: str, **match: str) -> float:
    return sum(
        value
        for (sample, labels), value in samples.items()
        if sample == name and all(dict(labels).get(k) == v for k, v in match.items())
    )


@dataclass(frozen=True, slots=True)
class FleetConfig:
    """Where the fleet finds the (faults) stack and which ports its processes take."""

    namespace: str
    kafka: str  # host:port (the proxy)
    redis_url: str
    memcached: str  # host:port (the proxy)
    exchange_urls: str  # binance=http://proxy,okx=http://proxy
    sim_port: int
    reader_port: int
    metrics_base: int  # poller, worker, clock-a, clock-b: base .. base+3
    log_dir: Path
    phase: str = "market_hours"

    @property
    def key_prefix(self) -> str:
        return self.namespace.rstrip(".")

    def metrics_port(self, child: str) -> int:
        return self.metrics_base + ("poller", "worker", "clock-a", "clock-b").index(child)

    def endpoints(self) -> dict[str, str]:
        url = "http://127.0.0.1:{}/metrics".format
        out = {c: url(self.metrics_port(c)) for c in ("poller", "worker", "clock-a", "clock-b")}
        out["reader"] = url(self.reader_port)
        return out


@dataclass
class Fleet:
    cfg: FleetConfig
    procs: dict[str, asyncio.subprocess.Process] = field(default_factory=dict)
    #: the last metrics each incarnation of a child showed (a killed one keeps its last)
    incarnations: dict[str, list[Samples]] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "WARMFLEET_NAMESPACE": self.cfg.namespace,
            "WARMFLEET_KEY_PREFIX": self.cfg.key_prefix,
            "WARMFLEET_KAFKA_URL": f"kafka://{self.cfg.kafka}",
            "WARMFLEET_REDIS_URL": self.cfg.redis_url,
            "WARMFLEET_MEMCACHED_URL": f"memcached://{self.cfg.memcached}",
            "WARMFLEET_EXCHANGE_URLS": self.cfg.exchange_urls,
            "WARMFLEET_LOG_FORMAT": "json",
        }

    def _argv(self, child: str) -> tuple[list[str], dict[str, str]]:
        if child == "sim":
            return ["sim", "--port", str(self.cfg.sim_port), "--seed", "7"], {}
        if child.startswith("clock"):
            return ["clock"], {"WARMFLEET_METRICS_PORT": str(self.cfg.metrics_port(child))}
        if child == "reader":
            return ["reader", "--port", str(self.cfg.reader_port)], {}
        return [child], {"WARMFLEET_METRICS_PORT": str(self.cfg.metrics_port(child))}

    async def hold_phase(self, phase: str | None = None, minutes: int = 30) -> None:
        """`warmfleet phase set PHASE --for Nm`, as `warmfleet run --phase` does."""
        proc = await asyncio.create_subprocess_exec(
            *warmfleet_command(), "phase", "set", phase or self.cfg.phase, "--for", f"{minutes}m",
            env=self.env(), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await asyncio.wait_for(proc.communicate(), 60)
        if proc.returncode != 0:
            raise RuntimeError(f"warmfleet phase set failed: {err.decode().strip()}")

    async def start(self, child: str) -> None:
        argv, extra = self._argv(child)
        self.cfg.log_dir.mkdir(parents=True, exist_ok=True)
        out = (self.cfg.log_dir / f"{child}.log").open("ab")
        try:
            self.procs[child] = await asyncio.create_subprocess_exec(
                *warmfleet_command(), *argv,
                env={**self.env(), **extra},
                stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        finally:
            out.close()
        self.incarnations.setdefault(child, []).append({})

    async def start_all(self) -> None:
        await self.hold_phase()
        for child in CHILDREN:
            await self.start(child)

    def pid(self, child: str) -> int:
        return self.procs[child].pid

    async def kill(self, child: str) -> None:
        """SIGKILL the child's whole process group and reap it."""
        proc = self.procs[child]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()

    async def stop(self, child: str, grace_s: float = 15.0) -> None:
        proc = self.procs.get(child)
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), grace_s)
        except TimeoutError:
            await self.kill(child)

    async def stop_all(self) -> None:
        await asyncio.gather(*(self.stop(c) for c in list(self.procs)))

    def exited(self) -> dict[str, int]:
        return {c: p.returncode for c, p in self.procs.items() if p.returncode is not None}

    async def scrape(self, timeout_s: float = 1.0) -> dict[str, Samples]:
        """Every live child's /metrics; also kept as that incarnation's last figures."""
        out: dict[str, Samples] = {}
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:

            async def one(name: str, url: str) -> None:
                try:
                    async with session.get(url) as resp:
                        if resp.status == 200:
                            out[name] = parse(await resp.text())
                except (aiohttp.ClientError, TimeoutError, ValueError):
                    pass

            await asyncio.gather(*(one(n, u) for n, u in self.cfg.endpoints().items()))
        for name, samples in out.items():
            if self.incarnations.get(name):
                self.incarnations[name][-1] = samples
        return out

    def counter_over_incarnations(self, child: str, name: str, **match: str) -> float:
        """A counter summed over every incarnation of a child (each restart starts at 0)."""
        return sum(total(s, name, **match) for s in self.incarnations.get(child, []))
