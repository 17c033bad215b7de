//! One shared, multiplexed Redis connection that heals itself, and the bounded way to use it.
//!
//! Every request of the gateway pipelines its commands over one `MultiplexedConnection`. A
//! supervisor task owns that connection: it makes it (without blocking startup), replaces it
//! when a call reports it broken, and probes it with PING when calls time out or every few
//! seconds. The probe is what tells a slow Redis (PING answers late but answers: keep the
//! connection) from a dead or half-open one (no answer: reconnect), so a connection whose peer
//! vanished without a FIN/RST cannot wedge the store forever.
//!
//! Callers never wait for the supervisor longer than their own deadline: [`Link::run`] puts the
//! permit, the wait for a connection and the command under one `tokio::time::timeout`.
//!
//! Behind Sentinel the node changes: every connection is made to the master the sentinels
//! name at that moment, the heartbeat asks `ROLE` instead of PING, and a node that stopped
//! being a master (or answers READONLY) is left at once, so a failover is followed without a
//! restart and no write lands on a demoted node.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{
    AsyncConnectionConfig, Cmd, ErrorKind, FromRedisValue, Pipeline, RedisError, RedisFuture, Role,
    ServerErrorKind, Value,
};
use tokio::sync::{mpsc, watch, Semaphore};

use super::target::Target;
use super::StoreError;

/// First delay between failed connection attempts; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(50);
/// Longest delay between attempts: once Redis is back, the store follows within about this.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// How often an idle live connection is probed, to find a dead one before a request does.
const HEARTBEAT: Duration = Duration::from_secs(2);

/// One live connection: to a node (alone or named by the sentinels), or to a cluster (which
/// routes each command to its key's master and follows its own topology changes).
#[derive(Clone)]
pub(crate) enum Conn {
    Node(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl Conn {
    /// Runs a keyless command (`ROLE`, `WAIT`) on the node that holds `key`: the same node
    /// and connection that the key's writes went to.
    pub(crate) async fn query_at_key<T: FromRedisValue>(
        &mut self,
        cmd: &Cmd,
        key: &str,
    ) -> Result<T, RedisError> {
        match self {
            Conn::Node(c) => cmd.query_async(c).await,
            Conn::Cluster(c) => {
                let route = Route::with_key(key.as_bytes(), SlotAddr::Master);
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route));
                let value = c.route_command(cmd.clone(), routing).await?;
                T::from_redis_value(value).map_err(RedisError::from)
            }
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Node(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Node(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Node(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// What the callers see of the supervisor.
#[derive(Clone)]
enum State {
    /// First attempt after start or after losing a live connection: callers wait for it.
    Connecting,
    /// `generation` identifies this connection in reports, so a late report about an old
    /// connection cannot tear down its replacement.
    Up { generation: u64, conn: Conn },
    /// The last attempt failed; the next one is pending. Callers fail at once.
    Down { error: String },
}

/// A caller's report about the connection of a generation.
#[derive(Debug, Clone, Copy)]
enum Report {
    /// A call failed with a connection error: replace it now.
    Broken(u64),
    /// A call timed out: PING it, replace it if that gets no answer either.
    Suspect(u64),
}

/// The handle the store uses: a shared connection, a concurrency cap and a deadline.
pub(super) struct Link {
    state: watch::Receiver<State>,
    /// The generation of the connection in use, for those that must know when it changes.
    generations: watch::Receiver<u64>,
    reports: mpsc::Sender<Report>,
    permits: Semaphore,
    timeout: Duration,
}

impl Link {
    /// Starts the supervisor in the current Tokio runtime and returns at once; fails only
    /// when called outside a Tokio runtime.
    pub(super) fn start(
        target: Arc<Target>,
        timeout: Duration,
        max_concurrent: usize,
    ) -> Result<Link, StoreError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            StoreError::Invalid("the Redis session store needs a Tokio runtime".into())
        })?;
        // A connection attempt may take longer than one call's deadline: callers stop waiting,
        // the attempt goes on in the background.
        let connect_timeout = (timeout * 2).clamp(Duration::from_secs(1), Duration::from_secs(5));
        // The probe gives a slow Redis more time than a call gets before we call it dead.
        let probe_timeout = (timeout * 4).clamp(Duration::from_secs(1), Duration::from_secs(5));
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            // The caller's deadline covers responses; a late answer to a call that gave up is
            // read and dropped by the connection, keeping the pipeline in order.
            .set_response_timeout(None);
        let (state_tx, state_rx) = watch::channel(State::Connecting);
        let (generation_tx, generations) = watch::channel(0);
        // Reports beyond this are dropped: one pending report is enough to act.
        let (report_tx, report_rx) = mpsc::channel(16);
        let supervisor = Supervisor {
            target,
            config,
            connect_timeout,
            probe_timeout,
            state: state_tx,
            generations: generation_tx,
            reports: report_rx,
            generation: 0,
        };
        runtime.spawn(supervisor.run());
        Ok(Link {
            state: state_rx,
            generations,
            reports: report_tx,
            // A semaphore with no permits would turn every call into a timeout.
            permits: Semaphore::new(max_concurrent.max(1)),
            timeout,
        })
    }

    /// Runs `op` on the shared connection: waiting for a permit, for a connection and for the
    /// answer all count against the store timeout. `idempotent` operations are retried once,
    /// within the same deadline, on a fresh connection when the first one turns out dead (say
    /// Redis restarted while the gateway was idle); others (refresh rotation) are not, since
    /// the first attempt may have been applied.
    pub(super) async fn run<T, F, Fut>(&self, idempotent: bool, op: F) -> Result<T, StoreError>
    where
        F: Fn(Conn) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let mut in_use = None;
        let attempt = async {
            let _permit = self
                .permits
                .acquire()
                .await
                .map_err(|_| StoreError::Unavailable("session store closed".into()))?;
            let (generation, conn) = self.connection(None).await?;
            in_use = Some(generation);
            match op(conn).await {
                Ok(value) => Ok(value),
                Err(e) if idempotent && is_connection_error(&e) => {
                    self.report(Report::Broken(generation));
                    let (generation, conn) = self.connection(Some(generation)).await?;
                    in_use = Some(generation);
                    op(conn).await.map_err(|e| self.failed(generation, e))
                }
                Err(e) => Err(self.failed(generation, e)),
            }
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(result) => result,
            Err(_elapsed) => {
                if let Some(generation) = in_use {
                    self.report(Report::Suspect(generation));
                }
                Err(StoreError::Timeout)
            }
        }
    }

    /// Changes whenever a new connection replaces the last (behind Sentinel: possibly to
    /// another node).
    pub(super) fn generations(&self) -> watch::Receiver<u64> {
        self.generations.clone()
    }

    /// A live connection other than generation `not`: waits while the supervisor connects,
    /// fails at once while Redis is known to be down.
    async fn connection(&self, not: Option<u64>) -> Result<(u64, Conn), StoreError> {
        let mut state = self.state.clone();
        let ready = state
            .wait_for(|s| match s {
                State::Connecting => false,
                State::Up { generation, .. } => Some(*generation) != not,
                State::Down { .. } => true,
            })
            .await
            .map_err(|_| StoreError::Unavailable("session store supervisor stopped".into()))?;
        match &*ready {
            State::Up { generation, conn } => Ok((*generation, conn.clone())),
            State::Down { error } => Err(StoreError::Unavailable(error.clone())),
            // wait_for returned, so the predicate excluded this.
            State::Connecting => Err(StoreError::Unavailable("connecting".into())),
        }
    }

    /// Maps a failed call to the caller's error, reporting connection errors.
    fn failed(&self, generation: u64, e: RedisError) -> StoreError {
        if is_connection_error(&e) {
            self.report(Report::Broken(generation));
        }
        StoreError::Unavailable(e.to_string())
    }

    fn report(&self, report: Report) {
        // Full: a report is already pending and will make the supervisor act.
        let _ = self.reports.try_send(report);
    }
}

/// Whether the error says the connection (not the command) failed, or that its node is no
/// longer the one to write to (READONLY: a master demoted by a failover).
fn is_connection_error(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_unrecoverable_error()
        || e.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly)
}

struct Supervisor {
    target: Arc<Target>,
    config: AsyncConnectionConfig,
    /// For finding the node (asking the sentinels) and connecting to it, together.
    connect_timeout: Duration,
    probe_timeout: Duration,
    state: watch::Sender<State>,
    generations: watch::Sender<u64>,
    reports: mpsc::Receiver<Report>,
    generation: u64,
}

/// Why [`Supervisor::watch`] returned.
enum Watch {
    /// The connection is dead: make another.
    Lost(String),
    /// The store was dropped: stop.
    Closed,
}

impl Supervisor {
    /// Connects, watches, reconnects, until the store is dropped.
    async fn run(mut self) {
        let mut backoff = MIN_BACKOFF;
        let mut was_down = false;
        loop {
            let (target, config) = (&self.target, &self.config);
            let attempt = target.connect(config);
            let attempt = tokio::time::timeout(self.connect_timeout * 2, attempt);
            let result = tokio::select! {
                result = attempt => result.unwrap_or_else(|_| {
                    Err(RedisError::from((ErrorKind::Io, "connect timed out")))
                }),
                () = self.state.closed() => return,
            };
            match result {
                Ok((conn, addr)) => {
                    self.generation += 1;
                    backoff = MIN_BACKOFF;
                    if was_down {
                        tracing::info!("session store: connected to Redis again");
                    }
                    was_down = false;
                    self.state.send_replace(State::Up {
                        generation: self.generation,
                        conn: conn.clone(),
                    });
                    self.generations.send_replace(self.generation);
                    match self.watch(conn, &addr).await {
                        Watch::Closed => return,
                        Watch::Lost(reason) => {
                            tracing::warn!(%reason, "session store: Redis connection lost");
                            self.state.send_replace(State::Connecting);
                        }
                    }
                }
                Err(e) => {
                    if !was_down {
                        tracing::warn!(error = %e, "session store: cannot connect to Redis");
                    }
                    was_down = true;
                    self.state.send_replace(State::Down {
                        error: e.to_string(),
                    });
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = self.state.closed() => return,
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Waits for reports about the live connection and probes it, until it is lost.
    async fn watch(&mut self, conn: Conn, addr: &str) -> Watch {
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        heartbeat.tick().await; // the first tick is immediate
        loop {
            let must_probe = tokio::select! {
                report = self.reports.recv() => match report {
                    None => return Watch::Closed,
                    Some(Report::Broken(g)) if g == self.generation => {
                        return Watch::Lost("a call failed with a connection error".into());
                    }
                    Some(Report::Suspect(g)) => g == self.generation,
                    Some(Report::Broken(_)) => false,
                },
                _ = heartbeat.tick() => true,
                () = self.state.closed() => return Watch::Closed,
            };
            if !must_probe {
                continue;
            }
            let follows_master = self.target.follows_master();
            match tokio::time::timeout(self.probe_timeout, probe(conn.clone(), follows_master))
                .await
            {
                Ok(Ok(())) => {}
                Ok(Err(reason)) => return Watch::Lost(reason),
                Err(_) => {
                    return Watch::Lost(format!(
                        "no answer to the probe within {:?}",
                        self.probe_timeout
                    ))
                }
            }
            // A master cut off from the sentinels still says "master": ask them too.
            if let Err(reason) = self.target.check_named(addr, self.probe_timeout).await {
                return Watch::Lost(reason);
            }
            // The connection answers: what was reported while we probed is settled.
            while let Ok(report) = self.reports.try_recv() {
                if matches!(report, Report::Broken(g) if g == self.generation) {
                    return Watch::Lost("a call failed with a connection error".into());
                }
            }
            heartbeat.reset();
        }
    }
}

/// PING; or, when the node may change under us, `ROLE`. `Err` says why the connection must
/// be replaced: it failed, or its node is no longer the master. A command error on a live
/// connection is not a reason.
pub(crate) async fn probe(
    mut conn: impl ConnectionLike,
    follows_master: bool,
) -> Result<(), String> {
    let failed = |e: RedisError| {
        if is_connection_error(&e) {
            Err(format!("probe failed: {e}"))
        } else {
            Ok(())
        }
    };
    if !follows_master {
        return redis::cmd("PING")
            .query_async::<()>(&mut conn)
            .await
            .or_else(failed);
    }
    match redis::cmd("ROLE").query_async::<Role>(&mut conn).await {
        Ok(Role::Primary { .. }) => Ok(()),
        Ok(_) => Err("the node is no longer the master".into()),
        Err(e) => failed(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Redis;

    fn refused_client() -> Arc<Target> {
        // Port 1 on loopback: nothing listens there, the connection is refused at once.
        Arc::new(
            Target::new(
                &Redis::url("redis://127.0.0.1:1/0"),
                redis::ProtocolVersion::RESP2,
                false,
            )
            .unwrap(),
        )
    }

    #[tokio::test]
    async fn refused_connection_fails_within_the_timeout() {
        let link = Link::start(refused_client(), Duration::from_millis(200), 4).unwrap();
        let started = tokio::time::Instant::now();
        let result: Result<(), StoreError> = link
            .run(true, |mut c| async move {
                redis::cmd("PING").query_async::<()>(&mut c).await
            })
            .await;
        assert!(
            matches!(
                result,
                Err(StoreError::Unavailable(_) | StoreError::Timeout)
            ),
            "{result:?}"
        );
        assert!(started.elapsed() < Duration::from_millis(800));
    }

    #[tokio::test]
    async fn zero_permits_are_raised_to_one() {
        let link = Link::start(refused_client(), Duration::from_millis(100), 0).unwrap();
        assert_eq!(link.permits.available_permits(), 1);
    }

    #[test]
    fn outside_a_runtime_is_an_error_not_a_panic() {
        let result = Link::start(refused_client(), Duration::from_millis(100), 1);
        assert!(matches!(result, Err(StoreError::Invalid(_))));
    }

    #[test]
    fn io_errors_are_connection_errors_server_errors_are_not() {
        let io: RedisError =
            std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset").into();
        assert!(is_connection_error(&io));
        let typed: RedisError = (redis::ErrorKind::UnexpectedReturnType, "bad type").into();
        assert!(!is_connection_error(&typed));
    }
}
