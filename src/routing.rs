//! The route table: (host, normalised path) -> the longest whole-segment prefix route.
//!
//! Matching rules, in order:
//! 1. the route's prefix matches the normalised path on whole segments (`/api` matches `/api`,
//!    `/api/` and `/api/x`, never `/apix`; `/` matches everything);
//! 2. a route with a `host` matches only that host (case-insensitive, port stripped);
//! 3. the longest prefix wins; at equal length a host-specific route beats a host-less one;
//!    among equal candidates the first configured wins.
//!
//! The table is sorted once so that rule 3 is the scan order: [`RouteTable::find`] returns the
//! first route that passes rules 1 and 2. Routes are few (tens at most), so a linear scan
//! over a contiguous slice is faster than any tree.

use std::sync::Arc;

use http::{HeaderValue, Method};

use crate::config::Route;

/// All routes, most specific first.
#[derive(Debug, Clone)]
pub struct RouteTable {
    /// Sorted by prefix length descending, then host-specific before host-less, then
    /// configuration order (the sort is stable).
    routes: Vec<Arc<Route>>,
}

impl RouteTable {
    pub fn new(routes: Vec<Route>) -> Self {
        let mut routes: Vec<Arc<Route>> = routes.into_iter().map(Arc::new).collect();
        routes.sort_by_key(|r| (std::cmp::Reverse(r.path.len()), r.host.is_none()));
        RouteTable { routes }
    }

    /// The route for a request to `host` (any case, no port: see [`host_without_port`]; `None`
    /// when the request named no usable host) and `path` (already normalised by
    /// [`crate::http::path::normalise`]).
    pub fn find(&self, host: Option<&str>, path: &str) -> Option<&Arc<Route>> {
        self.routes.iter().find(|route| {
            let host_ok = match (&route.host, host) {
                (None, _) => true,
                (Some(want), Some(got)) => want.eq_ignore_ascii_case(got),
                (Some(_), None) => false,
            };
            host_ok && prefix_matches(&route.path, path)
        })
    }

    /// The routes in matching order.
    pub fn routes(&self) -> &[Arc<Route>] {
        &self.routes
    }
}

/// Whether `prefix` (a route path: starts with '/', no trailing '/' unless it is "/") matches
/// `path` on whole segments.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return path.starts_with('/');
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// The host part of a `Host` header or `:authority`, without the port and without a trailing
/// root dot (`Example.COM.:443` -> `Example.COM`; routes compare it ignoring ASCII case), so
/// that a route's `host` cannot be dodged by spelling the same name differently. IPv6 literals
/// keep their brackets (`[::1]:8443` -> `[::1]`). `None` for anything that is not a plain host.
/// A slice of `authority`: nothing is allocated per request.
pub fn host_without_port(authority: &str) -> Option<&str> {
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']')?;
        let (host, rest) = authority.split_at(end + 1);
        let inner = &host[1..host.len() - 1];
        if inner.is_empty()
            || !inner
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return None;
        }
        match rest {
            "" => (host, None),
            _ => (host, Some(rest.strip_prefix(':')?)),
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if let Some(port) = port {
        if port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
    }
    let host = if host.starts_with('[') {
        host
    } else {
        let host = host.strip_suffix('.').unwrap_or(host);
        // One root dot only: `a..` would give `a.`, a name that is not its own canonical form.
        if host.ends_with('.') {
            return None;
        }
        let reg_name_ok = host.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(b, b'-' | b'.' | b'_' | b'~' | b'!' | b'$' | b'&' | b'\'')
                || matches!(b, b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=')
        });
        if !reg_name_ok {
            return None;
        }
        host
    };
    if host.is_empty() {
        return None;
    }
    Some(host)
}

/// Whether `route` accepts `method` (a route without `methods` accepts every method).
pub fn allows(route: &Route, method: &Method) -> bool {
    match &route.methods {
        None => true,
        Some(methods) => methods.contains(method),
    }
}

/// The `Allow` header for a 405 from `route`: its methods, comma-separated. `None` when the
/// route accepts every method (it never answers 405).
pub fn allow_header(route: &Route) -> Option<HeaderValue> {
    let methods = route.methods.as_ref()?;
    let joined = methods
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    // A method is an RFC 9110 token, which is always a valid header value.
    HeaderValue::try_from(joined).ok()
}

/// The path the upstream receives for the normalised `path` that matched `route`: the same
/// path, or with the route's prefix removed when `strip_prefix` is set (`/api/x` -> `/x`,
/// `/api` and `/api/` -> `/`).
pub fn upstream_path(route: &Route, path: &str) -> String {
    if !route.strip_prefix || route.path == "/" {
        return path.to_owned();
    }
    match path.strip_prefix(route.path.as_str()) {
        Some("") => "/".to_owned(),
        Some(rest) if rest.starts_with('/') => rest.to_owned(),
        // Not a path this route matched; leave it whole rather than cut mid-segment.
        _ => path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::{AuthMode, UpstreamProtocol};

    fn route(path: &str, host: Option<&str>, upstream: &str) -> Route {
        Route {
            path: path.to_owned(),
            host: host.map(str::to_owned),
            methods: None,
            upstreams: vec![upstream.parse().expect("authority")],
            protocol: UpstreamProtocol::Http1,
            auth: AuthMode::Required,
            roles: Vec::new(),
            strip_prefix: false,
            forward_token: false,
            timeout: Duration::from_secs(30),
            max_body: 10 << 20,
            issuers: vec![crate::config::OWN_ISSUER.to_owned()],
            claims_to_headers: Vec::new(),
        }
    }

    /// The first upstream of the route found, as a label.
    fn found(table: &RouteTable, host: Option<&str>, path: &str) -> Option<String> {
        table
            .find(host, path)
            .map(|r| r.upstreams[0].as_str().to_owned())
    }

    #[test]
    fn longest_prefix_on_whole_segments() {
        let table = RouteTable::new(vec![
            route("/", None, "root:1"),
            route("/api", None, "api:1"),
            route("/api/admin", None, "admin:1"),
        ]);
        let cases = [
            ("/", "root:1"),
            ("/x", "root:1"),
            ("/api", "api:1"),
            ("/api/", "api:1"),
            ("/api/x", "api:1"),
            ("/apix", "root:1"),
            ("/api/adminx", "api:1"),
            ("/api/admin", "admin:1"),
            ("/api/admin/", "admin:1"),
            ("/api/admin/users", "admin:1"),
        ];
        for (path, want) in cases {
            assert_eq!(found(&table, None, path).as_deref(), Some(want), "{path}");
        }
    }

    #[test]
    fn no_route_without_a_root() {
        let table = RouteTable::new(vec![route("/api", None, "api:1")]);
        assert_eq!(found(&table, None, "/apix"), None);
        assert_eq!(found(&table, None, "/"), None);
        assert_eq!(found(&table, None, "/ap"), None);
    }

    #[test]
    fn host_routes_match_only_their_host() {
        let table = RouteTable::new(vec![
            route("/", None, "any:1"),
            route("/", Some("api.example.com"), "host:1"),
            route("/admin", Some("admin.example.com"), "admin:1"),
        ]);
        assert_eq!(
            found(&table, Some("api.example.com"), "/x").as_deref(),
            Some("host:1")
        );
        assert_eq!(
            found(&table, Some("API.Example.com"), "/x").as_deref(),
            Some("host:1")
        );
        assert_eq!(
            found(&table, Some("other.example.com"), "/x").as_deref(),
            Some("any:1")
        );
        assert_eq!(found(&table, None, "/x").as_deref(), Some("any:1"));
        assert_eq!(found(&table, None, "/admin").as_deref(), Some("any:1"));
        assert_eq!(
            found(&table, Some("admin.example.com"), "/admin/x").as_deref(),
            Some("admin:1")
        );
    }

    #[test]
    fn longer_prefix_beats_host_and_host_beats_hostless_at_equal_length() {
        let table = RouteTable::new(vec![
            route("/api", None, "any-api:1"),
            route("/", Some("h.example"), "h-root:1"),
            route("/api/v1", None, "any-v1:1"),
            route("/api", Some("h.example"), "h-api:1"),
        ]);
        assert_eq!(
            found(&table, Some("h.example"), "/api/x").as_deref(),
            Some("h-api:1")
        );
        assert_eq!(
            found(&table, Some("h.example"), "/api/v1").as_deref(),
            Some("any-v1:1")
        );
        assert_eq!(
            found(&table, Some("h.example"), "/z").as_deref(),
            Some("h-root:1")
        );
        assert_eq!(
            found(&table, Some("g.example"), "/api").as_deref(),
            Some("any-api:1")
        );
        assert_eq!(found(&table, Some("g.example"), "/z"), None);
    }

    #[test]
    fn first_configured_wins_a_tie() {
        let table = RouteTable::new(vec![
            route("/b", None, "other:1"),
            route("/a", None, "first:1"),
            route("/a", None, "second:1"),
            route("/a", Some("h"), "h-first:1"),
            route("/a", Some("h"), "h-second:1"),
        ]);
        assert_eq!(found(&table, None, "/a").as_deref(), Some("first:1"));
        assert_eq!(found(&table, Some("h"), "/a").as_deref(), Some("h-first:1"));
    }

    #[test]
    fn strip_prefix() {
        let mut api = route("/api", None, "api:1");
        api.strip_prefix = true;
        assert_eq!(upstream_path(&api, "/api/x"), "/x");
        assert_eq!(upstream_path(&api, "/api/x/y/"), "/x/y/");
        assert_eq!(upstream_path(&api, "/api"), "/");
        assert_eq!(upstream_path(&api, "/api/"), "/");
        assert_eq!(upstream_path(&api, "/apix"), "/apix");

        let mut root = route("/", None, "root:1");
        root.strip_prefix = true;
        assert_eq!(upstream_path(&root, "/a/b"), "/a/b");

        api.strip_prefix = false;
        assert_eq!(upstream_path(&api, "/api/x"), "/api/x");
    }

    #[test]
    fn methods_and_allow() {
        let mut r = route("/", None, "root:1");
        assert!(allows(&r, &Method::DELETE));
        assert_eq!(allow_header(&r), None);

        r.methods = Some(vec![Method::GET, Method::POST]);
        assert!(allows(&r, &Method::GET));
        assert!(allows(&r, &Method::POST));
        assert!(!allows(&r, &Method::PUT));
        assert!(!allows(&r, &Method::HEAD));
        assert_eq!(allow_header(&r).expect("allow"), "GET, POST");

        r.methods = Some(vec![Method::from_bytes(b"PURGE").expect("method")]);
        assert!(allows(&r, &Method::from_bytes(b"PURGE").expect("method")));
        assert_eq!(allow_header(&r).expect("allow"), "PURGE");
    }

    #[test]
    fn hosts_from_authorities() {
        let cases = [
            ("example.com", Some("example.com")),
            ("Example.COM", Some("example.com")),
            ("example.com:8443", Some("example.com")),
            ("example.com.", Some("example.com")),
            ("Example.com.:443", Some("example.com")),
            ("example.com:", Some("example.com")),
            ("127.0.0.1:80", Some("127.0.0.1")),
            ("[::1]:8443", Some("[::1]")),
            ("[::1]", Some("[::1]")),
            ("[2001:DB8::1]:443", Some("[2001:db8::1]")),
            ("", None),
            (":443", None),
            (".", None),
            ("::1", None),
            ("[::1", None),
            ("[]:443", None),
            ("[::1]x", None),
            ("[::1]:x", None),
            ("example.com:80:80", None),
            ("example.com:123456", None),
            ("user@example.com", None),
            ("exa mple.com", None),
            ("example.com/x", None),
        ];
        for (authority, want) in cases {
            assert_eq!(
                host_without_port(authority)
                    .map(str::to_ascii_lowercase)
                    .as_deref(),
                want,
                "{authority:?}"
            );
        }
    }

    /// Found by fuzz/fuzz_targets/host_parse.rs: `..` gave `.` (and `a..` gave `a.`), which
    /// parse to something else again. A routing name must be its own canonical form.
    #[test]
    fn more_than_one_trailing_dot_is_no_host() {
        for authority in ["..", "a..", "a..:443", "example.com..."] {
            assert_eq!(host_without_port(authority), None, "{authority:?}");
        }
        assert_eq!(host_without_port("a."), Some("a"));
    }
}
