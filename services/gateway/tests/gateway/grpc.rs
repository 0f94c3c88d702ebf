//! The public gRPC API at the gateway: authentication, and a tenant isolation matrix over every
//! method of `yy.conversation.v1.ConversationService`.

use tonic::transport::Channel;
use yy_proto::conversation::v1::conversation_service_client::ConversationServiceClient;
use yy_proto::conversation::v1::*;

use crate::support::{ADMIN_TOKEN, Cluster};

/// Creates a tenant and an API key through the admin API; returns the key.
pub async fn tenant_key(cluster: &Cluster, name: &str) -> String {
    cluster.create_tenant(name).await.key
}

fn authed<T>(key: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {key}").parse().expect("metadata"));
    request
}

async fn client(cluster: &Cluster) -> ConversationServiceClient<Channel> {
    ConversationServiceClient::connect(cluster.grpc_url())
        .await
        .expect("connect")
}

/// Tenant A's data: a contact with a conversation that has a message.
struct Seeded {
    contact: Contact,
    conversation: Conversation,
}

async fn seed(client: &mut ConversationServiceClient<Channel>, key: &str) -> Seeded {
    let contact = client
        .upsert_contact(authed(
            key,
            UpsertContactRequest {
                identity: Some(ChannelIdentity {
                    channel: "web".into(),
                    external_id: "visitor-a".into(),
                }),
                ..Default::default()
            },
        ))
        .await
        .expect("upsert")
        .into_inner()
        .contact
        .expect("contact");
    let conversation = client
        .open_conversation(authed(
            key,
            OpenConversationRequest {
                contact_id: contact.id.clone(),
                channel: "web".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("open")
        .into_inner();
    client
        .post_message(authed(
            key,
            PostMessageRequest {
                conversation_id: conversation.id.clone(),
                role: "customer".into(),
                text: "secret of tenant A".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("post");
    Seeded { contact, conversation }
}

#[tokio::test]
async fn the_grpc_api_requires_a_valid_api_key_and_ignores_a_forged_tenant() {
    let cluster = Cluster::start().await;
    let key_a = tenant_key(&cluster, "A").await;
    let mut client = client(&cluster).await;
    let seeded = seed(&mut client, &key_a).await;
    let get = || GetConversationRequest {
        conversation_id: seeded.conversation.id.clone(),
    };
    let missing = client
        .get_conversation(tonic::Request::new(get()))
        .await
        .expect_err("no key");
    assert_eq!(missing.code(), tonic::Code::Unauthenticated);
    let wrong = client
        .get_conversation(authed("yy_not-a-key", get()))
        .await
        .expect_err("bad key");
    assert_eq!(wrong.code(), tonic::Code::Unauthenticated);
    // Naming tenant A in the metadata does not make tenant B tenant A.
    let key_b = tenant_key(&cluster, "B").await;
    let mut forged = authed(&key_b, get());
    let tenant_a = client
        .get_conversation(authed(&key_a, get()))
        .await
        .expect("own conversation")
        .into_inner();
    assert_eq!(tenant_a.id, seeded.conversation.id);
    let a_tenant_id = {
        let tenants: serde_json::Value = cluster
            .http
            .get(cluster.url("/admin/v1/tenants"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        tenants["tenants"]
            .as_array()
            .expect("tenants")
            .iter()
            .find(|t| t["name"] == "A")
            .and_then(|t| t["id"].as_str())
            .expect("A")
            .to_owned()
    };
    forged
        .metadata_mut()
        .insert("x-yy-tenant", a_tenant_id.parse().expect("metadata"));
    let refused = client.get_conversation(forged).await.expect_err("forged tenant");
    assert_eq!(refused.code(), tonic::Code::NotFound);
    cluster.stop().await;
}

#[tokio::test]
async fn tenant_b_reads_and_writes_nothing_of_tenant_a_over_grpc() {
    let cluster = Cluster::start().await;
    let key_a = tenant_key(&cluster, "A").await;
    let key_b = tenant_key(&cluster, "B").await;
    let mut client = client(&cluster).await;
    let seeded = seed(&mut client, &key_a).await;
    let conv = seeded.conversation.id.clone();
    let ctc = seeded.contact.id.clone();
    let before = (
        client
            .get_conversation(authed(
                &key_a,
                GetConversationRequest {
                    conversation_id: conv.clone(),
                },
            ))
            .await
            .expect("get")
            .into_inner(),
        client
            .get_contact(authed(
                &key_a,
                GetContactRequest {
                    contact_id: ctc.clone(),
                },
            ))
            .await
            .expect("get")
            .into_inner(),
    );
    // B's own contact, for the calls that take two contacts.
    let own = client
        .upsert_contact(authed(
            &key_b,
            UpsertContactRequest {
                identity: Some(ChannelIdentity {
                    channel: "web".into(),
                    external_id: "visitor-b".into(),
                }),
                ..Default::default()
            },
        ))
        .await
        .expect("upsert")
        .into_inner()
        .contact
        .expect("contact");

    let mut c = client.clone();
    let k = key_b.clone();
    // Every method that names one of A's resources, called with B's key.
    let matrix: Vec<(&str, tonic::Result<()>)> = vec![
        (
            "OpenConversation",
            c.open_conversation(authed(
                &k,
                OpenConversationRequest {
                    contact_id: ctc.clone(),
                    channel: "web".into(),
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
        ),
        (
            "GetConversation",
            c.get_conversation(authed(
                &k,
                GetConversationRequest {
                    conversation_id: conv.clone(),
                },
            ))
            .await
            .map(drop),
        ),
        (
            "UpdateConversation",
            c.update_conversation(authed(
                &k,
                UpdateConversationRequest {
                    conversation_id: conv.clone(),
                    add_tags: vec!["x".into()],
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
        ),
        (
            "ResolveConversation",
            c.resolve_conversation(authed(
                &k,
                ConversationCommand {
                    conversation_id: conv.clone(),
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
        ),
        (
            "ReopenConversation",
            c.reopen_conversation(authed(
                &k,
                ConversationCommand {
                    conversation_id: conv.clone(),
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
        ),
        (
            "PostMessage",
            c.post_message(authed(
                &k,
                PostMessageRequest {
                    conversation_id: conv.clone(),
                    role: "customer".into(),
                    text: "x".into(),
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
        ),
        (
            "ListMessages",
            c.list_messages(authed(
                &k,
                ListMessagesRequest {
                    conversation_id: conv.clone(),
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
        ),
        (
            "SubmitCsat",
            c.submit_csat(authed(
                &k,
                SubmitCsatRequest {
                    conversation_id: conv.clone(),
                    score: 1,
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
        ),
        (
            "GetContact",
            c.get_contact(authed(
                &k,
                GetContactRequest {
                    contact_id: ctc.clone(),
                },
            ))
            .await
            .map(drop),
        ),
        (
            "LinkIdentity",
            c.link_identity(authed(
                &k,
                LinkIdentityRequest {
                    contact_id: ctc.clone(),
                    identity: Some(ChannelIdentity {
                        channel: "sms".into(),
                        external_id: "+1".into(),
                    }),
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
        ),
        (
            "MergeContacts (A's as source)",
            c.merge_contacts(authed(
                &k,
                MergeContactsRequest {
                    target_contact_id: own.id.clone(),
                    source_contact_id: ctc.clone(),
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
        ),
        (
            "MergeContacts (A's as target)",
            c.merge_contacts(authed(
                &k,
                MergeContactsRequest {
                    target_contact_id: ctc.clone(),
                    source_contact_id: own.id.clone(),
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
        ),
        (
            "ListContactConversations",
            c.list_contact_conversations(authed(
                &k,
                ListContactConversationsRequest {
                    contact_id: ctc.clone(),
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
        ),
    ];
    for (method, result) in matrix {
        let status = result.expect_err(method);
        assert_eq!(status.code(), tonic::Code::NotFound, "{method}: {status:?}");
    }
    // Listing shows B nothing of A's; B's upsert of A's identity makes B's own contact.
    let listed = client
        .list_conversations(authed(&key_b, ListConversationsRequest::default()))
        .await
        .expect("list")
        .into_inner();
    assert!(listed.conversations.is_empty());
    let upserted = client
        .upsert_contact(authed(
            &key_b,
            UpsertContactRequest {
                identity: Some(ChannelIdentity {
                    channel: "web".into(),
                    external_id: "visitor-a".into(),
                }),
                ..Default::default()
            },
        ))
        .await
        .expect("upsert")
        .into_inner();
    assert!(upserted.created);
    assert_ne!(upserted.contact.map(|c| c.id), Some(ctc.clone()));

    // A's data is as it was.
    let after = (
        client
            .get_conversation(authed(
                &key_a,
                GetConversationRequest {
                    conversation_id: conv.clone(),
                },
            ))
            .await
            .expect("get")
            .into_inner(),
        client
            .get_contact(authed(
                &key_a,
                GetContactRequest {
                    contact_id: ctc.clone(),
                },
            ))
            .await
            .expect("get")
            .into_inner(),
    );
    assert_eq!(before, after);
    let messages = client
        .list_messages(authed(
            &key_a,
            ListMessagesRequest {
                conversation_id: conv,
                ..Default::default()
            },
        ))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(messages.messages.len(), 1);
    cluster.stop().await;
}
