//! Authentication and permissions on each of the four APIs (gRPC, REST, GraphQL, WebSocket),
//! against a real server with JWT (HS256 secret and an ES256 JWKS file), API keys, a required
//! audience and issuer, and a prefix-restricted role (docs/security.md).
//!
//! For every API: no credential, a malformed token, an expired token, a wrong signature,
//! `alg: none`, a token for another audience and a revoked API key are refused with the
//! documented status and change nothing stored; a valid credential without the permission gets
//! 403 / PERMISSION_DENIED naming it; the `orders` role locks inside `orders/` only.

mod security_support;

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use security_support::*;
use serde_json::{json, Value};
use syros_launcher::SyrosServer;
use syros_proto::syros::v1 as pb;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use volo_grpc::Code;

// ---------------------------------------------------------------------------------------- REST

async fn rest_acquire(
    http: &reqwest::Client,
    server: &SyrosServer,
    credential: Option<&str>,
    key: &str,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut request = http
        .post(server.rest_url("/api/v1/locks"))
        .json(&json!({"key": key, "owner": "tester", "ttl_ms": 30000}));
    if let Some(c) = credential {
        request = request.header("authorization", bearer(c));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (
        status,
        response.json().await.unwrap_or(Value::Null),
        headers,
    )
}

#[tokio::test]
async fn rest_refuses_bad_credentials_and_enforces_permissions() {
    let secured = start_secured();
    let server = &secured.server;
    let http = reqwest::Client::new();
    for (what, credential) in secured.refused() {
        let (status, body, headers) =
            rest_acquire(&http, server, credential.as_deref(), "guarded/rest").await;
        assert_eq!(status, 401, "{what}: {body}");
        assert_eq!(body["code"], "unauthenticated", "{what}: {body}");
        assert_eq!(headers["www-authenticate"], "Bearer", "{what}");
        let mut put = http
            .put(server.rest_url("/api/v1/cache/guarded-rest"))
            .json(&json!({"value": "stolen"}));
        if let Some(c) = &credential {
            put = put.header("authorization", bearer(c));
        }
        assert_eq!(put.send().await.unwrap().status().as_u16(), 401, "{what}");
    }
    // Nothing stored changed.
    let admin = secured.admin();
    let status: Value = http
        .get(server.rest_url("/api/v1/locks/status?key=guarded/rest"))
        .header("authorization", bearer(&admin))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["held"], false, "{status}");
    let cached = http
        .get(server.rest_url("/api/v1/cache/guarded-rest"))
        .header("authorization", bearer(&admin))
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status().as_u16(), 404);

    // A valid credential without the permission: 403 naming it.
    let reader = token("reader-user", &["reader"]);
    let (status, body, _) = rest_acquire(&http, server, Some(&reader), "any/key").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], "permission_denied");
    assert_eq!(body["details"]["permission"], "locks:acquire");
    let force = http
        .post(server.rest_url("/api/v1/admin/locks/force-release"))
        .header("authorization", bearer(&secured.writer_key))
        .json(&json!({"key": "any/key"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        force.status().as_u16(),
        403,
        "a writer API key cannot force-release"
    );

    // The prefix-restricted role (ES256 through the JWKS file) locks inside its prefix only.
    let orders = secured.orders();
    let (status, body, _) = rest_acquire(&http, server, Some(&orders), "orders/1").await;
    assert_eq!(status, 201, "{body}");
    let (status, body, _) = rest_acquire(&http, server, Some(&orders), "payments/1").await;
    assert_eq!(status, 403, "{body}");
    assert!(body["message"].as_str().unwrap().contains("locks:acquire"));
    // A valid API key works; open routes stay open.
    let (status, body, _) =
        rest_acquire(&http, server, Some(&secured.writer_key), "apikey/rest").await;
    assert_eq!(status, 201, "{body}");
    for open in ["/health", "/ready", "/openapi.json", "/metrics"] {
        let response = http.get(server.rest_url(open)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "{open} stays open");
    }
    let log = server.log_text();
    assert!(
        !log.contains(&secured.writer_key),
        "API keys never reach the log"
    );
}

// ---------------------------------------------------------------------------------------- gRPC

fn with_credential<T>(message: T, credential: Option<&str>) -> volo_grpc::Request<T> {
    let mut request = volo_grpc::Request::new(message);
    if let Some(c) = credential {
        request
            .metadata_mut()
            .insert("authorization", bearer(c).parse().unwrap());
    }
    request
}

fn acquire_message(key: &str) -> pb::AcquireLockRequest {
    pb::AcquireLockRequest {
        key: key.to_string().into(),
        owner: "tester".to_string().into(),
        ttl_ms: 30_000,
        wait_timeout_ms: 0,
        request_id: Default::default(),
    }
}

fn code_of(status: &volo_grpc::Status) -> String {
    status
        .metadata()
        .get("syros-error-code")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn grpc_refuses_bad_credentials_and_enforces_permissions() {
    let secured = start_secured();
    let addr = secured.server.grpc_addr();
    let locks = pb::LockServiceClientBuilder::new("syros")
        .address(addr)
        .build();
    let cache = pb::CacheServiceClientBuilder::new("syros")
        .address(addr)
        .build();
    for (what, credential) in secured.refused() {
        let err = locks
            .acquire(with_credential(
                acquire_message("guarded/grpc"),
                credential.as_deref(),
            ))
            .await
            .expect_err(what);
        assert_eq!(err.code(), Code::Unauthenticated, "{what}: {err:?}");
        assert_eq!(code_of(&err), "unauthenticated", "{what}");
        let set = pb::CacheSetRequest {
            key: "guarded-grpc".to_string().into(),
            value: b"stolen".to_vec().into(),
            ..Default::default()
        };
        let err = cache
            .set(with_credential(set, credential.as_deref()))
            .await
            .expect_err(what);
        assert_eq!(err.code(), Code::Unauthenticated, "{what}");
    }
    let admin = secured.admin();
    let status = locks
        .status(with_credential(
            pb::LockStatusRequest {
                key: "guarded/grpc".to_string().into(),
            },
            Some(&admin),
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!status.held, "a refused acquire stored nothing");
    let cached = cache
        .get(with_credential(
            pb::CacheGetRequest {
                key: "guarded-grpc".to_string().into(),
            },
            Some(&admin),
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!cached.found, "a refused set stored nothing");

    let reader = token("reader-user", &["reader"]);
    let err = locks
        .acquire(with_credential(acquire_message("any/key"), Some(&reader)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("locks:acquire"), "{err:?}");
    assert_eq!(code_of(&err), "permission_denied");
    let err = locks
        .force_release(with_credential(
            pb::ForceReleaseLockRequest {
                key: "any/key".to_string().into(),
            },
            Some(&secured.writer_key),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("locks:admin"), "{err:?}");

    let orders = secured.orders();
    let lease = locks
        .acquire(with_credential(acquire_message("orders/7"), Some(&orders)))
        .await
        .unwrap()
        .into_inner();
    assert!(lease.acquired);
    let err = locks
        .acquire(with_credential(
            acquire_message("payments/7"),
            Some(&orders),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    // Renewing its own lease needs no prefix (the lease id is the capability).
    let lease_id = lease.lease.unwrap().lease_id;
    locks
        .renew(with_credential(
            pb::RenewLockRequest {
                lease_id: lease_id.clone(),
                ttl_ms: 30_000,
            },
            Some(&orders),
        ))
        .await
        .unwrap();
    // The health service stays open.
    let health = syros_proto::grpc::health::v1::HealthClientBuilder::new("syros")
        .address(addr)
        .build();
    health
        .check(syros_proto::grpc::health::v1::HealthCheckRequest::default())
        .await
        .expect("health needs no credential");
    // The admin action is audited with its principal.
    locks
        .force_release(with_credential(
            pb::ForceReleaseLockRequest {
                key: "orders/7".to_string().into(),
            },
            Some(&admin),
        ))
        .await
        .unwrap();
    let log = secured.server.log_text();
    assert!(
        log.lines().any(|l| l.contains("syros::audit")
            && l.contains("admin-user")
            && l.contains("force_release")
            && l.contains("orders/7")),
        "audit line missing:\n{log}"
    );
}

// ------------------------------------------------------------------------------------- GraphQL

#[tokio::test]
async fn graphql_refuses_bad_credentials_and_enforces_permissions() {
    let secured = start_secured();
    let server = &secured.server;
    let http = reqwest::Client::new();
    for (what, credential) in secured.refused() {
        let (status, body) = graphql(
            &http,
            server,
            credential.as_deref(),
            &acquire_mutation("guarded/graphql"),
        )
        .await;
        assert_eq!(status, 401, "{what}: {body}");
        assert_eq!(body["code"], "unauthenticated", "{what}");
    }
    let admin = secured.admin();
    let (_, body) = graphql(
        &http,
        server,
        Some(&admin),
        r#"{ lock(key: "guarded/graphql") { held } }"#,
    )
    .await;
    assert_eq!(body["data"]["lock"]["held"], false, "{body}");

    let reader = token("reader-user", &["reader"]);
    let (status, body) = graphql(&http, server, Some(&reader), &acquire_mutation("any/key")).await;
    assert_eq!(status, 200);
    let error = &body["errors"][0];
    assert_eq!(error["extensions"]["code"], "permission_denied", "{body}");
    assert_eq!(
        error["extensions"]["details"]["permission"],
        "locks:acquire"
    );
    // Per field: the reader may read in the same operation in which it may not write.
    let (_, body) = graphql(
        &http,
        server,
        Some(&reader),
        r#"{ lock(key: "x") { held } cache(key: "x") { key } }"#,
    )
    .await;
    assert!(body["errors"].is_null(), "{body}");

    let orders = secured.orders();
    let (_, body) = graphql(&http, server, Some(&orders), &acquire_mutation("orders/2")).await;
    assert_eq!(body["data"]["acquireLock"]["acquired"], true, "{body}");
    let (_, body) = graphql(
        &http,
        server,
        Some(&orders),
        &acquire_mutation("payments/2"),
    )
    .await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "permission_denied");
    // The playground page holds no data and stays reachable for a browser.
    let page = http.get(server.rest_url("/graphql")).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
}

// ----------------------------------------------------------------------------------- WebSocket

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws_connect(server: &SyrosServer, path: &str, header: Option<&str>) -> Result<Socket, u16> {
    // GraphQL subscriptions live on the REST port, the WebSocket API on its own.
    let url = if path.starts_with("/graphql") {
        server.rest_url(path).replacen("http://", "ws://", 1)
    } else {
        server.ws_url(path)
    };
    let mut request = url.into_client_request().unwrap();
    if let Some(c) = header {
        request
            .headers_mut()
            .insert("authorization", bearer(c).parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(other) => panic!("WebSocket connect failed: {other}"),
    }
}

async fn next_json(socket: &mut Socket) -> Option<Value> {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a message within 10 s")?;
        match frame.ok()? {
            Message::Text(text) => return Some(serde_json::from_str(text.as_str()).unwrap()),
            Message::Close(_) => return None,
            _ => continue,
        }
    }
}

async fn send(socket: &mut Socket, message: Value) {
    socket
        .send(Message::Text(message.to_string().into()))
        .await
        .unwrap();
}

#[tokio::test]
async fn websocket_refuses_bad_credentials_and_enforces_permissions() {
    let secured = start_secured();
    let server = &secured.server;
    for (what, credential) in secured.refused() {
        let Some(credential) = credential else {
            continue; // no credential at all: first-message authentication, below
        };
        let by_header = ws_connect(server, "/ws", Some(&credential)).await;
        assert_eq!(by_header.err(), Some(401), "{what} (header)");
        let by_query = ws_connect(server, &format!("/ws?token={credential}"), None).await;
        assert_eq!(by_query.err(), Some(401), "{what} (token parameter)");
        let graphql_ws = ws_connect(server, "/graphql/ws", Some(&credential)).await;
        assert_eq!(
            graphql_ws.err(),
            Some(401),
            "{what} (GraphQL subscriptions)"
        );
        // First-message authentication refuses it too, and closes the connection.
        let mut socket = ws_connect(server, "/ws", None).await.unwrap();
        send(
            &mut socket,
            json!({"type": "authenticate", "token": credential}),
        )
        .await;
        let reply = next_json(&mut socket).await.expect("an error message");
        assert_eq!(reply["code"], "unauthenticated", "{what}: {reply}");
        assert!(next_json(&mut socket).await.is_none(), "{what}: closed");
    }
    // No credential: anything but `authenticate` first is refused and closes the connection.
    let mut socket = ws_connect(server, "/ws", None).await.unwrap();
    send(
        &mut socket,
        json!({"type": "subscribe", "id": "s", "stream": "guarded"}),
    )
    .await;
    let reply = next_json(&mut socket).await.unwrap();
    assert_eq!(reply["code"], "unauthenticated", "{reply}");
    assert!(next_json(&mut socket).await.is_none());
    // GraphQL subscriptions without a handshake credential authenticate with their
    // `connection_init` payload instead: security_graphql_ws.rs.

    // A valid credential without events:read (a worker) cannot subscribe to a stream.
    let worker = token("worker-1", &["worker"]);
    let mut socket = ws_connect(server, &format!("/ws?token={worker}"), None)
        .await
        .unwrap();
    send(
        &mut socket,
        json!({"type": "subscribe", "id": "s", "stream": "orders"}),
    )
    .await;
    let reply = next_json(&mut socket).await.unwrap();
    assert_eq!(reply["code"], "permission_denied", "{reply}");
    assert_eq!(reply["details"]["permission"], "events:read");

    // The orders role follows lock changes inside its prefix only; first-message auth works.
    let mut socket = ws_connect(server, "/ws", None).await.unwrap();
    send(
        &mut socket,
        json!({"type": "authenticate", "token": secured.orders()}),
    )
    .await;
    let reply = next_json(&mut socket).await.unwrap();
    assert_eq!(reply["type"], "authenticated", "{reply}");
    assert_eq!(reply["principal"], "orders-service");
    send(
        &mut socket,
        json!({"type": "subscribe_locks", "id": "mine", "prefix": "orders/"}),
    )
    .await;
    assert_eq!(next_json(&mut socket).await.unwrap()["type"], "subscribed");
    send(
        &mut socket,
        json!({"type": "subscribe_locks", "id": "theirs", "prefix": "payments/"}),
    )
    .await;
    let reply = next_json(&mut socket).await.unwrap();
    assert_eq!(reply["code"], "permission_denied", "{reply}");
    assert_eq!(reply["id"], "theirs");
    // A reader key subscribes to a stream through the header.
    let reader = token("reader-user", &["reader"]);
    let mut socket = ws_connect(server, "/ws", Some(&reader)).await.unwrap();
    send(
        &mut socket,
        json!({"type": "subscribe", "id": "s", "stream": "orders"}),
    )
    .await;
    assert_eq!(next_json(&mut socket).await.unwrap()["type"], "subscribed");
}
