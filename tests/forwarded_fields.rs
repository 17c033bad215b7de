//! Fields an HTTP/2 client sends outside the request head's usual shape: `Cookie` in several
//! fields (joined into one before the request goes on, RFC 9113 8.2.3) and request trailers
//! (the head's treatment: no identity header, token or hop-by-hop name reaches the upstream
//! in them, even an h2c one that reads trailers).

mod support;

use std::future::poll_fn;

use bytes::Bytes;
use http::HeaderMap;
use support::client::Proto;
use support::gateway::{route, TestGateway, MEMORY_SESSION};
use support::upstream::Upstream;

async fn h2(gw: &TestGateway) -> h2::client::SendRequest<Bytes> {
    let tls = gw.client(Proto::H2).tls().await;
    let (client, conn) = h2::client::handshake(tls).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client.ready().await.unwrap()
}

#[tokio::test]
async fn cookie_crumbs_reach_the_upstream_as_one_field() {
    let up = Upstream::start().await;
    let gw = TestGateway::start(
        MEMORY_SESSION,
        &route("/app", &up.url(), "auth = \"public\""),
    )
    .await;
    let mut client = h2(&gw).await;
    let mut req = http::Request::get("https://localhost/app/x");
    for crumb in ["a=1", "b=2", "c=3"] {
        req = req.header("cookie", crumb);
    }
    let (answer, _) = client.send_request(req.body(()).unwrap(), true).unwrap();
    assert_eq!(answer.await.unwrap().status(), 200);
    assert_eq!(up.last().all("cookie"), ["a=1; b=2; c=3"]);
}

#[tokio::test]
async fn request_trailers_carry_no_identity_or_token_to_an_h2c_upstream() {
    let up = Upstream::start_with(true).await;
    let routes = route("/grpc", &up.url(), "protocol = \"h2c\"");
    let gw = TestGateway::start(MEMORY_SESSION, &routes).await;
    gw.create_session("s-bob", "bob", Some(&["user"])).await;
    let token = gw.token("bob", "s-bob", &["user"]);
    let mut client = h2(&gw).await;
    let req = http::Request::post("https://localhost/grpc/echo-body")
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .unwrap();
    let (answer, mut send) = client.send_request(req, false).unwrap();
    send.send_data(Bytes::from_static(b"payload"), false)
        .unwrap();
    let mut trailers = HeaderMap::new();
    for (name, value) in [
        ("x-user-id", "alice"),
        ("x_user_roles", "admin"),
        ("x-session-id", "s-alice"),
        ("authorization", "Bearer forged"),
        ("grpc-status", "0"),
    ] {
        trailers.insert(
            http::HeaderName::from_static(name),
            http::HeaderValue::from_static(value),
        );
    }
    send.send_trailers(trailers).unwrap();
    let resp = answer.await.expect("an answer");
    assert_eq!(resp.status(), 200);
    // The upstream echoes the request body, trailers included, back as its answer.
    let mut body = resp.into_body();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    let echoed = poll_fn(|cx| body.poll_trailers(cx))
        .await
        .expect("trailers")
        .unwrap();
    let names: Vec<&str> = echoed.keys().map(|k| k.as_str()).collect();
    for name in ["x-user-id", "x_user_roles", "x-session-id", "authorization"] {
        assert!(
            !names.contains(&name),
            "{name} reached the upstream in trailers: {names:?}"
        );
    }
    assert!(
        names.contains(&"grpc-status"),
        "other trailers pass: {names:?}"
    );
}
