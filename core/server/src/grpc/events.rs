//! `syros.v1.EventService` over the engine's event manager.

use std::sync::Arc;

use futures::StreamExt;
use syros_engine::{
    Direction, Engine, Error, EventInput, ExpectedVersion, SubscriptionStart, SubscriptionTarget,
};
use syros_proto::syros::v1 as pb;
use tokio_stream::wrappers::ReceiverStream;
use volo_grpc::{BoxStream, Request, Response, Status};

use super::{limit, status};
use crate::security::grpc::require;
use crate::security::Permission;

pub struct EventApi {
    pub engine: Arc<Engine>,
}

pub fn recorded(event: syros_engine::RecordedEvent) -> pb::RecordedEvent {
    pb::RecordedEvent {
        stream: event.stream.into(),
        version: event.version,
        global_position: event.global_position,
        event_id: event.event_id.into(),
        event_type: event.event_type.into(),
        data_json: event.data.into(),
        metadata_json: event.metadata.unwrap_or_default().into(),
        created_at_ms: event.created_at_ms,
    }
}

fn expected_version(expected: Option<pb::ExpectedVersion>) -> Result<ExpectedVersion, Status> {
    use pb::expected_version::Kind;
    match expected.and_then(|e| e.kind) {
        None | Some(Kind::Any(_)) => Ok(ExpectedVersion::Any),
        Some(Kind::NoStream(true)) => Ok(ExpectedVersion::NoStream),
        Some(Kind::NoStream(false)) => Err(status(Error::invalid(
            "expected_version.no_stream must be true when set",
        ))),
        Some(Kind::Exact(version)) => Ok(ExpectedVersion::Exact(version)),
    }
}

/// The starting point of a read: `from_end` reads backwards from the newest event.
fn read_from(
    direction: pb::ReadDirection,
    from: u64,
    from_end: bool,
) -> Result<(Direction, Option<u64>), Status> {
    match (direction, from_end) {
        (pb::ReadDirection::FORWARDS, false) => Ok((Direction::Forwards, Some(from))),
        (pb::ReadDirection::FORWARDS, true) => Err(status(Error::invalid(
            "from_end is only valid when reading backwards",
        ))),
        (pb::ReadDirection::BACKWARDS, false) => Ok((Direction::Backwards, Some(from))),
        (pb::ReadDirection::BACKWARDS, true) => Ok((Direction::Backwards, None)),
        (other, _) => Err(status(Error::invalid(format!(
            "unknown read direction {}",
            other.inner()
        )))),
    }
}

impl pb::EventService for EventApi {
    async fn append(
        &self,
        req: Request<pb::AppendEventsRequest>,
    ) -> Result<Response<pb::AppendEventsResponse>, Status> {
        require(&req, Permission::EventsAppend, Some(&req.get_ref().stream))?;
        let req = req.into_inner();
        let expected = expected_version(req.expected_version)?;
        let events = req
            .events
            .into_iter()
            .map(|e| EventInput {
                event_id: e.event_id.to_string(),
                event_type: e.event_type.to_string(),
                data: e.data_json.to_string(),
                metadata: e.metadata_json.to_string(),
            })
            .collect::<Vec<_>>();
        let appended = self
            .engine
            .events
            .append(&req.stream, events, expected)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::AppendEventsResponse {
            last_version: appended.last_version,
            first_position: appended.first_position,
            last_position: appended.last_position,
        }))
    }

    async fn read_stream(
        &self,
        req: Request<pb::ReadStreamRequest>,
    ) -> Result<Response<pb::ReadEventsResponse>, Status> {
        require(&req, Permission::EventsRead, Some(&req.get_ref().stream))?;
        let req = req.into_inner();
        let (direction, from) = read_from(req.direction, req.from_version, req.from_end)?;
        let slice = self
            .engine
            .events
            .read_stream(&req.stream, from, direction, limit(req.limit))
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ReadEventsResponse {
            events: slice.events.into_iter().map(recorded).collect(),
            last: slice.last_version.unwrap_or(0),
            exists: slice.last_version.is_some(),
        }))
    }

    async fn read_all(
        &self,
        req: Request<pb::ReadAllRequest>,
    ) -> Result<Response<pb::ReadEventsResponse>, Status> {
        require(&req, Permission::EventsRead, Some(""))?;
        let req = req.into_inner();
        let (direction, from) = read_from(req.direction, req.from_position, req.from_end)?;
        let slice = self
            .engine
            .events
            .read_all(from, direction, limit(req.limit))
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ReadEventsResponse {
            events: slice.events.into_iter().map(recorded).collect(),
            last: slice.last_position,
            exists: slice.last_position > 0,
        }))
    }

    async fn subscribe(
        &self,
        req: Request<pb::SubscribeRequest>,
    ) -> Result<Response<BoxStream<'static, Result<pb::RecordedEvent, Status>>>, Status> {
        require(&req, Permission::EventsRead, Some(&req.get_ref().stream))?;
        let req = req.into_inner();
        let target = if req.stream.is_empty() {
            SubscriptionTarget::All
        } else {
            SubscriptionTarget::Stream(req.stream.to_string())
        };
        let start = if req.from_end {
            SubscriptionStart::End
        } else {
            SubscriptionStart::From(req.start_at)
        };
        let events = self
            .engine
            .events
            .subscribe(target, start)
            .await
            .map_err(status)?;
        let stream = ReceiverStream::new(events).map(|item| item.map(recorded).map_err(status));
        Ok(Response::new(Box::pin(stream)))
    }
}
