//! `LockService/Session` spoken frame by frame against a real server: concurrent operations
//! answered in completion order, cancel frames and stream ends that leave no lease behind,
//! malformed frames answered with error frames on a stream that stays usable, and the
//! permission check of each frame; `BatchedSession` with several frames per message each way.

mod common;
mod security_support;

use std::time::Duration;

use common::*;
use futures::channel::mpsc;
use futures::stream::BoxStream;
use futures::StreamExt;
use pb::lock_session_request::Op;
use pb::lock_session_response::Result as Answer;
use syros_proto::syros::v1 as pb;

/// One session stream, driven by hand.
struct Session {
    frames: mpsc::UnboundedSender<pb::LockSessionRequest>,
    answers: BoxStream<'static, Result<pb::LockSessionResponse, volo_grpc::Status>>,
}

impl Session {
    async fn open(addr: std::net::SocketAddr, credential: Option<&str>) -> Session {
        let (frames, outgoing) = mpsc::unbounded();
        let mut request = volo_grpc::Request::new(outgoing);
        if let Some(c) = credential {
            request.metadata_mut().insert(
                "authorization",
                security_support::bearer(c).parse().unwrap(),
            );
        }
        let answers = locks(addr)
            .session(request)
            .await
            .expect("open a session")
            .into_inner();
        Session {
            frames,
            answers: answers.boxed(),
        }
    }

    fn send(&self, id: u64, op: Option<Op>) {
        self.frames
            .unbounded_send(pb::LockSessionRequest {
                id,
                timeout_ms: 60_000,
                op,
                ..Default::default()
            })
            .expect("the stream is open");
    }

    fn acquire(&self, id: u64, key: &str, wait_ms: u64) {
        self.send(
            id,
            Some(Op::Acquire(acquire_request(
                key,
                "session-test",
                30_000,
                wait_ms,
            ))),
        );
    }

    fn release(&self, id: u64, lease_id: &str) {
        self.send(
            id,
            Some(Op::Release(pb::ReleaseLockRequest {
                lease_id: lease_id.to_string().into(),
            })),
        );
    }

    async fn next(&mut self) -> (u64, Answer) {
        let frame = tokio::time::timeout(Duration::from_secs(20), self.answers.next())
            .await
            .expect("an answer within 20 s")
            .expect("the stream is open")
            .expect("an answer frame");
        (frame.id, frame.result.expect("a result"))
    }

    /// The next answer, which must be a granted acquire: its lease.
    async fn granted(&mut self, id: u64) -> pb::Lease {
        match self.next().await {
            (got, Answer::Acquire(resp)) if got == id && resp.acquired => resp.lease.unwrap(),
            other => panic!("expected a grant for {id}, got {other:?}"),
        }
    }

    /// The next answer, which must be an error frame for `id`: its Syros code.
    async fn error(&mut self, id: u64) -> String {
        match self.next().await {
            (got, Answer::Error(error)) if got == id => error.code.to_string(),
            other => panic!("expected an error frame for {id}, got {other:?}"),
        }
    }
}

async fn held(addr: std::net::SocketAddr, key: &str) -> bool {
    locks(addr)
        .status(pb::LockStatusRequest {
            key: key.to_string().into(),
        })
        .await
        .expect("status")
        .into_inner()
        .held
}

#[tokio::test]
async fn concurrent_operations_are_answered_as_they_finish() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path()).await;
    let mut session = Session::open(server.addr, None).await;

    session.acquire(1, "session/held", 0);
    let first = session.granted(1).await;
    // 2 waits for the held key while 3..=42 (other keys) and a renewal of the first lease
    // are answered.
    session.acquire(2, "session/held", 60_000);
    for id in 3..=42 {
        session.acquire(id, &format!("session/free-{id}"), 0);
    }
    session.send(
        43,
        Some(Op::Renew(pb::RenewLockRequest {
            lease_id: first.lease_id.clone(),
            ttl_ms: 30_000,
        })),
    );
    let mut answered = Vec::new();
    for _ in 3..=43 {
        let (id, answer) = session.next().await;
        match answer {
            Answer::Acquire(resp) => assert!(resp.acquired, "{id}"),
            Answer::Renew(resp) => assert_eq!(resp.lease.unwrap().lease_id, first.lease_id),
            other => panic!("{id}: {other:?}"),
        }
        answered.push(id);
    }
    answered.sort_unstable();
    assert_eq!(answered, (3..=43).collect::<Vec<_>>(), "2 still waits");

    session.release(44, &first.lease_id);
    let mut rest = [session.next().await, session.next().await];
    rest.sort_by_key(|(id, _)| *id);
    match &rest {
        [(2, Answer::Acquire(second)), (44, Answer::Release(released))] => {
            assert!(second.acquired);
            let second = second.lease.as_ref().unwrap();
            assert!(second.fencing_token > first.fencing_token);
            assert_eq!(released.key, "session/held");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn cancelled_and_abandoned_waiters_leave_no_lease() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path()).await;
    let mut holder = Session::open(server.addr, None).await;
    let mut waiter = Session::open(server.addr, None).await;

    holder.acquire(1, "session/cancel", 0);
    let lease = holder.granted(1).await;
    waiter.acquire(7, "session/cancel", 60_000);
    // The same stream keeps serving while 7 waits.
    waiter.acquire(8, "session/other", 0);
    waiter.granted(8).await;
    waiter.send(9, Some(Op::Cancel(7)));
    assert_eq!(waiter.error(7).await, "cancelled");
    // Nothing to cancel any more: an error frame for the cancel itself.
    waiter.send(10, Some(Op::Cancel(7)));
    assert_eq!(waiter.error(10).await, "invalid_argument");

    // A waiter whose stream ends is dropped too.
    let mut gone = Session::open(server.addr, None).await;
    gone.acquire(1, "session/cancel", 60_000);
    gone.acquire(2, "session/gone-probe", 0);
    gone.granted(2).await;
    drop(gone);

    // Each frame has its own time limit.
    waiter.send(
        11,
        Some(Op::Acquire(acquire_request(
            "session/cancel",
            "session-test",
            30_000,
            60_000,
        ))),
    );
    waiter
        .frames
        .unbounded_send(pb::LockSessionRequest {
            id: 12,
            timeout_ms: 200,
            op: Some(Op::Acquire(acquire_request(
                "session/cancel",
                "session-test",
                30_000,
                60_000,
            ))),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(waiter.error(12).await, "");
    waiter.send(13, Some(Op::Cancel(11)));
    assert_eq!(waiter.error(11).await, "cancelled");

    tokio::time::sleep(Duration::from_millis(200)).await;
    holder.release(2, &lease.lease_id);
    match holder.next().await {
        (2, Answer::Release(_)) => {}
        other => panic!("{other:?}"),
    }
    assert!(
        !held(server.addr, "session/cancel").await,
        "no cancelled, abandoned or timed-out waiter was granted the lock"
    );
    holder.acquire(3, "session/cancel", 0);
    holder.granted(3).await;
}

#[tokio::test]
async fn malformed_frames_get_error_frames_and_the_stream_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path()).await;
    let mut session = Session::open(server.addr, None).await;

    session.send(1, None);
    assert_eq!(session.error(1).await, "invalid_argument");
    session.acquire(2, "session/dup", 0);
    let lease = session.granted(2).await;
    session.acquire(3, "session/dup", 60_000);
    session.acquire(3, "session/dup-other", 0);
    assert_eq!(session.error(3).await, "invalid_argument");
    // An engine error is the unary call's error, for this operation only.
    session.acquire(4, "", 0);
    assert_eq!(session.error(4).await, "invalid_argument");
    session.release(5, "no-such-lease");
    assert_eq!(session.error(5).await, "lock_not_held");

    // The first 3 still waits, and gets the lock.
    session.release(6, &lease.lease_id);
    let mut rest = [session.next().await, session.next().await];
    rest.sort_by_key(|(id, _)| *id);
    assert!(
        matches!(&rest, [(3, Answer::Acquire(r)), (6, Answer::Release(_))] if r.acquired),
        "{rest:?}"
    );
}

#[tokio::test]
async fn every_frame_is_authorized_for_its_own_key() {
    let secured = security_support::start_secured();
    let addr = secured.server.grpc_addr();
    let orders = secured.orders();
    let mut session = Session::open(addr, Some(&orders)).await;

    session.acquire(1, "orders/1", 0);
    let lease = session.granted(1).await;
    session.acquire(2, "payments/1", 0);
    assert_eq!(session.error(2).await, "permission_denied");
    session.acquire(3, "orders/2", 0);
    session.granted(3).await;
    session.release(4, &lease.lease_id);
    assert!(matches!(session.next().await, (4, Answer::Release(_))));

    // A credential revoked while its session is open stops working there too, as soon as it
    // would for unary calls (the server re-checks it at most 2 s after the last check).
    let (key_id, api_key) =
        security_support::create_api_key(&secured.server, "session-key", &["admin"]);
    let mut keyed = Session::open(addr, Some(&api_key)).await;
    keyed.acquire(1, "payments/2", 0);
    keyed.granted(1).await;
    security_support::apikey(&secured.server, &["revoke", &key_id]);
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    keyed.acquire(2, "payments/3", 0);
    assert_eq!(keyed.error(2).await, "unauthenticated");

    // Without a credential the stream itself is refused.
    let (_frames, outgoing) = mpsc::unbounded::<pb::LockSessionRequest>();
    let opened = locks(addr).session(volo_grpc::Request::new(outgoing)).await;
    assert_eq!(
        refusal(opened).await.code(),
        volo_grpc::Code::Unauthenticated
    );
}

/// The status a stream's opening was refused with: as the call's error, or as the first item
/// of its answer stream.
async fn refusal<Answers, T>(
    opened: Result<volo_grpc::Response<Answers>, volo_grpc::Status>,
) -> volo_grpc::Status
where
    Answers: futures::Stream<Item = Result<T, volo_grpc::Status>> + Unpin,
    T: std::fmt::Debug,
{
    match opened {
        Err(status) => status,
        Ok(answers) => answers
            .into_inner()
            .next()
            .await
            .expect("an end")
            .expect_err("refused"),
    }
}

#[tokio::test]
async fn acquire_frames_count_against_the_connections_waiter_limit() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start_with(
        dir.path(),
        &[("GRPC_MAX_LOCK_WAITERS_PER_CONNECTION", "2".to_string())],
    )
    .await;
    let mut session = Session::open(server.addr, None).await;
    session.acquire(1, "session/limit", 0);
    let first = session.granted(1).await;
    session.acquire(2, "session/limit", 60_000);
    session.acquire(3, "session/limit", 60_000);
    session.acquire(4, "session/limit", 60_000);
    match session.next().await {
        (4, Answer::Error(error)) => {
            assert_eq!(
                error.grpc_code,
                i32::from(volo_grpc::Code::ResourceExhausted)
            );
            assert!(error
                .message
                .contains("GRPC_MAX_LOCK_WAITERS_PER_CONNECTION"));
        }
        other => panic!("{other:?}"),
    }
    // A cancelled waiter frees its place.
    session.send(5, Some(Op::Cancel(2)));
    assert_eq!(session.error(2).await, "cancelled");
    session.acquire(6, "session/limit", 60_000);
    session.release(7, &first.lease_id);
    let mut answers = [session.next().await, session.next().await];
    answers.sort_by_key(|(id, _)| *id);
    let third = match answers {
        [(3, Answer::Acquire(third)), (7, Answer::Release(_))] => third.lease.unwrap(),
        other => panic!("{other:?}"),
    };
    session.release(8, &third.lease_id);
    let mut answers = [session.next().await, session.next().await];
    answers.sort_by_key(|(id, _)| *id);
    assert!(
        matches!(&answers, [(6, Answer::Acquire(r)), (8, Answer::Release(_))] if r.acquired),
        "{answers:?}"
    );
}

/// Each message of a session is capped like a unary request (16 MiB), not the stream's total:
/// frames of 1 MiB go on past 16 MiB in all, and one frame over the cap ends the call with
/// RESOURCE_EXHAUSTED, leaving its operation undone.
#[tokio::test]
async fn each_frame_is_capped_not_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path()).await;
    let mut session = Session::open(server.addr, None).await;
    let mebibyte = "o".repeat(1024 * 1024);
    for id in 1..=17 {
        session.send(
            id,
            Some(Op::Acquire(acquire_request(
                &format!("session/big-{id}"),
                &mebibyte,
                30_000,
                0,
            ))),
        );
        // Granted or refused for its size by the engine: answered, on a stream that goes on.
        assert_eq!(session.next().await.0, id);
    }
    session.acquire(18, "session/after-17-mib", 0);
    session.granted(18).await;

    let too_big = "o".repeat(16 * 1024 * 1024 + 1);
    session.send(
        19,
        Some(Op::Acquire(acquire_request(
            "session/too-big",
            &too_big,
            30_000,
            0,
        ))),
    );
    let end = tokio::time::timeout(Duration::from_secs(20), session.answers.next())
        .await
        .expect("the call ends within 20 s");
    match end {
        Some(Err(status)) => assert_eq!(
            status.code(),
            volo_grpc::Code::ResourceExhausted,
            "{status:?}"
        ),
        other => panic!("expected RESOURCE_EXHAUSTED, got {other:?}"),
    }
    assert!(!held(server.addr, "session/too-big").await);
}

/// A `BatchedSession` stream, driven by hand: one request message per [`BatchedSession::send`].
struct BatchedSession {
    messages: mpsc::UnboundedSender<pb::LockSessionRequests>,
    answers: BoxStream<'static, Result<pb::LockSessionResponses, volo_grpc::Status>>,
}

impl BatchedSession {
    async fn open(addr: std::net::SocketAddr, credential: Option<&str>) -> BatchedSession {
        let (messages, outgoing) = mpsc::unbounded();
        let mut request = volo_grpc::Request::new(outgoing);
        if let Some(c) = credential {
            request.metadata_mut().insert(
                "authorization",
                security_support::bearer(c).parse().unwrap(),
            );
        }
        let answers = locks(addr)
            .batched_session(request)
            .await
            .expect("open a batched session")
            .into_inner();
        BatchedSession {
            messages,
            answers: answers.boxed(),
        }
    }

    /// Send `ops` as one message, frame ids `first_id` on.
    fn send(&self, first_id: u64, ops: Vec<Op>) {
        let frames = (first_id..)
            .zip(ops)
            .map(|(id, op)| pb::LockSessionRequest {
                id,
                timeout_ms: 60_000,
                op: Some(op),
                ..Default::default()
            })
            .collect();
        self.messages
            .unbounded_send(pb::LockSessionRequests { frames })
            .expect("the stream is open");
    }

    async fn next(&mut self) -> Result<pb::LockSessionResponses, volo_grpc::Status> {
        tokio::time::timeout(Duration::from_secs(20), self.answers.next())
            .await
            .expect("an answer within 20 s")
            .expect("the stream is open")
    }

    /// Answer frames until `count` arrived, by id.
    async fn answers(&mut self, count: usize) -> Vec<(u64, Answer)> {
        let mut answers = Vec::new();
        while answers.len() < count {
            let message = self.next().await.expect("an answer message");
            answers.extend(
                message
                    .frames
                    .into_iter()
                    .map(|frame| (frame.id, frame.result.expect("a result"))),
            );
        }
        answers.sort_by_key(|(id, _)| *id);
        answers
    }
}

/// A `BatchedSession` runs every frame of a message and answers what finished together in one
/// message: 40 acquires of one message are granted, their 40 releases (one message) release,
/// and 10 frames answered without running anything (cancels of unknown ids) come back as one
/// message, in order.
#[tokio::test]
async fn batched_frames_are_answered_together() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path()).await;
    let mut session = BatchedSession::open(server.addr, None).await;

    let keys: Vec<String> = (1..=40).map(|i| format!("session/batch-{i}")).collect();
    session.send(
        1,
        keys.iter()
            .map(|key| Op::Acquire(acquire_request(key, "session-test", 30_000, 0)))
            .collect(),
    );
    let granted = session.answers(40).await;
    let mut leases = Vec::new();
    for ((id, answer), expected) in granted.into_iter().zip(1..) {
        match answer {
            Answer::Acquire(resp) if id == expected && resp.acquired => {
                leases.push(resp.lease.unwrap())
            }
            other => panic!("{id}: {other:?}"),
        }
    }
    let mut keys_granted: Vec<_> = leases.iter().map(|l| l.key.to_string()).collect();
    keys_granted.sort();
    let mut expected_keys = keys.clone();
    expected_keys.sort();
    assert_eq!(keys_granted, expected_keys, "each frame its own key");
    assert!(held(server.addr, "session/batch-7").await);

    session.send(
        41,
        leases
            .iter()
            .map(|lease| {
                Op::Release(pb::ReleaseLockRequest {
                    lease_id: lease.lease_id.clone(),
                })
            })
            .collect(),
    );
    let released = session.answers(40).await;
    for (id, answer) in &released {
        assert!(matches!(answer, Answer::Release(_)), "{id}: {answer:?}");
    }
    assert_eq!(released.len(), 40);
    assert!(!held(server.addr, "session/batch-7").await);

    session.send(100, (0..10).map(|_| Op::Cancel(999)).collect());
    let message = session.next().await.expect("one answer message");
    let ids: Vec<u64> = message.frames.iter().map(|frame| frame.id).collect();
    assert_eq!(ids, (100..110).collect::<Vec<_>>(), "one message, in order");
    for frame in message.frames {
        match frame.result {
            Some(Answer::Error(error)) => assert_eq!(error.code, "invalid_argument"),
            other => panic!("{other:?}"),
        }
    }
}

/// The 16 MiB cap applies to a whole message of a `BatchedSession`: one message of 17 frames
/// of 1 MiB ends the call with RESOURCE_EXHAUSTED, none of its operations done.
#[tokio::test]
async fn a_batched_message_is_capped_as_a_whole() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path()).await;
    let mut session = BatchedSession::open(server.addr, None).await;
    let mebibyte = "o".repeat(1024 * 1024);
    session.send(
        1,
        (1..=17)
            .map(|i| {
                Op::Acquire(acquire_request(
                    &format!("session/big-batch-{i}"),
                    &mebibyte,
                    30_000,
                    0,
                ))
            })
            .collect(),
    );
    match session.next().await {
        Err(status) => assert_eq!(
            status.code(),
            volo_grpc::Code::ResourceExhausted,
            "{status:?}"
        ),
        Ok(other) => panic!("expected RESOURCE_EXHAUSTED, got {other:?}"),
    }
    assert!(!held(server.addr, "session/big-batch-1").await);
}

/// Each frame of a batched message is authorized for its own key, like a `Session` frame, and a
/// batched stream without a credential is refused.
#[tokio::test]
async fn every_batched_frame_is_authorized_for_its_own_key() {
    let secured = security_support::start_secured();
    let addr = secured.server.grpc_addr();
    let orders = secured.orders();
    let mut session = BatchedSession::open(addr, Some(&orders)).await;
    session.send(
        1,
        vec![
            Op::Acquire(acquire_request("orders/b1", "session-test", 30_000, 0)),
            Op::Acquire(acquire_request("payments/b1", "session-test", 30_000, 0)),
        ],
    );
    match &session.answers(2).await[..] {
        [(1, Answer::Acquire(granted)), (2, Answer::Error(refused))] => {
            assert!(granted.acquired);
            assert_eq!(refused.code, "permission_denied");
        }
        other => panic!("{other:?}"),
    }

    let (_messages, outgoing) = mpsc::unbounded::<pb::LockSessionRequests>();
    let opened = locks(addr)
        .batched_session(volo_grpc::Request::new(outgoing))
        .await;
    assert_eq!(
        refusal(opened).await.code(),
        volo_grpc::Code::Unauthenticated
    );
}
