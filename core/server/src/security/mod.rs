//! Security: who is calling (principals from JWTs and API keys), what they may do (roles →
//! permissions), how often (rate limits), and the audit log of admin actions.
//!
//! This module is the one place that decides. The transports only carry its answers: the Volo
//! layer in [`grpc`] for gRPC, the axum middleware in `http::auth` for REST, GraphQL and the
//! WebSocket handshake; handlers call [`Principal::require`] for the resource they touch.
//! See docs/security.md.

pub mod grpc;
pub mod jwt;
pub mod ratelimit;
pub mod roles;
pub mod tls;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use syros_engine::ApiKeys;

pub use roles::{Grant, Permission, Roles};

/// The seed's example secret, refused as a real one.
pub const SEED_DEFAULT_SECRET: &str = "syros-secret-key-change-me";

/// How long a looked-up API key is trusted before it is looked up again: the bound on how
/// late a revocation is seen by a replica.
pub const API_KEY_RECHECK: Duration = Duration::from_secs(2);

/// Most API key lookups remembered at once (past it, the memory is cleared).
const API_KEY_CACHE_ENTRIES: usize = 10_000;

/// Who is calling, and what they may do.
#[derive(Debug, Clone)]
pub struct Principal {
    /// `sub` of a JWT, `apikey:<id>` for an API key, `anonymous` when authentication is off.
    pub id: String,
    grants: Arc<Vec<Grant>>,
}

/// A refusal, which every transport maps to its own status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// No credential, or one that is not valid (401 / UNAUTHENTICATED). The message never says
    /// why a signature failed.
    Unauthenticated(String),
    /// The principal lacks the permission named (403 / PERMISSION_DENIED).
    Forbidden {
        permission: Permission,
        resource: Option<String>,
    },
    /// Over a rate limit (429 / RESOURCE_EXHAUSTED), retry after this long.
    RateLimited(Duration),
}

impl Denied {
    /// Stable snake_case code, as in the REST `code` and the gRPC `syros-error-code`.
    pub fn code(&self) -> &'static str {
        match self {
            Denied::Unauthenticated(_) => "unauthenticated",
            Denied::Forbidden { .. } => "permission_denied",
            Denied::RateLimited(_) => "rate_limited",
        }
    }

    /// The human-readable explanation.
    pub fn message(&self) -> String {
        match self {
            Denied::Unauthenticated(why) => why.clone(),
            Denied::Forbidden {
                permission,
                resource: Some(resource),
            } => format!("missing permission {permission} on {resource:?}"),
            Denied::Forbidden {
                permission,
                resource: None,
            } => format!("missing permission {permission}"),
            Denied::RateLimited(after) => format!(
                "rate limit exceeded; retry after {} s",
                retry_after_seconds(*after)
            ),
        }
    }
}

/// Seconds to put in `Retry-After` (at least 1).
pub fn retry_after_seconds(after: Duration) -> u64 {
    (after.as_secs() + u64::from(after.subsec_nanos() > 0)).max(1)
}

impl Principal {
    /// The principal of every request when authentication is off: allowed everything.
    pub fn anonymous() -> Principal {
        // Built once: it is the principal of every request when authentication is off, and
        // parsing its grant on each call showed in the per-call profile (docs/performance.md).
        static ANONYMOUS: std::sync::LazyLock<Principal> = std::sync::LazyLock::new(|| Principal {
            id: "anonymous".into(),
            grants: Arc::new(roles::parse_grant("*").unwrap_or_default()),
        });
        ANONYMOUS.clone()
    }

    /// A principal allowed nothing.
    pub fn nobody() -> Principal {
        Principal {
            id: "nobody".into(),
            grants: Arc::default(),
        }
    }

    /// `Ok` when a grant allows `permission` on `resource` (`None`: the operation names no
    /// resource, e.g. a lease id, so any grant of the permission will do; `Some("")` for
    /// operations over everything, e.g. reading all streams, which only unrestricted grants
    /// allow).
    pub fn require(&self, permission: Permission, resource: Option<&str>) -> Result<(), Denied> {
        if self.grants.iter().any(|g| g.allows(permission, resource)) {
            Ok(())
        } else {
            Err(Denied::Forbidden {
                permission,
                resource: resource.map(str::to_string),
            })
        }
    }
}

/// Log an admin action (force-release, saga cancel, API key changes) with who did it.
pub fn audit(principal: &str, action: &str, target: &str) {
    tracing::info!(target: "syros::audit", principal, action, target, "audit");
}

/// Security settings, resolved from the configuration.
#[derive(Debug, Clone, Default)]
pub struct SecuritySettings {
    /// Authentication is required on every API.
    pub enabled: bool,
    pub jwt: jwt::JwtSettings,
    pub roles: Roles,
    /// `GET /metrics` needs `metrics:read`.
    pub protect_metrics: bool,
    pub rate_limits: ratelimit::RateLimitSettings,
}

/// The decisions: authentication, authorisation and rate limits.
pub struct Security {
    settings: SecuritySettings,
    jwt: Option<jwt::JwtVerifier>,
    api_keys: ApiKeys,
    /// Recent API key lookups: key → (when looked up, the principal or `None` when refused).
    api_key_cache: Mutex<HashMap<String, (Instant, Option<Principal>)>>,
    limits: ratelimit::RateLimits,
}

impl Security {
    /// Build the decisions from `settings`, with API keys in `api_keys`.
    pub fn new(settings: SecuritySettings, api_keys: ApiKeys) -> anyhow::Result<Arc<Security>> {
        let jwt_configured = settings.jwt.secret.is_some() || settings.jwt.jwks_file.is_some();
        let jwt = if jwt_configured {
            Some(jwt::JwtVerifier::new(settings.jwt.clone())?)
        } else {
            None
        };
        let limits = ratelimit::RateLimits::new(&settings.rate_limits);
        Ok(Arc::new(Security {
            jwt,
            api_keys,
            api_key_cache: Mutex::default(),
            limits,
            settings,
        }))
    }

    /// Whether authentication is required.
    pub fn enabled(&self) -> bool {
        self.settings.enabled
    }

    /// Whether `/metrics` needs a credential with `metrics:read`.
    pub fn protects_metrics(&self) -> bool {
        self.settings.enabled && self.settings.protect_metrics
    }

    /// The principal for an `authorization` header value (or a bare token), `None` when the
    /// request has none. With authentication off everyone is [`Principal::anonymous`].
    pub async fn authenticate(&self, credential: Option<&str>) -> Result<Principal, Denied> {
        if !self.settings.enabled {
            return Ok(Principal::anonymous());
        }
        let Some(credential) = credential.map(str::trim).filter(|c| !c.is_empty()) else {
            return Err(Denied::Unauthenticated(
                "authentication required: send authorization: Bearer <token or API key>".into(),
            ));
        };
        let token = match credential.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            Some(_) => return Err(invalid_credential()),
            None => credential,
        };
        if syros_engine::apikeys::looks_like_api_key(token) {
            return self.api_key_principal(token).await;
        }
        let Some(jwt) = &self.jwt else {
            return Err(invalid_credential());
        };
        match jwt.verify(token) {
            Ok(claims) => Ok(Principal {
                grants: Arc::new(self.settings.roles.grants_of(&claims.roles)),
                id: claims.sub,
            }),
            Err(why) => {
                tracing::debug!(reason = %why, "JWT refused");
                Err(invalid_credential())
            }
        }
    }

    async fn api_key_principal(&self, key: &str) -> Result<Principal, Denied> {
        if let Some((at, known)) = self.cache().get(key) {
            if at.elapsed() < API_KEY_RECHECK {
                return known.clone().ok_or_else(invalid_credential);
            }
        }
        let found = self.api_keys.verify(key).await.map_err(|err| {
            tracing::warn!(error = %err, "API key lookup failed");
            Denied::Unauthenticated("cannot check the API key now; retry".into())
        })?;
        let principal = found.map(|k| Principal {
            id: format!("apikey:{}", k.key_id),
            grants: Arc::new(self.settings.roles.grants_of(&k.roles)),
        });
        let mut cache = self.cache();
        if cache.len() >= API_KEY_CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(key.to_string(), (Instant::now(), principal.clone()));
        principal.ok_or_else(invalid_credential)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Option<Principal>)>> {
        self.api_key_cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Count one request from `ip` (before authentication); refused past the per-IP limit.
    pub fn rate_check_ip(&self, ip: Option<IpAddr>) -> Result<(), Denied> {
        self.limits.check_ip(ip)
    }

    /// Count one request of `principal` for `family`; refused past a per-principal limit.
    pub fn rate_check(&self, principal: &Principal, family: Option<&str>) -> Result<(), Denied> {
        self.limits.check_principal(&principal.id, family)
    }

    /// Forget rate-limit state of idle callers (call now and then).
    pub fn housekeeping(&self) {
        self.limits.retain_recent();
    }
}

fn invalid_credential() -> Denied {
    Denied::Unauthenticated("invalid or expired credential".into())
}
