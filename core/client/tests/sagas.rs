//! Step runners through the client core against a real `syros serve`: an order saga that
//! completes, one whose payment fails and is compensated, and a worker that survives a server
//! restart.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use syros_client::{SagaState, StartSaga, StepDefinition, StepRetryPolicy, TaskFailure};

fn order_saga(amount: u32) -> StartSaga {
    StartSaga {
        name: "order_fulfillment_saga".into(),
        steps: vec![
            StepDefinition::new("reserve_inventory", "inventory_service", "reserve")
                .compensation("release_inventory")
                .timeout(Duration::from_secs(10)),
            StepDefinition::new("charge_payment", "payment_service", "charge")
                .compensation("refund_payment")
                .timeout(Duration::from_secs(15)),
        ],
        input_json: format!(r#"{{"order_id": "o-1", "amount": {amount}}}"#),
        idempotency_key: None,
        retry: Some(StepRetryPolicy {
            initial_interval: Duration::from_millis(50),
            maximum_attempts: 2,
            ..StepRetryPolicy::default()
        }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_run_a_saga_and_compensate_failures() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let client = connect(&server).await;
    let log = Arc::new(Mutex::new(Vec::<String>::new()));

    let inventory = {
        let log = log.clone();
        let log2 = log.clone();
        client
            .worker("inventory_service")
            .handler("reserve", move |task| {
                let log = log.clone();
                async move {
                    log.lock()
                        .unwrap()
                        .push(format!("reserve {}", task.idempotency_key));
                    Ok(r#"{"reservation": "r-9"}"#.to_string())
                }
            })
            .handler("release_inventory", move |task| {
                let log = log2.clone();
                async move {
                    let outputs: serde_json::Value =
                        serde_json::from_str(&task.previous_outputs_json).unwrap();
                    log.lock().unwrap().push(format!(
                        "release {}",
                        outputs["reserve_inventory"]["reservation"]
                            .as_str()
                            .unwrap_or("?")
                    ));
                    Ok("{}".to_string())
                }
            })
            .start()
            .unwrap()
    };
    let payment = {
        let log = log.clone();
        client
            .worker("payment_service")
            .max_concurrent(4)
            .handler("charge", move |task| {
                let log = log.clone();
                async move {
                    let input: serde_json::Value = serde_json::from_str(&task.input_json).unwrap();
                    log.lock()
                        .unwrap()
                        .push(format!("charge {}", input["amount"]));
                    if input["amount"].as_u64().unwrap() > 1000 {
                        Err(TaskFailure::fatal("card_declined", "over the limit"))
                    } else {
                        Ok(r#"{"charge_id": "c-1"}"#.to_string())
                    }
                }
            })
            .handler("refund_payment", |_| async { Ok("{}".to_string()) })
            .start()
            .unwrap()
    };

    let sagas = client.sagas();
    let ok = sagas.start(order_saga(100)).await.unwrap();
    let done = sagas
        .wait(&ok.saga_id, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(done.state, SagaState::Completed, "{done:?}");
    assert_eq!(
        done.steps[1].output_json.as_deref(),
        Some(r#"{"charge_id": "c-1"}"#)
    );

    let declined = sagas.start(order_saga(5000)).await.unwrap();
    let done = sagas
        .wait(&declined.saga_id, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(done.state, SagaState::Compensated, "{done:?}");
    assert_eq!(
        done.steps[1].attempts.len(),
        1,
        "a fatal failure is not retried"
    );
    assert_eq!(
        done.steps[1].attempts[0].error_type.as_deref(),
        Some("card_declined")
    );
    let log = log.lock().unwrap().clone();
    assert_eq!(
        log.last().map(String::as_str),
        Some("release r-9"),
        "{log:?}"
    );
    assert!(
        log.contains(&format!("reserve {}/reserve_inventory/action", ok.saga_id)),
        "{log:?}"
    );

    let listed = sagas
        .list(
            Some(SagaState::Compensated),
            Some("order_fulfillment_saga"),
            10,
        )
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].saga_id, declined.saga_id);
    inventory.stop().await;
    payment.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_survives_a_server_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    let client = connect(&server).await;
    let runs = Arc::new(AtomicU32::new(0));
    let counter = runs.clone();
    let worker = client
        .worker("restartable")
        .handler("work", move |_| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                Ok("{}".to_string())
            }
        })
        .start()
        .unwrap();
    let start = |n: u32| StartSaga {
        name: "restart_me".into(),
        steps: vec![StepDefinition::new(format!("s{n}"), "restartable", "work")],
        ..StartSaga::default()
    };
    let first = client.sagas().start(start(1)).await.unwrap();
    assert_eq!(
        client
            .sagas()
            .wait(&first.saga_id, Duration::from_secs(20))
            .await
            .unwrap()
            .state,
        SagaState::Completed
    );

    server.kill9();
    server.restart();
    let second = client.sagas().start(start(2)).await.unwrap();
    let done = client
        .sagas()
        .wait(&second.saga_id, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(done.state, SagaState::Completed);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    worker.stop().await;
}

/// The server stores a transition, then appends its audit event; a crash in between leaves a
/// final saga whose audit stream never says so. `wait` must still return, not hang to its
/// timeout. The crash is a real kill -9; the store is then left exactly as a crash after the
/// transition's commit leaves it (the saga final, no audit event for it). Embedded only: it
/// edits the SQLite file while the server is down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_returns_when_the_final_audit_event_was_lost() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_on(dir.path(), Backend::Embedded, &[]);
    let client = connect(&server).await;
    let saga = client
        .sagas()
        .start(StartSaga {
            name: "lost_audit".into(),
            steps: vec![StepDefinition::new("only", "nobody_runs_this", "do")],
            ..StartSaga::default()
        })
        .await
        .unwrap();
    let waiter = {
        let sagas = client.sagas();
        let saga_id = saga.saga_id.clone();
        tokio::spawn(async move { sagas.wait(&saga_id, Duration::from_secs(40)).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiter.is_finished(), "the saga is still running");

    server.kill9();
    let db = dir.path().join("syros.db");
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&db);
    let store = sqlx::SqlitePool::connect_with(options).await.unwrap();
    let finished = sqlx::query(
        "UPDATE sagas SET state = 'completed', revision = revision + 1,
           doc = json_set(doc, '$.state', 'completed', '$.revision', revision + 1,
                          '$.steps[0].state', 'completed', '$.steps[0].output', 'null')
         WHERE saga_id = ?",
    )
    .bind(&saga.saga_id)
    .execute(&store)
    .await
    .unwrap();
    assert_eq!(finished.rows_affected(), 1);
    sqlx::query("DELETE FROM saga_tasks WHERE saga_id = ?")
        .bind(&saga.saga_id)
        .execute(&store)
        .await
        .unwrap();
    store.close().await;

    server.restart();
    let restarted = std::time::Instant::now();
    let done = tokio::time::timeout(Duration::from_secs(15), waiter)
        .await
        .expect("wait hung although the saga is final")
        .unwrap()
        .unwrap();
    assert_eq!(done.state, SagaState::Completed);
    // Loose bound: it re-reads about every second; the audit stream never wakes it here.
    assert!(
        restarted.elapsed() < Duration::from_secs(15),
        "{:?}",
        restarted.elapsed()
    );
}

/// Waiting on a saga that does not exist answers `NotFound` once its (empty) audit stream has been
/// quiet for `WAIT_FIRST_EVENT`, not after the quiet-stream re-check of an existing saga; a saga
/// that does exist and is still running is not mistaken for an unknown one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_on_an_unknown_saga_is_not_found_without_the_recheck_delay() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let client = connect(&server).await;
    let asked = std::time::Instant::now();
    let err = client
        .sagas()
        .wait("no-such-saga", Duration::from_secs(30))
        .await
        .expect_err("an unknown saga cannot be waited for");
    assert_eq!(err.kind, syros_client::ErrorKind::NotFound, "{err}");
    assert!(
        asked.elapsed() < syros_client::WAIT_RECHECK,
        "NotFound took {:?}",
        asked.elapsed()
    );

    let running = client
        .sagas()
        .start(StartSaga {
            name: "never_runs".into(),
            steps: vec![StepDefinition::new("only", "nobody_runs_this", "do")],
            ..StartSaga::default()
        })
        .await
        .unwrap();
    let err = client
        .sagas()
        .wait(&running.saga_id, Duration::from_millis(1500))
        .await
        .expect_err("the saga never ends");
    assert_eq!(err.kind, syros_client::ErrorKind::DeadlineExceeded, "{err}");
}
