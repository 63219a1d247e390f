//! Helpers of the security tests: credentials minted at test time (an HS256 secret and a P-256
//! key generated per run; nothing secret is committed), `syros apikey` runs, and gRPC calls
//! carrying a credential.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use p256::pkcs8::EncodePrivateKey;
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
