//! `gateway keygen`: a self-signed TLS certificate for localhost and a token-signing key pair.
