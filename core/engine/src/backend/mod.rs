//! Storage backends. Each implements the traits in [`crate::store`].

pub mod postgres;
pub mod redis;
pub mod sqlite;

use crate::error::{Error, Result};
use crate::model::Direction;

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
