//! Binding the listeners a config names (or taking them over from the process that started
//! this one) and running them until shutdown: the TLS listener serves the proxy, the plain
//! ones the redirect and the admin answers, each through the one accept loop of `listen`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use super::restart::{Inherited, Listeners};
use super::{App, Live, StartError};

impl App {
    /// Binds every configured listener (port 0 picks a free port; see [`Bound`] for the
    /// addresses actually bound).
    pub async fn bind(self: &Arc<Self>) -> Result<Bound, StartError> {
        self.bind_inherited(Inherited::none()).await
    }

    /// [`bind`](Self::bind), taking over the listening sockets the process that started this
    /// one passed in (`LISTEN_FDS`, see [`crate::app::restart`]) where they are where the config
    /// listens; the others are closed.
    pub async fn bind_inherited(
        self: &Arc<Self>,
        mut inherited: Inherited,
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
            Some(d) => Some(
                bind(&mut inherited, "demo", d.echo)
                    .await
                    .map_err(demo_in_use)?,
            ),
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

/// The demo address in use is most likely another instance's demo on the same file: say so,
/// and how to start without it.
fn demo_in_use(e: StartError) -> StartError {
    match e {
        StartError::Bind { addr, source } if source.kind() == std::io::ErrorKind::AddrInUse => {
            StartError::Other(format!(
                "cannot listen on {addr} for the demo upstream: {source} (another instance's \
                 demo? start this one with --no-demo)"
            ))
        }
        e => e,
    }
}

async fn bind(
    inherited: &mut Inherited,
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
    pub fn listeners(&self) -> Listeners {
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
        Listeners::new(list)
    }

    /// Serves until `shutdown` resolves, then stops accepting and gives in-flight requests
    /// `limits.shutdown_grace` to finish. With `[reload] watch`, also reloads when a watched
    /// file changes. `[listen]` and `[limits]` take effect at start only: the first config's
    /// are the ones every listener keeps.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let live = self.live;
        let first = live.get().config.clone();
        let limits = first.limits.clone();
        let (tx, rx) = tokio::sync::watch::channel(false);
        let https_port = first
            .listen
            .redirect_port
            .unwrap_or_else(|| local(&self.https).port());
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(crate::listen::tls::serve(
            live.clone(),
            first.limits.clone(),
            first.listen.clone(),
            self.https,
            rx.clone(),
        ));
        if let Some(l) = self.http {
            let live = live.clone();
            let handler = move |req| {
                let app = live.get();
                async move { crate::admin::redirect::handle(&app.admin, https_port, req).await }
            };
            tasks.spawn(crate::listen::plain::serve(
                limits.clone(),
                l,
                rx.clone(),
                handler,
            ));
        }
        if let Some(l) = self.admin {
            let live = live.clone();
            let handler = move |req| {
                let app = live.get();
                async move { app.admin.handle(req).await }
            };
            tasks.spawn(crate::listen::plain::serve(
                limits.clone(),
                l,
                rx.clone(),
                handler,
            ));
        }
        if let Some(l) = self.demo {
            tasks.spawn(crate::demo::serve_echo(l, limits.clone(), rx.clone()));
        }
        let watcher = tokio::spawn(super::reload::watch(live.clone(), rx.clone()));
        shutdown.await;
        tracing::info!("shutting down: no new connections, draining in-flight requests");
        live.start_draining();
        let _ = tx.send(true);
        while tasks.join_next().await.is_some() {}
        watcher.abort();
        if let Some(otlp) = live.get().proxy.otlp.clone() {
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
