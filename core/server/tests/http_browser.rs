//! Browser safety of the HTTP servers against a real `syros serve`: a DNS-rebinding `Host` and a
//! foreign `Origin` (cross-site WebSocket, cross-site GraphQL) are refused; the server's own
//! names, configured names and origins, and clients that send no `Origin` keep working.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Error as WsError;

async fn start(env: &[(&str, &str)]) -> (ServerProcess, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let env: Vec<(&str, String)> = env.iter().map(|(k, v)| (*k, v.to_string())).collect();
    let server = ServerProcess::start_with(dir.path(), &env).await;
    (server, dir)
}

/// `GET path` with the given extra headers; the status and the JSON answer.
async fn get(
    server: &ServerProcess,
    path: &str,
    headers: &[(&str, String)],
) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new().get(server.rest_url(path));
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, body)
}

/// Opens a WebSocket at `url` with the given extra headers: `Ok(())` when the upgrade
/// succeeded, the HTTP status and JSON body when it was refused.
async fn ws_upgrade(url: &str, headers: &[(&'static str, &str)]) -> Result<(), (u16, Value)> {
    let mut request = url.into_client_request().unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(*name, value.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok(_) => Ok(()),
        Err(WsError::Http(response)) => {
            let body = response.body().clone().unwrap_or_default();
            let body = serde_json::from_slice(&body).unwrap_or_else(|e| {
                panic!(
                    "refusal is not JSON ({e}): {}",
                    String::from_utf8_lossy(&body)
                )
            });
            Err((response.status().as_u16(), body))
        }
        Err(other) => panic!("WebSocket connect failed: {other}"),
    }
}

#[track_caller]
fn assert_refused(answer: &(StatusCode, Value), status: u16, code: &str) {
    assert_eq!(answer.0.as_u16(), status, "{}", answer.1);
    assert_eq!(answer.1["code"], code, "{}", answer.1);
    assert!(answer.1["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(answer.1["details"].is_object());
}

#[tokio::test]
async fn a_rebinding_host_is_refused_and_own_names_work() {
    let (server, _dir) = start(&[("ALLOWED_HOSTS", "syros.internal")]).await;
    let port = server.rest_addr.port();
    let evil = get(
        &server,
        "/api/v1/locks",
        &[("host", format!("evil.example:{port}"))],
    )
    .await;
    assert_refused(&evil, 421, "host_not_allowed");
    assert_eq!(evil.1["details"]["host"], format!("evil.example:{port}"));
    // Operations routes are guarded too (metrics leak key names).
    let metrics = reqwest::Client::new()
        .get(server.rest_url("/metrics"))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status().as_u16(), 421);
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("syros.internal:{port}"),
    ] {
        let (status, body) = get(&server, "/api/v1/locks", &[("host", host.clone())]).await;
        assert_eq!(status, StatusCode::OK, "{host}: {body}");
    }
    // The WebSocket port checks Host as well.
    let ws = ws_upgrade(&server.ws_url("/ws"), &[("host", "evil.example")]).await;
    let (status, body) = ws.expect_err("a rebinding host is refused on WS_PORT");
    assert_eq!(
        (status, body["code"].as_str()),
        (421, Some("host_not_allowed"))
    );
}

#[tokio::test]
async fn foreign_origins_are_refused_on_websockets_and_graphql() {
    let (server, _dir) = start(&[("CORS_ORIGINS", "https://app.example")]).await;
    let evil = [("origin", "https://evil.example")];
    // The event WebSocket API.
    let refused = ws_upgrade(&server.ws_url("/ws"), &evil).await;
    let (status, body) = refused.expect_err("a cross-site WebSocket is refused");
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], "origin_not_allowed");
    assert_eq!(body["details"]["origin"], "https://evil.example");
    ws_upgrade(&server.ws_url("/ws"), &[])
        .await
        .expect("no Origin (not a browser) is accepted");
    ws_upgrade(&server.ws_url("/ws"), &[("origin", "https://app.example")])
        .await
        .expect("an origin in CORS_ORIGINS is accepted");
    // GraphQL subscriptions on REST_PORT.
    let graphql_ws = format!("ws://{}/graphql/ws", server.rest_addr);
    let protocol = ("sec-websocket-protocol", "graphql-transport-ws");
    let refused = ws_upgrade(&graphql_ws, &[evil[0], protocol]).await;
    assert_eq!(refused.expect_err("refused").0, 403);
    ws_upgrade(&graphql_ws, &[protocol])
        .await
        .expect("GraphQL WebSocket without Origin");
    // A cross-site GraphQL mutation (no preflight needed for some content types).
    let client = reqwest::Client::new();
    let mutation = json!({"query": r#"mutation { forceReleaseLock(key: "k") { released } }"#});
    let response = client
        .post(server.rest_url("/graphql"))
        .header("origin", "https://evil.example")
        .json(&mutation)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);
    // The playground page calls its own server: same origin is accepted.
    let response = client
        .post(server.rest_url("/graphql"))
        .header("origin", format!("http://{}", server.rest_addr))
        .json(&mutation)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // REST from a foreign page is refused; from the allowed origin it works.
    let foreign = get(
        &server,
        "/api/v1/locks",
        &[("origin", "https://evil.example".into())],
    )
    .await;
    assert_refused(&foreign, 403, "origin_not_allowed");
    let allowed = get(
        &server,
        "/api/v1/locks",
        &[("origin", "https://app.example".into())],
    )
    .await;
    assert_eq!(allowed.0, StatusCode::OK, "{}", allowed.1);
}
