//! Keys fetched from `jwt.jwks_url`, end to end over TLS: a token must name its key by `kid`
//! (a token without one is 401, and is never tried against the fetched keys), and unknown kids
//! fetch the document again at most once per interval.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use jsonwebtoken::Algorithm;
use support::client::BOTH;
use support::forge;
use support::gateway::{base_toml, route, TestGateway, MEMORY_SESSION};
use support::upstream::Upstream;

/// A JWKS endpoint on loopback that counts its fetches.
struct JwksServer {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
}

impl JwksServer {
    async fn start(body: String) -> JwksServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (body, counter) = (body.clone(), counter.clone());
                let svc = service_fn(move |_req| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let resp = http::Response::builder()
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from(body.clone())))
                        .unwrap();
                    async move { Ok::<_, Infallible>(resp) }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc),
                );
            }
        });
        JwksServer { addr, hits }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// The Ed25519 public key in `dir/signing.pub.pem` as a JWK named `kid`.
fn ed_jwk(dir: &std::path::Path, kid: &str) -> serde_json::Value {
    let pem = std::fs::read_to_string(dir.join("signing.pub.pem")).unwrap();
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    use base64::Engine as _;
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    // SPKI for Ed25519: 12 bytes of header, then the 32-byte key.
    assert_eq!(der.len(), 44);
    serde_json::json!({
        "kty": "OKP", "crv": "Ed25519", "x": forge::b64(&der[12..]),
        "kid": kid, "alg": "EdDSA", "use": "sig",
    })
}

#[tokio::test]
async fn with_keys_from_a_url_a_token_without_kid_is_401() {
    let up = Upstream::start().await;
    // The issuer: its signing key is published in the JWKS as "k1".
    let issuer = TestGateway::start(MEMORY_SESSION, &route("/x/", &up.url(), "")).await;
    let jwks = JwksServer::start(
        serde_json::json!({ "keys": [ed_jwk(issuer.dir.path(), "k1")] }).to_string(),
    )
    .await;
    // The gateway under test has no configured verification key: only the JWKS.
    let jwt_extra = format!("jwks_url = \"http://{}/jwks.json\"", jwks.addr);
    let configured = "keys = [{ kid = \"k1\", public_key = \"signing.pub.pem\" }]\n";
    let toml = base_toml(&jwt_extra).replace(configured, "");
    assert!(!toml.contains("public_key"));
    let gw = TestGateway::start_toml(&format!(
        "{toml}\n{MEMORY_SESSION}\n{}",
        route("/api/", &up.url(), "")
    ))
    .await;
    gw.create_session("s-alice", "alice", None).await;
    let fetched = jwks.hits();
    assert_eq!(fetched, 1, "fetched once at start");

    let key = forge::ed_key(issuer.dir.path());
    let payload = forge::claims_json("alice", "s-alice", "");
    let named = forge::signed(forge::ED_HEADER, &payload, &key, Algorithm::EdDSA);
    let kidless = forge::signed(
        r#"{"alg":"EdDSA","typ":"JWT"}"#,
        &payload,
        &key,
        Algorithm::EdDSA,
    );
    for proto in BOTH {
        let c = gw.client(proto);
        assert_eq!(c.get("/api/x", Some(&named)).await.status, 200, "{proto:?}");
        let before = up.count();
        let r = c.get("/api/x", Some(&kidless)).await;
        assert_eq!(r.status, 401, "{proto:?}: the same key without kid");
        assert_eq!(r.error_code(), "invalid_token");
        assert!(r
            .header("www-authenticate")
            .unwrap()
            .contains("invalid_token"));
        assert_eq!(up.count(), before, "nothing forwarded");
    }
    assert_eq!(jwks.hits(), fetched, "a token without kid fetches nothing");

    // Unknown kids: one fetch for the first, none for the next ones within the interval.
    let c = gw.client(support::client::Proto::H1);
    for kid in ["k2", "k3", "k4"] {
        let header = format!(r#"{{"alg":"EdDSA","typ":"JWT","kid":"{kid}"}}"#);
        let t = forge::signed(&header, &payload, &key, Algorithm::EdDSA);
        assert_eq!(c.get("/api/x", Some(&t)).await.status, 401, "{kid}");
    }
    assert_eq!(jwks.hits(), fetched + 1, "at most one fetch per interval");
}
