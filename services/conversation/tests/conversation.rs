//! The conversation API over gRPC, against a real nats-server.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use yy_conversation::ConversationConfig;
use yy_eventlog::{LogConfig, NatsConfig};
use yy_proto::conversation::v1::conversation_service_client::ConversationServiceClient;
use yy_proto::conversation::v1::*;
use yy_runtime::{Listeners, RunError, ServiceConfig};
use yy_testkit::{NatsServer, RunningService, spawn_service};

struct Service {
    running: RunningService<RunError>,
}

async fn start(nats: &NatsServer) -> Service {
    start_with_window(nats, LogConfig::default().duplicate_window_secs).await
}

/// Starts the service with the server's deduplication of retried commands limited to
/// `duplicate_window_secs`.
async fn start_with_window(nats: &NatsServer, duplicate_window_secs: u64) -> Service {
    let config: ServiceConfig<ConversationConfig> = ServiceConfig {
        nats: NatsConfig {
            url: nats.url(),
            monitor_url: Some(nats.monitor_url()),
            ..NatsConfig::default()
        },
        eventlog: LogConfig {
            partitions: 4,
            duplicate_window_secs,
            ..LogConfig::default()
        },
        ..ServiceConfig::default()
    };
    let running = spawn_service(move |http, grpc, shutdown: CancellationToken| {
        yy_conversation::run(config, Listeners { http, grpc }, shutdown)
    })
    .await;
    let ready = format!("http://{}/readyz", running.http);
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::get(&ready).await.map(|r| r.status().as_u16()).ok() != Some(200) {
        assert!(Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Service { running }
}

impl Service {
    async fn client(&self) -> ConversationServiceClient<Channel> {
        ConversationServiceClient::connect(format!("http://{}", self.running.grpc))
            .await
            .expect("connect")
    }
}

fn as_tenant<T>(tenant: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("x-yy-tenant", tenant.parse().expect("metadata"));
    request
}

fn identity(channel: &str, id: &str) -> Option<ChannelIdentity> {
    Some(ChannelIdentity {
        channel: channel.into(),
        external_id: id.into(),
    })
}

async fn contact(client: &mut ConversationServiceClient<Channel>, tenant: &str, channel: &str, id: &str) -> Contact {
    client
        .upsert_contact(as_tenant(
            tenant,
            UpsertContactRequest {
                identity: identity(channel, id),
                ..Default::default()
            },
        ))
        .await
        .expect("upsert")
        .into_inner()
        .contact
        .expect("contact")
}

async fn open(
    client: &mut ConversationServiceClient<Channel>,
    tenant: &str,
    contact_id: &str,
    channel: &str,
) -> Conversation {
    client
        .open_conversation(as_tenant(
            tenant,
            OpenConversationRequest {
                contact_id: contact_id.into(),
                channel: channel.into(),
                ..Default::default()
            },
        ))
        .await
        .expect("open")
        .into_inner()
}

async fn post(
    client: &mut ConversationServiceClient<Channel>,
    tenant: &str,
    conversation_id: &str,
    text: &str,
) -> Message {
    client
        .post_message(as_tenant(
            tenant,
            PostMessageRequest {
                conversation_id: conversation_id.into(),
                role: "customer".into(),
                text: text.into(),
                ..Default::default()
            },
        ))
        .await
        .expect("post")
        .into_inner()
}

async fn history(client: &mut ConversationServiceClient<Channel>, tenant: &str, conversation_id: &str) -> Vec<Message> {
    let mut all = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_messages(as_tenant(
                tenant,
                ListMessagesRequest {
                    conversation_id: conversation_id.into(),
                    page_size: 7,
                    page_token,
                },
            ))
            .await
            .expect("list")
            .into_inner();
        all.extend(page.messages);
        if page.next_page_token.is_empty() {
            return all;
        }
        page_token = page.next_page_token;
    }
}

fn error_kind(status: &tonic::Status) -> &str {
    status
        .metadata()
        .get("yy-error")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[tokio::test]
async fn a_conversation_lives_its_lifecycle_and_reads_its_writes() {
    let nats = NatsServer::start();
    let service = start(&nats).await;
    let mut client = service.client().await;
    let ann = contact(&mut client, "t1", "web", "visitor-1").await;
    let again = client
        .upsert_contact(as_tenant(
            "t1",
            UpsertContactRequest {
                identity: identity("web", "visitor-1"),
                name: "Ann".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("upsert")
        .into_inner();
    assert!(!again.created);
    assert_eq!(
        again.contact.as_ref().map(|c| (c.id.as_str(), c.name.as_str())),
        Some((ann.id.as_str(), "Ann"))
    );

    let conversation = open(&mut client, "t1", &ann.id, "web").await;
    assert_eq!(conversation.status, ConversationStatus::Bot as i32);
    for i in 0..20 {
        let message = post(&mut client, "t1", &conversation.id, &format!("m{i}")).await;
        assert_eq!(message.position, i + 1);
    }
    let texts: Vec<String> = history(&mut client, "t1", &conversation.id)
        .await
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(texts, (0..20).map(|i| format!("m{i}")).collect::<Vec<_>>());

    // Rating before resolution is refused with a precise kind.
    let early = client
        .submit_csat(as_tenant(
            "t1",
            SubmitCsatRequest {
                conversation_id: conversation.id.clone(),
                score: 5,
                ..Default::default()
            },
        ))
        .await
        .expect_err("not resolved");
    assert_eq!(early.code(), tonic::Code::FailedPrecondition);
    assert_eq!(error_kind(&early), "invalid-state");

    let resolved = client
        .resolve_conversation(as_tenant(
            "t1",
            ConversationCommand {
                conversation_id: conversation.id.clone(),
                ..Default::default()
            },
        ))
        .await
        .expect("resolve")
        .into_inner();
    assert_eq!(resolved.status, ConversationStatus::Resolved as i32);
    let rated = client
        .submit_csat(as_tenant(
            "t1",
            SubmitCsatRequest {
                conversation_id: conversation.id.clone(),
                score: 4,
                comment: "快".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("rate")
        .into_inner();
    assert_eq!(rated.csat.map(|c| (c.score, c.comment)), Some((4, "快".to_owned())));

    // Oversized text names its kind.
    let big = client
        .post_message(as_tenant(
            "t1",
            PostMessageRequest {
                conversation_id: conversation.id.clone(),
                role: "customer".into(),
                text: "x".repeat(16 * 1024 + 1),
                ..Default::default()
            },
        ))
        .await
        .expect_err("too large");
    assert_eq!(
        (big.code(), error_kind(&big)),
        (tonic::Code::InvalidArgument, "message-too-large")
    );
}

#[tokio::test]
async fn fifty_concurrent_posts_are_stored_once_each_in_one_order() {
    let nats = NatsServer::start();
    let service = start(&nats).await;
    let mut client = service.client().await;
    let ann = contact(&mut client, "t1", "web", "v").await;
    let conversation = open(&mut client, "t1", &ann.id, "web").await;
    let posts = (0..50).map(|i| {
        let mut client = client.clone();
        let id = conversation.id.clone();
        tokio::spawn(async move { post(&mut client, "t1", &id, &format!("c{i}")).await })
    });
    let mut positions = Vec::new();
    for handle in posts {
        positions.push(handle.await.expect("task").position);
    }
    positions.sort_unstable();
    assert_eq!(positions, (1..=50).collect::<Vec<_>>());
    let stored = history(&mut client, "t1", &conversation.id).await;
    assert_eq!(stored.len(), 50);
    assert_eq!(stored.iter().map(|m| m.text.clone()).collect::<HashSet<_>>().len(), 50);
    assert!(stored.windows(2).all(|w| w[0].position + 1 == w[1].position));
}

#[tokio::test]
async fn a_retried_command_is_carried_out_once() {
    let nats = NatsServer::start();
    let service = start(&nats).await;
    let mut client = service.client().await;
    let ann = contact(&mut client, "t1", "web", "v").await;
    let request = || {
        as_tenant(
            "t1",
            OpenConversationRequest {
                command_id: "open-1".into(),
                contact_id: ann.id.clone(),
                channel: "web".into(),
                ..Default::default()
            },
        )
    };
    let first = client.open_conversation(request()).await.expect("open").into_inner();
    let retry = client.open_conversation(request()).await.expect("retry").into_inner();
    assert_eq!(first.id, retry.id);
    let post_once = || {
        as_tenant(
            "t1",
            PostMessageRequest {
                command_id: "post-1".into(),
                conversation_id: first.id.clone(),
                role: "customer".into(),
                text: "hello".into(),
                ..Default::default()
            },
        )
    };
    let a = client.post_message(post_once()).await.expect("post").into_inner();
    let b = client.post_message(post_once()).await.expect("retry").into_inner();
    assert_eq!(a, b);
    assert_eq!(history(&mut client, "t1", &first.id).await.len(), 1);
    let all = client
        .list_conversations(as_tenant("t1", ListConversationsRequest::default()))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(all.conversations.len(), 1);
}

#[tokio::test]
async fn one_customer_on_two_channels_has_one_history() {
    let nats = NatsServer::start();
    let service = start(&nats).await;
    let mut client = service.client().await;
    let web = contact(&mut client, "t1", "web", "visitor-9").await;
    let first = open(&mut client, "t1", &web.id, "web").await;
    // The same customer wrote on WhatsApp before anyone knew: a second contact...
    let whatsapp = contact(&mut client, "t1", "whatsapp", "+8613800000000").await;
    let second = open(&mut client, "t1", &whatsapp.id, "whatsapp").await;
    // ...merged into the first: one contact with both identities and both conversations.
    let merged = client
        .merge_contacts(as_tenant(
            "t1",
            MergeContactsRequest {
                target_contact_id: web.id.clone(),
                source_contact_id: whatsapp.id.clone(),
                ..Default::default()
            },
        ))
        .await
        .expect("merge")
        .into_inner();
    assert_eq!(merged.identities.len(), 2);
    assert_eq!(merged.merged_contact_ids, vec![whatsapp.id.clone()]);
    let listed = client
        .list_contact_conversations(as_tenant(
            "t1",
            ListContactConversationsRequest {
                contact_id: web.id.clone(),
                ..Default::default()
            },
        ))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(
        listed.conversations.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
        vec![second.id.clone(), first.id.clone()]
    );
    // The WhatsApp identity now finds the merged contact, and so does its old id.
    assert_eq!(
        contact(&mut client, "t1", "whatsapp", "+8613800000000").await.id,
        web.id
    );
    let old = client
        .get_contact(as_tenant(
            "t1",
            GetContactRequest {
                contact_id: whatsapp.id.clone(),
            },
        ))
        .await
        .expect("get")
        .into_inner();
    assert_eq!(old.id, web.id);

    // Linking a third identity; linking one that belongs to someone else is refused.
    let linked = client
        .link_identity(as_tenant(
            "t1",
            LinkIdentityRequest {
                contact_id: web.id.clone(),
                identity: identity("email", "ann@example.com"),
                ..Default::default()
            },
        ))
        .await
        .expect("link")
        .into_inner();
    assert_eq!(linked.identities.len(), 3);
    let other = contact(&mut client, "t1", "sms", "+1555").await;
    let refused = client
        .link_identity(as_tenant(
            "t1",
            LinkIdentityRequest {
                contact_id: other.id.clone(),
                identity: identity("email", "ann@example.com"),
                ..Default::default()
            },
        ))
        .await
        .expect_err("taken");
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
}

#[tokio::test]
async fn another_tenants_ids_are_not_found() {
    let nats = NatsServer::start();
    let service = start(&nats).await;
    let mut client = service.client().await;
    let ann = contact(&mut client, "tenant-a", "web", "v").await;
    let conversation = open(&mut client, "tenant-a", &ann.id, "web").await;
    let get = client
        .get_conversation(as_tenant(
            "tenant-b",
            GetConversationRequest {
                conversation_id: conversation.id.clone(),
            },
        ))
        .await
        .expect_err("hidden");
    assert_eq!(get.code(), tonic::Code::NotFound);
    let posted = client
        .post_message(as_tenant(
            "tenant-b",
            PostMessageRequest {
                conversation_id: conversation.id.clone(),
                role: "customer".into(),
                text: "intrusion".into(),
                ..Default::default()
            },
        ))
        .await
        .expect_err("hidden");
    assert_eq!(posted.code(), tonic::Code::NotFound);
    let opened = client
        .open_conversation(as_tenant(
            "tenant-b",
            OpenConversationRequest {
                contact_id: ann.id.clone(),
                channel: "web".into(),
                ..Default::default()
            },
        ))
        .await
        .expect_err("hidden");
    assert_eq!(opened.code(), tonic::Code::NotFound);
    let listed = client
        .list_conversations(as_tenant("tenant-b", ListConversationsRequest::default()))
        .await
        .expect("list")
        .into_inner();
    assert!(listed.conversations.is_empty());
    assert!(history(&mut client, "tenant-a", &conversation.id).await.is_empty());
    let missing_tenant = client
        .get_conversation(tonic::Request::new(GetConversationRequest {
            conversation_id: conversation.id,
        }))
        .await
        .expect_err("no tenant");
    assert_eq!(missing_tenant.code(), tonic::Code::Unauthenticated);
}

#[tokio::test]
async fn lists_filter_and_page_and_survive_a_restart() {
    let nats = NatsServer::start();
    let service = start(&nats).await;
    let mut client = service.client().await;
    let ann = contact(&mut client, "t1", "web", "v").await;
    let mut ids = Vec::new();
    for i in 0..25 {
        let channel = if i % 5 == 0 { "email" } else { "web" };
        let conversation = open(&mut client, "t1", &ann.id, channel).await;
        post(&mut client, "t1", &conversation.id, "hi").await;
        ids.push(conversation.id);
    }
    let page = |page_token: String, channel: &str| {
        as_tenant(
            "t1",
            ListConversationsRequest {
                channel: channel.into(),
                page_size: 10,
                page_token,
                ..Default::default()
            },
        )
    };
    let mut listed = Vec::new();
    let mut token = String::new();
    loop {
        let response = client
            .list_conversations(page(token, ""))
            .await
            .expect("list")
            .into_inner();
        listed.extend(response.conversations.into_iter().map(|c| c.id));
        if response.next_page_token.is_empty() {
            break;
        }
        token = response.next_page_token;
    }
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(listed, newest_first);
    let email = client
        .list_conversations(page(String::new(), "email"))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(email.conversations.len(), 5);
    let oversized = client
        .list_conversations(as_tenant(
            "t1",
            ListConversationsRequest {
                page_size: 1000,
                ..Default::default()
            },
        ))
        .await
        .expect_err("page too large");
    assert_eq!(oversized.code(), tonic::Code::InvalidArgument);

    let before = client
        .list_conversations(page(String::new(), ""))
        .await
        .expect("list")
        .into_inner();
    let before_history = history(&mut client, "t1", &ids[3]).await;
    service.running.stop().await.expect("stop");
    let service = start(&nats).await;
    let mut client = service.client().await;
    let after = client
        .list_conversations(page(String::new(), ""))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(before, after);
    assert_eq!(before_history, history(&mut client, "t1", &ids[3]).await);
}

#[tokio::test]
async fn a_post_retried_after_many_other_commands_is_still_stored_once() {
    let nats = NatsServer::start();
    // The server's own deduplication would hide the service's: keep its window short and let it pass.
    let service = start_with_window(&nats, 1).await;
    let mut client = service.client().await;
    let ann = contact(&mut client, "t1", "web", "v").await;
    let conversation = open(&mut client, "t1", &ann.id, "web").await;
    let post_once = || {
        as_tenant(
            "t1",
            PostMessageRequest {
                command_id: "client-retry-1".into(),
                conversation_id: conversation.id.clone(),
                role: "customer".into(),
                text: "first".into(),
                ..Default::default()
            },
        )
    };
    let first = client.post_message(post_once()).await.expect("post").into_inner();
    // More commands than the aggregate remembers, between the attempt and its retry.
    for i in 0..20 {
        post(&mut client, "t1", &conversation.id, &format!("other {i}")).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let retry = client.post_message(post_once()).await.expect("retry").into_inner();
    assert_eq!(retry, first);
    assert_eq!(history(&mut client, "t1", &conversation.id).await.len(), 21);
}
