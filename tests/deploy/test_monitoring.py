"""Monitoring against a live server: a real Prometheus scrapes it and returns the lock and saga
series; every metric the Grafana dashboard and the alert rules query exists in its /metrics; the
alert rules load and evaluate in Prometheus."""

from __future__ import annotations

import json
import time
import urllib.parse

import grpc
import pytest
import yaml

from conftest import ALERTS, alert_queries, dashboard_queries, http, metric_names, required_env

# Series Prometheus itself adds to every target (not in /metrics).
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}


def rest(path: str) -> str:
    return f"http://{required_env('SYROS_REST_ADDR')}{path}"


def call(method: str, path: str, body: object | None = None) -> tuple[int, dict]:
    status, text = http(method, rest(path), body)
    return status, (json.loads(text) if text else {})


def run_one_saga_step(protos, service: str) -> None:
    """Act as a step runner: take one task of `service` over gRPC and complete it."""
    with grpc.insecure_channel(required_env("SYROS_GRPC_ADDR")) as channel:
        sagas = protos.sagas_pb2_grpc.SagaServiceStub(channel)
        feed = sagas.PollTasks(
            protos.sagas_pb2.PollTasksRequest(service=service, worker_id="deploy-test", max_concurrent=1),
            timeout=30,
        )
        task = next(feed)
        sagas.CompleteTask(protos.sagas_pb2.CompleteTaskRequest(task_id=task.task_id, output_json="{}"), timeout=10)
        feed.cancel()


@pytest.fixture(scope="module")
def traffic(protos) -> str:
    """A few lock, cache, event and saga operations; returns the /metrics text afterwards."""
    status, lease = call("POST", "/api/v1/locks", {"key": "deploy/a", "owner": "t", "ttl_ms": 30000})
    assert status == 201, lease
    status, refused = call("POST", "/api/v1/locks", {"key": "deploy/a", "owner": "u", "ttl_ms": 30000, "wait_timeout_ms": 200})
    assert status == 409 and refused["code"] == "lock_timeout", refused
    status, body = call("DELETE", f"/api/v1/locks/{lease['lease_id']}", {})
    assert status == 200, body
    status, held = call("POST", "/api/v1/locks", {"key": "deploy/held", "owner": "t", "ttl_ms": 600000})
    assert status == 201, held

    status, body = call("PUT", "/api/v1/cache/deploy%2Fk", {"value": {"x": 1}, "tags": ["deploy"]})
    assert status in (200, 201), body
    assert call("GET", "/api/v1/cache/deploy%2Fk")[0] == 200
    assert call("GET", "/api/v1/cache/deploy%2Fmissing")[0] == 404
    status, body = call("POST", "/api/v1/events/deploy_stream", {"event_type": "Deployed", "data": {"n": 1}})
    assert status in (200, 201), body

    status, saga = call("POST", "/api/v1/sagas", {
        "name": "deploy_saga", "steps": [{"name": "only", "service": "deploy_svc", "action": "run"}],
    })
    assert status == 201, saga
    run_one_saga_step(protos, "deploy_svc")
    deadline = time.monotonic() + 20
    while call("GET", f"/api/v1/sagas/{saga['saga_id']}")[1].get("state") != "completed":
        assert time.monotonic() < deadline, "the saga did not complete"
        time.sleep(0.1)
    assert call("GET", "/api/v1/sagas/no-such-saga")[0] == 404

    status, text = http("GET", rest("/metrics"))
    assert status == 200
    return text


def exported_names(metrics_text: str) -> set[str]:
    names = set()
    for line in metrics_text.splitlines():
        if line and not line.startswith("#"):
            names.add(line.split("{", 1)[0].split(" ", 1)[0])
    return names


def test_metric_names_are_extracted_from_promql():
    expr = ('histogram_quantile(0.95, sum by (le, route) (rate(syros_http_request_duration_seconds_bucket'
            '{job=~"$job",route!="x"}[$__rate_interval]))) / on() group_left sum(syros_locks_held) '
            'or on() vector(0) > 0.5 and up{job=~".*syros.*"} == 0')
    assert metric_names(expr) == {"syros_http_request_duration_seconds_bucket", "syros_locks_held", "up"}


def test_every_dashboard_metric_is_exported(traffic):
    wanted = set().union(*(metric_names(q) for q in dashboard_queries()))
    assert {"syros_lock_wait_seconds_bucket", "syros_saga_step_duration_seconds_bucket",
            "syros_cache_lookups_total", "syros_api_errors_total"} <= wanted, wanted
    missing = wanted - exported_names(traffic) - PROMETHEUS_SERIES
    assert not missing, f"the dashboard queries metrics /metrics does not export: {sorted(missing)}"


def test_every_alert_metric_is_exported(traffic):
    wanted = set().union(*(metric_names(q) for q in alert_queries()))
    assert "syros_saga_transitions_total" in wanted, wanted
    missing = wanted - exported_names(traffic) - PROMETHEUS_SERIES
    assert not missing, f"the alert rules query metrics /metrics does not export: {sorted(missing)}"


def prometheus(path: str, **params: str) -> dict:
    url = required_env("PROMETHEUS_URL") + path
    if params:
        url += "?" + urllib.parse.urlencode(params)
    status, text = http("GET", url)
    assert status == 200, text
    body = json.loads(text)
    assert body["status"] == "success", body
    return body["data"]


def wait_for_series(query: str, at_least: float) -> float:
    """Poll Prometheus's query API until `query` returns a sample >= at_least (it scrapes every
    second); returns the value."""
    deadline = time.monotonic() + 30
    last = None
    while time.monotonic() < deadline:
        result = prometheus("/api/v1/query", query=query)["result"]
        if result:
            last = float(result[0]["value"][1])
            if last >= at_least:
                return last
        time.sleep(0.5)
    pytest.fail(f"Prometheus never returned {query} >= {at_least} (last: {last})")


@pytest.mark.parametrize(
    "query, at_least",
    [
        ('syros_lock_acquisitions_total{outcome="acquired"}', 2),
        ('syros_lock_acquisitions_total{outcome="not_acquired"}', 1),
        ('syros_lock_wait_seconds_count{outcome="not_acquired"}', 1),
        ("syros_locks_held", 1),
        ('syros_saga_transitions_total{state="running"}', 1),
        ('syros_saga_transitions_total{state="completed"}', 1),
        ('syros_saga_step_duration_seconds_count{kind="action",outcome="completed"}', 1),
        ('syros_api_errors_total{transport="http",code="lock_timeout"}', 1),
        ('syros_cache_lookups_total{result="hit"}', 1),
    ],
)
def test_prometheus_scrapes_the_lock_and_saga_series(traffic, query, at_least):
    wait_for_series(query, at_least)


def test_alert_rules_load_and_evaluate_in_prometheus(traffic):
    expected = {rule["alert"] for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]}
    deadline = time.monotonic() + 30
    while True:
        rules = [rule for group in prometheus("/api/v1/rules")["groups"] for rule in group["rules"]]
        evaluated = [r for r in rules if not r.get("lastEvaluation", "0001").startswith("0001")]
        if len(evaluated) == len(expected) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert {r["name"] for r in rules} == expected
    broken = {r["name"]: r.get("lastError") for r in rules if r.get("health") != "ok"}
    assert not broken, broken
    # The traffic above completed its saga and ran its step: nothing may be firing.
    firing = [r["name"] for r in rules if r.get("state") == "firing"]
    assert firing == [], firing
