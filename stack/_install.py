"""Install what the local stack needs, only when it is missing.

Debian packages through apt-get (Java 17, Maven, redis-server, memcached) and the Kafka
broker's jars from Maven Central into a cache folder outside git.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from stack._errors import StackError

KAFKA_VERSION = "3.9.1"
POM = Path(__file__).parent / "kafka" / "pom.xml"

#: executable -> Debian package that provides it
APT_PACKAGES: dict[str, str] = {
    "java": "openjdk-17-jre-headless",
    "mvn": "maven",
    "redis-server": "redis-server",
    "memcached": "memcached",
}

Say = Callable[[str], None]


def ensure_packages(executables: list[str], say: Say) -> None:
    missing = [APT_PACKAGES[exe] for exe in executables if shutil.which(exe) is None]
    if not missing:
        return
    if os.geteuid() != 0:
        raise StackError(
            f"missing {', '.join(missing)}; install them with "
            f"`sudo apt-get install -y {' '.join(missing)}` and run `warmfleet stack up` again"
        )
    if shutil.which("apt-get") is None:
        raise StackError(f"missing {', '.join(missing)} and no apt-get to install them with")
    say(f"installing {', '.join(missing)} with apt-get (first run only)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *missing]):
        started = time.monotonic()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
            raise StackError(f"`{' '.join(cmd)}` failed (exit {proc.returncode}):\n{tail}")
        say(f"  {' '.join(cmd[:2])} done in {time.monotonic() - started:.1f}s")
    still = [exe for exe in executables if shutil.which(exe) is None]
    if still:
        raise StackError(f"apt-get finished but {', '.join(still)} is still not on PATH")


def kafka_libs(cache_dir: Path) -> Path:
    return cache_dir / f"kafka-{KAFKA_VERSION}" / "libs"


def ensure_kafka_jars(cache_dir: Path, say: Say) -> Path:
    """Resolve the broker's runtime jars once; later calls return the cached folder."""
    libs = kafka_libs(cache_dir)
    marker = libs / ".complete"
    if marker.exists():
        return libs
    ensure_packages(["java", "mvn"], say)
    libs.mkdir(parents=True, exist_ok=True)
    repo = cache_dir / "m2"
    cmd = [
        "mvn", "-B", "-f", str(POM),
        f"-Dmaven.repo.local={repo}",
        "dependency:copy-dependencies",
        f"-DoutputDirectory={libs}",
        "-DincludeScope=runtime",
    ]  # fmt: skip
    say(f"kafka: resolving Apache Kafka {KAFKA_VERSION} jars from Maven Central (first run only)")
    started = time.monotonic()
    downloads = 0
    tail: list[str] = []
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        tail = [*tail[-19:], line.rstrip()]
        if "Downloaded from" in line:
            downloads += 1
            if downloads % 100 == 0 and sys.stderr.isatty() is False:
                say(f"  {downloads} artifacts downloaded ({time.monotonic() - started:.0f}s)")
            elif sys.stderr.isatty():
                print(f"\r  {downloads} artifacts downloaded", end="", file=sys.stderr, flush=True)
    if sys.stderr.isatty() and downloads:
        print(file=sys.stderr)
    if proc.wait() != 0:
        raise StackError("resolving Kafka jars with Maven failed:\n" + "\n".join(tail))
    jars = list(libs.glob("*.jar"))
    if not any(j.name.startswith("kafka_2.13-") for j in jars):
        raise StackError(f"Maven finished but no kafka_2.13 jar is in {libs}")
    marker.write_text(KAFKA_VERSION)
    say(f"  {len(jars)} jars in {libs} ({downloads} downloaded, {time.monotonic() - started:.1f}s)")
    return libs
