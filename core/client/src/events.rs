//! The event store: append with optimistic concurrency, reads, and subscriptions that resume
//! after reconnecting without gaps or duplicates.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use syros_proto::syros::v1 as pb;
use tokio::sync::mpsc;
use volo_grpc::Status;

use crate::client::{CallSpec, Client, Inner};
use crate::error::{Error, ErrorKind, Result};

/// An event to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventData {
    /// Writer-chosen id (at most 128 bytes); the client generates a UUID when `None`, which is
    /// what makes retried appends safe to recognise.
    pub event_id: Option<String>,
    /// The event's type name.
    pub event_type: String,
    /// A JSON document.
    pub data_json: String,
    /// A JSON document, or `None`.
    pub metadata_json: Option<String>,
}

impl EventData {
    /// An event of `event_type` with JSON `data_json`.
    pub fn new(event_type: impl Into<String>, data_json: impl Into<String>) -> Self {
        EventData {
            event_id: None,
            event_type: event_type.into(),
            data_json: data_json.into(),
            metadata_json: None,
        }
    }

    /// Set the event id.
    pub fn with_id(mut self, event_id: impl Into<String>) -> Self {
        self.event_id = Some(event_id.into());
        self
    }

    /// Set the JSON metadata.
    pub fn with_metadata(mut self, metadata_json: impl Into<String>) -> Self {
        self.metadata_json = Some(metadata_json.into());
        self
    }
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    /// Its stream.
    pub stream: String,
    /// Version within the stream (0, 1, 2, ... without gaps).
    pub version: u64,
    /// Position among all events of all streams (from 1).
    pub global_position: u64,
    /// The event id.
    pub event_id: String,
    /// The event's type name.
    pub event_type: String,
    /// A JSON document.
    pub data_json: String,
    /// A JSON document, or `None`.
    pub metadata_json: Option<String>,
    /// When it was appended (ms since the Unix epoch, server clock).
    pub created_at_ms: i64,
}

impl From<pb::RecordedEvent> for RecordedEvent {
    fn from(e: pb::RecordedEvent) -> Self {
        RecordedEvent {
            stream: e.stream.to_string(),
            version: e.version,
            global_position: e.global_position,
            event_id: e.event_id.to_string(),
            event_type: e.event_type.to_string(),
            data_json: e.data_json.to_string(),
            metadata_json: (!e.metadata_json.is_empty()).then(|| e.metadata_json.to_string()),
            created_at_ms: e.created_at_ms,
        }
    }
}

/// The version a stream must be at for an append to succeed, and the read direction: the one
/// vocabulary (`syros-vocab`).
pub use syros_vocab::{Direction, ExpectedVersion};

/// What an append wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendResult {
    /// Version of the last event appended.
    pub last_version: u64,
    /// Global position of the first event appended.
    pub first_position: u64,
    /// Global position of the last event appended.
    pub last_position: u64,
}

/// Where a read starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFrom {
    /// At this version (stream) or global position (all), inclusive.
    At(u64),
    /// At the newest event (backwards reads only).
    End,
}

/// A page of events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResult {
    /// The events read.
    pub events: Vec<RecordedEvent>,
    /// The stream's last version (stream reads) or the store's last position (reads of all).
    pub last: u64,
    /// Whether the stream (or any event) exists.
    pub exists: bool,
}

/// Where a subscription starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscribeFrom {
    /// From the first event.
    Start,
    /// From this version (stream) or global position (all), inclusive.
    At(u64),
    /// Only events appended after the subscription starts.
    End,
}

/// The event operations of a [`Client`]; obtained with [`Client::events`], cheap to clone.
#[derive(Clone)]
pub struct Events {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events").finish_non_exhaustive()
    }
}

impl Client {
    /// Event store operations over this client's connection.
    pub fn events(&self) -> Events {
        Events {
            inner: self.inner.clone(),
        }
    }
}

fn direction(direction: Direction, from: ReadFrom) -> (pb::ReadDirection, u64, bool) {
    let dir = match direction {
        Direction::Forwards => pb::ReadDirection::FORWARDS,
        Direction::Backwards => pb::ReadDirection::BACKWARDS,
    };
    match from {
        ReadFrom::At(at) => (dir, at, false),
        ReadFrom::End => (dir, 0, true),
    }
}

impl Events {
    /// Append `events` atomically, only if the stream is at `expected`. A mismatch is an error of
    /// kind [`ErrorKind::VersionConflict`].
    ///
    /// Retries are safe, so an append is retried like a read, including after a lost answer or
    /// an [`ErrorKind::OutcomeUnknown`] from the server (its store connection was lost during
    /// COMMIT): events without an id get a UUID here, once, and every attempt sends the same
    /// ids; the server acknowledges a repeat of an append that already committed with the
    /// same result instead of storing it twice or reporting a conflict. With
    /// [`ExpectedVersion::Any`] the server recognises a repeat only while the events are still
    /// the stream's last (see docs/storage.md).
    pub async fn append(
        &self,
        stream: &str,
        events: Vec<EventData>,
        expected: ExpectedVersion,
    ) -> Result<AppendResult> {
        let inner = &self.inner;
        let events: Vec<pb::EventData> = events
            .into_iter()
            .map(|e| pb::EventData {
                event_id: e
                    .event_id
                    .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
                    .into(),
                event_type: e.event_type.into(),
                data_json: e.data_json.into(),
                metadata_json: e.metadata_json.unwrap_or_default().into(),
            })
            .collect();
        let expected_pb = pb::ExpectedVersion {
            kind: Some(match expected {
                ExpectedVersion::Any => pb::expected_version::Kind::Any(true),
                ExpectedVersion::NoStream => pb::expected_version::Kind::NoStream(true),
                ExpectedVersion::Exact(v) => pb::expected_version::Kind::Exact(v),
            }),
        };
        // Idempotent by the event ids fixed above (the server's rule, not a guess here).
        let spec = inner.spec("events.append", true);
        inner
            .run(&spec, |ep, timeout| {
                let request = inner.request(
                    pb::AppendEventsRequest {
                        stream: stream.to_string().into(),
                        events: events.clone(),
                        expected_version: Some(expected_pb.clone()),
                    },
                    Some(timeout),
                );
                async move { Ok(ep.events.append(request?).await?.into_inner()) }
            })
            .await
            .result
            .map(|resp| AppendResult {
                last_version: resp.last_version,
                first_position: resp.first_position,
                last_position: resp.last_position,
            })
    }

    /// Read `stream` from a version, at most `limit` events (0 = server default of 100).
    pub async fn read_stream(
        &self,
        stream: &str,
        from: ReadFrom,
        direction: Direction,
        limit: u32,
    ) -> Result<ReadResult> {
        let inner = &self.inner;
        let (dir, at, from_end) = self::direction(direction, from);
        let spec = inner.spec("events.read_stream", true);
        inner
            .run(&spec, |ep, timeout| {
                let request = inner.request(
                    pb::ReadStreamRequest {
                        stream: stream.to_string().into(),
                        from_version: at,
                        direction: dir,
                        limit,
                        from_end,
                    },
                    Some(timeout),
                );
                async move { Ok(ep.events.read_stream(request?).await?.into_inner()) }
            })
            .await
            .result
            .map(read_result)
    }

    /// Read all streams in global order from a position, at most `limit` events.
    pub async fn read_all(
        &self,
        from: ReadFrom,
        direction: Direction,
        limit: u32,
    ) -> Result<ReadResult> {
        let inner = &self.inner;
        let (dir, at, from_end) = self::direction(direction, from);
        let spec = inner.spec("events.read_all", true);
        inner
            .run(&spec, |ep, timeout| {
                let request = inner.request(
                    pb::ReadAllRequest {
                        from_position: at,
                        direction: dir,
                        limit,
                        from_end,
                    },
                    Some(timeout),
                );
                async move { Ok(ep.events.read_all(request?).await?.into_inner()) }
            })
            .await
            .result
            .map(read_result)
    }

    /// Follow one stream: catch up from `from`, then receive new events live.
    ///
    /// Returns once the subscription is established: its start is pinned (for
    /// [`SubscribeFrom::End`], every event appended after this returns is delivered) and the
    /// server accepted it. It then runs on the client's runtime and survives reconnects (server
    /// restarts, failover): it resumes right after the last event it delivered, so no event is
    /// skipped or delivered twice. It reconnects per [`crate::ClientOptions::resubscribe`]; when
    /// that gives up, or on a non-retryable error, the stream yields the error and ends.
    pub async fn subscribe(&self, stream: &str, from: SubscribeFrom) -> Result<Subscription> {
        Subscription::start(self.inner.clone(), Some(stream.to_string()), from).await
    }

    /// Follow every stream in global order, like [`subscribe`](Self::subscribe).
    pub async fn subscribe_all(&self, from: SubscribeFrom) -> Result<Subscription> {
        Subscription::start(self.inner.clone(), None, from).await
    }
}

fn read_result(resp: pb::ReadEventsResponse) -> ReadResult {
    ReadResult {
        events: resp.events.into_iter().map(RecordedEvent::from).collect(),
        last: resp.last,
        exists: resp.exists,
    }
}

type ServerStream = BoxStream<'static, Result<pb::RecordedEvent, Status>>;

/// A live event subscription: a [`Stream`] of events (and at most one final error). Dropping it
/// (or [`close`](Subscription::close)) ends the server-side subscription.
pub struct Subscription {
    events: mpsc::Receiver<Result<RecordedEvent>>,
    task: tokio::task::AbortHandle,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription").finish_non_exhaustive()
    }
}

impl Subscription {
    async fn start(
        inner: Arc<Inner>,
        stream: Option<String>,
        from: SubscribeFrom,
    ) -> Result<Subscription> {
        let next = resolve_start(&inner, stream.as_deref(), from).await?;
        let spec = inner.spec(OP, true);
        let first = open(&inner, &spec, stream.as_deref(), next).await?;
        let (tx, rx) = mpsc::channel(256);
        let task = inner
            .handle
            .clone()
            .spawn(follow(inner, stream, next, first, tx));
        Ok(Subscription {
            events: rx,
            task: task.abort_handle(),
        })
    }

    /// The next event; `None` once the subscription has ended.
    pub async fn next_event(&mut self) -> Option<Result<RecordedEvent>> {
        self.events.recv().await
    }

    /// Stop following.
    pub fn close(&mut self) {
        self.task.abort();
        self.events.close();
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Stream for Subscription {
    type Item = Result<RecordedEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.events.poll_recv(cx)
    }
}

const OP: &str = "events.subscribe";

/// The first version/position a new subscription must deliver.
async fn resolve_start(
    inner: &Arc<Inner>,
    stream: Option<&str>,
    from: SubscribeFrom,
) -> Result<u64> {
    match from {
        SubscribeFrom::Start => Ok(0),
        SubscribeFrom::At(at) => Ok(at),
        SubscribeFrom::End => {
            // Pin "the end" to a concrete position now, so a reconnect before the first event
            // still resumes exactly here.
            let events = Events {
                inner: inner.clone(),
            };
            let read = match stream {
                Some(stream) => {
                    events
                        .read_stream(stream, ReadFrom::End, Direction::Backwards, 1)
                        .await?
                }
                None => {
                    events
                        .read_all(ReadFrom::End, Direction::Backwards, 1)
                        .await?
                }
            };
            Ok(if read.exists {
                read.last.saturating_add(1)
            } else {
                0
            })
        }
    }
}

/// Open a server-side subscription at `next`, retrying and failing over per `spec`. The
/// per-attempt timeout covers only the opening (no `grpc-timeout` is sent: the stream is
/// long-lived).
async fn open(
    inner: &Inner,
    spec: &CallSpec<'_>,
    stream: Option<&str>,
    next: u64,
) -> Result<ServerStream> {
    inner
        .run(spec, |ep, _timeout| {
            let request = inner.request(
                pb::SubscribeRequest {
                    stream: stream.unwrap_or_default().to_string().into(),
                    start_at: next,
                    from_end: false,
                },
                None,
            );
            async move {
                let events = ep.events.subscribe(request?).await?.into_inner();
                Ok(events.boxed())
            }
        })
        .await
        .result
}

async fn follow(
    inner: Arc<Inner>,
    stream: Option<String>,
    mut next: u64,
    mut events: ServerStream,
    tx: mpsc::Sender<Result<RecordedEvent>>,
) {
    let policy = inner.options.resubscribe.clone();
    let mut failures: u32 = 0;
    loop {
        let err = tokio::select! {
            _ = tx.closed() => return,
            err = deliver(&mut events, stream.as_deref(), &mut next, &mut failures, &tx) => match err {
                Some(err) => err,
                None => return,
            },
        };
        if !err.retryable {
            let _ = tx.send(Err(err)).await;
            return;
        }
        // A stream that breaks again without delivering anything backs off before reopening.
        failures = failures.saturating_add(1);
        if failures > 1 {
            let pause = policy.backoff(failures - 2);
            tokio::select! {
                _ = tx.closed() => return,
                _ = tokio::time::sleep(pause) => {}
            }
        }
        tracing::debug!(error = %err, failures, next, "subscription reconnecting");
        let spec = CallSpec {
            op: OP,
            idempotent: true,
            extra_timeout: std::time::Duration::ZERO,
            deadline: policy.deadline.map(|d| tokio::time::Instant::now() + d),
            policy: &policy,
        };
        events = tokio::select! {
            _ = tx.closed() => return,
            opened = open(&inner, &spec, stream.as_deref(), next) => match opened {
                Ok(events) => events,
                Err(err) => {
                    let _ = tx.send(Err(err)).await;
                    return;
                }
            },
        };
    }
}

/// Forward events from one server stream, advancing `next` past each. Returns why the stream
/// stopped, or `None` when nobody listens any more.
async fn deliver(
    events: &mut ServerStream,
    stream: Option<&str>,
    next: &mut u64,
    failures: &mut u32,
    tx: &mpsc::Sender<Result<RecordedEvent>>,
) -> Option<Error> {
    loop {
        match events.next().await {
            Some(Ok(event)) => {
                let at = if stream.is_some() {
                    event.version
                } else {
                    event.global_position
                };
                if at < *next {
                    continue; // already delivered before a reconnect
                }
                if stream.is_some() && at > *next {
                    tracing::warn!(expected = *next, got = at, "subscription skipped versions");
                }
                *next = at.saturating_add(1);
                *failures = 0;
                if tx.send(Ok(event.into())).await.is_err() {
                    return None;
                }
            }
            Some(Err(status)) => return Some(Error::from_status(&status, OP)),
            None => {
                return Some(Error::new(
                    ErrorKind::Unavailable,
                    "the server ended the subscription",
                ))
            }
        }
    }
}
