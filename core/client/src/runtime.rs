//! The process-wide tokio runtime of the client core, for bindings.
//!
//! Bindings never poll core futures on an executor of their own: they [`spawn`] them here and
//! await (or block on) the `JoinHandle`. The runtime is created on first use, can be shut down
//! ([`shutdown`]; hosts call it at exit or dispose) and is re-created on next use. After a `fork`
//! the child process does not have the parent's worker threads: [`runtime`] notices that the
//! process id changed and builds a fresh runtime (the parent's is leaked, never dropped, since
//! dropping it would wait for threads that do not exist in the child). Clients created before a
//! fork must not be used in the child; connect again.
//!
//! Fork safety also needs the runtime to keep no process-wide state that names its threads: tokio
//! is built without its `parking_lot` feature (see the workspace `Cargo.toml`). With it, the
//! parent's parked workers sit in parking_lot's global table of parked threads; a child inherits
//! those entries, the memory they point at (the dead threads' thread-locals) is freed and reused
//! there, and the child's own runtime crashed or hung when it walked that table. The lock around
//! the runtime slot is taken across `fork` (a `pthread_atfork` handler), so a fork while another
//! thread looks up or creates the runtime cannot leave it locked in the child.
//!
//! Rust applications that already run inside tokio do not need this module: [`crate::Client`]
//! uses the runtime it is connected from.

use std::future::Future;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::runtime::{Builder, Handle, Runtime};
use tokio::task::JoinHandle;

struct Owned {
    runtime: Runtime,
    pid: u32,
}

static RUNTIME: Mutex<Option<Owned>> = Mutex::new(None);

fn slot() -> MutexGuard<'static, Option<Owned>> {
    // A panic while holding this lock cannot leave the Option half-written.
    RUNTIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Holds the slot's lock across `fork`: a thread of the parent holding it at that instant would
/// not exist in the child to release it, and the child's first call would wait forever.
#[cfg(unix)]
mod fork_guard {
    use std::cell::RefCell;
    use std::sync::{MutexGuard, Once};

    use super::Owned;

    thread_local! {
        /// The forking thread's hold on the slot, from the prepare handler to the parent/child one.
        static HELD: RefCell<Option<MutexGuard<'static, Option<Owned>>>> = const { RefCell::new(None) };
    }

    extern "C" fn take_before_fork() {
        let guard = super::slot();
        let _ = HELD.try_with(|held| *held.borrow_mut() = Some(guard));
    }

    extern "C" fn release_after_fork() {
        let _ = HELD.try_with(|held| held.borrow_mut().take());
    }

    /// Registers the handlers once per process (a child inherits them).
    pub(super) fn install() {
        static INSTALLED: Once = Once::new();
        INSTALLED.call_once(|| {
            // SAFETY: the handlers only lock and unlock the slot's mutex on the forking thread.
            let failed = unsafe {
                libc::pthread_atfork(
                    Some(take_before_fork),
                    Some(release_after_fork),
                    Some(release_after_fork),
                )
            };
            if failed != 0 {
                tracing::warn!(code = failed, "pthread_atfork failed; fork is less safe");
            }
        });
    }
}

fn build() -> std::io::Result<Runtime> {
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 4);
    Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("syros-client")
        .enable_all()
        .build()
}

/// A handle to the client core's runtime, creating it on first use (and again after
/// [`shutdown`] or in a forked child process).
///
/// # Panics
/// If the operating system refuses to start threads.
pub fn runtime() -> Handle {
    try_runtime().unwrap_or_else(|err| panic!("cannot start the syros client runtime: {err}"))
}

/// Like [`runtime`], but reports a failure to start the runtime instead of panicking.
pub fn try_runtime() -> std::io::Result<Handle> {
    #[cfg(unix)]
    fork_guard::install();
    let pid = std::process::id();
    let mut slot = slot();
    if let Some(owned) = slot.as_ref() {
        if owned.pid == pid {
            return Ok(owned.runtime.handle().clone());
        }
    }
    if let Some(stale) = slot.take() {
        // Inherited through fork: its threads live only in the parent. Never drop it.
        tracing::debug!(
            parent = stale.pid,
            child = pid,
            "fork detected; new client runtime"
        );
        std::mem::forget(stale);
    }
    let runtime = build()?;
    let handle = runtime.handle().clone();
    *slot = Some(Owned { runtime, pid });
    Ok(handle)
}

/// Whether the runtime currently exists in this process.
pub fn is_running() -> bool {
    slot()
        .as_ref()
        .is_some_and(|owned| owned.pid == std::process::id())
}

/// Run `future` on the client runtime. Await the handle from any executor, or block on it.
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    runtime().spawn(future)
}

/// Run `future` on the client runtime and block the calling thread until it finishes, for
/// synchronous host APIs. Must not be called from inside an async context.
pub fn block_on<F>(future: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handle = runtime();
    let task = handle.spawn(future);
    match handle.block_on(task) {
        Ok(output) => output,
        Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
        Err(err) => panic!("syros client task did not finish: {err}"),
    }
}

/// Stop the client runtime: background work (lease renewal, subscriptions) ends and pending calls
/// fail. Waits up to 5 seconds for tasks to stop. The next use creates a new runtime.
pub fn shutdown() {
    shutdown_timeout(Duration::from_secs(5));
}

/// [`shutdown`] with an explicit wait for running tasks. Called from inside an async context it
/// does not wait (that would block an executor thread).
pub fn shutdown_timeout(timeout: Duration) {
    let owned = slot().take();
    let Some(owned) = owned else { return };
    if owned.pid != std::process::id() {
        std::mem::forget(owned);
        return;
    }
    if Handle::try_current().is_ok() {
        owned.runtime.shutdown_background();
    } else {
        owned.runtime.shutdown_timeout(timeout);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // One test, since the runtime is process-wide.
    #[test]
    fn lazy_shared_restartable() {
        let a = runtime();
        assert!(is_running());
        assert_eq!(block_on(async { 40 + 2 }), 42);
        let name = block_on(async { std::thread::current().name().map(str::to_string) });
        assert_eq!(name.as_deref(), Some("syros-client"));
        let joined = std::thread::spawn(|| block_on(async { 7 })).join().ok();
        assert_eq!(joined, Some(7));
        shutdown();
        assert!(!is_running());
        // The old handle's runtime is gone: its tasks are cancelled at once.
        let stale = runtime().block_on(a.spawn(async { 1 }));
        assert!(stale.is_err(), "the old runtime was shut down");
        assert!(is_running(), "a fresh runtime after shutdown");
        assert_eq!(block_on(async { 3 }), 3);
        shutdown();
    }
}
