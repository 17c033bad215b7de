//! A gateway with `[oidc]` against a real OpenID provider (oidc-provider under node,
//! `support::oidc`), with redis sessions and a recording upstream: the setup of
//! tests/oidc_login.rs (an HTTP client imitating a browser) and tests/oidc_browser.rs (headless
//! chromium).
//!
//! The gateway serves `https://127.0.0.1:<port>` with `[oidc]` "sso" (client secret from
//! [`SECRET_ENV`], redirect path [`CALLBACK`], back-channel logout at [`BACKCHANNEL`]), the
//! `[[issuer]]` "corp" (the same provider's service tokens, audience "m2m") and the signed
//! assertion; routes `/api/` (any session, `claims_to_headers` email), `/admin/` (role
//! `admins`) and `/m2m/` (issuer "corp" only) all go to the one [`Upstream`].

use serde_json::{json, Value};

use super::gateway::{base_toml, now, redis_session, route, TestGateway};
use super::oidc::{free_port, Browser, Page, Provider, ProviderOpts};
use super::redis::RedisServer;
use super::upstream::Upstream;

pub const SECRET_ENV: &str = "GW_TEST_OIDC_CLIENT_SECRET";
pub const CALLBACK: &str = "/auth/oidc/callback";
pub const BACKCHANNEL: &str = "/auth/oidc/backchannel-logout";

pub struct Sso {
    pub provider: Provider,
    pub gw: TestGateway,
    pub up: Upstream,
    pub redis: RedisServer,
    /// `https://127.0.0.1:<port>`, the gateway as browsers reach it.
    pub origin: String,
    /// The gateway's key material (`gateway.crt` is its certificate).
    pub keys: tempfile::TempDir,
}

/// The gateway's config for `provider`, on `port`, with `[oidc]` "sso", the `[[issuer]]`
/// "corp" (the same provider's service tokens, audience "m2m") and the assertion.
fn config(
    provider: &Provider,
    port: u16,
    redis: &RedisServer,
    up: &Upstream,
    session_mode: &str,
) -> String {
    let base = base_toml("").replacen(
        "https = \"127.0.0.1:0\"",
        &format!("https = \"127.0.0.1:{port}\""),
        1,
    );
    let base = base.replacen(
        "session_id = \"X-Session-Id\"",
        "session_id = \"X-Session-Id\"\nassertion = \"X-Gateway-Assertion\"",
        1,
    );
    let iss = provider.issuer();
    let u = up.url();
    format!(
        r#"{base}
{session}
[oidc]
name = "sso"
issuer = "{iss}"
client_id = "{client}"
client_secret_env = "{SECRET_ENV}"
scopes = ["openid", "email", "profile", "groups"]

[[issuer]]
name = "corp"
issuer = "{iss}"
audience = "m2m"
session = "{session_mode}"
roles_claim = "scope"

{api}{admin}{m2m}"#,
        // A browser and an OpenID provider start beside it: on a loaded CI machine a Redis
        // call can take longer than the usual test bound (a 503 then fails the login).
        session = redis_session(&redis.url()).replace("timeout = \"300ms\"", "timeout = \"2s\""),
        client = provider.client_id(),
        api = route("/api/", &u, "claims_to_headers = { \"X-User-Email\" = \"email\" }"),
        admin = route("/admin/", &u, "roles = [\"admins\"]"),
        m2m = route(
            "/m2m/",
            &u,
            "issuers = [\"corp\"]\nclaims_to_headers = { \"X-User-Email\" = \"email\", \"X-Tenant\" = \"tenant\" }"
        ),
    )
}

/// Starts the provider, redis, the upstream and the gateway.
pub async fn start() -> Sso {
    start_with("none").await
}

/// [`start`] with `[[issuer]]` "corp" needing `session` (`"none"` or `"required"`).
pub async fn start_with(session: &str) -> Sso {
    let keys = tempfile::tempdir().unwrap();
    gateway::cli::keygen::write_dev_material(keys.path(), false).unwrap();
    let port = free_port();
    let origin = format!("https://127.0.0.1:{port}");
    let mut opts = ProviderOpts::new(&origin).trust(&keys.path().join("gateway.crt"));
    opts.redirect_path = CALLBACK.into();
    opts.backchannel_path = Some(BACKCHANNEL.into());
    let provider = tokio::task::spawn_blocking(move || Provider::start(opts))
        .await
        .unwrap();
    // Every test's provider has the same client secret.
    std::env::set_var(SECRET_ENV, provider.client_secret());
    let redis = RedisServer::start();
    let up = Upstream::start().await;
    let toml = config(&provider, port, &redis, &up, session);
    let gw = TestGateway::start_toml_keys(&toml, Some(keys.path())).await;
    Sso {
        provider,
        gw,
        up,
        redis,
        origin,
        keys,
    }
}

impl Sso {
    pub fn browser(&self) -> Browser {
        Browser::trusting(&[&self.keys.path().join("gateway.crt")])
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }

    /// Opens the login and signs in at the provider, stopping before the callback.
    pub async fn to_callback(&self, b: &Browser, return_to: &str, user: &str) -> String {
        let start = self.url(&format!("/auth/oidc/login?return_to={return_to}"));
        let page = b
            .login_at_provider(
                start,
                user,
                &format!("{user}-password"),
                Some(&self.url(CALLBACK)),
            )
            .await;
        page.stopped_url().to_owned()
    }

    /// The whole login: the callback's page.
    pub async fn login(&self, b: &Browser, return_to: &str) -> Page {
        let callback = self.to_callback(b, return_to, "alice").await;
        b.get(&callback).await
    }

    /// The access token the browser now holds (its access cookie).
    pub fn access_cookie(&self, b: &Browser) -> Option<String> {
        let jar = b.cookie_header(&self.url("/api/"))?;
        jar.split("; ")
            .find_map(|c| c.strip_prefix("__Host-gw_access="))
            .map(str::to_owned)
    }

    pub fn refresh_cookie(&self, b: &Browser) -> Option<String> {
        let jar = b.cookie_header(&self.url("/auth/refresh"))?;
        jar.split("; ")
            .find_map(|c| c.strip_prefix("__Secure-gw_refresh="))
            .map(str::to_owned)
    }

    /// A service token of the provider for `[[issuer]]` "corp".
    pub fn service_token(&self, extra: Value) -> String {
        let n = now();
        let mut claims = json!({"iss": self.provider.issuer(), "aud": "m2m", "sub": "svc-billing",
            "iat": n, "exp": n + 300, "email": "billing@corp.test", "tenant": "t-42"});
        for (k, v) in extra.as_object().unwrap() {
            claims[k] = v.clone();
        }
        self.provider.sign(json!({}), claims)
    }
}
