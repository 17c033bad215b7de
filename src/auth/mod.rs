//! Authentication: the token (bearer.rs), its signature and claims (jwt.rs), the session
//! behind it (session.rs). Only this module can build an [`Authenticated`].

pub mod bearer;
pub mod jwt;
pub mod mint;
pub mod session;
