//! Minting access tokens with the configured signing key (`gateway token`, auth center).
//!
//! The algorithm follows from the key, as on the verifying side: Ed25519 signs EdDSA, RSA
//! RS256, EC P-256 ES256, EC P-384 ES384, and a secret HS256.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde_json::{Map, Value};

use super::jwt::KeyLoadError;
use crate::config::{AuthCenter, SigningKey};

/// Signs access tokens.
pub struct Signer {
    alg: Algorithm,
    kid: String,
    key: EncodingKey,
    /// The public half as a JWK; `None` for a secret, which is never published.
    public_jwk: Option<Value>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// What goes into one token. `iat`, `nbf` (= `iat`), `exp` and a random `jti` are added.
#[derive(Debug, Clone)]
pub struct MintClaims<'a> {
    pub issuer: &'a str,
    pub audience: &'a str,
    pub user_id_claim: &'a str,
    pub user_id: &'a str,
    pub session_claim: &'a str,
    pub session_id: &'a str,
    pub roles_claim: &'a str,
    pub roles: &'a [String],
    pub ttl: Duration,
}

/// Why a token could not be minted.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error("token lifetime must be at least one second")]
    Ttl,
    #[error("claim name {0:?} is reserved or used twice")]
    ClaimName(String),
    #[error("system clock is before 1970")]
    Clock,
    #[error("signing failed: {0}")]
    Sign(#[source] jsonwebtoken::errors::Error),
    #[error("the token is not a header value")]
    NotHeaderValue,
}

/// Claims the signer sets itself; the configurable names may not reuse them.
const RESERVED: [&str; 7] = ["iss", "aud", "exp", "nbf", "iat", "jti", "sub"];

impl Signer {
    /// Loads `auth.signing_key` (a PEM private key file) or `auth.signing_secret_env`.
    pub fn from_config(auth: &AuthCenter) -> Result<Signer, KeyLoadError> {
        match &auth.signing_key {
            SigningKey::PrivateKeyFile(path) => {
                let pem = std::fs::read(path).map_err(|source| KeyLoadError::Read {
                    path: path.clone(),
                    source,
                })?;
                let (alg, key, public_jwk) =
                    load_private_pem(&pem).map_err(|reason| KeyLoadError::BadKey {
                        path: path.clone(),
                        reason,
                    })?;
                let public_jwk = with_kid(public_jwk, &auth.signing_kid);
                Ok(Signer {
                    alg,
                    kid: auth.signing_kid.clone(),
                    key,
                    public_jwk: Some(public_jwk),
                })
            }
            SigningKey::Secret { env, value } => {
                if value.is_empty() {
                    return Err(KeyLoadError::EmptySecret {
                        kid: auth.signing_kid.clone(),
                        env: env.clone(),
                    });
                }
                Ok(Signer {
                    alg: Algorithm::HS256,
                    kid: auth.signing_kid.clone(),
                    key: EncodingKey::from_secret(value),
                    public_jwk: None,
                })
            }
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Signs a token for `claims`; the header carries the configured kid.
    pub fn mint(&self, claims: &MintClaims<'_>) -> Result<String, MintError> {
        let ttl = claims.ttl.as_secs();
        if ttl == 0 {
            return Err(MintError::Ttl);
        }
        check_claim_names(claims)?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| MintError::Clock)?
            .as_secs();
        let jti = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>());

        let mut body = Map::new();
        body.insert("iss".into(), claims.issuer.into());
        body.insert("aud".into(), claims.audience.into());
        body.insert(claims.user_id_claim.into(), claims.user_id.into());
        body.insert(claims.session_claim.into(), claims.session_id.into());
        body.insert(claims.roles_claim.into(), claims.roles.into());
        body.insert("iat".into(), now.into());
        body.insert("nbf".into(), now.into());
        body.insert("exp".into(), now.saturating_add(ttl).into());
        body.insert("jti".into(), jti.into());

        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &body, &self.key).map_err(MintError::Sign)
    }

    /// Signs `claims` as they are, with the configured kid and the header `typ` given.
    pub fn sign(&self, typ: &str, claims: &Map<String, Value>) -> Result<String, MintError> {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        header.typ = Some(typ.to_owned());
        jsonwebtoken::encode(&header, claims, &self.key).map_err(MintError::Sign)
    }

    /// The public key as a JWK (with `kid`, `alg`, `use: sig`), for a JWKS endpoint. `None`
    /// for an HS256 secret.
    pub fn public_jwk(&self) -> Option<Value> {
        self.public_jwk.clone()
    }
}

/// Classifies and loads a PEM private key; returns its algorithm, the signing key and the
/// public JWK (without kid).
fn load_private_pem(pem: &[u8]) -> Result<(Algorithm, EncodingKey, Jwk), &'static str> {
    let text = std::str::from_utf8(pem).map_err(|_| "not a PEM file")?;
    if text.contains("-----BEGIN EC PRIVATE KEY-----") {
        return Err("SEC1 EC keys are not supported; convert with openssl pkcs8 -topk8 -nocrypt");
    }
    if !text.contains("PRIVATE KEY-----") {
        return Err("expected a PEM private key (\"PRIVATE KEY\" or \"RSA PRIVATE KEY\")");
    }
    let pair = rcgen::KeyPair::from_pem(text)
        .map_err(|_| "not an Ed25519, RSA or EC P-256/P-384 private key")?;
    let alg = pair.algorithm();
    let raw = pair.public_key_raw();
    let (alg, key, public) = if alg == &rcgen::PKCS_ED25519 {
        let key = EncodingKey::from_ed_pem(pem).map_err(|_| "unreadable Ed25519 key")?;
        (Algorithm::EdDSA, key, DecodingKey::from_ed_der(raw))
    } else if alg == &rcgen::PKCS_ECDSA_P256_SHA256 {
        let key = EncodingKey::from_ec_pem(pem).map_err(|_| "unreadable EC key")?;
        (Algorithm::ES256, key, DecodingKey::from_ec_der(raw))
    } else if alg == &rcgen::PKCS_ECDSA_P384_SHA384 {
        let key = EncodingKey::from_ec_pem(pem).map_err(|_| "unreadable EC key")?;
        (Algorithm::ES384, key, DecodingKey::from_ec_der(raw))
    } else if alg == &rcgen::PKCS_RSA_SHA256 {
        let key = EncodingKey::from_rsa_pem(pem).map_err(|_| "unreadable RSA key")?;
        let public = DecodingKey::from_rsa_der(raw);
        super::jwt::check_rsa_key(&public)?;
        (Algorithm::RS256, key, public)
    } else {
        return Err("unsupported key type (use Ed25519, RSA, or EC P-256/P-384)");
    };
    let jwk =
        Jwk::from_decoding_key(&public, Some(alg)).map_err(|_| "cannot derive the public key")?;
    // Sign once now so a key that cannot sign fails at start, not at the first login.
    jsonwebtoken::encode(&Header::new(alg), &Map::new(), &key)
        .map_err(|_| "the key cannot sign")?;
    Ok((alg, key, jwk))
}

/// The user id claim may be `sub`; otherwise no configurable name may be a claim the signer
/// sets itself, and no two may be the same.
fn check_claim_names(claims: &MintClaims<'_>) -> Result<(), MintError> {
    let names = [
        claims.user_id_claim,
        claims.session_claim,
        claims.roles_claim,
    ];
    for (i, name) in names.iter().enumerate() {
        let reserved = RESERVED.contains(name) && !(i == 0 && *name == "sub");
        if name.is_empty() || reserved || names[..i].contains(name) {
            return Err(MintError::ClaimName((*name).to_owned()));
        }
    }
    Ok(())
}

fn with_kid(mut jwk: Jwk, kid: &str) -> Value {
    jwk.common.key_id = Some(kid.to_owned());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    // Serialising plain strings and numbers cannot fail; Null would only hide a bug.
    serde_json::to_value(jwk).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BindRefresh;
    use std::path::PathBuf;

    pub(crate) fn auth_center(key: SigningKey) -> AuthCenter {
        AuthCenter {
            path: "/auth".into(),
            signing_key: key,
            signing_kid: "k1".into(),
            access_ttl: Duration::from_secs(900),
            refresh_ttl: Duration::from_secs(86400),
            refresh_max_uses: 10,
            bind_refresh: BindRefresh::None,
            refresh_grace: Duration::ZERO,
            registration: false,
            cookies: false,
        }
    }

    fn from_pem(pem: &str) -> Result<Signer, KeyLoadError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        std::fs::write(&path, pem).unwrap();
        Signer::from_config(&auth_center(SigningKey::PrivateKeyFile(path)))
    }

    #[test]
    fn key_kinds_pick_their_algorithm() {
        let cases = [
            (&rcgen::PKCS_ED25519, Algorithm::EdDSA, "OKP"),
            (&rcgen::PKCS_ECDSA_P256_SHA256, Algorithm::ES256, "EC"),
            (&rcgen::PKCS_ECDSA_P384_SHA384, Algorithm::ES384, "EC"),
            (&rcgen::PKCS_RSA_SHA256, Algorithm::RS256, "RSA"),
        ];
        for (rc, alg, kty) in cases {
            let pair = rcgen::KeyPair::generate_for(rc).unwrap();
            let signer = from_pem(&pair.serialize_pem()).unwrap();
            assert_eq!(signer.algorithm(), alg);
            let jwk = signer.public_jwk().unwrap();
            assert_eq!(jwk["kty"], kty);
            assert_eq!(jwk["kid"], "k1");
            assert_eq!(jwk["use"], "sig");
            assert!(jwk.get("d").is_none(), "private part leaked: {jwk}");
        }
    }

    #[test]
    fn secret_signs_hs256_and_publishes_nothing() {
        let signer = Signer::from_config(&auth_center(SigningKey::Secret {
            env: "S".into(),
            value: b"0123456789abcdef0123456789abcdef".to_vec(),
        }))
        .unwrap();
        assert_eq!(signer.algorithm(), Algorithm::HS256);
        assert!(signer.public_jwk().is_none());
        let empty = Signer::from_config(&auth_center(SigningKey::Secret {
            env: "S".into(),
            value: vec![],
        }));
        assert!(matches!(empty, Err(KeyLoadError::EmptySecret { .. })));
    }

    #[test]
    fn bad_files_name_the_path() {
        let missing = PathBuf::from("/nonexistent/signing.pem");
        let err =
            Signer::from_config(&auth_center(SigningKey::PrivateKeyFile(missing))).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/signing.pem"),
            "{err}"
        );

        let public = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)
            .unwrap()
            .public_key_pem();
        assert!(matches!(
            from_pem(&public),
            Err(KeyLoadError::BadKey { .. })
        ));
        assert!(matches!(from_pem("junk"), Err(KeyLoadError::BadKey { .. })));
        let p521 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512).unwrap();
        assert!(matches!(
            from_pem(&p521.serialize_pem()),
            Err(KeyLoadError::BadKey { .. })
        ));
    }

    #[test]
    fn mint_rejects_bad_input() {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let signer = from_pem(&pair.serialize_pem()).unwrap();
        let roles = vec!["a".to_owned()];
        let claims = MintClaims {
            issuer: "gw",
            audience: "api",
            user_id_claim: "sub",
            user_id: "u",
            session_claim: "sid",
            session_id: "s",
            roles_claim: "roles",
            roles: &roles,
            ttl: Duration::from_secs(60),
        };
        assert!(signer.mint(&claims).is_ok());
        let zero = MintClaims {
            ttl: Duration::ZERO,
            ..claims.clone()
        };
        assert!(matches!(signer.mint(&zero), Err(MintError::Ttl)));
        for (u, s, r) in [
            ("exp", "sid", "roles"),
            ("sub", "sub", "roles"),
            ("sub", "sid", "sid"),
        ] {
            let c = MintClaims {
                user_id_claim: u,
                session_claim: s,
                roles_claim: r,
                ..claims.clone()
            };
            assert!(
                matches!(signer.mint(&c), Err(MintError::ClaimName(_))),
                "{u} {s} {r}"
            );
        }
    }
}
