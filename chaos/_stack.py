"""The chaos suite's own faults stack: its own state dir and ports, never the shared stack
(other people's tests run on 9092 / 6379 / 11211 while servers are killed here)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from stack import Ports, StackConfig, down, status, up
from stack._manager import default_home

DEFAULT_BASE_PORT = 28400
SHARED = {9092, 9093, 6379, 11211, 8474}


def faults_stack(base_port: int, stack_dir: Path | None = None) -> StackConfig:
    """kafka base+1, its controller base+2, redis base+3, memcached base+4, the simulator
    base+5, toxiproxy's API base+10 and its proxies base+11 .. base+15."""
    ports = Ports(
        kafka=base_port + 1,
        kafka_controller=base_port + 2,
        redis=base_port + 3,
        memcached=base_port + 4,
        sim=base_port + 5,
        toxiproxy=base_port + 10,
    )
    taken = SHARED & {ports.kafka, ports.kafka_controller, ports.redis, ports.memcached,
                      *range(ports.toxiproxy, ports.toxiproxy + 6)}  # fmt: skip
    if taken or base_port + 15 > 65535 or base_port < 1024:
        raise ValueError(f"--base-port {base_port}: the chaos stack would take {sorted(taken)} "
                         "or leave the port range; choose another")  # fmt: skip
    directory = stack_dir or default_home() / f"chaos-stack-{base_port}"
    return StackConfig(ports=ports, stack_dir=directory, faults=True, kafka_ready_timeout_s=240.0)


@contextlib.asynccontextmanager
async def chaos_stack(cfg: StackConfig, say: Callable[[str], None], keep: bool = False
                      ) -> AsyncIterator[StackConfig]:  # fmt: skip
    """Up for the block; down afterwards unless it was already running or ``keep``."""
    was_running = status(cfg)["running"]
    await asyncio.to_thread(up, cfg, say)
    try:
        yield cfg
    finally:
        if not was_running and not keep:
            await asyncio.to_thread(down, cfg, say)
