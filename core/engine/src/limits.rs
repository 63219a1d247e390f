//! Input limits and the validation helpers every engine operation uses.

use crate::error::{Error, Result};

/// Size and range limits. The defaults are documented in the `.proto` files; the server can
/// override the ones marked configurable.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_key_bytes: usize,
    pub max_owner_bytes: usize,
    pub max_request_id_bytes: usize,
    pub min_lock_ttl_ms: u64,
    pub max_lock_ttl_ms: u64,
    pub max_lock_wait_ms: u64,
    /// Callers one server lets wait for one lock key at a time; one more is refused with
    /// `PayloadTooLarge` (gRPC `RESOURCE_EXHAUSTED`), so no client can queue unbounded waiters.
    pub max_waiters_per_key: usize,
    /// Configurable (`CACHE_MAX_VALUE_BYTES`).
    pub cache_max_value_bytes: usize,
    pub cache_max_ttl_ms: u64,
    pub max_tags: usize,
    pub max_tag_bytes: usize,
    pub max_stream_bytes: usize,
    pub max_event_type_bytes: usize,
    pub max_event_json_bytes: usize,
    pub max_events_per_append: usize,
    pub default_read_limit: usize,
    pub max_read_limit: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_key_bytes: 512,
            max_owner_bytes: 256,
            max_request_id_bytes: 128,
            min_lock_ttl_ms: 100,
            max_lock_ttl_ms: 86_400_000,
            max_lock_wait_ms: 300_000,
            max_waiters_per_key: 1024,
            cache_max_value_bytes: 1024 * 1024,
            cache_max_ttl_ms: 30 * 86_400_000,
            max_tags: 32,
            max_tag_bytes: 256,
            max_stream_bytes: 256,
            max_event_type_bytes: 256,
            max_event_json_bytes: 1024 * 1024,
            max_events_per_append: 1000,
            default_read_limit: 100,
            max_read_limit: 10_000,
        }
    }
}

/// A name (key, owner, stream, tag, ...) must be non-empty UTF-8 of at most `max` bytes without
/// control characters, so it is safe to log, store and use as a Redis key.
pub fn check_name(what: &str, value: &str, max: usize) -> Result<()> {
    if value.is_empty() {
        return Err(Error::invalid(format!("{what} must not be empty")));
    }
    if value.len() > max {
        return Err(Error::invalid(format!(
            "{what} is {} bytes; the maximum is {max}",
            value.len()
        ))
        .with_detail("max_bytes", max));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "{what} must not contain control characters"
        )));
    }
    Ok(())
}

/// Like [`check_name`] but an empty value is allowed (optional ids).
pub fn check_optional_name(what: &str, value: &str, max: usize) -> Result<()> {
    if value.is_empty() {
        Ok(())
    } else {
        check_name(what, value, max)
    }
}

/// `value` must lie within `min..=max` milliseconds.
pub fn check_range_ms(what: &str, value: u64, min: u64, max: u64) -> Result<()> {
    if value < min || value > max {
        return Err(Error::invalid(format!(
            "{what} is {value} ms; it must be between {min} and {max} ms"
        ))
        .with_detail("min_ms", min)
        .with_detail("max_ms", max));
    }
    Ok(())
}

/// Resolve a caller's page size: 0 means the default, more than the maximum is an error.
pub fn page_limit(requested: usize, default: usize, max: usize) -> Result<usize> {
    match requested {
        0 => Ok(default),
        n if n > max => Err(Error::invalid(format!(
            "limit {n} is over the maximum of {max}"
        ))),
        n => Ok(n),
    }
}

/// Milliseconds since the Unix epoch, the time base of every stored timestamp.
pub fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn names_are_checked() {
        assert!(check_name("key", "a", 4).is_ok());
        assert_eq!(
            check_name("key", "", 4).unwrap_err().kind,
            ErrorKind::InvalidArgument
        );
        assert_eq!(
            check_name("key", "abcde", 4).unwrap_err().kind,
            ErrorKind::InvalidArgument
        );
        assert_eq!(
            check_name("key", "a\nb", 4).unwrap_err().kind,
            ErrorKind::InvalidArgument
        );
        assert!(check_optional_name("id", "", 4).is_ok());
    }

    #[test]
    fn ranges_and_pages() {
        assert!(check_range_ms("ttl", 0, 1, 10).is_err());
        assert!(check_range_ms("ttl", 11, 1, 10).is_err());
        assert!(check_range_ms("ttl", 10, 1, 10).is_ok());
        assert_eq!(page_limit(0, 100, 1000).unwrap(), 100);
        assert_eq!(page_limit(5, 100, 1000).unwrap(), 5);
        assert!(page_limit(1001, 100, 1000).is_err());
    }
}
