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
    /// (not available yet) or SYROS_ALLOW_UNAUTHENTICATED=true.
    #[arg(long, env = "SERVER_HOST")]
    pub server_host: Option<IpAddr>,
    /// gRPC port [default: 9090]; 0 picks a free port (logged at start).
    #[arg(long, env = "GRPC_PORT")]
    pub grpc_port: Option<u16>,
    /// REST + GraphQL port [default: 8080] (reserved: the HTTP gateway is not built yet).
    #[arg(long, env = "REST_PORT")]
    pub rest_port: Option<u16>,
    /// WebSocket port [default: 8081] (reserved: the WebSocket gateway is not built yet).
    #[arg(long, env = "WS_PORT")]
    pub ws_port: Option<u16>,
    /// Storage. Unset: embedded SQLite under --data-dir. `sqlite://PATH`: embedded at PATH.
    /// (`postgres://...` arrives with the production backends.)
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// Redis for locks and cache (arrives with the production backends).
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,
    /// Directory of the embedded database [default: ./syros-data].
    #[arg(long, env = "SYROS_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Secret for JWT authentication (reserved for the security layer).
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
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
}

/// The same options as read from `syros.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    server_host: Option<IpAddr>,
    grpc_port: Option<u16>,
    rest_port: Option<u16>,
    ws_port: Option<u16>,
    database_url: Option<String>,
    redis_url: Option<String>,
    data_dir: Option<PathBuf>,
    jwt_secret: Option<String>,
    log_level: Option<String>,
    log_format: Option<String>,
    cache_max_value_bytes: Option<usize>,
    allow_unauthenticated: Option<bool>,
}

/// Where the engine keeps its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// One SQLite file.
    Embedded(PathBuf),
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub host: IpAddr,
    pub grpc_port: u16,
    pub rest_port: u16,
    pub ws_port: u16,
    pub storage: Storage,
    pub log_level: String,
    pub json_logs: bool,
    pub cache_max_value_bytes: usize,
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
        if !host.is_loopback() && !allow_unauthenticated {
            bail!(
                "refusing to listen on {host} without authentication: Syros would accept \
                 requests from anyone who can reach it. Bind 127.0.0.1, or set \
                 SYROS_ALLOW_UNAUTHENTICATED=true on a trusted network"
            );
        }
        if let Some(redis) = args.redis_url.or(file.redis_url) {
            bail!(
                "REDIS_URL is set ({}) but this build has only the embedded backend; unset it",
                redact(&redis)
            );
        }
        let data_dir = args
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| "syros-data".into());
        let storage = match args.database_url.or(file.database_url) {
            None => Storage::Embedded(data_dir.join("syros.db")),
            Some(url) => parse_database_url(&url)?,
        };
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
        let _reserved = args.jwt_secret.or(file.jwt_secret);
        Ok(Config {
            host,
            grpc_port: args.grpc_port.or(file.grpc_port).unwrap_or(9090),
            rest_port: args.rest_port.or(file.rest_port).unwrap_or(8080),
            ws_port: args.ws_port.or(file.ws_port).unwrap_or(8081),
            storage,
            log_level: args
                .log_level
                .or(file.log_level)
                .unwrap_or_else(|| "info".into()),
            json_logs,
            cache_max_value_bytes,
        })
    }
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

fn parse_database_url(url: &str) -> anyhow::Result<Storage> {
    if let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        if path.is_empty() {
            bail!("DATABASE_URL {url:?} names no file");
        }
        return Ok(Storage::Embedded(PathBuf::from(path)));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        bail!(
            "DATABASE_URL is a PostgreSQL URL ({}) but this build has only the embedded backend; \
             unset DATABASE_URL to use it",
            redact(url)
        );
    }
    bail!(
        "DATABASE_URL must start with sqlite:// (got {})",
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
            config.storage,
            Storage::Embedded(PathBuf::from("syros-data/syros.db"))
        );
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
        let pg = ServeArgs {
            config: Some(file),
            database_url: Some("postgres://u:secret@localhost/db".into()),
            ..Default::default()
        };
        let message = Config::resolve(pg).unwrap_err().to_string();
        assert!(
            !message.contains("secret"),
            "passwords are not echoed: {message}"
        );
    }
}
