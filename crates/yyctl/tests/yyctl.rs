//! The `yyctl` binary against a real gateway (in-process) on a real nats-server.

use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;
use yy_eventlog::{LogConfig, NatsConfig};
use yy_gateway::GatewayConfig;
use yy_runtime::{Listeners, RunError, Secret, ServiceConfig};
use yy_testkit::{NatsServer, RunningService, free_port, spawn_service};

const ADMIN_TOKEN: &str = "yyctl-admin-token-0123456789";

struct Gateway {
    _nats: NatsServer,
    running: RunningService<RunError>,
}

impl Gateway {
    /// A gateway with an admin token. The admin API needs nothing behind the gateway, so its
    /// upstream points at a port where nothing listens; it is only dialled for conversation calls.
    async fn start() -> Gateway {
        let nats = NatsServer::start();
        let mut config = ServiceConfig::<GatewayConfig> {
            nats: NatsConfig {
                url: nats.url(),
                monitor_url: Some(nats.monitor_url()),
                ..NatsConfig::default()
            },
            eventlog: LogConfig {
                partitions: 2,
                ..LogConfig::default()
            },
            shutdown_grace_secs: 5,
            ..ServiceConfig::default()
        };
        config.extra.auth.admin_token = Secret::new(ADMIN_TOKEN);
        config.extra.auth.key_secret = Secret::new("yyctl-key-secret-0123456789abcdef0123456789");
        config.extra.upstream.conversation = format!("http://127.0.0.1:{}", free_port());
        let running = spawn_service(move |http, grpc, shutdown: CancellationToken| {
            yy_gateway::run(config, Listeners { http, grpc }, shutdown)
        })
        .await;
        let ready = format!("http://{}/readyz", running.http);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(response) = reqwest::get(&ready).await
                && response.status() == 200
            {
                break;
            }
            assert!(Instant::now() < deadline, "the gateway never became ready");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Gateway { _nats: nats, running }
    }

    fn url(&self) -> String {
        format!("http://{}", self.running.http)
    }

    async fn stop(self) {
        self.running.stop().await.expect("gateway stops cleanly");
    }
}

/// Runs yyctl with `args` and no yyctl settings from the environment.
async fn yyctl(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_yyctl"));
    command.args(args).env_remove("YY_API_URL").env_remove("YY_ADMIN_TOKEN");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().await.expect("run yyctl")
}

/// Runs yyctl against `gateway` with the admin token, expecting success; returns stdout.
async fn ok(gateway: &Gateway, args: &[&str]) -> String {
    let url = gateway.url();
    let mut all = vec!["--url", url.as_str(), "--admin-token", ADMIN_TOKEN];
    all.extend_from_slice(args);
    let output = yyctl(&all, &[]).await;
    assert!(
        output.status.success(),
        "yyctl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8")
}

fn json(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_manage_tenants_and_keys() {
    let gateway = Gateway::start().await;

    let created = json(&ok(&gateway, &["tenant", "create", "Acme Support", "--json"]).await);
    let tenant_id = created["id"].as_str().expect("id").to_owned();
    assert!(tenant_id.starts_with("ten_"), "{created}");
    assert_eq!(created["name"], "Acme Support");
    let text = ok(&gateway, &["tenant", "create", "Globex"]).await;
    assert!(
        text.starts_with("Created tenant ten_") && text.contains("(Globex)"),
        "{text}"
    );

    let listed = json(&ok(&gateway, &["--json", "tenant", "list"]).await);
    assert_eq!(listed["tenants"].as_array().expect("array").len(), 2);
    assert_eq!(listed["tenants"][0], created);
    let text = ok(&gateway, &["tenant", "list"]).await;
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("ID") && lines[0].ends_with("NAME"), "{text}");
    assert!(
        lines[1].starts_with(&tenant_id) && lines[1].ends_with("Acme Support"),
        "{text}"
    );

    let issued = json(&ok(&gateway, &["key", "create", &tenant_id, "--name", "backend", "--json"]).await);
    let key = issued["key"].as_str().expect("key");
    assert!(key.starts_with("yy_") && key.len() == 43, "{issued}");
    assert_eq!(issued["name"], "backend");
    let key_id = issued["id"].as_str().expect("id").to_owned();

    let text = ok(&gateway, &["key", "create", &tenant_id]).await;
    assert!(text.contains("(default)"), "{text}");
    assert!(text.contains("cannot be shown again"), "{text}");
    let printed_key = text
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with("yy_"))
        .expect("the key is printed");
    assert_eq!(printed_key.len(), 43);

    ok(&gateway, &["key", "revoke", &tenant_id, &key_id]).await;
    let revoked = json(&ok(&gateway, &["key", "revoke", &tenant_id, &key_id, "--json"]).await);
    assert_eq!(revoked["revoked"], true, "revoking twice succeeds");

    let keys = json(&ok(&gateway, &["key", "list", &tenant_id, "--json"]).await);
    let keys = keys["api_keys"].as_array().expect("array");
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0]["id"], key_id.as_str());
    assert!(keys[0]["revoked_at"].is_string());
    assert!(keys[1]["revoked_at"].is_null());
    let text = ok(&gateway, &["key", "list", &tenant_id]).await;
    assert!(
        !text.contains(key) && !text.contains(printed_key),
        "listings never show keys"
    );
    let row = text
        .lines()
        .find(|l| l.starts_with(&key_id))
        .expect("the revoked key is listed");
    assert!(row.ends_with("backend") && row.contains(&key[..10]), "{text}");

    // Settings from the environment.
    let url = gateway.url();
    let output = yyctl(
        &["tenant", "list", "--json"],
        &[("YY_API_URL", url.as_str()), ("YY_ADMIN_TOKEN", ADMIN_TOKEN)],
    )
    .await;
    assert!(output.status.success());
    assert_eq!(
        json(&String::from_utf8_lossy(&output.stdout))["tenants"],
        listed["tenants"]
    );
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_have_distinct_exit_codes_and_show_the_problem() {
    let gateway = Gateway::start().await;
    let url = gateway.url();
    let stderr = |output: &Output| String::from_utf8_lossy(&output.stderr).into_owned();

    // Refused by the gateway: 1, with the problem's title and detail.
    let output = yyctl(
        &[
            "--url",
            &url,
            "--admin-token",
            "wrong-token-0123456789",
            "tenant",
            "list",
        ],
        &[],
    )
    .await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("401 Missing or invalid credentials: the admin token is not valid"),
        "{}",
        stderr(&output)
    );
    let output = yyctl(
        &[
            "--url",
            &url,
            "--admin-token",
            ADMIN_TOKEN,
            "key",
            "list",
            "ten_missing",
        ],
        &[],
    )
    .await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("404 Not found: no tenant ten_missing"),
        "{}",
        stderr(&output)
    );
    let output = yyctl(
        &["--url", &url, "--admin-token", ADMIN_TOKEN, "tenant", "create", " "],
        &[],
    )
    .await;
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("422"), "{}", stderr(&output));
    assert!(output.stdout.is_empty());

    // Usage errors: 2.
    for args in [
        vec!["--url", url.as_str(), "tenant", "list"],
        vec!["--url", url.as_str(), "--admin-token", ADMIN_TOKEN, "tenant", "remove"],
        vec![
            "--url",
            url.as_str(),
            "--admin-token",
            ADMIN_TOKEN,
            "key",
            "revoke",
            "ten_1",
        ],
        vec!["--url", "not a url", "--admin-token", ADMIN_TOKEN, "tenant", "list"],
    ] {
        let output = yyctl(&args, &[]).await;
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", stderr(&output));
    }

    // Unreachable: 69.
    let nowhere = format!("http://127.0.0.1:{}", yy_testkit::free_port());
    let output = yyctl(
        &["--url", &nowhere, "--admin-token", ADMIN_TOKEN, "tenant", "list"],
        &[],
    )
    .await;
    assert_eq!(output.status.code(), Some(69));
    assert!(
        stderr(&output).contains("cannot reach the gateway"),
        "{}",
        stderr(&output)
    );
    gateway.stop().await;
}
