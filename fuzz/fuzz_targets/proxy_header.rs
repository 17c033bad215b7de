//! PROXY protocol header parsing (v1 text and v2 binary), for `[listen] proxy_protocol`:
//! `gateway::listen::proxy_protocol::parse`, which `proxy_protocol::read` runs on the bytes it took.
//!
//! Seeds in fuzz/corpus/proxy_header/ (fuzz/make_seeds.py): v1 TCP4/TCP6/UNKNOWN, v2
//! PROXY/LOCAL, IPv4/IPv6/unix, TLVs, truncated and oversized headers, headers followed by
//! request bytes.
//!
//! Properties (beyond "never panics, whatever the bytes"):
//! - parsing the same bytes twice gives the same answer;
//! - an accepted (`Complete`) header's length is at most `data.len()`; a v1 header is at most
//!   107 bytes and ends in "\r\n"; a v2 header is 16 + its length field;
//! - an accepted v1 header's source is the address and port written in it, of the family it
//!   names (TCP4: IPv4, TCP6: IPv6), and its ports are written in digits only (no sign);
//! - v2 LOCAL, v2 AF_UNSPEC / AF_UNIX and v1 UNKNOWN yield no source: the peer address stays;
//! - bytes after an accepted header do not change the header parsed: the header alone, and
//!   the input with more bytes appended, parse to the same answer.
#![no_main]

use std::net::{IpAddr, SocketAddr};

use gateway::listen::proxy_protocol::{parse, Header, Parsed};
use libfuzzer_sys::fuzz_target;

const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

fuzz_target!(|data: &[u8]| {
    let parsed = parse(data);
    assert_eq!(parsed, parse(data), "not deterministic");
    let Ok(Parsed::Complete(h)) = parsed else {
        return;
    };
    assert!(
        h.len > 0 && h.len <= data.len(),
        "len {} of {}",
        h.len,
        data.len()
    );
    let header = &data[..h.len];
    if data.starts_with(V2_SIGNATURE) {
        check_v2(header, h);
    } else {
        check_v1(header, h);
    }
    // The request data behind the header is not part of it.
    assert_eq!(parse(header), parsed, "the header alone parses differently");
    let mut more = data.to_vec();
    more.extend_from_slice(b"\x16\x03\x01\x00\xa5\x01PROXY \r\n");
    assert_eq!(parse(&more), parsed, "appended bytes changed the header");
});

fn check_v1(header: &[u8], h: Header) {
    assert!(header.len() <= 107, "v1 header of {} bytes", header.len());
    assert!(
        header.ends_with(b"\r\n"),
        "v1 header without CRLF: {header:?}"
    );
    let text = std::str::from_utf8(header).expect("an accepted v1 header is text");
    let line = text.strip_suffix("\r\n").unwrap_or(text);
    let fields: Vec<&str> = line.split(' ').collect();
    assert_eq!(fields.first(), Some(&"PROXY"), "{text:?}");
    match fields.get(1).copied() {
        Some("UNKNOWN") => assert_eq!(h.source, None, "UNKNOWN gave a source: {text:?}"),
        Some(family @ ("TCP4" | "TCP6")) => {
            assert_eq!(fields.len(), 6, "{text:?}");
            for port in &fields[4..6] {
                assert!(
                    !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()),
                    "port {port:?} in {text:?}"
                );
            }
            let ip: IpAddr = fields[2].parse().expect("the source address");
            let port: u16 = fields[4].parse().expect("the source port");
            assert_eq!(ip.is_ipv4(), family == "TCP4", "{text:?}");
            let dst: IpAddr = fields[3].parse().expect("the destination address");
            assert_eq!(dst.is_ipv4(), family == "TCP4", "{text:?}");
            assert_eq!(h.source, Some(SocketAddr::new(ip, port)), "{text:?}");
        }
        other => panic!("v1 protocol {other:?} accepted: {text:?}"),
    }
}

fn check_v2(header: &[u8], h: Header) {
    let stated = usize::from(u16::from_be_bytes([header[14], header[15]]));
    assert_eq!(header.len(), 16 + stated, "v2 length");
    assert_eq!(header[12] >> 4, 2, "v2 version");
    let command = header[12] & 0x0f;
    let family = header[13] >> 4;
    match (command, family) {
        (0, _) => assert_eq!(h.source, None, "LOCAL gave a source"),
        (1, 1) => {
            let a = &header[16..28];
            let ip = std::net::Ipv4Addr::new(a[0], a[1], a[2], a[3]);
            let port = u16::from_be_bytes([a[8], a[9]]);
            assert_eq!(
                h.source,
                Some(SocketAddr::from((ip, port))),
                "v2 IPv4 source"
            );
        }
        (1, 2) => {
            let a = &header[16..52];
            let ip = std::net::Ipv6Addr::from(<[u8; 16]>::try_from(&a[..16]).expect("16 bytes"));
            let port = u16::from_be_bytes([a[32], a[33]]);
            assert_eq!(
                h.source,
                Some(SocketAddr::from((ip, port))),
                "v2 IPv6 source"
            );
        }
        (1, 0 | 3) => assert_eq!(h.source, None, "UNSPEC / UNIX gave a source"),
        _ => panic!("v2 command {command} family {family} accepted"),
    }
}
