"""What the HTTP benchmarks need: wrk and nginx (Debian packages), installed on first use,
and wrk's output read into numbers."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

#: executable -> Debian package that provides it
PACKAGES = {"wrk": "wrk", "nginx": "nginx-light"}
UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def ensure_tools(*exes: str) -> None:
    """Install what is missing with apt-get (once, idempotent); a clear exit if we cannot."""
    missing = [PACKAGES[e] for e in exes if shutil.which(e) is None and not _sbin(e)]
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise SystemExit(f"this benchmark needs: sudo apt-get install -y {' '.join(missing)}")
    print(f"installing {', '.join(missing)} with apt-get (first run only)", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *missing]):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"`{' '.join(cmd)}` failed:\n{proc.stderr[-2000:]}")


def _sbin(exe: str) -> str | None:
    path = Path("/usr/sbin") / exe
    return str(path) if path.exists() else None


def executable(exe: str) -> str:
    found = shutil.which(exe) or _sbin(exe)
    if found is None:
        raise SystemExit(f"{exe} is not installed")
    return found


@dataclass(frozen=True)
class Load:
    rps: float
    p50: float  # ms
    p95: float
    p99: float
    requests: float = 0.0
    cpu_us: float = -1.0  # the server's CPU time per request (user + system), µs


def run_wrk(
    url: str, seconds: int, connections: int, script: Path | None = None, cpu: str | None = None
) -> Load:
    """``wrk -t1 -cN`` (on CPU ``cpu`` if given); refuses a run with non-2xx/3xx answers or
    socket errors."""
    cmd = [executable("wrk"), "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if cpu is not None:
        cmd = ["taskset", "-c", cpu, *cmd]
    if script is not None:
        cmd += ["-s", str(script)]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    if bad or (errors and re.search(r"[1-9]", errors.group(1))):
        raise SystemExit(f"wrk against {url} saw errors:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p95 = re.search(r"p95_us=([\d.]+)", out)  # from P95_HOOK: wrk itself prints no 95th
    done = float(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    p95_ms = float(p95.group(1)) / 1000 if p95 else -1.0
    return Load(rps, _pct(out, "50"), p95_ms, _pct(out, "99"), done)


def pin(pid: int, cpu: str) -> None:
    """Every thread of a process and its children onto ``cpu`` (taskset -a)."""
    import psutil

    parent = psutil.Process(pid)
    for proc in [parent, *parent.children(recursive=True)]:
        subprocess.run(
            ["taskset", "-a", "-p", "-c", cpu, str(proc.pid)], check=True, capture_output=True
        )


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and all its children (granian's workers)."""
    import psutil

    parent = psutil.Process(pid)
    total = 0.0
    for proc in [parent, *parent.children(recursive=True)]:
        times = proc.cpu_times()
        total += times.user + times.system
    return total


def _pct(out: str, p: str) -> float:
    value, unit = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    return float(value) * UNIT[unit]


#: appended to every wrk script: prints the 95th percentile wrk does not print itself
P95_HOOK = textwrap.dedent(
    """
    done = function(summary, latency, requests)
      io.write(string.format("p95_us=%.2f\\n", latency:percentile(95)))
    end
    """
)


def nginx_conf(root: Path, port: int) -> str:
    """One worker serving one static file for every path (the machine's HTTP ceiling)."""
    return textwrap.dedent(
        f"""
        worker_processes 1;
        daemon off;
        pid {root}/nginx.pid;
        error_log {root}/error.log warn;
        events {{ worker_connections 4096; }}
        http {{
          access_log off;
          keepalive_requests 1000000;
          server {{
            listen 127.0.0.1:{port} reuseport;
            location / {{
              default_type application/json;
              root {root};
              rewrite ^ /body.json break;
            }}
          }}
        }}
        """
    )


def start_nginx(root: Path, port: int, body: bytes) -> subprocess.Popen[bytes]:
    root.chmod(0o755)  # nginx's worker runs as nobody
    (root / "body.json").write_bytes(body)
    (root / "nginx.conf").write_text(nginx_conf(root, port))
    return subprocess.Popen(
        [executable("nginx"), "-p", str(root), "-c", str(root / "nginx.conf")],
        stderr=subprocess.DEVNULL,
    )


def wait_port(port: int, timeout: float = 20.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"nothing listens on {port}")
