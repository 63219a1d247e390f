//! [`ApiKeyStore`] on PostgreSQL: every replica reads the same table, so a revocation is seen
//! by all of them on their next lookup.

use async_trait::async_trait;
use sqlx::FromRow;

use super::PostgresStore;
use crate::apikeys::{ApiKey, ApiKeyStore, StoredApiKey};
use crate::error::{Error, Result};

const COLUMNS: &str = "key_id, name, roles::text AS roles, key_hash, created_at_ms, revoked_at_ms";

#[async_trait]
impl ApiKeyStore for PostgresStore {
    async fn insert_api_key(&self, key: &ApiKey, key_hash: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO syros_api_keys (key_id, name, roles, key_hash, created_at_ms) \
             VALUES ($1, $2, $3::jsonb, $4, $5)",
        )
        .bind(&key.key_id)
        .bind(&key.name)
        .bind(serde_json::to_string(&key.roles).map_err(|e| Error::internal(e.to_string()))?)
        .bind(key_hash)
        .bind(key.created_at_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn get_api_key(&self, key_id: &str) -> Result<Option<(ApiKey, String)>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM syros_api_keys WHERE key_id = $1"
        ))
        .bind(key_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref()
            .map(|r| StoredApiKey::from_row(r)?.into_key())
            .transpose()
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKey>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM syros_api_keys ORDER BY created_at_ms, key_id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok(StoredApiKey::from_row(r)?.into_key()?.0))
            .collect()
    }

    async fn revoke_api_key(&self, key_id: &str, now_ms: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE syros_api_keys SET revoked_at_ms = $1 \
             WHERE key_id = $2 AND revoked_at_ms IS NULL",
        )
        .bind(now_ms)
        .bind(key_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
