//! Cache sets through the client core against a real `syros serve`, with real faults on the wire.

mod common;

use std::time::Duration;

use common::*;
use syros_client::{Client, SetOptions};
use syros_faults::FaultProxy;

/// A set whose reply is lost is retried by the client; if the tag was invalidated between the
/// server applying the set and the retry, the retry must not bring the value back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_set_does_not_resurrect_an_invalidated_value() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let direct = connect(&server).await;
    let proxy = FaultProxy::start(server.addr()).await;
    let mut slow_replies = options(&[proxy.address()]);
    slow_replies.call_timeout = Duration::from_secs(1);
    let through_proxy = Client::connect(slow_replies)
        .await
        .expect("connect through the proxy");
    let key = format!("price-{}", uuid::Uuid::new_v4().simple());

    // The set reaches the server and is applied; its reply comes too late, so the client gives
    // up on that attempt after 1 s and retries.
    proxy.delay_replies(Duration::from_secs(3));
    let started = tokio::time::Instant::now();
    let set = {
        let cache = through_proxy.cache();
        let key = key.clone();
        tokio::spawn(async move {
            let options = SetOptions {
                ttl: None,
                tags: vec!["prices".to_string()],
            };
            cache.set(&key, b"stale".to_vec(), options).await
        })
    };
    // Once the server has applied it, the data changes and the tag is invalidated, well before
    // the first retry.
    while direct.cache().get(&key).await.unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_millis(900),
            "the set never applied"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(direct.cache().invalidate_tag("prices").await.unwrap(), 1);
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "inconclusive: the invalidation came after the client's retry"
    );
    // Let later replies through once a retry has gone out after the invalidation.
    tokio::time::sleep_until(started + Duration::from_millis(1_500)).await;
    proxy.delay_replies(Duration::ZERO);

    set.await.unwrap().expect("the retried set succeeds");
    assert!(
        started.elapsed() > Duration::from_secs(1),
        "the set was retried"
    );
    assert_eq!(
        direct.cache().get(&key).await.unwrap(),
        None,
        "the retried set brought back an invalidated value"
    );
    // A new set (a new request) is stored as usual.
    through_proxy
        .cache()
        .set(&key, b"fresh".to_vec(), SetOptions::default())
        .await
        .unwrap();
    let entry = direct.cache().get(&key).await.unwrap().expect("stored");
    assert_eq!(entry.value.as_ref(), b"fresh");
}
