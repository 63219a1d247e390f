//! JWT bearer tokens: HS256 with a shared secret (`JWT_SECRET`), RS256/ES256 with public keys
//! from a JWKS file (`JWT_JWKS_FILE`, re-read when it changes).
//!
//! Algorithm confusion is impossible by construction: an HS256 token is checked only against
//! the secret, an RS256/ES256 token only against a JWKS key of that family (symmetric keys in
//! the JWKS file are ignored), and `alg: none` or any other algorithm is refused.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde::Deserialize;

/// How often the JWKS file's modification time is looked at, at most.
const JWKS_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// What tokens are accepted.
#[derive(Debug, Clone, Default)]
pub struct JwtSettings {
    /// HS256 secret.
    pub secret: Option<String>,
    /// JWKS file of RS256/ES256 public keys.
    pub jwks_file: Option<PathBuf>,
    /// Accepted `iss` values (any when empty).
    pub issuers: Vec<String>,
    /// Accepted `aud` values (the claim is not checked when empty).
    pub audiences: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub leeway_seconds: u64,
}

/// The claims Syros reads.
#[derive(Debug, Deserialize)]
pub struct Claims {
    /// The principal.
    pub sub: String,
    /// Role names.
    #[serde(default)]
    pub roles: Vec<String>,
}

struct JwksState {
    modified: Option<SystemTime>,
    checked: Instant,
    keys: Arc<JwkSet>,
}

/// Verifies tokens against the configured secret and JWKS file.
pub struct JwtVerifier {
    settings: JwtSettings,
    secret: Option<DecodingKey>,
    jwks: Option<Mutex<JwksState>>,
}

impl JwtVerifier {
    /// A verifier; fails when the JWKS file cannot be read or parsed at start.
    pub fn new(settings: JwtSettings) -> anyhow::Result<Self> {
        let secret = settings
            .secret
            .as_ref()
            .map(|s| DecodingKey::from_secret(s.as_bytes()));
        let jwks = match &settings.jwks_file {
            Some(path) => {
                let (keys, modified) = read_jwks(path)?;
                Some(Mutex::new(JwksState {
                    modified,
                    checked: Instant::now(),
                    keys: Arc::new(keys),
                }))
            }
            None => None,
        };
        Ok(JwtVerifier {
            settings,
            secret,
            jwks,
        })
    }

    /// The claims of a valid token, or why it is not (for the log only: callers answer a
    /// plain "invalid credential").
    pub fn verify(&self, token: &str) -> Result<Claims, String> {
        let header = decode_header(token).map_err(|e| format!("malformed token: {e}"))?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.settings.leeway_seconds;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        if !self.settings.issuers.is_empty() {
            validation.set_issuer(&self.settings.issuers);
            validation.required_spec_claims.insert("iss".into());
        }
        if self.settings.audiences.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&self.settings.audiences);
            validation.required_spec_claims.insert("aud".into());
        }
        let check = |key: &DecodingKey| {
            decode::<Claims>(token, key, &validation)
                .map(|data| data.claims)
                .map_err(|e| format!("token refused: {e}"))
        };
        match header.alg {
            Algorithm::HS256 => match &self.secret {
                Some(secret) => check(secret),
                None => Err("HS256 token but no JWT_SECRET configured".into()),
            },
            Algorithm::RS256 | Algorithm::ES256 => {
                let keys = self.jwks_keys()?;
                let candidates: Vec<&Jwk> = keys
                    .keys
                    .iter()
                    .filter(|k| fits(k, header.alg))
                    .filter(|k| header.kid.is_none() || k.common.key_id == header.kid)
                    .collect();
                if candidates.is_empty() {
                    return Err(format!(
                        "no JWKS key for {:?} kid {:?}",
                        header.alg, header.kid
                    ));
                }
                let mut last = String::new();
                for jwk in candidates {
                    let key =
                        DecodingKey::from_jwk(jwk).map_err(|e| format!("bad JWKS key: {e}"))?;
                    match check(&key) {
                        Ok(claims) => return Ok(claims),
                        Err(e) => last = e,
                    }
                }
                Err(last)
            }
            other => Err(format!("algorithm {other:?} is not accepted")),
        }
    }

    /// The current JWKS keys, re-read when the file changed.
    fn jwks_keys(&self) -> Result<Arc<JwkSet>, String> {
        let (Some(jwks), Some(path)) = (&self.jwks, &self.settings.jwks_file) else {
            return Err("RS256/ES256 token but no JWT_JWKS_FILE configured".into());
        };
        let mut state = jwks.lock().unwrap_or_else(|e| e.into_inner());
        if state.checked.elapsed() >= JWKS_CHECK_INTERVAL {
            state.checked = Instant::now();
            let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
            if modified != state.modified {
                match read_jwks(path) {
                    Ok((keys, modified)) => {
                        tracing::info!(file = %path.display(), keys = keys.keys.len(), "JWKS reloaded");
                        state.keys = Arc::new(keys);
                        state.modified = modified;
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "JWKS file unreadable; keeping the previous keys")
                    }
                }
            }
        }
        Ok(state.keys.clone())
    }
}

/// Whether a JWKS key may verify tokens of `alg`: its type fits and, when the key names an
/// algorithm, it is this one.
fn fits(jwk: &Jwk, alg: Algorithm) -> bool {
    let family_fits = matches!(
        (&jwk.algorithm, alg),
        (AlgorithmParameters::RSA(_), Algorithm::RS256)
            | (AlgorithmParameters::EllipticCurve(_), Algorithm::ES256)
    );
    let named_fits = jwk.common.key_algorithm.is_none_or(|named| {
        matches!(
            (named, alg),
            (KeyAlgorithm::RS256, Algorithm::RS256) | (KeyAlgorithm::ES256, Algorithm::ES256)
        )
    });
    family_fits && named_fits
}

fn read_jwks(path: &std::path::Path) -> anyhow::Result<(JwkSet, Option<SystemTime>)> {
    use anyhow::Context;
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read JWT_JWKS_FILE {}", path.display()))?;
    let keys: JwkSet = serde_json::from_str(&text)
        .with_context(|| format!("JWT_JWKS_FILE {} is not a JWK set", path.display()))?;
    Ok((keys, modified))
}
