//! Events: validation, optimistic concurrency and gap-free subscriptions over an [`EventStore`].

use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use crate::error::{Error, ErrorKind, Result};
use crate::limits::{check_name, check_optional_name, now_ms, page_limit, Limits};
use crate::model::*;
use crate::store::EventStore;

/// An event as a caller submits it (before validation).
#[derive(Debug, Clone, Default)]
pub struct EventInput {
    /// Empty: the server makes an id.
    pub event_id: String,
    pub event_type: String,
    /// JSON text.
    pub data: String,
    /// JSON text, or empty for none.
    pub metadata: String,
}

/// Events read per store query while a subscription catches up.
const SUBSCRIPTION_PAGE: usize = 500;
/// Events buffered per subscriber; a slow consumer is back-pressured, not buffered without bound.
const SUBSCRIPTION_BUFFER: usize = 256;

/// Event operations of the engine.
pub struct EventManager {
    store: Arc<dyn EventStore>,
    limits: Limits,
    shutdown: watch::Receiver<bool>,
}

/// Checks `expected` against a stream's current last version (`None`: no stream). Backends call
/// this inside their append transaction so the rule is written once.
pub fn check_expected(stream: &str, expected: ExpectedVersion, current: Option<u64>) -> Result<()> {
    let ok = match expected {
        ExpectedVersion::Any => true,
        ExpectedVersion::NoStream => current.is_none(),
        ExpectedVersion::Exact(v) => current == Some(v),
    };
    if ok {
        return Ok(());
    }
    let describe = |v: Option<u64>| v.map_or_else(|| "no_stream".to_string(), |v| v.to_string());
    let expected_text = match expected {
        ExpectedVersion::Any => "any".to_string(),
        ExpectedVersion::NoStream => "no_stream".to_string(),
        ExpectedVersion::Exact(v) => v.to_string(),
    };
    Err(Error::new(
        ErrorKind::VersionConflict,
        format!(
            "stream {stream:?} is at version {}, expected {expected_text}",
            describe(current)
        ),
    )
    .with_detail("stream", stream)
    .with_detail("expected_version", expected_text)
    .with_detail("actual_version", describe(current)))
}

fn check_json(what: &str, text: &str, max: usize) -> Result<()> {
    if text.len() > max {
        return Err(Error::new(
            ErrorKind::PayloadTooLarge,
            format!("{what} is {} bytes; the maximum is {max}", text.len()),
        ));
    }
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .map(|_| ())
        .map_err(|e| Error::invalid(format!("{what} is not valid JSON: {e}")))
}

impl EventManager {
    pub(crate) fn new(
        store: Arc<dyn EventStore>,
        limits: Limits,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        EventManager {
            store,
            limits,
            shutdown,
        }
    }

    fn check_stream(&self, stream: &str) -> Result<()> {
        check_name("stream", stream, self.limits.max_stream_bytes)
    }

    /// Append `events` to `stream` atomically if the stream is at `expected`.
    pub async fn append(
        &self,
        stream: &str,
        events: Vec<EventInput>,
        expected: ExpectedVersion,
    ) -> Result<AppendResult> {
        self.check_stream(stream)?;
        if events.is_empty() {
            return Err(Error::invalid("an append needs at least one event"));
        }
        if events.len() > self.limits.max_events_per_append {
            return Err(Error::new(
                ErrorKind::PayloadTooLarge,
                format!(
                    "{} events in one append; the maximum is {}",
                    events.len(),
                    self.limits.max_events_per_append
                ),
            ));
        }
        let max_json = self.limits.max_event_json_bytes;
        let mut checked = Vec::with_capacity(events.len());
        for (index, event) in events.into_iter().enumerate() {
            let at = |what: &str| format!("event {index}: {what}");
            check_optional_name(
                &at("event_id"),
                &event.event_id,
                self.limits.max_request_id_bytes,
            )?;
            check_name(
                &at("event_type"),
                &event.event_type,
                self.limits.max_event_type_bytes,
            )?;
            check_json(&at("data"), &event.data, max_json)?;
            if !event.metadata.is_empty() {
                check_json(&at("metadata"), &event.metadata, max_json)?;
            }
            checked.push(NewEvent {
                event_id: if event.event_id.is_empty() {
                    uuid::Uuid::new_v4().to_string()
                } else {
                    event.event_id
                },
                event_type: event.event_type,
                data: event.data,
                metadata: (!event.metadata.is_empty()).then_some(event.metadata),
            });
        }
        let appended = self
            .store
            .append(stream, &checked, expected, now_ms())
            .await?;
        crate::telemetry::events_appended(checked.len());
        Ok(appended)
    }

    /// Read one stream from `from` (inclusive; `None` = its start, or its end backwards).
    pub async fn read_stream(
        &self,
        stream: &str,
        from: Option<u64>,
        direction: Direction,
        limit: usize,
    ) -> Result<StreamSlice> {
        self.check_stream(stream)?;
        let limit = page_limit(
            limit,
            self.limits.default_read_limit,
            self.limits.max_read_limit,
        )?;
        self.store
            .read_stream(&StreamQuery {
                stream: stream.to_string(),
                from,
                direction,
                limit,
            })
            .await
    }

    /// Read every stream in global order from position `from` (inclusive).
    pub async fn read_all(
        &self,
        from: Option<u64>,
        direction: Direction,
        limit: usize,
    ) -> Result<AllSlice> {
        let limit = page_limit(
            limit,
            self.limits.default_read_limit,
            self.limits.max_read_limit,
        )?;
        self.store
            .read_all(&AllQuery {
                from,
                direction,
                limit,
            })
            .await
    }

    /// Follow a stream or all streams: first every stored event from `start`, then new ones as
    /// they are committed, in order, without gaps or duplicates. The subscription reads from the
    /// store after each wake-up, so the hand-over from catch-up to live cannot lose an event.
    /// The receiver ends with an `Unavailable` error when the server shuts down.
    pub async fn subscribe(
        &self,
        target: SubscriptionTarget,
        start: SubscriptionStart,
    ) -> Result<mpsc::Receiver<Result<RecordedEvent>>> {
        if let SubscriptionTarget::Stream(stream) = &target {
            self.check_stream(stream)?;
        }
        // Take the head receiver before looking up the end so no append slips between.
        let mut head = self.store.head();
        let mut next = match start {
            SubscriptionStart::From(from) => from,
            SubscriptionStart::End => match &target {
                SubscriptionTarget::Stream(stream) => {
                    let slice = self
                        .store
                        .read_stream(&StreamQuery {
                            stream: stream.clone(),
                            from: None,
                            direction: Direction::Backwards,
                            limit: 1,
                        })
                        .await?;
                    slice.last_version.map_or(0, |v| v + 1)
                }
                SubscriptionTarget::All => {
                    let slice = self
                        .store
                        .read_all(&AllQuery {
                            from: None,
                            direction: Direction::Backwards,
                            limit: 1,
                        })
                        .await?;
                    slice.last_position + 1
                }
            },
        };
        let (tx, rx) = mpsc::channel(SUBSCRIPTION_BUFFER);
        let store = self.store.clone();
        let mut shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            loop {
                head.mark_unchanged();
                let page = match &target {
                    SubscriptionTarget::Stream(stream) => store
                        .read_stream(&StreamQuery {
                            stream: stream.clone(),
                            from: Some(next),
                            direction: Direction::Forwards,
                            limit: SUBSCRIPTION_PAGE,
                        })
                        .await
                        .map(|s| s.events),
                    SubscriptionTarget::All => store
                        .read_all(&AllQuery {
                            from: Some(next),
                            direction: Direction::Forwards,
                            limit: SUBSCRIPTION_PAGE,
                        })
                        .await
                        .map(|s| s.events),
                };
                let events = match page {
                    Ok(events) => events,
                    Err(err) => {
                        let _ = tx.send(Err(err)).await;
                        return;
                    }
                };
                let full_page = events.len() == SUBSCRIPTION_PAGE;
                for event in events {
                    next = match &target {
                        SubscriptionTarget::Stream(_) => event.version + 1,
                        SubscriptionTarget::All => event.global_position + 1,
                    };
                    if tx.send(Ok(event)).await.is_err() {
                        return; // subscriber went away
                    }
                }
                if full_page {
                    continue;
                }
                let stopping = tokio::select! {
                    changed = head.changed() => if changed.is_err() { return } else { false },
                    _ = tx.closed() => return,
                    _ = shutdown.wait_for(|stop| *stop) => true,
                };
                if stopping {
                    let _ = tx
                        .send(Err(Error::unavailable("server is shutting down")))
                        .await;
                    return;
                }
            }
        });
        Ok(rx)
    }
}
