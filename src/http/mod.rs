//! Small HTTP protocol helpers the listeners, the proxy and the auth center share: bodies,
//! one valid `Host`, one canonical path, hop-by-hop headers, request ids, W3C trace context,
//! the client's address and forwarding headers, header limits. None of them knows a route, a
//! session or the application.

pub mod body;
pub mod client_addr;
pub mod header_limits;
pub mod hop_by_hop;
pub mod host;
pub mod path;
pub mod request_id;
pub mod trace_context;
