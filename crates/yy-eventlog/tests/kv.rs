//! Key-value buckets against a real nats-server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use yy_eventlog::{EventLog, KvError, KvSpec, LogConfig, LogError, NatsConfig};
use yy_testkit::NatsServer;

async fn open(server: &NatsServer) -> EventLog {
    let nats = NatsConfig {
        url: server.url(),
        monitor_url: Some(server.monitor_url()),
        ..NatsConfig::default()
    };
    EventLog::connect(&nats, LogConfig::default(), "kv-test")
        .await
        .expect("connect")
}

fn spec(bucket: &str, ttl: Duration) -> KvSpec {
    KvSpec {
        bucket: bucket.into(),
        description: "test bucket".into(),
        ttl,
    }
}

#[tokio::test]
async fn create_get_update_delete_with_revisions() {
    let server = NatsServer::start();
    let log = open(&server).await;
    let bucket = log
        .kv_bucket(&spec("KV_BASICS", Duration::from_secs(3600)))
        .await
        .expect("bucket");
    assert_eq!(bucket.name(), "KV_BASICS");

    assert_eq!(bucket.get("t_a.k1").await.expect("get"), None);
    let first = bucket
        .create("t_a.k1", Bytes::from_static(b"one"))
        .await
        .expect("create");
    let entry = bucket.get("t_a.k1").await.expect("get").expect("present");
    assert_eq!(entry.value, Bytes::from_static(b"one"));
    assert_eq!(entry.revision, first);

    // Present: a second create is refused and the value is untouched.
    assert!(matches!(
        bucket.create("t_a.k1", Bytes::from_static(b"other")).await,
        Err(KvError::Conflict { key }) if key == "t_a.k1"
    ));

    let second = bucket
        .update("t_a.k1", Bytes::from_static(b"two"), first)
        .await
        .expect("update at the current revision");
    assert!(second > first);
    // A stale revision is refused.
    assert!(matches!(
        bucket.update("t_a.k1", Bytes::from_static(b"stale"), first).await,
        Err(KvError::Conflict { .. })
    ));
    assert_eq!(
        bucket.get("t_a.k1").await.expect("get").expect("present").value,
        Bytes::from_static(b"two")
    );

    // Deleting at a stale revision is refused; at the current one it succeeds.
    assert!(matches!(
        bucket.delete("t_a.k1", Some(first)).await,
        Err(KvError::Conflict { .. })
    ));
    bucket.delete("t_a.k1", Some(second)).await.expect("delete");
    assert_eq!(bucket.get("t_a.k1").await.expect("get"), None);
    // Updating a deleted entry at its old revision is refused.
    assert!(matches!(
        bucket.update("t_a.k1", Bytes::from_static(b"late"), second).await,
        Err(KvError::Conflict { .. })
    ));

    // A deleted key can be created again.
    let again = bucket
        .create("t_a.k1", Bytes::from_static(b"three"))
        .await
        .expect("re-create");
    assert!(again > second);
    // Deleting without a revision always succeeds, also for absent keys.
    bucket.delete("t_a.k1", None).await.expect("delete");
    bucket.delete("t_a.never", None).await.expect("delete absent");
}

#[tokio::test]
async fn invalid_keys_and_bucket_names_are_refused() {
    let server = NatsServer::start();
    let log = open(&server).await;
    let bucket = log.kv_bucket(&spec("KV_KEYS", Duration::ZERO)).await.expect("bucket");
    for key in ["", "a b", "a.*", "a.>", ".a", "a..b"] {
        assert!(
            matches!(bucket.get(key).await, Err(KvError::InvalidKey(_))),
            "get {key:?}"
        );
        assert!(
            matches!(bucket.create(key, Bytes::new()).await, Err(KvError::InvalidKey(_))),
            "create {key:?}"
        );
    }
    for name in ["", "has.dot", "has space", &"n".repeat(65)] {
        assert!(
            matches!(
                log.kv_bucket(&spec(name, Duration::ZERO)).await,
                Err(LogError::Config(_))
            ),
            "bucket {name:?}"
        );
    }
}

#[tokio::test]
async fn of_concurrent_creators_exactly_one_wins() {
    let server = NatsServer::start();
    let log = open(&server).await;
    let bucket = Arc::new(
        log.kv_bucket(&spec("KV_RACE", Duration::from_secs(3600)))
            .await
            .expect("bucket"),
    );
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let bucket = bucket.clone();
            tokio::spawn(async move { bucket.create("claim", Bytes::from(format!("{i}"))).await })
        })
        .collect();
    let mut winners = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        match task.await.expect("join") {
            Ok(revision) => winners.push((i, revision)),
            Err(KvError::Conflict { .. }) => {}
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let (winner, revision) = winners[0];
    let entry = bucket.get("claim").await.expect("get").expect("present");
    assert_eq!(entry.revision, revision);
    assert_eq!(entry.value, Bytes::from(format!("{winner}")));
}

#[tokio::test]
async fn entries_expire_after_the_ttl() {
    let server = NatsServer::start();
    let log = open(&server).await;
    let bucket = log
        .kv_bucket(&spec("KV_TTL", Duration::from_secs(1)))
        .await
        .expect("bucket");
    bucket.create("short", Bytes::from_static(b"v")).await.expect("create");
    assert!(bucket.get("short").await.expect("get").is_some());
    let deadline = Instant::now() + Duration::from_secs(10);
    while bucket.get("short").await.expect("get").is_some() {
        assert!(Instant::now() < deadline, "the entry never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // An expired key counts as absent.
    bucket
        .create("short", Bytes::from_static(b"again"))
        .await
        .expect("create after expiry");

    // Reopening with a longer TTL changes the bucket in place and keeps its entries.
    let longer = log
        .kv_bucket(&spec("KV_TTL", Duration::from_secs(3600)))
        .await
        .expect("reopen");
    assert_eq!(
        longer.get("short").await.expect("get").expect("kept").value,
        Bytes::from_static(b"again")
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(longer.get("short").await.expect("get").is_some(), "the new TTL applies");
}

#[tokio::test]
async fn entries_survive_a_server_crash() {
    let mut server = NatsServer::start();
    let log = open(&server).await;
    let bucket = log
        .kv_bucket(&spec("KV_DURABLE", Duration::from_secs(86_400)))
        .await
        .expect("bucket");
    let revision = bucket
        .create("t_a.record", Bytes::from_static(b"kept"))
        .await
        .expect("create");

    server.restart();
    let log = open(&server).await;
    let bucket = log
        .kv_bucket(&spec("KV_DURABLE", Duration::from_secs(86_400)))
        .await
        .expect("reopen");
    let deadline = Instant::now() + Duration::from_secs(10);
    let entry = loop {
        match bucket.get("t_a.record").await {
            Ok(entry) => break entry,
            // The stream may still be recovering right after the restart.
            Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(error) => panic!("read after restart: {error}"),
        }
    };
    let entry = entry.expect("the entry survived");
    assert_eq!(entry.value, Bytes::from_static(b"kept"));
    assert_eq!(entry.revision, revision);
}
