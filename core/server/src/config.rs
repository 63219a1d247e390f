//! Server configuration: command-line flags, then environment variables, then `syros.toml`, then
//! defaults. Every option is described in `syros serve --help` and docs/configuration.md.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;
use serde::Deserialize;

/// Options of `syros serve`. Each may also be given in `syros.toml` under the same name.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// Configuration file (TOML); default `./syros.toml` when it exists.
    #[arg(long, env = "SYROS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Interface to bind [default: 127.0.0.1]. A non-loopback address needs authentication
    /// (JWT_SECRET, JWT_JWKS_FILE or AUTH_REQUIRED) or SYROS_ALLOW_UNAUTHENTICATED=true.
    #[arg(long, env = "SERVER_HOST")]
    pub server_host: Option<IpAddr>,
    /// gRPC port [default: 9090]; 0 picks a free port (logged at start).
    #[arg(long, env = "GRPC_PORT")]
    pub grpc_port: Option<u16>,
    /// REST + GraphQL port [default: 8080]; 0 picks a free port (logged at start).
    #[arg(long, env = "REST_PORT")]
    pub rest_port: Option<u16>,
    /// WebSocket port [default: 8081]; 0 picks a free port (logged at start).
    #[arg(long, env = "WS_PORT")]
    pub ws_port: Option<u16>,
    /// Origins allowed to call the HTTP APIs from a browser, comma-separated
    /// (`https://app.example.com,http://localhost:3000`), or `*` for any [default: none].
    #[arg(long, env = "CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Option<Vec<String>>,
    /// Extra host names the HTTP APIs answer to, comma-separated (`syros.internal,syros.example.com`),
    /// or `*` for any. The bind address (and `localhost` when bound to loopback) always works;
    /// other `Host` headers get 421, which stops DNS-rebinding pages [default: none].
    #[arg(long, env = "ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Option<Vec<String>>,
    /// Storage for events (and sagas). Unset: embedded SQLite under --data-dir.
    /// `sqlite://PATH`: embedded at PATH. `postgres://...`: PostgreSQL.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// Redis for locks and cache (`redis://host:port/db`). Unset: embedded SQLite.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,
    /// PostgreSQL connection pool size [default: 16].
    #[arg(long, env = "DATABASE_POOL_SIZE")]
    pub database_pool_size: Option<u32>,
    /// Namespace separating deployments that share Redis/PostgreSQL: Redis key prefix and
    /// PostgreSQL schema [default: syros].
    #[arg(long, env = "SYROS_NAMESPACE")]
    pub namespace: Option<String>,
    /// Directory of the embedded database [default: ./syros-data].
    #[arg(long, env = "SYROS_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// HS256 secret for JWT bearer tokens; setting it turns authentication on
    /// (docs/security.md).
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// JWKS file of RS256/ES256 public keys for JWT bearer tokens, re-read when it changes;
    /// setting it turns authentication on.
    #[arg(long, env = "JWT_JWKS_FILE")]
    pub jwt_jwks_file: Option<PathBuf>,
    /// Accepted JWT issuers (`iss`), comma-separated [default: any].
    #[arg(long, env = "JWT_ISSUER", value_delimiter = ',')]
    pub jwt_issuer: Option<Vec<String>>,
    /// Accepted JWT audiences (`aud`), comma-separated; when set, a token must name one
    /// [default: not checked].
    #[arg(long, env = "JWT_AUDIENCE", value_delimiter = ',')]
    pub jwt_audience: Option<Vec<String>>,
    /// Clock skew allowed on JWT `exp` and `nbf`, in seconds [default: 30].
    #[arg(long, env = "JWT_LEEWAY_SECONDS")]
    pub jwt_leeway_seconds: Option<u64>,
    /// Require authentication even without JWT settings (API keys only) [default: false].
    #[arg(long, env = "AUTH_REQUIRED")]
    pub auth_required: Option<bool>,
    /// With authentication on, `GET /metrics` needs a credential with `metrics:read`
    /// [default: false].
    #[arg(long, env = "METRICS_REQUIRE_AUTH")]
    pub metrics_require_auth: Option<bool>,
    /// Requests per second allowed per principal, over every API (0: no limit) [default: 0].
    #[arg(long, env = "RATE_LIMIT_PER_PRINCIPAL")]
    pub rate_limit_per_principal: Option<u32>,
    /// Requests per second allowed per client IP address (0: no limit) [default: 0].
    #[arg(long, env = "RATE_LIMIT_PER_IP")]
    pub rate_limit_per_ip: Option<u32>,
    /// Requests allowed at once above a steady rate limit [default: the rate].
    #[arg(long, env = "RATE_LIMIT_BURST")]
    pub rate_limit_burst: Option<u32>,
    /// PEM certificate chain: serve TLS on every port (with TLS_KEY_FILE) [default: plaintext].
    #[arg(long, env = "TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of TLS_CERT_FILE.
    #[arg(long, env = "TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// PEM CA of client certificates: with TLS on, every client must present a certificate it
    /// signed (mutual TLS).
    #[arg(long, env = "TLS_CLIENT_CA_FILE")]
    pub tls_client_ca_file: Option<PathBuf>,
    /// Once serving, write the bound addresses here as JSON (`{"grpc": "127.0.0.1:9090",
    /// "rest": ..., "websocket": ..., "pid": ...}`, written atomically): how tests and
    /// supervisors learn the ports picked for port 0.
    #[arg(long, env = "SYROS_READY_FILE")]
    pub ready_file: Option<PathBuf>,
    /// Log filter: a level (error, warn, info, debug, trace) or tracing directives
    /// [default: info].
    #[arg(long, env = "LOG_LEVEL")]
    pub log_level: Option<String>,
    /// Log format: text or json [default: text].
    #[arg(long, env = "LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Largest cache value in bytes [default: 1048576].
    #[arg(long, env = "CACHE_MAX_VALUE_BYTES")]
    pub cache_max_value_bytes: Option<usize>,
    /// Allow binding a non-loopback address without authentication (trusted networks only).
    #[arg(long, env = "SYROS_ALLOW_UNAUTHENTICATED")]
    pub allow_unauthenticated: Option<bool>,
    /// Most concurrent gRPC calls (HTTP/2 streams) per client connection, advertised as
    /// SETTINGS_MAX_CONCURRENT_STREAMS [default: 1024].
    #[arg(long, env = "GRPC_MAX_CONCURRENT_STREAMS")]
    pub grpc_max_concurrent_streams: Option<u32>,
    /// Most lock acquisitions in progress (waiters) per gRPC connection; one more gets
    /// RESOURCE_EXHAUSTED [default: 512].
    #[arg(long, env = "GRPC_MAX_LOCK_WAITERS_PER_CONNECTION")]
    pub grpc_max_lock_waiters_per_connection: Option<usize>,
}

/// The same options as read from `syros.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    server_host: Option<IpAddr>,
    grpc_port: Option<u16>,
    rest_port: Option<u16>,
    ws_port: Option<u16>,
    cors_origins: Option<Vec<String>>,
    allowed_hosts: Option<Vec<String>>,
    database_url: Option<String>,
    redis_url: Option<String>,
    database_pool_size: Option<u32>,
    namespace: Option<String>,
    data_dir: Option<PathBuf>,
    jwt_secret: Option<String>,
    jwt_jwks_file: Option<PathBuf>,
    jwt_issuer: Option<Vec<String>>,
    jwt_audience: Option<Vec<String>>,
    jwt_leeway_seconds: Option<u64>,
    auth_required: Option<bool>,
    metrics_require_auth: Option<bool>,
    rate_limit_per_principal: Option<u32>,
    rate_limit_per_ip: Option<u32>,
    rate_limit_burst: Option<u32>,
    tls_cert_file: Option<PathBuf>,
    tls_key_file: Option<PathBuf>,
    tls_client_ca_file: Option<PathBuf>,
    /// Roles beside (or replacing) the built-in ones: `[roles.NAME] grants = [...]`.
    #[serde(default)]
    roles: std::collections::BTreeMap<String, crate::security::roles::RoleConfig>,
    /// Requests per second per principal and operation family: `[rate_limits] locks = 100`.
    #[serde(default)]
    rate_limits: std::collections::BTreeMap<String, u32>,
    log_level: Option<String>,
    log_format: Option<String>,
    cache_max_value_bytes: Option<usize>,
    allow_unauthenticated: Option<bool>,
    grpc_max_concurrent_streams: Option<u32>,
    grpc_max_lock_waiters_per_connection: Option<usize>,
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub host: IpAddr,
    pub grpc_port: u16,
    pub rest_port: u16,
    pub ws_port: u16,
    /// Browser origins allowed by CORS; empty: none.
    pub cors_origins: Vec<String>,
    /// Host names the HTTP APIs answer to besides the bind address and loopback names.
    pub allowed_hosts: Vec<String>,
    pub storage: syros_engine::StoreConfig,
    pub log_level: String,
    pub json_logs: bool,
    pub cache_max_value_bytes: usize,
    /// Where to report the bound addresses once serving.
    pub ready_file: Option<PathBuf>,
    /// SETTINGS_MAX_CONCURRENT_STREAMS of the gRPC server.
    pub grpc_max_concurrent_streams: u32,
    /// Lock acquisitions in progress allowed per gRPC connection.
    pub grpc_max_lock_waiters_per_connection: usize,
    /// Authentication, roles and rate limits.
    pub security: crate::security::SecuritySettings,
    /// TLS on every port, when configured.
    pub tls: Option<crate::security::tls::TlsSettings>,
}

impl Config {
    /// Merge flags/environment (`args`) over the file over defaults, and check the result.
    pub fn resolve(args: ServeArgs) -> anyhow::Result<Config> {
        let file = load_file(args.config.as_deref())?;
        let host = args
            .server_host
            .or(file.server_host)
            .unwrap_or([127, 0, 0, 1].into());
        let allow_unauthenticated = args
            .allow_unauthenticated
            .or(file.allow_unauthenticated)
            .unwrap_or(false);
        let security = resolve_security(&args, &file)?;
        let tls = match (
            args.tls_cert_file.clone().or(file.tls_cert_file.clone()),
            args.tls_key_file.clone().or(file.tls_key_file.clone()),
            args.tls_client_ca_file
                .clone()
                .or(file.tls_client_ca_file.clone()),
        ) {
            (Some(cert_file), Some(key_file), client_ca_file) => {
                Some(crate::security::tls::TlsSettings {
                    cert_file,
                    key_file,
                    client_ca_file,
                })
            }
            (None, None, None) => None,
            _ => bail!(
                "TLS needs both TLS_CERT_FILE and TLS_KEY_FILE (TLS_CLIENT_CA_FILE adds mTLS)"
            ),
        };
        if !host.is_loopback() && !allow_unauthenticated && !security.enabled {
            bail!(
                "refusing to listen on {host} without authentication: Syros would accept \
                 requests from anyone who can reach it. Configure JWT_SECRET, JWT_JWKS_FILE or \
                 AUTH_REQUIRED=true (docs/security.md), bind 127.0.0.1, or set \
                 SYROS_ALLOW_UNAUTHENTICATED=true on a trusted network"
            );
        }
        let data_dir = args
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| "syros-data".into());
        let mut storage = syros_engine::StoreConfig {
            embedded_path: data_dir.join("syros.db"),
            postgres_url: None,
            redis_url: None,
            pool_size: args
                .database_pool_size
                .or(file.database_pool_size)
                .unwrap_or(16),
            namespace: args
                .namespace
                .or(file.namespace)
                .unwrap_or_else(|| "syros".into()),
        };
        if storage.pool_size == 0 || storage.pool_size > 1000 {
            bail!("DATABASE_POOL_SIZE must be between 1 and 1000");
        }
        let namespace_ok = storage
            .namespace
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if storage.namespace.is_empty() || storage.namespace.len() > 48 || !namespace_ok {
            bail!("SYROS_NAMESPACE must be 1-48 characters of a-z, 0-9 and _");
        }
        if let Some(url) = args.database_url.or(file.database_url) {
            match parse_database_url(&url)? {
                DatabaseUrl::Sqlite(path) => storage.embedded_path = path,
                DatabaseUrl::Postgres(url) => storage.postgres_url = Some(url),
            }
        }
        if let Some(url) = args.redis_url.or(file.redis_url) {
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                bail!(
                    "REDIS_URL must start with redis:// or rediss:// (got {})",
                    redact(&url)
                );
            }
            storage.redis_url = Some(url);
        }
        let log_format = args
            .log_format
            .or(file.log_format)
            .unwrap_or_else(|| "text".into());
        let json_logs = match log_format.as_str() {
            "text" => false,
            "json" => true,
            other => bail!("LOG_FORMAT must be text or json, not {other:?}"),
        };
        let cache_max_value_bytes = args
            .cache_max_value_bytes
            .or(file.cache_max_value_bytes)
            .unwrap_or(syros_engine::Limits::default().cache_max_value_bytes);
        if cache_max_value_bytes == 0 || cache_max_value_bytes > 64 * 1024 * 1024 {
            bail!("CACHE_MAX_VALUE_BYTES must be between 1 and 67108864");
        }
        let cors_origins = check_cors_origins(args.cors_origins.or(file.cors_origins))?;
        let grpc_max_concurrent_streams = positive(
            "GRPC_MAX_CONCURRENT_STREAMS",
            args.grpc_max_concurrent_streams
                .or(file.grpc_max_concurrent_streams),
            1024,
        )?;
        let grpc_max_lock_waiters_per_connection = positive(
            "GRPC_MAX_LOCK_WAITERS_PER_CONNECTION",
            args.grpc_max_lock_waiters_per_connection
                .or(file.grpc_max_lock_waiters_per_connection),
            512,
        )?;
        let allowed_hosts = check_allowed_hosts(args.allowed_hosts.or(file.allowed_hosts))?;
        Ok(Config {
            host,
            grpc_port: args.grpc_port.or(file.grpc_port).unwrap_or(9090),
            rest_port: args.rest_port.or(file.rest_port).unwrap_or(8080),
            ws_port: args.ws_port.or(file.ws_port).unwrap_or(8081),
            cors_origins,
            allowed_hosts,
            storage,
            log_level: args
                .log_level
                .or(file.log_level)
                .unwrap_or_else(|| "info".into()),
            json_logs,
            cache_max_value_bytes,
            ready_file: args.ready_file,
            grpc_max_concurrent_streams,
            grpc_max_lock_waiters_per_connection,
            security,
            tls,
        })
    }
}

/// The security settings: authentication is on as soon as a JWT secret or JWKS file is set, or
/// AUTH_REQUIRED=true.
fn resolve_security(
    args: &ServeArgs,
    file: &FileConfig,
) -> anyhow::Result<crate::security::SecuritySettings> {
    use crate::security::{jwt::JwtSettings, ratelimit::RateLimitSettings, Roles};
    let secret = args.jwt_secret.clone().or(file.jwt_secret.clone());
    if let Some(secret) = &secret {
        if secret == crate::security::SEED_DEFAULT_SECRET {
            bail!(
                "JWT_SECRET is the published example value {:?}: choose a secret of your own \
                 (e.g. `openssl rand -hex 32`)",
                crate::security::SEED_DEFAULT_SECRET
            );
        }
        if secret.len() < 16 {
            bail!("JWT_SECRET must be at least 16 characters (32 random bytes are better)");
        }
    }
    let jwks_file = args.jwt_jwks_file.clone().or(file.jwt_jwks_file.clone());
    let required = args.auth_required.or(file.auth_required).unwrap_or(false);
    let enabled = required || secret.is_some() || jwks_file.is_some();
    let list = |v: Option<Vec<String>>| -> Vec<String> {
        v.unwrap_or_default()
            .into_iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    };
    let families = ["locks", "cache", "events", "sagas"];
    for family in file.rate_limits.keys() {
        if !families.contains(&family.as_str()) {
            bail!(
                "[rate_limits] {family:?}: families are {}",
                families.join(", ")
            );
        }
    }
    Ok(crate::security::SecuritySettings {
        enabled,
        jwt: JwtSettings {
            secret,
            jwks_file,
            issuers: list(args.jwt_issuer.clone().or(file.jwt_issuer.clone())),
            audiences: list(args.jwt_audience.clone().or(file.jwt_audience.clone())),
            leeway_seconds: args
                .jwt_leeway_seconds
                .or(file.jwt_leeway_seconds)
                .unwrap_or(30),
        },
        roles: Roles::new(&file.roles)?,
        protect_metrics: args
            .metrics_require_auth
            .or(file.metrics_require_auth)
            .unwrap_or(false),
        rate_limits: RateLimitSettings {
            per_principal: args
                .rate_limit_per_principal
                .or(file.rate_limit_per_principal)
                .unwrap_or(0),
            per_ip: args
                .rate_limit_per_ip
                .or(file.rate_limit_per_ip)
                .unwrap_or(0),
            burst: args.rate_limit_burst.or(file.rate_limit_burst),
            per_family: file.rate_limits.clone(),
        },
    })
}

/// CORS origins: `*`, or `http(s)://host[:port]` each, without a path.
fn check_cors_origins(origins: Option<Vec<String>>) -> anyhow::Result<Vec<String>> {
    let origins: Vec<String> = origins
        .unwrap_or_default()
        .into_iter()
        .map(|o| o.trim().trim_end_matches('/').to_string())
        .filter(|o| !o.is_empty())
        .collect();
    for origin in &origins {
        let rest = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        let valid = origin == "*"
            || rest.is_some_and(|r| {
                !r.is_empty() && !r.contains('/') && r.bytes().all(|b| b.is_ascii_graphic())
            });
        if !valid {
            bail!("CORS_ORIGINS entry {origin:?} must be * or http(s)://host[:port]");
        }
    }
    Ok(origins)
}

/// A count option that must be at least 1; `default` when not given.
fn positive<N: Default + PartialEq + Copy>(
    name: &str,
    value: Option<N>,
    default: N,
) -> anyhow::Result<N> {
    let value = value.unwrap_or(default);
    if value == N::default() {
        bail!("{name} must be at least 1");
    }
    Ok(value)
}

/// Allowed host names: `*`, or names/addresses without scheme, port or path.
fn check_allowed_hosts(hosts: Option<Vec<String>>) -> anyhow::Result<Vec<String>> {
    let hosts: Vec<String> = hosts
        .unwrap_or_default()
        .into_iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect();
    for host in &hosts {
        let charset_ok = host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._[]:".contains(&b));
        // A colon outside brackets would be a port, which the check ignores anyway.
        let no_port = !host.contains(':') || host.starts_with('[');
        let valid = host == "*" || (charset_ok && no_port);
        if !valid {
            bail!(
                "ALLOWED_HOSTS entry {host:?} must be * or a host name or address, without a port"
            );
        }
    }
    Ok(hosts)
}

fn load_file(explicit: Option<&Path>) -> anyhow::Result<FileConfig> {
    let path = match explicit {
        Some(path) => path.to_path_buf(),
        None if Path::new("syros.toml").exists() => PathBuf::from("syros.toml"),
        None => return Ok(FileConfig::default()),
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read configuration file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid configuration file {}", path.display()))
}

enum DatabaseUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

fn parse_database_url(url: &str) -> anyhow::Result<DatabaseUrl> {
    if let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        if path.is_empty() {
            bail!("DATABASE_URL {url:?} names no file");
        }
        return Ok(DatabaseUrl::Sqlite(PathBuf::from(path)));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(DatabaseUrl::Postgres(url.to_string()));
    }
    bail!(
        "DATABASE_URL must start with sqlite:// or postgres:// (got {})",
        redact(url)
    )
}

/// Hide the password part of a URL before it goes into a message.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_loopback_and_embedded() {
        let config = Config::resolve(ServeArgs {
            config: Some("/nonexistent".into()),
            ..Default::default()
        });
        assert!(
            config.is_err(),
            "an explicit missing config file is an error"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("syros.toml");
        std::fs::write(&file, "grpc_port = 7000\n").unwrap();
        let config = Config::resolve(ServeArgs {
            config: Some(file),
            ..Default::default()
        })
        .unwrap();
        assert!(config.host.is_loopback());
        assert_eq!(config.grpc_port, 7000);
        assert_eq!(
            config.storage.embedded_path,
            PathBuf::from("syros-data/syros.db")
        );
        assert!(config.storage.postgres_url.is_none() && config.storage.redis_url.is_none());
    }

    #[test]
    fn security_settings_turn_auth_on_and_refuse_weak_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("syros.toml");
        std::fs::write(&file, "").unwrap();
        let args = |secret: Option<&str>, host: [u8; 4]| ServeArgs {
            config: Some(file.clone()),
            jwt_secret: secret.map(str::to_string),
            server_host: Some(host.into()),
            ..Default::default()
        };
        let message = Config::resolve(args(Some("syros-secret-key-change-me"), [127, 0, 0, 1]))
            .unwrap_err()
            .to_string();
        assert!(message.contains("example value"), "{message}");
        assert!(Config::resolve(args(Some("short"), [127, 0, 0, 1])).is_err());
        let off = Config::resolve(args(None, [127, 0, 0, 1])).unwrap();
        assert!(!off.security.enabled);
        // A non-loopback bind is allowed once authentication is on.
        let public =
            Config::resolve(args(Some("a-long-enough-test-secret"), [0, 0, 0, 0])).unwrap();
        assert!(public.security.enabled);
        let keys_only = ServeArgs {
            config: Some(file.clone()),
            auth_required: Some(true),
            server_host: Some([0, 0, 0, 0].into()),
            ..Default::default()
        };
        assert!(Config::resolve(keys_only).unwrap().security.enabled);
        std::fs::write(&file, "[roles.orders]\ngrants = [\"locks:steal\"]\n").unwrap();
        let message = Config::resolve(args(None, [127, 0, 0, 1]))
            .unwrap_err()
            .to_string();
        assert!(message.contains("locks:steal"), "{message}");
        std::fs::write(&file, "[rate_limits]\nlockz = 5\n").unwrap();
        assert!(Config::resolve(args(None, [127, 0, 0, 1])).is_err());
    }

    #[test]
    fn flags_override_file_and_bad_values_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("syros.toml");
        std::fs::write(&file, "grpc_port = 7000\nunknown_option = 1\n").unwrap();
        let err = Config::resolve(ServeArgs {
            config: Some(file.clone()),
            ..Default::default()
        });
        assert!(err.is_err(), "unknown options are reported");
        std::fs::write(&file, "grpc_port = 7000\n").unwrap();
        let args = ServeArgs {
            config: Some(file.clone()),
            grpc_port: Some(7001),
            ..Default::default()
        };
        assert_eq!(Config::resolve(args).unwrap().grpc_port, 7001);
        let public = ServeArgs {
            config: Some(file.clone()),
            server_host: Some([0, 0, 0, 0].into()),
            ..Default::default()
        };
        let message = Config::resolve(public).unwrap_err().to_string();
        assert!(message.contains("without authentication"), "{message}");
        let cors = ServeArgs {
            config: Some(file.clone()),
            cors_origins: Some(vec!["https://a.example".into(), "ftp://b".into()]),
            ..Default::default()
        };
        assert!(
            Config::resolve(cors).is_err(),
            "bad CORS origins are refused"
        );
        let hosts = |h: &str| ServeArgs {
            config: Some(file.clone()),
            allowed_hosts: Some(vec![h.into()]),
            ..Default::default()
        };
        assert!(Config::resolve(hosts("syros.internal:8080")).is_err());
        assert!(Config::resolve(hosts("https://syros.internal")).is_err());
        let ok = Config::resolve(hosts("Syros.Internal")).unwrap();
        assert_eq!(ok.allowed_hosts, ["syros.internal"]);
        let pg = ServeArgs {
            config: Some(file.clone()),
            database_url: Some("postgres://u:secret@localhost/db".into()),
            ..Default::default()
        };
        let storage = Config::resolve(pg).unwrap().storage;
        assert_eq!(
            storage.postgres_url.as_deref(),
            Some("postgres://u:secret@localhost/db")
        );
        let bad = ServeArgs {
            config: Some(file),
            redis_url: Some("http://u:secret@localhost".into()),
            ..Default::default()
        };
        let message = Config::resolve(bad).unwrap_err().to_string();
        assert!(message.contains("REDIS_URL"), "{message}");
        assert!(
            !message.contains("secret"),
            "passwords are not echoed: {message}"
        );
    }
}
