//! The deployment files agree with the gateway (Docker does not run here): the k8s ConfigMap's
//! gateway.toml and deploy/gateway.toml load with `config::load_str`; container ports, Service
//! target ports, probes and compose's published ports are the config's listen ports; probe paths
//! are answered 200 by a real admin listener; every file the configs name is mounted from a
//! Secret that holds it; the Dockerfile's HEALTHCHECK uses the admin port and a probe path.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use gateway::config::{Config, KeyMaterial, SigningKey};
use serde::Deserialize;
use serde_json::Value;
use support::gateway::{route, TestGateway, MEMORY_SESSION};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every YAML document of every file in deploy/k8s (kustomization included).
fn k8s_docs() -> Vec<(String, Value)> {
    let dir = root().join("deploy/k8s");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let mut docs = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for doc in serde_norway::Deserializer::from_str(&text) {
            let v = Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("{}: not valid YAML: {e}", f.display()));
            docs.push((f.file_name().unwrap().to_string_lossy().into_owned(), v));
        }
    }
    docs
}

fn find<'a>(docs: &'a [(String, Value)], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .map(|(_, d)| d)
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in deploy/k8s"))
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

/// Every file a config reads at start: certificate, key, JWT public keys, signing key.
fn files_named(c: &Config) -> Vec<PathBuf> {
    let mut out = vec![c.tls.cert.clone(), c.tls.key.clone()];
    for k in &c.jwt.keys {
        if let KeyMaterial::PublicKeyFile(p) = &k.material {
            out.push(p.clone());
        }
    }
    if let Some(auth) = &c.auth {
        if let SigningKey::PrivateKeyFile(p) = &auth.signing_key {
            out.push(p.clone());
        }
    }
    out
}

/// Container port named or numbered by `port` (a probe's or a Service's target).
fn resolve_port(ports: &BTreeMap<String, u16>, port: &Value) -> u16 {
    match port {
        Value::Number(n) => n.as_u64().unwrap() as u16,
        Value::String(name) => *ports
            .get(name)
            .unwrap_or_else(|| panic!("no container port named {name}")),
        other => panic!("bad port {other}"),
    }
}

/// Probe paths the manifests and the Dockerfile use: each must be answered 200 by a real
/// admin listener (memory store, so /readyz is ready).
async fn assert_admin_answers(paths: &BTreeSet<String>) {
    let gw = TestGateway::start(MEMORY_SESSION, &route("/p/", "http://127.0.0.1:9", "")).await;
    let admin = gw.admin.unwrap();
    for p in paths {
        let tcp = tokio::net::TcpStream::connect(admin).await.unwrap();
        let (mut send, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
                .await
                .unwrap();
        tokio::spawn(conn);
        let req = http::Request::get(p.as_str())
            .header("host", admin.to_string())
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let status = send.send_request(req).await.unwrap().status();
        assert_eq!(status, 200, "the admin listener answers {p} with {status}");
    }
    // The session endpoints on the same listener refuse a caller without the token.
    let (status, _) =
        gateway::cli::admin_client::request(admin, http::Method::DELETE, "/sessions/x", None, None)
            .await
            .unwrap();
    assert_eq!(status, 401, "DELETE /sessions without the admin token");
}

#[tokio::test]
async fn k8s_manifests_match_the_config_they_ship() {
    let docs = k8s_docs();
    for (file, d) in &docs {
        assert!(d["kind"].is_string(), "{file}: a document without kind");
    }
    // Every manifest file is in the kustomization, and every listed one exists.
    let kust = docs
        .iter()
        .find(|(_, d)| d["kind"] == "Kustomization")
        .map(|(_, d)| d)
        .expect("deploy/k8s/kustomization.yaml");
    let listed: BTreeSet<&str> = kust["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(str_of)
        .collect();
    let present: BTreeSet<&str> = docs
        .iter()
        .map(|(f, _)| f.as_str())
        .filter(|f| *f != "kustomization.yaml")
        .collect();
    assert_eq!(listed, present, "kustomization resources vs files");

    let cm = find(&docs, "ConfigMap", "gateway-config");
    let toml = str_of(&cm["data"]["gateway.toml"]);
    let deploy = find(&docs, "Deployment", "gateway");
    let pod = &deploy["spec"]["template"]["spec"];
    let c = &pod["containers"].as_array().unwrap()[0];

    // The --config argument is the ConfigMap's key under its mount.
    let args: Vec<&str> = c["args"].as_array().unwrap().iter().map(str_of).collect();
    let config_path = args
        .windows(2)
        .find(|w| w[0] == "--config")
        .map(|w| PathBuf::from(w[1]))
        .expect("--config in args");
    // Secrets come from the environment: the pod's env entries, with a token-shaped value.
    let env_names: BTreeSet<&str> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| str_of(&e["name"]))
        .collect();
    let lookup = |name: &str| {
        env_names
            .contains(name)
            .then(|| std::ffi::OsString::from("k8s-admin-token-0123456789abcdef0123456789"))
    };
    let config = gateway::config::load_str_env(toml, &config_path, &lookup)
        .unwrap_or_else(|e| panic!("the ConfigMap's gateway.toml does not load:\n{e}"));

    // The admin listener is on 0.0.0.0: its session endpoints need [admin]'s token, which the
    // pod gets from a Secret key that exists (never a literal value, never the ConfigMap).
    let admin_table = config
        .admin
        .as_ref()
        .expect("[admin] in the ConfigMap: the admin port is reachable from the pod network");
    assert!(
        admin_table.token_file.is_none(),
        "the token comes from the Secret"
    );
    let env = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == admin_table.token_env.as_str())
        .unwrap_or_else(|| panic!("no env {} in the container", admin_table.token_env));
    assert!(
        env.get("value").is_none(),
        "the admin token is not a literal"
    );
    let from = &env["valueFrom"]["secretKeyRef"];
    let secret = find(&docs, "Secret", str_of(&from["name"]));
    let key = str_of(&from["key"]);
    assert!(
        secret["data"].get(key).is_some() || secret["stringData"].get(key).is_some(),
        "Secret {} has no key {key}",
        str_of(&from["name"])
    );

    // Mounts: mount path -> (volume kind, source name).
    let volumes: BTreeMap<&str, (&str, &str)> = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let name = str_of(&v["name"]);
            if v["configMap"].is_object() {
                (name, ("ConfigMap", str_of(&v["configMap"]["name"])))
            } else if v["secret"].is_object() {
                (name, ("Secret", str_of(&v["secret"]["secretName"])))
            } else {
                panic!("volume {name}: neither ConfigMap nor Secret")
            }
        })
        .collect();
    let mounts: Vec<(PathBuf, (&str, &str))> = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                PathBuf::from(str_of(&m["mountPath"])),
                volumes[str_of(&m["name"])],
            )
        })
        .collect();
    // Each file the gateway reads is a key of the Secret (or ConfigMap) mounted at its directory.
    let mut wanted = files_named(&config);
    wanted.push(config_path.clone());
    for file in wanted {
        let dir = file.parent().unwrap();
        let key = file.file_name().unwrap().to_str().unwrap();
        let (kind, source) = mounts
            .iter()
            .find(|(m, _)| m == dir)
            .map(|(_, s)| *s)
            .unwrap_or_else(|| {
                panic!(
                    "{}: nothing is mounted at {}",
                    file.display(),
                    dir.display()
                )
            });
        let obj = find(&docs, kind, source);
        let has = obj["data"].get(key).is_some() || obj["stringData"].get(key).is_some();
        assert!(has, "{}: {kind} {source} has no key {key}", file.display());
    }
    // The signing keys come from a Secret, never the ConfigMap.
    for f in files_named(&config) {
        let dir = f.parent().unwrap();
        let (kind, _) = mounts.iter().find(|(m, _)| m == dir).unwrap().1;
        assert_eq!(kind, "Secret", "{} is not from a Secret", f.display());
    }

    // Container ports are the listen ports, by name.
    let ports: BTreeMap<String, u16> = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                str_of(&p["name"]).to_owned(),
                p["containerPort"].as_u64().unwrap() as u16,
            )
        })
        .collect();
    let admin = config
        .listen
        .admin
        .expect("an admin listener for the probes");
    assert_eq!(ports["https"], config.listen.https.port());
    assert_eq!(Some(ports["http"]), config.listen.http.map(|a| a.port()));
    assert_eq!(ports["admin"], admin.port());
    for a in [Some(config.listen.https), config.listen.http, Some(admin)]
        .into_iter()
        .flatten()
    {
        assert!(
            a.ip().is_unspecified(),
            "{a}: a pod must listen on every interface"
        );
    }

    // Probes: readiness /readyz and liveness /healthz, on the admin port.
    let mut probe_paths = BTreeSet::new();
    for (probe, want) in [
        ("readinessProbe", Some("/readyz")),
        ("livenessProbe", Some("/healthz")),
        ("startupProbe", None),
    ] {
        let p = &c[probe]["httpGet"];
        if want.is_none() && p.is_null() {
            continue;
        }
        let path = str_of(&p["path"]);
        if let Some(w) = want {
            assert_eq!(path, w, "{probe}");
        }
        assert_eq!(
            resolve_port(&ports, &p["port"]),
            admin.port(),
            "{probe} port"
        );
        probe_paths.insert(path.to_owned());
    }
    // The Prometheus annotations point at the admin listener's /metrics.
    let ann = &deploy["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(str_of(&ann["prometheus.io/port"]), admin.port().to_string());
    probe_paths.insert(str_of(&ann["prometheus.io/path"]).to_owned());

    // Services target container ports that exist; the pod selector matches.
    let labels = &deploy["spec"]["template"]["metadata"]["labels"];
    for (svc, want) in [
        ("gateway", vec![ports["https"], ports["http"]]),
        ("gateway-admin", vec![admin.port()]),
    ] {
        let s = find(&docs, "Service", svc);
        for (k, v) in s["spec"]["selector"].as_object().unwrap() {
            assert_eq!(&labels[k], v, "Service {svc} selects {k}");
        }
        let got: Vec<u16> = s["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| resolve_port(&ports, &p["targetPort"]))
            .collect();
        assert_eq!(got, want, "Service {svc} target ports");
    }

    // The drain fits in the pod's grace period.
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(
        config.limits.shutdown_grace.as_secs() + 5 < grace,
        "shutdown_grace {:?} + preStop 5s must fit in {grace}s",
        config.limits.shutdown_grace
    );

    // The Redis URL names the Redis Service.
    let gateway::config::RedisNodes::Url(redis_url) = &config.session.redis.nodes else {
        panic!("the k8s config names one Redis node");
    };
    let redis_host = redis_url
        .trim_start_matches("redis://")
        .split([':', '/'])
        .next()
        .unwrap()
        .to_owned();
    find(&docs, "Service", &redis_host);

    assert_admin_answers(&probe_paths).await;
}

#[tokio::test]
async fn compose_and_its_config_agree() {
    let text = std::fs::read_to_string(root().join("deploy/compose.yaml")).unwrap();
    let compose: Value = serde_norway::from_str(&text).unwrap();
    let services = compose["services"].as_object().unwrap();
    let gw = &services["gateway"];
    // The mounted config file is the one --config names, and it loads.
    let command: Vec<&str> = gw["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(str_of)
        .collect();
    let config_path = command
        .windows(2)
        .find(|w| w[0] == "--config")
        .map(|w| w[1])
        .expect("--config in command");
    let volumes: Vec<&str> = gw["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(str_of)
        .collect();
    let host_file = volumes
        .iter()
        .find_map(|v| {
            let mut parts = v.split(':');
            let (host, target) = (parts.next()?, parts.next()?);
            (target == config_path).then_some(host)
        })
        .expect("the config file is mounted");
    let src = std::fs::read_to_string(root().join("deploy").join(host_file)).unwrap();
    let config = gateway::config::load_str(&src, Path::new(config_path))
        .unwrap_or_else(|e| panic!("deploy/gateway.toml does not load:\n{e}"));

    // Each listen port is published to the same container port.
    let published: BTreeSet<u16> = gw["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| str_of(p).rsplit(':').next().unwrap().parse().unwrap())
        .collect();
    let admin = config.listen.admin.unwrap();
    let listen: BTreeSet<u16> = [Some(config.listen.https), config.listen.http, Some(admin)]
        .into_iter()
        .flatten()
        .map(|a| {
            assert!(
                a.ip().is_unspecified(),
                "{a}: listen on 0.0.0.0 in a container"
            );
            a.port()
        })
        .collect();
    assert_eq!(published, listen);
    // The admin port is published on loopback only.
    assert!(
        gw["ports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| str_of(p) == format!("127.0.0.1:{0}:{0}", admin.port())),
        "the admin port must be published on 127.0.0.1 only"
    );
    // The admin token: a file in the certs volume, written on first start.
    let admin_table = config
        .admin
        .as_ref()
        .expect("[admin] in deploy/gateway.toml");
    let token_file = admin_table.token_file.as_ref().expect("admin.token_file");
    assert!(
        config.tls.self_signed_if_missing,
        "nothing else writes the token file"
    );
    assert!(
        volumes.iter().any(|v| {
            let target = v.split(':').nth(1).unwrap_or("");
            !target.is_empty() && token_file.starts_with(target) && !v.ends_with(":ro")
        }),
        "{} is not on a writable volume",
        token_file.display()
    );
    assert!(
        !gw["environment"]
            .as_object()
            .is_some_and(|e| e.contains_key(&admin_table.token_env)),
        "compose sets no literal admin token"
    );
    // Redis: the URL names the service; the gateway waits for it.
    assert!(
        matches!(&config.session.redis.nodes, gateway::config::RedisNodes::Url(u) if u.starts_with("redis://redis:"))
    );
    assert!(services.contains_key("redis"));
    assert_eq!(
        gw["depends_on"]["redis"]["condition"], "service_healthy",
        "the gateway waits for Redis"
    );
    // The demo echo is the routes' upstream.
    let echo = config.demo.as_ref().expect("[demo] echo").echo;
    for r in &config.routes {
        assert!(r
            .upstreams
            .iter()
            .all(|u| u.port_u16() == Some(echo.port())));
    }
    // The compose health check and the Dockerfile's use the admin port and probe paths.
    let hc: Vec<&str> = gw["healthcheck"]["test"]
        .as_array()
        .unwrap()
        .iter()
        .map(str_of)
        .collect();
    assert_eq!(hc[..2], ["CMD", "/usr/local/bin/healthcheck"]);
    assert_eq!(hc[2], admin.port().to_string());
    let mut paths = BTreeSet::from([hc[3].to_owned()]);

    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let docker_hc = dockerfile
        .split("HEALTHCHECK")
        .nth(1)
        .expect("a HEALTHCHECK in the Dockerfile");
    let docker_hc = &docker_hc[..docker_hc.find(']').unwrap()];
    assert!(docker_hc.contains("/usr/local/bin/healthcheck"));
    assert!(docker_hc.contains(&format!("\"{}\"", admin.port())));
    assert!(dockerfile.contains("COPY deploy/healthcheck.sh /usr/local/bin/healthcheck"));
    let docker_path = docker_hc
        .split('"')
        .find(|s| s.starts_with('/') && !s.starts_with("/usr"))
        .expect("a probe path in the HEALTHCHECK");
    paths.insert(docker_path.to_owned());
    // The shipped config the image runs by default has the same admin port.
    let shipped = gateway::config::load_str(
        gateway::config::EMBEDDED_DEFAULT,
        Path::new("/etc/gateway/gateway.toml"),
    )
    .unwrap();
    assert_eq!(shipped.listen.admin.map(|a| a.port()), Some(admin.port()));
    assert_admin_answers(&paths).await;
}

/// One image name: what compose builds (and `docker build -t` in the README makes) is what
/// the Kubernetes Deployment runs, and its tag is the crate's version.
#[test]
fn one_image_name_everywhere() {
    let want = format!("gateway:{}", env!("CARGO_PKG_VERSION"));
    let text = std::fs::read_to_string(root().join("deploy/compose.yaml")).unwrap();
    let compose: Value = serde_norway::from_str(&text).unwrap();
    assert_eq!(str_of(&compose["services"]["gateway"]["image"]), want);
    let docs = k8s_docs();
    let deployment = find(&docs, "Deployment", "gateway");
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert!(containers.iter().all(|c| str_of(&c["image"]) == want));
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(
        readme.contains(&format!("docker build -t {want} .")),
        "README names the build command that makes {want}"
    );
}

/// deploy/compose-sentinel.yaml over deploy/compose.yaml: the gateway's mounted config names
/// the overlay's sentinels and the master they monitor, the overlay's master is compose's
/// `redis`, and the config differs from deploy/gateway.toml only in `[session]`.
#[test]
fn the_sentinel_overlay_and_its_config_agree() {
    let text = std::fs::read_to_string(root().join("deploy/compose-sentinel.yaml")).unwrap();
    let overlay: Value = serde_norway::from_str(&text).unwrap();
    let services = overlay["services"].as_object().unwrap();
    let gw = &services["gateway"];
    let mounted = gw["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(str_of)
        .find_map(|v| v.strip_suffix(":/etc/gateway/gateway.toml:ro"))
        .expect("the overlay mounts its own config")
        .trim_start_matches("./");
    let src = std::fs::read_to_string(root().join("deploy").join(mounted)).unwrap();
    let config = gateway::config::load_str(&src, Path::new("/etc/gateway/gateway.toml"))
        .unwrap_or_else(|e| panic!("deploy/{mounted} does not load:\n{e}"));
    let gateway::config::RedisNodes::Sentinel { master, nodes } = &config.session.redis.nodes
    else {
        panic!("deploy/{mounted} uses redis_sentinel");
    };
    let sentinel_conf = str_of(&services["sentinel-1"]["command"][2]);
    assert!(
        sentinel_conf.contains(&format!("sentinel monitor {master} redis 6379 2")),
        "the sentinels monitor compose's `redis` as {master}, quorum 2"
    );
    for node in nodes {
        let host = node
            .trim_start_matches("redis://")
            .split(':')
            .next()
            .unwrap();
        assert!(services.contains_key(host), "{node}: no such service");
        assert!(
            gw["depends_on"][host]["condition"] == "service_healthy",
            "the gateway waits for {host}"
        );
    }
    let replica: Vec<&str> = services["redis-replica"]["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(str_of)
        .collect();
    assert!(
        replica
            .windows(3)
            .any(|w| w == ["--replicaof", "redis", "6379"]),
        "{replica:?}"
    );
    // Only [session] differs from deploy/gateway.toml.
    let base = std::fs::read_to_string(root().join("deploy/gateway.toml")).unwrap();
    let base = gateway::config::load_str(&base, Path::new("/etc/gateway/gateway.toml")).unwrap();
    assert_eq!(format!("{:?}", base.routes), format!("{:?}", config.routes));
    assert_eq!(format!("{:?}", base.listen), format!("{:?}", config.listen));
    assert_eq!(format!("{:?}", base.auth), format!("{:?}", config.auth));
}
