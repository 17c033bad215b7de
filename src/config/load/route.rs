//! Converts the `[[route]]` tables: path prefixes in their one normalised spelling, hosts,
//! methods, upstream addresses, body limits, and no two routes for the same (host, path).
//! A route's `issuers` and `claims_to_headers` are checked in `route_tokens.rs`.

use std::time::Duration;

use http::uri::Authority;
use http::Method;
use toml::Spanned;

use super::route_tokens::{self, Known};
use super::{opt, quoted, Cx};
use crate::config::document::Document;
use crate::config::file::{ByteSize, RouteFile, Upstream};
use crate::config::{AuthMode, Route, UpstreamProtocol};

const DEFAULT_MAX_BODY: u64 = 10 * 1024 * 1024;

/// The route table, in file order; `None` when any route is invalid or there is none.
pub(super) fn routes(cx: &mut Cx<'_>, doc: &Document) -> Option<Vec<Route>> {
    let mut out = Some(Vec::new());
    // (host, path, index) of the routes seen so far, to refuse a second identical one.
    let mut seen: Vec<(Option<String>, String, usize)> = Vec::new();
    let known = Known::new(doc);
    for (i, r) in &doc.routes {
        let route = route(cx, r.get_ref(), *i, &known);
        if let Some(route) = &route {
            let dup = seen
                .iter()
                .find(|(h, p, _)| *h == route.host && *p == route.path);
            if let Some((_, _, j)) = dup {
                let (line, _) = cx.errs.position(
                    doc.routes
                        .iter()
                        .find(|(k, _)| k == j)
                        .map_or(0, |(_, r)| r.span().start),
                );
                cx.err(
                    &r.get_ref().path,
                    &format!("route[{i}].path"),
                    format!(
                        "route[{j}] (line {line}) already has this {}path; each (host, path) may have one route",
                        if route.host.is_some() { "host and " } else { "" }
                    ),
                );
            } else {
                seen.push((route.host.clone(), route.path.clone(), *i));
            }
        }
        match (route, &mut out) {
            (Some(route), Some(all)) => all.push(route),
            (Some(_), None) => {}
            (None, all) => *all = None,
        }
    }
    let out = out?;
    // A file without any [[route]] already has an error (from `file::parse`); this only
    // guards the "never empty" promise of `Config::routes`.
    (!out.is_empty() && out.len() == doc.route_count).then_some(out)
}

fn route(cx: &mut Cx<'_>, r: &RouteFile, i: usize, known: &Known<'_>) -> Option<Route> {
    let k = |field: &str| format!("route[{i}].{field}");
    let path = match normalise_prefix(r.path.get_ref()) {
        Ok(p) => Some(p),
        Err(why) => {
            cx.err(
                &r.path,
                &k("path"),
                format!(
                    "expected a path prefix like \"/api/\", got {} ({why})",
                    quoted(r.path.get_ref())
                ),
            );
            None
        }
    };
    let host = opt(cx, r.host.as_ref(), |cx, v| host(cx, v, &k("host")));
    let methods = opt(cx, r.methods.as_ref(), |cx, v| {
        methods(cx, v, &k("methods"))
    });
    let upstreams = upstreams(cx, &r.upstream, &k("upstream"));
    let protocol = cx.choice(
        r.protocol.as_ref(),
        &k("protocol"),
        &[
            ("http1", UpstreamProtocol::Http1),
            ("h2c", UpstreamProtocol::H2c),
        ],
        UpstreamProtocol::Http1,
    );
    let auth = cx.choice(
        r.auth.as_ref(),
        &k("auth"),
        &[
            ("required", AuthMode::Required),
            ("optional", AuthMode::Optional),
            ("public", AuthMode::Public),
        ],
        AuthMode::Required,
    );
    let roles = match &r.roles {
        None => Some(Vec::new()),
        Some(v) => roles(cx, v, &k("roles")),
    };
    if let (Some(AuthMode::Public), Some(rv)) = (auth, &r.roles) {
        if !rv.get_ref().is_empty() {
            cx.err(rv, &k("roles"), "a public route has no authenticated user whose roles could be checked; remove `roles` or set auth = \"required\"");
        }
    }
    let public = auth == Some(AuthMode::Public);
    let issuers = route_tokens::issuers(cx, r.issuers.as_ref(), &k("issuers"), public, known);
    let claims_to_headers = route_tokens::claims_to_headers(
        cx,
        r.claims_to_headers.as_ref(),
        &k("claims_to_headers"),
        public,
        known,
    );
    let timeout = cx.duration(
        r.timeout.as_ref(),
        &k("timeout"),
        Duration::from_secs(30),
        Duration::from_millis(10),
        Duration::from_secs(3600),
    );
    let max_body = match &r.max_body {
        None => Some(DEFAULT_MAX_BODY),
        Some(v) => {
            let parsed = match v.get_ref() {
                ByteSize::Int(n) => u64::try_from(*n).map_err(|_| n.to_string()),
                ByteSize::Text(s) => parse_size(s).ok_or_else(|| quoted(s)),
            };
            match parsed {
                Ok(n) => Some(n),
                Err(got) => {
                    cx.err(
                        v,
                        &k("max_body"),
                        format!("expected a size: a number of bytes, or a string like \"512KiB\", \"10MiB\", \"1GiB\", got {got}"),
                    );
                    None
                }
            }
        }
    };
    Some(Route {
        path: path?,
        host: host?,
        methods: methods?,
        upstreams: upstreams?,
        protocol: protocol?,
        auth: auth?,
        roles: roles?,
        strip_prefix: r.strip_prefix.as_ref().is_some_and(|b| *b.get_ref()),
        forward_token: r.forward_token.as_ref().is_some_and(|b| *b.get_ref()),
        timeout: timeout?,
        max_body: max_body?,
        issuers: issuers?,
        claims_to_headers: claims_to_headers?,
    })
}

/// The one spelling of a path prefix: starts with '/', no empty, "." or ".." segment, no
/// percent-escapes, no trailing '/' (except the root "/"). The error is the reason.
pub(super) fn normalise_prefix(p: &str) -> Result<String, &'static str> {
    if !p.starts_with('/') {
        return Err("it must start with '/'");
    }
    if p.contains('%') {
        return Err("write it without percent-escapes");
    }
    if let Some(c) = p.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(if c.is_ascii_whitespace() {
            "it cannot contain spaces"
        } else {
            "use only visible ASCII characters"
        });
    }
    if p.contains(['?', '#']) {
        return Err("a prefix has no query or fragment");
    }
    if p.contains('\\') {
        return Err("it cannot contain '\\'");
    }
    if p.contains("//") {
        return Err("it cannot contain an empty segment '//'");
    }
    if p.split('/').any(|seg| seg == "." || seg == "..") {
        return Err("it cannot contain a '.' or '..' segment");
    }
    Ok(match p.strip_suffix('/') {
        Some(s) if !s.is_empty() => s.to_owned(),
        _ => p.to_owned(),
    })
}

/// A host name or IP literal, without port; stored lower-case.
fn host(cx: &mut Cx<'_>, v: &Spanned<String>, key: &str) -> Option<String> {
    let h = v.get_ref().to_ascii_lowercase();
    let ipv6 = h
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .is_some_and(|s| s.parse::<std::net::Ipv6Addr>().is_ok());
    let name_ok = !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ipv6 || name_ok {
        return Some(h);
    }
    let reason = if !ipv6 && h.contains(':') && !h.starts_with('[') {
        format!(
            "expected a host name without port, like \"api.example.com\", got {}",
            quoted(v.get_ref())
        )
    } else {
        format!(
            "expected a host name like \"api.example.com\" (letters, digits, '-', '.'), got {}",
            quoted(v.get_ref())
        )
    };
    cx.err(v, key, reason);
    None
}

fn methods(cx: &mut Cx<'_>, v: &Spanned<Vec<Spanned<String>>>, key: &str) -> Option<Vec<Method>> {
    if v.get_ref().is_empty() {
        cx.err(v, key, "expected at least one method, like [\"GET\", \"POST\"]; leave `methods` out to allow every method");
        return None;
    }
    let mut out = Some(Vec::new());
    for (i, m) in v.get_ref().iter().enumerate() {
        let s = m.get_ref();
        let parsed = Method::from_bytes(s.as_bytes())
            .ok()
            .filter(|_| !s.bytes().any(|b| b.is_ascii_lowercase()));
        match (parsed, &mut out) {
            (Some(m), Some(all)) if !all.contains(&m) => all.push(m),
            (Some(_), _) => {}
            (None, all) => {
                let hint = if Method::from_bytes(s.to_ascii_uppercase().as_bytes()).is_ok()
                    && !s.is_empty()
                {
                    format!(" (methods are upper-case: \"{}\")", s.to_ascii_uppercase())
                } else {
                    String::new()
                };
                cx.err(
                    m,
                    &format!("{key}[{i}]"),
                    format!(
                        "expected an HTTP method like \"GET\", got {}{hint}",
                        quoted(s)
                    ),
                );
                *all = None;
            }
        }
    }
    out
}

fn roles(cx: &mut Cx<'_>, v: &Spanned<Vec<Spanned<String>>>, key: &str) -> Option<Vec<String>> {
    let mut out = Some(Vec::new());
    for (i, r) in v.get_ref().iter().enumerate() {
        let s = r.get_ref();
        let reason = if s.is_empty() {
            Some("expected a role name, got an empty string")
        } else if s
            .chars()
            .any(|c| c == ',' || c.is_whitespace() || c.is_control())
        {
            Some("roles travel comma-separated in the roles header, so a role cannot contain ',', spaces or control characters")
        } else {
            None
        };
        match (reason, &mut out) {
            (None, Some(all)) if !all.contains(s) => all.push(s.clone()),
            (None, _) => {}
            (Some(why), all) => {
                cx.err(r, &format!("{key}[{i}]"), why);
                *all = None;
            }
        }
    }
    out
}

fn upstreams(cx: &mut Cx<'_>, v: &Spanned<Upstream>, key: &str) -> Option<Vec<Authority>> {
    match v.get_ref() {
        Upstream::One(s) => upstream(s)
            .map_err(|why| cx.err(v, key, why))
            .ok()
            .map(|a| vec![a]),
        Upstream::Many(list) if list.is_empty() => {
            cx.err(v, key, "expected at least one \"http://host:port\"");
            None
        }
        Upstream::Many(list) => {
            let mut out = Some(Vec::new());
            for (i, s) in list.iter().enumerate() {
                match (upstream(s.get_ref()), &mut out) {
                    (Ok(a), Some(all)) => all.push(a),
                    (Ok(_), None) => {}
                    (Err(why), all) => {
                        cx.err(s, &format!("{key}[{i}]"), why);
                        *all = None;
                    }
                }
            }
            out
        }
    }
}

/// `http://host:port`, nothing more: the authority is what the forwarder connects to.
fn upstream(s: &str) -> Result<Authority, String> {
    let expected = |extra: &str| format!("expected \"http://host:port\"{extra}, got {}", quoted(s));
    let Ok(uri) = s.parse::<http::Uri>() else {
        return Err(expected(""));
    };
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(format!(
                "https upstreams are not supported yet; use \"http://host:port\", got {}",
                quoted(s)
            ))
        }
        _ => return Err(expected("")),
    }
    let Some(auth) = uri.authority() else {
        return Err(expected(""));
    };
    if auth.as_str().contains('@') {
        return Err(expected(" (no user or password)"));
    }
    if auth.host().is_empty() {
        return Err(expected(""));
    }
    if auth.port_u16().is_none_or(|p| p == 0) {
        return Err(expected(" (the port is required)"));
    }
    let path = uri.path();
    if uri.query().is_some() || !(path.is_empty() || path == "/") || s.ends_with('?') {
        return Err(expected(
            " (no path or query: the request's path is appended)",
        ));
    }
    Ok(auth.clone())
}

/// "1048576", "512KiB", "10MiB", "1GiB", "5MB"... into bytes.
fn parse_size(s: &str) -> Option<u64> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(end);
    let n: u64 = digits.parse().ok()?;
    let mult: u64 = match unit {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return None,
    };
    n.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_normalise_or_fail() {
        assert_eq!(normalise_prefix("/").as_deref(), Ok("/"));
        assert_eq!(normalise_prefix("/api/").as_deref(), Ok("/api"));
        assert_eq!(normalise_prefix("/api").as_deref(), Ok("/api"));
        assert_eq!(normalise_prefix("/a/b/").as_deref(), Ok("/a/b"));
        for bad in [
            "", "api", "/a//b", "//", "/a/../b", "/..", "/./a", "/a/.", "/%2e", "/a b", "/a?x",
            "/a#x", "/é", "/a\\b",
        ] {
            assert!(normalise_prefix(bad).is_err(), "{bad:?}");
        }
        assert_eq!(normalise_prefix("/a.b/..c").as_deref(), Ok("/a.b/..c"));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10MiB"), Some(10 << 20));
        assert_eq!(parse_size("512KiB"), Some(512 << 10));
        assert_eq!(parse_size("1GiB"), Some(1 << 30));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("5MB"), Some(5_000_000));
        for bad in [
            "",
            "MiB",
            "10 MiB",
            "1.5MiB",
            "-1",
            "10mib",
            "99999999999999999999GiB",
            "18446744073709551615GiB",
        ] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn upstream_addresses() {
        assert_eq!(
            upstream("http://127.0.0.1:9000").map(|a| a.to_string()),
            Ok("127.0.0.1:9000".into())
        );
        assert_eq!(
            upstream("http://backend:80/").map(|a| a.to_string()),
            Ok("backend:80".into())
        );
        assert_eq!(
            upstream("http://[::1]:9000").map(|a| a.to_string()),
            Ok("[::1]:9000".into())
        );
        for bad in [
            "ftp://x",
            "http://x",
            "http://x:0",
            "http://x:1/p",
            "http://x:1?q",
            "http://x:1/?q",
            "http://u@x:1",
            "x:1",
            "",
            "http://:1",
        ] {
            assert!(upstream(bad).is_err(), "{bad:?}");
        }
        assert!(upstream("https://x:443")
            .unwrap_err()
            .contains("not supported yet"));
    }
}
