//! A real `redis-server` for integration tests: its own free port and temp directory (never
//! the shared Redis on 6379), stopped, restarted, paused and resumed at will to test faults,
//! killed on drop, and its log printed when a test fails.
#![allow(dead_code)] // each test binary uses a different part of the support code

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a start may take before the test fails.
const START_TIMEOUT: Duration = Duration::from_secs(10);

pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: TempDir,
    paused: bool,
    opts: Opts,
}

/// How a server is run besides the defaults: TLS only, a password, a replica of another, or a
/// sentinel.
#[derive(Clone, Default)]
pub struct Opts {
    /// Only a TLS port (`--port 0 --tls-port`), with this CA's server certificate.
    pub tls: Option<TestCa>,
    /// `--requirepass` (and `--masterauth` for a replica).
    pub password: Option<String>,
    /// `--replicaof 127.0.0.1 <port>`.
    pub replica_of: Option<u16>,
    /// A sentinel monitoring `(master name, master port)`: `redis-server sentinel.conf --sentinel`.
    pub sentinel_of: Option<(String, u16)>,
    /// A cluster node (`--cluster-enabled yes`); [`RedisCluster`] joins them.
    pub cluster: bool,
}

/// A certificate authority made in the test, and a server certificate it signed for
/// 127.0.0.1 and localhost, as PEM files in a temp directory.
#[derive(Clone)]
pub struct TestCa {
    dir: std::sync::Arc<TempDir>,
}

impl TestCa {
    pub fn new() -> TestCa {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let dir = tempfile::tempdir().expect("temp dir for a test CA");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "gateway test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &ca)
            .unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.path().join("server.pem"), leaf.pem()).unwrap();
        std::fs::write(dir.path().join("server.key"), leaf_key.serialize_pem()).unwrap();
        TestCa {
            dir: std::sync::Arc::new(dir),
        }
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn cert(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    fn key(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers PING.
    pub fn start() -> RedisServer {
        Self::start_with(Opts::default())
    }

    /// Starts a server run with `opts` on a free port and waits until it answers PING.
    pub fn start_with(opts: Opts) -> RedisServer {
        // Another process may grab the port between our probe and redis-server's bind: try a
        // few ports before giving up.
        for _ in 0..5 {
            let mut server = RedisServer {
                child: None,
                port: free_port(),
                dir: tempfile::tempdir().expect("temp dir for redis-server"),
                paused: false,
                opts: opts.clone(),
            };
            match server.spawn_and_wait() {
                Ok(()) => return server,
                Err(e) => eprintln!(
                    "redis-server on port {}: {e}\n{}",
                    server.port,
                    server.log()
                ),
            }
            server.kill();
        }
        panic!("redis-server did not start on any of 5 ports");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        let scheme = if self.opts.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}/0", self.port)
    }

    /// A client for test setup and inspection (sync API), with the server's CA and password.
    pub fn client(&self) -> redis::Client {
        use redis::IntoConnectionInfo;
        let mut info = self.url().into_connection_info().expect("valid redis url");
        if let Some(p) = &self.opts.password {
            let settings = info.redis_settings().clone().set_password(p);
            info = info.set_redis_settings(settings);
        }
        match &self.opts.tls {
            None => redis::Client::open(info),
            Some(ca) => redis::Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(std::fs::read(ca.ca()).unwrap()),
                },
            ),
        }
        .expect("valid redis client")
    }

    /// A sync connection for test setup and inspection.
    pub fn connection(&self) -> redis::Connection {
        self.client()
            .get_connection_with_timeout(Duration::from_secs(2))
            .expect("connect to test redis-server")
    }

    /// Kills the server (SIGKILL) and waits for it: clients see the connection reset and new
    /// connections refused.
    pub fn stop(&mut self) {
        self.kill();
    }

    /// Starts the server again on the same port (empty: nothing is persisted).
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "start_again on a running server");
        if let Err(e) = self.spawn_and_wait() {
            self.kill();
            panic!(
                "redis-server did not start again on port {}: {e}",
                self.port
            );
        }
    }

    /// SIGSTOP: connections stay open, nothing answers.
    pub fn pause(&mut self) {
        self.signal("-STOP");
        self.paused = true;
    }

    /// SIGCONT after [`pause`](Self::pause).
    pub fn resume(&mut self) {
        self.signal("-CONT");
        self.paused = false;
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let mut cmd = Command::new("redis-server");
        if let Some((name, master)) = &self.opts.sentinel_of {
            // Fast failure detection and failover, for tests.
            let conf = self.dir.path().join("sentinel.conf");
            std::fs::write(
                &conf,
                format!(
                    "sentinel monitor {name} 127.0.0.1 {master} 1\n\
                     sentinel down-after-milliseconds {name} 1000\n\
                     sentinel failover-timeout {name} 10000\n\
                     sentinel parallel-syncs {name} 1\n{}",
                    match &self.opts.password {
                        Some(p) => format!("sentinel auth-pass {name} {p:?}\n"),
                        None => String::new(),
                    }
                ),
            )
            .map_err(|e| format!("write sentinel.conf: {e}"))?;
            cmd.arg(&conf).arg("--sentinel");
        }
        match &self.opts.tls {
            None => {
                cmd.arg("--port").arg(self.port.to_string());
            }
            Some(ca) => {
                cmd.args(["--port", "0", "--tls-port"])
                    .arg(self.port.to_string())
                    .arg("--tls-cert-file")
                    .arg(ca.cert())
                    .arg("--tls-key-file")
                    .arg(ca.key())
                    .arg("--tls-ca-cert-file")
                    .arg(ca.ca())
                    .args(["--tls-auth-clients", "no", "--tls-replication", "yes"]);
            }
        }
        if let Some(p) = &self.opts.password {
            cmd.arg("--requirepass").arg(p).arg("--masterauth").arg(p);
        }
        if self.opts.cluster {
            cmd.args(["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"])
                .arg("--cluster-config-file")
                .arg(self.dir.path().join("nodes.conf"));
            if self.opts.tls.is_some() {
                cmd.args(["--tls-cluster", "yes"]);
            }
        }
        if let Some(master) = self.opts.replica_of {
            cmd.args(["--replicaof", "127.0.0.1"])
                .arg(master.to_string());
        }
        let child = cmd
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--daemonize", "no", "--protected-mode", "yes"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(self.log_path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot run redis-server (is it installed?): {e}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Err(format!("redis-server exited: {status}"));
            }
            if self.answers_ping() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("no PING answer within {START_TIMEOUT:?}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The log so far (for a test's own assertions).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn answers_ping(&self) -> bool {
        let Ok(mut conn) = self
            .client()
            .get_connection_with_timeout(Duration::from_millis(200))
        else {
            return false;
        };
        let _ = conn.set_read_timeout(Some(Duration::from_millis(200)));
        redis::cmd("PING").query::<String>(&mut conn).is_ok()
    }

    fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("redis-server is running");
        let status = Command::new("kill")
            .arg(signal)
            .arg(child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} failed");
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGKILL works on a stopped process too.
            let _ = child.kill();
            let _ = child.wait();
        }
        self.paused = false;
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            match std::fs::read_to_string(self.log_path()) {
                Ok(log) => eprintln!("---- redis-server log (port {}) ----\n{log}", self.port),
                Err(e) => eprintln!("---- redis-server log unreadable: {e}"),
            }
        }
    }
}

/// A port that was free a moment ago (the kernel picks it; we release it for the process
/// that is to bind it).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

/// A Redis Cluster of `masters` nodes (no replicas), made with `redis-cli --cluster create`,
/// each node a [`RedisServer`] of its own.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
    opts: Opts,
}

impl RedisCluster {
    pub fn start(masters: usize, opts: Opts) -> RedisCluster {
        let opts = Opts {
            cluster: true,
            ..opts
        };
        let nodes: Vec<RedisServer> = (0..masters)
            .map(|_| RedisServer::start_with(opts.clone()))
            .collect();
        let mut cli = Command::new("redis-cli");
        if let Some(ca) = &opts.tls {
            cli.arg("--tls").arg("--cacert").arg(ca.ca());
        }
        if let Some(p) = &opts.password {
            cli.arg("-a").arg(p).arg("--no-auth-warning");
        }
        cli.args(["--cluster", "create"]);
        for n in &nodes {
            cli.arg(format!("127.0.0.1:{}", n.port()));
        }
        let out = cli
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("run redis-cli");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = RedisCluster { nodes, opts };
        let deadline = Instant::now() + START_TIMEOUT;
        while !cluster.nodes.iter().all(|n| {
            let mut c = n.connection();
            let info: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query(&mut c)
                .unwrap_or_default();
            info.contains("cluster_state:ok")
        }) {
            assert!(Instant::now() < deadline, "the cluster did not become ok");
            std::thread::sleep(Duration::from_millis(50));
        }
        cluster
    }

    /// The seed URLs, for `session.redis_cluster`.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// A cluster connection for test setup and inspection (sync API).
    pub fn connection(&self) -> redis::cluster::ClusterConnection {
        let mut b = redis::cluster::ClusterClientBuilder::new(self.urls());
        if let Some(p) = &self.opts.password {
            b = b.password(p.clone());
        }
        if let Some(ca) = &self.opts.tls {
            b = b.tls(redis::TlsMode::Secure).certs(redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(std::fs::read(ca.ca()).unwrap()),
            });
        }
        b.build()
            .unwrap()
            .get_connection()
            .expect("connect to the test cluster")
    }

    /// How many keys each node holds.
    pub fn keys_per_node(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .map(|n| redis::cmd("DBSIZE").query(&mut n.connection()).unwrap())
            .collect()
    }
}
