//! End-to-end tests of the event WebSocket API (WS_PORT) against a real `syros serve`.

mod common;

use std::time::Duration;

use common::*;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

async fn start() -> (ServerProcess, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path()).await;
    (server, dir)
}

async fn connect(server: &ServerProcess) -> Socket {
    let (socket, _) = tokio_tungstenite::connect_async(server.ws_url("/ws"))
        .await
        .expect("WebSocket connect");
    socket
}

async fn send(socket: &mut Socket, message: Value) {
    socket
        .send(Message::text(message.to_string()))
        .await
        .unwrap();
}

/// The next JSON text message (WebSocket pings and pongs are skipped).
async fn next(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a message within 10 s")
            .expect("the connection is open")
            .expect("a valid frame");
        match message {
            Message::Text(text) => return serde_json::from_str(text.as_str()).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

async fn append(server: &ServerProcess, stream: &str, events: Vec<Value>) {
    let response = reqwest::Client::new()
        .post(server.rest_url(&format!("/api/v1/events/{}", stream.replace('/', "%2F"))))
        .json(&json!({ "events": events }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
}

fn event(n: u64) -> Value {
    json!({"event_type": "Counted", "data": {"n": n}})
}

#[tokio::test]
async fn catch_up_then_live_in_order() {
    let (server, _dir) = start().await;
    append(&server, "orders/1", (0..3).map(event).collect()).await;
    append(&server, "elsewhere", vec![event(100)]).await;

    let mut socket = connect(&server).await;
    send(
        &mut socket,
        json!({"type": "subscribe", "id": "one", "stream": "orders/1", "from": 0}),
    )
    .await;
    assert_eq!(
        next(&mut socket).await,
        json!({"type": "subscribed", "id": "one"})
    );
    for version in 0..3 {
        let message = next(&mut socket).await;
        assert_eq!(message["type"], "event");
        assert_eq!(message["id"], "one");
        assert_eq!(message["event"]["stream"], "orders/1");
        assert_eq!(message["event"]["version"], version);
        assert_eq!(message["event"]["data"], json!({"n": version}));
    }
    // A second subscription on the same connection, to all streams, new events only.
    send(
        &mut socket,
        json!({"type": "subscribe", "id": "all", "from_end": true}),
    )
    .await;
    assert_eq!(
        next(&mut socket).await,
        json!({"type": "subscribed", "id": "all"})
    );

    // Live: appended after subscribing, delivered in order to both.
    append(&server, "orders/1", (3..6).map(event).collect()).await;
    let mut one = Vec::new();
    let mut all = Vec::new();
    while one.len() < 3 || all.len() < 3 {
        let message = next(&mut socket).await;
        assert_eq!(message["type"], "event", "{message}");
        let version = message["event"]["version"].as_u64().unwrap();
        match message["id"].as_str().unwrap() {
            "one" => one.push(version),
            "all" => all.push(version),
            other => panic!("unknown subscription {other}"),
        }
    }
    assert_eq!(one, [3, 4, 5]);
    assert_eq!(all, [3, 4, 5]);

    // Unsubscribe: no more events for it.
    send(&mut socket, json!({"type": "unsubscribe", "id": "one"})).await;
    assert_eq!(
        next(&mut socket).await,
        json!({"type": "unsubscribed", "id": "one"})
    );
    append(&server, "orders/1", vec![event(6)]).await;
    let message = next(&mut socket).await;
    assert_eq!(message["id"], "all");
    assert_eq!(message["event"]["version"], 6);
    assert_eq!(message["event"]["global_position"], 8);
}

#[tokio::test]
async fn ping_pong_and_errors() {
    let (server, _dir) = start().await;
    let mut socket = connect(&server).await;
    // Application-level ping.
    send(&mut socket, json!({"type": "ping", "nonce": 7})).await;
    assert_eq!(next(&mut socket).await, json!({"type": "pong", "nonce": 7}));
    // Protocol-level ping.
    socket.send(Message::Ping("hi".into())).await.unwrap();
    let pong = tokio::time::timeout(Duration::from_secs(5), socket.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(pong, Message::Pong("hi".into()));

    let expect_error = |message: Value, id: Value, code: &str| {
        assert_eq!(message["type"], "error", "{message}");
        assert_eq!(message["id"], id, "{message}");
        assert_eq!(message["code"], code, "{message}");
        assert!(message["message"].as_str().is_some_and(|m| !m.is_empty()));
    };
    socket.send(Message::text("{not json")).await.unwrap();
    expect_error(next(&mut socket).await, Value::Null, "invalid_argument");
    send(&mut socket, json!({"type": "dance"})).await;
    expect_error(next(&mut socket).await, Value::Null, "invalid_argument");
    socket.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    expect_error(next(&mut socket).await, Value::Null, "invalid_argument");
    send(
        &mut socket,
        json!({"type": "subscribe", "id": "bad", "stream": ""}),
    )
    .await;
    expect_error(next(&mut socket).await, json!("bad"), "invalid_argument");
    send(
        &mut socket,
        json!({"type": "subscribe", "id": "x", "from": 3, "from_end": true}),
    )
    .await;
    expect_error(next(&mut socket).await, json!("x"), "invalid_argument");
    send(
        &mut socket,
        json!({"type": "subscribe", "id": "", "stream": "s"}),
    )
    .await;
    expect_error(next(&mut socket).await, json!(""), "invalid_argument");
    send(&mut socket, json!({"type": "unsubscribe", "id": "nope"})).await;
    expect_error(next(&mut socket).await, json!("nope"), "not_found");
    send(
        &mut socket,
        json!({"type": "subscribe", "id": "dup", "stream": "s"}),
    )
    .await;
    assert_eq!(
        next(&mut socket).await,
        json!({"type": "subscribed", "id": "dup"})
    );
    send(
        &mut socket,
        json!({"type": "subscribe", "id": "dup", "stream": "s"}),
    )
    .await;
    expect_error(next(&mut socket).await, json!("dup"), "invalid_argument");
    // The connection survives all of that.
    send(&mut socket, json!({"type": "ping"})).await;
    assert_eq!(next(&mut socket).await, json!({"type": "pong"}));

    // A plain HTTP request to the WebSocket port gets a JSON error.
    let response = reqwest::get(server.ws_url("/ws").replace("ws://", "http://"))
        .await
        .unwrap();
    assert!(response.status().is_client_error(), "{}", response.status());
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "invalid_argument");
}

/// A client that stops reading is cut off with close code 1008 and a reason, instead of the
/// server buffering for it without bound.
#[tokio::test]
async fn slow_consumers_are_cut_off() {
    let (server, _dir) = start().await;
    let pad = "x".repeat(16 * 1024);
    for batch in 0..5u64 {
        let events = (0..400)
            .map(|i| json!({"event_type": "Big", "data": {"n": batch * 400 + i, "pad": pad}}))
            .collect();
        append(&server, "big", events).await;
    }
    // A small receive buffer so the kernel does not absorb the backlog for us.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(server.ws_addr).await.unwrap();
    let (mut ws, _) =
        tokio_tungstenite::client_async(server.ws_url("/ws"), MaybeTlsStream::Plain(tcp))
            .await
            .unwrap();
    send(
        &mut ws,
        json!({"type": "subscribe", "id": "big", "stream": "big", "from": 0}),
    )
    .await;
    // Do not read until the server has given up on this client.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = reqwest::get(server.rest_url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics.contains("syros_websocket_slow_consumer_disconnects_total 1") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the server did not notice the slow consumer within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut events = 0u64;
    let close = loop {
        let frame = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("the server closes within 20 s");
        match frame {
            Some(Ok(Message::Text(text))) => {
                let message: Value = serde_json::from_str(text.as_str()).unwrap();
                if message["type"] == "event" {
                    assert_eq!(message["event"]["version"], events, "in order, no gaps");
                    events += 1;
                }
            }
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => {}
            Some(Err(err)) => panic!("connection failed instead of closing: {err}"),
            None => panic!("connection ended without a close frame"),
        }
    };
    let close = close.expect("a close frame with a code");
    assert_eq!(close.code, CloseCode::Policy);
    assert!(
        close.reason.as_str().contains("slow consumer"),
        "{}",
        close.reason
    );
    assert!(events < 2000, "cut off before the end ({events} events)");
}

#[tokio::test]
async fn sigterm_closes_websockets_with_going_away() {
    let (mut server, _dir) = start().await;
    let mut socket = connect(&server).await;
    send(
        &mut socket,
        json!({"type": "subscribe", "id": "s", "stream": "s"}),
    )
    .await;
    assert_eq!(next(&mut socket).await["type"], "subscribed");
    let status = server.terminate(Duration::from_secs(15));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    let close = close_frame(&mut socket).await;
    assert_eq!(close.expect("a close code").code, CloseCode::Away);
}

async fn rest(method: reqwest::Method, server: &ServerProcess, path: &str, body: Value) -> Value {
    let response = reqwest::Client::new()
        .request(method, server.rest_url(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response.json().await.unwrap()
}

async fn acquire(server: &ServerProcess, key: &str, owner: &str) -> Value {
    rest(
        reqwest::Method::POST,
        server,
        "/api/v1/locks",
        json!({"key": key, "owner": owner, "ttl_ms": 10_000}),
    )
    .await
}

async fn release(server: &ServerProcess, lease: &Value) -> Value {
    let path = format!("/api/v1/locks/{}", lease["lease_id"].as_str().unwrap());
    rest(reqwest::Method::DELETE, server, &path, json!({})).await
}

/// Asserts a `lock` message of subscription `id`: `kind` of `lease`.
#[track_caller]
fn assert_lock_change(message: &Value, id: &str, kind: &str, lease: &Value) {
    assert_eq!(message["type"], "lock", "{message}");
    assert_eq!(message["id"], id, "{message}");
    let change = &message["change"];
    assert_eq!(change["kind"], kind, "{message}");
    for field in ["key", "owner", "fencing_token", "lease_id"] {
        assert_eq!(change[field], lease[field], "{field} of {message}");
    }
    if kind == "acquired" {
        assert_eq!(change["expires_at_ms"], lease["expires_at_ms"], "{message}");
        assert_eq!(change["expires_at"], lease["expires_at"], "{message}");
    } else {
        assert!(change["expires_at_ms"].is_null(), "{message}");
    }
    assert!(change["changed_at_ms"].as_i64().is_some_and(|t| t > 0));
    assert!(change["changed_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
}

#[tokio::test]
async fn lock_changes_by_key_prefix() {
    let (server, _dir) = start().await;
    let mut socket = connect(&server).await;
    send(
        &mut socket,
        json!({"type": "subscribe_locks", "id": "orders", "prefix": "orders/"}),
    )
    .await;
    assert_eq!(
        next(&mut socket).await,
        json!({"type": "subscribed", "id": "orders"})
    );

    // A lock outside the prefix first: if it leaked, it would arrive first.
    let other = acquire(&server, "other/1", "w-other").await;
    let order = acquire(&server, "orders/1", "w-1").await;
    assert_lock_change(&next(&mut socket).await, "orders", "acquired", &order);
    let released = release(&server, &order).await;
    assert_lock_change(&next(&mut socket).await, "orders", "released", &released);
    release(&server, &other).await;
    // Force-release, and a second subscriber on the same connection seeing every key.
    send(&mut socket, json!({"type": "subscribe_locks", "id": "all"})).await;
    assert_eq!(
        next(&mut socket).await,
        json!({"type": "subscribed", "id": "all"})
    );
    let second = acquire(&server, "orders/2", "w-2").await;
    let mut seen = Vec::new();
    for _ in 0..2 {
        let message = next(&mut socket).await;
        assert_lock_change(
            &message,
            message["id"].as_str().unwrap(),
            "acquired",
            &second,
        );
        seen.push(message["id"].as_str().unwrap().to_string());
    }
    seen.sort();
    assert_eq!(seen, ["all", "orders"]);
    let dropped = rest(
        reqwest::Method::POST,
        &server,
        "/api/v1/admin/locks/force-release",
        json!({"key": "orders/2"}),
    )
    .await;
    for _ in 0..2 {
        let message = next(&mut socket).await;
        let id = message["id"].as_str().unwrap().to_string();
        assert_lock_change(&message, &id, "force_released", &dropped["lease"]);
    }
    // Unsubscribed: nothing more for it; the other subscription goes on.
    send(&mut socket, json!({"type": "unsubscribe", "id": "orders"})).await;
    assert_eq!(
        next(&mut socket).await,
        json!({"type": "unsubscribed", "id": "orders"})
    );
    let third = acquire(&server, "orders/3", "w-3").await;
    assert_lock_change(&next(&mut socket).await, "all", "acquired", &third);

    // Mistakes are answered on the subscription's id.
    send(
        &mut socket,
        json!({"type": "subscribe_locks", "id": "all", "prefix": "x"}),
    )
    .await;
    let error = next(&mut socket).await;
    assert_eq!(
        (&error["type"], &error["id"]),
        (&json!("error"), &json!("all"))
    );
    send(
        &mut socket,
        json!({"type": "subscribe_locks", "id": "long", "prefix": "p".repeat(600)}),
    )
    .await;
    let error = next(&mut socket).await;
    assert_eq!(error["id"], "long", "{error}");
    assert_eq!(error["code"], "invalid_argument", "{error}");
}
