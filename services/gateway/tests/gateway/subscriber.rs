//! The example subscriber (`examples/subscriber`, Python, written from `docs/asyncapi.yaml` and
//! the `.proto` files alone) against a real cluster: conversation events produced through the
//! REST API come out of its durable consumers exactly once, and a restart resumes where it
//! stopped.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::Cluster;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn run(command: &mut Command, what: &str) {
    let output = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The Python of `.yy/tools/venv` with the subscriber's pinned requirements, installed the way
/// `scripts/check-deploy.sh` installs its tools: the venv is made once, and the requirements
/// are installed again only when they changed (a stamp file records them).
fn python_with_requirements() -> PathBuf {
    let root = workspace();
    let venv = root.join(".yy/tools/venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        run(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            "python3 -m venv .yy/tools/venv (on Debian: apt-get install python3-venv)",
        );
    }
    let requirements = root.join("examples/subscriber/requirements.txt");
    let wanted = std::fs::read_to_string(&requirements).expect("examples/subscriber/requirements.txt");
    let stamp = venv.join(".subscriber-requirements");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        run(
            Command::new(&python)
                .args(["-m", "pip", "install", "--disable-pip-version-check", "-q", "-r"])
                .arg(&requirements),
            "installing the subscriber's requirements",
        );
        std::fs::write(&stamp, &wanted).expect("write the requirements stamp");
    }
    python
}

/// Runs the subscriber until it has been idle for two seconds; returns the events it printed.
async fn subscribe(python: &Path, nats_url: &str, tenant: &str, durable: &str) -> Vec<Value> {
    let script = workspace().join("examples/subscriber/subscriber.py");
    let mut command = tokio::process::Command::new(python);
    command
        .arg(script)
        .args(["--nats-url", nats_url, "--tenant", tenant, "--durable", durable])
        // The test cluster's log has 4 partitions (see support.rs).
        .args(["--partitions", "4", "--exit-when-idle", "2"])
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .expect("the subscriber stops once idle")
        .expect("run the subscriber");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the subscriber failed:\n{stderr}");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}\n{stderr}")))
        .collect()
}

/// What identifies an event in these checks: its type, aggregate and, for a message, the text.
fn summary(event: &Value) -> (String, String, String) {
    (
        event["type"].as_str().unwrap_or("<unknown>").to_owned(),
        event["aggregate_id"].as_str().unwrap_or_default().to_owned(),
        event["data"]["text"].as_str().unwrap_or_default().to_owned(),
    )
}

async fn post(cluster: &Cluster, key: &str, path: &str, body: Value) -> Value {
    let response = cluster
        .http
        .post(cluster.url(path))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::CREATED, "{path}");
    response.json().await.expect("JSON")
}

#[tokio::test]
async fn the_example_subscriber_reads_exactly_its_tenants_events_and_resumes_after_a_restart() {
    let python = tokio::task::spawn_blocking(python_with_requirements)
        .await
        .expect("install");
    let cluster = Cluster::start().await;
    let acme = cluster.create_tenant("Acme").await;
    let globex = cluster.create_tenant("Globex").await;

    let say = |key: String, conversation: String, text: &'static str| {
        let cluster = &cluster;
        async move {
            post(
                cluster,
                &key,
                &format!("/v1/conversations/{conversation}/messages"),
                json!({"role": "customer", "text": text}),
            )
            .await;
        }
    };
    let contact = post(
        &cluster,
        &acme.key,
        "/v1/contacts",
        json!({"identity": {"channel": "web", "external_id": "visitor-sub"}}),
    )
    .await;
    let contact_id = contact["id"].as_str().expect("contact id").to_owned();
    let conversation = post(
        &cluster,
        &acme.key,
        "/v1/conversations",
        json!({"contact_id": contact_id, "channel": "web"}),
    )
    .await;
    let conversation_id = conversation["id"].as_str().expect("conversation id").to_owned();
    for text in ["你好", "where is my order?", "thanks"] {
        say(acme.key.clone(), conversation_id.clone(), text).await;
    }
    // Another tenant's events go to the same streams and must not reach Acme's subscriber.
    let other = post(
        &cluster,
        &globex.key,
        "/v1/contacts",
        json!({"identity": {"channel": "web", "external_id": "visitor-globex"}}),
    )
    .await;
    let other_conversation = post(
        &cluster,
        &globex.key,
        "/v1/conversations",
        json!({"contact_id": other["id"], "channel": "web"}),
    )
    .await;
    say(
        globex.key.clone(),
        other_conversation["id"].as_str().expect("id").to_owned(),
        "not for Acme",
    )
    .await;

    let nats_url = cluster.nats.url();
    let first = subscribe(&python, &nats_url, &acme.id, "crm-sync").await;
    let message = |text: &str| ("message_posted".to_owned(), conversation_id.clone(), text.to_owned());
    let mut expected = vec![
        ("contact_created".to_owned(), contact_id.clone(), String::new()),
        ("conversation_opened".to_owned(), conversation_id.clone(), String::new()),
        message("你好"),
        message("where is my order?"),
        message("thanks"),
    ];
    let mut got: Vec<_> = first.iter().map(summary).collect();
    got.sort();
    expected.sort();
    assert_eq!(got, expected, "{first:#?}");
    assert!(first.iter().all(|e| e["tenant_id"] == acme.id.as_str()), "{first:#?}");
    let ids: BTreeSet<&str> = first.iter().filter_map(|e| e["event_id"].as_str()).collect();
    assert_eq!(ids.len(), first.len(), "event ids are unique");
    // One conversation's events come in log order.
    let texts: Vec<&str> = first
        .iter()
        .filter(|e| e["type"] == "message_posted")
        .filter_map(|e| e["data"]["text"].as_str())
        .collect();
    assert_eq!(texts, ["你好", "where is my order?", "thanks"]);

    // Restarted, the durable consumers resume after what was acknowledged: only new events.
    say(acme.key.clone(), conversation_id.clone(), "one more thing").await;
    let second = subscribe(&python, &nats_url, &acme.id, "crm-sync").await;
    let got: Vec<_> = second.iter().map(summary).collect();
    assert_eq!(got, [message("one more thing")], "{second:#?}");
    // Nothing is left, so a third run prints nothing.
    assert!(subscribe(&python, &nats_url, &acme.id, "crm-sync").await.is_empty());
    // A consumer of another name starts from the beginning of the log.
    assert_eq!(subscribe(&python, &nats_url, &acme.id, "audit-copy").await.len(), 6);
    cluster.stop().await;
}
