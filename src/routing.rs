//! Route table (stub).
use crate::config::Route;
use http::{HeaderValue, Method};
use std::sync::Arc;
pub struct RouteTable {
    routes: Vec<Arc<Route>>,
}
impl RouteTable {
    pub fn new(routes: Vec<Route>) -> Self {
        Self {
            routes: routes.into_iter().map(Arc::new).collect(),
        }
    }
    pub fn find(&self, host: Option<&str>, path: &str) -> Option<&Arc<Route>> {
        let _ = (host, path);
        self.routes.first()
    }
}
pub fn host_without_port(authority: &str) -> Option<String> {
    Some(authority.to_string())
}
pub fn allows(route: &Route, method: &Method) -> bool {
    let _ = (route, method);
    true
}
pub fn allow_header(route: &Route) -> Option<HeaderValue> {
    let _ = route;
    None
}
pub fn upstream_path(route: &Route, path: &str) -> String {
    let _ = route;
    path.to_string()
}
