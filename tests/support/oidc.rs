//! A real OpenID provider for OpenID Connect tests, and a browser-like client to log in at it.
//!
//! [`Provider`] runs panva's `oidc-provider` (OpenID-certified) under node from
//! `tests/oidc/provider.mjs`, installed in `tests/node_modules` by `scripts/test.sh`
//! (`npm ci --prefix tests`). It listens on a loopback port over plain http, signs with an
//! RSA-2048 key made here (so a test can forge tokens with the very same key, see
//! [`Provider::sign`]), serves a login page that checks passwords and a consent page, and
//! POSTs back-channel logout tokens to the relying party (over HTTPS: it trusts the PEM given
//! in [`ProviderOpts::trust`] through `NODE_EXTRA_CA_CERTS`). It is killed on drop, exits by
//! itself when the test process dies (it watches its stdin), and its log is printed when a
//! test fails.
//!
//! [`Browser`] is an HTTP client that keeps cookies and follows redirects the way a browser
//! does, records every hop, and can stop before a redirect to a given URL prefix (to capture a
//! callback with `code` and `state`, then replay it, tamper with it or send it from another
//! [`Browser`]).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation};
use reqwest::cookie::CookieStore as _;
use reqwest::{Method, Url};
use serde::Serialize;
use serde_json::{json, Value};
use sha2::Digest as _;
use tempfile::TempDir;

/// A port that was free a moment ago (the one in `support::redis`).
#[allow(unused_imports)] // each test binary uses a different part of the support code
pub use super::redis::free_port;

/// How long node may take to print `READY`.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// One request of a [`Browser`], connect to last body byte.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Redirects (and auto-submitted forms) one navigation follows at most.
const MAX_HOPS: usize = 20;

/// Where `scripts/test.sh` installs the node packages.
fn tests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests")
}

// ---- provider options ---------------------------------------------------------------------

/// A user of the provider: logs in with `login` / `password`, is `sub` in tokens.
#[derive(Debug, Clone, Serialize)]
pub struct Account {
    pub login: String,
    pub password: String,
    pub sub: String,
    pub email: String,
    pub groups: Vec<String>,
    pub name: String,
}

impl Account {
    /// `login`, sub `sub-<login>`, email `<login>@example.test`, name `<login>`, no groups.
    pub fn new(login: &str, password: &str) -> Account {
        Account {
            login: login.into(),
            password: password.into(),
            sub: format!("sub-{login}"),
            email: format!("{login}@example.test"),
            groups: Vec::new(),
            name: login.into(),
        }
    }

    pub fn groups(mut self, groups: &[&str]) -> Account {
        self.groups = groups.iter().map(|g| g.to_string()).collect();
        self
    }

    /// alice / alice-password, groups `admins` and `staff`.
    pub fn alice() -> Account {
        let mut a = Account::new("alice", "alice-password").groups(&["admins", "staff"]);
        a.name = "Alice Example".into();
        a
    }

    /// bob / bob-password, group `staff`.
    pub fn bob() -> Account {
        let mut a = Account::new("bob", "bob-password").groups(&["staff"]);
        a.name = "Bob Example".into();
        a
    }
}

/// How to run the provider: its one client is the gateway at `gateway_origin`.
#[derive(Debug, Clone)]
pub struct ProviderOpts {
    /// Port to listen on; 0: any free port (the issuer names it).
    pub port: u16,
    /// The `kid` of the signing key.
    pub kid: String,
    /// The relying party's origin, `https://127.0.0.1:<port>`: the redirect, post-logout and
    /// back-channel URIs are this plus a path.
    pub gateway_origin: String,
    pub client_id: String,
    pub client_secret: String,
    /// `client_secret_basic` (default), `client_secret_post`, ...
    pub token_endpoint_auth_method: String,
    /// The registered redirect URI's path.
    pub redirect_path: String,
    /// The registered `post_logout_redirect_uris`' paths.
    pub post_logout_paths: Vec<String>,
    /// The `backchannel_logout_uri`'s path (`backchannel_logout_session_required` is true);
    /// None: no back-channel logout for this client.
    pub backchannel_path: Option<String>,
    /// More clients, as oidc-provider client metadata (JSON objects).
    pub extra_clients: Vec<Value>,
    pub accounts: Vec<Account>,
    /// PEM file(s) the provider trusts for its outbound HTTPS (the gateway's certificate):
    /// `NODE_EXTRA_CA_CERTS` (one file; several are concatenated into one).
    pub trust: Vec<PathBuf>,
    /// Token and session lifetimes in seconds (oidc-provider `ttl` names: `IdToken`,
    /// `AccessToken`, `AuthorizationCode`, `Session`, `Interaction`, `Grant`), over the
    /// defaults of provider.mjs.
    pub ttl: Value,
}

impl ProviderOpts {
    /// Client `gateway` with a 40-character secret, redirect path `/oidc/callback`,
    /// post-logout path `/`, back-channel path `/oidc/backchannel-logout`, accounts alice and
    /// bob, any port, kid `oidc-test-k1`.
    pub fn new(gateway_origin: &str) -> ProviderOpts {
        ProviderOpts {
            port: 0,
            kid: "oidc-test-k1".into(),
            gateway_origin: gateway_origin.trim_end_matches('/').into(),
            client_id: "gateway".into(),
            client_secret: "gateway-client-secret-0123456789abcdefghij".into(),
            token_endpoint_auth_method: "client_secret_basic".into(),
            redirect_path: "/oidc/callback".into(),
            post_logout_paths: vec!["/".into()],
            backchannel_path: Some("/oidc/backchannel-logout".into()),
            extra_clients: Vec::new(),
            accounts: vec![Account::alice(), Account::bob()],
            trust: Vec::new(),
            ttl: json!({}),
        }
    }

    /// Trust this PEM (e.g. the gateway's certificate) for the back-channel POSTs.
    pub fn trust(mut self, pem: &Path) -> ProviderOpts {
        self.trust.push(pem.to_owned());
        self
    }

    pub fn redirect_uri(&self) -> String {
        format!("{}{}", self.gateway_origin, self.redirect_path)
    }

    pub fn post_logout_redirect_uris(&self) -> Vec<String> {
        self.post_logout_paths
            .iter()
            .map(|p| format!("{}{p}", self.gateway_origin))
            .collect()
    }

    pub fn backchannel_logout_uri(&self) -> Option<String> {
        self.backchannel_path
            .as_ref()
            .map(|p| format!("{}{p}", self.gateway_origin))
    }

    /// The JSON file provider.mjs reads (the key's path filled in by [`Provider::start`]).
    pub fn config_json(&self, key_pem: &Path) -> Value {
        let mut client = json!({
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "redirect_uris": [self.redirect_uri()],
            "post_logout_redirect_uris": self.post_logout_redirect_uris(),
            "token_endpoint_auth_method": self.token_endpoint_auth_method,
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
        });
        if let Some(uri) = self.backchannel_logout_uri() {
            client["backchannel_logout_uri"] = json!(uri);
            client["backchannel_logout_session_required"] = json!(true);
        }
        let mut clients = vec![client];
        clients.extend(self.extra_clients.iter().cloned());
        json!({
            "port": self.port,
            "signing_key": { "kid": self.kid, "pem": key_pem },
            "clients": clients,
            "accounts": self.accounts,
            "ttl": self.ttl,
        })
    }
}

// ---- the provider process -----------------------------------------------------------------

pub struct Provider {
    child: Option<Child>,
    /// Held open: provider.mjs exits when its stdin closes.
    stdin: Option<ChildStdin>,
    issuer: String,
    opts: ProviderOpts,
    key: EncodingKey,
    public_pem: String,
    log: Arc<Mutex<String>>,
    dir: TempDir,
}

impl Provider {
    /// Writes a fresh RSA-2048 key and the config into a temp dir, runs
    /// `node tests/oidc/provider.mjs config.json` and waits (20 s at most) for `READY`.
    pub fn start(opts: ProviderOpts) -> Provider {
        let dir = tempfile::tempdir().expect("temp dir for the OpenID provider");
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("an RSA key");
        let private_pem = kp.serialize_pem();
        let public_pem = kp.public_key_pem();
        let key_path = dir.path().join("signing.pem");
        std::fs::write(&key_path, &private_pem).unwrap();
        std::fs::write(dir.path().join("signing.pub.pem"), &public_pem).unwrap();
        let cfg_path = dir.path().join("provider.json");
        let cfg = serde_json::to_string_pretty(&opts.config_json(&key_path)).unwrap();
        std::fs::write(&cfg_path, cfg).unwrap();

        let script = tests_dir().join("oidc").join("provider.mjs");
        assert!(
            tests_dir().join("node_modules/oidc-provider").is_dir(),
            "tests/node_modules/oidc-provider is missing: run `npm ci --prefix tests` \
             (scripts/test.sh does)"
        );
        let mut cmd = Command::new("node");
        cmd.arg(&script)
            .arg(&cfg_path)
            .current_dir(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // oidc-provider's own debug output stays off whatever the environment says.
            .env_remove("DEBUG")
            .env_remove("NODE_OPTIONS");
        if !opts.trust.is_empty() {
            let bundle = dir.path().join("trust.pem");
            let mut pems = String::new();
            for p in &opts.trust {
                pems.push_str(&std::fs::read_to_string(p).unwrap());
                pems.push('\n');
            }
            std::fs::write(&bundle, pems).unwrap();
            cmd.env("NODE_EXTRA_CA_CERTS", &bundle);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run node (is it installed?): {e}"));
        let stdin = child.stdin.take();
        let log: Arc<Mutex<String>> = Arc::default();
        let (ready_tx, ready_rx) = mpsc::channel::<String>();

        let stdout = child.stdout.take().unwrap();
        let out_log = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(issuer) = line.strip_prefix("READY ") {
                    let _ = ready_tx.send(issuer.trim().to_owned());
                }
                let mut l = out_log.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let mut stderr = child.stderr.take().unwrap();
        let err_log = log.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match stderr.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => err_log
                        .lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n])),
                }
            }
        });

        let mut provider = Provider {
            child: Some(child),
            stdin,
            issuer: String::new(),
            key: EncodingKey::from_rsa_pem(private_pem.as_bytes()).unwrap(),
            public_pem,
            opts,
            log,
            dir,
        };
        match ready_rx.recv_timeout(START_TIMEOUT) {
            Ok(issuer) => provider.issuer = issuer,
            Err(_) => {
                let status = provider
                    .child
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten());
                // The log threads may still be reading what node wrote last.
                std::thread::sleep(Duration::from_millis(200));
                panic!(
                    "the OpenID provider did not print READY within {START_TIMEOUT:?} \
                     (exit: {status:?}); its log:\n{}",
                    provider.log()
                );
            }
        }
        provider
    }

    /// `http://127.0.0.1:<port>`, exactly as the provider names itself in `iss`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn port(&self) -> u16 {
        self.issuer.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// The issuer plus `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    pub fn discovery_url(&self) -> String {
        self.url("/.well-known/openid-configuration")
    }

    pub fn kid(&self) -> &str {
        &self.opts.kid
    }

    pub fn opts(&self) -> &ProviderOpts {
        &self.opts
    }

    pub fn client_id(&self) -> &str {
        &self.opts.client_id
    }

    pub fn client_secret(&self) -> &str {
        &self.opts.client_secret
    }

    pub fn redirect_uri(&self) -> String {
        self.opts.redirect_uri()
    }

    /// The signing key, PKCS#8 PEM (RSA 2048).
    pub fn key_pem_path(&self) -> PathBuf {
        self.dir.path().join("signing.pem")
    }

    /// Its public key, SPKI PEM (also in [`Provider::public_key_pem_path`]).
    pub fn public_key_pem(&self) -> &str {
        &self.public_pem
    }

    pub fn public_key_pem_path(&self) -> PathBuf {
        self.dir.path().join("signing.pub.pem")
    }

    pub fn encoding_key(&self) -> EncodingKey {
        self.key.clone()
    }

    pub fn decoding_key(&self) -> DecodingKey {
        DecodingKey::from_rsa_pem(self.public_pem.as_bytes()).unwrap()
    }

    /// A JWT signed RS256 with the provider's own key. The header is
    /// `{"alg":"RS256","typ":"JWT","kid":<kid>}` with `header_extra`'s members set over it (a
    /// member set to null is removed, e.g. `{"kid": null}`); `claims` is the payload as given.
    pub fn sign(&self, header_extra: Value, claims: Value) -> String {
        let mut header = json!({ "alg": "RS256", "typ": "JWT", "kid": self.opts.kid });
        if let Value::Object(extra) = header_extra {
            for (k, v) in extra {
                if v.is_null() {
                    header.as_object_mut().unwrap().remove(&k);
                } else {
                    header[k] = v;
                }
            }
        }
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &self.key, Algorithm::RS256)
            .expect("RS256 signature");
        format!("{input}.{sig}")
    }

    /// An ID token as the provider would issue it to the gateway's client for `account`
    /// (iss, aud, sub, iat, exp in 10 minutes, auth_time, email, groups, name), with `extra`'s
    /// members set over it (null removes one), signed with the provider's key.
    pub fn forge_id_token(&self, account: &Account, extra: Value) -> String {
        let now = now();
        let mut claims = json!({
            "iss": self.issuer, "aud": self.opts.client_id, "sub": account.sub,
            "iat": now, "exp": now + 600, "auth_time": now,
            "email": account.email, "email_verified": true,
            "groups": account.groups, "name": account.name,
        });
        merge(&mut claims, extra);
        self.sign(json!({}), claims)
    }

    /// A back-channel logout token for the gateway's client (iss, aud, iat, exp, jti, the
    /// back-channel logout event, `sub` and/or `sid`), with `extra` set over it (null removes
    /// a claim), signed with the provider's key and typ `logout+jwt`.
    pub fn forge_logout_token(&self, sub: Option<&str>, sid: Option<&str>, extra: Value) -> String {
        let now = now();
        let mut claims = json!({
            "iss": self.issuer, "aud": self.opts.client_id, "iat": now, "exp": now + 120,
            "jti": format!("jti-{}", rand_hex(8)),
            "events": { "http://schemas.openid.net/event/backchannel-logout": {} },
        });
        if let Some(sub) = sub {
            claims["sub"] = json!(sub);
        }
        if let Some(sid) = sid {
            claims["sid"] = json!(sid);
        }
        merge(&mut claims, extra);
        self.sign(json!({ "typ": "logout+jwt" }), claims)
    }

    /// The authorization URL for the gateway's client: response type `code`, its redirect
    /// URI, PKCE S256 from `verifier`, and the given scope, state and nonce.
    pub fn authorize_url(&self, scope: &str, state: &str, nonce: &str, verifier: &str) -> String {
        let mut url = Url::parse(&self.url("/auth")).unwrap();
        url.query_pairs_mut()
            .append_pair("client_id", &self.opts.client_id)
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", &self.redirect_uri())
            .append_pair("scope", scope)
            .append_pair("state", state)
            .append_pair("nonce", nonce)
            .append_pair("code_challenge", &pkce_challenge(verifier))
            .append_pair("code_challenge_method", "S256");
        url.into()
    }

    /// Redeems `code` at the token endpoint as the gateway's client (client_secret_basic):
    /// the status and the JSON answer.
    pub async fn exchange_code(&self, code: &str, verifier: &str) -> (u16, Value) {
        let body = form_body(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &self.redirect_uri()),
            ("code_verifier", verifier),
        ]);
        let resp = plain_client()
            .post(self.url("/token"))
            .basic_auth(
                form_component(&self.opts.client_id),
                Some(form_component(&self.opts.client_secret)),
            )
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("the token endpoint answers");
        let status = resp.status().as_u16();
        let body = resp.bytes().await.unwrap();
        let json = serde_json::from_slice(&body).unwrap_or_else(|e| {
            panic!(
                "token endpoint: not JSON ({e}): {}",
                String::from_utf8_lossy(&body)
            )
        });
        (status, json)
    }

    /// GET a JSON document of the provider (discovery, JWKS).
    pub async fn get_json(&self, url: &str) -> Value {
        let resp = plain_client()
            .get(url)
            .send()
            .await
            .expect("the provider answers");
        assert!(resp.status().is_success(), "GET {url}: {}", resp.status());
        serde_json::from_slice(&resp.bytes().await.unwrap()).expect("JSON")
    }

    /// Everything the provider wrote so far (its stdout, and on stderr a line per request and
    /// per event worth seeing: logins, back-channel deliveries and their errors).
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits (bounded) until the log holds `needle`; false if it never did.
    pub async fn wait_log(&self, needle: &str, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if self.log().contains(needle) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the provider now (it is also stopped on drop).
    pub fn stop(&mut self) {
        self.stdin.take();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!(
                "---- OpenID provider log ({}) ----\n{}",
                self.issuer,
                self.log()
            );
        }
    }
}

// ---- tokens -------------------------------------------------------------------------------

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Sets `extra`'s members over `base` (null removes one).
fn merge(base: &mut Value, extra: Value) {
    if let Value::Object(extra) = extra {
        for (k, v) in extra {
            if v.is_null() {
                base.as_object_mut().unwrap().remove(&k);
            } else {
                base[k] = v;
            }
        }
    }
}

fn rand_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

/// A fresh PKCE code verifier (43 characters of base64url).
pub fn pkce_verifier() -> String {
    let bytes: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The S256 challenge of `verifier`.
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()))
}

/// A random value for `state` or `nonce`.
pub fn random_token() -> String {
    rand_hex(16)
}

/// The header of a JWT, not verified.
pub fn jwt_header(token: &str) -> Value {
    jwt_part(token, 0)
}

/// The claims of a JWT, not verified.
pub fn jwt_claims(token: &str) -> Value {
    jwt_part(token, 1)
}

fn jwt_part(token: &str, i: usize) -> Value {
    let part = token
        .split('.')
        .nth(i)
        .unwrap_or_else(|| panic!("not a JWT: {token}"));
    let bytes = URL_SAFE_NO_PAD.decode(part).expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON")
}

/// Verifies an RS256 `token` against a JWKS document (the key its `kid` names) and returns its
/// claims. Only the signature is checked (and `exp` when present): the caller asserts claims.
pub fn verify_with_jwks(token: &str, jwks: &Value) -> Result<Value, String> {
    let set: jsonwebtoken::jwk::JwkSet =
        serde_json::from_value(jwks.clone()).map_err(|e| format!("JWKS: {e}"))?;
    let kid = jwt_header(token)["kid"]
        .as_str()
        .ok_or("the token names no kid")?
        .to_owned();
    let jwk = set.find(&kid).ok_or(format!("no key {kid} in the JWKS"))?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("key {kid}: {e}"))?;
    verify_with_key(token, &key)
}

/// Verifies `token` with `key` (RS256, or the algorithm its header names) and returns its
/// claims (signature, and `exp` when present).
pub fn verify_with_key(token: &str, key: &DecodingKey) -> Result<Value, String> {
    let alg = jwt_header(token)["alg"]
        .as_str()
        .and_then(|a| a.parse::<Algorithm>().ok())
        .unwrap_or(Algorithm::RS256);
    let mut v = Validation::new(alg);
    v.validate_aud = false;
    v.required_spec_claims.clear();
    jsonwebtoken::decode::<Value>(token, key, &v)
        .map(|d| d.claims)
        .map_err(|e| e.to_string())
}

// ---- forms and URLs -----------------------------------------------------------------------

/// `application/x-www-form-urlencoded` of these pairs.
pub fn form_body(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// One value form-encoded (client_secret_basic encodes id and secret so before base64).
fn form_component(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The first value of query parameter `name` in `url`.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// `url` with query parameter `name` set to `value` (replacing every earlier value), for
/// tampering with a captured callback.
pub fn with_query_param(url: &str, name: &str, value: &str) -> String {
    let mut u = Url::parse(url).expect("a URL");
    let pairs: Vec<(String, String)> = u
        .query_pairs()
        .filter(|(k, _)| k != name)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    u.query_pairs_mut()
        .clear()
        .extend_pairs(pairs)
        .append_pair(name, value);
    u.into()
}

/// A plain client (no cookies, no redirects) for the provider's endpoints.
fn plain_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        .tls_certs_only(Vec::new())
        .build()
        .unwrap()
}

/// An HTML form as a browser sees it: where it goes and what it sends (its named inputs with
/// their values; buttons and other controls are left out).
#[derive(Debug, Clone)]
pub struct Form {
    pub id: Option<String>,
    /// Absolute, resolved against the page's URL.
    pub action: String,
    /// Upper case: `GET` or `POST`.
    pub method: String,
    pub fields: Vec<(String, String)>,
    /// The origin of the page it came from (sent as `Origin` with a POST).
    pub origin: String,
}

impl Form {
    /// Sets `name` to `value` (the first such input, or a new one).
    pub fn set(mut self, name: &str, value: &str) -> Form {
        match self.fields.iter_mut().find(|(k, _)| k == name) {
            Some(f) => f.1 = value.to_owned(),
            None => self.fields.push((name.to_owned(), value.to_owned())),
        }
        self
    }

    pub fn has(&self, name: &str) -> bool {
        self.fields.iter().any(|(k, _)| k == name)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn html_unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The attributes of one tag's text (`<input type="hidden" name="x" value="y"/>`).
fn attributes(tag: &str) -> Vec<(String, String)> {
    let inner = tag
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim_end_matches('/');
    let mut out = Vec::new();
    // Skip the tag name.
    let mut rest = inner.trim_start();
    rest = rest.trim_start_matches(|c: char| !c.is_whitespace());
    for _ in 0..64 {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '/');
        if rest.is_empty() {
            break;
        }
        let name_end = rest
            .find(|c: char| c.is_whitespace() || c == '=')
            .unwrap_or(rest.len());
        let name = rest[..name_end].to_ascii_lowercase();
        rest = rest[name_end..].trim_start();
        let value = if let Some(r) = rest.strip_prefix('=') {
            let r = r.trim_start();
            let (v, after) = match r.chars().next() {
                Some(q @ ('"' | '\'')) => {
                    let end = r[1..].find(q).map(|i| i + 1).unwrap_or(r.len());
                    (&r[1..end], r.get(end + 1..).unwrap_or(""))
                }
                _ => {
                    let end = r.find(char::is_whitespace).unwrap_or(r.len());
                    (&r[..end], &r[end..])
                }
            };
            rest = after;
            html_unescape(v)
        } else {
            String::new()
        };
        out.push((name, value));
    }
    out
}

fn attr<'a>(attrs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Every `<form>` of `html`, with actions resolved against `base`.
pub fn parse_forms(html: &str, base: &str) -> Vec<Form> {
    let lower = html.to_ascii_lowercase();
    let base_url = Url::parse(base).expect("page URL");
    let origin = base_url.origin().ascii_serialization();
    let mut forms = Vec::new();
    let mut at = 0;
    for _ in 0..32 {
        let Some(start) = lower[at..].find("<form").map(|i| i + at) else {
            break;
        };
        let Some(tag_end) = lower[start..].find('>').map(|i| i + start + 1) else {
            break;
        };
        let end = lower[tag_end..]
            .find("</form")
            .map(|i| i + tag_end)
            .unwrap_or(html.len());
        let attrs = attributes(&html[start..tag_end]);
        let action = attr(&attrs, "action").unwrap_or("");
        let action = base_url
            .join(action)
            .map(String::from)
            .unwrap_or_else(|_| base.to_owned());
        let mut fields = Vec::new();
        let body = &html[tag_end..end];
        let body_lower = &lower[tag_end..end];
        let mut i = 0;
        for _ in 0..256 {
            let Some(s) = body_lower[i..].find("<input").map(|j| j + i) else {
                break;
            };
            let e = body_lower[s..]
                .find('>')
                .map(|j| j + s + 1)
                .unwrap_or(body.len());
            let a = attributes(&body[s..e]);
            let kind = attr(&a, "type").unwrap_or("text").to_ascii_lowercase();
            if let Some(name) = attr(&a, "name") {
                if !["submit", "button", "image", "reset"].contains(&kind.as_str()) {
                    fields.push((name.to_owned(), attr(&a, "value").unwrap_or("").to_owned()));
                }
            }
            i = e;
        }
        forms.push(Form {
            id: attr(&attrs, "id").map(str::to_owned),
            action,
            method: attr(&attrs, "method").unwrap_or("get").to_ascii_uppercase(),
            fields,
            origin: origin.clone(),
        });
        at = end;
    }
    forms
}

// ---- the browser --------------------------------------------------------------------------

/// One request and its answer, as a browser made it.
#[derive(Debug, Clone)]
pub struct Hop {
    pub method: String,
    pub url: String,
    pub status: u16,
    /// The `Location` answered, resolved against `url`.
    pub location: Option<String>,
    /// Every `Set-Cookie` of the answer, raw.
    pub set_cookies: Vec<String>,
}

/// A request a navigation stopped before making (its URL started with the stop prefix).
#[derive(Debug, Clone)]
pub struct Pending {
    pub method: String,
    pub url: String,
    /// The fields of an auto-submitted form (`response_mode=form_post`), for a POST.
    pub form: Option<Vec<(String, String)>>,
    /// The origin of the page that made it (sent as `Origin` with a POST).
    pub origin: Option<String>,
}

/// Where a navigation ended: the last answer, or the request it stopped before.
#[derive(Debug, Clone)]
pub struct Page {
    /// The URL of the last answer.
    pub url: String,
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
    /// This navigation's hops, first to last.
    pub hops: Vec<Hop>,
    /// The request not made because its URL starts with the stop prefix.
    pub stopped: Option<Pending>,
}

impl Page {
    /// The URL the navigation stopped before (e.g. the callback with `code` and `state`).
    pub fn stopped_url(&self) -> &str {
        &self
            .stopped
            .as_ref()
            .unwrap_or_else(|| panic!("the navigation did not stop; it ended at {self:#?}"))
            .url
    }

    /// The last answer's `Location`, resolved.
    pub fn location(&self) -> Option<&str> {
        self.hops.last().and_then(|h| h.location.as_deref())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}) at {}: {}", self.url, self.body))
    }

    pub fn forms(&self) -> Vec<Form> {
        parse_forms(&self.body, &self.url)
    }

    /// The form whose id is `needle` or whose action contains it.
    pub fn form(&self, needle: &str) -> Option<Form> {
        self.forms()
            .into_iter()
            .find(|f| f.id.as_deref() == Some(needle) || f.action.contains(needle))
    }

    /// The provider's login form (one with a `password` input).
    pub fn login_form(&self) -> Option<Form> {
        self.forms().into_iter().find(|f| f.has("password"))
    }

    /// The provider's consent form (hidden `prompt=consent`).
    pub fn consent_form(&self) -> Option<Form> {
        self.forms()
            .into_iter()
            .find(|f| f.get("prompt") == Some("consent"))
    }

    /// Every cookie set along this navigation, raw.
    pub fn set_cookies(&self) -> Vec<String> {
        self.hops
            .iter()
            .flat_map(|h| h.set_cookies.iter().cloned())
            .collect()
    }
}

/// Where [`Browser::login_at_provider`] starts: a URL to open, or a page already open.
pub enum Start {
    Url(String),
    Page(Box<Page>),
}

impl From<&str> for Start {
    fn from(u: &str) -> Start {
        Start::Url(u.to_owned())
    }
}
impl From<String> for Start {
    fn from(u: String) -> Start {
        Start::Url(u)
    }
}
impl From<&String> for Start {
    fn from(u: &String) -> Start {
        Start::Url(u.clone())
    }
}
impl From<Page> for Start {
    fn from(p: Page) -> Start {
        Start::Page(Box::new(p))
    }
}
impl From<&Page> for Start {
    fn from(p: &Page) -> Start {
        Start::Page(Box::new(p.clone()))
    }
}

/// A browser-like HTTP client: one cookie jar (with paths, expiry and `Secure` honoured), a
/// redirect followed as a browser does (301/302/303 turn into GET, 307/308 keep method and
/// body), a `form_post` auto-submitting page submitted, every hop recorded, and at most
/// [`MAX_HOPS`] hops of 10 s each per navigation. It speaks HTTP/1.1, to the plain-http
/// provider and to HTTPS servers whose certificate it was told to trust (nothing else).
pub struct Browser {
    client: reqwest::Client,
    jar: Arc<reqwest::cookie::Jar>,
    history: Mutex<Vec<Hop>>,
}

impl Default for Browser {
    fn default() -> Self {
        Browser::new()
    }
}

impl Browser {
    /// Trusts no certificate: plain http only.
    pub fn new() -> Browser {
        Browser::trusting(&[])
    }

    /// Trusts these PEM certificates (e.g. the gateway's self-signed one) and only these.
    pub fn trusting(pems: &[&Path]) -> Browser {
        let mut certs = Vec::new();
        for p in pems {
            let pem = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            certs.extend(reqwest::Certificate::from_pem_bundle(&pem).expect("PEM certificates"));
        }
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let client = reqwest::Client::builder()
            .no_proxy()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .user_agent("Mozilla/5.0 (gateway tests browser)")
            .tls_certs_only(certs)
            .build()
            .expect("a reqwest client");
        Browser {
            client,
            jar,
            history: Mutex::default(),
        }
    }

    /// Every hop of every navigation so far.
    pub fn history(&self) -> Vec<Hop> {
        self.history.lock().unwrap().clone()
    }

    /// The `Cookie` header this browser would send to `url`.
    pub fn cookie_header(&self, url: &str) -> Option<String> {
        self.jar
            .cookies(&Url::parse(url).unwrap())
            .map(|v| v.to_str().unwrap().to_owned())
    }

    /// Stores a cookie as if `url` had set it (`Set-Cookie` syntax).
    pub fn add_cookie(&self, set_cookie: &str, url: &str) {
        self.jar
            .add_cookie_str(set_cookie, &Url::parse(url).unwrap());
    }

    /// Opens `url` and follows every redirect.
    pub async fn get(&self, url: &str) -> Page {
        self.navigate(Method::GET, url, None, None, None).await
    }

    /// Opens `url` and follows redirects until one leads to a URL starting with `stop_at`.
    pub async fn get_until(&self, url: &str, stop_at: &str) -> Page {
        self.navigate(Method::GET, url, None, None, Some(stop_at))
            .await
    }

    /// POSTs a form body to `url` (no `Origin`), then follows as [`Browser::navigate`] does.
    pub async fn post_form(
        &self,
        url: &str,
        fields: &[(&str, &str)],
        stop_at: Option<&str>,
    ) -> Page {
        let fields: Vec<(String, String)> = fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.navigate(Method::POST, url, Some(fields), None, stop_at)
            .await
    }

    /// Submits `form` as a browser would (a POST carries its page's `Origin`).
    pub async fn submit(&self, form: &Form, stop_at: Option<&str>) -> Page {
        if form.method == "GET" {
            let mut url = Url::parse(&form.action).unwrap();
            url.query_pairs_mut()
                .clear()
                .extend_pairs(form.fields.iter());
            return self
                .navigate(Method::GET, url.as_str(), None, None, stop_at)
                .await;
        }
        self.navigate(
            Method::POST,
            &form.action,
            Some(form.fields.clone()),
            Some(form.origin.clone()),
            stop_at,
        )
        .await
    }

    /// Makes a request a navigation stopped before, then follows on.
    pub async fn resume(&self, pending: &Pending, stop_at: Option<&str>) -> Page {
        let method = Method::from_bytes(pending.method.as_bytes()).unwrap();
        self.navigate(
            method,
            &pending.url,
            pending.form.clone(),
            pending.origin.clone(),
            stop_at,
        )
        .await
    }

    /// One navigation: the request, then each redirect (and each auto-submitting form_post
    /// page) in turn, [`MAX_HOPS`] at most, stopping before any request whose URL starts with
    /// `stop_at`. A transport error panics with the hops so far.
    pub async fn navigate(
        &self,
        method: Method,
        url: &str,
        form: Option<Vec<(String, String)>>,
        origin: Option<String>,
        stop_at: Option<&str>,
    ) -> Page {
        let mut method = method;
        let mut url = url.to_owned();
        let mut form = form;
        let mut origin = origin;
        let mut hops: Vec<Hop> = Vec::new();
        for _ in 0..MAX_HOPS {
            let mut req = self.client.request(method.clone(), &url);
            if let Some(fields) = &form {
                let pairs: Vec<(&str, &str)> = fields
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                req = req
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(form_body(&pairs));
            }
            if let Some(o) = &origin {
                req = req.header("origin", o);
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => panic!("{method} {url}: {e:?}\nhops so far: {hops:#?}"),
            };
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let location = headers
                .get("location")
                .and_then(|v| v.to_str().ok())
                .and_then(|l| Url::parse(&url).ok()?.join(l).ok())
                .map(String::from);
            let hop = Hop {
                method: method.to_string(),
                url: url.clone(),
                status,
                location: location.clone(),
                set_cookies: headers
                    .get_all("set-cookie")
                    .iter()
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                    .collect(),
            };
            self.history.lock().unwrap().push(hop.clone());
            hops.push(hop);
            let body = match resp.text().await {
                Ok(b) => b,
                Err(e) => panic!("{method} {url}: reading the body: {e:?}"),
            };
            let page_origin = Url::parse(&url).unwrap().origin().ascii_serialization();
            let next: Option<Pending> = match (status, &location) {
                (301..=303, Some(loc)) => Some(Pending {
                    method: "GET".into(),
                    url: loc.clone(),
                    form: None,
                    origin: None,
                }),
                (307 | 308, Some(loc)) => Some(Pending {
                    method: method.to_string(),
                    url: loc.clone(),
                    form: form.clone(),
                    origin: origin.clone(),
                }),
                (200..=299 | 400, None) if body.contains("document.forms[0].submit()") => {
                    parse_forms(&body, &url)
                        .into_iter()
                        .next()
                        .map(|f| Pending {
                            method: f.method,
                            url: f.action,
                            form: Some(f.fields),
                            origin: Some(page_origin),
                        })
                }
                _ => None,
            };
            let page = |stopped| Page {
                url: url.clone(),
                status,
                headers: headers.clone(),
                body: body.clone(),
                hops: hops.clone(),
                stopped,
            };
            let Some(next) = next else {
                return page(None);
            };
            if stop_at.is_some_and(|p| next.url.starts_with(p)) {
                return page(Some(next));
            }
            method = Method::from_bytes(next.method.as_bytes()).unwrap();
            url = next.url;
            form = next.form;
            origin = next.origin;
        }
        panic!("more than {MAX_HOPS} hops: {hops:#?}");
    }

    /// Logs in at the provider's own pages: opens `start` (or takes the page given), fills the
    /// login form with `login` / `password` and submits it, then confirms the consent form if
    /// one comes, following redirects (and stopping before `stop_at`). Returns where it ended:
    /// stopped before the callback, or the login page again when the password was wrong.
    pub async fn login_at_provider(
        &self,
        start: impl Into<Start>,
        login: &str,
        password: &str,
        stop_at: Option<&str>,
    ) -> Page {
        let mut page = match start.into() {
            Start::Url(u) => self.navigate(Method::GET, &u, None, None, stop_at).await,
            Start::Page(p) => *p,
        };
        if page.stopped.is_some() {
            return page;
        }
        if let Some(form) = page.login_form() {
            let form = form.set("login", login).set("password", password);
            page = self.submit(&form, stop_at).await;
            if page.stopped.is_some() || page.login_form().is_some() {
                return page;
            }
        }
        // Consent comes once per missing grant; twice at most.
        for _ in 0..2 {
            let Some(form) = page.consent_form() else {
                break;
            };
            page = self.submit(&form, stop_at).await;
            if page.stopped.is_some() {
                break;
            }
        }
        page
    }

    /// RP-initiated logout at the provider: opens `end_session_url` (with whatever
    /// `id_token_hint`, `post_logout_redirect_uri`, `state` it carries), confirms "Yes, sign me
    /// out" (`logout=yes`), and follows on (stopping before `stop_at`). The provider POSTs its
    /// back-channel logout tokens before it answers the confirmation.
    pub async fn logout_at_provider(&self, end_session_url: &str, stop_at: Option<&str>) -> Page {
        let page = self
            .navigate(Method::GET, end_session_url, None, None, stop_at)
            .await;
        if page.stopped.is_some() {
            return page;
        }
        let form = page
            .form("op.logoutForm")
            .unwrap_or_else(|| panic!("no logout form at {}: {}", page.url, page.body));
        self.submit(&form.set("logout", "yes"), stop_at).await
    }
}
