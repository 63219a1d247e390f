//! API key revocation reaches every replica (Redis + PostgreSQL): two servers share one
//! namespace, a key works on both, `syros apikey revoke` on one database row stops it on both
//! within seconds (the servers recheck a key at most every 2 s).

mod security_support;

use std::time::{Duration, Instant};

use security_support::*;
use syros_launcher::{Backend, SyrosServer};

#[tokio::test]
async fn revoked_api_key_stops_working_on_every_replica() {
    let first = SyrosServer::builder()
        .backend(Backend::RedisPostgres)
        .env("AUTH_REQUIRED", "true")
        .start();
    let second = SyrosServer::builder()
        .backend(Backend::RedisPostgres)
        .namespace(first.namespace())
        .env("AUTH_REQUIRED", "true")
        .start();
    let (key_id, key) = create_api_key(&first, "replicated", &["writer"]);
    let http = reqwest::Client::new();
    let status = |server: &SyrosServer| {
        let request = http
            .get(server.rest_url("/api/v1/locks/status?key=replicated"))
            .header("authorization", format!("Bearer {key}"));
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(
        status(&first).await,
        200,
        "the key works on the first replica"
    );
    assert_eq!(status(&second).await, 200, "and on the second");
    let listed = apikey(&second, &["list"]);
    assert!(
        listed.contains(&key_id) && listed.contains("active"),
        "{listed}"
    );

    apikey(&first, &["revoke", &key_id]);
    let revoked_at = Instant::now();
    for (name, server) in [("first", &first), ("second", &second)] {
        loop {
            let code = status(server).await;
            if code == 401 {
                break;
            }
            assert_eq!(code, 200);
            assert!(
                revoked_at.elapsed() < Duration::from_secs(10),
                "the {name} replica still accepts a revoked key after 10 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        eprintln!(
            "{name} replica refuses the revoked key {:?} after revocation",
            revoked_at.elapsed()
        );
    }
    assert!(apikey(&first, &["list"]).contains("revoked"));
}
