//! GraphQL subscriptions (`/graphql/ws`) authenticate through the `connection_init` payload, as
//! the WebSocket API does through its first message: against the real server of
//! `security_support::start_secured` (JWT with an HS256 secret and an ES256 JWKS file, required
//! audience and issuer, API keys, a prefix-restricted role).
//!
//! Without a credential in the handshake: no credential in `connection_init`, and each credential
//! of `Secured::refused` (malformed, expired, wrong signature, `alg: none`, other audience,
//! algorithm confusion, a revoked API key) are
//! refused (graphql-transport-ws close 4403, no `connection_ack`; `connection_error` on the
//! legacy protocol) and no subscription runs; a valid one (`authorization`, `token` or Apollo's
//! `headers.authorization`) is acknowledged and its permissions apply per field; a connection
//! that sends no `connection_init` is closed (4408).

mod security_support;

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use security_support::*;
use serde_json::{json, Value};
use syros_launcher::SyrosServer;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A `/graphql/ws` connection speaking `protocol`, with an optional handshake credential.
async fn connect(server: &SyrosServer, protocol: &str, header: Option<&str>) -> Socket {
    let url = server
        .rest_url("/graphql/ws")
        .replacen("http://", "ws://", 1);
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", protocol.parse().unwrap());
    if let Some(credential) = header {
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {credential}").parse().unwrap(),
        );
    }
    let (socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("the handshake of /graphql/ws is accepted without a credential");
    socket
}

async fn send(socket: &mut Socket, message: Value) {
    socket
        .send(Message::Text(message.to_string().into()))
        .await
        .unwrap();
}

/// What the server sent next: a JSON message, or how it closed.
#[derive(Debug)]
enum Received {
    Json(Value),
    Closed(Option<(u16, String)>),
}

async fn receive(socket: &mut Socket, within: Duration) -> Received {
    loop {
        let frame = tokio::time::timeout(within, socket.next())
            .await
            .expect("the server answers or closes in time");
        match frame {
            None | Some(Err(_)) => return Received::Closed(None),
            Some(Ok(Message::Text(text))) => {
                return Received::Json(serde_json::from_str(text.as_str()).unwrap())
            }
            Some(Ok(Message::Close(frame))) => {
                return Received::Closed(frame.map(|f| (u16::from(f.code), f.reason.to_string())))
            }
            Some(Ok(_)) => continue,
        }
    }
}

async fn next_json(socket: &mut Socket) -> Value {
    match receive(socket, Duration::from_secs(10)).await {
        Received::Json(message) => message,
        closed => panic!("expected a message, got {closed:?}"),
    }
}

/// `connection_init` with `payload`; the answer.
async fn init(socket: &mut Socket, payload: Option<Value>) -> Received {
    let mut message = json!({"type": "connection_init"});
    if let Some(payload) = payload {
        message["payload"] = payload;
    }
    send(socket, message).await;
    receive(socket, Duration::from_secs(10)).await
}

/// A connection initialised with `payload`, acknowledged.
async fn initialised(server: &SyrosServer, payload: Value) -> Socket {
    let mut socket = connect(server, "graphql-transport-ws", None).await;
    match init(&mut socket, Some(payload.clone())).await {
        Received::Json(ack) if ack["type"] == "connection_ack" => socket,
        other => panic!("connection_init {payload} not acknowledged: {other:?}"),
    }
}

async fn subscribe(socket: &mut Socket, id: &str, query: &str) {
    send(
        socket,
        json!({"id": id, "type": "subscribe", "payload": {"query": query}}),
    )
    .await;
}

/// Append one event to `stream` through GraphQL as an admin.
async fn append(secured: &Secured, stream: &str) {
    let mutation = format!(
        "mutation {{ appendEvents(stream: \"{stream}\", events: [{{eventType: \"Probe\", data: {{}}}}]) {{ lastVersion }} }}"
    );
    let http = reqwest::Client::new();
    let (status, body) = graphql(&http, &secured.server, Some(&secured.admin()), &mutation).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["errors"].is_null(), "{body}");
}

/// The connection was closed as graphql-transport-ws "Forbidden", saying why in the reason.
fn assert_forbidden(what: &str, answer: Received) {
    match answer {
        Received::Closed(Some((4403, reason))) => {
            assert!(reason.starts_with("unauthenticated: "), "{what}: {reason}")
        }
        other => panic!("{what}: expected close 4403, got {other:?}"),
    }
}

#[tokio::test]
async fn connection_init_without_a_valid_credential_is_refused() {
    let secured = start_secured();
    let server = &secured.server;

    // No credential in connection_init: no payload, an empty one, an empty token.
    for payload in [None, Some(json!({})), Some(json!({"token": ""}))] {
        let mut socket = connect(server, "graphql-transport-ws", None).await;
        let what = format!("payload {payload:?}");
        assert_forbidden(&what, init(&mut socket, payload).await);
    }
    // Bad credentials, in each place a payload may carry one.
    for (what, credential) in secured.refused() {
        let Some(credential) = credential else {
            continue; // no credential at all: above
        };
        for payload in [
            json!({"authorization": format!("Bearer {credential}")}),
            json!({"token": credential}),
            json!({"headers": {"Authorization": format!("Bearer {credential}")}}),
        ] {
            let mut socket = connect(server, "graphql-transport-ws", None).await;
            assert_forbidden(
                &format!("{what} in {payload}"),
                init(&mut socket, Some(payload.clone())).await,
            );
        }
        // The legacy protocol answers connection_error and runs nothing either.
        let mut socket = connect(server, "graphql-ws", None).await;
        match init(
            &mut socket,
            Some(json!({"authorization": format!("Bearer {credential}")})),
        )
        .await
        {
            Received::Json(error) => {
                assert_eq!(error["type"], "connection_error", "{what}: {error}");
                let message = error["payload"]["message"].as_str().unwrap_or_default();
                assert!(message.starts_with("unauthenticated: "), "{what}: {error}");
            }
            other => panic!("{what} (graphql-ws): expected connection_error, got {other:?}"),
        }
    }

    // Subscribing before connection_init runs nothing: the connection is closed, and an event
    // appended meanwhile is not delivered.
    let mut socket = connect(server, "graphql-transport-ws", None).await;
    subscribe(
        &mut socket,
        "early",
        "subscription { events(stream: \"guarded\") { version } }",
    )
    .await;
    append(&secured, "guarded").await;
    match receive(&mut socket, Duration::from_secs(10)).await {
        Received::Closed(_) => {}
        other => panic!("a subscription before connection_init: {other:?}"),
    }
}

#[tokio::test]
async fn connection_init_with_a_valid_credential_is_accepted_with_its_permissions() {
    let secured = start_secured();
    let server = &secured.server;
    let events_of = |stream: &str| {
        format!("subscription {{ events(stream: \"{stream}\") {{ version eventType }} }}")
    };

    // A JWT as `authorization: Bearer ...`: the subscription runs and delivers.
    let admin = secured.admin();
    let mut socket = initialised(server, json!({"authorization": format!("Bearer {admin}")})).await;
    append(&secured, "audited").await;
    subscribe(&mut socket, "1", &events_of("audited")).await;
    let next = next_json(&mut socket).await;
    assert_eq!(next["type"], "next", "{next}");
    assert_eq!(next["payload"]["data"]["events"]["eventType"], "Probe");

    // An API key as `token`, and a JWT in Apollo's `headers`: acknowledged and delivering.
    for payload in [
        json!({"token": secured.writer_key}),
        json!({"headers": {"Authorization": format!("Bearer {admin}")}}),
    ] {
        let mut socket = initialised(server, payload.clone()).await;
        subscribe(&mut socket, "1", &events_of("audited")).await;
        let next = next_json(&mut socket).await;
        assert_eq!(next["type"], "next", "{payload}: {next}");
        assert_eq!(next["payload"]["data"]["events"]["version"], 0);
    }

    // A credential in the handshake still works, with an empty connection_init.
    let mut socket = connect(server, "graphql-transport-ws", Some(&admin)).await;
    match init(&mut socket, None).await {
        Received::Json(ack) => assert_eq!(ack["type"], "connection_ack", "{ack}"),
        other => panic!("handshake credential: {other:?}"),
    }

    // Valid, but without events:read (a worker): that field is refused, naming the permission.
    let worker = token("worker-1", &["worker"]);
    let mut socket = initialised(server, json!({"token": worker})).await;
    subscribe(&mut socket, "1", &events_of("audited")).await;
    let refused = next_json(&mut socket).await;
    assert!(
        refused.to_string().contains("permission_denied")
            && refused.to_string().contains("events:read"),
        "{refused}"
    );

    // The prefix-restricted orders role follows lock changes inside `orders/` only.
    // (an ES256 token, checked against the JWKS file)
    let orders = secured.orders();
    let mut socket =
        initialised(server, json!({"authorization": format!("Bearer {orders}")})).await;
    subscribe(
        &mut socket,
        "theirs",
        "subscription { lockChanges(prefix: \"payments/\") { kind key } }",
    )
    .await;
    let refused = next_json(&mut socket).await;
    assert!(
        refused.to_string().contains("permission_denied")
            && refused.to_string().contains("locks:read"),
        "{refused}"
    );
    subscribe(
        &mut socket,
        "mine",
        "subscription { lockChanges(prefix: \"orders/\") { kind key } }",
    )
    .await;
    // Lock changes only flow from now on: take locks until one is reported (the subscription
    // is not acknowledged, so the first acquisitions may precede it).
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut attempt = 0;
    let change = 'probe: loop {
        assert!(Instant::now() < deadline, "no lock change delivered");
        attempt += 1;
        let key = format!("orders/probe-{attempt}");
        let (_, body) = graphql(&http, server, Some(&admin), &acquire_mutation(&key)).await;
        assert_eq!(body["data"]["acquireLock"]["acquired"], true, "{body}");
        // (Skipping the `complete` of the refused subscription.)
        while let Ok(Received::Json(message)) = tokio::time::timeout(
            Duration::from_millis(500),
            receive(&mut socket, Duration::from_secs(10)),
        )
        .await
        {
            if message["id"] == "mine" {
                break 'probe message;
            }
        }
    };
    assert_eq!(change["id"], "mine", "{change}");
    assert_eq!(change["payload"]["data"]["lockChanges"]["kind"], "ACQUIRED");
}

#[tokio::test]
async fn a_connection_without_connection_init_is_closed() {
    let secured = start_secured();
    let mut socket = connect(&secured.server, "graphql-transport-ws", None).await;
    let started = Instant::now();
    // The server gives 10 s (as the WebSocket API's `authenticate`); the bound is loose.
    match receive(&mut socket, Duration::from_secs(40)).await {
        Received::Closed(Some((4408, _))) => {}
        other => panic!("expected close 4408, got {other:?}"),
    }
    assert!(
        started.elapsed() >= Duration::from_secs(9),
        "{:?}",
        started.elapsed()
    );
}
