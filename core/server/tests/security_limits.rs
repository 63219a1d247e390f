//! Rate limits (per principal and per client IP) and JWKS reloading, on real servers.

mod security_support;

use std::time::{Duration, Instant};

use security_support::*;
use serde_json::json;
use syros_launcher::SyrosServer;
use syros_proto::syros::v1 as pb;
use volo_grpc::Code;

async fn rest_status(
    http: &reqwest::Client,
    server: &SyrosServer,
    token: &str,
) -> reqwest::Response {
    http.get(server.rest_url("/api/v1/locks/status?key=limited"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap()
}

fn status_request(token: &str) -> volo_grpc::Request<pb::LockStatusRequest> {
    let mut request = volo_grpc::Request::new(pb::LockStatusRequest {
        key: "limited".to_string().into(),
    });
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

#[tokio::test]
async fn rate_limit_answers_429_and_resource_exhausted_then_recovers() {
    let server = SyrosServer::builder()
        .env("JWT_SECRET", SECRET)
        .env("RATE_LIMIT_PER_PRINCIPAL", "5")
        .env("RATE_LIMIT_BURST", "5")
        .start();
    let http = reqwest::Client::new();

    // REST: past the burst, 429 with Retry-After, then allowed again after waiting that long.
    let rest_user = hs256(
        SECRET,
        &json!({"sub": "rest-user", "roles": ["reader"], "exp": now() + 3600}),
    );
    let mut limited = None;
    for _ in 0..20 {
        let response = rest_status(&http, &server, &rest_user).await;
        if response.status().as_u16() == 429 {
            limited = Some(response);
            break;
        }
        assert_eq!(response.status().as_u16(), 200);
    }
    let limited = limited.expect("20 requests at once go past a 5/s limit with a burst of 5");
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=5).contains(&retry_after), "Retry-After {retry_after}");
    let body: serde_json::Value = limited.json().await.unwrap();
    assert_eq!(body["code"], "rate_limited", "{body}");
    // Another principal is not affected.
    let other = hs256(
        SECRET,
        &json!({"sub": "other-user", "roles": ["reader"], "exp": now() + 3600}),
    );
    assert_eq!(
        rest_status(&http, &server, &other).await.status().as_u16(),
        200
    );
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    assert_eq!(
        rest_status(&http, &server, &rest_user)
            .await
            .status()
            .as_u16(),
        200,
        "recovered after Retry-After"
    );

    // gRPC: RESOURCE_EXHAUSTED with the code `rate_limited`, then recovery.
    let locks = pb::LockServiceClientBuilder::new("syros")
        .address(server.grpc_addr())
        .build();
    let grpc_user = hs256(
        SECRET,
        &json!({"sub": "grpc-user", "roles": ["reader"], "exp": now() + 3600}),
    );
    let mut refused = None;
    for _ in 0..20 {
        match locks.status(status_request(&grpc_user)).await {
            Ok(_) => {}
            Err(status) => {
                refused = Some(status);
                break;
            }
        }
    }
    let refused = refused.expect("20 calls at once go past the limit");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert_eq!(
        refused
            .metadata()
            .get("syros-error-code")
            .unwrap()
            .to_str()
            .unwrap(),
        "rate_limited"
    );
    let started = Instant::now();
    loop {
        match locks.status(status_request(&grpc_user)).await {
            Ok(_) => break,
            Err(status) => assert_eq!(status.code(), Code::ResourceExhausted),
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no recovery");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn rate_limit_per_client_ip_counts_every_principal_of_that_address() {
    let server = SyrosServer::builder()
        .env("JWT_SECRET", SECRET)
        .env("RATE_LIMIT_PER_IP", "4")
        .env("RATE_LIMIT_BURST", "4")
        .start();
    let http = reqwest::Client::new();
    let mut statuses = Vec::new();
    for i in 0..12 {
        let token = hs256(
            SECRET,
            &json!({"sub": format!("user-{i}"), "roles": ["reader"], "exp": now() + 3600}),
        );
        statuses.push(rest_status(&http, &server, &token).await.status().as_u16());
    }
    assert!(
        statuses.contains(&429),
        "twelve principals from one address share its limit: {statuses:?}"
    );
    // The address is counted before authentication, so floods of bad credentials are limited
    // too; and it recovers.
    let response = http
        .get(server.rest_url("/api/v1/locks/status?key=x"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 429);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let response = http
        .get(server.rest_url("/api/v1/locks/status?key=x"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status().as_u16(),
        401,
        "recovered: now refused for its missing credential"
    );
}

#[tokio::test]
async fn jwks_file_is_reloaded_when_it_changes() {
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    let first = EcKey::generate("first");
    let second = EcKey::generate("second");
    write_jwks(&jwks, &[&first]);
    let server = SyrosServer::builder()
        .env("JWT_JWKS_FILE", jwks.display().to_string())
        .start();
    let http = reqwest::Client::new();
    let claims = json!({"sub": "rotating", "roles": ["reader"], "exp": now() + 3600});
    assert_eq!(
        rest_status(&http, &server, &first.sign(&claims))
            .await
            .status()
            .as_u16(),
        200
    );
    assert_eq!(
        rest_status(&http, &server, &second.sign(&claims))
            .await
            .status()
            .as_u16(),
        401,
        "a key not in the file yet"
    );
    // HS256 is refused outright: no secret is configured, and JWKS keys are never secrets.
    assert_eq!(
        rest_status(&http, &server, &hs256("x".repeat(32).as_str(), &claims))
            .await
            .status()
            .as_u16(),
        401
    );
    // Rotate: the file now holds only the second key.
    write_jwks(&jwks, &[&second]);
    let started = Instant::now();
    loop {
        let status = rest_status(&http, &server, &second.sign(&claims))
            .await
            .status()
            .as_u16();
        if status == 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "JWKS not reloaded within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("JWKS change seen after {:?}", started.elapsed());
    assert_eq!(
        rest_status(&http, &server, &first.sign(&claims))
            .await
            .status()
            .as_u16(),
        401,
        "the removed key no longer works"
    );
}

#[tokio::test]
async fn metrics_can_be_protected() {
    let server = SyrosServer::builder()
        .env("JWT_SECRET", SECRET)
        .env("METRICS_REQUIRE_AUTH", "true")
        .start();
    let http = reqwest::Client::new();
    let metrics = |token: Option<String>| {
        let mut request = http.get(server.rest_url("/metrics"));
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(metrics(None).await, 401);
    assert_eq!(metrics(Some(token("reader-user", &["reader"]))).await, 403);
    assert_eq!(metrics(Some(token("admin-user", &["admin"]))).await, 200);
    let health = http.get(server.rest_url("/health")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200, "health stays open");
}
