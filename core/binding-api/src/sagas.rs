//! [`Worker`]: a pulled saga step runner.

use std::sync::Arc;
use std::time::Duration;

use crate::records::{TaskOutcome, TaskRecord};
use crate::rt::{self, CoreTask};

/// A step runner for one service: [`Self::poll_task`] the next task, run it in the host,
/// [`Self::complete`] it. The core holds at most `max_concurrent` tasks at once, reopens the
/// task feed after failures, and reports a task failed (`timeout`) itself when the host does not
/// complete it within its timeout.
pub struct Worker {
    poller: Arc<syros_client::TaskPoller>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("worker_id", &self.worker_id())
            .finish()
    }
}

impl Worker {
    pub(crate) fn start(client: &syros_client::Client, service: String, max: usize) -> Worker {
        Worker {
            poller: Arc::new(syros_client::TaskPoller::start(client, service, max)),
        }
    }

    /// The id the server knows this worker by.
    pub fn worker_id(&self) -> String {
        self.poller.worker_id().to_string()
    }

    /// The next task, waiting up to `timeout_ms` (`None`: until one comes or the worker
    /// stops). `None` when the time passed or the worker stopped.
    pub fn poll_task(&self, timeout_ms: Option<u64>) -> CoreTask<Option<TaskRecord>> {
        let poller = self.poller.clone();
        rt::spawn(async move {
            let task = poller.poll(timeout_ms.map(Duration::from_millis)).await?;
            Ok(task.map(TaskRecord::from))
        })
    }

    /// Report a task's outcome; whether the server accepted it (false: it had timed out and
    /// was handed to another worker, or was already reported).
    pub fn complete(&self, task_id: String, outcome: TaskOutcome) -> CoreTask<bool> {
        let poller = self.poller.clone();
        rt::spawn(async move { Ok(poller.complete(&task_id, outcome.into()).await?) })
    }

    /// Whether the task is still assigned to this worker: a long handler can stop early.
    pub fn heartbeat(&self, task_id: String) -> CoreTask<bool> {
        let poller = self.poller.clone();
        rt::spawn(async move { Ok(poller.heartbeat(&task_id).await?) })
    }

    /// Tasks held now (handed out or buffered, not yet completed).
    pub fn outstanding(&self) -> u64 {
        u64::try_from(self.poller.outstanding()).unwrap_or(u64::MAX)
    }

    /// Stop taking tasks (idempotent, returns at once); pending polls return `None`.
    pub fn stop(&self) {
        self.poller.stop();
    }

    /// Stop, then wait until every task handed out has been completed (or timed out).
    pub fn stop_and_drain(&self) -> CoreTask<()> {
        let poller = self.poller.clone();
        rt::spawn(async move {
            poller.stop_and_drain().await;
            Ok(())
        })
    }
}
