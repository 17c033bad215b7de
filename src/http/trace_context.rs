//! W3C Trace Context (`traceparent`, `tracestate`) on the way upstream: a well-formed
//! `traceparent` is kept as it came, so the upstream's spans join the caller's trace; when it is
//! absent, repeated or malformed a new trace starts (a fresh 16-byte trace id, 8-byte parent
//! id, flags `01`). `tracestate` only travels with a `traceparent` the client sent and that
//! was kept; a new trace drops it. The trace id goes to the access log. With OTLP export on,
//! the gateway has a span of its own: the header sent upstream names it as the parent.

use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;

pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub static TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// Length of a version-00 `traceparent`: `00-{32 hex}-{16 hex}-{2 hex}`.
const LEN_V00: usize = 55;

/// The trace context a request carries upstream.
#[derive(Debug, Clone)]
pub struct TraceContext {
    /// Always a well-formed `traceparent` (visible ASCII).
    traceparent: HeaderValue,
    /// True when the client's own header was kept.
    continued: bool,
}

impl TraceContext {
    /// Reads the request's `traceparent`: kept when exactly one well-formed value came, a new
    /// trace otherwise.
    pub fn from_request(headers: &HeaderMap) -> TraceContext {
        let mut all = headers.get_all(&TRACEPARENT).iter();
        if let (Some(v), None) = (all.next(), all.next()) {
            if well_formed(v.as_bytes()) {
                return TraceContext {
                    traceparent: v.clone(),
                    continued: true,
                };
            }
        }
        TraceContext::start()
    }

    /// A new trace: random non-zero ids, sampled.
    pub fn start() -> TraceContext {
        let trace_id: u128 = rand::random::<u128>().max(1);
        let parent_id: u64 = rand::random::<u64>().max(1);
        let value = format!("00-{trace_id:032x}-{parent_id:016x}-01");
        TraceContext {
            // Hex digits and dashes are always a valid header value.
            traceparent: HeaderValue::from_str(&value).unwrap_or_else(|_| {
                HeaderValue::from_static("00-00000000000000000000000000000001-0000000000000001-01")
            }),
            continued: false,
        }
    }

    /// The caller's trace id, span id and flags, when its `traceparent` was kept.
    pub fn caller(&self) -> Option<(u128, u64, u8)> {
        if !self.continued {
            return None;
        }
        // Well-formed: lower-case hex at these offsets.
        let s = self.traceparent.to_str().ok()?;
        let hex = |r: std::ops::Range<usize>| u128::from_str_radix(s.get(r)?, 16).ok();
        Some((hex(3..35)?, hex(36..52)? as u64, hex(53..55)? as u8))
    }

    /// The request now has a span of the gateway's own (OTLP export): the `traceparent` sent
    /// upstream names it as the parent, in `trace_id` (the caller's, or a new one).
    pub fn set_gateway_span(&mut self, trace_id: u128, span_id: u64, sampled: bool) {
        let value = format!(
            "00-{trace_id:032x}-{span_id:016x}-{:02x}",
            u8::from(sampled)
        );
        if let Ok(v) = HeaderValue::from_str(&value) {
            self.traceparent = v;
        }
    }

    /// The 32 hex digits of the trace id (for the access log).
    pub fn trace_id(&self) -> &str {
        // Bytes 3..35 of a well-formed value are ASCII hex digits.
        self.traceparent
            .to_str()
            .ok()
            .and_then(|s| s.get(3..35))
            .unwrap_or("-")
    }

    /// True when the client's `traceparent` was kept.
    pub fn is_continued(&self) -> bool {
        self.continued
    }

    pub fn traceparent(&self) -> &HeaderValue {
        &self.traceparent
    }

    /// Sets the upstream request's headers: exactly one `traceparent` (this one), and
    /// `tracestate` only when the client's trace is continued.
    pub fn apply(&self, headers: &mut HeaderMap) {
        headers.insert(TRACEPARENT.clone(), self.traceparent.clone());
        if !self.continued {
            headers.remove(&TRACESTATE);
        }
    }
}

fn is_lower_hex(b: &[u8]) -> bool {
    b.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

fn all_zero(b: &[u8]) -> bool {
    b.iter().all(|&c| c == b'0')
}

/// `version-traceid-parentid-flags`, lower-case hex, per W3C Trace Context: version `ff` is
/// invalid; version `00` is exactly 55 bytes; a later version may append `-...` fields; an
/// all-zero trace id or parent id is invalid.
fn well_formed(v: &[u8]) -> bool {
    if v.len() < LEN_V00 {
        return false;
    }
    let (version, trace_id, parent_id, flags) = (&v[0..2], &v[3..35], &v[36..52], &v[53..55]);
    let dashes = v[2] == b'-' && v[35] == b'-' && v[52] == b'-';
    if !dashes || !is_lower_hex(version) || version == b"ff" {
        return false;
    }
    if version == b"00" && v.len() != LEN_V00 {
        return false;
    }
    if v.len() > LEN_V00 && (v[LEN_V00] != b'-' || !v.iter().all(|c| c.is_ascii_graphic())) {
        return false;
    }
    is_lower_hex(trace_id)
        && is_lower_hex(parent_id)
        && is_lower_hex(flags)
        && !all_zero(trace_id)
        && !all_zero(parent_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn headers(tp: &[&str], ts: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in tp {
            h.append(&TRACEPARENT, HeaderValue::from_str(v).unwrap());
        }
        if let Some(ts) = ts {
            h.insert(&TRACESTATE, HeaderValue::from_str(ts).unwrap());
        }
        h
    }

    #[test]
    fn a_good_traceparent_and_its_tracestate_are_kept() {
        let mut h = headers(&[GOOD], Some("congo=t61rcWkgMzE"));
        let t = TraceContext::from_request(&h);
        assert!(t.is_continued());
        assert_eq!(t.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        t.apply(&mut h);
        assert_eq!(h[&TRACEPARENT], GOOD);
        assert_eq!(h[&TRACESTATE], "congo=t61rcWkgMzE");
    }

    #[test]
    fn malformed_ones_start_a_new_trace_and_drop_tracestate() {
        let bad = [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
        ];
        for b in bad {
            let mut h = headers(&[b], Some("congo=t61rcWkgMzE"));
            let t = TraceContext::from_request(&h);
            assert!(!t.is_continued(), "{b:?} was kept");
            t.apply(&mut h);
            let got = h[&TRACEPARENT].to_str().unwrap().to_owned();
            assert_ne!(got, b);
            assert!(well_formed(got.as_bytes()), "{got}");
            assert!(got.starts_with("00-") && got.ends_with("-01"), "{got}");
            assert_eq!(t.trace_id(), &got[3..35]);
            assert!(h.get(&TRACESTATE).is_none(), "{b:?}: tracestate kept");
        }
    }

    #[test]
    fn repeated_or_absent_headers_start_a_new_trace() {
        let t = TraceContext::from_request(&headers(&[GOOD, GOOD], None));
        assert!(!t.is_continued());
        let a = TraceContext::from_request(&HeaderMap::new());
        let b = TraceContext::from_request(&HeaderMap::new());
        assert!(!a.is_continued());
        assert_ne!(a.trace_id(), b.trace_id());
        assert_eq!(a.trace_id().len(), 32);
    }

    #[test]
    fn the_gateway_span_becomes_the_parent_upstream() {
        let mut h = headers(&[GOOD], Some("congo=t61rcWkgMzE"));
        let t = TraceContext::from_request(&h);
        let (trace_id, caller, flags) = t.caller().unwrap();
        assert_eq!(trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!((caller, flags), (0x00f067aa0ba902b7, 1));
        let mut t = t;
        t.set_gateway_span(trace_id, 0xabc, true);
        t.apply(&mut h);
        assert_eq!(
            h[&TRACEPARENT],
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000abc-01"
        );
        assert_eq!(h[&TRACESTATE], "congo=t61rcWkgMzE");
        assert_eq!(t.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(TraceContext::from_request(&HeaderMap::new())
            .caller()
            .is_none());
    }

    #[test]
    fn a_later_version_with_more_fields_is_kept() {
        let v = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds";
        assert!(TraceContext::from_request(&headers(&[v], None)).is_continued());
    }
}
