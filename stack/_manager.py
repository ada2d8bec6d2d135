"""`warmfleet stack up | down | status`: start, find and stop the local real stack.

State lives in ``state.json`` under the stack directory (default
``~/.cache/warmfleet/stack``): for each server we started, its pid, the process's own
start time (so a recycled pid is never mistaken for ours), port and command line.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from stack._errors import PortTaken, StackError
from stack._install import ensure_kafka_jars, ensure_packages
from stack._services import (
    HOST,
    Ports,
    format_kafka_storage,
    kafka_answers,
    kafka_java,
    kafka_properties,
    memcached_answers,
    memcached_command,
    port_free,
    redis_answers,
    redis_command,
)
from stack._toxiproxy import (
    api_answers,
    ensure_proxies,
    ensure_toxiproxy,
    proxy_port,
    server_command,
)

SERVICES = ("kafka", "redis", "memcached")
#: `up --faults`: toxiproxy first, so the broker's advertised proxy address answers when
#: the broker's readiness probe connects to it
FAULT_SERVICES = ("toxiproxy", *SERVICES)
PORT_FLAGS = {
    "kafka": "--kafka-port",
    "kafka_controller": "--kafka-controller-port",
    "redis": "--redis-port",
    "memcached": "--memcached-port",
    "toxiproxy": "--toxiproxy-port",
    "sim": "--sim-port",
}
READY_TIMEOUT_S = {"kafka": 90.0, "redis": 15.0, "memcached": 15.0, "toxiproxy": 15.0}

Say = Callable[[str], None]


def default_home() -> Path:
    """Cache folder outside git for the Kafka jars and the Maven repository."""
    return Path(os.environ.get("WARMFLEET_HOME", Path.home() / ".cache" / "warmfleet"))


def default_stack_dir() -> Path:
    """Where the running stack keeps its state, data and logs."""
    env = os.environ.get("WARMFLEET_STACK_DIR")
    return Path(env) if env else default_home() / "stack"


@dataclass(frozen=True, slots=True)
class StackConfig:
    ports: Ports = field(default_factory=Ports)
    home: Path = field(default_factory=default_home)
    stack_dir: Path = field(default_factory=default_stack_dir)
    services: tuple[str, ...] = SERVICES
    #: toxiproxy in front of every server (and the simulator), the broker advertising its
    #: proxy; the URLs `status` gives point at the proxies
    faults: bool = False
    #: a broker restarted with much state (many topics and groups) on a busy machine takes
    #: longer than a fresh one; the chaos suite's restarts wait longer
    kafka_ready_timeout_s: float = READY_TIMEOUT_S["kafka"]

    @property
    def state_file(self) -> Path:
        return self.stack_dir / "state.json"


@dataclass(slots=True)
class Proc:
    service: str
    pid: int
    create_time: float
    port: int
    started_at: str
    cmdline: list[str]

    def alive(self) -> bool:
        try:
            proc = psutil.Process(self.pid)
            same = abs(proc.create_time() - self.create_time) < 1.0
            return bool(proc.is_running() and same and proc.status() != psutil.STATUS_ZOMBIE)
        except psutil.Error:
            return False


def _load_state(cfg: StackConfig) -> dict[str, Proc]:
    try:
        raw = json.loads(cfg.state_file.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise StackError(f"cannot read {cfg.state_file}: {exc}; remove it and retry") from exc
    return {name: Proc(**entry) for name, entry in raw.get("processes", {}).items()}


def _save_state(cfg: StackConfig, procs: dict[str, Proc]) -> None:
    cfg.stack_dir.mkdir(parents=True, exist_ok=True)
    tmp = cfg.state_file.with_suffix(".tmp")
    tmp.write_text(json.dumps({"processes": {n: asdict(p) for n, p in procs.items()}}, indent=2))
    tmp.replace(cfg.state_file)


def urls(ports: Ports) -> dict[str, str]:
    return {
        "kafka": f"{HOST}:{ports.kafka}",
        "redis": f"redis://{HOST}:{ports.redis}/0",
        "memcached": f"{HOST}:{ports.memcached}",
    }


def proxied_urls(ports: Ports) -> dict[str, str]:
    """The faults stack's URLs: every server (and each venue of the simulator) through its
    toxiproxy proxy."""
    at = {name: f"{HOST}:{proxy_port(ports.toxiproxy, name)}" for name in
          ("kafka", "redis", "memcached", "sim-binance", "sim-okx")}  # fmt: skip
    return {
        "kafka": at["kafka"],
        "redis": f"redis://{at['redis']}/0",
        "memcached": at["memcached"],
        "toxiproxy": f"http://{HOST}:{ports.toxiproxy}",
        "exchange_urls": f"binance=http://{at['sim-binance']},okx=http://{at['sim-okx']}",
    }


def _upstreams(ports: Ports) -> dict[str, str]:
    return {
        "kafka": f"{HOST}:{ports.kafka}",
        "redis": f"{HOST}:{ports.redis}",
        "memcached": f"{HOST}:{ports.memcached}",
        "sim-binance": f"{HOST}:{ports.sim}",
        "sim-okx": f"{HOST}:{ports.sim}",
    }


def _port_owner(port: int) -> str:
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN:
                if conn.pid is None:
                    return "another process"
                proc = psutil.Process(conn.pid)
                return f"pid {conn.pid} ({' '.join(proc.cmdline())[:80] or proc.name()})"
    except psutil.Error:
        pass
    return "another process"


def _check_port(name: str, port: int) -> None:
    if not port_free(port):
        flag = PORT_FLAGS[name]
        env = f"WARMFLEET_{name.upper()}_PORT"
        raise PortTaken(
            f"{name}: port {port} on {HOST} is taken by {_port_owner(port)}, which warmfleet "
            f"did not start. Stop it, or choose another port with `{flag} PORT` (or {env})."
        )


def _answers(name: str, port: int) -> bool:
    probes = {
        "kafka": kafka_answers,
        "redis": redis_answers,
        "memcached": memcached_answers,
        "toxiproxy": api_answers,
    }
    return probes[name](port)


#: the servers this process started: they outlive `up` on purpose, and a dropped Popen of a
#: running child warns (ResourceWarning) -- an error in a test session that starts the stack
_STARTED: list[subprocess.Popen[bytes]] = []


def _spawn(cmd: list[str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        # a session of its own: the server outlives this command, and `down` can stop the group
        popen = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
        )
    _STARTED.append(popen)
    return popen


def _wait_ready(
    name: str, port: int, popen: subprocess.Popen[bytes], log: Path, timeout_s: float
) -> float:
    started = time.monotonic()
    deadline = started + timeout_s
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
            raise StackError(f"{name} exited with code {popen.returncode} while starting:\n{tail}")
        if _answers(name, port):
            return time.monotonic() - started
        time.sleep(0.2)
    _terminate(popen.pid, grace_s=5)
    raise StackError(f"{name} did not answer on {HOST}:{port} within {timeout_s:.0f}s; see {log}")


def _start(name: str, cfg: StackConfig, say: Say) -> Proc:
    ports, data = cfg.ports, cfg.stack_dir / f"{name}-data"
    data.mkdir(parents=True, exist_ok=True)
    log = cfg.stack_dir / f"{name}.log"
    if name == "kafka":
        libs = ensure_kafka_jars(cfg.home, say)
        _check_port("kafka_controller", ports.kafka_controller)
        props = data / "server.properties"
        advertised = proxy_port(ports.toxiproxy, "kafka") if cfg.faults else None
        props.write_text(kafka_properties(ports, data, advertised))
        if format_kafka_storage(libs, props, data):
            say("kafka: formatted KRaft storage")
        cmd, port = kafka_java(libs, "kafka.Kafka", str(props)), ports.kafka
    elif name == "toxiproxy":
        ensure_toxiproxy(cfg.home, say)
        cmd, port = server_command(cfg.home, ports.toxiproxy), ports.toxiproxy
    elif name == "redis":
        ensure_packages(["redis-server"], say)
        cmd, port = redis_command(ports.redis, data), ports.redis
    else:
        ensure_packages(["memcached"], say)
        cmd, port = memcached_command(ports.memcached), ports.memcached
    say(f"{name}: starting on {HOST}:{port}")
    popen = _spawn(cmd, log, data)
    timeout_s = cfg.kafka_ready_timeout_s if name == "kafka" else READY_TIMEOUT_S[name]
    took = _wait_ready(name, port, popen, log, timeout_s)
    say(f"{name}: ready in {took:.1f}s (pid {popen.pid})")
    return Proc(
        service=name,
        pid=popen.pid,
        create_time=psutil.Process(popen.pid).create_time(),
        port=port,
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        cmdline=cmd,
    )


def _kafka_advertises(cfg: StackConfig) -> int | None:
    """The port a running broker of this stack advertises (from its properties file)."""
    try:
        text = (cfg.stack_dir / "kafka-data" / "server.properties").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("advertised.listeners="):
            return int(line.rsplit(":", 1)[1])
    return None


def up(cfg: StackConfig, say: Say) -> dict[str, Any]:
    """Start whatever of the stack is not running; reuse what is. Returns ``status()``."""
    procs = _load_state(cfg)
    services = cfg.services
    if cfg.faults and "toxiproxy" not in services:
        services = ("toxiproxy", *services)
    try:
        for name in services:
            if name == "kafka" and cfg.faults and procs.get("kafka") and procs["kafka"].alive():
                wanted = proxy_port(cfg.ports.toxiproxy, "kafka")
                if _kafka_advertises(cfg) != wanted:
                    raise StackError(
                        "kafka runs without the faults proxy (it advertises its own port); "
                        "run `warmfleet stack down` first, then `warmfleet stack up --faults`"
                    )
            port = getattr(cfg.ports, name)
            ours = procs.get(name)
            if ours and ours.alive():
                if ours.port != port:
                    raise StackError(
                        f"{name} already runs on port {ours.port} (pid {ours.pid}); "
                        f"run `warmfleet stack down` first to move it to {port}"
                    )
                if _answers(name, port):
                    say(f"{name}: already running on {HOST}:{port} (pid {ours.pid})")
                    if name == "toxiproxy":
                        ensure_proxies(port, _upstreams(cfg.ports))
                    continue
                raise StackError(
                    f"{name} (pid {ours.pid}) runs but does not answer on {port}; "
                    f"see {cfg.stack_dir / (name + '.log')} or `warmfleet stack down`"
                )
            procs.pop(name, None)
            _check_port(name, port)
            procs[name] = _start(name, cfg, say)
            _save_state(cfg, procs)
            if name == "toxiproxy":
                made = ensure_proxies(port, _upstreams(cfg.ports))
                say("toxiproxy: " + ", ".join(f"{n} {a}" for n, a in made.items()))
    finally:
        _save_state(cfg, {n: p for n, p in procs.items() if p.alive()})
    return status(cfg)


def _terminate(pid: int, grace_s: float) -> None:
    try:
        pgid = os.getpgid(pid)
        os.killpg(pgid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    try:
        psutil.Process(pid).wait(timeout=grace_s)
    except psutil.TimeoutExpired:
        try:
            os.killpg(pgid, signal.SIGKILL)
            psutil.Process(pid).wait(timeout=5)
        except (ProcessLookupError, psutil.Error):
            pass
    except psutil.Error:
        pass


def down(cfg: StackConfig, say: Say) -> list[str]:
    """Stop only the processes this stack started. Returns the services stopped."""
    procs = _load_state(cfg)
    stopped = []
    # Kafka first: it is the slowest to stop and nothing else depends on the caches stopping
    for name in sorted(procs, key=lambda n: SERVICES.index(n) if n in SERVICES else 99):
        proc = procs[name]
        if proc.alive():
            say(f"{name}: stopping pid {proc.pid}")
            _terminate(proc.pid, grace_s=30 if name == "kafka" else 5)
            stopped.append(name)
        else:
            say(f"{name}: was not running")
    cfg.state_file.unlink(missing_ok=True)
    return stopped


def status(cfg: StackConfig) -> dict[str, Any]:
    procs = {n: p for n, p in _load_state(cfg).items() if p.alive()}
    ports = Ports(
        **{
            **asdict(cfg.ports),
            **{n: p.port for n, p in procs.items()},
        }
    )
    out: dict[str, Any] = {name: url for name, url in urls(ports).items() if name in procs}
    if "toxiproxy" in procs:
        # the fleet's URLs are the proxies'; the servers' own addresses stay under "direct"
        proxied = proxied_urls(ports)
        out["direct"] = dict(out)
        out.update({n: proxied[n] for n in SERVICES if n in procs})
        out["toxiproxy"] = proxied["toxiproxy"]
        out["exchange_urls"] = proxied["exchange_urls"]
    out["processes"] = {
        n: {"pid": p.pid, "port": p.port, "started_at": p.started_at} for n, p in procs.items()
    }
    wanted = set(cfg.services) | ({"toxiproxy"} if cfg.faults else set())
    out["running"] = wanted <= set(procs)
    return out
