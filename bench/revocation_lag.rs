//! Revocation lag between two gateway instances on one Redis: how long after another service
//! `DEL`s a session key (or changes its `roles` field) the other instance first refuses it.
//! The config's Redis may be one node, Sentinel (the master is asked of the sentinels) or a
//! cluster (keys in the cluster layout, `{P}session:{<sid>}`).
//!
//! For each of N rounds: write a session hash straight into Redis (HSET + EXPIRE, as another
//! service would), warm both instances with the token (so each has the session cached), then
//! change Redis and poll instance B over one kept-alive HTTP/2 TLS connection, one request in
//! flight, until the expected status comes. The lag is the time from the reply to the Redis
//! command to the first expected answer. Bounded by N and by a total time limit.
//!
//!   cargo run --release --example revocation_lag -- --config gw-a.toml \
//!       --a 127.0.0.1:8443 --b 127.0.0.1:8444 --cert certs/gateway.crt --count 1000
//!
//! Modes: `delete` (DEL, expect 401 on a protected path), `grant` (roles "user" ->
//! "user,admin", expect 200 on an admin path), `revoke` (roles "user,admin" -> "user",
//! expect 403 on the admin path).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use gateway::auth::mint::{MintClaims, Signer};
use http::{Request, StatusCode, Version};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

#[path = "common.rs"]
mod common;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// DEL the session key; expect 401.
    Delete,
    /// roles "user" -> "user,admin"; expect 200 on the admin path.
    Grant,
    /// roles "user,admin" -> "user"; expect 403 on the admin path.
    Revoke,
}

#[derive(Debug, Parser)]
#[command(about = "Revocation lag between two gateway instances on one Redis")]
struct Args {
    /// Config used to mint tokens ([auth] signing key, [jwt] claims) and for the Redis URL
    /// and key prefix ([session]).
    #[arg(long)]
    config: PathBuf,
    /// Instance A's HTTPS address (warmed only).
    #[arg(long)]
    a: SocketAddr,
    /// Instance B's HTTPS address (warmed, then polled).
    #[arg(long)]
    b: SocketAddr,
    /// The gateway's certificate (PEM), trusted as the only root.
    #[arg(long)]
    cert: PathBuf,
    /// Redis URL; default: session.redis_url of the config.
    #[arg(long)]
    redis: Option<String>,
    #[arg(long, value_enum, default_value_t = Mode::Delete)]
    mode: Mode,
    /// Revocations to measure.
    #[arg(long, default_value_t = 1000)]
    count: usize,
    /// A protected path (any authenticated user).
    #[arg(long, default_value = "/api/x")]
    path: String,
    /// A path whose route requires the `admin` role (grant/revoke modes).
    #[arg(long, default_value = "/admin/x")]
    admin_path: String,
    /// Requests per instance while warming.
    #[arg(long, default_value_t = 3)]
    warm: usize,
    /// Give up on one revocation after this long.
    #[arg(long, default_value = "2s", value_parser = common::parse_duration)]
    poll_timeout: Duration,
    /// Stop after this long in all, whatever the count.
    #[arg(long, default_value = "5m", value_parser = common::parse_duration)]
    max_time: Duration,
    /// Pause between rounds (lets the previous key's invalidation settle).
    #[arg(long, default_value = "1ms", value_parser = common::parse_duration)]
    pause: Duration,
}

impl Mode {
    fn roles_before(self) -> Option<&'static str> {
        match self {
            Mode::Delete | Mode::Grant => Some("user"),
            Mode::Revoke => Some("user,admin"),
        }
    }
    /// The status while the session is as written, and the one expected after the change.
    fn statuses(self) -> (StatusCode, StatusCode) {
        match self {
            Mode::Delete => (StatusCode::OK, StatusCode::UNAUTHORIZED),
            Mode::Grant => (StatusCode::FORBIDDEN, StatusCode::OK),
            Mode::Revoke => (StatusCode::OK, StatusCode::FORBIDDEN),
        }
    }
}

/// One kept-alive HTTP/2 TLS connection to an instance.
struct H2 {
    send: SendRequest<Empty<Bytes>>,
}

impl H2 {
    async fn connect(addr: SocketAddr, connector: &TlsConnector) -> Result<H2, String> {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("{addr}: {e}"))?;
        tcp.set_nodelay(true).map_err(|e| format!("{addr}: {e}"))?;
        let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
        let tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| format!("{addr}: TLS: {e}"))?;
        let (send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .map_err(|e| format!("{addr}: HTTP/2: {e}"))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                eprintln!("revocation_lag: connection to {addr} ended: {e}");
            }
        });
        Ok(H2 { send })
    }

    async fn get(&mut self, path: &str, token: &str) -> Result<StatusCode, String> {
        let req = Request::builder()
            .method("GET")
            .uri(format!("https://localhost{path}"))
            .version(Version::HTTP_2)
            .header("authorization", format!("Bearer {token}"))
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        self.send.ready().await.map_err(|e| e.to_string())?;
        let resp = self
            .send
            .send_request(req)
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        // Drain the body so the stream is done before the next request.
        resp.into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        Ok(status)
    }
}

struct Round {
    lag: Duration,
    /// Round trip of the last warm-up request to B: the floor the lag is measured against.
    rtt: Duration,
    /// Answers with the old status after the change (stale answers).
    stale: u32,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("revocation_lag: runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("revocation_lag: {e}");
            ExitCode::from(2)
        }
    }
}

/// Ok(true) when every round saw the change within the poll timeout.
async fn run(args: &Args) -> Result<bool, String> {
    let config = gateway::config::load(&args.config).map_err(|e| e.to_string())?;
    let auth = config
        .auth
        .as_ref()
        .ok_or("the config has no [auth] table (auth.signing_key)")?;
    let signer = Signer::from_config(auth).map_err(|e| e.to_string())?;
    let (mut redis, cluster) = connect_redis(args.redis.as_deref(), &config.session.redis.nodes)
        .await
        .map_err(|e| format!("redis: {e}"))?;

    let tls = common::client_config(common::Trust::Roots(&args.cert), &[b"h2"], true)?;
    let connector = TlsConnector::from(std::sync::Arc::new(tls));
    let mut a = H2::connect(args.a, &connector).await?;
    let mut b = H2::connect(args.b, &connector).await?;

    let path = match args.mode {
        Mode::Delete => args.path.as_str(),
        Mode::Grant | Mode::Revoke => args.admin_path.as_str(),
    };
    let (before, after) = args.mode.statuses();
    let nonce: u32 = rand::random();
    let started = Instant::now();
    let mut rounds = Vec::with_capacity(args.count);
    let mut timeouts = 0usize;
    let mut unexpected = 0usize;

    for i in 0..args.count {
        if started.elapsed() >= args.max_time {
            eprintln!(
                "revocation_lag: time limit {:?} reached after {i} rounds",
                args.max_time
            );
            break;
        }
        let sid = format!("lag-{nonce:08x}-{i}");
        let key = if cluster {
            format!("{}session:{{{sid}}}", config.session.key_prefix)
        } else {
            format!("{}session:{sid}", config.session.key_prefix)
        };
        let roles: Vec<String> = Vec::new();
        let token = signer
            .mint(&MintClaims {
                issuer: &config.jwt.issuer,
                audience: &config.jwt.audience,
                user_id_claim: &config.jwt.user_id_claim,
                user_id: "lag-user",
                session_claim: &config.jwt.session_claim,
                session_id: &sid,
                roles_claim: &config.jwt.roles_claim,
                roles: &roles,
                ttl: Duration::from_secs(600),
            })
            .map_err(|e| e.to_string())?;

        // Another service writes the session.
        let mut write = redis::cmd("HSET");
        write
            .arg(&key)
            .arg("user_id")
            .arg("lag-user")
            .arg("created_at")
            .arg(unix_now());
        if let Some(r) = args.mode.roles_before() {
            write.arg("roles").arg(r);
        }
        write
            .query_async::<()>(&mut redis)
            .await
            .map_err(|e| format!("redis HSET: {e}"))?;
        redis::cmd("EXPIRE")
            .arg(&key)
            .arg(300)
            .query_async::<()>(&mut redis)
            .await
            .map_err(|e| format!("redis EXPIRE: {e}"))?;

        // Warm both instances: the session is read once and then cached.
        let mut rtt = Duration::ZERO;
        for (name, conn) in [("A", &mut a), ("B", &mut b)] {
            for _ in 0..args.warm.max(1) {
                let sent = Instant::now();
                let got = conn.get(path, &token).await?;
                rtt = sent.elapsed();
                if got != before {
                    return Err(format!(
                        "round {i}: instance {name} answered {got} before the change, expected {before}"
                    ));
                }
            }
        }

        // The change, as another service would make it.
        match args.mode {
            Mode::Delete => {
                redis::cmd("DEL")
                    .arg(&key)
                    .query_async::<i64>(&mut redis)
                    .await
            }
            Mode::Grant => {
                redis::cmd("HSET")
                    .arg(&key)
                    .arg("roles")
                    .arg("user,admin")
                    .query_async::<i64>(&mut redis)
                    .await
            }
            Mode::Revoke => {
                redis::cmd("HSET")
                    .arg(&key)
                    .arg("roles")
                    .arg("user")
                    .query_async::<i64>(&mut redis)
                    .await
            }
        }
        .map_err(|e| format!("redis change: {e}"))?;
        let changed = Instant::now();

        let mut stale = 0u32;
        let outcome = loop {
            let got = b.get(path, &token).await?;
            let now = Instant::now();
            if got == after {
                break Some(now - changed);
            }
            if got == before {
                stale = stale.saturating_add(1);
            } else {
                unexpected += 1;
                eprintln!("revocation_lag: round {i}: unexpected {got} from B");
            }
            if now - changed >= args.poll_timeout {
                break None;
            }
        };
        match outcome {
            Some(lag) => rounds.push(Round { lag, rtt, stale }),
            None => {
                timeouts += 1;
                eprintln!(
                    "revocation_lag: round {i}: B still answered {before} {:?} after the change",
                    args.poll_timeout
                );
            }
        }
        if args.mode != Mode::Delete {
            let _: Result<i64, _> = redis::cmd("DEL").arg(&key).query_async(&mut redis).await;
        }
        if !args.pause.is_zero() {
            tokio::time::sleep(args.pause).await;
        }
    }

    report(args, &rounds, timeouts, unexpected, started.elapsed());
    Ok(timeouts == 0 && unexpected == 0 && !rounds.is_empty())
}

fn report(args: &Args, rounds: &[Round], timeouts: usize, unexpected: usize, took: Duration) {
    let mut lags: Vec<Duration> = rounds.iter().map(|r| r.lag).collect();
    lags.sort_unstable();
    let stale: u64 = rounds.iter().map(|r| u64::from(r.stale)).sum();
    let with_stale = rounds.iter().filter(|r| r.stale > 0).count();
    let p = |q| common::percentile(&lags, q).map_or("-".to_owned(), common::ms);
    println!(
        "mode={:?} rounds={} timeouts={timeouts} unexpected={unexpected} took={:.1}s",
        args.mode,
        rounds.len(),
        took.as_secs_f64()
    );
    println!(
        "lag_ms p50={} p90={} p99={} max={}",
        p(50.0),
        p(90.0),
        p(99.0),
        p(100.0)
    );
    let mut rtts: Vec<Duration> = rounds.iter().map(|r| r.rtt).collect();
    rtts.sort_unstable();
    let q = |x| common::percentile(&rtts, x).map_or("-".to_owned(), common::ms);
    println!(
        "warm request round trip to B (the lag's floor), ms: p50={} p99={}",
        q(50.0),
        q(99.0)
    );
    println!(
        "stale answers after the change: {stale} in all, in {with_stale} of {} rounds",
        rounds.len()
    );
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_statuses() {
        assert_eq!(
            Mode::Delete.statuses(),
            (StatusCode::OK, StatusCode::UNAUTHORIZED)
        );
        assert_eq!(
            Mode::Grant.statuses(),
            (StatusCode::FORBIDDEN, StatusCode::OK)
        );
        assert_eq!(
            Mode::Revoke.statuses(),
            (StatusCode::OK, StatusCode::FORBIDDEN)
        );
        assert_eq!(Mode::Revoke.roles_before(), Some("user,admin"));
    }

    #[test]
    fn args_parse_with_defaults() {
        let args = Args::try_parse_from([
            "revocation_lag",
            "--config",
            "g.toml",
            "--a",
            "127.0.0.1:1",
            "--b",
            "127.0.0.1:2",
            "--cert",
            "c.pem",
        ])
        .expect("parses");
        assert_eq!(args.count, 1000);
        assert_eq!(args.mode, Mode::Delete);
        assert_eq!(args.max_time, Duration::from_secs(300));
        assert!(Args::try_parse_from(["revocation_lag", "--mode", "nope"]).is_err());
    }
}

/// The Redis the sessions are written to: one node, the master the sentinels name, or a
/// cluster (then `true`: keys take the cluster layout).
enum BenchRedis {
    Node(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl redis::aio::ConnectionLike for BenchRedis {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            BenchRedis::Node(c) => c.req_packed_command(cmd),
            BenchRedis::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            BenchRedis::Node(c) => c.req_packed_commands(cmd, offset, count),
            BenchRedis::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            BenchRedis::Node(c) => c.get_db(),
            BenchRedis::Cluster(c) => c.get_db(),
        }
    }
}

async fn connect_redis(
    url: Option<&str>,
    nodes: &gateway::config::RedisNodes,
) -> Result<(BenchRedis, bool), redis::RedisError> {
    use gateway::config::RedisNodes;
    let client = match (url, nodes) {
        (Some(url), _) => redis::Client::open(url)?,
        (None, RedisNodes::Url(url)) => redis::Client::open(url.as_str())?,
        (None, RedisNodes::Sentinel { master, nodes }) => {
            let mut s = redis::sentinel::SentinelClient::build(
                nodes.clone(),
                master.clone(),
                None,
                redis::sentinel::SentinelServerType::Master,
            )?;
            s.async_get_client().await?
        }
        (None, RedisNodes::Cluster(nodes)) => {
            let c = redis::cluster::ClusterClient::new(nodes.clone())?;
            return Ok((BenchRedis::Cluster(c.get_async_connection().await?), true));
        }
    };
    Ok((
        BenchRedis::Node(client.get_multiplexed_async_connection().await?),
        false,
    ))
}
