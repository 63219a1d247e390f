//! REST: events. A stream name is one path segment: percent-encode `/` (`orders%2F42`).
//!
//! Event payloads travel as JSON text ([`RawValue`]): checked for syntax on the way in, copied
//! on the way out, never expanded into a tree (which costs many times the text's size). A read
//! stops adding events once its answer reaches [`READ_BYTE_BUDGET`] and says where to go on
//! (`next`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
use syros_engine::{Direction, EventInput, ExpectedVersion, RecordedEvent};
use utoipa::{IntoParams, ToSchema};

use axum::Extension;

use super::error::{ApiError, ErrorBody, Json, Path, Query};
use super::{rfc3339, AppState};
use crate::security::{Permission, Principal};

/// One event to append.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct EventBody {
    /// Application-defined type, such as `OrderCreated`.
    pub event_type: String,
    /// The event's payload: any JSON document.
    #[schema(value_type = Value)]
    pub data: Box<RawValue>,
    /// Optional JSON metadata.
    #[serde(default)]
    #[schema(value_type = Option<Value>)]
    pub metadata: Option<Box<RawValue>>,
    /// Optional client-made id (at most 128 bytes); the server makes one otherwise.
    #[serde(default)]
    pub event_id: Option<String>,
}

/// The version a stream must be at for an append to succeed: a number, `"any"` (the default)
/// or `"no_stream"` (the stream must not exist yet).
#[derive(Debug, Clone, Copy, Default, ToSchema)]
#[schema(value_type = ExpectedVersionSchema)]
pub struct ExpectedVersionBody(pub ExpectedVersion);

/// The accepted forms of `expected_version` (for the OpenAPI document only).
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum ExpectedVersionSchema {
    /// The stream's current version.
    Exact(u64),
    /// `any` or `no_stream`.
    Named(ExpectedVersionName),
}

/// A named expected version.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum ExpectedVersionName {
    Any,
    NoStream,
}

impl<'de> Deserialize<'de> for ExpectedVersionBody {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Null => Ok(Self(ExpectedVersion::Any)),
            Value::String(s) if s == "any" => Ok(Self(ExpectedVersion::Any)),
            Value::String(s) if s == "no_stream" => Ok(Self(ExpectedVersion::NoStream)),
            Value::Number(n) if n.as_u64().is_some() => {
                Ok(Self(ExpectedVersion::Exact(n.as_u64().unwrap_or_default())))
            }
            other => Err(serde::de::Error::custom(format!(
                "expected_version must be a version number, \"any\" or \"no_stream\", not {other}"
            ))),
        }
    }
}

/// Append events. Either a single event (`event_type`, `data`, optional `metadata` and
/// `event_id`) or a batch (`events`), plus an optional `expected_version` in both forms.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({
    "event_type": "OrderCreated",
    "data": {"customer_id": "user_456", "total": 129.90},
    "metadata": {"source": "mobile_app"}
}))]
pub struct AppendBody {
    /// A batch of events (1 to 1000), appended atomically.
    #[schema(max_items = 1000)]
    pub events: Option<Vec<EventBody>>,
    /// Single-event form: the event's type.
    pub event_type: Option<String>,
    /// Single-event form: the event's payload.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Value>)]
    pub data: Option<Box<RawValue>>,
    /// Single-event form: optional metadata.
    #[serde(default)]
    #[schema(value_type = Option<Value>)]
    pub metadata: Option<Box<RawValue>>,
    /// Single-event form: optional event id.
    pub event_id: Option<String>,
    /// Optimistic concurrency check (default `"any"`).
    #[serde(default)]
    pub expected_version: ExpectedVersionBody,
}

/// `data` present, even as `null`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(d).map(Some)
}

impl AppendBody {
    fn into_events(self) -> Result<Vec<EventBody>, ApiError> {
        let single = self.event_type.is_some() || self.data.is_some() || self.event_id.is_some();
        match (self.events, single) {
            (Some(_), true) => Err(ApiError::invalid(
                "give either `events` or one event's fields (`event_type`, `data`), not both",
            )),
            (Some(events), false) => Ok(events),
            (None, true) => Ok(vec![EventBody {
                event_type: self
                    .event_type
                    .ok_or_else(|| ApiError::invalid("event_type is required"))?,
                data: self
                    .data
                    .ok_or_else(|| ApiError::invalid("data is required"))?,
                metadata: self.metadata,
                event_id: self.event_id,
            }]),
            (None, false) => Err(ApiError::invalid(
                "the body needs `events` or one event's `event_type` and `data`",
            )),
        }
    }
}

/// Where an append landed.
#[derive(Debug, Serialize, ToSchema)]
pub struct AppendedBody {
    pub stream: String,
    /// Version of the first appended event (versions start at 0).
    pub first_version: u64,
    /// Version of the last appended event: the stream's version now.
    pub last_version: u64,
    /// Global position of the first appended event (positions start at 1).
    pub first_position: u64,
    /// Global position of the last appended event.
    pub last_position: u64,
}

/// A stored event.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RecordedEventBody {
    pub stream: String,
    /// Position in its stream, from 0, without gaps.
    pub version: u64,
    /// Position across all streams, from 1.
    pub global_position: u64,
    pub event_id: String,
    pub event_type: String,
    /// The payload as appended.
    #[schema(value_type = Value)]
    pub data: Box<RawValue>,
    /// The metadata as appended, `null` if none.
    #[schema(value_type = Option<Value>)]
    pub metadata: Option<Box<RawValue>>,
    /// Milliseconds since the Unix epoch.
    pub created_at_ms: i64,
    /// `created_at_ms` as RFC 3339.
    pub created_at: String,
}

/// Stored JSON text as it is (the engine checked it on append); anything else as a JSON string.
fn json_text(text: String) -> Box<RawValue> {
    let is_json = serde_json::from_str::<serde::de::IgnoredAny>(&text).is_ok();
    let raw = if is_json {
        RawValue::from_string(text)
    } else {
        serde_json::value::to_raw_value(&text)
    };
    raw.unwrap_or_default()
}

/// Most bytes of events one read answers with (a single larger event is still sent whole).
pub const READ_BYTE_BUDGET: usize = 4 * 1024 * 1024;

/// Roughly the bytes `event` takes in an answer.
fn answer_bytes(event: &RecordedEvent) -> usize {
    let fixed = 256;
    fixed
        + event.data.len()
        + event.metadata.as_ref().map_or(0, String::len)
        + event.stream.len()
        + event.event_type.len()
        + event.event_id.len()
}

/// The events of a page that fit in [`READ_BYTE_BUDGET`] (at least one), and whether some were
/// left out.
fn within_budget(events: Vec<RecordedEvent>) -> (Vec<RecordedEventBody>, bool) {
    let total = events.len();
    let mut spent = 0;
    let kept: Vec<RecordedEventBody> = events
        .into_iter()
        .take_while(|event| {
            let first = spent == 0;
            spent += answer_bytes(event);
            first || spent <= READ_BYTE_BUDGET
        })
        .map(Into::into)
        .collect();
    let cut = kept.len() < total;
    (kept, cut)
}

/// Where a read cut by the budget goes on, after `last` read in `direction`.
fn continue_after(last: u64, direction: DirectionParam) -> Option<u64> {
    match direction {
        DirectionParam::Forwards => last.checked_add(1),
        DirectionParam::Backwards => last.checked_sub(1),
    }
}

impl From<RecordedEvent> for RecordedEventBody {
    fn from(e: RecordedEvent) -> Self {
        RecordedEventBody {
            data: json_text(e.data),
            metadata: e.metadata.map(json_text),
            created_at: rfc3339(e.created_at_ms),
            stream: e.stream,
            version: e.version,
            global_position: e.global_position,
            event_id: e.event_id,
            event_type: e.event_type,
            created_at_ms: e.created_at_ms,
        }
    }
}

/// Events of one stream.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamEventsBody {
    pub stream: String,
    /// Whether the stream has any event.
    pub exists: bool,
    /// The stream's current version, `null` if it does not exist.
    pub last_version: Option<u64>,
    pub events: Vec<RecordedEventBody>,
    /// Present when the answer was cut at the byte budget before `limit` events: the `from` of
    /// the next read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_from: Option<u64>,
}

/// Events of all streams in global order.
#[derive(Debug, Serialize, ToSchema)]
pub struct AllEventsBody {
    /// The newest global position (0 when there is no event).
    pub last_position: u64,
    pub events: Vec<RecordedEventBody>,
    /// Present when the answer was cut at the byte budget before `limit` events: the
    /// `from_position` of the next read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_from_position: Option<u64>,
}

/// Read direction.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DirectionParam {
    #[default]
    Forwards,
    Backwards,
}

impl From<DirectionParam> for Direction {
    fn from(d: DirectionParam) -> Self {
        match d {
            DirectionParam::Forwards => Direction::Forwards,
            DirectionParam::Backwards => Direction::Backwards,
        }
    }
}

/// `?from=&direction=&limit=` of a stream read.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamReadParams {
    /// First version to return (inclusive). Default: the start, or the end when reading
    /// backwards.
    pub from: Option<u64>,
    /// `forwards` (default) or `backwards`.
    pub direction: Option<DirectionParam>,
    /// At most this many events (default 100, at most 10000).
    #[param(maximum = 10000)]
    pub limit: Option<usize>,
}

/// `?from_position=&direction=&limit=` of a read across all streams.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AllReadParams {
    /// First global position to return (inclusive). Default: the start, or the end when
    /// reading backwards.
    pub from_position: Option<u64>,
    /// `forwards` (default) or `backwards`.
    pub direction: Option<DirectionParam>,
    /// At most this many events (default 100, at most 10000).
    #[param(maximum = 10000)]
    pub limit: Option<usize>,
}

#[utoipa::path(
    operation_id = "append_events", post, path = "/api/v1/events/{stream}", tag = "events",
    params(("stream" = String, Path, description = "The stream, percent-encoded")),
    request_body = AppendBody,
    responses(
        (status = 201, description = "Appended", body = AppendedBody),
        (status = 409, description = "The stream is not at `expected_version` (`version_conflict`)", body = ErrorBody),
        (status = 400, description = "Invalid stream, event type or body", body = ErrorBody),
        (status = 413, description = "Too many events or an event too large", body = ErrorBody),
    )
)]
/// Append one event or a batch to a stream, atomically.
pub async fn append(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(stream): Path<String>,
    Json(body): Json<AppendBody>,
) -> Result<impl IntoResponse, ApiError> {
    who.require(Permission::EventsAppend, Some(&stream))?;
    let expected = body.expected_version.0;
    let events: Vec<EventInput> = body
        .into_events()?
        .into_iter()
        .map(|e| EventInput {
            event_id: e.event_id.unwrap_or_default(),
            event_type: e.event_type,
            data: e.data.get().to_string(),
            metadata: e.metadata.map(|m| m.get().to_string()).unwrap_or_default(),
        })
        .collect();
    let count = events.len() as u64;
    let appended = state
        .engine
        .events
        .append(&stream, events, expected)
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(AppendedBody {
            stream,
            first_version: (appended.last_version + 1).saturating_sub(count),
            last_version: appended.last_version,
            first_position: appended.first_position,
            last_position: appended.last_position,
        }),
    ))
}

#[utoipa::path(
    operation_id = "read_stream", get, path = "/api/v1/events/{stream}", tag = "events",
    params(("stream" = String, Path, description = "The stream, percent-encoded"), StreamReadParams),
    responses(
        (status = 200, description = "Events of the stream (empty when it does not exist)", body = StreamEventsBody),
        (status = 400, description = "Invalid stream or parameters", body = ErrorBody),
    )
)]
/// Read a stream forwards or backwards from a version.
pub async fn read_stream(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(stream): Path<String>,
    Query(params): Query<StreamReadParams>,
) -> Result<axum::Json<StreamEventsBody>, ApiError> {
    who.require(Permission::EventsRead, Some(&stream))?;
    let direction = params.direction.unwrap_or_default();
    let slice = state
        .engine
        .events
        .read_stream(
            &stream,
            params.from,
            direction.into(),
            params.limit.unwrap_or(0),
        )
        .await?;
    let (events, cut) = within_budget(slice.events);
    let next_from = events
        .last()
        .filter(|_| cut)
        .and_then(|e| continue_after(e.version, direction));
    Ok(axum::Json(StreamEventsBody {
        stream,
        exists: slice.last_version.is_some(),
        last_version: slice.last_version,
        events,
        next_from,
    }))
}

#[utoipa::path(
    operation_id = "read_all_events", get, path = "/api/v1/events", tag = "events",
    params(AllReadParams),
    responses(
        (status = 200, description = "Events of every stream by global position", body = AllEventsBody),
        (status = 400, description = "Invalid parameters", body = ErrorBody),
    )
)]
/// Read every stream in global order.
pub async fn read_all(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(params): Query<AllReadParams>,
) -> Result<axum::Json<AllEventsBody>, ApiError> {
    who.require(Permission::EventsRead, Some(""))?;
    let direction = params.direction.unwrap_or_default();
    let slice = state
        .engine
        .events
        .read_all(
            params.from_position,
            direction.into(),
            params.limit.unwrap_or(0),
        )
        .await?;
    let (events, cut) = within_budget(slice.events);
    let next_from_position = events
        .last()
        .filter(|_| cut)
        .and_then(|e| continue_after(e.global_position, direction));
    Ok(axum::Json(AllEventsBody {
        last_position: slice.last_position,
        events,
        next_from_position,
    }))
}
