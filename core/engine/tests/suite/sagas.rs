//! Sagas: ordering, outputs, compensation, retries, timeouts, cancellation, restarts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use syros_engine::sagas::{
    ClaimedTask, RetryPolicy, Saga, SagaFilter, SagaState, StartSaga, StepDefinition, StepState,
    TaskKind, TaskResult,
};
use syros_engine::{Direction, Engine, ErrorKind};

use super::{expect_kind, unique, within, Harness};

fn step(name: &str, service: &str, compensation: bool) -> StepDefinition {
    StepDefinition {
        name: name.to_string(),
        service: service.to_string(),
        action: format!("do_{name}"),
        compensation: compensation.then(|| format!("undo_{name}")),
        timeout_ms: 5_000,
        retry: None,
    }
}

fn fast_policy(attempts: u32) -> RetryPolicy {
    RetryPolicy {
        initial_interval_ms: 100,
        backoff_coefficient: 2.0,
        maximum_interval_ms: 1_000,
        maximum_attempts: attempts,
        non_retryable_errors: vec!["fatal".into()],
    }
}

fn start(steps: Vec<StepDefinition>, attempts: u32) -> StartSaga {
    StartSaga {
        name: "test_saga".into(),
        steps,
        input: r#"{"order": 42}"#.into(),
        idempotency_key: String::new(),
        retry: Some(fast_policy(attempts)),
    }
}

fn ok(output: &str) -> TaskResult {
    TaskResult::Completed(output.to_string())
}

fn failed(error_type: &str) -> TaskResult {
    TaskResult::Failed {
        error_type: error_type.into(),
        message: "boom".into(),
        non_retryable: false,
    }
}

/// Run every ready task of `services` through `handle` until the saga is final.
/// Returns the final saga and the tasks in the order they were handled.
async fn drive<F>(
    engine: &Engine,
    saga_id: &str,
    services: &[&str],
    mut handle: F,
) -> (Saga, Vec<ClaimedTask>)
where
    F: FnMut(&ClaimedTask) -> Option<TaskResult>,
{
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let saga = engine.sagas.get(saga_id).await.expect("get saga");
        if saga.state.is_final() {
            return (saga, seen);
        }
        assert!(Instant::now() < deadline, "saga did not finish: {saga:#?}");
        let mut worked = false;
        for service in services {
            for claimed in engine
                .sagas
                .claim(service, "worker-1", 8)
                .await
                .expect("claim")
            {
                worked = true;
                let result = handle(&claimed);
                seen.push(claimed.clone());
                if let Some(result) = result {
                    engine
                        .sagas
                        .report(&claimed.task.task_id, result)
                        .await
                        .expect("report");
                }
            }
        }
        if !worked {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn handled(tasks: &[ClaimedTask]) -> Vec<String> {
    tasks.iter().map(|t| t.task.handler.clone()).collect()
}

pub async fn happy_path_passes_outputs_and_audits<H: Harness>(h: H) {
    let engine = h.engine();
    let (inv, pay) = (unique("inventory"), unique("payment"));
    let saga = engine
        .sagas
        .start(start(
            vec![step("reserve", &inv, true), step("charge", &pay, true)],
            3,
        ))
        .await
        .unwrap();
    assert_eq!(saga.state, SagaState::Running);
    let (done, tasks) = drive(&engine, &saga.saga_id, &[&inv, &pay], |t| {
        Some(ok(&format!(r#"{{"by": "{}"}}"#, t.task.handler)))
    })
    .await;
    assert_eq!(done.state, SagaState::Completed);
    assert_eq!(handled(&tasks), ["do_reserve", "do_charge"]);
    assert_eq!(tasks[1].input, r#"{"order": 42}"#);
    let previous: serde_json::Value = serde_json::from_str(&tasks[1].previous_outputs).unwrap();
    assert_eq!(
        previous["reserve"]["by"], "do_reserve",
        "step 2 sees step 1's output"
    );
    assert_eq!(
        done.steps[1].output.as_deref(),
        Some(r#"{"by": "do_charge"}"#)
    );
    assert!(done
        .steps
        .iter()
        .all(|s| s.state == StepState::Completed && s.attempts.len() == 1));
    assert_eq!(
        tasks[0].task.idempotency_key(),
        format!("{}/reserve/action", saga.saga_id)
    );

    let audit = engine
        .events
        .read_stream(
            &format!("saga-{}", saga.saga_id),
            None,
            Direction::Forwards,
            100,
        )
        .await
        .unwrap();
    let kinds: Vec<&str> = audit.events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"SagaStarted"));
    assert_eq!(kinds.last(), Some(&"SagaCompleted"));
    assert!(kinds.contains(&"StepCompleted"));
}

pub async fn failure_compensates_completed_steps_in_reverse<H: Harness>(h: H) {
    let engine = h.engine();
    let svc = unique("svc");
    // Fails at step 3 of 4: steps 2 and 1 are compensated, in that order; step 4 never runs.
    let saga = engine
        .sagas
        .start(start(
            vec![
                step("a", &svc, true),
                step("b", &svc, true),
                step("c", &svc, true),
                step("d", &svc, true),
            ],
            3,
        ))
        .await
        .unwrap();
    let (done, tasks) = drive(&engine, &saga.saga_id, &[&svc], |t| {
        Some(if t.task.handler == "do_c" {
            TaskResult::Failed {
                error_type: "declined".into(),
                message: "no".into(),
                non_retryable: true,
            }
        } else {
            ok("{}")
        })
    })
    .await;
    assert_eq!(done.state, SagaState::Compensated);
    assert_eq!(
        handled(&tasks),
        ["do_a", "do_b", "do_c", "undo_b", "undo_a"]
    );
    let states: Vec<StepState> = done.steps.iter().map(|s| s.state).collect();
    assert_eq!(
        states,
        [
            StepState::Compensated,
            StepState::Compensated,
            StepState::Failed,
            StepState::Pending
        ]
    );
    assert!(done
        .error
        .as_deref()
        .unwrap_or_default()
        .contains("declined"));
}

pub async fn failure_at_step_two_compensates_step_one_only<H: Harness>(h: H) {
    let engine = h.engine();
    let svc = unique("svc");
    let saga = engine
        .sagas
        .start(start(
            vec![
                step("one", &svc, true),
                step("two", &svc, true),
                step("three", &svc, true),
            ],
            1,
        ))
        .await
        .unwrap();
    let (done, tasks) = drive(&engine, &saga.saga_id, &[&svc], |t| {
        Some(if t.task.handler == "do_two" {
            failed("broken")
        } else {
            ok("{}")
        })
    })
    .await;
    assert_eq!(handled(&tasks), ["do_one", "do_two", "undo_one"]);
    assert_eq!(done.state, SagaState::Compensated);
}

pub async fn retries_follow_the_policy<H: Harness>(h: H) {
    let engine = h.engine();
    let svc = unique("svc");
    let saga = engine
        .sagas
        .start(start(vec![step("flaky", &svc, false)], 5))
        .await
        .unwrap();
    let mut calls = 0;
    let mut times = Vec::new();
    let (done, _) = drive(&engine, &saga.saga_id, &[&svc], |_| {
        calls += 1;
        times.push(Instant::now());
        Some(if calls < 3 {
            failed("transient")
        } else {
            ok("\"done\"")
        })
    })
    .await;
    assert_eq!(done.state, SagaState::Completed);
    let attempts: Vec<u32> = done.steps[0].attempts.iter().map(|a| a.attempt).collect();
    assert_eq!(attempts, [1, 2, 3]);
    assert_eq!(
        done.steps[0].attempts[0].error_type.as_deref(),
        Some("transient")
    );
    // Backoff: 100 ms before attempt 2, 200 ms before attempt 3.
    assert!(
        times[1] - times[0] >= Duration::from_millis(100),
        "{:?}",
        times[1] - times[0]
    );
    assert!(
        times[2] - times[1] >= Duration::from_millis(200),
        "{:?}",
        times[2] - times[1]
    );
}

pub async fn non_retryable_errors_skip_retries<H: Harness>(h: H) {
    let engine = h.engine();
    let svc = unique("svc");
    for (label, result) in [
        (
            "flag",
            TaskResult::Failed {
                error_type: "whatever".into(),
                message: "x".into(),
                non_retryable: true,
            },
        ),
        ("listed type", failed("fatal")),
    ] {
        let saga = engine
            .sagas
            .start(start(vec![step("once", &svc, false)], 5))
            .await
            .unwrap();
        let (done, tasks) = drive(&engine, &saga.saga_id, &[&svc], |_| Some(result.clone())).await;
        assert_eq!(tasks.len(), 1, "{label}: no retry");
        assert_eq!(done.steps[0].attempts.len(), 1, "{label}");
        assert_eq!(done.state, SagaState::Compensated, "{label}");
    }
}

pub async fn timed_out_task_is_redelivered<H: Harness>(h: H) {
    let engine = h.engine();
    let svc = unique("svc");
    let mut short = step("slow", &svc, false);
    short.timeout_ms = 300;
    let saga = engine.sagas.start(start(vec![short], 3)).await.unwrap();
    // A worker takes the task and dies.
    let lost = engine.sagas.claim(&svc, "dead-worker", 1).await.unwrap();
    assert_eq!(lost.len(), 1);
    assert!(engine.sagas.heartbeat(&lost[0].task.task_id).await.unwrap());
    // After the timeout (+ backoff) it is offered again, as attempt 2, to another worker.
    let again = within(10, "redelivery", async {
        loop {
            let tasks = engine.sagas.claim(&svc, "live-worker", 1).await.unwrap();
            if let Some(task) = tasks.into_iter().next() {
                return task;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert_eq!(again.task.attempt, 2);
    assert_eq!(again.task.idempotency_key(), lost[0].task.idempotency_key());
    // The dead worker's late report is refused; the live one's is taken.
    assert!(!engine.sagas.heartbeat(&lost[0].task.task_id).await.unwrap());
    assert!(!engine
        .sagas
        .report(&lost[0].task.task_id, ok("{}"))
        .await
        .unwrap());
    assert!(engine
        .sagas
        .report(&again.task.task_id, ok("{}"))
        .await
        .unwrap());
    let done = engine.sagas.get(&saga.saga_id).await.unwrap();
    assert_eq!(done.state, SagaState::Completed);
    assert_eq!(
        done.steps[0].attempts[0].error_type.as_deref(),
        Some("timeout")
    );
}

pub async fn idempotency_key_returns_the_same_saga<H: Harness>(h: H) {
    let engine = h.engine();
    let svc = unique("svc");
    let mut request = start(vec![step("only", &svc, false)], 1);
    request.idempotency_key = unique("order");
    let first = engine.sagas.start(request.clone()).await.unwrap();
    let second = engine.sagas.start(request).await.unwrap();
    assert_eq!(first.saga_id, second.saga_id);
    let tasks = engine.sagas.claim(&svc, "w", 10).await.unwrap();
    assert_eq!(tasks.len(), 1, "the second start queued nothing");
}

pub async fn cancel_compensates_what_completed<H: Harness>(h: H) {
    let engine = h.engine();
    let svc = unique("svc");
    let saga = engine
        .sagas
        .start(start(
            vec![
                step("a", &svc, true),
                step("b", &svc, true),
                step("c", &svc, true),
            ],
            1,
        ))
        .await
        .unwrap();
    let a = engine.sagas.claim(&svc, "w", 1).await.unwrap().remove(0);
    engine
        .sagas
        .report(&a.task.task_id, ok("{}"))
        .await
        .unwrap();
    // b is with a worker when the cancel arrives: it finishes, then b and a are compensated.
    let b = engine.sagas.claim(&svc, "w", 1).await.unwrap().remove(0);
    let cancelled = engine.sagas.cancel(&saga.saga_id).await.unwrap();
    assert!(cancelled.cancel_requested);
    assert!(engine
        .sagas
        .report(&b.task.task_id, ok("{}"))
        .await
        .unwrap());
    let (done, tasks) = drive(&engine, &saga.saga_id, &[&svc], |_| Some(ok("{}"))).await;
    assert_eq!(handled(&tasks), ["undo_b", "undo_a"]);
    assert_eq!(done.state, SagaState::Cancelled);
    assert_eq!(done.steps[2].state, StepState::Pending, "c never ran");

    // Cancelling a saga whose next action is still queued withdraws it at once.
    let queued = engine
        .sagas
        .start(start(vec![step("x", &svc, true)], 1))
        .await
        .unwrap();
    let cancelled = engine.sagas.cancel(&queued.saga_id).await.unwrap();
    assert_eq!(cancelled.state, SagaState::Cancelled);
    assert!(
        engine.sagas.claim(&svc, "w", 10).await.unwrap().is_empty(),
        "nothing left to run"
    );
    // Cancelling a finished saga changes nothing.
    assert_eq!(
        engine.sagas.cancel(&queued.saga_id).await.unwrap().state,
        SagaState::Cancelled
    );
}

pub async fn failed_compensation_is_visible<H: Harness>(h: H) {
    let engine = h.engine();
    let svc = unique("svc");
    let saga = engine
        .sagas
        .start(start(
            vec![step("a", &svc, true), step("b", &svc, false)],
            2,
        ))
        .await
        .unwrap();
    let (done, tasks) = drive(&engine, &saga.saga_id, &[&svc], |t| {
        Some(match t.task.handler.as_str() {
            "do_a" => ok("{}"),
            _ => failed("stuck"),
        })
    })
    .await;
    assert_eq!(
        handled(&tasks),
        ["do_a", "do_b", "do_b", "undo_a", "undo_a"]
    );
    assert_eq!(done.state, SagaState::CompensationFailed);
    assert_eq!(done.steps[0].state, StepState::CompensationFailed);
    assert_eq!(
        done.steps[0]
            .attempts
            .iter()
            .filter(|a| a.kind == TaskKind::Compensation)
            .count(),
        2
    );
}

pub async fn sagas_continue_after_restart<H: Harness>(mut h: H) {
    let engine = h.engine();
    let svc = unique("svc");
    let saga = engine
        .sagas
        .start(start(vec![step("a", &svc, true), step("b", &svc, true)], 3))
        .await
        .unwrap();
    let a = engine.sagas.claim(&svc, "w", 1).await.unwrap().remove(0);
    drop(engine);
    let engine: Arc<Engine> = h.restart().await;
    // The claimed task is still claimed; its result is accepted by the new engine.
    assert!(engine
        .sagas
        .report(&a.task.task_id, ok(r#"{"a":1}"#))
        .await
        .unwrap());
    let (done, tasks) = drive(&engine, &saga.saga_id, &[&svc], |_| Some(ok("{}"))).await;
    assert_eq!(handled(&tasks), ["do_b"]);
    assert_eq!(done.state, SagaState::Completed);
}

pub async fn invalid_sagas_are_refused<H: Harness>(h: H) {
    let engine = h.engine();
    let svc = unique("svc");
    expect_kind(
        engine.sagas.start(start(vec![], 1)).await,
        ErrorKind::InvalidArgument,
    );
    expect_kind(
        engine
            .sagas
            .start(start(
                vec![step("a", &svc, false), step("a", &svc, false)],
                1,
            ))
            .await,
        ErrorKind::InvalidArgument,
    );
    let mut bad_input = start(vec![step("a", &svc, false)], 1);
    bad_input.input = "{not json".into();
    expect_kind(
        engine.sagas.start(bad_input).await,
        ErrorKind::InvalidArgument,
    );
    expect_kind(
        engine
            .sagas
            .start(start(vec![step("a", "", false)], 1))
            .await,
        ErrorKind::InvalidArgument,
    );
    let mut bad_policy = start(vec![step("a", &svc, false)], 1);
    bad_policy.retry.as_mut().unwrap().backoff_coefficient = 0.5;
    expect_kind(
        engine.sagas.start(bad_policy).await,
        ErrorKind::InvalidArgument,
    );
    expect_kind(engine.sagas.get("no-such-saga").await, ErrorKind::NotFound);
    assert!(
        engine.sagas.claim(&svc, "w", 10).await.unwrap().is_empty(),
        "nothing was queued"
    );
}

/// Sagas created in the same millisecond straddle page boundaries: paging with small limits
/// returns each exactly once, and a page is followed by a token whenever more sagas remain.
pub async fn paging_returns_every_saga_once<H: Harness>(h: H) {
    let engine = h.engine();
    let svc = unique("svc");
    let name = unique("paged");
    // Concurrent starts land many sagas in one millisecond; keep going until enough do.
    let mut ids = std::collections::HashSet::new();
    let mut per_ms = std::collections::HashMap::<i64, usize>::new();
    for _ in 0..20 {
        let starts = (0..40).map(|_| {
            let engine = engine.clone();
            let mut request = start(vec![step("only", &svc, false)], 1);
            request.name = name.clone();
            async move { engine.sagas.start(request).await.unwrap() }
        });
        for saga in futures::future::join_all(starts).await {
            *per_ms.entry(saga.created_at_ms).or_default() += 1;
            ids.insert(saga.saga_id);
        }
        // Over 100 too, for the default page below (faster starts can reach 10 shared
        // milliseconds in two rounds).
        if per_ms.values().filter(|n| **n > 1).count() >= 10 && ids.len() > 100 {
            break;
        }
    }
    let shared = per_ms.values().filter(|n| **n > 1).count();
    assert!(
        shared >= 10,
        "inconclusive: only {shared} milliseconds hold several sagas"
    );

    for limit in [1, 2, 3, 7] {
        let mut seen = Vec::new();
        let mut token = None;
        loop {
            let page = engine
                .sagas
                .list(SagaFilter {
                    name: Some(name.clone()),
                    page_token: token.take(),
                    limit,
                    ..SagaFilter::default()
                })
                .await
                .unwrap();
            assert!(page.sagas.len() <= limit);
            seen.extend(
                page.sagas
                    .iter()
                    .map(|s| (s.created_at_ms, s.saga_id.clone())),
            );
            match page.next_page_token {
                Some(next) => {
                    assert_eq!(page.sagas.len(), limit, "a short page has no successor");
                    token = Some(next);
                }
                None => break,
            }
        }
        let unique_seen: std::collections::HashSet<_> = seen.iter().map(|s| s.1.clone()).collect();
        assert_eq!(
            seen.len(),
            unique_seen.len(),
            "limit {limit}: a saga came twice"
        );
        assert_eq!(unique_seen, ids, "limit {limit}: sagas went missing");
        let mut newest_first = seen.clone();
        newest_first.sort_by(|a, b| b.cmp(a));
        assert_eq!(seen, newest_first, "limit {limit}: not newest first");
    }

    // No limit: a page of 100 and a token for the rest.
    assert!(ids.len() > 100, "inconclusive: only {} sagas", ids.len());
    let first = engine
        .sagas
        .list(SagaFilter {
            name: Some(name.clone()),
            ..SagaFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(first.sagas.len(), 100);
    let rest = engine
        .sagas
        .list(SagaFilter {
            name: Some(name.clone()),
            page_token: first.next_page_token.clone(),
            limit: 1000,
            ..SagaFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(first.sagas.len() + rest.sagas.len(), ids.len());
    assert_eq!(
        rest.next_page_token, None,
        "nothing is left after the last page"
    );

    // A token this server did not issue is refused.
    for bad in ["abc", "12345", "c1.x.y", "c1.5.", "c1.5.a'b"] {
        expect_kind(
            engine
                .sagas
                .list(SagaFilter {
                    page_token: Some(bad.into()),
                    ..SagaFilter::default()
                })
                .await,
            ErrorKind::InvalidArgument,
        );
    }
}

/// Text a step runner reports is stored, never refused: U+0000 (which PostgreSQL's JSONB cannot
/// hold) becomes U+FFFD in error types and messages; JSON outputs and inputs keep their `\u0000`
/// escapes. Names the caller chooses are refused with InvalidArgument instead.
pub async fn nul_in_reported_text_is_stored<H: Harness>(h: H) {
    let engine = h.engine();
    let svc = unique("svc");
    let mut request = start(vec![step("a", &svc, true), step("b", &svc, false)], 1);
    request.input = r#"{"note": "in\u0000put"}"#.into();
    let saga = engine.sagas.start(request).await.unwrap();
    let (done, tasks) = drive(&engine, &saga.saga_id, &[&svc], |t| {
        Some(match t.task.handler.as_str() {
            "do_a" => ok(r#"{"out": "nul\u0000here"}"#),
            "undo_a" => ok("{}"),
            _ => TaskResult::Failed {
                error_type: "bad\0type".into(),
                message: "broken\0byte".into(),
                non_retryable: true,
            },
        })
    })
    .await;
    assert_eq!(handled(&tasks), ["do_a", "do_b", "undo_a"]);
    assert_eq!(done.state, SagaState::Compensated);
    let attempt = &done.steps[1].attempts[0];
    assert_eq!(attempt.error_type.as_deref(), Some("bad\u{FFFD}type"));
    assert_eq!(attempt.error_message.as_deref(), Some("broken\u{FFFD}byte"));
    assert!(done
        .error
        .as_deref()
        .unwrap_or_default()
        .contains("broken\u{FFFD}byte"));
    assert_eq!(done.input, r#"{"note": "in\u0000put"}"#);
    assert_eq!(
        done.steps[0].output.as_deref(),
        Some(r#"{"out": "nul\u0000here"}"#)
    );
    let outputs: serde_json::Value = serde_json::from_str(&tasks[1].previous_outputs).unwrap();
    assert_eq!(outputs["a"]["out"], "nul\0here");

    let mut bad_name = start(vec![step("a", &svc, false)], 1);
    bad_name.name = "na\0me".into();
    expect_kind(
        engine.sagas.start(bad_name).await,
        ErrorKind::InvalidArgument,
    );
    let mut bad_step = start(vec![step("a\0", &svc, false)], 1);
    bad_step.idempotency_key = unique("key");
    expect_kind(
        engine.sagas.start(bad_step).await,
        ErrorKind::InvalidArgument,
    );
    let mut bad_key = start(vec![step("a", &svc, false)], 1);
    bad_key.idempotency_key = "k\0".into();
    expect_kind(
        engine.sagas.start(bad_key).await,
        ErrorKind::InvalidArgument,
    );
}

/// A step whose attempts timed out may have run without reporting: when it finally fails it is
/// compensated too, before the steps that completed.
pub async fn timed_out_step_is_compensated<H: Harness>(h: H) {
    let engine = h.engine();
    let svc = unique("svc");
    let mut slow = step("b", &svc, true);
    slow.timeout_ms = 300;
    let saga = engine
        .sagas
        .start(start(
            vec![step("a", &svc, true), slow, step("c", &svc, true)],
            2,
        ))
        .await
        .unwrap();
    // do_b never reports: both attempts time out.
    let (done, tasks) = drive(&engine, &saga.saga_id, &[&svc], |t| {
        (t.task.handler != "do_b").then(|| ok("{}"))
    })
    .await;
    assert_eq!(
        handled(&tasks),
        ["do_a", "do_b", "do_b", "undo_b", "undo_a"]
    );
    assert_eq!(done.state, SagaState::Compensated);
    let states: Vec<StepState> = done.steps.iter().map(|s| s.state).collect();
    assert_eq!(
        states,
        [
            StepState::Compensated,
            StepState::Compensated,
            StepState::Pending
        ]
    );

    // A step without a compensation has nothing to undo: it stays failed.
    let mut slow = step("b", &svc, false);
    slow.timeout_ms = 300;
    let saga = engine
        .sagas
        .start(start(vec![step("a", &svc, true), slow], 1))
        .await
        .unwrap();
    let (done, tasks) = drive(&engine, &saga.saga_id, &[&svc], |t| {
        (t.task.handler != "do_b").then(|| ok("{}"))
    })
    .await;
    assert_eq!(handled(&tasks), ["do_a", "do_b", "undo_a"]);
    assert_eq!(done.steps[1].state, StepState::Failed);
}

/// A cancel racing the report of the running step: whichever lands first, the next step's action
/// is never handed to a worker once the cancel has returned.
pub async fn cancel_racing_a_report_stops_the_next_step<H: Harness>(h: H) {
    let engine = h.engine();
    let svc = unique("svc");
    for round in 0..30 {
        let saga = engine
            .sagas
            .start(start(vec![step("a", &svc, true), step("b", &svc, true)], 1))
            .await
            .unwrap();
        let a = engine.sagas.claim(&svc, "w", 1).await.unwrap().remove(0);
        assert_eq!(a.task.handler, "do_a");
        let report = {
            let engine = engine.clone();
            let task_id = a.task.task_id.clone();
            tokio::spawn(async move { engine.sagas.report(&task_id, ok("{}")).await })
        };
        if round % 2 == 1 {
            tokio::task::yield_now().await;
        }
        let cancelled = engine.sagas.cancel(&saga.saga_id).await.unwrap();
        assert!(cancelled.cancel_requested || cancelled.state.is_final());
        report.await.unwrap().unwrap();
        let (done, tasks) = drive(&engine, &saga.saga_id, &[&svc], |_| Some(ok("{}"))).await;
        assert_eq!(
            handled(&tasks),
            ["undo_a"],
            "round {round}: only a's compensation may run after the cancel"
        );
        assert_eq!(done.state, SagaState::Cancelled, "round {round}");
        assert_eq!(done.steps[1].state, StepState::Pending, "round {round}");
    }
}

/// A feed waiting for work gets each new task pushed when it is queued (a started saga's first
/// step, a report's next step), also when it is queued while the feed is busy claiming (sagas
/// start and report concurrently here): with the feed's re-check interval set to an hour, a task
/// that had to wait for the re-check would not arrive within the time limit.
pub async fn waiting_feed_gets_tasks_without_a_recheck<H: Harness>(h: H) {
    let engine = h.engine();
    engine.sagas.set_feed_recheck(Duration::from_secs(3600));
    let svc = unique("svc");
    let mut feed = engine.sagas.task_feed(&svc, "w-feed", 64).unwrap();
    for _ in 0..10 {
        let starts = (0..8).map(|_| {
            let (engine, svc) = (engine.clone(), svc.clone());
            tokio::spawn(async move {
                let steps = vec![step("a", &svc, false), step("b", &svc, false)];
                engine.sagas.start(start(steps, 1)).await.unwrap().saga_id
            })
        });
        let mut sagas = Vec::new();
        for started in starts.collect::<Vec<_>>() {
            sagas.push(started.await.unwrap());
        }
        // Each saga's two steps: each report runs concurrently with the feed's next claim.
        let mut reports = Vec::new();
        for _ in 0..sagas.len() * 2 {
            let claimed = within(20, "a task pushed to the waiting feed", feed.recv())
                .await
                .expect("the feed is open")
                .expect("a task");
            assert!(sagas.contains(&claimed.task.saga_id));
            let engine = engine.clone();
            reports.push(tokio::spawn(async move {
                engine.sagas.report(&claimed.task.task_id, ok("{}")).await
            }));
        }
        for report in reports {
            assert!(report.await.unwrap().unwrap());
        }
        for saga_id in &sagas {
            let done = engine.sagas.get(saga_id).await.unwrap();
            assert_eq!(done.state, SagaState::Completed);
        }
    }
}

/// The event types on a saga's audit stream, in order.
async fn audit_kinds(engine: &Engine, saga_id: &str) -> Vec<String> {
    engine
        .events
        .read_stream(&format!("saga-{saga_id}"), None, Direction::Forwards, 100)
        .await
        .map(|slice| slice.events.into_iter().map(|e| e.event_type).collect())
        .unwrap_or_default()
}

/// A transition and its audit events commit together or not at all: while the store refuses
/// the audit append, a start stores no saga and no task, and a report changes nothing (the task
/// stays with its worker, to be reported again); once appends work, the report is stored with
/// its events.
pub async fn transition_and_audit_events_commit_together<H: Harness>(h: H) {
    let engine = h.engine();
    let service = unique("atomic");
    let mut request = start(
        vec![step("one", &service, false), step("two", &service, false)],
        1,
    );
    request.name = unique("atomic_saga");
    let by_name = || SagaFilter {
        name: Some(request.name.clone()),
        ..Default::default()
    };

    h.refuse_audit_appends(true).await;
    let refused = engine.sagas.start(request.clone()).await;
    assert!(
        refused.is_err(),
        "a start whose audit append fails must fail: {refused:?}"
    );
    let listed = engine.sagas.list(by_name()).await.unwrap();
    assert!(
        listed.sagas.is_empty(),
        "a saga without its audit events: {listed:?}"
    );
    let claimed = engine.sagas.claim(&service, "worker-1", 8).await.unwrap();
    assert!(
        claimed.is_empty(),
        "a task of a saga never stored: {claimed:?}"
    );

    h.refuse_audit_appends(false).await;
    let saga = engine.sagas.start(request.clone()).await.unwrap();
    assert_eq!(
        audit_kinds(&engine, &saga.saga_id).await,
        ["SagaStarted", "StepScheduled"]
    );
    let claimed = engine.sagas.claim(&service, "worker-1", 8).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let task_id = claimed[0].task.task_id.clone();

    h.refuse_audit_appends(true).await;
    let refused = engine.sagas.report(&task_id, ok("1")).await;
    assert!(
        refused.is_err(),
        "a report whose audit append fails must fail: {refused:?}"
    );
    let unchanged = engine.sagas.get(&saga.saga_id).await.unwrap();
    assert_eq!(unchanged.revision, saga.revision, "{unchanged:#?}");
    assert_eq!(unchanged.steps[0].state, StepState::Running);
    assert!(
        engine.sagas.heartbeat(&task_id).await.unwrap(),
        "the task is still the worker's"
    );
    assert_eq!(
        audit_kinds(&engine, &saga.saga_id).await,
        ["SagaStarted", "StepScheduled"]
    );

    h.refuse_audit_appends(false).await;
    assert!(engine.sagas.report(&task_id, ok("1")).await.unwrap());
    let moved = engine.sagas.get(&saga.saga_id).await.unwrap();
    assert_eq!(moved.revision, saga.revision + 1);
    assert_eq!(moved.steps[0].state, StepState::Completed);
    assert_eq!(moved.steps[1].state, StepState::Running);
    assert_eq!(
        audit_kinds(&engine, &saga.saga_id).await,
        [
            "SagaStarted",
            "StepScheduled",
            "StepCompleted",
            "StepScheduled"
        ]
    );
}

/// A report sent twice at once (a retry racing the first attempt) is stored once: on PostgreSQL
/// the transition is one statement guarded by the saga's revision and the task's presence, so
/// the loser (retried after its revision conflict) stores nothing, no second attempt, next task
/// or audit events, and answers `false`.
pub async fn racing_reports_of_one_task_store_one_transition<H: Harness>(h: H) {
    let engine = h.engine();
    let svc = unique("svc");
    let mut sagas = Vec::new();
    for _ in 0..20 {
        let steps = vec![step("a", &svc, false), step("b", &svc, false)];
        sagas.push(engine.sagas.start(start(steps, 1)).await.unwrap().saga_id);
    }
    let claimed = engine.sagas.claim(&svc, "w", 100).await.unwrap();
    assert_eq!(claimed.len(), sagas.len());
    let reports: Vec<_> = claimed
        .iter()
        .flat_map(|c| [c.task.task_id.clone(), c.task.task_id.clone()])
        .map(|task_id| {
            let engine = engine.clone();
            tokio::spawn(async move { engine.sagas.report(&task_id, ok("{}")).await })
        })
        .collect();
    let mut stored = 0;
    for report in reports {
        stored += usize::from(report.await.unwrap().unwrap());
    }
    assert_eq!(stored, sagas.len(), "each task's result is stored once");
    for saga_id in &sagas {
        let saga = engine.sagas.get(saga_id).await.unwrap();
        assert_eq!(saga.revision, 2, "{saga:#?}");
        assert_eq!(saga.steps[0].attempts.len(), 1, "{saga:#?}");
        assert_eq!(
            audit_kinds(&engine, saga_id).await,
            [
                "SagaStarted",
                "StepScheduled",
                "StepCompleted",
                "StepScheduled"
            ]
        );
    }
    let next = engine.sagas.claim(&svc, "w", 100).await.unwrap();
    assert_eq!(next.len(), sagas.len(), "one next task per saga: {next:?}");
    assert!(next.iter().all(|t| t.task.step_name == "b"));
}
