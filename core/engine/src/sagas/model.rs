//! Saga documents and tasks as stored. Serialised as JSON inside the store, so adding a field
//! needs no migration.

use serde::{Deserialize, Serialize};

/// Retry policy for a saga or one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    pub initial_interval_ms: u64,
    pub backoff_coefficient: f64,
    pub maximum_interval_ms: u64,
    /// Total attempts including the first; 1 = no retry.
    pub maximum_attempts: u32,
    /// Error types (as reported by handlers) that are never retried.
    pub non_retryable_errors: Vec<String>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial_interval_ms: 1_000,
            backoff_coefficient: 2.0,
            maximum_interval_ms: 60_000,
            maximum_attempts: 3,
            non_retryable_errors: Vec::new(),
        }
    }
}

impl RetryPolicy {
    /// Delay before attempt `next_attempt` (2 = the first retry).
    pub fn delay_before(&self, next_attempt: u32) -> u64 {
        let exponent = next_attempt.saturating_sub(2).min(64) as i32;
        let delay = self.initial_interval_ms as f64 * self.backoff_coefficient.powi(exponent);
        if delay.is_finite() {
            (delay as u64).min(self.maximum_interval_ms)
        } else {
            self.maximum_interval_ms
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepDefinition {
    pub name: String,
    pub service: String,
    pub action: String,
    /// `None`: the step needs no compensation.
    pub compensation: Option<String>,
    /// Start-to-close timeout of one attempt.
    pub timeout_ms: u64,
    /// Overrides the saga's policy for this step.
    pub retry: Option<RetryPolicy>,
}

/// Where a saga is in its life: the one vocabulary (`syros-vocab`), stored by its snake_case name.
pub use syros_vocab::SagaState;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    Pending,
    Running,
    Completed,
    Failed,
    Compensating,
    Compensated,
    CompensationFailed,
}

impl StepState {
    pub fn as_str(self) -> &'static str {
        match self {
            StepState::Pending => "pending",
            StepState::Running => "running",
            StepState::Completed => "completed",
            StepState::Failed => "failed",
            StepState::Compensating => "compensating",
            StepState::Compensated => "compensated",
            StepState::CompensationFailed => "compensation_failed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    Action,
    Compensation,
}

impl TaskKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::Action => "action",
            TaskKind::Compensation => "compensation",
        }
    }
}

/// One attempt to run a step's action or compensation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepAttempt {
    pub attempt: u32,
    pub kind: TaskKind,
    pub started_at_ms: i64,
    /// 0 while running.
    pub finished_at_ms: i64,
    pub error_type: Option<String>,
    pub error_message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SagaStep {
    pub definition: StepDefinition,
    pub state: StepState,
    /// JSON output of the action, once completed.
    pub output: Option<String>,
    pub attempts: Vec<StepAttempt>,
}

/// A saga and everything that happened to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Saga {
    pub saga_id: String,
    pub name: String,
    pub state: SagaState,
    /// JSON input handed to every step.
    pub input: String,
    pub idempotency_key: Option<String>,
    pub retry: RetryPolicy,
    pub steps: Vec<SagaStep>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// Why the saga did not complete, if it did not.
    pub error: Option<String>,
    /// Set by cancel while an action is running: compensate once it reports.
    pub cancel_requested: bool,
    /// Optimistic concurrency: every stored transition increments it.
    pub revision: u64,
}

/// Work for a step runner: run one action or compensation of one saga step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SagaTask {
    pub task_id: String,
    pub saga_id: String,
    pub step_index: usize,
    pub step_name: String,
    pub service: String,
    /// The action or compensation name.
    pub handler: String,
    pub kind: TaskKind,
    pub attempt: u32,
    /// Not delivered before this time (retry backoff).
    pub visible_at_ms: i64,
    pub timeout_ms: u64,
    /// While claimed: the worker and when the attempt times out.
    pub worker_id: Option<String>,
    pub deadline_ms: Option<i64>,
}

impl SagaTask {
    /// Stable across redeliveries and retries of the same step and kind.
    pub fn idempotency_key(&self) -> String {
        format!("{}/{}/{}", self.saga_id, self.step_name, self.kind.as_str())
    }
}

/// Filter for listing sagas, newest first.
#[derive(Debug, Clone, Default)]
pub struct SagaFilter {
    pub state: Option<SagaState>,
    pub name: Option<String>,
    /// A previous page's [`SagaPage::next_page_token`]; `None` or empty = the first page.
    pub page_token: Option<String>,
    /// 0 = 100; at most 1000.
    pub limit: usize,
}

/// One page of a saga listing.
#[derive(Debug, Clone, Default)]
pub struct SagaPage {
    /// Newest first.
    pub sagas: Vec<Saga>,
    /// Fetches the next page; `None` when no saga is left after this page.
    pub next_page_token: Option<String>,
}

/// A position in the listing order (`created_at_ms` descending, then `saga_id` descending):
/// unique per saga, so a page boundary between sagas of the same millisecond loses nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SagaCursor {
    pub created_at_ms: i64,
    pub saga_id: String,
}

const CURSOR_PREFIX: &str = "c1.";

impl SagaCursor {
    /// The cursor just after `saga` in the listing order.
    pub fn after(saga: &Saga) -> Self {
        SagaCursor {
            created_at_ms: saga.created_at_ms,
            saga_id: saga.saga_id.clone(),
        }
    }

    /// The opaque page token clients pass back.
    pub fn to_token(&self) -> String {
        format!("{CURSOR_PREFIX}{}.{}", self.created_at_ms, self.saga_id)
    }

    /// Parse a page token; `None` if this server could not have issued it.
    pub fn from_token(token: &str) -> Option<Self> {
        let (millis, saga_id) = token.strip_prefix(CURSOR_PREFIX)?.split_once('.')?;
        let created_at_ms = millis.parse::<i64>().ok()?;
        let well_formed = !saga_id.is_empty()
            && saga_id.len() <= 128
            && saga_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-');
        well_formed.then(|| SagaCursor {
            created_at_ms,
            saga_id: saga_id.to_string(),
        })
    }
}

/// What a store lists: sagas strictly after `after` in the listing order.
#[derive(Debug, Clone, Default)]
pub struct SagaQuery {
    pub state: Option<SagaState>,
    pub name: Option<String>,
    pub after: Option<SagaCursor>,
    pub limit: usize,
}

/// A task a transition removes from the queue.
#[derive(Debug, Clone)]
pub struct ConsumedTask {
    pub task_id: String,
    /// Only if no worker has claimed it (cancel withdraws queued work only).
    pub unclaimed_only: bool,
}

/// One atomic change: the new saga document (its `revision` already incremented), stored only if
/// the saga is still at `expected_revision`; the task it consumes, which must still exist; and
/// the tasks it creates; and its audit events, appended to the saga's [`audit_stream`] in the
/// same transaction (so the stream shows exactly the transitions that were stored).
#[derive(Debug, Clone)]
pub struct Transition {
    pub saga: Saga,
    pub expected_revision: u64,
    pub consumed_task: Option<ConsumedTask>,
    pub new_tasks: Vec<SagaTask>,
    pub audit: Vec<crate::model::NewEvent>,
}

/// The event stream a saga's transitions are recorded on: `saga-<id>`.
pub fn audit_stream(saga_id: &str) -> String {
    format!("saga-{saga_id}")
}

/// Why a transition was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransitionOutcome {
    Stored,
    /// The saga changed meanwhile: reload and decide again.
    Conflict,
    /// The consumed task is gone or claimed by someone else (timed out and redelivered).
    StaleTask,
}
