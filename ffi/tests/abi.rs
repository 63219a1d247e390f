//! The C ABI's promises, called as a C host would (through the `extern "C"` functions):
//! every asynchronous call's callback runs exactly once — for a refused call, a cancelled
//! call, and a call still pending when the runtime shuts down — and NULL handles are errors.

use std::sync::mpsc;
use std::time::Duration;

use syros_ffi::*;
use syros_launcher::SyrosServer;

type Delivered = (i32, String, usize);

/// The callback: sends (status, json, lease pointer) to the channel named by user_data.
unsafe extern "C" fn deliver(user_data: usize, outcome: *const SyrosOutcome) {
    let outcome = &*outcome;
    let json = std::slice::from_raw_parts(outcome.json, outcome.json_len);
    let sender = Box::from_raw(user_data as *mut mpsc::Sender<Delivered>);
    let _ = sender.send((
        outcome.status,
        String::from_utf8_lossy(json).into_owned(),
        outcome.lease as usize,
    ));
}

/// A user_data that `deliver` consumes (a second callback would be a double free, which the
/// exactly-once promise rules out), and the receiver of its outcome.
fn user_data() -> (usize, mpsc::Receiver<Delivered>) {
    let (tx, rx) = mpsc::channel();
    (Box::into_raw(Box::new(tx)) as usize, rx)
}

fn recv(rx: &mpsc::Receiver<Delivered>) -> Delivered {
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the callback was not called")
}

fn lock(
    client: *const SyrosClient,
    key: &str,
    request: &str,
    cancel: *const SyrosCancel,
) -> mpsc::Receiver<Delivered> {
    let (ud, rx) = user_data();
    let started = unsafe {
        syros_client_lock(
            client,
            key.as_ptr(),
            key.len(),
            request.as_ptr(),
            request.len(),
            cancel,
            Some(deliver),
            ud,
        )
    };
    assert_eq!(started, SYROS_OK);
    rx
}

#[test]
fn callbacks_run_exactly_once_refused_cancelled_and_at_shutdown() {
    let server = SyrosServer::start();
    let config = format!(r#"{{"addresses": ["{}"]}}"#, server.grpc_address());
    let mut client = std::ptr::null_mut();
    let mut error = SyrosBuffer {
        data: std::ptr::null_mut(),
        len: 0,
    };
    let status =
        unsafe { syros_client_new(config.as_ptr(), config.len(), &mut client, &mut error) };
    assert_eq!(status, SYROS_OK);

    // A NULL client is an invalid_argument error delivered through the callback.
    let (status, json, _) = recv(&lock(
        std::ptr::null(),
        "k",
        r#"{"ttl_ms": 1000}"#,
        std::ptr::null(),
    ));
    assert_eq!(status, SYROS_ERROR);
    assert!(json.contains(r#""code":"invalid_argument""#), "{json}");

    // A held key: the second, waiting lock is cancelled and reports `cancelled`, no lease.
    let (status, json, lease) = recv(&lock(
        client,
        "abi-k",
        r#"{"ttl_ms": 10000}"#,
        std::ptr::null(),
    ));
    assert_eq!(status, SYROS_OK, "{json}");
    assert!(json.contains(r#""fencing_token":"#), "{json}");
    let cancel = syros_cancel_new();
    let waiting = lock(
        client,
        "abi-k",
        r#"{"ttl_ms": 10000, "wait_ms": 30000}"#,
        cancel,
    );
    std::thread::sleep(Duration::from_millis(200));
    unsafe { syros_cancel_cancel(cancel) };
    let (status, json, cancelled_lease) = recv(&waiting);
    assert_eq!((status, cancelled_lease), (SYROS_ERROR, 0));
    assert!(json.contains(r#""code":"cancelled""#), "{json}");
    unsafe { syros_cancel_free(cancel) };

    // A call still waiting when the runtime shuts down is answered (cancelled), once.
    let pending = lock(
        client,
        "abi-k",
        r#"{"ttl_ms": 10000, "wait_ms": 30000}"#,
        std::ptr::null(),
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(syros_pending_calls() >= 1);
    syros_shutdown(2_000);
    let (status, json, _) = recv(&pending);
    assert_eq!(status, SYROS_ERROR);
    assert!(json.contains(r#""code":"cancelled""#), "{json}");
    assert!(
        pending.recv_timeout(Duration::from_millis(200)).is_err(),
        "a second callback"
    );
    assert_eq!(syros_pending_calls(), 0);

    unsafe {
        syros_lease_free(lease as *mut SyrosLease);
        syros_client_free(client);
    }
    assert_eq!(syros_live_handles(), 0);
}
