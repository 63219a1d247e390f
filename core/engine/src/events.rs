//! Events: validation, optimistic concurrency and gap-free subscriptions over an [`EventStore`].

use std::sync::Arc;

use tokio::sync::{broadcast, mpsc, watch};

use crate::error::{Error, ErrorKind, Result};
use crate::limits::{check_name, check_optional_name, now_ms, page_limit, Limits};
use crate::model::*;
use crate::store::{Appended, EventStore};

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

/// Where the events of an append would already be if an earlier attempt of it (a retry after a
/// lost answer) committed: the version of the first of them, or `None` when no earlier attempt
/// can have committed them. With `NoStream` and `Exact(v)` they would follow the expected
/// version; with `Any` they would be the stream's last events (an earlier attempt followed by
/// another writer's append is not recognised, see docs/storage.md). `first_id` is the id stored
/// at that version (backends read it with the stream's version, see `backend::sqlite`), so
/// the common case, no repeat, costs no extra statement. Backends call this, then [`replayed`]
/// on the stored `(version, position, event_id)` rows from there, inside their append
/// transaction and before [`check_expected`].
pub fn replay_start(
    expected: ExpectedVersion,
    current: Option<u64>,
    first_id: Option<&str>,
    events: &[NewEvent],
) -> Option<u64> {
    let current = current?;
    if first_id != Some(events.first()?.event_id.as_str()) {
        return None;
    }
    let count = u64::try_from(events.len()).ok()?;
    let start = match replay_fixed_start(expected) {
        Some(start) => start,
        None if expected == ExpectedVersion::Any => (current + 1).checked_sub(count)?,
        None => return None,
    };
    // All the events must fit below the current version.
    (start.checked_add(count - 1)? <= current).then_some(start)
}

/// The version [`replay_start`] looks at whatever the stream's current version: right after
/// the expected version (`None` for `Any`, whose events would be the stream's last, and for an
/// expected version with no successor).
pub fn replay_fixed_start(expected: ExpectedVersion) -> Option<u64> {
    match expected {
        ExpectedVersion::NoStream => Some(0),
        ExpectedVersion::Exact(v) => v.checked_add(1),
        ExpectedVersion::Any => None,
    }
}

/// EventStoreDB's idempotent append: if `stored` (the stream's `(version, position, event_id)`
/// rows from [`replay_start`], in version order) carry exactly the ids of `events`, in order,
/// this append was already committed by an earlier attempt, and this is its result again.
pub fn replayed(events: &[NewEvent], stored: &[(i64, i64, String)]) -> Option<AppendResult> {
    let same = stored.len() == events.len()
        && stored
            .iter()
            .zip(events)
            .all(|((_, _, id), e)| *id == e.event_id);
    match (same, stored.first(), stored.last()) {
        (true, Some(first), Some(last)) => Some(AppendResult {
            last_version: u64::try_from(last.0).ok()?,
            first_position: u64::try_from(first.1).ok()?,
            last_position: u64::try_from(last.1).ok()?,
        }),
        _ => None,
    }
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
    ///
    /// Idempotent by event ids: if the events an earlier attempt of this append committed are
    /// where it put them (right after the expected version; for `Any`, the stream's last events),
    /// the append is acknowledged again with that attempt's result instead of conflicting or
    /// storing them twice. A connection to the store lost during COMMIT is
    /// [`ErrorKind::OutcomeUnknown`]; repeating the append is then safe.
    #[tracing::instrument(level = "debug", name = "engine.events.append", skip_all, fields(stream = %stream))]
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
            // The event's index is put in front of a message only when there is one: formatting
            // it for every field up front was a quarter of a 100-event append's server work.
            let at = |mut err: Error| {
                err.message = format!("event {index}: {}", err.message);
                err
            };
            check_optional_name(
                "event_id",
                &event.event_id,
                self.limits.max_request_id_bytes,
            )
            .map_err(at)?;
            check_name(
                "event_type",
                &event.event_type,
                self.limits.max_event_type_bytes,
            )
            .map_err(at)?;
            check_json("data", &event.data, max_json).map_err(at)?;
            if !event.metadata.is_empty() {
                check_json("metadata", &event.metadata, max_json).map_err(at)?;
            }
            checked.push(NewEvent {
                // A generated id makes this attempt unrecognisable on a repeat: clients that
                // retry send their own ids (the Syros client always does).
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
        let count = checked.len();
        // The store call runs to completion on its own task, whatever happens to the caller (a
        // gRPC deadline drops the handler's future). Cut short, it could leave the event head
        // behind a commit (live subscriptions would wait for the next append) or, with SQLite,
        // the single writer connection inside a transaction sqlx lost track of.
        let store = self.store.clone();
        let stream = stream.to_string();
        let appended =
            tokio::spawn(async move { store.append(&stream, &checked, expected, now_ms()).await })
                .await
                .map_err(|err| Error::internal(format!("the append task failed: {err}")))??;
        crate::telemetry::events_appended(count);
        Ok(appended)
    }

    /// Read one stream from `from` (inclusive; `None` = its start, or its end backwards).
    #[tracing::instrument(level = "debug", name = "engine.events.read_stream", skip_all, fields(stream = %stream))]
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
    #[tracing::instrument(level = "debug", name = "engine.events.read_all", skip_all)]
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
    #[tracing::instrument(level = "debug", name = "engine.events.subscribe", skip_all)]
    pub async fn subscribe(
        &self,
        target: SubscriptionTarget,
        start: SubscriptionStart,
    ) -> Result<mpsc::Receiver<Result<RecordedEvent>>> {
        if let SubscriptionTarget::Stream(stream) = &target {
            self.check_stream(stream)?;
        }
        // Take the receivers before looking up the end so no append slips between. A stream
        // subscription waits for appends to its stream; one to all streams for the head.
        let mut head = self.store.head();
        let mut appended = self.store.appended();
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
                    changed = head.changed(), if matches!(target, SubscriptionTarget::All) => {
                        if changed.is_err() { return } else { false }
                    }
                    more = stream_appended(&mut appended, &target) => if more { false } else { return },
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

/// Wait until an append may have touched the subscribed stream: true to re-read, false when
/// the store is gone. Never returns for a subscription to all streams (it waits on the head).
/// Notices that came during the last read count, so an append between read and wait is seen.
async fn stream_appended(
    appended: &mut broadcast::Receiver<Appended>,
    target: &SubscriptionTarget,
) -> bool {
    let SubscriptionTarget::Stream(stream) = target else {
        return std::future::pending().await;
    };
    loop {
        match appended.recv().await {
            Ok(Appended::Stream(changed)) if *changed != **stream => continue,
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => break,
            Err(broadcast::error::RecvError::Closed) => return false,
        }
    }
    // The read that follows sees every append announced so far: drop their notices.
    while let Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) = appended.try_recv() {}
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(ids: &[&str]) -> Vec<NewEvent> {
        ids.iter()
            .map(|id| NewEvent {
                event_id: id.to_string(),
                event_type: "T".to_string(),
                data: "{}".to_string(),
                metadata: None,
            })
            .collect()
    }

    fn stored(version: i64, id: &str) -> (i64, i64, String) {
        (version, version + 100, id.to_string())
    }

    #[test]
    fn replay_start_follows_the_expected_version() {
        use ExpectedVersion::*;
        let (one, two, three) = (new(&["a"]), new(&["a", "b"]), new(&["a", "b", "c"]));
        let a = Some("a");
        assert_eq!(replay_start(NoStream, None, None, &one), None);
        assert_eq!(replay_start(NoStream, Some(1), a, &two), Some(0));
        assert_eq!(replay_start(NoStream, Some(1), Some("z"), &two), None);
        assert_eq!(replay_start(NoStream, Some(0), a, &two), None);
        assert_eq!(replay_start(Exact(3), Some(3), a, &one), None);
        assert_eq!(replay_start(Exact(3), Some(5), a, &two), Some(4));
        assert_eq!(replay_start(Exact(3), Some(5), a, &three), None);
        assert_eq!(replay_start(Any, None, a, &one), None);
        assert_eq!(replay_start(Any, Some(9), a, &three), Some(7));
        assert_eq!(replay_start(Any, Some(1), a, &three), None);
        assert_eq!(replay_start(Any, Some(1), a, &[]), None);
        assert_eq!(replay_start(Exact(u64::MAX), Some(5), a, &one), None);
    }

    #[test]
    fn replayed_needs_every_id_in_order() {
        let events = new(&["a", "b"]);
        let result = replayed(&events, &[stored(4, "a"), stored(5, "b")]).expect("same ids");
        assert_eq!(
            (
                result.last_version,
                result.first_position,
                result.last_position
            ),
            (5, 104, 105)
        );
        assert_eq!(replayed(&events, &[stored(4, "b"), stored(5, "a")]), None);
        assert_eq!(replayed(&events, &[stored(4, "a")]), None);
        assert_eq!(replayed(&events, &[stored(4, "a"), stored(5, "c")]), None);
    }
}
