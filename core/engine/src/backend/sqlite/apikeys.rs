//! [`ApiKeyStore`] on the embedded SQLite file.

use async_trait::async_trait;
use sqlx::FromRow;

use super::SqliteStore;
use crate::apikeys::{ApiKey, ApiKeyStore, StoredApiKey};
use crate::error::{Error, Result};

const COLUMNS: &str = "key_id, name, roles, key_hash, created_at_ms, revoked_at_ms";

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
        row.as_ref()
            .map(|r| StoredApiKey::from_row(r)?.into_key())
            .transpose()
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKey>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM api_keys ORDER BY created_at_ms, key_id"
        ))
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| Ok(StoredApiKey::from_row(r)?.into_key()?.0))
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
