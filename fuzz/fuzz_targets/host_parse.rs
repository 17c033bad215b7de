//! Host parsing as the TLS listener does it today: `gateway::fuzzing::request_host` (src/proxy.rs
//! `request_host`: exactly one of Host / `:authority`) then `gateway::routing::host_without_port`
//! (the name routes are matched on).
//!
//! TODO(host): point this target at `gateway::host::parse` once the Host rewrite is merged.
//!
//! Input: the first byte picks the version (odd: HTTP/2, even: HTTP/1.1); then text lines: the
//! request target, then one Host header per line. The whole input as a string is also fed to
//! `host_without_port` directly, to reach values no header could carry.
//!
//! Properties: two Host headers, or none on HTTP/1.1, are refused; an accepted host is
//! non-empty, has no userinfo, and is the Host header (or HTTP/2's `:authority`) as sent; a
//! routing name is lower-case, has no port, '/', '@' or space, and parses to itself again.
#![no_main]

use gateway::fuzzing::request_host;
use gateway::routing::host_without_port;
use http::header::HOST;
use http::{HeaderValue, Request, Uri, Version};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        routing_name(s);
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
        // TODO(host): with `gateway::host::parse`, also assert that `Host: a, b` and
        // `Host: a/path` are refused (issue 9); today's `request_host` still accepts them.
        assert!(!host.is_empty() && !host.contains('@'), "{host:?}");
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
