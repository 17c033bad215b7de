//! Hot reload, in-process: a good config is applied (new route, removed route) while a
//! request in flight finishes on the old one; a bad config is refused with `file:line:col`
//! and the old one keeps serving; a new certificate reaches new connections while an open
//! connection keeps working; the file watcher reloads on its own; sessions in the memory
//! store survive; restart-only settings keep their running values; the reload metrics move.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use gateway::app::reload::{reload, ReloadError};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use support::admin::{admin_get, samples};
use support::client::{connector, Client, Proto};
use support::gateway::{base_toml, route, TestGateway, MEMORY_SESSION};
use support::upstream::Upstream;

fn toml(routes: &str, extra: &str) -> String {
    format!("{}\n{MEMORY_SESSION}\n{extra}\n{routes}", base_toml(""))
}

fn write(gw: &TestGateway, contents: &str) {
    // Write then rename, as editors and ConfigMap updates do: never a half-written file.
    let tmp = gw.dir.path().join("gateway.toml.new");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, gw.config_path()).unwrap();
}

async fn reload_metrics(gw: &TestGateway) -> (f64, f64, f64) {
    let (_, _, body) = admin_get(gw.admin.unwrap(), "/metrics").await;
    let s = samples(&body);
    let get = |k: &str| s.get(k).copied().unwrap_or(0.0);
    (
        get(r#"gateway_config_reloads_total{result="ok"}"#),
        get(r#"gateway_config_reloads_total{result="failed"}"#),
        get("gateway_config_last_reload_successful"),
    )
}

#[tokio::test]
async fn a_good_config_is_applied_and_a_request_in_flight_finishes_on_the_old_one() {
    let up = Upstream::start().await;
    let before = route("/slow", &up.url(), "auth = \"public\"")
        + &route("/old", &up.url(), "auth = \"public\"");
    let gw = TestGateway::start_toml(&toml(&before, "[reload]\nwatch = false\n")).await;
    let c = gw.client(Proto::H1);
    assert_eq!(c.get("/old/x", None).await.status, 200);
    assert_eq!(c.get("/new/x", None).await.status, 404);

    // /slow/* takes 3 s upstream: it is in flight while the route table changes under it.
    let slow = {
        let c = c.clone();
        tokio::spawn(async move { c.get("/slow/1", None).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = route("/new", &up.url(), "auth = \"public\"");
    write(&gw, &toml(&after, "[reload]\nwatch = false\n"));
    let restart_only = reload(&gw.live, "test").await.expect("reload");
    assert!(restart_only.is_empty(), "{restart_only:?}");

    assert_eq!(c.get("/new/x", None).await.status, 200);
    assert_eq!(c.get("/old/x", None).await.status, 404);
    assert_eq!(c.get("/slow/2", None).await.status, 404);
    assert_eq!(
        slow.await.unwrap().status,
        200,
        "the request in flight was cut"
    );
    assert_eq!(reload_metrics(&gw).await, (1.0, 0.0, 1.0));
}

#[tokio::test]
async fn a_bad_config_is_refused_with_its_position_and_the_old_one_keeps_serving() {
    let up = Upstream::start().await;
    let routes = route("/app", &up.url(), "auth = \"public\"");
    let gw = TestGateway::start_toml(&toml(&routes, "[reload]\nwatch = false\n")).await;
    let good = toml(&routes, "[reload]\nwatch = false\n");
    let bad = toml(
        &format!("{routes}\n{}", route("/x", &up.url(), "auth = \"maybe\"")),
        "[reload]\nwatch = false\ninterval = \"soon\"\n",
    );
    write(&gw, &bad);
    let line_of = |needle: &str| bad.lines().position(|l| l.starts_with(needle)).unwrap() + 1;

    let Err(ReloadError::Config(errors)) = reload(&gw.live, "test").await else {
        panic!("a bad config was accepted");
    };
    let text = errors.to_string();
    let file = gw.config_path().display().to_string();
    assert!(
        text.contains(&format!("{file}:{}:", line_of("auth = \"maybe\""))),
        "{text}"
    );
    assert!(
        text.contains(&format!("{file}:{}:", line_of("interval"))),
        "{text}"
    );
    assert_eq!(gw.client(Proto::H2).get("/app/x", None).await.status, 200);
    assert_eq!(reload_metrics(&gw).await, (0.0, 1.0, 0.0));

    // A file the config names that does not load (a key that is not PEM) is refused too.
    write(&gw, &good);
    std::fs::write(gw.dir.path().join("signing.pub.pem"), "not a key").unwrap();
    assert!(matches!(
        reload(&gw.live, "test").await,
        Err(ReloadError::Start(_))
    ));
    assert_eq!(gw.client(Proto::H1).get("/app/x", None).await.status, 200);
    assert_eq!(reload_metrics(&gw).await, (0.0, 2.0, 0.0));
}

/// A TLS connection to `addr` that trusts only the certificate in `cert`.
async fn handshake(
    addr: std::net::SocketAddr,
    cert: &Path,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    connector(cert, &[b"http/1.1"])
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

async fn get_on(send: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>) -> u16 {
    let req = http::Request::get("/app/x")
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    resp.into_body().collect().await.unwrap();
    status
}

#[tokio::test]
async fn the_file_watcher_brings_a_new_certificate_to_new_connections_only() {
    let up = Upstream::start().await;
    let routes = route("/app", &up.url(), "auth = \"public\"");
    let gw = TestGateway::start_toml(&toml(&routes, "[reload]\ninterval = \"100ms\"\n")).await;
    let old_cert = gw.dir.path().join("old.crt");
    std::fs::copy(gw.cert(), &old_cert).unwrap();

    // A keep-alive connection opened before the change.
    let tls = handshake(gw.https, &old_cert).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    assert_eq!(get_on(&mut send).await, 200);

    // New certificate and key, written in place (as cert-manager or certbot do).
    let fresh = tempfile::tempdir().unwrap();
    gateway::cli::keygen::write_dev_material(fresh.path(), false).unwrap();
    for f in ["gateway.key", "gateway.crt"] {
        let tmp = gw.dir.path().join(format!("{f}.new"));
        std::fs::copy(fresh.path().join(f), &tmp).unwrap();
        std::fs::rename(&tmp, gw.dir.path().join(f)).unwrap();
    }
    let new_cert = fresh.path().join("gateway.crt");
    let deadline = Instant::now() + Duration::from_secs(10);
    while handshake(gw.https, &new_cert).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the new certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        handshake(gw.https, &old_cert).await.is_err(),
        "a new connection still got the old certificate"
    );
    assert_eq!(
        Client::new(gw.https, &new_cert, Proto::H2)
            .get("/app/x", None)
            .await
            .status,
        200
    );
    // The connection opened before is untouched.
    assert_eq!(get_on(&mut send).await, 200);
    let (ok, failed, _) = reload_metrics(&gw).await;
    assert!(ok >= 1.0 && failed <= 1.0, "ok {ok} failed {failed}");
}

#[tokio::test]
async fn the_watcher_applies_an_edited_config_and_sessions_survive_the_reload() {
    let up = Upstream::start().await;
    let routes = route("/app", &up.url(), "");
    let watch = "[reload]\ninterval = \"100ms\"\n";
    let gw = TestGateway::start_toml(&toml(&routes, watch)).await;
    gw.create_session("s1", "alice", Some(&["user"])).await;
    let token = gw.token("alice", "s1", &["user"]);
    let c = gw.client(Proto::H1);
    assert_eq!(c.get("/app/x", Some(&token)).await.status, 200);

    // A [session] change with the memory store kept must not drop its sessions.
    let more = routes.clone() + &route("/admin", &up.url(), "roles = [\"admin\"]");
    write(&gw, &toml(&more, &format!("timeout = \"400ms\"\n{watch}")));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = c.get("/admin/x", Some(&token)).await.status;
        if status == 403 {
            break;
        }
        assert_eq!(status, 404, "before the reload no route serves /admin");
        assert!(Instant::now() < deadline, "the watcher never reloaded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The memory store was kept: the session made before the reload still authenticates.
    assert_eq!(c.get("/app/x", Some(&token)).await.status, 200);
}

#[tokio::test]
async fn a_file_put_back_after_a_refused_sighup_counts_as_a_good_reload() {
    let up = Upstream::start().await;
    let routes = route("/app", &up.url(), "auth = \"public\"");
    let good = toml(&routes, "[reload]\ninterval = \"1s\"\n");
    let gw = TestGateway::start_toml(&good).await;
    // SIGHUP (here: the same call) with a broken file, which is then put back as it runs,
    // faster than the watcher looks: the watcher must not take the file for unchanged.
    write(&gw, &format!("{good}\nbogus = 1\n"));
    assert!(reload(&gw.live, "SIGHUP").await.is_err());
    assert_eq!(reload_metrics(&gw).await.2, 0.0);
    write(&gw, &good);
    let deadline = Instant::now() + Duration::from_secs(15);
    while reload_metrics(&gw).await.2 != 1.0 {
        assert!(
            Instant::now() < deadline,
            "gateway_config_last_reload_successful stayed 0 with the running file back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(reload_metrics(&gw).await, (1.0, 1.0, 1.0));
}

#[tokio::test]
async fn restart_only_settings_keep_their_running_values() {
    let up = Upstream::start().await;
    let routes = route("/app", &up.url(), "auth = \"public\"");
    let gw = TestGateway::start_toml(&toml(&routes, "[reload]\nwatch = false\n")).await;
    let running = gw.live.get().config.limits.clone();
    let edited = toml(&routes, "[reload]\nwatch = false\n[runtime]\nworkers = 3\n")
        .replace("header_timeout = \"2s\"", "header_timeout = \"7s\"");
    write(&gw, &edited);
    let restart_only = reload(&gw.live, "test").await.expect("reload");
    assert_eq!(restart_only, vec!["runtime", "limits"]);
    let now = gw.live.get();
    assert_eq!(now.config.limits, running);
    assert_eq!(now.config.runtime.workers, gw.config.runtime.workers);
    assert_eq!(gw.client(Proto::H1).get("/app/x", None).await.status, 200);
}
