//! Knowledge-base feeds: a JSON array of entries at a URL, pulled on a timer with conditional
//! requests (or pushed through the API), imported into the tenant's knowledge base on the
//! conversation service. Entries the feed dropped are disabled; the ids the feed owns and the
//! validators of its last import are in the ticket log (`KbFeedSynced`), so a restart knows them.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::digest;
use serde_json::Value;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic::{Code, Status};
use yy_eventlog::Payload;
use yy_proto::kb::v1 as kb;
use yy_proto::kb::v1::knowledge_service_client::KnowledgeServiceClient;
use yy_proto::metadata::TENANT;
use yy_proto::ticket::v1 as pb;

use crate::connectors::{Feed, Gateway, MAX_FEED_BYTES};
use crate::errors::{invalid, invalid_state, not_found, unavailable};
use crate::health::Health;
use crate::state::{Connector, KbFeedState, Store, now_ms};

/// Ids recorded per event, so that one commit stays well below the log's message size even
/// for feeds of the largest import.
const IDS_PER_EVENT: usize = 1000;
/// Feeds pulled at the same time, over all tenants.
const CONCURRENT_PULLS: usize = 4;
/// The longest the poller sleeps without looking at the connectors again.
const IDLE_RECHECK_MS: i64 = 60_000;

type Key = (String, String);

/// How one check ended, as `KbFeedHealth.last_outcome` says it.
#[derive(Debug)]
pub enum SyncError {
    /// The document is not a valid feed; nothing changed.
    Refused(Status),
    /// The feed, the knowledge base or the log could not be reached; retried at the next pull.
    Failed(Status),
}

impl SyncError {
    pub fn into_status(self) -> Status {
        match self {
            SyncError::Refused(s) | SyncError::Failed(s) => s,
        }
    }
}

/// Pulls and imports knowledge-base feeds. Cheap to clone.
#[derive(Clone)]
pub struct KbFeeds {
    store: Store,
    gateway: Gateway,
    health: Health,
    kb: KnowledgeServiceClient<Channel>,
    /// When each feed was last checked by this process; before the first check, the log's last
    /// import time stands in, so a restart does not pull every feed at once.
    checked: Arc<Mutex<HashMap<Key, i64>>>,
    in_flight: Arc<Mutex<HashSet<Key>>>,
    /// One sync per feed at a time, so a push and a pull never interleave their ownership
    /// records.
    turns: Arc<Mutex<HashMap<Key, Arc<tokio::sync::Mutex<()>>>>>,
    wake: Arc<Notify>,
    pulls: Arc<Semaphore>,
}

impl std::fmt::Debug for KbFeeds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KbFeeds").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn interval_ms(connector: &Connector) -> Option<i64> {
    let settings = connector.config.kb_feed.as_ref()?;
    if !connector.config.enabled || settings.push_only {
        return None;
    }
    Some(i64::from(settings.interval_secs.max(1)) * 1000)
}

fn with_tenant<T>(tenant: &str, message: T) -> Result<tonic::Request<T>, Status> {
    let mut request = tonic::Request::new(message);
    let value = tenant.parse().map_err(|_| invalid("tenant", "not a metadata value"))?;
    request.metadata_mut().insert(TENANT, value);
    Ok(request)
}

fn hex_sha256(bytes: &[u8]) -> String {
    digest::digest(&digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A feed document read and filtered: what to import, and the ids it names.
#[derive(Debug)]
struct Document {
    json: String,
    ids: BTreeSet<String>,
}

fn locale_matches(locale: &str, wanted: &str) -> bool {
    // A bare language matches its regions, as the knowledge base's own locale filter does.
    locale.eq_ignore_ascii_case(wanted)
        || (!wanted.contains('-')
            && locale.len() > wanted.len()
            && locale.as_bytes()[wanted.len()] == b'-'
            && locale[..wanted.len()].eq_ignore_ascii_case(wanted))
}

/// Reads a feed: a JSON array of objects, each with a string `id`. The entries' own fields are
/// validated by the knowledge base, which refuses the import whole.
fn read_document(body: &[u8], settings: &pb::KbFeedSettings) -> Result<Document, Status> {
    if body.len() > MAX_FEED_BYTES {
        return Err(invalid("document", format!("larger than {MAX_FEED_BYTES} bytes")));
    }
    let entries: Vec<Value> =
        serde_json::from_slice(body).map_err(|e| invalid("document", format!("not a JSON array of entries: {e}")))?;
    let mut kept = Vec::with_capacity(entries.len());
    let mut ids = BTreeSet::new();
    for (i, entry) in entries.into_iter().enumerate() {
        let Some(id) = entry.get("id").and_then(Value::as_str) else {
            return Err(invalid(&format!("document[{i}].id"), "required, a string"));
        };
        if !settings.locales.is_empty() {
            let locale = entry.get("locale").and_then(Value::as_str).unwrap_or_default();
            if !settings.locales.iter().any(|w| locale_matches(locale, w)) {
                continue;
            }
        }
        if !settings.tags.is_empty() {
            let tagged = entry.get("tags").and_then(Value::as_array).is_some_and(|tags| {
                tags.iter()
                    .filter_map(Value::as_str)
                    .any(|t| settings.tags.iter().any(|w| w == t))
            });
            if !tagged {
                continue;
            }
        }
        if !ids.insert(id.to_owned()) {
            return Err(invalid(
                &format!("document[{i}].id"),
                format!("{id:?} appears more than once"),
            ));
        }
        kept.push(entry);
    }
    let json = serde_json::to_string(&kept).map_err(|e| invalid("document", e))?;
    Ok(Document { json, ids })
}

impl KbFeeds {
    pub fn new(store: Store, gateway: Gateway, health: Health, kb: KnowledgeServiceClient<Channel>) -> Self {
        KbFeeds {
            store,
            gateway,
            health,
            kb,
            checked: Arc::default(),
            in_flight: Arc::default(),
            turns: Arc::default(),
            wake: Arc::new(Notify::new()),
            pulls: Arc::new(Semaphore::new(CONCURRENT_PULLS)),
        }
    }

    /// Looks at the feeds again now (a connector was configured).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    fn due_at(&self, key: &Key, interval: i64, feed: Option<&KbFeedState>) -> i64 {
        let last = lock(&self.checked)
            .get(key)
            .copied()
            .or_else(|| feed.map(|f| f.imported_at_ms).filter(|&t| t > 0));
        last.map_or(0, |t| t.saturating_add(interval))
    }

    /// When the feed's next pull is due, for its health; `None` when it is not pulled.
    pub fn next_pull_ms(&self, tenant: &str, connector: &Connector) -> Option<i64> {
        let interval = interval_ms(connector)?;
        let key = (tenant.to_owned(), connector.id.clone());
        let feed = self.store.read(tenant, |t| t.kb_feeds.get(&connector.id).cloned());
        Some(self.due_at(&key, interval, feed.as_ref()))
    }

    /// Pulls each enabled feed when its interval has passed since its last check, until
    /// `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = self.store.follower().caught_up() => {}
        }
        loop {
            let now = now_ms();
            let mut next = now + IDLE_RECHECK_MS;
            let mut due = Vec::new();
            let mut live = HashSet::new();
            {
                let applied = self.store.follower().read();
                for (tenant_id, tenant) in &applied.state.tenants {
                    for connector in tenant.connectors.values().filter(|c| c.is_kb_feed()) {
                        let key = (tenant_id.clone(), connector.id.clone());
                        live.insert(key.clone());
                        let Some(interval) = interval_ms(connector) else {
                            continue;
                        };
                        if lock(&self.in_flight).contains(&key) {
                            continue;
                        }
                        let at = self.due_at(&key, interval, tenant.kb_feeds.get(&connector.id));
                        if at <= now {
                            due.push(key);
                        } else {
                            next = next.min(at);
                        }
                    }
                }
            }
            // Deleted connectors leave nothing behind.
            lock(&self.checked).retain(|key, _| live.contains(key));
            lock(&self.turns).retain(|key, turn| live.contains(key) || Arc::strong_count(turn) > 1);
            for key in due {
                lock(&self.in_flight).insert(key.clone());
                let feeds = self.clone();
                tokio::spawn(async move {
                    let _permit = feeds.pulls.clone().acquire_owned().await;
                    let _ = feeds.sync(&key.0, &key.1, None).await;
                    lock(&feeds.checked).insert(key.clone(), now_ms());
                    lock(&feeds.in_flight).remove(&key);
                    feeds.wake();
                });
            }
            let sleep = Duration::from_millis(u64::try_from(next - now).unwrap_or(0).max(10));
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(sleep) => {}
            }
        }
    }

    /// Checks a feed (pulling it, or importing `pushed`) and records the outcome in its health.
    pub async fn sync(
        &self,
        tenant: &str,
        connector_id: &str,
        pushed: Option<&[u8]>,
    ) -> Result<pb::KbFeedSyncResult, SyncError> {
        let operation = if pushed.is_some() { "kb_push" } else { "kb_pull" };
        let turn = lock(&self.turns)
            .entry((tenant.to_owned(), connector_id.to_owned()))
            .or_default()
            .clone();
        let _turn = turn.lock().await;
        let result = self.sync_once(tenant, connector_id, pushed).await;
        match &result {
            Ok(done) => {
                self.health.succeeded(tenant, connector_id, "kb_feed", operation);
                let outcome = if done.modified { "imported" } else { "not_modified" };
                self.health.kb_checked(tenant, connector_id, outcome);
                self.health.kb_changed(done.created, done.updated, done.disabled);
            }
            Err(SyncError::Refused(status)) | Err(SyncError::Failed(status)) => {
                let outcome = if matches!(result, Err(SyncError::Refused(_))) {
                    "refused"
                } else {
                    "failed"
                };
                tracing::warn!(
                    tenant,
                    connector_id,
                    error = status.message(),
                    "knowledge-base feed {outcome}"
                );
                let http_status = http_status_of(status);
                self.health.failed(
                    tenant,
                    connector_id,
                    "kb_feed",
                    operation,
                    status.message(),
                    http_status,
                );
                self.health.kb_checked(tenant, connector_id, outcome);
            }
        }
        result
    }

    async fn sync_once(
        &self,
        tenant: &str,
        connector_id: &str,
        pushed: Option<&[u8]>,
    ) -> Result<pb::KbFeedSyncResult, SyncError> {
        let (connector, feed) = self.store.read(tenant, |t| {
            (
                t.connectors.get(connector_id).cloned(),
                t.kb_feeds.get(connector_id).cloned().unwrap_or_default(),
            )
        });
        let connector = connector
            .filter(Connector::is_kb_feed)
            .ok_or_else(|| SyncError::Refused(not_found("kb_feed connector", connector_id)))?;
        if !connector.config.enabled {
            return Err(SyncError::Refused(invalid_state(format!(
                "connector {connector_id} is disabled"
            ))));
        }
        let settings = connector.config.kb_feed.clone().unwrap_or_default();
        let (body, etag, last_modified, source) = match pushed {
            Some(body) => (body.to_vec(), String::new(), String::new(), "push"),
            None => match self
                .gateway
                .fetch_feed(tenant, &connector, &feed.etag, &feed.last_modified)
                .await
            {
                Ok(Feed::NotModified) => {
                    return Ok(pb::KbFeedSyncResult {
                        unchanged: u32::try_from(feed.owned.len()).unwrap_or(u32::MAX),
                        entries: u32::try_from(feed.owned.len()).unwrap_or(u32::MAX),
                        modified: false,
                        ..Default::default()
                    });
                }
                Ok(Feed::Document {
                    body,
                    etag,
                    last_modified,
                }) => (body, etag, last_modified, "pull"),
                Err(error) => {
                    let mut status = unavailable(&error.message);
                    if let Ok(value) = error.http_status.to_string().parse() {
                        status.metadata_mut().insert(HTTP_STATUS, value);
                    }
                    return Err(SyncError::Failed(status));
                }
            },
        };
        let document = read_document(&body, &settings).map_err(SyncError::Refused)?;
        let digest = hex_sha256(document.json.as_bytes());

        let import = kb::ImportEntriesRequest {
            // Fresh per import: the same document may have to be imported again after the
            // entries changed in between, which a reused command id would deduplicate away.
            command_id: format!("kbfeed-{}", uuid::Uuid::now_v7().simple()),
            format: kb::ImportFormat::Json as i32,
            document: document.json,
        };
        // An empty feed imports nothing; it only disables what the feed brought before.
        let counts = if document.ids.is_empty() {
            kb::ImportEntriesResponse::default()
        } else {
            self.kb
                .clone()
                .import_entries(with_tenant(tenant, import).map_err(SyncError::Refused)?)
                .await
                .map_err(|status| match status.code() {
                    Code::InvalidArgument => SyncError::Refused(invalid("document", status.message())),
                    _ => SyncError::Failed(unavailable(format!("the knowledge base: {}", status.message()))),
                })?
                .into_inner()
        };

        let removed: Vec<String> = feed.owned.difference(&document.ids).cloned().collect();
        for entry_id in &removed {
            let request = kb::SetEntryEnabledRequest {
                command_id: String::new(),
                entry_id: entry_id.clone(),
                enabled: false,
            };
            match self
                .kb
                .clone()
                .set_entry_enabled(with_tenant(tenant, request).map_err(SyncError::Refused)?)
                .await
            {
                // Deleted meanwhile: nothing left to disable.
                Ok(_) => {}
                Err(status) if status.code() == Code::NotFound => {}
                Err(status) => {
                    // Nothing is recorded: the next pull finds the feed changed and tries again.
                    return Err(SyncError::Failed(unavailable(format!(
                        "the knowledge base, disabling {entry_id}: {}",
                        status.message()
                    ))));
                }
            }
        }
        let added: Vec<String> = document.ids.difference(&feed.owned).cloned().collect();
        let disabled = u32::try_from(removed.len()).unwrap_or(u32::MAX);
        let result = pb::KbFeedSyncResult {
            created: counts.created,
            updated: counts.updated,
            unchanged: counts.unchanged,
            disabled,
            entries: u32::try_from(document.ids.len()).unwrap_or(u32::MAX),
            modified: true,
        };
        let same = added.is_empty()
            && removed.is_empty()
            && feed.etag == etag
            && feed.last_modified == last_modified
            && feed.digest == digest;
        if same {
            return Ok(result);
        }
        self.record(tenant, connector_id, added, removed, |last| {
            last.complete = true;
            last.etag = etag.clone();
            last.last_modified = last_modified.clone();
            last.digest = digest.clone();
            last.created = counts.created;
            last.updated = counts.updated;
            last.unchanged = counts.unchanged;
            last.disabled = disabled;
            source.clone_into(&mut last.source);
        })
        .await
        .map_err(SyncError::Failed)?;
        Ok(result)
    }

    /// Records a sync, its ids in chunks; the last event completes it.
    async fn record(
        &self,
        tenant: &str,
        connector_id: &str,
        added: Vec<String>,
        removed: Vec<String>,
        complete: impl FnOnce(&mut pb::KbFeedSynced),
    ) -> Result<(), Status> {
        let mut events: Vec<pb::KbFeedSynced> = Vec::new();
        for chunk in removed.chunks(IDS_PER_EVENT) {
            events.push(pb::KbFeedSynced {
                removed_ids: chunk.to_vec(),
                ..Default::default()
            });
        }
        for chunk in added.chunks(IDS_PER_EVENT) {
            events.push(pb::KbFeedSynced {
                added_ids: chunk.to_vec(),
                ..Default::default()
            });
        }
        if events.is_empty() {
            events.push(pb::KbFeedSynced::default());
        }
        if let Some(last) = events.last_mut() {
            complete(last);
        }
        for event in events {
            let command_id = uuid::Uuid::now_v7().simple().to_string();
            self.store
                .execute(tenant, "connector", connector_id, &command_id, |t| {
                    if t.connectors.contains_key(connector_id) {
                        Ok(vec![Payload::TicketKbFeedSynced(event.clone())])
                    } else {
                        Err(not_found("connector", connector_id))
                    }
                })
                .await?;
        }
        Ok(())
    }

    /// The feed part of a connector's health.
    pub fn health(&self, tenant: &str, connector: &Connector) -> pb::KbFeedHealth {
        let (last_check, outcome) = self.health.kb_last(tenant, &connector.id);
        let feed = self
            .store
            .read(tenant, |t| t.kb_feeds.get(&connector.id).cloned())
            .unwrap_or_default();
        pb::KbFeedHealth {
            last_check_at: last_check.map(crate::domain::timestamp),
            last_outcome: outcome,
            entries: u32::try_from(feed.owned.len()).unwrap_or(u32::MAX),
            etag: feed.etag,
            last_modified: feed.last_modified,
            last_import_at: (feed.imported_at_ms > 0).then(|| crate::domain::timestamp(feed.imported_at_ms)),
            next_pull_at: self.next_pull_ms(tenant, connector).map(crate::domain::timestamp),
        }
    }
}

/// Carries a failed fetch's HTTP status from the gateway's error to the connector's health.
const HTTP_STATUS: &str = "yy-http-status";

fn http_status_of(status: &Status) -> u32 {
    status
        .metadata()
        .get(HTTP_STATUS)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(locales: &[&str], tags: &[&str]) -> pb::KbFeedSettings {
        pb::KbFeedSettings {
            locales: locales.iter().map(|s| (*s).to_owned()).collect(),
            tags: tags.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_document_that_is_not_an_array_of_entries_with_ids_is_refused() {
        for body in [
            &b"not json"[..],
            b"{\"id\": \"a\"}",
            b"[{\"title\": \"t\"}]",
            b"[{\"id\": 7}]",
            b"[1]",
        ] {
            let error = read_document(body, &settings(&[], &[])).unwrap_err();
            assert_eq!(error.code(), Code::InvalidArgument, "{}", String::from_utf8_lossy(body));
        }
        let twice = br#"[{"id": "a"}, {"id": "a"}]"#;
        assert!(
            read_document(twice, &settings(&[], &[]))
                .unwrap_err()
                .message()
                .contains("more than once")
        );
    }

    #[test]
    fn filters_keep_entries_of_the_locales_and_tags_asked_for() {
        let body = br#"[
            {"id": "a", "locale": "zh-CN", "tags": ["billing"]},
            {"id": "b", "locale": "en", "tags": ["billing"]},
            {"id": "c", "locale": "zh", "tags": ["shipping"]},
            {"id": "d", "locale": "zhx", "tags": ["billing"]}
        ]"#;
        let all = read_document(body, &settings(&[], &[])).unwrap();
        assert_eq!(all.ids.len(), 4);
        let zh = read_document(body, &settings(&["zh"], &[])).unwrap();
        assert_eq!(zh.ids.iter().map(String::as_str).collect::<Vec<_>>(), ["a", "c"]);
        let zh_billing = read_document(body, &settings(&["zh"], &["billing"])).unwrap();
        assert_eq!(zh_billing.ids.iter().map(String::as_str).collect::<Vec<_>>(), ["a"]);
        let kept: Vec<Value> = serde_json::from_str(&zh_billing.json).unwrap();
        assert_eq!(kept.len(), 1);
    }
}
