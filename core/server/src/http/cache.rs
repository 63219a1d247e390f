//! REST: cache. A key is one path segment: percent-encode `/` and other reserved characters
//! (`/api/v1/cache/users%2F42`). Values are bytes: send JSON as `value` (stored as its JSON
//! text) or any bytes as `value_base64`; reads return `value_base64` always and `value` when the
//! bytes are a JSON document.

use axum::extract::State;
use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use syros_engine::CacheEntry;
use utoipa::ToSchema;

use axum::Extension;

use super::error::{ApiError, ErrorBody, Json, Path};
use super::{duration_ms, rfc3339, AppState};
use crate::security::{Permission, Principal};

/// A cache entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct CacheEntryBody {
    pub key: String,
    /// The value parsed as JSON; absent when the stored bytes are not a JSON document.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// The stored bytes, base64 (standard alphabet, padded).
    pub value_base64: String,
    /// Milliseconds since the Unix epoch; `null`: never expires.
    pub expires_at_ms: Option<i64>,
    /// `expires_at_ms` as RFC 3339; `null`: never expires.
    pub expires_at: Option<String>,
    pub tags: Vec<String>,
}

impl From<CacheEntry> for CacheEntryBody {
    fn from(entry: CacheEntry) -> Self {
        let value = serde_json::from_slice(&entry.value).ok();
        CacheEntryBody {
            value,
            value_base64: base64::engine::general_purpose::STANDARD.encode(&entry.value),
            expires_at: entry.expires_at_ms.map(rfc3339),
            expires_at_ms: entry.expires_at_ms,
            key: entry.key,
            tags: entry.tags,
        }
    }
}

/// Deserializes a present field, even `null`, as `Some`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// Store a value. Give exactly one of `value` (any JSON, stored as its JSON text) and
/// `value_base64` (raw bytes). TTL as `ttl_seconds` or `ttl_ms`; none: never expires.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"value": {"name": "Ada"}, "ttl_seconds": 300, "tags": ["users"]}))]
pub struct CachePutBody {
    #[serde(default, deserialize_with = "present")]
    pub value: Option<Value>,
    pub value_base64: Option<String>,
    /// Time to live in seconds (at most 30 days); none: never expires.
    #[schema(minimum = 1, maximum = 2592000)]
    pub ttl_seconds: Option<u64>,
    /// Time to live in milliseconds (at most 30 days); none or 0: never expires.
    #[schema(maximum = 2592000000u64)]
    pub ttl_ms: Option<u64>,
    /// Tags to invalidate the key by (at most 32, each 1-256 bytes); replaces earlier tags.
    #[serde(default)]
    #[schema(max_items = 32)]
    pub tags: Vec<String>,
}

/// The outcome of a delete.
#[derive(Debug, Serialize, ToSchema)]
pub struct CacheDeletedBody {
    pub key: String,
    /// Whether the key existed.
    pub deleted: bool,
}

/// The outcome of invalidating a tag.
#[derive(Debug, Serialize, ToSchema)]
pub struct TagInvalidatedBody {
    pub tag: String,
    /// How many keys were removed.
    pub removed: u64,
}

#[utoipa::path(
    operation_id = "cache_get", get, path = "/api/v1/cache/{key}", tag = "cache",
    params(("key" = String, Path, description = "The key, percent-encoded")),
    responses(
        (status = 200, description = "The entry", body = CacheEntryBody),
        (status = 404, description = "No such key, or it expired", body = ErrorBody),
        (status = 400, description = "Invalid key", body = ErrorBody),
    )
)]
/// Read a key.
pub async fn get(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(key): Path<String>,
) -> Result<axum::Json<CacheEntryBody>, ApiError> {
    who.require(Permission::CacheRead, Some(&key))?;
    let entry = state.engine.cache.get(&key).await?;
    match entry {
        Some(entry) => Ok(axum::Json(entry.into())),
        None => Err(ApiError::from(syros_engine::Error::new(
            syros_engine::ErrorKind::NotFound,
            format!("cache key {key:?} not found"),
        ))
        .with_detail("key", key)),
    }
}

#[utoipa::path(
    operation_id = "cache_put", put, path = "/api/v1/cache/{key}", tag = "cache",
    params(("key" = String, Path, description = "The key, percent-encoded")),
    request_body = CachePutBody,
    responses(
        (status = 200, description = "Stored", body = CacheEntryBody),
        (status = 400, description = "Invalid key, value, TTL or tags", body = ErrorBody),
        (status = 413, description = "Value over the size limit", body = ErrorBody),
    )
)]
/// Store a value with an optional TTL and tags, replacing any earlier value and tags.
pub async fn put(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(key): Path<String>,
    Json(body): Json<CachePutBody>,
) -> Result<axum::Json<CacheEntryBody>, ApiError> {
    who.require(Permission::CacheWrite, Some(&key))?;
    let bytes = match (body.value, body.value_base64) {
        (Some(value), None) => serde_json::to_vec(&value)
            .map_err(|e| ApiError::invalid(format!("value cannot be stored: {e}")))?,
        (None, Some(encoded)) => base64::engine::general_purpose::STANDARD
            .decode(encoded.as_bytes())
            .map_err(|e| ApiError::invalid(format!("value_base64 is not base64: {e}")))?,
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid("give value or value_base64, not both"))
        }
        (None, None) => return Err(ApiError::invalid("value or value_base64 is required")),
    };
    let ttl_ms = duration_ms("ttl", body.ttl_ms, body.ttl_seconds)?.unwrap_or(0);
    let entry = state
        .engine
        .cache
        .set(&key, bytes, ttl_ms, body.tags)
        .await?;
    Ok(axum::Json(entry.into()))
}

#[utoipa::path(
    operation_id = "cache_delete", delete, path = "/api/v1/cache/{key}", tag = "cache",
    params(("key" = String, Path, description = "The key, percent-encoded")),
    responses(
        (status = 200, description = "Deleted (or there was nothing to delete)", body = CacheDeletedBody),
        (status = 400, description = "Invalid key", body = ErrorBody),
    )
)]
/// Remove a key.
pub async fn delete(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(key): Path<String>,
) -> Result<axum::Json<CacheDeletedBody>, ApiError> {
    who.require(Permission::CacheWrite, Some(&key))?;
    let deleted = state.engine.cache.delete(&key).await?;
    Ok(axum::Json(CacheDeletedBody { key, deleted }))
}

#[utoipa::path(
    operation_id = "cache_invalidate_tag", post, path = "/api/v1/cache/tags/{tag}/invalidate", tag = "cache",
    params(("tag" = String, Path, description = "The tag, percent-encoded")),
    responses(
        (status = 200, description = "Every key with the tag is gone", body = TagInvalidatedBody),
        (status = 400, description = "Invalid tag", body = ErrorBody),
    )
)]
/// Remove every key carrying a tag, atomically.
pub async fn invalidate_tag(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(tag): Path<String>,
) -> Result<axum::Json<TagInvalidatedBody>, ApiError> {
    who.require(Permission::CacheWrite, Some(&tag))?;
    let removed = state.engine.cache.invalidate_tag(&tag).await?;
    Ok(axum::Json(TagInvalidatedBody { tag, removed }))
}
