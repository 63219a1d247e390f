"""Fixtures for the deployment tests (`SYROS_TEST_ONLY=deploy scripts/test`, scripts/deploy-checks.sh).

scripts/deploy-checks.sh installs the tools and starts what these tests look at, then exports:

- ``HELM_BIN`` and ``K8S_VALIDATE_BIN``: helm and deploy/tools/k8s-validate;
- ``SYROS_BIN``: the server binary (the chart's rendered syros.toml is run through it);
- ``SYROS_REST_ADDR`` and ``SYROS_GRPC_ADDR``: a running ``syros serve`` (embedded store);
- ``PROMETHEUS_URL``: a real Prometheus scraping that server every second, with the alert rules
  of deploy/prometheus loaded.

A missing variable fails the test that needs it: nothing here skips.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
import types
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "syros"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "syros.json"
ALERTS = ROOT / "deploy" / "prometheus" / "syros-alerts.yml"

sys.path.insert(0, str(ROOT / "tests" / "launcher"))


def required_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run through SYROS_TEST_ONLY=deploy scripts/test", pytrace=False)
    return value


def http(method: str, url: str, body: object | None = None, headers: dict | None = None) -> tuple[int, str]:
    """One HTTP request; returns (status, body text) whatever the status."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


# --- PromQL: the metric names a query reads ---------------------------------------------------
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_BRACES = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
             "group_left", "group_right", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (label matchers, grouping labels, functions
    and keywords removed)."""
    text = _STRING.sub('""', expr)
    text = _BRACES.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    names = set()
    for match in _IDENT.finditer(text):
        name = match.group(0)
        following = text[match.end():].lstrip()
        if following.startswith("(") or name.lower() in _KEYWORDS:
            continue  # a function or aggregation, or an operator keyword
        if match.start() > 0 and text[match.start() - 1] in "0123456789.$":
            continue  # the tail of a number, or a Grafana variable
        names.add(name)
    return names


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            queries.append(target["expr"])
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        if isinstance(query, dict) and "query" in query:
            # label_values(METRIC, label): the metric is the first argument.
            match = re.match(r"label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)", query["query"])
            if match:
                queries.append(match.group(1))
    return queries


def alert_queries() -> list[str]:
    import yaml

    rules = yaml.safe_load(ALERTS.read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def load_interop_protos(gen_dir: Path) -> types.SimpleNamespace:
    """The gRPC stubs, generated from proto/ by the interop tests' generate_protos."""
    spec = importlib.util.spec_from_file_location("interop_conftest", ROOT / "tests" / "interop" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate_protos(gen_dir)


@pytest.fixture(scope="session")
def protos(tmp_path_factory) -> types.SimpleNamespace:
    return load_interop_protos(tmp_path_factory.mktemp("gen"))
