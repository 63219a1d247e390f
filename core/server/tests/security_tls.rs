//! TLS on every port (rustls, PEM files) and mutual TLS, against real servers, with a CA, a
//! server and a client certificate generated per run (no private key is committed).

mod security_support;

use std::path::Path;
use std::sync::Arc;

use security_support::{pki, Pki};
use syros_client::{Client, ClientOptions, SetOptions, TlsOptions};
use syros_launcher::SyrosServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn tls_server(pki: &Pki, mtls: bool) -> SyrosServer {
    let mut builder = SyrosServer::builder()
        .env("TLS_CERT_FILE", pki.server_cert.display().to_string())
        .env("TLS_KEY_FILE", pki.server_key.display().to_string());
    if mtls {
        builder = builder.env("TLS_CLIENT_CA_FILE", pki.ca.display().to_string());
    }
    builder.start()
}

fn client_options(server: &SyrosServer, tls: Option<TlsOptions>) -> ClientOptions {
    let mut options = ClientOptions::new([format!("localhost:{}", server.grpc_addr().port())]);
    options.tls = tls;
    options.retry.max_attempts = 2;
    options
}

/// Connect the client core with `options` and set then get a cache key through it.
async fn round_trip(options: ClientOptions, key: &str) {
    let client = Client::connect(options).await.expect("connect over TLS");
    client
        .cache()
        .set(key, "over tls", SetOptions::default())
        .await
        .unwrap();
    let entry = client.cache().get(key).await.unwrap().unwrap();
    assert_eq!(&entry.value[..], b"over tls");
}

/// A TLS connection to `port` trusting `ca`, optionally with a client certificate.
async fn tls_connect(
    port: u16,
    ca: &Path,
    client: Option<(&Path, &Path)>,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    let ca_pem = std::fs::read(ca).unwrap();
    for cert in rustls_pemfile::certs(&mut ca_pem.as_slice()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let config = match client {
        Some((cert, key)) => {
            let cert_pem = std::fs::read(cert).unwrap();
            let key_pem = std::fs::read(key).unwrap();
            let certs = rustls_pemfile::certs(&mut cert_pem.as_slice())
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
                .unwrap()
                .unwrap();
            builder.with_client_auth_cert(certs, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    connector
        .connect("localhost".try_into().unwrap(), tcp)
        .await
}

/// `GET /health` over TLS; the status line.
async fn https_health(
    port: u16,
    ca: &Path,
    client: Option<(&Path, &Path)>,
) -> std::io::Result<String> {
    let mut stream = tls_connect(port, ca, client).await?;
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    let text = String::from_utf8_lossy(&answer).to_string();
    Ok(text.lines().next().unwrap_or_default().to_string())
}

#[tokio::test]
async fn every_port_speaks_tls_and_the_client_connects_with_a_ca_file() {
    let pki = pki();
    let server = tls_server(&pki, false);

    // The Rust client core (under every SDK) with a CA file.
    round_trip(
        client_options(&server, Some(TlsOptions::with_ca_file(&pki.ca))),
        "tls/key",
    )
    .await;

    // A plaintext client fails clearly instead of hanging.
    let plain = Client::connect(client_options(&server, None)).await;
    let Err(err) = plain else {
        panic!("a plaintext client cannot talk to a TLS port");
    };
    eprintln!("plaintext gRPC client: {err}");

    // REST and the WebSocket port answer over TLS, and not in plaintext.
    let rest_port = server.addresses().rest.port();
    assert_eq!(
        https_health(rest_port, &pki.ca, None).await.unwrap(),
        "HTTP/1.1 200 OK"
    );
    let ws_port = server.addresses().websocket.port();
    assert_eq!(
        https_health(ws_port, &pki.ca, None).await.unwrap(),
        "HTTP/1.1 200 OK"
    );
    let stream = tls_connect(ws_port, &pki.ca, None).await.unwrap();
    let (mut socket, _) = tokio_tungstenite::client_async("wss://localhost/ws", stream)
        .await
        .expect("a WebSocket over TLS");
    use futures::{SinkExt, StreamExt};
    socket
        .send(tokio_tungstenite::tungstenite::Message::Text(
            r#"{"type": "ping", "nonce": 1}"#.into(),
        ))
        .await
        .unwrap();
    let pong = socket.next().await.unwrap().unwrap();
    assert!(pong.to_text().unwrap().contains("pong"), "{pong:?}");
    let plain_http = reqwest::Client::new()
        .get(server.rest_url("/health"))
        .send()
        .await;
    assert!(
        plain_http.is_err(),
        "plain HTTP to a TLS port gets no answer"
    );
}

#[tokio::test]
async fn mutual_tls_requires_a_client_certificate_signed_by_the_ca() {
    let pki = pki();
    let server = tls_server(&pki, true);
    let rest_port = server.addresses().rest.port();
    let without = https_health(rest_port, &pki.ca, None).await;
    assert!(
        without.as_ref().map_or(true, |line| line.is_empty()),
        "no client certificate, no answer: {without:?}"
    );
    let with = https_health(
        rest_port,
        &pki.ca,
        Some((&pki.client_cert, &pki.client_key)),
    )
    .await
    .unwrap();
    assert_eq!(with, "HTTP/1.1 200 OK");

    let no_cert = Client::connect(client_options(
        &server,
        Some(TlsOptions::with_ca_file(&pki.ca)),
    ))
    .await;
    assert!(
        no_cert.is_err(),
        "the client without a certificate is refused"
    );
    let tls = TlsOptions {
        client_cert: Some((pki.client_cert.clone(), pki.client_key.clone())),
        ..TlsOptions::with_ca_file(&pki.ca)
    };
    round_trip(client_options(&server, Some(tls)), "mtls/key").await;
}
