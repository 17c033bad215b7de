//! Hand-built JWTs for adversarial tests: any header and payload bytes (duplicate keys,
//! odd types, embedded keys), signed with any key and algorithm, or with a forged signature.

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey};

use super::gateway::now;

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `b64(header).b64(payload)` with no signature yet.
pub fn signing_input(header: &str, payload: &str) -> String {
    format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()))
}

/// A token with exactly these header and payload bytes, signed with `key` as `alg`.
pub fn signed(header: &str, payload: &str, key: &EncodingKey, alg: Algorithm) -> String {
    let input = signing_input(header, payload);
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), key, alg).unwrap();
    format!("{input}.{sig}")
}

/// A token with exactly these header and payload bytes and the given raw signature part.
pub fn with_signature(header: &str, payload: &str, sig_b64: &str) -> String {
    format!("{}.{sig_b64}", signing_input(header, payload))
}

/// The gateway's Ed25519 signing key (written by keygen into the gateway's dir).
pub fn ed_key(dir: &Path) -> EncodingKey {
    let pem = std::fs::read(dir.join("signing.pem")).unwrap();
    EncodingKey::from_ed_pem(&pem).unwrap()
}

/// A valid claim set for `sub`/`sid` as a JSON text, with `extra` spliced in (e.g.
/// `"roles":["a"],`). Keys are written by hand so tests can repeat them.
pub fn claims_json(sub: &str, sid: &str, extra: &str) -> String {
    let t = now();
    format!(
        r#"{{{extra}"iss":"gateway","aud":"api","sub":"{sub}","sid":"{sid}","iat":{t},"nbf":{t},"exp":{}}}"#,
        t + 900
    )
}

/// A claim set with full control: every claim given as raw JSON (`None`: left out).
pub struct Claims<'a> {
    pub iss: Option<&'a str>,
    pub aud: Option<&'a str>,
    pub sub: Option<&'a str>,
    pub sid: Option<&'a str>,
    pub exp: Option<String>,
    pub nbf: Option<String>,
    pub extra: &'a str,
}

impl<'a> Claims<'a> {
    /// Valid values for `sub`/`sid`, each as JSON.
    pub fn valid(sub: &'a str, sid: &'a str) -> Self {
        Claims {
            iss: Some(r#""gateway""#),
            aud: Some(r#""api""#),
            sub: Some(sub),
            sid: Some(sid),
            exp: Some((now() + 900).to_string()),
            nbf: None,
            extra: "",
        }
    }

    pub fn json(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if !self.extra.is_empty() {
            parts.push(self.extra.trim_end_matches(',').to_owned());
        }
        for (k, v) in [
            ("iss", self.iss.map(str::to_owned)),
            ("aud", self.aud.map(str::to_owned)),
            ("sub", self.sub.map(str::to_owned)),
            ("sid", self.sid.map(str::to_owned)),
            ("exp", self.exp.clone()),
            ("nbf", self.nbf.clone()),
        ] {
            if let Some(v) = v {
                parts.push(format!(r#""{k}":{v}"#));
            }
        }
        format!("{{{}}}", parts.join(","))
    }
}

/// An RSA-2048 key pair: private PKCS#8 PEM, and the public key as SPKI PEM, SPKI DER and
/// PKCS#1 DER (every form an attacker might try as an HMAC secret).
pub struct RsaKeys {
    pub private_pem: String,
    pub public_pem: String,
    pub spki_der: Vec<u8>,
    pub pkcs1_der: Vec<u8>,
}

pub fn rsa_key_pair() -> RsaKeys {
    use rcgen::PublicKeyData as _;
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    RsaKeys {
        private_pem: kp.serialize_pem(),
        public_pem: kp.public_key_pem(),
        spki_der: kp.subject_public_key_info(),
        pkcs1_der: kp.der_bytes().to_vec(),
    }
}

/// A fresh Ed25519 key the gateway does not know: (signing key, raw 32-byte public key).
pub fn attacker_ed_key() -> (EncodingKey, Vec<u8>) {
    use rcgen::PublicKeyData as _;
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let key = EncodingKey::from_ed_pem(kp.serialize_pem().as_bytes()).unwrap();
    (key, kp.der_bytes().to_vec())
}

pub const ED_HEADER: &str = r#"{"alg":"EdDSA","typ":"JWT","kid":"k1"}"#;
