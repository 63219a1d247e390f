//! Redis backend for locks and cache (production).
//!
//! Every operation is one Lua script (one round trip, atomic). All keys share the hash tag
//! `{<namespace>}` so the scripts stay in one slot on Redis Cluster; scripts reach keys through
//! pointers stored in Redis (lease id → lock), which is safe because those keys share the slot.
//! A lease is one packed string on its lock key, written with its TTL by one `SET … PX`
//! (`lua/lock_lease.lua`), and the replies carry it as it is stored: one bulk string per lease,
//! parsed without intermediate strings. Hash leases of older servers are still read.
//!
//! Fencing tokens are `epoch << 40 | counter`. The counter lives in Redis; the epoch comes from
//! durable storage ([`FenceEpochs`]). Every new connection to Redis is verified before any
//! command uses it ([`Link`]): Redis' identity (its run id and replication id, which change
//! with every process start and every promotion of a replica) is compared with the one recorded
//! durably, and the counter must lie in the newest epoch; otherwise a new epoch is taken, the
//! counter raised into it, and the identity recorded. Every switch of Redis process is a new TCP
//! connection, so no grant happens on an unverified Redis; the acquire script also refuses to
//! grant a token outside the connection's verified epoch (a flush, or another server that moved
//! the counter on), at no extra Redis operation. See docs/storage.md for the guarantee and its
//! limits.
//!
//! Releases are announced (JSON: the lease, whether it was forced, and which store instance
//! announced it) only to the replicas that have lock-change subscribers, each on its own channel
//! `<prefix>lock-released:<replica>`, never to the releasing replica itself: a replica with a
//! [`LockManager::watch`](crate::LockManager::watch) open keeps an entry in the sorted set
//! `<prefix>lock-watchers` (replica → until when), which the release scripts read. With nobody
//! watching, a release costs Redis no message at all.
//!
//! Each key's waiters queue in Redis (`lua/lock_queue.lua`), shared by every replica: the acquire
//! script queues a caller that finds the key held (or others queued first), and the release
//! scripts hand the freed key to the first live waiter in the same script, publishing the grant
//! to that waiter's replica (`<prefix>lock-granted:<replica>`) unless it is the releasing one,
//! which gets it in the reply. A replica counts as live while its key `<prefix>replica:<id>`
//! exists; one task per store refreshes it ([`REPLICA_LIVENESS_TTL`]).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use futures::{FutureExt, StreamExt};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Cmd, Pipeline, RedisError, RedisFuture, Script, Value};
use tokio::sync::{broadcast, watch};

use crate::error::{Error, ErrorKind, Result};
use crate::model::*;
use crate::store::*;

/// Bits of a fencing token below the epoch: 2^40 leases per epoch.
const EPOCH_SHIFT: u32 = 40;

/// Lua scripts, loaded once per process (EVALSHA, with EVAL fallback after a Redis restart).
struct Scripts {
    acquire: Script,
    renew: Script,
    release: Script,
    force_release: Script,
    hand_off: Script,
    cache_set: Script,
    cache_delete: Script,
    cache_invalidate: Script,
    fence_raise: Script,
}

impl Scripts {
    fn new() -> Self {
        Scripts {
            // Every lock script shares the lease encoding; those that grant or free a key, the
            // queue's functions too.
            acquire: Script::new(concat!(
                include_str!("lua/lock_lease.lua"),
                include_str!("lua/lock_queue.lua"),
                include_str!("lua/lock_acquire.lua")
            )),
            renew: Script::new(concat!(
                include_str!("lua/lock_lease.lua"),
                include_str!("lua/lock_renew.lua")
            )),
            release: Script::new(concat!(
                include_str!("lua/lock_lease.lua"),
                include_str!("lua/lock_queue.lua"),
                include_str!("lua/lock_release.lua")
            )),
            force_release: Script::new(concat!(
                include_str!("lua/lock_lease.lua"),
                include_str!("lua/lock_queue.lua"),
                include_str!("lua/lock_force_release.lua")
            )),
            hand_off: Script::new(concat!(
                include_str!("lua/lock_lease.lua"),
                include_str!("lua/lock_queue.lua"),
                include_str!("lua/lock_hand_off.lua")
            )),
            cache_set: Script::new(include_str!("lua/cache_set.lua")),
            cache_delete: Script::new(include_str!("lua/cache_delete.lua")),
            cache_invalidate: Script::new(include_str!("lua/cache_invalidate.lua")),
            fence_raise: Script::new(include_str!("lua/fence_raise.lua")),
        }
    }
}

/// A call of `script` by its SHA: `EVALSHA <sha> <keys>`, to which the caller adds the keys and
/// then the arguments. Built as one command rather than through `Script::key`/`arg`, which
/// collect every argument in a buffer of its own before copying them into the command (~6k
/// instructions per lock cycle in callgrind).
fn script_call(script: &Script, keys: usize) -> Cmd {
    let mut cmd = Cmd::with_capacity(16, 256);
    cmd.arg("EVALSHA").arg(script.get_hash()).arg(keys);
    cmd
}

/// Run a [`script_call`] of `script`; when Redis does not know the script (it restarted, or
/// was flushed), load it and run the call again.
async fn invoke_script<T: redis::FromRedisValue>(
    script: &Script,
    call: &Cmd,
    conn: &mut Conn,
) -> RedisResultOf<T> {
    match call.query_async(conn).await {
        Err(err) if err.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
            script.prepare_invoke().load_async(conn).await?;
            call.query_async(conn).await
        }
        other => other,
    }
}

/// The connection every command goes through: one multiplexed TCP connection at a time, verified
/// (fencing epoch checked against Redis' identity) before its first use, and replaced (and
/// verified again) after it fails. Unlike a reconnecting connection manager, it never lets a
/// command reach a Redis process it has not verified.
struct Link {
    client: redis::Client,
    config: AsyncConnectionConfig,
    epochs: Arc<dyn FenceEpochs>,
    fence_key: String,
    fence_raise: Script,
    current: RwLock<Option<Verified>>,
    /// Held while connecting, so concurrent callers wait for one verification.
    connecting: tokio::sync::Mutex<()>,
    next_id: AtomicU64,
}

/// A connection and the fencing epoch verified for it.
#[derive(Clone)]
struct Verified {
    id: u64,
    epoch: u64,
    conn: MultiplexedConnection,
}

/// A handle on the verified connection for one operation. A failure that may mean a different
/// Redis next time (connection lost, timeout, `READONLY` from a demoted master) makes the link
/// drop the connection, so the next operation connects and verifies again.
struct Conn {
    verified: Verified,
    link: Arc<Link>,
}

impl Conn {
    fn observe<T>(&self, result: RedisResultOf<T>) -> RedisResultOf<T> {
        if let Err(err) = &result {
            if err.is_io_error()
                || err.is_timeout()
                || err.is_connection_dropped()
                || err.is_unrecoverable_error()
                || err.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly)
            {
                self.link.forget(self.verified.id);
            }
        }
        result
    }
}

type RedisResultOf<T> = std::result::Result<T, RedisError>;

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        async move {
            let result = self.verified.conn.req_packed_command(cmd).await;
            self.observe(result)
        }
        .boxed()
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        async move {
            let result = self
                .verified
                .conn
                .req_packed_commands(pipeline, offset, count)
                .await;
            self.observe(result)
        }
        .boxed()
    }

    fn get_db(&self) -> i64 {
        self.verified.conn.get_db()
    }
}

/// First token of `epoch`.
fn epoch_base(epoch: u64) -> Result<i64> {
    epoch
        .checked_shl(EPOCH_SHIFT)
        .filter(|base| *base < MAX_TOKEN)
        .and_then(|base| i64::try_from(base).ok())
        .ok_or_else(|| Error::internal(format!("fencing epoch {epoch} is too large")))
}

/// Tokens stay below 2^53 so the acquire script (Lua numbers are doubles) handles them exactly:
/// 8191 epochs of 2^40 leases each.
const MAX_TOKEN: u64 = 1 << 53;

/// One line `name:value` of an `INFO` section.
fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines().find_map(|line| {
        line.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(str::trim)
    })
}

/// A stable 63-bit fingerprint of a Redis data lineage (FNV-1a of its run id and replication
/// id), small enough for the durable integer counters table.
fn redis_fingerprint(run_id: &str, replid: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in run_id.bytes().chain([b'/']).chain(replid.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash >> 1) as i64
}

impl Link {
    /// The verified connection, connecting and verifying first if there is none.
    async fn conn(self: &Arc<Self>) -> Result<Conn> {
        if let Some(verified) = self.current() {
            return Ok(Conn {
                verified,
                link: self.clone(),
            });
        }
        let _connecting = self.connecting.lock().await;
        if let Some(verified) = self.current() {
            return Ok(Conn {
                verified,
                link: self.clone(),
            });
        }
        let mut conn = self
            .client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        let epoch = self.verify(&mut conn).await?;
        let verified = Verified {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            epoch,
            conn,
        };
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(verified.clone());
        Ok(Conn {
            verified,
            link: self.clone(),
        })
    }

    fn current(&self) -> Option<Verified> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Drop connection `id` (if still current): the next operation connects and verifies again.
    fn forget(&self, id: u64) {
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        if current.as_ref().is_some_and(|v| v.id == id) {
            *current = None;
        }
    }

    /// Check the Redis behind a fresh connection before anything uses it, and return the fencing
    /// epoch its counter is in. A Redis whose identity is not the recorded one (another process,
    /// or the same process after a promotion or a resync), or whose counter is not in the newest
    /// epoch, gets a new epoch first: its counter then lies above every token ever issued.
    async fn verify(&self, conn: &mut MultiplexedConnection) -> Result<u64> {
        let (server, replication, counter): (String, String, Option<i64>) = redis::pipe()
            .cmd("INFO")
            .arg("server")
            .cmd("INFO")
            .arg("replication")
            .cmd("GET")
            .arg(&self.fence_key)
            .query_async(conn)
            .await?;
        let run_id = info_field(&server, "run_id")
            .ok_or_else(|| Error::internal("Redis INFO has no run_id"))?;
        let replid = info_field(&replication, "master_replid").unwrap_or("");
        if info_field(&replication, "role") == Some("slave") {
            return Err(Error::unavailable(
                "Redis is a replica (read-only); locks need the master",
            ));
        }
        let fingerprint = redis_fingerprint(run_id, replid);
        let state = self.epochs.fence_state().await?;
        if state.verified_store == Some(fingerprint) && state.epoch > 0 {
            let (first, end) = (epoch_base(state.epoch)?, epoch_base(state.epoch + 1)?);
            if counter.is_some_and(|c| c >= first - 1 && c < end) {
                return Ok(state.epoch);
            }
        }
        let epoch = self.epochs.next_epoch().await?;
        let first = epoch_base(epoch)?;
        epoch_base(epoch + 1)?;
        let _: i64 = self
            .fence_raise
            .key(&self.fence_key)
            .arg(first - 1)
            .invoke_async(conn)
            .await?;
        self.epochs.record_verified(fingerprint).await?;
        tracing::warn!(
            epoch,
            run_id,
            replid,
            "new fencing epoch: Redis is new to this deployment (restart, failover or flush)"
        );
        Ok(epoch)
    }
}

/// Locks and cache in Redis.
pub struct RedisStore {
    link: Arc<Link>,
    scripts: Scripts,
    /// `{namespace}:`
    prefix: String,
    /// This store instance, named in its release announcements so it can tell its own apart;
    /// also this replica's name in the waiter queues and the lock-watchers set.
    instance: String,
    /// Lock-change watches open on this server ([`LockStore::announce_releases`]): while any
    /// is, this replica keeps its entry in `<prefix>lock-watchers` fresh.
    watchers: Arc<AtomicUsize>,
    releases: broadcast::Sender<LockReleased>,
    /// Dropped with the store, which ends the release listener.
    _stop: watch::Sender<()>,
}

impl From<RedisError> for Error {
    fn from(err: RedisError) -> Self {
        if err.is_io_error()
            || err.is_timeout()
            || err.is_connection_dropped()
            || err.is_connection_refusal()
            || err.is_unrecoverable_error()
        {
            Error::unavailable(format!("Redis unavailable: {err}"))
        } else {
            Error::internal(format!("Redis error: {err}"))
        }
    }
}

fn field_str(value: &Value) -> Result<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone())
            .map_err(|_| Error::internal("Redis returned a non-UTF-8 field")),
        Value::SimpleString(s) => Ok(s.clone()),
        Value::Int(i) => Ok(i.to_string()),
        other => Err(Error::internal(format!("unexpected Redis value {other:?}"))),
    }
}

fn field_i64(value: &Value) -> Result<i64> {
    match value {
        Value::Int(i) => Ok(*i),
        other => field_str(other)?
            .parse()
            .map_err(|_| Error::internal("Redis returned a malformed number")),
    }
}

/// The bytes of a bulk or simple string reply, without copying them.
fn reply_bytes(value: &Value) -> Result<&[u8]> {
    match value {
        Value::BulkString(bytes) => Ok(bytes),
        Value::SimpleString(text) => Ok(text.as_bytes()),
        other => Err(Error::internal(format!("unexpected Redis value {other:?}"))),
    }
}

/// A lease of `key` from its packed form, as the lock scripts store and return it
/// (`lua/lock_lease.lua`): `lease_id\ntoken\nacquired_at\nexpires_at\n<request id length>\n`
/// followed by the request id and the owner. Parsed from the reply's bytes as they are.
fn unpack_lease(value: &Value, key: String) -> Result<Lease> {
    fn malformed() -> Error {
        Error::internal("Redis returned a malformed lease")
    }
    fn text(part: &[u8]) -> Result<&str> {
        std::str::from_utf8(part).map_err(|_| malformed())
    }
    fn number(part: &[u8]) -> Result<i64> {
        text(part)?.parse().map_err(|_| malformed())
    }
    let mut parts = reply_bytes(value)?.splitn(6, |&b| b == b'\n');
    let mut next = || parts.next().ok_or_else(malformed);
    let lease_id = text(next()?)?.to_string();
    let token = number(next()?)?;
    let acquired_at_ms = number(next()?)?;
    let expires_at_ms = number(next()?)?;
    let request_id_len = usize::try_from(number(next()?)?).map_err(|_| malformed())?;
    let owner = next()?.get(request_id_len..).ok_or_else(malformed)?;
    Ok(Lease {
        lease_id,
        owner: text(owner)?.to_string(),
        fencing_token: u64::try_from(token).unwrap_or(0),
        acquired_at_ms,
        expires_at_ms,
        key,
    })
}

/// A lease from fields `[lease_id, owner, token, acquired_at, expires_at]` (a lock hash written
/// by a server before the packed lease) and its key.
fn lease_from(fields: &[Value], key: String) -> Result<Lease> {
    if fields.len() < 5 {
        return Err(Error::internal("Redis returned a short lease"));
    }
    Ok(Lease {
        lease_id: field_str(&fields[0])?,
        owner: field_str(&fields[1])?,
        fencing_token: u64::try_from(field_i64(&fields[2])?).unwrap_or(0),
        acquired_at_ms: field_i64(&fields[3])?,
        expires_at_ms: field_i64(&fields[4])?,
        key,
    })
}

fn not_held(lease_id: &str) -> Error {
    Error::new(
        ErrorKind::LockNotHeld,
        format!("lease {lease_id} is not held (released or expired)"),
    )
    .with_detail("lease_id", lease_id)
}

/// `text` as a `SCAN MATCH` pattern matching itself only.
fn glob_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

impl RedisStore {
    /// Connect to `url`. `namespace` separates several Syros deployments (or tests) sharing one
    /// Redis; `epochs` is the durable source of fencing epochs.
    pub async fn connect(url: &str, namespace: &str, epochs: Arc<dyn FenceEpochs>) -> Result<Self> {
        let client =
            redis::Client::open(url).map_err(|e| Error::invalid(format!("bad REDIS_URL: {e}")))?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(3)))
            .set_response_timeout(Some(Duration::from_secs(5)));
        let prefix = format!("{{{namespace}}}:");
        let link = Arc::new(Link {
            client: client.clone(),
            config,
            epochs,
            fence_key: format!("{prefix}fence"),
            fence_raise: Scripts::new().fence_raise,
            current: RwLock::new(None),
            connecting: tokio::sync::Mutex::new(()),
            next_id: AtomicU64::new(1),
        });
        // Connect (and verify) now, so a bad REDIS_URL fails at start.
        link.conn().await?;
        let (releases, _) = broadcast::channel(1024);
        let (stop, stop_rx) = watch::channel(());
        let instance = uuid::Uuid::new_v4().simple().to_string();
        let presence = Presence {
            liveness_key: format!("{prefix}replica:{instance}"),
            watchers_key: format!("{prefix}lock-watchers"),
            instance: instance.clone(),
            watchers: Arc::new(AtomicUsize::new(0)),
        };
        // Alive before any waiter of this replica can be queued.
        presence.refresh(&link).await?;
        let watchers = presence.watchers.clone();
        tokio::spawn(keep_alive(link.clone(), presence, stop_rx.clone()));
        tokio::spawn(listen_releases(
            client,
            ReleaseChannels {
                releases: format!("{prefix}lock-released:{instance}"),
                grants: format!("{prefix}lock-granted:{instance}"),
                legacy: format!("{namespace}:lock-released"),
            },
            instance.clone(),
            releases.clone(),
            stop_rx,
        ));
        Ok(RedisStore {
            link,
            scripts: Scripts::new(),
            prefix,
            instance,
            watchers,
            releases,
            _stop: stop,
        })
    }

    fn lock_key(&self, key: &str) -> String {
        format!("{}lock:{key}", self.prefix)
    }
    fn lease_key(&self, lease_id: &str) -> String {
        format!("{}lease:{lease_id}", self.prefix)
    }
    fn lease_prefix(&self) -> String {
        format!("{}lease:", self.prefix)
    }
    fn queue_key(&self, key: &str) -> String {
        format!("{}queue:{key}", self.prefix)
    }
    /// The hash of `key`'s queued waiters (the scripts name it, and the queue list, alike).
    fn waiting_key(&self, key: &str) -> String {
        format!("{}waiting:{key}", self.prefix)
    }
    fn cache_key(&self, key: &str) -> String {
        format!("{}cache:{key}", self.prefix)
    }
    /// Marks a cache set's request id as applied (see [`CacheSetOnce`]).
    fn cache_request_key(&self, request_id: &str) -> String {
        format!("{}cache-set:{request_id}", self.prefix)
    }
    fn tag_prefix(&self) -> String {
        format!("{}tag:", self.prefix)
    }

    async fn conn(&self) -> Result<Conn> {
        self.link.conn().await
    }

    /// A hand-off to `replica`'s waiter `waiter`: returned when that is this replica (the script
    /// published it to any other).
    fn local_grant(
        &self,
        replica: &Value,
        waiter: &Value,
        lease: Lease,
    ) -> Result<Option<QueueGrant>> {
        if field_str(replica)? != self.instance {
            return Ok(None);
        }
        let waiter = field_str(waiter)?
            .parse()
            .map_err(|_| Error::internal("malformed waiter id in a hand-off"))?;
        Ok(Some(QueueGrant { waiter, lease }))
    }

    /// The hand-off part of a release reply (`'none'`, `'epoch'`, or `'handed'` followed by
    /// replica, waiter and the packed lease). After `'epoch'` (the counter left the verified
    /// epoch, so the key went to nobody), Redis is verified again and the key handed off then.
    async fn hand_off_reply(
        &self,
        conn: &Conn,
        key: &str,
        reply: Option<&[Value]>,
        now_ms: i64,
    ) -> Result<Option<QueueGrant>> {
        let Some([status, rest @ ..]) = reply else {
            return Ok(None);
        };
        match field_str(status)?.as_str() {
            "handed" if rest.len() >= 3 => {
                self.local_grant(&rest[0], &rest[1], unpack_lease(&rest[2], key.to_string())?)
            }
            "epoch" => {
                self.link.forget(conn.verified.id);
                self.hand_off(key, now_ms).await
            }
            _ => Ok(None),
        }
    }

    /// Give the free `key` to the first live waiter of its queue.
    async fn hand_off(&self, key: &str, now_ms: i64) -> Result<Option<QueueGrant>> {
        for _ in 0..3 {
            let mut conn = self.conn().await?;
            let epoch = conn.verified.epoch;
            let mut call = script_call(&self.scripts.hand_off, 2);
            call.arg(self.lock_key(key))
                .arg(self.queue_key(key))
                .arg(key)
                .arg(now_ms)
                .arg(epoch_base(epoch)?)
                .arg(epoch_base(epoch + 1)?)
                .arg(&self.prefix)
                .arg(&self.instance);
            let reply: Value = invoke_script(&self.scripts.hand_off, &call, &mut conn).await?;
            match reply {
                Value::Array(fields) if fields.len() >= 3 => {
                    let lease = unpack_lease(&fields[2], key.to_string())?;
                    return self.local_grant(&fields[0], &fields[1], lease);
                }
                Value::Array(_) => return Err(Error::internal("short hand-off reply")),
                other if field_str(&other).is_ok_and(|s| s == "epoch") => {
                    self.link.forget(conn.verified.id)
                }
                _ => return Ok(None),
            }
        }
        Err(Error::unavailable(
            "Redis keeps moving its fencing counter out of the verified epoch",
        ))
    }

    /// A hand-off to a waiter of this replica found by a call that cannot return it (the plain
    /// [`LockStore`] operations): delivered through the release feed, like one from elsewhere.
    fn announce_grant(&self, handed: Option<QueueGrant>) {
        if let Some(grant) = handed {
            let _ = self.releases.send(LockReleased::Granted(grant));
        }
    }
}

/// A release announcement: the JSON the release scripts publish, or (from older servers) just
/// the key.
fn parse_release(payload: String, instance: &str) -> ReleasedKey {
    let legacy = |key: String| ReleasedKey {
        key,
        lease: None,
        forced: false,
        own: false,
    };
    if !payload.starts_with('{') {
        return legacy(payload);
    }
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str(&payload) else {
        return legacy(payload);
    };
    let text = |name: &str| map.get(name).and_then(serde_json::Value::as_str);
    let number = |name: &str| text(name).and_then(|t| t.parse::<i64>().ok());
    let Some(key) = text("key") else {
        return legacy(payload);
    };
    let lease = match (
        text("lease_id"),
        text("owner"),
        number("token"),
        number("acquired_at"),
        number("expires_at"),
    ) {
        (Some(lease_id), Some(owner), Some(token), Some(acquired), Some(expires)) => Some(Lease {
            lease_id: lease_id.to_string(),
            key: key.to_string(),
            owner: owner.to_string(),
            fencing_token: u64::try_from(token).unwrap_or(0),
            acquired_at_ms: acquired,
            expires_at_ms: expires,
        }),
        _ => None,
    };
    ReleasedKey {
        key: key.to_string(),
        lease,
        forced: map
            .get("forced")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false),
        own: text("origin") == Some(instance),
    }
}

/// The text that marks a release announced by `instance` (its `origin` field, as cjson writes
/// it). cjson escapes every quote inside a string value, so this text cannot occur inside a key
/// or an owner: finding it is exact.
fn own_origin_marker(instance: &str) -> String {
    format!("\"origin\":\"{instance}\"")
}

/// A queue hand-off published to this replica (JSON: waiter, key and the lease's fields).
fn parse_grant(payload: &str) -> Option<QueueGrant> {
    let serde_json::Value::Object(map) = serde_json::from_str(payload).ok()? else {
        return None;
    };
    let text = |name: &str| map.get(name).and_then(serde_json::Value::as_str);
    let number = |name: &str| text(name).and_then(|t| t.parse::<i64>().ok());
    Some(QueueGrant {
        waiter: text("waiter")?.parse().ok()?,
        lease: Lease {
            lease_id: text("lease_id")?.to_string(),
            key: text("key")?.to_string(),
            owner: text("owner")?.to_string(),
            fencing_token: u64::try_from(number("token")?).ok()?,
            acquired_at_ms: number("acquired_at")?,
            expires_at_ms: number("expires_at")?,
        },
    })
}

/// How long a replica counts as alive after its last refresh: queued waiters of a replica that
/// died are skipped by hand-offs once this passed.
pub const REPLICA_LIVENESS_TTL: Duration = Duration::from_secs(3);

/// How often a replica refreshes its liveness key (a third of its TTL: two refreshes may fail).
const REPLICA_LIVENESS_REFRESH: Duration = Duration::from_secs(1);

/// How long an entry of `<prefix>lock-watchers` asks for release announcements after its last
/// refresh (every [`REPLICA_LIVENESS_REFRESH`] while the replica has watches). Compared with the
/// releasing replica's clock, so it also bounds the clock skew between replicas it tolerates.
const LOCK_WATCHERS_TTL: Duration = Duration::from_secs(10);

/// What a replica keeps fresh in Redis: its liveness key, and its entry in the lock-watchers set
/// while it has lock-change watches.
struct Presence {
    liveness_key: String,
    watchers_key: String,
    instance: String,
    watchers: Arc<AtomicUsize>,
}

impl Presence {
    /// Refresh the liveness key, and the lock-watchers entry when there are watches (one round
    /// trip).
    async fn refresh(&self, link: &Arc<Link>) -> Result<()> {
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(&self.liveness_key)
            .arg(1)
            .arg("PX")
            .arg(REPLICA_LIVENESS_TTL.as_millis() as u64)
            .ignore();
        if self.watchers.load(Ordering::SeqCst) > 0 {
            add_watcher(&mut pipe, &self.watchers_key, &self.instance);
        }
        let mut conn = link.conn().await?;
        let _: () = pipe.query_async(&mut conn).await?;
        Ok(())
    }
}

/// Add (or refresh) `instance`'s entry in the lock-watchers set, and drop lapsed entries.
fn add_watcher(pipe: &mut Pipeline, watchers_key: &str, instance: &str) {
    let now = crate::limits::now_ms();
    let ttl = LOCK_WATCHERS_TTL.as_millis() as i64;
    pipe.cmd("ZADD")
        .arg(watchers_key)
        .arg(now + ttl)
        .arg(instance)
        .ignore()
        .cmd("ZREMRANGEBYSCORE")
        .arg(watchers_key)
        .arg("-inf")
        .arg(now)
        .ignore()
        // The set goes when no replica refreshes it any more.
        .cmd("PEXPIRE")
        .arg(watchers_key)
        .arg(ttl)
        .ignore();
}

/// A lock-change watch open on this server ([`LockStore::announce_releases`]); counted while it
/// lives.
struct Watching(Arc<AtomicUsize>);

impl Drop for Watching {
    fn drop(&mut self) {
        // The entry in Redis lapses on its own once no refresh renews it: removing it here could
        // race with a watch opened just after and lose that watch's announcements.
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Keep this replica's liveness key (and lock-watchers entry) alive: one task per replica, not
/// per waiter or watch. Ends when the store is dropped (`stop` closes); the keys then lapse
/// within their TTLs.
async fn keep_alive(link: Arc<Link>, presence: Presence, mut stop: watch::Receiver<()>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(REPLICA_LIVENESS_REFRESH) => {}
            _ = stop.changed() => return,
        }
        if let Err(err) = presence.refresh(&link).await {
            tracing::warn!(error = %err, "cannot refresh this replica's liveness in Redis");
        }
    }
}

/// The pub/sub channels a replica follows.
struct ReleaseChannels {
    /// Release announcements to this replica (it has lock-change watches).
    releases: String,
    /// Queue hand-offs to this replica's waiters.
    grants: String,
    /// Where servers before per-replica announcements published every release.
    legacy: String,
}

/// Follow the release channel and forward each release; after a reconnect, tell the engine to
/// re-check every waiter (a release may have been missed while disconnected).
/// Ends when the store is dropped (`stop` closes).
async fn listen_releases(
    client: redis::Client,
    channels: ReleaseChannels,
    instance: String,
    releases: broadcast::Sender<LockReleased>,
    mut stop: watch::Receiver<()>,
) {
    let own_marker = own_origin_marker(&instance);
    let mut delay = Duration::from_millis(100);
    loop {
        let session = async {
            let mut pubsub = match client.get_async_pubsub().await {
                Ok(pubsub) => pubsub,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot connect to Redis for lock releases");
                    return false;
                }
            };
            let names = [&channels.releases, &channels.grants, &channels.legacy];
            if let Err(err) = pubsub.subscribe(&names).await {
                tracing::warn!(error = %err, "cannot subscribe to lock releases");
                return false;
            }
            let _ = releases.send(LockReleased::Resync);
            let mut messages = pubsub.on_message();
            while let Some(message) = messages.next().await {
                if message.get_channel_name() == channels.grants {
                    match message.get_payload::<String>().map(|p| parse_grant(&p)) {
                        Ok(Some(grant)) => {
                            let _ = releases.send(LockReleased::Granted(grant));
                        }
                        _ => tracing::warn!("malformed lock grant announcement"),
                    }
                    continue;
                }
                if let Ok(payload) = message.get_payload::<String>() {
                    // Announcements skip their origin; an older server on the legacy channel
                    // echoes them to everyone, and the engine ignores its own (it reported them
                    // already): skip those before parsing.
                    if payload.contains(&own_marker) {
                        continue;
                    }
                    let _ = releases.send(LockReleased::Key(parse_release(payload, &instance)));
                }
            }
            tracing::warn!("lost the Redis lock-release subscription; reconnecting");
            true
        };
        tokio::select! {
            was_connected = session => {
                if was_connected {
                    delay = Duration::from_millis(100);
                }
            }
            _ = stop.changed() => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.changed() => return,
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

#[async_trait]
impl LockStore for RedisStore {
    #[tracing::instrument(level = "debug", name = "store.locks.try_acquire", skip_all, fields(db.system = "redis", key = %request.key))]
    async fn try_acquire(&self, request: &LeaseRequest, now_ms: i64) -> Result<TryAcquire> {
        match self.acquire_queued(request, None, now_ms).await? {
            QueuedAcquire::Acquired(lease) => Ok(TryAcquire::Acquired(lease)),
            QueuedAcquire::Queued { holder, handed } => {
                self.announce_grant(handed);
                holder
                    .map(TryAcquire::Held)
                    .ok_or_else(|| Error::internal("the acquire script named no holder"))
            }
            // Only a queued waiter is told this; a try-lock never queues.
            QueuedAcquire::HandedAlready(lease) => Ok(TryAcquire::Acquired(lease)),
        }
    }

    fn keeps_queue(&self) -> bool {
        true
    }

    #[tracing::instrument(level = "debug", name = "store.locks.acquire_queued", skip_all, fields(db.system = "redis", key = %request.key))]
    async fn acquire_queued(
        &self,
        request: &LeaseRequest,
        waiter: Option<&QueuedWaiter>,
        now_ms: i64,
    ) -> Result<QueuedAcquire> {
        let lease_id = match waiter {
            Some(waiter) => waiter.lease_id.clone(),
            None => super::new_lease_id(request),
        };
        for _ in 0..3 {
            let mut conn = self.conn().await?;
            let epoch = conn.verified.epoch;
            // One key named (the others share its hash slot; the script names them).
            let mut call = script_call(&self.scripts.acquire, 1);
            call.arg(self.lock_key(&request.key))
                .arg(&lease_id)
                .arg(&request.owner)
                .arg(request.ttl_ms)
                .arg(request.request_id.as_deref().unwrap_or(""))
                .arg(now_ms)
                .arg(&request.key)
                .arg(epoch_base(epoch)?)
                .arg(epoch_base(epoch + 1)?)
                .arg(&self.prefix)
                .arg(&self.instance);
            // A try-lock never queues: the waiter's arguments are left out.
            if let Some(waiter) = waiter {
                call.arg(waiter.id)
                    .arg(waiter.deadline_ms)
                    .arg(if waiter.asked_before { "1" } else { "" })
                    .arg(REPLICA_LIVENESS_TTL.as_millis() as u64);
            }
            let reply: Vec<Value> = invoke_script(&self.scripts.acquire, &call, &mut conn).await?;
            let lease = || {
                let packed = reply
                    .get(1)
                    .ok_or_else(|| Error::internal("the acquire script returned no lease"))?;
                unpack_lease(packed, request.key.clone())
            };
            match reply.first().map(field_i64).transpose()? {
                Some(1) => return Ok(QueuedAcquire::Acquired(lease()?)),
                Some(0) => {
                    let handed = match reply.get(2..4) {
                        Some(to) => self.local_grant(&to[0], &to[1], lease()?)?,
                        None => None,
                    };
                    return Ok(QueuedAcquire::Queued {
                        holder: Some(lease()?),
                        handed,
                    });
                }
                // Handed to this waiter already; its delivery may be under way, or lost.
                Some(2) => return Ok(QueuedAcquire::HandedAlready(lease()?)),
                // The counter left the verified epoch: verify Redis again on a new connection.
                Some(3) => self.link.forget(conn.verified.id),
                _ => return Err(Error::internal("unexpected reply from the acquire script")),
            }
        }
        Err(Error::unavailable(
            "Redis keeps moving its fencing counter out of the verified epoch",
        ))
    }

    #[tracing::instrument(level = "debug", name = "store.locks.leave_queue", skip_all, fields(db.system = "redis", key = %key))]
    async fn leave_queue(&self, key: &str, waiter: u64) -> Result<()> {
        // The id stays in the list until a hand-off reaches it and finds no entry.
        let mut conn = self.conn().await?;
        let _: i64 = redis::cmd("HDEL")
            .arg(self.waiting_key(key))
            .arg(format!("{}:{waiter}", self.instance))
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", name = "store.locks.release_queued", skip_all, fields(db.system = "redis", lease_id = %lease_id))]
    async fn release_queued(
        &self,
        lease_id: &str,
        now_ms: i64,
    ) -> Result<(Lease, Option<QueueGrant>)> {
        let mut conn = self.conn().await?;
        let epoch = conn.verified.epoch;
        let mut call = script_call(&self.scripts.release, 1);
        call.arg(self.lease_key(lease_id))
            .arg(lease_id)
            .arg(&self.instance)
            .arg(now_ms)
            .arg(epoch_base(epoch)?)
            .arg(epoch_base(epoch + 1)?)
            .arg(&self.prefix);
        let reply: Option<Vec<Value>> =
            invoke_script(&self.scripts.release, &call, &mut conn).await?;
        let fields = reply.ok_or_else(|| not_held(lease_id))?;
        let [packed, key, hand_off @ ..] = fields.as_slice() else {
            return Err(Error::internal("short reply from the release script"));
        };
        let lease = unpack_lease(packed, field_str(key)?)?;
        let handed = self
            .hand_off_reply(&conn, &lease.key, Some(hand_off), now_ms)
            .await?;
        Ok((lease, handed))
    }

    #[tracing::instrument(level = "debug", name = "store.locks.force_release_queued", skip_all, fields(db.system = "redis", key = %key))]
    async fn force_release_queued(
        &self,
        key: &str,
        now_ms: i64,
    ) -> Result<(Option<Lease>, Option<QueueGrant>)> {
        let mut conn = self.conn().await?;
        let epoch = conn.verified.epoch;
        let mut call = script_call(&self.scripts.force_release, 1);
        call.arg(self.lock_key(key))
            .arg(key)
            .arg(self.lease_prefix())
            .arg(&self.instance)
            .arg(now_ms)
            .arg(epoch_base(epoch)?)
            .arg(epoch_base(epoch + 1)?)
            .arg(&self.prefix);
        let reply: Option<Vec<Value>> =
            invoke_script(&self.scripts.force_release, &call, &mut conn).await?;
        let Some(fields) = reply else {
            return Ok((None, None));
        };
        let [packed, hand_off @ ..] = fields.as_slice() else {
            return Err(Error::internal("short reply from the force-release script"));
        };
        let lease = unpack_lease(packed, key.to_string())?;
        let handed = self
            .hand_off_reply(&conn, key, Some(hand_off), now_ms)
            .await?;
        Ok((Some(lease), handed))
    }

    #[tracing::instrument(level = "debug", name = "store.locks.renew", skip_all, fields(db.system = "redis", lease_id = %lease_id))]
    async fn renew(&self, lease_id: &str, ttl_ms: u64, now_ms: i64) -> Result<Lease> {
        let mut conn = self.conn().await?;
        let mut call = script_call(&self.scripts.renew, 1);
        call.arg(self.lease_key(lease_id))
            .arg(lease_id)
            .arg(ttl_ms)
            .arg(now_ms)
            .arg(&self.prefix);
        let reply: Option<Vec<Value>> =
            invoke_script(&self.scripts.renew, &call, &mut conn).await?;
        let fields = reply.ok_or_else(|| not_held(lease_id))?;
        let [packed, key, ..] = fields.as_slice() else {
            return Err(Error::internal("short reply from the renew script"));
        };
        unpack_lease(packed, field_str(key)?)
    }

    async fn release(&self, lease_id: &str, now_ms: i64) -> Result<Lease> {
        let (lease, handed) = self.release_queued(lease_id, now_ms).await?;
        self.announce_grant(handed);
        Ok(lease)
    }

    #[tracing::instrument(level = "debug", name = "store.locks.status", skip_all, fields(db.system = "redis", key = %key))]
    async fn status(&self, key: &str, _now_ms: i64) -> Result<Option<Lease>> {
        let mut conn = self.conn().await?;
        let lock_key = self.lock_key(key);
        let packed = redis::cmd("GET")
            .arg(&lock_key)
            .query_async::<Value>(&mut conn)
            .await;
        match packed {
            Ok(Value::Nil) => return Ok(None),
            Ok(packed) => return unpack_lease(&packed, key.to_string()).map(Some),
            // A hash: a lease written by a server before the packed lease.
            Err(err) if err.code() == Some("WRONGTYPE") => {}
            Err(err) => return Err(err.into()),
        }
        let fields: Vec<Value> = redis::cmd("HMGET")
            .arg(&lock_key)
            .arg(&["lease_id", "owner", "token", "acquired_at", "expires_at"])
            .query_async(&mut conn)
            .await?;
        if matches!(fields.first(), None | Some(Value::Nil)) {
            return Ok(None);
        }
        lease_from(&fields, key.to_string()).map(Some)
    }

    #[tracing::instrument(level = "debug", name = "store.locks.list", skip_all, fields(db.system = "redis", prefix = %prefix))]
    async fn list(&self, prefix: &str, limit: usize, now_ms: i64) -> Result<Vec<Lease>> {
        // Every held lock is a key `<prefix>lock:<key>` that Redis expires with its lease; no
        // index is kept beside them (it cost every grant and release a write), so a listing
        // scans for them: it reads the whole keyspace, which an admin listing can afford.
        let lock_prefix = self.lock_key("");
        let pattern = format!("{}*", glob_escape(&self.lock_key(prefix)));
        let mut keys = Vec::new();
        let mut cursor = 0u64;
        loop {
            let mut conn = self.conn().await?;
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await?;
            keys.extend(
                batch
                    .iter()
                    .filter_map(|k| k.strip_prefix(&lock_prefix).map(str::to_string)),
            );
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        // SCAN may return a key twice.
        keys.sort_unstable();
        keys.dedup();
        let mut leases = Vec::new();
        for key in keys {
            if let Some(lease) = self.status(&key, now_ms).await? {
                leases.push(lease);
                if leases.len() == limit {
                    break;
                }
            }
        }
        Ok(leases)
    }

    async fn force_release(&self, key: &str, now_ms: i64) -> Result<Option<Lease>> {
        let (lease, handed) = self.force_release_queued(key, now_ms).await?;
        self.announce_grant(handed);
        Ok(lease)
    }

    async fn purge_expired(&self, _now_ms: i64) -> Result<u64> {
        Ok(0) // Redis expires lock hashes and lease pointers itself.
    }

    fn releases(&self) -> Option<broadcast::Receiver<LockReleased>> {
        Some(self.releases.subscribe())
    }

    async fn announce_releases(&self) -> Result<AnnouncementGuard> {
        // Counted first, so the keep-alive task refreshes the entry from now on; dropped (and
        // uncounted) if Redis cannot be told.
        self.watchers.fetch_add(1, Ordering::SeqCst);
        let watching = Watching(self.watchers.clone());
        let mut pipe = redis::pipe();
        add_watcher(
            &mut pipe,
            &format!("{}lock-watchers", self.prefix),
            &self.instance,
        );
        let mut conn = self.conn().await?;
        let _: () = pipe.query_async(&mut conn).await?;
        Ok(Box::new(watching))
    }
}

#[async_trait]
impl CacheStore for RedisStore {
    #[tracing::instrument(level = "debug", name = "store.cache.get", skip_all, fields(db.system = "redis", key = %key))]
    async fn get(&self, key: &str, _now_ms: i64) -> Result<Option<CacheEntry>> {
        let mut conn = self.conn().await?;
        let (value, expires, tags): (Option<Vec<u8>>, Option<String>, Option<String>) =
            redis::cmd("HMGET")
                .arg(self.cache_key(key))
                .arg(&["v", "e", "t"])
                .query_async(&mut conn)
                .await?;
        let Some(value) = value else { return Ok(None) };
        let expires_at_ms = match expires.as_deref() {
            None | Some("") => None,
            Some(text) => Some(
                text.parse()
                    .map_err(|_| Error::internal("malformed cache expiry"))?,
            ),
        };
        let tags = tags
            .unwrap_or_default()
            .split('\n')
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect();
        Ok(Some(CacheEntry {
            key: key.to_string(),
            value,
            expires_at_ms,
            tags,
        }))
    }

    #[tracing::instrument(level = "debug", name = "store.cache.set", skip_all, fields(db.system = "redis", key = %entry.key))]
    async fn set(
        &self,
        entry: &CacheEntry,
        once: Option<&CacheSetOnce>,
    ) -> Result<CacheSetOutcome> {
        let ttl_ms = match entry.expires_at_ms {
            None => 0,
            Some(at) => (at - crate::limits::now_ms()).max(1),
        };
        let mut conn = self.conn().await?;
        let mut invocation = self.scripts.cache_set.key(self.cache_key(&entry.key));
        let remember_ms = match once {
            Some(once) => {
                invocation.key(self.cache_request_key(&once.request_id));
                (once.forget_at_ms - once.now_ms).max(1)
            }
            None => 0,
        };
        invocation
            .arg(entry.value.as_slice())
            .arg(ttl_ms)
            .arg(
                entry
                    .expires_at_ms
                    .map(|e| e.to_string())
                    .unwrap_or_default(),
            )
            .arg(self.tag_prefix())
            .arg(remember_ms);
        for tag in &entry.tags {
            invocation.arg(tag);
        }
        let (stored, earlier): (i64, String) = invocation.invoke_async(&mut conn).await?;
        if stored == 1 {
            return Ok(CacheSetOutcome::Stored);
        }
        let expires_at_ms = match earlier.as_str() {
            "" => None,
            text => Some(
                text.parse()
                    .map_err(|_| Error::internal("malformed cache request marker"))?,
            ),
        };
        Ok(CacheSetOutcome::Repeated { expires_at_ms })
    }

    #[tracing::instrument(level = "debug", name = "store.cache.delete", skip_all, fields(db.system = "redis", key = %key))]
    async fn delete(&self, key: &str) -> Result<bool> {
        let mut conn = self.conn().await?;
        let deleted: i64 = self
            .scripts
            .cache_delete
            .key(self.cache_key(key))
            .arg(self.tag_prefix())
            .invoke_async(&mut conn)
            .await?;
        Ok(deleted > 0)
    }

    #[tracing::instrument(level = "debug", name = "store.cache.invalidate_tag", skip_all, fields(db.system = "redis", tag = %tag))]
    async fn invalidate_tag(&self, tag: &str) -> Result<u64> {
        let mut conn = self.conn().await?;
        let removed: u64 = self
            .scripts
            .cache_invalidate
            .key(format!("{}{tag}", self.tag_prefix()))
            .arg(self.tag_prefix())
            .invoke_async(&mut conn)
            .await?;
        Ok(removed)
    }

    async fn purge_expired(&self, _now_ms: i64) -> Result<u64> {
        Ok(0) // Redis expires entries (and tag sets) itself.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_patterns_match_their_text_only() {
        assert_eq!(glob_escape("{t1}:lock:a/b"), "{t1}:lock:a/b");
        assert_eq!(glob_escape(r"x*y?[z]\\"), r"x\*y\?\[z\]\\\\");
    }

    #[test]
    fn packed_leases_parse_with_the_request_id_split_off_by_its_length() {
        let packed = |text: &str| Value::BulkString(text.as_bytes().to_vec());
        let lease = unpack_lease(
            &packed("l1\n1099511627777\n1000\n11000\n2\nr1own:er"),
            "k".into(),
        )
        .unwrap();
        assert_eq!(
            lease,
            Lease {
                lease_id: "l1".into(),
                key: "k".into(),
                owner: "own:er".into(),
                fencing_token: 1_099_511_627_777,
                acquired_at_ms: 1000,
                expires_at_ms: 11_000,
            }
        );
        // No request id: the owner is all the rest.
        let lease = unpack_lease(&packed("l2\n5\n1\n2\n0\nowner"), "k".into()).unwrap();
        assert_eq!((lease.owner.as_str(), lease.fencing_token), ("owner", 5));
        for bad in [
            "l1\n5\n1\n2",              // fields missing
            "l1\nfive\n1\n2\n0\nowner", // not a number
            "l1\n5\n1\n2\n9\nshort",    // request id longer than the rest
        ] {
            assert!(unpack_lease(&packed(bad), "k".into()).is_err(), "{bad:?}");
        }
        assert!(unpack_lease(&Value::Nil, "k".into()).is_err());
    }

    #[test]
    fn release_announcements_parse() {
        let json = r#"{"key":"a\/b","lease_id":"l1","owner":"o","token":"1099511627777",
            "acquired_at":"10","expires_at":"20","origin":"me","forced":true}"#;
        let notice = parse_release(json.to_string(), "me");
        assert_eq!(notice.key, "a/b");
        assert!(notice.own && notice.forced);
        let lease = notice.lease.expect("the lease");
        assert_eq!(lease.fencing_token, 1_099_511_627_777);
        assert_eq!((lease.acquired_at_ms, lease.expires_at_ms), (10, 20));
        assert!(!parse_release(json.to_string(), "another").own);
        assert!(json.contains(&own_origin_marker("me")));
        assert!(!json.contains(&own_origin_marker("m")));
        // A key or owner that spells the marker is escaped by cjson, so it does not match.
        let spoof = r#"{"key":"\"origin\":\"me\"","origin":"other"}"#;
        assert!(!spoof.contains(&own_origin_marker("me")));
        // A field the script could not read (false in Lua): the key still counts, no lease.
        let partial = r#"{"key":"k","lease_id":"l1","owner":false,"origin":"x"}"#;
        let notice = parse_release(partial.to_string(), "me");
        assert_eq!(
            (notice.key.as_str(), notice.lease, notice.own),
            ("k", None, false)
        );
        // Older servers publish the bare key, whatever it looks like.
        for key in ["orders/1", "{not json", "{\"no_key\":1}"] {
            let notice = parse_release(key.to_string(), "me");
            assert_eq!(notice.key, key);
            assert!(notice.lease.is_none() && !notice.own && !notice.forced);
        }
    }
}
