"""The faults: what each scenario breaks, how it restores, and which goals it is held to.

A scenario is data (name, kind, durations) plus two steps, ``inject`` and ``restore``, run
against a :class:`Ctx` (the faults stack, its toxiproxy, the fleet). The runner measures
around them.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Literal

from chaos._fleet import Fleet
from stack import StackConfig, status, up
from stack._toxiproxy import Toxic, Toxiproxy

Kind = Literal["tier", "kafka", "worker", "clock", "exchange"]
Say = Callable[[str], None]


@dataclass
class Ctx:
    stack: StackConfig
    toxiproxy: Toxiproxy
    fleet: Fleet
    say: Say
    #: set by inject, read by restore (a pid, a toxic's name)
    notes: dict[str, object] = field(default_factory=dict)

    def server_pid(self, name: str) -> int:
        return int(status(self.stack)["processes"][name]["pid"])

    async def restart_server(self, name: str) -> None:
        """Start a killed server again, as `warmfleet stack up` would (same ports, same data
        dir; the stack's Redis has no persistence, so it comes back empty)."""
        cfg = replace(self.stack, services=(name,))
        await asyncio.to_thread(up, cfg, self.say)


Step = Callable[[Ctx], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    kind: Kind
    what: str  # one line for the table and the docs
    inject: Step
    restore: Step
    tier: str | None = None  # the tier whose breaker must close again
    fault_s: float = 8.0  # from inject to restore
    after_s: float = 15.0  # observed after restore
    slow: bool = False  # run by `make chaos`, not by `make test`
    #: the phase held from the start of the load (the fleet always warms at market hours)
    phase: str = "market_hours"


def _kill(server: str) -> Step:
    async def step(ctx: Ctx) -> None:
        pid = ctx.server_pid(server)
        os.kill(pid, signal.SIGKILL)
        ctx.say(f"SIGKILL {server} pid {pid}")

    return step


def _restart(server: str) -> Step:
    async def step(ctx: Ctx) -> None:
        await ctx.restart_server(server)

    return step


def _freeze(server: str) -> Step:
    async def step(ctx: Ctx) -> None:
        pid = ctx.server_pid(server)
        os.kill(pid, signal.SIGSTOP)
        ctx.notes["frozen"] = pid
        ctx.say(f"SIGSTOP {server} pid {pid}")

    return step


async def _thaw(ctx: Ctx) -> None:
    pid = int(str(ctx.notes.pop("frozen")))
    os.kill(pid, signal.SIGCONT)
    ctx.say(f"SIGCONT pid {pid}")


def _toxic(proxy: str, toxic: Toxic) -> Step:
    async def step(ctx: Ctx) -> None:
        name = await ctx.toxiproxy.add_toxic(proxy, toxic)
        ctx.notes["toxic"] = (proxy, name)
        ctx.say(f"toxiproxy: {toxic.type} {toxic.attributes} on {proxy} ({toxic.stream})")

    return step


async def _untoxic(ctx: Ctx) -> None:
    toxic = ctx.notes.pop("toxic")
    assert isinstance(toxic, tuple)
    proxy, name = str(toxic[0]), str(toxic[1])
    await ctx.toxiproxy.remove_toxic(str(proxy), str(name))
    ctx.say(f"toxiproxy: removed {name} from {proxy}")


def _tier_scenarios(tier: str) -> list[Scenario]:
    return [
        Scenario(f"{tier}-kill", "tier", f"SIGKILL {tier}, restart (empty) after 8 s",
                 _kill(tier), _restart(tier), tier=tier),
        Scenario(f"{tier}-freeze", "tier", f"SIGSTOP {tier} for 8 s, then SIGCONT",
                 _freeze(tier), _thaw, tier=tier),
        Scenario(f"{tier}-latency", "tier", f"+200 ms on every {tier} answer for 8 s",
                 _toxic(tier, Toxic("latency", {"latency": 200})), _untoxic, tier=tier),
        Scenario(f"{tier}-reset", "tier", f"every {tier} connection reset (TCP RST) for 8 s",
                 _toxic(tier, Toxic("reset_peer", {"timeout": 0})), _untoxic, tier=tier),
    ]  # fmt: skip


async def _kill_worker(ctx: Ctx) -> None:
    ctx.say(f"SIGKILL worker pid {ctx.fleet.pid('worker')}")
    await ctx.fleet.kill("worker")


async def _start_worker(ctx: Ctx) -> None:
    await ctx.fleet.start("worker")
    ctx.say(f"worker started again, pid {ctx.fleet.pid('worker')}")


async def _kill_leader(ctx: Ctx) -> None:
    scraped = await ctx.fleet.scrape()
    leaders = [
        c for c in ("clock-a", "clock-b")
        if scraped.get(c, {}).get(("warmfleet_clock_is_leader", ()), 0.0) == 1.0
    ]  # fmt: skip
    if not leaders:
        raise RuntimeError("clock-kill: no clock reports warmfleet_clock_is_leader 1")
    ctx.notes["killed_clock"] = leaders[0]
    ctx.say(f"SIGKILL the leading {leaders[0]} pid {ctx.fleet.pid(leaders[0])}")
    await ctx.fleet.kill(leaders[0])


async def _start_clock(ctx: Ctx) -> None:
    # the standby took over by itself; the killed clock comes back as the new standby
    await ctx.fleet.start(str(ctx.notes["killed_clock"]))


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in [
        Scenario("kafka-kill", "kafka", "SIGKILL the broker, restart it after 20 s",
                 _kill("kafka"), _restart("kafka"), fault_s=20.0, after_s=45.0, slow=True),
        *_tier_scenarios("redis"),
        *_tier_scenarios("memcached"),
        Scenario("exchange-partition", "exchange",
                 "binance's traffic times out at its proxy (okx untouched) for 15 s",
                 _toxic("sim-binance", Toxic("timeout", {"timeout": 0})), _untoxic,
                 fault_s=15.0, after_s=25.0),
        Scenario("worker-kill", "worker", "SIGKILL the analytics worker, start it after 5 s",
                 _kill_worker, _start_worker, fault_s=5.0, after_s=40.0),
        Scenario("clock-kill", "clock",
                 "SIGKILL the leading clock; the standby takes over; the killed one restarts "
                 "as standby after 8 s", _kill_leader, _start_clock, fault_s=8.0, after_s=20.0),
        Scenario("redis-empty-restart", "tier",
                 "phase weekend (600 s warms); Redis restarted empty, refill watched 60 s",
                 _kill("redis"), _restart("redis"), tier="redis", fault_s=1.0, after_s=60.0,
                 slow=True, phase="weekend"),
    ]
}  # fmt: skip
FAST = [name for name, s in SCENARIOS.items() if not s.slow]
SLOW = [name for name, s in SCENARIOS.items() if s.slow]
