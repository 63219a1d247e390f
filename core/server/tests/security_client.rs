//! The client core against a secured server: it sends its bearer credential on every call, the
//! credential can be replaced while the client runs (token refresh), and refusals arrive as the
//! client's `Unauthenticated` / `PermissionDenied` kinds.

mod security_support;

use std::sync::{Arc, Mutex};

use security_support::*;
use syros_client::{Client, ClientOptions, ErrorKind, SetOptions};
use syros_launcher::SyrosServer;

#[tokio::test]
async fn client_sends_a_replaceable_token_and_maps_refusals() {
    let server = SyrosServer::builder().env("JWT_SECRET", SECRET).start();
    let (_, api_key) = create_api_key(&server, "client-test", &["writer"]);
    let current = Arc::new(Mutex::new(Some(token("reader-user", &["reader"]))));
    let mut options = ClientOptions::new([server.grpc_address()]);
    let source = current.clone();
    options.auth_token = Some(Arc::new(move || source.lock().unwrap().clone()));
    let client = Client::connect(options).await.expect("connect");
    let cache = client.cache();

    let err = cache
        .set("client/key", "v", SetOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::PermissionDenied, "{err}");
    assert!(err.to_string().contains("cache:write"), "{err}");
    assert!(cache.get("client/key").await.unwrap().is_none());

    // Replace the credential while running: a writer token, then an API key.
    *current.lock().unwrap() = Some(token("writer-user", &["writer"]));
    cache
        .set("client/key", "v1", SetOptions::default())
        .await
        .expect("a writer may set");
    *current.lock().unwrap() = Some(api_key);
    cache
        .set("client/key", "v2", SetOptions::default())
        .await
        .expect("a writer API key may set");

    *current.lock().unwrap() = Some("not-a-token".into());
    let err = cache.get("client/key").await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unauthenticated, "{err}");
    *current.lock().unwrap() = None;
    let err = cache.get("client/key").await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unauthenticated, "{err}");
}
