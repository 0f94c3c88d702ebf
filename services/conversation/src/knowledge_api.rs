//! The knowledge-base API over gRPC. Like the conversation API, a command is decided against the
//! read model under the entry's lock, appended with the aggregate's last sequence expected, and
//! answered once the read model (and so the search index) includes it.

use std::sync::Arc;

use futures::StreamExt as _;
use tonic::{Code, Request, Response, Status};
use yy_eventlog::{
    AppendError, EventEnvelope, EventLog, Expected, Follower, LogContext, NewCommit, Payload, partition_of,
};
use yy_kb::{Answer, Entry, KbError, MAX_ID_CHARS, MAX_LIMIT, SearchOptions};
use yy_proto::kb::v1 as pb;
use yy_proto::kb::v1::knowledge_service_server::KnowledgeService;

use crate::knowledge::{KnowledgeBases, StoredEntry, TenantKb, aggregate_of, entry_from_proto, entry_to_proto};
use crate::service::{
    APPLY_TIMEOUT, Locks, MAX_ATTEMPTS, checked_command_id, correlation_of, now, tenant_of, unavailable,
};

/// The largest import document, in bytes. The gRPC server accepts messages a little larger.
pub const MAX_IMPORT_BYTES: usize = 16 * 1024 * 1024;
/// Imported entries being appended at once: enough to hide the log's round trips, few enough not
/// to crowd out other commands.
const IMPORT_CONCURRENCY: usize = 16;
/// Most tags a search may filter on.
const MAX_FILTER_TAGS: usize = 20;
/// Longest locale filter, in characters.
const MAX_LOCALE_CHARS: usize = 35;

/// The knowledge-base API.
#[derive(Clone, Debug)]
pub struct Knowledge {
    log: EventLog,
    kbs: Follower<KnowledgeBases>,
    locks: Arc<Locks>,
}

impl Knowledge {
    /// Serves commands and searches over `kbs`, appending to `log`.
    pub fn new(log: EventLog, kbs: Follower<KnowledgeBases>) -> Self {
        Knowledge {
            log,
            kbs,
            locks: Arc::default(),
        }
    }
}

fn status(code: Code, slug: &'static str, message: String) -> Status {
    yy_runtime::error_status(code, slug, message)
}

fn invalid(field: &str, reason: impl std::fmt::Display) -> Status {
    status(Code::InvalidArgument, "validation-failed", format!("{field}: {reason}"))
}

fn not_found(entry_id: &str) -> Status {
    status(Code::NotFound, "not-found", format!("entry {entry_id} not found"))
}

fn index_failed(error: KbError) -> Status {
    tracing::error!(%error, "knowledge index failed");
    Status::internal("the knowledge index failed")
}

/// Checks an entry id named by a request, with the same rules as an entry's own id.
fn check_entry_id(field: &str, id: &str) -> Result<(), Status> {
    if id.is_empty() {
        return Err(invalid(field, "required"));
    }
    let ok = id.len() <= MAX_ID_CHARS
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("must have 1 to {MAX_ID_CHARS} ASCII letters, digits and _ - . :"),
        ))
    }
}

/// The entry a request carries, checked against every limit; errors name the field under
/// `entry.`.
fn checked_entry(entry: Option<&pb::KnowledgeEntry>) -> Result<Entry, Status> {
    let entry = entry.ok_or_else(|| invalid("entry", "required"))?;
    if pb::AnswerFormat::try_from(entry.format).is_err() {
        return Err(invalid("entry.format", "unknown format"));
    }
    let entry = entry_from_proto(entry);
    entry
        .validate()
        .map_err(|e| invalid(&format!("entry.{}", e.field), e.message))?;
    Ok(entry)
}

fn entry_view(stored: &StoredEntry) -> pb::Entry {
    pb::Entry {
        entry: Some(entry_to_proto(&stored.entry)),
        revision: stored.revision,
        created_at_ms: stored.created_at_ms,
        updated_at_ms: stored.updated_at_ms,
    }
}

fn search_options(limit: u32, locale: String, tags: Vec<String>) -> Result<SearchOptions, Status> {
    let limit = match limit {
        0 => 10,
        n if n as usize <= MAX_LIMIT => n as usize,
        _ => return Err(invalid("limit", format!("must be 1 to {MAX_LIMIT}"))),
    };
    if locale.chars().count() > MAX_LOCALE_CHARS || locale.chars().any(char::is_control) {
        return Err(invalid(
            "locale",
            format!("must be a language tag of at most {MAX_LOCALE_CHARS} characters"),
        ));
    }
    if tags.len() > MAX_FILTER_TAGS {
        return Err(invalid("tags", format!("at most {MAX_FILTER_TAGS} tags")));
    }
    if let Some(i) = tags
        .iter()
        .position(|t| t.is_empty() || t.chars().count() > yy_kb::MAX_TAG_CHARS)
    {
        return Err(invalid(
            &format!("tags[{i}]"),
            format!("must have 1 to {} characters", yy_kb::MAX_TAG_CHARS),
        ));
    }
    Ok(SearchOptions {
        limit,
        locale: (!locale.is_empty()).then_some(locale),
        tags,
    })
}

fn checked_query(query: &str) -> Result<(), Status> {
    if query.trim().is_empty() {
        return Err(invalid("query", "required"));
    }
    Ok(())
}

/// A change to one entry.
#[derive(Debug, Clone)]
enum Change {
    Upsert(Entry),
    Delete,
    SetEnabled(bool),
}

/// What a command did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Created,
    Updated,
    /// Nothing to record: the entry already was as asked, or the command had already run.
    Unchanged,
}

/// Decides a change against the entry as stored: the event to record, if any.
fn decide(entry_id: &str, stored: Option<&StoredEntry>, change: &Change) -> Result<(Option<Payload>, Outcome), Status> {
    Ok(match (change, stored) {
        (Change::Upsert(entry), None) => (Some(upserted(entry)), Outcome::Created),
        (Change::Upsert(entry), Some(stored)) if stored.entry == *entry => (None, Outcome::Unchanged),
        (Change::Upsert(entry), Some(_)) => (Some(upserted(entry)), Outcome::Updated),
        (Change::Delete | Change::SetEnabled(_), None) => return Err(not_found(entry_id)),
        (Change::Delete, Some(_)) => (
            Some(Payload::KnowledgeEntryDeleted(pb::KnowledgeEntryDeleted {
                entry_id: entry_id.to_owned(),
            })),
            Outcome::Updated,
        ),
        (Change::SetEnabled(enabled), Some(stored)) if stored.entry.enabled == *enabled => (None, Outcome::Unchanged),
        (Change::SetEnabled(enabled), Some(_)) => (
            Some(Payload::KnowledgeEntryEnabledChanged(
                pb::KnowledgeEntryEnabledChanged {
                    entry_id: entry_id.to_owned(),
                    enabled: *enabled,
                },
            )),
            Outcome::Updated,
        ),
    })
}

fn upserted(entry: &Entry) -> Payload {
    Payload::KnowledgeEntryUpserted(pb::KnowledgeEntryUpserted {
        entry: Some(entry_to_proto(entry)),
    })
}

impl Knowledge {
    fn read<T>(&self, tenant: &str, f: impl FnOnce(&TenantKb) -> Option<T>) -> Option<T> {
        let kbs = self.kbs.read();
        kbs.state.tenant(tenant).and_then(f)
    }

    fn entry(&self, tenant: &str, entry_id: &str) -> Result<pb::Entry, Status> {
        self.read(tenant, |t| t.entry(entry_id).map(entry_view))
            .ok_or_else(|| not_found(entry_id))
    }

    async fn wait_applied(&self, partition: u32, sequence: u64) -> Result<(), Status> {
        tokio::time::timeout(APPLY_TIMEOUT, self.kbs.applied(partition, sequence))
            .await
            .map_err(|_| unavailable("the knowledge base did not apply a commit in time"))
    }

    /// Decides `change` against the entry as the read model has it and records the result,
    /// deciding again when another writer got there first; returns once the read model (and the
    /// index) includes it.
    async fn execute(
        &self,
        tenant: &str,
        entry_id: &str,
        command_id: &str,
        correlation_id: &str,
        change: &Change,
    ) -> Result<Outcome, Status> {
        let aggregate_id = aggregate_of(entry_id);
        let _lock = self.locks.lock(format!("{tenant}/{aggregate_id}")).await;
        let partition = partition_of(&aggregate_id, self.log.config().partitions);
        for _ in 0..MAX_ATTEMPTS {
            let (payload, outcome, sequence) = {
                let kbs = self.kbs.read();
                let tenant_kb = kbs.state.tenant(tenant);
                let aggregate = tenant_kb.and_then(|t| t.aggregate(&aggregate_id));
                if aggregate.is_some_and(|a| a.recently_ran(command_id)) {
                    return Ok(Outcome::Unchanged);
                }
                let (payload, outcome) = decide(entry_id, tenant_kb.and_then(|t| t.entry(entry_id)), change)?;
                (payload, outcome, aggregate.map_or(0, |a| a.sequence))
            };
            let Some(payload) = payload else {
                return Ok(outcome);
            };
            let commit = NewCommit {
                context: LogContext::KB,
                tenant_id: tenant.to_owned(),
                aggregate_id: aggregate_id.clone(),
                command_id: command_id.to_owned(),
                events: vec![EventEnvelope {
                    event_id: uuid::Uuid::now_v7().to_string(),
                    tenant_id: tenant.to_owned(),
                    aggregate_type: "knowledge_entry".to_owned(),
                    aggregate_id: aggregate_id.clone(),
                    occurred_at: Some(now()),
                    correlation_id: correlation_id.to_owned(),
                    causation_id: command_id.to_owned(),
                    schema_version: 1,
                    payload: Some(payload),
                    ..Default::default()
                }],
                trace: None,
            };
            let expected = if sequence == 0 {
                Expected::NoStream
            } else {
                Expected::LastSequence(sequence)
            };
            match self.log.append(commit, expected).await {
                Ok(appended) => {
                    self.wait_applied(appended.partition, appended.sequence).await?;
                    return Ok(outcome);
                }
                Err(AppendError::Conflict { .. }) => {
                    // Another instance wrote first: catch up with it, then decide again.
                    let (_, last) = self
                        .log
                        .load_after(LogContext::KB, tenant, &aggregate_id, sequence)
                        .await
                        .map_err(unavailable)?;
                    self.wait_applied(partition, last).await?;
                }
                Err(AppendError::Empty) => return Ok(Outcome::Unchanged),
                Err(AppendError::Log(error)) => return Err(unavailable(error)),
            }
        }
        Err(status(
            Code::Aborted,
            "conflict",
            "concurrent changes kept conflicting; retry".into(),
        ))
    }

    /// Runs `f` on the tenant's index on a blocking thread: searches segment, score and highlight,
    /// which would otherwise hold up the async threads.
    async fn with_index<T: Send + 'static>(
        &self,
        tenant: &str,
        empty: T,
        f: impl FnOnce(&yy_kb::KnowledgeBase) -> Result<T, KbError> + Send + 'static,
    ) -> Result<T, Status> {
        let Some(index) = self.read(tenant, |t| Some(t.index())) else {
            return Ok(empty);
        };
        tokio::task::spawn_blocking(move || {
            let index = index.read().unwrap_or_else(|e| e.into_inner());
            f(&index)
        })
        .await
        .map_err(|error| {
            tracing::error!(%error, "a knowledge search failed");
            Status::internal("the search failed")
        })?
        .map_err(index_failed)
    }
}

#[tonic::async_trait]
impl KnowledgeService for Knowledge {
    async fn upsert_entry(
        &self,
        request: Request<pb::UpsertEntryRequest>,
    ) -> Result<Response<pb::UpsertEntryResponse>, Status> {
        let tenant = tenant_of(&request)?;
        let correlation = correlation_of(&request);
        let request = request.into_inner();
        let command_id = checked_command_id(&request.command_id)?;
        let entry = checked_entry(request.entry.as_ref())?;
        let entry_id = entry.id.clone();
        let outcome = self
            .execute(&tenant, &entry_id, &command_id, &correlation, &Change::Upsert(entry))
            .await?;
        Ok(Response::new(pb::UpsertEntryResponse {
            entry: Some(self.entry(&tenant, &entry_id)?),
            outcome: match outcome {
                Outcome::Created => pb::UpsertOutcome::Created,
                Outcome::Updated => pb::UpsertOutcome::Updated,
                Outcome::Unchanged => pb::UpsertOutcome::Unchanged,
            } as i32,
        }))
    }

    async fn get_entry(&self, request: Request<pb::GetEntryRequest>) -> Result<Response<pb::Entry>, Status> {
        let tenant = tenant_of(&request)?;
        let entry_id = &request.get_ref().entry_id;
        check_entry_id("entry_id", entry_id)?;
        self.entry(&tenant, entry_id).map(Response::new)
    }

    async fn list_entries(
        &self,
        request: Request<pb::ListEntriesRequest>,
    ) -> Result<Response<pb::ListEntriesResponse>, Status> {
        let tenant = tenant_of(&request)?;
        let request = request.into_inner();
        let size = match request.page_size {
            0 => 50,
            n @ 1..=100 => n as usize,
            _ => return Err(invalid("page_size", "must be 1 to 100")),
        };
        let after = if request.page_token.is_empty() {
            None
        } else {
            check_entry_id("page_token", &request.page_token)
                .map_err(|_| invalid("page_token", "not a token this API issued"))?;
            Some(request.page_token.as_str())
        };
        let response = self
            .read(&tenant, |t| {
                let (page, more) = t.list(after, size);
                let next_page_token = match (more, page.last()) {
                    (true, Some(last)) => last.entry.id.clone(),
                    _ => String::new(),
                };
                Some(pb::ListEntriesResponse {
                    entries: page.into_iter().map(entry_view).collect(),
                    next_page_token,
                })
            })
            .unwrap_or_default();
        Ok(Response::new(response))
    }

    async fn delete_entry(
        &self,
        request: Request<pb::DeleteEntryRequest>,
    ) -> Result<Response<pb::DeleteEntryResponse>, Status> {
        let tenant = tenant_of(&request)?;
        let correlation = correlation_of(&request);
        let request = request.into_inner();
        let command_id = checked_command_id(&request.command_id)?;
        check_entry_id("entry_id", &request.entry_id)?;
        self.execute(&tenant, &request.entry_id, &command_id, &correlation, &Change::Delete)
            .await?;
        Ok(Response::new(pb::DeleteEntryResponse {}))
    }

    async fn set_entry_enabled(
        &self,
        request: Request<pb::SetEntryEnabledRequest>,
    ) -> Result<Response<pb::Entry>, Status> {
        let tenant = tenant_of(&request)?;
        let correlation = correlation_of(&request);
        let request = request.into_inner();
        let command_id = checked_command_id(&request.command_id)?;
        check_entry_id("entry_id", &request.entry_id)?;
        self.execute(
            &tenant,
            &request.entry_id,
            &command_id,
            &correlation,
            &Change::SetEnabled(request.enabled),
        )
        .await?;
        self.entry(&tenant, &request.entry_id).map(Response::new)
    }

    async fn import_entries(
        &self,
        request: Request<pb::ImportEntriesRequest>,
    ) -> Result<Response<pb::ImportEntriesResponse>, Status> {
        let tenant = tenant_of(&request)?;
        let correlation = correlation_of(&request);
        let request = request.into_inner();
        let command_id = checked_command_id(&request.command_id)?;
        let format = match pb::ImportFormat::try_from(request.format) {
            Ok(pb::ImportFormat::Json) => pb::ImportFormat::Json,
            Ok(pb::ImportFormat::Csv) => pb::ImportFormat::Csv,
            _ => return Err(invalid("format", "must be JSON or CSV")),
        };
        if request.document.len() > MAX_IMPORT_BYTES {
            return Err(invalid(
                "document",
                format!(
                    "has {} bytes; at most {MAX_IMPORT_BYTES} are allowed",
                    request.document.len()
                ),
            ));
        }
        // Parsing and validating up to 100,000 entries is CPU work: off the async threads.
        let document = request.document;
        let entries = tokio::task::spawn_blocking(move || match format {
            pb::ImportFormat::Csv => yy_kb::import_csv(&document),
            _ => yy_kb::import_json(&document),
        })
        .await
        .map_err(|error| {
            tracing::error!(%error, "an import failed to parse");
            Status::internal("the import failed")
        })?
        .map_err(|e| invalid("document", e))?;
        // Every entry is named by the import's command id: the log scopes command ids to the
        // aggregate, so each entry's commit is deduplicated on its own.
        let mut results = futures::stream::iter(entries)
            .map(|entry| {
                let (tenant, command_id, correlation) = (&tenant, &command_id, &correlation);
                async move {
                    let entry_id = entry.id.clone();
                    self.execute(tenant, &entry_id, command_id, correlation, &Change::Upsert(entry))
                        .await
                }
            })
            .buffer_unordered(IMPORT_CONCURRENCY);
        let mut response = pb::ImportEntriesResponse::default();
        while let Some(result) = results.next().await {
            match result? {
                Outcome::Created => response.created += 1,
                Outcome::Updated => response.updated += 1,
                Outcome::Unchanged => response.unchanged += 1,
            }
        }
        Ok(Response::new(response))
    }

    async fn search(&self, request: Request<pb::SearchRequest>) -> Result<Response<pb::SearchResponse>, Status> {
        let tenant = tenant_of(&request)?;
        let request = request.into_inner();
        checked_query(&request.query)?;
        let options = search_options(request.limit, request.locale, request.tags)?;
        let query = request.query;
        let hits = self
            .with_index(&tenant, Vec::new(), move |kb| kb.search(&query, &options))
            .await?;
        Ok(Response::new(pb::SearchResponse {
            hits: hits
                .into_iter()
                .map(|hit| pb::SearchHit {
                    entry_id: hit.id,
                    score: hit.score,
                    title: hit.title,
                    highlights: hit
                        .highlights
                        .into_iter()
                        .map(|h| pb::Highlight {
                            field: h.field,
                            snippet: h.snippet,
                        })
                        .collect(),
                })
                .collect(),
        }))
    }

    async fn answer(&self, request: Request<pb::AnswerRequest>) -> Result<Response<pb::AnswerResponse>, Status> {
        let tenant = tenant_of(&request)?;
        let request = request.into_inner();
        checked_query(&request.query)?;
        let threshold = request.threshold.unwrap_or(yy_kb::DEFAULT_THRESHOLD);
        if !(0.0..=1.0).contains(&threshold) {
            return Err(invalid("threshold", "must be 0 to 1"));
        }
        let options = search_options(0, request.locale, request.tags)?;
        let query = request.query;
        let fallback = pb::answer_response::Result::Fallback(pb::AnswerFallback { best_confidence: 0.0 });
        let result = self
            .with_index(&tenant, fallback, move |kb| {
                Ok(match kb.answer_with(&query, threshold, &options)? {
                    Answer::Found {
                        id,
                        confidence,
                        alternatives,
                    } => match kb.get(&id) {
                        Some(entry) => pb::answer_response::Result::Found(pb::AnswerFound {
                            entry: Some(entry_to_proto(entry)),
                            confidence,
                            alternatives: alternatives
                                .into_iter()
                                .map(|a| pb::Alternative {
                                    entry_id: a.id,
                                    confidence: a.confidence,
                                })
                                .collect(),
                        }),
                        // Found by the index but not among the entries: cannot happen while
                        // the two are updated together; falling back is the safe answer.
                        None => pb::answer_response::Result::Fallback(pb::AnswerFallback {
                            best_confidence: confidence,
                        }),
                    },
                    Answer::Fallback { best_confidence } => {
                        pb::answer_response::Result::Fallback(pb::AnswerFallback { best_confidence })
                    }
                })
            })
            .await?;
        Ok(Response::new(pb::AnswerResponse { result: Some(result) }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> pb::KnowledgeEntry {
        pb::KnowledgeEntry {
            entry_id: "returns".into(),
            title: "退货政策".into(),
            questions: vec!["怎么退货".into()],
            answer: "七天无理由退货".into(),
            format: pb::AnswerFormat::Text as i32,
            tags: vec!["returns".into()],
            locale: "zh-CN".into(),
            enabled: true,
        }
    }

    fn field_error(entry: Option<pb::KnowledgeEntry>) -> String {
        let status = checked_entry(entry.as_ref()).unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            status.metadata().get(yy_proto::metadata::ERROR_KIND).unwrap(),
            "validation-failed"
        );
        status.message().split(':').next().unwrap_or_default().to_owned()
    }

    #[test]
    fn entry_errors_name_the_field() {
        checked_entry(Some(&entry())).unwrap();
        assert_eq!(field_error(None), "entry");
        assert_eq!(
            field_error(Some(pb::KnowledgeEntry {
                entry_id: "a b".into(),
                ..entry()
            })),
            "entry.id"
        );
        assert_eq!(
            field_error(Some(pb::KnowledgeEntry {
                questions: vec!["ok".into(), " ".into()],
                ..entry()
            })),
            "entry.questions[1]"
        );
        assert_eq!(
            field_error(Some(pb::KnowledgeEntry { format: 9, ..entry() })),
            "entry.format"
        );
    }

    #[test]
    fn decisions() {
        let stored = StoredEntry {
            entry: entry_from_proto(&entry()),
            revision: 1,
            created_at_ms: 0,
            updated_at_ms: 0,
        };
        let same = Change::Upsert(stored.entry.clone());
        assert_eq!(decide("returns", Some(&stored), &same).unwrap().1, Outcome::Unchanged);
        assert_eq!(decide("returns", None, &same).unwrap().1, Outcome::Created);
        let other = Change::Upsert(Entry {
            answer: "十天".into(),
            ..stored.entry.clone()
        });
        assert_eq!(decide("returns", Some(&stored), &other).unwrap().1, Outcome::Updated);
        assert_eq!(
            decide("returns", None, &Change::Delete).unwrap_err().code(),
            Code::NotFound
        );
        assert!(
            decide("returns", Some(&stored), &Change::SetEnabled(true))
                .unwrap()
                .0
                .is_none()
        );
        assert!(matches!(
            decide("returns", Some(&stored), &Change::SetEnabled(false)).unwrap().0,
            Some(Payload::KnowledgeEntryEnabledChanged(_))
        ));
    }

    #[test]
    fn search_limits() {
        assert_eq!(search_options(0, String::new(), vec![]).unwrap().limit, 10);
        assert_eq!(
            search_options(101, String::new(), vec![]).unwrap_err().message(),
            "limit: must be 1 to 100"
        );
        assert!(
            search_options(5, String::new(), vec![String::new()])
                .unwrap_err()
                .message()
                .starts_with("tags[0]")
        );
        assert!(checked_query("  ").is_err());
    }
}
