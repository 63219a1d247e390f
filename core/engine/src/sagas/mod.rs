//! Sagas: durable orchestration of ordered steps executed by step runners, with compensation.
//!
//! Every transition is decided here, as a pure change of the saga document plus the tasks it
//! creates, and stored atomically by the [`SagaStore`] (guarded by the saga's revision) before
//! anything acts on it. Workers claim tasks from per-service queues; a claimed task that is not
//! reported before its deadline is treated as a failed attempt and retried by the policy. After a
//! restart nothing needs resuming: the queue and the documents are the whole state.

pub mod model;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::sync::Notify;

use crate::error::{Error, ErrorKind, Result};
use crate::limits::{check_name, check_optional_name, now_ms, page_limit};
use crate::model::NewEvent;
use crate::store::SagaStore;
use crate::telemetry;
pub use model::*;

/// Default start-to-close timeout of a step attempt.
pub const DEFAULT_STEP_TIMEOUT_MS: u64 = 30_000;
const MAX_STEPS: usize = 100;
const MAX_NAME_BYTES: usize = 256;
const MAX_JSON_BYTES: usize = 1024 * 1024;
/// The error type of an attempt whose outcome is unknown: the server timed it out (the worker
/// went quiet) or the client core gave up on a handler that ran over its timeout. Such an attempt
/// may have had effects, so a step that fails after one is compensated too.
pub const TIMEOUT_ERROR: &str = "timeout";
/// How often claimed tasks are checked for a passed deadline.
pub const TIMEOUT_SWEEP_INTERVAL: Duration = Duration::from_millis(250);

/// What a caller asks for when starting a saga.
#[derive(Debug, Clone, Default)]
pub struct StartSaga {
    pub name: String,
    pub steps: Vec<StepDefinition>,
    /// JSON; empty = `{}`.
    pub input: String,
    /// Empty = none.
    pub idempotency_key: String,
    pub retry: Option<RetryPolicy>,
}

/// The outcome a step runner reports.
#[derive(Debug, Clone)]
pub enum TaskResult {
    /// JSON output (empty = `null`).
    Completed(String),
    Failed {
        error_type: String,
        message: String,
        non_retryable: bool,
    },
}

/// A claimed task with what its handler needs.
#[derive(Debug, Clone)]
pub struct ClaimedTask {
    pub task: SagaTask,
    pub input: String,
    /// JSON object: step name → output, for steps completed so far.
    pub previous_outputs: String,
}

/// Saga operations of the engine.
pub struct SagaManager {
    store: Arc<dyn SagaStore>,
    ready: Mutex<HashMap<String, Arc<Notify>>>,
    shutdown: tokio::sync::watch::Receiver<bool>,
    /// [`FEED_RECHECK`] unless changed by [`SagaManager::set_feed_recheck`] (ms).
    feed_recheck_ms: AtomicU64,
    /// Tasks claimed through this replica with their saga as claimed, by task id, so that their
    /// report skips reading both again (see [`SagaManager::report`]).
    claimed: Mutex<HashMap<String, (SagaTask, Saga)>>,
}

/// Most claimed tasks remembered for their report (the map is emptied beyond it: a task not
/// remembered is read from the store, as a report through another replica is). With
/// [`CLAIMED_REMEMBERED_BYTES`] it bounds the memory to ~16 MiB of saga data.
const CLAIMED_REMEMBERED: usize = 1024;
/// Sagas whose input and outputs are larger than this are not remembered with their task.
const CLAIMED_REMEMBERED_BYTES: usize = 16 * 1024;

/// Tasks buffered per task feed beyond what the worker runs at once.
const FEED_BUFFER: usize = 16;
/// A feed re-checks the queue at least this often (covers tasks queued through another replica).
pub const FEED_RECHECK: Duration = Duration::from_millis(250);

fn check_json(what: &str, text: &str) -> Result<()> {
    if text.len() > MAX_JSON_BYTES {
        return Err(Error::new(
            ErrorKind::PayloadTooLarge,
            format!("{what} is over 1 MiB"),
        ));
    }
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .map(|_| ())
        .map_err(|e| Error::invalid(format!("{what} is not valid JSON: {e}")))
}

/// Longest error message a step runner's report keeps (longer ones are cut, not refused).
const MAX_ERROR_MESSAGE_BYTES: usize = 64 * 1024;

/// `text` cut to at most `max` bytes (on a character boundary) with every U+0000 replaced by
/// U+FFFD: a worker's report is stored, never refused for its text, and PostgreSQL's JSONB cannot
/// hold U+0000.
fn storable_text(text: &str, max: usize) -> String {
    let mut text = text.replace('\0', "\u{FFFD}");
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text
}

/// A worker-reported error type made a valid name: control characters become U+FFFD, the length
/// is capped, and an empty type becomes `error`.
fn storable_error_type(error_type: &str) -> String {
    let cleaned: String = error_type
        .chars()
        .take(MAX_NAME_BYTES)
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect();
    let cleaned = storable_text(&cleaned, MAX_NAME_BYTES);
    if cleaned.is_empty() {
        "error".to_string()
    } else {
        cleaned
    }
}

fn check_policy(policy: &RetryPolicy) -> Result<()> {
    if policy.maximum_attempts == 0 || policy.maximum_attempts > 100 {
        return Err(Error::invalid(
            "retry maximum_attempts must be between 1 and 100",
        ));
    }
    if !(1.0..=100.0).contains(&policy.backoff_coefficient) {
        return Err(Error::invalid(
            "retry backoff_coefficient must be between 1 and 100",
        ));
    }
    if policy.initial_interval_ms > 3_600_000 || policy.maximum_interval_ms > 86_400_000 {
        return Err(Error::invalid(
            "retry intervals must be at most 1 h (initial) and 1 day (maximum)",
        ));
    }
    if policy.maximum_interval_ms < policy.initial_interval_ms {
        return Err(Error::invalid(
            "retry maximum_interval_ms must be at least initial_interval_ms",
        ));
    }
    for error in &policy.non_retryable_errors {
        check_name("non_retryable_errors entry", error, MAX_NAME_BYTES)?;
    }
    Ok(())
}

fn new_task(
    saga: &Saga,
    step_index: usize,
    kind: TaskKind,
    attempt: u32,
    now: i64,
    delay_ms: u64,
) -> SagaTask {
    let step = &saga.steps[step_index].definition;
    let handler = match kind {
        TaskKind::Action => step.action.clone(),
        TaskKind::Compensation => step.compensation.clone().unwrap_or_default(),
    };
    SagaTask {
        task_id: uuid::Uuid::new_v4().simple().to_string(),
        saga_id: saga.saga_id.clone(),
        step_index,
        step_name: step.name.clone(),
        service: step.service.clone(),
        handler,
        kind,
        attempt,
        visible_at_ms: now.saturating_add(i64::try_from(delay_ms).unwrap_or(i64::MAX)),
        timeout_ms: step.timeout_ms,
        worker_id: None,
        deadline_ms: None,
    }
}

/// Audit notes gathered while deciding a transition: (event type, details).
type Notes = Vec<(&'static str, serde_json::Value)>;

/// A transition's notes as the events stored with it on the saga's [`audit_stream`], each
/// carrying the saga's id, new state and revision.
fn audit_events(saga: &Saga, notes: Notes) -> Vec<NewEvent> {
    notes
        .into_iter()
        .map(|(kind, mut details)| {
            if let Some(map) = details.as_object_mut() {
                map.insert("saga_id".into(), json!(saga.saga_id));
                map.insert("state".into(), json!(saga.state.as_str()));
                map.insert("revision".into(), json!(saga.revision));
            }
            NewEvent {
                event_id: uuid::Uuid::new_v4().to_string(),
                event_type: kind.to_string(),
                data: details.to_string(),
                metadata: None,
            }
        })
        .collect()
}

/// Whether an action attempt of `step` timed out: it may have run without reporting.
fn outcome_unknown(step: &SagaStep) -> bool {
    step.attempts
        .iter()
        .any(|a| a.kind == TaskKind::Action && a.error_type.as_deref() == Some(TIMEOUT_ERROR))
}

/// Whether compensation must undo `step`: it completed, or it failed (or was withdrawn) after an
/// attempt whose outcome is unknown.
fn needs_undo(step: &SagaStep) -> bool {
    match step.state {
        StepState::Completed => true,
        StepState::Failed => outcome_unknown(step),
        _ => false,
    }
}

/// Compensate the steps at or below `from` that need it (see [`needs_undo`]), newest first. Returns the next task, if any.
fn compensate_from(
    saga: &mut Saga,
    from: Option<usize>,
    now: i64,
    notes: &mut Notes,
) -> Vec<SagaTask> {
    if let Some(from) = from {
        for index in (0..=from).rev() {
            if !needs_undo(&saga.steps[index]) {
                continue;
            }
            if saga.steps[index].definition.compensation.is_some() {
                saga.steps[index].state = StepState::Compensating;
                saga.state = SagaState::Compensating;
                notes.push((
                    "CompensationScheduled",
                    json!({"step": saga.steps[index].definition.name}),
                ));
                return vec![new_task(saga, index, TaskKind::Compensation, 1, now, 0)];
            }
            // Nothing to undo for this step (a failed one stays failed).
            if saga.steps[index].state == StepState::Completed {
                saga.steps[index].state = StepState::Compensated;
            }
        }
    }
    saga.state = if saga.cancel_requested {
        SagaState::Cancelled
    } else {
        SagaState::Compensated
    };
    notes.push((
        if saga.cancel_requested {
            "SagaCancelled"
        } else {
            "SagaCompensated"
        },
        json!({}),
    ));
    Vec::new()
}

fn start_step(saga: &mut Saga, index: usize, now: i64, notes: &mut Notes) -> Vec<SagaTask> {
    saga.steps[index].state = StepState::Running;
    saga.state = SagaState::Running;
    notes.push((
        "StepScheduled",
        json!({"step": saga.steps[index].definition.name}),
    ));
    vec![new_task(saga, index, TaskKind::Action, 1, now, 0)]
}

/// Decide what a task's result does to the saga.
/// Observes the attempt of `task` that a stored transition (`applied`) recorded, once: after the
/// transition, not inside it, since its decision may be re-run on a concurrent update.
fn record_step_duration(applied: Option<&Saga>, task: &SagaTask, outcome: &'static str) {
    let attempt = applied
        .and_then(|saga| saga.steps.get(task.step_index))
        .and_then(|step| {
            step.attempts
                .iter()
                .rev()
                .find(|a| a.attempt == task.attempt && a.kind == task.kind)
        });
    if let Some(attempt) = attempt {
        let millis = attempt
            .finished_at_ms
            .saturating_sub(attempt.started_at_ms)
            .max(0);
        telemetry::saga_step_finished(task.kind.as_str(), outcome, millis as f64 / 1000.0);
    }
}

fn on_result(
    saga: &mut Saga,
    task: &SagaTask,
    result: &TaskResult,
    now: i64,
    notes: &mut Notes,
) -> Vec<SagaTask> {
    let index = task.step_index;
    let started = task
        .deadline_ms
        .map(|d| d.saturating_sub(i64::try_from(task.timeout_ms).unwrap_or(0)))
        .unwrap_or(now);
    let (error_type, error_message) = match result {
        TaskResult::Completed(_) => (None, None),
        TaskResult::Failed {
            error_type,
            message,
            ..
        } => (Some(error_type.clone()), Some(message.clone())),
    };
    saga.steps[index].attempts.push(StepAttempt {
        attempt: task.attempt,
        kind: task.kind,
        started_at_ms: started,
        finished_at_ms: now,
        error_type,
        error_message,
    });
    let step_name = saga.steps[index].definition.name.clone();
    let policy = saga.steps[index]
        .definition
        .retry
        .clone()
        .unwrap_or_else(|| saga.retry.clone());
    match (task.kind, result) {
        (TaskKind::Action, TaskResult::Completed(output)) => {
            saga.steps[index].state = StepState::Completed;
            saga.steps[index].output = Some(output.clone());
            notes.push((
                "StepCompleted",
                json!({"step": step_name, "attempt": task.attempt}),
            ));
            if saga.cancel_requested {
                compensate_from(saga, Some(index), now, notes)
            } else if index + 1 < saga.steps.len() {
                start_step(saga, index + 1, now, notes)
            } else {
                saga.state = SagaState::Completed;
                notes.push(("SagaCompleted", json!({})));
                Vec::new()
            }
        }
        (
            TaskKind::Action,
            TaskResult::Failed {
                error_type,
                message,
                non_retryable,
            },
        ) => {
            let retry = !non_retryable
                && !policy.non_retryable_errors.contains(error_type)
                && task.attempt < policy.maximum_attempts
                && !saga.cancel_requested;
            if retry {
                let delay = policy.delay_before(task.attempt + 1);
                notes.push((
                    "StepRetryScheduled",
                    json!({"step": step_name, "attempt": task.attempt + 1, "delay_ms": delay, "error_type": error_type}),
                ));
                return vec![new_task(
                    saga,
                    index,
                    TaskKind::Action,
                    task.attempt + 1,
                    now,
                    delay,
                )];
            }
            saga.steps[index].state = StepState::Failed;
            saga.error = Some(format!("step {step_name} failed: {error_type}: {message}"));
            notes.push((
                "StepFailed",
                json!({"step": step_name, "error_type": error_type, "message": message}),
            ));
            // From this step: it is undone too if an attempt may have run (see `needs_undo`).
            compensate_from(saga, Some(index), now, notes)
        }
        (TaskKind::Compensation, TaskResult::Completed(_)) => {
            saga.steps[index].state = StepState::Compensated;
            notes.push(("StepCompensated", json!({"step": step_name})));
            compensate_from(saga, index.checked_sub(1), now, notes)
        }
        (
            TaskKind::Compensation,
            TaskResult::Failed {
                error_type,
                message,
                non_retryable,
            },
        ) => {
            if !non_retryable && task.attempt < policy.maximum_attempts {
                let delay = policy.delay_before(task.attempt + 1);
                notes.push((
                    "CompensationRetryScheduled",
                    json!({"step": step_name, "attempt": task.attempt + 1, "delay_ms": delay}),
                ));
                return vec![new_task(
                    saga,
                    index,
                    TaskKind::Compensation,
                    task.attempt + 1,
                    now,
                    delay,
                )];
            }
            saga.steps[index].state = StepState::CompensationFailed;
            saga.state = SagaState::CompensationFailed;
            saga.error = Some(format!(
                "compensation of step {step_name} failed: {error_type}: {message}"
            ));
            notes.push((
                "SagaCompensationFailed",
                json!({"step": step_name, "error_type": error_type, "message": message}),
            ));
            Vec::new()
        }
    }
}

impl SagaManager {
    pub(crate) fn new(
        store: Arc<dyn SagaStore>,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        SagaManager {
            store,
            ready: Mutex::new(HashMap::new()),
            shutdown,
            feed_recheck_ms: AtomicU64::new(FEED_RECHECK.as_millis() as u64),
            claimed: Mutex::new(HashMap::new()),
        }
    }

    /// Remember a claimed task and its saga for the task's report (small sagas only).
    fn remember_claimed(&self, task: &SagaTask, saga: &Saga) {
        let size = saga.input.len()
            + saga
                .steps
                .iter()
                .map(|s| s.output.as_ref().map_or(0, String::len))
                .sum::<usize>();
        if size > CLAIMED_REMEMBERED_BYTES {
            return;
        }
        let mut claimed = self.claimed.lock().unwrap_or_else(|e| e.into_inner());
        if claimed.len() >= CLAIMED_REMEMBERED {
            claimed.clear();
        }
        claimed.insert(task.task_id.clone(), (task.clone(), saga.clone()));
    }

    /// The task and saga remembered at the task's claim, forgotten.
    fn take_claimed(&self, task_id: &str) -> Option<(SagaTask, Saga)> {
        self.claimed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(task_id)
    }

    /// How often an idle task feed re-checks its queue without being woken (default
    /// [`FEED_RECHECK`]). Tasks queued through this server wake a waiting feed at once; the
    /// re-check only matters for tasks queued through another replica. Feeds opened after the
    /// call use it.
    pub fn set_feed_recheck(&self, every: Duration) {
        let millis = u64::try_from(every.as_millis()).unwrap_or(u64::MAX).max(1);
        self.feed_recheck_ms.store(millis, Ordering::Relaxed);
    }

    /// A live feed of tasks for one worker: claims ready tasks of `service` whenever the worker
    /// holds fewer than `max_concurrent`, and waits for new ones otherwise. Ends when the receiver
    /// is dropped, or with an `Unavailable` error when the server shuts down. Tasks the worker
    /// never reports time out and go to another worker.
    pub fn task_feed(
        self: &Arc<Self>,
        service: &str,
        worker_id: &str,
        max_concurrent: usize,
    ) -> Result<tokio::sync::mpsc::Receiver<Result<ClaimedTask>>> {
        check_name("service", service, MAX_NAME_BYTES)?;
        check_name("worker_id", worker_id, 128)?;
        let (tx, rx) = tokio::sync::mpsc::channel(FEED_BUFFER);
        let (manager, service, worker_id) =
            (self.clone(), service.to_string(), worker_id.to_string());
        let max_concurrent = max_concurrent.clamp(1, 1000);
        let mut shutdown = self.shutdown.clone();
        let recheck = Duration::from_millis(self.feed_recheck_ms.load(Ordering::Relaxed));
        tokio::spawn(async move {
            loop {
                let claimed = match manager.claim(&service, &worker_id, max_concurrent).await {
                    Ok(claimed) => claimed,
                    Err(err) => {
                        let _ = tx.send(Err(err)).await;
                        return;
                    }
                };
                let idle = claimed.is_empty();
                for task in claimed {
                    if tx.send(Ok(task)).await.is_err() {
                        return; // the worker went away; its claimed tasks will time out
                    }
                }
                if !idle {
                    continue;
                }
                let stopping = tokio::select! {
                    _ = manager.wait_for_tasks(&service, recheck) => false,
                    _ = tx.closed() => return,
                    _ = shutdown.wait_for(|s| *s) => true,
                };
                if stopping {
                    let _ = tx
                        .send(Err(Error::unavailable("server is shutting down")))
                        .await;
                    return;
                }
            }
        });
        Ok(rx)
    }

    fn notifier(&self, service: &str) -> Arc<Notify> {
        let mut ready = self.ready.lock().unwrap_or_else(|p| p.into_inner());
        ready.entry(service.to_string()).or_default().clone()
    }

    fn announce(&self, tasks: &[SagaTask]) {
        for task in tasks {
            self.notifier(&task.service).notify_waiters();
        }
    }

    /// Start a saga (or return the one already started with the same idempotency key).
    #[tracing::instrument(level = "debug", name = "engine.sagas.start", skip_all, fields(saga_name = %request.name))]
    pub async fn start(&self, request: StartSaga) -> Result<Saga> {
        check_name("saga name", &request.name, MAX_NAME_BYTES)?;
        check_optional_name("idempotency_key", &request.idempotency_key, 128)?;
        if request.steps.is_empty() || request.steps.len() > MAX_STEPS {
            return Err(Error::invalid(format!(
                "a saga needs 1 to {MAX_STEPS} steps"
            )));
        }
        let input = if request.input.is_empty() {
            "{}".to_string()
        } else {
            request.input
        };
        check_json("input", &input)?;
        let retry = request.retry.unwrap_or_default();
        check_policy(&retry)?;
        let mut names = std::collections::HashSet::new();
        let mut steps = Vec::with_capacity(request.steps.len());
        for mut step in request.steps {
            check_name("step name", &step.name, MAX_NAME_BYTES)?;
            check_name("step service", &step.service, MAX_NAME_BYTES)?;
            check_name("step action", &step.action, MAX_NAME_BYTES)?;
            if let Some(compensation) = &step.compensation {
                check_name("step compensation", compensation, MAX_NAME_BYTES)?;
            }
            if !names.insert(step.name.clone()) {
                return Err(Error::invalid(format!(
                    "step name {:?} is used twice",
                    step.name
                )));
            }
            if step.timeout_ms == 0 {
                step.timeout_ms = DEFAULT_STEP_TIMEOUT_MS;
            }
            if step.timeout_ms > 86_400_000 {
                return Err(Error::invalid("step timeout must be at most 1 day"));
            }
            if let Some(policy) = &step.retry {
                check_policy(policy)?;
            }
            steps.push(SagaStep {
                definition: step,
                state: StepState::Pending,
                output: None,
                attempts: Vec::new(),
            });
        }
        let now = now_ms();
        let mut saga = Saga {
            saga_id: uuid::Uuid::now_v7().to_string(),
            name: request.name,
            state: SagaState::Pending,
            input,
            idempotency_key: (!request.idempotency_key.is_empty())
                .then_some(request.idempotency_key),
            retry,
            steps,
            created_at_ms: now,
            updated_at_ms: now,
            error: None,
            cancel_requested: false,
            revision: 1,
        };
        let mut notes: Notes = vec![("SagaStarted", json!({"name": saga.name}))];
        let tasks = start_step(&mut saga, 0, now, &mut notes);
        let audit = audit_events(&saga, notes);
        let stored = self.store.insert_saga(&saga, &tasks, &audit).await?;
        if stored.saga_id == saga.saga_id {
            telemetry::saga_transition(stored.state.as_str());
            telemetry::events_appended(audit.len());
            self.announce(&tasks);
        }
        Ok(stored)
    }

    /// A saga by id.
    #[tracing::instrument(level = "debug", name = "engine.sagas.get", skip_all, fields(saga_id = %saga_id))]
    pub async fn get(&self, saga_id: &str) -> Result<Saga> {
        check_name("saga_id", saga_id, 128)?;
        self.store
            .get_saga(saga_id)
            .await?
            .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("no saga {saga_id}")))
    }

    /// Sagas by state and/or name, newest first, one page at a time. A page token is a unique
    /// cursor, so paging returns every saga that existed before the first page exactly once.
    #[tracing::instrument(level = "debug", name = "engine.sagas.list", skip_all)]
    pub async fn list(&self, filter: SagaFilter) -> Result<SagaPage> {
        let limit = page_limit(filter.limit, 100, 1000)?;
        if let Some(name) = &filter.name {
            check_name("name", name, MAX_NAME_BYTES)?;
        }
        let after = match filter.page_token.as_deref() {
            None | Some("") => None,
            Some(token) => Some(
                SagaCursor::from_token(token)
                    .ok_or_else(|| Error::invalid("page_token is not one this server returned"))?,
            ),
        };
        // One more than asked: whether a next page exists is known, not guessed.
        let mut sagas = self
            .store
            .list_sagas(&SagaQuery {
                state: filter.state,
                name: filter.name,
                after,
                limit: limit + 1,
            })
            .await?;
        let next_page_token = if sagas.len() > limit {
            sagas.truncate(limit);
            sagas.last().map(|last| SagaCursor::after(last).to_token())
        } else {
            None
        };
        Ok(SagaPage {
            sagas,
            next_page_token,
        })
    }

    /// Load, decide, store (with the audit events, in one transaction); retried when the saga
    /// changed concurrently. `loaded`: the saga as just read by the caller, used for the first
    /// try instead of reading it again.
    async fn transition<F>(
        &self,
        saga_id: &str,
        mut loaded: Option<Saga>,
        consumed: Option<ConsumedTask>,
        decide: F,
    ) -> Result<Option<Saga>>
    where
        F: Fn(&mut Saga, i64, &mut Notes) -> Result<Option<Vec<SagaTask>>>,
    {
        for _ in 0..20 {
            let current = match loaded.take() {
                Some(saga) => saga,
                None => self.get(saga_id).await?,
            };
            let mut saga = current.clone();
            let now = now_ms();
            let mut notes = Notes::new();
            let Some(new_tasks) = decide(&mut saga, now, &mut notes)? else {
                return Ok(None);
            };
            saga.revision = current.revision + 1;
            saga.updated_at_ms = now;
            let audit = audit_events(&saga, notes);
            let transition = Transition {
                saga,
                expected_revision: current.revision,
                consumed_task: consumed.clone(),
                new_tasks,
                audit,
            };
            match self.store.apply(&transition).await? {
                TransitionOutcome::Stored => {
                    if transition.saga.state != current.state {
                        telemetry::saga_transition(transition.saga.state.as_str());
                    }
                    telemetry::events_appended(transition.audit.len());
                    self.announce(&transition.new_tasks);
                    return Ok(Some(transition.saga));
                }
                TransitionOutcome::StaleTask => return Ok(None),
                TransitionOutcome::Conflict => continue,
            }
        }
        Err(Error::unavailable(format!(
            "saga {saga_id} is changing too fast; retry"
        )))
    }

    /// Cancel: compensate what completed. An action already running is let finish first.
    #[tracing::instrument(level = "debug", name = "engine.sagas.cancel", skip_all, fields(saga_id = %saga_id))]
    pub async fn cancel(&self, saga_id: &str) -> Result<Saga> {
        check_name("saga_id", saga_id, 128)?;
        // A queued (unclaimed) action can be withdrawn right away.
        loop {
            let saga = self.get(saga_id).await?;
            if saga.state.is_final() || saga.cancel_requested {
                return Ok(saga);
            }
            let running = saga
                .steps
                .iter()
                .position(|s| s.state == StepState::Running);
            let queued = match running {
                Some(_) => self.store.unclaimed_task(saga_id).await?.map(|t| t.task_id),
                None => None,
            };
            let withdrawn = queued.clone();
            let consumed = queued.map(|task_id| ConsumedTask {
                task_id,
                unclaimed_only: true,
            });
            let observed_revision = saga.revision;
            let result = self
                .transition(saga_id, Some(saga), consumed, move |saga, now, notes| {
                    // `running` and `withdrawn` describe the saga as read above: if a step
                    // reported meanwhile (its next step may be queued now), decide again.
                    if saga.state.is_final()
                        || saga.cancel_requested
                        || saga.revision != observed_revision
                    {
                        return Ok(None);
                    }
                    saga.cancel_requested = true;
                    saga.error = Some("cancelled".into());
                    notes.push(("SagaCancelRequested", json!({})));
                    if saga.state == SagaState::Compensating {
                        return Ok(Some(Vec::new()));
                    }
                    match (running, &withdrawn) {
                        // The action is with a worker: compensate when it reports.
                        (Some(_), None) => Ok(Some(Vec::new())),
                        (Some(index), Some(_)) => {
                            // A queued retry is withdrawn; an earlier attempt that timed out may
                            // have run, and is then undone like a failed step.
                            saga.steps[index].state = if outcome_unknown(&saga.steps[index]) {
                                StepState::Failed
                            } else {
                                StepState::Pending
                            };
                            Ok(Some(compensate_from(saga, Some(index), now, notes)))
                        }
                        (None, _) => Ok(Some(compensate_from(
                            saga,
                            saga.steps.len().checked_sub(1),
                            now,
                            notes,
                        ))),
                    }
                })
                .await?;
            match result {
                Some(saga) => return Ok(saga),
                // The queued task was claimed, or the saga moved on, meanwhile: decide again.
                None => continue,
            }
        }
    }

    /// Claim up to `max_tasks - (tasks this worker already holds)` ready tasks of `service`.
    #[tracing::instrument(level = "debug", name = "engine.sagas.claim", skip_all)]
    pub async fn claim(
        &self,
        service: &str,
        worker_id: &str,
        max_tasks: usize,
    ) -> Result<Vec<ClaimedTask>> {
        check_name("service", service, MAX_NAME_BYTES)?;
        check_name("worker_id", worker_id, 128)?;
        let claimed = self
            .store
            .claim_with_sagas(service, worker_id, max_tasks.clamp(1, 1000), now_ms())
            .await?;
        Ok(claimed
            .into_iter()
            .map(|(task, saga)| {
                self.remember_claimed(&task, &saga);
                let outputs: serde_json::Map<String, serde_json::Value> = saga
                    .steps
                    .iter()
                    .filter_map(|s| {
                        let output = s.output.as_ref()?;
                        let value = serde_json::from_str(output).unwrap_or(serde_json::Value::Null);
                        Some((s.definition.name.clone(), value))
                    })
                    .collect();
                ClaimedTask {
                    task,
                    input: saga.input,
                    previous_outputs: serde_json::Value::Object(outputs).to_string(),
                }
            })
            .collect())
    }

    /// Wait until `service` may have ready tasks (a new task, or the next retry coming due),
    /// at most `max_wait`.
    pub async fn wait_for_tasks(&self, service: &str, max_wait: Duration) {
        let notifier = self.notifier(service);
        let notified = notifier.notified();
        tokio::pin!(notified);
        // Register before looking at the queue, so a task queued in between still wakes us.
        notified.as_mut().enable();
        // A task queued before we registered is seen here: it makes the wait zero.
        let wait = match self.store.next_visible(service).await {
            Ok(Some(at)) => {
                let delta = u64::try_from(at.saturating_sub(now_ms())).unwrap_or(0);
                Duration::from_millis(delta).min(max_wait)
            }
            _ => max_wait,
        };
        let _ = tokio::time::timeout(wait, notified).await;
    }

    /// A step runner reports a task's result. `Ok(false)` when the task is no longer assigned
    /// (it timed out and went to another worker, or was already reported).
    #[tracing::instrument(level = "debug", name = "engine.sagas.report", skip_all, fields(task_id = %task_id))]
    pub async fn report(&self, task_id: &str, result: TaskResult) -> Result<bool> {
        check_name("task_id", task_id, 128)?;
        let result = match result {
            TaskResult::Completed(output) if output.is_empty() => {
                TaskResult::Completed("null".into())
            }
            TaskResult::Completed(output) => {
                check_json("output", &output)?;
                TaskResult::Completed(output)
            }
            TaskResult::Failed {
                error_type,
                message,
                non_retryable,
            } => TaskResult::Failed {
                error_type: storable_error_type(&error_type),
                message: storable_text(&message, MAX_ERROR_MESSAGE_BYTES),
                non_retryable,
            },
        };
        // The task and saga as claimed through this replica, else as stored. A remembered pair
        // may be stale, and the transition's guards decide: a task that timed out meanwhile was
        // consumed (its redelivery is a new task), so the transition finds it gone (`false`); a
        // saga changed meanwhile (a cancel) fails the revision check and is read again.
        let remembered = self.take_claimed(task_id);
        let Some((task, saga)) = (match remembered {
            Some(pair) => Some(pair),
            None => self.store.get_task_with_saga(task_id).await?,
        }) else {
            return Ok(false);
        };
        if task.worker_id.is_none() {
            return Ok(false); // not claimed: nobody was asked to run it
        }
        let applied = self
            .transition(
                &task.saga_id.clone(),
                Some(saga),
                Some(ConsumedTask {
                    task_id: task_id.to_string(),
                    unclaimed_only: false,
                }),
                |saga, now, notes| Ok(Some(on_result(saga, &task, &result, now, notes))),
            )
            .await?;
        let outcome = match result {
            TaskResult::Completed(_) => "completed",
            TaskResult::Failed { .. } => "failed",
        };
        record_step_duration(applied.as_ref(), &task, outcome);
        // The worker has room again: its feed may claim the next task at once.
        self.notifier(&task.service).notify_waiters();
        Ok(applied.is_some())
    }

    /// Whether a task is still assigned (step runners call this as a heartbeat).
    #[tracing::instrument(level = "debug", name = "engine.sagas.heartbeat", skip_all, fields(task_id = %task_id))]
    pub async fn heartbeat(&self, task_id: &str) -> Result<bool> {
        check_name("task_id", task_id, 128)?;
        Ok(self
            .store
            .get_task(task_id)
            .await?
            .is_some_and(|t| t.worker_id.is_some()))
    }

    /// Fail every claimed task whose deadline passed (its worker died or hung); the retry policy
    /// decides what happens next. Returns how many were timed out.
    pub async fn sweep_timeouts(&self) -> Result<usize> {
        let expired = self.store.expired_tasks(now_ms(), 100).await?;
        let mut timed_out = 0;
        for task in expired {
            self.take_claimed(&task.task_id);
            let result = TaskResult::Failed {
                error_type: TIMEOUT_ERROR.into(),
                message: format!("no result within {} ms", task.timeout_ms),
                non_retryable: false,
            };
            let applied = self
                .transition(
                    &task.saga_id.clone(),
                    None,
                    Some(ConsumedTask {
                        task_id: task.task_id.clone(),
                        unclaimed_only: false,
                    }),
                    |saga, now, notes| Ok(Some(on_result(saga, &task, &result, now, notes))),
                )
                .await?;
            record_step_duration(applied.as_ref(), &task, "timed_out");
            if applied.is_some() {
                timed_out += 1;
            }
        }
        Ok(timed_out)
    }
}
