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
            default=5.0,
            metavar="S",
            help="leader lease TTL in seconds (default 5)",
        )
        parser.add_argument(
            "--renew-every",
            type=float,
            default=1.5,
            metavar="S",
            help="lease renewal period in seconds (default 1.5)",
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
        help="the calendar at this time instead (no Redis), e.g. 2026-12-24T10:00-05:00",
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
        return asyncio.run(_clock(settings, config, args.lease_ttl, args.renew_every))
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


async def _clock(settings: Settings, config: Any, lease_ttl: float, renew_every: float) -> int:
    from schedules import ClockError, PhaseClock
    from topics import BrokerUnavailable

    if settings.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.metrics_port)
    clock = PhaseClock(
        config,
        bootstrap_servers=list(settings.kafka_servers),
        redis_url=settings.redis_url,
        namespace=settings.namespace,
        key_prefix=settings.key_prefix,
        lease_ttl_s=lease_ttl,
        renew_every_s=renew_every,
        kafka_options=settings.kafka_client_options(),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info(
        "clock_process",
        owner=clock.owner,
        redis=redact(settings.redis_url),
        kafka=settings.kafka_url,
        metrics_port=settings.metrics_port,
    )
    try:
        await clock.run(stop)
    except (ClockError, BrokerUnavailable) as exc:
        log.error("clock_failed", error=str(exc))
        return 1
    return 0


def _when(ms: int | None, tz: Any) -> str:
    if ms is None:
        return "never"
    t = datetime.fromtimestamp(ms / 1000, tz=UTC)
    delta = timedelta(seconds=round(t.timestamp() - datetime.now(UTC).timestamp()))
    return f"{t.astimezone(tz):%Y-%m-%d %H:%M:%S %Z} (in {delta})"


async def _phase(settings: Settings, config: Any, args: argparse.Namespace) -> int:
    import redis.asyncio as aioredis

    from schedules import ClockError, ControlKeys, OverrideStore, Phase, read_state, resolve

    tz = config.calendar.timezone
    if args.clock_command == "show" and args.at:
        try:
            at = datetime.fromisoformat(args.at)
        except ValueError:
            print(f"warmfleet phase show: --at {args.at!r} is not an ISO time", file=sys.stderr)
            return 2
        at = at if at.tzinfo else at.replace(tzinfo=tz)
        return _print_state(resolve(config, at), None, args.json, tz, live=False)
    keys = ControlKeys.for_fleet(settings.key_prefix, settings.namespace)
    redis = aioredis.Redis.from_url(settings.redis_url)
    store = OverrideStore(redis, keys.override)
    try:
        if args.clock_command == "set":
            ov = await store.set(Phase(args.phase), args.duration, by="cli")
            body = {"phase": ov.phase.value, "until": ov.until.isoformat(), "key": keys.override}
            if args.json:
                print(orjson.dumps(body).decode())
            else:
                until = _when(round(ov.until.timestamp() * 1000), tz)
                print(f"override: {ov.phase.value} until {until}")
            return 0
        if args.clock_command == "clear":
            removed = await store.clear()
            if args.json:
                print(orjson.dumps({"cleared": removed}).decode())
            else:
                print("override cleared" if removed else "no override was set")
            return 0
        override = await store.get()
        clock_state = await read_state(redis, keys.state)
        boost = float(clock_state.get("boost", 1.0)) if clock_state else 1.0
        state = resolve(config, datetime.now(UTC), override=override, boost=boost)
        return _print_state(state, clock_state, args.json, tz)
    except ClockError as exc:
        print(f"warmfleet phase: {exc} ({redact(settings.redis_url)})", file=sys.stderr)
        return 1
    finally:
        await redis.aclose()


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
        print(f"leader           {owner or 'none seen (no clock running, or its state expired)'}")
    return 0
