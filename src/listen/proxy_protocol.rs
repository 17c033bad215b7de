//! The PROXY protocol (v1 text, v2 binary) that load balancers put before the TLS bytes to
//! say who connected to them. Parsing is `ppp`'s; this module adds what the gateway needs:
//! [`parse`], total over any bytes (a fuzz target calls it), and [`read`], which consumes
//! exactly the header from the socket, never a byte of the TLS handshake behind it.

use std::net::SocketAddr;

use ppp::v1;
use ppp::v2::{self, Command, Protocol};
use ppp::{HeaderResult, PartialResult};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The v2 signature (12 bytes) that starts every binary header.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// A v1 header is at most 107 bytes, `\r\n` included.
const V1_MAX: usize = 107;
/// A v2 header is 16 bytes and its stated length. TLVs from a load balancer are small (an
/// endpoint id, an ALPN); the protocol allows 64 KiB, which a gateway has no need to hold.
pub const V2_MAX: usize = 16 + 4096;

/// A complete, valid header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// How many bytes of the input it took.
    pub len: usize,
    /// The original client: `None` for a v2 LOCAL header (a health check by the proxy
    /// itself), v1 `UNKNOWN`, or an address family that is not IP: the TCP peer stands.
    pub source: Option<SocketAddr>,
}

/// What [`parse`] makes of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// A valid header so far; more bytes are needed.
    Incomplete,
    Complete(Header),
}

/// Why bytes are not a PROXY header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyHeaderError {
    #[error("not a PROXY protocol header")]
    Invalid,
    #[error("PROXY v2 header longer than {V2_MAX} bytes")]
    TooLong,
    #[error("PROXY v2 header for a datagram or unspecified transport")]
    NotStream,
    #[error("connection closed before the PROXY header was complete")]
    Closed,
    #[error("cannot read the PROXY header: {0}")]
    Io(String),
}

/// Parses a PROXY v1 or v2 header at the start of `buf`. Never panics.
pub fn parse(buf: &[u8]) -> Result<Parsed, ProxyHeaderError> {
    if buf.len() >= 16 && buf.starts_with(V2_SIGNATURE) {
        let stated = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
        if 16 + stated > V2_MAX {
            return Err(ProxyHeaderError::TooLong);
        }
    }
    let result = HeaderResult::parse(buf);
    if result.is_incomplete() {
        // ppp reads a v1 line with missing fields as "more to come"; once its '\n' is
        // there, nothing more can come.
        let v1_line_ended =
            matches!(result, HeaderResult::V1(_)) && buf.iter().take(V1_MAX).any(|&b| b == b'\n');
        if v1_line_ended {
            return Err(ProxyHeaderError::Invalid);
        }
        return Ok(Parsed::Incomplete);
    }
    match result {
        HeaderResult::V1(Ok(h)) => from_v1(&h).map(Parsed::Complete),
        HeaderResult::V2(Ok(h)) => from_v2(&h).map(Parsed::Complete),
        HeaderResult::V1(Err(_)) | HeaderResult::V2(Err(_)) => Err(ProxyHeaderError::Invalid),
    }
}

fn from_v1(h: &v1::Header<'_>) -> Result<Header, ProxyHeaderError> {
    // ppp took an UNKNOWN line ending in a bare '\n'; the protocol's line ends in "\r\n".
    if !h.header.ends_with("\r\n") {
        return Err(ProxyHeaderError::Invalid);
    }
    // ppp reads a port with Rust's `u16::from_str`, which takes a leading '+'; the protocol's
    // ports are digits only.
    if !matches!(h.addresses, v1::Addresses::Unknown) {
        let line = h.header.trim_end_matches(['\r', '\n']);
        if !line
            .rsplit(' ')
            .take(2)
            .all(|port| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(ProxyHeaderError::Invalid);
        }
    }
    let source = match h.addresses {
        v1::Addresses::Tcp4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        v1::Addresses::Tcp6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        v1::Addresses::Unknown => None,
    };
    Ok(Header {
        len: h.header.len(),
        source,
    })
}

fn from_v2(h: &v2::Header<'_>) -> Result<Header, ProxyHeaderError> {
    let ip = match h.addresses {
        v2::Addresses::IPv4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        v2::Addresses::IPv6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        v2::Addresses::Unspecified | v2::Addresses::Unix(_) => None,
    };
    let source = match h.command {
        Command::Local => None,
        // A relayed IP connection must have been TCP: this listener speaks TLS over TCP.
        Command::Proxy if ip.is_some() && h.protocol != Protocol::Stream => {
            return Err(ProxyHeaderError::NotStream)
        }
        Command::Proxy => ip,
    };
    Ok(Header {
        len: h.len(),
        source,
    })
}

/// Reads one PROXY header from `io`, taking exactly its bytes: v2 in two exact reads (the
/// fixed 16 bytes, then the stated length), v1 byte by byte up to its `\n` (107 at most). The
/// caller bounds the time.
pub async fn read<R: AsyncRead + Unpin>(io: &mut R) -> Result<Header, ProxyHeaderError> {
    let mut buf = vec![0u8; 8];
    // Both versions are longer than 8 bytes (v1 "PROXY UNKNOWN\r\n" is 15, v2 16).
    read_exact(io, &mut buf).await?;
    if buf[..] == V2_SIGNATURE[..8] {
        buf.resize(16, 0);
        read_exact(io, &mut buf[8..]).await?;
        let stated = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
        if 16 + stated > V2_MAX {
            return Err(ProxyHeaderError::TooLong);
        }
        buf.resize(16 + stated, 0);
        read_exact(io, &mut buf[16..]).await?;
    } else if buf.starts_with(b"PROXY ") {
        while buf.last() != Some(&b'\n') && buf.len() < V1_MAX {
            let mut one = [0u8; 1];
            read_exact(io, &mut one).await?;
            buf.push(one[0]);
        }
    } else {
        return Err(ProxyHeaderError::Invalid);
    }
    match parse(&buf)? {
        Parsed::Complete(h) if h.len == buf.len() => Ok(h),
        Parsed::Complete(_) | Parsed::Incomplete => Err(ProxyHeaderError::Invalid),
    }
}

async fn read_exact<R: AsyncRead + Unpin>(
    io: &mut R,
    buf: &mut [u8],
) -> Result<(), ProxyHeaderError> {
    match io.read_exact(buf).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(ProxyHeaderError::Closed),
        Err(e) => Err(ProxyHeaderError::Io(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(command: u8, family: u8, addr: &[u8], tlvs: &[u8]) -> Vec<u8> {
        let mut b = V2_SIGNATURE.to_vec();
        b.push(0x20 | command);
        b.push(family);
        let len = (addr.len() + tlvs.len()) as u16;
        b.extend_from_slice(&len.to_be_bytes());
        b.extend_from_slice(addr);
        b.extend_from_slice(tlvs);
        b
    }

    const V4_ADDR: [u8; 12] = [198, 51, 100, 7, 10, 0, 0, 1, 0x1f, 0x90, 0x01, 0xbb];

    #[test]
    fn v1_tcp4_tcp6_unknown() {
        let h = b"PROXY TCP4 198.51.100.7 10.0.0.1 8080 443\r\nTLS";
        let want = Header {
            len: h.len() - 3,
            source: Some("198.51.100.7:8080".parse().expect("addr")),
        };
        assert_eq!(parse(h), Ok(Parsed::Complete(want)));
        let h = b"PROXY TCP6 2001:db8::7 2001:db8::1 1 443\r\n";
        let Ok(Parsed::Complete(got)) = parse(h) else {
            panic!("v1 tcp6")
        };
        assert_eq!(got.source, Some("[2001:db8::7]:1".parse().expect("addr")));
        let h = b"PROXY UNKNOWN\r\n";
        assert_eq!(
            parse(h),
            Ok(Parsed::Complete(Header {
                len: 15,
                source: None
            }))
        );
    }

    #[test]
    fn v2_proxy_local_and_tlvs() {
        let h = v2(1, 0x11, &V4_ADDR, &[]);
        let Ok(Parsed::Complete(got)) = parse(&h) else {
            panic!("v2 proxy")
        };
        assert_eq!(got.len, 28);
        assert_eq!(got.source, Some("198.51.100.7:8080".parse().expect("addr")));
        let h = v2(0, 0x00, &[], &[]);
        assert_eq!(
            parse(&h),
            Ok(Parsed::Complete(Header {
                len: 16,
                source: None
            }))
        );
        let h = v2(1, 0x11, &V4_ADDR, &[0x04, 0x00, 0x01, 0x00]);
        let Ok(Parsed::Complete(got)) = parse(&h) else {
            panic!("v2 with a NOOP TLV")
        };
        assert_eq!(got.len, h.len());
    }

    #[test]
    fn partial_headers_ask_for_more() {
        let full = v2(1, 0x11, &V4_ADDR, &[]);
        for n in 0..full.len() {
            assert_eq!(parse(&full[..n]), Ok(Parsed::Incomplete), "v2 first {n}");
        }
        // v1 is judged once its line is there ([`read`] waits for the '\n'); before that,
        // some cuts already read as incomplete.
        let full = "PROXY TCP4 198.51.100.7 10.0.0.1 8080 443\r\n";
        for n in [1, 5, 6, 9, full.len() - 2, full.len() - 1] {
            let part = &full.as_bytes()[..n];
            assert_eq!(parse(part), Ok(Parsed::Incomplete), "v1 first {n}");
        }
    }

    #[test]
    fn garbage_and_bad_headers_are_refused() {
        for bad in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n",
            b"PROXY TCP4 1.2.3.4\r\n",
            b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        // Version 1 in the binary form, a bad command, a datagram relay, too long.
        let mut h = v2(1, 0x11, &V4_ADDR, &[]);
        h[12] = 0x11;
        assert!(parse(&h).is_err());
        assert!(parse(&v2(5, 0x11, &V4_ADDR, &[])).is_err());
        assert_eq!(
            parse(&v2(1, 0x12, &V4_ADDR, &[])),
            Err(ProxyHeaderError::NotStream)
        );
        let mut h = v2(1, 0x11, &V4_ADDR, &[]);
        h[14..16].copy_from_slice(&u16::MAX.to_be_bytes());
        assert_eq!(parse(&h), Err(ProxyHeaderError::TooLong));
    }

    #[test]
    fn never_panics_on_mutated_headers() {
        let seeds = [
            b"PROXY TCP4 198.51.100.7 10.0.0.1 8080 443\r\n".to_vec(),
            b"PROXY TCP6 2001:db8::7 2001:db8::1 1 443\r\n".to_vec(),
            v2(1, 0x11, &V4_ADDR, &[0x04, 0x00, 0x01, 0x00]),
            v2(1, 0x21, &[0; 36], &[]),
            v2(1, 0x31, &[0; 216], &[]),
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for i in 0..20_000 {
            let mut b = seeds[i % seeds.len()].clone();
            for _ in 0..(next() % 4 + 1) {
                let at = (next() as usize) % (b.len() + 1);
                match next() % 3 {
                    0 if at < b.len() => b[at] = next() as u8,
                    1 => b.truncate(at),
                    _ => b.insert(at.min(b.len()), next() as u8),
                }
            }
            if let Ok(Parsed::Complete(h)) = parse(&b) {
                assert!(h.len <= b.len(), "{b:?}");
            }
        }
    }

    #[tokio::test]
    async fn read_takes_exactly_the_header() {
        for header in [
            b"PROXY TCP4 198.51.100.7 10.0.0.1 8080 443\r\n".to_vec(),
            b"PROXY UNKNOWN\r\n".to_vec(),
            v2(1, 0x11, &V4_ADDR, &[0x04, 0x00, 0x01, 0x00]),
        ] {
            let mut input = header.clone();
            input.extend_from_slice(b"\x16\x03\x01rest");
            let mut io = &input[..];
            let got = read(&mut io).await.expect("a header");
            assert_eq!(got.len, header.len());
            assert_eq!(io, b"\x16\x03\x01rest");
        }
        let mut io = &b"\x16\x03\x01\x02\x00\x01\x00\x01"[..];
        assert_eq!(read(&mut io).await, Err(ProxyHeaderError::Invalid));
        let mut io = &b"PROXY TC"[..];
        assert_eq!(read(&mut io).await, Err(ProxyHeaderError::Closed));
        let mut io = &[b'P'; 200][..];
        assert_eq!(read(&mut io).await, Err(ProxyHeaderError::Invalid));
    }

    #[test]
    fn v1_port_with_a_plus_sign_is_refused() {
        // Found by the proxy_header fuzz target: ppp accepted "+1" as a port.
        for bad in [
            &b"PROXY TCP4 1.2.3.4 5.6.7.8 65535 +1\r\n"[..],
            b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 443\r\n",
            b"PROXY TCP6 ::1 ::2 +8080 443\r\n",
        ] {
            assert_eq!(parse(bad), Err(ProxyHeaderError::Invalid), "{bad:?}");
        }
    }

    #[test]
    fn v1_line_without_cr_is_refused() {
        // Found by the proxy_header fuzz target: ppp took an UNKNOWN line ending in '\n' alone.
        for bad in [
            &b"PROXY UNKNOWN fffffff 5f 536 5PROXY \n"[..],
            b"PROXY UNKNOWN\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 443\n",
        ] {
            assert_eq!(parse(bad), Err(ProxyHeaderError::Invalid), "{bad:?}");
        }
    }
}
