//! Lock operations as frames of one `LockService/Session` stream per endpoint
//! (docs/architecture.md, "Lock sessions").
//!
//! A unary call costs a new HTTP/2 stream and a pass through the server's layer stack; on one
//! long-lived stream an acquire, renew or release is one frame each way. Every lock call of a
//! client goes through its endpoint's session: it is opened by the first call, a multiplexer
//! task routes each answer to its caller by id, and it is replaced by the next call once it
//! broke. This module only carries frames: [`Inner::run`](crate::client::Inner) around each
//! attempt still decides timeouts, retries and failover, so a broken stream is, for the calls
//! in flight on it, what a broken unary call is (an ambiguous `unavailable`).
//!
//! The stream is a `BatchedSession`: the multiplexer sends every frame queued since its last
//! write as one message, and the server answers the operations that finished together as one
//! message, so under load a message carries many frames each way. A server without it
//! (UNIMPLEMENTED) is remembered per endpoint and gets the one-frame-per-message `Session`; a
//! server without sessions at all is remembered too, and the calls to it go unary. The calls in
//! flight when the server answered UNIMPLEMENTED go unary (nothing of them was applied).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::channel::{mpsc, oneshot};
use futures::{Stream, StreamExt, TryStreamExt};
use syros_proto::syros::v1 as pb;
use volo_grpc::metadata::{Ascii, MetadataKey, MetadataValue};
use volo_grpc::{Code, Status};

use crate::client::{Endpoint, Inner};
use crate::trace::TraceContext;

pub(crate) use pb::lock_session_request::Op;
pub(crate) use pb::lock_session_response::Result as Answer;

/// The answer routed to a caller.
enum Routed {
    Answer(Answer),
    Failed(Status),
    /// The server has no sessions (or not this kind): go unary.
    Unsupported,
}

/// At most this many frames in one `LockSessionRequests` message: frames are small, so a
/// message stays far below the server's 16 MiB message cap.
const MAX_FRAMES_PER_MESSAGE: usize = 256;

type Pending = Arc<Mutex<Option<HashMap<u64, oneshot::Sender<Routed>>>>>;

/// The session state of one endpoint.
#[derive(Default)]
pub(crate) struct Sessions {
    current: Mutex<Option<Arc<Session>>>,
    /// The server answered `Session` with UNIMPLEMENTED: lock calls go unary.
    unsupported: Arc<AtomicBool>,
    /// The server answered `BatchedSession` with UNIMPLEMENTED: streams are `Session`s.
    unbatched: Arc<AtomicBool>,
}

/// One open stream.
struct Session {
    frames: mpsc::UnboundedSender<pb::LockSessionRequest>,
    /// Callers waiting for an answer, by frame id; `None` once the stream broke.
    pending: Pending,
    next_id: AtomicU64,
    /// The bearer token the stream was opened with: a new token opens a new stream.
    token: Option<String>,
}

impl Session {
    fn broken(&self) -> bool {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
    }
}

/// One operation waiting for its answer; dropping it before then cancels the operation.
struct InFlight {
    session: Arc<Session>,
    id: u64,
    answered: bool,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        let waiting = self
            .session
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
            .and_then(|pending| pending.remove(&self.id))
            .is_some();
        if waiting {
            let _ = self.session.frames.unbounded_send(pb::LockSessionRequest {
                id: self.session.next_id.fetch_add(1, Ordering::Relaxed),
                op: Some(Op::Cancel(self.id)),
                ..Default::default()
            });
        }
    }
}

impl Sessions {
    /// Run `op` on this endpoint's session with the attempt's `timeout`, trace context and
    /// bearer token. `None` when the server has no sessions (the caller goes unary).
    pub(crate) async fn call(
        &self,
        client: &pb::LockServiceClient,
        handle: &tokio::runtime::Handle,
        op: Op,
        timeout: Duration,
        trace: Option<TraceContext>,
        token: Option<String>,
    ) -> Option<Result<Answer, Status>> {
        // A stream may end (UNIMPLEMENTED, or broken) before this call registers on it: nothing
        // was sent then, so the call picks the next stream (or goes unary).
        let (session, id, receiver) = loop {
            if self.unsupported.load(Ordering::Relaxed) {
                return None;
            }
            let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
            let session = match &*current {
                Some(session) if session.token == token && !session.broken() => session.clone(),
                _ => {
                    let session = self.open(client, handle, token.clone());
                    *current = Some(session.clone());
                    session
                }
            };
            let id = session.next_id.fetch_add(1, Ordering::Relaxed);
            let (sender, receiver) = oneshot::channel();
            let registered = session
                .pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_mut()
                .map(|pending| pending.insert(id, sender))
                .is_some();
            if registered {
                break (session, id, receiver);
            }
        };
        let mut in_flight = InFlight {
            session,
            id,
            answered: false,
        };
        let (traceparent, tracestate) = match trace {
            Some(context) => (context.traceparent, context.tracestate.unwrap_or_default()),
            None => Default::default(),
        };
        let frame = pb::LockSessionRequest {
            id,
            timeout_ms: u64::try_from(timeout.as_millis())
                .unwrap_or(u64::MAX)
                .max(1),
            traceparent: traceparent.into(),
            tracestate: tracestate.into(),
            op: Some(op),
        };
        if in_flight.session.frames.unbounded_send(frame).is_err() {
            // The stream ended after this call registered: if the multiplexer already took the
            // call, its answer (e.g. "no sessions: go unary") is on the way; else it was never
            // sent.
            let still_waiting = in_flight
                .session
                .pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_mut()
                .and_then(|pending| pending.remove(&id))
                .is_some();
            if still_waiting {
                in_flight.answered = true;
                return Some(Err(broken()));
            }
        }
        let routed = receiver.await;
        in_flight.answered = true;
        match routed {
            Ok(Routed::Answer(Answer::Error(error))) => Some(Err(status_of(error))),
            Ok(Routed::Answer(answer)) => Some(Ok(answer)),
            Ok(Routed::Failed(status)) => Some(Err(status)),
            Ok(Routed::Unsupported) => None,
            Err(_) => Some(Err(broken())),
        }
    }

    /// Open a stream; its multiplexer task runs on `handle` until the stream ends.
    fn open(
        &self,
        client: &pb::LockServiceClient,
        handle: &tokio::runtime::Handle,
        token: Option<String>,
    ) -> Arc<Session> {
        let (frames, outgoing) = mpsc::unbounded();
        let pending: Pending = Arc::new(Mutex::new(Some(HashMap::new())));
        let authorization = token
            .as_ref()
            .and_then(|t| format!("Bearer {t}").parse::<MetadataValue<_>>().ok());
        let client = client.clone();
        if self.unbatched.load(Ordering::Relaxed) {
            let mut request = volo_grpc::Request::new(outgoing);
            authorize(&mut request, authorization);
            let opening = async move {
                let answers = client.session(request).await?.into_inner();
                Ok(answers.map_ok(std::iter::once))
            };
            handle.spawn(multiplex(
                opening,
                pending.clone(),
                self.unsupported.clone(),
            ));
        } else {
            let messages = outgoing
                .ready_chunks(MAX_FRAMES_PER_MESSAGE)
                .map(|frames| pb::LockSessionRequests { frames });
            let mut request = volo_grpc::Request::new(messages);
            authorize(&mut request, authorization);
            let opening = async move {
                let answers = client.batched_session(request).await?.into_inner();
                Ok(answers.map_ok(|message| message.frames))
            };
            handle.spawn(multiplex(opening, pending.clone(), self.unbatched.clone()));
        }
        Arc::new(Session {
            frames,
            pending,
            next_id: AtomicU64::new(1),
            token,
        })
    }
}

/// Put the stream's bearer token, if any, in its `authorization` metadata.
fn authorize<T>(request: &mut volo_grpc::Request<T>, authorization: Option<MetadataValue<Ascii>>) {
    if let Some(value) = authorization {
        request.metadata_mut().insert("authorization", value);
    }
}

impl Inner {
    /// One attempt of a lock operation as a frame on `endpoint`'s session, with the current
    /// trace context and bearer token; `None` when the server has no sessions (the caller goes
    /// unary).
    pub(crate) fn lock_frame(
        &self,
        endpoint: &Arc<Endpoint>,
        op: Op,
        timeout: Duration,
    ) -> impl std::future::Future<Output = Option<Result<Answer, Status>>> + Send + 'static {
        let trace = crate::trace::current();
        let token = self
            .options
            .auth_token
            .as_ref()
            .and_then(|provider| provider());
        let endpoint = endpoint.clone();
        let handle = self.handle.clone();
        async move {
            endpoint
                .sessions
                .call(&endpoint.locks, &handle, op, timeout, trace, token)
                .await
        }
    }
}

/// An answer of another kind than the operation asked for.
pub(crate) fn unexpected(answer: Answer) -> Status {
    let kind = match answer {
        Answer::Acquire(_) => "acquire",
        Answer::Renew(_) => "renew",
        Answer::Release(_) => "release",
        Answer::Error(_) => "error",
    };
    Status::internal(format!("the lock session answered with a {kind} frame"))
}

/// Open the stream (`opening`) and route its answers until it ends; then fail whoever still
/// waits. An answer message carries one frame or several (`BatchedSession`). UNIMPLEMENTED from
/// a server that does not know the method sets `unimplemented`.
async fn multiplex<Answers, Frames>(
    opening: impl std::future::Future<Output = Result<Answers, Status>>,
    pending: Pending,
    unimplemented: Arc<AtomicBool>,
) where
    Answers: Stream<Item = Result<Frames, Status>> + Unpin,
    Frames: IntoIterator<Item = pb::LockSessionResponse>,
{
    let failure = match opening.await {
        Err(status)
            if status.code() == Code::Unimplemented
                && status
                    .metadata()
                    .get(crate::error::ERROR_CODE_HEADER)
                    .is_none() =>
        {
            unimplemented.store(true, Ordering::Relaxed);
            tracing::debug!("the server does not have this kind of lock session");
            None
        }
        Err(status) => Some(open_failure(&status)),
        Ok(mut answers) => loop {
            match answers.next().await {
                Some(Ok(frames)) => {
                    let mut pending = pending.lock().unwrap_or_else(|p| p.into_inner());
                    for frame in frames {
                        let waiter = pending
                            .as_mut()
                            .and_then(|pending| pending.remove(&frame.id));
                        if let (Some(waiter), Some(answer)) = (waiter, frame.result) {
                            let _ = waiter.send(Routed::Answer(answer));
                        }
                    }
                }
                Some(Err(status)) => {
                    tracing::debug!(error = %status, "lock session broke");
                    break Some(broken());
                }
                None => break Some(broken()),
            }
        },
    };
    let waiting = pending
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
        .unwrap_or_default();
    for waiter in waiting.into_values() {
        let routed = match &failure {
            None => Routed::Unsupported,
            Some(status) => Routed::Failed(copy(status)),
        };
        let _ = waiter.send(routed);
    }
}

/// What a call in flight on a broken stream gets: like a broken unary call, it is unknown
/// whether the server applied it.
fn broken() -> Status {
    Status::unavailable("the lock session stream ended before the answer")
}

/// What the calls waiting for a stream that could not be opened get: the server's refusal as
/// it is (e.g. `unauthenticated`), a transport failure as the unary call would have reported it:
/// never sent when it failed to connect, else unknown.
fn open_failure(status: &Status) -> Status {
    if status
        .metadata()
        .get(crate::error::ERROR_CODE_HEADER)
        .is_some()
    {
        return copy(status);
    }
    let error = crate::error::Error::from_status(status, "locks.session");
    if error.delivery == crate::error::Delivery::NotSent {
        // A Syros `unavailable` code is how a server says "not applied".
        let mut status = Status::unavailable(error.message);
        status.metadata_mut().insert(
            crate::error::ERROR_CODE_HEADER,
            MetadataValue::from_static("unavailable"),
        );
        return status;
    }
    broken()
}

/// A status as the client's error mapping reads it: code, message, Syros error code.
fn copy(status: &Status) -> Status {
    let mut copy = Status::new(status.code(), status.message().to_string());
    if let Some(code) = status.metadata().get(crate::error::ERROR_CODE_HEADER) {
        copy.metadata_mut()
            .insert(crate::error::ERROR_CODE_HEADER, code.clone());
    }
    copy
}

/// The status a unary call would have ended with, from an error frame.
fn status_of(error: pb::LockSessionError) -> Status {
    let mut status = Status::new(Code::from(error.grpc_code), error.message.to_string());
    let metadata = status.metadata_mut();
    if let Ok(code) = error.code.parse::<MetadataValue<_>>() {
        if !error.code.is_empty() {
            metadata.insert(crate::error::ERROR_CODE_HEADER, code);
        }
    }
    for (name, value) in &error.details {
        if let (Ok(name), Ok(value)) = (
            MetadataKey::from_bytes(name.as_bytes()),
            value.parse::<MetadataValue<_>>(),
        ) {
            metadata.insert(name, value);
        }
    }
    status
}
