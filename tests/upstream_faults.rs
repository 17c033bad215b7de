//! Upstream failures (refused, slow, reset mid-body), balancing, streaming large bodies both
//! ways, WebSocket, h2c upstreams, and the connection-level bounds (slow headers, stalled TLS).

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use support::client::{Proto, BOTH};
use support::gateway::{route, TestGateway, MEMORY_SESSION};
use support::upstream::Upstream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn refused_is_502_slow_is_504() {
    let refused = Upstream::refused_addr().await;
    let up = Upstream::start().await;
    let routes = [
        route("/down/", &format!("http://{refused}"), "auth = \"public\""),
        route(
            "/slow/",
            &up.url(),
            "auth = \"public\"\ntimeout = \"300ms\"",
        ),
    ]
    .concat();
    let gw = TestGateway::start(MEMORY_SESSION, &routes).await;
    for proto in BOTH {
        let c = gw.client(proto);
        let r = c.get("/down/x", None).await;
        assert_eq!(r.status, 502, "{proto:?}");
        assert_eq!(r.error_code(), "bad_gateway");
        let r = c.get("/slow/x", None).await;
        assert_eq!(r.status, 504, "{proto:?}");
        assert_eq!(r.error_code(), "gateway_timeout");
    }
}

#[tokio::test]
async fn balancing_skips_a_refusing_address() {
    let refused = Upstream::refused_addr().await;
    let a = Upstream::start().await;
    let b = Upstream::start().await;
    let list = format!(
        "[[route]]\npath = \"/\"\nauth = \"public\"\nupstream = [\"{}\", \"http://{refused}\", \"{}\"]\n",
        a.url(),
        b.url()
    );
    let gw = TestGateway::start(MEMORY_SESSION, &list).await;
    let c = gw.client(Proto::H1);
    for _ in 0..12 {
        assert_eq!(c.get("/x", None).await.status, 200);
    }
    assert_eq!(a.count() + b.count(), 12);
    assert!(
        a.count() >= 4 && b.count() >= 4,
        "a={} b={}",
        a.count(),
        b.count()
    );
}

#[tokio::test]
async fn upstream_reset_mid_body_is_never_a_complete_message() {
    let up = Upstream::start().await;
    let gw = TestGateway::start(MEMORY_SESSION, &route("/", &up.url(), "auth = \"public\"")).await;
    for proto in BOTH {
        let c = gw.client(proto);
        let req = c
            .req("GET", "/reset")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = c.send_streaming(req).await;
        assert_eq!(resp.status(), 200);
        let body = tokio::time::timeout(Duration::from_secs(10), resp.into_body().collect())
            .await
            .unwrap();
        assert!(
            body.is_err(),
            "{proto:?}: a truncated body must end in an error"
        );
    }
}

#[tokio::test]
async fn hundred_mib_stream_both_ways_with_bounded_memory() {
    let up = Upstream::start().await;
    let gw = TestGateway::start(
        MEMORY_SESSION,
        &route("/", &up.url(), "auth = \"public\"\nmax_body = \"200MiB\""),
    )
    .await;
    const TOTAL: usize = 100 * 1024 * 1024;
    let rss_before = rss_kib();
    for proto in BOTH {
        let c = gw.client(proto);
        let chunk = Bytes::from(vec![b'z'; 64 * 1024]);
        let stream = futures_util::stream::iter(0..TOTAL / chunk.len())
            .map(move |_| Ok::<_, std::io::Error>(Frame::data(chunk.clone())));
        let req = c
            .req("POST", "/echo-body")
            .body(StreamBody::new(stream))
            .unwrap();
        let resp = c.send_streaming(req).await;
        assert_eq!(resp.status(), 200, "{proto:?}");
        let mut body = resp.into_body();
        let mut got = 0usize;
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.unwrap().into_data() {
                got += data.len();
            }
        }
        assert_eq!(got, TOTAL, "{proto:?}");
    }
    let grown_mib = rss_kib().saturating_sub(rss_before) / 1024;
    // 200 MiB went through this process (client, gateway and upstream); streaming keeps it
    // to buffers.
    assert!(grown_mib < 64, "resident memory grew by {grown_mib} MiB");
}

fn rss_kib() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn websocket_echo_through_the_gateway_after_auth() {
    let up = Upstream::start().await;
    let gw = TestGateway::start(MEMORY_SESSION, &route("/", &up.url(), "")).await;
    gw.create_session("s-ws", "alice", None).await;
    let token = gw.token("alice", "s-ws", &[]);
    let c = gw.client(Proto::H1);

    // Without a token the upgrade is refused.
    let tls = c.tls().await;
    let req = tokio_tungstenite::tungstenite::http::Request::builder()
        .uri("wss://localhost/ws")
        .header("host", "localhost")
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header(
            "sec-websocket-key",
            tokio_tungstenite::tungstenite::handshake::client::generate_key(),
        )
        .body(())
        .unwrap();
    assert!(tokio_tungstenite::client_async(req, tls).await.is_err());

    let tls = c.tls().await;
    let req = tokio_tungstenite::tungstenite::http::Request::builder()
        .uri("wss://localhost/ws")
        .header("host", "localhost")
        .header("authorization", format!("Bearer {token}"))
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header(
            "sec-websocket-key",
            tokio_tungstenite::tungstenite::handshake::client::generate_key(),
        )
        .body(())
        .unwrap();
    let (mut ws, resp) = tokio_tungstenite::client_async(req, tls).await.unwrap();
    assert_eq!(resp.status(), 101);
    for i in 0..5 {
        let msg = format!("hello {i}");
        ws.send(tokio_tungstenite::tungstenite::Message::text(msg.clone()))
            .await
            .unwrap();
        let back = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(back.into_text().unwrap().as_str(), msg);
    }
    assert_eq!(up.last().one("x-user-id").as_deref(), Some("alice"));
}

#[tokio::test]
async fn h2c_upstream() {
    let up = Upstream::start_with(true).await;
    let gw = TestGateway::start(
        MEMORY_SESSION,
        &route("/", &up.url(), "auth = \"public\"\nprotocol = \"h2c\""),
    )
    .await;
    for proto in BOTH {
        let r = gw.client(proto).get("/x", None).await;
        assert_eq!(r.status, 200, "{proto:?}");
        assert_eq!(up.last().version, http::Version::HTTP_2);
    }
}

#[tokio::test]
async fn slow_headers_and_stalled_handshakes_are_cut() {
    let up = Upstream::start().await;
    let gw = TestGateway::start(MEMORY_SESSION, &route("/", &up.url(), "auth = \"public\"")).await;
    // header_timeout is 2s in the test config.
    // A stalled TLS handshake: connect and say nothing.
    let started = Instant::now();
    let mut tcp = tokio::net::TcpStream::connect(gw.https).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(15), tcp.read(&mut buf)).await;
    assert!(
        matches!(n, Ok(Ok(0)) | Ok(Err(_))),
        "stalled handshake not closed: {n:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(15));

    // Slowloris: a request head trickled one byte a second.
    let c = gw.client(Proto::H1);
    let mut tls = c.tls().await;
    let head = b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: ";
    tls.write_all(head).await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if tls.write_all(b"a").await.is_err() {
                return;
            }
            let mut b = [0u8; 256];
            match tokio::time::timeout(Duration::from_millis(10), tls.read(&mut b)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(_)) => return, // a 408 or similar then close
                Err(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "slow header connection was never closed");
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn shutdown_drains_in_flight_requests_and_refuses_new_ones() {
    let up = Upstream::start().await;
    let toml = format!(
        "{}\n{MEMORY_SESSION}\n{}",
        support::gateway::base_toml("")
            .replace("shutdown_grace = \"2s\"", "shutdown_grace = \"8s\""),
        route("/", &up.url(), "auth = \"public\"\ntimeout = \"10s\"")
    );
    for proto in BOTH {
        let gw = TestGateway::start_toml(&toml).await;
        let https = gw.https;
        let c = gw.client(proto);
        // /slow/ answers after 3 s; shutdown starts while it is in flight.
        let in_flight = tokio::spawn(async move { c.get("/slow/x", None).await });
        tokio::time::sleep(Duration::from_millis(500)).await;
        let stopping = tokio::spawn(gw.stop());
        tokio::time::sleep(Duration::from_millis(200)).await;
        let refused = tokio::net::TcpStream::connect(https).await;
        assert!(
            refused.is_err(),
            "{proto:?}: no new connection once shutdown began"
        );
        let r = in_flight.await.unwrap();
        assert_eq!(
            r.status, 200,
            "{proto:?}: the in-flight request must finish"
        );
        stopping.await.unwrap();
    }
}

/// A client that never takes its answer (an HTTP/2 window of zero, or an HTTP/1.1 socket it
/// does not read) cannot hold its connection, and the upstream connection behind it: closed
/// within about `body_idle_timeout` (5 s in the test config), even with the answer started.
#[tokio::test]
async fn a_client_that_does_not_read_its_answer_is_closed() {
    let up = Upstream::start().await;
    let routes = route("/files", &up.url(), "auth = \"public\"");
    let gw = TestGateway::start(MEMORY_SESSION, &routes).await;
    let deadline = Duration::from_secs(20);

    // HTTP/2, a zero window: no byte of the 8 MiB body can be sent.
    let tls = gw.client(Proto::H2).tls().await;
    let (client, conn) = h2::client::Builder::new()
        .initial_window_size(0)
        .handshake::<_, Bytes>(tls)
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let mut client = client.ready().await.unwrap();
    let req = http::Request::get("https://localhost/files/big/8388608")
        .body(())
        .unwrap();
    let (answer, _) = client.send_request(req, true).unwrap();
    let started = Instant::now();
    let resp = answer.await.expect("the head comes: it needs no window");
    assert_eq!(resp.status(), 200);
    let ended = tokio::time::timeout(deadline, conn).await;
    assert!(
        ended.is_ok(),
        "HTTP/2 connection still open after {deadline:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "closed too early"
    );

    // HTTP/1.1: the request sent, nothing ever read.
    let mut tls = gw.client(Proto::H1).tls().await;
    tls.write_all(b"GET /files/big/67108864 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(8)).await;
    // Closed by now, mid-body: reading finds what was buffered, then the end of the stream
    // (or a reset), never the whole 64 MiB.
    let mut sink = vec![0u8; 1 << 20];
    let got = tokio::time::timeout(deadline, async {
        let mut got = 0usize;
        loop {
            match tls.read(&mut sink).await {
                Ok(0) | Err(_) => return got,
                Ok(n) => got += n,
            }
        }
    })
    .await
    .expect("HTTP/1.1 connection still open");
    assert!(
        got < 64 << 20,
        "the whole body came ({got} bytes): nothing was cut"
    );
    assert!(started.elapsed() >= Duration::from_secs(4));
}
