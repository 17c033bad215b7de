//! Serde shapes that mirror gateway.toml one to one.
