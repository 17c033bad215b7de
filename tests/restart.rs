//! The `gateway` binary as an operator runs it: SIGUSR2 hands the listening sockets to a new
//! process while a load runs over HTTP/1.1 and HTTP/2 keep-alive connections, and not one
//! request fails; a hand-over whose new process cannot start leaves the old one serving;
//! SIGHUP reloads the config file, and a bad one is refused with `file:line:col` in the log.

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use support::client::{Client, Proto};
use support::gateway::{base_toml, route, MEMORY_SESSION};
use support::upstream::Upstream;

fn config(upstream: &str, extra_routes: &str) -> String {
    format!(
        "{}\n{MEMORY_SESSION}\n[reload]\nwatch = false\n{}\n{extra_routes}",
        base_toml(""),
        route("/", upstream, "auth = \"public\"")
    )
}

/// Every process the test started (the first gateway and the ones it hands over to), killed
/// on drop whatever happened; and every log line they wrote, as it comes.
struct Gateways {
    first: Child,
    pids: Arc<Mutex<Vec<u32>>>,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Gateways {
    fn start(dir: &Path) -> Gateways {
        let mut first = Command::new(env!("CARGO_BIN_EXE_gateway"))
            .args(["--log-format", "json", "serve", "--config"])
            .arg(dir.join("gateway.toml"))
            .env("RUST_LOG", "info")
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pids = Arc::new(Mutex::new(vec![first.id()]));
        let (tx, lines) = mpsc::channel();
        // The new processes inherit the first one's stderr: one pipe carries every log.
        let stderr = first.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Gateways {
            first,
            pids,
            lines,
            seen: Vec::new(),
        }
    }

    /// The next log line (JSON) whose message is `message`, within `within`.
    fn wait_for(&mut self, message: &str, within: Duration) -> serde_json::Value {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).unwrap_or_else(|_| {
                panic!(
                    "no log line {message:?} within {within:?}; seen:\n{}",
                    self.seen.join("\n")
                )
            });
            self.seen.push(line.clone());
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if v["message"] == message {
                if let Some(pid) = v["pid"].as_u64() {
                    self.pids.lock().unwrap().push(pid as u32);
                }
                return v;
            }
        }
    }

    /// Waits for "gateway listening": (its pid, its https address).
    fn listening(&mut self) -> (u32, SocketAddr) {
        let (pid, https, _) = self.listening_admin();
        (pid, https)
    }

    /// Waits for "gateway listening": (its pid, its https address, its admin address).
    fn listening_admin(&mut self) -> (u32, SocketAddr, Option<SocketAddr>) {
        let v = self.wait_for("gateway listening", Duration::from_secs(60));
        let pid = v["pid"].as_u64().unwrap() as u32;
        let https = v["https"].as_str().unwrap().parse().unwrap();
        // `127.0.0.1:port`, or `-` without an admin listener.
        let admin = v["admin"].as_str().and_then(|a| a.parse().ok());
        (pid, https, admin)
    }

    /// Waits for the draining gateway's "stopped", then for its process to be gone.
    async fn old_one_exits(&mut self, pid: u32) {
        tokio::task::block_in_place(|| {
            self.wait_for("stopped", Duration::from_secs(20));
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while alive(pid) {
            assert!(Instant::now() < deadline, "the old gateway did not exit");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Gateways {
    fn drop(&mut self) {
        for pid in self.pids.lock().unwrap().iter() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        let _ = self.first.wait();
    }
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

fn alive(pid: u32) -> bool {
    // Zombies count as gone: a reaped-later child of ours has exited all the same.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
    /// Requests the client never sent because the connection was closing (hyper's
    /// `is_canceled`): sent again on a new connection, as hyper-util's pool and browsers do.
    unsent: AtomicU64,
    errors: Mutex<Vec<String>>,
}

impl Tally {
    fn fail(&self, what: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut e = self.errors.lock().unwrap();
        if e.len() < 20 {
            e.push(what);
        }
    }
}

fn request() -> http::Request<Full<Bytes>> {
    http::Request::get("https://localhost/load")
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// One keep-alive client: requests back to back on one connection; a new connection when
/// the gateway closes it (after `Connection: close`, or GOAWAY on HTTP/2), the way a
/// well-behaved client does. A request that was sent and got no 200 is a failure; one the
/// client never sent (the connection was already closing) is sent again.
async fn load(client: Client, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    let proto = format!("{:?}", client.proto);
    while !stop.load(Ordering::Relaxed) {
        let mut conn = client.connect().await;
        while !stop.load(Ordering::Relaxed) && conn.ready().await {
            if !count(conn.send(request()).await, &tally, &proto).await {
                break;
            }
        }
    }
}

/// Tallies one answer; false when the connection is done for (reconnect).
async fn count(
    r: Result<http::Response<hyper::body::Incoming>, hyper::Error>,
    tally: &Tally,
    proto: &str,
) -> bool {
    match r {
        Ok(resp) if resp.status() == 200 => match resp.into_body().collect().await {
            Ok(_) => {
                tally.ok.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(e) => {
                tally.fail(format!("{proto} body: {e}"));
                false
            }
        },
        Ok(resp) => {
            tally.fail(format!("{proto} status {}", resp.status()));
            true
        }
        Err(e) if e.is_canceled() => {
            tally.unsent.fetch_add(1, Ordering::Relaxed);
            false
        }
        // An HTTP/2 stream above the last stream id of a graceful GOAWAY was not processed
        // (RFC 9113 section 6.8: the client may retry it); a browser or curl retries it on a
        // new connection. It raced the old process's GOAWAY, so it counts as unsent.
        Err(e) if format!("{e:?}").contains("GoAway") && format!("{e:?}").contains("NO_ERROR") => {
            tally.unsent.fetch_add(1, Ordering::Relaxed);
            false
        }
        Err(e) => {
            tally.fail(format!("{proto} request: {e:?}"));
            false
        }
    }
}

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    gateway::cli::keygen::write_dev_material(dir.path(), false).unwrap();
    support::gateway::write_admin_token(dir.path());
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_over_under_load_fails_no_request() {
    let up = Upstream::start().await;
    let dir = setup();
    std::fs::write(dir.path().join("gateway.toml"), config(&up.url(), "")).unwrap();
    let mut gws = Gateways::start(dir.path());
    let (old_pid, https) = gws.listening();
    let cert = dir.path().join("gateway.crt");

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let mut workers = Vec::new();
    for i in 0..8 {
        let proto = if i % 4 == 3 { Proto::H2 } else { Proto::H1 };
        let client = Client::new(https, &cert, proto);
        workers.push(tokio::spawn(load(client, stop.clone(), tally.clone())));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = tally.ok.load(Ordering::Relaxed);
    assert!(before > 0, "no request got through before the hand-over");

    signal(old_pid, "USR2");
    let (new_pid, new_https) = tokio::task::block_in_place(|| gws.listening());
    assert_ne!(new_pid, old_pid);
    assert_eq!(
        new_https, https,
        "the new process must serve the same socket"
    );
    gws.old_one_exits(old_pid).await;
    let at_exit = tally.ok.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        tokio::time::timeout(Duration::from_secs(10), w)
            .await
            .expect("a load worker hung")
            .unwrap();
    }
    let (ok, failed) = (
        tally.ok.load(Ordering::Relaxed),
        tally.failed.load(Ordering::Relaxed),
    );
    assert_eq!(
        failed,
        0,
        "{failed} of {} requests failed: {:?}",
        ok + failed,
        tally.errors.lock().unwrap()
    );
    let unsent = tally.unsent.load(Ordering::Relaxed);
    eprintln!(
        "hand-over under load: {ok} requests, {failed} failed, {unsent} never sent (sent again), {} after the old process exited",
        ok - at_exit
    );
    assert!(
        ok > at_exit,
        "no request was served by the new process ({ok} total)"
    );
    assert!(alive(new_pid));
    signal(new_pid, "TERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_over_that_cannot_start_leaves_the_old_gateway_serving() {
    let up = Upstream::start().await;
    let dir = setup();
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, config(&up.url(), "")).unwrap();
    let mut gws = Gateways::start(dir.path());
    let (pid, https) = gws.listening();
    let client = Client::new(https, &dir.path().join("gateway.crt"), Proto::H1);

    // The new process would read this config and exit with an error.
    std::fs::write(&path, config(&up.url(), "[[route]]\npath = \"/x\"\n")).unwrap();
    signal(pid, "USR2");
    tokio::task::block_in_place(|| {
        gws.wait_for(
            "hand-over failed; this gateway keeps serving",
            Duration::from_secs(30),
        );
    });
    assert!(alive(pid));
    assert_eq!(client.get("/still", None).await.status, 200);
    signal(pid, "TERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_config_file_and_refuses_a_bad_one() {
    let up = Upstream::start().await;
    let other = Upstream::start().await;
    let dir = setup();
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, config(&up.url(), "")).unwrap();
    let mut gws = Gateways::start(dir.path());
    let (pid, https) = gws.listening();
    let client = Client::new(https, &dir.path().join("gateway.crt"), Proto::H2);

    let moved = route("/moved", &other.url(), "auth = \"public\"");
    std::fs::write(&path, config(&up.url(), &moved)).unwrap();
    signal(pid, "HUP");
    tokio::task::block_in_place(|| {
        gws.wait_for("configuration reloaded", Duration::from_secs(20));
    });
    assert_eq!(client.get("/moved/1", None).await.status, 200);
    assert_eq!(other.count(), 1, "the new route did not reach its upstream");

    let bad = config(&up.url(), &format!("{moved}strip_prefix = \"yes\"\n"));
    let line = bad
        .lines()
        .position(|l| l.starts_with("strip_prefix"))
        .unwrap()
        + 1;
    std::fs::write(&path, &bad).unwrap();
    signal(pid, "HUP");
    let err = tokio::task::block_in_place(|| {
        gws.wait_for(
            "reload refused: configuration error",
            Duration::from_secs(20),
        )
    });
    let text = err["error"].as_str().unwrap().to_owned();
    assert!(
        text.starts_with(&format!("{}:{line}:", path.display())),
        "{text}"
    );
    assert_eq!(client.get("/moved/2", None).await.status, 200);
    assert_eq!(other.count(), 2);
    signal(pid, "TERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_the_new_config_drops_is_closed_not_left_hanging() {
    let up = Upstream::start().await;
    let dir = setup();
    let path = dir.path().join("gateway.toml");
    let with_admin = config(&up.url(), "");
    std::fs::write(&path, &with_admin).unwrap();
    let mut gws = Gateways::start(dir.path());
    let (pid, https, admin) = tokio::task::block_in_place(|| gws.listening_admin());
    let admin = admin.expect("an admin listener");

    let without = with_admin.replace("admin = \"127.0.0.1:0\"\n", "");
    assert_ne!(without, with_admin);
    std::fs::write(&path, without).unwrap();
    signal(pid, "USR2");
    let (new_pid, new_https, new_admin) = tokio::task::block_in_place(|| gws.listening_admin());
    assert_eq!((new_https, new_admin), (https, None));
    gws.old_one_exits(pid).await;
    let err = tokio::net::TcpStream::connect(admin)
        .await
        .expect_err("the dropped admin socket still accepts connections");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    signal(new_pid, "TERM");
}
