//! The objects a client hands out: [`Lease`], [`Subscription`], [`Worker`], [`ComputeTicket`].

use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use syros_binding_api as api;

use crate::records::{LeaseInfo, SubscriptionItem, TaskOutcome, TaskRecord};
use crate::{non_negative, promise, token, CancelToken};

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
    #[napi(ts_return_type = "Promise<void>")]
    pub fn release<'env>(&self, env: &'env Env) -> Result<Object<'env>> {
        promise(env, self.inner.release(), None, Ok)
    }

    /// Extend it now.
    #[napi(ts_return_type = "Promise<LeaseInfo>")]
    pub fn renew<'env>(&self, env: &'env Env) -> Result<Object<'env>> {
        promise(env, self.inner.renew(), None, |lease| {
            Ok(LeaseInfo::from(lease))
        })
    }

    /// Wait until it is `lost` or `released`, at most `timeout_ms` (then `timed_out`).
    #[napi(ts_return_type = "Promise<string>")]
    pub fn wait_end<'env>(
        &self,
        env: &'env Env,
        timeout_ms: Option<i64>,
        cancel: Option<&CancelToken>,
    ) -> Result<Object<'env>> {
        let task = self.inner.wait_end(limit(timeout_ms)?);
        promise(env, task, token(cancel), |end| {
            Ok(match end {
                api::LeaseEnd::Lost => "lost",
                api::LeaseEnd::Released => "released",
                api::LeaseEnd::TimedOut => "timed_out",
            })
        })
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
    #[napi(ts_return_type = "Promise<SubscriptionItem>")]
    pub fn next<'env>(
        &self,
        env: &'env Env,
        timeout_ms: Option<i64>,
        cancel: Option<&CancelToken>,
    ) -> Result<Object<'env>> {
        let task = self.inner.next(limit(timeout_ms)?);
        promise(env, task, token(cancel), |item| {
            Ok(SubscriptionItem::from(item))
        })
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
    #[napi(ts_return_type = "Promise<TaskRecord | null>")]
    pub fn poll_task<'env>(&self, env: &'env Env, timeout_ms: Option<i64>) -> Result<Object<'env>> {
        let task = self.inner.poll_task(limit(timeout_ms)?);
        promise(env, task, None, |task| Ok(task.map(TaskRecord::from)))
    }

    /// Report a task's outcome; whether the server accepted it.
    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn complete<'env>(
        &self,
        env: &'env Env,
        task_id: String,
        outcome: TaskOutcome,
    ) -> Result<Object<'env>> {
        promise(env, self.inner.complete(task_id, outcome.into()), None, Ok)
    }

    /// Whether the task is still assigned to this worker.
    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn heartbeat<'env>(&self, env: &'env Env, task_id: String) -> Result<Object<'env>> {
        promise(env, self.inner.heartbeat(task_id), None, Ok)
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
    #[napi(ts_return_type = "Promise<void>")]
    pub fn stop_and_drain<'env>(&self, env: &'env Env) -> Result<Object<'env>> {
        promise(env, self.inner.stop_and_drain(), None, Ok)
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
    #[napi(ts_return_type = "Promise<Buffer>")]
    pub fn complete<'env>(&self, env: &'env Env, value: Buffer) -> Result<Object<'env>> {
        promise(env, self.inner.complete(value.to_vec()), None, |stored| {
            Ok(Buffer::from(stored.to_vec()))
        })
    }

    /// The computation failed: every waiting caller gets `callback_failed` with `message`.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn fail<'env>(&self, env: &'env Env, message: String) -> Result<Object<'env>> {
        promise(env, self.inner.fail(message), None, Ok)
    }
}
