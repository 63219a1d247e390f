//! End-to-end tests of GraphQL (`/graphql`, subscriptions on `/graphql/ws`) against a real
//! `syros serve`.

mod common;

use std::time::Duration;

use common::*;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

async fn start() -> (ServerProcess, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path()).await;
    (server, dir)
}

/// Runs a GraphQL document; returns the whole answer (`data` and `errors`).
async fn graphql(server: &ServerProcess, query: &str, variables: Value) -> Value {
    let response = reqwest::Client::new()
        .post(server.rest_url("/graphql"))
        .json(&json!({"query": query, "variables": variables}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn queries_and_mutations() {
    let (server, _dir) = start().await;
    let acquired = graphql(
        &server,
        r#"mutation($key: String!) {
             acquireLock(input: {key: $key, owner: "gql", ttlMs: 30000}) {
               acquired lease { leaseId key owner fencingToken expiresAt }
             }
           }"#,
        json!({"key": "gql/lock"}),
    )
    .await;
    assert_eq!(acquired.get("errors"), None, "{acquired}");
    let result = &acquired["data"]["acquireLock"];
    assert_eq!(result["acquired"], true);
    assert_eq!(result["lease"]["key"], "gql/lock");
    let lease_id = result["lease"]["leaseId"].as_str().unwrap().to_string();

    let status = graphql(
        &server,
        r#"{ lock(key: "gql/lock") { held lease { owner } } locks(prefix: "gql/") { key } }"#,
        json!({}),
    )
    .await;
    assert_eq!(
        status["data"],
        json!({"lock": {"held": true, "lease": {"owner": "gql"}}, "locks": [{"key": "gql/lock"}]})
    );
    let busy = graphql(
        &server,
        r#"mutation { acquireLock(input: {key: "gql/lock", owner: "other", ttlMs: 1000}) {
             acquired holder { owner } } }"#,
        json!({}),
    )
    .await;
    assert_eq!(
        busy["data"]["acquireLock"],
        json!({"acquired": false, "holder": {"owner": "gql"}})
    );
    let released = graphql(
        &server,
        "mutation($id: String!) { releaseLock(leaseId: $id) { key } }",
        json!({"id": lease_id}),
    )
    .await;
    assert_eq!(released["data"]["releaseLock"]["key"], "gql/lock");

    // Errors carry the same codes as REST.
    let again = graphql(
        &server,
        "mutation($id: String!) { releaseLock(leaseId: $id) { key } }",
        json!({"id": lease_id}),
    )
    .await;
    assert_eq!(
        again["errors"][0]["extensions"]["code"], "lock_not_held",
        "{again}"
    );
    let invalid = graphql(&server, r#"{ lock(key: "") { held } }"#, json!({})).await;
    assert_eq!(
        invalid["errors"][0]["extensions"]["code"],
        "invalid_argument"
    );
    // Cache.
    let set = graphql(
        &server,
        r#"mutation { cacheSet(key: "c", value: {a: [1, 2]}, ttlMs: 60000, tags: ["t"]) {
             key tags expiresAtMs } }"#,
        json!({}),
    )
    .await;
    assert_eq!(set["data"]["cacheSet"]["tags"], json!(["t"]), "{set}");
    let got = graphql(
        &server,
        r#"{ cache(key: "c") { value valueBase64 } }"#,
        json!({}),
    )
    .await;
    assert_eq!(got["data"]["cache"]["value"], json!({"a": [1, 2]}));
    let gone = graphql(
        &server,
        r#"mutation { invalidateCacheTag(tag: "t") }"#,
        json!({}),
    )
    .await;
    assert_eq!(gone["data"]["invalidateCacheTag"], 1);
    let missing = graphql(&server, r#"{ cache(key: "c") { key } }"#, json!({})).await;
    assert_eq!(missing["data"]["cache"], Value::Null);

    // Events, with optimistic concurrency.
    let appended = graphql(
        &server,
        r#"mutation($events: [EventInput!]!) {
             appendEvents(stream: "g", events: $events, noStream: true) {
               firstVersion lastVersion lastPosition } }"#,
        json!({"events": [
            {"eventType": "A", "data": {"n": 0}},
            {"eventType": "B", "data": {"n": 1}, "metadata": {"m": true}},
        ]}),
    )
    .await;
    assert_eq!(
        appended["data"]["appendEvents"],
        json!({"firstVersion": 0, "lastVersion": 1, "lastPosition": 2})
    );
    let conflict = graphql(
        &server,
        r#"mutation { appendEvents(stream: "g", events: [{eventType: "C", data: 1}],
             expectedVersion: 0) { lastVersion } }"#,
        json!({}),
    )
    .await;
    assert_eq!(
        conflict["errors"][0]["extensions"]["code"],
        "version_conflict"
    );
    assert_eq!(
        conflict["errors"][0]["extensions"]["details"]["actual_version"],
        "1"
    );
    let read = graphql(
        &server,
        r#"{ streamEvents(stream: "g", direction: BACKWARDS) {
               exists lastVersion events { version eventType data metadata } }
             allEvents(limit: 1) { lastPosition events { globalPosition } } }"#,
        json!({}),
    )
    .await;
    assert_eq!(
        read["data"],
        json!({
            "streamEvents": {"exists": true, "lastVersion": 1, "events": [
                {"version": 1, "eventType": "B", "data": {"n": 1}, "metadata": {"m": true}},
                {"version": 0, "eventType": "A", "data": {"n": 0}, "metadata": null},
            ]},
            "allEvents": {"lastPosition": 2, "events": [{"globalPosition": 1}]},
        })
    );

    // Sagas.
    let started = graphql(
        &server,
        r#"mutation { startSaga(input: {name: "gql-saga", input: {order: 7}, steps: [
             {name: "reserve", service: "stock", action: "reserve", compensation: "release"},
             {name: "charge", service: "pay", action: "charge", timeoutMs: 5000}]}) {
               sagaId state input steps { name state timeoutMs } auditStream } }"#,
        json!({}),
    )
    .await;
    assert_eq!(started.get("errors"), None, "{started}");
    let saga = &started["data"]["startSaga"];
    assert_eq!(saga["state"], "running");
    assert_eq!(saga["input"], json!({"order": 7}));
    assert_eq!(
        saga["steps"],
        json!([{"name": "reserve", "state": "running", "timeoutMs": 30000},
               {"name": "charge", "state": "pending", "timeoutMs": 5000}])
    );
    let saga_id = saga["sagaId"].as_str().unwrap();
    let listed = graphql(
        &server,
        r#"{ sagas(state: "running") { sagaId name } }"#,
        json!({}),
    )
    .await;
    assert_eq!(
        listed["data"]["sagas"],
        json!([{"sagaId": saga_id, "name": "gql-saga"}])
    );
    let cancelled = graphql(
        &server,
        "mutation($id: String!) { cancelSaga(sagaId: $id) { state } }",
        json!({"id": saga_id}),
    )
    .await;
    assert_eq!(cancelled["data"]["cancelSaga"]["state"], "cancelled");
    let got = graphql(
        &server,
        "query($id: String!) { saga(sagaId: $id) { state } }",
        json!({"id": saga_id}),
    )
    .await;
    assert_eq!(got["data"]["saga"]["state"], "cancelled");
    let missing = graphql(&server, r#"{ saga(sagaId: "nope") { state } }"#, json!({})).await;
    assert_eq!(missing["errors"][0]["extensions"]["code"], "not_found");
}

#[tokio::test]
async fn subscription_over_websocket_catches_up_then_goes_live() {
    let (server, _dir) = start().await;
    let mut socket = subscribed_to_events(&server, "live").await;
    let first = read_json(&mut socket).await;
    assert_eq!(first["type"], "next", "{first}");
    assert_eq!(
        first["payload"]["data"]["events"],
        json!({"version": 0, "eventType": "Old", "data": 0})
    );
    graphql(
        &server,
        r#"mutation { appendEvents(stream: "live", events: [{eventType: "New", data: 1}]) {
             lastVersion } }"#,
        json!({}),
    )
    .await;
    let second = read_json(&mut socket).await;
    assert_eq!(
        second["payload"]["data"]["events"],
        json!({"version": 1, "eventType": "New", "data": 1})
    );
}

/// A subscription connection following `stream`, after one event (`Old`, data 0) was appended
/// to it; the subscription's first message is that event.
async fn subscribed_to_events(server: &ServerProcess, stream: &str) -> GraphqlSocket {
    graphql(
        server,
        r#"mutation ($stream: String!) {
             appendEvents(stream: $stream, events: [{eventType: "Old", data: 0}]) { lastVersion } }"#,
        json!({"stream": stream}),
    )
    .await;
    let mut socket = graphql_ws(server).await;
    socket
        .send(Message::text(
            json!({"id": "1", "type": "subscribe", "payload": {
                "query": "subscription ($stream: String!) { events(stream: $stream) { version eventType data } }",
                "variables": {"stream": stream},
            }})
            .to_string(),
        ))
        .await
        .unwrap();
    socket
}

/// Acquires `key` (30 s) through GraphQL; returns the lease.
async fn gql_acquire(server: &ServerProcess, key: &str) -> Value {
    let answer = graphql(
        server,
        r#"mutation($key: String!) { acquireLock(input: {key: $key, owner: "gql", ttlMs: 30000}) {
             lease { leaseId key owner fencingToken expiresAtMs } } }"#,
        json!({"key": key}),
    )
    .await;
    assert_eq!(answer.get("errors"), None, "{answer}");
    answer["data"]["acquireLock"]["lease"].clone()
}

#[tokio::test]
async fn lock_changes_subscription() {
    let (server, _dir) = start().await;
    let mut socket = graphql_ws(&server).await;
    socket
        .send(Message::text(
            json!({"id": "locks", "type": "subscribe", "payload": {
                "query": r#"subscription { lockChanges(prefix: "gql/") {
                    kind key owner fencingToken leaseId expiresAtMs changedAtMs changedAt } }"#
            }})
            .to_string(),
        ))
        .await
        .unwrap();
    // graphql-transport-ws does not acknowledge a subscription: acquire probe locks until one
    // is reported, then a marker, and read up to the marker.
    let mut probe = 0;
    loop {
        gql_acquire(&server, &format!("gql/probe-{probe}")).await;
        probe += 1;
        match tokio::time::timeout(Duration::from_millis(300), read_json(&mut socket)).await {
            Ok(message) => {
                assert_eq!(message["type"], "next", "{message}");
                break;
            }
            Err(_) => assert!(probe < 30, "the subscription never started"),
        }
    }
    gql_acquire(&server, "gql/marker").await;
    loop {
        let message = read_json(&mut socket).await;
        if message["payload"]["data"]["lockChanges"]["key"] == "gql/marker" {
            break;
        }
    }

    gql_acquire(&server, "other/1").await;
    let lease = gql_acquire(&server, "gql/1").await;
    let released = graphql(
        &server,
        r#"mutation($id: String!) { releaseLock(leaseId: $id) { key } }"#,
        json!({"id": lease["leaseId"]}),
    )
    .await;
    assert_eq!(released.get("errors"), None, "{released}");
    for kind in ["ACQUIRED", "RELEASED"] {
        let message = read_json(&mut socket).await;
        assert_eq!(message["type"], "next", "{message}");
        assert_eq!(message["id"], "locks", "{message}");
        let change = &message["payload"]["data"]["lockChanges"];
        assert_eq!(change["kind"], kind, "{message}");
        for field in ["key", "owner", "fencingToken", "leaseId"] {
            assert_eq!(change[field], lease[field], "{field} of {message}");
        }
        let expires = if kind == "ACQUIRED" {
            lease["expiresAtMs"].clone()
        } else {
            Value::Null
        };
        assert_eq!(change["expiresAtMs"], expires, "{message}");
        assert!(change["changedAtMs"].as_i64().is_some_and(|t| t > 0));
    }

    // An invalid prefix is an error of the subscription.
    socket
        .send(Message::text(
            json!({"id": "bad", "type": "subscribe", "payload": {
                "query": format!(r#"subscription {{ lockChanges(prefix: "{}") {{ key }} }}"#, "p".repeat(600))
            }})
            .to_string(),
        ))
        .await
        .unwrap();
    let error = read_json(&mut socket).await;
    assert_eq!(error["id"], "bad", "{error}");
    assert_eq!(error["type"], "next", "{error}");
    assert_eq!(
        error["payload"]["errors"][0]["extensions"]["code"], "invalid_argument",
        "{error}"
    );
    let complete = read_json(&mut socket).await;
    assert_eq!(complete, json!({"id": "bad", "type": "complete"}));
}

type GraphqlSocket = WebSocketClient;

/// A `graphql-transport-ws` connection to `/graphql/ws`, initialised (acknowledged).
async fn graphql_ws(server: &ServerProcess) -> GraphqlSocket {
    let mut request = format!("ws://{}/graphql/ws", server.rest_addr)
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    socket
        .send(Message::text(
            json!({"type": "connection_init"}).to_string(),
        ))
        .await
        .unwrap();
    assert_eq!(read_json(&mut socket).await["type"], "connection_ack");
    socket
}

async fn read_json(socket: &mut GraphqlSocket) -> Value {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a message within 10 s")
            .unwrap()
            .unwrap();
        if let Message::Text(text) = frame {
            return serde_json::from_str(text.as_str()).unwrap();
        }
    }
}

#[tokio::test]
async fn malformed_requests_get_json_errors() {
    let (server, _dir) = start().await;
    let response = reqwest::Client::new()
        .post(server.rest_url("/graphql"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "invalid_argument");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("not a GraphQL request"),
        "{body}"
    );
    // A batch gets one answer per request (the requests may run concurrently).
    let batch: Value = reqwest::Client::new()
        .post(server.rest_url("/graphql"))
        .json(&json!([
            {"query": r#"{ cache(key: "b") { value } }"#},
            {"query": r#"{ lock(key: "b") { held } }"#},
        ]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        batch,
        json!([{"data": {"cache": null}}, {"data": {"lock": {"held": false}}}])
    );
    // An unknown field is a GraphQL error, not an HTTP one.
    let unknown = graphql(&server, "{ nope }", json!({})).await;
    assert!(unknown["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("nope"));
}

#[tokio::test]
async fn playground_page() {
    let (server, _dir) = start().await;
    let response = reqwest::get(server.rest_url("/graphql")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let page = response.text().await.unwrap();
    assert!(page.contains("GraphQL Playground"), "{page}");
    assert!(page.contains("/graphql/ws"));
}

#[tokio::test]
async fn cache_stats_count_this_servers_operations() {
    let (server, _dir) = start().await;
    let stats = |v: &Value| v["data"]["cacheStats"].clone();
    let query = "{ cacheStats { hits misses sets deletes invalidated } }";
    let before = stats(&graphql(&server, query, json!({})).await);
    assert_eq!(
        before,
        json!({"hits": 0, "misses": 0, "sets": 0, "deletes": 0, "invalidated": 0})
    );
    graphql(
        &server,
        r#"mutation { a: cacheSet(key: "s/1", value: 1, tags: ["t"]) { key }
                      b: cacheSet(key: "s/2", value: 2, tags: ["t"]) { key } }"#,
        json!({}),
    )
    .await;
    graphql(
        &server,
        r#"{ hit: cache(key: "s/1") { key } miss: cache(key: "s/none") { key } }"#,
        json!({}),
    )
    .await;
    graphql(
        &server,
        r#"mutation { cacheDelete(key: "s/1") }"#,
        json!({}),
    )
    .await;
    graphql(
        &server,
        r#"mutation { invalidateCacheTag(tag: "t") }"#,
        json!({}),
    )
    .await;
    let after = stats(&graphql(&server, query, json!({})).await);
    assert_eq!(
        after,
        json!({"hits": 1, "misses": 1, "sets": 2, "deletes": 1, "invalidated": 1})
    );
}

/// The message of the first GraphQL error of an answer.
fn first_error(answer: &Value) -> String {
    answer["errors"][0]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no error in {answer}"))
        .to_string()
}

#[tokio::test]
async fn batches_complexity_depth_and_list_arguments_are_capped() {
    let (server, _dir) = start().await;
    let client = reqwest::Client::new();
    // Batch size: 10 operations run, 11 are refused as a whole.
    let batch = |n: usize| -> Value {
        (0..n)
            .map(|_| json!({"query": r#"{ lock(key: "b") { held } }"#}))
            .collect()
    };
    let ten: Value = client
        .post(server.rest_url("/graphql"))
        .json(&batch(10))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ten.as_array().map(Vec::len), Some(10), "{ten}");
    let response = client
        .post(server.rest_url("/graphql"))
        .json(&batch(5000))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let refused: Value = response.json().await.unwrap();
    assert_eq!(refused["code"], "invalid_argument", "{refused}");
    assert_eq!(refused["details"]["limit"], 10, "{refused}");

    // Complexity counts `limit`: a default page passes, the largest page with many fields not.
    let small = graphql(
        &server,
        "{ allEvents { lastPosition events { version eventType data } } }",
        json!({}),
    )
    .await;
    assert!(small.get("errors").is_none(), "{small}");
    let big = graphql(
        &server,
        "{ allEvents(limit: 10000) { events { version eventType data metadata } } }",
        json!({}),
    )
    .await;
    assert!(first_error(&big).contains("too complex"), "{big}");
    // Aliases cannot multiply storage calls without bound.
    let aliases: String = (0..1001)
        .map(|i| format!(r#"a{i}: lock(key: "k") {{ held }} "#))
        .collect();
    let many = graphql(&server, &format!("{{ {aliases} }}"), json!({})).await;
    assert!(first_error(&many).contains("too complex"), "{many}");

    // Depth (introspection types nest without end).
    let deep = format!(
        "{{ __type(name: \"Query\") {{ {} name {} }} }}",
        "ofType {".repeat(20),
        "}".repeat(20)
    );
    let deep = graphql(&server, &deep, json!({})).await;
    assert!(first_error(&deep).contains("nested too deep"), "{deep}");

    // List arguments and limits are bounded before any storage call.
    let events: Vec<Value> = (0..1001)
        .map(|i| json!({"eventType": "E", "data": i}))
        .collect();
    let append = graphql(
        &server,
        "mutation($events: [EventInput!]!) { appendEvents(stream: \"s\", events: $events) { lastVersion } }",
        json!({"events": events}),
    )
    .await;
    assert!(first_error(&append).contains("1000"), "{append}");
    let huge_limit = graphql(&server, "{ locks(limit: 20000) { key } }", json!({})).await;
    assert!(first_error(&huge_limit).contains("10000"), "{huge_limit}");
    let tags: Vec<String> = (0..33).map(|i| format!("t{i}")).collect();
    let cache = graphql(
        &server,
        "mutation($tags: [String!]!) { cacheSet(key: \"k\", value: 1, tags: $tags) { key } }",
        json!({"tags": tags}),
    )
    .await;
    assert!(first_error(&cache).contains("32"), "{cache}");
}

#[tokio::test]
async fn subscriptions_per_connection_are_capped() {
    let (server, _dir) = start().await;
    let mut socket = graphql_ws(&server).await;
    let send = |id: String| {
        Message::text(
            json!({"id": id, "type": "subscribe", "payload": {
                "query": r#"subscription { lockChanges(prefix: "p") { key } }"#
            }})
            .to_string(),
        )
    };
    // 65 subscriptions: the server starts them concurrently, so whichever starts last is the
    // one refused.
    for n in 0..65 {
        socket.send(send(format!("s{n}"))).await.unwrap();
    }
    let refused = read_json(&mut socket).await;
    assert_eq!(refused["type"], "next", "{refused}");
    assert_eq!(
        refused["payload"]["errors"][0]["extensions"]["code"],
        "invalid_argument"
    );
    assert!(
        refused["payload"]["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("at most 64 subscriptions"),
        "{refused}"
    );
    let refused_id = refused["id"].as_str().unwrap().to_string();
    assert_eq!(
        read_json(&mut socket).await,
        json!({"id": refused_id, "type": "complete"})
    );
    // Ending a live subscription frees its place.
    let live = if refused_id == "s0" { "s1" } else { "s0" };
    socket
        .send(Message::text(
            json!({"id": live, "type": "complete"}).to_string(),
        ))
        .await
        .unwrap();
    // The server drops the stream after it reads the `complete`: retry until accepted.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    for attempt in 0.. {
        let id = format!("again{attempt}");
        socket.send(send(id.clone())).await.unwrap();
        socket
            .send(Message::text(json!({"type": "ping"}).to_string()))
            .await
            .unwrap();
        let mut accepted = true;
        loop {
            let message = read_json(&mut socket).await;
            if message["type"] == "pong" {
                break;
            }
            if message["id"] == id.as_str() && message["type"] == "next" {
                accepted = false;
            }
        }
        if accepted {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the place was not freed"
        );
    }
    // The new subscription is live: a lock change under its prefix reaches it.
    graphql(
        &server,
        r#"mutation { acquireLock(input: {key: "p1", owner: "o", ttlMs: 30000}) { acquired } }"#,
        json!({}),
    )
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let message = read_json(&mut socket).await;
        let id = message["id"].as_str().unwrap_or_default();
        let change = &message["payload"]["data"]["lockChanges"];
        if id.starts_with("again") && change.is_object() {
            assert_eq!(change["key"], "p1");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no change reached the new subscription"
        );
    }
}

/// SIGTERM closes an open subscription connection with 1001 (going away), and the server waits
/// for that close frame before it exits.
#[tokio::test]
async fn sigterm_closes_subscription_connections_with_going_away() {
    let (mut server, _dir) = start().await;
    let mut socket = subscribed_to_events(&server, "bye").await;
    assert_eq!(read_json(&mut socket).await["type"], "next");
    let status = server.terminate(Duration::from_secs(15));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    let close = close_frame(&mut socket).await.expect("a close code");
    assert_eq!(
        close.code,
        tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Away,
        "{close:?}"
    );
}
