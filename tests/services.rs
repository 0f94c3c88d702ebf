//! The five services as a cluster: started as real processes (and in-process), against a real
//! nats-server.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use yy_eventlog::{EventEnvelope, EventLog, Expected, LogConfig, LogContext, NatsConfig, NewCommit};
use yy_proto::system::v1::{GetStatusRequest, system_service_client::SystemServiceClient};
use yy_runtime::{Listeners, ServiceConfig};
use yy_testkit::{NatsServer, ServiceProcess as Process, Sync, free_port, spawn_service, workspace_binary};

const SERVICES: [&str; 5] = ["gateway", "conversation", "routing", "ticket-sync", "webhook"];

async fn status_code(url: &str) -> Option<u16> {
    reqwest::get(url).await.ok().map(|r| r.status().as_u16())
}

async fn wait_ready(url: &str, log: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while status_code(url).await != Some(200) {
        assert!(Instant::now() < deadline, "{url} never answered 200:\n{}", log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn every_service_binary_becomes_ready_serves_health_and_stops_on_sigterm() {
    let nats = NatsServer::start();
    let mut processes: Vec<(&str, Process)> = SERVICES.iter().map(|s| (*s, Process::start(s, &nats, &[]))).collect();
    for (service, process) in &processes {
        wait_ready(&process.url("/readyz"), || process.log()).await;
        assert_eq!(status_code(&process.url("/healthz")).await, Some(200));

        let metrics = reqwest::get(process.url("/metrics"))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        let prefix = format!("yy_{}", service.replace('-', "_"));
        assert!(metrics.contains(&format!("{prefix}_ready 1")), "{metrics}");
        assert!(metrics.contains(&format!("{prefix}_nats_connected 1")), "{metrics}");

        let endpoint = format!("http://127.0.0.1:{}", process.grpc);
        let channel = tonic::transport::Channel::from_shared(endpoint.clone())
            .expect("uri")
            .connect()
            .await
            .expect("grpc");
        let mut health = HealthClient::new(channel);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let answer = health
                .check(HealthCheckRequest { service: String::new() })
                .await
                .expect("health")
                .into_inner();
            if answer.status == ServingStatus::Serving as i32 {
                break;
            }
            assert!(Instant::now() < deadline, "{service}: gRPC health never SERVING");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let status = SystemServiceClient::connect(endpoint)
            .await
            .expect("grpc")
            .get_status(GetStatusRequest {})
            .await
            .expect("status")
            .into_inner();
        assert_eq!(status.service, *service);
        assert!(status.ready);
        assert!(!status.contexts.is_empty());
    }
    for (_, process) in &mut processes {
        process.signal("TERM");
    }
    for (service, process) in &mut processes {
        let exit = process.wait_exit(Duration::from_secs(10));
        assert!(exit.success(), "{service} exited with {exit}:\n{}", process.log());
        assert!(process.log().contains("stopped"), "{}", process.log());
    }
}

#[tokio::test]
async fn a_bad_config_exits_with_64_and_names_the_key() {
    let nats = NatsServer::start();
    let mut process = Process::start("routing", &nats, &[("EVENTLOG__PARTITIONS", "many")]);
    let exit = process.wait_exit(Duration::from_secs(10));
    assert_eq!(exit.code(), Some(64));
    assert!(
        process.log().to_lowercase().contains("eventlog.partitions"),
        "{}",
        process.log()
    );
}

#[tokio::test]
async fn an_unsafe_durability_setup_is_refused_unless_accepted() {
    let lazy = NatsServer::start_with(Sync::Default);
    let mut refused = Process::start("webhook", &lazy, &[]);
    let exit = refused.wait_exit(Duration::from_secs(15));
    assert_eq!(exit.code(), Some(78));
    assert!(refused.log().contains("does not sync every write"), "{}", refused.log());

    let accepted = Process::start("webhook", &lazy, &[("EVENTLOG__ACCEPT_UNSAFE_DURABILITY", "true")]);
    wait_ready(&accepted.url("/readyz"), || accepted.log()).await;
    assert!(accepted.log().contains("unsafe durability setup"), "{}", accepted.log());
}

#[tokio::test]
async fn a_service_reconnects_when_nats_restarts() {
    let mut nats = NatsServer::start();
    let process = Process::start("conversation", &nats, &[]);
    wait_ready(&process.url("/readyz"), || process.log()).await;
    nats.kill();
    let deadline = Instant::now() + Duration::from_secs(15);
    while status_code(&process.url("/readyz")).await != Some(503) {
        assert!(Instant::now() < deadline, "readiness did not drop with NATS gone");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    nats.restart();
    wait_ready(&process.url("/readyz"), || process.log()).await;
}

fn config_for<X: Default>(nats: &NatsServer) -> ServiceConfig<X> {
    ServiceConfig {
        nats: NatsConfig {
            url: nats.url(),
            monitor_url: Some(nats.monitor_url()),
            ..NatsConfig::default()
        },
        eventlog: LogConfig {
            partitions: 2,
            ..LogConfig::default()
        },
        ..ServiceConfig::default()
    }
}

async fn seed(log: &EventLog, tenant: &str, count: usize) {
    for i in 0..count {
        let aggregate = format!("conv_{}", i % 7);
        let commit = NewCommit {
            context: LogContext::CONV,
            tenant_id: tenant.into(),
            aggregate_id: aggregate.clone(),
            command_id: uuid::Uuid::now_v7().to_string(),
            events: vec![EventEnvelope {
                event_id: uuid::Uuid::now_v7().to_string(),
                tenant_id: tenant.into(),
                aggregate_type: "conversation".into(),
                aggregate_id: aggregate,
                schema_version: 1,
                ..Default::default()
            }],
            trace: None,
        };
        log.append(commit, Expected::Any).await.expect("append");
    }
}

async fn commits_applied(grpc: std::net::SocketAddr) -> (bool, u64) {
    let status = SystemServiceClient::connect(format!("http://{grpc}"))
        .await
        .expect("grpc")
        .get_status(GetStatusRequest {})
        .await
        .expect("status")
        .into_inner();
    (status.ready, status.contexts.iter().map(|c| c.commits_applied).sum())
}

#[tokio::test]
async fn a_restarted_service_rebuilds_its_state_from_a_snapshot_plus_the_tail() {
    let nats = NatsServer::start();
    let config: ServiceConfig<yy_conversation::ConversationConfig> = config_for(&nats);
    let log = EventLog::connect(&config.nats, config.eventlog.clone(), "seed")
        .await
        .expect("connect");
    log.provision(LogContext::CONV).await.expect("provision");
    seed(&log, "t1", 40).await;

    let start = |config: ServiceConfig<yy_conversation::ConversationConfig>| {
        spawn_service(move |http, grpc, shutdown: CancellationToken| {
            yy_conversation::run(config, Listeners { http, grpc }, shutdown)
        })
    };
    let first = start(config.clone()).await;
    wait_ready(&format!("http://{}/readyz", first.http), String::new).await;
    assert_eq!(commits_applied(first.grpc).await, (true, 40));
    // A clean stop saves a snapshot of what was applied.
    first.stop().await.expect("clean stop");

    seed(&log, "t2", 15).await;
    let second = start(config).await;
    wait_ready(&format!("http://{}/readyz", second.http), String::new).await;
    // Only the tail after the snapshot was read from the log.
    assert_eq!(commits_applied(second.grpc).await, (true, 15));
    second.stop().await.expect("clean stop");
}

#[tokio::test]
async fn all_five_services_run_in_process_on_ephemeral_ports() {
    let nats = NatsServer::start();
    let mut running = Vec::new();
    for service in SERVICES {
        let nats = &nats;
        let handle = spawn_service(move |http, grpc, shutdown: CancellationToken| {
            let listeners = Listeners { http, grpc };
            let run: std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), yy_runtime::RunError>> + Send>> =
                match service {
                    "gateway" => {
                        let mut config: ServiceConfig<yy_gateway::GatewayConfig> = config_for(nats);
                        config.extra.auth.key_secret =
                            yy_runtime::Secret::new("system-test-key-secret-0123456789abcdef");
                        Box::pin(yy_gateway::run(config, listeners, shutdown))
                    }
                    "conversation" => Box::pin(yy_conversation::run(config_for(nats), listeners, shutdown)),
                    "routing" => Box::pin(yy_routing::run(config_for(nats), listeners, shutdown)),
                    "ticket-sync" => Box::pin(yy_ticket_sync::run(config_for(nats), listeners, shutdown)),
                    _ => Box::pin(yy_webhook::run(config_for(nats), listeners, shutdown)),
                };
            run
        })
        .await;
        running.push(handle);
    }
    for handle in &running {
        wait_ready(&format!("http://{}/readyz", handle.http), String::new).await;
        assert!(commits_applied(handle.grpc).await.0);
    }
    for handle in running {
        handle.stop().await.expect("clean stop");
    }
}

/// `base` such that `base..base + 5` are all free ports.
fn free_port_range() -> u16 {
    'search: for attempt in 0..200u16 {
        let base = 20_000 + (std::process::id() as u16 % 400) * 50 + attempt * 7;
        for port in base..base + 5 {
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
                continue 'search;
            }
        }
        return base;
    }
    panic!("no free port range");
}

struct RunScript {
    child: std::process::Child,
    env_file: PathBuf,
}

impl RunScript {
    async fn start(run_dir: &std::path::Path, http_base: u16, grpc_base: u16) -> RunScript {
        let child = Command::new("bash")
            .arg(yy_testkit::workspace_root().join("scripts/run.sh"))
            .env("YY_RUN_DIR", run_dir)
            .env("YY_RUN_NATS_PORT", free_port().to_string())
            .env("YY_RUN_NATS_MONITOR_PORT", free_port().to_string())
            .env("YY_RUN_HTTP_PORT_BASE", http_base.to_string())
            .env("YY_RUN_GRPC_PORT_BASE", grpc_base.to_string())
            .env("YY_NATS_SERVER", yy_testkit::nats_server_binary())
            .env(
                "YY_RUN_BIN_DIR",
                workspace_binary("yy-gateway").parent().expect("bin dir"),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start run.sh");
        let mut script = RunScript {
            child,
            env_file: run_dir.join("run.env"),
        };
        let deadline = Instant::now() + Duration::from_secs(90);
        while !script.env_file.exists() {
            if let Some(status) = script.child.try_wait().expect("wait") {
                let mut stderr = String::new();
                if let Some(mut pipe) = script.child.stderr.take() {
                    std::io::Read::read_to_string(&mut pipe, &mut stderr).expect("stderr");
                }
                panic!("run.sh exited with {status}: {stderr}");
            }
            assert!(Instant::now() < deadline, "run.sh did not report the cluster ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        script
    }

    fn value(&self, name: &str) -> String {
        let variables = std::fs::read_to_string(&self.env_file).expect("run.env");
        variables
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("{name} missing from run.env:\n{variables}"))
            .to_owned()
    }

    /// Stops it as Ctrl-C would; returns what it printed.
    async fn interrupt(self) -> String {
        let status = Command::new("kill")
            .arg("-INT")
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
        let output = tokio::task::spawn_blocking(move || self.child.wait_with_output())
            .await
            .expect("join")
            .expect("output");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

#[tokio::test]
async fn the_run_script_starts_the_whole_cluster_with_a_demo_tenant_and_stops_it_on_ctrl_c() {
    let dir = tempfile::tempdir().expect("temp dir");
    let run_dir = dir.path().join("run");
    let (http_base, grpc_base) = (free_port_range(), free_port_range() + 5);
    let script = RunScript::start(&run_dir, http_base, grpc_base).await;
    assert!(script.value("YY_NATS_URL").starts_with("nats://127.0.0.1:"));
    for service in SERVICES {
        let var = service.to_uppercase().replace('-', "_");
        let http = script.value(&format!("YY_{var}_HTTP"));
        assert_eq!(status_code(&format!("{http}/readyz")).await, Some(200), "{service}");
        assert!(script.value(&format!("YY_{var}_GRPC")).starts_with("127.0.0.1:"));
    }
    assert_eq!(script.value("YY_API_URL"), format!("http://127.0.0.1:{http_base}"));
    assert_eq!(script.value("YY_GRPC_ADDR"), format!("127.0.0.1:{grpc_base}"));
    assert!(!script.value("YY_ADMIN_TOKEN").is_empty());
    let api_key = script.value("YY_API_KEY");
    assert!(api_key.starts_with("yy_"), "{api_key}");

    // The printed quickstart works as written.
    let quickstart = Command::new("bash")
        .arg(run_dir.join("quickstart.sh"))
        .output()
        .expect("quickstart");
    let printed = String::from_utf8_lossy(&quickstart.stdout);
    assert!(
        quickstart.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&quickstart.stderr)
    );
    assert!(printed.contains("Where is my order?"), "{printed}");
    assert!(
        printed.contains(r#""state":"waiting""#),
        "the handoff waits in a queue: {printed}"
    );

    let stdout = script.interrupt().await;
    assert!(stdout.contains("Yiwaiwai is running"), "{stdout}");
    assert!(stdout.contains(&api_key), "{stdout}");
    assert!(stdout.contains("stopped"), "{stdout}");
    assert!(!run_dir.join("run.env").exists(), "run.env outlived the cluster");
    for port in http_base..http_base + 5 {
        assert!(
            status_code(&format!("http://127.0.0.1:{port}/healthz")).await.is_none(),
            "port {port} still served"
        );
    }

    // Started again on the same data, the demo tenant and its key are still there.
    let again = RunScript::start(&run_dir, http_base, grpc_base).await;
    assert_eq!(again.value("YY_API_KEY"), api_key);
    again.interrupt().await;
}
