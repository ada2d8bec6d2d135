"""`warmfleet clock` (the phase clock process) and `warmfleet phase set|clear|show`.

A thin shell: settings from ``WARMFLEET_*``, the phases file from ``WARMFLEET_PHASES``
(default: the packaged ``schedules/phases.toml``), everything else in ``schedules``.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import structlog

from topics import ConfigError, redact
from workers.logs import configure_logging
from workers.settings import Settings

HELP = "the phase clock (`clock`) and its manual override (`phase set|clear|show`)"
log = structlog.get_logger(__name__)

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(text: str) -> float:
    """``30m``, ``90s``, ``2h``, ``1h30m`` -> seconds."""
    m = _DURATION.match(text.strip())
    if not text.strip() or m is None or not any(m.groups()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 30m, 90s, 2h, 1h30m")
    h, mi, s = (int(g or 0) for g in m.groups())
    seconds = float(h * 3600 + mi * 60 + s)
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: the duration must be positive")
    return seconds


def configure(parser: argparse.ArgumentParser) -> None:
    from schedules import Phase

    parser.add_argument(
        "--phases",
        default=None,
        metavar="PATH",
        help="phases file (default: $WARMFLEET_PHASES or the packaged schedules/phases.toml)",
    )
    if parser.prog.split()[-1] == "clock":
        parser.set_defaults(clock_command="clock")
        parser.add_argument(
            "--lease-ttl",
            type=float,
            default=6.0,
            metavar="S",
            help="how long a dead leader keeps the lead: the election group's session timeout "
            "(default 6, Kafka's default floor)",
        )
        parser.add_argument(
            "--renew-every",
            type=float,
            default=1.5,
            metavar="S",
            help="how often the leader renews its lead, a commit to control.clock (default 1.5)",
        )
        parser.add_argument(
            "--catch-up-ramp",
            type=float,
            default=10.0,
            metavar="S",
            help="a new leader fires the jobs that are overdue spread over this (default 10)",
        )
        parser.add_argument(
            "--check",
            action="store_true",
            help="validate the phases file, print a summary and exit",
        )
        return
    sub = parser.add_subparsers(dest="clock_command", metavar="ACTION", required=True)
    set_ = sub.add_parser("set", help="hold a phase for a while (expires by itself)")
    set_.add_argument("phase", choices=[p.value for p in Phase])
    set_.add_argument(
        "--for",
        dest="duration",
        type=parse_duration,
        default=1800.0,
        metavar="DURATION",
        help="how long: 30m, 90s, 2h, 1h30m (default 30m)",
    )
    set_.add_argument("--json", action="store_true")
    clear = sub.add_parser("clear", help="drop the override: the calendar rules again")
    clear.add_argument("--json", action="store_true")
    show = sub.add_parser("show", help="current phase, source, intervals, next transition")
    show.add_argument("--json", action="store_true")
    show.add_argument(
        "--at",
        default=None,
        metavar="ISO",
        help="the calendar at this time instead (no Kafka), e.g. 2026-12-24T10:00-05:00",
    )


def run(args: argparse.Namespace) -> int:
    from schedules import default_path, load_config

    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_format)  # type: ignore[arg-type]
    path = args.phases or default_path()
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(f"warmfleet: invalid phases config: {exc}", file=sys.stderr)
        return 2
    if args.clock_command == "clock":
        if args.check:
            return _check(config)
        return asyncio.run(_clock(settings, config, args))
    return asyncio.run(_phase(settings, config, args))


def _check(config: Any) -> int:
    from schedules import Phase, jobs

    cal = config.calendar
    print(f"{config.source}: ok")
    print(f"  timezone {cal.timezone.key}, {len(cal.holidays)} holidays, jobs:")
    for key in jobs(config):
        row = " ".join(f"{p.value}={cal.interval(p, key.data_type):g}s" for p in Phase)
        print(f"    {key.exchange}/{key.data_type.value}: {row}")
    return 0


async def _clock(settings: Settings, config: Any, args: argparse.Namespace) -> int:
    from schedules import ClockError, PhaseClock
    from topics import BrokerUnavailable

    if settings.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.metrics_port)
    from tiers import HeatView

    hot_set = HeatView(settings.redis_url, prefix=settings.key_prefix)  # docs/clock.md
    clock = PhaseClock(
        config,
        bootstrap_servers=list(settings.kafka_servers),
        namespace=settings.namespace,
        session_timeout_s=args.lease_ttl,
        heartbeat_s=args.renew_every,
        catch_up_ramp_s=args.catch_up_ramp,
        kafka_options=settings.kafka_client_options(),
        hot_set=hot_set,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info(
        "clock_process",
        owner=clock.owner,
        kafka=redact(settings.kafka_url),
        metrics_port=settings.metrics_port,
    )
    try:
        await clock.run(stop)
    except (ClockError, BrokerUnavailable) as exc:
        log.error("clock_failed", error=str(exc))
        return 1
    finally:
        await hot_set.close()
    return 0


def _when(ms: int | None, tz: Any) -> str:
    if ms is None:
        return "never"
    t = datetime.fromtimestamp(ms / 1000, tz=UTC)
    delta = timedelta(seconds=round(t.timestamp() - datetime.now(UTC).timestamp()))
    return f"{t.astimezone(tz):%Y-%m-%d %H:%M:%S %Z} (in {delta})"


async def _phase(settings: Settings, config: Any, args: argparse.Namespace) -> int:
    from schedules import ClockError, OverrideLog, Phase, resolve

    tz = config.calendar.timezone
    if args.clock_command == "show" and args.at:
        try:
            at = datetime.fromisoformat(args.at)
        except ValueError:
            print(f"warmfleet phase show: --at {args.at!r} is not an ISO time", file=sys.stderr)
            return 2
        at = at if at.tzinfo else at.replace(tzinfo=tz)
        return _print_state(resolve(config, at), None, args.json, tz, live=False)
    servers = list(settings.kafka_servers)
    kafka = settings.kafka_client_options()
    store = OverrideLog(servers, settings.namespace, kafka)
    try:
        if args.clock_command == "set":
            ov = await store.set(Phase(args.phase), args.duration, by="cli")
            body = {"phase": ov.phase.value, "until": ov.until.isoformat(), "topic": store.topic}
            if args.json:
                print(orjson.dumps(body).decode())
            else:
                until = _when(round(ov.until.timestamp() * 1000), tz)
                print(f"override: {ov.phase.value} until {until}")
            return 0
        if args.clock_command == "clear":
            removed = await store.clear(by="cli")
            if args.json:
                print(orjson.dumps({"cleared": removed}).decode())
            else:
                print("override cleared" if removed else "no override was set")
            return 0
        override = await store.get()
        clock_state = await _clock_state(settings, servers, kafka, store.topic)
        boost = float(clock_state.get("boost", 1.0)) if clock_state else 1.0
        state = resolve(config, datetime.now(UTC), override=override, boost=boost)
        return _print_state(state, clock_state, args.json, tz)
    except ClockError as exc:
        print(f"warmfleet phase: {exc} ({redact(settings.kafka_url)})", file=sys.stderr)
        return 1


async def _clock_state(
    settings: Settings, servers: list[str], kafka: dict[str, Any], phase_topic: str
) -> dict[str, Any] | None:
    """What the clocks left in Kafka: the leader's last PhaseChange, its claim, the group."""
    from schedules import CLOCK_HEADER, Claim, read_latest
    from schedules._leader import LEADER_KEY, members
    from topics import CONTROL_CLOCK

    phase_raw, headers = (await read_latest(servers, phase_topic, kafka)).get(b"phase", (None, {}))
    claim_raw, _ = (await read_latest(servers, CONTROL_CLOCK.named(settings.namespace), kafka)).get(
        LEADER_KEY, (None, {})
    )
    claim = Claim.loads(claim_raw)
    group = await members(servers, settings.namespace, kafka)
    leaders = [m.owner for m in group if m.leads]
    if phase_raw is None and claim is None and not group:
        return None
    try:
        published = orjson.loads(phase_raw) if phase_raw else {}
    except orjson.JSONDecodeError:
        published = {}
    return {
        "owner": leaders[0] if leaders else None,
        "token": claim.token if claim and leaders and claim.owner == leaders[0] else None,
        "since_ms": claim.since_ms if claim and leaders and claim.owner == leaders[0] else None,
        "standby": [m.owner for m in group if not m.leads],
        "published_by": headers.get(CLOCK_HEADER),
        "boost": published.get("volatility_boost", 1.0) if isinstance(published, dict) else 1.0,
        "published_phase": published.get("phase") if isinstance(published, dict) else None,
    }


def _print_state(
    state: Any, clock_state: dict[str, Any] | None, as_json: bool, tz: Any, *, live: bool = True
) -> int:
    def ms(t: datetime | None) -> int | None:
        return None if t is None else round(t.timestamp() * 1000)

    body = {
        "phase": state.phase.value,
        "source": state.source,
        "calendar_phase": state.calendar_phase.value,
        "intervals_s": state.intervals_s,
        "next_transition_ms": ms(state.next_change),
        "calendar_next_transition_ms": ms(state.calendar_next_transition),
        "override_until_ms": ms(state.override_until),
        "boost": state.boost,
        "clock": clock_state,
    }
    if as_json:
        print(orjson.dumps(body).decode())
        return 0
    source = state.source + (f" + volatility boost x{state.boost:g}" if state.boost != 1 else "")
    print(f"phase            {state.phase.value}")
    print(f"source           {source}")
    if state.source == "override":
        print(f"override until   {_when(ms(state.override_until), tz)}")
        print(f"calendar phase   {state.calendar_phase.value}")
    print(f"next transition  {_when(ms(state.next_change), tz)}")
    intervals = ", ".join(f"{k} {v:g}s" for k, v in state.intervals_s.items())
    print(f"intervals        {intervals}")
    if live:
        owner = clock_state.get("owner") if clock_state else None
        token = clock_state.get("token") if clock_state else None
        lead = f"{owner} (fencing token {token})" if owner and token else owner
        print(f"leader           {lead or 'none (no clock is in the election group)'}")
        standby = clock_state.get("standby") if clock_state else None
        if standby:
            print(f"standby          {', '.join(standby)}")
    return 0
