//! The tagged cache, and get-or-compute with single-flight.

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use syros_proto::syros::v1 as pb;

use crate::client::{Client, Flight, Inner};
use crate::error::{Error, ErrorKind, Result};

/// A cached value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    /// The stored bytes.
    pub value: Bytes,
    /// When it expires (ms since the Unix epoch, server clock); `None` = never.
    pub expires_at_ms: Option<i64>,
    /// The tags it was stored with.
    pub tags: Vec<String>,
}

/// Options of [`Cache::set`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetOptions {
    /// Time to live; `None` = no expiry. The server accepts at most 30 days and rounds to ms.
    pub ttl: Option<Duration>,
    /// Tags for [`Cache::invalidate_tag`] (at most 32).
    pub tags: Vec<String>,
}

impl SetOptions {
    /// Expire after `ttl`.
    pub fn ttl(ttl: Duration) -> Self {
        SetOptions {
            ttl: Some(ttl),
            tags: Vec::new(),
        }
    }

    /// Add a tag.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }
}

/// The cache operations of a [`Client`]; obtained with [`Client::cache`], cheap to clone.
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache").finish_non_exhaustive()
    }
}

impl Client {
    /// Cache operations over this client's connection.
    pub fn cache(&self) -> Cache {
        Cache {
            inner: self.inner.clone(),
        }
    }
}

fn ttl_ms(ttl: Option<Duration>) -> Result<u64> {
    match ttl {
        None => Ok(0),
        Some(ttl) => {
            let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
            if ms == 0 {
                Err(Error::invalid(
                    "a cache TTL must be at least 1 ms (or None for no expiry)",
                ))
            } else {
                Ok(ms)
            }
        }
    }
}

impl Cache {
    /// The entry under `key`, if present and not expired.
    pub async fn get(&self, key: &str) -> Result<Option<CacheEntry>> {
        get(&self.inner, key).await
    }

    /// Store `value` under `key`, replacing any earlier value and tags. Returns the expiry
    /// (ms since the epoch, server clock), `None` for no expiry.
    pub async fn set(
        &self,
        key: &str,
        value: impl Into<Bytes>,
        options: SetOptions,
    ) -> Result<Option<i64>> {
        set(&self.inner, key, value.into(), &options).await
    }

    /// Remove `key`; true if it existed.
    pub async fn delete(&self, key: &str) -> Result<bool> {
        let inner = &self.inner;
        let spec = inner.spec("cache.delete", true);
        inner
            .run(&spec, |ep, timeout| {
                let request = inner.request(
                    pb::CacheDeleteRequest {
                        key: key.to_string().into(),
                    },
                    Some(timeout),
                );
                async move { Ok(ep.cache.delete(request?).await?.into_inner().deleted) }
            })
            .await
            .result
    }

    /// Remove every key carrying `tag`, atomically; returns how many were removed.
    pub async fn invalidate_tag(&self, tag: &str) -> Result<u64> {
        let inner = &self.inner;
        let spec = inner.spec("cache.invalidate_tag", true);
        inner
            .run(&spec, |ep, timeout| {
                let request = inner.request(
                    pb::CacheInvalidateTagRequest {
                        tag: tag.to_string().into(),
                    },
                    Some(timeout),
                );
                async move {
                    Ok(ep
                        .cache
                        .invalidate_tag(request?)
                        .await?
                        .into_inner()
                        .removed)
                }
            })
            .await
            .result
    }

    /// The value under `key`; on a miss, run `compute`, store its result with `ttl` and return
    /// it. Concurrent callers for the same key in this process share one lookup and one
    /// computation (single-flight); they all get its value or its error. An error of `compute`
    /// becomes kind [`ErrorKind::Callback`] and nothing is stored. Failing to store the computed
    /// value is logged, not returned: the value is still correct.
    pub async fn get_or_compute<F, Fut, V, E>(
        &self,
        key: &str,
        ttl: Option<Duration>,
        compute: F,
    ) -> Result<Bytes>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
        V: Into<Bytes> + Send + 'static,
        E: Display + Send + 'static,
    {
        self.get_or_compute_with(
            key,
            SetOptions {
                ttl,
                tags: Vec::new(),
            },
            compute,
        )
        .await
    }

    /// [`get_or_compute`](Self::get_or_compute) with tags.
    pub async fn get_or_compute_with<F, Fut, V, E>(
        &self,
        key: &str,
        options: SetOptions,
        compute: F,
    ) -> Result<Bytes>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
        V: Into<Bytes> + Send + 'static,
        E: Display + Send + 'static,
    {
        ttl_ms(options.ttl)?;
        let flight = {
            let mut flights = self.inner.flights.lock().unwrap_or_else(|p| p.into_inner());
            match flights.get(key) {
                Some(flight) => flight.clone(),
                None => {
                    let flight: Flight =
                        lookup_or_compute(self.inner.clone(), key.to_string(), options, compute)
                            .boxed()
                            .shared();
                    flights.insert(key.to_string(), flight.clone());
                    flight
                }
            }
        };
        flight.await
    }
}

/// One flight: look up, compute on a miss, store; then leave the flight table.
async fn lookup_or_compute<F, Fut, V, E>(
    inner: Arc<Inner>,
    key: String,
    options: SetOptions,
    compute: F,
) -> Result<Bytes>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<V, E>> + Send + 'static,
    V: Into<Bytes> + Send + 'static,
    E: Display + Send + 'static,
{
    let result = async {
        if let Some(entry) = get(&inner, &key).await? {
            return Ok(entry.value);
        }
        let value: Bytes = compute()
            .await
            .map_err(|err| {
                Error::new(
                    ErrorKind::Callback,
                    format!("computing {key:?} failed: {err}"),
                )
                .with_detail("key", &key)
            })?
            .into();
        if let Err(err) = set(&inner, &key, value.clone(), &options).await {
            tracing::warn!(key, error = %err, "get_or_compute could not store the computed value");
        }
        Ok(value)
    }
    .await;
    inner
        .flights
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&key);
    result
}

async fn get(inner: &Inner, key: &str) -> Result<Option<CacheEntry>> {
    let spec = inner.spec("cache.get", true);
    let resp = inner
        .run(&spec, |ep, timeout| {
            let request = inner.request(
                pb::CacheGetRequest {
                    key: key.to_string().into(),
                },
                Some(timeout),
            );
            async move { Ok(ep.cache.get(request?).await?.into_inner()) }
        })
        .await
        .result?;
    Ok(resp.found.then(|| CacheEntry {
        value: resp.value,
        expires_at_ms: (resp.expires_at_ms != 0).then_some(resp.expires_at_ms),
        tags: resp.tags.into_iter().map(|t| t.to_string()).collect(),
    }))
}

async fn set(inner: &Inner, key: &str, value: Bytes, options: &SetOptions) -> Result<Option<i64>> {
    let ttl_ms = ttl_ms(options.ttl)?;
    // One id for every attempt: the server applies the set once, so a retry after a lost reply
    // cannot restore the value if its tag was invalidated in between.
    let request_id: pilota::FastStr = uuid::Uuid::new_v4().simple().to_string().into();
    let spec = inner.spec("cache.set", true);
    let resp = inner
        .run(&spec, |ep, timeout| {
            let request = inner.request(
                pb::CacheSetRequest {
                    key: key.to_string().into(),
                    value: value.clone(),
                    ttl_ms,
                    tags: options.tags.iter().map(|t| t.clone().into()).collect(),
                    request_id: request_id.clone(),
                },
                Some(timeout),
            );
            async move { Ok(ep.cache.set(request?).await?.into_inner()) }
        })
        .await
        .result?;
    Ok((resp.expires_at_ms != 0).then_some(resp.expires_at_ms))
}
