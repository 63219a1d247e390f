//! Storage backends. Each implements the traits in [`crate::store`].

pub mod postgres;
pub mod redis;
pub mod sqlite;

use crate::error::{Error, Result};
use crate::model::Direction;
use crate::sagas::model::{Saga, SagaTask};
use crate::store::LeaseRequest;

/// The id of a lease about to be granted to `request`: derived from its request id when it has
/// one (so its client can release a grant whose answer it never saw), random otherwise.
pub(crate) fn new_lease_id(request: &LeaseRequest) -> String {
    match &request.request_id {
        Some(request_id) => syros_vocab::lease_id_for_request(&request.key, request_id),
        None => uuid::Uuid::new_v4().simple().to_string(),
    }
}

/// SQL pieces of a read from `from` (inclusive; `None` = the start forwards, the end
/// backwards): the comparison, the sort order and the bound value.
pub(crate) fn read_bounds(
    from: Option<u64>,
    direction: Direction,
) -> Result<(&'static str, &'static str, i64)> {
    let (bound, order) = match direction {
        Direction::Forwards => (">=", "ASC"),
        Direction::Backwards => ("<=", "DESC"),
    };
    let from = match (from, direction) {
        (Some(from), _) => {
            i64::try_from(from).map_err(|_| Error::invalid(format!("{from} is out of range")))?
        }
        (None, Direction::Forwards) => 0,
        (None, Direction::Backwards) => i64::MAX,
    };
    Ok((bound, order, from))
}

/// A stored saga document.
pub(crate) fn saga_from_doc(doc: &str) -> Result<Saga> {
    serde_json::from_str(doc).map_err(|e| Error::internal(format!("corrupt saga document: {e}")))
}

/// A saga document (or task document) to store.
pub(crate) fn to_doc<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::internal(format!("cannot encode: {e}")))
}

/// A row of a task joined with its saga's document in column `saga_doc` (a claim, a report's
/// read), read with the backend's `task_from_row`. A task whose saga is missing is an internal
/// error: a saga and its tasks are only ever stored and removed together.
pub(crate) fn task_with_saga<R>(
    row: &R,
    task_from_row: fn(&R) -> Result<SagaTask>,
) -> Result<(SagaTask, Saga)>
where
    R: sqlx::Row,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    &'static str: sqlx::ColumnIndex<R>,
{
    let doc: Option<String> = row.try_get("saga_doc")?;
    let task = task_from_row(row)?;
    let doc = doc.ok_or_else(|| Error::internal(format!("task {} has no saga", task.task_id)))?;
    Ok((task, saga_from_doc(&doc)?))
}
