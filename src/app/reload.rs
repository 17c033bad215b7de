//! Hot reload: re-read the config and every file it names, build a new [`App`] beside the
//! running one and swap it in whole. A config that fails to load or a file that fails to parse
//! leaves the running gateway untouched, with every error logged (`file:line:col` for config
//! mistakes). Requests in flight finish on the gateway they started with; open connections
//! stay open and their next request sees the new config; new connections get the new
//! certificate. Triggered by SIGHUP (`main`) and by [`watch`], which polls the files' contents.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::files::Fingerprints;
use super::{certificate_not_after, App, Live};
use crate::config::{self, Config};

/// Why a reload was refused (every cause was already logged).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{0}")]
    Config(config::ConfigErrors),
    #[error("{0}")]
    Start(crate::app::StartError),
}

/// What a reload changed that only a restart applies (their running values stay).
pub type RestartOnly = Vec<&'static str>;

/// Reloads from the file the running config came from. `why` goes into the log.
pub async fn reload(live: &Live, why: &str) -> Result<RestartOnly, ReloadError> {
    let mut one_at_a_time = live.reloading.lock().await;
    let old = live.get();
    *one_at_a_time = Some(Fingerprints::of(&old.config));
    tracing::info!(trigger = why, config = %old.config.source.display(), "reloading");
    // Reading and checking the file is blocking work: off the runtime, so serving goes on.
    let source = old.config.source.clone();
    let loaded = tokio::task::spawn_blocking(move || {
        if source == Path::new(config::EMBEDDED_SOURCE) {
            config::load_str(config::EMBEDDED_DEFAULT, &source)
        } else {
            config::load(&source)
        }
    })
    .await
    .unwrap_or_else(|e| {
        Err(config::ConfigErrors(vec![config::ConfigError {
            file: old.config.source.clone(),
            line: 0,
            col: 0,
            key: String::new(),
            reason: format!("the config could not be read: {e}"),
        }]))
    });
    let mut new = match loaded {
        Ok(c) => c,
        Err(errors) => {
            for e in &errors.0 {
                tracing::error!(error = %e, "reload refused: configuration error");
            }
            tracing::error!(
                errors = errors.0.len(),
                "reload refused; the running configuration stays"
            );
            old.metrics().reload_failed();
            return Err(ReloadError::Config(errors));
        }
    };
    let restart_only = keep_restart_only(&old.config, &mut new);
    if !restart_only.is_empty() {
        tracing::warn!(keys = ?restart_only,
            "these settings take effect on restart only (SIGUSR2 or a new process); their running values stay");
    }
    let places = new.places.clone();
    match App::rebuild(new, &old).await {
        Ok(gw) => {
            let (_, sessions) = gw.auth().shared_store();
            let sessions =
                sessions.map(|c| Box::new(c) as Box<dyn crate::observe::metrics::CacheView>);
            gw.metrics()
                .reloaded(&gw.config, sessions, certificate_not_after(&gw.config));
            tracing::info!(routes = gw.config.routes.len(), "configuration reloaded");
            live.swap(gw);
            Ok(restart_only)
        }
        Err(e) => {
            tracing::error!(error = %e.in_config(&places), "reload refused; the running configuration stays");
            old.metrics().reload_failed();
            Err(ReloadError::Start(e))
        }
    }
}

/// The listeners, the runtime, the connection limits and the demo upstream are fixed when the
/// process starts: copies their running values into `new` and names what differed.
fn keep_restart_only(old: &Config, new: &mut Config) -> RestartOnly {
    fn keep<T: PartialEq + Clone>(
        name: &'static str,
        old: &T,
        new: &mut T,
        changed: &mut RestartOnly,
    ) {
        if new != old {
            changed.push(name);
            *new = old.clone();
        }
    }
    let mut changed = Vec::new();
    keep("listen", &old.listen, &mut new.listen, &mut changed);
    keep("runtime", &old.runtime, &mut new.runtime, &mut changed);
    keep("limits", &old.limits, &mut new.limits, &mut changed);
    keep("demo", &old.demo, &mut new.demo, &mut changed);
    changed
}

/// With `[reload] watch = true`, compares the config file and every file it names with what
/// the running gateway was built from, every `reload.interval`, and reloads when one changed
/// and then stayed the same for one more interval (a file written in several steps is not
/// read half-way). Polling the contents (not inotify) also sees Kubernetes ConfigMap and
/// Secret updates (a symlink swap), editors that save by rename, and network filesystems; it
/// reads a few small files per interval. A reload refused for a config error waits for the
/// next change; one refused while loading files (a JWKS fetch, a certificate without its new
/// key yet) is tried again with backoff, up to every minute.
pub async fn watch(live: Arc<Live>, mut shutdown: watch::Receiver<bool>) {
    let mut current = live.get();
    let mut seen = current.files.clone();
    let mut settling: Option<Fingerprints> = None;
    let mut retry: Option<(tokio::time::Instant, Duration)> = None;
    loop {
        let every = current.config.reload.interval;
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = crate::listen::shutdown_signalled(&mut shutdown) => return,
        }
        let gw = live.get();
        if !Arc::ptr_eq(&gw, &current) {
            // Reloaded meanwhile (SIGHUP, or this loop): start from what that one loaded.
            seen = gw.files.clone();
            current = gw;
            settling = None;
            retry = None;
        }
        if !current.config.reload.watch {
            continue;
        }
        // What the last reload read, if one ran since (SIGHUP's included).
        if let Some(tried) = live.reloading.try_lock().ok().and_then(|mut t| t.take()) {
            seen = tried;
        }
        let now = Fingerprints::of(&current.config);
        let changed = now.changed_since(&seen).map(Path::to_path_buf);
        let retry_due = retry.is_some_and(|(at, _)| tokio::time::Instant::now() >= at);
        let why = match (changed, retry_due) {
            (Some(path), _) => {
                if settling.as_ref() != Some(&now) {
                    settling = Some(now);
                    continue;
                }
                format!("{} changed", path.display())
            }
            (None, true) => "retrying a refused reload".to_owned(),
            (None, false) => {
                settling = None;
                continue;
            }
        };
        settling = None;
        match reload(&live, &why).await {
            Ok(_) => retry = None,
            Err(ReloadError::Config(_)) => {
                seen = now;
                retry = None;
            }
            Err(ReloadError::Start(_)) => {
                seen = now;
                let wait = retry.map_or(every * 2, |(_, d)| d * 2).min(MAX_RETRY);
                retry = Some((tokio::time::Instant::now() + wait, wait));
            }
        }
    }
}

/// The longest wait between retries of a reload refused while loading files.
const MAX_RETRY: Duration = Duration::from_secs(60);
