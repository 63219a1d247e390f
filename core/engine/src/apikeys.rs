//! API keys for service-to-service authentication: creation, verification, listing and
//! revocation over an [`ApiKeyStore`] (the embedded SQLite file or PostgreSQL, so that every
//! replica sharing the database sees the same keys).
//!
//! A key looks like `syk_<key id>_<secret>`. Only the SHA-256 digest of the whole key is stored;
//! the key itself is returned once by [`ApiKeys::create`]. The secret is 244 random bits, so a
//! fast digest is enough (no password hashing is needed against guessing).

use std::sync::Arc;

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::limits::now_ms;

/// The prefix of every API key, so a key is recognisable in a secret scanner or a log.
pub const API_KEY_PREFIX: &str = "syk_";

/// An API key as stored (without its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Public identifier, part of the key itself; used by `apikey revoke`.
    pub key_id: String,
    /// What the key is for (a service name), for people.
    pub name: String,
    /// Role names granted to the key's holder.
    pub roles: Vec<String>,
    pub created_at_ms: i64,
    /// Set once the key has been revoked; a revoked key never authenticates again.
    pub revoked_at_ms: Option<i64>,
}

/// An API key as both stores keep it (roles as JSON text), with its hash: one reading of a row
/// for every backend.
#[derive(sqlx::FromRow)]
pub(crate) struct StoredApiKey {
    key_id: String,
    name: String,
    roles: String,
    key_hash: String,
    created_at_ms: i64,
    revoked_at_ms: Option<i64>,
}

impl StoredApiKey {
    /// The key and its hash; roles that are not a JSON list of names are an internal error.
    pub(crate) fn into_key(self) -> Result<(ApiKey, String)> {
        let roles = serde_json::from_str(&self.roles)
            .map_err(|e| Error::internal(format!("stored API key roles are unreadable: {e}")))?;
        Ok((
            ApiKey {
                key_id: self.key_id,
                name: self.name,
                roles,
                created_at_ms: self.created_at_ms,
                revoked_at_ms: self.revoked_at_ms,
            },
            self.key_hash,
        ))
    }
}

/// Storage of API keys; each method is one atomic statement.
#[async_trait]
pub trait ApiKeyStore: Send + Sync + 'static {
    /// Store a new key with the digest of its secret.
    async fn insert_api_key(&self, key: &ApiKey, key_hash: &str) -> Result<()>;
    /// The key and its stored digest, revoked or not.
    async fn get_api_key(&self, key_id: &str) -> Result<Option<(ApiKey, String)>>;
    /// Every key, oldest first.
    async fn list_api_keys(&self) -> Result<Vec<ApiKey>>;
    /// Mark a key revoked at `now_ms`; `false` when there is no such unrevoked key.
    async fn revoke_api_key(&self, key_id: &str, now_ms: i64) -> Result<bool>;
}

/// API key operations over a store.
#[derive(Clone)]
pub struct ApiKeys {
    store: Arc<dyn ApiKeyStore>,
}

/// Longest key name accepted.
const MAX_NAME_LEN: usize = 128;

impl ApiKeys {
    pub fn new(store: Arc<dyn ApiKeyStore>) -> Self {
        ApiKeys { store }
    }

    /// Create a key named `name` granting `roles`; returns the stored record and the key itself
    /// (shown once: it cannot be recovered later).
    pub async fn create(&self, name: &str, roles: &[String]) -> Result<(ApiKey, String)> {
        if name.is_empty() || name.len() > MAX_NAME_LEN || name.chars().any(char::is_control) {
            return Err(Error::invalid(format!(
                "an API key name must be 1-{MAX_NAME_LEN} printable characters"
            )));
        }
        if roles.is_empty() {
            return Err(Error::invalid("an API key needs at least one role"));
        }
        let key_id = uuid::Uuid::new_v4().simple().to_string()[..16].to_string();
        let secret = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let plaintext = format!("{API_KEY_PREFIX}{key_id}_{secret}");
        let record = ApiKey {
            key_id,
            name: name.to_string(),
            roles: roles.to_vec(),
            created_at_ms: now_ms(),
            revoked_at_ms: None,
        };
        self.store
            .insert_api_key(&record, &digest(&plaintext))
            .await?;
        Ok((record, plaintext))
    }

    /// The unrevoked key `presented` is, if any. `Ok(None)` for anything that is not a valid,
    /// unrevoked key (including text that is not shaped like a key at all).
    pub async fn verify(&self, presented: &str) -> Result<Option<ApiKey>> {
        let Some(key_id) = key_id_of(presented) else {
            return Ok(None);
        };
        let Some((key, stored_hash)) = self.store.get_api_key(key_id).await? else {
            return Ok(None);
        };
        let matches = constant_time_eq(digest(presented).as_bytes(), stored_hash.as_bytes());
        Ok((matches && key.revoked_at_ms.is_none()).then_some(key))
    }

    /// Every key, revoked ones included.
    pub async fn list(&self) -> Result<Vec<ApiKey>> {
        self.store.list_api_keys().await
    }

    /// Revoke `key_id`; `NotFound` when no unrevoked key has that id.
    pub async fn revoke(&self, key_id: &str) -> Result<()> {
        if self.store.revoke_api_key(key_id, now_ms()).await? {
            Ok(())
        } else {
            Err(Error::new(
                crate::ErrorKind::NotFound,
                format!("no active API key {key_id:?}"),
            ))
        }
    }
}

/// Whether `text` is shaped like an API key (so a caller can tell keys from JWTs).
pub fn looks_like_api_key(text: &str) -> bool {
    key_id_of(text).is_some()
}

/// The key id inside a key of the form `syk_<id>_<secret>`.
fn key_id_of(text: &str) -> Option<&str> {
    let rest = text.strip_prefix(API_KEY_PREFIX)?;
    let (key_id, secret) = rest.split_once('_')?;
    let hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
    (key_id.len() == 16 && hex(key_id) && secret.len() == 64 && hex(secret)).then_some(key_id)
}

/// Hex SHA-256 of the whole key.
fn digest(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_shape_is_checked() {
        let id = "0123456789abcdef";
        let secret = "a".repeat(64);
        assert_eq!(key_id_of(&format!("syk_{id}_{secret}")), Some(id));
        assert_eq!(key_id_of(&format!("syk_{id}_{}", "a".repeat(63))), None);
        assert_eq!(key_id_of("eyJhbGciOiJIUzI1NiJ9.e30.x"), None);
        assert!(!looks_like_api_key("syk_"));
    }
}
