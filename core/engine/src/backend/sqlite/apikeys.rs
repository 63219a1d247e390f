//! [`ApiKeyStore`] on the embedded SQLite file.

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::SqliteStore;
use crate::apikeys::{ApiKey, ApiKeyStore};
use crate::error::{Error, Result};

const COLUMNS: &str = "key_id, name, roles, key_hash, created_at_ms, revoked_at_ms";

fn key_from_row(row: &SqliteRow) -> Result<(ApiKey, String)> {
    let roles: String = row.try_get("roles")?;
    let roles = serde_json::from_str(&roles)
        .map_err(|e| Error::internal(format!("stored API key roles are unreadable: {e}")))?;
    Ok((
        ApiKey {
            key_id: row.try_get("key_id")?,
            name: row.try_get("name")?,
            roles,
            created_at_ms: row.try_get("created_at_ms")?,
            revoked_at_ms: row.try_get("revoked_at_ms")?,
        },
        row.try_get("key_hash")?,
    ))
}

#[async_trait]
impl ApiKeyStore for SqliteStore {
    async fn insert_api_key(&self, key: &ApiKey, key_hash: &str) -> Result<()> {
        let roles =
            serde_json::to_string(&key.roles).map_err(|e| Error::internal(e.to_string()))?;
        sqlx::query(
            "INSERT INTO api_keys (key_id, name, roles, key_hash, created_at_ms) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&key.key_id)
        .bind(&key.name)
        .bind(roles)
        .bind(key_hash)
        .bind(key.created_at_ms)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn get_api_key(&self, key_id: &str) -> Result<Option<(ApiKey, String)>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM api_keys WHERE key_id = ?"))
            .bind(key_id)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(key_from_row).transpose()
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKey>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM api_keys ORDER BY created_at_ms, key_id"
        ))
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| key_from_row(r).map(|(k, _)| k))
            .collect()
    }

    async fn revoke_api_key(&self, key_id: &str, now_ms: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at_ms = ? WHERE key_id = ? AND revoked_at_ms IS NULL",
        )
        .bind(now_ms)
        .bind(key_id)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
