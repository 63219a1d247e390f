//! The client core's lock session (one stream per endpoint carrying every acquire, renew and
//! release of the client): many calls share it, a dropped acquire is cancelled on the server,
//! and a cut stream fails its calls like a cut unary call, whose retries get what the first
//! attempts were granted and nothing more.

mod common;

use std::time::Duration;

use common::*;
use syros_client::Client;
use syros_faults::FaultProxy;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_lock_calls_share_one_client() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let client = connect(&server).await;
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                let lease = client
                    .lock(format!("session/many-{}", i % 8))
                    .ttl(Duration::from_secs(10))
                    .wait(Duration::from_secs(20))
                    .acquire()
                    .await
                    .expect("acquire");
                lease.renew().await.expect("renew");
                let token = lease.fencing_token();
                lease.release().await.expect("release");
                token
            })
        })
        .collect();
    let mut tokens = Vec::new();
    for task in tasks {
        tokens.push(task.await.expect("task"));
    }
    tokens.sort_unstable();
    tokens.dedup();
    assert_eq!(tokens.len(), 64, "every grant has its own fencing token");
    assert_eq!(client.stats().retries, 0);
    assert!(client.list_locks("session/", 0).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_waiting_acquire_leaves_the_queue() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let holder = connect(&server).await;
    let waiter = connect(&server).await;
    let key = "session/dropped-waiter";
    let lease = holder.lock(key).acquire().await.expect("acquire");
    let abandoned = tokio::time::timeout(
        Duration::from_millis(300),
        waiter.lock(key).wait(Duration::from_secs(30)).acquire(),
    )
    .await;
    assert!(abandoned.is_err(), "the acquire was still waiting");
    tokio::time::sleep(Duration::from_millis(200)).await;
    lease.release().await.expect("release");
    // Without the cancel frame the server would hand the lock to the abandoned waiter here
    // (its stream is still open for the client's other calls).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(holder.lock_status(key).await.expect("status"), None);
    // And the waiter's session still serves it.
    waiter
        .lock(key)
        .acquire()
        .await
        .expect("acquire")
        .release()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_session_is_retried_without_a_second_grant() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let proxy = FaultProxy::start(server.addr()).await;
    let client = Client::connect(options(&[proxy.address()]))
        .await
        .expect("connect");
    let direct = connect(&server).await;
    let held_key = "session/cut-held";
    let cut_key = "session/cut-granted";

    let holder = direct.lock(held_key).acquire().await.expect("acquire");
    // A waiter in flight on the stream when it is cut.
    let waiting = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .lock(held_key)
                .wait(Duration::from_secs(20))
                .auto_renew(false)
                .acquire()
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The grant of this one is lost with the stream; the server has done the work.
    proxy.reply_cut_grace(Duration::from_millis(300));
    proxy.cut_reply_after(cut_key.as_bytes());
    let granted = client
        .lock(cut_key)
        .auto_renew(false)
        .acquire()
        .await
        .expect("the retry gets the lease the lost answer carried");
    assert_eq!(proxy.fired(), 1, "the stream was cut");
    assert!(client.stats().retries >= 1);
    let on_server = direct.lock_status(cut_key).await.unwrap().expect("held");
    assert_eq!(on_server.lease_id, granted.lease_id(), "one grant, not two");

    holder.release().await.expect("release");
    let second = waiting
        .await
        .expect("task")
        .expect("the waiter, retried on a new stream, gets the lock");
    let on_server = direct.lock_status(held_key).await.unwrap().expect("held");
    assert_eq!(on_server.lease_id, second.lease_id());
    assert!(
        direct
            .lock(held_key)
            .try_acquire()
            .await
            .expect("try")
            .is_none(),
        "the lock is held once"
    );
    second.release().await.expect("release");
    granted.release().await.expect("release");
}
