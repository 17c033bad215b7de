//! Converts the small tables: `[listen]`, `[runtime]`, `[tls]`, `[session]`, `[headers]`,
//! `[limits]` and `[demo]`, with their defaults and bounds.

use std::net::SocketAddr;
use std::time::Duration;

use http::header::HeaderName;
use toml::Spanned;

use super::{days, opt, quoted, Cx};
use crate::config::document::Document;
use crate::config::file::{
    DemoFile, HeadersFile, LimitsFile, ListenFile, OtlpFile, ReloadFile, RuntimeFile, SessionFile,
    TlsFile,
};
use crate::config::USUAL_IDENTITY_HEADERS as USUAL;
use crate::config::{
    Demo, Headers, Limits, Listen, Otlp, Redis, RedisNodes, RedisPassword, Reload, Runtime,
    Session, StoreKind, Tls, TlsVersion,
};

pub(super) fn listen(cx: &mut Cx<'_>, l: &Spanned<ListenFile>) -> Option<Listen> {
    let l = l.get_ref();
    let https = cx.addr(&l.https, "listen.https");
    let http = opt(cx, l.http.as_ref(), |cx, v| cx.addr(v, "listen.http"));
    let admin = opt(cx, l.admin.as_ref(), |cx, v| cx.addr(v, "listen.admin"));
    let trusted_proxies = trusted_proxies(cx, l.trusted_proxies.as_ref());
    let proxy_protocol = l.proxy_protocol.as_ref().map(|v| *v.get_ref());
    let redirect_port = match &l.redirect_port {
        None => Some(None),
        Some(_) => cx
            .int(
                l.redirect_port.as_ref(),
                "listen.redirect_port",
                443,
                1,
                65535,
            )
            .and_then(|n| u16::try_from(n).ok())
            .map(Some),
    };
    if let (Some(v), Some(t)) = (&l.proxy_protocol, &trusted_proxies) {
        if *v.get_ref() && t.is_empty() {
            cx.err(
                v,
                "listen.proxy_protocol",
                "needs listen.trusted_proxies: the addresses of the proxies that send the header",
            );
        }
    }
    Some(Listen {
        https: https?,
        http: http?,
        admin: admin?,
        trusted_proxies: crate::config::TrustedProxies::new(trusted_proxies?),
        proxy_protocol: proxy_protocol.unwrap_or(false),
        redirect_port: redirect_port?,
    })
}

/// `listen.trusted_proxies`: CIDRs (`"10.0.0.0/8"`, `"fd00::/8"`) or bare addresses (one host).
fn trusted_proxies(
    cx: &mut Cx<'_>,
    v: Option<&Spanned<Vec<Spanned<String>>>>,
) -> Option<Vec<ipnet::IpNet>> {
    let Some(list) = v else {
        return Some(Vec::new());
    };
    let mut out = Vec::with_capacity(list.get_ref().len());
    let mut ok = true;
    for (i, item) in list.get_ref().iter().enumerate() {
        let s = item.get_ref().trim();
        let parsed = match s.parse::<ipnet::IpNet>() {
            Ok(net) => Some(net.trunc()),
            Err(_) if !s.contains('/') => s.parse::<std::net::IpAddr>().ok().map(Into::into),
            Err(_) => None,
        };
        match parsed {
            Some(net) => out.push(net),
            None => {
                ok = false;
                cx.err(
                    item,
                    &format!("listen.trusted_proxies[{i}]"),
                    format!(
                        "expected an IP address or a CIDR like \"10.0.0.0/8\" or \"fd00::/8\", got {}",
                        quoted(item.get_ref())
                    ),
                );
            }
        }
    }
    ok.then_some(out)
}

/// Two listeners (or a listener and the demo upstream) on one address cannot both bind.
pub(super) fn distinct_addresses(cx: &mut Cx<'_>, doc: &Document, l: &Listen, demo: &Option<Demo>) {
    let Some(lf) = doc.listen.as_ref().map(Spanned::get_ref) else {
        return;
    };
    let mut seen: Vec<(SocketAddr, &str)> = vec![(l.https, "listen.https")];
    let mut check = |cx: &mut Cx<'_>, addr: SocketAddr, at: &Spanned<String>, key: &'static str| {
        // Port 0 asks the kernel for a free port: never a clash.
        if let Some((_, first)) = seen.iter().find(|(a, _)| *a == addr && addr.port() != 0) {
            cx.err(at, key, format!("{addr} is already used by {first}"));
        } else {
            seen.push((addr, key));
        }
    };
    if let (Some(a), Some(at)) = (l.http, &lf.http) {
        check(cx, a, at, "listen.http");
    }
    if let (Some(a), Some(at)) = (l.admin, &lf.admin) {
        check(cx, a, at, "listen.admin");
    }
    if let (Some(d), Some(df)) = (demo, &doc.demo) {
        check(cx, d.echo, &df.get_ref().echo, "demo.echo");
    }
}

pub(super) fn runtime(cx: &mut Cx<'_>, r: Option<&RuntimeFile>) -> Option<Runtime> {
    let workers = r.and_then(|r| r.workers.as_ref());
    Some(Runtime {
        workers: cx.usize(workers, "runtime.workers", 0, 0, 1024)?,
    })
}

pub(super) fn reload(cx: &mut Cx<'_>, r: Option<&ReloadFile>) -> Option<Reload> {
    let default = ReloadFile::default();
    let r = r.unwrap_or(&default);
    let interval = cx.duration(
        r.interval.as_ref(),
        "reload.interval",
        Duration::from_secs(2),
        Duration::from_millis(100),
        Duration::from_secs(3600),
    );
    Some(Reload {
        watch: r.watch.as_ref().map(|w| *w.get_ref()).unwrap_or(true),
        interval: interval?,
    })
}

pub(super) fn otlp(cx: &mut Cx<'_>, o: &Spanned<OtlpFile>) -> Option<Otlp> {
    let o = o.get_ref();
    let endpoint = super::jwt::secure_url(
        cx,
        &o.endpoint,
        "otlp.endpoint",
        "http://127.0.0.1:4318/v1/traces",
    );
    let service_name = match &o.service_name {
        Some(v) => cx.nonempty(v, "otlp.service_name", "a service name"),
        None => Some("gateway".to_owned()),
    };
    let timeout = cx.duration(
        o.timeout.as_ref(),
        "otlp.timeout",
        Duration::from_secs(10),
        Duration::from_millis(100),
        Duration::from_secs(60),
    );
    Some(Otlp {
        endpoint: endpoint?,
        service_name: service_name?,
        timeout: timeout?,
    })
}

pub(super) fn tls(cx: &mut Cx<'_>, t: &Spanned<TlsFile>) -> Option<Tls> {
    let t = t.get_ref();
    let cert = cx.path(&t.cert, "tls.cert");
    let key = cx.path(&t.key, "tls.key");
    let min_version = cx.choice(
        t.min_version.as_ref(),
        "tls.min_version",
        &[("1.2", TlsVersion::V1_2), ("1.3", TlsVersion::V1_3)],
        TlsVersion::V1_2,
    );
    let hsts = opt(cx, t.hsts.as_ref(), |cx, v| {
        cx.duration(
            Some(v),
            "tls.hsts",
            Duration::ZERO,
            Duration::ZERO,
            days(2 * 365),
        )
    });
    if let (Some(c), Some(k)) = (&cert, &key) {
        if c == k {
            cx.err(
                &t.key,
                "tls.key",
                "the key must be a different file from tls.cert",
            );
        }
    }
    Some(Tls {
        cert: cert?,
        key: key?,
        min_version: min_version?,
        hsts: hsts?,
        self_signed_if_missing: t
            .self_signed_if_missing
            .as_ref()
            .is_some_and(|b| *b.get_ref()),
    })
}

pub(super) fn session(cx: &mut Cx<'_>, s: Option<&SessionFile>) -> Option<Session> {
    let default = SessionFile::default();
    let s = s.unwrap_or(&default);
    let store = cx.choice(
        s.store.as_ref(),
        "session.store",
        &[("redis", StoreKind::Redis), ("memory", StoreKind::Memory)],
        StoreKind::Redis,
    );
    let redis = redis(cx, s);
    let key_prefix = match &s.key_prefix {
        None => Some("gw:".to_owned()),
        Some(v)
            if v.get_ref()
                .chars()
                .any(|c| c.is_whitespace() || c.is_control()) =>
        {
            cx.err(
                v,
                "session.key_prefix",
                "expected a prefix without spaces or control characters",
            );
            None
        }
        // On a cluster a brace would become (part of) every key's hash tag, and a session's
        // keys would land in different slots.
        Some(v) if s.redis_cluster.is_some() && v.get_ref().contains(['{', '}']) => {
            cx.err(
                v,
                "session.key_prefix",
                "with redis_cluster the prefix must not contain '{' or '}' (hash-tag braces)",
            );
            None
        }
        Some(v) => Some(v.get_ref().clone()),
    };
    let timeout = cx.duration(
        s.timeout.as_ref(),
        "session.timeout",
        Duration::from_millis(500),
        Duration::from_millis(1),
        Duration::from_secs(5),
    );
    let max_concurrent = cx.usize(
        s.max_concurrent.as_ref(),
        "session.max_concurrent",
        256,
        1,
        65_536,
    );
    Some(Session {
        store: store?,
        redis: redis?,
        key_prefix: key_prefix?,
        timeout: timeout?,
        max_concurrent: max_concurrent?,
        cache: s.cache.as_ref().is_none_or(|c| *c.get_ref()),
    })
}

/// `redis_url`, `redis_sentinel` or `redis_cluster` (one of them), the password's variable and
/// the CA.
fn redis(cx: &mut Cx<'_>, s: &SessionFile) -> Option<Redis> {
    let given = [
        s.redis_url
            .as_ref()
            .map(|v| (v.span(), "session.redis_url")),
        s.redis_sentinel
            .as_ref()
            .map(|v| (v.span(), "session.redis_sentinel")),
        s.redis_cluster
            .as_ref()
            .map(|v| (v.span(), "session.redis_cluster")),
    ];
    let given: Vec<_> = given.into_iter().flatten().collect();
    if let [(_, first), rest @ ..] = given.as_slice() {
        for (span, key) in rest {
            cx.errs.at(
                span.start,
                *key,
                format!("set exactly one of redis_url, redis_sentinel and redis_cluster ({first} is set too)"),
            );
        }
        if !rest.is_empty() {
            return None;
        }
    }
    let nodes = if let Some(v) = &s.redis_sentinel {
        cx.place(v, "session.redis_sentinel", None);
        let f = v.get_ref();
        let master = cx.nonempty(
            &f.master,
            "session.redis_sentinel.master",
            "the master's name",
        );
        let nodes = node_list(cx, &f.nodes, "session.redis_sentinel.nodes");
        RedisNodes::Sentinel {
            master: master?,
            nodes: nodes?,
        }
    } else if let Some(v) = &s.redis_cluster {
        cx.place(v, "session.redis_cluster", None);
        RedisNodes::Cluster(node_list(cx, v, "session.redis_cluster")?)
    } else {
        match &s.redis_url {
            None => RedisNodes::Url("redis://127.0.0.1:6379/0".to_owned()),
            Some(v) => RedisNodes::Url(redis_node(cx, v, "session.redis_url", true)?),
        }
    };
    let password = match &s.redis_password_env {
        None => Some(None),
        Some(v) => cx
            .secret_env(v, "session.redis_password_env")
            .and_then(|bytes| match String::from_utf8(bytes) {
                Ok(p) => Some(Some(RedisPassword(p))),
                Err(_) => {
                    cx.err(
                        v,
                        "session.redis_password_env",
                        "the password must be UTF-8 text",
                    );
                    None
                }
            }),
    };
    let mut redis = Redis {
        nodes,
        password: password?,
        ca: None,
    };
    if let Some(v) = &s.redis_ca {
        let path = cx.path(v, "session.redis_ca")?;
        if !redis.tls() {
            cx.err(
                v,
                "session.redis_ca",
                "redis_ca verifies rediss:// (TLS) nodes, and none is configured: use rediss:// or remove redis_ca",
            );
            return None;
        }
        redis.ca = Some(path);
    }
    Some(redis)
}

/// A list of node URLs (sentinels, cluster seeds): not empty, every one `redis://` or
/// `rediss://`, all of the same kind.
fn node_list(cx: &mut Cx<'_>, v: &Spanned<Vec<Spanned<String>>>, key: &str) -> Option<Vec<String>> {
    if v.get_ref().is_empty() {
        cx.err(
            v,
            key,
            "expected at least one node URL, like \"redis://10.0.0.1:26379\"",
        );
        return None;
    }
    let nodes: Vec<Option<String>> = v
        .get_ref()
        .iter()
        .enumerate()
        .map(|(i, n)| redis_node(cx, n, &format!("{key}[{i}]"), false))
        .collect();
    let nodes: Vec<String> = nodes.into_iter().collect::<Option<_>>()?;
    let tls = nodes.iter().filter(|n| n.starts_with("rediss://")).count();
    if tls != 0 && tls != nodes.len() {
        cx.err(
            v,
            key,
            "mixes redis:// and rediss:// nodes: use rediss:// (TLS) for all of them or for none",
        );
        return None;
    }
    Some(nodes)
}

/// One node's URL: `redis://` or `rediss://` (and a Unix socket where `unix` allows), one
/// that the Redis client parses, and never one that turns certificate checks off.
fn redis_node(cx: &mut Cx<'_>, v: &Spanned<String>, key: &str, unix: bool) -> Option<String> {
    use redis::IntoConnectionInfo;
    let u = v.get_ref();
    let schemes: &[&str] = if unix {
        &["redis://", "rediss://", "unix://", "redis+unix://"]
    } else {
        &["redis://", "rediss://"]
    };
    if !schemes
        .iter()
        .any(|p| u.starts_with(p) && u.len() > p.len())
    {
        let expected = if unix {
            "a URL starting with redis://, rediss:// (TLS) or unix://, like \"redis://127.0.0.1:6379/0\""
        } else {
            "a URL starting with redis:// or rediss:// (TLS), like \"redis://10.0.0.1:26379\""
        };
        cx.err(v, key, format!("expected {expected}, got {}", quoted(u)));
        return None;
    }
    if u.contains('#') {
        // redis-rs reads `#insecure` as "accept any certificate": a certificate that does not
        // verify must fail the connection, never be let through.
        cx.err(
            v,
            key,
            "a URL fragment (#insecure turns certificate checks off) is not allowed: to trust a private CA, set session.redis_ca",
        );
        return None;
    }
    if let Err(e) = u.as_str().into_connection_info() {
        cx.err(v, key, format!("not a Redis URL: {e}"));
        return None;
    }
    Some(u.clone())
}

/// Headers an identity header must never be: hop-by-hop, framing, routing and credential
/// headers that a proxy or backend gives a meaning of their own.
const RESERVED_HEADERS: &[&str] = &[
    "accept",
    "accept-encoding",
    "authorization",
    "cache-control",
    "connection",
    "content-encoding",
    "content-length",
    "content-type",
    "cookie",
    "date",
    "expect",
    "forwarded",
    "host",
    "keep-alive",
    "location",
    "origin",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "range",
    "referer",
    "server",
    "set-cookie",
    "strict-transport-security",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "via",
    "www-authenticate",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-proto",
    "x-real-ip",
    "x-request-id",
];

/// A header name of the gateway's own choosing (identity, assertion, a claim): valid, and
/// none of [`RESERVED_HEADERS`] nor a `Sec-*` or `If-*` header. `example` names a good one.
pub(super) fn header_name(
    cx: &mut Cx<'_>,
    v: &Spanned<String>,
    key: &str,
    example: &str,
) -> Option<HeaderName> {
    let Ok(name) = HeaderName::from_bytes(v.get_ref().as_bytes()) else {
        cx.err(
            v,
            key,
            format!(
                "expected a header name (letters, digits, '-'), like \"{example}\", got {}",
                quoted(v.get_ref())
            ),
        );
        return None;
    };
    if reserved(name.as_str()) {
        cx.err(
            v,
            key,
            format!(
                "{} is a standard header with its own meaning; pick a name of your own, like \"{example}\"",
                v.get_ref()
            ),
        );
        return None;
    }
    Some(name)
}

/// Whether a lower-case header name is one of [`RESERVED_HEADERS`] or a `Sec-*` or `If-*`
/// header.
pub(super) fn reserved(lower: &str) -> bool {
    RESERVED_HEADERS.contains(&lower) || lower.starts_with("sec-") || lower.starts_with("if-")
}

/// A header name as a backend may fold it: lower-case, '_' read as '-'.
pub(super) fn fold(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', "-")
}

/// The header names the gateway writes for an identity, folded ([`fold`]), each with what
/// names it: the configured identity headers (or their defaults), the usual names (stripped
/// from clients whatever `[headers]` says) and the assertion header. From the file as
/// written, so that a check against them needs `[headers]` to be valid in nothing else.
pub(super) fn identity_names(h: Option<&HeadersFile>) -> Vec<(String, String)> {
    let default = HeadersFile::default();
    let h = h.unwrap_or(&default);
    let configured = [
        (&h.user_id, "headers.user_id", Some("x-user-id")),
        (&h.roles, "headers.roles", Some("x-user-roles")),
        (&h.session_id, "headers.session_id", None),
        (&h.assertion, "headers.assertion", None),
    ];
    let mut out: Vec<(String, String)> = Vec::new();
    for (v, key, default) in configured {
        if let Some(name) = v.as_ref().map(|v| v.get_ref().as_str()).or(default) {
            out.push((fold(name), key.to_owned()));
        }
    }
    for usual in USUAL {
        if !out.iter().any(|(n, _)| n == usual) {
            out.push((
                usual.to_owned(),
                "the identity headers (their usual names are stripped from clients whatever [headers] says)".to_owned(),
            ));
        }
    }
    out
}

/// `[headers]`; `auth`: `None` without `[auth]`, else whether its signing key is a public-key
/// one (the assertion is signed with it, and backends verify it with the published JWKS).
pub(super) fn headers(
    cx: &mut Cx<'_>,
    h: Option<&HeadersFile>,
    auth: Option<bool>,
) -> Option<Headers> {
    let default = HeadersFile::default();
    let h = h.unwrap_or(&default);
    let user_id = match &h.user_id {
        Some(v) => header_name(cx, v, "headers.user_id", "X-User-Id"),
        None => Some(HeaderName::from_static("x-user-id")),
    };
    let roles = match &h.roles {
        Some(v) => header_name(cx, v, "headers.roles", "X-User-Roles"),
        None => Some(HeaderName::from_static("x-user-roles")),
    };
    let session_id = opt(cx, h.session_id.as_ref(), |cx, v| {
        header_name(cx, v, "headers.session_id", "X-Session-Id")
    });
    let assertion = opt(cx, h.assertion.as_ref(), |cx, v| {
        header_name(cx, v, "headers.assertion", "X-Gateway-Assertion")
    });
    // Distinct, also when '_' is read as '-' (some backends fold the two).
    let folded = |n: &HeaderName| fold(n.as_str());
    let named = [
        (user_id.as_ref(), h.user_id.as_ref(), "headers.user_id"),
        (roles.as_ref(), h.roles.as_ref(), "headers.roles"),
        (
            session_id.as_ref().and_then(Option::as_ref),
            h.session_id.as_ref(),
            "headers.session_id",
        ),
        (
            assertion.as_ref().and_then(Option::as_ref),
            h.assertion.as_ref(),
            "headers.assertion",
        ),
    ];
    for (i, (name, at, key)) in named.iter().enumerate() {
        let (Some(name), Some(at)) = (name, at) else {
            continue;
        };
        if let Some((_, _, other)) = named[..i]
            .iter()
            .find(|(n, _, _)| n.is_some_and(|n| folded(n) == folded(name)))
        {
            cx.err(
                at,
                key,
                format!("{} is already used by {other}", at.get_ref()),
            );
        }
    }
    if let Some(at) = &h.assertion {
        // The usual identity names are stripped from clients and read by backends as the
        // identity whatever `[headers]` says: never an assertion's name either (unless the
        // check above already said so).
        let usual = USUAL.iter().find(|u| **u == fold(at.get_ref()));
        let said = usual.is_some_and(|u| {
            named[..3]
                .iter()
                .any(|(n, _, _)| n.is_some_and(|n| folded(n) == *u))
        });
        if let (Some(Some(_)), Some(u), false) = (&assertion, usual, said) {
            cx.err(
                at,
                "headers.assertion",
                format!("{} is the usual name of an identity header ({u}), stripped from clients whatever [headers] says; pick another name, like \"X-Gateway-Assertion\"", at.get_ref()),
            );
        }
        match auth {
            None => cx.err(
                at,
                "headers.assertion",
                "needs [auth]: the assertion is signed with the auth center's signing key",
            ),
            Some(false) => cx.err(
                at,
                "headers.assertion",
                "needs auth.signing_key (a public-key signature that backends verify with /.well-known/jwks.json), not an HS256 secret that a backend would have to share",
            ),
            Some(true) => {}
        }
    }
    Some(Headers {
        user_id: user_id?,
        roles: roles?,
        session_id: session_id?,
        assertion: assertion?,
    })
}

pub(super) fn limits(cx: &mut Cx<'_>, l: Option<&LimitsFile>) -> Option<Limits> {
    let default = LimitsFile::default();
    let l = l.unwrap_or(&default);
    let ms = Duration::from_millis;
    let s = Duration::from_secs;
    let header_timeout = cx.duration(
        l.header_timeout.as_ref(),
        "limits.header_timeout",
        s(10),
        ms(100),
        s(30),
    );
    let max_header_bytes = cx.usize(
        l.max_header_bytes.as_ref(),
        "limits.max_header_bytes",
        32 * 1024,
        1024,
        1024 * 1024,
    );
    let max_headers = cx.usize(l.max_headers.as_ref(), "limits.max_headers", 100, 1, 10_000);
    let max_connections = cx.usize(
        l.max_connections.as_ref(),
        "limits.max_connections",
        10_000,
        1,
        1_000_000,
    );
    let h2_max_streams = cx
        .int(
            l.h2_max_streams.as_ref(),
            "limits.h2_max_streams",
            100,
            1,
            10_000,
        )
        .and_then(|n| u32::try_from(n).ok());
    let idle_timeout = cx.duration(
        l.idle_timeout.as_ref(),
        "limits.idle_timeout",
        s(60),
        ms(100),
        s(3600),
    );
    let body_idle_timeout = cx.duration(
        l.body_idle_timeout.as_ref(),
        "limits.body_idle_timeout",
        s(30),
        ms(100),
        s(3600),
    );
    let shutdown_grace = cx.duration(
        l.shutdown_grace.as_ref(),
        "limits.shutdown_grace",
        s(30),
        ms(0),
        s(3600),
    );
    let drain_linger = cx.duration(
        l.drain_linger.as_ref(),
        "limits.drain_linger",
        s(2),
        ms(0),
        s(60),
    );
    Some(Limits {
        drain_linger: drain_linger?,
        header_timeout: header_timeout?,
        max_header_bytes: max_header_bytes?,
        max_headers: max_headers?,
        max_connections: max_connections?,
        h2_max_streams: h2_max_streams?,
        idle_timeout: idle_timeout?,
        body_idle_timeout: body_idle_timeout?,
        shutdown_grace: shutdown_grace?,
    })
}

pub(super) fn demo(cx: &mut Cx<'_>, d: &Spanned<DemoFile>) -> Option<Demo> {
    let at = &d.get_ref().echo;
    let echo = cx.addr(at, "demo.echo")?;
    if echo.ip().is_loopback() {
        Some(Demo { echo })
    } else {
        cx.err(
            at,
            "demo.echo",
            format!("the demo echo upstream listens on loopback only (like \"127.0.0.1:9000\"), got \"{echo}\""),
        );
        None
    }
}
