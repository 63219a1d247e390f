//! `LockService/Session`: acquire, renew and release as frames of one bidirectional stream
//! (docs/architecture.md, "Lock sessions"); `LockService/BatchedSession` is the same with
//! several frames per message each way ([`serve_batched`]).
//!
//! One stream carries many operations, so the per-call work of HTTP/2 and the layer stack is paid
//! once per stream instead of once per operation. Everything a unary call gets from the layers
//! is done here per frame: its `syros.api` span (the frame's `traceparent` as parent), the rate
//! limits and permission check ([`FrameAuth`]), the per-connection waiter limit
//! ([`ConnectionWaiters`]) and its own timeout. Errors are the unary call's statuses, carried in
//! an error frame ([`error_frame`]).
//!
//! The answer stream is also what drives the operations: it polls the incoming frames and the
//! operations in flight together, in the connection's task, and yields answers as they finish.
//! When the client goes away the stream is dropped with every pending operation: a waiting
//! acquire leaves its queue (the engine's hand-off slot releases a lease handed to it at that
//! instant), and a release the engine has started finishes on its own (`run_detached`).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures::future::{AbortHandle, Abortable, BoxFuture};
use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use syros_engine::{Engine, Error, ErrorKind};
use syros_proto::syros::v1 as pb;
use tracing::Instrument;
use volo_grpc::{BoxStream, RecvStream, Status};

use pb::lock_session_request::Op;
use pb::lock_session_response::Result as Answer;

use super::layers::{server_fault, ConnectionWaiters};
use super::{locks, status, ERROR_CODE_HEADER};
use crate::security::grpc::FrameAuth;
use crate::security::Permission;

/// Metadata of a refusal worth passing on in [`pb::LockSessionError::details`].
const DETAIL_HEADERS: [&str; 1] = ["retry-after"];

/// At most this many answers go in one `LockSessionResponses` message (what the client puts in
/// one request message too): frames are small, so a message stays far below the 16 MiB cap.
pub const MAX_FRAMES_PER_MESSAGE: usize = 256;

/// Serve the frames of one session stream; the answers, in completion order.
pub fn serve(
    engine: Arc<Engine>,
    auth: Arc<FrameAuth>,
    waiters: Option<ConnectionWaiters>,
    frames: RecvStream<pb::LockSessionRequest>,
) -> BoxStream<'static, Result<pb::LockSessionResponse, Status>> {
    let session = Session::new(engine, auth, waiters, Box::pin(frames));
    Box::pin(futures::stream::unfold(session, |mut session| async move {
        let answer = session.next_answer().await?;
        Some((answer, session))
    }))
}

/// Serve a `BatchedSession`: the frames of each request message in order, and the answers that
/// are ready together as one response message.
pub fn serve_batched(
    engine: Arc<Engine>,
    auth: Arc<FrameAuth>,
    waiters: Option<ConnectionWaiters>,
    messages: RecvStream<pb::LockSessionRequests>,
) -> BoxStream<'static, Result<pb::LockSessionResponses, Status>> {
    let frames = messages.flat_map(|message| match message {
        Ok(message) => futures::stream::iter(message.frames.into_iter().map(Ok)).left_stream(),
        Err(err) => futures::stream::once(std::future::ready(Err(err))).right_stream(),
    });
    let session = Session::new(engine, auth, waiters, Box::pin(frames));
    Box::pin(futures::stream::unfold(session, |mut session| async move {
        let answers = session.next_answers().await?;
        Some((answers, session))
    }))
}

/// An operation in flight: its output is its id and its answer (`None` once cancelled).
type Running = BoxFuture<'static, (u64, Option<Answer>)>;

struct Session {
    engine: Arc<Engine>,
    auth: Arc<FrameAuth>,
    waiters: Option<ConnectionWaiters>,
    /// `None` once the client closed its side.
    frames: Option<BoxStream<'static, Result<pb::LockSessionRequest, Status>>>,
    running: FuturesUnordered<Running>,
    /// By id: how to cancel it, and whether it is an acquire.
    in_flight: HashMap<u64, (AbortHandle, bool)>,
    /// Answers decided without running anything (malformed frames, cancellations).
    ready: VecDeque<pb::LockSessionResponse>,
    /// The incoming stream failed and its status was the last item: nothing more to answer.
    ended: bool,
    /// The status that ends the stream, held back while the answers before it are sent.
    failure: Option<Status>,
}

impl Session {
    fn new(
        engine: Arc<Engine>,
        auth: Arc<FrameAuth>,
        waiters: Option<ConnectionWaiters>,
        frames: BoxStream<'static, Result<pb::LockSessionRequest, Status>>,
    ) -> Self {
        Session {
            engine,
            auth,
            waiters,
            frames: Some(frames),
            running: FuturesUnordered::new(),
            in_flight: HashMap::new(),
            ready: VecDeque::new(),
            ended: false,
            failure: None,
        }
    }

    /// The next answer, then every other answer already decided (up to
    /// [`MAX_FRAMES_PER_MESSAGE`]), as one message; a failure of the incoming stream after some
    /// answers ends the stream after they are sent.
    async fn next_answers(&mut self) -> Option<Result<pb::LockSessionResponses, Status>> {
        if let Some(failure) = self.failure.take() {
            return Some(Err(failure));
        }
        let mut frames = match self.next_answer().await? {
            Ok(answer) => vec![answer],
            Err(failure) => return Some(Err(failure)),
        };
        while frames.len() < MAX_FRAMES_PER_MESSAGE {
            // Polled once: what is not ready waits for the next message (`next_answer` only
            // awaits `next()` of its streams, so dropping it loses nothing).
            let polled = futures::poll!(std::pin::pin!(self.next_answer()));
            match polled {
                Poll::Ready(Some(Ok(answer))) => frames.push(answer),
                Poll::Ready(Some(Err(failure))) => {
                    self.failure = Some(failure);
                    break;
                }
                Poll::Ready(None) | Poll::Pending => break,
            }
        }
        Some(Ok(pb::LockSessionResponses { frames }))
    }

    async fn next_answer(&mut self) -> Option<Result<pb::LockSessionResponse, Status>> {
        if self.ended {
            return None;
        }
        loop {
            if let Some(answer) = self.ready.pop_front() {
                return Some(Ok(answer));
            }
            let Some(frames) = self.frames.as_mut() else {
                // Half-closed: answer what is still running (no acquire: those were dropped).
                let (id, answer) = self.running.next().await?;
                if let Some(answer) = answer {
                    self.in_flight.remove(&id);
                    return Some(Ok(response(id, answer)));
                }
                continue;
            };
            tokio::select! {
                Some((id, answer)) = self.running.next(), if !self.running.is_empty() => {
                    // A cancelled operation was answered (and forgotten) when cancelled; its id
                    // may be in use again.
                    if let Some(answer) = answer {
                        self.in_flight.remove(&id);
                        return Some(Ok(response(id, answer)));
                    }
                }
                frame = frames.next() => match frame {
                    Some(Ok(frame)) => self.start(frame),
                    // The client is done: its pending acquires are dropped, the rest answered.
                    None => {
                        self.frames = None;
                        for (handle, acquire) in self.in_flight.values() {
                            if *acquire {
                                handle.abort();
                            }
                        }
                        self.in_flight.retain(|_, (_, acquire)| !*acquire);
                    }
                    // The stream broke (or a message was over the size cap): its status ends the
                    // call, the operations in flight are dropped.
                    Some(Err(err)) => {
                        tracing::debug!(error = %err, "lock session ended");
                        self.ended = true;
                        return Some(Err(err));
                    }
                },
            }
        }
    }

    fn reject(&mut self, id: u64, err: Error) {
        self.ready.push_back(pb::LockSessionResponse {
            id,
            result: Some(Answer::Error(error_frame(&status(err)))),
        });
    }

    fn start(&mut self, frame: pb::LockSessionRequest) {
        let id = frame.id;
        let op = match frame.op {
            None => {
                return self.reject(
                    id,
                    Error::invalid("lock session frame without an operation"),
                )
            }
            Some(Op::Cancel(target)) => {
                return match self.in_flight.remove(&target) {
                    Some((handle, _)) => {
                        handle.abort();
                        self.reject(
                            target,
                            Error::new(
                                ErrorKind::Cancelled,
                                format!("operation {target} cancelled by the client"),
                            ),
                        );
                    }
                    None => self.reject(
                        id,
                        Error::invalid(format!("no operation {target} in flight to cancel")),
                    ),
                };
            }
            Some(op) => op,
        };
        if self.in_flight.contains_key(&id) {
            return self.reject(
                id,
                Error::invalid(format!("operation id {id} is already in flight")),
            );
        }
        let acquire = matches!(op, Op::Acquire(_));
        let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_string());
        let call = crate::telemetry::api_call(
            "grpc",
            method(&op),
            nonempty(&frame.traceparent).as_deref(),
            nonempty(&frame.tracestate).as_deref(),
            None,
        );
        let span = call.span;
        let timeout = (frame.timeout_ms > 0).then(|| Duration::from_millis(frame.timeout_ms));
        let work = run(
            self.engine.clone(),
            self.auth.clone(),
            self.waiters.clone(),
            op,
        );
        let work = async move {
            match timeout {
                Some(limit) => tokio::time::timeout(limit, work)
                    .await
                    .unwrap_or_else(|_| Err(Status::deadline_exceeded("Timeout expired"))),
                None => work.await,
            }
        }
        .instrument(span.clone());
        let (handle, registration) = AbortHandle::new_pair();
        let running = Abortable::new(work, registration).map(move |outcome| {
            let answer = match outcome {
                Ok(Ok(answer)) => {
                    crate::telemetry::record_outcome(&span, "OK", None, false);
                    answer
                }
                Ok(Err(status)) => {
                    let error = error_frame(&status);
                    crate::telemetry::record_outcome(
                        &span,
                        &format!("{:?}", status.code()),
                        (!error.code.is_empty()).then_some(&*error.code),
                        server_fault(status.code()),
                    );
                    Answer::Error(error)
                }
                Err(_aborted) => {
                    crate::telemetry::record_outcome(&span, "Cancelled", Some("cancelled"), false);
                    return (id, None);
                }
            };
            (id, Some(answer))
        });
        self.running.push(Box::pin(running));
        self.in_flight.insert(id, (handle, acquire));
    }
}

/// The unary method a frame stands for (the name of its `syros.api` span).
fn method(op: &Op) -> &'static str {
    match op {
        Op::Acquire(_) => "syros.v1.LockService/Acquire",
        Op::Renew(_) => "syros.v1.LockService/Renew",
        Op::Release(_) => "syros.v1.LockService/Release",
        Op::Cancel(_) => "syros.v1.LockService/Session",
    }
}

/// One operation, with the checks its unary call gets from the layers.
async fn run(
    engine: Arc<Engine>,
    auth: Arc<FrameAuth>,
    waiters: Option<ConnectionWaiters>,
    op: Op,
) -> Result<Answer, Status> {
    match op {
        Op::Acquire(req) => {
            auth.check(Permission::LocksAcquire, Some(&req.key)).await?;
            let _slot = waiters.as_ref().map(ConnectionWaiters::take).transpose()?;
            locks::acquire(&engine, req).await.map(Answer::Acquire)
        }
        Op::Renew(req) => {
            auth.check(Permission::LocksAcquire, None).await?;
            locks::renew(&engine, req).await.map(Answer::Renew)
        }
        Op::Release(req) => {
            auth.check(Permission::LocksAcquire, None).await?;
            locks::release(&engine, req).await.map(Answer::Release)
        }
        Op::Cancel(_) => Err(status(Error::invalid("a cancel is not an operation"))),
    }
}

/// The error frame of a status a unary call would have ended with.
pub fn error_frame(status: &Status) -> pb::LockSessionError {
    let header = |name: &str| status.metadata().get(name).and_then(|v| v.to_str().ok());
    pb::LockSessionError {
        code: header(ERROR_CODE_HEADER)
            .unwrap_or_default()
            .to_string()
            .into(),
        grpc_code: i32::from(status.code()),
        message: status.message().to_string().into(),
        details: DETAIL_HEADERS
            .iter()
            .filter_map(|name| Some(((*name).into(), header(name)?.to_string().into())))
            .collect(),
    }
}

fn response(id: u64, answer: Answer) -> pb::LockSessionResponse {
    pb::LockSessionResponse {
        id,
        result: Some(answer),
    }
}
