//! Helpers of the security tests: credentials minted at test time (an HS256 secret and a P-256
//! key generated per run; nothing secret is committed), `syros apikey` runs, and gRPC calls
//! carrying a credential.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use p256::pkcs8::EncodePrivateKey;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use serde_json::{json, Value};
use syros_launcher::SyrosServer;

/// The HS256 secret of the test servers.
pub const SECRET: &str = "test-secret-0123456789abcdef";
/// Audience and issuer the test servers require.
pub const AUDIENCE: &str = "syros-tests";
pub const ISSUER: &str = "https://issuer.test";

/// A role narrowed to the `orders/` prefix, written to the servers' syros.toml.
pub const CONFIG: &str = r#"
[roles.orders]
grants = ["locks:acquire:orders/*", "locks:read:orders/*"]
"#;

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Standard claims for `sub` with `roles`, valid for an hour.
pub fn claims(sub: &str, roles: &[&str]) -> Value {
    json!({
        "sub": sub,
        "roles": roles,
        "aud": AUDIENCE,
        "iss": ISSUER,
        "iat": now(),
        "exp": now() + 3600,
    })
}

/// An HS256 token over `claims` signed with `secret`.
pub fn hs256(secret: &str, claims: &Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// A valid HS256 token of the test servers.
pub fn token(sub: &str, roles: &[&str]) -> String {
    hs256(SECRET, &claims(sub, roles))
}

/// An unsigned token (`alg: none`).
pub fn alg_none(claims: &Value) -> String {
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(claims)
    )
}

/// A P-256 signing key with its public JWK (`kid`), generated now.
pub struct EcKey {
    pub kid: String,
    encoding: EncodingKey,
    pub jwk: Value,
}

impl EcKey {
    pub fn generate(kid: &str) -> EcKey {
        use std::io::Read;
        let mut seed = [0u8; 32];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut seed))
            .expect("random bytes for a test key");
        let secret = p256::SecretKey::from_slice(&seed).expect("a P-256 scalar");
        let der = secret.to_pkcs8_der().unwrap();
        let mut jwk: Value = serde_json::from_str(&secret.public_key().to_jwk_string()).unwrap();
        jwk["kid"] = json!(kid);
        jwk["alg"] = json!("ES256");
        jwk["use"] = json!("sig");
        EcKey {
            kid: kid.to_string(),
            encoding: EncodingKey::from_ec_der(der.as_bytes()),
            jwk,
        }
    }

    /// An ES256 token over `claims`.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        encode(&header, claims, &self.encoding).unwrap()
    }
}

/// Write a JWKS file holding `keys`.
pub fn write_jwks(path: &Path, keys: &[&EcKey]) {
    let set = json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() });
    let partial = path.with_extension("partial");
    std::fs::write(&partial, set.to_string()).unwrap();
    std::fs::rename(partial, path).unwrap();
}

/// Run `syros apikey ARGS` against the storage of `server` (same data directory, or the same
/// PostgreSQL namespace); its standard output.
pub fn apikey(server: &SyrosServer, args: &[&str]) -> String {
    let mut command = Command::new(syros_launcher::syros_bin());
    command
        .arg("apikey")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SYROS_DATA_DIR", server.data_dir());
    if *server.backend() == syros_launcher::Backend::RedisPostgres {
        command
            .env(
                "DATABASE_URL",
                std::env::var("SYROS_TEST_DATABASE_URL").unwrap(),
            )
            .env("SYROS_NAMESPACE", server.namespace());
    }
    let out = command.output().expect("run syros apikey");
    assert!(
        out.status.success(),
        "syros apikey {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Create an API key with `roles`; (key id, key).
pub fn create_api_key(server: &SyrosServer, name: &str, roles: &[&str]) -> (String, String) {
    let mut args = vec!["create", "--name", name];
    for role in roles {
        args.extend(["--role", role]);
    }
    let key = apikey(server, &args).trim().to_string();
    assert!(key.starts_with("syk_"), "{key}");
    let id = key[4..20].to_string();
    (id, key)
}

/// A secured server and what its credentials are made with.
pub struct Secured {
    pub server: SyrosServer,
    pub es_key: EcKey,
    pub revoked_key: String,
    pub writer_key: String,
    _dir: tempfile::TempDir,
}

/// A server with JWT (HS256 secret and an ES256 JWKS file), a required audience and issuer,
/// the `orders` role of [`CONFIG`], a revoked admin API key and an active writer key.
pub fn start_secured() -> Secured {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("syros.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let jwks = dir.path().join("jwks.json");
    let es_key = EcKey::generate("test-es256");
    write_jwks(&jwks, &[&es_key]);
    let server = SyrosServer::builder()
        .env("SYROS_CONFIG", config.display().to_string())
        .env("JWT_SECRET", SECRET)
        .env("JWT_JWKS_FILE", jwks.display().to_string())
        .env("JWT_AUDIENCE", AUDIENCE)
        .env("JWT_ISSUER", ISSUER)
        .start();
    let (revoked_id, revoked_key) = create_api_key(&server, "revoked", &["admin"]);
    apikey(&server, &["revoke", &revoked_id]);
    let (_, writer_key) = create_api_key(&server, "writer", &["writer"]);
    Secured {
        server,
        es_key,
        revoked_key,
        writer_key,
        _dir: dir,
    }
}

impl Secured {
    /// Credentials that must be refused as unauthenticated, each with an admin role so that
    /// only the credential itself can be the reason. `None`: no credential at all.
    pub fn refused(&self) -> Vec<(&'static str, Option<String>)> {
        let admin = claims("mallory", &["admin"]);
        let mut expired = admin.clone();
        expired["iat"] = json!(now() - 7200);
        expired["exp"] = json!(now() - 3600);
        let mut other_audience = admin.clone();
        other_audience["aud"] = json!("another-service");
        vec![
            ("no credential", None),
            ("malformed token", Some("not-a-token".to_string())),
            ("expired token", Some(hs256(SECRET, &expired))),
            (
                "wrong signature",
                Some(hs256("another-secret-0123456789", &admin)),
            ),
            ("alg none", Some(alg_none(&admin))),
            ("other audience", Some(hs256(SECRET, &other_audience))),
            (
                "ES256 token under the HS256 secret's name",
                Some(EcKey::generate("test-es256").sign(&admin)),
            ),
            ("revoked API key", Some(self.revoked_key.clone())),
        ]
    }

    /// An HS256 token of the `admin` role.
    pub fn admin(&self) -> String {
        token("admin-user", &["admin"])
    }

    /// An ES256 token (JWKS) of the prefix-restricted `orders` role.
    pub fn orders(&self) -> String {
        self.es_key.sign(&claims("orders-service", &["orders"]))
    }
}

/// `Bearer <credential>`.
pub fn bearer(credential: &str) -> String {
    format!("Bearer {credential}")
}

/// A GraphQL POST with an optional credential; the status and the JSON body.
pub async fn graphql(
    http: &reqwest::Client,
    server: &SyrosServer,
    credential: Option<&str>,
    query: &str,
) -> (u16, Value) {
    let mut request = http
        .post(server.rest_url("/graphql"))
        .json(&json!({ "query": query }));
    if let Some(c) = credential {
        request = request.header("authorization", bearer(c));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The GraphQL mutation acquiring `key` for 30 s.
pub fn acquire_mutation(key: &str) -> String {
    format!(
        r#"mutation {{ acquireLock(input: {{key: "{key}", owner: "tester", ttlMs: 30000}}) {{ acquired }} }}"#
    )
}

/// PEM files of one test PKI: a CA, a server certificate for `localhost` and `127.0.0.1`, and a
/// client certificate, generated per run.
pub struct Pki {
    _dir: tempfile::TempDir,
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

pub fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server_cert = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let client_cert = CertificateParams::new(vec!["worker.example".into()])
        .unwrap()
        .signed_by(&client_key, &issuer)
        .unwrap();
    Pki {
        ca: write("ca.pem", ca_cert.pem()),
        server_cert: write("server.pem", server_cert.pem()),
        server_key: write("server.key", server_key.serialize_pem()),
        client_cert: write("client.pem", client_cert.pem()),
        client_key: write("client.key", client_key.serialize_pem()),
        _dir: dir,
    }
}
