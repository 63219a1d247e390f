//! Storage backends. Each implements the traits in [`crate::store`].

pub mod sqlite;
