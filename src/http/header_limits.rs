//! The request header bounds of `[limits]`, checked by the gateway itself so that a request
//! over them gets the JSON 431 every other refusal gets (request id, metrics, access log) on
//! HTTP/1.1 and HTTP/2 alike; hyper and h2 keep a looser bound of their own ([`backstop`])
//! that only protects memory.

use http::header::COOKIE;
use http::HeaderMap;

use crate::config::Limits;

/// A request's header section as HTTP/1.1 would send it: for each field, name + value + 4
/// (`": "` and CRLF). HTTP/2 may send `Cookie` as one field per cookie (RFC 9113 8.2.3); all
/// `Cookie` fields count as the one field HTTP/1.1 sends, joined by `"; "`. Neither the
/// request line nor HTTP/2 pseudo-headers (`:method`, `:path`, `:authority`...) count, so a
/// request measures the same on both protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measure {
    pub bytes: usize,
    pub fields: usize,
}

pub fn measure(h: &HeaderMap) -> Measure {
    let (mut bytes, mut fields) = (0usize, 0usize);
    let (mut crumbs, mut crumb_bytes) = (0usize, 0usize);
    for (name, value) in h {
        if name == COOKIE {
            crumbs += 1;
            crumb_bytes += value.len();
        } else {
            fields += 1;
            bytes += name.as_str().len() + value.len() + 4;
        }
    }
    if crumbs > 0 {
        fields += 1;
        bytes += "cookie".len() + 4 + crumb_bytes + 2 * (crumbs - 1);
    }
    Measure { bytes, fields }
}

/// False when the headers measure more than `max_header_bytes` or number more than
/// `max_headers` (the caller answers 431).
pub fn within(h: &HeaderMap, limits: &Limits) -> bool {
    let m = measure(h);
    m.bytes <= limits.max_header_bytes && m.fields <= limits.max_headers
}

/// What hyper (HTTP/1.1 read buffer, header count) and h2 (`SETTINGS_MAX_HEADER_LIST_SIZE`,
/// which clients such as curl respect before sending) are told: twice `[limits]`, at least
/// 64 KiB and 200 fields, so a head somewhat over the limit still reaches [`check`] and its
/// JSON answer. Past it the HTTP layer refuses the head itself (a bare 431, connection closed on
/// HTTP/1.1; a 431 and a stream reset on HTTP/2). Memory: hyper grows a connection's read
/// buffer only as a head needs, so the worst case is `max_connections` half-sent heads of
/// this size for at most `header_timeout` (10 000 x 64 KiB = 640 MiB with the defaults, twice
/// the limit's own 320 MiB): 2x, not more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backstop {
    pub bytes: usize,
    pub fields: usize,
}

pub fn backstop(limits: &Limits) -> Backstop {
    Backstop {
        bytes: limits.max_header_bytes.saturating_mul(2).max(64 * 1024),
        fields: limits.max_headers.saturating_mul(2).max(200),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn counts_name_value_and_four_bytes_per_field() {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("localhost"));
        h.append("x-a", HeaderValue::from_static("1"));
        h.append("x-a", HeaderValue::from_static("22"));
        assert_eq!(
            measure(&h),
            Measure {
                bytes: (4 + 9 + 4) + (3 + 1 + 4) + (3 + 2 + 4),
                fields: 3
            }
        );
        assert_eq!(
            measure(&HeaderMap::new()),
            Measure {
                bytes: 0,
                fields: 0
            }
        );
    }

    #[test]
    fn cookie_crumbs_count_as_the_one_http1_field() {
        let mut split = HeaderMap::new();
        split.append(COOKIE, HeaderValue::from_static("a=1"));
        split.append(COOKIE, HeaderValue::from_static("bb=22"));
        let mut joined = HeaderMap::new();
        joined.insert(COOKIE, HeaderValue::from_static("a=1; bb=22"));
        assert_eq!(measure(&split), measure(&joined));
        assert_eq!(
            measure(&joined),
            Measure {
                bytes: 6 + 10 + 4,
                fields: 1
            }
        );
    }

    fn limits(bytes: usize, count: usize) -> Limits {
        use std::time::Duration;
        Limits {
            header_timeout: Duration::from_secs(10),
            max_header_bytes: bytes,
            max_headers: count,
            max_connections: 10,
            h2_max_streams: 100,
            idle_timeout: Duration::from_secs(60),
            body_idle_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(30),
            drain_linger: Duration::from_secs(2),
        }
    }

    #[test]
    fn over_either_bound_is_refused() {
        let mut h = HeaderMap::new();
        h.insert("x-a", HeaderValue::from_static("12345"));
        // 3 + 5 + 4 = 12 bytes, one field.
        assert!(within(&h, &limits(12, 1)));
        assert!(!within(&h, &limits(11, 1)));
        h.insert("x-b", HeaderValue::from_static(""));
        assert!(!within(&h, &limits(1000, 1)));
    }

    #[test]
    fn backstop_is_twice_the_limit_with_a_floor() {
        let b = backstop(&limits(32 * 1024, 100));
        assert_eq!((b.bytes, b.fields), (64 * 1024, 200));
        let b = backstop(&limits(1024 * 1024, 10_000));
        assert_eq!((b.bytes, b.fields), (2 * 1024 * 1024, 20_000));
        let b = backstop(&limits(1024, 1));
        assert_eq!((b.bytes, b.fields), (64 * 1024, 200));
    }
}
