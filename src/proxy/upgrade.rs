//! Protocol upgrades (WebSocket): after the upstream answers 101, the two upgraded
//! connections are spliced byte for byte until either side closes, or until the session that
//! opened the tunnel is revoked ([`Watch`]): a tunnel outlives its token, so revocation must
//! reach it (docs/contract.md, "Revocation and open tunnels").

mod watch;

use std::time::Duration;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;

pub use self::watch::{Verdict, Watch};

/// How long the closing of a revoked tunnel may take (TLS close_notify to the client, FIN to
/// the upstream) before the sockets are simply dropped.
const CLOSE_GRACE: Duration = Duration::from_millis(500);

/// Splices the two sides. With a `watch` (an authenticated tunnel), the session is re-checked
/// as [`Watch`] describes and both sides are closed when it is revoked; anonymous tunnels
/// (public or optional routes without a token) have nothing to revoke.
pub async fn splice(client: OnUpgrade, upstream: OnUpgrade, watch: Option<Watch>) {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(pair) => pair,
        Err(e) => {
            tracing::debug!(error = %e, "upgrade failed");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut upstream = TokioIo::new(upstream);
    let Some(mut watch) = watch else {
        if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            tracing::debug!(error = %e, "upgraded connection ended");
        }
        return;
    };
    let verdict = tokio::select! {
        r = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "upgraded connection ended");
            }
            return;
        }
        verdict = watch.revoked() => verdict,
    };
    tracing::info!(
        session_id = watch.session_id(),
        reason = verdict.reason(),
        "closing an upgraded connection: its session is no longer valid"
    );
    // The bytes in flight may end mid-frame, so no WebSocket close frame is forged: the
    // transport is closed (TLS close_notify, then the socket), which every client reports.
    let close = async {
        let _ = client.shutdown().await;
        let _ = upstream.shutdown().await;
    };
    let _ = tokio::time::timeout(CLOSE_GRACE, close).await;
}
