"""`warmfleet stack up | down | status | exec`."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

from stack._errors import StackError
from stack._manager import FAULT_SERVICES, PORT_FLAGS, SERVICES, StackConfig, down, status, up
from stack._services import Ports

HELP = "start, inspect and stop the local Kafka, Redis and Memcached"


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _port(name: str, value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise StackError(f"{name} must be a port number, got {value!r}") from None
    if not 1 <= port <= 65535:
        raise StackError(f"{name} must be between 1 and 65535, got {port}")
    return port


def _config(args: argparse.Namespace) -> StackConfig:
    defaults = Ports()
    chosen: dict[str, int] = {}
    for field in PORT_FLAGS:
        flag_value = getattr(args, f"{field}_port", None)
        env_name = f"WARMFLEET_{field.upper()}_PORT"
        raw = flag_value if flag_value is not None else os.environ.get(env_name)
        label = PORT_FLAGS[field] if flag_value is not None else env_name
        chosen[field] = _port(label, str(raw)) if raw is not None else getattr(defaults, field)
    services = tuple(s.strip() for s in args.only.split(",")) if args.only else SERVICES
    unknown = [s for s in services if s not in SERVICES]
    if unknown:
        raise StackError(
            f"--only: unknown service {unknown[0]!r}; choose from {', '.join(SERVICES)}"
        )
    faults = bool(getattr(args, "faults", False))
    return StackConfig(ports=Ports(**chosen), services=services, faults=faults)


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, text in (
        ("up", "install what is missing and start the servers (reuses running ones)"),
        ("down", "stop the servers this stack started"),
        ("status", "show what runs and where"),
        ("exec", "run a command with the stack up; stop it afterwards if this started it"),
    ):
        p = sub.add_parser(action, help=text, description=text)
        for field, flag in PORT_FLAGS.items():
            p.add_argument(
                flag,
                dest=f"{field}_port",
                metavar="PORT",
                help=f"{field.replace('_', ' ')} port (env WARMFLEET_{field.upper()}_PORT)",
            )
        p.add_argument(
            "--only", metavar="LIST", help=f"comma-separated subset of {','.join(SERVICES)}"
        )
        if action in ("up", "exec"):
            p.add_argument(
                "--faults",
                action="store_true",
                help="toxiproxy in front of Kafka, Redis, Memcached and the simulator "
                "(--sim-port, two venues); the URLs given out point at the proxies",
            )
        if action == "status":
            p.add_argument("--json", action="store_true", help="machine-readable output")
            p.add_argument(
                "--quiet",
                "-q",
                action="store_true",
                help="print nothing; exit 0 only when every server runs",
            )
        if action == "exec":
            p.add_argument(
                "argv",
                nargs=argparse.REMAINDER,
                metavar="COMMAND",
                help="the command to run, after --",
            )


def _print_status(info: dict[str, Any]) -> None:
    procs = info["processes"]
    if not procs:
        print("stack: nothing running (start it with `warmfleet stack up`)")
        return
    for name in FAULT_SERVICES:
        if name == "toxiproxy" and name not in procs:
            continue
        if name in procs:
            p = procs[name]
            where = info[name] if name != "toxiproxy" else info["toxiproxy"]
            if "direct" in info and name in info["direct"]:
                where = f"{info[name]} -> {info['direct'][name]}"
            print(f"{name:<10} {where:<28} pid {p['pid']:<8} since {p['started_at']}")
        else:
            print(f"{name:<10} not running")


def run(args: argparse.Namespace) -> int:
    try:
        cfg = _config(args)
        if args.action == "up":
            started = time.monotonic()
            info = up(cfg, _say)
            _say(f"stack up in {time.monotonic() - started:.1f}s")
            keys = (*SERVICES, "toxiproxy", "exchange_urls")
            print(json.dumps({k: v for k, v in info.items() if k in keys}))
            return 0
        if args.action == "down":
            down(cfg, _say)
            return 0
        if args.action == "status":
            info = status(cfg)
            if args.quiet:
                return 0 if info["running"] else 1
            if args.json:
                print(json.dumps(info, indent=2))
            else:
                _print_status(info)
            return 0
        # exec
        command = list(args.argv)
        if command[:1] == ["--"]:
            command = command[1:]
        if not command:
            raise StackError("exec needs a command: `warmfleet stack exec -- pytest`")
        was_running = status(cfg)["running"]
        info = up(cfg, _say)
        env = {**os.environ, **_env_for(info)}
        try:
            return subprocess.call(command, env=env)
        finally:
            if not was_running:
                down(cfg, _say)
    except StackError as exc:
        _say(f"warmfleet stack: {exc}")
        return 2


def _env_for(info: dict[str, Any]) -> dict[str, str]:
    """The variables warmfleet's settings and test fixtures read to find the stack."""
    extra = {}
    if "toxiproxy" in info:
        extra = {
            "WARMFLEET_TOXIPROXY_URL": info["toxiproxy"],
            "WARMFLEET_EXCHANGE_URLS": info["exchange_urls"],
        }
    return {
        **extra,
        "WARMFLEET_KAFKA_URL": f"kafka://{info['kafka']}" if "kafka" in info else "",
        "WARMFLEET_REDIS_URL": info.get("redis", ""),
        "WARMFLEET_MEMCACHED_URL": f"memcached://{info['memcached']}"
        if "memcached" in info
        else "",
    }
