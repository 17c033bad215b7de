//! Where the store's connections go: one configured node, or whichever node the sentinels name
//! master right now. Both come with the same TLS (a private CA when `redis_ca` is set, the
//! system's roots otherwise; a certificate that does not verify fails the connection) and the
//! password from `redis_password_env`.

use std::path::Path;

use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{Client, IntoConnectionInfo, ProtocolVersion, RedisResult, TlsCertificates, TlsMode};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use tokio::sync::Mutex;

use super::StoreError;
use crate::config::{self, RedisNodes};

/// The node (or the sentinels that name it) a connection is made to.
pub(crate) struct Target {
    kind: Kind,
}

enum Kind {
    Node(Client),
    /// Asked anew for every connection, so a failover is followed without a restart.
    Sentinel(Mutex<SentinelClient>),
}

impl Target {
    /// Clients for `cfg`, speaking `protocol` (the session cache's link needs RESP3 for
    /// invalidation pushes). Fails on a URL that does not parse or a CA file that cannot be
    /// read; connects to nothing yet.
    pub(crate) fn new(
        cfg: &config::Redis,
        protocol: ProtocolVersion,
    ) -> Result<Target, StoreError> {
        let certs = match &cfg.ca {
            Some(path) => Some(TlsCertificates {
                client_tls: None,
                root_cert: Some(read_ca(path)?),
            }),
            None => None,
        };
        let password = cfg.password.as_ref().map(|p| p.0.as_str());
        let kind = match &cfg.nodes {
            RedisNodes::Url(url) => {
                let invalid =
                    |e: redis::RedisError| StoreError::Invalid(format!("session.redis_url: {e}"));
                let info = url.as_str().into_connection_info().map_err(invalid)?;
                let mut settings = info.redis_settings().clone().set_protocol(protocol);
                if let Some(p) = password {
                    settings = settings.set_password(p);
                }
                let info = info.set_redis_settings(settings);
                let client = match certs {
                    Some(certs) => Client::build_with_tls(info, certs),
                    None => Client::open(info),
                };
                Kind::Node(client.map_err(invalid)?)
            }
            RedisNodes::Sentinel { master, nodes } => {
                let invalid = |e: redis::RedisError| {
                    StoreError::Invalid(format!("session.redis_sentinel: {e}"))
                };
                let infos = nodes
                    .iter()
                    .map(|n| n.as_str().into_connection_info())
                    .collect::<RedisResult<Vec<_>>>()
                    .map_err(invalid)?;
                let tls = cfg.tls();
                let mut b = SentinelClientBuilder::new(
                    infos.iter().map(|i| i.addr().clone()),
                    master,
                    SentinelServerType::Master,
                )
                .map_err(invalid)?
                .set_client_to_redis_protocol(protocol);
                // The sentinels' own password, if any, is the one in their URLs.
                if let Some(p) = infos.iter().find_map(|i| i.redis_settings().password()) {
                    b = b.set_client_to_sentinel_password(p);
                }
                if let Some(p) = password {
                    b = b.set_client_to_redis_password(p);
                }
                if tls {
                    // The data nodes are reached like the sentinels: over TLS, verified.
                    b = b
                        .set_client_to_redis_tls_mode(TlsMode::Secure)
                        .set_client_to_sentinel_tls_mode(TlsMode::Secure);
                    if let Some(certs) = certs {
                        b = b
                            .set_client_to_redis_certificates(certs.clone())
                            .set_client_to_sentinel_certificates(certs);
                    }
                }
                Kind::Sentinel(Mutex::new(b.build().map_err(invalid)?))
            }
            RedisNodes::Cluster(_) => {
                return Err(StoreError::Invalid(
                    "session.redis_cluster: Redis Cluster is not supported by this build yet"
                        .into(),
                ))
            }
        };
        Ok(Target { kind })
    }

    /// A client for the node to use now: the configured one, or the master the sentinels
    /// name (checked with `ROLE` to really be a master).
    pub(crate) async fn client(&self) -> RedisResult<Client> {
        match &self.kind {
            Kind::Node(c) => Ok(c.clone()),
            Kind::Sentinel(s) => s.lock().await.async_get_client().await,
        }
    }

    /// Whether the node can change under a live connection (a failover), so a connection
    /// must also be dropped when its node stops being a master.
    pub(crate) fn follows_master(&self) -> bool {
        matches!(self.kind, Kind::Sentinel(_))
    }
}

/// `redis_ca`'s certificates, as PEM; at least one, and every block parses.
pub(crate) fn read_ca(path: &Path) -> Result<Vec<u8>, StoreError> {
    let err = |reason: String| StoreError::Ca {
        file: path.to_path_buf(),
        reason,
    };
    let pem =
        std::fs::read(path).map_err(|e| err(format!("cannot read {}: {e}", path.display())))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(err(format!(
            "{}: no CERTIFICATE block found",
            path.display()
        )));
    }
    Ok(pem)
}
