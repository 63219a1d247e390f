//! The JNI bridge between Java and the Syros binding API (`syros-binding-api`), jni 0.22.
//!
//! It only translates. Java sees five static natives on `io.syros.internal.NativeBridge`:
//! `call` (blocking), `callAsync` (completes a `CompletableFuture`), `free`, `cancel` and
//! `freeToken`. An operation is named by a string (`"lock"`, `"cache_get"`, ...) and takes its
//! arguments as one JSON object plus an optional `byte[]` (cache values); [`ops`] maps each one
//! onto exactly one binding-API call. Results come back as a `NativeResult(handle, json, bytes)`:
//! a new object's handle (a leaked `Box<Target>`, freed by Java's `Cleaner` through `free`), its
//! JSON record, its bytes. Errors become the Java exception class of their code: Rust asks
//! `NativeBridge.error(recordJson)` for the exception object and throws it.
//!
//! Threads: blocking calls block the calling Java thread on a [`rt::CoreTask`] (the work runs on
//! the client core's runtime). Async calls complete through [`rt::CoreTask::settle`]: the
//! runtime thread that saw the work end hands the result to `NativeBridge.complete`, which
//! completes the future on a Java executor (so no user code runs on a runtime thread). A runtime
//! thread is attached to the JVM the first time it does so and stays attached, **as a daemon**
//! named `syros-core` (attaching and detaching per result made the JVM build and drop a `Thread`
//! each time), so the JVM still exits normally; it is detached when it exits.

use std::sync::OnceLock;

use jni::errors::ThrowRuntimeExAndDefault;
use jni::objects::{JByteArray, JClass, JObject, JString, JThrowable};
use jni::refs::Global;
use jni::sys::jlong;
use jni::{jni_mangle, jni_sig, jni_str, Env, EnvUnowned, JValue, JavaVM};
use syros_binding_api::{rt, ErrorRecord};

mod ops;
mod records;

pub(crate) use ops::{Reply, Target};

/// Classes looked up once on a Java thread (`init`): runtime threads have no application class
/// loader, so they must not look classes up by name.
struct Classes {
    bridge: Global<JClass<'static>>,
    result: Global<JClass<'static>>,
}

static CLASSES: OnceLock<Classes> = OnceLock::new();

fn classes() -> jni::errors::Result<&'static Classes> {
    CLASSES.get().ok_or(jni::errors::Error::UninitializedJavaVM)
}

/// `NativeBridge.init()`: cache the classes Rust calls back into.
#[jni_mangle("io.syros.internal.NativeBridge")]
pub extern "system" fn init<'local>(mut unowned: EnvUnowned<'local>, _class: JClass<'local>) {
    unowned
        .with_env(|env| -> jni::errors::Result<()> {
            if CLASSES.get().is_none() {
                let bridge = env.find_class(jni_str!("io/syros/internal/NativeBridge"))?;
                let result = env.find_class(jni_str!("io/syros/internal/NativeResult"))?;
                let _ = CLASSES.set(Classes {
                    bridge: env.new_global_ref(&bridge)?,
                    result: env.new_global_ref(&result)?,
                });
            }
            Ok(())
        })
        .resolve::<ThrowRuntimeExAndDefault>()
}

/// The Java exception for `err` (built by `NativeBridge.error`, one class per code).
fn exception<'local>(
    env: &mut Env<'local>,
    err: &ErrorRecord,
) -> jni::errors::Result<JThrowable<'local>> {
    let json = env.new_string(records::error_json(err))?;
    let classes = classes()?;
    let thrown = env
        .call_static_method(
            &classes.bridge,
            jni_str!("error"),
            jni_sig!("(Ljava/lang/String;)Ljava/lang/Throwable;"),
            &[JValue::Object(&json)],
        )?
        .l()?;
    JThrowable::cast_local(env, thrown)
}

/// Throw `err` as its Java exception; returns the `JavaException` error to propagate.
fn throw(env: &mut Env<'_>, err: &ErrorRecord) -> jni::errors::Error {
    match exception(env, err) {
        Ok(thrown) => env
            .throw(thrown)
            .err()
            .unwrap_or(jni::errors::Error::JavaException),
        Err(jni_err) => jni_err,
    }
}

/// The `NativeResult` object for `reply` (its handle now owned by Java).
fn result_object<'local>(
    env: &mut Env<'local>,
    reply: Reply,
) -> jni::errors::Result<JObject<'local>> {
    let json = match &reply.json {
        Some(json) => env.new_string(json)?,
        None => JString::null(),
    };
    let bytes = match &reply.bytes {
        Some(bytes) => env.byte_array_from_slice(bytes)?,
        None => JByteArray::null(),
    };
    let classes = classes()?;
    // Leak the handle last: nothing after this can fail and leave it unowned.
    let object = env.new_object(
        &classes.result,
        jni_sig!("(JLjava/lang/String;[B)V"),
        &[
            JValue::Long(0),
            JValue::Object(&json),
            JValue::Object(&bytes),
        ],
    )?;
    if let Some(target) = reply.handle {
        let handle = Box::into_raw(Box::new(target)) as jlong;
        if let Err(err) = env.set_field(
            &object,
            jni_str!("handle"),
            jni_sig!("J"),
            JValue::Long(handle),
        ) {
            // SAFETY: the handle was made just above and never reached Java.
            drop(unsafe { Box::from_raw(handle as *mut Target) });
            return Err(err);
        }
    }
    Ok(object)
}

fn string_arg(env: &Env<'_>, value: &JString<'_>) -> jni::errors::Result<String> {
    if value.is_null() {
        Ok(String::new())
    } else {
        value.try_to_string(env)
    }
}

fn bytes_arg(env: &Env<'_>, value: &JByteArray<'_>) -> jni::errors::Result<Option<Vec<u8>>> {
    if value.is_null() {
        Ok(None)
    } else {
        env.convert_byte_array(value).map(Some)
    }
}

/// The target behind a Java handle (0 = no target: the global operations).
fn target(handle: jlong) -> Option<Target> {
    if handle == 0 {
        None
    } else {
        // SAFETY: Java only passes handles made by `result_object` and frees each once, from
        // its Cleaner, after the last call on the object (reachabilityFence).
        Some(unsafe { &*(handle as *const Target) }.clone())
    }
}

/// `NativeResult call(long handle, String op, String args, byte[] bytes)`: run `op` and block
/// the calling thread until it is done.
#[jni_mangle("io.syros.internal.NativeBridge")]
pub extern "system" fn call<'local>(
    mut unowned: EnvUnowned<'local>,
    _class: JClass<'local>,
    handle: jlong,
    op: JString<'local>,
    args: JString<'local>,
    bytes: JByteArray<'local>,
) -> JObject<'local> {
    unowned
        .with_env(|env| -> jni::errors::Result<JObject<'local>> {
            let op = string_arg(env, &op)?;
            let args = string_arg(env, &args)?;
            let bytes = bytes_arg(env, &bytes)?;
            if handle == 0 && op == "shutdown" {
                // Not a core task: it stops the runtime such tasks run on.
                let timeout_ms = args.parse::<u64>().unwrap_or(1000);
                rt::shutdown(timeout_ms);
                return Ok(JObject::null());
            }
            let mut task = ops::start(target(handle), &op, &args, bytes);
            let outcome = match task.wait_blocking(None) {
                Some(outcome) => outcome,
                None => Err(ErrorRecord::internal("an unlimited wait returned early")),
            };
            match outcome {
                Ok(reply) => result_object(env, reply),
                Err(err) => Err(throw(env, &err)),
            }
        })
        .resolve::<ThrowRuntimeExAndDefault>()
}

/// `long callAsync(long handle, String op, String args, byte[] bytes, CompletableFuture f)`:
/// start `op`; `f` is completed (through `NativeBridge.complete`) when it is done. Returns a
/// cancel token handle: `cancel` it to abort the work, `freeToken` it once `f` is done.
#[jni_mangle("io.syros.internal.NativeBridge")]
pub extern "system" fn call_async<'local>(
    mut unowned: EnvUnowned<'local>,
    _class: JClass<'local>,
    handle: jlong,
    op: JString<'local>,
    args: JString<'local>,
    bytes: JByteArray<'local>,
    future: JObject<'local>,
) -> jlong {
    unowned
        .with_env(|env| -> jni::errors::Result<jlong> {
            let op = string_arg(env, &op)?;
            let args = string_arg(env, &args)?;
            let bytes = bytes_arg(env, &bytes)?;
            let future = env.new_global_ref(&future)?;
            let token = rt::CancelToken::new();
            ops::start(target(handle), &op, &args, bytes)
                .settle(Some(&token), move |outcome| deliver(future, outcome));
            Ok(Box::into_raw(Box::new(token)) as jlong)
        })
        .resolve::<ThrowRuntimeExAndDefault>()
}

/// The current runtime thread's attachment to the JVM as a daemon thread: made once per thread,
/// detached when the thread exits (the runtime shut down).
struct DaemonAttachment(*mut jni::sys::JavaVM);

impl Drop for DaemonAttachment {
    fn drop(&mut self) {
        // SAFETY: this thread attached itself through the same VM pointer and holds no JNI
        // frame now (thread-local destructors run after the thread's last call returned).
        unsafe {
            ((*(*self.0)).v1_1.DetachCurrentThread)(self.0);
        }
    }
}

thread_local! {
    static DAEMON_ATTACHMENT: std::cell::RefCell<Option<DaemonAttachment>> =
        const { std::cell::RefCell::new(None) };
}

/// Attach the current (runtime) thread to the JVM as a daemon thread named `syros-core`, unless
/// it already is. A later `attach_current_thread_for_scope` then finds it attached and leaves it
/// so. If the attach fails, that call attaches for its scope as before.
fn stay_attached_as_daemon(vm: &JavaVM) {
    let _ = DAEMON_ATTACHMENT.try_with(|attachment| {
        if attachment.borrow().is_some() {
            return;
        }
        let raw = vm.get_raw();
        let mut args = jni::sys::JavaVMAttachArgs {
            version: jni::sys::JNI_VERSION_1_8,
            name: c"syros-core".as_ptr().cast_mut(),
            group: std::ptr::null_mut(),
        };
        let mut env = std::ptr::null_mut();
        // SAFETY: `raw` is the live VM this library was loaded into; the arguments are valid
        // for the call.
        let attached = unsafe {
            ((*(*raw)).v1_4.AttachCurrentThreadAsDaemon)(
                raw,
                &mut env,
                (&mut args as *mut jni::sys::JavaVMAttachArgs).cast(),
            )
        };
        if attached == jni::sys::JNI_OK {
            *attachment.borrow_mut() = Some(DaemonAttachment(raw));
        }
    });
}

/// Hand an async outcome to Java from a runtime thread (attached as a daemon, see
/// [`stay_attached_as_daemon`]).
fn deliver(future: Global<JObject<'static>>, outcome: syros_binding_api::Result<Reply>) {
    let Ok(vm) = JavaVM::singleton() else {
        return;
    };
    stay_attached_as_daemon(&vm);
    let delivered = vm.attach_current_thread_for_scope(|env| -> jni::errors::Result<()> {
        let classes = classes()?;
        let (result, error) = match outcome {
            Ok(reply) => (result_object(env, reply)?, JObject::null()),
            Err(err) => (JObject::null(), JObject::from(exception(env, &err)?)),
        };
        env.call_static_method(
            &classes.bridge,
            jni_str!("complete"),
            jni_sig!(
                "(Ljava/util/concurrent/CompletableFuture;Lio/syros/internal/NativeResult;Ljava/lang/Throwable;)V"
            ),
            &[
                JValue::Object(&future),
                JValue::Object(&result),
                JValue::Object(&error),
            ],
        )?;
        Ok(())
    });
    if let Err(err) = delivered {
        // Nothing to hand the failure to: the JVM refused the attach or the callback threw.
        eprintln!("syros-java: could not complete a CompletableFuture: {err}");
    }
}

/// `void free(long handle)`: drop the object behind a handle (Java's Cleaner calls it once).
#[jni_mangle("io.syros.internal.NativeBridge")]
pub extern "system" fn free<'local>(
    _unowned: EnvUnowned<'local>,
    _class: JClass<'local>,
    handle: jlong,
) {
    if handle != 0 {
        // SAFETY: see `target`; Java frees each handle exactly once.
        drop(unsafe { Box::from_raw(handle as *mut Target) });
    }
}

/// `void cancel(long token)`: abort the async call the token belongs to.
#[jni_mangle("io.syros.internal.NativeBridge")]
pub extern "system" fn cancel<'local>(
    _unowned: EnvUnowned<'local>,
    _class: JClass<'local>,
    token: jlong,
) {
    if token != 0 {
        // SAFETY: a token handle made by `call_async`, not freed yet (Java frees it after).
        unsafe { &*(token as *const rt::CancelToken) }.cancel();
    }
}

/// `void freeToken(long token)`: drop a cancel token (once its future is done).
#[jni_mangle("io.syros.internal.NativeBridge")]
pub extern "system" fn free_token<'local>(
    _unowned: EnvUnowned<'local>,
    _class: JClass<'local>,
    token: jlong,
) {
    if token != 0 {
        // SAFETY: a token handle made by `call_async`; Java frees it exactly once.
        drop(unsafe { Box::from_raw(token as *mut rt::CancelToken) });
    }
}
