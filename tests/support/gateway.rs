//! The gateway under test, in-process on free loopback ports, with a temp dir holding its
//! config, a development certificate and an Ed25519 signing key pair (from `keygen`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gateway::config::Config;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use tempfile::TempDir;

use super::client::{Client, Proto};

pub struct TestGateway {
    /// The running gateway's state as started, for looking inside (caches, counters).
    pub gw: std::sync::Arc<gateway::app::App>,
    /// Where the current gateway lives (a reload swaps it).
    pub live: std::sync::Arc<gateway::app::Live>,
    pub https: SocketAddr,
    pub http: Option<SocketAddr>,
    pub admin: Option<SocketAddr>,
    pub config: Config,
    pub dir: TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// Everything but `[session]` and the routes; ports are 0 (free ports).
pub fn base_toml(jwt_extra: &str) -> String {
    format!(
        r#"
[listen]
https = "127.0.0.1:0"
http = "127.0.0.1:0"
admin = "127.0.0.1:0"

[tls]
cert = "gateway.crt"
key = "gateway.key"

[jwt]
algorithms = ["EdDSA"]
issuer = "gateway"
audience = "api"
leeway = "5s"
cookie = "__Host-gw_access"
keys = [{{ kid = "k1", public_key = "signing.pub.pem" }}]
{jwt_extra}

[headers]
user_id = "X-User-Id"
roles = "X-User-Roles"
session_id = "X-Session-Id"

[auth]
path = "/auth"
signing_key = "signing.pem"
signing_kid = "k1"

[limits]
header_timeout = "2s"
shutdown_grace = "2s"
drain_linger = "200ms"
body_idle_timeout = "5s"

{ADMIN_TOML}
"#
    )
}

/// The admin listener's bearer token in every test gateway (in `admin.token` beside the config).
pub const ADMIN_TOKEN: &str = "test-admin-token-that-is-long-enough-0123456789";

/// `[admin]` as the tests configure it: the token from `admin.token` (the variable is never set).
pub const ADMIN_TOML: &str =
    "[admin]\ntoken_env = \"GW_TEST_ADMIN_TOKEN_UNSET\"\ntoken_file = \"admin.token\"\n";

/// Writes [`ADMIN_TOKEN`] to `dir/admin.token`, where [`ADMIN_TOML`] looks for it.
pub fn write_admin_token(dir: &Path) {
    std::fs::write(dir.join("admin.token"), ADMIN_TOKEN).unwrap();
}

pub fn redis_session(url: &str) -> String {
    format!(
        "[session]\nstore = \"redis\"\nredis_url = \"{url}\"\nkey_prefix = \"gw:\"\ntimeout = \"300ms\"\n"
    )
}

pub const MEMORY_SESSION: &str = "[session]\nstore = \"memory\"\n";

impl TestGateway {
    /// Starts a gateway with `base_toml("")` + `session` + `routes`.
    pub async fn start(session: &str, routes: &str) -> TestGateway {
        Self::start_toml(&format!("{}\n{session}\n{routes}", base_toml(""))).await
    }

    pub async fn start_toml(toml: &str) -> TestGateway {
        Self::start_toml_keys(toml, None).await
    }

    /// A second instance with `other`'s certificate and signing keys, as replicas have.
    pub async fn start_sharing_keys(
        other: &TestGateway,
        session: &str,
        routes: &str,
    ) -> TestGateway {
        let toml = format!("{}\n{session}\n{routes}", base_toml(""));
        Self::start_toml_keys(&toml, Some(other.dir.path())).await
    }

    /// `toml` with the certificate and signing keys of `keys_from` (made by `keygen`'s
    /// `write_dev_material` beforehand, e.g. so that a peer can trust the certificate
    /// before the gateway starts), or new ones.
    pub async fn start_toml_keys(toml: &str, keys_from: Option<&Path>) -> TestGateway {
        let dir = tempfile::tempdir().unwrap();
        match keys_from {
            None => {
                gateway::cli::keygen::write_dev_material(dir.path(), false).unwrap();
            }
            Some(from) => {
                for f in [
                    "gateway.crt",
                    "gateway.key",
                    "signing.pem",
                    "signing.pub.pem",
                ] {
                    std::fs::copy(from.join(f), dir.path().join(f)).unwrap();
                }
            }
        }
        write_admin_token(dir.path());
        let path = dir.path().join("gateway.toml");
        std::fs::write(&path, toml).unwrap();
        let config = gateway::config::load(&path).unwrap_or_else(|e| panic!("config: {e}"));
        let gw = gateway::app::App::build(config.clone()).await.unwrap();
        let bound = gw.bind().await.unwrap();
        let gw = gw.clone();
        let (https, http, admin) = (bound.https_addr(), bound.http_addr(), bound.admin_addr());
        let live = bound.live();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(bound.run(async move {
            let _ = rx.await;
        }));
        TestGateway {
            gw,
            live,
            https,
            http,
            admin,
            config,
            dir,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// The config file the gateway was started from (rewrite it, then reload).
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("gateway.toml")
    }

    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("gateway.crt")
    }

    pub fn client(&self, proto: Proto) -> Client {
        Client::new(self.https, &self.cert(), proto)
    }

    /// Signals shutdown and waits for the drain (bounded).
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }

    fn signing_key(&self) -> EncodingKey {
        let pem = std::fs::read(self.dir.path().join("signing.pem")).unwrap();
        EncodingKey::from_ed_pem(&pem).unwrap()
    }

    /// A valid EdDSA token for `sub` / `sid` with `roles`, expiring in 15 minutes.
    pub fn token(&self, sub: &str, sid: &str, roles: &[&str]) -> String {
        let now = now();
        self.token_with(json!({
            "iss": "gateway", "aud": "api", "sub": sub, "sid": sid, "roles": roles,
            "iat": now, "nbf": now, "exp": now + 900,
        }))
    }

    /// A token with exactly these claims, signed with the gateway's key (kid k1).
    pub fn token_with(&self, claims: serde_json::Value) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some("k1".into());
        jsonwebtoken::encode(&header, &claims, &self.signing_key()).unwrap()
    }

    /// Creates a session through the admin listener (works for both stores).
    pub async fn create_session(&self, sid: &str, user: &str, roles: Option<&[&str]>) {
        let body = gateway::admin::sessions::CreateSession {
            session_id: sid.into(),
            user_id: user.into(),
            roles: roles.map(|r| r.iter().map(|s| s.to_string()).collect()),
            ttl: 900,
        };
        gateway::cli::admin_client::post_json(
            self.admin.unwrap(),
            "/sessions",
            &body,
            Some(ADMIN_TOKEN.as_bytes()),
        )
        .await
        .unwrap();
    }

    /// Waits (bounded) until the session cache's invalidation links are up.
    pub async fn wait_cache_live(&self) {
        let cache = self
            .gw
            .auth()
            .session_cache()
            .expect("the session cache is on");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !cache.is_live() {
            assert!(
                std::time::Instant::now() < deadline,
                "the invalidation links did not come up"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `DELETE /sessions/{sid}` on the admin listener with the admin token: the status.
    pub async fn delete_session(&self, sid: &str) -> u16 {
        let (status, _) = gateway::cli::admin_client::request(
            self.admin.unwrap(),
            http::Method::DELETE,
            &format!("/sessions/{sid}"),
            Some(ADMIN_TOKEN.as_bytes()),
            None,
        )
        .await
        .unwrap();
        status.as_u16()
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A route table TOML snippet: one `[[route]]` per (path, upstream, extra lines).
pub fn route(path: &str, upstream: &str, extra: &str) -> String {
    format!("[[route]]\npath = \"{path}\"\nupstream = \"{upstream}\"\n{extra}\n")
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}
