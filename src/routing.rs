//! The route table: (host, normalised path) -> the longest whole-segment prefix route.
