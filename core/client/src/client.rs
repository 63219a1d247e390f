//! Connection, failover, per-call timeouts, metadata and the retry loop every call goes through.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::{BoxFuture, Shared};
use syros_proto::grpc::health::v1 as health;
use syros_proto::syros::v1 as pb;
use tokio::runtime::Handle;
use tokio::time::Instant;
use tracing::Instrument;
use volo_grpc::metadata::MetadataValue;
use volo_grpc::Status;

use crate::error::{Delivery, Error, ErrorKind, Result};
use crate::retry::RetryPolicy;

/// Supplies a bearer token for each call (`authorization: Bearer <token>` metadata); `None` sends
/// no header. Called before every attempt, so it may refresh tokens.
pub type TokenProvider = Arc<dyn Fn() -> Option<String> + Send + Sync>;

/// How to reach and talk to Syros.
#[derive(Clone)]
pub struct ClientOptions {
    /// Server addresses, `host:port` (optionally prefixed with `http://`). The client talks to one
    /// at a time and fails over to the next when it becomes unreachable. Host names are resolved
    /// once, by [`Client::connect`].
    pub addresses: Vec<String>,
    /// Limit for establishing a TCP connection.
    pub connect_timeout: Duration,
    /// Limit for one attempt of a unary call (a lock wait is added to it for acquire).
    pub call_timeout: Duration,
    /// Retries of unary calls (and of [`Client::connect`] itself).
    pub retry: RetryPolicy,
    /// Reconnection of event subscriptions; by default unlimited attempts without deadline.
    pub resubscribe: RetryPolicy,
    /// Bearer token source (the server ignores it until security lands).
    pub auth_token: Option<TokenProvider>,
    /// HTTP/2 keepalive ping interval; detects dead connections under idle subscriptions.
    pub keepalive_interval: Option<Duration>,
    /// Default lock owner; by default `syros-<pid>-<random>`, one per client.
    pub owner: Option<String>,
    /// Connect over TLS (`None`: plaintext).
    pub tls: Option<crate::tls::TlsOptions>,
}

impl Default for ClientOptions {
    /// `127.0.0.1:9090`, 5 s connect timeout, 10 s call timeout, the default [`RetryPolicy`].
    fn default() -> Self {
        ClientOptions {
            addresses: vec!["127.0.0.1:9090".to_string()],
            connect_timeout: Duration::from_secs(5),
            call_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            resubscribe: RetryPolicy {
                max_attempts: u32::MAX,
                deadline: None,
                ..RetryPolicy::default()
            },
            auth_token: None,
            keepalive_interval: Some(Duration::from_secs(20)),
            owner: None,
            tls: None,
        }
    }
}

impl ClientOptions {
    /// Default options for these addresses.
    pub fn new<S: Into<String>>(addresses: impl IntoIterator<Item = S>) -> Self {
        ClientOptions {
            addresses: addresses.into_iter().map(Into::into).collect(),
            ..ClientOptions::default()
        }
    }
}

impl fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientOptions")
            .field("addresses", &self.addresses)
            .field("connect_timeout", &self.connect_timeout)
            .field("call_timeout", &self.call_timeout)
            .field("retry", &self.retry)
            .field("resubscribe", &self.resubscribe)
            .field("auth_token", &self.auth_token.as_ref().map(|_| "<hook>"))
            .field("keepalive_interval", &self.keepalive_interval)
            .field("owner", &self.owner)
            .field("tls", &self.tls)
            .finish()
    }
}

/// Counters of one client, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Calls started (each may make several attempts).
    pub calls: u64,
    /// Attempts sent (first tries and retries).
    pub attempts: u64,
    /// Attempts that were retries.
    pub retries: u64,
    /// Times the client switched to another server address.
    pub failovers: u64,
}

/// One server address with a client per service.
pub(crate) struct Endpoint {
    pub addr: SocketAddr,
    pub locks: pb::LockServiceClient,
    pub cache: pb::CacheServiceClient,
    pub events: pb::EventServiceClient,
    pub sagas: pb::SagaServiceClient,
    pub health: health::HealthClient,
    /// The lock session stream on this address (crate::session).
    pub sessions: crate::session::Sessions,
}

impl Endpoint {
    fn new(
        addr: SocketAddr,
        options: &ClientOptions,
        tls: Option<&volo::net::tls::ClientTlsConfig>,
    ) -> Endpoint {
        macro_rules! build {
            ($builder:ty) => {{
                let mut b = <$builder>::new("syros")
                    .address(addr)
                    .connect_timeout(options.connect_timeout);
                if let Some(interval) = options.keepalive_interval {
                    b = b
                        .http2_keepalive_interval(Some(interval))
                        .http2_keepalive_timeout(Duration::from_secs(10))
                        .http2_keepalive_while_idle(true);
                }
                if let Some(tls) = tls {
                    b = b.tls_config(tls.clone());
                }
                b.build()
            }};
        }
        Endpoint {
            addr,
            locks: build!(pb::LockServiceClientBuilder),
            cache: build!(pb::CacheServiceClientBuilder),
            events: build!(pb::EventServiceClientBuilder),
            sagas: build!(pb::SagaServiceClientBuilder),
            health: build!(health::HealthClientBuilder),
            sessions: Default::default(),
        }
    }
}

pub(crate) type Flight = Shared<BoxFuture<'static, Result<bytes::Bytes>>>;

#[derive(Default)]
struct Counters {
    calls: AtomicU64,
    attempts: AtomicU64,
    retries: AtomicU64,
    failovers: AtomicU64,
}

pub(crate) struct Inner {
    pub options: ClientOptions,
    pub endpoints: Vec<Arc<Endpoint>>,
    current: AtomicUsize,
    pub handle: Handle,
    pub owner: String,
    counters: Counters,
    /// In-flight `get_or_compute` operations by key.
    pub flights: Mutex<HashMap<String, Flight>>,
}

/// How one logical call is retried.
pub(crate) struct CallSpec<'a> {
    pub op: &'static str,
    pub idempotent: bool,
    /// Added to the per-attempt timeout (the lock wait of an acquire).
    pub extra_timeout: Duration,
    pub deadline: Option<Instant>,
    pub policy: &'a RetryPolicy,
}

/// The result of a call and how it got there.
pub(crate) struct Outcome<T> {
    pub result: Result<T>,
    /// Some attempt failed in a way that leaves unknown whether the server applied it.
    pub ambiguous: bool,
}

/// A connection to Syros: cheap to clone (clones share connections, counters and single-flight
/// state), safe to use from many tasks at once.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("addresses", &self.inner.options.addresses)
            .field("current", &self.current_address())
            .field("owner", &self.inner.owner)
            .finish()
    }
}

fn parse_address(raw: &str) -> Result<&str> {
    let trimmed = raw.trim();
    let bare = trimmed
        .strip_prefix("http://")
        .or_else(|| trimmed.strip_prefix("https://"))
        .or_else(|| trimmed.strip_prefix("grpc://"))
        .unwrap_or(trimmed)
        .trim_end_matches('/');
    if bare.is_empty() || !bare.contains(':') {
        return Err(Error::invalid(format!(
            "server address {raw:?} must be host:port"
        )));
    }
    Ok(bare)
}

async fn resolve(raw: &str) -> Result<SocketAddr> {
    let bare = parse_address(raw)?;
    if let Ok(addr) = bare.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let mut found = tokio::net::lookup_host(bare)
        .await
        .map_err(|err| Error::invalid(format!("cannot resolve server address {raw:?}: {err}")))?;
    found
        .next()
        .ok_or_else(|| Error::invalid(format!("server address {raw:?} resolves to nothing")))
}

impl Client {
    /// Resolve the addresses and check that a server answers (health SERVING), trying each
    /// address in turn with the retry policy. The client then uses the first healthy address and
    /// fails over to the others when it becomes unreachable.
    ///
    /// Background work of the client (lease renewal, subscriptions, release on drop) runs on the
    /// tokio runtime this is called from; bindings call it on [`crate::runtime()`].
    pub async fn connect(options: ClientOptions) -> Result<Client> {
        if options.addresses.is_empty() {
            return Err(Error::invalid("at least one server address is required"));
        }
        if options.call_timeout.is_zero() || options.connect_timeout.is_zero() {
            return Err(Error::invalid(
                "connect_timeout and call_timeout must be positive",
            ));
        }
        let mut endpoints = Vec::with_capacity(options.addresses.len());
        for raw in &options.addresses {
            let addr = resolve(raw).await?;
            let tls = match &options.tls {
                Some(tls) => Some(tls.client_config(raw)?),
                None => None,
            };
            endpoints.push(Arc::new(Endpoint::new(addr, &options, tls.as_ref())));
        }
        let handle = match Handle::try_current() {
            Ok(handle) => handle,
            Err(_) => crate::runtime::try_runtime().map_err(|err| {
                Error::new(
                    ErrorKind::Internal,
                    format!("cannot start the client runtime: {err}"),
                )
            })?,
        };
        let owner = options.owner.clone().unwrap_or_else(|| {
            let id = uuid::Uuid::new_v4().simple().to_string();
            format!("syros-{}-{}", std::process::id(), &id[..12])
        });
        let client = Client {
            inner: Arc::new(Inner {
                options,
                endpoints,
                current: AtomicUsize::new(0),
                handle,
                owner,
                counters: Counters::default(),
                flights: Mutex::new(HashMap::new()),
            }),
        };
        client.check_health().await?;
        Ok(client)
    }

    /// Ask the current server (failing over like any call) whether it is serving.
    pub async fn check_health(&self) -> Result<()> {
        let inner = &self.inner;
        let spec = inner.spec("health.check", true);
        inner
            .run(&spec, |ep, timeout| {
                let request = inner.request(
                    health::HealthCheckRequest {
                        service: Default::default(),
                    },
                    Some(timeout),
                );
                async move {
                    let status = ep.health.check(request?).await?.into_inner().status;
                    if status == health::health_check_response::ServingStatus::SERVING {
                        Ok(())
                    } else {
                        Err(Status::unavailable(format!(
                            "server {} is not serving ({status:?})",
                            ep.addr
                        )))
                    }
                }
            })
            .await
            .result
    }

    /// The options this client was connected with.
    pub fn options(&self) -> &ClientOptions {
        &self.inner.options
    }

    /// The default lock owner of this client.
    pub fn owner(&self) -> &str {
        &self.inner.owner
    }

    /// The address calls currently go to.
    pub fn current_address(&self) -> SocketAddr {
        self.inner.current().addr
    }

    /// Counters of calls, attempts, retries and failovers since connect.
    pub fn stats(&self) -> ClientStats {
        let c = &self.inner.counters;
        ClientStats {
            calls: c.calls.load(Ordering::Relaxed),
            attempts: c.attempts.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            failovers: c.failovers.load(Ordering::Relaxed),
        }
    }
}

impl Inner {
    pub(crate) fn current(&self) -> &Arc<Endpoint> {
        let index = self.current.load(Ordering::Relaxed) % self.endpoints.len();
        &self.endpoints[index]
    }

    /// Move on from endpoint `index` to the next one (once, if several callers fail together).
    pub(crate) fn fail_over(&self, index: usize) {
        let n = self.endpoints.len();
        if n > 1
            && self
                .current
                .compare_exchange(index, (index + 1) % n, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.counters.failovers.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                from = %self.endpoints[index].addr,
                to = %self.endpoints[(index + 1) % n].addr,
                "syros client failing over"
            );
        }
    }

    /// The default retry specification of a call.
    pub(crate) fn spec(&self, op: &'static str, idempotent: bool) -> CallSpec<'_> {
        CallSpec {
            op,
            idempotent,
            extra_timeout: Duration::ZERO,
            deadline: self.options.retry.deadline.map(|d| Instant::now() + d),
            policy: &self.options.retry,
        }
    }

    /// A request carrying the auth token, the trace context (`traceparent`) and, for unary
    /// calls, the `grpc-timeout` header.
    // The error is a Status because it is returned from inside Volo call futures.
    #[allow(clippy::result_large_err)]
    pub(crate) fn request<T>(
        &self,
        message: T,
        timeout: Option<Duration>,
    ) -> Result<volo_grpc::Request<T>, Status> {
        let mut request = volo_grpc::Request::new(message);
        crate::trace::inject(request.metadata_mut());
        if let Some(provider) = &self.options.auth_token {
            if let Some(token) = provider() {
                let value: MetadataValue<_> = format!("Bearer {token}").parse().map_err(|_| {
                    Status::invalid_argument(
                        "the auth token contains characters not allowed in a header",
                    )
                })?;
                request.metadata_mut().insert("authorization", value);
            }
        }
        if let Some(timeout) = timeout {
            let ms = u64::try_from(timeout.as_millis())
                .unwrap_or(u64::MAX)
                .clamp(1, 99_999_999);
            if let Ok(value) = format!("{ms}m").parse() {
                request.metadata_mut().insert("grpc-timeout", value);
            }
        }
        Ok(request)
    }

    /// Run one logical call: attempts on the current endpoint with a per-attempt timeout,
    /// failover on transport errors, and backoff between retries as the spec allows.
    pub(crate) async fn run<T, F, Fut>(&self, spec: &CallSpec<'_>, mut attempt: F) -> Outcome<T>
    where
        F: FnMut(Arc<Endpoint>, Duration) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        self.counters.calls.fetch_add(1, Ordering::Relaxed);
        let max_attempts = spec.policy.attempts();
        let endpoints = self.endpoints.len();
        let mut ambiguous = false;
        let mut attempts: u32 = 0;
        // Endpoints tried since the last sleep: a failover is tried at once, a full round sleeps.
        let mut round: usize = 0;
        let mut sleeps: u32 = 0;
        let span = crate::trace::call_span(spec.op);
        loop {
            let now = Instant::now();
            let mut timeout = self.options.call_timeout + spec.extra_timeout;
            if let Some(deadline) = spec.deadline {
                let remaining = deadline.saturating_duration_since(now);
                if remaining.is_zero() {
                    return Outcome {
                        result: Err(deadline_error(spec, attempts, None)),
                        ambiguous,
                    };
                }
                timeout = timeout.min(remaining);
            }
            attempts += 1;
            self.counters.attempts.fetch_add(1, Ordering::Relaxed);
            if attempts > 1 {
                self.counters.retries.fetch_add(1, Ordering::Relaxed);
            }
            let index = self.current.load(Ordering::Relaxed) % endpoints;
            let endpoint = self.endpoints[index].clone();
            let addr = endpoint.addr;
            // In the call's span: the attempt builds its request (and trace context) right away.
            let attempt = span
                .in_scope(|| attempt(endpoint, timeout))
                .instrument(span.clone());
            let err = match tokio::time::timeout(timeout, attempt).await {
                Ok(Ok(value)) => {
                    return Outcome {
                        result: Ok(value),
                        ambiguous,
                    }
                }
                Ok(Err(status)) => Error::from_status(&status, spec.op),
                Err(_) => Error::new(
                    ErrorKind::DeadlineExceeded,
                    format!("{} got no answer within {timeout:?}", spec.op),
                )
                .with_delivery(Delivery::Unknown),
            }
            .with_detail("address", addr);
            if err.delivery == Delivery::Unknown {
                ambiguous = true;
            }
            let transport = matches!(
                err.kind,
                ErrorKind::Unavailable | ErrorKind::DeadlineExceeded
            );
            if transport {
                self.fail_over(index);
                round += 1;
            }
            // An unknown outcome is safe to resend only when the call is idempotent (the server
            // recognises the repeat: request ids, event ids).
            let may_retry = if spec.idempotent {
                err.retryable || err.kind == ErrorKind::OutcomeUnknown
            } else {
                err.retryable && err.delivery == Delivery::NotSent
            };
            if !may_retry || attempts >= max_attempts {
                tracing::debug!(op = spec.op, attempts, error = %err, "call failed");
                let err = if !spec.idempotent && err.retryable && err.delivery == Delivery::Unknown
                {
                    err.into_outcome_unknown(spec.op)
                } else {
                    err
                };
                return Outcome {
                    result: Err(err.with_detail("attempts", attempts)),
                    ambiguous,
                };
            }
            let pause = if transport && round < endpoints {
                Duration::ZERO
            } else {
                round = 0;
                sleeps += 1;
                spec.policy.backoff(sleeps - 1)
            };
            if let Some(deadline) = spec.deadline {
                if Instant::now() + pause >= deadline {
                    return Outcome {
                        result: Err(deadline_error(spec, attempts, Some(&err))),
                        ambiguous,
                    };
                }
            }
            tracing::debug!(op = spec.op, attempts, error = %err, ?pause, "retrying");
            tokio::time::sleep(pause).await;
        }
    }
}

fn deadline_error(spec: &CallSpec<'_>, attempts: u32, last: Option<&Error>) -> Error {
    let mut message = format!(
        "{} did not complete before its deadline ({} attempts)",
        spec.op, attempts
    );
    if let Some(last) = last {
        message.push_str(&format!("; last error: {last}"));
    }
    let mut err = Error::new(ErrorKind::DeadlineExceeded, message)
        .with_detail("attempts", attempts)
        .with_delivery(Delivery::Unknown);
    if let Some(last) = last {
        err = err.with_detail("last_error_code", last.code());
    }
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked() {
        assert_eq!(parse_address("127.0.0.1:9090").ok(), Some("127.0.0.1:9090"));
        assert_eq!(
            parse_address("http://localhost:9090/").ok(),
            Some("localhost:9090")
        );
        assert!(parse_address("").is_err());
        assert!(parse_address("localhost").is_err());
    }

    #[tokio::test]
    async fn connect_rejects_bad_options() {
        let err = Client::connect(ClientOptions::new(Vec::<String>::new()))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidArgument);
        let err = Client::connect(ClientOptions::new(["nonsense"]))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidArgument);
    }

    #[tokio::test]
    async fn unreachable_server_is_unavailable_after_the_policy() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(1);
        let mut options = ClientOptions::new([format!("127.0.0.1:{port}")]);
        options.retry = RetryPolicy {
            initial_interval: Duration::from_millis(1),
            max_interval: Duration::from_millis(5),
            max_attempts: 3,
            ..RetryPolicy::default()
        };
        let err = Client::connect(options).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
        assert!(err.retryable);
        assert_eq!(err.details.get("attempts").map(String::as_str), Some("3"));
    }
}
