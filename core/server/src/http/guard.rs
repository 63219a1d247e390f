//! Browser safety of the HTTP servers: a web page the operator visits must not be able to drive
//! a server it can reach (a loopback-only one included).
//!
//! - **DNS rebinding**: a page on `evil.example` whose name is re-pointed at 127.0.0.1 reaches the
//!   server with `Host: evil.example`. Requests whose `Host` is not a name of this server are
//!   refused with 421 `host_not_allowed`.
//! - **Cross-site requests and WebSockets**: browsers send `Origin` on cross-origin requests
//!   and WebSocket upgrades (which CORS does not cover). A request whose `Origin` is neither in
//!   `CORS_ORIGINS` nor this server itself (the GraphQL playground) is refused with 403
//!   `origin_not_allowed`. Requests without `Origin` (curl, SDKs) pass.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// Which `Host` and `Origin` values the HTTP servers accept.
#[derive(Debug, Clone)]
pub struct BrowserGuard {
    bind: IpAddr,
    /// `ALLOWED_HOSTS`, lowercased; `*` accepts any host.
    allowed_hosts: Vec<String>,
    /// `CORS_ORIGINS`, lowercased; `*` accepts any origin.
    allowed_origins: Vec<String>,
}

impl BrowserGuard {
    /// A guard for a server bound to `bind`, with the configured extra host names and CORS
    /// origins.
    pub fn new(bind: IpAddr, allowed_hosts: &[String], cors_origins: &[String]) -> Self {
        let lower = |v: &[String]| v.iter().map(|s| s.to_ascii_lowercase()).collect();
        BrowserGuard {
            bind,
            allowed_hosts: lower(allowed_hosts),
            allowed_origins: lower(cors_origins),
        }
    }

    /// Whether `host` (a `Host` header value, port included or not) names this server: the bind
    /// address; loopback addresses and `localhost` when bound to loopback or to every interface;
    /// any address literal when bound to every interface (a rebinding page always uses a name);
    /// or an `ALLOWED_HOSTS` entry.
    pub fn host_allowed(&self, host: &str) -> bool {
        let name = host_name(host).to_ascii_lowercase();
        if self.allowed_hosts.iter().any(|h| h == "*" || *h == name) {
            return true;
        }
        let literal = name
            .strip_prefix('[')
            .and_then(|n| n.strip_suffix(']'))
            .unwrap_or(&name)
            .parse::<IpAddr>()
            .ok();
        let local_names = self.bind.is_loopback() || self.bind.is_unspecified();
        match literal {
            Some(ip) if ip == self.bind => true,
            Some(_) if self.bind.is_unspecified() => true,
            Some(ip) => local_names && ip.is_loopback(),
            // Browsers resolve `localhost` and `*.localhost` to loopback themselves, so no one
            // else can answer for those names.
            None => local_names && (name == "localhost" || name.ends_with(".localhost")),
        }
    }

    /// Whether a browser page of `origin` may call: it is in `CORS_ORIGINS`, or it is this
    /// server itself (`Origin` names the same host and port as `Host`, already checked).
    pub fn origin_allowed(&self, origin: &str, host: Option<&str>) -> bool {
        let origin = origin.trim_end_matches('/').to_ascii_lowercase();
        if self
            .allowed_origins
            .iter()
            .any(|o| o == "*" || *o == origin)
        {
            return true;
        }
        let authority = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        matches!((authority, host), (Some(a), Some(h)) if a == h.to_ascii_lowercase())
    }
}

/// The host part of a `Host` value: without the port, brackets kept for IPv6.
fn host_name(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

/// Middleware in front of every route of both HTTP servers: refuses a foreign `Host` (421) and
/// a foreign `Origin` (403) before anything else runs.
pub async fn check_browser_request(
    State(guard): State<Arc<BrowserGuard>>,
    request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| request.uri().authority().map(|a| a.to_string()));
    if let Some(host) = &host {
        if !guard.host_allowed(host) {
            return ApiError::new(
                StatusCode::MISDIRECTED_REQUEST,
                "host_not_allowed",
                format!(
                    "Host {host:?} is not a name of this server; add it to ALLOWED_HOSTS if the \
                     server is reached under that name"
                ),
            )
            .with_detail("host", host.as_str())
            .into_response();
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        if !guard.origin_allowed(origin, host.as_deref()) {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "origin_not_allowed",
                format!(
                    "browser pages from {origin:?} may not call this server; add the origin to \
                     CORS_ORIGINS to allow it"
                ),
            )
            .with_detail("origin", origin)
            .into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(bind: [u8; 4], hosts: &[&str], origins: &[&str]) -> BrowserGuard {
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        BrowserGuard::new(bind.into(), &strings(hosts), &strings(origins))
    }

    #[test]
    fn hosts_of_a_loopback_server() {
        let g = guard([127, 0, 0, 1], &["syros.internal"], &[]);
        for ok in [
            "127.0.0.1:8080",
            "127.0.0.1",
            "localhost:8080",
            "LOCALHOST",
            "app.localhost:3000",
            "[::1]:8080",
            "syros.internal:8080",
        ] {
            assert!(g.host_allowed(ok), "{ok}");
        }
        for refused in [
            "evil.example",
            "evil.example:8080",
            "10.0.0.5:8080",
            "localhost.evil.example",
            "x",
        ] {
            assert!(!g.host_allowed(refused), "{refused}");
        }
    }

    #[test]
    fn hosts_of_a_server_on_every_interface() {
        let g = guard([0, 0, 0, 0], &[], &[]);
        assert!(g.host_allowed("10.0.0.5:8080"));
        assert!(g.host_allowed("localhost"));
        assert!(!g.host_allowed("evil.example"));
        let specific = guard([10, 0, 0, 5], &[], &[]);
        assert!(specific.host_allowed("10.0.0.5:8080"));
        assert!(!specific.host_allowed("127.0.0.1:8080"));
        assert!(!specific.host_allowed("localhost"));
        assert!(guard([10, 0, 0, 5], &["*"], &[]).host_allowed("anything"));
    }

    #[test]
    fn origins() {
        let g = guard([127, 0, 0, 1], &[], &["https://app.example"]);
        assert!(g.origin_allowed("https://app.example", Some("127.0.0.1:8080")));
        assert!(g.origin_allowed("http://127.0.0.1:8080", Some("127.0.0.1:8080")));
        assert!(!g.origin_allowed("http://127.0.0.1:8081", Some("127.0.0.1:8080")));
        assert!(!g.origin_allowed("https://evil.example", Some("127.0.0.1:8080")));
        assert!(!g.origin_allowed("null", Some("127.0.0.1:8080")));
        assert!(guard([127, 0, 0, 1], &[], &["*"]).origin_allowed("https://x", None));
    }
}
