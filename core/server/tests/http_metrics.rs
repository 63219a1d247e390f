//! The engine-level series of `/metrics` (recorded by the engine, whatever the API): lock
//! acquisitions by outcome, lock waits, locks held, saga transitions and step durations, events
//! appended, error answers by transport and code.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures::StreamExt;
use serde_json::{json, Value};
use syros_proto::syros::v1 as pb;

struct Rest {
    server: ServerProcess,
    http: reqwest::Client,
}

impl Rest {
    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .request(method, self.server.rest_url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    async fn acquire(&self, key: &str, ttl_ms: u64, wait_ms: u64) -> (u16, Value) {
        let body =
            json!({"key": key, "owner": "metrics", "ttl_ms": ttl_ms, "wait_timeout_ms": wait_ms});
        self.call(reqwest::Method::POST, "/api/v1/locks", body)
            .await
    }

    async fn release(&self, lease: &Value) {
        let path = format!("/api/v1/locks/{}", lease["lease_id"].as_str().unwrap());
        let (status, body) = self.call(reqwest::Method::DELETE, &path, json!({})).await;
        assert_eq!(status, 200, "{body}");
    }

    async fn metrics(&self) -> String {
        self.http
            .get(self.server.rest_url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// The value of one series (`name{labels}` exactly as rendered) in a Prometheus text page.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test]
async fn lock_saga_and_event_series() {
    let dir = tempfile::tempdir().unwrap();
    let rest = Rest {
        server: ServerProcess::start(dir.path()).await,
        http: reqwest::Client::new(),
    };

    // A lock cycle.
    let (status, cycle) = rest.acquire("m/cycle", 10_000, 0).await;
    assert_eq!(status, 201, "{cycle}");
    rest.release(&cycle).await;

    // A waited acquire (over gRPC: counted by the engine, like REST): it gets the lock when the
    // holder releases.
    let (status, holder) = rest.acquire("m/hot", 10_000, 0).await;
    assert_eq!(status, 201, "{holder}");
    let waiter = {
        let client = locks(rest.server.addr);
        tokio::spawn(async move {
            client
                .acquire(acquire_request("m/hot", "waiter", 30_000, 10_000))
                .await
                .unwrap()
                .into_inner()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    rest.release(&holder).await;
    let waited = waiter.await.unwrap();
    assert!(waited.acquired, "{waited:?}");
    // A wait that times out, and a lease left to expire.
    let (status, refused) = rest.acquire("m/hot", 10_000, 200).await;
    assert_eq!(status, 409, "{refused}");
    let (status, brief) = rest.acquire("m/brief", 200, 0).await;
    assert_eq!(status, 201, "{brief}");

    // A one-step saga run by a step runner over gRPC.
    let (status, saga) = rest
        .call(
            reqwest::Method::POST,
            "/api/v1/sagas",
            json!({"name": "metrics_saga", "steps": [
                {"name": "only", "service": "metrics_svc", "action": "run"}
            ]}),
        )
        .await;
    assert_eq!(status, 201, "{saga}");
    let sagas = pb::SagaServiceClientBuilder::new("syros")
        .address(rest.server.addr)
        .build();
    let mut feed = sagas
        .poll_tasks(pb::PollTasksRequest {
            service: "metrics_svc".into(),
            worker_id: "metrics-worker".into(),
            max_concurrent: 1,
        })
        .await
        .unwrap()
        .into_inner();
    let task = tokio::time::timeout(Duration::from_secs(10), feed.next())
        .await
        .expect("a task within 10 s")
        .expect("the feed is open")
        .expect("a task");
    sagas
        .complete_task(pb::CompleteTaskRequest {
            task_id: task.task_id,
            output_json: "{}".into(),
        })
        .await
        .unwrap();
    // A step whose runner takes it and never answers: the sweeper times the attempt out after
    // its 200 ms, and that attempt is observed as `timed_out`, with its duration.
    let (status, slow) = rest
        .call(
            reqwest::Method::POST,
            "/api/v1/sagas",
            json!({"name": "metrics_slow_saga", "steps": [
                {"name": "slow", "service": "metrics_slow", "action": "run", "timeout_ms": 200}
            ]}),
        )
        .await;
    assert_eq!(status, 201, "{slow}");
    let mut slow_feed = sagas
        .poll_tasks(pb::PollTasksRequest {
            service: "metrics_slow".into(),
            worker_id: "metrics-silent-worker".into(),
            max_concurrent: 1,
        })
        .await
        .unwrap()
        .into_inner();
    tokio::time::timeout(Duration::from_secs(10), slow_feed.next())
        .await
        .expect("a task within 10 s")
        .expect("the feed is open")
        .expect("a task");
    drop(slow_feed);

    // An error answered over gRPC (an unknown saga): counted by transport and code, like the
    // REST 409 `lock_timeout` above.
    let missing = sagas
        .get(pb::GetSagaRequest {
            saga_id: "no-such-saga".into(),
        })
        .await
        .expect_err("an unknown saga is an error");
    assert_eq!(error_code(&missing), "not_found");
    let path = format!("/api/v1/sagas/{}", saga["saga_id"].as_str().unwrap());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, saga) = rest.call(reqwest::Method::GET, &path, json!({})).await;
        if saga["state"] == "completed" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the saga did not complete: {saga}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // m/hot (the waiter's) is still held; m/brief leaves the gauge once seen expired.
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = rest.metrics().await;
        let timed_out = value(
            &text,
            r#"syros_saga_step_duration_seconds_count{kind="action",outcome="timed_out"}"#,
        );
        if value(&text, "syros_locks_held") == Some(1.0) && timed_out.is_some() {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "syros_locks_held did not settle at 1 or no step timed out:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for (series, expected) in [
        (r#"syros_lock_acquisitions_total{outcome="acquired"}"#, 4.0),
        (
            r#"syros_lock_acquisitions_total{outcome="not_acquired"}"#,
            1.0,
        ),
        (r#"syros_lock_wait_seconds_count{outcome="acquired"}"#, 1.0),
        (
            r#"syros_lock_wait_seconds_count{outcome="not_acquired"}"#,
            1.0,
        ),
        (
            r#"syros_lock_wait_seconds_bucket{outcome="acquired",le="+Inf"}"#,
            1.0,
        ),
        (r#"syros_saga_transitions_total{state="running"}"#, 2.0),
        (r#"syros_saga_transitions_total{state="completed"}"#, 1.0),
        (
            r#"syros_saga_step_duration_seconds_count{kind="action",outcome="completed"}"#,
            1.0,
        ),
        (
            r#"syros_api_errors_total{transport="http",code="lock_timeout"}"#,
            1.0,
        ),
        (
            r#"syros_api_errors_total{transport="grpc",code="not_found"}"#,
            1.0,
        ),
        // Exported before any WebSocket client connected.
        ("syros_websocket_connections", 0.0),
    ] {
        assert_eq!(value(&text, series), Some(expected), "{series} in\n{text}");
    }
    // The timed-out attempt lasted its 200 ms timeout at least.
    assert_eq!(
        value(
            &text,
            r#"syros_saga_step_duration_seconds_bucket{kind="action",outcome="timed_out",le="0.1"}"#
        ),
        Some(0.0),
        "{text}"
    );
    // The waiter waited about 300 ms, not less than 100.
    assert_eq!(
        value(
            &text,
            r#"syros_lock_wait_seconds_bucket{outcome="acquired",le="0.1"}"#
        ),
        Some(0.0),
        "{text}"
    );
    // The saga's audit events (started, scheduled, completed, ...) are appended events.
    let appended = value(&text, "syros_events_appended_total").unwrap_or(0.0);
    assert!(appended >= 3.0, "syros_events_appended_total {appended}");
    for help in [
        "# HELP syros_locks_held",
        "# HELP syros_lock_wait_seconds",
        "# HELP syros_saga_transitions_total",
        "# HELP syros_saga_step_duration_seconds",
        "# HELP syros_api_errors_total",
    ] {
        assert!(text.contains(help), "missing {help} in\n{text}");
    }
}
