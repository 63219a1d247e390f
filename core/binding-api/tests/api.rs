//! The binding API against a real `syros serve`: the surface every language binding stands on.
//! The server runs on the backend `SYROS_TEST_BACKEND` names (scripts/test runs both).

use std::sync::Arc;
use std::time::{Duration, Instant};

use syros_binding_api::*;
use syros_launcher::SyrosServer;

fn config(server: &SyrosServer) -> ClientConfig {
    let mut config = ClientConfig::new(vec![server.grpc_address()]);
    config.connect_timeout_ms = 2_000;
    config.call_timeout_ms = 5_000;
    config
}

async fn connect(server: &SyrosServer) -> Arc<Client> {
    let client = Client::new(config(server)).expect("valid config");
    client.connect().await.expect("connects");
    client
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", std::process::id())
        + &format!("-{:?}", Instant::now()).replace(['.', ' '], "")
}

#[tokio::test]
async fn locks_through_the_surface_and_release_is_idempotent() {
    let server = SyrosServer::start_from_env();
    let client = connect(&server).await;
    let key = unique("orders");
    let lease = client
        .lock(key.clone(), LockRequest::new(5_000, 0))
        .await
        .expect("free key");
    assert!(lease.is_held());
    assert_eq!(lease.ttl_ms(), 5_000);
    let first = lease.info().fencing_token;

    // Try-lock on a held key: not acquired, no error.
    let other = client
        .try_lock(key.clone(), LockRequest::new(5_000, 0))
        .await
        .expect("try-lock answers");
    assert!(other.is_none(), "a held key is not granted again");

    // A blocking acquire that times out: the documented code, with the holder in the details.
    let err = client
        .lock(key.clone(), LockRequest::new(5_000, 200))
        .await
        .expect_err("still held");
    assert_eq!(err.code, "lock_timeout");
    assert_eq!(err.kind, ErrorKind::LockTimeout);
    assert_eq!(
        err.details.get("holder_fencing_token").map(String::as_str),
        Some(first.to_string().as_str())
    );

    let status = client.lock_status(key.clone()).await.unwrap().unwrap();
    assert_eq!(status.lease_id, lease.info().lease_id);

    lease.release().await.expect("release");
    lease
        .release()
        .await
        .expect("a second release does nothing");
    assert!(!lease.is_held());
    assert_eq!(
        lease.wait_end(Some(1_000)).await.unwrap(),
        LeaseEnd::Released
    );
    let again = client
        .lock(key.clone(), LockRequest::new(5_000, 0))
        .await
        .unwrap();
    assert!(again.info().fencing_token > first, "tokens increase");
    let renewed = again.renew().await.expect("renew");
    assert!(renewed.expires_at_ms >= again.info().acquired_at_ms);
    drop(again);
}

#[tokio::test]
async fn wait_end_reports_a_lost_lease_when_the_server_is_gone() {
    let mut server = SyrosServer::start_from_env();
    let mut config = config(&server);
    config.retry = Some(RetryConfig {
        initial_interval_ms: 20,
        multiplier: 2.0,
        max_interval_ms: 100,
        max_attempts: 3,
        deadline_ms: Some(500),
    });
    let client = Client::new(config).unwrap();
    let lease = client
        .lock(unique("lost"), LockRequest::new(600, 0))
        .await
        .unwrap();
    assert_eq!(
        lease.wait_end(Some(100)).await.unwrap(),
        LeaseEnd::TimedOut,
        "held while the server renews it"
    );
    server.kill9();
    let started = Instant::now();
    assert_eq!(lease.wait_end(Some(10_000)).await.unwrap(), LeaseEnd::Lost);
    assert!(lease.is_lost());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "lost within about a TTL, took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn subscription_next_times_out_delivers_and_ends_on_close() {
    let server = SyrosServer::start_from_env();
    let client = connect(&server).await;
    let stream = unique("orders");
    let subscription = client
        .subscribe(Some(stream.clone()), SubscribeStart::Start)
        .await
        .unwrap();
    assert_eq!(
        subscription.next(Some(50)).await.unwrap(),
        SubscriptionItem::TimedOut
    );
    // A `next` abandoned by its caller loses no event.
    let abandoned = subscription.next(None).started();
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(abandoned);
    let events = (0..3)
        .map(|i| NewEvent {
            event_id: None,
            event_type: "Created".into(),
            data_json: format!("{{\"n\":{i}}}"),
            metadata_json: None,
        })
        .collect();
    let appended = client
        .append(stream.clone(), events, ExpectedVersion::NoStream)
        .await
        .unwrap();
    assert_eq!(appended.last_version, 2);
    for version in 0..3 {
        match subscription.next(Some(5_000)).await.unwrap() {
            SubscriptionItem::Event(event) => assert_eq!(event.version, version),
            other => panic!("expected event {version}, got {other:?}"),
        }
    }
    subscription.close();
    subscription.close();
    assert!(subscription.is_closed());
    assert_eq!(
        subscription.next(Some(1_000)).await.unwrap(),
        SubscriptionItem::Ended
    );

    // Wrong expected version: the conflict code, nothing stored.
    let err = client
        .append(
            stream.clone(),
            vec![NewEvent {
                event_id: None,
                event_type: "Late".into(),
                data_json: "{}".into(),
                metadata_json: None,
            }],
            ExpectedVersion::Exact(0),
        )
        .await
        .expect_err("stream is at 2");
    assert_eq!(err.code, "version_conflict");
    let read = client
        .read(ReadRequest {
            stream: Some(stream),
            start: Some(0),
            backwards: false,
            limit: 0,
        })
        .await
        .unwrap();
    assert_eq!(read.events.len(), 3);
}

#[tokio::test]
async fn compute_tickets_are_single_flight_and_failures_reach_every_caller() {
    let server = SyrosServer::start_from_env();
    let client = connect(&server).await;
    let key = unique("price");
    let first = client
        .cache_begin(key.clone(), CacheSet::default())
        .await
        .unwrap();
    let CacheLookup::Compute(ticket) = first else {
        panic!("a miss hands out a ticket")
    };
    assert_eq!(ticket.key(), key);
    // A second caller for the same key joins the flight instead of computing again.
    // Started now (a CoreTask otherwise starts when awaited): it joins the flight.
    let joiner = client
        .cache_begin(key.clone(), CacheSet::default())
        .started();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let value = ticket.complete(b"42".to_vec()).await.unwrap();
    assert_eq!(&value[..], b"42");
    match joiner.await.unwrap() {
        CacheLookup::Hit(value) => assert_eq!(&value[..], b"42"),
        CacheLookup::Compute(_) => panic!("the joiner computed too"),
    }
    assert!(
        ticket.complete(b"43".to_vec()).await.is_err(),
        "a ticket completes once"
    );
    // Now cached: a hit.
    match client
        .cache_begin(key.clone(), CacheSet::default())
        .await
        .unwrap()
    {
        CacheLookup::Hit(value) => assert_eq!(&value[..], b"42"),
        CacheLookup::Compute(_) => panic!("the value was stored"),
    }

    // A failed computation: the joiner gets callback_failed, nothing is stored.
    let other = unique("broken");
    let CacheLookup::Compute(ticket) = client
        .cache_begin(other.clone(), CacheSet::default())
        .await
        .unwrap()
    else {
        panic!("a miss")
    };
    let joiner = client
        .cache_begin(other.clone(), CacheSet::default())
        .started();
    tokio::time::sleep(Duration::from_millis(50)).await;
    ticket.fail("database down".into()).await.unwrap();
    let err = joiner.await.expect_err("the computation failed");
    assert_eq!(err.code, "callback_failed");
    assert!(err.message.contains("database down"), "{}", err.message);
    assert!(client.cache_get(other.clone()).await.unwrap().is_none());

    // A ticket dropped unfinished fails its flight instead of hanging it.
    let CacheLookup::Compute(ticket) = client
        .cache_begin(other.clone(), CacheSet::default())
        .await
        .unwrap()
    else {
        panic!("still a miss")
    };
    let joiner = client
        .cache_begin(other.clone(), CacheSet::default())
        .started();
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(ticket);
    let err = tokio::time::timeout(Duration::from_secs(5), joiner)
        .await
        .expect("no hang")
        .expect_err("abandoned");
    assert_eq!(err.code, "callback_failed");
}

fn step(name: &str, service: &str, compensation: Option<&str>) -> StepDefinition {
    StepDefinition {
        name: name.into(),
        service: service.into(),
        action: format!("{name}_do"),
        compensation: compensation.map(Into::into),
        timeout_ms: 2_000,
        retry: Some(StepRetry {
            initial_interval_ms: 50,
            backoff_coefficient: 1.0,
            maximum_interval_ms: 50,
            maximum_attempts: 2,
            non_retryable_errors: vec![],
        }),
    }
}

#[tokio::test]
async fn a_pulled_worker_runs_a_saga_and_the_core_times_out_forgotten_tasks() {
    let server = SyrosServer::start_from_env();
    let client = connect(&server).await;
    let service = unique("svc");
    let worker = client.worker(service.clone(), 4).await.unwrap();
    assert!(!worker.worker_id().is_empty());
    let saga = client
        .start_saga(StartSaga {
            name: "order".into(),
            steps: vec![
                step("reserve", &service, Some("reserve_undo")),
                step("charge", &service, None),
            ],
            input_json: "{\"order\":1}".into(),
            idempotency_key: None,
            retry: None,
        })
        .await
        .unwrap();

    // reserve: completed.
    let task = worker
        .poll_task(Some(10_000))
        .await
        .unwrap()
        .expect("a task");
    assert_eq!(task.handler, "reserve_do");
    assert_eq!(task.input_json, "{\"order\":1}");
    assert!(worker
        .complete(
            task.task_id.clone(),
            TaskOutcome::Completed {
                output_json: "{\"r\":1}".into()
            }
        )
        .await
        .unwrap());
    // A second report of the same task is not accepted.
    assert!(!worker
        .complete(
            task.task_id,
            TaskOutcome::Completed {
                output_json: "{}".into()
            }
        )
        .await
        .unwrap());

    // charge: the host forgets it; the core reports the timeout, the retry comes back.
    let forgotten = worker
        .poll_task(Some(10_000))
        .await
        .unwrap()
        .expect("charge");
    assert_eq!(forgotten.handler, "charge_do");
    assert_eq!(forgotten.attempt, 1);
    assert!(worker.heartbeat(forgotten.task_id.clone()).await.unwrap());
    let retried = worker
        .poll_task(Some(15_000))
        .await
        .unwrap()
        .expect("charge again");
    assert_eq!(retried.handler, "charge_do");
    assert_eq!(
        retried.attempt, 2,
        "the timed-out attempt was reported and retried"
    );
    assert!(!worker.heartbeat(forgotten.task_id.clone()).await.unwrap());
    // Fails for good: reserve is compensated.
    assert!(worker
        .complete(
            retried.task_id,
            TaskOutcome::Failed {
                error_type: "card_declined".into(),
                message: "no funds".into(),
                non_retryable: true,
            },
        )
        .await
        .unwrap());
    let undo = worker
        .poll_task(Some(10_000))
        .await
        .unwrap()
        .expect("compensation");
    assert_eq!(undo.handler, "reserve_undo");
    assert!(undo.is_compensation);
    assert!(worker
        .complete(
            undo.task_id,
            TaskOutcome::Completed {
                output_json: "{}".into()
            }
        )
        .await
        .unwrap());
    let done = client
        .wait_saga(saga.saga_id.clone(), 10_000)
        .await
        .unwrap();
    assert_eq!(done.state, SagaState::Compensated);
    assert_eq!(worker.outstanding(), 0);

    worker.stop();
    worker.stop();
    assert_eq!(worker.poll_task(Some(5_000)).await.unwrap(), None);
    worker.stop_and_drain().await.unwrap();

    let listed = client
        .list_sagas(Some(parse_saga_state("compensated").unwrap()), None, 0)
        .await
        .unwrap();
    assert!(listed.iter().any(|s| s.saga_id == saga.saga_id));
}

#[tokio::test]
async fn bad_input_and_closed_clients_get_their_codes() {
    let server = SyrosServer::start_from_env();
    let client = connect(&server).await;
    let cases: Vec<(&str, ErrorRecord)> = vec![
        (
            "invalid_argument",
            client
                .lock(String::new(), LockRequest::new(5_000, 0))
                .await
                .expect_err("empty key"),
        ),
        (
            "invalid_argument",
            client
                .lock("k".into(), LockRequest::new(0, 0))
                .await
                .expect_err("ttl 0"),
        ),
        (
            "invalid_argument",
            parse_expected_version("latest").expect_err("not a name"),
        ),
        (
            "invalid_argument",
            SubscribeStart::parse("middle").expect_err("not a name"),
        ),
        (
            "invalid_argument",
            parse_saga_state("finished").expect_err("not a state"),
        ),
    ];
    for (code, err) in cases {
        assert_eq!(err.code, code, "{err}");
        assert!(!err.retryable);
    }
    assert_eq!(
        parse_expected_version("no_stream").unwrap(),
        ExpectedVersion::NoStream
    );
    assert_eq!(SubscribeStart::parse("end").unwrap(), SubscribeStart::End);

    client.set_auth_token(Some("token".into()));
    client.check_health().await.expect("healthy");
    client.close();
    client.close();
    let err = client.check_health().await.expect_err("closed");
    assert_eq!(err.code, "cancelled");

    // A client that cannot connect reports unavailable from every call.
    let mut config = ClientConfig::new(vec!["127.0.0.1:1".into()]);
    config.connect_timeout_ms = 200;
    config.retry = Some(RetryConfig {
        initial_interval_ms: 10,
        multiplier: 1.0,
        max_interval_ms: 10,
        max_attempts: 2,
        deadline_ms: Some(1_000),
    });
    let nowhere = Client::new(config).unwrap();
    let err = nowhere
        .connect()
        .await
        .expect_err("nothing listens on port 1");
    assert_eq!(err.code, "unavailable");
    assert!(err.retryable);
}

#[test]
fn blocking_hosts_wait_with_a_limit_and_can_wait_again() {
    let server = SyrosServer::start_from_env();
    let client = Client::new(config(&server)).unwrap();
    let lease = rt::block_on({
        let client = client.clone();
        async move {
            client
                .lock(unique("blocking"), LockRequest::new(5_000, 0))
                .await
        }
    })
    .expect("lock from a plain thread");
    let mut end = lease.wait_end(None);
    assert!(
        end.wait_blocking(Some(Duration::from_millis(50))).is_none(),
        "still held"
    );
    lease.release().wait_blocking(None).unwrap().unwrap();
    assert_eq!(
        end.wait_blocking(Some(Duration::from_secs(5)))
            .unwrap()
            .unwrap(),
        LeaseEnd::Released
    );
}

#[tokio::test]
async fn a_cancelled_lock_wait_ends_at_once_and_leaves_no_lease_behind() {
    let server = SyrosServer::start();
    let client = connect(&server).await;
    let key = unique("cancelled-wait");
    let holder = client
        .lock(key.clone(), LockRequest::new(10_000, 0))
        .await
        .unwrap();
    let token = rt::CancelToken::new();
    let waiting = client
        .lock(key.clone(), LockRequest::new(10_000, 30_000))
        .cancel_on(&token)
        .started();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished(), "still waiting for the holder");
    let cancelled_at = Instant::now();
    token.cancel();
    let err = waiting.await.expect_err("a cancelled wait fails");
    assert_eq!(err.code, "cancelled");
    assert!(
        cancelled_at.elapsed() < Duration::from_secs(5),
        "the wait ended with the cancel, not with its 30 s limit"
    );
    // Released by its holder, the key is free: the abandoned waiter was not granted it.
    holder.release().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(client.lock_status(key.clone()).await.unwrap(), None);
    // A task tied to an already cancelled token fails without running.
    let late = client
        .lock(key.clone(), LockRequest::new(10_000, 0))
        .cancel_on(&token);
    assert_eq!(late.await.expect_err("cancelled").code, "cancelled");
    // One that finishes first is not affected by a later cancel. (The late task may have
    // reached the server before its abort; the core then releases what it was granted, in the
    // background: a short wait, far below the 10 s TTL, covers that.)
    let other = rt::CancelToken::new();
    let lease = client
        .lock(key.clone(), LockRequest::new(10_000, 5_000))
        .cancel_on(&other)
        .await
        .expect("granted before any cancel");
    other.cancel();
    assert!(lease.is_held());
    lease.release().await.unwrap();
}

/// `CoreTask::settle` (how the Node, Java and C bindings complete a host's promise, future or
/// callback): the result is handed over once; a cancel ends a lock wait at once and leaves no
/// lease; an already cancelled token hands over `cancelled` before `settle` returns.
#[tokio::test]
async fn a_settled_task_hands_its_result_over_once_and_a_cancel_leaves_no_lease() {
    let server = SyrosServer::start();
    let client = connect(&server).await;
    let key = unique("settled-wait");
    let settle_lock = |wait_ms: u64, token: Option<&rt::CancelToken>| {
        let (tx, rx) = tokio::sync::oneshot::channel();
        client
            .lock(key.clone(), LockRequest::new(10_000, wait_ms))
            .settle(token, move |result| {
                tx.send(result)
                    .expect("handed over once, to a waiting receiver")
            });
        rx
    };
    let holder = settle_lock(0, None).await.unwrap().expect("the free key");
    let token = rt::CancelToken::new();
    let mut waiting = settle_lock(30_000, Some(&token));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(waiting.try_recv().is_err(), "still waiting for the holder");
    let cancelled_at = Instant::now();
    token.cancel();
    let err = waiting.await.unwrap().expect_err("a cancelled wait fails");
    assert_eq!(err.code, "cancelled");
    assert!(cancelled_at.elapsed() < Duration::from_secs(5));
    holder.release().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(client.lock_status(key.clone()).await.unwrap(), None);
    // Already cancelled: handed over before `settle` returns, the work never runs.
    let mut late = settle_lock(0, Some(&token));
    let err = late
        .try_recv()
        .expect("handed over at once")
        .expect_err("cancelled");
    assert_eq!(err.code, "cancelled");
}

#[test]
fn blocking_host_work_runs_off_the_async_workers() {
    // More parked blocking jobs than the runtime has async workers: an async task must still
    // run, which it could not if blocking jobs occupied the workers.
    let parked = 2 * std::thread::available_parallelism().map_or(4, |n| n.get()) + 2;
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let release_rx = Arc::new(std::sync::Mutex::new(release_rx));
    let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
    let jobs: Vec<_> = (0..parked)
        .map(|_| {
            let release_rx = release_rx.clone();
            let started_tx = started_tx.clone();
            rt::spawn_blocking(move || {
                let _ = started_tx.send(());
                let _ = release_rx.lock().unwrap().recv();
                Ok(())
            })
        })
        .collect();
    for _ in 0..parked {
        started_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("every blocking job starts");
    }
    assert!(rt::is_running(), "the first call created the runtime");
    let answer = rt::spawn(async { Ok(42) })
        .wait_blocking(Some(Duration::from_secs(30)))
        .expect("an async task runs while blocking jobs are parked");
    assert_eq!(answer.unwrap(), 42);
    for _ in 0..parked {
        let _ = release_tx.send(());
    }
    for mut job in jobs {
        job.wait_blocking(Some(Duration::from_secs(30)))
            .expect("released jobs finish")
            .unwrap();
    }
    let panicked = rt::spawn_blocking(|| -> Result<()> { panic!("host code failed") })
        .wait_blocking(Some(Duration::from_secs(30)))
        .expect("a panicking job ends");
    let err = panicked.expect_err("a panic is an error");
    assert_eq!(err.code, "internal");
    assert!(err.message.contains("host code failed"), "{err}");
}
