"""The helm chart, checked without a cluster: `helm lint`, `helm template` rendered for several
value sets, built-in kinds validated strictly by kubernetes-validate, CRD objects (KEDA,
Prometheus Operator) and the chart's own rules checked here.

helm comes from `make deploy-check` (`helm/check.sh`, a `go install`); see conftest.py.
"""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from workers.settings import Settings

from .conftest import CHART, KUBE_VERSION, ROOT

CRD_APIS = ("keda.sh/v1alpha1", "monitoring.coreos.com/v1")
CRD_KINDS = {"ScaledObject", "TriggerAuthentication", "ServiceMonitor", "PrometheusRule"}
OPTIONAL_ON = {
    "keda.enabled": "true",
    "serviceMonitor.enabled": "true",
    "prometheusRule.enabled": "true",
    "kafka.auth.existingSecret": "warmfleet-kafka",
    "redis.auth.existingSecret": "warmfleet-redis",
    "sim.enabled": "true",
}
WORKLOADS = {"Deployment", "StatefulSet"}

Manifest = dict[str, Any]


def _run(cmd: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=60, check=False)


def _template(
    helm: Path, values: dict[str, str] | None = None, apis: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    cmd = [str(helm), "template", "t", str(CHART), "--namespace", "warmfleet"]
    cmd += ["--kube-version", KUBE_VERSION]
    for api in apis:
        cmd += ["--api-versions", api]
    for key, value in (values or {}).items():
        cmd += ["--set", f"{key}={value}"]
    return _run(cmd)


def _render(
    helm: Path, values: dict[str, str] | None = None, apis: tuple[str, ...] = ()
) -> tuple[str, list[Manifest]]:
    result = _template(helm, values, apis)
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    return result.stdout, docs


def _one(docs: list[Manifest], kind: str, component: str) -> Manifest:
    found = [
        d
        for d in docs
        if d["kind"] == kind
        and d["metadata"]["labels"].get("app.kubernetes.io/component") == component
    ]
    assert len(found) == 1, f"expected one {kind} for {component}, got {len(found)}"
    return found[0]


def _workload(docs: list[Manifest], component: str) -> Manifest:
    found = [
        d
        for d in docs
        if d["kind"] in WORKLOADS
        and d["metadata"]["labels"]["app.kubernetes.io/component"] == component
    ]
    assert len(found) == 1, component
    return found[0]


def _container(workload: Manifest) -> Manifest:
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    return container  # type: ignore[no-any-return]


def _plain_env(container: Manifest) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


@pytest.fixture(scope="module")
def default(helm: Path) -> tuple[str, list[Manifest]]:
    return _render(helm)


@pytest.fixture(scope="module")
def optional(helm: Path) -> tuple[str, list[Manifest]]:
    return _render(helm, OPTIONAL_ON, CRD_APIS)


# --- helm lint and kubernetes-validate ---------------------------------------------------------


@pytest.mark.parametrize("values", [{}, OPTIONAL_ON], ids=["default", "optional-on"])
def test_helm_lint_strict(helm: Path, values: dict[str, str]) -> None:
    cmd = [str(helm), "lint", "--strict", "--kube-version", KUBE_VERSION, str(CHART)]
    for key, value in values.items():
        cmd += ["--set", f"{key}={value}"]
    result = _run(cmd)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("which", ["default", "optional"])
def test_manifests_validate_strictly(
    request: pytest.FixtureRequest, kubernetes_validate: Path, which: str
) -> None:
    text, docs = request.getfixturevalue(which)
    result = _run(
        [str(kubernetes_validate), "--strict", "--kubernetes-version", KUBE_VERSION, "-"], text
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # built-in kinds pass against their schemas; only our CRD kinds may lack one
    passed = result.stdout.count(" passed for resource ")
    no_schema = [line for line in result.stdout.splitlines() if "Couldn't find schema" in line]
    crd_docs = [d for d in docs if d["kind"] in CRD_KINDS]
    assert passed == len(docs) - len(crd_docs)
    assert len(no_schema) == len(crd_docs)
    assert all(any(kind in line for kind in CRD_KINDS) for line in no_schema)


def test_check_script_passes() -> None:
    """`helm/check.sh`, what `make deploy-check` runs, on the chart as it is."""
    result = _run([str(ROOT / "helm" / "check.sh")])
    assert result.returncode == 0, result.stderr
    assert "chart OK" in result.stderr


# --- default values: the workloads -------------------------------------------------------------


def test_default_renders_the_fleet(default: tuple[str, list[Manifest]]) -> None:
    _, docs = default
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in docs)
    for component in ("poller", "agents", "clock", "reader"):
        assert _workload(docs, component)["kind"] == "Deployment"
    _one(docs, "Service", "reader")
    _one(docs, "HorizontalPodAutoscaler", "reader")
    _one(docs, "ConfigMap", "phases")
    assert not [k for k in kinds if k[0] in CRD_KINDS], "CRD objects need their API served"
    assert not [k for k in kinds if k[0] == "Secret"], "the chart only references secrets"
    assert not [
        d for d in docs if d["metadata"]["labels"].get("app.kubernetes.io/component") == "sim"
    ]


def test_clock_is_a_single_recreated_replica(default: tuple[str, list[Manifest]]) -> None:
    _, docs = default
    clock = _workload(docs, "clock")
    assert clock["spec"]["replicas"] == 1
    assert clock["spec"]["strategy"] == {"type": "Recreate"}
    assert _container(clock)["args"] == ["clock"]


def test_pdbs_cover_the_scaled_processes_but_not_the_clock(
    default: tuple[str, list[Manifest]],
) -> None:
    _, docs = default
    pdbs = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    covered = {p["metadata"]["labels"]["app.kubernetes.io/component"] for p in pdbs}
    assert covered == {"poller", "agents", "reader"}
    for pdb in pdbs:
        component = pdb["metadata"]["labels"]["app.kubernetes.io/component"]
        pods = _workload(docs, component)["spec"]["template"]["metadata"]["labels"]
        assert pdb["spec"]["selector"]["matchLabels"].items() <= pods.items()


def test_reader_service_hpa_and_probes(default: tuple[str, list[Manifest]]) -> None:
    _, docs = default
    reader = _workload(docs, "reader")
    assert "replicas" not in reader["spec"], "the HPA owns the replica count"
    hpa = _one(docs, "HorizontalPodAutoscaler", "reader")["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": reader["metadata"]["name"],
    }
    assert hpa["minReplicas"] <= hpa["maxReplicas"]
    container = _container(reader)
    assert container["args"][:3] == ["reader", "--host", "0.0.0.0"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    (port,) = container["ports"]
    assert container["args"][container["args"].index("--port") + 1] == str(port["containerPort"])
    service = _one(docs, "Service", "reader")["spec"]
    assert service["ports"][0]["targetPort"] == port["name"]
    assert service["selector"].items() <= reader["spec"]["template"]["metadata"]["labels"].items()


def test_reader_without_autoscaling_has_replicas(helm: Path) -> None:
    _, docs = _render(helm, {"reader.autoscaling.enabled": "false", "reader.replicas": "3"})
    assert _workload(docs, "reader")["spec"]["replicas"] == 3
    assert not [d for d in docs if d["kind"] == "HorizontalPodAutoscaler"]


@pytest.mark.parametrize(
    ("component", "command", "port"),
    [("poller", "poller", 9101), ("agents", "worker", 9102), ("clock", "clock", 9103)],
)
def test_metrics_port_env_probes_and_service_agree(
    default: tuple[str, list[Manifest]], component: str, command: str, port: int
) -> None:
    _, docs = default
    workload = _workload(docs, component)
    container = _container(workload)
    assert container["args"] == [command]
    assert _plain_env(container)["WARMFLEET_METRICS_PORT"] == str(port)
    assert container["ports"] == [{"name": "metrics", "containerPort": port, "protocol": "TCP"}]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/metrics", "port": "metrics"}
    service = next(
        d
        for d in docs
        if d["kind"] == "Service" and d["metadata"]["name"].endswith(f"{component}-metrics")
    )
    assert service["spec"]["ports"][0]["port"] == port


@pytest.mark.parametrize("which", ["default", "optional"])
def test_every_pod_is_locked_down(request: pytest.FixtureRequest, which: str) -> None:
    _, docs = request.getfixturevalue(which)
    workloads = [d for d in docs if d["kind"] in WORKLOADS]
    assert workloads
    for workload in workloads:
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            assert container["resources"]["requests"] and container["resources"]["limits"]
            assert "livenessProbe" in container and "readinessProbe" in container
            # the root fs is read-only: /tmp must be a volume
            assert "/tmp" in {m["mountPath"] for m in container["volumeMounts"]}


@pytest.mark.parametrize("component", ["poller", "agents", "clock", "reader"])
def test_env_is_valid_settings_and_phases_are_mounted(
    default: tuple[str, list[Manifest]], component: str
) -> None:
    _, docs = default
    workload = _workload(docs, component)
    container = _container(workload)
    env = _plain_env(container)
    settings = Settings.from_env(env)  # ConfigError on anything malformed
    assert settings.kafka_servers == ("kafka:9092",)
    assert settings.redis_url == "redis://redis:6379/0"
    assert settings.log_format == "json"
    assert settings.exchange_urls == {}, "default: the real exchanges"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert env["WARMFLEET_PHASES"] == mounts["phases"] + "/phases.toml"
    volumes = {v["name"]: v for v in workload["spec"]["template"]["spec"]["volumes"]}
    configmap = _one(docs, "ConfigMap", "phases")
    assert volumes["phases"]["configMap"]["name"] == configmap["metadata"]["name"]


def test_phases_configmap_is_the_real_calendar(
    default: tuple[str, list[Manifest]], tmp_path: Path
) -> None:
    _, docs = default
    content = _one(docs, "ConfigMap", "phases")["data"]["phases.toml"]
    source = (ROOT / "schedules" / "phases.toml").read_text()
    assert tomllib.loads(content) == tomllib.loads(source), (
        "helm/warmfleet/files/phases.toml drifted from schedules/phases.toml: "
        "cp schedules/phases.toml helm/warmfleet/files/phases.toml"
    )
    from schedules import load_config

    path = tmp_path / "phases.toml"
    path.write_text(content)
    load_config(path)  # the clock's own loader accepts what the ConfigMap mounts


def test_phases_override_from_values(helm: Path, tmp_path: Path) -> None:
    custom = tmp_path / "phases.yaml"
    custom.write_text(yaml.safe_dump({"phases": 'timezone = "Europe/London"\n'}))
    result = _run(
        [str(helm), "template", "t", str(CHART), "--kube-version", KUBE_VERSION, "-f", str(custom)]
    )
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    content = _one(docs, "ConfigMap", "phases")["data"]["phases.toml"]
    assert tomllib.loads(content) == {"timezone": "Europe/London"}


def test_exchange_urls_and_simulator(helm: Path) -> None:
    _, docs = _render(helm, {"exchangeUrls.binance": "http://binance-proxy:8080"})
    env = _plain_env(_container(_workload(docs, "poller")))
    assert Settings.from_env(env).exchange_urls == {"binance": "http://binance-proxy:8080"}

    _, docs = _render(helm, {"sim.enabled": "true"})
    sim = _workload(docs, "sim")
    service = _one(docs, "Service", "sim")
    env = _plain_env(_container(_workload(docs, "poller")))
    url = f"http://{service['metadata']['name']}:{service['spec']['ports'][0]['port']}"
    assert Settings.from_env(env).exchange_urls == {"binance": url, "okx": url}
    assert _container(sim)["args"][:3] == ["sim", "--host", "0.0.0.0"]


# --- optional parts: secrets, KEDA, ServiceMonitor ----------------------------------------------


def test_secrets_are_referenced_never_inlined(optional: tuple[str, list[Manifest]]) -> None:
    _, docs = optional
    assert not [d for d in docs if d["kind"] == "Secret"]
    for component in ("poller", "agents", "clock", "reader"):
        env = _container(_workload(docs, component))["env"]
        names = [e["name"] for e in env]
        refs = {
            e["name"]: e["valueFrom"]["secretKeyRef"]
            for e in env
            if "secretKeyRef" in e.get("valueFrom", {})
        }
        assert refs["WARMFLEET_KAFKA_SASL_USERNAME"]["name"] == "warmfleet-kafka"
        assert refs["WARMFLEET_KAFKA_SASL_PASSWORD"]["name"] == "warmfleet-kafka"
        assert refs["WARMFLEET_REDIS_PASSWORD"] == {
            "name": "warmfleet-redis",
            "key": "redis-password",
        }
        # $(VAR) expansion only sees variables defined EARLIER in the list
        url = next(e["value"] for e in env if e["name"] == "WARMFLEET_REDIS_URL")
        assert url == "redis://:$(WARMFLEET_REDIS_PASSWORD)@redis:6379/0"
        assert names.index("WARMFLEET_REDIS_PASSWORD") < names.index("WARMFLEET_REDIS_URL")
        # once expanded it is a URL the settings accept
        Settings.from_env({"WARMFLEET_REDIS_URL": url.replace("$(WARMFLEET_REDIS_PASSWORD)", "pw")})


def test_keda_scaled_object_targets_the_agents(optional: tuple[str, list[Manifest]]) -> None:
    _, docs = optional
    agents = _workload(docs, "agents")
    assert "replicas" not in agents["spec"], "KEDA owns the agents' replica count"
    scaled = _one(docs, "ScaledObject", "agents")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaled["spec"]
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": agents["metadata"]["name"],
    }
    assert 0 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "kafka"
    meta = trigger["metadata"]
    assert meta["bootstrapServers"] == "kafka:9092"
    assert meta["consumerGroup"] == "warmfleet-agents-symbols"
    assert all(isinstance(v, str) for v in meta.values()), "KEDA trigger metadata are strings"
    assert int(meta["lagThreshold"]) > 0
    auth = _one(docs, "TriggerAuthentication", "agents")
    assert trigger["authenticationRef"] == {"name": auth["metadata"]["name"]}
    params = {ref["parameter"]: ref for ref in auth["spec"]["secretTargetRef"]}
    assert set(params) == {"username", "password"}
    assert {ref["name"] for ref in params.values()} == {"warmfleet-kafka"}


def test_keda_group_follows_the_namespace_prefix(helm: Path) -> None:
    _, docs = _render(helm, {"keda.enabled": "true", "namespacePrefix": "blue."}, CRD_APIS)
    trigger = _one(docs, "ScaledObject", "agents")["spec"]["triggers"][0]
    assert trigger["metadata"]["consumerGroup"] == "blue.warmfleet-agents-symbols"
    assert "authenticationRef" not in trigger


def test_service_monitor_scrapes_each_process_once(optional: tuple[str, list[Manifest]]) -> None:
    _, docs = optional
    monitor = next(d for d in docs if d["kind"] == "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    selector = monitor["spec"]["selector"]["matchLabels"]
    ports = {e["port"] for e in monitor["spec"]["endpoints"]}
    assert all(e["path"] == "/metrics" for e in monitor["spec"]["endpoints"])
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["warmfleet"]}
    scraped: dict[str, int] = {}
    for service in (d for d in docs if d["kind"] == "Service"):
        if selector.items() <= service["metadata"]["labels"].items():
            component = service["metadata"]["labels"]["app.kubernetes.io/component"]
            named = [p for p in service["spec"]["ports"] if p["name"] in ports]
            assert named, f"selected Service {service['metadata']['name']} exposes no scraped port"
            scraped[component] = scraped.get(component, 0) + len(named)
    assert scraped == {"poller": 1, "agents": 1, "clock": 1, "reader": 1, "sim": 1}


def test_prometheus_rule_is_the_alerts_file(
    optional: tuple[str, list[Manifest]], default: tuple[str, list[Manifest]]
) -> None:
    alerts = ROOT / "deploy" / "prometheus" / "alerts.yml"
    chart_copy = CHART / "files" / "alerts.yml"
    assert chart_copy.read_text() == alerts.read_text(), (
        "helm/warmfleet/files/alerts.yml differs from deploy/prometheus/alerts.yml: copy it over"
    )
    _, docs = optional
    (rule,) = [d for d in docs if d["kind"] == "PrometheusRule"]
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["spec"] == yaml.safe_load(alerts.read_text())
    names = {r.get("alert") for g in rule["spec"]["groups"] for r in g["rules"]} - {None}
    assert "WarmfleetNoActiveClock" in names and "WarmfleetPollerNotPublishing" in names
    # annotations keep Prometheus' own {{ $labels.x }} templates, not rendered by helm
    assert "{{ $labels.tier }}" in str(rule["spec"])
    assert not [d for d in default[1] if d["kind"] == "PrometheusRule"], "off by default"


def test_crd_objects_need_the_api_served(helm: Path) -> None:
    _, docs = _render(
        helm,
        {
            "keda.enabled": "true",
            "serviceMonitor.enabled": "true",
            "prometheusRule.enabled": "true",
        },
    )
    assert not [d for d in docs if d["kind"] in CRD_KINDS]
    assert "replicas" in _workload(docs, "agents")["spec"], "no KEDA: the chart sets replicas"


# --- values.schema.json and template guards refuse bad values -------------------------------------


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"agents.kind": "StatefulSet"}, "kind"),
        ({"kafka.url": "http://kafka:9092"}, "kafka.url"),
        ({"redis.url": "redis://:hunter2@redis:6379/0"}, "redis.url"),
        ({"reader.autoscaling.targetCPUUtilizationPercentage": "150"}, "targetCPU"),
        ({"log.level": "LOUD"}, "log.level"),
        ({"poller.metricsPort": "70000"}, "poller.metricsPort"),
        ({"exchangeUrls.binance": "not a url"}, "exchangeUrls"),
        ({"typoedKey": "1"}, "typoedKey"),
    ],
)
def test_bad_values_are_refused(helm: Path, values: dict[str, str], message: str) -> None:
    result = _template(helm, values)
    assert result.returncode != 0, f"{values} rendered"
    assert message in result.stderr, result.stderr
