//! Storage backends. Each implements the traits in [`crate::store`].

pub mod postgres;
pub mod redis;
pub mod sqlite;
