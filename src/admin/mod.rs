//! The admin listener's answers: probes, `/metrics`, and session administration.

pub mod sessions;
