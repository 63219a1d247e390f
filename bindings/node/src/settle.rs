//! Promises settled from the core runtime through ONE thread-safe function per Node environment.
//!
//! napi-rs's `Deferred` creates a thread-safe function per promise (a libuv async handle
//! opened, woken once, then closed and finalized), which was most of the Node process's CPU per
//! lock call. Here each environment has one thread-safe function, created with its first
//! promise: a core thread that finishes a call queues the settlement on it, and Node's
//! dispatcher runs every settlement queued since its last wake-up in one pass on the JS thread.
//! The function is ref'd only while promises are pending, so it keeps the event loop alive
//! exactly as long as a call is in flight (as the per-promise functions did), and no longer.

use std::cell::{Cell, RefCell};
use std::ffi::c_void;
use std::ptr;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::*;
use napi::sys;

/// What a core thread hands to the JS thread: the promise and how to settle it.
struct Settlement {
    deferred: sys::napi_deferred,
    settle: Box<dyn FnOnce(Env) -> Result<sys::napi_value> + Send>,
}

// The raw deferred is only touched on the JS thread (in `settle_on_js_thread`); core threads
// only carry it there.
unsafe impl Send for Settlement {}

/// The environment's thread-safe function, shared with the core threads that settle its
/// promises; `None` once the environment tears down (settlements are then dropped: there is no
/// promise left to settle).
struct Shared {
    tsfn: Mutex<Option<sys::napi_threadsafe_function>>,
}

// Calling a thread-safe function from any thread is its purpose; the mutex keeps the teardown
// hook from releasing it while a core thread is inside `napi_call_threadsafe_function`.
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

/// The JS thread's side: its environment's function and how many promises are pending.
struct EnvQueue {
    env: sys::napi_env,
    shared: Arc<Shared>,
    pending: Cell<usize>,
}

thread_local! {
    /// One Node environment runs on one thread (the main thread or a worker's).
    static QUEUE: RefCell<Option<Rc<EnvQueue>>> = const { RefCell::new(None) };
}

/// A promise to settle from any thread, once: by [`Deferred::settle`], or with `cancelled` when
/// it is dropped unsettled (e.g. the core runtime shut down under the call).
pub(crate) struct Deferred {
    settlement: Option<(sys::napi_deferred, Arc<Shared>)>,
}

unsafe impl Send for Deferred {}

impl Deferred {
    /// A new pending promise of the current environment and its deferred.
    pub(crate) fn new(env: &Env) -> Result<(Deferred, Object<'_>)> {
        let queue = env_queue(env)?;
        let mut deferred = ptr::null_mut();
        let mut promise = ptr::null_mut();
        check_status!(
            unsafe { sys::napi_create_promise(env.raw(), &mut deferred, &mut promise) },
            "cannot create a promise"
        )?;
        if queue.pending.get() == 0 {
            if let Some(tsfn) = *lock(&queue.shared) {
                unsafe { sys::napi_ref_threadsafe_function(env.raw(), tsfn) };
            }
        }
        queue.pending.set(queue.pending.get() + 1);
        Ok((
            Deferred {
                settlement: Some((deferred, queue.shared.clone())),
            },
            Object::from_raw(env.raw(), promise),
        ))
    }

    /// Settle the promise on the JS thread with what `settle` makes there: a value resolves it,
    /// an error rejects it.
    pub(crate) fn settle<V: ToNapiValue>(
        mut self,
        settle: impl FnOnce(Env) -> Result<V> + Send + 'static,
    ) {
        if let Some((deferred, shared)) = self.settlement.take() {
            queue(
                &shared,
                Settlement {
                    deferred,
                    settle: Box::new(move |env| {
                        settle(env).and_then(|value| unsafe {
                            ToNapiValue::to_napi_value(env.raw(), value)
                        })
                    }),
                },
            );
        }
    }
}

impl Drop for Deferred {
    fn drop(&mut self) {
        if let Some((deferred, shared)) = self.settlement.take() {
            let cancelled = syros_binding_api::ErrorRecord::cancelled(
                "the call was dropped before it finished (the syros client runtime shut down)",
            );
            queue(
                &shared,
                Settlement {
                    deferred,
                    settle: Box::new(move |_| Err(crate::to_js_error(cancelled))),
                },
            );
        }
    }
}

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Option<sys::napi_threadsafe_function>> {
    shared.tsfn.lock().unwrap_or_else(|p| p.into_inner())
}

/// Hand `settlement` to the JS thread; dropped when the environment is gone.
fn queue(shared: &Shared, settlement: Settlement) {
    let tsfn = lock(shared);
    if let Some(tsfn) = *tsfn {
        let item = Box::into_raw(Box::new(settlement));
        let status = unsafe {
            sys::napi_call_threadsafe_function(
                tsfn,
                item.cast(),
                sys::ThreadsafeFunctionCallMode::nonblocking,
            )
        };
        if status != sys::Status::napi_ok {
            // Closing: nothing will run it.
            drop(unsafe { Box::from_raw(item) });
        }
    }
}

/// This thread's environment queue, created with its first promise.
fn env_queue(env: &Env) -> Result<Rc<EnvQueue>> {
    if let Some(queue) = QUEUE.with(|q| q.borrow().clone()) {
        if queue.env == env.raw() {
            return Ok(queue);
        }
    }
    let raw = env.raw();
    let mut name = ptr::null_mut();
    check_status!(
        unsafe {
            sys::napi_create_string_utf8(raw, c"syros_settle".as_ptr().cast(), 12, &mut name)
        },
        "cannot name the settle queue"
    )?;
    let shared = Arc::new(Shared {
        tsfn: Mutex::new(None),
    });
    let mut tsfn = ptr::null_mut();
    check_status!(
        unsafe {
            sys::napi_create_threadsafe_function(
                raw,
                ptr::null_mut(),
                ptr::null_mut(),
                name,
                0,
                1,
                ptr::null_mut(),
                None,
                ptr::null_mut(),
                Some(settle_on_js_thread),
                &mut tsfn,
            )
        },
        "cannot create the settle queue"
    )?;
    // Ref'd only while promises are pending (`Deferred::new`, `settle_on_js_thread`).
    unsafe { sys::napi_unref_threadsafe_function(raw, tsfn) };
    *lock(&shared) = Some(tsfn);
    let hook_data = Arc::into_raw(shared.clone()) as *mut c_void;
    check_status!(
        unsafe { sys::napi_add_env_cleanup_hook(raw, Some(env_teardown), hook_data) },
        "cannot watch the environment's teardown"
    )?;
    let queue = Rc::new(EnvQueue {
        env: raw,
        shared,
        pending: Cell::new(0),
    });
    QUEUE.with(|q| *q.borrow_mut() = Some(queue.clone()));
    Ok(queue)
}

/// The environment tears down: release its function (queued settlements are dropped with a
/// null env) and forget the queue.
unsafe extern "C" fn env_teardown(data: *mut c_void) {
    let shared = unsafe { Arc::from_raw(data as *const Shared) };
    if let Some(tsfn) = lock(&shared).take() {
        unsafe {
            sys::napi_release_threadsafe_function(tsfn, sys::ThreadsafeFunctionReleaseMode::abort)
        };
    }
    QUEUE.with(|q| {
        let mut q = q.borrow_mut();
        if q.as_ref()
            .is_some_and(|queue| Arc::ptr_eq(&queue.shared, &shared))
        {
            *q = None;
        }
    });
}

/// Node's dispatcher, on the JS thread, once per queued settlement (in a handle scope it opened).
unsafe extern "C" fn settle_on_js_thread(
    env: sys::napi_env,
    _js_callback: sys::napi_value,
    _context: *mut c_void,
    data: *mut c_void,
) {
    let settlement = unsafe { Box::from_raw(data.cast::<Settlement>()) };
    if env.is_null() {
        // Teardown drains the queue with no environment: no promise is left to settle.
        return;
    }
    let Settlement { deferred, settle } = *settlement;
    match settle(Env::from_raw(env)) {
        Ok(value) => unsafe {
            sys::napi_resolve_deferred(env, deferred, value);
        },
        Err(err) => unsafe {
            let error = ToNapiValue::to_napi_value(env, err).unwrap_or_else(|_| {
                // Never leave the promise pending: a plain Error if the real one cannot be made.
                let mut message = ptr::null_mut();
                let mut error = ptr::null_mut();
                sys::napi_create_string_utf8(
                    env,
                    c"syros: settling failed".as_ptr().cast(),
                    22,
                    &mut message,
                );
                sys::napi_create_error(env, ptr::null_mut(), message, &mut error);
                error
            });
            sys::napi_reject_deferred(env, deferred, error);
        },
    }
    QUEUE.with(|q| {
        if let Some(queue) = q.borrow().as_ref().filter(|queue| queue.env == env) {
            let left = queue.pending.get().saturating_sub(1);
            queue.pending.set(left);
            if left == 0 {
                if let Some(tsfn) = *lock(&queue.shared) {
                    unsafe { sys::napi_unref_threadsafe_function(env, tsfn) };
                }
            }
        }
    });
}
