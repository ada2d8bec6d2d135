"""The three servers of the local stack: how each starts and how we know it answers."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path

from stack._errors import StackError

HOST = "127.0.0.1"
LOG4J = Path(__file__).parent / "kafka" / "log4j.properties"


@dataclass(frozen=True, slots=True)
class Ports:
    kafka: int = 9092
    kafka_controller: int = 9093
    redis: int = 6379
    memcached: int = 11211
    #: the faults stack only: toxiproxy's HTTP API (its proxies listen on the next ports,
    #: stack._toxiproxy.PROXIES) and the simulator port the exchange proxies forward to
    toxiproxy: int = 8474
    sim: int = 8899


def port_free(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _ask(port: int, request: bytes, expect: bytes, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.sendall(request)
            return sock.recv(64).startswith(expect)
    except OSError:
        return False


def redis_answers(port: int) -> bool:
    return _ask(port, b"PING\r\n", b"+PONG")


def memcached_answers(port: int) -> bool:
    return _ask(port, b"version\r\n", b"VERSION")


OFFSETS_PARTITIONS = 10  # offsets.topic.num.partitions in kafka_properties()


def _java_hash(text: str) -> int:
    h = 0
    for ch in text:
        h = (31 * h + ord(ch)) & 0xFFFFFFFF
    return h


def _group_keys_covering(partitions: int) -> list[str]:
    """Group ids that land on every ``__consumer_offsets`` partition (Kafka places a group by
    ``abs(javaHash(group)) % partitions``)."""
    keys: dict[int, str] = {}
    i = 0
    while len(keys) < partitions:
        key = f"warmfleet-ready-{i}"
        keys.setdefault((_java_hash(key) & 0x7FFFFFFF) % partitions, key)
        i += 1
    return list(keys.values())


def kafka_answers(port: int, timeout: float = 3.0) -> bool:
    """Ready for the fleet: a client's metadata request succeeds AND every consumer-group
    coordinator answers. A just-started broker serves metadata seconds before it can
    coordinate groups; a Faust worker that joins then stalls, so `up` waits for both."""
    from aiokafka.client import AIOKafkaClient, CoordinationType

    async def probe() -> bool:
        client = AIOKafkaClient(bootstrap_servers=f"{HOST}:{port}", request_timeout_ms=2000)
        try:
            await asyncio.wait_for(client.bootstrap(), timeout)
            metadata = await asyncio.wait_for(client.fetch_all_metadata(), timeout)
            if not metadata.brokers():
                return False
            for key in _group_keys_covering(OFFSETS_PARTITIONS):
                await asyncio.wait_for(
                    client.coordinator_lookup(CoordinationType.GROUP, key), timeout
                )
            return True
        except Exception:  # any failure means "not ready yet"
            return False
        finally:
            await client.close()

    if not _ask(port, b"", b"", timeout=0.5) and port_free(port):
        return False
    return asyncio.run(probe())


def redis_command(port: int, data_dir: Path) -> list[str]:
    return [
        "redis-server",
        "--bind", HOST, "--port", str(port), "--protected-mode", "yes",
        "--save", "", "--appendonly", "no", "--dir", str(data_dir),
        "--daemonize", "no", "--loglevel", "warning",
    ]  # fmt: skip


def memcached_command(port: int) -> list[str]:
    cmd = ["memcached", "-l", HOST, "-p", str(port), "-U", "0", "-m", "256", "-c", "4096"]
    if os.geteuid() == 0:
        cmd += ["-u", "root"]  # memcached refuses to run as root without -u
    return cmd


def kafka_properties(ports: Ports, data_dir: Path, advertised_port: int | None = None) -> str:
    """``advertised_port``: what the broker tells clients to connect to -- the faults stack's
    proxy, so that a client that bootstrapped through toxiproxy stays behind it."""
    advertised = advertised_port or ports.kafka
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@{HOST}:{ports.kafka_controller}",
            f"listeners=PLAINTEXT://{HOST}:{ports.kafka},CONTROLLER://{HOST}:{ports.kafka_controller}",
            f"advertised.listeners=PLAINTEXT://{HOST}:{advertised}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            f"log.dirs={data_dir / 'logs'}",
            "num.partitions=3",
            "offsets.topic.replication.factor=1",
            f"offsets.topic.num.partitions={OFFSETS_PARTITIONS}",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "min.insync.replicas=1",
            "default.replication.factor=1",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=true",
            "delete.topic.enable=true",
            "log.retention.hours=24",
            "log.segment.bytes=67108864",
            "",
        ]
    )


def kafka_java(libs: Path, main: str, *args: str, heap: str = "1g") -> list[str]:
    return [
        "java", "-Xms256m", f"-Xmx{heap}", "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j.configuration=file:{LOG4J}",
        "-cp", f"{libs}/*", main, *args,
    ]  # fmt: skip


def new_cluster_id() -> str:
    """Kafka's Uuid text form: 16 random bytes, URL-safe base64 without padding. Like
    Kafka's own ``Uuid.randomUuid``, never one that starts with "-": one in 64 would, and
    ``kafka-storage format -t -…`` reads it as an option ("expected one argument")."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text


def format_kafka_storage(libs: Path, config: Path, data_dir: Path) -> bool:
    """Format KRaft storage once per data dir; returns whether it formatted."""
    import subprocess

    if (data_dir / "logs" / "meta.properties").exists():
        return False
    cmd = kafka_java(
        libs,
        "kafka.tools.StorageTool",
        "format",
        "-t",
        new_cluster_id(),
        "-c",
        str(config),
        heap="256m",
    )
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise StackError(f"formatting Kafka storage failed:\n{proc.stdout}\n{proc.stderr}")
    return True
