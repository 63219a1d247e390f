//! TLS to the server (rustls): the server's certificate is checked against a CA file, and a
//! client certificate can be presented for servers that require one (mutual TLS).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use volo::net::tls::{ClientTlsConfig, TlsConnector};

use crate::error::{Error, Result};

/// How to connect over TLS.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// PEM file of the CA (or CAs) that signed the server's certificate.
    pub ca_file: PathBuf,
    /// The name the server's certificate must carry [default: the host of each address].
    pub server_name: Option<String>,
    /// PEM certificate chain and private key presented to servers that require client
    /// certificates (mTLS).
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

impl TlsOptions {
    /// Check the server's certificate against the CA in `ca_file`.
    pub fn with_ca_file(ca_file: impl Into<PathBuf>) -> Self {
        TlsOptions {
            ca_file: ca_file.into(),
            ..TlsOptions::default()
        }
    }

    /// The volo configuration for the server at `address` (`host:port`).
    pub(crate) fn client_config(&self, address: &str) -> Result<ClientTlsConfig> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for cert in read_certs(&self.ca_file)? {
            roots
                .add(cert)
                .map_err(|e| Error::invalid(format!("TLS CA file: {e}")))?;
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::invalid(format!("TLS: {e}")))?
            .with_root_certificates(roots);
        let mut config = match &self.client_cert {
            Some((cert, key)) => builder
                .with_client_auth_cert(read_certs(cert)?, read_key(key)?)
                .map_err(|e| Error::invalid(format!("TLS client certificate: {e}")))?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        let name = match &self.server_name {
            Some(name) => name.clone(),
            None => host_of(address),
        };
        ServerName::try_from(name.clone())
            .map_err(|_| Error::invalid(format!("TLS server name {name:?} is not valid")))?;
        Ok(ClientTlsConfig::new(name, TlsConnector::from(config)))
    }
}

/// The host part of `[scheme://]host:port` (brackets of an IPv6 literal removed).
fn host_of(address: &str) -> String {
    let bare = address
        .trim()
        .split_once("://")
        .map_or(address.trim(), |(_, rest)| rest)
        .trim_end_matches('/');
    let host = bare.rsplit_once(':').map_or(bare, |(host, _)| host);
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_string()
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let pem = std::fs::read(path)
        .map_err(|e| Error::invalid(format!("cannot read {}: {e}", path.display())))?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::invalid(format!("{} is not PEM: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::invalid(format!(
            "{} holds no certificate",
            path.display()
        )));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let pem = std::fs::read(path)
        .map_err(|e| Error::invalid(format!("cannot read {}: {e}", path.display())))?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| Error::invalid(format!("{} is not PEM: {e}", path.display())))?
        .ok_or_else(|| Error::invalid(format!("{} holds no private key", path.display())))
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn server_name_is_the_host_of_the_address() {
        assert_eq!(host_of("syros.internal:9090"), "syros.internal");
        assert_eq!(host_of("https://localhost:9090/"), "localhost");
        assert_eq!(host_of("[::1]:9090"), "::1");
    }
}
