"""Warming through a clock's failure: two real `warmfleet clock` processes on the local Kafka
(every instant weekend, warmed every second; floors 0.5 s), a consumer of ``warm.jobs``.

Per round and scenario it prints how long no job was issued at all around the fault, and
the longest wait between two jobs of one (exchange, data type) — against that job's 1 s
interval in the same run:

* ``kill``: SIGKILL the leader (the standby waits out the session timeout, 6 s);
* ``term``: SIGTERM the leader (it leaves the group: the standby leads at once);
* ``redis-down``: stop the fleet's Redis (a private redis-server of this bench): jobs per
  second during 12 s without Redis / the 12 s before.

    .venv/bin/python bench/bench_clock_failover.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path

from aiokafka import AIOKafkaConsumer

from schedules import CLOCK_HEADER, DEFAULT_PATH
from stack._services import redis_answers, redis_command
from topics import WARM_JOBS
from topics.records import WarmJob
from workers.agents import drop_namespace

FAST = (
    DEFAULT_PATH.read_text(encoding="utf-8")
    .replace('trading_days = ["mon", "tue", "wed", "thu", "fri"]', "trading_days = []")
    .replace("weekend = 600", "weekend = 1")
    .replace("min_interval_s = 5", "min_interval_s = 0.5")
)


class PrivateRedis:
    """A redis-server of this bench's own on a free port (the shared one is never touched)."""

    def __init__(self, data_dir: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = subprocess.Popen(
            redis_command(self.port, data_dir), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while not redis_answers(self.port):
            if time.monotonic() > deadline:
                raise RuntimeError("private redis did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class Jobs:
    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap, self.topic = bootstrap, topic
        self.seen: list[tuple[float, str, WarmJob]] = []  # (monotonic, owner, job)

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(self.topic, bootstrap_servers=self.bootstrap,
                                    auto_offset_reset="earliest", group_id=None)  # fmt: skip
        await consumer.start()
        try:
            async for msg in consumer:
                owner = dict(msg.headers)[CLOCK_HEADER].decode()
                self.seen.append((time.monotonic(), owner, WarmJob.loads(msg.value)))
        finally:
            await consumer.stop()

    async def leader(self) -> str:
        while len(self.seen) < 12:  # noqa: ASYNC110 (polling a list another task fills)
            await asyncio.sleep(0.1)
        await asyncio.sleep(2)
        owners = {o for _, o, _ in self.seen}
        assert len(owners) == 1, owners
        return owners.pop()

    def gaps(self, since: float, until: float) -> tuple[float, float]:
        """(longest time without any job, longest wait of one key / its interval), the wait
        from the last job to ``until`` included."""
        times = [t for t, _, _ in self.seen if since <= t < until] + [until]
        per_key: dict[tuple[str, str], list[WarmJob]] = defaultdict(list)
        for t, _, job in self.seen:
            if since <= t < until:
                per_key[(job.exchange, job.data_type)].append(job)
        end_ms = time.time() * 1000 - (time.monotonic() - until) * 1000
        any_gap = max((b - a for a, b in itertools.pairwise(times)), default=0.0)
        # the wait between two jobs of one key, in units of the interval the first published
        key_gap = max(
            max(((b.issued_ms - a.issued_ms) / 1000 / a.interval_s
                 for a, b in itertools.pairwise(seq)), default=0.0)
            for seq in per_key.values()
        )  # fmt: skip
        key_gap = max([key_gap] + [(end_ms - seq[-1].issued_ms) / 1000 / seq[-1].interval_s
                                   for seq in per_key.values()])  # fmt: skip
        return any_gap, key_gap


def spawn(env: dict[str, str], log: Path, source: str | None) -> subprocess.Popen[bytes]:
    """`warmfleet clock`, from ``source`` when given (``-m`` imports from the working
    directory first, so the baseline runs there)."""
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "workers.cli", "clock"], env=env,
                                cwd=source, stdout=out, stderr=subprocess.STDOUT)  # fmt: skip


async def round_(bootstrap: str, scenario: str, tmp: Path, source: str | None) -> dict[str, float]:
    ns = f"bclk{uuid.uuid4().hex[:8]}."
    redis = PrivateRedis(tmp)
    phases = tmp / "phases.toml"
    phases.write_text(FAST, encoding="utf-8")
    env = {**os.environ, "WARMFLEET_NAMESPACE": ns, "WARMFLEET_PHASES": str(phases),
           "WARMFLEET_KAFKA_URL": f"kafka://{bootstrap}", "WARMFLEET_REDIS_URL": redis.url,
           "WARMFLEET_LOG_FORMAT": "json", "WARMFLEET_METRICS_PORT": "0"}  # fmt: skip
    if source:
        env["PYTHONPATH"] = source
    jobs = Jobs(bootstrap, WARM_JOBS.named(ns))
    pump = asyncio.create_task(jobs.run())
    procs = [spawn(env, tmp / f"{ns}{i}.log", source) for i in range(2)]
    try:
        leader = await jobs.leader()
        victim = next(p for p in procs if p.pid == int(leader.split(":")[-2]))
        before = time.monotonic()
        await asyncio.sleep(12 if scenario == "redis-down" else 3)
        fault = time.monotonic()
        if scenario == "kill":
            victim.send_signal(signal.SIGKILL)
        elif scenario == "term":
            victim.send_signal(signal.SIGTERM)
        else:
            redis.stop()
        await asyncio.sleep(12)
        end = time.monotonic()
        any_gap, key_gap = jobs.gaps(before, end)
        n_before = sum(1 for t, _, _ in jobs.seen if before <= t < fault)
        n_during = sum(1 for t, _, _ in jobs.seen if fault <= t < end)
        rates = (n_during / (end - fault)) / (n_before / (fault - before))
        return {"no_job_s": any_gap, "key_gap": key_gap, "rate_ratio": rates}
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
        pump.cancel()
        await asyncio.gather(pump, return_exceptions=True)
        redis.stop()
        await drop_namespace(bootstrap, [ns])


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scenarios", default="kill,term,redis-down")
    parser.add_argument(
        "--baseline-src",
        metavar="DIR",
        help="also run every scenario with the clock of another source tree (e.g. an export "
        "of main: `git archive main | tar -x -C DIR`), in the same run",
    )
    args = parser.parse_args()
    bootstrap = os.environ.get("WARMFLEET_KAFKA_URL", "kafka://127.0.0.1:9092")
    bootstrap = bootstrap.removeprefix("kafka://").split(",")[0]
    with tempfile.TemporaryDirectory(prefix="bench-clock-") as tmp:
        for scenario, source in itertools.product(
            args.scenarios.split(","), [None, *([args.baseline_src] if args.baseline_src else [])]
        ):
            rows = [
                await round_(bootstrap, scenario, Path(tmp), source) for _ in range(args.rounds)
            ]
            med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
            which = "baseline" if source else "this"
            print(
                f"{which:8s} {scenario:11s} no job at all for {med['no_job_s']:5.2f} s; "
                f"longest wait of one key x{med['key_gap']:.1f} its interval; jobs/s after/before "
                f"{med['rate_ratio']:.2f}  [rounds, no-job s / wait x: "
                + ", ".join(f"{r['no_job_s']:.2f}/{r['key_gap']:.1f}" for r in rows)
                + "]"
            )


if __name__ == "__main__":
    asyncio.run(main())
