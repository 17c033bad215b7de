//! The gateway's shared state, built once from a validated [`Config`], and `run`, which
//! binds the listeners and serves until shutdown. `main` and the integration tests both
//! call [`Gateway::build`] then [`Bound::run`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use http::HeaderValue;
use tokio::net::TcpListener;

use crate::auth::jwt::Verifier;
use crate::auth::session::SessionStore;
use crate::auth::session_cache::SessionCache;
use crate::auth::Authenticator;
use crate::config::{Config, StoreKind};
use crate::forward::Forwarder;
use crate::identity_headers::IdentityNames;
use crate::metrics::Metrics;
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
}

/// A start-up failure: names what failed to load.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
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

impl Gateway {
    /// Loads certificates and keys, connects the session store (lazily for Redis: the
    /// gateway starts and answers 503 while Redis is away).
    pub async fn build(config: Config) -> Result<Arc<Gateway>, StartError> {
        let tls = crate::tls::server_config(&config.tls)?;
        let verifier = Verifier::new(&config.jwt).await?;
        let store = SessionStore::connect(&config.session).await?;
        let sessions = match config.session.store {
            StoreKind::Redis if config.session.cache => Some(SessionCache::start(&config.session)?),
            StoreKind::Redis | StoreKind::Memory => None,
        };
        let cert_not_after = match crate::metrics::certificate_not_after(&config.tls.cert) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!(cert = %config.tls.cert.display(), error = %e,
                    "cannot read the certificate's expiry; its metric is left out");
                None
            }
        };
        let metrics = Arc::new(Metrics::new(&config, sessions.clone(), cert_not_after));
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
            tls,
            hsts,
            config,
        }))
    }

    /// Binds every configured listener (port 0 picks a free port; see [`Bound`] for the
    /// addresses actually bound).
    pub async fn bind(self: &Arc<Self>) -> Result<Bound, StartError> {
        let l = &self.config.listen;
        let https = bind(l.https).await?;
        let http = match l.http {
            Some(a) => Some(bind(a).await?),
            None => None,
        };
        let admin = match l.admin {
            Some(a) => Some(bind(a).await?),
            None => None,
        };
        let demo = match &self.config.demo {
            Some(d) => Some(bind(d.echo).await?),
            None => None,
        };
        Ok(Bound {
            gateway: self.clone(),
            https,
            http,
            admin,
            demo,
        })
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })
}

/// Listeners bound and ready to serve.
pub struct Bound {
    gateway: Arc<Gateway>,
    https: TcpListener,
    http: Option<TcpListener>,
    admin: Option<TcpListener>,
    demo: Option<TcpListener>,
}

impl Bound {
    pub fn https_addr(&self) -> SocketAddr {
        local(&self.https)
    }
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().map(local)
    }
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(local)
    }
    pub fn demo_addr(&self) -> Option<SocketAddr> {
        self.demo.as_ref().map(local)
    }

    /// Serves until `shutdown` resolves, then stops accepting and gives in-flight requests
    /// `limits.shutdown_grace` to finish.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let gw = self.gateway;
        let (tx, rx) = tokio::sync::watch::channel(false);
        let https_port = local(&self.https).port();
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(crate::server::serve_tls(gw.clone(), self.https, rx.clone()));
        if let Some(l) = self.http {
            tasks.spawn(crate::plain::serve_redirect(
                gw.clone(),
                l,
                https_port,
                rx.clone(),
            ));
        }
        if let Some(l) = self.admin {
            tasks.spawn(crate::plain::serve_admin(gw.clone(), l, rx.clone()));
        }
        if let Some(l) = self.demo {
            tasks.spawn(crate::demo::serve_echo(l, rx.clone()));
        }
        shutdown.await;
        tracing::info!("shutting down: no new connections, draining in-flight requests");
        let _ = tx.send(true);
        while tasks.join_next().await.is_some() {}
        tracing::info!("stopped");
    }
}

fn local(l: &TcpListener) -> SocketAddr {
    l.local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
}
