//! [`Subscription`]: a pulled event subscription.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::records::RecordedEvent;
use crate::rt::{self, CoreTask};

/// What [`Subscription::next`] got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriptionItem {
    /// The next event.
    Event(RecordedEvent),
    /// No event within the time limit; call `next` again.
    TimedOut,
    /// The subscription was closed (or ended); no more events.
    Ended,
}

/// A live subscription: catch-up, then live; resumes after reconnecting with no gap and no
/// duplicate. Read it with [`Self::next`]; only one `next` is served at a time.
pub struct Subscription {
    inner: Arc<tokio::sync::Mutex<Option<syros_client::Subscription>>>,
    closed: watch::Sender<bool>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl Subscription {
    pub(crate) fn new(subscription: syros_client::Subscription) -> Subscription {
        Subscription {
            inner: Arc::new(tokio::sync::Mutex::new(Some(subscription))),
            closed: watch::Sender::new(false),
        }
    }

    /// The next event, waiting up to `timeout_ms` (`None`: until one comes or it is closed).
    /// The error that ended the subscription is returned once; after it, `Ended`. A `next`
    /// that is cancelled (its task dropped) loses no event.
    pub fn next(&self, timeout_ms: Option<u64>) -> CoreTask<SubscriptionItem> {
        let inner = self.inner.clone();
        let mut closed = self.closed.subscribe();
        rt::spawn(async move {
            let next = async {
                let mut guard = inner.lock().await;
                let Some(subscription) = guard.as_mut() else {
                    return Ok(SubscriptionItem::Ended);
                };
                // `next_event` is a channel receive: cancelling it loses nothing.
                let event = match timeout_ms {
                    Some(limit) => {
                        match tokio::time::timeout(
                            Duration::from_millis(limit),
                            subscription.next_event(),
                        )
                        .await
                        {
                            Ok(event) => event,
                            Err(_) => return Ok(SubscriptionItem::TimedOut),
                        }
                    }
                    None => subscription.next_event().await,
                };
                match event {
                    Some(Ok(event)) => Ok(SubscriptionItem::Event(event)),
                    Some(Err(err)) => {
                        guard.take();
                        Err(err.into())
                    }
                    None => {
                        guard.take();
                        Ok(SubscriptionItem::Ended)
                    }
                }
            };
            tokio::select! {
                next = next => next,
                _ = closed.wait_for(|c| *c) => Ok(SubscriptionItem::Ended),
            }
        })
    }

    /// Stop following (idempotent); a pending `next` returns `Ended`.
    pub fn close(&self) {
        self.closed.send_replace(true);
        if let Ok(mut guard) = self.inner.try_lock() {
            guard.take();
            return;
        }
        // A pending `next` holds the lock until it sees `closed`; drop the subscription after.
        let inner = self.inner.clone();
        rt::spawn(async move {
            inner.lock().await.take();
            Ok(())
        })
        .detach();
    }

    /// Whether [`Self::close`] was called.
    pub fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }
}
