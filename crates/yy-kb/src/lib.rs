//! The bilingual knowledge base: entries, bulk import, a full-text index per tenant with
//! Chinese word segmentation, search with highlights, and answers with a calibrated confidence.
//!
//! - [`Entry`]: a title, question variants, an answer (text or Markdown), tags, a locale and an
//!   enabled flag; [`Entry::validate`] names the field that breaks a limit.
//! - [`import_json`] and [`import_csv`] read many entries at once; errors name the line, the
//!   entry and the field.
//! - [`KnowledgeBase`]: one per tenant, rebuilt from the tenant's events with
//!   [`KnowledgeBase::upsert`], [`KnowledgeBase::remove`] and [`KnowledgeBase::set_enabled`];
//!   [`KnowledgeBase::search`] ranks entries (BM25 over title, questions and answer, in tantivy)
//!   and marks the matched terms; [`KnowledgeBase::answer`] picks the entry to answer with, or
//!   falls back when no entry reaches the confidence threshold.
//!
//! Text is analysed by `yy-nlu`'s tokeniser (jieba for Chinese, with the one dictionary the
//! process shares; lowercased, lightly stemmed words for English), plus Chinese character
//! grams so that Chinese paraphrases built from different compounds still meet.
//!
//! Everything is synchronous and in memory. Results depend only on the set of enabled entries,
//! not on the order of the edits that produced it, so a knowledge base rebuilt from the log
//! answers exactly as before. Nothing here panics on any input.
//!
//! ```
//! use yy_kb::{Answer, Entry, Format, KnowledgeBase, SearchOptions, DEFAULT_THRESHOLD};
//!
//! let entry = |id: &str, title: &str, questions: &[&str], answer: &str| Entry {
//!     id: id.into(),
//!     title: title.into(),
//!     questions: questions.iter().map(|q| (*q).into()).collect(),
//!     answer: answer.into(),
//!     format: Format::Text,
//!     tags: vec![],
//!     locale: "zh-CN".into(),
//!     enabled: true,
//! };
//! let mut kb = KnowledgeBase::from_entries([
//!     entry("returns-policy", "退货政策", &["怎么申请退货", "买的东西不想要了可以退吗"], "签收后 7 天内可申请无理由退货。"),
//!     entry("shipping-fee", "运费怎么算", &["满多少包邮"], "实付满 99 元包邮。"),
//!     entry("invoice", "开发票", &["怎么开发票"], "在订单详情申请开票。"),
//! ])?;
//! let hits = kb.search("我想申请退货", &SearchOptions::default())?;
//! assert_eq!(hits[0].id, "returns-policy");
//! assert!(hits[0].highlights.iter().any(|h| h.snippet.contains("<em>退货</em>")));
//! match kb.answer("我想申请退货", DEFAULT_THRESHOLD)? {
//!     Answer::Found { id, confidence, .. } => assert!(id == "returns-policy" && confidence >= DEFAULT_THRESHOLD),
//!     Answer::Fallback { .. } => unreachable!(),
//! }
//! assert!(matches!(kb.answer("what's the weather like", DEFAULT_THRESHOLD)?, Answer::Fallback { .. }));
//! # Ok::<(), yy_kb::KbError>(())
//! ```

mod entry;
mod import;
mod kb;
mod text;

pub use entry::{
    Entry, EntryError, Format, MAX_ANSWER_CHARS, MAX_ID_CHARS, MAX_LOCALE_CHARS, MAX_QUESTION_CHARS, MAX_QUESTIONS,
    MAX_TAG_CHARS, MAX_TAGS, MAX_TITLE_CHARS,
};
pub use import::{CSV_COLUMNS, ImportError, MAX_IMPORT_ENTRIES, export_csv, import_csv, import_json};
pub use kb::{
    Alternative, Answer, DEFAULT_THRESHOLD, Highlight, Hit, KbError, KnowledgeBase, MAX_LIMIT, MAX_QUERY_CHARS,
    SearchOptions, Tuning,
};
