//! Verification keys: what kind each one is, which algorithms it may verify, and the key set
//! looked up by `kid`. The kind comes from the key material itself (the PEM file, the env
//! secret, the JWK's `kty`/`crv`), never from a token, so a token cannot choose to have an RSA
//! public key used as an HMAC secret.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey};

use super::KeyLoadError;
use crate::config::{JwtKey, KeyMaterial};

/// What a key is; decides the algorithms it can ever verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    Hmac,
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
}

impl KeyKind {
    /// Whether a signature made with `alg` can be checked with a key of this kind.
    pub(crate) fn fits(self, alg: Algorithm) -> bool {
        match self {
            KeyKind::Hmac => matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512),
            KeyKind::Rsa => matches!(
                alg,
                Algorithm::RS256
                    | Algorithm::RS384
                    | Algorithm::RS512
                    | Algorithm::PS256
                    | Algorithm::PS384
                    | Algorithm::PS512
            ),
            KeyKind::EcP256 => alg == Algorithm::ES256,
            KeyKind::EcP384 => alg == Algorithm::ES384,
            KeyKind::Ed25519 => alg == Algorithm::EdDSA,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            KeyKind::Hmac => "HMAC secret",
            KeyKind::Rsa => "RSA",
            KeyKind::EcP256 => "EC P-256",
            KeyKind::EcP384 => "EC P-384",
            KeyKind::Ed25519 => "Ed25519",
        }
    }
}

/// One key that can verify tokens.
#[derive(Debug)]
pub(crate) struct VerifyKey {
    pub(crate) kind: KeyKind,
    /// Set when the key's source pins one algorithm (a JWK's `alg`).
    pub(crate) pinned: Option<Algorithm>,
    pub(crate) key: DecodingKey,
}

impl VerifyKey {
    /// Whether this key may verify a token signed with `alg`, given the configured list.
    pub(crate) fn accepts(&self, alg: Algorithm, configured: &[Algorithm]) -> bool {
        configured.contains(&alg) && self.kind.fits(alg) && self.pinned.is_none_or(|p| p == alg)
    }
}

/// A named key. Configured keys always have a kid; a JWKS key without one is skipped (it
/// could only be found by trying keys, which a JWKS token never gets).
#[derive(Debug, Clone)]
pub(crate) struct NamedKey {
    pub(crate) kid: Option<String>,
    pub(crate) key: Arc<VerifyKey>,
}

/// The keys in force at one moment: the configured ones plus the last good JWKS.
#[derive(Debug, Default)]
pub(crate) struct KeySet {
    by_kid: HashMap<String, Arc<VerifyKey>>,
    /// The configured keys, for tokens without `kid`. Fetched keys are never here: with keys
    /// from a URL, a token must name its key (no trying every key a third party publishes).
    kidless: Vec<Arc<VerifyKey>>,
}

impl KeySet {
    /// Builds the set; a configured key wins over a JWKS key of the same `kid`.
    pub(crate) fn new(configured: &[NamedKey], fetched: &[NamedKey]) -> KeySet {
        let mut set = KeySet::default();
        for named in configured {
            set.kidless.push(Arc::clone(&named.key));
        }
        for named in configured.iter().chain(fetched) {
            if let Some(kid) = &named.kid {
                if set.by_kid.contains_key(kid) {
                    tracing::warn!(kid = %kid, "duplicate key id; the first one is used");
                    continue;
                }
                set.by_kid.insert(kid.clone(), Arc::clone(&named.key));
            }
        }
        set
    }

    pub(crate) fn get(&self, kid: &str) -> Option<&Arc<VerifyKey>> {
        self.by_kid.get(kid)
    }

    /// The keys a token without `kid` may be checked against: the configured ones only.
    pub(crate) fn kidless(&self) -> &[Arc<VerifyKey>] {
        &self.kidless
    }
}

/// Loads the keys of `[jwt] keys`, checking each can verify at least one configured algorithm.
pub(crate) async fn load_configured(
    keys: &[JwtKey],
    algorithms: &[Algorithm],
) -> Result<Vec<NamedKey>, KeyLoadError> {
    let mut out = Vec::with_capacity(keys.len());
    for k in keys {
        let key = match &k.material {
            KeyMaterial::PublicKeyFile(path) => {
                let pem = tokio::fs::read(path)
                    .await
                    .map_err(|source| KeyLoadError::Read {
                        path: path.clone(),
                        source,
                    })?;
                public_key_from_pem(&pem, path)?
            }
            KeyMaterial::Secret { env, value } => {
                if value.is_empty() {
                    return Err(KeyLoadError::EmptySecret {
                        kid: k.kid.clone(),
                        env: env.clone(),
                    });
                }
                VerifyKey {
                    kind: KeyKind::Hmac,
                    pinned: None,
                    key: DecodingKey::from_secret(value),
                }
            }
        };
        if !algorithms.iter().any(|a| key.kind.fits(*a)) {
            return Err(KeyLoadError::NoUsableAlgorithm {
                kid: k.kid.clone(),
                kind: key.kind.name(),
            });
        }
        out.push(NamedKey {
            kid: Some(k.kid.clone()),
            key: Arc::new(key),
        });
    }
    Ok(out)
}

// DER is canonical, so a SubjectPublicKeyInfo of these kinds starts with exactly these bytes:
// SEQUENCE { SEQUENCE { algorithm OID [, curve OID] }, BIT STRING (0 unused bits) ...
const SPKI_ED25519: &[u8] = &[
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
const SPKI_P256: &[u8] = &[
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
const SPKI_P384: &[u8] = &[
    0x30, 0x76, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b,
    0x81, 0x04, 0x00, 0x22, 0x03, 0x62, 0x00,
];

/// Smallest RSA modulus accepted, in bytes (2048 bits).
const MIN_RSA_MODULUS: usize = 256;

/// Reads one PEM public key (`PUBLIC KEY` for every kind, or `RSA PUBLIC KEY`).
pub(crate) fn public_key_from_pem(pem: &[u8], path: &Path) -> Result<VerifyKey, KeyLoadError> {
    let bad = |reason: &'static str| KeyLoadError::BadKey {
        path: path.to_owned(),
        reason,
    };
    let (label, der) = pem_block(pem).ok_or_else(|| bad("no PEM block found"))?;
    match label.as_str() {
        "PUBLIC KEY" | "RSA PUBLIC KEY" => {}
        l if l.contains("PRIVATE KEY") => {
            return Err(bad(
                "this is a private key; give the public key (openssl pkey -pubout)",
            ))
        }
        _ => return Err(bad("expected a PEM \"PUBLIC KEY\" block")),
    }
    if label == "PUBLIC KEY" {
        if let Some(x) = der.strip_prefix(SPKI_ED25519).filter(|x| x.len() == 32) {
            return Ok(fixed(KeyKind::Ed25519, DecodingKey::from_ed_der(x)));
        }
        if let Some(p) = der.strip_prefix(SPKI_P256).filter(|p| p.len() == 65) {
            return Ok(fixed(KeyKind::EcP256, DecodingKey::from_ec_der(p)));
        }
        if let Some(p) = der.strip_prefix(SPKI_P384).filter(|p| p.len() == 97) {
            return Ok(fixed(KeyKind::EcP384, DecodingKey::from_ec_der(p)));
        }
    }
    let key = DecodingKey::from_rsa_pem(pem)
        .map_err(|_| bad("not an RSA, EC P-256/P-384 or Ed25519 public key"))?;
    check_rsa(&key).map_err(bad)?;
    Ok(fixed(KeyKind::Rsa, key))
}

fn fixed(kind: KeyKind, key: DecodingKey) -> VerifyKey {
    VerifyKey {
        kind,
        pinned: None,
        key,
    }
}

/// Parses an RSA public key fully now rather than at the first token, and refuses short ones.
pub(crate) fn check_rsa(key: &DecodingKey) -> Result<(), &'static str> {
    let jwk = Jwk::from_decoding_key(key, None).map_err(|_| "invalid RSA public key")?;
    let jsonwebtoken::jwk::AlgorithmParameters::RSA(rsa) = &jwk.algorithm else {
        return Err("invalid RSA public key");
    };
    let n = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&rsa.n)
        .map_err(|_| "invalid RSA public key")?;
    let significant = n.iter().skip_while(|b| **b == 0).count();
    if significant < MIN_RSA_MODULUS {
        return Err("RSA key shorter than 2048 bits");
    }
    Ok(())
}

/// The label and DER bytes of the first PEM block in `text`.
pub(crate) fn pem_block(text: &[u8]) -> Option<(String, Vec<u8>)> {
    let text = std::str::from_utf8(text).ok()?;
    let start = text.find("-----BEGIN ")?;
    let rest = &text[start + "-----BEGIN ".len()..];
    let (label, rest) = rest.split_once("-----")?;
    let end_marker = format!("-----END {label}-----");
    let body = &rest[..rest.find(&end_marker)?];
    let b64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = STANDARD.decode(b64).ok()?;
    Some((label.to_owned(), der))
}
