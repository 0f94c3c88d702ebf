//! Real infrastructure for tests: `nats-server` processes on free loopback ports with temporary
//! stores, killed on drop, and services started in-process on port 0.
//!
//! The nats-server binary is found, in order, at `$YY_NATS_SERVER`, at the project's tools folder
//! (`.yy/tools/nats/bin/nats-server`, where `make` installs it) and on `PATH`. It must be 2.12 or
//! newer: older servers cannot sync every write and ignore options the event log relies on.

use std::future::Future;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener as StdTcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long a starting nats-server may take to report healthy before the start is failed.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How a test server stores its JetStream data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sync {
    /// `sync_interval: always`: every acknowledged write is on disk (the production setting).
    Always,
    /// The server's default lazy sync: fast, but a power loss can drop acknowledged writes.
    Default,
}

/// One nats-server process with JetStream, on free loopback ports, storing under a temporary
/// folder that lives as long as this value. Dropping it kills the process.
#[derive(Debug)]
pub struct NatsServer {
    child: Option<Child>,
    config_path: PathBuf,
    log_path: PathBuf,
    port: u16,
    monitor_port: u16,
    // Held for its Drop: removes the store when the server is dropped.
    _dir: tempfile::TempDir,
}

impl NatsServer {
    /// Starts a single node that syncs every write to disk.
    pub fn start() -> Self {
        Self::start_with(Sync::Always)
    }

    /// Starts a single node with the given sync setting.
    ///
    /// # Panics
    /// When no suitable nats-server binary exists or it does not become healthy in time: a test
    /// cannot run without it, and the message says how to install one.
    pub fn start_with(sync: Sync) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("yy-nats-")
            .tempdir()
            .expect("create temp dir");
        let port = free_port();
        let monitor_port = free_port();
        let sync_line = match sync {
            Sync::Always => "sync_interval: always",
            Sync::Default => "",
        };
        let config = format!(
            "server_name: n0\nlisten: 127.0.0.1:{port}\nhttp: 127.0.0.1:{monitor_port}\n\
             jetstream {{ store_dir: \"{}\", {sync_line} }}\n",
            dir.path().join("store").display()
        );
        let server = Self::spawn(dir, "n0", &config, port, monitor_port);
        server.wait_healthy();
        server
    }

    fn spawn(dir: tempfile::TempDir, name: &str, config: &str, port: u16, monitor_port: u16) -> Self {
        let config_path = dir.path().join(format!("{name}.conf"));
        std::fs::write(&config_path, config).expect("write nats config");
        let log_path = dir.path().join(format!("{name}.log"));
        let mut server = NatsServer {
            child: None,
            config_path,
            log_path,
            port,
            monitor_port,
            _dir: dir,
        };
        server.launch();
        server
    }

    fn launch(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open nats log");
        let child = Command::new(nats_server_binary())
            .arg("-c")
            .arg(&self.config_path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
    }

    /// The client URL, `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The monitoring URL (`/varz`, `/healthz`, ...).
    pub fn monitor_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.monitor_port)
    }

    /// Kills the process with SIGKILL, as a crash or power cut would, leaving its store as it is.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same ports and store and waits until it is healthy.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
        self.wait_healthy();
    }

    /// Waits until the server's `/healthz` reports JetStream healthy.
    ///
    /// # Panics
    /// When it does not within 30 s; the server's log is in the message.
    pub fn wait_healthy(&self) {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if http_status(self.monitor_port, "/healthz") == Some(200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        panic!("nats-server on port {} did not become healthy:\n{log}", self.port);
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A 3-node nats-server cluster with JetStream on loopback; streams with three replicas on it keep
/// acknowledged writes through the loss of one node.
#[derive(Debug)]
pub struct NatsCluster {
    /// The nodes, each killable and restartable on its own.
    pub nodes: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts three nodes and waits until each reports JetStream healthy (a meta leader elected).
    pub fn start() -> Self {
        let cluster_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let routes = cluster_ports
            .iter()
            .map(|p| format!("nats-route://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(", ");
        let nodes: Vec<NatsServer> = cluster_ports
            .iter()
            .enumerate()
            .map(|(i, cluster_port)| {
                let dir = tempfile::Builder::new().prefix("yy-nats-").tempdir().expect("temp dir");
                let port = free_port();
                let monitor_port = free_port();
                let name = format!("n{i}");
                let config = format!(
                    "server_name: {name}\nlisten: 127.0.0.1:{port}\nhttp: 127.0.0.1:{monitor_port}\n\
                     jetstream {{ store_dir: \"{}\" }}\n\
                     cluster {{ name: yy-test, listen: 127.0.0.1:{cluster_port}, routes: [{routes}] }}\n",
                    dir.path().join("store").display()
                );
                NatsServer::spawn(dir, &name, &config, port, monitor_port)
            })
            .collect();
        for node in &nodes {
            node.wait_healthy();
        }
        NatsCluster { nodes }
    }

    /// A comma-separated list of every node's client URL, for a client that fails over.
    pub fn urls(&self) -> String {
        self.nodes.iter().map(NatsServer::url).collect::<Vec<_>>().join(",")
    }
}

/// The nats-server binary to run (see the crate documentation for the search order).
///
/// # Panics
/// When none is found or the one found is older than 2.12.
pub fn nats_server_binary() -> PathBuf {
    let candidates = std::env::var_os("YY_NATS_SERVER")
        .map(PathBuf::from)
        .into_iter()
        .chain([workspace_root().join(".yy/tools/nats/bin/nats-server")])
        .chain(std::env::var_os("PATH").into_iter().flat_map(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join("nats-server"))
                .collect::<Vec<_>>()
        }));
    for candidate in candidates {
        if !candidate.is_file() {
            continue;
        }
        match server_version(&candidate) {
            Some(version) if version >= (2, 12) => return candidate,
            Some((major, minor)) => eprintln!(
                "skipping {}: version {major}.{minor} is older than 2.12",
                candidate.display()
            ),
            None => eprintln!("skipping {}: cannot read its version", candidate.display()),
        }
    }
    panic!("no nats-server 2.12+ found: run `make tools` (installs one under .yy/tools) or set YY_NATS_SERVER");
}

fn server_version(binary: &Path) -> Option<(u32, u32)> {
    let output = Command::new(binary).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let version = text.trim().rsplit(['v', ' ']).next()?;
    let mut parts = version.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// The workspace's root folder.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    StdTcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split_whitespace().nth(1)?.parse().ok()
}

/// A service started in-process on ephemeral ports by [`spawn_service`].
#[derive(Debug)]
pub struct RunningService<E> {
    /// Where its HTTP server (health, metrics, REST) listens.
    pub http: SocketAddr,
    /// Where its gRPC server listens.
    pub grpc: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), E>>,
}

impl<E> RunningService<E> {
    /// Asks the service to shut down as SIGTERM would and waits for its `run` to return.
    ///
    /// # Panics
    /// When the service's task panicked.
    pub async fn stop(self) -> Result<(), E> {
        self.shutdown.cancel();
        self.task.await.expect("service task panicked")
    }

    /// True once the service's `run` returned (it failed or was stopped).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

/// Binds an HTTP and a gRPC listener on `127.0.0.1:0`, hands them with a shutdown token to `run`
/// (a service's `run` with its config bound in) and runs it on the current runtime.
pub async fn spawn_service<F, Fut, E>(run: F) -> RunningService<E>
where
    F: FnOnce(TcpListener, TcpListener, CancellationToken) -> Fut,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Send + 'static,
{
    let http = TcpListener::bind("127.0.0.1:0").await.expect("bind http");
    let grpc = TcpListener::bind("127.0.0.1:0").await.expect("bind grpc");
    let http_addr = http.local_addr().expect("http addr");
    let grpc_addr = grpc.local_addr().expect("grpc addr");
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run(http, grpc, shutdown.clone()));
    RunningService {
        http: http_addr,
        grpc: grpc_addr,
        shutdown,
        task,
    }
}

/// The path of a workspace binary built by `cargo build --bins` (such as `yy-gateway`), in the
/// profile the tests were built with.
///
/// # Panics
/// When it has not been built; the message says how to build it.
pub fn workspace_binary(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    let path = target.join(profile).join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --workspace --bins` first (`make test` does)",
        path.display()
    );
    path
}

/// A service binary running as a child process; killed on drop.
#[derive(Debug)]
pub struct ServiceProcess {
    child: Child,
    /// Its HTTP port (health, metrics, REST).
    pub http: u16,
    /// Its gRPC port.
    pub grpc: u16,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

impl ServiceProcess {
    /// Starts `yy-<service>` against `nats` on free ports, with 2 log partitions, a 5 s shutdown
    /// grace and `extra_env` as `YY_<SERVICE>__<KEY>` settings.
    ///
    /// # Panics
    /// When the binary is missing (see [`workspace_binary`]) or cannot start.
    pub fn start(service: &str, nats: &NatsServer, extra_env: &[(&str, &str)]) -> ServiceProcess {
        let dir = tempfile::tempdir().expect("temp dir");
        let stderr = dir.path().join("stderr.log");
        let (http, grpc) = (free_port(), free_port());
        let prefix = format!("YY_{}__", service.to_uppercase().replace('-', "_"));
        let mut command = Command::new(workspace_binary(&format!("yy-{service}")));
        command
            .env(format!("{prefix}NATS__URL"), nats.url())
            .env(format!("{prefix}NATS__MONITOR_URL"), nats.monitor_url())
            .env(format!("{prefix}NATS__CONNECT_TIMEOUT_SECS"), "5")
            .env(format!("{prefix}EVENTLOG__PARTITIONS"), "2")
            .env(format!("{prefix}HTTP__LISTEN"), format!("127.0.0.1:{http}"))
            .env(format!("{prefix}GRPC__LISTEN"), format!("127.0.0.1:{grpc}"))
            .env(format!("{prefix}SHUTDOWN_GRACE_SECS"), "5")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"));
        if service == "gateway" {
            command.env(
                format!("{prefix}AUTH__KEY_SECRET"),
                "system-test-key-secret-0123456789abcdef",
            );
        }
        for (key, value) in extra_env {
            command.env(format!("{prefix}{key}"), value);
        }
        let child = command.spawn().expect("start service");
        ServiceProcess {
            child,
            http,
            grpc,
            stderr,
            _dir: dir,
        }
    }

    /// A URL on its HTTP port.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http)
    }

    /// What it wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Sends it a signal by name, such as `TERM` or `KILL`.
    ///
    /// # Panics
    /// When `kill` fails.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for it to exit.
    ///
    /// # Panics
    /// When it is still running after `within`.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "did not exit in time:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
