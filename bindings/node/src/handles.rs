//! The objects a client hands out: [`Lease`], [`Subscription`], [`Worker`], [`ComputeTicket`].

use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use syros_binding_api as api;

use crate::records::{LeaseInfo, SubscriptionItem, TaskOutcome, TaskRecord};
use crate::{js, non_negative, token, wait, CancelToken};

fn limit(timeout_ms: Option<i64>) -> Result<Option<u64>> {
    timeout_ms.map(|t| non_negative("timeout", t)).transpose()
}

/// A held lock, renewed by the client core until released or lost.
#[napi]
pub struct Lease {
    pub(crate) inner: Arc<api::Lease>,
}

#[napi]
impl Lease {
    /// The lease as last granted or renewed.
    #[napi(getter)]
    pub fn info(&self) -> LeaseInfo {
        self.inner.info().into()
    }

    /// The TTL it was acquired with.
    #[napi(getter)]
    pub fn ttl_ms(&self) -> i64 {
        crate::number(self.inner.ttl_ms())
    }

    /// Whether it was lost.
    #[napi(getter)]
    pub fn lost(&self) -> bool {
        self.inner.is_lost()
    }

    /// Neither released nor lost.
    #[napi(getter)]
    pub fn held(&self) -> bool {
        self.inner.is_held()
    }

    /// Release it (idempotent).
    #[napi]
    pub async fn release(&self) -> Result<()> {
        js(self.inner.release().await)
    }

    /// Extend it now.
    #[napi]
    pub async fn renew(&self) -> Result<LeaseInfo> {
        js(self.inner.renew().await).map(Into::into)
    }

    /// Wait until it is `lost` or `released`, at most `timeout_ms` (then `timed_out`).
    #[napi]
    pub async fn wait_end(
        &self,
        timeout_ms: Option<i64>,
        cancel: Option<&CancelToken>,
    ) -> Result<String> {
        let end = wait(self.inner.wait_end(limit(timeout_ms)?), token(cancel)).await?;
        Ok(match end {
            api::LeaseEnd::Lost => "lost",
            api::LeaseEnd::Released => "released",
            api::LeaseEnd::TimedOut => "timed_out",
        }
        .to_string())
    }
}

/// A pulled event subscription.
#[napi]
pub struct Subscription {
    pub(crate) inner: Arc<api::Subscription>,
}

#[napi]
impl Subscription {
    /// The next event, waiting up to `timeout_ms` (unset: until one comes or it is closed).
    #[napi]
    pub async fn next(
        &self,
        timeout_ms: Option<i64>,
        cancel: Option<&CancelToken>,
    ) -> Result<SubscriptionItem> {
        wait(self.inner.next(limit(timeout_ms)?), token(cancel))
            .await
            .map(Into::into)
    }

    /// Stop following (idempotent); a pending `next` ends.
    #[napi]
    pub fn close(&self) {
        self.inner.close();
    }

    /// Whether `close` was called.
    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.inner.is_closed()
    }
}

/// A pulled saga step runner for one service.
#[napi]
pub struct Worker {
    pub(crate) inner: Arc<api::Worker>,
}

#[napi]
impl Worker {
    /// The id the server knows this worker by.
    #[napi(getter)]
    pub fn worker_id(&self) -> String {
        self.inner.worker_id()
    }

    /// The next task, waiting up to `timeout_ms` (unset: until one comes or the worker stops);
    /// `null` when the time passed or the worker stopped.
    #[napi]
    pub async fn poll_task(&self, timeout_ms: Option<i64>) -> Result<Option<TaskRecord>> {
        let task = js(self.inner.poll_task(limit(timeout_ms)?).await)?;
        Ok(task.map(Into::into))
    }

    /// Report a task's outcome; whether the server accepted it.
    #[napi]
    pub async fn complete(&self, task_id: String, outcome: TaskOutcome) -> Result<bool> {
        js(self.inner.complete(task_id, outcome.into()).await)
    }

    /// Whether the task is still assigned to this worker.
    #[napi]
    pub async fn heartbeat(&self, task_id: String) -> Result<bool> {
        js(self.inner.heartbeat(task_id).await)
    }

    /// Tasks held now.
    #[napi(getter)]
    pub fn outstanding(&self) -> i64 {
        crate::number(self.inner.outstanding())
    }

    /// Stop taking tasks; pending polls return `null`.
    #[napi]
    pub fn stop(&self) {
        self.inner.stop();
    }

    /// Stop, then wait until every task handed out was completed (or timed out).
    #[napi]
    pub async fn stop_and_drain(&self) -> Result<()> {
        js(self.inner.stop_and_drain().await)
    }
}

/// The duty to compute one missing cache value: `complete` or `fail` it.
#[napi]
pub struct ComputeTicket {
    pub(crate) inner: Arc<api::ComputeTicket>,
}

#[napi]
impl ComputeTicket {
    /// The key to compute.
    #[napi(getter)]
    pub fn key(&self) -> String {
        self.inner.key().to_string()
    }

    /// Hand over the value; resolves once stored and handed to every waiting caller.
    #[napi]
    pub async fn complete(&self, value: Buffer) -> Result<Buffer> {
        let stored = js(self.inner.complete(value.to_vec()).await)?;
        Ok(stored.to_vec().into())
    }

    /// The computation failed: every waiting caller gets `callback_failed` with `message`.
    #[napi]
    pub async fn fail(&self, message: String) -> Result<()> {
        js(self.inner.fail(message).await)
    }
}
