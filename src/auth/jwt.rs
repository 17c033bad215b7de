//! JWT verification with a pinned algorithm list, keys by kid, and a JWKS cache.
