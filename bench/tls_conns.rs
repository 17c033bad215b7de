//! TLS connection costs of a server, for the gateway and its peers alike:
//! - `hold`: opens N keep-alive TLS connections (HTTP/1.1, one request on each so they are
//!   fully established), leaves them idle, and reports the server's resident memory (VmRSS)
//!   before and after, then checks how many are still usable with a second request.
//! - `handshakes`: new TLS connections in a loop for a fixed time (a request with
//!   `Connection: close` on each), without resumption (every handshake full) or with it.
//!
//! Bounded by count and time; loopback only.
//!
//!   cargo run --release --example tls_conns -- hold --addr 127.0.0.1:8443 --count 10000 \
//!       --path /public/x --pid 1234
//!   cargo run --release --example tls_conns -- handshakes --addr 127.0.0.1:8443 --duration 10s

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

#[path = "common.rs"]
mod common;

#[derive(Debug, Parser)]
#[command(about = "Idle TLS connection memory and TLS handshake rate of a server")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Open N idle keep-alive TLS connections and report the server's VmRSS.
    Hold {
        #[arg(long)]
        addr: SocketAddr,
        #[arg(long, default_value_t = 10_000)]
        count: usize,
        #[arg(long, default_value = "/")]
        path: String,
        /// Server processes whose VmRSS is summed (repeat: nginx master and worker).
        #[arg(long = "pid", required = true)]
        pids: Vec<u32>,
        /// Connections being opened at once.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// How long the connections stay idle before memory is read.
        #[arg(long, default_value = "2s", value_parser = common::parse_duration)]
        idle: Duration,
        /// Give up opening after this long.
        #[arg(long, default_value = "60s", value_parser = common::parse_duration)]
        max_time: Duration,
    },
    /// New TLS connections in a loop for a fixed time.
    Handshakes {
        #[arg(long)]
        addr: SocketAddr,
        #[arg(long, default_value = "/")]
        path: String,
        #[arg(long, default_value = "10s", value_parser = common::parse_duration)]
        duration: Duration,
        /// Connections in flight at once.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Resume TLS sessions (tickets / session ids); without it every handshake is full.
        #[arg(long)]
        resume: bool,
        /// Stop after this many connections, whatever the time.
        #[arg(long, default_value_t = 2_000_000)]
        max: u64,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tls_conns: runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match args.command {
        Command::Hold {
            addr,
            count,
            path,
            pids,
            concurrency,
            idle,
            max_time,
        } => runtime.block_on(hold(addr, count, &path, &pids, concurrency, idle, max_time)),
        Command::Handshakes {
            addr,
            path,
            duration,
            concurrency,
            resume,
            max,
        } => runtime.block_on(handshakes(addr, &path, duration, concurrency, resume, max)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tls_conns: {e}");
            ExitCode::from(1)
        }
    }
}

fn connector(resume: bool) -> Result<TlsConnector, String> {
    let cfg = common::client_config(common::Trust::AnyCertificate, &[b"http/1.1"], resume)?;
    Ok(TlsConnector::from(Arc::new(cfg)))
}

async fn open(addr: SocketAddr, connector: &TlsConnector) -> Result<TlsStream<TcpStream>, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
    connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))
}

/// Writes one GET and reads the whole answer; returns the status code.
async fn request(tls: &mut TlsStream<TcpStream>, path: &str, close: bool) -> Result<u16, String> {
    let connection = if close { "close" } else { "keep-alive" };
    let head =
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: {connection}\r\n\r\n");
    tls.write_all(head.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let (status, length) = parse_head(&buf[..end])?;
            let want = end + 4 + length;
            while buf.len() < want {
                let n = tls.read(&mut chunk).await.map_err(|e| e.to_string())?;
                if n == 0 {
                    return Err("connection closed mid-body".into());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Ok(status);
        }
        if buf.len() > 64 * 1024 {
            return Err("response head above 64 KiB".into());
        }
        let n = tls.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed before the answer".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Status code and Content-Length (0 when absent) of a response head. Chunked answers are
/// refused: the bench upstreams answer with a length.
fn parse_head(head: &[u8]) -> Result<(u16, usize), String> {
    let text = std::str::from_utf8(head).map_err(|_| "response head is not UTF-8")?;
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line in {text:?}"))?;
    let mut length = 0;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.eq_ignore_ascii_case("content-length") {
            length = value
                .trim()
                .parse()
                .map_err(|_| format!("bad content-length {value:?}"))?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err("chunked answers are not supported by this client".into());
        }
    }
    Ok((status, length))
}

fn rss_sum(pids: &[u32]) -> Result<u64, String> {
    pids.iter().map(|&p| common::vm_rss_kib(p)).sum()
}

async fn hold(
    addr: SocketAddr,
    count: usize,
    path: &str,
    pids: &[u32],
    concurrency: usize,
    idle: Duration,
    max_time: Duration,
) -> Result<(), String> {
    let connector = connector(true)?;
    let before = rss_sum(pids)?;
    let started = Instant::now();
    let mut held = Vec::with_capacity(count);
    let mut failed = 0usize;
    let mut tasks = JoinSet::new();
    let mut launched = 0usize;
    while held.len() + failed < count {
        if started.elapsed() > max_time {
            return Err(format!(
                "opened only {} of {count} connections in {max_time:?}",
                held.len()
            ));
        }
        while launched < count && tasks.len() < concurrency.max(1) {
            let (connector, path) = (connector.clone(), path.to_owned());
            tasks.spawn(async move {
                let mut tls = open(addr, &connector).await?;
                match request(&mut tls, &path, false).await? {
                    200 => Ok(tls),
                    s => Err(format!("status {s}")),
                }
            });
            launched += 1;
        }
        match tasks.join_next().await {
            Some(Ok(Ok(tls))) => held.push(tls),
            Some(Ok(Err(e))) => {
                failed += 1;
                if failed <= 5 {
                    eprintln!("tls_conns: connection failed: {e}");
                }
            }
            Some(Err(e)) => return Err(format!("task: {e}")),
            None => break,
        }
    }
    let opened_in = started.elapsed();
    tokio::time::sleep(idle).await;
    let after = rss_sum(pids)?;
    // Are they still open? One more request on each, sequentially.
    let mut alive = 0usize;
    for tls in &mut held {
        if matches!(
            tokio::time::timeout(Duration::from_secs(2), request(tls, path, false)).await,
            Ok(Ok(200))
        ) {
            alive += 1;
        }
    }
    let n = held.len().max(1) as f64;
    println!(
        "opened={} failed={failed} in={:.1}s rss_before_kib={before} rss_after_kib={after} \
         per_conn_kib={:.1} still_open={alive}",
        held.len(),
        opened_in.as_secs_f64(),
        after.saturating_sub(before) as f64 / n
    );
    if failed > 0 || alive < held.len() {
        return Err(format!(
            "{failed} connections failed to open, {} closed while idle",
            held.len() - alive
        ));
    }
    Ok(())
}

async fn handshakes(
    addr: SocketAddr,
    path: &str,
    duration: Duration,
    concurrency: usize,
    resume: bool,
    max: u64,
) -> Result<(), String> {
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..concurrency.max(1) {
        // One client config (so one session cache) per task, as each real client has its
        // own: a shared one would hold only rustls's 8 TLS 1.3 tickets per server for all of
        // them, and most handshakes would find no ticket left to resume with.
        let (connector, path) = (connector(resume)?, path.to_owned());
        let share = max / concurrency.max(1) as u64;
        tasks.spawn(async move {
            let (mut done, mut resumed, mut errors) = (0u64, 0u64, 0u64);
            while Instant::now() < deadline && done + errors < share {
                let one = async {
                    let mut tls = open(addr, &connector).await?;
                    let was_resumed =
                        tls.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
                    let status = request(&mut tls, &path, true).await?;
                    // Best effort: the server closes the connection after its answer.
                    let _ = tls.shutdown().await;
                    Ok::<_, String>((status, was_resumed))
                };
                match one.await {
                    Ok((200, was_resumed)) => {
                        done += 1;
                        resumed += u64::from(was_resumed);
                    }
                    Ok(_) | Err(_) => errors += 1,
                }
            }
            (done, resumed, errors)
        });
    }
    let (mut done, mut resumed, mut errors) = (0u64, 0u64, 0u64);
    while let Some(r) = tasks.join_next().await {
        let (d, r, e) = r.map_err(|e| format!("task: {e}"))?;
        done += d;
        resumed += r;
        errors += e;
    }
    let took = started.elapsed().as_secs_f64();
    println!(
        "resume={resume} connections={done} resumed={resumed} errors={errors} took={took:.1}s \
         per_sec={:.0}",
        done as f64 / took
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads() {
        assert_eq!(
            parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx: y"),
            Ok((200, 2))
        );
        assert_eq!(parse_head(b"HTTP/1.1 404 Not Found"), Ok((404, 0)));
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked").is_err());
        assert!(parse_head(b"garbage").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: x").is_err());
    }

    #[test]
    fn finds_the_end_of_the_head() {
        assert_eq!(find(b"ab\r\n\r\ncd", b"\r\n\r\n"), Some(2));
        assert_eq!(find(b"ab", b"\r\n\r\n"), None);
    }
}
