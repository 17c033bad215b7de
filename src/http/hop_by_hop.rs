//! Hop-by-hop headers (RFC 9110 7.6.1) and those named in `Connection`, removed both ways.
//!
//! hyper does not do this for a proxy. The removal must run *before* the gateway sets any
//! header of its own (identity, `X-Forwarded-*`): a client that lists `X-User-Id` in
//! `Connection` must never make the gateway drop the header it injected (Traefik
//! CVE-2021-32813, CVE-2024-45410). Run [`remove`] first, then strip and set identity.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// The headers that are hop-by-hop whatever `Connection` says.
const ALWAYS: [HeaderName; 10] = [
    header::CONNECTION,
    // Only meaningful with `Upgrade: h2c` (RFC 7540 3.2.1), which is never passed on.
    HeaderName::from_static("http2-settings"),
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes every hop-by-hop header: the fixed list and every header named in any `Connection`
/// value (comma lists, any case, any whitespace).
pub fn remove(headers: &mut HeaderMap) {
    for name in connection_named(headers) {
        headers.remove(name);
    }
    for name in &ALWAYS {
        headers.remove(name);
    }
}

/// The `Upgrade` value when the message asks for a protocol upgrade: a `Connection` header
/// holding the `upgrade` token and exactly one `Upgrade` header. Several `Upgrade` headers are
/// taken as no upgrade rather than guessed between.
pub fn upgrade_requested(headers: &HeaderMap) -> Option<HeaderValue> {
    let asks = headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|value| tokens(value.as_bytes()))
        .any(|token| token.eq_ignore_ascii_case(b"upgrade"));
    if !asks {
        return None;
    }
    let mut upgrades = headers.get_all(header::UPGRADE).iter();
    match (upgrades.next(), upgrades.next()) {
        // WebSocket is the one upgrade a proxy passes: `h2c` would turn the connection into a
        // tunnel past routing and authorisation (h2c smuggling), and nothing else is needed.
        (Some(value), None) if value.as_bytes().eq_ignore_ascii_case(b"websocket") => {
            Some(value.clone())
        }
        _ => None,
    }
}

/// Like [`remove`], but when the message asks for an upgrade (see [`upgrade_requested`])
/// puts back `Connection: upgrade` and its `Upgrade` value, so a WebSocket handshake can pass.
/// Returns the `Upgrade` value kept, if any.
pub fn remove_keep_upgrade(headers: &mut HeaderMap) -> Option<HeaderValue> {
    let upgrade = upgrade_requested(headers);
    remove(headers);
    if let Some(value) = &upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, value.clone());
    }
    upgrade
}

/// Whether a `TE` header holds the `trailers` token. `TE` is removed by [`remove`]; an HTTP/2
/// (h2c) upstream that serves gRPC expects `te: trailers`, so the forwarder may put that exact
/// value back for such routes.
pub fn wants_trailers(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::TE)
        .iter()
        .flat_map(|value| tokens(value.as_bytes()))
        .any(|token| {
            // A `TE` member may carry parameters: `trailers;q=1` is not valid, but be lenient.
            let name = token.split(|&b| b == b';').next().unwrap_or(token);
            trim(name).eq_ignore_ascii_case(b"trailers")
        })
}

/// The header names listed in the `Connection` headers. Tokens that are not valid header names
/// (`close` is one that is, harmlessly) are skipped: no such header can be present.
fn connection_named(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|value| tokens(value.as_bytes()))
        .filter_map(|token| HeaderName::from_bytes(token).ok())
        .collect()
}

/// The non-empty members of a comma-separated list, with optional whitespace trimmed.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim)
        .filter(|t| !t.is_empty())
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        headers
    }

    fn names(headers: &HeaderMap) -> Vec<&str> {
        let mut names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        names
    }

    #[test]
    fn removes_the_fixed_list() {
        let mut headers = map(&[
            ("Connection", "close"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Connection", "keep-alive"),
            ("Proxy-Authenticate", "Basic"),
            ("Proxy-Authorization", "Basic eA=="),
            ("TE", "trailers"),
            ("Trailer", "X-Checksum"),
            ("Transfer-Encoding", "chunked"),
            ("Upgrade", "websocket"),
            ("Host", "example.com"),
            ("Content-Type", "text/plain"),
            ("Authorization", "Bearer x"),
        ]);
        remove(&mut headers);
        assert_eq!(names(&headers), ["authorization", "content-type", "host"]);
    }

    #[test]
    fn removes_headers_named_in_connection() {
        let mut headers = map(&[
            ("Connection", "X-Foo ,  x-bar,,\tX-BAZ\t"),
            ("Connection", "keep-alive, X-Qux"),
            ("X-Foo", "1"),
            ("x-bar", "2"),
            ("X-Baz", "3"),
            ("X-Baz", "3b"),
            ("X-Qux", "4"),
            ("X-Keep", "5"),
        ]);
        remove(&mut headers);
        assert_eq!(names(&headers), ["x-keep"]);
    }

    #[test]
    fn odd_connection_tokens_are_harmless() {
        let mut headers = map(&[
            ("Connection", "close, not a name, ,x-keep-not"),
            ("X-Keep", "1"),
        ]);
        remove(&mut headers);
        assert_eq!(names(&headers), ["x-keep"]);

        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_bytes(b"\xff\xfe, x-a").expect("obs-text is a valid value"),
        );
        headers.insert("x-a", HeaderValue::from_static("1"));
        headers.insert("x-b", HeaderValue::from_static("2"));
        remove(&mut headers);
        assert_eq!(names(&headers), ["x-b"]);
    }

    #[test]
    fn upgrade_is_recognised_and_kept() {
        let ws = [
            ("Connection", "keep-alive, Upgrade"),
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Keep-Alive", "timeout=5"),
        ];
        assert_eq!(upgrade_requested(&map(&ws)).expect("upgrade"), "websocket");

        let mut headers = map(&ws);
        assert_eq!(
            remove_keep_upgrade(&mut headers).expect("kept"),
            "websocket"
        );
        assert_eq!(headers[header::CONNECTION], "upgrade");
        assert_eq!(headers[header::UPGRADE], "websocket");
        assert_eq!(
            names(&headers),
            ["connection", "sec-websocket-key", "upgrade"]
        );
    }

    #[test]
    fn no_upgrade_without_both_headers() {
        assert_eq!(upgrade_requested(&map(&[("Upgrade", "websocket")])), None);
        assert_eq!(upgrade_requested(&map(&[("Connection", "upgrade")])), None);
        assert_eq!(
            upgrade_requested(&map(&[
                ("Connection", "upgrades"),
                ("Upgrade", "websocket")
            ])),
            None
        );
        let twice = [
            ("Connection", "upgrade"),
            ("Upgrade", "websocket"),
            ("Upgrade", "h2c"),
        ];
        assert_eq!(upgrade_requested(&map(&twice)), None);

        let mut headers = map(&[("Upgrade", "websocket"), ("X-A", "1")]);
        assert_eq!(remove_keep_upgrade(&mut headers), None);
        assert_eq!(names(&headers), ["x-a"]);
    }

    #[test]
    fn upgrade_keeps_no_other_connection_named_header() {
        let mut headers = map(&[
            ("Connection", "Upgrade, X-User-Id"),
            ("Upgrade", "websocket"),
            ("X-User-Id", "mallory"),
        ]);
        remove_keep_upgrade(&mut headers);
        assert_eq!(names(&headers), ["connection", "upgrade"]);
        assert_eq!(headers[header::CONNECTION], "upgrade");
    }

    #[test]
    fn trailers_in_te() {
        assert!(wants_trailers(&map(&[("TE", "trailers")])));
        assert!(wants_trailers(&map(&[("TE", "gzip, Trailers")])));
        assert!(!wants_trailers(&map(&[("TE", "gzip")])));
        assert!(!wants_trailers(&HeaderMap::new()));
    }
}
