//! End-to-end tests of the REST API against a real `syros serve` process: every route, the seed
//! README's three curl bodies verbatim, and each error case.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// A client and a server.
struct Api {
    server: ServerProcess,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Api {
    async fn start() -> Api {
        Self::start_with(&[]).await
    }

    async fn start_with(env: &[(&str, &str)]) -> Api {
        let dir = tempfile::tempdir().unwrap();
        let env: Vec<(&str, String)> = env.iter().map(|(k, v)| (*k, v.to_string())).collect();
        let server = ServerProcess::start_with(dir.path(), &env).await;
        Api {
            server,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    /// Send `body` (raw text) as JSON; returns the status and the JSON answer.
    async fn raw(&self, method: Method, path: &str, body: Option<&str>) -> (StatusCode, Value) {
        let mut request = self.http.request(method, self.server.rest_url(path));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let text = response.text().await.unwrap();
        let value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{path}: answer is not JSON ({e}): {text:?}"));
        (status, value)
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let text = body.map(|b| b.to_string());
        self.raw(method, path, text.as_deref()).await
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }
}

/// An error answer has exactly the documented shape and the expected code.
#[track_caller]
fn assert_error(answer: &(StatusCode, Value), status: StatusCode, code: &str) {
    let (got, body) = answer;
    assert_eq!(*got, status, "status of {body}");
    assert_eq!(body["code"], code, "code of {body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "message of {body}"
    );
    assert!(body["details"].is_object(), "details of {body}");
}

/// The seed README's lock example, byte for byte.
const SEED_LOCK: &str = r#"{
    "key": "inventory_process_123",
    "owner": "worker_service_01",
    "ttl_seconds": 30
  }"#;

/// The seed README's saga example, byte for byte.
const SEED_SAGA: &str = r#"{
    "name": "order_fulfillment_saga",
    "steps": [
      {
        "name": "reserve_inventory",
        "service": "inventory_service",
        "action": "reserve",
        "compensation": "release_inventory",
        "timeout_seconds": 10
      },
      {
        "name": "charge_payment",
        "service": "payment_service",
        "action": "charge",
        "compensation": "refund_payment",
        "timeout_seconds": 15
      }
    ]
  }"#;

/// The seed README's event example, byte for byte.
const SEED_EVENT: &str = r#"{
    "event_type": "OrderCreated",
    "data": { "customer_id": "user_456", "total": 129.90 },
    "metadata": { "source": "mobile_app" }
  }"#;

#[tokio::test]
async fn seed_examples_work_as_written() {
    let api = Api::start().await;

    let (status, lease) = api
        .raw(Method::POST, "/api/v1/locks", Some(SEED_LOCK))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{lease}");
    assert_eq!(lease["key"], "inventory_process_123");
    assert_eq!(lease["owner"], "worker_service_01");
    assert!(lease["lease_id"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(lease["fencing_token"].as_u64().is_some_and(|t| t > 0));
    let acquired = lease["acquired_at_ms"].as_i64().unwrap();
    let expires = lease["expires_at_ms"].as_i64().unwrap();
    assert_eq!(expires - acquired, 30_000, "ttl_seconds is seconds");
    let expires_at = lease["expires_at"].as_str().unwrap();
    assert!(
        expires_at.ends_with('Z') && expires_at.contains('T'),
        "RFC 3339: {expires_at}"
    );

    let (status, saga) = api
        .raw(Method::POST, "/api/v1/sagas", Some(SEED_SAGA))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{saga}");
    assert_eq!(saga["name"], "order_fulfillment_saga");
    assert_eq!(saga["state"], "running");
    assert_eq!(saga["steps"][0]["name"], "reserve_inventory");
    assert_eq!(saga["steps"][0]["compensation"], "release_inventory");
    assert_eq!(
        saga["steps"][0]["timeout_ms"], 10_000,
        "timeout_seconds is seconds"
    );
    assert_eq!(saga["steps"][1]["timeout_ms"], 15_000);
    assert_eq!(saga["steps"][1]["action"], "charge");

    let (status, appended) = api
        .raw(
            Method::POST,
            "/api/v1/events/order_stream_99",
            Some(SEED_EVENT),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{appended}");
    assert_eq!(appended["stream"], "order_stream_99");
    assert_eq!(appended["first_version"], 0);
    assert_eq!(appended["last_version"], 0);
    let (status, read) = api.get("/api/v1/events/order_stream_99").await;
    assert_eq!(status, StatusCode::OK);
    let event = &read["events"][0];
    assert_eq!(event["event_type"], "OrderCreated");
    assert_eq!(
        event["data"],
        json!({"customer_id": "user_456", "total": 129.90})
    );
    assert_eq!(event["metadata"], json!({"source": "mobile_app"}));
}

#[tokio::test]
async fn lock_lifecycle() {
    let api = Api::start().await;
    let (status, lease) = api
        .post(
            "/api/v1/locks",
            json!({"key": "jobs/nightly", "owner": "a", "ttl_ms": 5000}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let lease_id = lease["lease_id"].as_str().unwrap().to_string();

    // Held: a second acquire gets 409 with the holder, after waiting if asked to.
    let started = std::time::Instant::now();
    let answer = api
        .post(
            "/api/v1/locks",
            json!({"key": "jobs/nightly", "owner": "b", "ttl_ms": 5000, "wait_timeout_ms": 300}),
        )
        .await;
    assert!(started.elapsed() >= std::time::Duration::from_millis(250));
    assert_error(&answer, StatusCode::CONFLICT, "lock_timeout");
    assert_eq!(answer.1["details"]["holder"]["lease_id"], lease_id.as_str());
    assert_eq!(answer.1["details"]["key"], "jobs/nightly");

    // Status and list (keys with '/' go in the query string).
    let (status, held) = api.get("/api/v1/locks/status?key=jobs%2Fnightly").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(held["held"], true);
    assert_eq!(held["lease"]["owner"], "a");
    let (_, free) = api.get("/api/v1/locks/status?key=jobs%2Fother").await;
    assert_eq!(
        free,
        json!({"key": "jobs/other", "held": false, "lease": null})
    );
    let (status, list) = api.get("/api/v1/locks?prefix=jobs%2F").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["leases"].as_array().unwrap().len(), 1);
    let (_, none) = api.get("/api/v1/locks?prefix=other&limit=5").await;
    assert_eq!(none["leases"], json!([]));

    // Renew with seconds or milliseconds.
    let (status, renewed) = api
        .post(
            &format!("/api/v1/locks/{lease_id}/renew"),
            json!({"ttl_seconds": 60}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{renewed}");
    assert_eq!(renewed["lease_id"], lease_id.as_str());
    assert!(renewed["expires_at_ms"].as_i64() > lease["expires_at_ms"].as_i64());

    // Release, then the lease is gone: renew and release say lock_not_held.
    let (status, released) = api
        .call(Method::DELETE, &format!("/api/v1/locks/{lease_id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(released["key"], "jobs/nightly");
    let again = api
        .call(Method::DELETE, &format!("/api/v1/locks/{lease_id}"), None)
        .await;
    assert_error(&again, StatusCode::CONFLICT, "lock_not_held");
    let renew = api
        .post(
            &format!("/api/v1/locks/{lease_id}/renew"),
            json!({"ttl_ms": 1000}),
        )
        .await;
    assert_error(&renew, StatusCode::CONFLICT, "lock_not_held");

    // A waiter gets the lock the moment it is released, with a larger fencing token.
    let (_, first) = api
        .post(
            "/api/v1/locks",
            json!({"key": "jobs/nightly", "owner": "a", "ttl_seconds": 30}),
        )
        .await;
    let waiter = {
        let http = api.http.clone();
        let url = api.server.rest_url("/api/v1/locks");
        tokio::spawn(async move {
            let response = http
                .post(url)
                .json(
                    &json!({"key": "jobs/nightly", "owner": "b", "ttl_seconds": 30,
                              "wait_timeout_seconds": 20}),
                )
                .send()
                .await
                .unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let first_id = first["lease_id"].as_str().unwrap();
    let (status, _) = api
        .call(Method::DELETE, &format!("/api/v1/locks/{first_id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, second) = waiter.await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{second}");
    assert_eq!(second["owner"], "b");
    assert!(second["fencing_token"].as_u64() > first["fencing_token"].as_u64());

    // Admin force-release drops it whoever holds it.
    let (status, forced) = api
        .post(
            "/api/v1/admin/locks/force-release",
            json!({"key": "jobs/nightly"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(forced["released"], true);
    assert_eq!(forced["lease"]["owner"], "b");
    let (_, nothing) = api
        .post(
            "/api/v1/admin/locks/force-release",
            json!({"key": "jobs/nightly"}),
        )
        .await;
    assert_eq!(nothing, json!({"released": false, "lease": null}));
}

#[tokio::test]
async fn lock_errors() {
    let api = Api::start().await;
    let cases = [
        json!({"key": "k", "owner": "o"}),
        json!({"key": "k", "owner": "o", "ttl_ms": 1000, "ttl_seconds": 1}),
        json!({"key": "k", "owner": "o", "ttl_ms": 1}),
        json!({"key": "k", "owner": "o", "ttl_seconds": 10_000_000}),
        json!({"key": "", "owner": "o", "ttl_ms": 1000}),
        json!({"key": "k", "owner": "", "ttl_ms": 1000}),
        json!({"key": "k\n", "owner": "o", "ttl_ms": 1000}),
        json!({"key": "x".repeat(513), "owner": "o", "ttl_ms": 1000}),
        json!({"key": "k", "owner": "o", "ttl_ms": 1000, "wait_timeout_ms": 400_000}),
    ];
    for body in cases {
        let answer = api.post("/api/v1/locks", body.clone()).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_argument");
    }
    // Malformed bodies get the same JSON error shape.
    let syntax = api
        .raw(Method::POST, "/api/v1/locks", Some("{not json"))
        .await;
    assert_error(&syntax, StatusCode::BAD_REQUEST, "invalid_argument");
    let shape = api
        .raw(
            Method::POST,
            "/api/v1/locks",
            Some(r#"{"key": 5, "owner": "o"}"#),
        )
        .await;
    assert_error(&shape, StatusCode::UNPROCESSABLE_ENTITY, "invalid_argument");
    let missing = api
        .raw(Method::POST, "/api/v1/locks", Some(r#"{"owner": "o"}"#))
        .await;
    assert_error(
        &missing,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_argument",
    );
    let response = api
        .http
        .post(api.server.rest_url("/api/v1/locks"))
        .body(SEED_LOCK)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "invalid_argument");
    // Query and path problems.
    let answer = api.get("/api/v1/locks/status").await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_argument");
    let answer = api.get("/api/v1/locks?limit=-1").await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_argument");
    let answer = api.get("/api/v1/locks?limit=10001").await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_argument");
    let answer = api
        .post("/api/v1/admin/locks/force-release", json!({"key": ""}))
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_argument");
    let answer = api
        .post("/api/v1/locks/nope/renew", json!({"ttl_ms": 10}))
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_argument");
    let answer = api.post("/api/v1/locks/nope/renew", json!({})).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_argument");
}

#[tokio::test]
async fn cache_routes() {
    let api = Api::start().await;
    // A JSON value with tags and a TTL; a key with '/' is percent-encoded.
    let (status, stored) = api
        .call(
            Method::PUT,
            "/api/v1/cache/users%2F42",
            Some(json!({"value": {"name": "Ada"}, "ttl_seconds": 60, "tags": ["users", "team-a"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    assert_eq!(stored["key"], "users/42");
    assert!(stored["expires_at_ms"].as_i64().is_some());
    assert!(stored["expires_at"].as_str().is_some());
    let (status, got) = api.get("/api/v1/cache/users%2F42").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["value"], json!({"name": "Ada"}));
    assert_eq!(got["value_base64"], "eyJuYW1lIjoiQWRhIn0=");
    assert_eq!(got["tags"], json!(["team-a", "users"]));

    // Raw bytes as base64, no TTL.
    let (status, bin) = api
        .call(
            Method::PUT,
            "/api/v1/cache/blob",
            Some(json!({"value_base64": "AP8Q", "tags": ["users"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{bin}");
    let (_, got) = api.get("/api/v1/cache/blob").await;
    assert_eq!(got["value_base64"], "AP8Q");
    assert!(
        got.get("value").is_none(),
        "bytes that are not JSON have no `value`"
    );
    assert_eq!(got["expires_at_ms"], Value::Null);

    // A JSON null is a value too.
    let (status, _) = api
        .call(
            Method::PUT,
            "/api/v1/cache/null",
            Some(json!({"value": null})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, got) = api.get("/api/v1/cache/null").await;
    assert_eq!(got["value"], Value::Null);
    assert_eq!(got["value_base64"], "bnVsbA==");

    // Invalidate by tag removes both tagged keys.
    let (status, invalidated) = api
        .post("/api/v1/cache/tags/users/invalidate", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(invalidated, json!({"tag": "users", "removed": 2}));
    let missing = api.get("/api/v1/cache/users%2F42").await;
    assert_error(&missing, StatusCode::NOT_FOUND, "not_found");

    // Delete.
    let (_, deleted) = api.call(Method::DELETE, "/api/v1/cache/null", None).await;
    assert_eq!(deleted, json!({"key": "null", "deleted": true}));
    let (_, deleted) = api.call(Method::DELETE, "/api/v1/cache/null", None).await;
    assert_eq!(deleted["deleted"], false);

    // A short TTL expires.
    api.call(
        Method::PUT,
        "/api/v1/cache/brief",
        Some(json!({"value": 1, "ttl_ms": 100})),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    assert_error(
        &api.get("/api/v1/cache/brief").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

#[tokio::test]
async fn cache_errors() {
    let api = Api::start_with(&[("CACHE_MAX_VALUE_BYTES", "1024")]).await;
    let put = |body: Value| api.call(Method::PUT, "/api/v1/cache/k", Some(body));
    assert_error(
        &put(json!({})).await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
    );
    assert_error(
        &put(json!({"value": 1, "value_base64": "AA=="})).await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
    );
    assert_error(
        &put(json!({"value_base64": "not base64!"})).await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
    );
    assert_error(
        &put(json!({"value": 1, "ttl_ms": 1, "ttl_seconds": 1})).await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
    );
    assert_error(
        &put(json!({"value": 1, "tags": [""]})).await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
    );
    let many: Vec<String> = (0..33).map(|i| format!("t{i}")).collect();
    assert_error(
        &put(json!({"value": 1, "tags": many})).await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
    );
    assert_error(
        &put(json!({"value": "x".repeat(2000)})).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    let long_key = format!("/api/v1/cache/{}", "k".repeat(600));
    assert_error(
        &api.get(&long_key).await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
    );
    assert_error(
        &api.post("/api/v1/cache/tags/%0A/invalidate", json!({}))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
    );
}

#[tokio::test]
async fn event_routes() {
    let api = Api::start().await;
    // A batch that requires a new stream.
    let (status, appended) = api
        .post(
            "/api/v1/events/orders%2F7",
            json!({"expected_version": "no_stream", "events": [
                {"event_type": "Created", "data": {"n": 0}},
                {"event_type": "Paid", "data": {"n": 1}, "metadata": {"by": "card"}, "event_id": "e-1"},
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{appended}");
    assert_eq!(
        appended,
        json!({"stream": "orders/7", "first_version": 0, "last_version": 1,
               "first_position": 1, "last_position": 2})
    );
    // Optimistic concurrency: the right version succeeds, a stale one conflicts.
    let (status, _) = api
        .post(
            "/api/v1/events/orders%2F7",
            json!({"event_type": "Shipped", "data": {"n": 2}, "expected_version": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let conflict = api
        .post(
            "/api/v1/events/orders%2F7",
            json!({"event_type": "Shipped", "data": {}, "expected_version": 1}),
        )
        .await;
    assert_error(&conflict, StatusCode::CONFLICT, "version_conflict");
    assert_eq!(conflict.1["details"]["expected_version"], "1");
    assert_eq!(conflict.1["details"]["actual_version"], "2");
    let conflict = api
        .post(
            "/api/v1/events/orders%2F7",
            json!({"event_type": "X", "data": {}, "expected_version": "no_stream"}),
        )
        .await;
    assert_error(&conflict, StatusCode::CONFLICT, "version_conflict");
    api.post(
        "/api/v1/events/other",
        json!({"event_type": "O", "data": [1, 2]}),
    )
    .await;

    // Read forwards, backwards, from a version, with a limit.
    let (status, read) = api.get("/api/v1/events/orders%2F7").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["exists"], true);
    assert_eq!(read["last_version"], 2);
    let versions: Vec<u64> = read["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [0, 1, 2]);
    assert_eq!(read["events"][1]["event_id"], "e-1");
    assert_eq!(read["events"][1]["metadata"], json!({"by": "card"}));
    assert_eq!(read["events"][0]["metadata"], Value::Null);
    let (_, back) = api
        .get("/api/v1/events/orders%2F7?direction=backwards&limit=2")
        .await;
    let types: Vec<&str> = back["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["Shipped", "Paid"]);
    let (_, from) = api.get("/api/v1/events/orders%2F7?from=1&limit=1").await;
    assert_eq!(from["events"][0]["version"], 1);
    assert_eq!(from["events"].as_array().unwrap().len(), 1);
    let (status, absent) = api.get("/api/v1/events/nothing-here").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        absent,
        json!({"stream": "nothing-here", "exists": false, "last_version": null, "events": []})
    );

    // Read all streams by global position.
    let (status, all) = api.get("/api/v1/events").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(all["last_position"], 4);
    let positions: Vec<u64> = all["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["global_position"].as_u64().unwrap())
        .collect();
    assert_eq!(positions, [1, 2, 3, 4]);
    let (_, tail) = api
        .get("/api/v1/events?from_position=4&direction=backwards&limit=2")
        .await;
    assert_eq!(tail["events"][0]["stream"], "other");
    assert_eq!(tail["events"][1]["global_position"], 3);
}

#[tokio::test]
async fn event_errors() {
    let api = Api::start().await;
    let cases = [
        json!({}),
        json!({"event_type": "T"}),
        json!({"data": {}}),
        json!({"events": []}),
        json!({"events": [{"event_type": "T", "data": 1}], "event_type": "T", "data": 1}),
        json!({"event_type": "", "data": {}}),
        json!({"event_type": "T", "data": {}, "expected_version": "sometimes"}),
        json!({"event_type": "T", "data": {}, "expected_version": -1}),
        json!({"event_type": "T", "data": {}, "event_id": "x".repeat(200)}),
    ];
    for body in cases {
        let (status, answer) = api.post("/api/v1/events/s", body.clone()).await;
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::UNPROCESSABLE_ENTITY,
            "{body} -> {status} {answer}"
        );
        assert_eq!(answer["code"], "invalid_argument", "{body} -> {answer}");
    }
    let too_many: Vec<Value> = (0..1001)
        .map(|_| json!({"event_type": "T", "data": 1}))
        .collect();
    assert_error(
        &api.post("/api/v1/events/s", json!({"events": too_many}))
            .await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    assert_error(
        &api.get("/api/v1/events/s?direction=sideways").await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
    );
    assert_error(
        &api.get("/api/v1/events/s?limit=100000").await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
    );
    assert_error(
        &api.get("/api/v1/events?from_position=abc").await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
    );
    let long = format!("/api/v1/events/{}", "s".repeat(300));
    assert_error(
        &api.get(&long).await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
    );
}

#[tokio::test]
async fn saga_routes() {
    let api = Api::start().await;
    let body = json!({
        "name": "transfer",
        "steps": [
            {"name": "debit", "service": "accounts", "action": "debit", "compensation": "credit",
             "timeout_ms": 5000, "retry_policy": {"maximum_attempts": 5}},
            {"name": "credit", "service": "accounts", "action": "credit"},
        ],
        "input": {"from": "a", "to": "b", "amount": 10},
        "idempotency_key": "transfer-1",
        "retry_policy": {"initial_interval_ms": 200},
    });
    let (status, saga) = api.post("/api/v1/sagas", body.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{saga}");
    let saga_id = saga["saga_id"].as_str().unwrap().to_string();
    assert_eq!(saga["input"], json!({"from": "a", "to": "b", "amount": 10}));
    assert_eq!(saga["idempotency_key"], "transfer-1");
    assert_eq!(saga["retry_policy"]["initial_interval_ms"], 200);
    assert_eq!(saga["retry_policy"]["maximum_attempts"], 3);
    assert_eq!(saga["steps"][0]["retry_policy"]["maximum_attempts"], 5);
    assert_eq!(saga["steps"][0]["state"], "running");
    assert_eq!(saga["steps"][1]["compensation"], Value::Null);
    assert_eq!(
        saga["steps"][1]["timeout_ms"], 30_000,
        "the default step timeout"
    );
    assert_eq!(saga["audit_stream"], format!("saga-{saga_id}"));

    // The same idempotency key returns the same saga.
    let (_, again) = api.post("/api/v1/sagas", body).await;
    assert_eq!(again["saga_id"], saga_id.as_str());

    let (status, got) = api.get(&format!("/api/v1/sagas/{saga_id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["name"], "transfer");

    // List with filters and paging.
    let other = json!({"name": "other", "steps": [{"name": "s", "service": "x", "action": "y"}]});
    api.post("/api/v1/sagas", other).await;
    let (status, list) = api.get("/api/v1/sagas").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["sagas"].as_array().unwrap().len(), 2);
    let (_, by_name) = api.get("/api/v1/sagas?name=transfer&state=running").await;
    assert_eq!(by_name["sagas"].as_array().unwrap().len(), 1);
    assert_eq!(by_name["sagas"][0]["saga_id"], saga_id.as_str());
    let (_, page) = api.get("/api/v1/sagas?limit=1").await;
    assert_eq!(page["sagas"].as_array().unwrap().len(), 1);
    let token = page["next_page_token"]
        .as_str()
        .expect("a next page")
        .to_string();
    let (_, second) = api
        .get(&format!("/api/v1/sagas?limit=1&page_token={token}"))
        .await;
    assert_eq!(second["sagas"].as_array().unwrap().len(), 1);
    assert_ne!(second["sagas"][0]["saga_id"], page["sagas"][0]["saga_id"]);

    // Cancel: no step completed, so nothing to compensate.
    let (status, cancelled) = api
        .post(&format!("/api/v1/sagas/{saga_id}/cancel"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["state"], "cancelled");
    let (_, audit) = api.get(&format!("/api/v1/events/saga-{saga_id}")).await;
    let types: Vec<&str> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(types.first(), Some(&"SagaStarted"), "{types:?}");
    assert!(types.contains(&"SagaCancelled"), "{types:?}");

    // Errors.
    assert_error(
        &api.get("/api/v1/sagas/no-such-saga").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &api.post("/api/v1/sagas/no-such-saga/cancel", json!({}))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &api.get("/api/v1/sagas?state=sleeping").await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
    );
    assert_error(
        &api.get("/api/v1/sagas?page_token=abc").await,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
    );
    for bad in [
        json!({"name": "n", "steps": []}),
        json!({"name": "", "steps": [{"name": "s", "service": "x", "action": "y"}]}),
        json!({"name": "n", "steps": [{"name": "s", "service": "x", "action": "y"},
                                      {"name": "s", "service": "x", "action": "y"}]}),
        json!({"name": "n", "steps": [{"name": "s", "service": "x", "action": "y",
                                       "timeout_seconds": 1, "timeout_ms": 1000}]}),
        json!({"name": "n", "steps": [{"name": "s", "service": "x", "action": "y",
                                       "timeout_seconds": 100000}]}),
    ] {
        let answer = api.post("/api/v1/sagas", bad.clone()).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_argument");
    }
    let shape = api.post("/api/v1/sagas", json!({"name": "n"})).await;
    assert_error(&shape, StatusCode::UNPROCESSABLE_ENTITY, "invalid_argument");
}

#[tokio::test]
async fn operations_routes() {
    let api = Api::start().await;
    let (status, health) = api.get("/health").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health["status"], "ok");
    let (status, ready) = api.get("/ready").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ready["status"], "ready");

    // Generate some traffic, then read the metrics.
    api.raw(Method::POST, "/api/v1/locks", Some(SEED_LOCK))
        .await;
    api.raw(Method::POST, "/api/v1/locks", Some(SEED_LOCK))
        .await;
    api.raw(Method::POST, "/api/v1/events/m", Some(SEED_EVENT))
        .await;
    api.get("/api/v1/cache/missing").await;
    let metrics = api
        .http
        .get(api.server.rest_url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
    assert!(metrics.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = metrics.text().await.unwrap();
    for expected in [
        r#"syros_http_requests_total{method="POST",route="/api/v1/locks",status="201"} 1"#,
        r#"syros_http_requests_total{method="POST",route="/api/v1/locks",status="409"} 1"#,
        r#"syros_http_request_duration_seconds_bucket{method="POST",route="/api/v1/events/{stream}",status="201",le="+Inf"} 1"#,
        r#"syros_lock_acquisitions_total{outcome="acquired"} 1"#,
        r#"syros_lock_acquisitions_total{outcome="not_acquired"} 1"#,
        "syros_events_appended_total 1",
        r#"syros_cache_lookups_total{result="miss"} 1"#,
    ] {
        assert!(text.contains(expected), "missing {expected} in\n{text}");
    }

    // The OpenAPI document describes every REST route.
    let (status, doc) = api.get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/v1/locks",
        "/api/v1/locks/status",
        "/api/v1/locks/{lease_id}",
        "/api/v1/locks/{lease_id}/renew",
        "/api/v1/admin/locks/force-release",
        "/api/v1/cache/{key}",
        "/api/v1/cache/tags/{tag}/invalidate",
        "/api/v1/events",
        "/api/v1/events/{stream}",
        "/api/v1/sagas",
        "/api/v1/sagas/{saga_id}",
        "/api/v1/sagas/{saga_id}/cancel",
        "/health",
        "/ready",
        "/metrics",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} is not documented");
    }
}

#[tokio::test]
async fn unknown_routes_methods_and_oversized_bodies_get_json_errors() {
    let api = Api::start().await;
    assert_error(
        &api.get("/api/v1/nothing").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(&api.get("/").await, StatusCode::NOT_FOUND, "not_found");
    assert_error(
        &api.call(Method::PATCH, "/api/v1/locks", Some(json!({})))
            .await,
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_argument",
    );
    // Over the 16 MiB body limit, announced by Content-Length and streamed without one.
    let announced = raw_http(
        api.server.rest_addr,
        "POST /api/v1/locks HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n\
         content-length: 17825792\r\nconnection: close\r\n\r\n",
        0,
    )
    .await;
    assert!(announced.starts_with("HTTP/1.1 413"), "{announced}");
    assert!(
        announced.contains(r#""code":"payload_too_large""#),
        "{announced}"
    );
    let streamed = raw_http(
        api.server.rest_addr,
        "PUT /api/v1/cache/big HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n\
         transfer-encoding: chunked\r\nconnection: close\r\n\r\n",
        17,
    )
    .await;
    assert!(streamed.starts_with("HTTP/1.1 413"), "{streamed}");
    assert!(
        streamed.contains(r#""code":"payload_too_large""#),
        "{streamed}"
    );
}

/// Sends `head`, then `chunks` chunks of 1 MiB (chunked encoding) while reading the answer;
/// returns the answer as text. Write errors are ignored: the server may answer and close early.
async fn raw_http(addr: std::net::SocketAddr, head: &str, chunks: usize) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let head = head.to_string();
    let write = tokio::spawn(async move {
        writer.write_all(head.as_bytes()).await?;
        let chunk = format!("100000\r\n{}\r\n", "x".repeat(1024 * 1024));
        for _ in 0..chunks {
            writer.write_all(chunk.as_bytes()).await?;
        }
        if chunks > 0 {
            writer.write_all(b"0\r\n\r\n").await?;
        }
        Ok::<_, std::io::Error>(writer)
    });
    let mut answer = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        reader.read_to_end(&mut answer),
    )
    .await;
    assert!(read.is_ok(), "no answer within 20 s");
    write.abort();
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn cors_is_off_by_default_and_configurable() {
    let api = Api::start().await;
    let response = api
        .http
        .get(api.server.rest_url("/health"))
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert!(response
        .headers()
        .get("access-control-allow-origin")
        .is_none());
    drop(api);

    let api =
        Api::start_with(&[("CORS_ORIGINS", "https://app.example,http://localhost:3000")]).await;
    let response = api
        .http
        .request(Method::OPTIONS, api.server.rest_url("/api/v1/locks"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let other = api
        .http
        .get(api.server.rest_url("/health"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn http_servers_stop_on_sigterm() {
    let api = Api::start().await;
    let mut api = api;
    let (status, _) = api.get("/health").await;
    assert_eq!(status, StatusCode::OK);
    let status = api
        .server
        .terminate(std::time::Duration::from_secs(15))
        .expect("syros stops within 15 s of SIGTERM");
    assert!(status.success(), "{status}");
    assert!(
        std::net::TcpStream::connect(api.server.rest_addr).is_err(),
        "REST port closed"
    );
    assert!(
        std::net::TcpStream::connect(api.server.ws_addr).is_err(),
        "WebSocket port closed"
    );
}

#[tokio::test]
async fn grpc_calls_are_counted_once_in_metrics() {
    let api = Api::start().await;
    let client = locks(api.server.addr);
    for owner in ["a", "b"] {
        client
            .acquire(acquire_request("grpc/metrics", owner, 10_000, 0))
            .await
            .unwrap();
    }
    events(api.server.addr)
        .append(syros_proto::syros::v1::AppendEventsRequest {
            stream: "grpc-metrics".into(),
            events: vec![event("A", "{}"), event("B", "{}")],
            expected_version: None,
        })
        .await
        .unwrap();
    cache(api.server.addr)
        .get(syros_proto::syros::v1::CacheGetRequest { key: "nope".into() })
        .await
        .unwrap();
    let text = api
        .http
        .get(api.server.rest_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // Counted by the engine, once per call, whatever the API.
    for expected in [
        r#"syros_lock_acquisitions_total{outcome="acquired"} 1"#,
        r#"syros_lock_acquisitions_total{outcome="not_acquired"} 1"#,
        "syros_events_appended_total 2",
        r#"syros_cache_lookups_total{result="miss"} 1"#,
        "syros_locks_held 1",
    ] {
        assert!(
            text.lines().any(|line| line == expected),
            "missing {expected} in\n{text}"
        );
    }
}
