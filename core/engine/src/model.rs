//! Plain data shared by the engine, the stores and the transports.

/// A held lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub lease_id: String,
    pub key: String,
    pub owner: String,
    /// Strictly increasing across every lease ever granted by this store.
    pub fencing_token: u64,
    pub acquired_at_ms: i64,
    pub expires_at_ms: i64,
}

/// A cache entry as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    pub key: String,
    pub value: Vec<u8>,
    /// `None`: never expires.
    pub expires_at_ms: Option<i64>,
    pub tags: Vec<String>,
}

/// An event to append (already validated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub event_id: String,
    pub event_type: String,
    /// A JSON document.
    pub data: String,
    /// A JSON document, or `None`.
    pub metadata: Option<String>,
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    pub stream: String,
    pub version: u64,
    pub global_position: u64,
    pub event_id: String,
    pub event_type: String,
    pub data: String,
    pub metadata: Option<String>,
    pub created_at_ms: i64,
}

/// The version a stream must be at, and the read direction: the one vocabulary (`syros-vocab`).
pub use syros_vocab::{Direction, ExpectedVersion};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendResult {
    pub last_version: u64,
    pub first_position: u64,
    pub last_position: u64,
}

/// Read one stream. `from` is inclusive; `None` means the start (forwards) or the end (backwards).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamQuery {
    pub stream: String,
    pub from: Option<u64>,
    pub direction: Direction,
    pub limit: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSlice {
    pub events: Vec<RecordedEvent>,
    /// The stream's last version, `None` if the stream does not exist.
    pub last_version: Option<u64>,
}

/// Read all streams by global position. `from` as in [`StreamQuery`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllQuery {
    pub from: Option<u64>,
    pub direction: Direction,
    pub limit: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllSlice {
    pub events: Vec<RecordedEvent>,
    /// The newest global position (0 when the store is empty).
    pub last_position: u64,
}

/// What a subscription follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriptionTarget {
    Stream(String),
    All,
}

/// Where a subscription starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionStart {
    /// Inclusive version (stream) or global position (all).
    From(u64),
    /// Only events appended after the subscription started.
    End,
}
