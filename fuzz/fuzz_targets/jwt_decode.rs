//! JWT decoding: the strict JSON parser of the header and claims, the claim check, and the full
//! `Verifier::verify_cached_keys` path with one fixed HS256 key (`jwt.keys = [{kid = "h1"}]`).
//!
//! Input: `header JSON <NUL> claims JSON` (JSON text never holds a raw NUL). The target signs
//! `b64(header).b64(claims)` with the fixed secret, so mutations reach past the signature into
//! jsonwebtoken and the claim check. An input without NUL is taken as a whole token string
//! (the split on '.', base64url, size limit).
//!
//! Properties: the strict parser agrees with serde_json on every input it accepts and refuses
//! whatever serde_json refuses; an accepted claim set yields ids and roles that are safe for a
//! header; a token verifies only when its header names HS256 without `crit` or an embedded
//! key, both parts parse, the claim check at the same instant accepts it with the same result,
//! and the signature is the secret's: the same token signed with another secret never verifies.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use gateway::auth::jwt::{TokenError, VerifiedToken, Verifier, MAX_TOKEN_BYTES};
use gateway::fuzzing::{jwt_check_claims, jwt_json_object, ClaimRulesSpec};
use jsonwebtoken::{Algorithm, EncodingKey};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

/// The fixed HS256 secret (64 bytes) and the variable that carries it into the config.
const SECRET: &[u8] = b"gateway-fuzz-hs256-secret-0123456789abcdefghijklmnopqrstuvwxyz!!";
const SECRET_ENV: &str = "GATEWAY_FUZZ_HS256_SECRET";
const CONFIG: &str = r#"
[listen]
https = "127.0.0.1:8443"

[tls]
cert = "gateway.crt"
key = "gateway.key"

[jwt]
algorithms = ["HS256"]
issuer = "fuzz-issuer"
audience = "fuzz-api"
leeway = "30s"
keys = [{ kid = "h1", secret_env = "GATEWAY_FUZZ_HS256_SECRET" }]

[session]
store = "memory"

[[route]]
path = "/"
upstream = "http://127.0.0.1:9000"
"#;

struct Fixture {
    verifier: Verifier,
    issuer: String,
    audience: String,
    leeway: u64,
    user_id_claim: String,
    session_claim: String,
    roles_claim: String,
    key: EncodingKey,
    other_key: EncodingKey,
}

impl Fixture {
    fn spec(&self) -> ClaimRulesSpec<'_> {
        ClaimRulesSpec {
            issuer: &self.issuer,
            audience: &self.audience,
            leeway: self.leeway,
            user_id_claim: &self.user_id_claim,
            session_claim: &self.session_claim,
            roles_claim: &self.roles_claim,
        }
    }
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        std::env::set_var(SECRET_ENV, std::str::from_utf8(SECRET).expect("ASCII"));
        let config = gateway::config::load_str(CONFIG, Path::new("/fuzz/gateway.toml"))
            .unwrap_or_else(|e| panic!("fixture config: {e}"));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let verifier = rt
            .block_on(Verifier::new(&config.jwt))
            .unwrap_or_else(|e| panic!("fixture verifier: {e}"));
        let jwt = &config.jwt;
        Fixture {
            verifier,
            issuer: jwt.issuer.clone(),
            audience: jwt.audience.clone(),
            leeway: jwt.leeway.as_secs(),
            user_id_claim: jwt.user_id_claim.clone(),
            session_claim: jwt.session_claim.clone(),
            roles_claim: jwt.roles_claim.clone(),
            key: EncodingKey::from_secret(SECRET),
            other_key: EncodingKey::from_secret(
                b"another-secret-of-the-same-length-0123456789abcdefghijklmnopqr!",
            ),
        }
    })
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fuzz_target!(|data: &[u8]| {
    let fx = fixture();
    let Some(nul) = data.iter().position(|b| *b == 0) else {
        whole_token(fx, data);
        return;
    };
    let (header_bytes, claims_bytes) = (&data[..nul], &data[nul + 1..]);
    let header = strict_agrees_with_serde_json(header_bytes);
    let claims = strict_agrees_with_serde_json(claims_bytes);
    if let Ok(claims) = &claims {
        claim_check(fx, claims);
    }

    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header_bytes),
        URL_SAFE_NO_PAD.encode(claims_bytes)
    );
    let sign = |key| jsonwebtoken::crypto::sign(input.as_bytes(), key, Algorithm::HS256);
    let (Ok(sig), Ok(forged)) = (sign(&fx.key), sign(&fx.other_key)) else {
        panic!("HS256 signing failed");
    };
    let token = format!("{input}.{sig}");
    let before = now();
    let verified = fx.verifier.verify_cached_keys(&token);
    let after = now();

    if token.len() > MAX_TOKEN_BYTES {
        assert_eq!(verified, Err(TokenError::TooLarge));
        return;
    }
    match (&header, &claims) {
        (Err(e), _) => assert_eq!(verified.as_ref(), Err(e), "header error not reported"),
        (Ok(_), Err(e)) => assert_eq!(verified.as_ref(), Err(e), "claims error not reported"),
        (Ok(h), Ok(c)) => {
            if let Ok(v) = &verified {
                header_is_acceptable(h);
                same_as_claim_check(fx, c, v, before, after);
            }
        }
    }
    let forged_token = format!("{input}.{forged}");
    assert!(
        fx.verifier.verify_cached_keys(&forged_token).is_err(),
        "a token signed with another secret verified"
    );
});

/// An input without NUL: the token text as a client would send it.
fn whole_token(fx: &Fixture, data: &[u8]) {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(v) = fx.verifier.verify_cached_keys(token) else {
        return;
    };
    // Only a token made with the secret verifies: recompute the signature.
    let (input, sig) = token
        .rsplit_once('.')
        .expect("a verified token has three parts");
    let expected = jsonwebtoken::crypto::sign(input.as_bytes(), &fx.key, Algorithm::HS256)
        .expect("HS256 signing");
    assert_eq!(
        URL_SAFE_NO_PAD.decode(sig).ok(),
        URL_SAFE_NO_PAD.decode(expected).ok(),
        "verified with a signature that is not the secret's: {token:?}"
    );
    check_verified(&v);
}

/// The strict parser against plain serde_json on the same bytes.
fn strict_agrees_with_serde_json(bytes: &[u8]) -> Result<Map<String, Value>, TokenError> {
    let strict = jwt_json_object(bytes);
    let plain = serde_json::from_slice::<Value>(bytes);
    match (&strict, &plain) {
        (Ok(map), Ok(Value::Object(p))) => assert_eq!(map, p, "strict and serde_json differ"),
        (Ok(_), _) => panic!("strict parser accepted what serde_json refuses or is no object"),
        (Err(TokenError::Malformed), Ok(Value::Object(_))) => {
            panic!("strict parser refused an object serde_json reads")
        }
        (Err(TokenError::Malformed | TokenError::DuplicateKey), _) => {}
        (Err(e), _) => panic!("unexpected strict parse error {e:?}"),
    }
    strict
}

/// The claim check at a fixed instant: whatever it accepts is safe to put in headers.
fn claim_check(fx: &Fixture, claims: &Map<String, Value>) {
    let now = 1_800_000_000;
    if let Ok(v) = jwt_check_claims(&fx.spec(), claims, now) {
        check_verified(&v);
        assert!(
            v.expires_at.saturating_add(fx.leeway) >= now,
            "expired accepted"
        );
        assert_eq!(claims.get("iss"), Some(&Value::String(fx.issuer.clone())));
    }
}

fn check_verified(v: &VerifiedToken) {
    for id in [&v.user_id, &v.session_id] {
        assert!(!id.is_empty() && id.len() <= 512, "{id:?}");
        assert!(!id.chars().any(char::is_control), "{id:?}");
    }
    assert!(v.roles.len() <= 128);
    for r in &v.roles {
        assert!(!r.is_empty() && r.len() <= 128, "{r:?}");
        assert!(
            !r.chars()
                .any(|c| c == ',' || c.is_whitespace() || c.is_control()),
            "{r:?}"
        );
    }
}

fn header_is_acceptable(h: &Map<String, Value>) {
    assert_eq!(h.get("alg"), Some(&Value::String("HS256".into())), "{h:?}");
    for k in ["crit", "jwk", "jku", "x5u", "x5c", "enc", "zip"] {
        assert!(
            !h.contains_key(k),
            "verified with {k:?} in the header: {h:?}"
        );
    }
    if let Some(kid) = h.get("kid") {
        assert_eq!(
            kid,
            &Value::String("h1".into()),
            "verified with an unknown kid"
        );
    }
}

/// The verifier's answer equals the claim check's at the same instant (up to a clock tick).
fn same_as_claim_check(
    fx: &Fixture,
    claims: &Map<String, Value>,
    v: &VerifiedToken,
    before: u64,
    after: u64,
) {
    check_verified(v);
    let at_before = jwt_check_claims(&fx.spec(), claims, before);
    let at_after = jwt_check_claims(&fx.spec(), claims, after);
    assert!(
        at_before.as_ref() == Ok(v) || at_after.as_ref() == Ok(v),
        "verifier accepted what the claim check refuses: {at_before:?} {at_after:?}"
    );
}
