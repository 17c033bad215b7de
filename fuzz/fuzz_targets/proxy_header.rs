//! PROXY protocol header parsing (v1 text and v2 binary), for `[listen] proxy_protocol`.
//!
//! TODO(proxy_protocol): call `gateway::proxy_protocol::parse(data)` once that module is merged
//! (it is being written on another branch; its exact signature is not known here). Until then
//! this target is a stub that only proves the harness builds; scripts/fuzz.sh leaves it out of
//! its default list and fuzz/RESULTS.md reports no run for it. The seeds in
//! fuzz/corpus/proxy_header/ (v1 TCP4/TCP6/UNKNOWN, v2 PROXY/LOCAL, IPv4/IPv6/unix, TLVs,
//! truncated and oversized headers) are ready.
//!
//! Properties to assert once wired (adapt to the real return type):
//! - never panics, whatever the bytes (and never reads past `data`);
//! - an accepted header's length is at most `data.len()` (v1: at most 107 bytes, ending in
//!   "\r\n"; v2: 16 + the length field);
//! - an accepted v1 header's addresses are of the family it names (TCP4: IPv4, TCP6: IPv6), and
//!   its ports are 0..=65535 written without a sign or leading '+';
//! - v2 LOCAL (or v1 UNKNOWN) yields no client address: the peer address stays in force;
//! - parsing the same bytes twice gives the same answer, and appending bytes after an accepted
//!   header does not change the header parsed (the request data that follows is not consumed).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // TODO(proxy_protocol): replace with the real call, e.g.
    //   let parsed = gateway::proxy_protocol::parse(data);
    //   let again = gateway::proxy_protocol::parse(data);
    //   assert_eq!(format!("{parsed:?}"), format!("{again:?}"));
    //   if let Ok(p) = &parsed { /* the properties above */ }
    let _ = data;
});
