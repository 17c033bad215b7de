//! Serde shapes that mirror gateway.toml one to one, every value `Spanned` so that validation
//! can point at `line:col`. Unknown keys are errors (`deny_unknown_fields`). Defaults and
//! checks live in `load.rs`; this file only says what the TOML may contain.
//!
//! `document.rs` parses the file into these shapes, table by table.

use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use toml::Spanned;

type S<T> = Spanned<T>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct ListenFile {
    pub https: S<String>,
    #[serde(default)]
    pub http: Option<S<String>>,
    #[serde(default)]
    pub admin: Option<S<String>>,
    #[serde(default)]
    pub trusted_proxies: Option<S<Vec<S<String>>>>,
    #[serde(default)]
    pub proxy_protocol: Option<S<bool>>,
    #[serde(default)]
    pub redirect_port: Option<S<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RuntimeFile {
    #[serde(default)]
    pub workers: Option<S<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct OtlpFile {
    pub endpoint: S<String>,
    #[serde(default)]
    pub service_name: Option<S<String>>,
    #[serde(default)]
    pub timeout: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct ReloadFile {
    #[serde(default)]
    pub watch: Option<S<bool>>,
    #[serde(default)]
    pub interval: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct TlsFile {
    pub cert: S<String>,
    pub key: S<String>,
    #[serde(default)]
    pub min_version: Option<S<String>>,
    #[serde(default)]
    pub hsts: Option<S<String>>,
    #[serde(default)]
    pub self_signed_if_missing: Option<S<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct JwtFile {
    pub algorithms: S<Vec<S<String>>>,
    pub issuer: S<String>,
    pub audience: S<String>,
    #[serde(default)]
    pub leeway: Option<S<String>>,
    #[serde(default)]
    pub user_id_claim: Option<S<String>>,
    #[serde(default)]
    pub roles_claim: Option<S<String>>,
    #[serde(default)]
    pub session_claim: Option<S<String>>,
    #[serde(default)]
    pub cookie: Option<S<String>>,
    #[serde(default)]
    pub keys: Option<S<Vec<S<JwtKeyFile>>>>,
    #[serde(default)]
    pub jwks_url: Option<S<String>>,
    #[serde(default)]
    pub jwks_refresh: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a key table: { kid = \"k1\", public_key = \"file.pem\" } or { kid = \"h1\", secret_env = \"VAR\" }"
)]
pub(super) struct JwtKeyFile {
    pub kid: S<String>,
    #[serde(default)]
    pub public_key: Option<S<String>>,
    #[serde(default)]
    pub secret_env: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct SessionFile {
    #[serde(default)]
    pub store: Option<S<String>>,
    #[serde(default)]
    pub redis_url: Option<S<String>>,
    #[serde(default)]
    pub redis_sentinel: Option<S<RedisSentinelFile>>,
    #[serde(default)]
    pub redis_cluster: Option<S<Vec<S<String>>>>,
    #[serde(default)]
    pub redis_password_env: Option<S<String>>,
    #[serde(default)]
    pub redis_ca: Option<S<String>>,
    #[serde(default)]
    pub key_prefix: Option<S<String>>,
    #[serde(default)]
    pub timeout: Option<S<String>>,
    #[serde(default)]
    pub max_concurrent: Option<S<i64>>,
    #[serde(default)]
    pub cache: Option<S<bool>>,
}

/// `redis_sentinel = { master = "mymaster", nodes = ["redis://10.0.0.1:26379"] }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RedisSentinelFile {
    pub master: S<String>,
    pub nodes: S<Vec<S<String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct HeadersFile {
    #[serde(default)]
    pub user_id: Option<S<String>>,
    #[serde(default)]
    pub roles: Option<S<String>>,
    #[serde(default)]
    pub session_id: Option<S<String>>,
    #[serde(default)]
    pub assertion: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct AuthFile {
    #[serde(default)]
    pub path: Option<S<String>>,
    #[serde(default)]
    pub signing_key: Option<S<String>>,
    #[serde(default)]
    pub signing_secret_env: Option<S<String>>,
    #[serde(default)]
    pub signing_kid: Option<S<String>>,
    #[serde(default)]
    pub access_ttl: Option<S<String>>,
    #[serde(default)]
    pub refresh_ttl: Option<S<String>>,
    #[serde(default)]
    pub refresh_max_uses: Option<S<i64>>,
    #[serde(default)]
    pub bind_refresh: Option<S<String>>,
    #[serde(default)]
    pub refresh_grace: Option<S<String>>,
    #[serde(default)]
    pub registration: Option<S<bool>>,
    #[serde(default)]
    pub cookies: Option<S<bool>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct LimitsFile {
    #[serde(default)]
    pub header_timeout: Option<S<String>>,
    #[serde(default)]
    pub max_header_bytes: Option<S<i64>>,
    #[serde(default)]
    pub max_headers: Option<S<i64>>,
    #[serde(default)]
    pub max_connections: Option<S<i64>>,
    #[serde(default)]
    pub h2_max_streams: Option<S<i64>>,
    #[serde(default)]
    pub idle_timeout: Option<S<String>>,
    #[serde(default)]
    pub body_idle_timeout: Option<S<String>>,
    #[serde(default)]
    pub shutdown_grace: Option<S<String>>,
    #[serde(default)]
    pub drain_linger: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct AdminFile {
    pub token_env: S<String>,
    #[serde(default)]
    pub token_file: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct DemoFile {
    pub echo: S<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RouteFile {
    pub path: S<String>,
    #[serde(default)]
    pub host: Option<S<String>>,
    #[serde(default)]
    pub methods: Option<S<Vec<S<String>>>>,
    pub upstream: S<Upstream>,
    #[serde(default)]
    pub protocol: Option<S<String>>,
    #[serde(default)]
    pub auth: Option<S<String>>,
    #[serde(default)]
    pub roles: Option<S<Vec<S<String>>>>,
    #[serde(default)]
    pub strip_prefix: Option<S<bool>>,
    #[serde(default)]
    pub forward_token: Option<S<bool>>,
    #[serde(default)]
    pub timeout: Option<S<String>>,
    #[serde(default)]
    pub max_body: Option<S<ByteSize>>,
    #[serde(default)]
    pub issuers: Option<S<Vec<S<String>>>>,
    #[serde(default)]
    pub claims_to_headers: Option<S<ClaimsToHeaders>>,
}

/// One `[[issuer]]` table: an external identity provider whose tokens routes may accept.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct IssuerFile {
    pub name: S<String>,
    pub issuer: S<String>,
    pub audience: S<String>,
    #[serde(default)]
    pub algorithms: Option<S<Vec<S<String>>>>,
    #[serde(default)]
    pub user_id_claim: Option<S<String>>,
    #[serde(default)]
    pub roles_claim: Option<S<String>>,
    /// Required, but optional here so that its absence is told with the choices (and the
    /// rest of the table is still checked).
    #[serde(default)]
    pub session: Option<S<String>>,
    #[serde(default)]
    pub session_claim: Option<S<String>>,
    #[serde(default)]
    pub leeway: Option<S<String>>,
    #[serde(default)]
    pub jwks_url: Option<S<String>>,
    #[serde(default)]
    pub jwks_refresh: Option<S<String>>,
}

/// `[oidc]`: browser login through an OpenID provider.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct OidcFile {
    pub name: S<String>,
    pub issuer: S<String>,
    pub client_id: S<String>,
    #[serde(default)]
    pub client_secret_env: Option<S<String>>,
    #[serde(default)]
    pub redirect_path: Option<S<String>>,
    #[serde(default)]
    pub scopes: Option<S<Vec<S<String>>>>,
    #[serde(default)]
    pub roles_claim: Option<S<String>>,
    #[serde(default)]
    pub algorithms: Option<S<Vec<S<String>>>>,
    #[serde(default)]
    pub leeway: Option<S<String>>,
}

/// `claims_to_headers = { "X-User-Email" = "email" }`: (header, claim) pairs in file order.
#[derive(Debug)]
pub(super) struct ClaimsToHeaders(pub Vec<(S<String>, S<String>)>);

impl<'de> Deserialize<'de> for ClaimsToHeaders {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ClaimsToHeaders;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(
                    "a table of header names to claim names, like { \"X-User-Email\" = \"email\" }",
                )
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ClaimsToHeaders, A::Error> {
                let mut all: Vec<(S<String>, S<String>)> = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    all.push(entry);
                }
                // The parser's map may be sorted by key: put the pairs back in file order.
                all.sort_by_key(|(k, _)| k.span().start);
                Ok(ClaimsToHeaders(all))
            }
        }
        d.deserialize_map(V)
    }
}

/// `upstream = "http://a:1"` or `upstream = ["http://a:1", "http://b:2"]`.
#[derive(Debug)]
pub(super) enum Upstream {
    /// The single address; its span is the enclosing `Spanned<Upstream>`'s.
    One(String),
    Many(Vec<S<String>>),
}

impl<'de> Deserialize<'de> for Upstream {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Upstream;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("\"http://host:port\" or an array of them")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Upstream, E> {
                Ok(Upstream::One(v.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Upstream, A::Error> {
                let mut all = Vec::new();
                while let Some(one) = seq.next_element::<S<String>>()? {
                    all.push(one);
                }
                Ok(Upstream::Many(all))
            }
        }
        d.deserialize_any(V)
    }
}

/// `max_body = 1048576` or `max_body = "10MiB"`.
#[derive(Debug)]
pub(super) enum ByteSize {
    Int(i64),
    Text(String),
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a size: a number of bytes, or a string like \"512KiB\", \"10MiB\"")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ByteSize, E> {
                Ok(ByteSize::Int(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ByteSize, E> {
                i64::try_from(v)
                    .map(ByteSize::Int)
                    .map_err(|_| E::custom("size too large"))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ByteSize, E> {
                Ok(ByteSize::Text(v.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}
