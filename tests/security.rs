//! Adversarial tests, docs/security.md ("Why is the algorithm list pinned, and chosen by the key?", "How can a client never set an identity header?"): forged and malformed
//! tokens (algorithm confusion, embedded keys, odd claim types, size limits, ambiguous
//! token sources) and every way a client might set, keep or drop an identity header
//! (spellings, positions, `Connection`, `Upgrade: h2c`). Real TLS, HTTP/1.1 and HTTP/2.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use jsonwebtoken::{Algorithm, EncodingKey};
use support::client::{raw_status, Client, Proto, BOTH};
use support::forge::{self, Claims, ED_HEADER};
use support::gateway::{route, TestGateway, ADMIN_TOML, MEMORY_SESSION};
use support::probe::{Probe, Switcher};
use support::upstream::Upstream;

const IDENTITY: [&str; 3] = ["x-user-id", "x-user-roles", "x-session-id"];

fn routes(u: &str) -> String {
    [
        route("/api/", u, ""),
        route("/admin/", u, "roles = [\"admin\"]"),
        route("/public/", u, "auth = \"public\""),
        route("/maybe/", u, "auth = \"optional\""),
    ]
    .concat()
}

async fn setup() -> (TestGateway, Upstream) {
    let up = Upstream::start().await;
    let gw = TestGateway::start(MEMORY_SESSION, &routes(&up.url())).await;
    gw.create_session("s-alice", "alice", None).await;
    (gw, up)
}

fn empty() -> Full<Bytes> {
    Full::new(Bytes::new())
}

/// Status of `GET path` with `Authorization: Bearer token` on `proto`.
async fn status(gw: &TestGateway, proto: Proto, path: &str, token: &str) -> u16 {
    gw.client(proto)
        .get(path, Some(token))
        .await
        .status
        .as_u16()
}

/// Asserts every `(label, token)` gets `want` on both protocols at `path`.
async fn expect_all(gw: &TestGateway, path: &str, cases: &[(String, String)], want: u16) {
    for proto in BOTH {
        for (label, token) in cases {
            let got = status(gw, proto, path, token).await;
            assert_eq!(got, want, "{proto:?} {label}: {token}");
        }
    }
}

/// A gateway config with a custom `[jwt]` table and no auth center.
fn custom_toml(jwt: &str, routes: &str) -> String {
    format!(
        r#"
[listen]
https = "127.0.0.1:0"
admin = "127.0.0.1:0"

[tls]
cert = "gateway.crt"
key = "gateway.key"

[jwt]
issuer = "gateway"
audience = "api"
leeway = "5s"
cookie = "__Host-gw_access"
{jwt}

[headers]
user_id = "X-User-Id"
roles = "X-User-Roles"
session_id = "X-Session-Id"

[limits]
header_timeout = "2s"
shutdown_grace = "2s"

{MEMORY_SESSION}

{ADMIN_TOML}

{routes}
"#
    )
}

// ---------------------------------------------------------------------------------------
// Tokens: the algorithm is decided by the configured key, never by the token.
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn alg_none_in_any_spelling_is_refused_whatever_the_signature() {
    let (gw, up) = setup().await;
    let key = forge::ed_key(gw.dir.path());
    let payload = forge::claims_json("alice", "s-alice", "");
    // Control: the same claims, properly signed, pass.
    let good = forge::signed(ED_HEADER, &payload, &key, Algorithm::EdDSA);
    assert_eq!(status(&gw, Proto::H1, "/api/x", &good).await, 200);
    let before = up.count();

    let mut cases = Vec::new();
    for alg in [
        "none", "None", "nOnE", "NONE", "", "eddsa", "EDDSA", "EdDSA ",
    ] {
        for header in [
            format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#),
            format!(r#"{{"alg":"{alg}","typ":"JWT","kid":"k1"}}"#),
        ] {
            // No signature, a junk one, and a real EdDSA signature over this very input.
            let real = forge::signed(&header, &payload, &key, Algorithm::EdDSA);
            let real_sig = real.rsplit('.').next().unwrap().to_owned();
            for sig in ["", "AAAA", real_sig.as_str()] {
                cases.push((
                    format!("alg {alg:?} sig {sig:.8}"),
                    forge::with_signature(&header, &payload, sig),
                ));
            }
        }
    }
    // `alg` of the wrong JSON type, or missing.
    for header in [
        r#"{"alg":null,"kid":"k1"}"#,
        r#"{"alg":["EdDSA"],"kid":"k1"}"#,
        r#"{"alg":{"name":"EdDSA"},"kid":"k1"}"#,
        r#"{"kid":"k1"}"#,
    ] {
        cases.push((
            format!("header {header}"),
            forge::signed(header, &payload, &key, Algorithm::EdDSA),
        ));
    }
    expect_all(&gw, "/api/x", &cases, 401).await;
    // And on an optional route a refused token is 401 too, never anonymous.
    expect_all(&gw, "/maybe/x", &cases[..6], 401).await;
    assert_eq!(up.count(), before, "a forged token reached the upstream");
}

#[tokio::test]
async fn hmac_signed_with_the_eddsa_public_key_is_refused() {
    let (gw, up) = setup().await;
    let pub_pem = std::fs::read(gw.dir.path().join("signing.pub.pem")).unwrap();
    let pub_der = pem_der(&pub_pem);
    let raw32 = pub_der[pub_der.len() - 32..].to_vec();
    let payload = forge::claims_json("alice", "s-alice", "");
    let mut cases = Vec::new();
    let mut trimmed = pub_pem.clone();
    while trimmed.last() == Some(&b'\n') {
        trimmed.pop();
    }
    for (secret_name, secret) in [
        ("pem", pub_pem.clone()),
        ("pem-trimmed", trimmed),
        ("der", pub_der.clone()),
        ("raw32", raw32),
    ] {
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            for header in [
                format!(r#"{{"alg":"{alg:?}","typ":"JWT","kid":"k1"}}"#),
                format!(r#"{{"alg":"{alg:?}","typ":"JWT"}}"#),
            ] {
                let key = EncodingKey::from_secret(&secret);
                cases.push((
                    format!("{alg:?} with {secret_name} ({header})"),
                    forge::signed(&header, &payload, &key, alg),
                ));
            }
        }
    }
    expect_all(&gw, "/api/x", &cases, 401).await;
    assert_eq!(up.count(), 0);
}

/// The base64 body of the first PEM block.
fn pem_der(pem: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    let text = String::from_utf8_lossy(pem);
    let b64: String = text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .unwrap()
}

#[tokio::test]
async fn rs256_gateway_refuses_its_public_key_as_an_hmac_secret() {
    let up = Upstream::start().await;
    let keys = tempfile::tempdir().unwrap();
    let forge::RsaKeys {
        private_pem: priv_pem,
        public_pem: pub_pem,
        spki_der: pub_der,
        pkcs1_der,
    } = forge::rsa_key_pair();
    let pub_path = keys.path().join("rsa.pub.pem");
    std::fs::write(&pub_path, &pub_pem).unwrap();
    let jwt = format!(
        "algorithms = [\"RS256\"]\nkeys = [{{ kid = \"r1\", public_key = \"{}\" }}]",
        pub_path.display()
    );
    let gw = TestGateway::start_toml(&custom_toml(&jwt, &routes(&up.url()))).await;
    gw.create_session("s-alice", "alice", None).await;
    let payload = forge::claims_json("alice", "s-alice", "");
    let rsa = EncodingKey::from_rsa_pem(priv_pem.as_bytes()).unwrap();
    let good = forge::signed(
        r#"{"alg":"RS256","typ":"JWT","kid":"r1"}"#,
        &payload,
        &rsa,
        Algorithm::RS256,
    );
    for proto in BOTH {
        assert_eq!(
            status(&gw, proto, "/api/x", &good).await,
            200,
            "control RS256"
        );
    }
    let before = up.count();

    let mut cases = Vec::new();
    let pem_trim = pub_pem.trim_end().to_owned();
    for (name, secret) in [
        ("pem", pub_pem.as_bytes().to_vec()),
        ("pem-trimmed", pem_trim.into_bytes()),
        ("der", pub_der.clone()),
        ("pkcs1-der", pkcs1_der.clone()),
    ] {
        for kid in [r#","kid":"r1""#, ""] {
            let header = format!(r#"{{"alg":"HS256","typ":"JWT"{kid}}}"#);
            cases.push((
                format!("HS256 with {name} kid={kid}"),
                forge::signed(
                    &header,
                    &payload,
                    &EncodingKey::from_secret(&secret),
                    Algorithm::HS256,
                ),
            ));
        }
    }
    // The right key, but an algorithm that is not configured.
    for alg in [Algorithm::RS384, Algorithm::RS512, Algorithm::PS256] {
        let header = format!(r#"{{"alg":"{alg:?}","typ":"JWT","kid":"r1"}}"#);
        cases.push((
            format!("{alg:?} with the RSA key"),
            forge::signed(&header, &payload, &rsa, alg),
        ));
    }
    // The real RS256 signature under a header that claims another algorithm.
    let sig = good.rsplit('.').next().unwrap();
    for alg in ["PS256", "RS512", "none", "HS256"] {
        let header = format!(r#"{{"alg":"{alg}","typ":"JWT","kid":"r1"}}"#);
        cases.push((
            format!("RS256 sig under alg {alg}"),
            forge::with_signature(&header, &payload, sig),
        ));
    }
    expect_all(&gw, "/api/x", &cases, 401).await;
    assert_eq!(up.count(), before);
}

#[tokio::test]
async fn with_hs256_and_eddsa_configured_the_key_kind_decides_the_algorithm() {
    let up = Upstream::start().await;
    let env = "GW_SECURITY_TEST_HS_SECRET";
    let secret = "a shared secret that is long enough for HS256 use";
    // Only this test reads this variable, and every test that sets it sets the same value.
    std::env::set_var(env, secret);
    let jwt = format!(
        "algorithms = [\"EdDSA\", \"HS256\"]\nkeys = [{{ kid = \"k1\", public_key = \"signing.pub.pem\" }}, {{ kid = \"h1\", secret_env = \"{env}\" }}]"
    );
    let gw = TestGateway::start_toml(&custom_toml(&jwt, &routes(&up.url()))).await;
    gw.create_session("s-alice", "alice", None).await;
    let payload = forge::claims_json("alice", "s-alice", "");
    let hs = EncodingKey::from_secret(secret.as_bytes());
    let ed = forge::ed_key(gw.dir.path());
    let pub_pem = std::fs::read(gw.dir.path().join("signing.pub.pem")).unwrap();
    let pub_as_secret = EncodingKey::from_secret(&pub_pem);

    // Controls: each key with its own algorithm.
    let hs_ok = forge::signed(
        r#"{"alg":"HS256","kid":"h1"}"#,
        &payload,
        &hs,
        Algorithm::HS256,
    );
    let ed_ok = forge::signed(ED_HEADER, &payload, &ed, Algorithm::EdDSA);
    for proto in BOTH {
        assert_eq!(status(&gw, proto, "/api/x", &hs_ok).await, 200);
        assert_eq!(status(&gw, proto, "/api/x", &ed_ok).await, 200);
    }
    let before = up.count();
    let cases = vec![
        (
            "HS256 kid k1 signed with the EdDSA public key".to_owned(),
            forge::signed(
                r#"{"alg":"HS256","kid":"k1"}"#,
                &payload,
                &pub_as_secret,
                Algorithm::HS256,
            ),
        ),
        (
            "HS256 no kid signed with the EdDSA public key".to_owned(),
            forge::signed(
                r#"{"alg":"HS256"}"#,
                &payload,
                &pub_as_secret,
                Algorithm::HS256,
            ),
        ),
        (
            "HS256 with the right secret but kid k1 (an EdDSA key)".to_owned(),
            forge::signed(
                r#"{"alg":"HS256","kid":"k1"}"#,
                &payload,
                &hs,
                Algorithm::HS256,
            ),
        ),
        (
            "EdDSA with the right key but kid h1 (an HMAC key)".to_owned(),
            forge::signed(
                r#"{"alg":"EdDSA","kid":"h1"}"#,
                &payload,
                &ed,
                Algorithm::EdDSA,
            ),
        ),
        (
            "HS256 signed with the secret's bytes plus a newline".to_owned(),
            forge::signed(
                r#"{"alg":"HS256","kid":"h1"}"#,
                &payload,
                &EncodingKey::from_secret(format!("{secret}\n").as_bytes()),
                Algorithm::HS256,
            ),
        ),
    ];
    expect_all(&gw, "/api/x", &cases, 401).await;
    assert_eq!(up.count(), before);
}

#[tokio::test]
async fn empty_zero_and_malformed_signatures_are_refused() {
    let (gw, up) = setup().await;
    let key = forge::ed_key(gw.dir.path());
    let payload = forge::claims_json("alice", "s-alice", "");
    let good = forge::signed(ED_HEADER, &payload, &key, Algorithm::EdDSA);
    let sig = good.rsplit('.').next().unwrap().to_owned();
    let input = forge::signing_input(ED_HEADER, &payload);
    let std_sig = {
        use base64::Engine as _;
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&sig)
            .unwrap();
        base64::engine::general_purpose::STANDARD.encode(raw)
    };
    let cases: Vec<(String, String)> = vec![
        ("empty".into(), format!("{input}.")),
        ("no third part".into(), input.clone()),
        (
            "zero 64".into(),
            format!("{input}.{}", forge::b64(&[0; 64])),
        ),
        ("zero 1".into(), format!("{input}.{}", forge::b64(&[0]))),
        (
            "ff 64".into(),
            format!("{input}.{}", forge::b64(&[0xff; 64])),
        ),
        (
            "truncated".into(),
            format!("{input}.{}", &sig[..sig.len() - 2]),
        ),
        ("padded".into(), format!("{input}.{sig}==")),
        ("std base64 padded".into(), format!("{input}.{std_sig}")),
        ("four parts".into(), format!("{good}.")),
        ("four parts b".into(), format!("{good}.{sig}")),
        (
            "signature of another payload".into(),
            format!(
                "{}.{sig}",
                forge::signing_input(ED_HEADER, &forge::claims_json("mallory", "s-alice", ""))
            ),
        ),
    ];
    expect_all(&gw, "/api/x", &cases, 401).await;
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn keys_carried_in_the_token_and_crit_are_refused() {
    let (gw, up) = setup().await;
    let real = forge::ed_key(gw.dir.path());
    let (attacker, raw_pub) = forge::attacker_ed_key();
    let x = forge::b64(&raw_pub);
    let payload = forge::claims_json("alice", "s-alice", "");
    let jwk = format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{x}"}}"#);
    let headers = [
        format!(r#"{{"alg":"EdDSA","jwk":{jwk}}}"#),
        format!(r#"{{"alg":"EdDSA","kid":"k1","jwk":{jwk}}}"#),
        r#"{"alg":"EdDSA","jku":"https://127.0.0.1:1/jwks.json"}"#.to_owned(),
        r#"{"alg":"EdDSA","kid":"k1","jku":"https://127.0.0.1:1/jwks.json"}"#.to_owned(),
        r#"{"alg":"EdDSA","kid":"k1","x5u":"https://127.0.0.1:1/cert.pem"}"#.to_owned(),
        r#"{"alg":"EdDSA","kid":"k1","x5c":["MIIBAAAA"]}"#.to_owned(),
        r#"{"alg":"EdDSA","kid":"k1","x5c":[]}"#.to_owned(),
        r#"{"alg":"EdDSA","kid":"k1","jwk":null}"#.to_owned(),
        r#"{"alg":"EdDSA","kid":"k1","crit":["exp"]}"#.to_owned(),
        r#"{"alg":"EdDSA","kid":"k1","crit":[]}"#.to_owned(),
        r#"{"alg":"EdDSA","kid":"k1","crit":["b64"],"b64":false}"#.to_owned(),
        r#"{"alg":"EdDSA","kid":"k1","enc":"A256GCM"}"#.to_owned(),
        r#"{"alg":"EdDSA","kid":"k1","zip":"DEF"}"#.to_owned(),
        r#"{"alg":"EdDSA","kid":"k1","typ":"JWE"}"#.to_owned(),
        r#"{"alg":"EdDSA","kid":"k1","typ":1}"#.to_owned(),
    ];
    let mut cases = Vec::new();
    for h in &headers {
        // Signed by the attacker's key (the one in the header) and by the real key: the header
        // alone must be enough to refuse.
        cases.push((
            format!("attacker-signed {h}"),
            forge::signed(h, &payload, &attacker, Algorithm::EdDSA),
        ));
        cases.push((
            format!("real-key-signed {h}"),
            forge::signed(h, &payload, &real, Algorithm::EdDSA),
        ));
    }
    expect_all(&gw, "/api/x", &cases, 401).await;
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn kid_is_only_a_lookup_key() {
    let (gw, up) = setup().await;
    let key = forge::ed_key(gw.dir.path());
    let payload = forge::claims_json("alice", "s-alice", "");
    let kids = [
        r#""../../../../../dev/null""#,
        r#""/dev/null""#,
        r#""signing.pub.pem""#,
        r#""file:///etc/passwd""#,
        r#""k1' OR '1'='1""#,
        r#""k1\" OR 1=1 --""#,
        r#""k1; DROP TABLE keys""#,
        r#""K1""#,
        r#""k1 ""#,
        r#"" k1""#,
        r#""""#,
        r#""k1\u0000""#,
        r#""k1/../k1""#,
        r#""*""#,
        r#""k?""#,
        "1",
        r#"["k1"]"#,
        "null",
        r#"{"$ne":null}"#,
        "true",
    ];
    let cases: Vec<(String, String)> = kids
        .iter()
        .map(|kid| {
            let header = format!(r#"{{"alg":"EdDSA","typ":"JWT","kid":{kid}}}"#);
            (
                format!("kid {kid}"),
                forge::signed(&header, &payload, &key, Algorithm::EdDSA),
            )
        })
        .collect();
    expect_all(&gw, "/api/x", &cases, 401).await;
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn repeated_json_keys_are_refused_even_when_escaped() {
    let (gw, up) = setup().await;
    gw.create_session("s-admin", "root", Some(&["admin"])).await;
    let key = forge::ed_key(gw.dir.path());
    let t = support::gateway::now();
    let tail = format!(r#""iss":"gateway","aud":"api","exp":{}"#, t + 900);
    let payloads = [
        // A parser that keeps the first or the last key would read different users.
        format!(r#"{{"sub":"root","sid":"s-alice","sub":"alice",{tail}}}"#),
        format!(r#"{{"sub":"alice","sid":"s-alice","sub":"root",{tail}}}"#),
        format!(r#"{{"sub":"alice","sid":"s-alice","s\u0075b":"root",{tail}}}"#),
        format!(r#"{{"sub":"alice","sid":"s-alice","sid":"s-admin",{tail}}}"#),
        format!(r#"{{"sub":"alice","sid":"s-alice","exp":1,{tail}}}"#),
        format!(r#"{{"sub":"alice","sid":"s-alice","aud":"x",{tail}}}"#),
        format!(r#"{{"sub":"alice","sid":"s-alice","roles":["user"],"roles":["admin"],{tail}}}"#),
        format!(r#"{{"sub":"alice","sid":"s-alice","rol\u0065s":["admin"],"roles":[],{tail}}}"#),
    ];
    let mut cases: Vec<(String, String)> = payloads
        .iter()
        .map(|p| {
            (
                format!("payload {p}"),
                forge::signed(ED_HEADER, p, &key, Algorithm::EdDSA),
            )
        })
        .collect();
    let good_payload = forge::claims_json("alice", "s-alice", "");
    for h in [
        r#"{"alg":"none","alg":"EdDSA","kid":"k1"}"#,
        r#"{"alg":"EdDSA","kid":"nope","kid":"k1"}"#,
        r#"{"alg":"EdDSA","kid":"k1","\u006bid":"k1"}"#,
    ] {
        cases.push((
            format!("header {h}"),
            forge::signed(h, &good_payload, &key, Algorithm::EdDSA),
        ));
    }
    // Not JSON objects, or trailing garbage after the object.
    for p in [
        format!("[{good_payload}]"),
        format!("{good_payload} x"),
        format!("{good_payload}{good_payload}"),
        "null".to_owned(),
    ] {
        cases.push((
            format!("payload {p:.40}"),
            forge::signed(ED_HEADER, &p, &key, Algorithm::EdDSA),
        ));
    }
    expect_all(&gw, "/admin/x", &cases, 401).await;
    expect_all(&gw, "/api/x", &cases, 401).await;
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn claims_of_the_wrong_type_or_value_are_refused() {
    let (gw, up) = setup().await;
    let key = forge::ed_key(gw.dir.path());
    let t = support::gateway::now();
    let sign = |c: Claims| forge::signed(ED_HEADER, &c.json(), &key, Algorithm::EdDSA);
    let v = || Claims::valid(r#""alice""#, r#""s-alice""#);
    let future = (t + 900).to_string();
    let mut bad: Vec<(String, String)> = Vec::new();
    let mut push = |label: &str, c: Claims| bad.push((label.to_owned(), sign(c)));
    for exp in [
        format!("\"{future}\""),
        format!("{future}.5"),
        "1e10".to_owned(),
        "9.9e18".to_owned(),
        "1e400".to_owned(),
        "18446744073709551616".to_owned(),
        "-1".to_owned(),
        "true".to_owned(),
        "null".to_owned(),
        format!("[{future}]"),
        format!("{{\"v\":{future}}}"),
        (t - 3600).to_string(),
    ] {
        push(
            &format!("exp {exp}"),
            Claims {
                exp: Some(exp),
                ..v()
            },
        );
    }
    push("exp missing", Claims { exp: None, ..v() });
    for nbf in ["\"0\"", "0.5", "true", "null", &(t + 3600).to_string()] {
        push(
            &format!("nbf {nbf}"),
            Claims {
                nbf: Some(nbf.to_owned()),
                ..v()
            },
        );
    }
    for iss in [
        r#"["gateway"]"#,
        r#"["evil","gateway"]"#,
        r#"["gateway","evil"]"#,
        "null",
        r#""Gateway""#,
        r#""gateway ""#,
        r#""gateway\u0000""#,
        "1",
    ] {
        push(
            &format!("iss {iss}"),
            Claims {
                iss: Some(iss),
                ..v()
            },
        );
    }
    push("iss missing", Claims { iss: None, ..v() });
    for aud in [
        "null",
        "1",
        r#"["x"]"#,
        "[]",
        r#""API""#,
        r#"[1,"api"]"#,
        r#"{"aud":"api"}"#,
    ] {
        push(
            &format!("aud {aud}"),
            Claims {
                aud: Some(aud),
                ..v()
            },
        );
    }
    push("aud missing", Claims { aud: None, ..v() });
    for sub in [
        r#""""#,
        r#"["alice"]"#,
        "null",
        r#"{"id":"alice"}"#,
        "1",
        "true",
        r#""alice\u0000""#,
        r#""alice\n""#,
        r#"" alice""#,
        r#""alice ""#,
    ] {
        push(
            &format!("sub {sub}"),
            Claims {
                sub: Some(sub),
                ..v()
            },
        );
    }
    push("sub missing", Claims { sub: None, ..v() });
    for sid in [r#""""#, "1", r#"["s-alice"]"#, "null"] {
        push(
            &format!("sid {sid}"),
            Claims {
                sid: Some(sid),
                ..v()
            },
        );
    }
    push("sid missing", Claims { sid: None, ..v() });
    for roles in [
        r#""roles":1,"#,
        r#""roles":[1],"#,
        r#""roles":{"admin":true},"#,
        r#""roles":["a,admin"],"#,
        r#""roles":["ad min"],"#,
        r#""roles":["admin\u0000"],"#,
        r#""roles":[["admin"]],"#,
    ] {
        push(
            &format!("roles {roles}"),
            Claims {
                extra: roles,
                ..v()
            },
        );
    }
    for proto in BOTH {
        for (label, token) in &bad {
            for path in ["/api/x", "/maybe/x", "/admin/x"] {
                let got = status(&gw, proto, path, token).await;
                assert_eq!(got, 401, "{proto:?} {path} {label}");
            }
        }
    }
    assert_eq!(up.count(), 0, "a malformed claim set reached the upstream");

    // Accepted forms (docs/contract.md, "Token claims"): aud as an array holding ours, roles as a string.
    let ok = [
        (
            "aud array",
            sign(Claims {
                aud: Some(r#"["other","api"]"#),
                ..v()
            }),
        ),
        (
            "roles string",
            sign(Claims {
                extra: r#""roles":"user, dev","#,
                ..v()
            }),
        ),
    ];
    for proto in BOTH {
        for (label, token) in &ok {
            assert_eq!(status(&gw, proto, "/api/x", token).await, 200, "{label}");
        }
    }
    assert_eq!(up.last().one("x-user-roles").as_deref(), Some("user,dev"));
}

#[tokio::test]
async fn a_token_of_exactly_8_kib_passes_one_byte_more_does_not() {
    let (gw, up) = setup().await;
    let key = forge::ed_key(gw.dir.path());
    let headers = [
        r#"{"alg":"EdDSA","typ":"JWT"}"#,
        r#"{"alg":"EdDSA","kid":"k1"}"#,
        ED_HEADER,
    ];
    let find = |want: usize| -> String {
        for h in headers {
            for n in 5600..6300 {
                let extra = format!(r#""pad":"{}","#, "p".repeat(n));
                let payload = forge::claims_json("alice", "s-alice", &extra);
                let input_len = forge::signing_input(h, &payload).len();
                if input_len + 1 + 86 == want {
                    let t = forge::signed(h, &payload, &key, Algorithm::EdDSA);
                    assert_eq!(t.len(), want);
                    return t;
                }
            }
        }
        panic!("no token of exactly {want} bytes");
    };
    let exact = find(8192);
    let over = find(8193);
    for proto in BOTH {
        assert_eq!(status(&gw, proto, "/api/x", &exact).await, 200, "{proto:?}");
        assert_eq!(status(&gw, proto, "/api/x", &over).await, 401, "{proto:?}");
        // Same through the cookie.
        let c = gw.client(proto);
        for (token, want) in [(&exact, 200), (&over, 401)] {
            let req = c
                .req("GET", "/api/x")
                .header("cookie", format!("__Host-gw_access={token}"))
                .body(empty())
                .unwrap();
            assert_eq!(c.send(req).await.status, want, "{proto:?} cookie");
        }
    }
    assert_eq!(up.count(), 4);
}

#[tokio::test]
async fn cookie_and_header_must_agree_and_cookies_may_repeat_only_identically() {
    let (gw, up) = setup().await;
    gw.create_session("s-bob", "bob", None).await;
    let alice = gw.token("alice", "s-alice", &[]);
    let bob = gw.token("bob", "s-bob", &[]);
    for proto in BOTH {
        let c = gw.client(proto);
        let send = |hs: Vec<(&'static str, String)>| {
            let c = c.clone();
            async move {
                let mut b = c.req("GET", "/api/x");
                for (n, v) in hs {
                    b = b.header(n, v);
                }
                c.send(b.body(empty()).unwrap()).await
            }
        };
        // Header and the same token in the cookie: one token, fine.
        let r = send(vec![
            ("authorization", format!("Bearer {alice}")),
            ("cookie", format!("__Host-gw_access={alice}")),
        ])
        .await;
        assert_eq!(r.status, 200, "{proto:?} same token twice");
        let got = up.last();
        assert_eq!(got.one("x-user-id").as_deref(), Some("alice"));
        assert!(got.all("authorization").is_empty());
        assert!(
            !got.all("cookie").join(";").contains("__Host-gw_access"),
            "{proto:?}: token cookie went upstream"
        );
        // Two Cookie headers carrying the same token: fine.
        let r = send(vec![
            ("cookie", format!("__Host-gw_access={alice}")),
            ("cookie", format!("theme=1; __Host-gw_access={alice}")),
        ])
        .await;
        assert_eq!(r.status, 200, "{proto:?} same cookie in two headers");
        assert!(!up
            .last()
            .all("cookie")
            .join(";")
            .contains("__Host-gw_access"));
        // Two Cookie headers with different tokens; a cookie pair repeated in one header;
        // a cookie that disagrees with the header: all ambiguous.
        for hs in [
            vec![
                ("cookie", format!("__Host-gw_access={alice}")),
                ("cookie", format!("__Host-gw_access={bob}")),
            ],
            vec![(
                "cookie",
                format!("__Host-gw_access={bob}; __Host-gw_access={alice}"),
            )],
            vec![
                ("authorization", format!("Bearer {alice}")),
                ("cookie", format!("a=1; __Host-gw_access={bob}")),
            ],
            vec![
                ("authorization", format!("Bearer {alice}")),
                ("cookie", format!("__Host-gw_access=\"{bob}\"")),
            ],
            // A non-bearer Authorization beside a good cookie is not ignored.
            vec![
                ("authorization", "Basic YWxpY2U6cHc=".to_owned()),
                ("cookie", format!("__Host-gw_access={alice}")),
            ],
        ] {
            let label = format!("{hs:?}");
            assert_eq!(send(hs).await.status, 401, "{proto:?} {label:.120}");
        }
        // The same ambiguity on an optional route is 401 too, never anonymous.
        let mut b = c.req("GET", "/maybe/x");
        b = b
            .header("cookie", format!("__Host-gw_access={alice}"))
            .header("cookie", format!("__Host-gw_access={bob}"));
        assert_eq!(c.send(b.body(empty()).unwrap()).await.status, 401);
    }
}

#[tokio::test]
async fn bearer_syntax_is_strict_on_http1() {
    let (gw, up) = setup().await;
    let t = gw.token("alice", "s-alice", &[]);
    let c = gw.client(Proto::H1);
    // hyper trims whitespace around a field value (RFC 9112 5), so those forms are the
    // same header as the plain one; everything else must be refused.
    let cases: Vec<(String, u16)> = vec![
        (format!("Bearer {t}"), 200),
        (format!("Bearer {t} "), 200),
        (format!("  Bearer {t}"), 200),
        (format!("Bearer {t}\t"), 200),
        (format!("Bearer  {t}"), 401),
        (format!("Bearer\t{t}"), 401),
        (format!("Bearer {t} junk"), 401),
        (format!("Bearer {t},"), 401),
        (format!("Bearer {t};"), 401),
        (format!("Bearer {t}, Bearer {t}"), 401),
        (format!("Bearer={t}"), 401),
        (format!("Bearer:{t}"), 401),
        (format!("Bearer{t}"), 401),
        (format!("Bearer \"{t}\""), 401),
        (format!("JWT {t}"), 401),
        (format!("Basic {t}"), 401),
        (t.clone(), 401),
        (format!("Bearer {t}."), 401),
        (format!("Bearer {t}\u{0}"), 400),
    ];
    let mut forwarded = 0;
    for (value, want) in &cases {
        let raw = format!(
            "GET /api/x HTTP/1.1\r\nHost: localhost\r\nAuthorization: {value}\r\nConnection: close\r\n\r\n"
        );
        let answer = c.raw_h1(raw.as_bytes(), Duration::from_secs(5)).await;
        let got = raw_status(&answer);
        if *want == 400 {
            assert!(got == 400 || got == 401, "{value:?}: {got}");
        } else {
            assert_eq!(got, *want, "{value:?}");
        }
        forwarded += usize::from(got == 200);
    }
    assert_eq!(up.count(), forwarded);
}

#[tokio::test]
async fn bearer_syntax_is_strict_on_http2() {
    let (gw, up) = setup().await;
    let t = gw.token("alice", "s-alice", &[]);
    let c = gw.client(Proto::H2);
    // HTTP/2 carries field values verbatim: no trimming, so surrounding whitespace is junk.
    let cases = [
        format!("Bearer  {t}"),
        format!("Bearer\t{t}"),
        format!("Bearer {t} junk"),
        format!("Bearer {t},x"),
        format!("bearer{t}"),
    ];
    for value in &cases {
        let req = c
            .req("GET", "/api/x")
            .header("authorization", value.as_str())
            .body(empty())
            .unwrap();
        let got = c.send(req).await.status.as_u16();
        assert!(got == 401 || got == 400, "{value:?}: {got}");
    }
    for value in [format!("Bearer {t} "), format!(" Bearer {t}")] {
        let req = c
            .req("GET", "/api/x")
            .header("authorization", value.as_str())
            .body(empty())
            .unwrap();
        let r = tokio::time::timeout(Duration::from_secs(10), send_lenient(&c, req)).await;
        // Either refused by the gateway, or the stream reset as malformed; never served.
        if let Ok(Some(status)) = r {
            assert!(status == 401 || status == 400, "{value:?}: {status}");
        }
    }
    assert_eq!(up.count(), 0);
}

/// Like `Client::send` but a stream reset or connection error is `None`, not a panic.
async fn send_lenient(c: &Client, req: http::Request<Full<Bytes>>) -> Option<u16> {
    let tls = c.tls().await;
    let io = hyper_util::rt::TokioIo::new(tls);
    match c.proto {
        Proto::H1 => {
            let (mut s, conn) = hyper::client::conn::http1::handshake(io).await.ok()?;
            tokio::spawn(conn);
            s.send_request(req).await.ok().map(|r| r.status().as_u16())
        }
        Proto::H2 => {
            let (mut s, conn) =
                hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                    .await
                    .ok()?;
            tokio::spawn(conn);
            s.send_request(req).await.ok().map(|r| r.status().as_u16())
        }
    }
}

// ---------------------------------------------------------------------------------------
// Identity headers: never from the client, whatever the spelling, position or framing.
// ---------------------------------------------------------------------------------------

/// Asserts the upstream saw no client identity: for each identity header, every spelling
/// that folds into it is absent, except the gateway's own one copy (`expected`).
fn assert_identity(got: &support::upstream::Recorded, expected: Option<(&str, &str)>, ctx: &str) {
    for name in got.names() {
        let folded = name.replace('_', "-");
        if IDENTITY.contains(&folded.as_str()) {
            assert_eq!(name, folded, "{ctx}: spelling {name} passed");
        }
    }
    match expected {
        None => {
            for h in IDENTITY {
                assert!(got.all(h).is_empty(), "{ctx}: {h} = {:?}", got.all(h));
            }
        }
        Some((user, roles)) => {
            assert_eq!(got.all("x-user-id"), vec![user], "{ctx}");
            assert_eq!(got.all("x-user-roles"), vec![roles], "{ctx}");
            assert_eq!(got.all("x-session-id"), vec!["s-alice"], "{ctx}");
        }
    }
}

#[tokio::test]
async fn identity_headers_in_every_spelling_and_position_are_stripped_on_http1() {
    let (gw, up) = setup().await;
    let token = gw.token("alice", "s-alice", &["user"]);
    let c = gw.client(Proto::H1);
    let spoof_lines = [
        "X-User-Id: admin",
        "x-user-id: admin",
        "X-USER-ID: admin",
        "X_User_Id: admin",
        "x_user_id: admin",
        "X-User_Id: admin",
        "x_USER-id: admin",
        "X-User-Id: admin, root",
        "X-User-Id:admin",
        "X-User-Id:    admin   ",
        "X-User-Id:\tadmin",
        "X-User-Id: ",
        "X-User-Roles: admin",
        "X_User_Roles: admin",
        "X-User-Roles: user",
        "X-User-Roles: admin",
        "x-user-roles: ,admin,",
        "X-Session-Id: s-admin",
        "X_SESSION_ID: s-admin",
    ];
    let all = spoof_lines.join("\r\n");
    for (path, tok) in [
        ("/public/x", None),
        ("/maybe/x", None),
        ("/maybe/x", Some(&token)),
        ("/api/x", Some(&token)),
    ] {
        let auth = tok
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        // Spoofs first (before Host), last (after everything), and on both sides.
        for layout in 0..3 {
            let raw = match layout {
                0 => format!(
                    "GET {path} HTTP/1.1\r\n{all}\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n"
                ),
                1 => format!(
                    "GET {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n{all}\r\n\r\n"
                ),
                _ => format!(
                    "GET {path} HTTP/1.1\r\n{all}\r\nHost: localhost\r\n{auth}{all}\r\nConnection: close\r\n\r\n"
                ),
            };
            let answer = c.raw_h1(raw.as_bytes(), Duration::from_secs(5)).await;
            assert_eq!(raw_status(&answer), 200, "{path} layout {layout}: {answer}");
            let ctx = format!("{path} layout {layout}");
            let expected = tok.map(|_| ("alice", "user"));
            assert_identity(&up.last(), expected, &ctx);
        }
    }
}

#[tokio::test]
async fn obs_fold_and_malformed_header_lines_never_smuggle_identity() {
    let (gw, up) = setup().await;
    let c = gw.client(Proto::H1);
    let lines = [
        // obs-fold: a continuation line (RFC 9112 5.2: reject or replace with SP).
        "X-Foo: a\r\n X-User-Id: admin",
        "X-Foo: a\r\n\tX-User-Id: admin",
        "X-User-Id: a\r\n admin",
        // Whitespace between name and colon (RFC 9112 5.1: must be rejected with 400).
        "X-User-Id : admin",
        "X-User-Id\t: admin",
        // A bare LF line ending and a bare CR inside.
        "X-Foo: a\nX-User-Id: admin",
        "X-Foo: a\rX-User-Id: admin",
        // NUL in the name.
        "X-User-Id\u{0}: admin",
    ];
    for line in lines {
        let before = up.count();
        let raw = format!(
            "GET /public/x HTTP/1.1\r\nHost: localhost\r\n{line}\r\nConnection: close\r\n\r\n"
        );
        let answer = c.raw_h1(raw.as_bytes(), Duration::from_secs(5)).await;
        let status = if answer.is_empty() {
            0
        } else {
            raw_status(&answer)
        };
        match status {
            0 | 400 => assert_eq!(up.count(), before, "{line:?}: refused yet forwarded"),
            200 => assert_identity(&up.last(), None, &format!("{line:?}")),
            other => panic!("{line:?}: unexpected {other}: {answer}"),
        }
    }
}

#[tokio::test]
async fn identity_headers_are_stripped_on_http2_in_every_spelling() {
    let (gw, up) = setup().await;
    let token = gw.token("alice", "s-alice", &["user"]);
    let c = gw.client(Proto::H2);
    for (path, tok) in [
        ("/public/x", None),
        ("/maybe/x", None),
        ("/maybe/x", Some(&token)),
        ("/api/x", Some(&token)),
    ] {
        let mut b = c.req("GET", path);
        for (n, v) in [
            ("x-user-id", "admin"),
            ("x_user_id", "admin"),
            ("x-user_id", "admin"),
            ("x-user-roles", "admin"),
            ("x-user-roles", "root"),
            ("x_user_roles", "admin"),
            ("x-session-id", "s-admin"),
            ("x_session_id", "s-admin"),
            ("x-user-id", " admin "),
        ] {
            b = b.header(n, v);
        }
        if let Some(t) = tok {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        let r = c.send(b.body(empty()).unwrap()).await;
        assert_eq!(r.status, 200, "{path}");
        assert_identity(&up.last(), tok.map(|_| ("alice", "user")), path);
    }
}

#[tokio::test]
async fn upstream_response_headers_cannot_fake_gateway_headers() {
    // Informational about identity headers in responses (the contract does not forbid an
    // upstream from answering with them); strict about X-Request-Id and hop-by-hop.
    let (gw, _up) = setup().await;
    for proto in BOTH {
        let r = gw.client(proto).get("/public/set-identity", None).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.headers.get_all("x-request-id").iter().count(), 1);
        assert!(r.headers.get("x-foo").is_none(), "{proto:?}");
        eprintln!(
            "{proto:?}: response x-user-id from the upstream is {:?}",
            r.header("x-user-id")
        );
    }
}

// ---------------------------------------------------------------------------------------
// Connection: a client names headers to drop; it must never drop what the gateway sets.
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn connection_cannot_remove_what_the_gateway_sets() {
    let (gw, up) = setup().await;
    let token = gw.token("alice", "s-alice", &["user"]);
    let c = gw.client(Proto::H1);
    let named = "Host, X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host, X-Request-Id, \
                 X-User-Id, X-User-Roles, X-Session-Id, x_user_id, Cookie, keep-alive";
    let raw = format!(
        "GET /api/x HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
         Connection: {named}\r\nX-Request-Id: trace-42\r\nX-Forwarded-Proto: http\r\n\
         X-Forwarded-Host: evil\r\nCookie: theme=dark\r\nX-User-Id: admin\r\n\r\n"
    );
    let answer = c.raw_h1(raw.as_bytes(), Duration::from_secs(3)).await;
    assert_eq!(raw_status(&answer), 200, "{answer}");
    let got = up.last();
    assert_identity(&got, Some(("alice", "user")), "Connection names identity");
    assert_eq!(got.one("host").as_deref(), Some("localhost"));
    assert_eq!(got.one("x-forwarded-host").as_deref(), Some("localhost"));
    assert_eq!(got.one("x-forwarded-proto").as_deref(), Some("https"));
    assert_eq!(got.one("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    let rid = got.one("x-request-id").expect("x-request-id");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains(&format!("x-request-id: {}", rid.to_ascii_lowercase())),
        "response and upstream disagree on the request id: {rid} vs {answer}"
    );
    assert!(got.all("connection").is_empty());
}

#[tokio::test]
async fn connection_naming_the_token_never_yields_a_pass() {
    let (gw, up) = setup().await;
    let token = gw.token("alice", "s-alice", &["user"]);
    let c = gw.client(Proto::H1);
    for (path, header) in [
        ("/api/x", format!("Authorization: Bearer {token}")),
        ("/api/x", format!("Cookie: __Host-gw_access={token}")),
        ("/maybe/x", format!("Authorization: Bearer {token}")),
    ] {
        for named in ["Authorization", "Cookie", "authorization, cookie"] {
            let before = up.count();
            let raw = format!(
                "GET {path} HTTP/1.1\r\nHost: localhost\r\n{header}\r\nConnection: close, {named}\r\n\r\n"
            );
            let answer = c.raw_h1(raw.as_bytes(), Duration::from_secs(5)).await;
            let status = raw_status(&answer);
            let ctx = format!("{path} {header:.20} Connection: {named}");
            match status {
                // Dropped before authentication: the client gave its token up.
                401 => assert_eq!(up.count(), before, "{ctx}"),
                200 => {
                    let got = up.last();
                    assert!(
                        got.all("authorization").is_empty(),
                        "{ctx}: token forwarded"
                    );
                    let ids = got.all("x-user-id");
                    assert!(
                        ids.is_empty() || ids == ["alice"],
                        "{ctx}: identity {ids:?}"
                    );
                    assert!(
                        path == "/maybe/x" || ids == ["alice"],
                        "{ctx}: required route served without identity"
                    );
                }
                other => panic!("{ctx}: {other}"),
            }
        }
    }
}

#[tokio::test]
async fn connection_naming_content_length_does_not_desync_the_connection() {
    let probe = Probe::start(Duration::ZERO).await;
    let u = probe.url();
    let routes = [
        route("/public/", &u, "auth = \"public\""),
        route("/small/", &u, "auth = \"public\"\nmax_body = 1024"),
        route("/api/", &u, ""),
    ]
    .concat();
    let gw = TestGateway::start(MEMORY_SESSION, &routes).await;
    let c = gw.client(Proto::H1);
    // The body carries what looks like a second request; the client then sends a real
    // second (unauthenticated) request on the same connection.
    let body = "GET /api/smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let raw = format!(
        "POST /public/a HTTP/1.1\r\nHost: localhost\r\nConnection: Content-Length\r\n\
         Content-Length: {}\r\n\r\n{body}GET /api/b HTTP/1.1\r\nHost: localhost\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    let answer = c.raw_h1(raw.as_bytes(), Duration::from_secs(5)).await;
    let statuses: Vec<&str> = answer
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &answer[i + 9..i + 12])
        .collect();
    assert_eq!(statuses.first(), Some(&"200"), "{answer}");
    if let Some(second) = statuses.get(1) {
        assert_eq!(*second, "401", "{answer}");
    }
    let seen = probe.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].target, "/public/a");
    assert_eq!(seen[0].body_len, body.len());
    assert!(seen[0].body_complete);

    // Over the route's limit with the length hidden from the gateway: 413 or a cut body,
    // never a whole one.
    let big = "x".repeat(4096);
    let raw = format!(
        "POST /small/a HTTP/1.1\r\nHost: localhost\r\nConnection: close, Content-Length\r\n\
         Content-Length: 4096\r\n\r\n{big}"
    );
    let answer = c.raw_h1(raw.as_bytes(), Duration::from_secs(5)).await;
    let status = if answer.is_empty() {
        0
    } else {
        raw_status(&answer)
    };
    assert_ne!(status, 200, "{answer:.200}");
    for s in probe.seen().iter().filter(|s| s.target == "/small/a") {
        assert!(
            !(s.body_complete && s.body_len == 4096),
            "a 4096-byte body passed a 1024 limit"
        );
    }
}

#[tokio::test]
async fn te_and_connection_upgrade_without_upgrade_are_not_forwarded() {
    let (gw, up) = setup().await;
    let c = gw.client(Proto::H1);
    for extra in [
        "Connection: close, upgrade\r\n",
        "Connection: close\r\nTE: chunked\r\n",
        "Connection: close\r\nTE: trailers, deflate\r\n",
        "Connection: close, TE\r\nTE: trailers\r\n",
        "Connection: close\r\nUpgrade: websocket\r\n",
        "Connection: close\r\nProxy-Connection: keep-alive\r\nKeep-Alive: timeout=99\r\n",
    ] {
        let raw = format!("GET /public/x HTTP/1.1\r\nHost: localhost\r\n{extra}\r\n");
        let answer = c.raw_h1(raw.as_bytes(), Duration::from_secs(5)).await;
        assert_eq!(raw_status(&answer), 200, "{extra:?}: {answer}");
        let got = up.last();
        for h in [
            "connection",
            "upgrade",
            "te",
            "keep-alive",
            "proxy-connection",
        ] {
            assert!(got.all(h).is_empty(), "{extra:?}: {h} = {:?}", got.all(h));
        }
    }
}

/// h2c upgrade smuggling (Bishop Fox, 2020): a proxy that passes `Upgrade: h2c` to a
/// backend that honours it hands the client a raw tunnel to the backend, past every
/// later authorisation check. Only WebSocket upgrades may pass.
#[tokio::test]
async fn upgrade_to_h2c_is_not_honoured() {
    let sw = Switcher::start().await;
    let routes = [
        route("/sw/", &sw.url(), "auth = \"public\""),
        route("/swauth/", &sw.url(), ""),
    ]
    .concat();
    let gw = TestGateway::start(MEMORY_SESSION, &routes).await;
    gw.create_session("s-alice", "alice", None).await;
    let token = gw.token("alice", "s-alice", &[]);
    let c = gw.client(Proto::H1);
    for (path, auth) in [
        ("/sw/x", String::new()),
        ("/swauth/x", format!("Authorization: Bearer {token}\r\n")),
    ] {
        for (conn, upgrade) in [
            ("Upgrade, HTTP2-Settings", "h2c"),
            ("Upgrade", "h2c"),
            ("upgrade", "H2C"),
            ("Upgrade", "h2"),
            ("Upgrade, HTTP2-Settings", "h2c, websocket"),
        ] {
            let raw = format!(
                "GET {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: {conn}\r\n\
                 Upgrade: {upgrade}\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n\
                 PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
            );
            let answer = c.raw_h1(raw.as_bytes(), Duration::from_secs(3)).await;
            let ctx = format!("{path} Upgrade: {upgrade}");
            assert!(
                !answer.contains("TUNNEL-OPEN") && !answer.starts_with("HTTP/1.1 101"),
                "{ctx}: the gateway opened a tunnel to the backend: {answer:.300}"
            );
        }
    }
    for head in sw.heads() {
        let lower = head.to_ascii_lowercase();
        assert!(
            !lower.contains("upgrade: h2"),
            "the backend was offered an h2 upgrade:\n{head}"
        );
        assert!(!lower.contains("http2-settings"), "{head}");
    }
}

#[tokio::test]
async fn websocket_upgrade_needs_authentication_first() {
    let sw = Switcher::start().await;
    let gw = TestGateway::start(MEMORY_SESSION, &route("/swauth/", &sw.url(), "")).await;
    let c = gw.client(Proto::H1);
    let raw = "GET /swauth/ws HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\n\
               Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
               Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    let answer = c.raw_h1(raw.as_bytes(), Duration::from_secs(3)).await;
    assert_eq!(raw_status(&answer), 401, "{answer}");
    assert!(!answer.contains("TUNNEL-OPEN"));
    assert!(sw.heads().is_empty());
}

/// The failure cache (a bad signature is remembered by the token's SHA-256, so the same junk
/// sent again costs no second signature check) never refuses another token: not the real
/// token with the same header and payload, not before it and not after it.
#[tokio::test]
async fn a_remembered_bad_signature_never_refuses_the_real_token() {
    let (gw, up) = setup().await;
    let key = forge::ed_key(gw.dir.path());
    let payload = forge::claims_json("alice", "s-alice", "");
    let good = forge::signed(ED_HEADER, &payload, &key, Algorithm::EdDSA);
    let input = forge::signing_input(ED_HEADER, &payload);
    let mut sig = good.rsplit('.').next().unwrap().as_bytes().to_vec();
    // The first character: the last one may only hold padding bits.
    sig[0] = if sig[0] == b'A' { b'B' } else { b'A' };
    let bad = format!("{input}.{}", String::from_utf8(sig).unwrap());
    for proto in BOTH {
        for round in 0..3 {
            assert_eq!(
                status(&gw, proto, "/api/x", &bad).await,
                401,
                "{proto:?} {round}"
            );
        }
        assert_eq!(status(&gw, proto, "/api/x", &good).await, 200, "{proto:?}");
        assert_eq!(status(&gw, proto, "/api/x", &bad).await, 401, "{proto:?}");
        assert_eq!(status(&gw, proto, "/api/x", &good).await, 200, "{proto:?}");
    }
    assert_eq!(up.count(), 4);
}
