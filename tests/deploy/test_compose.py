"""docker-compose.yml, the Dockerfile, Prometheus and Grafana files: structure checks.

No Docker engine runs in CI, so these parse the files and check what `docker compose up` relies
on: every service, image, env, command, healthcheck and healthy dependency, the scrape config
naming every process's metrics port, and a dashboard built on the shared metric names.
"""

from __future__ import annotations

import argparse
import base64
import importlib
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from workers.cli import COMMANDS
from workers.settings import Settings

from .conftest import ROOT

INFRA = {"kafka", "redis", "memcached", "prometheus", "grafana"}
# service -> the `warmfleet` command it runs
PROCESSES = {
    "sim": "sim",
    "clock": "clock",
    "poller": "poller",
    "worker": "worker",
    "reader": "reader",
}
# where each process serves /metrics (README conventions)
METRICS_PORTS = {"sim": 8899, "reader": 8080, "poller": 9101, "worker": 9102, "clock": 9103}
# which servers each process needs healthy before it starts
NEEDS = {
    "sim": set(),
    "clock": {"kafka", "redis"},
    "poller": {"kafka", "sim"},
    "worker": {"kafka", "redis", "memcached"},
    "reader": {"redis", "memcached"},
    "grafana": {"prometheus"},
}
SHARED_METRICS = {
    "warmfleet_cache_hits_total",
    "warmfleet_cache_misses_total",
    "warmfleet_cache_errors_total",
    "warmfleet_cache_promotions_total",
    "warmfleet_cache_latency_seconds",
    "warmfleet_cache_breaker_open",
    "warmfleet_poller_requests_total",
    "warmfleet_poller_errors_total",
    "warmfleet_poller_request_seconds",
    "warmfleet_poller_events_published_total",
    "warmfleet_poller_jobs_dropped_total",
    "warmfleet_poller_payloads_rejected_total",
    "warmfleet_agent_events_total",
    "warmfleet_agent_deadletter_total",
    "warmfleet_agent_write_seconds",
    "warmfleet_agent_event_to_tiers_seconds",
    "warmfleet_agent_events_processed_total",
    "warmfleet_agent_consumer_lag",
    "warmfleet_freshness_seconds",
    "warmfleet_phase",
    "warmfleet_phase_interval_seconds",
    "warmfleet_clock_jobs_published_total",
    "warmfleet_clock_is_leader",
    "warmfleet_reader_requests_total",
    "warmfleet_reader_request_seconds",
    "warmfleet_cache_reads_total",
    "warmfleet_cache_read_seconds",
    "warmfleet_cache_read_errors_total",
    "warmfleet_reader_served_age_seconds",
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    with open(ROOT / "docker-compose.yml", encoding="utf-8") as f:
        doc = yaml.safe_load(f)  # resolves the x-* anchors and `<<` merges like compose does
    assert isinstance(doc, dict)
    return doc


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]  # type: ignore[no-any-return]


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):  # the KEY=VALUE list form
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def _healthcheck_text(service: dict[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    return " ".join(test) if isinstance(test, list) else str(test)


def _published_ports(service: dict[str, Any]) -> set[int]:
    out = set()
    for port in service.get("ports", []):
        host, _, _ = str(port).partition(":")
        out.add(int(host))
    return out


# --- services, images, builds ------------------------------------------------------------------


def test_every_service_is_defined(services: dict[str, Any]) -> None:
    assert set(services) == INFRA | set(PROCESSES)


def test_infrastructure_images_are_pinned(services: dict[str, Any]) -> None:
    assert re.fullmatch(r"apache/kafka:3\.9\.\d+", services["kafka"]["image"])
    assert services["redis"]["image"] == "redis:7"
    assert services["memcached"]["image"] == "memcached:1.6"
    for name in ("prometheus", "grafana"):
        image = services[name]["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name}: pin a version, got {image}"


def test_fleet_processes_build_the_one_image(services: dict[str, Any]) -> None:
    images = set()
    for name in PROCESSES:
        build = services[name]["build"]
        assert (ROOT / build["context"] / build["dockerfile"]).is_file(), name
        images.add(services[name]["image"])
    assert len(images) == 1, f"every process runs the same image, got {images}"


@pytest.mark.parametrize("name", sorted(PROCESSES))
def test_process_command_is_a_real_cli_invocation(services: dict[str, Any], name: str) -> None:
    """The command parses with the real `warmfleet` argument parser (ENTRYPOINT is `warmfleet`).

    Services must listen on 0.0.0.0 to be reachable from the other containers: a command that
    binds loopback (or passes a flag the CLI does not have) would start and be unreachable.
    """
    command = services[name]["command"]
    assert command[0] == PROCESSES[name]
    assert command[0] in COMMANDS, f"{command[0]!r} is not a registered warmfleet command"
    module = importlib.import_module(COMMANDS[command[0]])
    parser = argparse.ArgumentParser(prog=f"warmfleet {command[0]}", exit_on_error=False)
    module.configure(parser)
    try:
        args = parser.parse_args(command[1:])
    except (argparse.ArgumentError, SystemExit) as exc:
        pytest.fail(f"{name}: `warmfleet {' '.join(command)}` does not parse: {exc}")
    if hasattr(args, "host"):
        assert args.host == "0.0.0.0", f"{name} must listen on all interfaces in a container"
    if hasattr(args, "port"):
        assert args.port == METRICS_PORTS[name]


@pytest.mark.parametrize("name", sorted(PROCESSES))
def test_process_env_is_valid_settings(services: dict[str, Any], name: str) -> None:
    env = _env(services[name])
    settings = Settings.from_env(env)  # raises ConfigError on anything malformed
    assert settings.kafka_servers == ("kafka:9092",)
    assert settings.redis_url == "redis://redis:6379/0"
    assert settings.memcached_servers == ("memcached:11211",)
    assert settings.exchange_urls == {"binance": "http://sim:8899", "okx": "http://sim:8899"}
    assert settings.log_format == "json"
    if name in ("poller", "worker", "clock"):
        assert settings.metrics_port == METRICS_PORTS[name]
    phases = env["WARMFLEET_PHASES"]
    mounts = {v.split(":")[1] for v in services[name].get("volumes", [])}
    assert phases in mounts, f"{name}: WARMFLEET_PHASES={phases} is not mounted"


def test_host_files_mounted_exist(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which is not in the repo"


def test_fleet_containers_are_read_only_with_writable_scratch(services: dict[str, Any]) -> None:
    for name in PROCESSES:
        assert services[name]["read_only"] is True
        assert {"/tmp", "/var/lib/warmfleet"} <= set(services[name]["tmpfs"])


# --- Kafka ----------------------------------------------------------------------------------------


def _listeners(value: str) -> dict[str, str]:
    """`NAME://host:port,...` -> {NAME: host:port}"""
    out = {}
    for item in value.split(","):
        name, _, address = item.partition("://")
        out[name] = address
    return out


def test_kafka_single_node_kraft_config_is_complete(services: dict[str, Any]) -> None:
    env = _env(services["kafka"])
    # setting any KAFKA_* variable replaces the image's defaults: all of these must be there
    for key in (
        "KAFKA_NODE_ID",
        "KAFKA_PROCESS_ROLES",
        "KAFKA_CONTROLLER_QUORUM_VOTERS",
        "KAFKA_LISTENERS",
        "KAFKA_ADVERTISED_LISTENERS",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP",
        "KAFKA_CONTROLLER_LISTENER_NAMES",
        "KAFKA_INTER_BROKER_LISTENER_NAME",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS",
        "KAFKA_LOG_DIRS",
    ):
        assert key in env, key
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    for key in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert env[key] == "1", key
    assert env["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"] == "0"

    listeners = _listeners(env["KAFKA_LISTENERS"])
    advertised = _listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    protocols = dict(
        item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert set(listeners) <= set(protocols), "every listener needs a security protocol"
    assert controller in listeners and controller not in advertised
    assert set(advertised) <= set(listeners)
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in advertised
    # inside the compose network the fleet uses kafka:9092; outside, localhost:29092
    assert "kafka:9092" in advertised.values()
    outside = [a for a in advertised.values() if a.startswith("localhost:")]
    assert outside and int(outside[0].split(":")[1]) in _published_ports(services["kafka"])
    # the quorum voter is this node, on the controller listener's port
    voter_id, _, voter_address = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].partition("@")
    assert voter_id == env["KAFKA_NODE_ID"]
    assert voter_address.split(":")[1] == listeners[controller].split(":")[1]
    # a cluster id is the base64 of 16 bytes (what `kafka-storage.sh random-uuid` prints)
    cluster_id = env["CLUSTER_ID"]
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16
    assert not cluster_id.startswith("-"), "would read as an option by kafka-storage.sh"
    assert env["KAFKA_LOG_DIRS"] in {v.split(":")[1] for v in services["kafka"]["volumes"]}


# --- healthchecks and start order -----------------------------------------------------------------


def test_every_service_has_a_healthcheck(services: dict[str, Any]) -> None:
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_healthchecks_probe_the_right_thing(services: dict[str, Any]) -> None:
    assert "/opt/kafka/bin/kafka-broker-api-versions.sh" in _healthcheck_text(services["kafka"])
    assert "redis-cli" in _healthcheck_text(services["redis"])
    assert "ping" in _healthcheck_text(services["redis"])
    memcached = _healthcheck_text(services["memcached"])
    assert "/dev/tcp/127.0.0.1/11211" in memcached and "version" in memcached
    for name in PROCESSES:
        text = _healthcheck_text(services[name])
        path = "/healthz" if name == "reader" else "/metrics"
        assert f"http://127.0.0.1:{METRICS_PORTS[name]}{path}" in text, name


@pytest.mark.parametrize("name", sorted(NEEDS))
def test_depends_on_healthy_servers(services: dict[str, Any], name: str) -> None:
    depends = services[name].get("depends_on", {})
    assert set(depends) == NEEDS[name]
    for target, spec in depends.items():
        assert spec == {"condition": "service_healthy"}, f"{name} -> {target}"


def test_every_healthy_dependency_has_a_healthcheck(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for target, spec in service.get("depends_on", {}).items():
            if spec.get("condition") == "service_healthy":
                assert "healthcheck" in services[target], f"{name} waits on {target}"


def test_dependencies_have_no_cycle(services: dict[str, Any]) -> None:
    state: dict[str, str] = {}

    def visit(name: str) -> None:
        assert state.get(name) != "visiting", f"dependency cycle through {name}"
        if state.get(name) == "done":
            return
        state[name] = "visiting"
        for target in services[name].get("depends_on", {}):
            visit(target)
        state[name] = "done"

    for name in services:
        visit(name)


def test_the_simulator_admin_is_published_on_loopback_only_behind_an_override() -> None:
    override = yaml.safe_load((ROOT / "deploy" / "compose.sim-admin.yml").read_text())
    assert override["services"]["sim"]["ports"] == ["127.0.0.1:8899:8899"]


def test_published_ports(services: dict[str, Any]) -> None:
    assert 8080 in _published_ports(services["reader"])
    assert not services["sim"].get("ports")  # its /admin routes are unauthenticated
    assert 9090 in _published_ports(services["prometheus"])
    assert 3000 in _published_ports(services["grafana"])
    assert 29092 in _published_ports(services["kafka"])


# --- Prometheus and Grafana ---------------------------------------------------------------------


def test_prometheus_loads_the_alert_rules(services: dict[str, Any]) -> None:
    mounts = dict(v.split(":")[:2] for v in services["prometheus"]["volumes"])
    inside = mounts["./deploy/prometheus/alerts.yml"]
    config = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    assert config["rule_files"] == [inside]
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    assert rules["groups"] and all(g["rules"] for g in rules["groups"])


def test_prometheus_scrapes_every_process(services: dict[str, Any]) -> None:
    mounts = dict(v.split(":")[:2] for v in services["prometheus"]["volumes"])
    assert mounts["./deploy/prometheus.yml"] == "/etc/prometheus/prometheus.yml"
    config = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    }
    for name, port in METRICS_PORTS.items():
        assert f"{name}:{port}" in targets, f"Prometheus does not scrape {name}:{port}"


def test_grafana_is_provisioned(services: dict[str, Any]) -> None:
    mounts = dict(v.split(":")[:2] for v in services["grafana"]["volumes"])
    provisioning = ROOT / "deploy" / "grafana" / "provisioning"
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    datasources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    providers = yaml.safe_load((provisioning / "dashboards" / "warmfleet.yml").read_text())
    (provider,) = providers["providers"]
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]
    home = _env(services["grafana"])["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == provider["options"]["path"] + "/warmfleet.json"


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    with open(ROOT / "deploy" / "grafana" / "dashboards" / "warmfleet.json", encoding="utf-8") as f:
        return json.load(f)  # type: ignore[no-any-return]


def _exprs(dashboard: dict[str, Any]) -> dict[str, list[str]]:
    """panel title -> its PromQL expressions"""
    return {
        panel["title"]: [t["expr"] for t in panel.get("targets", [])]
        for panel in dashboard["panels"]
        if panel["type"] != "row"
    }


def _metric_names(expr: str) -> set[str]:
    names = set(re.findall(r"\bwarmfleet_[a-z_]+", expr))
    # a histogram is queried through its _bucket / _sum / _count series
    return {re.sub(r"_(bucket|sum|count)$", "", n) for n in names}


def test_dashboard_uses_only_shared_metric_names(dashboard: dict[str, Any]) -> None:
    used = set().union(*(_metric_names(e) for exprs in _exprs(dashboard).values() for e in exprs))
    unknown = used - SHARED_METRICS
    assert not unknown, f"dashboard queries metrics nobody exports: {sorted(unknown)}"
    assert len(used) >= 15, "most of the shared metrics should be on the dashboard"


@pytest.mark.parametrize(
    ("topic", "metrics"),
    [
        ("hit rate per tier", {"warmfleet_cache_hits_total", "warmfleet_cache_misses_total"}),
        ("freshness", {"warmfleet_freshness_seconds"}),
        ("events/s", {"warmfleet_agent_events_total"}),
        ("poll errors", {"warmfleet_poller_errors_total"}),
        ("consumer lag", {"warmfleet_agent_consumer_lag"}),
        ("current phase", {"warmfleet_phase"}),
    ],
)
def test_dashboard_has_the_required_panels(
    dashboard: dict[str, Any], topic: str, metrics: set[str]
) -> None:
    for title, exprs in _exprs(dashboard).items():
        if topic.lower() in title.lower():
            used = set().union(*(_metric_names(e) for e in exprs))
            assert metrics <= used, f"panel {title!r} does not query {metrics - used}"
            if topic == "hit rate per tier":
                assert all("by (tier)" in e for e in exprs)
            return
    pytest.fail(f"no panel titled like {topic!r}")


def test_dashboard_panels_are_well_formed(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] and dashboard["title"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]
        mine = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & mine, f"panel {panel['title']!r} overlaps another"
        cells |= mine
        for target in panel.get("targets", []):
            expr = target["expr"]
            assert expr.count("(") == expr.count(")"), f"unbalanced PromQL in {panel['title']!r}"


# --- the image ----------------------------------------------------------------------------------


def test_dockerfile_builds_a_non_root_warmfleet_image() -> None:
    text = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)", text, re.M)
    assert stages and all(s.startswith("python:3.11-slim") for s in stages)
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert re.search(r"^ENTRYPOINT \[\"warmfleet\"\]$", text, re.M)
    assert re.search(r"pip install \.", text)


def test_dockerfile_copies_every_package() -> None:
    """A package added to pyproject but not COPY'd would be missing from the image."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = [p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]]
    copied = set(re.findall(r"^COPY (\S+) \./", (ROOT / "Dockerfile").read_text(), re.M))
    missing = [p for p in packages if p not in copied and (ROOT / p).is_dir()]
    assert not missing, f"Dockerfile does not COPY {missing}"
    for needed in ("pyproject.toml", "README.md"):
        assert needed in (ROOT / "Dockerfile").read_text()


def test_dockerignore_keeps_the_context_small() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", "tests"} <= ignored
    # nothing the Dockerfile copies may be ignored
    copied = re.findall(r"^COPY (?!--)(\S+) ", (ROOT / "Dockerfile").read_text(), re.M)
    assert not set(copied) & ignored


def test_compose_file_mentions_no_secret_values(compose: dict[str, Any]) -> None:
    """Only Grafana's local admin default is allowed; no real credentials in the file."""
    text = Path(ROOT / "docker-compose.yml").read_text()
    assert not re.search(r"://[^/\s:@]+:[^/\s@]+@", text), "a password inside a URL"
