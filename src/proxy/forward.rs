//! Forwarding to upstreams: pooled hyper-util clients (HTTP/1.1, or h2c when the route says
//! so), round-robin over a route's addresses that skips one that just refused, the route's
//! response-header timeout, and the mapping of failures to 502 / 504 / 413.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, Uri, Version};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::config::{Route, UpstreamProtocol};
use crate::error::GatewayError;
use crate::http::body::{self, Body};

/// How long an address that refused a connection is skipped by the balancer.
const DOWN_FOR: Duration = Duration::from_secs(2);
/// Connect timeout for one upstream address.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Forwarder {
    http1: Client<HttpConnector, Body>,
    h2c: Client<HttpConnector, Body>,
    next: AtomicUsize,
    /// Address -> unix millis until which it is considered down. Built once from the routes,
    /// so lookups never lock.
    down_until: HashMap<Authority, AtomicU64>,
}

impl Forwarder {
    pub fn new(routes: &[Route]) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.enforce_http(true);
        let http1 = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(1024)
            .set_host(false)
            .build(connector.clone());
        let h2c = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .http2_only(true)
            .set_host(false)
            .build(connector);
        let down_until = routes
            .iter()
            .flat_map(|r| r.upstreams.iter().cloned())
            .map(|a| (a, AtomicU64::new(0)))
            .collect();
        Forwarder {
            http1,
            h2c,
            next: AtomicUsize::new(0),
            down_until,
        }
    }

    /// Sends `req` (whose URI carries only path and query) to one of the route's upstreams.
    /// A request whose body is empty may be tried on the next address when an address
    /// refuses the connection (nothing was sent); no request is retried after that.
    pub async fn forward(
        &self,
        route: &Route,
        req: Request<Body>,
    ) -> Result<Response<Incoming>, GatewayError> {
        let (mut parts, body) = req.into_parts();
        let path_and_query = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let (client, version) = match route.protocol {
            UpstreamProtocol::Http1 => (&self.http1, Version::HTTP_11),
            UpstreamProtocol::H2c => (&self.h2c, Version::HTTP_2),
        };
        parts.version = version;
        if version == Version::HTTP_2 {
            parts.headers.remove(http::header::HOST);
        }
        // Only a request with no body can be tried again (nothing of it was sent when an
        // address refused); only then are its parts kept for a second attempt.
        let retryable = route.upstreams.len() > 1 && http_body::Body::is_end_stream(&body);
        let tries = route.upstreams.len();
        let order = self.order(&route.upstreams);
        let mut spare = retryable.then(|| clone_parts(&parts));
        let mut next = Some((parts, body));
        let mut last_err = GatewayError::UpstreamUnavailable {
            upstream: route.path.clone(),
            source: "no upstream address".into(),
        };
        for (attempt, authority) in order.enumerate() {
            let (parts, body) = match next.take() {
                Some(p) => p,
                None => match spare.take() {
                    Some(p) => {
                        spare = Some(clone_parts(&p));
                        (p, body::empty())
                    }
                    None => break,
                },
            };
            let mut req = Request::from_parts(parts, body);
            *req.uri_mut() = upstream_uri(authority, &path_and_query)?;
            let outcome = tokio::time::timeout(route.timeout, client.request(req)).await;
            match outcome {
                Err(_) => return Err(GatewayError::UpstreamTimeout),
                Ok(Ok(resp)) => return Ok(resp),
                Ok(Err(e)) => {
                    if let Some(too_large) = find_too_large(&e) {
                        return Err(too_large);
                    }
                    let connect = e.is_connect();
                    last_err = GatewayError::UpstreamUnavailable {
                        upstream: authority.to_string(),
                        source: Box::new(e),
                    };
                    if connect {
                        self.mark_down(authority);
                        if retryable && attempt + 1 < tries {
                            continue;
                        }
                    }
                    return Err(last_err);
                }
            }
        }
        Err(last_err)
    }

    /// The addresses to try, in order: round-robin from the next address, those marked down
    /// last (still tried: when everything is down, the least bad is better than 502). Worked
    /// out without allocating; a route with one address skips it all.
    fn order<'a>(&self, upstreams: &'a [Authority]) -> impl Iterator<Item = &'a Authority> {
        let n = upstreams.len();
        let (start, down) = if n > 1 {
            let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
            let now = now_millis();
            // Down marks for the first 128 addresses (a route has a handful).
            let mut down = 0u128;
            for (i, a) in upstreams.iter().enumerate().take(128) {
                let is_down = self
                    .down_until
                    .get(a)
                    .is_some_and(|d| d.load(Ordering::Relaxed) > now);
                down |= u128::from(is_down) << i;
            }
            (start, down)
        } else {
            (0, 0)
        };
        let is_down = move |i: usize| i < 128 && down & (1u128 << i) != 0;
        let ring = move |wanted: bool| {
            (0..n)
                .map(move |k| (start + k) % n)
                .filter(move |&i| is_down(i) == wanted)
        };
        ring(false).chain(ring(true)).map(move |i| &upstreams[i])
    }

    fn mark_down(&self, authority: &Authority) {
        if let Some(d) = self.down_until.get(authority) {
            d.store(
                now_millis() + DOWN_FOR.as_millis() as u64,
                Ordering::Relaxed,
            );
        }
    }
}

fn upstream_uri(authority: &Authority, pq: &PathAndQuery) -> Result<Uri, GatewayError> {
    Uri::builder()
        .scheme(Scheme::HTTP)
        .authority(authority.clone())
        .path_and_query(pq.clone())
        .build()
        .map_err(|e| GatewayError::Internal(format!("upstream uri: {e}")))
}

fn clone_parts(parts: &http::request::Parts) -> http::request::Parts {
    let (mut p, ()) = Request::new(()).into_parts();
    p.method = parts.method.clone();
    p.uri = parts.uri.clone();
    p.version = parts.version;
    p.headers = parts.headers.clone();
    p
}

fn find_too_large(err: &hyper_util::client::legacy::Error) -> Option<GatewayError> {
    let src: &(dyn std::error::Error + 'static) = err;
    body::is_too_large(src).then_some(GatewayError::BodyTooLarge)
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
