//! The knowledge-base read model: per tenant, the entries as the `kb` log has them and a
//! `yy_kb::KnowledgeBase` index over them. Commands read an entry's current state and its
//! aggregate's last sequence here; searches run against the index.
//!
//! A snapshot stores the entries, never the index: decoding rebuilds the index from them, and
//! since the library's results depend only on the set of enabled entries, the rebuilt index
//! answers exactly as the one it replaces.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use yy_eventlog::{Payload, Projection, Record, Snapshottable};
use yy_kb::{Entry, Format, KnowledgeBase};
use yy_proto::kb::v1 as pb;

/// How many recent command ids each entry's aggregate remembers, so that a retried command whose
/// first attempt was stored is answered as it was instead of being decided again.
const RECENT_COMMANDS: usize = 8;

/// The aggregate that holds an entry's history. Entry ids may hold `.` and `:`, which a subject
/// token cannot, so the aggregate is named by a digest of the id.
pub fn aggregate_of(entry_id: &str) -> String {
    let digest = Sha256::digest(entry_id.as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("kb_{hex}")
}

/// An entry in the library's form, from its event form. An unset format reads as text.
pub fn entry_from_proto(entry: &pb::KnowledgeEntry) -> Entry {
    Entry {
        id: entry.entry_id.clone(),
        title: entry.title.clone(),
        questions: entry.questions.clone(),
        answer: entry.answer.clone(),
        format: match pb::AnswerFormat::try_from(entry.format) {
            Ok(pb::AnswerFormat::Markdown) => Format::Markdown,
            _ => Format::Text,
        },
        tags: entry.tags.clone(),
        locale: entry.locale.clone(),
        enabled: entry.enabled,
    }
}

/// An entry in its event form.
pub fn entry_to_proto(entry: &Entry) -> pb::KnowledgeEntry {
    pb::KnowledgeEntry {
        entry_id: entry.id.clone(),
        title: entry.title.clone(),
        questions: entry.questions.clone(),
        answer: entry.answer.clone(),
        format: match entry.format {
            Format::Text => pb::AnswerFormat::Text,
            Format::Markdown => pb::AnswerFormat::Markdown,
        } as i32,
        tags: entry.tags.clone(),
        locale: entry.locale.clone(),
        enabled: entry.enabled,
    }
}

/// Every tenant's knowledge base.
#[derive(Debug, Default)]
pub struct KnowledgeBases {
    tenants: HashMap<String, TenantKb>,
}

/// One tenant's knowledge base.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct TenantKb {
    /// The entries, by id.
    entries: BTreeMap<String, StoredEntry>,
    /// Per aggregate (`kb_…`), what commands need to decide: kept after the entry is deleted,
    /// because its stream goes on and a re-creation must expect the last sequence.
    aggregates: HashMap<String, AggregateState>,
    /// The search index over `entries`. Shared so that searches can run on blocking threads
    /// without holding the whole read model.
    #[serde(skip)]
    index: Arc<RwLock<KnowledgeBase>>,
}

/// An entry with what the log says about its history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEntry {
    /// The entry.
    pub entry: Entry,
    /// Changes recorded since it was (last) created, counting the creation.
    pub revision: u64,
    /// When it was (last) created (ms since the epoch).
    pub created_at_ms: i64,
    /// When it last changed (ms since the epoch).
    pub updated_at_ms: i64,
}

/// An aggregate's position in the log and its last command ids.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AggregateState {
    /// The stream sequence of its last commit.
    pub sequence: u64,
    recent_commands: VecDeque<String>,
}

impl AggregateState {
    /// True when the command was among the last ones stored for this aggregate.
    pub fn recently_ran(&self, command_id: &str) -> bool {
        self.recent_commands.iter().any(|c| c == command_id)
    }
}

impl KnowledgeBases {
    /// One tenant's knowledge base, if it has one.
    pub fn tenant(&self, tenant_id: &str) -> Option<&TenantKb> {
        self.tenants.get(tenant_id)
    }
}

impl TenantKb {
    /// An entry.
    pub fn entry(&self, id: &str) -> Option<&StoredEntry> {
        self.entries.get(id)
    }

    /// Up to `limit` entries with ids after `after`, by id, and whether more follow.
    pub fn list(&self, after: Option<&str>, limit: usize) -> (Vec<&StoredEntry>, bool) {
        let mut range: Box<dyn Iterator<Item = &StoredEntry>> = match after {
            Some(after) => Box::new(
                self.entries
                    .range::<str, _>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
                    .map(|(_, e)| e),
            ),
            None => Box::new(self.entries.values()),
        };
        let page: Vec<&StoredEntry> = range.by_ref().take(limit).collect();
        let more = range.next().is_some();
        (page, more)
    }

    /// An aggregate's state, if anything was ever recorded for it.
    pub fn aggregate(&self, aggregate_id: &str) -> Option<&AggregateState> {
        self.aggregates.get(aggregate_id)
    }

    /// The search index, to be read from a blocking thread.
    pub fn index(&self) -> Arc<RwLock<KnowledgeBase>> {
        self.index.clone()
    }

    fn apply(&mut self, payload: &Payload, at_ms: i64) {
        let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
        match payload {
            Payload::KnowledgeEntryUpserted(upserted) => {
                let Some(entry) = upserted.entry.as_ref().map(entry_from_proto) else {
                    return;
                };
                // The service validates before appending; an entry refused here (a limit made
                // stricter since, or an id-hash collision) is left out of both the entries and
                // the index, so the two never disagree.
                if let Err(error) = index.upsert(entry.clone()) {
                    tracing::warn!(entry = %entry.id, %error, "a stored knowledge entry is not indexed");
                    if self.entries.remove(&entry.id).is_some() {
                        let _ = index.remove(&entry.id);
                    }
                    return;
                }
                match self.entries.get_mut(&entry.id) {
                    Some(stored) => {
                        stored.entry = entry;
                        stored.revision += 1;
                        stored.updated_at_ms = at_ms;
                    }
                    None => {
                        self.entries.insert(
                            entry.id.clone(),
                            StoredEntry {
                                entry,
                                revision: 1,
                                created_at_ms: at_ms,
                                updated_at_ms: at_ms,
                            },
                        );
                    }
                }
            }
            Payload::KnowledgeEntryDeleted(deleted) => {
                self.entries.remove(&deleted.entry_id);
                if let Err(error) = index.remove(&deleted.entry_id) {
                    tracing::warn!(entry = %deleted.entry_id, %error, "cannot remove a knowledge entry from the index");
                }
            }
            Payload::KnowledgeEntryEnabledChanged(changed) => {
                let Some(stored) = self.entries.get_mut(&changed.entry_id) else {
                    return;
                };
                if let Err(error) = index.set_enabled(&changed.entry_id, changed.enabled) {
                    tracing::warn!(entry = %changed.entry_id, %error, "cannot change a knowledge entry in the index");
                    return;
                }
                stored.entry.enabled = changed.enabled;
                stored.revision += 1;
                stored.updated_at_ms = at_ms;
            }
            _ => {}
        }
    }

    /// Builds the index over the entries, as after decoding a snapshot.
    fn rebuild_index(&mut self) {
        let mut index = KnowledgeBase::new();
        let mut refused = Vec::new();
        for stored in self.entries.values() {
            if let Err(error) = index.upsert(stored.entry.clone()) {
                tracing::warn!(entry = %stored.entry.id, %error, "a stored knowledge entry is not indexed");
                refused.push(stored.entry.id.clone());
            }
        }
        for id in refused {
            self.entries.remove(&id);
        }
        // Paid here, at start, rather than by the first search.
        if let Err(error) = index.commit() {
            tracing::warn!(%error, "cannot commit a rebuilt knowledge index");
        }
        self.index = Arc::new(RwLock::new(index));
    }
}

impl Projection for KnowledgeBases {
    fn apply(&mut self, record: &Record) {
        let tenant = self.tenants.entry(record.tenant_id.clone()).or_default();
        for event in &record.commit.events {
            let Some(payload) = &event.payload else { continue };
            let at_ms = event
                .occurred_at
                .as_ref()
                .map_or(0, |t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000);
            tenant.apply(payload, at_ms);
        }
        let aggregate = tenant.aggregates.entry(record.aggregate_id.clone()).or_default();
        aggregate.sequence = record.sequence;
        if aggregate.recent_commands.len() == RECENT_COMMANDS {
            aggregate.recent_commands.pop_front();
        }
        aggregate.recent_commands.push_back(record.commit.command_id.clone());
    }
}

impl Snapshottable for KnowledgeBases {
    const STATE_VERSION: u32 = 1;

    fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(&self.tenants).unwrap_or_default()
    }

    fn decode(bytes: &[u8]) -> Result<Self, String> {
        let mut tenants: HashMap<String, TenantKb> = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        for tenant in tenants.values_mut() {
            tenant.rebuild_index();
        }
        Ok(KnowledgeBases { tenants })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yy_eventlog::{Commit, EventEnvelope};
    use yy_kb::SearchOptions;

    fn record(sequence: u64, entry_id: &str, payload: Payload) -> Record {
        Record {
            partition: 0,
            sequence,
            tenant_id: "ten_a".into(),
            aggregate_id: aggregate_of(entry_id),
            commit: Commit {
                command_id: format!("c{sequence}"),
                events: vec![EventEnvelope {
                    payload: Some(payload),
                    ..Default::default()
                }],
            },
            trace: None,
        }
    }

    fn upserted(id: &str, title: &str, answer: &str) -> Payload {
        Payload::KnowledgeEntryUpserted(pb::KnowledgeEntryUpserted {
            entry: Some(pb::KnowledgeEntry {
                entry_id: id.into(),
                title: title.into(),
                answer: answer.into(),
                locale: "zh-CN".into(),
                enabled: true,
                ..Default::default()
            }),
        })
    }

    fn search(kbs: &KnowledgeBases, query: &str) -> Vec<(String, f32)> {
        let index = kbs.tenant("ten_a").unwrap().index();
        let index = index.read().unwrap();
        index
            .search(query, &SearchOptions::default())
            .unwrap()
            .into_iter()
            .map(|h| (h.id, h.score))
            .collect()
    }

    #[test]
    fn aggregate_ids_are_subject_tokens_for_any_entry_id() {
        for id in ["a", "faq.returns:zh", &"x".repeat(128)] {
            let aggregate = aggregate_of(id);
            yy_eventlog::validate_token("aggregate", &aggregate).unwrap();
            assert_eq!(aggregate.len(), 35);
        }
        assert_ne!(aggregate_of("a"), aggregate_of("b"));
    }

    #[test]
    fn formats_round_trip() {
        let mut entry = entry_from_proto(&pb::KnowledgeEntry {
            entry_id: "a".into(),
            format: pb::AnswerFormat::Markdown as i32,
            ..Default::default()
        });
        assert_eq!(entry.format, Format::Markdown);
        assert_eq!(entry_from_proto(&entry_to_proto(&entry)), entry);
        entry.format = Format::Text;
        assert_eq!(entry_from_proto(&entry_to_proto(&entry)), entry);
        let unset = entry_from_proto(&pb::KnowledgeEntry::default());
        assert_eq!(unset.format, Format::Text);
    }

    /// Edits, deletions and enablement changes fold into the entries and the index alike, and a
    /// snapshot read back searches exactly as the state it was taken of.
    #[test]
    fn a_snapshot_rebuilds_the_same_index() {
        let mut kbs = KnowledgeBases::default();
        kbs.apply(&record(1, "returns", upserted("returns", "退货政策", "七天无理由退货")));
        kbs.apply(&record(
            2,
            "shipping",
            upserted("shipping", "运费怎么算", "满 99 元包邮"),
        ));
        kbs.apply(&record(
            3,
            "returns",
            upserted("returns", "怎么退货", "签收后七天内可以退货"),
        ));
        kbs.apply(&record(4, "temp", upserted("temp", "退货地址", "临时")));
        kbs.apply(&record(
            5,
            "temp",
            Payload::KnowledgeEntryDeleted(pb::KnowledgeEntryDeleted {
                entry_id: "temp".into(),
            }),
        ));
        kbs.apply(&record(
            6,
            "shipping",
            Payload::KnowledgeEntryEnabledChanged(pb::KnowledgeEntryEnabledChanged {
                entry_id: "shipping".into(),
                enabled: false,
            }),
        ));
        let tenant = kbs.tenant("ten_a").unwrap();
        assert_eq!(tenant.entry("returns").unwrap().revision, 2);
        assert!(tenant.entry("temp").is_none());
        assert_eq!(tenant.aggregate(&aggregate_of("temp")).unwrap().sequence, 5);
        assert!(!tenant.entry("shipping").unwrap().entry.enabled);

        let restored = KnowledgeBases::decode(&kbs.encode()).unwrap();
        for query in ["我想退货", "运费", "退货地址"] {
            assert_eq!(search(&restored, query), search(&kbs, query), "{query}");
        }
        assert_eq!(search(&restored, "我想退货")[0].0, "returns");
        assert!(search(&restored, "运费").iter().all(|(id, _)| id != "shipping"));
        let tenant = restored.tenant("ten_a").unwrap();
        assert!(tenant.aggregate(&aggregate_of("returns")).unwrap().recently_ran("c3"));
        assert_eq!(tenant.entry("returns").unwrap().revision, 2);
    }

    #[test]
    fn an_invalid_stored_entry_is_left_out_of_both() {
        let mut kbs = KnowledgeBases::default();
        kbs.apply(&record(1, "a", upserted("a", "退货政策", "七天")));
        kbs.apply(&record(2, "a", upserted("a", "", "七天")));
        let tenant = kbs.tenant("ten_a").unwrap();
        assert!(tenant.entry("a").is_none());
        assert!(search(&kbs, "退货").is_empty());
        assert_eq!(tenant.list(None, 10).0.len(), 0);
    }
}
