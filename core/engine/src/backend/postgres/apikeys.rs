//! [`ApiKeyStore`] on PostgreSQL: every replica reads the same table, so a revocation is seen
//! by all of them on their next lookup.

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::Row;

use super::PostgresStore;
use crate::apikeys::{ApiKey, ApiKeyStore};
use crate::error::{Error, Result};

const COLUMNS: &str = "key_id, name, roles::text AS roles, key_hash, created_at_ms, revoked_at_ms";

fn key_from_row(row: &PgRow) -> Result<(ApiKey, String)> {
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
        row.as_ref().map(key_from_row).transpose()
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKey>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM syros_api_keys ORDER BY created_at_ms, key_id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| key_from_row(r).map(|(k, _)| k))
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
