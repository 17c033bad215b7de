//! The gateway's shared state, built from a validated [`Config`] (and rebuilt on reload), the
//! [`Live`] slot every connection reads it from, and `run`, which binds the listeners and
//! serves until shutdown. `main` and the integration tests both call [`Gateway::build`] then
//! [`Bound::run`].

pub mod reload;
pub mod restart;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::HeaderValue;
use tokio::net::TcpListener;

use crate::auth::jwt::Verifier;
use crate::auth::session::SessionStore;
use crate::auth::session_cache::SessionCache;
use crate::auth::Authenticator;
use crate::config::{Config, StoreKind};
use crate::proxy::forward::Forwarder;
use crate::identity_headers::IdentityNames;
use crate::observe::metrics::Metrics;
use crate::routing::RouteTable;

/// Everything a request needs, shared by all connections.
pub struct Gateway {
    pub config: Config,
    pub routes: RouteTable,
    pub auth: Authenticator,
    pub identity: IdentityNames,
    pub forwarder: Forwarder,
    pub tls: Arc<rustls::ServerConfig>,
    pub hsts: Option<HeaderValue>,
    /// `Some` when `[auth]` is configured.
    pub auth_center: Option<crate::auth_center::AuthCenter>,
    /// Served on the admin listener's `/metrics`.
    pub metrics: Arc<Metrics>,
    /// `Some` with `[otlp]`: a span per request, exported in the background.
    pub otlp: Option<Arc<crate::observe::otlp::Otlp>>,
    /// The watched files as they were when this gateway was built (the file watcher's start).
    pub(crate) files: crate::app::reload::Fingerprints,
}

/// Whether a reload keeps the running session store: the memory store whatever else changed
/// in `[session]` (its other keys are Redis settings; replacing it would log everyone out),
/// a Redis store when nothing changed.
fn same_store(old: &crate::config::Session, new: &crate::config::Session) -> bool {
    match (old.store, new.store) {
        (StoreKind::Memory, StoreKind::Memory) => true,
        (StoreKind::Redis, StoreKind::Redis) => old == new,
        _ => false,
    }
}

/// The `notAfter` of the serving certificate, for its metric (a warning when unreadable).
pub fn certificate_not_after(config: &Config) -> Option<i64> {
    match crate::observe::metrics::certificate_not_after(&config.tls.cert) {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::warn!(cert = %config.tls.cert.display(), error = %e,
                "cannot read the certificate's expiry; its metric is not updated");
            None
        }
    }
}

/// Where connections find the gateway: the current [`Gateway`], swapped whole on reload (a
/// request keeps the one it started with), and the drain flag set when shutdown begins.
pub struct Live {
    current: ArcSwap<Gateway>,
    draining: AtomicBool,
    /// One reload at a time (SIGHUP and the file watcher may race). It holds the files as
    /// the last reload read them, whoever asked for it, until the watcher takes them: a
    /// file that SIGHUP found broken and that is then put back as it runs is a change to
    /// reload (the reload metric goes back to 1), not nothing.
    pub(crate) reloading: tokio::sync::Mutex<Option<crate::app::reload::Fingerprints>>,
}

impl Live {
    pub fn new(gw: Arc<Gateway>) -> Arc<Live> {
        Arc::new(Live {
            current: ArcSwap::new(gw),
            draining: AtomicBool::new(false),
            reloading: tokio::sync::Mutex::new(None),
        })
    }

    /// The gateway new requests and connections use.
    pub fn get(&self) -> Arc<Gateway> {
        self.current.load_full()
    }

    pub(crate) fn swap(&self, gw: Arc<Gateway>) {
        self.current.store(gw);
    }

    /// True once shutdown has begun: HTTP/1.1 responses then carry `Connection: close`.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }
}

/// A start-up failure: names what failed to load.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Tls(#[from] crate::listen::certs::TlsError),
    #[error("jwt keys: {0}")]
    Keys(#[from] crate::auth::jwt::KeyLoadError),
    #[error("session store: {0}")]
    Store(#[from] crate::auth::session::StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}

impl StartError {
    /// The error, at the key of the config that names what failed to load when there is
    /// one (`file:line:col: key: reason`, like the loader's own errors).
    pub fn in_config(&self, places: &crate::config::Places) -> String {
        match self {
            StartError::Tls(e) => places.at_file(e.file(), e.to_string()).to_string(),
            StartError::Keys(e) => e.in_config(places).to_string(),
            _ => self.to_string(),
        }
    }
}

impl Gateway {
    /// Loads certificates and keys, connects the session store (lazily for Redis: the
    /// gateway starts and answers 503 while Redis is away).
    pub async fn build(config: Config) -> Result<Arc<Gateway>, StartError> {
        Self::assemble(config, None).await
    }

    /// The gateway for a reloaded config. What must outlive a reload comes from `previous`:
    /// the metrics, the TLS ticket keys and session cache (clients keep resuming), and the
    /// session store with its cache when `[session]` is unchanged (the memory store keeps its
    /// sessions; Redis keeps its connections and invalidation link). Everything else (keys,
    /// verified-token cache, routes, upstream pools, the auth center) is new.
    pub async fn rebuild(config: Config, previous: &Gateway) -> Result<Arc<Gateway>, StartError> {
        Self::assemble(config, Some(previous)).await
    }

    async fn assemble(
        config: Config,
        previous: Option<&Gateway>,
    ) -> Result<Arc<Gateway>, StartError> {
        // Before any file is read: a change from here on is seen by the watcher.
        let files = crate::app::reload::Fingerprints::of(&config);
        let tls = crate::listen::certs::server_config(&config.tls, previous.map(|p| &*p.tls))?;
        let verifier = Verifier::new(&config.jwt).await?;
        let (store, sessions) = match previous {
            Some(p) if same_store(&p.config.session, &config.session) => p.auth.shared_store(),
            _ => {
                let store = Arc::new(SessionStore::connect(&config.session).await?);
                let sessions = match config.session.store {
                    StoreKind::Redis if config.session.cache => {
                        Some(SessionCache::start(&config.session)?)
                    }
                    StoreKind::Redis | StoreKind::Memory => None,
                };
                (store, sessions)
            }
        };
        let otlp = match (&config.otlp, previous.and_then(|p| p.otlp.as_ref())) {
            (None, _) => None,
            (Some(cfg), Some(o)) if o.config() == cfg => Some(o.clone()),
            (Some(cfg), _) => Some(Arc::new(
                crate::observe::otlp::Otlp::new(cfg).map_err(StartError::Other)?,
            )),
        };
        let metrics = match previous {
            Some(p) => p.metrics.clone(),
            None => Arc::new(Metrics::new(
                &config,
                sessions
                    .clone()
                    .map(|c| Box::new(c) as Box<dyn crate::observe::metrics::CacheView>),
                certificate_not_after(&config),
            )),
        };
        let auth = Authenticator::new(verifier, store, sessions, config.jwt.cookie.clone())
            .with_metrics(metrics.clone());
        let hsts = config
            .tls
            .hsts
            .map(|d| HeaderValue::from_str(&format!("max-age={}", d.as_secs())))
            .transpose()
            .map_err(|e| StartError::Other(format!("tls.hsts: {e}")))?;
        let auth_center = crate::auth_center::AuthCenter::new(&config).await?;
        Ok(Arc::new(Gateway {
            auth_center,
            routes: RouteTable::new(config.routes.clone()),
            identity: IdentityNames::new(&config.headers),
            forwarder: Forwarder::new(&config.routes),
            auth,
            metrics,
            otlp,
            files,
            tls,
            hsts,
            config,
        }))
    }

    /// Binds every configured listener (port 0 picks a free port; see [`Bound`] for the
    /// addresses actually bound).
    pub async fn bind(self: &Arc<Self>) -> Result<Bound, StartError> {
        self.bind_inherited(crate::app::restart::Inherited::none()).await
    }

    /// [`bind`](Self::bind), taking over the listening sockets the process that started this
    /// one passed in (`LISTEN_FDS`, see [`crate::app::restart`]) where they are where the config
    /// listens; the others are closed.
    pub async fn bind_inherited(
        self: &Arc<Self>,
        mut inherited: crate::app::restart::Inherited,
    ) -> Result<Bound, StartError> {
        let l = &self.config.listen;
        let https = bind(&mut inherited, "https", l.https).await?;
        let http = match l.http {
            Some(a) => Some(bind(&mut inherited, "http", a).await?),
            None => None,
        };
        let admin = match l.admin {
            Some(a) => Some(bind(&mut inherited, "admin", a).await?),
            None => None,
        };
        let demo = match &self.config.demo {
            Some(d) => match bind(&mut inherited, "demo", d.echo).await {
                Ok(l) => Some(l),
                // The quick start's second instance on the same file: the demo upstream the
                // first one serves answers for both, as their routes name the same address.
                Err(StartError::Bind { source, .. })
                    if source.kind() == std::io::ErrorKind::AddrInUse =>
                {
                    tracing::warn!(
                        addr = %d.echo,
                        "the demo upstream's address is in use (another instance's demo?): \
                         not serving it here; routes to it reach whatever listens there"
                    );
                    None
                }
                Err(e) => return Err(e),
            },
            None => None,
        };
        inherited.close_rest();
        Ok(Bound {
            live: Live::new(self.clone()),
            https,
            http,
            admin,
            demo,
        })
    }
}

async fn bind(
    inherited: &mut crate::app::restart::Inherited,
    name: &'static str,
    addr: SocketAddr,
) -> Result<Arc<TcpListener>, StartError> {
    let err = |source| StartError::Bind { addr, source };
    if let Some(l) = inherited.take(name, addr).map_err(err)? {
        return Ok(Arc::new(l));
    }
    TcpListener::bind(addr).await.map(Arc::new).map_err(err)
}

/// Listeners bound and ready to serve.
pub struct Bound {
    live: Arc<Live>,
    https: Arc<TcpListener>,
    http: Option<Arc<TcpListener>>,
    admin: Option<Arc<TcpListener>>,
    demo: Option<Arc<TcpListener>>,
}

impl Bound {
    pub fn https_addr(&self) -> SocketAddr {
        local(&self.https)
    }
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_deref().map(local)
    }
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_deref().map(local)
    }
    pub fn demo_addr(&self) -> Option<SocketAddr> {
        self.demo.as_deref().map(local)
    }

    /// The slot connections read the gateway from: reload swaps what it holds.
    pub fn live(&self) -> Arc<Live> {
        self.live.clone()
    }

    /// Handles on the listening sockets for a hand-over; they do not keep them open.
    pub fn listeners(&self) -> crate::app::restart::Listeners {
        let mut list = vec![("https", &self.https)];
        let named = [
            ("http", &self.http),
            ("admin", &self.admin),
            ("demo", &self.demo),
        ];
        for (name, l) in named {
            if let Some(l) = l {
                list.push((name, l));
            }
        }
        crate::app::restart::Listeners::new(list)
    }

    /// Serves until `shutdown` resolves, then stops accepting and gives in-flight requests
    /// `limits.shutdown_grace` to finish. With `[reload] watch`, also reloads when a watched
    /// file changes.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let live = self.live;
        let (tx, rx) = tokio::sync::watch::channel(false);
        // `[listen]` takes effect at start only, so the first config's redirect port is kept.
        let https_port = live
            .get()
            .config
            .listen
            .redirect_port
            .unwrap_or_else(|| local(&self.https).port());
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(crate::listen::tls::serve_tls(
            live.clone(),
            self.https,
            rx.clone(),
        ));
        if let Some(l) = self.http {
            tasks.spawn(crate::listen::plain::serve_redirect(
                live.clone(),
                l,
                https_port,
                rx.clone(),
            ));
        }
        if let Some(l) = self.admin {
            tasks.spawn(crate::listen::plain::serve_admin(live.clone(), l, rx.clone()));
        }
        if let Some(l) = self.demo {
            tasks.spawn(crate::demo::serve_echo(l, rx.clone()));
        }
        let watcher = tokio::spawn(crate::app::reload::watch(live.clone(), rx.clone()));
        shutdown.await;
        tracing::info!("shutting down: no new connections, draining in-flight requests");
        live.start_draining();
        let _ = tx.send(true);
        while tasks.join_next().await.is_some() {}
        watcher.abort();
        if let Some(otlp) = live.get().otlp.clone() {
            // The spans of the last requests, before the process exits.
            let _ = tokio::task::spawn_blocking(move || otlp.flush()).await;
        }
        tracing::info!("stopped");
    }
}

fn local(l: &TcpListener) -> SocketAddr {
    l.local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
}
