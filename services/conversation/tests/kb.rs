//! The knowledge-base API over gRPC, against a real nats-server: entries, imports, searches, and
//! the index rebuilt after a restart (from the log alone, and from a snapshot).

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use yy_conversation::ConversationConfig;
use yy_eventlog::{LogConfig, NatsConfig};
use yy_proto::kb::v1::knowledge_service_client::KnowledgeServiceClient;
use yy_proto::kb::v1::*;
use yy_runtime::{Listeners, RunError, ServiceConfig};
use yy_testkit::{NatsServer, RunningService, spawn_service};

const FIXTURE: &str = include_str!("../../../tests/fixtures/kb/entries.json");
const HELDOUT: &str = include_str!("../../../tests/fixtures/kb/heldout.jsonl");

async fn start(nats: &NatsServer) -> RunningService<RunError> {
    let config: ServiceConfig<ConversationConfig> = ServiceConfig {
        nats: NatsConfig {
            url: nats.url(),
            monitor_url: Some(nats.monitor_url()),
            ..NatsConfig::default()
        },
        eventlog: LogConfig {
            partitions: 4,
            ..LogConfig::default()
        },
        ..ServiceConfig::default()
    };
    let running = spawn_service(move |http, grpc, shutdown: CancellationToken| {
        yy_conversation::run(config, Listeners { http, grpc }, shutdown)
    })
    .await;
    let ready = format!("http://{}/readyz", running.http);
    let deadline = Instant::now() + Duration::from_secs(60);
    while reqwest::get(&ready).await.map(|r| r.status().as_u16()).ok() != Some(200) {
        assert!(Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    running
}

async fn client(service: &RunningService<RunError>) -> KnowledgeServiceClient<Channel> {
    KnowledgeServiceClient::connect(format!("http://{}", service.grpc))
        .await
        .expect("connect")
}

fn as_tenant<T>(tenant: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("x-yy-tenant", tenant.parse().expect("metadata"));
    request
}

fn entry(id: &str, title: &str, answer: &str) -> KnowledgeEntry {
    KnowledgeEntry {
        entry_id: id.into(),
        title: title.into(),
        questions: vec![],
        answer: answer.into(),
        format: AnswerFormat::Text as i32,
        tags: vec!["returns".into()],
        locale: "zh-CN".into(),
        enabled: true,
    }
}

fn slug(status: &tonic::Status) -> &str {
    status
        .metadata()
        .get("yy-error")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

async fn upsert(
    client: &mut KnowledgeServiceClient<Channel>,
    tenant: &str,
    entry: KnowledgeEntry,
) -> Result<UpsertEntryResponse, tonic::Status> {
    client
        .upsert_entry(as_tenant(
            tenant,
            UpsertEntryRequest {
                command_id: String::new(),
                entry: Some(entry),
            },
        ))
        .await
        .map(tonic::Response::into_inner)
}

async fn search(client: &mut KnowledgeServiceClient<Channel>, tenant: &str, query: &str) -> Vec<SearchHit> {
    client
        .search(as_tenant(
            tenant,
            SearchRequest {
                query: query.into(),
                limit: 10,
                ..SearchRequest::default()
            },
        ))
        .await
        .expect("search")
        .into_inner()
        .hits
}

async fn import_fixture(client: &mut KnowledgeServiceClient<Channel>, tenant: &str) -> ImportEntriesResponse {
    client
        .import_entries(as_tenant(
            tenant,
            ImportEntriesRequest {
                command_id: "import-1".into(),
                format: ImportFormat::Json as i32,
                document: FIXTURE.into(),
            },
        ))
        .await
        .expect("import")
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_are_created_updated_enabled_and_deleted_with_errors_naming_the_field() {
    let nats = NatsServer::start();
    let service = start(&nats).await;
    let mut kb = client(&service).await;
    let t = "ten_crud";

    let created = upsert(&mut kb, t, entry("returns.zh", "退货政策", "七天无理由退货"))
        .await
        .unwrap();
    assert_eq!(created.outcome, UpsertOutcome::Created as i32);
    assert_eq!(created.entry.as_ref().unwrap().revision, 1);
    let again = upsert(&mut kb, t, entry("returns.zh", "退货政策", "七天无理由退货"))
        .await
        .unwrap();
    assert_eq!(again.outcome, UpsertOutcome::Unchanged as i32);
    let updated = upsert(&mut kb, t, entry("returns.zh", "退货政策", "签收后七天内可以退货"))
        .await
        .unwrap();
    assert_eq!(updated.outcome, UpsertOutcome::Updated as i32);
    assert_eq!(updated.entry.as_ref().unwrap().revision, 2);
    let hits = search(&mut kb, t, "我想退货").await;
    assert_eq!(hits[0].entry_id, "returns.zh");
    assert!(hits[0].highlights.iter().any(|h| h.snippet.contains("<em>")));

    // Validation names the field, and nothing is recorded.
    let mut bad = entry("returns.zh", "退货政策", "x");
    bad.questions = vec!["ok".into(), "  ".into()];
    let error = upsert(&mut kb, t, bad).await.unwrap_err();
    assert_eq!(error.code(), tonic::Code::InvalidArgument);
    assert_eq!(slug(&error), "validation-failed");
    assert!(error.message().starts_with("entry.questions[1]"), "{}", error.message());
    let mut bad = entry("returns.zh", "退货政策", "x");
    bad.locale = "chinese".into();
    let error = upsert(&mut kb, t, bad).await.unwrap_err();
    assert!(error.message().starts_with("entry.locale"), "{}", error.message());
    let error = upsert(&mut kb, t, entry("a b", "t", "a")).await.unwrap_err();
    assert!(error.message().starts_with("entry.id"), "{}", error.message());
    let error = kb
        .upsert_entry(as_tenant(t, UpsertEntryRequest::default()))
        .await
        .unwrap_err();
    assert!(error.message().starts_with("entry:"), "{}", error.message());
    let error = kb
        .search(as_tenant(
            t,
            SearchRequest {
                query: "退货".into(),
                limit: 1000,
                ..SearchRequest::default()
            },
        ))
        .await
        .unwrap_err();
    assert!(error.message().starts_with("limit"), "{}", error.message());
    let error = kb
        .search(tonic::Request::new(SearchRequest {
            query: "退货".into(),
            ..SearchRequest::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::Unauthenticated);
    let stored = kb
        .get_entry(as_tenant(
            t,
            GetEntryRequest {
                entry_id: "returns.zh".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stored.entry.unwrap().answer, "签收后七天内可以退货");

    // Disabled entries are kept but not found.
    let disabled = kb
        .set_entry_enabled(as_tenant(
            t,
            SetEntryEnabledRequest {
                command_id: String::new(),
                entry_id: "returns.zh".into(),
                enabled: false,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!disabled.entry.unwrap().enabled);
    assert!(search(&mut kb, t, "我想退货").await.is_empty());
    kb.set_entry_enabled(as_tenant(
        t,
        SetEntryEnabledRequest {
            command_id: String::new(),
            entry_id: "returns.zh".into(),
            enabled: true,
        },
    ))
    .await
    .unwrap();
    assert_eq!(search(&mut kb, t, "我想退货").await.len(), 1);
    let answer = kb
        .answer(as_tenant(
            t,
            AnswerRequest {
                query: "退货政策".into(),
                ..AnswerRequest::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    match answer.result {
        Some(answer_response::Result::Found(found)) => {
            assert_eq!(found.entry.unwrap().entry_id, "returns.zh");
            assert!(found.confidence >= yy_kb::DEFAULT_THRESHOLD);
        }
        other => panic!("expected an answer, got {other:?}"),
    }
    let fallback = kb
        .answer(as_tenant(
            t,
            AnswerRequest {
                query: "what's the weather like on Mars".into(),
                ..AnswerRequest::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(matches!(fallback.result, Some(answer_response::Result::Fallback(_))));

    // Deleted, retried with the same command id, then created again under the same id.
    let delete = |command_id: &str| {
        as_tenant(
            t,
            DeleteEntryRequest {
                command_id: command_id.into(),
                entry_id: "returns.zh".into(),
            },
        )
    };
    kb.delete_entry(delete("del-1")).await.unwrap();
    kb.delete_entry(delete("del-1"))
        .await
        .expect("a retried delete answers as the first");
    let error = kb.delete_entry(delete("del-2")).await.unwrap_err();
    assert_eq!((error.code(), slug(&error)), (tonic::Code::NotFound, "not-found"));
    let error = kb
        .get_entry(as_tenant(
            t,
            GetEntryRequest {
                entry_id: "returns.zh".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::NotFound);
    assert!(search(&mut kb, t, "我想退货").await.is_empty());
    let recreated = upsert(&mut kb, t, entry("returns.zh", "退货政策", "七天无理由退货"))
        .await
        .unwrap();
    assert_eq!(recreated.outcome, UpsertOutcome::Created as i32);
    assert_eq!(recreated.entry.unwrap().revision, 1);

    // A CSV import is refused whole when one record is bad, naming its line and field.
    let csv = "id,title,answer,locale,questions\n\
               shipping,运费怎么算,满 99 元包邮,zh-CN,包邮吗|运费多少\n\
               invoice,开发票,在订单详情申请开票,chinese,\n";
    let error = kb
        .import_entries(as_tenant(
            t,
            ImportEntriesRequest {
                command_id: String::new(),
                format: ImportFormat::Csv as i32,
                document: csv.into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(slug(&error), "validation-failed");
    assert!(
        error.message().contains("line 3") && error.message().contains("locale"),
        "{}",
        error.message()
    );
    assert!(
        search(&mut kb, t, "运费").await.is_empty(),
        "nothing of a refused import is recorded"
    );
    let counts = kb
        .import_entries(as_tenant(
            t,
            ImportEntriesRequest {
                command_id: String::new(),
                format: ImportFormat::Csv as i32,
                document: csv.replace("chinese", "zh-CN"),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((counts.created, counts.updated, counts.unchanged), (2, 0, 0));
    assert_eq!(search(&mut kb, t, "运费多少").await[0].entry_id, "shipping");

    // Pages by id.
    let mut ids = Vec::new();
    let mut token = String::new();
    loop {
        let page = kb
            .list_entries(as_tenant(
                t,
                ListEntriesRequest {
                    page_size: 2,
                    page_token: token,
                },
            ))
            .await
            .unwrap()
            .into_inner();
        ids.extend(page.entries.into_iter().map(|e| e.entry.unwrap().entry_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(ids, ["invoice", "returns.zh", "shipping"]);
    service.stop().await.unwrap();
}

/// Every search the list makes, with hits compared whole: ids, scores (bit for bit), titles and
/// highlights.
async fn search_all(
    client: &mut KnowledgeServiceClient<Channel>,
    tenant: &str,
    queries: &[String],
) -> Vec<Vec<SearchHit>> {
    let mut all = Vec::new();
    for query in queries {
        all.push(search(client, tenant, query).await);
    }
    all
}

async fn delete_snapshot(nats: &NatsServer) {
    let client = async_nats::connect(nats.url()).await.expect("nats");
    let js = async_nats::jetstream::new(client);
    let bucket = js.get_key_value("YY_SNAPSHOTS").await.expect("snapshot bucket");
    bucket.purge("conversation.kb").await.expect("purge snapshot");
}

async fn snapshot_exists(nats: &NatsServer) -> bool {
    let client = async_nats::connect(nats.url()).await.expect("nats");
    let js = async_nats::jetstream::new(client);
    let bucket = js.get_key_value("YY_SNAPSHOTS").await.expect("snapshot bucket");
    bucket.get("conversation.kb").await.expect("read snapshot").is_some()
}

/// Acceptance 6: after a restart, the rebuilt index returns the same search results — rebuilt
/// once from the log alone and once from a snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imported_knowledge_base_searches_the_same_after_restarts() {
    let nats = NatsServer::start();
    let service = start(&nats).await;
    let mut kb = client(&service).await;
    let t = "ten_shop";

    let counts = import_fixture(&mut kb, t).await;
    assert_eq!((counts.created, counts.updated, counts.unchanged), (500, 0, 0));
    let counts = import_fixture(&mut kb, t).await;
    assert_eq!(
        (counts.created, counts.updated, counts.unchanged),
        (0, 0, 500),
        "importing again changes nothing"
    );
    // Some history, so that the rebuild replays more than one version per entry.
    let mut changed = entry("order-cancel-zh", "取消订单", "未发货的订单可以在“我的订单”里取消。");
    changed.questions = vec!["订单还没发货可以取消吗".into()];
    upsert(&mut kb, t, changed).await.unwrap();
    kb.set_entry_enabled(as_tenant(
        t,
        SetEntryEnabledRequest {
            command_id: String::new(),
            entry_id: "order-cancel-en".into(),
            enabled: false,
        },
    ))
    .await
    .unwrap();

    let mut queries: Vec<String> = HELDOUT
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|v| v["question"].as_str().map(str::to_owned))
        .take(40)
        .collect();
    queries.extend(["取消订单", "cancel my order", "退货", "refund", "发票", "invoice"].map(String::from));
    let before = search_all(&mut kb, t, &queries).await;
    assert!(before.iter().filter(|hits| !hits.is_empty()).count() >= queries.len() * 3 / 4);
    let first = search(&mut kb, t, "订单还没发货可以取消吗").await;
    assert_eq!(first[0].entry_id, "order-cancel-zh");
    assert!(
        search(&mut kb, t, "Can I cancel my order before it ships?")
            .await
            .iter()
            .all(|h| h.entry_id != "order-cancel-en")
    );
    // Another tenant finds nothing of this one's.
    assert!(search(&mut kb, "ten_other", "取消订单").await.is_empty());
    let error = kb
        .get_entry(as_tenant(
            "ten_other",
            GetEntryRequest {
                entry_id: "order-cancel-zh".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::NotFound);
    service.stop().await.unwrap();

    // From the log alone: the snapshot saved at shutdown is removed first.
    delete_snapshot(&nats).await;
    let service = start(&nats).await;
    let mut kb = client(&service).await;
    assert_eq!(search_all(&mut kb, t, &queries).await, before, "rebuilt from the log");
    service.stop().await.unwrap();

    // From the snapshot this clean stop saved.
    assert!(snapshot_exists(&nats).await, "a clean stop saves a snapshot");
    let service = start(&nats).await;
    let mut kb = client(&service).await;
    assert_eq!(
        search_all(&mut kb, t, &queries).await,
        before,
        "rebuilt from a snapshot"
    );
    assert!(search(&mut kb, "ten_other", "取消订单").await.is_empty());
    let listed = kb
        .list_entries(as_tenant(
            t,
            ListEntriesRequest {
                page_size: 100,
                page_token: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.entries.len(), 100);
    service.stop().await.unwrap();
}
