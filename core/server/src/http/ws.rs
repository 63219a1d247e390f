//! The WebSocket API on `WS_PORT` (docs/websocket-api.md): JSON text messages to subscribe to
//! one event stream or to all streams (catch-up then live), and to lock changes by key prefix,
//! as many subscriptions per connection as [`MAX_SUBSCRIPTIONS`].
//!
//! Memory per connection is bounded: messages wait in an outbox of at most
//! [`OUTBOX_MESSAGES`] messages and [`OUTBOX_BYTES`] bytes. A client that falls that far behind,
//! or does not take a frame within [`WRITE_TIMEOUT`], is cut off with close code 1008 and the
//! reason `slow consumer`; so is a lock subscription that misses changes because it fell more
//! than [`syros_engine::locks::LOCK_CHANGE_BUFFER`] changes behind. The server pings every [`PING_INTERVAL`] and closes a connection from
//! which nothing (not even a pong) arrived for [`IDLE_TIMEOUT`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use axum::Extension;
use futures::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use syros_engine::{Engine, SubscriptionStart, SubscriptionTarget};
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;

use super::events::RecordedEventBody;
use super::locks::LockChangeBody;
use super::{metrics, AppState};
use crate::security::{Denied, Permission, Principal};

/// The principal of an authenticated connection (only authenticated ones get this far).
fn who(principal: &Option<Principal>) -> Principal {
    principal.clone().unwrap_or_else(Principal::nobody)
}

/// Most messages waiting to be written to one connection.
pub const OUTBOX_MESSAGES: usize = 1024;
/// Most bytes waiting to be written to one connection.
pub const OUTBOX_BYTES: usize = 8 * 1024 * 1024;
/// Longest wait for the client to take one frame.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the server sends a WebSocket ping.
pub const PING_INTERVAL: Duration = Duration::from_secs(20);
/// How long a connection may stay silent (no message, no pong).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Most subscriptions on one connection.
pub const MAX_SUBSCRIPTIONS: usize = 64;
/// Largest message a client may send.
pub const MAX_CLIENT_MESSAGE_BYTES: usize = 64 * 1024;
/// Longest subscription id.
const MAX_ID_BYTES: usize = 128;

/// Close code for a policy violation (slow consumer).
const CLOSE_POLICY: u16 = 1008;
/// Close code for going away (server shutdown, idle).
pub(super) const CLOSE_AWAY: u16 = 1001;

/// Messages a client sends (`type` names the variant).
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientMessage {
    /// Follow `stream` (all streams when absent) from version/position `from` (default 0), or
    /// only new events with `from_end: true`.
    Subscribe {
        id: String,
        stream: Option<String>,
        from: Option<u64>,
        #[serde(default)]
        from_end: bool,
    },
    /// Follow changes of the locks whose key starts with `prefix` (every lock when empty).
    SubscribeLocks {
        id: String,
        #[serde(default)]
        prefix: String,
    },
    Unsubscribe {
        id: String,
    },
    /// The credential, as the first message of a connection whose handshake carried none
    /// (browsers cannot set headers on a WebSocket).
    Authenticate {
        token: String,
    },
    /// Application-level ping for clients that cannot send WebSocket pings.
    Ping {
        #[serde(default)]
        nonce: Option<Value>,
    },
}

/// Messages the server sends.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ServerMessage {
    Subscribed {
        id: String,
    },
    Event {
        id: String,
        event: RecordedEventBody,
    },
    Lock {
        id: String,
        change: LockChangeBody,
    },
    Unsubscribed {
        id: String,
    },
    Pong {
        #[serde(skip_serializing_if = "Option::is_none")]
        nonce: Option<Value>,
    },
    /// The credential of the first message was accepted.
    Authenticated {
        principal: String,
    },
    Error {
        /// The subscription concerned, `null` for a connection-level error.
        id: Option<String>,
        code: String,
        message: String,
        details: Map<String, Value>,
    },
}

impl ServerMessage {
    fn error(id: Option<String>, err: syros_engine::Error) -> Self {
        let body = super::error::ApiError::from(err).body;
        ServerMessage::Error {
            id,
            code: body.code,
            message: body.message,
            details: body.details,
        }
    }

    fn denied(id: Option<String>, denied: Denied) -> Self {
        let body = super::error::ApiError::from(denied).body;
        ServerMessage::Error {
            id,
            code: body.code,
            message: body.message,
            details: body.details,
        }
    }
}

/// How long a connection without a credential in its handshake has to send `authenticate`.
pub const AUTHENTICATE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the subscriptions and the socket writer of one connection share about its outbox.
#[derive(Default)]
struct OutboxState {
    queued_bytes: AtomicUsize,
    /// Signalled when the client fell too far behind.
    overflow: Notify,
    /// Set once the connection is being cut off as a slow consumer (counted once).
    slow: AtomicBool,
    /// Why the connection is cut off, when it is not a full outbox.
    reason: OnceLock<String>,
}

/// The bounded queue between subscriptions and the socket writer.
#[derive(Clone)]
struct Outbox {
    tx: mpsc::Sender<String>,
    state: Arc<OutboxState>,
}

impl Outbox {
    /// Queue a message; false when the connection is gone or has just been cut off.
    fn push(&self, message: &ServerMessage) -> bool {
        let text = match serde_json::to_string(message) {
            Ok(text) => text,
            Err(err) => {
                tracing::error!(error = %err, "cannot encode a WebSocket message");
                return true;
            }
        };
        let len = text.len();
        if self.state.queued_bytes.fetch_add(len, Ordering::SeqCst) + len > OUTBOX_BYTES {
            self.state.queued_bytes.fetch_sub(len, Ordering::SeqCst);
            self.cut_off();
            return false;
        }
        match self.tx.try_send(text) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.state.queued_bytes.fetch_sub(len, Ordering::SeqCst);
                self.cut_off();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

impl Outbox {
    fn cut_off(&self) {
        slow_consumer(&self.state.slow);
        self.state.overflow.notify_one();
    }

    /// Cut the connection off as a slow consumer for another reason than a full outbox.
    fn cut_off_because(&self, reason: String) {
        let _ = self.state.reason.set(reason);
        self.cut_off();
    }
}

/// Counts a slow consumer once per connection.
fn slow_consumer(slow: &AtomicBool) {
    if !slow.swap(true, Ordering::SeqCst) {
        metrics::counter_slow_consumer();
    }
}

/// `GET /` or `/ws` on `WS_PORT`: upgrade to the event WebSocket API.
/// Without a principal from the handshake (see `auth::authenticate_or_defer`), the first
/// message must be `authenticate`.
pub async fn upgrade(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    principal: Option<Extension<Principal>>,
) -> Response {
    ws.max_message_size(MAX_CLIENT_MESSAGE_BYTES)
        .max_frame_size(MAX_CLIENT_MESSAGE_BYTES)
        .on_upgrade(move |socket| connection(socket, state, principal.map(|p| p.0)))
}

fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from(reason),
    }))
}

/// Owns the socket's sending half: writes queued messages, pings, and the closing frame.
async fn writer(
    mut sink: futures::stream::SplitSink<WebSocket, Message>,
    mut rx: mpsc::Receiver<String>,
    state: Arc<OutboxState>,
    mut closing: mpsc::Receiver<(u16, String)>,
    mut stopping: watch::Receiver<bool>,
) {
    let mut ping =
        tokio::time::interval_at(tokio::time::Instant::now() + PING_INTERVAL, PING_INTERVAL);
    let goodbye = loop {
        tokio::select! {
            biased;
            _ = state.overflow.notified() => {
                let reason = state.reason.get().cloned().unwrap_or_else(|| format!(
                    "more than {OUTBOX_MESSAGES} messages or {OUTBOX_BYTES} bytes unsent"
                ));
                break Some(close(CLOSE_POLICY, &format!("slow consumer: {reason}")));
            }
            _ = async { stopping.wait_for(|stop| *stop).await.map(|_| ()) } => {
                break Some(close(CLOSE_AWAY, "server shutting down"))
            }
            request = closing.recv() => {
                // Deliver what was queued before the close request (such as the error that
                // explains it), within the write timeout.
                while let Ok(text) = rx.try_recv() {
                    state.queued_bytes.fetch_sub(text.len(), Ordering::SeqCst);
                    let sent = tokio::time::timeout(WRITE_TIMEOUT, sink.send(Message::Text(text.into()))).await;
                    if !matches!(sent, Ok(Ok(()))) {
                        break;
                    }
                }
                break request.map(|(code, reason)| close(code, &reason))
            }
            _ = ping.tick() => {
                match tokio::time::timeout(WRITE_TIMEOUT, sink.send(Message::Ping(Default::default()))).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => break None,
                    Err(_) => { slow_consumer(&state.slow); break None }
                }
            }
            next = rx.recv() => {
                let Some(text) = next else { break None };
                state.queued_bytes.fetch_sub(text.len(), Ordering::SeqCst);
                match tokio::time::timeout(WRITE_TIMEOUT, sink.send(Message::Text(text.into()))).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => break None,
                    Err(_) => { slow_consumer(&state.slow); break None }
                }
            }
        }
    };
    if let Some(frame) = goodbye {
        let _ = tokio::time::timeout(Duration::from_secs(2), sink.send(frame)).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), sink.close()).await;
}

/// Follows one subscription into the outbox until it ends or the connection goes.
fn spawn_subscription(
    engine: Arc<Engine>,
    outbox: Outbox,
    id: String,
    target: SubscriptionTarget,
    start: SubscriptionStart,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut events = match engine.events.subscribe(target, start).await {
            Ok(events) => events,
            Err(err) => {
                outbox.push(&ServerMessage::error(Some(id), err));
                return;
            }
        };
        if !outbox.push(&ServerMessage::Subscribed { id: id.clone() }) {
            return;
        }
        while let Some(item) = events.recv().await {
            let message = match item {
                Ok(event) => ServerMessage::Event {
                    id: id.clone(),
                    event: event.into(),
                },
                Err(err) => {
                    outbox.push(&ServerMessage::error(Some(id), err));
                    return;
                }
            };
            if !outbox.push(&message) {
                return;
            }
        }
    })
}

/// Follows lock changes under `prefix` into the outbox until the subscription or the connection
/// ends. A subscription that missed changes cuts the connection off as a slow consumer.
fn spawn_lock_subscription(
    engine: Arc<Engine>,
    outbox: Outbox,
    id: String,
    prefix: String,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        // Watch before answering `subscribed`: every change after that answer is delivered.
        let mut watch = match engine.locks.watch(&prefix).await {
            Ok(watch) => watch,
            Err(err) => {
                outbox.push(&ServerMessage::error(Some(id), err));
                return;
            }
        };
        if !outbox.push(&ServerMessage::Subscribed { id: id.clone() }) {
            return;
        }
        while let Some(item) = watch.next().await {
            let message = match item {
                Ok(change) => ServerMessage::Lock {
                    id: id.clone(),
                    change: change.into(),
                },
                Err(err) if err.details.contains_key("missed") => {
                    outbox.cut_off_because(err.message);
                    return;
                }
                Err(err) => {
                    outbox.push(&ServerMessage::error(Some(id), err));
                    return;
                }
            };
            if !outbox.push(&message) {
                return;
            }
        }
    })
}

/// Why a new subscription `id` cannot be added, if it cannot.
fn subscription_problem(
    id: &str,
    subscriptions: &HashMap<String, JoinHandle<()>>,
) -> Option<String> {
    if id.is_empty() || id.len() > MAX_ID_BYTES {
        Some(format!("id must be 1 to {MAX_ID_BYTES} bytes"))
    } else if subscriptions.contains_key(id) {
        Some(format!("subscription {id:?} already exists"))
    } else if subscriptions.len() >= MAX_SUBSCRIPTIONS {
        Some(format!(
            "at most {MAX_SUBSCRIPTIONS} subscriptions per connection"
        ))
    } else {
        None
    }
}

/// One open connection, for as long as it lives: in [`AppState::open_websockets`] (shutdown
/// waits for it) and in the `syros_websocket_connections` gauge.
pub(super) struct OpenWebSocket(Arc<watch::Sender<usize>>);

impl OpenWebSocket {
    pub(super) fn count(open: &Arc<watch::Sender<usize>>) -> OpenWebSocket {
        open.send_modify(|n| *n += 1);
        metrics::ws_connections(1.0);
        OpenWebSocket(open.clone())
    }
}

impl Drop for OpenWebSocket {
    fn drop(&mut self) {
        metrics::ws_connections(-1.0);
        self.0.send_modify(|n| *n -= 1);
    }
}

/// Serves one connection: reads client messages, runs subscriptions, hands output to the writer.
async fn connection(socket: WebSocket, state: AppState, mut principal: Option<Principal>) {
    let _open = OpenWebSocket::count(&state.open_websockets);
    let (sink, mut stream) = socket.split();
    let (tx, rx) = mpsc::channel(OUTBOX_MESSAGES);
    let (close_tx, close_rx) = mpsc::channel(1);
    let outbox = Outbox {
        tx,
        state: Arc::new(OutboxState::default()),
    };
    let mut writer_task = tokio::spawn(writer(
        sink,
        rx,
        outbox.state.clone(),
        close_rx,
        state.stopping.clone(),
    ));
    let mut subscriptions: HashMap<String, JoinHandle<()>> = HashMap::new();
    loop {
        let received = tokio::select! {
            received = tokio::time::timeout(
                if principal.is_some() { IDLE_TIMEOUT } else { AUTHENTICATE_TIMEOUT },
                stream.next(),
            ) => received,
            _ = &mut writer_task => break,
        };
        let message = match received {
            Err(_) => {
                let _ = close_tx
                    .send((CLOSE_AWAY, format!("idle for {} s", IDLE_TIMEOUT.as_secs())))
                    .await;
                break;
            }
            Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => break,
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(Some(Ok(Message::Binary(_)))) => {
                outbox.push(&ServerMessage::error(
                    None,
                    syros_engine::Error::invalid(
                        "binary messages are not supported; send JSON text",
                    ),
                ));
                continue;
            }
            Ok(Some(Ok(Message::Text(text)))) => text,
        };
        subscriptions.retain(|_, task| !task.is_finished());
        let parsed: Result<ClientMessage, _> = serde_json::from_str(message.as_str());
        let reply = match parsed {
            Err(err) => Some(ServerMessage::error(
                None,
                syros_engine::Error::invalid(format!("not a valid message: {err}")),
            )),
            Ok(ClientMessage::Authenticate { token }) if principal.is_none() => {
                match state.security.authenticate(Some(&token)).await {
                    Ok(who) => {
                        let reply = ServerMessage::Authenticated {
                            principal: who.id.clone(),
                        };
                        principal = Some(who);
                        Some(reply)
                    }
                    Err(denied) => {
                        outbox.push(&ServerMessage::denied(None, denied));
                        let _ = close_tx
                            .send((CLOSE_POLICY, "authentication failed".into()))
                            .await;
                        break;
                    }
                }
            }
            Ok(_) if principal.is_none() => {
                outbox.push(&ServerMessage::denied(
                    None,
                    Denied::Unauthenticated(
                        "authentication required: send {\"type\": \"authenticate\", \"token\": ...} first"
                            .into(),
                    ),
                ));
                let _ = close_tx
                    .send((CLOSE_POLICY, "authentication required".into()))
                    .await;
                break;
            }
            Ok(ClientMessage::Authenticate { .. }) => Some(ServerMessage::error(
                None,
                syros_engine::Error::invalid("this connection is already authenticated"),
            )),
            Ok(ClientMessage::Ping { nonce }) => Some(ServerMessage::Pong { nonce }),
            Ok(ClientMessage::Unsubscribe { id }) => match subscriptions.remove(&id) {
                Some(task) => {
                    task.abort();
                    Some(ServerMessage::Unsubscribed { id })
                }
                None => Some(ServerMessage::error(
                    Some(id.clone()),
                    syros_engine::Error::new(
                        syros_engine::ErrorKind::NotFound,
                        format!("no subscription {id:?}"),
                    ),
                )),
            },
            Ok(ClientMessage::Subscribe {
                id,
                stream,
                from,
                from_end,
            }) => {
                let problem = subscription_problem(&id, &subscriptions).or_else(|| {
                    (from_end && from.is_some())
                        .then(|| "give from or from_end, not both".to_string())
                });
                let allowed = who(&principal).require(
                    Permission::EventsRead,
                    Some(stream.as_deref().unwrap_or("")),
                );
                match problem {
                    _ if allowed.is_err() => allowed
                        .err()
                        .map(|denied| ServerMessage::denied(Some(id), denied)),
                    Some(problem) => Some(ServerMessage::error(
                        Some(id),
                        syros_engine::Error::invalid(problem),
                    )),
                    None => {
                        let target = match stream {
                            Some(stream) => SubscriptionTarget::Stream(stream),
                            None => SubscriptionTarget::All,
                        };
                        let start = if from_end {
                            SubscriptionStart::End
                        } else {
                            SubscriptionStart::From(from.unwrap_or(0))
                        };
                        let task = spawn_subscription(
                            state.engine.clone(),
                            outbox.clone(),
                            id.clone(),
                            target,
                            start,
                        );
                        subscriptions.insert(id, task);
                        None
                    }
                }
            }
            Ok(ClientMessage::SubscribeLocks { id, prefix }) => {
                let allowed = who(&principal).require(Permission::LocksRead, Some(&prefix));
                match subscription_problem(&id, &subscriptions) {
                    _ if allowed.is_err() => allowed
                        .err()
                        .map(|denied| ServerMessage::denied(Some(id), denied)),
                    Some(problem) => Some(ServerMessage::error(
                        Some(id),
                        syros_engine::Error::invalid(problem),
                    )),
                    None => {
                        let task = spawn_lock_subscription(
                            state.engine.clone(),
                            outbox.clone(),
                            id.clone(),
                            prefix,
                        );
                        subscriptions.insert(id, task);
                        None
                    }
                }
            }
        };
        if let Some(reply) = reply {
            outbox.push(&reply);
        }
    }
    for task in subscriptions.into_values() {
        task.abort();
    }
    drop(outbox);
    drop(close_tx);
    if !writer_task.is_finished() {
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut writer_task).await;
    }
    writer_task.abort();
}
