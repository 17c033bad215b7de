//! Fetching a JWKS (`jwt.jwks_url`): one bounded HTTP GET (5 s, 1 MiB), then only the keys we
//! can use safely. Symmetric (`oct`) keys are never taken from a JWKS: the document is public,
//! and an HMAC key anyone can read lets anyone sign.

use std::sync::Arc;

use http::Uri;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

use super::keys::{check_rsa, KeyKind, NamedKey, VerifyKey};
use super::strict_json;
use crate::auth::outbound::{Outbound, OutboundError};

/// Keys beyond this many are ignored (a document is parsed on every refresh).
const MAX_KEYS: usize = 64;

/// Why a JWKS (or the discovery document naming it) could not be fetched or used.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error(transparent)]
    Fetch(#[from] OutboundError),
    #[error("not a JSON object with a \"keys\" array")]
    NotJwks,
    #[error("no usable signing key for the configured algorithms")]
    NoUsableKeys,
    #[error("discovery: {0}")]
    Discovery(String),
}

/// A client for one JWKS URL.
pub(crate) struct JwksClient {
    url: Uri,
    client: Outbound,
}

impl JwksClient {
    pub(crate) fn new(url: Uri) -> Result<JwksClient, JwksError> {
        let client = Outbound::for_url(&url)?;
        Ok(JwksClient { url, client })
    }

    pub(crate) fn url(&self) -> &Uri {
        &self.url
    }

    /// Fetches and parses the JWKS, keeping the keys usable with `algorithms`.
    pub(crate) async fn fetch(&self, algorithms: &[Algorithm]) -> Result<Vec<NamedKey>, JwksError> {
        let body = self.client.get_json(&self.url, None).await?;
        parse(&body, algorithms)
    }
}

/// Parses a JWKS document; keys we cannot or must not use are skipped with a log line.
pub(crate) fn parse(body: &[u8], algorithms: &[Algorithm]) -> Result<Vec<NamedKey>, JwksError> {
    let doc = strict_json::parse_object(body).map_err(|_| JwksError::NotJwks)?;
    let Some(Value::Array(entries)) = doc.get("keys") else {
        return Err(JwksError::NotJwks);
    };
    let mut keys = Vec::new();
    for entry in entries {
        if keys.len() == MAX_KEYS {
            tracing::warn!(
                max = MAX_KEYS,
                "JWKS has more keys than accepted; the rest are ignored"
            );
            break;
        }
        match key_from_entry(entry, algorithms) {
            Ok(k) => keys.push(k),
            Err(reason) => {
                let kid = entry.get("kid").and_then(Value::as_str).unwrap_or("");
                tracing::debug!(kid, reason, "JWKS key skipped");
            }
        }
    }
    if keys.is_empty() {
        return Err(JwksError::NoUsableKeys);
    }
    Ok(keys)
}

fn key_from_entry(entry: &Value, algorithms: &[Algorithm]) -> Result<NamedKey, &'static str> {
    if let Some(u) = entry.get("use") {
        if u != "sig" {
            return Err("use is not sig");
        }
    }
    if let Some(ops) = entry.get("key_ops") {
        let verify = ops
            .as_array()
            .is_some_and(|ops| ops.iter().any(|o| o == "verify"));
        if !verify {
            return Err("key_ops lacks verify");
        }
    }
    let jwk: Jwk = serde_json::from_value(entry.clone()).map_err(|_| "not a JWK")?;
    if jwk.common.key_id.as_deref().is_none_or(str::is_empty) {
        // Only a token naming the key may use it; one without a name would never be used.
        return Err("no kid");
    }
    let pinned = match jwk.common.key_algorithm {
        None => None,
        Some(a) => Some(Algorithm::try_from(a).map_err(|_| "alg is not a signing algorithm")?),
    };
    let (kind, key) = match &jwk.algorithm {
        AlgorithmParameters::RSA(p) => {
            let key = DecodingKey::from_rsa_components(&p.n, &p.e).map_err(|_| "bad RSA key")?;
            check_rsa(&key)?;
            (KeyKind::Rsa, key)
        }
        AlgorithmParameters::EllipticCurve(p) => {
            let (kind, point_len) = match p.curve {
                EllipticCurve::P256 => (KeyKind::EcP256, 65),
                EllipticCurve::P384 => (KeyKind::EcP384, 97),
                _ => return Err("unsupported curve"),
            };
            let key = DecodingKey::from_ec_components(&p.x, &p.y).map_err(|_| "bad EC key")?;
            if key.try_get_as_bytes().map(<[u8]>::len) != Ok(point_len) {
                return Err("bad EC key");
            }
            (kind, key)
        }
        AlgorithmParameters::OctetKeyPair(p) => {
            if p.curve != EllipticCurve::Ed25519 {
                return Err("unsupported curve");
            }
            let key = DecodingKey::from_ed_components(&p.x).map_err(|_| "bad Ed25519 key")?;
            if key.try_get_as_bytes().map(<[u8]>::len) != Ok(32) {
                return Err("bad Ed25519 key");
            }
            (KeyKind::Ed25519, key)
        }
        AlgorithmParameters::OctetKey(_) => {
            return Err("symmetric keys are never taken from a JWKS")
        }
        AlgorithmParameters::Other(_) => return Err("unsupported key type"),
        _ => return Err("unsupported key type"),
    };
    let key = VerifyKey { kind, pinned, key };
    if !algorithms.iter().any(|a| key.accepts(*a, algorithms)) {
        return Err("fits none of the configured algorithms");
    }
    Ok(NamedKey {
        kid: jwk.common.key_id,
        key: Arc::new(key),
    })
}
