//! Restarts of the conversation service and the gateway lose nothing that was acknowledged.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::grpc::tenant_key;
use crate::support::Cluster;

async fn post_json(cluster: &Cluster, key: &str, path: &str, body: Value) -> Value {
    let response = cluster
        .http
        .post(cluster.url(path))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .expect("request");
    assert!(response.status().is_success(), "{path}: {}", response.status());
    response.json().await.expect("json")
}

async fn get_json(cluster: &Cluster, key: &str, path: &str) -> Value {
    let response = cluster
        .http
        .get(cluster.url(path))
        .bearer_auth(key)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.expect("json")
}

/// Every conversation of the tenant and every message of each, as the API shows them.
async fn snapshot(cluster: &Cluster, key: &str) -> Vec<(Value, Vec<Value>)> {
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let page = get_json(
            cluster,
            key,
            &format!("/v1/conversations?page_size=100&page_token={token}"),
        )
        .await;
        for conversation in page["conversations"].as_array().expect("conversations") {
            let id = conversation["id"].as_str().expect("id");
            let mut messages = Vec::new();
            let mut message_token = String::new();
            loop {
                let page = get_json(
                    cluster,
                    key,
                    &format!("/v1/conversations/{id}/messages?page_size=100&page_token={message_token}"),
                )
                .await;
                messages.extend(page["messages"].as_array().expect("messages").iter().cloned());
                match page["next_page_token"].as_str() {
                    Some(next) if !next.is_empty() => message_token = next.to_owned(),
                    _ => break,
                }
            }
            all.push((conversation.clone(), messages));
        }
        match page["next_page_token"].as_str() {
            Some(next) if !next.is_empty() => token = next.to_owned(),
            _ => return all,
        }
    }
}

#[tokio::test]
async fn lists_and_histories_are_identical_across_restarts_and_no_acknowledged_message_is_lost() {
    let mut cluster = Cluster::start().await;
    let key = tenant_key(&cluster, "restarts").await;
    let mut conversations = Vec::new();
    for i in 0..6 {
        let contact = post_json(
            &cluster,
            &key,
            "/v1/contacts",
            json!({"identity": {"channel": "web", "external_id": format!("visitor-{i}")}}),
        )
        .await;
        let conversation = post_json(
            &cluster,
            &key,
            "/v1/conversations",
            json!({"contact_id": contact["id"], "channel": "web", "tags": ["restart"]}),
        )
        .await;
        conversations.push(conversation["id"].as_str().expect("id").to_owned());
    }

    // Writers keep posting while the services restart; whatever was answered 201 must survive.
    let acknowledged = Arc::new(Mutex::new(BTreeSet::new()));
    let stop = tokio_util::sync::CancellationToken::new();
    let mut writers = Vec::new();
    for (w, conversation) in conversations.iter().enumerate() {
        let (http, key, acknowledged, stop) = (cluster.http.clone(), key.clone(), acknowledged.clone(), stop.clone());
        let conversation = conversation.clone();
        let base = cluster.url("");
        writers.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.is_cancelled() {
                let text = format!("w{w}-{i}");
                let url = format!("{base}/v1/conversations/{conversation}/messages");
                // The gateway's address changes when it restarts; a refused connection is not an
                // acknowledgement and simply is not counted.
                if let Ok(response) = http
                    .post(&url)
                    .bearer_auth(&key)
                    .json(&json!({"role": "customer", "text": text}))
                    .send()
                    .await
                    && response.status() == 201
                {
                    acknowledged.lock().expect("lock").insert(text);
                }
                i += 1;
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    cluster.start_conversation().await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    stop.cancel();
    for writer in writers {
        writer.await.expect("writer");
    }

    let before = snapshot(&cluster, &key).await;
    let stored: BTreeSet<String> = before
        .iter()
        .flat_map(|(_, messages)| messages.iter().map(|m| m["text"].as_str().expect("text").to_owned()))
        .collect();
    let acknowledged = acknowledged.lock().expect("lock").clone();
    assert!(
        acknowledged.len() > 20,
        "too little traffic to mean anything: {}",
        acknowledged.len()
    );
    let missing: Vec<_> = acknowledged.difference(&stored).collect();
    assert!(missing.is_empty(), "acknowledged but missing: {missing:?}");

    cluster.start_conversation().await;
    assert_eq!(snapshot(&cluster, &key).await, before);
    cluster.start_gateway().await;
    assert_eq!(snapshot(&cluster, &key).await, before);
    cluster.stop().await;
}
