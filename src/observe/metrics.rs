//! Prometheus metrics for operators, served as OpenMetrics text on the admin listener's
//! `/metrics`. Built on `prometheus-client`; every label is bounded: the route label is a
//! configured route prefix (or `none` / `auth_center`), the method a fixed class, the status a
//! number, reasons and kinds are static strings from the code. Session-cache counters are
//! read from [`CacheStats`](crate::auth::session_cache::CacheStats) at scrape time.
//!
//! docs/operations.md lists every metric, its labels and what to alert on.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use http::Method;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use crate::config::Config;

/// The `Content-Type` of `/metrics` (OpenMetrics text, which Prometheus scrapes natively).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Route label for a request no route matched.
pub const ROUTE_NONE: &str = "none";
/// Route label for the auth-center endpoints.
pub const ROUTE_AUTH_CENTER: &str = "auth_center";

/// Request latency buckets, seconds: from well under a millisecond (a refusal) to a slow
/// upstream near the default 30 s route timeout.
const REQUEST_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Session-store call buckets, seconds: a Redis round trip on a LAN is 0.1-1 ms; the store
/// timeout is at most 5 s.
const STORE_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: Arc<str>,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    route: Arc<str>,
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabels {
    op: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreErrorLabels {
    op: &'static str,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamErrorLabels {
    route: Arc<str>,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn request_histogram() -> Histogram {
    Histogram::new(REQUEST_BUCKETS.iter().copied())
}

fn store_histogram() -> Histogram {
    Histogram::new(STORE_BUCKETS.iter().copied())
}

/// Every metric the gateway exports, and the registry that encodes them.
pub struct Metrics {
    registry: Registry,
    /// Route prefix -> its label, interned once per config so the hot path never allocates a
    /// label; replaced on reload.
    routes: ArcSwap<HashMap<String, Arc<str>>>,
    /// The session cache whose counters are scraped; replaced when a reload changes `[session]`.
    sessions: Arc<ArcSwapOption<Box<dyn CacheView>>>,
    cert_expiry: Option<Gauge<i64>>,
    reloads: Family<ResultLabels, Counter>,
    last_reload_ok: Gauge,
    last_reload_success: Gauge<i64>,
    none: Arc<str>,
    auth_center: Arc<str>,
    requests: Family<RequestLabels, Counter>,
    request_duration: HistogramFamily<LatencyLabels>,
    denials: Family<ReasonLabels, Counter>,
    store_duration: HistogramFamily<OpLabels>,
    store_errors: Family<StoreErrorLabels, Counter>,
    upstream_errors: Family<UpstreamErrorLabels, Counter>,
    open_connections: Gauge,
    tls_handshakes: Family<ResultLabels, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// What the TLS handshake came to, for `gateway_tls_handshakes_total{result}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handshake {
    Ok,
    Failed,
    TimedOut,
}

impl Metrics {
    /// Registers every metric. `sessions` is the coherent session cache when there is one
    /// (its counters are read at scrape time); `cert_not_after` is the serving certificate's
    /// notAfter in unix seconds, when it could be read.
    pub fn new(
        config: &Config,
        sessions: Option<Box<dyn CacheView>>,
        cert_not_after: Option<i64>,
    ) -> Metrics {
        let mut registry = Registry::with_prefix("gateway");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests answered on the TLS listener, by route prefix, method class and status",
            requests.clone(),
        );
        let request_duration: HistogramFamily<LatencyLabels> =
            Family::new_with_constructor(request_histogram as fn() -> Histogram);
        registry.register_with_unit(
            "request_duration",
            "Time from the request head to the response head, by route and method class",
            Unit::Seconds,
            request_duration.clone(),
        );
        let denials = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "denials",
            "Requests the gateway answered itself instead of forwarding, by reason",
            denials.clone(),
        );
        let store_duration: HistogramFamily<OpLabels> =
            Family::new_with_constructor(store_histogram as fn() -> Histogram);
        registry.register_with_unit(
            "session_store_duration",
            "Session store (Redis) call latency, queueing for a connection included",
            Unit::Seconds,
            store_duration.clone(),
        );
        let store_errors = Family::<StoreErrorLabels, Counter>::default();
        registry.register(
            "session_store_errors",
            "Session store calls that failed, by operation and kind (timeout, unavailable, invalid)",
            store_errors.clone(),
        );
        let upstream_errors = Family::<UpstreamErrorLabels, Counter>::default();
        registry.register(
            "upstream_errors",
            "Requests whose upstream failed: kind error (refused, reset, protocol) or timeout",
            upstream_errors.clone(),
        );
        let open_connections = Gauge::default();
        registry.register(
            "open_connections",
            "Client connections open on the TLS listener (handshaking included)",
            open_connections.clone(),
        );
        let tls_handshakes = Family::<ResultLabels, Counter>::default();
        registry.register(
            "tls_handshakes",
            "TLS handshakes on the TLS listener, by result (ok, failed, timeout)",
            tls_handshakes.clone(),
        );
        let cert_expiry = cert_not_after.map(|not_after| {
            let g = Gauge::<i64>::default();
            g.set(not_after);
            registry.register_with_unit(
                "tls_certificate_expiry_timestamp",
                "The serving certificate's notAfter, unix time",
                Unit::Seconds,
                g.clone(),
            );
            g
        });
        let reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "config_reloads",
            "Configuration reloads (SIGHUP or a watched file changed), by result (ok, failed)",
            reloads.clone(),
        );
        let last_reload_ok = Gauge::default();
        last_reload_ok.set(1);
        registry.register(
            "config_last_reload_successful",
            "1 when the last reload was applied (or none was tried), 0 when it was refused",
            last_reload_ok.clone(),
        );
        let last_reload_success = Gauge::<i64>::default();
        last_reload_success.set(crate::clock::unix_now() as i64);
        registry.register_with_unit(
            "config_last_reload_success_timestamp",
            "When the configuration in use was loaded, unix time",
            Unit::Seconds,
            last_reload_success.clone(),
        );
        registry.register(
            "build",
            "The gateway's version",
            Info::new(VersionLabels {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );
        let sessions = Arc::new(ArcSwapOption::from(sessions.map(Arc::new)));
        registry.register_collector(Box::new(CacheCollector(sessions.clone())));
        Metrics {
            registry,
            routes: ArcSwap::from_pointee(route_labels(config)),
            sessions,
            cert_expiry,
            reloads,
            last_reload_ok,
            last_reload_success,
            none: Arc::from(ROUTE_NONE),
            auth_center: Arc::from(ROUTE_AUTH_CENTER),
            requests,
            request_duration,
            denials,
            store_duration,
            store_errors,
            upstream_errors,
            open_connections,
            tls_handshakes,
        }
    }

    /// A reload was applied: route labels, the session cache scraped and the certificate's
    /// expiry follow the new config.
    pub fn reloaded(
        &self,
        config: &Config,
        sessions: Option<Box<dyn CacheView>>,
        cert_not_after: Option<i64>,
    ) {
        self.routes.store(Arc::new(route_labels(config)));
        self.sessions.store(sessions.map(Arc::new));
        if let (Some(g), Some(t)) = (&self.cert_expiry, cert_not_after) {
            g.set(t);
        }
        self.reloads
            .get_or_create(&ResultLabels { result: "ok" })
            .inc();
        self.last_reload_ok.set(1);
        self.last_reload_success
            .set(crate::clock::unix_now() as i64);
    }

    /// A reload was refused; the running config stays.
    pub fn reload_failed(&self) {
        self.reloads
            .get_or_create(&ResultLabels { result: "failed" })
            .inc();
        self.last_reload_ok.set(0);
    }

    /// The route label: the configured prefix as normalised by the config (`/api/` is `/api`),
    /// `auth_center`, or `none`.
    pub fn route_label(&self, route: Option<&str>, auth_center: bool) -> Arc<str> {
        if auth_center {
            return self.auth_center.clone();
        }
        let routes = self.routes.load();
        route
            .and_then(|p| routes.get(p))
            .unwrap_or(&self.none)
            .clone()
    }

    /// One answered request on the TLS listener.
    pub fn observe_request(
        &self,
        route: &Arc<str>,
        method: &Method,
        status: u16,
        elapsed: Duration,
    ) {
        let method = method_class(method);
        self.requests
            .get_or_create(&RequestLabels {
                route: route.clone(),
                method,
                status,
            })
            .inc();
        self.request_duration
            .get_or_create(&LatencyLabels {
                route: route.clone(),
                method,
            })
            .observe(elapsed.as_secs_f64());
    }

    /// A request the gateway refused, by the reason's label (`expired`, `missing_token`...).
    pub fn observe_denial(&self, reason: &'static str) {
        self.denials.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// A request the upstream failed: `kind` is `error` (refused, reset) or `timeout`.
    pub fn observe_upstream_error(&self, route: &Arc<str>, kind: &'static str) {
        self.upstream_errors
            .get_or_create(&UpstreamErrorLabels {
                route: route.clone(),
                kind,
            })
            .inc();
    }

    /// One session store call (`op` is a static name such as `get`); `error` is the failure's
    /// kind (`timeout`, `unavailable`, `invalid`) when it failed.
    pub fn observe_store(&self, op: &'static str, elapsed: Duration, error: Option<&'static str>) {
        self.store_duration
            .get_or_create(&OpLabels { op })
            .observe(elapsed.as_secs_f64());
        if let Some(kind) = error {
            self.store_errors
                .get_or_create(&StoreErrorLabels { op, kind })
                .inc();
        }
    }

    pub fn observe_handshake(&self, result: Handshake) {
        let result = match result {
            Handshake::Ok => "ok",
            Handshake::Failed => "failed",
            Handshake::TimedOut => "timeout",
        };
        self.tls_handshakes
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    /// Counts an open client connection until the guard is dropped.
    pub fn connection_opened(&self) -> ConnectionGuard {
        self.open_connections.inc();
        ConnectionGuard(self.open_connections.clone())
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(8192);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Decrements `gateway_open_connections` when the connection's task ends, however it ends.
#[derive(Debug)]
pub struct ConnectionGuard(Gauge);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, or `other` (bounded cardinality).
pub fn method_class(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

fn route_labels(config: &Config) -> HashMap<String, Arc<str>> {
    config
        .routes
        .iter()
        .map(|r| (r.path.clone(), Arc::<str>::from(r.path.as_str())))
        .collect()
}

/// The notAfter (unix seconds) of the first certificate in a PEM file: the serving one.
pub fn certificate_not_after(path: &Path) -> Result<i64, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let first = CertificateDer::pem_file_iter(path)
        .map_err(|e| e.to_string())?
        .next()
        .ok_or_else(|| "no CERTIFICATE block found".to_owned())?
        .map_err(|e| e.to_string())?;
    let (_, cert) = x509_parser::parse_x509_certificate(first.as_ref())
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    Ok(cert.validity().not_after.timestamp())
}

/// What the session cache shows on each scrape. The cache (`auth::session_cache`) implements
/// it, so metrics never depends on what it counts.
pub trait CacheView: Send + Sync + std::fmt::Debug {
    fn counters(&self) -> CacheCounters;
}

/// The session cache's figures at one scrape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheCounters {
    pub hits: u64,
    pub misses: u64,
    pub invalidations: u64,
    pub flushes: u64,
    pub entries: usize,
    /// The invalidation link is up (the cache serves hits).
    pub live: bool,
}

/// The session cache's counters, read on every scrape (names get the registry's `gateway_`
/// prefix).
#[derive(Debug)]
struct CacheCollector(Arc<ArcSwapOption<Box<dyn CacheView>>>);

impl Collector for CacheCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(cache) = self.0.load_full() else {
            return Ok(());
        };
        let stats = cache.counters();
        let counters = [
            (
                "session_cache_hits",
                "Session lookups answered from the local cache",
                stats.hits,
            ),
            (
                "session_cache_misses",
                "Session lookups that read the store and filled the cache",
                stats.misses,
            ),
            (
                "session_cache_invalidations",
                "Invalidation pushes from Redis applied to the cache",
                stats.invalidations,
            ),
            (
                "session_cache_flushes",
                "Whole-cache flushes (invalidation link lost or reconnected)",
                stats.flushes,
            ),
        ];
        for (name, help, value) in counters {
            let c = ConstCounter::new(value);
            c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)?;
        }
        let gauges = [
            (
                "session_cache_entries",
                "Sessions held in the local cache",
                i64::try_from(stats.entries).unwrap_or(i64::MAX),
            ),
            (
                "session_cache_live",
                "1 while the invalidation link is up (the cache serves hits), else 0",
                i64::from(stats.live),
            ),
        ];
        for (name, help, value) in gauges {
            let g = ConstGauge::new(value);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        let toml = r#"
[listen]
https = "127.0.0.1:0"
[tls]
cert = "c.pem"
key = "k.pem"
[jwt]
algorithms = ["EdDSA"]
issuer = "i"
audience = "a"
keys = [{ kid = "k1", public_key = "p.pem" }]
[session]
store = "memory"
[[route]]
path = "/api/"
upstream = "http://127.0.0.1:1"
"#;
        crate::config::load_str(toml, Path::new("/tmp/gateway.toml")).unwrap()
    }

    #[test]
    fn method_classes_are_bounded() {
        assert_eq!(method_class(&Method::GET), "GET");
        assert_eq!(method_class(&Method::OPTIONS), "OPTIONS");
        assert_eq!(method_class(&Method::CONNECT), "other");
        assert_eq!(
            method_class(&Method::from_bytes(b"PROPFIND").unwrap()),
            "other"
        );
    }

    #[test]
    fn route_labels_are_configured_prefixes_only() {
        let m = Metrics::new(&config(), None, None);
        assert_eq!(&*m.route_label(Some("/api"), false), "/api");
        assert_eq!(&*m.route_label(Some("/elsewhere/"), false), "none");
        assert_eq!(&*m.route_label(None, false), "none");
        assert_eq!(&*m.route_label(None, true), "auth_center");
    }

    #[test]
    fn encodes_requests_denials_and_upstream_errors() {
        let m = Metrics::new(&config(), None, Some(1_900_000_000));
        let api = m.route_label(Some("/api"), false);
        m.observe_request(&api, &Method::GET, 200, Duration::from_millis(3));
        m.observe_request(&api, &Method::GET, 401, Duration::from_millis(1));
        m.observe_denial("expired");
        m.observe_upstream_error(&api, "timeout");
        m.observe_store("get", Duration::from_micros(300), Some("timeout"));
        m.observe_handshake(Handshake::Failed);
        {
            let _c = m.connection_opened();
            assert!(m.encode().unwrap().contains("gateway_open_connections 1\n"));
        }
        let text = m.encode().unwrap();
        for line in [
            r#"gateway_requests_total{route="/api",method="GET",status="200"} 1"#,
            r#"gateway_requests_total{route="/api",method="GET",status="401"} 1"#,
            r#"gateway_denials_total{reason="expired"} 1"#,
            r#"gateway_upstream_errors_total{route="/api",kind="timeout"} 1"#,
            r#"gateway_session_store_errors_total{op="get",kind="timeout"} 1"#,
            r#"gateway_session_store_duration_seconds_count{op="get"} 1"#,
            r#"gateway_request_duration_seconds_count{route="/api",method="GET"} 2"#,
            r#"gateway_tls_handshakes_total{result="failed"} 1"#,
            "gateway_tls_certificate_expiry_timestamp_seconds 1900000000",
            "gateway_open_connections 0",
            "# EOF",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(text.contains("gateway_build_info{version="), "{text}");
    }

    #[test]
    fn certificate_expiry_is_read_from_pem() {
        let dir = tempfile::tempdir().unwrap();
        crate::cli::keygen::write_dev_material(dir.path(), false).unwrap();
        let not_after = certificate_not_after(&dir.path().join("gateway.crt")).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!(not_after > now, "{not_after} <= {now}");
        assert!(certificate_not_after(&dir.path().join("missing.crt")).is_err());
        let garbage = dir.path().join("garbage.crt");
        std::fs::write(&garbage, "not a pem").unwrap();
        assert!(certificate_not_after(&garbage).is_err());
    }
}
