//! Sagas from the client side: start, inspect and cancel sagas, and **step runners** (workers)
//! that execute a service's actions and compensations.
//!
//! A [`Worker`] keeps one task feed open to the server (reopened with backoff and failover when
//! it breaks), runs at most `max_concurrent` handlers at once on the client runtime, and reports
//! each result with retries. Handlers get a [`Task`] whose `idempotency_key` is the same for every
//! redelivery and retry of a step, so they can make at-least-once delivery harmless.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use syros_proto::syros::v1 as pb;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::{AbortHandle, JoinHandle};

use crate::client::{Client, Inner};
use crate::error::{Error, ErrorKind, Result};

/// Retry policy of a saga or one step (server-side retries of failed steps).
#[derive(Debug, Clone, PartialEq)]
pub struct StepRetryPolicy {
    /// Delay before the first retry.
    pub initial_interval: Duration,
    /// Growth of the delay per retry (at least 1).
    pub backoff_coefficient: f64,
    /// Largest delay between attempts.
    pub maximum_interval: Duration,
    /// Attempts in total, including the first.
    pub maximum_attempts: u32,
    /// Error types (as reported by handlers) that are never retried.
    pub non_retryable_errors: Vec<String>,
}

impl Default for StepRetryPolicy {
    /// 1 s, ×2, at most 60 s between attempts, 3 attempts (the server's defaults).
    fn default() -> Self {
        StepRetryPolicy {
            initial_interval: Duration::from_secs(1),
            backoff_coefficient: 2.0,
            maximum_interval: Duration::from_secs(60),
            maximum_attempts: 3,
            non_retryable_errors: Vec::new(),
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl StepRetryPolicy {
    fn to_pb(&self) -> pb::RetryPolicy {
        pb::RetryPolicy {
            initial_interval_ms: millis(self.initial_interval),
            backoff_coefficient: self.backoff_coefficient,
            maximum_interval_ms: millis(self.maximum_interval),
            maximum_attempts: self.maximum_attempts,
            non_retryable_errors: self
                .non_retryable_errors
                .iter()
                .map(|e| e.clone().into())
                .collect(),
        }
    }
}

/// One step of a saga.
#[derive(Debug, Clone, PartialEq)]
pub struct StepDefinition {
    /// Unique among the saga's steps.
    pub name: String,
    /// The queue (worker service) that runs it.
    pub service: String,
    /// The action handler name.
    pub action: String,
    /// `None`: nothing to undo.
    pub compensation: Option<String>,
    /// Start-to-close timeout of one attempt (whole seconds; zero = the server default, 30 s).
    pub timeout: Duration,
    /// Overrides the saga's policy.
    pub retry: Option<StepRetryPolicy>,
}

impl StepDefinition {
    /// A step `name` run by `service` with `action`, no compensation, default timeout.
    pub fn new(
        name: impl Into<String>,
        service: impl Into<String>,
        action: impl Into<String>,
    ) -> Self {
        StepDefinition {
            name: name.into(),
            service: service.into(),
            action: action.into(),
            compensation: None,
            timeout: Duration::ZERO,
            retry: None,
        }
    }

    /// The handler that undoes this step.
    pub fn compensation(mut self, handler: impl Into<String>) -> Self {
        self.compensation = Some(handler.into());
        self
    }

    /// Start-to-close timeout of one attempt.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Retry policy for this step only.
    pub fn retry(mut self, policy: StepRetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }
}

/// A saga to start.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StartSaga {
    /// The saga's name (a label for listing).
    pub name: String,
    /// The steps, run in order.
    pub steps: Vec<StepDefinition>,
    /// JSON handed to every step (empty = `{}`).
    pub input_json: String,
    /// Starting again with the same key returns the existing saga. When `None`, the client makes
    /// one per call so its own retries never start a saga twice.
    pub idempotency_key: Option<String>,
    /// The saga-wide retry policy (`None`: the server default).
    pub retry: Option<StepRetryPolicy>,
}

/// Where a saga is in its life: the one vocabulary (`syros-vocab`).
pub use syros_vocab::SagaState;

fn saga_state_from_pb(state: pb::SagaState) -> Result<SagaState> {
    Ok(match state {
        pb::SagaState::PENDING => SagaState::Pending,
        pb::SagaState::RUNNING => SagaState::Running,
        pb::SagaState::COMPENSATING => SagaState::Compensating,
        pb::SagaState::COMPLETED => SagaState::Completed,
        pb::SagaState::COMPENSATED => SagaState::Compensated,
        pb::SagaState::COMPENSATION_FAILED => SagaState::CompensationFailed,
        pb::SagaState::CANCELLED => SagaState::Cancelled,
        other => {
            return Err(Error::new(
                ErrorKind::Internal,
                format!("unknown saga state {}", other.inner()),
            ))
        }
    })
}

fn saga_state_to_pb(state: SagaState) -> pb::SagaState {
    match state {
        SagaState::Pending => pb::SagaState::PENDING,
        SagaState::Running => pb::SagaState::RUNNING,
        SagaState::Compensating => pb::SagaState::COMPENSATING,
        SagaState::Completed => pb::SagaState::COMPLETED,
        SagaState::Compensated => pb::SagaState::COMPENSATED,
        SagaState::CompensationFailed => pb::SagaState::COMPENSATION_FAILED,
        SagaState::Cancelled => pb::SagaState::CANCELLED,
    }
}

/// One attempt at a step's action or compensation.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptInfo {
    /// Attempt number, 1 for the first.
    pub attempt: u32,
    /// "action" or "compensation".
    pub kind: String,
    /// When the attempt started (ms since epoch).
    pub started_at_ms: i64,
    /// When it finished (ms since epoch).
    pub finished_at_ms: i64,
    /// The failure's type, if it failed.
    pub error_type: Option<String>,
    /// The failure's message, if it failed.
    pub error_message: Option<String>,
}

/// A step as the server reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct StepInfo {
    /// The step's name.
    pub name: String,
    /// The queue (worker service) that runs it.
    pub service: String,
    /// The action handler name.
    pub action: String,
    /// The compensation handler, if any.
    pub compensation: Option<String>,
    /// pending, running, completed, failed, compensating, compensated, compensation_failed.
    pub state: String,
    /// The action's output (JSON), once completed.
    pub output_json: Option<String>,
    /// Every attempt so far.
    pub attempts: Vec<AttemptInfo>,
}

/// A saga as the server reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct SagaInfo {
    /// The saga's id.
    pub saga_id: String,
    /// The saga's name.
    pub name: String,
    /// Where the saga is.
    pub state: SagaState,
    /// The JSON input handed to every step.
    pub input_json: String,
    /// The key the saga was started with.
    pub idempotency_key: Option<String>,
    /// The steps, run in order.
    pub steps: Vec<StepInfo>,
    /// When it was started (ms since epoch).
    pub created_at_ms: i64,
    /// When it last changed (ms since epoch).
    pub updated_at_ms: i64,
    /// Why it did not complete, if it did not.
    pub error: Option<String>,
}

fn non_empty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_string())
}

impl SagaInfo {
    fn from_pb(saga: pb::Saga) -> Result<SagaInfo> {
        Ok(SagaInfo {
            saga_id: saga.saga_id.to_string(),
            name: saga.name.to_string(),
            state: saga_state_from_pb(saga.state)?,
            input_json: saga.input_json.to_string(),
            idempotency_key: non_empty(&saga.idempotency_key),
            steps: saga
                .steps
                .into_iter()
                .map(|step| {
                    let definition = step.definition.unwrap_or_default();
                    StepInfo {
                        name: definition.name.to_string(),
                        service: definition.service.to_string(),
                        action: definition.action.to_string(),
                        compensation: non_empty(&definition.compensation),
                        state: step.state.to_string(),
                        output_json: non_empty(&step.output_json),
                        attempts: step
                            .attempts
                            .into_iter()
                            .map(|a| AttemptInfo {
                                attempt: a.attempt,
                                kind: a.kind.to_string(),
                                started_at_ms: a.started_at_ms,
                                finished_at_ms: a.finished_at_ms,
                                error_type: non_empty(&a.error_type),
                                error_message: non_empty(&a.error_message),
                            })
                            .collect(),
                    }
                })
                .collect(),
            created_at_ms: saga.created_at_ms,
            updated_at_ms: saga.updated_at_ms,
            error: non_empty(&saga.error),
        })
    }
}

/// One page of a saga listing; from [`Sagas::list_page`].
#[derive(Debug, Clone, PartialEq)]
pub struct SagaPage {
    /// Newest first.
    pub sagas: Vec<SagaInfo>,
    /// Pass to [`Sagas::list_page`] for the next page; `None` when no saga is left.
    pub next_page_token: Option<String>,
}

/// Saga operations; from [`Client::sagas`].
#[derive(Clone)]
pub struct Sagas {
    inner: Arc<Inner>,
}

impl Client {
    /// Start, inspect and cancel sagas.
    pub fn sagas(&self) -> Sagas {
        Sagas {
            inner: self.inner.clone(),
        }
    }

    /// A step runner for `service`: register handlers, then [`WorkerBuilder::start`].
    pub fn worker(&self, service: impl Into<String>) -> WorkerBuilder {
        WorkerBuilder {
            client: self.clone(),
            service: service.into(),
            handlers: HashMap::new(),
            max_concurrent: 16,
        }
    }
}

impl Sagas {
    /// Start a saga (retried safely: see [`StartSaga::idempotency_key`]).
    pub async fn start(&self, saga: StartSaga) -> Result<SagaInfo> {
        let inner = &self.inner;
        let key = saga
            .idempotency_key
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let request = pb::StartSagaRequest {
            name: saga.name.into(),
            steps: saga
                .steps
                .into_iter()
                .map(|s| pb::SagaStepDefinition {
                    name: s.name.into(),
                    service: s.service.into(),
                    action: s.action.into(),
                    compensation: s.compensation.unwrap_or_default().into(),
                    timeout_seconds: u32::try_from(s.timeout.as_secs()).unwrap_or(u32::MAX),
                    retry_policy: s.retry.as_ref().map(StepRetryPolicy::to_pb),
                })
                .collect(),
            input_json: saga.input_json.into(),
            idempotency_key: key.into(),
            retry_policy: saga.retry.as_ref().map(StepRetryPolicy::to_pb),
        };
        let spec = inner.spec("sagas.start", true);
        let saga = inner
            .run(&spec, |ep, timeout| {
                let request = inner.request(request.clone(), Some(timeout));
                async move { Ok(ep.sagas.start(request?).await?.into_inner()) }
            })
            .await
            .result?;
        SagaInfo::from_pb(saga)
    }

    /// A saga by id.
    pub async fn get(&self, saga_id: &str) -> Result<SagaInfo> {
        let inner = &self.inner;
        let spec = inner.spec("sagas.get", true);
        let saga = inner
            .run(&spec, |ep, timeout| {
                let request = inner.request(
                    pb::GetSagaRequest {
                        saga_id: saga_id.to_string().into(),
                    },
                    Some(timeout),
                );
                async move { Ok(ep.sagas.get(request?).await?.into_inner()) }
            })
            .await
            .result?;
        SagaInfo::from_pb(saga)
    }

    /// Sagas, newest first, optionally of one state and/or name (`limit` 0 = 100): the first page
    /// only; [`Sagas::list_page`] pages on.
    pub async fn list(
        &self,
        state: Option<SagaState>,
        name: Option<&str>,
        limit: u32,
    ) -> Result<Vec<SagaInfo>> {
        Ok(self.list_page(state, name, limit, None).await?.sagas)
    }

    /// One page of sagas, newest first, optionally of one state and/or name (`limit` 0 = 100).
    /// Pass the previous page's [`SagaPage::next_page_token`] as `page_token` for the next page;
    /// paging returns every saga that existed before the first page exactly once.
    pub async fn list_page(
        &self,
        state: Option<SagaState>,
        name: Option<&str>,
        limit: u32,
        page_token: Option<&str>,
    ) -> Result<SagaPage> {
        let inner = &self.inner;
        let spec = inner.spec("sagas.list", true);
        let request = pb::ListSagasRequest {
            state: state.map_or(pb::SagaState::SAGA_STATE_UNSPECIFIED, saga_state_to_pb),
            name: name.unwrap_or_default().to_string().into(),
            limit,
            page_token: page_token.unwrap_or_default().to_string().into(),
        };
        let listed = inner
            .run(&spec, |ep, timeout| {
                let request = inner.request(request.clone(), Some(timeout));
                async move { Ok(ep.sagas.list(request?).await?.into_inner()) }
            })
            .await
            .result?;
        Ok(SagaPage {
            sagas: listed
                .sagas
                .into_iter()
                .map(SagaInfo::from_pb)
                .collect::<Result<_>>()?,
            next_page_token: non_empty(&listed.next_page_token),
        })
    }

    /// Cancel a saga: what completed is compensated; it ends `cancelled`.
    pub async fn cancel(&self, saga_id: &str) -> Result<SagaInfo> {
        let inner = &self.inner;
        let spec = inner.spec("sagas.cancel", true);
        let saga = inner
            .run(&spec, |ep, timeout| {
                let request = inner.request(
                    pb::CancelSagaRequest {
                        saga_id: saga_id.to_string().into(),
                    },
                    Some(timeout),
                );
                async move { Ok(ep.sagas.cancel(request?).await?.into_inner()) }
            })
            .await
            .result?;
        SagaInfo::from_pb(saga)
    }

    /// Wait until the saga is final, at most `timeout`. Follows the saga's audit stream from
    /// its start (a server stores each transition and its audit event in one transaction, and
    /// every audit event carries the saga's `state` after its transition) and reads the saga only
    /// when an event reports a final state: one read per saga, at its end. It also reads the saga
    /// after [`WAIT_RECHECK`] without such an event (an older server appended audit events after
    /// the transition, and could crash in between), and after [`WAIT_FIRST_EVENT`] when the stream
    /// has delivered nothing yet: a saga's first audit event is stored with the saga, so an empty
    /// stream means an unknown saga (answered `NotFound`) or a slow catch-up (one extra read).
    pub async fn wait(&self, saga_id: &str, timeout: Duration) -> Result<SagaInfo> {
        let deadline = tokio::time::Instant::now() + timeout;
        let events = Client {
            inner: self.inner.clone(),
        }
        .events();
        let mut audit = Some(
            events
                .subscribe(&format!("saga-{saga_id}"), crate::SubscribeFrom::Start)
                .await?,
        );
        // Whether the saga is known to exist (its stream delivered an event, or it was read).
        let mut known = false;
        loop {
            let quiet = if known {
                WAIT_RECHECK
            } else {
                WAIT_FIRST_EVENT
            };
            let mut recheck = (tokio::time::Instant::now() + quiet).min(deadline);
            match audit.as_mut() {
                // Events of transitions to non-final states are skipped without a read.
                Some(stream) => loop {
                    match tokio::time::timeout_at(recheck, stream.next()).await {
                        Ok(Some(Err(err))) => return Err(err),
                        // The stream ended: keep re-reading the saga.
                        Ok(None) => {
                            audit = None;
                            break;
                        }
                        Ok(Some(Ok(event))) if !reports_final_state(&event) => {
                            if !known {
                                // The saga exists: from now on only a quiet stream is re-checked.
                                known = true;
                                recheck =
                                    (tokio::time::Instant::now() + WAIT_RECHECK).min(deadline);
                            }
                        }
                        Ok(Some(Ok(_))) | Err(_) => break,
                    }
                },
                None => tokio::time::sleep_until(recheck).await,
            }
            let saga = self.get(saga_id).await?;
            known = true;
            if saga.state.is_final() {
                return Ok(saga);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::new(
                    ErrorKind::DeadlineExceeded,
                    format!(
                        "saga {saga_id} is still {} after {timeout:?}",
                        saga.state.as_str()
                    ),
                ));
            }
        }
    }
}

/// Whether a saga audit event says the saga reached a final state. An event whose `state` is
/// missing or unreadable counts as final, so the caller re-reads the saga rather than miss its end.
fn reports_final_state(event: &crate::RecordedEvent) -> bool {
    let data: Option<serde_json::Value> = serde_json::from_str(&event.data_json).ok();
    data.as_ref()
        .and_then(|data| data.get("state")?.as_str())
        .and_then(SagaState::parse)
        .is_none_or(SagaState::is_final)
}

/// How often [`Sagas::wait`] re-reads the saga when its audit stream is quiet.
pub const WAIT_RECHECK: Duration = Duration::from_secs(1);

/// How long [`Sagas::wait`] waits for the audit stream's first event before reading the saga (an
/// unknown saga's stream is empty: it is answered `NotFound` after this, not after
/// [`WAIT_RECHECK`]).
pub const WAIT_FIRST_EVENT: Duration = Duration::from_millis(100);

/// What a handler is asked to do.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// The task's id (for reports).
    pub task_id: String,
    /// The saga this task belongs to.
    pub saga_id: String,
    /// The step this task runs.
    pub step_name: String,
    /// The action or compensation name.
    pub handler: String,
    /// True for a compensation.
    pub is_compensation: bool,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// `<saga_id>/<step>/<action|compensation>`: the same for every redelivery and retry.
    pub idempotency_key: String,
    /// The saga's input (JSON).
    pub input_json: String,
    /// Outputs of completed steps by step name (a JSON object).
    pub previous_outputs_json: String,
    /// The server times the attempt out after this.
    pub timeout: Duration,
}

/// A handler's failure.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskFailure {
    /// Matched against the policy's `non_retryable_errors`.
    pub error_type: String,
    /// Human-readable message.
    pub message: String,
    /// Never retry, whatever the policy says.
    pub non_retryable: bool,
}

impl TaskFailure {
    /// A failure the policy may retry.
    pub fn retryable(error_type: impl Into<String>, message: impl Into<String>) -> Self {
        TaskFailure {
            error_type: error_type.into(),
            message: message.into(),
            non_retryable: false,
        }
    }

    /// A failure that is never retried (the saga compensates at once).
    pub fn fatal(error_type: impl Into<String>, message: impl Into<String>) -> Self {
        TaskFailure {
            error_type: error_type.into(),
            message: message.into(),
            non_retryable: true,
        }
    }
}

/// A handler's result: output JSON, or a failure.
pub type HandlerResult = std::result::Result<String, TaskFailure>;
/// A registered handler.
pub type Handler = Arc<dyn Fn(Task) -> BoxFuture<'static, HandlerResult> + Send + Sync>;

/// A step runner's task feed, pulled: [`TaskPoller::poll`] hands out the next task of the
/// service's queue, [`TaskPoller::complete`] reports its result, [`TaskPoller::heartbeat`] asks
/// whether it is still assigned. This is what language bindings use (the host is never called
/// back from a Rust thread); [`Worker`] runs Rust handlers on top of it.
///
/// The poller keeps one feed open to the server (reopened with backoff and failover when it
/// breaks) and holds at most `max_concurrent` tasks at once, handed out or not: the next one is
/// only read from the feed once a slot is free. A task that is not completed within its timeout
/// is reported failed (`timeout`, retryable) by the poller itself, so a host that forgets a task
/// cannot hold its slot forever; a later `complete` of that task is then not accepted.
pub struct TaskPoller {
    inner: Arc<Inner>,
    worker_id: String,
    max_concurrent: usize,
    tasks: tokio::sync::Mutex<mpsc::Receiver<Task>>,
    /// Tasks handed out (or waiting to be) and not yet reported: slot permit and timeout guard.
    outstanding: Arc<std::sync::Mutex<HashMap<String, Outstanding>>>,
    slots: Arc<Semaphore>,
    stop: watch::Sender<bool>,
    feed: std::sync::Mutex<Option<JoinHandle<()>>>,
}

struct Outstanding {
    _slot: OwnedSemaphorePermit,
    deadline: AbortHandle,
}

impl std::fmt::Debug for TaskPoller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskPoller")
            .field("worker_id", &self.worker_id)
            .field("max_concurrent", &self.max_concurrent)
            .finish()
    }
}

impl TaskPoller {
    /// Start receiving tasks of `service`'s queue, at most `max_concurrent` at once (at least 1).
    pub fn start(client: &Client, service: impl Into<String>, max_concurrent: usize) -> Self {
        let max_concurrent = max_concurrent.max(1);
        let worker_id = format!("{}-{}", client.owner(), uuid::Uuid::new_v4().simple());
        let (stop, stopped) = watch::channel(false);
        let (tx, rx) = mpsc::channel(max_concurrent);
        let slots = Arc::new(Semaphore::new(max_concurrent));
        let outstanding = Arc::new(std::sync::Mutex::new(HashMap::new()));
        let feed = FeedLoop {
            inner: client.inner.clone(),
            service: service.into(),
            worker_id: worker_id.clone(),
            max_concurrent,
            slots: slots.clone(),
            outstanding: outstanding.clone(),
            tx,
        };
        let task = client.inner.handle.spawn(feed.run(stopped));
        TaskPoller {
            inner: client.inner.clone(),
            worker_id,
            max_concurrent,
            tasks: tokio::sync::Mutex::new(rx),
            outstanding,
            slots,
            stop,
            feed: std::sync::Mutex::new(Some(task)),
        }
    }

    /// The id the server knows this worker by.
    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// The next task, waiting up to `timeout` (`None`: until one comes or the poller stops).
    /// `Ok(None)` when the time passed or the poller was stopped.
    pub async fn poll(&self, timeout: Option<Duration>) -> Result<Option<Task>> {
        let mut stopped = self.stop.subscribe();
        let next = async {
            let mut tasks = self.tasks.lock().await;
            tasks.recv().await
        };
        let limit = async {
            match timeout {
                Some(limit) => tokio::time::sleep(limit).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            task = next => Ok(task),
            _ = limit => Ok(None),
            _ = stopped.wait_for(|s| *s) => Ok(None),
        }
    }

    /// Report a task's result (output JSON, or a failure) and free its slot. Returns whether the
    /// server accepted it (false: the task timed out and was handed to someone else, or was
    /// already reported). Reports are retried: reporting twice is harmless.
    pub async fn complete(&self, task_id: &str, result: HandlerResult) -> Result<bool> {
        let held = take_outstanding(&self.outstanding, task_id);
        let accepted = report(&self.inner, task_id, result).await;
        // The slot frees once the report is done (or failed: the server times the task out).
        drop(held);
        accepted
    }

    /// Whether the task is still assigned to this worker (false once it timed out or was
    /// reported): a long handler can stop early.
    pub async fn heartbeat(&self, task_id: &str) -> Result<bool> {
        let inner = &self.inner;
        let spec = inner.spec("sagas.heartbeat", true);
        let ack = inner
            .run(&spec, |ep, timeout| {
                let request = inner.request(
                    pb::HeartbeatTaskRequest {
                        task_id: task_id.to_string().into(),
                    },
                    Some(timeout),
                );
                async move { Ok(ep.sagas.heartbeat_task(request?).await?.into_inner()) }
            })
            .await
            .result?;
        Ok(ack.accepted)
    }

    /// Tasks held now (handed out or buffered, not yet reported).
    pub fn outstanding(&self) -> usize {
        lock_outstanding(&self.outstanding).len()
    }

    /// Stop taking tasks (idempotent): pending and later polls return `Ok(None)`. Tasks already
    /// handed out can still be completed; tasks received but never handed out are left to the
    /// server, which hands them out again after their timeout.
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// [`Self::stop`], then wait until every task handed out has been reported (or timed out).
    pub async fn stop_and_drain(&self) {
        self.stop();
        let feed = self.feed.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(feed) = feed {
            let _ = feed.await;
        }
        // Buffered tasks were never handed out: let them go (the server redelivers them).
        {
            let mut tasks = self.tasks.lock().await;
            while let Ok(task) = tasks.try_recv() {
                drop(take_outstanding(&self.outstanding, &task.task_id));
            }
        }
        let _ = self
            .slots
            .acquire_many(u32::try_from(self.max_concurrent).unwrap_or(u32::MAX))
            .await;
    }
}

impl Drop for TaskPoller {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

fn lock_outstanding(
    outstanding: &std::sync::Mutex<HashMap<String, Outstanding>>,
) -> std::sync::MutexGuard<'_, HashMap<String, Outstanding>> {
    outstanding.lock().unwrap_or_else(|p| p.into_inner())
}

/// Forget a task: stop its timeout guard; the returned entry holds its slot until dropped.
fn take_outstanding(
    outstanding: &std::sync::Mutex<HashMap<String, Outstanding>>,
    task_id: &str,
) -> Option<Outstanding> {
    let entry = lock_outstanding(outstanding).remove(task_id);
    if let Some(entry) = &entry {
        entry.deadline.abort();
    }
    entry
}

/// Reads the task feed into the poller's buffer, one task per free slot.
struct FeedLoop {
    inner: Arc<Inner>,
    service: String,
    worker_id: String,
    max_concurrent: usize,
    slots: Arc<Semaphore>,
    outstanding: Arc<std::sync::Mutex<HashMap<String, Outstanding>>>,
    tx: mpsc::Sender<Task>,
}

impl FeedLoop {
    async fn run(self, mut stopped: watch::Receiver<bool>) {
        let policy = self.inner.options.resubscribe.clone();
        let mut failures: u32 = 0;
        while !*stopped.borrow() {
            match self.open().await {
                Ok(mut feed) => loop {
                    // A slot first: never read more tasks than we may hold.
                    let slot = tokio::select! {
                        slot = self.slots.clone().acquire_owned() => slot,
                        _ = stopped.wait_for(|s| *s) => break,
                    };
                    let Ok(slot) = slot else { return };
                    let next = tokio::select! {
                        next = feed.next() => next,
                        _ = stopped.wait_for(|s| *s) => break,
                    };
                    match next {
                        Some(Ok(task)) => {
                            failures = 0;
                            self.accept(task_from_pb(task), slot);
                        }
                        Some(Err(status)) => {
                            tracing::debug!(error = %Error::from_status(&status, "sagas.poll"), "task feed broke");
                            break;
                        }
                        None => break,
                    }
                },
                Err(err) => {
                    tracing::debug!(error = %err, service = %self.service, "cannot open the task feed")
                }
            }
            if *stopped.borrow() {
                break;
            }
            failures = failures.saturating_add(1);
            let pause = policy.backoff(failures.saturating_sub(1));
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stopped.wait_for(|s| *s) => break,
            }
        }
    }

    /// Hold `task` in its slot, arm its timeout, and buffer it for `poll`.
    fn accept(&self, task: Task, slot: OwnedSemaphorePermit) {
        let task_id = task.task_id.clone();
        let limit = task.timeout;
        let inner = self.inner.clone();
        let outstanding = self.outstanding.clone();
        let guard_id = task_id.clone();
        // Armed before the entry exists; it only acts on an entry it can still take.
        let deadline = self.inner.handle.spawn(async move {
            if limit.is_zero() {
                // No timeout given: the server's own timeout is the only one.
                return std::future::pending().await;
            }
            tokio::time::sleep(limit).await;
            if let Some(held) = take_outstanding_quiet(&outstanding, &guard_id) {
                let failure = Err(TaskFailure::retryable(
                    "timeout",
                    format!("the handler ran over {limit:?}"),
                ));
                if let Err(err) = report(&inner, &guard_id, failure).await {
                    tracing::warn!(task_id = %guard_id, error = %err, "could not report a timed-out task");
                }
                drop(held);
            }
        });
        lock_outstanding(&self.outstanding).insert(
            task_id,
            Outstanding {
                _slot: slot,
                deadline: deadline.abort_handle(),
            },
        );
        if self.tx.try_send(task).is_err() {
            // Cannot happen (one buffered task per slot, and the poller owns the receiver while
            // this loop runs); if it did, the server would redeliver after the timeout.
            tracing::warn!("task buffer full; task left to time out");
        }
    }

    async fn open(
        &self,
    ) -> Result<
        futures::stream::BoxStream<'static, std::result::Result<pb::StepTask, volo_grpc::Status>>,
    > {
        let inner = &self.inner;
        let spec = inner.spec("sagas.poll", true);
        let request = pb::PollTasksRequest {
            service: self.service.clone().into(),
            worker_id: self.worker_id.clone().into(),
            max_concurrent: u32::try_from(self.max_concurrent).unwrap_or(u32::MAX),
        };
        inner
            .run(&spec, |ep, _timeout| {
                let request = inner.request(request.clone(), None);
                async move { Ok(ep.sagas.poll_tasks(request?).await?.into_inner().boxed()) }
            })
            .await
            .result
    }
}

/// Like [`take_outstanding`] without aborting the guard (called from the guard itself).
fn take_outstanding_quiet(
    outstanding: &std::sync::Mutex<HashMap<String, Outstanding>>,
    task_id: &str,
) -> Option<Outstanding> {
    lock_outstanding(outstanding).remove(task_id)
}

fn task_from_pb(task: pb::StepTask) -> Task {
    Task {
        task_id: task.task_id.to_string(),
        saga_id: task.saga_id.to_string(),
        step_name: task.step_name.to_string(),
        handler: task.handler.to_string(),
        is_compensation: task.kind.as_str() == "compensation",
        attempt: task.attempt,
        idempotency_key: task.idempotency_key.to_string(),
        input_json: task.input_json.to_string(),
        previous_outputs_json: task.previous_outputs_json.to_string(),
        timeout: Duration::from_millis(task.start_to_close_timeout_ms),
    }
}

/// Configures a [`Worker`].
pub struct WorkerBuilder {
    client: Client,
    service: String,
    handlers: HashMap<String, Handler>,
    max_concurrent: usize,
}

impl WorkerBuilder {
    /// Register the handler for an action or compensation `name` of this service.
    pub fn handler<F, Fut>(mut self, name: impl Into<String>, f: F) -> Self
    where
        F: Fn(Task) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        self.handlers
            .insert(name.into(), Arc::new(move |task| f(task).boxed()));
        self
    }

    /// Register an already boxed handler.
    pub fn boxed_handler(mut self, name: impl Into<String>, handler: Handler) -> Self {
        self.handlers.insert(name.into(), handler);
        self
    }

    /// How many handlers run at once (default 16).
    pub fn max_concurrent(mut self, n: usize) -> Self {
        self.max_concurrent = n.max(1);
        self
    }

    /// Start taking tasks, on the client's runtime.
    pub fn start(self) -> Result<Worker> {
        if self.handlers.is_empty() {
            return Err(Error::invalid("a worker needs at least one handler"));
        }
        let poller = Arc::new(TaskPoller::start(
            &self.client,
            self.service,
            self.max_concurrent,
        ));
        let worker_id = poller.worker_id().to_string();
        let run = run_handlers(poller.clone(), Arc::new(self.handlers));
        let task = self.client.inner.handle.spawn(run);
        Ok(Worker {
            worker_id,
            poller,
            task: Some(task),
        })
    }
}

/// A running step runner: a [`TaskPoller`] whose tasks run Rust handlers. Dropping it stops
/// taking new tasks (handlers already running finish).
pub struct Worker {
    worker_id: String,
    poller: Arc<TaskPoller>,
    task: Option<JoinHandle<()>>,
}

impl Worker {
    /// The id the server knows this worker by.
    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// Stop taking tasks and wait until the handlers running now have reported.
    pub async fn stop(mut self) {
        self.poller.stop();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.poller.stop_and_drain().await;
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.poller.stop();
    }
}

/// Poll tasks and run each on its own tokio task, until the poller stops. The poller bounds how
/// many run at once and times them out; this only runs handlers and catches their panics.
async fn run_handlers(poller: Arc<TaskPoller>, handlers: Arc<HashMap<String, Handler>>) {
    while let Ok(Some(task)) = poller.poll(None).await {
        let poller = poller.clone();
        let handler = handlers.get(task.handler.as_str()).cloned();
        tokio::spawn(async move {
            let task_id = task.task_id.clone();
            let result = match handler {
                None => Err(TaskFailure::fatal(
                    "unknown_handler",
                    format!("this worker has no handler named {:?}", task.handler),
                )),
                Some(handler) => {
                    // Cancel the handler at its timeout (the poller reports the timeout too;
                    // whichever report comes second is not accepted).
                    let limit = task.timeout;
                    let run = AssertUnwindSafe(handler(task)).catch_unwind();
                    match tokio::time::timeout(limit, run).await {
                        Ok(Ok(result)) => result,
                        Ok(Err(_)) => Err(TaskFailure::retryable("panic", "the handler panicked")),
                        Err(_) => Err(TaskFailure::retryable(
                            "timeout",
                            format!("the handler ran over {limit:?}"),
                        )),
                    }
                }
            };
            if let Err(err) = poller.complete(&task_id, result).await {
                // The server will time the task out and hand it out again.
                tracing::warn!(task_id, error = %err, "could not report a task result");
            }
        });
    }
}

/// Report a result; retried, since reporting twice is harmless (the second is not accepted).
async fn report(inner: &Inner, task_id: &str, result: HandlerResult) -> Result<bool> {
    let spec = inner.spec("sagas.report", true);
    let ack = match result {
        Ok(output) => {
            inner
                .run(&spec, |ep, timeout| {
                    let request = inner.request(
                        pb::CompleteTaskRequest {
                            task_id: task_id.to_string().into(),
                            output_json: output.clone().into(),
                        },
                        Some(timeout),
                    );
                    async move { Ok(ep.sagas.complete_task(request?).await?.into_inner()) }
                })
                .await
                .result?
        }
        Err(failure) => {
            inner
                .run(&spec, |ep, timeout| {
                    let request = inner.request(
                        pb::FailTaskRequest {
                            task_id: task_id.to_string().into(),
                            error_type: failure.error_type.clone().into(),
                            error_message: failure.message.clone().into(),
                            non_retryable: failure.non_retryable,
                        },
                        Some(timeout),
                    );
                    async move { Ok(ep.sagas.fail_task(request?).await?.into_inner()) }
                })
                .await
                .result?
        }
    };
    Ok(ack.accepted)
}
