//! Protocol upgrades (WebSocket): after the upstream answers 101, the two upgraded
//! connections are spliced byte for byte until either side closes.

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

pub async fn splice(client: OnUpgrade, upstream: OnUpgrade) {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(pair) => pair,
        Err(e) => {
            tracing::debug!(error = %e, "upgrade failed");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut upstream = TokioIo::new(upstream);
    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        tracing::debug!(error = %e, "upgraded connection ended");
    }
}
