//! Hop-by-hop headers (RFC 9110 7.6.1) and those named in `Connection`, removed both ways.
