//! Storage backends. Each implements the traits in [`crate::store`].

pub mod postgres;
pub mod redis;
pub mod sqlite;

use crate::error::{Error, Result};
use crate::model::Direction;
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
