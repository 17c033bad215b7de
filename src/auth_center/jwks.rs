//! `GET /.well-known/jwks.json`: the public keys that verify the gateway's tokens, with their
//! `kid`, so a backend can verify tokens itself. The signing key comes first; every other
//! public key in `[jwt] keys` follows (a retiring key during rotation, or the next one).
//! Secrets (HS256) are never published: with one, the document lists only the public keys.

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use http::{Response, StatusCode};
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{json, Value};

use crate::auth::mint::Signer;
use crate::config::{Jwt, KeyMaterial};
use crate::http::body::{self, Body};

/// The document, serialised.
pub(super) fn document(signer: &Signer, jwt: &Jwt) -> Result<Bytes, String> {
    let mut keys: Vec<Value> = signer.public_jwk().into_iter().collect();
    for key in &jwt.keys {
        let KeyMaterial::PublicKeyFile(path) = &key.material else {
            continue;
        };
        if key.kid == signer.kid() && signer.public_jwk().is_some() {
            continue;
        }
        let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let jwk = public_jwk(&pem, &key.kid)
            .ok_or_else(|| format!("{}: not a public key for the JWKS", path.display()))?;
        keys.push(jwk);
    }
    Ok(Bytes::from(json!({ "keys": keys }).to_string()))
}

/// One PEM public key (Ed25519, EC P-256/P-384, RSA) as a JWK with `kid`, `use` and `alg`.
fn public_jwk(pem: &[u8], kid: &str) -> Option<Value> {
    let (key, alg) = if let Ok(k) = DecodingKey::from_ed_pem(pem) {
        (k, Some(Algorithm::EdDSA))
    } else if let Ok(k) = DecodingKey::from_ec_pem(pem) {
        (k, None)
    } else {
        (DecodingKey::from_rsa_pem(pem).ok()?, Some(Algorithm::RS256))
    };
    let mut jwk = Jwk::from_decoding_key(&key, alg).ok()?;
    jwk.common.key_id = Some(kid.to_owned());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    let mut value = serde_json::to_value(jwk).ok()?;
    if value["kty"] == "EC" {
        let alg = match value["crv"].as_str() {
            Some("P-256") => "ES256",
            Some("P-384") => "ES384",
            _ => return None,
        };
        value["alg"] = alg.into();
    }
    Some(value)
}

pub(super) fn answer(doc: &Bytes) -> Response<Body> {
    let mut resp = Response::new(body::full(doc.clone()));
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    // Public and cacheable for a while: publish a new key at least this long before signing
    // with it (list it in `[jwt] keys` first), and keep a retired one listed as long as
    // tokens it signed live.
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_public_key_kind_becomes_a_jwk() {
        let cases = [
            (&rcgen::PKCS_ED25519, "OKP", "EdDSA"),
            (&rcgen::PKCS_ECDSA_P256_SHA256, "EC", "ES256"),
            (&rcgen::PKCS_ECDSA_P384_SHA384, "EC", "ES384"),
            (&rcgen::PKCS_RSA_SHA256, "RSA", "RS256"),
        ];
        for (alg, kty, name) in cases {
            let pair = rcgen::KeyPair::generate_for(alg).unwrap();
            let jwk = public_jwk(pair.public_key_pem().as_bytes(), "old").unwrap();
            assert_eq!(jwk["kty"], kty);
            assert_eq!(jwk["alg"], name);
            assert_eq!(jwk["kid"], "old");
            assert_eq!(jwk["use"], "sig");
        }
        assert!(public_jwk(b"junk", "x").is_none());
    }
}
