//! Validated configuration: the types every other module reads. They are built only by
//! [`load`] (from `gateway.toml` via the serde shapes in `file.rs`), so they cannot hold a bad
//! value: addresses are parsed, durations are `Duration`s, header names are `HeaderName`s and
//! the route table is never empty.

mod admin;
mod document;
mod duration;
mod error;
mod file;
mod load;
pub mod outbound_url;
mod places;

pub use admin::{Admin, AdminToken};
pub use error::{ConfigError, ConfigErrors};
pub use load::{load, load_str, load_str_env, EMBEDDED_DEFAULT, EMBEDDED_SOURCE};
pub use places::Places;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use http::header::HeaderName;
use http::Method;

/// The whole, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from (`<embedded>` for the built-in default); used in messages and to
    /// resolve relative paths.
    pub source: PathBuf,
    /// Where the keys naming files and URLs are, for errors found when those are loaded.
    pub places: Places,
    pub listen: Listen,
    pub runtime: Runtime,
    pub reload: Reload,
    /// `Some` when `[otlp]` is present: one span per request, exported over OTLP/HTTP.
    pub otlp: Option<Otlp>,
    pub tls: Tls,
    pub jwt: Jwt,
    pub session: Session,
    pub headers: Headers,
    /// `None` when the `[auth]` table is absent: the auth center is disabled.
    pub auth: Option<AuthCenter>,
    pub limits: Limits,
    /// `Some` when `[demo]` is present: a built-in echo upstream for the quick start.
    pub demo: Option<Demo>,
    /// `Some` when `[admin]` is present: the admin listener's session endpoints exist, behind
    /// its bearer token. `None`: they answer 404.
    pub admin: Option<Admin>,
    /// `[[issuer]]` tables: external token issuers (docs/contract.md section 9), in file order.
    pub issuers: Vec<Issuer>,
    /// `Some` when `[oidc]` is present: browser login through an OpenID provider (needs `[auth]`).
    pub oidc: Option<Oidc>,
    /// Never empty.
    pub routes: Vec<Route>,
}

/// The identity headers' usual names (lower case), stripped from clients whatever
/// `[headers]` says, and never usable as another header's name.
pub const USUAL_IDENTITY_HEADERS: [&str; 3] = ["x-user-id", "x-user-roles", "x-session-id"];

/// The name a route's `issuers` uses for the gateway's own tokens (those `[jwt]` verifies).
/// No `[[issuer]]` or `[oidc]` may take it.
pub const OWN_ISSUER: &str = "gateway";

/// Whether a token of an `[[issuer]]` needs a gateway session behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssuerSession {
    /// The token alone authenticates (service-to-service tokens).
    None,
    /// The token's `session_claim` must name a live gateway session of `<name>:<sub>`.
    Required,
}

/// One `[[issuer]]`: tokens minted by an external identity provider.
#[derive(Debug, Clone)]
pub struct Issuer {
    /// `[A-Za-z0-9._-]`, 1-64 bytes, unique among issuers and `[oidc]`, never [`OWN_ISSUER`].
    /// Users of this issuer are `<name>:<sub>`.
    pub name: String,
    /// The exact `iss` its tokens carry, and where discovery starts
    /// (`<issuer>/.well-known/openid-configuration`): `https://`, or `http://` on loopback only.
    /// Unique among issuers and `[jwt].issuer`.
    pub issuer: String,
    pub audience: String,
    /// Asymmetric only (keys come from the provider's JWKS). Default `["RS256"]`.
    pub algorithms: Vec<jsonwebtoken::Algorithm>,
    /// Default "sub".
    pub user_id_claim: String,
    /// Default "roles".
    pub roles_claim: String,
    /// Required in the file (no default).
    pub session: IssuerSession,
    /// With `session = "required"`: the claim naming the gateway session. Default "sid".
    pub session_claim: String,
    /// Default 30s.
    pub leeway: Duration,
    /// `Some`: use this JWKS and skip discovery (same URL rule as `issuer`).
    pub jwks_url: Option<http::Uri>,
    /// Background JWKS refresh (default 5m).
    pub jwks_refresh: Duration,
}

/// `[oidc]`: browser login through an OpenID provider (authorization code + PKCE).
#[derive(Debug, Clone)]
pub struct Oidc {
    /// Users logged in this way are `<name>:<sub>`; same rules as an issuer's name.
    pub name: String,
    /// The provider's issuer URL (same rule as [`Issuer::issuer`]).
    pub issuer: String,
    pub client_id: String,
    /// `client_secret_env`'s value (non-empty); `None` for a public client (PKCE only).
    pub client_secret: Option<OidcSecret>,
    /// Normalised path the provider redirects back to (default `{auth.path}/oidc/callback`);
    /// the redirect URI is `https://<Host of the login request><redirect_path>`.
    pub redirect_path: String,
    /// Always holds "openid". Default `["openid", "email", "profile"]`.
    pub scopes: Vec<String>,
    /// Claim of the ID token (else of userinfo) holding the roles. Default "groups".
    pub roles_claim: String,
    /// ID token algorithms accepted. Default `["RS256"]`; asymmetric only.
    pub algorithms: Vec<jsonwebtoken::Algorithm>,
    /// Default 30s.
    pub leeway: Duration,
}

/// An OIDC client secret read from the environment: sent to the provider, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct OidcSecret(pub String);

impl std::fmt::Debug for OidcSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OidcSecret(<redacted>)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    pub https: SocketAddr,
    /// Plain listener: 308 to https, except `/healthz` and `/readyz`.
    pub http: Option<SocketAddr>,
    /// Plain admin listener: `/healthz`, `/readyz`, `/metrics`, session admin.
    pub admin: Option<SocketAddr>,
    /// Peers whose `X-Forwarded-For` (and PROXY header) are believed; empty: none.
    pub trusted_proxies: TrustedProxies,
    /// Every TLS connection starts with a PROXY v1/v2 header (only from `trusted_proxies`).
    pub proxy_protocol: bool,
    /// The public https port the plain listener's 308 names (behind a load balancer or a
    /// Kubernetes Service it is not the listener's own); `None`: the https listener's port.
    pub redirect_port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runtime {
    /// 0: one per CPU the process may run on.
    pub workers: usize,
}

/// OTLP trace export (`[otlp]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Otlp {
    /// The full traces URL (`.../v1/traces`): `https://`, or `http://` to loopback only.
    pub endpoint: http::Uri,
    /// `service.name` of the spans (default "gateway").
    pub service_name: String,
    /// Per export request (default 10s).
    pub timeout: Duration,
}

/// Hot reload (`[reload]`): SIGHUP always reloads; `watch` also polls the config file and every
/// file it names (certificate, keys) and reloads when one of them changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reload {
    /// Default true.
    pub watch: bool,
    /// How often the files are compared with what was loaded (default 2s).
    pub interval: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    V1_2,
    V1_3,
}

#[derive(Debug, Clone)]
pub struct Tls {
    /// Paths are resolved against the config file's directory.
    pub cert: PathBuf,
    pub key: PathBuf,
    pub min_version: TlsVersion,
    pub hsts: Option<Duration>,
    /// `self_signed_if_missing = true`: when both `cert` and `key` are missing, write a
    /// self-signed localhost certificate there on start (development only).
    pub self_signed_if_missing: bool,
}

#[derive(Debug, Clone)]
pub struct Jwt {
    /// Never empty; never contains "none" (jsonwebtoken has no such variant).
    pub algorithms: Vec<jsonwebtoken::Algorithm>,
    pub issuer: String,
    pub audience: String,
    pub leeway: Duration,
    pub user_id_claim: String,
    pub roles_claim: String,
    pub session_claim: String,
    /// Cookie the token is also read from when no Authorization header comes.
    pub cookie: Option<String>,
    pub keys: Vec<JwtKey>,
    /// `http://` only for loopback hosts; otherwise `https://`.
    pub jwks_url: Option<http::Uri>,
    /// How often the JWKS is refreshed in the background (default 5m).
    pub jwks_refresh: Duration,
}

#[derive(Debug, Clone)]
pub struct JwtKey {
    pub kid: String,
    pub material: KeyMaterial,
}

#[derive(Debug, Clone)]
pub enum KeyMaterial {
    /// PEM public key (RSA, EC P-256/P-384, Ed25519), resolved path.
    PublicKeyFile(PathBuf),
    /// HS* secret: the environment variable's bytes as they are.
    Secret { env: String, value: Vec<u8> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Redis,
    Memory,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub store: StoreKind,
    pub redis: Redis,
    pub key_prefix: String,
    /// Deadline for one store call, queueing included (default 500ms, at most 5s).
    pub timeout: Duration,
    /// Concurrent store calls allowed at once (default 256).
    pub max_concurrent: usize,
    /// Redis only: keep sessions in a local cache kept coherent by Redis invalidation pushes
    /// (RESP3 client tracking). Default true.
    pub cache: bool,
}

/// Where the Redis session store is and how to reach it (docs/contract.md, "Redis as it is
/// deployed").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redis {
    pub nodes: RedisNodes,
    /// `redis_password_env`'s value: the data nodes' password (overrides the URL's).
    pub password: Option<RedisPassword>,
    /// `redis_ca`: PEM certificates that verify `rediss://` nodes instead of the system's roots.
    pub ca: Option<PathBuf>,
}

/// Exactly one of `redis_url`, `redis_sentinel`, `redis_cluster`. Its `Debug` hides a
/// password in a URL's userinfo.
#[derive(Clone, PartialEq, Eq)]
pub enum RedisNodes {
    /// One node: `redis://`, `rediss://` (TLS) or a Unix socket.
    Url(String),
    /// The master that the sentinels name `master`.
    Sentinel { master: String, nodes: Vec<String> },
    /// Cluster seed nodes.
    Cluster(Vec<String>),
}

impl std::fmt::Debug for RedisNodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `scheme://user:password@host` -> `scheme://<userinfo>@host`.
        let hide = |u: &String| match (u.find("://"), u.rfind('@')) {
            (Some(s), Some(at)) if at > s => format!("{}<userinfo>{}", &u[..s + 3], &u[at..]),
            _ => u.clone(),
        };
        match self {
            RedisNodes::Url(u) => f.debug_tuple("Url").field(&hide(u)).finish(),
            RedisNodes::Sentinel { master, nodes } => f
                .debug_struct("Sentinel")
                .field("master", master)
                .field("nodes", &nodes.iter().map(hide).collect::<Vec<_>>())
                .finish(),
            RedisNodes::Cluster(nodes) => f
                .debug_tuple("Cluster")
                .field(&nodes.iter().map(hide).collect::<Vec<_>>())
                .finish(),
        }
    }
}

impl Redis {
    /// A single node at `url`, no password or CA of its own (tests, tools).
    pub fn url(url: impl Into<String>) -> Redis {
        Redis {
            nodes: RedisNodes::Url(url.into()),
            password: None,
            ca: None,
        }
    }

    /// Whether the nodes are reached over TLS (`rediss://`).
    pub fn tls(&self) -> bool {
        let tls = |u: &String| u.starts_with("rediss://");
        match &self.nodes {
            RedisNodes::Url(u) => tls(u),
            RedisNodes::Sentinel { nodes, .. } | RedisNodes::Cluster(nodes) => {
                nodes.iter().any(tls)
            }
        }
    }
}

/// A password read from the environment: compared, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisPassword(pub String);

impl std::fmt::Debug for RedisPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisPassword(<redacted>)")
    }
}

#[derive(Debug, Clone)]
pub struct Headers {
    pub user_id: HeaderName,
    pub roles: HeaderName,
    pub session_id: Option<HeaderName>,
    /// `assertion`: a signed identity JWT for backends (needs `[auth]`'s signing key).
    pub assertion: Option<HeaderName>,
}

#[derive(Debug, Clone)]
pub enum SigningKey {
    /// PEM private key file (Ed25519, RSA, EC), resolved path.
    PrivateKeyFile(PathBuf),
    /// HS256 secret from the environment.
    Secret { env: String, value: Vec<u8> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindRefresh {
    None,
    Device,
    Ip,
}

#[derive(Debug, Clone)]
pub struct AuthCenter {
    /// Normalised, starts with '/', no trailing '/' (unless it is "/").
    pub path: String,
    pub signing_key: SigningKey,
    pub signing_kid: String,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub refresh_max_uses: u32,
    pub bind_refresh: BindRefresh,
    /// How long a used refresh token, shown again from the same device, gets the same
    /// successor instead of revoking the session (0: never). Below `access_ttl`, at most 60s.
    pub refresh_grace: Duration,
    pub registration: bool,
    pub cookies: bool,
}

/// Bounds on connections and requests (`[limits]`, all optional).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// TLS handshake + request head must arrive within this (default 10s, at most 30s).
    pub header_timeout: Duration,
    /// Total request header bytes (default 32 KiB): above it, 431.
    pub max_header_bytes: usize,
    /// Request header count (default 100).
    pub max_headers: usize,
    /// Open client connections (default 10000).
    pub max_connections: usize,
    /// HTTP/2 concurrent streams per connection (default 100).
    pub h2_max_streams: u32,
    /// Idle keep-alive connections are closed after this (default 60s).
    pub idle_timeout: Duration,
    /// A request or response body that sends nothing for this long is cut (default 30s).
    pub body_idle_timeout: Duration,
    /// In-flight requests get this long to finish on SIGTERM (default 30s).
    pub shutdown_grace: Duration,
    /// Once shutdown starts, HTTP/1.1 connections are still served for this long (within the
    /// grace), each response saying `Connection: close`, so that busy keep-alive clients
    /// move on without racing a close; then idle ones are closed (default 2s).
    pub drain_linger: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Demo {
    /// Where the built-in echo upstream listens (plain HTTP, loopback).
    pub echo: SocketAddr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    Required,
    Optional,
    Public,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamProtocol {
    Http1,
    /// HTTP/2 with prior knowledge over plain TCP.
    H2c,
}

#[derive(Debug, Clone)]
pub struct Route {
    /// Normalised prefix: starts with '/', matched on whole segments. "/api/" and "/api" are
    /// the same prefix (stored without the trailing '/', except the root "/").
    pub path: String,
    /// Lower-case host without port.
    pub host: Option<String>,
    /// `None`: every method.
    pub methods: Option<Vec<Method>>,
    /// Never empty. `http://host:port` each; balanced round-robin.
    pub upstreams: Vec<http::uri::Authority>,
    pub protocol: UpstreamProtocol,
    pub auth: AuthMode,
    /// Any of these; empty: no role needed.
    pub roles: Vec<String>,
    pub strip_prefix: bool,
    pub forward_token: bool,
    /// Upstream response-header timeout (default 30s).
    pub timeout: Duration,
    /// Request body limit in bytes (default 10 MiB): above it, 413.
    pub max_body: u64,
    /// Token issuers accepted: [`OWN_ISSUER`] and `[[issuer]]` names, each defined, no
    /// repeats. Never empty; default `[OWN_ISSUER]`.
    pub issuers: Vec<String>,
    /// `claims_to_headers`: (header, claim), header names unique and never an identity,
    /// hop-by-hop, forwarding or Host header.
    pub claims_to_headers: Vec<(HeaderName, String)>,
}

/// Parses a duration string ("500ms", "30s", "15m", "2h", "7d").
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    duration::parse_duration(s).map_err(str::to_owned)
}

/// The networks of `listen.trusted_proxies`; an IPv4-mapped IPv6 address matches as IPv4.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<ipnet::IpNet>);

impl TrustedProxies {
    pub fn new(nets: Vec<ipnet::IpNet>) -> Self {
        TrustedProxies(nets)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
