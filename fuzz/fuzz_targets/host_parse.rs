//! Host parsing as the TLS listener does it: `gateway::fuzzing::request_host` (src/proxy.rs
//! `request_host`: exactly one of Host / `:authority`, checked by `gateway::http::host::parse`),
//! then `gateway::routing::host_without_port` (the name routes are matched on).
//!
//! Input: the first byte picks the version (odd: HTTP/2, even: HTTP/1.1); then text lines: the
//! request target, then one Host header per line. The whole input as a string (when it is
//! UTF-8) is also fed to `host::parse` and `host_without_port` directly, to reach values no
//! header could carry, and as the one Host header of an HTTP/1.1 request.
//!
//! Properties: two Host headers, or none on HTTP/1.1, are refused; an accepted host is
//! non-empty, has no userinfo, and is the Host header (or HTTP/2's `:authority`) as sent; a
//! routing name is lower-case, has no port, '/', '@' or space, and parses to itself again.
//! `host::parse`: what it accepts has no ',', '@', '/', whitespace or control character, a
//! port (if any) in 1..=65535, and gives the same answer reparsed from `name` or `name:port`
//! (`Host` has no rendering of its own); `request_host` refuses every Host header it refuses;
//! where it and `host_without_port` both accept, the routing name is its name lower-cased
//! without the one root dot.
#![no_main]

use gateway::fuzzing::request_host;
use gateway::http::host;
use gateway::routing::host_without_port;
use http::header::HOST;
use http::{HeaderValue, Request, Uri, Version};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        routing_name(s);
        host_parse(s);
        one_host_header(s);
    }
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let version = if flags & 1 == 1 {
        Version::HTTP_2
    } else {
        Version::HTTP_11
    };
    let mut lines = rest.split(|b| *b == b'\n');
    let target = lines
        .next()
        .and_then(|t| Uri::try_from(t).ok())
        .unwrap_or_else(|| Uri::from_static("/"));
    let mut builder = Request::builder().version(version).uri(target);
    let mut host_headers = Vec::new();
    for line in lines {
        if let Ok(v) = HeaderValue::from_bytes(line) {
            builder = builder.header(HOST, v.clone());
            host_headers.push(v);
        }
    }
    let Ok(req) = builder.body(()) else {
        return;
    };
    let host = request_host(&req);
    match host_headers.as_slice() {
        [_, _, ..] => assert!(host.is_err(), "two Host headers accepted: {host:?}"),
        [] if version == Version::HTTP_11 => {
            assert!(host.is_err(), "HTTP/1.1 without Host accepted: {host:?}")
        }
        [h] => {
            let parsed = h.to_str().ok().map(host::parse);
            if !matches!(parsed, Some(Ok(_))) {
                assert!(host.is_err(), "host::parse refuses {h:?}: {parsed:?}");
            }
            if let Ok(host) = &host {
                assert_eq!(h.as_bytes(), host.as_bytes(), "not the Host header as sent");
            }
        }
        [] => {
            if let Ok(host) = &host {
                let authority = req.uri().authority().map(|a| a.as_str());
                assert_eq!(authority, Some(host.as_str()), "not :authority as sent");
            }
        }
    }
    if let Ok(host) = host {
        assert!(!host.is_empty() && !host.contains('@'), "{host:?}");
        assert!(
            !host.contains([',', '/']) && host::parse(&host).is_ok(),
            "{host:?}"
        );
        routing_name(&host);
    }
});

/// `host_without_port` on `s`: a name it returns is canonical.
fn routing_name(s: &str) {
    let Some(name) = host_without_port(s) else {
        return;
    };
    assert!(!name.is_empty(), "{s:?}");
    assert_eq!(name, name.to_ascii_lowercase(), "not lower-case: {s:?}");
    assert!(
        !name.contains(['/', '@', ' ', '\\', '?', '#']),
        "{s:?} -> {name:?}"
    );
    if !name.starts_with('[') {
        assert!(!name.contains(':'), "a port left: {s:?} -> {name:?}");
    }
    assert_eq!(
        host_without_port(&name).as_deref(),
        Some(name.as_str()),
        "not a fixed point: {s:?} -> {name:?}"
    );
}

/// `host::parse` on `s`: what it accepts is one clean host, and parses to itself again.
fn host_parse(s: &str) {
    let Ok(h) = host::parse(s) else {
        return;
    };
    assert!(
        !h.name.is_empty() && s.starts_with(h.name),
        "{s:?} -> {h:?}"
    );
    for text in [h.name, s] {
        assert!(
            !text.contains(|c: char| matches!(c, ',' | '@' | '/')
                || c.is_whitespace()
                || c.is_control()),
            "{s:?} -> {h:?}"
        );
    }
    assert_ne!(h.port, Some(0), "{s:?}");
    match h.port {
        None => assert_eq!(s, h.name, "{s:?} -> {h:?}"),
        Some(p) => {
            let tail = &s[h.name.len()..];
            let digits = tail.strip_prefix(':').expect("a ':' before the port");
            assert_eq!(
                digits.trim_start_matches('0'),
                p.to_string(),
                "{s:?} -> {h:?}"
            );
        }
    }
    // `Host` has no rendering of its own: `name` and `name:port` are how it is written.
    assert_eq!(
        host::parse(h.name),
        Ok(host::Host {
            name: h.name,
            port: None
        }),
        "name {s:?}"
    );
    if let Some(p) = h.port {
        let rendered = format!("{}:{p}", h.name);
        assert_eq!(host::parse(&rendered), Ok(h), "{s:?} rendered {rendered:?}");
    }
    // Where routing accepts it too, both read the same name.
    if let Some(route) = host_without_port(s) {
        let name = h.name.to_ascii_lowercase();
        let want = if name.starts_with('[') {
            name.as_str()
        } else {
            name.strip_suffix('.').unwrap_or(&name)
        };
        assert_eq!(
            route, want,
            "host::parse and host_without_port disagree on {s:?}"
        );
    }
}

/// `s` as the one Host header of an HTTP/1.1 request for "/": `request_host` refuses it when
/// `host::parse` does, and otherwise gives it back as sent.
fn one_host_header(s: &str) {
    let Ok(v) = HeaderValue::from_str(s) else {
        return;
    };
    let req = Request::builder()
        .version(Version::HTTP_11)
        .uri("/")
        .header(HOST, v)
        .body(())
        .expect("a request");
    match (host::parse(s), request_host(&req)) {
        (Err(e), Ok(got)) => panic!("host::parse refuses {s:?} ({e}), request_host gives {got:?}"),
        (Ok(_), got) => assert_eq!(got.as_deref().ok(), Some(s), "{s:?}"),
        (Err(_), Err(_)) => {}
    }
}
