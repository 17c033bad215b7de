//! The access log as the binary writes it: lines go to stderr from a writer thread in
//! batches (src/observe/logs.rs), so a request never waits on the write; every line still
//! arrives, soon after its request while the gateway runs, and none is lost or doubled when
//! it stops (SIGTERM).

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::client::{Client, Proto};

const REQUESTS: usize = 300;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills the gateway if a test fails before it stopped it.
struct Serving(Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The access lines in `log`, by request id.
fn access_ids(log: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter(|l| l.contains("access"))
        .filter_map(|l| {
            let at = l.find("request_id=")? + "request_id=".len();
            Some(l[at..].split_whitespace().next()?.to_owned())
        })
        .filter(|id| id.starts_with("log-"))
        .collect()
}

/// One public request per number, with the request id `log-<n>`.
async fn send(client: &Client, ids: std::ops::Range<usize>) {
    for i in ids {
        let req = client
            .req("GET", "/public/x")
            .header("x-request-id", format!("log-{i}"))
            .body(Default::default())
            .unwrap();
        assert_eq!(client.send(req).await.status, 200);
    }
}

#[tokio::test]
async fn every_access_line_arrives_while_running_and_none_is_lost_at_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/gateway.toml")).unwrap();
    let (https, http, admin, echo) = (free_port(), free_port(), free_port(), free_port());
    let config = shipped
        .replace("127.0.0.1:8443", &format!("127.0.0.1:{https}"))
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{http}"))
        .replace("127.0.0.1:9901", &format!("127.0.0.1:{admin}"))
        .replace("127.0.0.1:9000", &format!("127.0.0.1:{echo}"));
    std::fs::write(dir.path().join("gateway.toml"), config).unwrap();
    let log = dir.path().join("gateway.log");
    let mut serving = Serving(
        Command::new(env!("CARGO_BIN_EXE_gateway"))
            .args(["serve", "--config", "gateway.toml"])
            .current_dir(dir.path())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let cert = dir.path().join("certs/gateway.crt");
    let started = Instant::now();
    while !(cert.exists() && std::net::TcpStream::connect(("127.0.0.1", https)).is_ok()) {
        assert!(started.elapsed() < Duration::from_secs(60), "no gateway");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let client = Client::new(([127, 0, 0, 1], https).into(), &cert, Proto::H1);
    send(&client, 0..REQUESTS).await;
    // While it runs: every line shows up soon (each batch is written when the queue empties).
    let deadline = Instant::now() + Duration::from_secs(30);
    while access_ids(&log).len() < REQUESTS {
        assert!(
            Instant::now() < deadline,
            "{} of {REQUESTS} access lines after 30 s",
            access_ids(&log).len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // More requests, then SIGTERM at once: the lines still queued are written on the way out.
    send(&client, REQUESTS..2 * REQUESTS).await;
    let pid = serving.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let waited = Instant::now();
    while serving.0.try_wait().unwrap().is_none() {
        assert!(
            waited.elapsed() < Duration::from_secs(30),
            "no exit on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut ids = access_ids(&log);
    assert_eq!(ids.len(), 2 * REQUESTS, "a line lost or doubled");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 2 * REQUESTS, "a line doubled");
}
