//! Identities from elsewhere (docs/contract.md section 9) against a real OpenID provider
//! (oidc-provider under node, `tests/support/oidc.rs`): the browser login through the
//! provider's own pages, its refusals (another browser, a changed `state`, a second callback,
//! a replayed code, a wrong `nonce`, `return_to` off-site), back-channel logout seen by a
//! second instance, external service tokens on `[[issuer]]` routes, `claims_to_headers`, and
//! the signed identity assertion verified with the gateway's JWKS.

mod support;

use std::time::Duration;

use serde_json::json;
use support::auth::call;
use support::client::Proto;
use support::gateway::{now, redis_session, route, TestGateway};
use support::oidc::{jwt_claims, jwt_header, with_query_param, Provider, ProviderOpts};
use support::sso::{start, start_with, BACKCHANNEL, CALLBACK};

#[tokio::test]
async fn whole_login_then_the_session_works_like_any_other() {
    let s = start().await;
    let b = s.browser();
    let page = s.login(&b, "/api/app?x=1").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("url=/api/app?x=1"), "{}", page.body);
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(page.header("cache-control"), Some("no-store"));
    let cookies = page.hops.last().unwrap().set_cookies.join("\n");
    assert!(cookies.contains("__Host-gw_access="), "{cookies}");
    assert!(cookies.contains("SameSite=Strict"), "{cookies}");
    assert!(
        cookies.contains("__Host-gw_oidc=; Path=/; Max-Age=0"),
        "{cookies}"
    );

    // The page's own navigation: the cookies go with it.
    let app = b.get(&s.url("/api/app?x=1")).await;
    assert_eq!(app.status, 200, "{}", app.body);
    let seen = s.up.last();
    assert_eq!(seen.one("x-user-id").as_deref(), Some("sso:sub-alice"));
    assert_eq!(seen.one("x-user-roles").as_deref(), Some("admins,staff"));
    assert!(b.get(&s.url("/admin/x")).await.status == 200);

    // Refresh, session list and kick, as for a password login.
    let c = s.gw.client(Proto::H1);
    let access = s.access_cookie(&b).expect("access cookie");
    let list = call(&c, "GET", "/auth/sessions", None, Some(&access), &[]).await;
    assert_eq!(list.status, 200);
    let sessions = list.json();
    assert_eq!(sessions.as_array().unwrap().len(), 1, "{sessions}");
    let sid = sessions[0]["session_id"].as_str().unwrap().to_owned();
    let refresh = s.refresh_cookie(&b).expect("refresh cookie");
    // The login is bound to the device cookie it set (bind_refresh = "device").
    let jar = b.cookie_header(&s.url("/auth/refresh")).unwrap();
    let device = jar
        .split("; ")
        .find(|c| c.starts_with("__Host-gw_device="))
        .expect("device cookie")
        .to_owned();
    let r = call(
        &c,
        "POST",
        "/auth/refresh",
        Some(json!({"refresh_token": refresh})),
        None,
        &[("cookie", &device)],
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let kicked = call(
        &c,
        "DELETE",
        &format!("/auth/sessions/{sid}"),
        None,
        Some(&access),
        &[],
    )
    .await;
    assert_eq!(kicked.status, 204);
    assert_eq!(b.get(&s.url("/api/app")).await.status, 401);
}

#[tokio::test]
async fn a_callback_from_another_browser_a_changed_state_or_a_second_time_is_400() {
    let s = start().await;
    let a = s.browser();
    let callback = s.to_callback(&a, "/api/", "alice").await;

    // Another browser (no login cookie): 400, and A's login is untouched.
    let other = s.browser();
    let page = other.get(&callback).await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert_eq!(page.json()["error"], "login_failed");
    assert!(s.access_cookie(&other).is_none());

    // A changed state: 400, and the login is spent.
    let state = support::oidc::query_param(&callback, "state").unwrap();
    let tampered = with_query_param(&callback, "state", &format!("{state}x"));
    assert_eq!(a.get(&tampered).await.status, 400);
    assert_eq!(a.get(&callback).await.status, 400);
    assert!(s.access_cookie(&a).is_none());

    // A fresh login completes once; its callback a second time is 400.
    let callback = s.to_callback(&a, "/api/", "alice").await;
    assert_eq!(a.get(&callback).await.status, 200);
    assert_eq!(a.get(&callback).await.status, 400);
}

#[tokio::test]
async fn a_replayed_code_logs_no_one_in() {
    let s = start().await;
    let victim = s.browser();
    let used = s.to_callback(&victim, "/api/", "alice").await;
    assert_eq!(victim.get(&used).await.status, 200);
    // An attacker begins a login of their own and brings the victim's (used) code to it.
    let attacker = s.browser();
    let theirs = s.to_callback(&attacker, "/api/", "bob").await;
    let code = support::oidc::query_param(&used, "code").unwrap();
    let replay = with_query_param(&theirs, "code", &code);
    let page = attacker.get(&replay).await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(s.access_cookie(&attacker).is_none());
}

#[tokio::test]
async fn an_id_token_with_another_nonce_is_refused() {
    let s = start().await;
    let b = s.browser();
    // The authorization request is changed on its way to the provider: the ID token then
    // carries a nonce the gateway never made.
    let start_url = s.url("/auth/oidc/login?return_to=/api/");
    let at_provider = b.get_until(&start_url, s.provider.issuer()).await;
    let authorize = at_provider.stopped_url().to_owned();
    let changed = with_query_param(&authorize, "nonce", "attacker-chosen-nonce");
    let page = b
        .login_at_provider(
            changed.as_str(),
            "alice",
            "alice-password",
            Some(&s.url(CALLBACK)),
        )
        .await;
    let result = b.get(page.stopped_url()).await;
    assert_eq!(result.status, 400, "{}", result.body);
    assert!(s.access_cookie(&b).is_none());
}

#[tokio::test]
async fn return_to_off_site_goes_home() {
    let s = start().await;
    for off_site in [
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
    ] {
        let b = s.browser();
        let encoded: String = form_urlencoded::byte_serialize(off_site.as_bytes()).collect();
        let page = s.login(&b, &encoded).await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(page.body.contains("url=/\""), "{off_site}: {}", page.body);
        assert!(!page.body.contains("evil"), "{}", page.body);
    }
}

#[tokio::test]
async fn backchannel_logout_ends_the_session_on_every_instance() {
    let s = start().await;
    let b = s.browser();
    assert_eq!(s.login(&b, "/api/").await.status, 200);
    let access = s.access_cookie(&b).unwrap();
    let second = TestGateway::start_sharing_keys(
        &s.gw,
        &redis_session(&s.redis.url()),
        &route("/api/", &s.up.url(), ""),
    )
    .await;
    let c2 = second.client(Proto::H1);
    assert_eq!(c2.get("/api/x", Some(&access)).await.status, 200);

    // The user signs out at the provider, which tells the gateway over the back channel.
    let end = s.provider.url("/session/end");
    b.logout_at_provider(&end, None).await;
    assert!(
        s.provider
            .wait_log("backchannel.success", Duration::from_secs(5))
            .await,
        "{}",
        s.provider.log()
    );
    let mut status = http::StatusCode::OK;
    for _ in 0..40 {
        status = c2.get("/api/x", Some(&access)).await.status;
        if status == 401 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, 401, "the second instance still accepts the session");
    assert_eq!(b.get(&s.url("/api/x")).await.status, 401);
}

#[tokio::test]
async fn invalid_logout_tokens_are_400_and_revoke_nothing() {
    let s = start().await;
    let b = s.browser();
    assert_eq!(s.login(&b, "/api/").await.status, 200);
    let access = s.access_cookie(&b).unwrap();
    let c = s.gw.client(Proto::H1);
    let post = |token: String| {
        let c = &c;
        async move {
            let body = format!("logout_token={token}");
            let req = c
                .req("POST", BACKCHANNEL)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                .unwrap();
            c.send(req).await.status
        }
    };
    let p = &s.provider;
    let sub = Some("sub-alice");
    let other = {
        // Another provider's key, claiming to be this one.
        let mut o = ProviderOpts::new(&s.origin);
        o.kid = p.kid().to_owned();
        tokio::task::spawn_blocking(move || Provider::start(o))
            .await
            .unwrap()
    };
    let forged_elsewhere = {
        let mut claims = jwt_claims(&p.forge_logout_token(sub, None, json!({})));
        claims["iss"] = json!(p.issuer());
        other.sign(json!({"typ": "logout+jwt"}), claims)
    };
    for (what, token) in [
        (
            "nonce",
            p.forge_logout_token(sub, None, json!({"nonce": "n"})),
        ),
        (
            "aud",
            p.forge_logout_token(sub, None, json!({"aud": "someone-else"})),
        ),
        (
            "iss",
            p.forge_logout_token(sub, None, json!({"iss": other.issuer()})),
        ),
        (
            "events",
            p.forge_logout_token(sub, None, json!({"events": null})),
        ),
        ("no sid or sub", p.forge_logout_token(None, None, json!({}))),
        (
            "expired",
            p.forge_logout_token(sub, None, json!({"exp": now() - 3600})),
        ),
        (
            "issued an hour ago",
            p.forge_logout_token(sub, None, json!({"iat": now() - 3600})),
        ),
        ("signature", forged_elsewhere),
        (
            "an ID token",
            p.forge_id_token(&support::oidc::Account::alice(), json!({})),
        ),
    ] {
        assert_eq!(post(token).await, 400, "{what}");
        assert_eq!(
            c.get("/api/x", Some(&access)).await.status,
            200,
            "{what} revoked"
        );
    }
    // A valid one: 200 and the session is gone; the same token again: 400.
    let valid = p.forge_logout_token(sub, None, json!({}));
    assert_eq!(post(valid.clone()).await, 200);
    assert_eq!(c.get("/api/x", Some(&access)).await.status, 401);
    assert_eq!(post(valid).await, 400);
    // Not a form: 400.
    let r = call(
        &c,
        "POST",
        BACKCHANNEL,
        Some(json!({"logout_token": "x"})),
        None,
        &[],
    )
    .await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn service_tokens_pass_only_where_their_issuer_is_listed() {
    let s = start().await;
    let c = s.gw.client(Proto::H1);
    let token = s.service_token(json!({}));
    let mut req = c
        .req("GET", "/m2m/invoices")
        .header("authorization", format!("Bearer {token}"))
        .header("x-user-email", "forged@evil.test")
        .header("x_tenant", "forged");
    req = req.header("x-gateway-assertion", "forged");
    let r = c
        .send(
            req.body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let seen = s.up.last();
    assert_eq!(seen.one("x-user-id").as_deref(), Some("corp:svc-billing"));
    assert_eq!(seen.all("x-user-email"), ["billing@corp.test"]);
    assert_eq!(seen.all("x-tenant"), ["t-42"]);
    assert!(seen.all("x_tenant").is_empty());
    assert_eq!(seen.one("x-session-id"), None);
    let assertion = seen.one("x-gateway-assertion").unwrap();
    assert_ne!(assertion, "forged");

    // The same token where its issuer is not listed: 401.
    assert_eq!(c.get("/api/x", Some(&token)).await.status, 401);
    // The gateway's own token where only "corp" is listed: 401.
    let own = s.gw.token("alice", "s1", &[]);
    s.gw.create_session("s1", "alice", None).await;
    assert_eq!(c.get("/api/x", Some(&own)).await.status, 200);
    assert_eq!(c.get("/m2m/x", Some(&own)).await.status, 401);
    // Wrong audience, an unknown kid, a foreign key, no kid: 401.
    for (what, bad) in [
        ("aud", s.service_token(json!({"aud": "api"}))),
        (
            "kid",
            s.provider.sign(json!({"kid": "nope"}), jwt_claims(&token)),
        ),
        (
            "no kid",
            s.provider.sign(json!({"kid": null}), jwt_claims(&token)),
        ),
        ("exp", s.service_token(json!({"exp": now() - 3600}))),
    ] {
        assert_eq!(c.get("/m2m/x", Some(&bad)).await.status, 401, "{what}");
    }
}

#[tokio::test]
async fn the_assertion_verifies_with_the_gateway_jwks_and_is_no_access_token() {
    let s = start().await;
    let b = s.browser();
    assert_eq!(s.login(&b, "/api/").await.status, 200);
    assert_eq!(b.get(&s.url("/api/orders")).await.status, 200);
    let seen = s.up.last();
    let assertion = seen.one("x-gateway-assertion").expect("assertion");
    assert_eq!(
        seen.one("x-user-email").as_deref(),
        Some("alice@example.test")
    );

    let jwks = b.get(&s.url("/.well-known/jwks.json")).await.json();
    let claims = support::oidc::verify_with_jwks(&assertion, &jwks).expect("verifies");
    assert_eq!(jwt_header(&assertion)["typ"], "gateway-assertion+jwt");
    assert_eq!(claims["sub"], "sso:sub-alice");
    assert_eq!(claims["roles"], json!(["admins", "staff"]));
    assert_eq!(claims["idp"], "gateway");
    assert_eq!(claims["route"], "/api");
    assert_eq!(claims["aud"], "/api");
    assert_eq!(claims["iss"], "gateway");
    assert_eq!(claims["sid"], seen.one("x-session-id").unwrap().as_str());
    let life = claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap();
    assert!(life > 0 && life <= 600, "{life}");

    // A leaked assertion is no access token.
    let c = s.gw.client(Proto::H1);
    assert_eq!(c.get("/api/x", Some(&assertion)).await.status, 401);
}

#[tokio::test]
async fn an_issuer_requiring_a_session_needs_a_live_one_of_the_same_user() {
    let s = start_with("required").await;
    let c = s.gw.client(Proto::H1);
    // Sessions created by another service (the admin API here) for the external user.
    s.gw.create_session("svc-session", "corp:svc-billing", Some(&["billing"]))
        .await;
    s.gw.create_session("alice-session", "alice", None).await;
    let ok = s.service_token(json!({"sid": "svc-session"}));
    assert_eq!(c.get("/m2m/x", Some(&ok)).await.status, 200);
    let seen = s.up.last();
    assert_eq!(seen.one("x-session-id").as_deref(), Some("svc-session"));
    assert_eq!(seen.one("x-user-roles").as_deref(), Some("billing"));
    // Another user's session, no session claim, a session that is gone: 401.
    let theirs = s.service_token(json!({"sid": "alice-session"}));
    assert_eq!(c.get("/m2m/x", Some(&theirs)).await.status, 401);
    assert_eq!(
        c.get("/m2m/x", Some(&s.service_token(json!({}))))
            .await
            .status,
        401
    );
    assert_eq!(s.gw.delete_session("svc-session").await, 204);
    let mut status = http::StatusCode::OK;
    for _ in 0..40 {
        status = c.get("/m2m/x", Some(&ok)).await.status;
        if status == 401 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(status, 401);
}

#[tokio::test]
async fn begun_logins_are_bounded_per_address() {
    let s = start().await;
    let c = s.gw.client(Proto::H1);
    for i in 0..gateway::auth_center::OIDC_BEGIN_LIMIT {
        let r = c.get("/auth/oidc/login?return_to=/api/", None).await;
        assert_eq!(r.status, 302, "login {i}");
    }
    let r = c.get("/auth/oidc/login", None).await;
    assert_eq!(r.status, 429);
    assert!(r.header("retry-after").is_some());
}

#[tokio::test]
async fn backends_cannot_plant_the_gateways_cookies_nor_see_a_pending_login() {
    let s = start().await;
    let b = s.browser();
    assert_eq!(s.login(&b, "/api/").await.status, 200);
    let page = b.get(&s.url("/api/set-cookies")).await;
    assert_eq!(page.status, 200);
    let set = page.hops.last().unwrap().set_cookies.join("\n");
    assert_eq!(set, "app_pref=dark; Path=/");

    // The cookie of a login in progress does not reach a backend.
    let c = s.gw.client(Proto::H1);
    s.gw.create_session("s-carol", "carol", None).await;
    let own = s.gw.token("carol", "s-carol", &[]);
    let req = c
        .req("GET", "/api/x")
        .header("authorization", format!("Bearer {own}"))
        .header("cookie", "__Host-gw_oidc=pending; keep=1")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    assert_eq!(c.send(req).await.status, 200);
    assert_eq!(s.up.last().one("cookie").as_deref(), Some("keep=1"));
}

/// The `return_to` the login begun with `Sec-Fetch-Site: site` kept.
async fn kept_return_to(s: &support::sso::Sso, site: &str) -> String {
    let c = s.gw.client(Proto::H1);
    let req = c
        .req("GET", "/auth/oidc/login?return_to=/api/transfer")
        .header("sec-fetch-site", site)
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let r = c.send(req).await;
    assert_eq!(r.status, 302);
    let cookie = r.header("set-cookie").unwrap().to_owned();
    let id = cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("__Host-gw_oidc=");
    let saved: String = redis::cmd("GET")
        .arg(format!("gw:oidc-login:{{{id}}}"))
        .query(&mut s.redis.connection())
        .unwrap();
    let saved: serde_json::Value = serde_json::from_str(&saved).unwrap();
    saved["return_to"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_login_begun_from_another_site_goes_home() {
    let s = start().await;
    assert_eq!(kept_return_to(&s, "cross-site").await, "/");
    assert_eq!(kept_return_to(&s, "same-site").await, "/");
    assert_eq!(kept_return_to(&s, "same-origin").await, "/api/transfer");
    assert_eq!(kept_return_to(&s, "none").await, "/api/transfer");
}
