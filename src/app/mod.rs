//! The composition root: the only module that knows every part. [`App`] is built from a
//! validated [`Config`] (and rebuilt whole on reload) out of the parts each listener serves:
//! the proxy (the TLS listener), the admin answers (the admin listener, the redirect
//! listener's probes); [`Live`] is the slot connections read it from. `bind.rs` binds the
//! listeners and runs them, `reload.rs` replaces the config, `restart.rs` the process.
//! `main` and the integration tests call [`App::build`], then [`App::bind`] and
//! [`bind::Bound::run`].

pub mod bind;
pub mod files;
pub mod reload;
pub mod restart;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::{HeaderValue, Request, Response};

use crate::admin::Admin;
use crate::auth::assertion::Asserter;
use crate::auth::issuers::Issuers;
use crate::auth::mint::Signer;
use crate::auth::session::SessionStore;
use crate::auth::session_cache::SessionCache;
use crate::auth::Authenticator;
use crate::auth_center::AuthCenter;
use crate::config::{Config, StoreKind};
use crate::http::body::{Body, Inbound};
use crate::identity_headers::IdentityNames;
use crate::observe::metrics::{CacheView, Metrics};
use crate::observe::otlp::Otlp;
use crate::proxy::forward::Forwarder;
use crate::proxy::Proxy;
use crate::routing::RouteTable;

use self::files::Fingerprints;

/// One config's gateway: what each listener serves.
pub struct App {
    pub config: Config,
    /// The TLS listener's requests.
    pub proxy: Proxy,
    /// The admin listener's requests, and the redirect listener's probes.
    pub admin: Admin,
    /// New TLS connections get this certificate.
    pub tls: Arc<rustls::ServerConfig>,
    /// The watched files as they were when this one was built (the file watcher's start).
    pub(crate) files: Fingerprints,
}

impl App {
    /// Loads certificates and keys, connects the session store (lazily for Redis: the
    /// gateway starts and answers 503 while Redis is away).
    pub async fn build(config: Config) -> Result<Arc<App>, StartError> {
        Self::assemble(config, None).await
    }

    /// The gateway for a reloaded config. What must outlive a reload comes from `previous`:
    /// the metrics, the TLS ticket keys and session cache (clients keep resuming), and the
    /// session store with its cache when `[session]` is unchanged (the memory store keeps its
    /// sessions; Redis keeps its connections and invalidation link). Everything else (keys,
    /// verified-token cache, routes, upstream pools, the auth center) is new.
    pub async fn rebuild(config: Config, previous: &App) -> Result<Arc<App>, StartError> {
        Self::assemble(config, Some(previous)).await
    }

    async fn assemble(config: Config, previous: Option<&App>) -> Result<Arc<App>, StartError> {
        // Before any file is read: a change from here on is seen by the watcher.
        let files = Fingerprints::of(&config);
        let tls = crate::listen::certs::server_config(&config.tls, previous.map(|p| &*p.tls))?;
        let issuers = Issuers::new(&config).await?;
        let (store, sessions) = match previous {
            Some(p) if same_store(&p.config.session, &config.session) => {
                p.proxy.auth.shared_store()
            }
            _ => {
                let store = Arc::new(SessionStore::connect(&config.session).await?);
                let sessions = match config.session.store {
                    StoreKind::Redis if config.session.cache => {
                        let moves = match &*store {
                            SessionStore::Redis(r) => Some(r.moves()),
                            SessionStore::Memory(_) => None,
                        };
                        Some(SessionCache::start(&config.session, moves)?)
                    }
                    StoreKind::Redis | StoreKind::Memory => None,
                };
                (store, sessions)
            }
        };
        let otlp = match (&config.otlp, previous.and_then(|p| p.proxy.otlp.as_ref())) {
            (None, _) => None,
            (Some(cfg), Some(o)) if o.config() == cfg => Some(o.clone()),
            (Some(cfg), _) => Some(Arc::new(Otlp::new(cfg).map_err(StartError::Other)?)),
        };
        let metrics = match previous {
            Some(p) => p.proxy.metrics.clone(),
            None => Arc::new(Metrics::new(
                &config,
                sessions.clone().map(|c| Box::new(c) as Box<dyn CacheView>),
                certificate_not_after(&config),
            )),
        };
        let auth = Arc::new(
            Authenticator::new(issuers, store, sessions, config.jwt.cookie.clone())
                .with_metrics(metrics.clone()),
        );
        let hsts = config
            .tls
            .hsts
            .map(|d| HeaderValue::from_str(&format!("max-age={}", d.as_secs())))
            .transpose()
            .map_err(|e| StartError::Other(format!("tls.hsts: {e}")))?;
        let routes = Arc::new(RouteTable::new(config.routes.clone()));
        let identity = IdentityNames::for_config(&config);
        let signer = match &config.auth {
            Some(cfg) => Some(Arc::new(
                Signer::from_config(cfg).map_err(crate::auth_center::SetupError::Key)?,
            )),
            None => None,
        };
        let asserter = match (&config.headers.assertion, &signer) {
            (Some(header), Some(signer)) => Some(Arc::new(Asserter::new(
                header.clone(),
                config.jwt.issuer.clone(),
                signer.clone(),
            ))),
            // The loader refuses an assertion without `[auth]`.
            _ => None,
        };
        let auth_center = match (&config.auth, &signer) {
            (Some(cfg), Some(signer)) => Some(
                AuthCenter::new(
                    cfg,
                    &config,
                    signer.clone(),
                    crate::auth_center::Deps {
                        auth: auth.clone(),
                        identity: identity.clone(),
                        routes: routes.clone(),
                        body_idle_timeout: config.limits.body_idle_timeout,
                        asserter: asserter.clone(),
                    },
                )
                .await?,
            ),
            _ => None,
        };
        let proxy = Proxy {
            routes,
            auth: auth.clone(),
            identity,
            forwarder: Forwarder::new(&config.routes),
            auth_center,
            asserter,
            hsts,
            limits: config.limits.clone(),
            trusted_proxies: config.listen.trusted_proxies.clone(),
            metrics: metrics.clone(),
            otlp,
        };
        let admin = Admin::new(auth, metrics, config.admin.clone());
        Ok(Arc::new(App {
            proxy,
            admin,
            files,
            tls,
            config,
        }))
    }

    /// The session check (token, JWT, store), as the proxy and the auth center use it.
    pub fn auth(&self) -> &Authenticator {
        &self.proxy.auth
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.proxy.metrics
    }
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

/// Where connections find the gateway: the current [`App`], swapped whole on reload (a
/// request keeps the one it started with), and the drain flag set when shutdown begins.
pub struct Live {
    current: ArcSwap<App>,
    draining: AtomicBool,
    /// One reload at a time (SIGHUP and the file watcher may race). It holds the files as
    /// the last reload read them, whoever asked for it, until the watcher takes them: a
    /// file that SIGHUP found broken and that is then put back as it runs is a change to
    /// reload (the reload metric goes back to 1), not nothing.
    pub(crate) reloading: tokio::sync::Mutex<Option<Fingerprints>>,
}

impl Live {
    pub fn new(app: Arc<App>) -> Arc<Live> {
        Arc::new(Live {
            current: ArcSwap::new(app),
            draining: AtomicBool::new(false),
            reloading: tokio::sync::Mutex::new(None),
        })
    }

    /// The gateway new requests and connections use.
    pub fn get(&self) -> Arc<App> {
        self.current.load_full()
    }

    pub(crate) fn swap(&self, app: Arc<App>) {
        self.current.store(app);
    }

    /// True once shutdown has begun: HTTP/1.1 responses then carry `Connection: close`.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }
}

/// The TLS listener serves the current app's proxy, with its certificate.
impl crate::listen::tls::Site for Live {
    fn tls(&self) -> Arc<rustls::ServerConfig> {
        self.get().tls.clone()
    }

    fn metrics(&self) -> Arc<Metrics> {
        self.get().proxy.metrics.clone()
    }

    fn draining(&self) -> bool {
        Live::draining(self)
    }

    fn serve(
        live: Arc<Self>,
        peer: SocketAddr,
        req: Request<Inbound>,
    ) -> impl Future<Output = Response<Body>> + Send + 'static {
        let app = live.get();
        async move { crate::proxy::handle(&app.proxy, peer, req).await }
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
    #[error("auth center: {0}")]
    AuthCenter(#[from] crate::auth_center::SetupError),
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
            StartError::AuthCenter(crate::auth_center::SetupError::Key(e)) => {
                e.in_config(places).to_string()
            }
            StartError::Store(crate::auth::session::StoreError::Ca { file, reason }) => {
                places.at_file(file, reason.clone()).to_string()
            }
            _ => self.to_string(),
        }
    }
}
