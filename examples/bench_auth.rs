//! Benchmark of the auth center (not a test): logins/s and refreshes/s through the real
//! gateway over TLS, with a private `redis-server` on a free port. Run in release:
//!
//!     cargo run --release --example bench_auth -- [seconds per phase] [concurrency]
//!
//! Each client task keeps one HTTP/1.1 TLS connection and sends requests back to back.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let secs: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(5);
    let conc: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(8);
    let dir = tempfile::tempdir().unwrap();
    gateway::cli::keygen::write_dev_material(dir.path(), false).unwrap();

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut redis = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server on PATH");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let url = format!("redis://127.0.0.1:{port}/0");

    let toml = format!(
        r#"
[listen]
https = "127.0.0.1:0"
[tls]
cert = "gateway.crt"
key = "gateway.key"
[jwt]
algorithms = ["EdDSA"]
issuer = "gateway"
audience = "api"
keys = [{{ kid = "k1", public_key = "signing.pub.pem" }}]
[session]
store = "redis"
redis_url = "{url}"
[auth]
signing_key = "signing.pem"
refresh_max_uses = 1000000
bind_refresh = "none"
[[route]]
path = "/api/"
upstream = "http://127.0.0.1:9"
"#
    );
    let cfg_path = dir.path().join("gateway.toml");
    std::fs::write(&cfg_path, toml).unwrap();
    let config = gateway::config::load(&cfg_path).unwrap();
    let gw = gateway::app::App::build(config).await.unwrap();
    let bound = gw.bind().await.unwrap();
    let addr = bound.https_addr();
    tokio::spawn(bound.run(std::future::pending()));

    let hash = gateway::auth_center::users::hash_password(b"bench password").unwrap();
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut con = client.get_connection().unwrap();
    for i in 0..conc {
        let _: () = redis::cmd("HSET")
            .arg(format!("gw:user:user{i}"))
            .arg(&[
                "user_id",
                &format!("user{i}"),
                "password_hash",
                &hash,
                "roles",
                "",
            ])
            .query(&mut con)
            .unwrap();
    }
    let cert = dir.path().join("gateway.crt");
    println!(
        "cores: {}, concurrency: {conc}, {secs}s per phase; argon2id m={} KiB t={} p={}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        gateway::auth_center::users::ARGON2_M_COST_KIB,
        gateway::auth_center::users::ARGON2_T_COST,
        gateway::auth_center::users::ARGON2_P_COST
    );
    let logins = run(addr, &cert, conc, secs, Phase::Login).await;
    println!("logins:    {logins:.0}/s");
    let refreshes = run(addr, &cert, conc, secs, Phase::Refresh).await;
    println!("refreshes: {refreshes:.0}/s");
    let _ = redis.kill();
    let _ = redis.wait();
}

#[derive(Clone, Copy)]
enum Phase {
    Login,
    Refresh,
}

async fn run(
    addr: std::net::SocketAddr,
    cert: &std::path::Path,
    conc: usize,
    secs: u64,
    phase: Phase,
) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for i in 0..conc {
        let connector = connector(cert);
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let tls = connector
                .connect(ServerName::try_from("localhost").unwrap(), tcp)
                .await
                .unwrap();
            let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .unwrap();
            tokio::spawn(conn);
            let user = format!("user{i}");
            let login = serde_json::json!({"username": user, "password": "bench password"});
            let mut refresh_token = String::new();
            if let Phase::Refresh = phase {
                refresh_token = post(&mut send, "/auth/login", &login).await["refresh_token"]
                    .as_str()
                    .unwrap()
                    .to_owned();
            }
            while Instant::now() < deadline {
                match phase {
                    Phase::Login => {
                        let j = post(&mut send, "/auth/login", &login).await;
                        assert!(j["access_token"].is_string(), "{j}");
                    }
                    Phase::Refresh => {
                        let body = serde_json::json!({"refresh_token": refresh_token});
                        let j = post(&mut send, "/auth/refresh", &body).await;
                        refresh_token = j["refresh_token"]
                            .as_str()
                            .unwrap_or_else(|| panic!("{j}"))
                            .to_owned();
                    }
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let started = Instant::now();
    for t in tasks {
        t.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

async fn post(
    send: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    path: &str,
    body: &serde_json::Value,
) -> serde_json::Value {
    let req = http::Request::post(path)
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

fn connector(cert: &std::path::Path) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(cert).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}
