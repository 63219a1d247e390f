"""The Helm chart: lint-clean values render to objects the Kubernetes API types accept (strictly:
an unknown field fails), the chart refuses unsafe values, and its syros.toml runs the real server."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import ALERTS, CHART, http, required_env

CI_VALUES = CHART / "ci" / "test-values.yaml"


def helm_template(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [required_env("HELM_BIN"), "template", "syros", str(CHART), *args],
        capture_output=True, text=True,
    )


def rendered(*args: str) -> str:
    result = helm_template(*args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def documents(text: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def by_kind(docs: list[dict], kind: str, name: str | None = None) -> dict:
    matches = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]


def validate(text: str) -> subprocess.CompletedProcess:
    return subprocess.run([required_env("K8S_VALIDATE_BIN")], input=text, capture_output=True, text=True)


@pytest.fixture(scope="module")
def ci_render() -> str:
    return rendered("-f", str(CI_VALUES))


def test_rendered_chart_passes_the_kubernetes_schema_check(ci_render):
    result = validate(ci_render)
    assert result.returncode == 0, result.stderr
    docs = documents(ci_render)
    assert f"{len(docs)} documents valid" in result.stdout
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted([
        "ConfigMap", "ConfigMap", "Deployment", "PodDisruptionBudget", "PrometheusRule", "Secret",
        "Service", "ServiceAccount", "ServiceMonitor",
    ])


def test_deployment_runs_replicas_non_root_with_probes(ci_render):
    docs = documents(ci_render)
    deployment = by_kind(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = pod["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "rest"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "rest"}
    assert {p["name"] for p in container["ports"]} == {"grpc", "rest", "ws"}
    secret_env = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"] if "valueFrom" in e}
    assert secret_env == {"JWT_SECRET": "syros", "DATABASE_URL": "syros", "REDIS_URL": "syros"}
    service = by_kind(docs, "Service")
    assert {(p["name"], p["port"]) for p in service["spec"]["ports"]} == {("grpc", 9090), ("rest", 8080), ("ws", 8081)}
    secret = by_kind(docs, "Secret")
    assert set(secret["stringData"]) == {"JWT_SECRET", "DATABASE_URL", "REDIS_URL"}


def test_prometheus_rule_carries_the_alert_file(ci_render):
    rule = by_kind(documents(ci_render), "PrometheusRule")
    assert rule["spec"] == yaml.safe_load(ALERTS.read_text())


@pytest.mark.parametrize(
    "kind, edit, expected",
    [
        ("Deployment", lambda d: d["spec"]["template"]["spec"]["containers"][0].update(imagePullPolicyy="Always"),
         'unknown field "spec.template.spec.containers[0].imagePullPolicyy"'),
        ("Service", lambda d: d["spec"].update(portz=[]), 'unknown field "spec.portz"'),
        ("PrometheusRule", lambda d: d["spec"]["groups"][0].update(rulez=[]), 'unknown field "spec.groups[0].rulez"'),
        ("Deployment", lambda d: d["spec"].update(replicas="two"), "replicas"),
        ("Deployment", lambda d: d.update(kind="Deploymnt"), 'no kind "Deploymnt" is registered'),
    ],
)
def test_schema_check_rejects_an_invalid_document(ci_render, kind, edit, expected):
    docs = documents(ci_render)
    edit(by_kind(docs, kind))
    result = validate(yaml.safe_dump_all(docs))
    assert result.returncode == 1, result.stdout + result.stderr
    assert expected in result.stderr
    assert "1 of" in result.stderr  # only the edited document is reported


def test_more_than_one_replica_needs_redis_and_postgresql():
    result = helm_template("--set", "secrets.jwtSecret=0123456789abcdef0123")
    assert result.returncode != 0
    assert "replicaCount > 1 needs shared storage" in result.stderr
    single = documents(rendered("--set", "secrets.jwtSecret=0123456789abcdef0123", "--set", "replicaCount=1"))
    assert by_kind(single, "Deployment")["spec"]["replicas"] == 1
    assert not [d for d in single if d["kind"] == "PodDisruptionBudget"]


def test_authentication_is_required_unless_explicitly_waived():
    result = helm_template("--set", "replicaCount=1")
    assert result.returncode != 0
    assert "set secrets.jwtSecret" in result.stderr
    short = helm_template("--set", "replicaCount=1", "--set", "secrets.jwtSecret=short")
    assert short.returncode != 0 and "at least 16 characters" in short.stderr
    open_docs = documents(rendered("--set", "replicaCount=1", "--set", "auth.allowUnauthenticated=true"))
    assert "allow_unauthenticated = true" in by_kind(open_docs, "ConfigMap", "syros")["data"]["syros.toml"]


def test_existing_secret_replaces_the_chart_secret():
    docs = documents(rendered("--set", "existingSecret=my-syros"))
    assert not [d for d in docs if d["kind"] == "Secret"]
    container = by_kind(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    refs = {e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"] if "valueFrom" in e}
    assert refs == {"my-syros"}
    assert validate(yaml.safe_dump_all(docs)).returncode == 0


def test_rendered_syros_toml_runs_the_server(ci_render, tmp_path):
    """The ConfigMap's syros.toml is read by the real server (unknown keys or a float port would
    stop it), and its allowed_hosts let the Service's names through."""
    from syros_launcher import SyrosServer

    toml = by_kind(documents(ci_render), "ConfigMap", "syros")["data"]["syros.toml"]
    config = Path(tmp_path) / "syros.toml"
    config.write_text(toml)
    required_env("SYROS_BIN")
    # The launcher's environment (127.0.0.1, ports 0, a temp data dir) wins over the file.
    server = SyrosServer(env={"SYROS_CONFIG": str(config), "JWT_SECRET": "ci-only-jwt-secret-0123456789"})
    try:
        server.start()
        status, _ = http("GET", server.rest_url("/ready"))
        assert status == 200
        status, _ = http("GET", server.rest_url("/health"), headers={"Host": "syros.default.svc.cluster.local"})
        assert status == 200
        status, body = http("GET", server.rest_url("/health"), headers={"Host": "elsewhere.example"})
        assert status == 421, body
        assert '"level"' in server.log()  # log_format = "json" from the file
    finally:
        server.stop()
        server.close()
