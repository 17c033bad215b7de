//! Where the store's connections go: one configured node, whichever node the sentinels name
//! master right now, or a cluster. All come with the same TLS (a private CA when `redis_ca`
//! is set, the system's roots otherwise; a certificate that does not verify fails the
//! connection) and the password from `redis_password_env`.

use std::path::Path;

use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Client, ConnectionInfo, ErrorKind, IntoConnectionInfo, ProtocolVersion,
    RedisError, RedisResult, TlsCertificates, TlsMode, Value,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use tokio::sync::Mutex;

use super::connection::Conn;
use super::StoreError;
use crate::config::{self, RedisNodes};

/// The node (or the sentinels that name it, or the cluster) a connection is made to.
pub(crate) struct Target {
    kind: Kind,
}

enum Kind {
    Node(Box<Client>),
    /// Asked anew for every connection, so a failover is followed without a restart.
    Sentinel(Box<Sentinel>),
    Cluster(Box<Cluster>),
}

/// The sentinels' client and the master's name.
struct Sentinel {
    client: Mutex<SentinelClient>,
    master: String,
}

/// A cluster's client, and what a connection to one of its masters needs (the session
/// cache's invalidation links go to every master).
struct Cluster {
    client: ClusterClient,
    seeds: Vec<ConnectionInfo>,
    node: NodeSettings,
}

/// How a single-node connection is made: protocol, password, CA.
#[derive(Clone)]
struct NodeSettings {
    protocol: ProtocolVersion,
    password: Option<String>,
    certs: Option<TlsCertificates>,
}

impl NodeSettings {
    fn client(&self, info: ConnectionInfo) -> RedisResult<Client> {
        let mut settings = info.redis_settings().clone().set_protocol(self.protocol);
        if let Some(p) = &self.password {
            settings = settings.set_password(p);
        }
        let info = info.set_redis_settings(settings);
        match &self.certs {
            Some(certs) => Client::build_with_tls(info, certs.clone()),
            None => Client::open(info),
        }
    }
}

impl Target {
    /// Clients for `cfg`, speaking `protocol` (the session cache's link needs RESP3 for
    /// invalidation pushes); `once`: a cluster client that never resends a command itself. Fails on a URL that does not parse or a CA file that cannot be
    /// read; connects to nothing yet.
    pub(crate) fn new(
        cfg: &config::Redis,
        protocol: ProtocolVersion,
        once: bool,
    ) -> Result<Target, StoreError> {
        let certs = match &cfg.ca {
            Some(path) => Some(TlsCertificates {
                client_tls: None,
                root_cert: Some(read_ca(path)?),
            }),
            None => None,
        };
        let password = cfg.password.as_ref().map(|p| p.0.as_str());
        let node = NodeSettings {
            protocol,
            password: password.map(str::to_owned),
            certs: certs.clone(),
        };
        let key = match &cfg.nodes {
            RedisNodes::Url(_) => "session.redis_url",
            RedisNodes::Sentinel { .. } => "session.redis_sentinel",
            RedisNodes::Cluster(_) => "session.redis_cluster",
        };
        let invalid = |e: redis::RedisError| StoreError::Invalid(format!("{key}: {e}"));
        let parse_all = |nodes: &[String]| {
            nodes
                .iter()
                .map(|n| n.as_str().into_connection_info())
                .collect::<RedisResult<Vec<_>>>()
                .map_err(invalid)
        };
        let kind = match &cfg.nodes {
            RedisNodes::Url(url) => {
                let info = url.as_str().into_connection_info().map_err(invalid)?;
                Kind::Node(Box::new(node.client(info).map_err(invalid)?))
            }
            RedisNodes::Sentinel { master, nodes } => {
                let infos = parse_all(nodes)?;
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
                Kind::Sentinel(Box::new(Sentinel {
                    client: Mutex::new(b.build().map_err(invalid)?),
                    master: master.clone(),
                }))
            }
            RedisNodes::Cluster(nodes) => {
                let seeds = parse_all(nodes)?;
                let mut b = ClusterClientBuilder::new(seeds.clone()).use_protocol(protocol);
                if once {
                    // A command whose answer was lost may have run: the cluster client must
                    // not send it again (a rotation run twice reads as reuse).
                    b = b.retries(0);
                }
                if let Some(p) = password {
                    b = b.password(p);
                }
                if cfg.tls() {
                    b = b.tls(TlsMode::Secure);
                    if let Some(certs) = certs {
                        b = b.certs(certs);
                    }
                }
                Kind::Cluster(Box::new(Cluster {
                    client: b.build().map_err(invalid)?,
                    seeds,
                    node,
                }))
            }
        };
        Ok(Target { kind })
    }

    /// Whether keys must follow the cluster layout (hash tags; no script touches two slots).
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self.kind, Kind::Cluster(_))
    }

    /// A new connection for the store: to the node, to the master the sentinels name, or to
    /// the cluster. `config`'s timeouts apply to a node's connection; a cluster's answers
    /// are bounded by the caller's deadline (and a probe's).
    /// With the connection comes its node's `host:port` (empty for a cluster).
    pub(crate) async fn connect(
        &self,
        config: &AsyncConnectionConfig,
    ) -> RedisResult<(Conn, String)> {
        match &self.kind {
            Kind::Cluster(c) => c
                .client
                .get_async_connection()
                .await
                .map(|conn| (Conn::Cluster(conn), String::new())),
            _ => {
                let client = self.client().await?;
                let addr = addr_of(&client);
                client
                    .get_multiplexed_async_connection_with_config(config)
                    .await
                    .map(|conn| (Conn::Node(conn), addr))
            }
        }
    }

    /// Behind Sentinel, `Err` when the sentinels name a master other than `addr` (a failover
    /// this node did not hear of: it was cut off, and still calls itself master). Silence of
    /// the sentinels within `within` concludes nothing.
    pub(crate) async fn check_named(
        &self,
        addr: &str,
        within: std::time::Duration,
    ) -> Result<(), String> {
        if !self.follows_master() {
            return Ok(());
        }
        match tokio::time::timeout(within, self.named_master()).await {
            Ok(Some(named)) if named != addr => {
                Err(format!("the sentinels name {named} master, not {addr}"))
            }
            _ => Ok(()),
        }
    }

    /// Behind Sentinel, the master the sentinels name now (`host:port`), asked of the first
    /// sentinel that answers; `None` elsewhere, or when no sentinel answers (nothing is
    /// concluded from silence: the connection's own `ROLE` still counts).
    pub(crate) async fn named_master(&self) -> Option<String> {
        let Kind::Sentinel(s) = &self.kind else {
            return None;
        };
        let client = s
            .client
            .lock()
            .await
            .async_get_sentinel_client()
            .await
            .ok()?;
        let mut con = client.get_multiplexed_async_connection().await.ok()?;
        let (host, port): (String, u16) = redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(&s.master)
            .query_async(&mut con)
            .await
            .ok()?;
        Some(format!("{host}:{port}"))
    }

    /// Clients for every master of the cluster, as `CLUSTER SLOTS` names them now (asked of
    /// the first seed that answers); for a node or Sentinel, the one client of
    /// [`client`](Self::client).
    pub(crate) async fn masters(&self) -> RedisResult<Vec<(String, Client)>> {
        let Kind::Cluster(c) = &self.kind else {
            let client = self.client().await?;
            return Ok(vec![(addr_of(&client), client)]);
        };
        let (seeds, node) = (&c.seeds, &c.node);
        let mut last = RedisError::from((ErrorKind::Io, "no cluster seed answered"));
        for seed in seeds {
            let slots = async {
                let mut c = node
                    .client(seed.clone())?
                    .get_multiplexed_async_connection()
                    .await?;
                redis::cmd("CLUSTER")
                    .arg("SLOTS")
                    .query_async::<Value>(&mut c)
                    .await
            };
            match slots.await {
                Ok(v) => return master_clients(&v, seed, node),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// A client for the node to use now: the configured one, or the master the sentinels
    /// name (checked with `ROLE` to really be a master).
    pub(crate) async fn client(&self) -> RedisResult<Client> {
        match &self.kind {
            Kind::Node(c) => Ok((**c).clone()),
            Kind::Sentinel(s) => s.client.lock().await.async_get_client().await,
            Kind::Cluster(c) => c.node.client(c.seeds[0].clone()),
        }
    }

    /// Whether the node can change under a live connection (a failover), so a connection
    /// must also be dropped when its node stops being a master.
    pub(crate) fn follows_master(&self) -> bool {
        matches!(self.kind, Kind::Sentinel(_))
    }
}

impl Target {
    /// The masters a `CLUSTER SLOTS` answer names, as `host:port`.
    pub(crate) fn master_addrs(&self, slots: &Value) -> RedisResult<Vec<String>> {
        let Kind::Cluster(c) = &self.kind else {
            return Ok(Vec::new());
        };
        Ok(master_clients(slots, &c.seeds[0], &c.node)?
            .into_iter()
            .map(|(a, _)| a)
            .collect())
    }
}

/// A client's node as `host:port` (empty for a Unix socket).
fn addr_of(client: &Client) -> String {
    match client.get_connection_info().addr() {
        redis::ConnectionAddr::Tcp(host, port)
        | redis::ConnectionAddr::TcpTls { host, port, .. } => format!("{host}:{port}"),
        _ => String::new(),
    }
}

/// The distinct masters of a `CLUSTER SLOTS` answer (`[[start, end, [host, port, id], ...],
/// ...]`), each as `host:port` and a client made like `seed`'s (scheme, password, CA).
fn master_clients(
    slots: &Value,
    seed: &ConnectionInfo,
    node: &NodeSettings,
) -> RedisResult<Vec<(String, Client)>> {
    let bad = || RedisError::from((ErrorKind::Parse, "unexpected CLUSTER SLOTS answer"));
    let Value::Array(ranges) = slots else {
        return Err(bad());
    };
    let tls = matches!(seed.addr(), redis::ConnectionAddr::TcpTls { .. });
    let mut masters: Vec<(String, Client)> = Vec::new();
    for range in ranges {
        let Value::Array(fields) = range else {
            return Err(bad());
        };
        let Some(Value::Array(master)) = fields.get(2) else {
            return Err(bad());
        };
        let host = match master.first() {
            Some(Value::BulkString(h)) => String::from_utf8_lossy(h).into_owned(),
            Some(Value::SimpleString(h)) => h.clone(),
            _ => return Err(bad()),
        };
        let Some(Value::Int(port)) = master.get(1) else {
            return Err(bad());
        };
        // A node that does not know its own address answers an empty host: the seed's.
        let host = if host.is_empty() {
            match seed.addr() {
                redis::ConnectionAddr::Tcp(h, _)
                | redis::ConnectionAddr::TcpTls { host: h, .. } => h.clone(),
                _ => return Err(bad()),
            }
        } else {
            host
        };
        let addr = format!("{host}:{port}");
        if masters.iter().any(|(a, _)| *a == addr) {
            continue;
        }
        let scheme = if tls { "rediss" } else { "redis" };
        let info = format!("{scheme}://{addr}").into_connection_info()?;
        masters.push((addr, node.client(info)?));
    }
    if masters.is_empty() {
        return Err(bad());
    }
    Ok(masters)
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
    // As the TLS client will take them: every one must be a usable trust anchor.
    let mut roots = rustls::RootCertStore::empty();
    let (_, bad) = roots.add_parsable_certificates(certs);
    if bad > 0 {
        return Err(err(format!(
            "{}: {bad} certificate(s) that do not parse as a trust anchor",
            path.display()
        )));
    }
    Ok(pem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_must_hold_usable_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(
            &junk,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        assert!(
            matches!(read_ca(&junk), Err(StoreError::Ca { .. })),
            "{:?}",
            read_ca(&junk)
        );
        let key_only = dir.path().join("key.pem");
        std::fs::write(
            &key_only,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        assert!(matches!(read_ca(&key_only), Err(StoreError::Ca { .. })));
        let missing = dir.path().join("missing.pem");
        assert!(matches!(read_ca(&missing), Err(StoreError::Ca { .. })));
    }
}
