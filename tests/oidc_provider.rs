//! The OpenID provider the OIDC tests run (tests/oidc/provider.mjs, panva's oidc-provider)
//! and the browser-like client that logs in at it, checked on their own, without the gateway:
//! discovery, the code flow with PKCE through the provider's login and consent pages, ID
//! tokens that verify with its JWKS and with the key the tests hold, a wrong password, and a
//! back-channel logout token POSTed to an HTTPS listener that uses the gateway's development
//! certificate (trusted by the provider through NODE_EXTRA_CA_CERTS).

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{json, Value};
use support::oidc::{
    free_port, jwt_claims, jwt_header, pkce_verifier, query_param, random_token, verify_with_jwks,
    verify_with_key, Account, Browser, Provider, ProviderOpts,
};

const SCOPE: &str = "openid email profile groups";
const BACKCHANNEL_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// A relying party origin nothing listens on: navigations stop before reaching it.
fn unreachable_origin() -> String {
    format!("https://127.0.0.1:{}", free_port())
}

/// Logs `account` in through the provider's pages and returns (callback URL, verifier, state,
/// nonce).
async fn login(
    provider: &Provider,
    browser: &Browser,
    account: &Account,
) -> (String, String, String, String) {
    let (verifier, state, nonce) = (pkce_verifier(), random_token(), random_token());
    let url = provider.authorize_url(SCOPE, &state, &nonce, &verifier);
    let redirect_uri = provider.redirect_uri();
    let page = browser
        .login_at_provider(
            url.as_str(),
            &account.login,
            &account.password,
            Some(&redirect_uri),
        )
        .await;
    let callback = page.stopped_url().to_owned();
    (callback, verifier, state, nonce)
}

#[tokio::test]
async fn discovery_names_the_endpoints_and_back_channel_logout() {
    let provider = Provider::start(ProviderOpts::new(&unreachable_origin()));
    assert!(provider.issuer().starts_with("http://127.0.0.1:"));
    let d = provider.get_json(&provider.discovery_url()).await;
    assert_eq!(d["issuer"], provider.issuer());
    for (key, path) in [
        ("jwks_uri", "/jwks"),
        ("authorization_endpoint", "/auth"),
        ("token_endpoint", "/token"),
        ("userinfo_endpoint", "/me"),
        ("end_session_endpoint", "/session/end"),
    ] {
        assert_eq!(d[key], provider.url(path), "{key} in {d:#}");
    }
    assert_eq!(d["backchannel_logout_supported"], true);
    assert_eq!(d["backchannel_logout_session_supported"], true);
    assert_eq!(d["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(d["id_token_signing_alg_values_supported"], json!(["RS256"]));
    for scope in ["openid", "email", "profile", "groups"] {
        assert!(
            d["scopes_supported"]
                .as_array()
                .unwrap()
                .contains(&json!(scope)),
            "{scope} in {d:#}"
        );
    }
    let jwks = provider.get_json(d["jwks_uri"].as_str().unwrap()).await;
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{jwks:#}");
    assert_eq!(keys[0]["kid"], provider.kid());
    assert_eq!(keys[0]["kty"], "RSA");
    assert!(keys[0].get("d").is_none(), "the JWKS leaks the private key");
}

#[tokio::test]
async fn code_flow_with_pkce_gives_an_id_token_that_verifies() {
    let provider = Provider::start(ProviderOpts::new(&unreachable_origin()));
    let alice = Account::alice();
    let browser = Browser::new();
    let (callback, verifier, state, nonce) = login(&provider, &browser, &alice).await;

    // The callback: the registered redirect URI with a code, the same state, and iss.
    assert!(
        callback.starts_with(&format!("{}?", provider.redirect_uri())),
        "{callback}"
    );
    let code = query_param(&callback, "code").expect("a code");
    assert_eq!(query_param(&callback, "state").as_deref(), Some(&*state));
    assert_eq!(
        query_param(&callback, "iss").as_deref(),
        Some(provider.issuer())
    );
    // The hops went through the login and consent pages, with cookies set on the way.
    let history = browser.history();
    assert!(
        history.iter().any(|h| h.url.contains("/interaction/")),
        "{history:#?}"
    );
    assert!(
        history
            .iter()
            .any(|h| h.set_cookies.iter().any(|c| c.starts_with("_session="))),
        "{history:#?}"
    );

    let (status, tokens) = provider.exchange_code(&code, &verifier).await;
    assert_eq!(status, 200, "{tokens:#}");
    let id_token = tokens["id_token"].as_str().expect("an ID token");
    assert_eq!(jwt_header(id_token)["alg"], "RS256");
    assert_eq!(jwt_header(id_token)["kid"], provider.kid());

    let jwks = provider.get_json(&provider.url("/jwks")).await;
    let claims = verify_with_jwks(id_token, &jwks).expect("verifies with the provider's JWKS");
    let same = verify_with_key(id_token, &provider.decoding_key()).expect("and with its key");
    assert_eq!(claims, same);
    assert_eq!(claims["iss"], provider.issuer());
    assert_eq!(claims["aud"], provider.client_id());
    assert_eq!(claims["nonce"], nonce);
    assert_eq!(claims["sub"], alice.sub);
    assert_eq!(claims["email"], alice.email);
    assert_eq!(claims["groups"], json!(alice.groups));
    assert_eq!(claims["name"], alice.name);
    assert!(
        claims["sid"].as_str().is_some_and(|s| !s.is_empty()),
        "{claims:#}"
    );

    // The provider's session cookie logs the same browser in again with no page at all...
    let (verifier2, state2, nonce2) = (pkce_verifier(), random_token(), random_token());
    let again = browser
        .get_until(
            &provider.authorize_url(SCOPE, &state2, &nonce2, &verifier2),
            &provider.redirect_uri(),
        )
        .await;
    let callback2 = again.stopped_url();
    assert_eq!(query_param(callback2, "state").as_deref(), Some(&*state2));
    let (status, tokens2) = provider
        .exchange_code(&query_param(callback2, "code").unwrap(), &verifier2)
        .await;
    assert_eq!(status, 200, "{tokens2:#}");
    let claims2 = jwt_claims(tokens2["id_token"].as_str().unwrap());
    assert_eq!(claims2["sid"], claims["sid"], "one provider session");
    assert_eq!(claims2["nonce"], nonce2);

    // A code is good once; its replay revokes the grant it came from, so the next
    // authorization asks for consent again (but not for a login: the session stays).
    let (status, replay) = provider.exchange_code(&code, &verifier).await;
    assert_eq!(status, 400, "{replay:#}");
    assert_eq!(replay["error"], "invalid_grant");
    let page = browser
        .get_until(
            &provider.authorize_url(SCOPE, "s", "n", &pkce_verifier()),
            &provider.redirect_uri(),
        )
        .await;
    assert!(page.stopped.is_none());
    assert!(page.login_form().is_none(), "{}", page.body);
    assert!(page.consent_form().is_some(), "{}", page.body);

    // ... and a browser without it sees the login page.
    let other = Browser::new();
    let page = other
        .get_until(
            &provider.authorize_url(SCOPE, "s", "n", &pkce_verifier()),
            &provider.redirect_uri(),
        )
        .await;
    assert!(page.stopped.is_none());
    assert!(page.login_form().is_some(), "{}", page.body);
}

#[tokio::test]
async fn a_wrong_password_does_not_log_in() {
    let provider = Provider::start(ProviderOpts::new(&unreachable_origin()));
    let alice = Account::alice();
    let browser = Browser::new();
    let verifier = pkce_verifier();
    let url = provider.authorize_url(SCOPE, "st", "no", &verifier);
    let redirect_uri = provider.redirect_uri();
    for (login, password) in [
        ("alice", "not-alice-password"),
        ("alice", ""),
        ("mallory", "alice-password"),
        ("bob", "alice-password"),
    ] {
        let page = browser
            .login_at_provider(url.as_str(), login, password, Some(&redirect_uri))
            .await;
        assert!(page.stopped.is_none(), "{login}/{password} logged in");
        assert!(page.login_form().is_some(), "{}", page.body);
        assert!(
            page.body.contains("Invalid login or password"),
            "{}",
            page.body
        );
    }
    assert!(provider.log().contains("login failed"));
    assert!(
        browser
            .history()
            .iter()
            .all(|h| !h.location.as_deref().unwrap_or("").contains("code=")),
        "{:#?}",
        browser.history()
    );
    // The right password on the same page still works.
    let page = browser.get(&url).await;
    let page = browser
        .login_at_provider(page, &alice.login, &alice.password, Some(&redirect_uri))
        .await;
    assert!(query_param(page.stopped_url(), "code").is_some());
}

#[tokio::test]
async fn sign_makes_tokens_the_providers_jwks_verifies() {
    let provider = Provider::start(ProviderOpts::new(&unreachable_origin()));
    let jwks = provider.get_json(&provider.url("/jwks")).await;
    let token = provider.sign(
        json!({}),
        json!({ "iss": provider.issuer(), "sub": "forged" }),
    );
    assert_eq!(jwt_header(&token)["kid"], provider.kid());
    let claims = verify_with_jwks(&token, &jwks).expect("verifies");
    assert_eq!(claims["sub"], "forged");

    let id = provider.forge_id_token(&Account::bob(), json!({ "nonce": "n1" }));
    let claims = verify_with_jwks(&id, &jwks).expect("verifies");
    assert_eq!(claims["aud"], provider.client_id());
    assert_eq!(claims["groups"], json!(["staff"]));
    assert_eq!(claims["nonce"], "n1");

    let logout = provider.forge_logout_token(Some("sub-bob"), Some("sid-1"), json!({}));
    assert_eq!(jwt_header(&logout)["typ"], "logout+jwt");
    let claims = verify_with_jwks(&logout, &jwks).expect("verifies");
    assert!(claims["events"].get(BACKCHANNEL_EVENT).is_some());

    // Header members can be replaced or dropped, and a tampered payload fails.
    let no_kid = provider.sign(json!({ "kid": null, "typ": "at+jwt" }), json!({}));
    assert!(jwt_header(&no_kid).get("kid").is_none());
    assert_eq!(jwt_header(&no_kid)["typ"], "at+jwt");
    let mut parts: Vec<&str> = token.split('.').collect();
    let other = provider.sign(json!({}), json!({ "sub": "someone-else" }));
    parts[1] = other.split('.').nth(1).unwrap();
    assert!(verify_with_jwks(&parts.join("."), &jwks).is_err());
}

/// What the listener received.
#[derive(Debug, Clone)]
struct Received {
    method: String,
    path: String,
    content_type: String,
    body: String,
}

/// A tiny HTTPS server with the gateway's development certificate that records the requests
/// it gets and answers 200.
struct BackchannelListener {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl BackchannelListener {
    async fn start(cert: &std::path::Path, key: &std::path::Path) -> BackchannelListener {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .unwrap()
            .map(|c| c.unwrap())
            .collect();
        let key = PrivateKeyDer::from_pem_file(key).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let rec = received.clone();
        let task = tokio::spawn(async move {
            // Bounded: a test makes a handful of connections.
            for _ in 0..64 {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let rec = rec.clone();
                tokio::spawn(async move {
                    let Ok(Ok(tls)) =
                        tokio::time::timeout(Duration::from_secs(5), acceptor.accept(tcp)).await
                    else {
                        return;
                    };
                    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let rec = rec.clone();
                        async move {
                            let method = req.method().to_string();
                            let path = req.uri().path().to_owned();
                            let content_type = req
                                .headers()
                                .get("content-type")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_owned();
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            rec.lock().unwrap().push(Received {
                                method,
                                path,
                                content_type,
                                body: String::from_utf8_lossy(&body).into_owned(),
                            });
                            Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::new())))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        BackchannelListener {
            addr,
            received,
            task,
        }
    }

    fn origin(&self) -> String {
        format!("https://127.0.0.1:{}", self.addr.port())
    }
}

impl Drop for BackchannelListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn rp_initiated_logout_posts_a_logout_token_over_https() {
    // The gateway's own development certificate (self-signed, 127.0.0.1 and localhost).
    let certs = tempfile::tempdir().unwrap();
    let material = gateway::cli::keygen::write_dev_material(certs.path(), false).unwrap();
    let listener = BackchannelListener::start(&material.cert, &material.key).await;
    let opts = ProviderOpts::new(&listener.origin()).trust(&material.cert);
    let bcl_uri = opts.backchannel_logout_uri().unwrap();
    let provider = Provider::start(opts);

    let alice = Account::alice();
    let browser = Browser::new();
    let (callback, verifier, _, _) = login(&provider, &browser, &alice).await;
    let (status, tokens) = provider
        .exchange_code(&query_param(&callback, "code").unwrap(), &verifier)
        .await;
    assert_eq!(status, 200, "{tokens:#}");
    let id_token = tokens["id_token"].as_str().unwrap();
    let sid = jwt_claims(id_token)["sid"].as_str().unwrap().to_owned();

    // RP-initiated logout, as the gateway will send the browser there.
    let post_logout = format!("{}/", listener.origin());
    let mut end_session = reqwest::Url::parse(&provider.url("/session/end")).unwrap();
    end_session
        .query_pairs_mut()
        .append_pair("id_token_hint", id_token)
        .append_pair("post_logout_redirect_uri", &post_logout)
        .append_pair("state", "logout-state");
    let page = browser
        .logout_at_provider(end_session.as_str(), Some(&listener.origin()))
        .await;
    let back = page.stopped_url();
    assert!(back.starts_with(&post_logout), "{back}");
    assert_eq!(query_param(back, "state").as_deref(), Some("logout-state"));

    // The provider POSTed before it answered the confirmation.
    let received = listener.received.lock().unwrap().clone();
    assert_eq!(received.len(), 1, "{received:?}\n{}", provider.log());
    let r = &received[0];
    assert_eq!(r.method, "POST");
    assert_eq!(format!("{}{}", listener.origin(), r.path), bcl_uri);
    assert_eq!(r.content_type, "application/x-www-form-urlencoded");
    let body = &r.body;
    let pairs: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    assert_eq!(pairs.len(), 1, "{body}");
    assert_eq!(pairs[0].0, "logout_token");
    let logout_token = &pairs[0].1;

    let jwks = provider.get_json(&provider.url("/jwks")).await;
    let claims: Value = verify_with_jwks(logout_token, &jwks).expect("verifies with the JWKS");
    assert_eq!(claims["iss"], provider.issuer());
    assert_eq!(claims["aud"], provider.client_id());
    assert_eq!(claims["sub"], alice.sub);
    assert_eq!(claims["sid"], sid);
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    assert!(claims["iat"].is_u64());
    assert_eq!(claims["events"], json!({ BACKCHANNEL_EVENT: {} }));
    assert!(claims.get("nonce").is_none(), "{claims:#}");
    assert!(provider.log().contains("backchannel.success"));
    assert!(provider.log().contains("POST /session/end/confirm"));

    // The provider session is gone: the next authorization asks for a login again.
    let page = browser
        .get_until(
            &provider.authorize_url(SCOPE, "s", "n", &pkce_verifier()),
            &provider.redirect_uri(),
        )
        .await;
    assert!(page.login_form().is_some(), "{}", page.body);
}

#[tokio::test]
async fn back_channel_logout_fails_without_the_certificate_trusted() {
    // The same as above but the provider is not told to trust the listener's certificate: the
    // TLS handshake fails, the provider logs it and still logs the browser out.
    let certs = tempfile::tempdir().unwrap();
    let material = gateway::cli::keygen::write_dev_material(certs.path(), false).unwrap();
    let listener = BackchannelListener::start(&material.cert, &material.key).await;
    let provider = Provider::start(ProviderOpts::new(&listener.origin()));

    let browser = Browser::new();
    let (callback, verifier, _, _) = login(&provider, &browser, &Account::bob()).await;
    let (status, tokens) = provider
        .exchange_code(&query_param(&callback, "code").unwrap(), &verifier)
        .await;
    assert_eq!(status, 200, "{tokens:#}");
    let mut end_session = reqwest::Url::parse(&provider.url("/session/end")).unwrap();
    end_session
        .query_pairs_mut()
        .append_pair("id_token_hint", tokens["id_token"].as_str().unwrap())
        .append_pair(
            "post_logout_redirect_uri",
            &format!("{}/", listener.origin()),
        );
    let page = browser
        .logout_at_provider(end_session.as_str(), Some(&listener.origin()))
        .await;
    assert!(page.stopped_url().starts_with(&listener.origin()));
    assert!(listener.received.lock().unwrap().is_empty());
    let log = provider.log();
    assert!(
        log.contains("event backchannel.error RequestError: self-signed certificate"),
        "{log}"
    );
    assert!(!log.contains("backchannel.success"), "{log}");
}
