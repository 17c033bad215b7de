//! The one notion of "the client's address", used by the access log, the login lockout,
//! `bind_refresh = "ip"` and the `X-Forwarded-For` sent upstream, and the forwarding headers
//! the upstream gets.
//!
//! The connection's peer is the TCP peer, or with `listen.proxy_protocol` the PROXY header's
//! source. A client can write any header, so forwarding headers are believed only from a peer
//! in `listen.trusted_proxies`: then the client is the nearest address in `X-Forwarded-For`,
//! walking from the right, that is not itself trusted (each trusted hop vouches for the one
//! before it, and no further). From anyone else the peer is the client, and every forwarding
//! header it sent is replaced by the gateway's own.

use std::net::{IpAddr, SocketAddr};

use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::config::TrustedProxies;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
static FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// The client's address for a request that came from `peer`. Its port is the peer's when the
/// address is the peer's, else 0 (`X-Forwarded-For` carries no port).
pub fn resolve(peer: SocketAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> SocketAddr {
    let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
    if !trusted.contains(peer.ip()) {
        return peer;
    }
    // The farthest address reached so far that a trusted hop vouched for.
    let mut nearest = peer;
    for entry in forwarded_for(headers).rev() {
        let Some(ip) = parse_entry(entry) else {
            // Not an address ("unknown", garbage): nothing beyond it can be vouched for.
            return nearest;
        };
        nearest = SocketAddr::new(ip, 0);
        if !trusted.contains(ip) {
            return nearest;
        }
    }
    nearest
}

/// The entries of every `X-Forwarded-For` line, in order (empty entries skipped). Lines are
/// split as bytes, so one unreadable entry (a client's `\x80`, which a proxy merges into the
/// same line as its own entry) cannot hide the readable ones beside it: it reads as
/// `unknown`, which stops the walk in [`resolve`] where it stands.
fn forwarded_for(headers: &HeaderMap) -> impl DoubleEndedIterator<Item = &str> {
    let entries: Vec<&str> = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(|e| std::str::from_utf8(e).map_or("unknown", str::trim))
        .filter(|e| !e.is_empty())
        .collect();
    entries.into_iter()
}

/// One `X-Forwarded-For` entry: `1.2.3.4`, `2001:db8::1`, `[2001:db8::1]`, or any of them
/// with a port (`1.2.3.4:5678`, `[2001:db8::1]:5678`), as some proxies write.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(sa) = entry.parse::<SocketAddr>() {
        return Some(sa.ip().to_canonical());
    }
    entry
        .strip_prefix('[')
        .and_then(|e| e.strip_suffix(']'))
        .and_then(|e| e.parse::<std::net::Ipv6Addr>().ok())
        .map(|ip| IpAddr::V6(ip).to_canonical())
}

/// Sets the forwarding headers of a request going upstream. `X-Forwarded-For`: the trusted
/// peer's chain with the peer appended, or only the peer. `X-Real-IP`: the resolved client.
/// `X-Forwarded-Proto` and `X-Forwarded-Host`: the gateway's own view. `Forwarded` and
/// `X-Forwarded-Port` are dropped: many load balancers pass the client's copies through
/// untouched, so only `X-Forwarded-For`, which they append to, is believed from a proxy.
pub fn set_forwarding_headers(
    h: &mut HeaderMap,
    peer: SocketAddr,
    client: SocketAddr,
    trusted: &TrustedProxies,
    host: &str,
) {
    let peer_ip = peer.ip().to_canonical();
    let mut chain = String::new();
    if trusted.contains(peer_ip) {
        for entry in forwarded_for(h) {
            chain.push_str(entry);
            chain.push_str(", ");
        }
    }
    chain.push_str(&peer_ip.to_string());
    let names = [
        &X_FORWARDED_FOR,
        &X_FORWARDED_HOST,
        &X_FORWARDED_PROTO,
        &X_FORWARDED_PORT,
        &X_REAL_IP,
        &FORWARDED,
    ];
    // Every copy in any case (`HeaderName` is lower-case), and the underscore spellings that
    // CGI-style backends fold into the same variable (`X_Forwarded_For`).
    let doomed: Vec<HeaderName> = h
        .keys()
        .filter(|k| {
            let k = k.as_str();
            names.iter().any(|n| {
                n.as_str().len() == k.len()
                    && n.as_str()
                        .bytes()
                        .zip(k.bytes())
                        .all(|(a, b)| a == b || (a == b'-' && b == b'_'))
            })
        })
        .cloned()
        .collect();
    for name in doomed {
        h.remove(name);
    }
    let peer_only = || HeaderValue::from_str(&peer_ip.to_string()).ok();
    if let Some(v) = HeaderValue::from_str(&chain).ok().or_else(peer_only) {
        h.insert(X_FORWARDED_FOR.clone(), v);
    }
    if let Ok(v) = HeaderValue::from_str(&client.ip().to_string()) {
        h.insert(X_REAL_IP.clone(), v);
    }
    h.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("https"));
    if let Ok(v) = HeaderValue::from_str(host) {
        h.insert(X_FORWARDED_HOST.clone(), v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted(nets: &[&str]) -> TrustedProxies {
        TrustedProxies::new(nets.iter().map(|n| n.parse().expect("net")).collect())
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_str(v).expect("value"));
        }
        h
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("socket address")
    }

    #[test]
    fn untrusted_peer_is_the_client_whatever_it_sends() {
        let t = trusted(&["10.0.0.0/8"]);
        let got = resolve(addr("192.0.2.7:4000"), &xff(&["198.51.100.1"]), &t);
        assert_eq!(got, addr("192.0.2.7:4000"));
        let none = TrustedProxies::default();
        let got = resolve(addr("10.0.0.1:4000"), &xff(&["198.51.100.1"]), &none);
        assert_eq!(got, addr("10.0.0.1:4000"));
    }

    #[test]
    fn trusted_hops_are_walked_from_the_right() {
        let t = trusted(&["10.0.0.0/8", "192.168.1.1/32"]);
        let h = xff(&["203.0.113.9, 198.51.100.1", "192.168.1.1, 10.1.2.3"]);
        let got = resolve(addr("10.0.0.1:4000"), &h, &t);
        // 198.51.100.1 is the nearest untrusted one; 203.0.113.9 is its claim, not believed.
        assert_eq!(got.ip(), "198.51.100.1".parse::<IpAddr>().expect("ip"));
    }

    #[test]
    fn all_trusted_or_garbage_stops_at_the_farthest_vouched_address() {
        let t = trusted(&["10.0.0.0/8"]);
        let got = resolve(addr("10.0.0.1:1"), &xff(&["10.9.9.9"]), &t);
        assert_eq!(got.ip(), "10.9.9.9".parse::<IpAddr>().expect("ip"));
        let got = resolve(
            addr("10.0.0.1:1"),
            &xff(&["1.1.1.1, unknown, 10.2.2.2"]),
            &t,
        );
        assert_eq!(got.ip(), "10.2.2.2".parse::<IpAddr>().expect("ip"));
        let got = resolve(addr("10.0.0.1:1"), &HeaderMap::new(), &t);
        assert_eq!(got, addr("10.0.0.1:1"));
    }

    #[test]
    fn entries_with_ports_brackets_and_mapped_addresses() {
        let t = trusted(&["10.0.0.0/8"]);
        for (entry, want) in [
            ("198.51.100.1:5678", "198.51.100.1"),
            ("[2001:db8::1]:443", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("::ffff:198.51.100.1", "198.51.100.1"),
        ] {
            let got = resolve(addr("10.0.0.1:1"), &xff(&[entry]), &t);
            assert_eq!(got.ip().to_string(), want, "{entry}");
        }
        // A mapped peer address matches an IPv4 network.
        let got = resolve(addr("[::ffff:10.0.0.1]:1"), &xff(&["198.51.100.1"]), &t);
        assert_eq!(got.ip().to_string(), "198.51.100.1");
    }

    #[test]
    fn untrusted_forwarding_headers_are_replaced() {
        let t = trusted(&["10.0.0.0/8"]);
        let mut h = xff(&["1.2.3.4", "5.6.7.8"]);
        for (n, v) in [
            ("x_forwarded_for", "1.2.3.4"),
            ("x_real_ip", "1.2.3.4"),
            ("forwarded", "for=1.2.3.4"),
            ("x-real-ip", "1.2.3.4"),
            ("x-forwarded-host", "evil.example"),
            ("x-forwarded-proto", "http"),
            ("x-forwarded-port", "80"),
        ] {
            h.append(n, HeaderValue::from_static(v));
        }
        let peer = addr("192.0.2.7:4000");
        set_forwarding_headers(&mut h, peer, peer, &t, "api.example.com");
        assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(h["x-forwarded-for"], "192.0.2.7");
        assert_eq!(h["x-real-ip"], "192.0.2.7");
        assert_eq!(h["x-forwarded-host"], "api.example.com");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert!(h.get("forwarded").is_none());
        assert!(h.get("x-forwarded-port").is_none());
        assert!(h.get("x_forwarded_for").is_none());
        assert!(h.get("x_real_ip").is_none());
    }

    #[test]
    fn trusted_chain_is_appended_to() {
        let t = trusted(&["10.0.0.0/8"]);
        let mut h = xff(&["198.51.100.1", "10.1.1.1"]);
        let peer = addr("10.0.0.1:4000");
        let client = resolve(peer, &h, &t);
        set_forwarding_headers(&mut h, peer, client, &t, "a");
        assert_eq!(h["x-forwarded-for"], "198.51.100.1, 10.1.1.1, 10.0.0.1");
        assert_eq!(h["x-real-ip"], "198.51.100.1");
    }

    #[test]
    fn an_unreadable_entry_does_not_hide_the_proxys_own() {
        let trusted = TrustedProxies::new(vec!["::1/128".parse().unwrap()]);
        let mut h = HeaderMap::new();
        h.insert(
            &X_FORWARDED_FOR,
            HeaderValue::from_bytes(b"\x80, 127.0.0.1").unwrap(),
        );
        let peer: SocketAddr = "[::1]:4000".parse().unwrap();
        assert_eq!(resolve(peer, &h, &trusted).ip().to_string(), "127.0.0.1");
        // Unreadable and nearest: the walk stops at the last trusted hop.
        h.insert(
            &X_FORWARDED_FOR,
            HeaderValue::from_bytes(b"1.2.3.4, \x80").unwrap(),
        );
        assert_eq!(resolve(peer, &h, &trusted), peer);
    }
}
