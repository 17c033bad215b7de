//! Token verification tests: every refusal asserts its exact [`TokenError`].

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{json, Value};

use super::*;
use crate::auth::mint::{MintClaims, Signer};
use crate::config::{AuthCenter, BindRefresh, JwtKey, KeyMaterial, SigningKey};

const HS_SECRET: &[u8] = b"an HMAC secret that is long enough for HS512 tests....";

/// One generated asymmetric key: its public PEM on disk and its signing half.
struct TestKey {
    public_path: PathBuf,
    private_path: PathBuf,
    public_pem: String,
    encoding: EncodingKey,
}

struct Fixtures {
    _dir: tempfile::TempDir,
    rsa: TestKey,
    p256: TestKey,
    p384: TestKey,
    ed: TestKey,
    /// A second Ed25519 key, for "signed by someone else".
    ed_other: TestKey,
}

fn fixtures() -> &'static Fixtures {
    static F: OnceLock<Fixtures> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let make = |name: &str, alg: &'static rcgen::SignatureAlgorithm| {
            let pair = rcgen::KeyPair::generate_for(alg).unwrap();
            let private_pem = pair.serialize_pem();
            let public_pem = pair.public_key_pem();
            let public_path = dir.path().join(format!("{name}.pub.pem"));
            let private_path = dir.path().join(format!("{name}.pem"));
            std::fs::write(&public_path, &public_pem).unwrap();
            std::fs::write(&private_path, &private_pem).unwrap();
            let encoding = if alg == &rcgen::PKCS_ED25519 {
                EncodingKey::from_ed_pem(private_pem.as_bytes())
            } else if alg == &rcgen::PKCS_RSA_SHA256 {
                EncodingKey::from_rsa_pem(private_pem.as_bytes())
            } else {
                EncodingKey::from_ec_pem(private_pem.as_bytes())
            }
            .unwrap();
            TestKey {
                public_path,
                private_path,
                public_pem,
                encoding,
            }
        };
        Fixtures {
            rsa: make("rsa", &rcgen::PKCS_RSA_SHA256),
            p256: make("p256", &rcgen::PKCS_ECDSA_P256_SHA256),
            p384: make("p384", &rcgen::PKCS_ECDSA_P384_SHA384),
            ed: make("ed", &rcgen::PKCS_ED25519),
            ed_other: make("ed_other", &rcgen::PKCS_ED25519),
            _dir: dir,
        }
    })
}

fn file_key(kid: &str, path: &Path) -> JwtKey {
    JwtKey {
        kid: kid.into(),
        material: KeyMaterial::PublicKeyFile(path.to_owned()),
    }
}

fn secret_key(kid: &str, secret: &[u8]) -> JwtKey {
    JwtKey {
        kid: kid.into(),
        material: KeyMaterial::Secret {
            env: "GATEWAY_JWT_SECRET".into(),
            value: secret.to_vec(),
        },
    }
}

fn cfg(algorithms: &[Algorithm], keys: Vec<JwtKey>) -> config::Jwt {
    config::Jwt {
        algorithms: algorithms.to_vec(),
        issuer: "gw".into(),
        audience: "api".into(),
        leeway: Duration::from_secs(30),
        user_id_claim: "sub".into(),
        roles_claim: "roles".into(),
        session_claim: "sid".into(),
        cookie: None,
        keys,
        jwks_url: None,
        jwks_refresh: Duration::from_secs(300),
    }
}

/// Every algorithm, with one key of each kind.
async fn all_keys_verifier() -> Verifier {
    let f = fixtures();
    let algs = [
        Algorithm::HS256,
        Algorithm::HS384,
        Algorithm::HS512,
        Algorithm::RS256,
        Algorithm::PS256,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ];
    let keys = vec![
        secret_key("hs", HS_SECRET),
        file_key("rsa", &f.rsa.public_path),
        file_key("p256", &f.p256.public_path),
        file_key("p384", &f.p384.public_path),
        file_key("ed", &f.ed.public_path),
    ];
    Verifier::new(&cfg(&algs, keys)).await.unwrap()
}

fn now() -> u64 {
    crate::clock::unix_now()
}

fn claims() -> Value {
    json!({
        "iss": "gw", "aud": "api", "exp": now() + 300, "iat": now(),
        "sub": "user-1", "sid": "sess-1", "roles": ["admin", "dev"],
    })
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A token from raw header and payload JSON text, signed with `key` under `alg` (or with an
/// empty signature when `key` is None).
fn raw_token(header: &str, payload: &str, key: Option<(&EncodingKey, Algorithm)>) -> String {
    let message = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let sig = match key {
        Some((k, alg)) => jsonwebtoken::crypto::sign(message.as_bytes(), k, alg).unwrap(),
        None => String::new(),
    };
    format!("{message}.{sig}")
}

fn token(header: Value, payload: Value, key: &EncodingKey, alg: Algorithm) -> String {
    raw_token(&header.to_string(), &payload.to_string(), Some((key, alg)))
}

fn hs() -> EncodingKey {
    EncodingKey::from_secret(HS_SECRET)
}

/// A good HS256 token with these claims.
fn hs256(payload: Value) -> String {
    token(
        json!({"alg":"HS256","typ":"JWT","kid":"hs"}),
        payload,
        &hs(),
        Algorithm::HS256,
    )
}

fn with(key: &str, value: Value) -> Value {
    let mut c = claims();
    c[key] = value;
    c
}

fn without(key: &str) -> Value {
    let mut c = claims();
    c.as_object_mut().unwrap().remove(key);
    c
}

#[tokio::test]
async fn every_algorithm_verifies() {
    let f = fixtures();
    let v = all_keys_verifier().await;
    let cases: [(&str, &EncodingKey, Algorithm); 8] = [
        ("hs", &hs(), Algorithm::HS256),
        ("hs", &hs(), Algorithm::HS384),
        ("hs", &hs(), Algorithm::HS512),
        ("rsa", &f.rsa.encoding, Algorithm::RS256),
        ("rsa", &f.rsa.encoding, Algorithm::PS256),
        ("p256", &f.p256.encoding, Algorithm::ES256),
        ("p384", &f.p384.encoding, Algorithm::ES384),
        ("ed", &f.ed.encoding, Algorithm::EdDSA),
    ];
    for (kid, key, alg) in cases {
        let alg_name = format!("{alg:?}");
        // With kid, and without (the key is then found by its kind).
        for header in [
            json!({"alg": alg_name, "kid": kid}),
            json!({"alg": alg_name}),
        ] {
            // One claims value: a second boundary between two `claims()` calls moves `exp`.
            let c = claims();
            let t = token(header.clone(), c.clone(), key, alg);
            let got = v
                .verify_cached_keys(&t)
                .unwrap_or_else(|e| panic!("{header}: {e}"));
            assert_eq!(got.user_id, "user-1");
            assert_eq!(got.session_id.as_deref(), Some("sess-1"));
            assert_eq!(got.roles, ["admin", "dev"]);
            assert_eq!(got.expires_at, c["exp"].as_u64().unwrap());
            assert_eq!(v.verify(&t).await, Ok(got));
        }
    }
}

#[tokio::test]
async fn alg_none_in_any_case() {
    let v = all_keys_verifier().await;
    for alg in ["none", "None", "NONE", "nOnE"] {
        for kid in [json!("hs"), Value::Null] {
            let mut header = json!({ "alg": alg });
            if !kid.is_null() {
                header["kid"] = kid;
            }
            let t = raw_token(&header.to_string(), &claims().to_string(), None);
            assert_eq!(
                v.verify_cached_keys(&t),
                Err(TokenError::Algorithm),
                "{header}"
            );
            // Even with some signature bytes attached.
            let t = format!("{t}{}", b64(b"sig"));
            assert_eq!(
                v.verify_cached_keys(&t),
                Err(TokenError::Algorithm),
                "{header}"
            );
        }
    }
}

#[tokio::test]
async fn rsa_public_key_as_hmac_secret() {
    let f = fixtures();
    let forged_key = EncodingKey::from_secret(f.rsa.public_pem.as_bytes());
    let file_bytes = EncodingKey::from_secret(&std::fs::read(&f.rsa.public_path).unwrap());
    for key in [&forged_key, &file_bytes] {
        // Only RS256 configured: HS256 is not in the list.
        let v = Verifier::new(&cfg(
            &[Algorithm::RS256],
            vec![file_key("rsa", &f.rsa.public_path)],
        ))
        .await
        .unwrap();
        for header in [json!({"alg":"HS256","kid":"rsa"}), json!({"alg":"HS256"})] {
            let t = token(header, claims(), key, Algorithm::HS256);
            assert_eq!(v.verify_cached_keys(&t), Err(TokenError::Algorithm));
        }
        // Even with HS256 configured, an RSA key never verifies an HMAC.
        let v = Verifier::new(&cfg(
            &[Algorithm::RS256, Algorithm::HS256],
            vec![file_key("rsa", &f.rsa.public_path)],
        ))
        .await
        .unwrap();
        for header in [json!({"alg":"HS256","kid":"rsa"}), json!({"alg":"HS256"})] {
            let t = token(header, claims(), key, Algorithm::HS256);
            assert_eq!(v.verify_cached_keys(&t), Err(TokenError::Algorithm));
        }
    }
}

#[tokio::test]
async fn algorithm_must_fit_the_key_and_the_list() {
    let f = fixtures();
    let v = all_keys_verifier().await;
    // ES256 header against the P-384 key, EdDSA against RSA, RS256 against the HMAC secret.
    let t = token(
        json!({"alg":"ES256","kid":"p384"}),
        claims(),
        &f.p256.encoding,
        Algorithm::ES256,
    );
    assert_eq!(v.verify_cached_keys(&t), Err(TokenError::Algorithm));
    let t = token(
        json!({"alg":"EdDSA","kid":"rsa"}),
        claims(),
        &f.ed.encoding,
        Algorithm::EdDSA,
    );
    assert_eq!(v.verify_cached_keys(&t), Err(TokenError::Algorithm));
    let t = token(
        json!({"alg":"RS256","kid":"hs"}),
        claims(),
        &f.rsa.encoding,
        Algorithm::RS256,
    );
    assert_eq!(v.verify_cached_keys(&t), Err(TokenError::Algorithm));
    // Not in the configured list.
    let only_hs256 = Verifier::new(&cfg(&[Algorithm::HS256], vec![secret_key("hs", HS_SECRET)]))
        .await
        .unwrap();
    let t = token(
        json!({"alg":"HS512","kid":"hs"}),
        claims(),
        &hs(),
        Algorithm::HS512,
    );
    assert_eq!(
        only_hs256.verify_cached_keys(&t),
        Err(TokenError::Algorithm)
    );
    // Unknown algorithm names.
    for alg in ["HS1", "RS1", "ES512", "EdDSA25519", "", "hs256"] {
        let t = raw_token(
            &json!({"alg": alg}).to_string(),
            &claims().to_string(),
            None,
        );
        assert_eq!(
            only_hs256.verify_cached_keys(&t),
            Err(TokenError::Algorithm),
            "{alg}"
        );
    }
    // alg missing or not a string.
    for header in [json!({}), json!({"alg": 1}), json!({"alg": ["HS256"]})] {
        let t = raw_token(&header.to_string(), &claims().to_string(), None);
        assert_eq!(
            only_hs256.verify_cached_keys(&t),
            Err(TokenError::Malformed),
            "{header}"
        );
    }
}

#[tokio::test]
async fn empty_and_zero_signatures() {
    let f = fixtures();
    let v = all_keys_verifier().await;
    for (kid, alg, len) in [
        ("hs", "HS256", 32),
        ("rsa", "RS256", 256),
        ("p256", "ES256", 64),
        ("ed", "EdDSA", 64),
    ] {
        let header = json!({"alg": alg, "kid": kid}).to_string();
        let unsigned = raw_token(&header, &claims().to_string(), None);
        assert!(unsigned.ends_with('.'));
        assert_eq!(
            v.verify_cached_keys(&unsigned),
            Err(TokenError::Signature),
            "{alg}"
        );
        let zeros = format!("{unsigned}{}", b64(&vec![0u8; len]));
        assert_eq!(
            v.verify_cached_keys(&zeros),
            Err(TokenError::Signature),
            "{alg}"
        );
    }
    // A real signature by another key.
    let t = token(
        json!({"alg":"EdDSA","kid":"ed"}),
        claims(),
        &f.ed_other.encoding,
        Algorithm::EdDSA,
    );
    assert_eq!(v.verify_cached_keys(&t), Err(TokenError::Signature));
    let t = token(
        json!({"alg":"EdDSA"}),
        claims(),
        &f.ed_other.encoding,
        Algorithm::EdDSA,
    );
    assert_eq!(v.verify_cached_keys(&t), Err(TokenError::Signature));
    // A signature whose payload was changed afterwards.
    let good = hs256(claims());
    let parts: Vec<&str> = good.split('.').collect();
    let evil = b64(with("sub", json!("admin")).to_string().as_bytes());
    let t = format!("{}.{}.{}", parts[0], evil, parts[2]);
    assert_eq!(v.verify_cached_keys(&t), Err(TokenError::Signature));
    // Signature part that is not base64url.
    let t = format!("{}.{}.{}", parts[0], parts[1], "!!!");
    assert_eq!(v.verify_cached_keys(&t), Err(TokenError::Malformed));
}

#[tokio::test]
async fn time_claims() {
    let v = all_keys_verifier().await;
    let n = now();
    assert_eq!(
        v.verify_cached_keys(&hs256(with("exp", json!(n - 100)))),
        Err(TokenError::Expired)
    );
    assert_eq!(
        v.verify_cached_keys(&hs256(with("nbf", json!(n + 100)))),
        Err(TokenError::NotYetValid)
    );
    // Leeway (30 s) honoured both ways.
    assert!(v
        .verify_cached_keys(&hs256(with("exp", json!(n - 10))))
        .is_ok());
    assert!(v
        .verify_cached_keys(&hs256(with("nbf", json!(n + 10))))
        .is_ok());
    assert_eq!(
        v.verify_cached_keys(&hs256(without("exp"))),
        Err(TokenError::MissingClaim("exp"))
    );
    assert_eq!(
        v.verify_cached_keys(&hs256(with("exp", json!((n + 300).to_string())))),
        Err(TokenError::BadClaim("exp"))
    );
    assert_eq!(
        v.verify_cached_keys(&hs256(with("nbf", json!(n.to_string())))),
        Err(TokenError::BadClaim("nbf"))
    );
    assert_eq!(
        v.verify_cached_keys(&hs256(with("exp", json!(null)))),
        Err(TokenError::BadClaim("exp"))
    );
    assert_eq!(
        v.verify_cached_keys(&hs256(with("exp", json!((n + 300) as f64 + 0.5)))),
        Err(TokenError::BadClaim("exp"))
    );
}

#[tokio::test]
async fn issuer_and_audience() {
    let v = all_keys_verifier().await;
    let check = |c: Value| v.verify_cached_keys(&hs256(c));
    assert_eq!(check(with("iss", json!("evil"))), Err(TokenError::Issuer));
    assert_eq!(check(with("iss", json!(["gw"]))), Err(TokenError::Issuer));
    assert_eq!(
        check(with("iss", json!(["evil", "gw"]))),
        Err(TokenError::Issuer)
    );
    assert_eq!(check(with("iss", json!(7))), Err(TokenError::Issuer));
    assert_eq!(check(without("iss")), Err(TokenError::MissingClaim("iss")));
    assert_eq!(
        check(with("aud", json!("other"))),
        Err(TokenError::Audience)
    );
    assert_eq!(
        check(with("aud", json!(["other"]))),
        Err(TokenError::Audience)
    );
    assert_eq!(check(without("aud")), Err(TokenError::MissingClaim("aud")));
    assert!(check(with("aud", json!(["other", "api"]))).is_ok());
    assert_eq!(
        check(with("aud", json!(["api", 7]))),
        Err(TokenError::BadClaim("aud"))
    );
}

#[tokio::test]
async fn identity_claims() {
    let v = all_keys_verifier().await;
    let check = |c: Value| v.verify_cached_keys(&hs256(c));
    assert_eq!(
        check(without("sub")),
        Err(TokenError::MissingClaim("user_id"))
    );
    assert_eq!(
        check(with("sub", json!(42))),
        Err(TokenError::BadClaim("user_id"))
    );
    assert_eq!(
        check(with("sub", json!(""))),
        Err(TokenError::BadClaim("user_id"))
    );
    assert_eq!(
        check(with("sub", json!("a\r\nX-User-Id: admin"))),
        Err(TokenError::BadClaim("user_id"))
    );
    assert_eq!(
        check(without("sid")),
        Err(TokenError::MissingClaim("session_id"))
    );
    assert_eq!(
        check(with("sid", json!(1))),
        Err(TokenError::BadClaim("session_id"))
    );
    assert_eq!(
        check(with("roles", json!(["a,admin"]))),
        Err(TokenError::BadClaim("roles"))
    );
    assert_eq!(check(without("roles")).map(|t| t.roles), Ok(vec![]));
    assert_eq!(
        check(with("roles", json!("a b,c"))).map(|t| t.roles),
        Ok(vec!["a".into(), "b".into(), "c".into()])
    );
}

#[tokio::test]
async fn configurable_claim_names() {
    let mut c = cfg(&[Algorithm::HS256], vec![secret_key("hs", HS_SECRET)]);
    c.user_id_claim = "uid".into();
    c.session_claim = "session".into();
    c.roles_claim = "scope".into();
    let v = Verifier::new(&c).await.unwrap();
    let payload = json!({"iss":"gw","aud":"api","exp": now() + 60, "uid":"u", "session":"s", "scope":"read write", "sub": 5});
    let t = v.verify_cached_keys(&hs256(payload)).unwrap();
    assert_eq!(
        (t.user_id.as_str(), t.session_id.as_deref()),
        ("u", Some("s"))
    );
    assert_eq!(t.roles, ["read", "write"]);
    assert_eq!(
        v.verify_cached_keys(&hs256(claims())),
        Err(TokenError::MissingClaim("user_id"))
    );
}

#[tokio::test]
async fn kid_is_only_a_lookup() {
    let v = all_keys_verifier().await;
    for kid in [
        "nope",
        "../../etc/passwd",
        "/dev/null",
        "hs?x=1",
        "http://evil/jwks",
        "",
        "HS",
    ] {
        let t = token(
            json!({"alg":"HS256","kid": kid}),
            claims(),
            &hs(),
            Algorithm::HS256,
        );
        assert_eq!(
            v.verify_cached_keys(&t),
            Err(TokenError::UnknownKid),
            "{kid}"
        );
        assert_eq!(v.verify(&t).await, Err(TokenError::UnknownKid), "{kid}");
    }
    let t = token(
        json!({"alg":"HS256","kid": 1}),
        claims(),
        &hs(),
        Algorithm::HS256,
    );
    assert_eq!(v.verify_cached_keys(&t), Err(TokenError::Malformed));
}

#[tokio::test]
async fn header_refusals() {
    let f = fixtures();
    let v = all_keys_verifier().await;
    let jwk = json!({"kty":"oct","k": b64(b"attacker")});
    for (field, value) in [
        ("jwk", jwk),
        ("jku", json!("https://evil.example/jwks.json")),
        ("x5u", json!("https://evil.example/cert.pem")),
        ("x5c", json!(["MIIB"])),
    ] {
        let mut header = json!({"alg":"HS256","kid":"hs"});
        header[field] = value;
        let t = token(header, claims(), &hs(), Algorithm::HS256);
        assert_eq!(
            v.verify_cached_keys(&t),
            Err(TokenError::EmbeddedKey),
            "{field}"
        );
    }
    for crit in [json!(["exp"]), json!([]), json!(["b64"])] {
        let t = token(
            json!({"alg":"HS256","kid":"hs","crit": crit}),
            claims(),
            &hs(),
            Algorithm::HS256,
        );
        assert_eq!(v.verify_cached_keys(&t), Err(TokenError::Crit));
    }
    for typ in ["JWE", "dpop+jwt", "logout+jwt", ""] {
        let t = token(
            json!({"alg":"HS256","kid":"hs","typ": typ}),
            claims(),
            &hs(),
            Algorithm::HS256,
        );
        assert_eq!(
            v.verify_cached_keys(&t),
            Err(TokenError::TokenType),
            "{typ}"
        );
    }
    for typ in ["jwt", "at+jwt", "application/at+JWT"] {
        let t = token(
            json!({"alg":"HS256","kid":"hs","typ": typ}),
            claims(),
            &hs(),
            Algorithm::HS256,
        );
        assert!(v.verify_cached_keys(&t).is_ok(), "{typ}");
    }
    let t = token(
        json!({"alg":"EdDSA","kid":"ed","enc":"A256GCM"}),
        claims(),
        &f.ed.encoding,
        Algorithm::EdDSA,
    );
    assert_eq!(v.verify_cached_keys(&t), Err(TokenError::Malformed));
}

#[tokio::test]
async fn duplicate_keys() {
    let v = all_keys_verifier().await;
    let n = now() + 300;
    let payload =
        format!(r#"{{"iss":"gw","aud":"api","exp":{n},"sub":"user-1","sid":"s","sub":"admin"}}"#);
    let t = raw_token(
        r#"{"alg":"HS256","kid":"hs"}"#,
        &payload,
        Some((&hs(), Algorithm::HS256)),
    );
    assert_eq!(v.verify_cached_keys(&t), Err(TokenError::DuplicateKey));
    let payload = format!(r#"{{"iss":"gw","aud":"api","exp":{n},"sub":"u","sid":"s","exp":1}}"#);
    let t = raw_token(
        r#"{"alg":"HS256","kid":"hs"}"#,
        &payload,
        Some((&hs(), Algorithm::HS256)),
    );
    assert_eq!(v.verify_cached_keys(&t), Err(TokenError::DuplicateKey));
    let t = raw_token(
        r#"{"alg":"none","kid":"hs","alg":"HS256"}"#,
        &claims().to_string(),
        Some((&hs(), Algorithm::HS256)),
    );
    assert_eq!(v.verify_cached_keys(&t), Err(TokenError::DuplicateKey));
}

#[tokio::test]
async fn shape_and_size() {
    let v = all_keys_verifier().await;
    let good = hs256(claims());
    let parts: Vec<&str> = good.split('.').collect();
    for junk in [
        "",
        "garbage",
        "..",
        "...",
        "a.b",
        "a.b.c.d",
        ".b.c",
        "a..c",
        "\u{0}",
        "ey.ey.ey",
        &format!("{}.{}", parts[0], parts[1]),
        &format!("{good}.{}", parts[2]),
        &format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
        &format!("{} .{}.{}", parts[0], parts[1], parts[2]),
        &format!("{}.{}.{}", b64(b"[]"), parts[1], parts[2]),
        &format!("{}.{}.{}", parts[0], b64(b"\"str\""), parts[2]),
        &format!("{}.{}.{}", parts[0], b64(b"{\"a\":1}x"), parts[2]),
    ] {
        assert_eq!(
            v.verify_cached_keys(junk),
            Err(TokenError::Malformed),
            "{junk:?}"
        );
    }
    let big = hs256(with("pad", json!("x".repeat(MAX_TOKEN_BYTES))));
    assert!(big.len() > MAX_TOKEN_BYTES);
    assert_eq!(v.verify_cached_keys(&big), Err(TokenError::TooLarge));
    assert_eq!(
        v.verify_cached_keys(&"a".repeat(MAX_TOKEN_BYTES + 1)),
        Err(TokenError::TooLarge)
    );
    // Just under the limit is parsed normally.
    let pad = MAX_TOKEN_BYTES - hs256(with("pad", json!(""))).len();
    let fits = hs256(with("pad", json!("x".repeat(pad * 3 / 4 - 4))));
    assert!(fits.len() <= MAX_TOKEN_BYTES, "{}", fits.len());
    assert!(v.verify_cached_keys(&fits).is_ok());
}

#[tokio::test]
async fn kidless_token_tries_each_key_of_its_kind() {
    let v = Verifier::new(&cfg(
        &[Algorithm::HS256],
        vec![
            secret_key("old", b"the old secret, still accepted......"),
            secret_key("new", HS_SECRET),
        ],
    ))
    .await
    .unwrap();
    let t = token(json!({"alg":"HS256"}), claims(), &hs(), Algorithm::HS256);
    assert!(v.verify_cached_keys(&t).is_ok());
    let t = token(
        json!({"alg":"HS256"}),
        claims(),
        &EncodingKey::from_secret(b"neither"),
        Algorithm::HS256,
    );
    assert_eq!(v.verify_cached_keys(&t), Err(TokenError::Signature));
}

#[tokio::test]
async fn key_loading_errors() {
    let f = fixtures();
    let missing = PathBuf::from("/nonexistent/dir/jwt.pub.pem");
    let err = Verifier::new(&cfg(&[Algorithm::EdDSA], vec![file_key("k", &missing)]))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, KeyLoadError::Read { .. }));
    assert!(
        err.to_string().contains("/nonexistent/dir/jwt.pub.pem"),
        "{err}"
    );

    // A private key where the public key belongs, and junk.
    for path in [&f.ed.private_path, &f.rsa.private_path] {
        let err = Verifier::new(&cfg(&[Algorithm::EdDSA], vec![file_key("k", path)]))
            .await
            .err()
            .unwrap();
        assert!(
            matches!(&err, KeyLoadError::BadKey { path: p, .. } if p == path),
            "{err}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pem");
    std::fs::write(
        &junk,
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    let err = Verifier::new(&cfg(&[Algorithm::EdDSA], vec![file_key("k", &junk)]))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, KeyLoadError::BadKey { .. }), "{err}");

    // A key that can verify none of the configured algorithms.
    let err = Verifier::new(&cfg(
        &[Algorithm::EdDSA],
        vec![file_key("k", &f.rsa.public_path)],
    ))
    .await
    .err()
    .unwrap();
    assert!(
        matches!(err, KeyLoadError::NoUsableAlgorithm { .. }),
        "{err}"
    );
    let err = Verifier::new(&cfg(&[Algorithm::HS256], vec![secret_key("k", b"")]))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, KeyLoadError::EmptySecret { .. }), "{err}");
    let err = Verifier::new(&cfg(&[Algorithm::HS256], vec![]))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, KeyLoadError::NoKeys), "{err}");
}

#[test]
fn reasons_are_distinct_snake_case() {
    let all = [
        TokenError::TooLarge,
        TokenError::Malformed,
        TokenError::DuplicateKey,
        TokenError::Algorithm,
        TokenError::UnknownKid,
        TokenError::Signature,
        TokenError::Expired,
        TokenError::NotYetValid,
        TokenError::Issuer,
        TokenError::Audience,
        TokenError::MissingClaim("exp"),
        TokenError::BadClaim("exp"),
        TokenError::Crit,
        TokenError::EmbeddedKey,
        TokenError::TokenType,
    ];
    let reasons: std::collections::HashSet<_> = all.iter().map(TokenError::reason).collect();
    assert_eq!(reasons.len(), all.len());
    assert!(reasons
        .iter()
        .all(|r| r.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')));
}

// ---- mint -> verify with keys from keygen ----

fn auth_center(key: SigningKey, kid: &str) -> AuthCenter {
    AuthCenter {
        path: "/auth".into(),
        signing_key: key,
        signing_kid: kid.into(),
        access_ttl: Duration::from_secs(900),
        refresh_ttl: Duration::from_secs(86400),
        refresh_max_uses: 10,
        bind_refresh: BindRefresh::None,
        refresh_grace: Duration::ZERO,
        registration: false,
        cookies: false,
    }
}

fn mint_claims<'a>(roles: &'a [String], ttl: Duration) -> MintClaims<'a> {
    MintClaims {
        issuer: "gw",
        audience: "api",
        user_id_claim: "sub",
        user_id: "alice",
        session_claim: "sid",
        session_id: "s-123",
        roles_claim: "roles",
        roles,
        ttl,
    }
}

#[tokio::test]
async fn mint_then_verify_with_keygen_keys() {
    let dir = tempfile::tempdir().unwrap();
    let out = crate::cli::keygen::write_dev_material(dir.path(), false).unwrap();
    let signer = Signer::from_config(&auth_center(
        SigningKey::PrivateKeyFile(out.signing_private.clone()),
        "k1",
    ))
    .unwrap();
    assert_eq!(signer.algorithm(), Algorithm::EdDSA);
    let v = Verifier::new(&cfg(
        &[Algorithm::EdDSA],
        vec![file_key("k1", &out.signing_public)],
    ))
    .await
    .unwrap();
    let roles = vec!["admin".to_owned(), "ops".to_owned()];
    let t = signer
        .mint(&mint_claims(&roles, Duration::from_secs(60)))
        .unwrap();
    let got = v.verify(&t).await.unwrap();
    assert_eq!(got.user_id, "alice");
    assert_eq!(got.session_id.as_deref(), Some("s-123"));
    assert_eq!(got.roles, roles);
    assert!(got.expires_at >= now() + 59 && got.expires_at <= now() + 61);

    // The header names the configured kid; the payload has iat = nbf and a jti.
    let header = jsonwebtoken::decode_header(&t).unwrap();
    assert_eq!(header.kid.as_deref(), Some("k1"));
    let payload: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(t.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(payload["iat"], payload["nbf"]);
    assert!(payload["jti"].as_str().is_some_and(|j| j.len() >= 20));

    // Another kid in the verifier: the minted token names k1, which is unknown there.
    let other = Verifier::new(&cfg(
        &[Algorithm::EdDSA],
        vec![file_key("k2", &out.signing_public)],
    ))
    .await
    .unwrap();
    assert_eq!(other.verify_cached_keys(&t), Err(TokenError::UnknownKid));
}

#[tokio::test]
async fn mint_then_verify_every_key_kind() {
    let f = fixtures();
    let cases = [
        (&f.rsa, Algorithm::RS256),
        (&f.p256, Algorithm::ES256),
        (&f.p384, Algorithm::ES384),
        (&f.ed, Algorithm::EdDSA),
    ];
    for (key, alg) in cases {
        let signer = Signer::from_config(&auth_center(
            SigningKey::PrivateKeyFile(key.private_path.clone()),
            "kk",
        ))
        .unwrap();
        assert_eq!(signer.algorithm(), alg);
        let v = Verifier::new(&cfg(&[alg], vec![file_key("kk", &key.public_path)]))
            .await
            .unwrap();
        let t = signer
            .mint(&mint_claims(&[], Duration::from_secs(60)))
            .unwrap();
        assert_eq!(
            v.verify_cached_keys(&t).map(|t| t.user_id),
            Ok("alice".into()),
            "{alg:?}"
        );
    }
    let signer = Signer::from_config(&auth_center(
        SigningKey::Secret {
            env: "S".into(),
            value: HS_SECRET.to_vec(),
        },
        "hs",
    ))
    .unwrap();
    let v = all_keys_verifier().await;
    let t = signer
        .mint(&mint_claims(&[], Duration::from_secs(60)))
        .unwrap();
    assert!(v.verify_cached_keys(&t).is_ok());
}

// ---- JWKS over a real HTTP server ----

/// What the test JWKS server answers, and how often it was asked.
struct JwksServer {
    url: http::Uri,
    answer: Arc<Mutex<(StatusCode, String)>>,
    hits: Arc<AtomicUsize>,
}

impl JwksServer {
    async fn start(body: String) -> JwksServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let answer = Arc::new(Mutex::new((StatusCode::OK, body)));
        let hits = Arc::new(AtomicUsize::new(0));
        let (a, h) = (Arc::clone(&answer), Arc::clone(&hits));
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (a, h) = (Arc::clone(&a), Arc::clone(&h));
                let service = service_fn(move |_req| {
                    h.fetch_add(1, Ordering::SeqCst);
                    let (status, body) = a.lock().unwrap().clone();
                    let resp = Response::builder()
                        .status(status)
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from(body)))
                        .unwrap();
                    async move { Ok::<_, Infallible>(resp) }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        JwksServer {
            url: format!("http://{addr}/.well-known/jwks.json")
                .parse()
                .unwrap(),
            answer,
            hits,
        }
    }

    fn set(&self, status: StatusCode, body: String) {
        *self.answer.lock().unwrap() = (status, body);
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

fn jwk_of(key: &TestKey, kid: &str) -> Value {
    Signer::from_config(&auth_center(
        SigningKey::PrivateKeyFile(key.private_path.clone()),
        kid,
    ))
    .unwrap()
    .public_jwk()
    .unwrap()
}

fn jwks(keys: &[Value]) -> String {
    json!({ "keys": keys }).to_string()
}

fn jwks_cfg(url: &http::Uri) -> config::Jwt {
    let mut c = cfg(
        &[
            Algorithm::EdDSA,
            Algorithm::RS256,
            Algorithm::ES256,
            Algorithm::HS256,
        ],
        vec![],
    );
    c.jwks_url = Some(url.clone());
    c
}

fn signed(kid: &str, key: &TestKey, alg: Algorithm) -> String {
    token(
        json!({"alg": format!("{alg:?}"), "kid": kid}),
        claims(),
        &key.encoding,
        alg,
    )
}

#[tokio::test]
async fn jwks_refresh_on_unknown_kid_then_rate_limited() {
    let f = fixtures();
    let server = JwksServer::start(jwks(&[jwk_of(&f.ed, "a")])).await;
    let v = Verifier::new(&jwks_cfg(&server.url)).await.unwrap();
    assert_eq!(server.hits(), 1);
    let token_a = signed("a", &f.ed, Algorithm::EdDSA);
    assert!(v.verify(&token_a).await.is_ok());
    assert_eq!(server.hits(), 1);

    // The IdP adds key b; a token naming it triggers one fetch and succeeds.
    server.set(
        StatusCode::OK,
        jwks(&[jwk_of(&f.ed, "a"), jwk_of(&f.rsa, "b")]),
    );
    let token_b = signed("b", &f.rsa, Algorithm::RS256);
    assert_eq!(v.verify_cached_keys(&token_b), Err(TokenError::UnknownKid));
    assert_eq!(server.hits(), 1, "the sync path never fetches");
    assert!(v.verify(&token_b).await.is_ok());
    assert_eq!(server.hits(), 2);

    // Another unknown kid within 30 s: no fetch.
    server.set(StatusCode::OK, jwks(&[jwk_of(&f.p256, "c")]));
    let token_c = signed("c", &f.p256, Algorithm::ES256);
    assert_eq!(v.verify(&token_c).await, Err(TokenError::UnknownKid));
    assert_eq!(server.hits(), 2);

    // Many concurrent unknown kids: still no fetch.
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (v, t) = (v.clone(), token_c.clone());
        tasks.push(tokio::spawn(async move { v.verify(&t).await }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), Err(TokenError::UnknownKid));
    }
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn jwks_failure_keeps_stale_keys() {
    let f = fixtures();
    let server = JwksServer::start(jwks(&[jwk_of(&f.ed, "a")])).await;
    let v = Verifier::with_on_demand_interval(
        &VerifierSpec::own(&jwks_cfg(&server.url)),
        Duration::ZERO,
    )
    .await
    .unwrap();
    let token_a = signed("a", &f.ed, Algorithm::EdDSA);
    assert!(v.verify(&token_a).await.is_ok());

    for (status, body) in [
        (StatusCode::INTERNAL_SERVER_ERROR, jwks(&[])),
        (StatusCode::OK, "not json".to_owned()),
        (StatusCode::OK, jwks(&[])),
        (StatusCode::OK, "x".repeat(2 * 1024 * 1024)),
    ] {
        server.set(status, body);
        let before = server.hits();
        assert!(v.inner.refresh_jwks().await.is_err());
        // An unknown kid asks again (interval 0 here) and fails the same way.
        let token_z = signed("z", &f.ed, Algorithm::EdDSA);
        assert_eq!(v.verify(&token_z).await, Err(TokenError::UnknownKid));
        assert_eq!(server.hits(), before + 2);
        assert!(v.verify(&token_a).await.is_ok(), "stale key a still works");
    }
    // Recovery: a good answer replaces the set (a gone, b in).
    server.set(StatusCode::OK, jwks(&[jwk_of(&f.ed_other, "b")]));
    let token_b = signed("b", &f.ed_other, Algorithm::EdDSA);
    assert!(v.verify(&token_b).await.is_ok());
    assert_eq!(v.verify_cached_keys(&token_a), Err(TokenError::UnknownKid));
}

/// Polls `cond` for up to 10 s (the machine may be busy), failing the test after that.
async fn wait_until(cond: impl Fn() -> bool) {
    for _ in 0..200 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not met within 10 s");
}

#[tokio::test]
async fn jwks_background_refresh() {
    let f = fixtures();
    let server = JwksServer::start(jwks(&[jwk_of(&f.ed, "a")])).await;
    let mut c = jwks_cfg(&server.url);
    c.jwks_refresh = Duration::from_secs(1);
    let v = Verifier::new(&c).await.unwrap();
    server.set(
        StatusCode::OK,
        jwks(&[jwk_of(&f.ed, "a"), jwk_of(&f.p256, "c")]),
    );
    let token_c = signed("c", &f.p256, Algorithm::ES256);
    wait_until(|| v.verify_cached_keys(&token_c).is_ok()).await;
    assert!(server.hits() >= 2);

    server.set(StatusCode::SERVICE_UNAVAILABLE, String::new());
    let before = server.hits();
    wait_until(|| server.hits() > before).await;
    // Let the failed refresh finish before looking.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        v.verify_cached_keys(&token_c).is_ok(),
        "kept after a failed refresh"
    );
}

#[tokio::test]
async fn jwks_configured_keys_win_and_secrets_are_never_taken() {
    let f = fixtures();
    let oct = json!({"kty":"oct","kid":"h","k": b64(HS_SECRET), "alg":"HS256"});
    // "a" in the JWKS is the other key; the configured "a" must win.
    let server =
        JwksServer::start(jwks(&[oct, jwk_of(&f.ed_other, "a"), jwk_of(&f.rsa, "r")])).await;
    let mut c = jwks_cfg(&server.url);
    c.keys = vec![file_key("a", &f.ed.public_path)];
    let v = Verifier::new(&c).await.unwrap();
    assert!(v
        .verify_cached_keys(&signed("a", &f.ed, Algorithm::EdDSA))
        .is_ok());
    assert_eq!(
        v.verify_cached_keys(&signed("a", &f.ed_other, Algorithm::EdDSA)),
        Err(TokenError::Signature)
    );
    assert!(v
        .verify_cached_keys(&signed("r", &f.rsa, Algorithm::RS256))
        .is_ok());
    let forged = token(
        json!({"alg":"HS256","kid":"h"}),
        claims(),
        &hs(),
        Algorithm::HS256,
    );
    assert_eq!(v.verify_cached_keys(&forged), Err(TokenError::UnknownKid));
}

#[tokio::test]
async fn jwks_pinned_alg_and_start_failures() {
    let f = fixtures();
    // A JWK that says RS256 does not verify PS256.
    let server = JwksServer::start(jwks(&[jwk_of(&f.rsa, "r")])).await;
    let mut c = jwks_cfg(&server.url);
    c.algorithms.push(Algorithm::PS256);
    let v = Verifier::new(&c).await.unwrap();
    assert_eq!(
        v.verify_cached_keys(&signed("r", &f.rsa, Algorithm::PS256)),
        Err(TokenError::Algorithm)
    );

    // At start, any failure is an error.
    for (status, body) in [
        (StatusCode::NOT_FOUND, jwks(&[jwk_of(&f.ed, "a")])),
        (StatusCode::OK, "{}".to_owned()),
        (StatusCode::OK, jwks(&[json!({"kty":"oct","k":"c2VjcmV0"})])),
        (StatusCode::OK, "y".repeat(1024 * 1024 + 1)),
    ] {
        server.set(status, body);
        let err = Verifier::new(&jwks_cfg(&server.url)).await.err().unwrap();
        assert!(matches!(err, KeyLoadError::Jwks { .. }), "{err}");
    }
    // Nobody listening.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead: http::Uri = format!("http://{}/jwks", listener.local_addr().unwrap())
        .parse()
        .unwrap();
    drop(listener);
    let err = Verifier::new(&jwks_cfg(&dead)).await.err().unwrap();
    assert!(
        matches!(
            err,
            KeyLoadError::Jwks {
                source: JwksError::Fetch(crate::auth::outbound::OutboundError::Connect(_)),
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn jwks_connect_error_says_why() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead: http::Uri = format!("http://{}/jwks", listener.local_addr().unwrap())
        .parse()
        .unwrap();
    drop(listener);
    let err = Verifier::new(&jwks_cfg(&dead)).await.err().unwrap();
    let msg = err.to_string();
    assert!(
        msg.contains(&dead.to_string()) && msg.to_lowercase().contains("refused"),
        "{msg}"
    );
}

#[tokio::test]
async fn jwks_tokens_without_kid_are_refused_without_a_fetch() {
    let f = fixtures();
    // The JWKS publishes the very key that signed the token, and one key without a kid.
    let mut unnamed = jwk_of(&f.ed_other, "x");
    unnamed.as_object_mut().unwrap().remove("kid");
    let server = JwksServer::start(jwks(&[jwk_of(&f.ed, "a"), unnamed])).await;
    let v = Verifier::with_on_demand_interval(
        &VerifierSpec::own(&jwks_cfg(&server.url)),
        Duration::ZERO,
    )
    .await
    .unwrap();
    let hits = server.hits();
    for key in [&f.ed, &f.ed_other] {
        let kidless = token(
            json!({"alg":"EdDSA"}),
            claims(),
            &key.encoding,
            Algorithm::EdDSA,
        );
        assert_eq!(v.verify(&kidless).await, Err(TokenError::MissingKid));
    }
    assert_eq!(server.hits(), hits, "a token without kid never fetches");
    // The same key named by its kid passes.
    assert!(v
        .verify(&signed("a", &f.ed, Algorithm::EdDSA))
        .await
        .is_ok());
}

#[tokio::test]
async fn with_a_jwks_a_token_without_kid_still_uses_the_configured_keys() {
    let f = fixtures();
    let server = JwksServer::start(jwks(&[jwk_of(&f.rsa, "r")])).await;
    let mut c = jwks_cfg(&server.url);
    c.keys = vec![file_key("a", &f.ed.public_path)];
    let v = Verifier::new(&c).await.unwrap();
    let by_configured = token(
        json!({"alg":"EdDSA"}),
        claims(),
        &f.ed.encoding,
        Algorithm::EdDSA,
    );
    assert!(v.verify(&by_configured).await.is_ok());
    let by_fetched = token(
        json!({"alg":"RS256"}),
        claims(),
        &f.rsa.encoding,
        Algorithm::RS256,
    );
    assert_eq!(v.verify(&by_fetched).await, Err(TokenError::MissingKid));
}
