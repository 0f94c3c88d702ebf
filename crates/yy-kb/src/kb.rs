//! The per-tenant index: entries, their tantivy index, search and answers.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::Column;
use tantivy::indexer::{IndexWriterOptions, NoMergePolicy};
use tantivy::query::{Bm25StatisticsProvider, BooleanQuery, BoostQuery, ConstScoreQuery, Occur, Query, TermQuery};
use tantivy::schema::{FAST, Field, INDEXED, IndexRecordOption, STRING, Schema, TextFieldIndexing, TextOptions};
use tantivy::tokenizer::PreTokenizedString;
use tantivy::{DocId, Index, IndexReader, IndexWriter, ReloadPolicy, Score, SegmentReader, TantivyDocument, Term};

use crate::entry::{Entry, EntryError, normalise_locale};
use crate::text::{self, SNIPPET_CHARS};

/// The constants of ranking and confidence, together so that evaluation can vary them.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tuning {
    pub boost_title: Score,
    pub boost_questions: Score,
    pub boost_answer: Score,
    pub boost_grams: Score,
    pub boost_trigrams: Score,
    /// Weights of the feature families in the similarity: words, Chinese unigrams, Chinese
    /// bigrams, Latin trigrams.
    pub family_weight: [f32; FAMILIES],
    /// Share of the similarity to the entry's centroid (all its variants together); the rest is
    /// the similarity to its nearest variant.
    pub centroid_share: f32,
    /// Share of the similarity to the entry's answer.
    pub answer_share: f32,
    /// How many BM25 candidates the similarity re-ranks.
    pub candidates: usize,
    /// Weight of the normalised BM25 score beside the similarity in the final ranking.
    pub bm25_share: f32,
    /// Whether words are read through the synonym lexicon. Takes effect for entries indexed
    /// after it is set.
    pub synonyms: bool,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            boost_title: BOOST_TITLE,
            boost_questions: BOOST_QUESTIONS,
            boost_answer: BOOST_ANSWER,
            boost_grams: BOOST_GRAMS,
            boost_trigrams: BOOST_TRIGRAMS,
            family_weight: FAMILY_WEIGHT,
            centroid_share: CENTROID_SHARE,
            answer_share: ANSWER_SHARE,
            candidates: RERANK_CANDIDATES,
            bm25_share: BM25_SHARE,
            synonyms: true,
        }
    }
}

/// BM25 finds candidates; the best of them are re-ranked by their similarity plus this share of
/// their BM25 score relative to the best one's. These and the constants below were chosen on the
/// development questions and leave-one-variant-out (`docs/kb.md`, the `sweep` evaluation);
/// around them, each moved top-1 by at most 1 to 2 points, except the answer and centroid shares.
const RERANK_CANDIDATES: usize = 30;
const BM25_SHARE: f32 = 0.5;

/// Field weights in the ranking score. Questions are what customers' messages resemble most;
/// titles are questions too, but often shorter and more formal; answers share words with
/// questions about neighbouring topics, so they count least. The character grams only help
/// Chinese paraphrases meet when the segmented words differ; trigrams let misspelt words find
/// candidates. The answer's weight is higher than judgement first set: its vocabulary bridges
/// paraphrases, and leave-one-variant-out preferred 0.8 to 0.4.
const BOOST_TITLE: Score = 1.5;
const BOOST_QUESTIONS: Score = 2.0;
const BOOST_ANSWER: Score = 0.8;
const BOOST_GRAMS: Score = 0.35;
const BOOST_TRIGRAMS: Score = 0.1;

/// Feature families of the similarity, in the order of [`Tuning::family_weight`].
const FAMILIES: usize = 4;
const FAMILY_WORD: u8 = 0;
const FAMILY_UNIGRAM: u8 = 1;
const FAMILY_BIGRAM: u8 = 2;
const FAMILY_TRIGRAM: u8 = 3;
const FAMILY_WEIGHT: [f32; FAMILIES] = [1.0, 0.35, 0.5, 0.2];
const CENTROID_SHARE: f32 = 0.3;
const ANSWER_SHARE: f32 = 0.3;
/// Entries less similar than this to the query are not hits: what they share with it is
/// a character trigram or two, noise rather than evidence.
const MIN_SIMILARITY: f32 = 0.05;
/// Most distinct features of a query the similarity weighs.
const MAX_QUERY_FEATURES: usize = 256;

/// Queries longer than this many characters are cut: a question needs fewer, and the cost of a
/// search grows with its terms.
pub const MAX_QUERY_CHARS: usize = 500;
/// Most distinct words and character grams of a query that are searched.
const MAX_QUERY_WORDS: usize = 64;
const MAX_QUERY_GRAMS: usize = 128;
/// Most hits one search returns.
pub const MAX_LIMIT: usize = 100;
/// How many of the best-ranked entries [`KnowledgeBase::answer`] weighs.
const ANSWER_CANDIDATES: usize = 5;
/// Most alternatives an [`Answer::Found`] lists.
const MAX_ALTERNATIVES: usize = 3;
/// Commits leave one small segment each; past this many, a commit merges them into one, so
/// that a knowledge base edited one entry at a time keeps searching one segment.
const MAX_SEGMENTS: usize = 8;
/// Memory the index writer may buffer before it writes a segment.
const WRITER_MEMORY: usize = 32_000_000;

/// The default confidence threshold for [`KnowledgeBase::answer`]: one value for Chinese and
/// English alike, chosen on the development questions (`tests/fixtures/kb/dev.jsonl`) as the
/// value that best balanced right answers against out-of-scope questions falling back
/// (`docs/kb.md` gives the sweep).
pub const DEFAULT_THRESHOLD: f32 = 0.2;

/// Why a knowledge-base operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KbError {
    /// The entry breaks a limit; the error names the field.
    #[error("invalid entry: {0}")]
    Invalid(#[from] EntryError),
    /// Two different ids hashed to the same 64-bit key. Practically impossible (about one chance
    /// in 10^10 with a million entries), and reported rather than risked.
    #[error("the id {id:?} collides with {other:?}; choose another id")]
    IdCollision {
        /// The id being added.
        id: String,
        /// The id already present.
        other: String,
    },
    /// The index failed. In memory this does not happen short of running out of memory.
    #[error("index: {0}")]
    Index(#[from] tantivy::TantivyError),
}

/// What to search and how many hits to return.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SearchOptions {
    /// Most hits to return, 1 to [`MAX_LIMIT`] (0 is taken as 1, more as the maximum).
    pub limit: usize,
    /// Only entries in this locale. A bare language (`zh`) matches every region of it (`zh-CN`,
    /// `zh-TW`); a full tag (`zh-CN`) matches only itself. Case and `_`/`-` do not matter.
    pub locale: Option<String>,
    /// Only entries with at least one of these tags. Empty: no tag filter.
    pub tags: Vec<String>,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            limit: 10,
            locale: None,
            tags: Vec::new(),
        }
    }
}

/// Where in an entry a query matched, and the text with the matched terms marked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Highlight {
    /// `title`, `questions[i]` or `answer`.
    pub field: String,
    /// The text, HTML-escaped, matched terms in `<em>…</em>`. Titles and questions are whole;
    /// an answer is cut to about 160 characters around its matches, with `…` where cut.
    pub snippet: String,
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    /// The entry's id.
    pub id: String,
    /// The ranking score: the entry's similarity to the query (its confidence, in [0, 1]) plus
    /// 0.5 × its BM25 score over the weighted fields relative to the best hit's. Comparable only
    /// within one search.
    pub score: f32,
    /// The entry's title.
    pub title: String,
    /// The fields that matched, title first, then questions in order, then the answer.
    pub highlights: Vec<Highlight>,
}

/// An entry the bot could also have answered with, and how confident it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alternative {
    /// The entry's id.
    pub id: String,
    /// Confidence in [0, 1], as for the chosen entry.
    pub confidence: f32,
}

/// What the bot should do with a customer's question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Answer {
    /// Answer with this entry.
    Found {
        /// The entry to answer with.
        id: String,
        /// Confidence in [0, 1], at least the threshold asked for.
        confidence: f32,
        /// Other entries at or above the threshold, most confident first (at most 3).
        alternatives: Vec<Alternative>,
    },
    /// Nothing is confident enough: ask the customer to rephrase.
    Fallback {
        /// The best confidence found, below the threshold (0 when nothing matched at all).
        best_confidence: f32,
    },
}

/// The indexed text fields, in the order of [`Stats`] arrays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextField {
    Title = 0,
    Questions = 1,
    Answer = 2,
    Grams = 3,
    Trigrams = 4,
}

const TEXT_FIELDS: [TextField; 5] = [
    TextField::Title,
    TextField::Questions,
    TextField::Answer,
    TextField::Grams,
    TextField::Trigrams,
];

#[derive(Debug, Clone, Copy)]
struct Fields {
    key: Field,
    text: [Field; 5],
    locale: Field,
    lang: Field,
    tag: Field,
}

/// Collection statistics of the indexed (enabled) entries, kept exactly by this crate rather
/// than read from tantivy: tantivy's own include deleted documents until segments merge, so its
/// scores would depend on the order of past edits. With these, a score depends only on the set
/// of entries indexed.
#[derive(Debug, Default)]
struct Stats {
    docs: u64,
    tokens: [u64; 5],
    df: [HashMap<String, u64>; 5],
}

impl Stats {
    fn df(&self, field: TextField, term: &str) -> u64 {
        self.df[field as usize].get(term).copied().unwrap_or(0)
    }

    fn apply(&mut self, analysed: &Analysed, add: bool) {
        if add {
            self.docs += 1;
        } else {
            self.docs = self.docs.saturating_sub(1);
        }
        for f in TEXT_FIELDS {
            let i = f as usize;
            let count = analysed.token_count(f);
            if add {
                self.tokens[i] += count;
            } else {
                self.tokens[i] = self.tokens[i].saturating_sub(count);
            }
            for term in analysed.distinct(f) {
                if add {
                    *self.df[i].entry(term.to_owned()).or_insert(0) += 1;
                } else if let Some(n) = self.df[i].get_mut(term) {
                    *n -= 1;
                    if *n == 0 {
                        self.df[i].remove(term);
                    }
                }
            }
        }
    }
}

/// [`Stats`] as tantivy asks for them.
struct StatsProvider<'a> {
    stats: &'a Stats,
    fields: &'a Fields,
}

impl StatsProvider<'_> {
    fn text_field(&self, field: Field) -> Option<TextField> {
        TEXT_FIELDS.into_iter().find(|f| self.fields.text[*f as usize] == field)
    }
}

impl Bm25StatisticsProvider for StatsProvider<'_> {
    fn total_num_tokens(&self, field: Field) -> tantivy::Result<u64> {
        Ok(match self.text_field(field) {
            Some(f) => self.stats.tokens[f as usize].max(1),
            // Filters score nothing; any positive figure keeps the arithmetic finite.
            None => self.stats.docs.max(1),
        })
    }

    fn total_num_docs(&self) -> tantivy::Result<u64> {
        Ok(self.stats.docs.max(1))
    }

    fn doc_freq(&self, term: &Term) -> tantivy::Result<u64> {
        Ok(match (self.text_field(term.field()), term.value().as_str()) {
            (Some(f), Some(text)) => self.stats.df(f, text).clamp(1, self.stats.docs.max(1)),
            _ => 1,
        })
    }
}

/// An entry's text as index terms.
#[derive(Debug)]
struct Analysed {
    title: Vec<text::Term>,
    questions: Vec<Vec<text::Term>>,
    answer: Vec<text::Term>,
    /// Grams of the title, then of each question.
    grams: Vec<Vec<text::Term>>,
    /// Latin trigrams of the title's words, then of each question's.
    trigrams: Vec<Vec<text::Term>>,
}

impl Analysed {
    fn new(e: &Entry, synonyms: bool) -> Self {
        let title = text::words_with(&e.title, synonyms);
        let questions: Vec<Vec<text::Term>> = e.questions.iter().map(|q| text::words_with(q, synonyms)).collect();
        let mut grams = vec![text::grams(&e.title)];
        grams.extend(e.questions.iter().map(|q| text::grams(q)));
        let trigrams = std::iter::once(&title)
            .chain(&questions)
            .map(|w| text::trigrams(w))
            .collect();
        Analysed {
            answer: text::words_with(&e.answer, synonyms),
            title,
            questions,
            grams,
            trigrams,
        }
    }

    /// The similarity features of each variant (title, then questions), then of the answer,
    /// with counts.
    fn variant_features(&self) -> Vec<BTreeMap<String, u32>> {
        let answer = features(&self.answer, &[], &[]);
        std::iter::once(&self.title)
            .chain(&self.questions)
            .zip(&self.grams)
            .zip(&self.trigrams)
            .map(|((words, grams), trigrams)| features(words, grams, trigrams))
            .chain([answer])
            .collect()
    }

    fn token_count(&self, f: TextField) -> u64 {
        let n = match f {
            TextField::Title => self.title.len(),
            TextField::Questions => self.questions.iter().map(Vec::len).sum(),
            TextField::Answer => self.answer.len(),
            TextField::Grams => self.grams.iter().map(Vec::len).sum(),
            TextField::Trigrams => self.trigrams.iter().map(Vec::len).sum(),
        };
        n as u64
    }

    fn distinct(&self, f: TextField) -> BTreeSet<&str> {
        let lists: Vec<&Vec<text::Term>> = match f {
            TextField::Title => vec![&self.title],
            TextField::Questions => self.questions.iter().collect(),
            TextField::Answer => vec![&self.answer],
            TextField::Grams => self.grams.iter().collect(),
            TextField::Trigrams => self.trigrams.iter().collect(),
        };
        lists.into_iter().flatten().map(|t| t.text.as_str()).collect()
    }
}

/// A text's similarity features and their counts, keyed by family (one leading byte) and term,
/// in key order so that every sum over them runs in the same order.
fn features(words: &[text::Term], grams: &[text::Term], trigrams: &[text::Term]) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    let mut add = |family: u8, term: &str| {
        let mut key = String::with_capacity(term.len() + 1);
        key.push(char::from(b'0' + family));
        key.push_str(term);
        *out.entry(key).or_insert(0) += 1;
    };
    for w in words {
        add(FAMILY_WORD, &w.text);
    }
    for g in grams {
        let family = if g.text.chars().nth(1).is_some() {
            FAMILY_BIGRAM
        } else {
            FAMILY_UNIGRAM
        };
        add(family, &g.text);
    }
    for t in trigrams {
        add(FAMILY_TRIGRAM, &t.text);
    }
    out
}

fn family_of(key: &str) -> usize {
    key.bytes()
        .next()
        .map_or(0, |b| usize::from(b.saturating_sub(b'0')))
        .min(FAMILIES - 1)
}

/// Sublinear term frequency: a word said twice is more, but not twice, the evidence.
fn sublinear(count: u32) -> f32 {
    1.0 + (count.max(1) as f32).ln()
}

/// The similarity features of the indexed entries: an id per feature and the number of entries
/// having it in some variant. Ids are only handles; nothing sums in id order, so results do not
/// depend on the order ids were handed out in.
#[derive(Debug, Default)]
struct Vocab {
    ids: HashMap<String, u32>,
    df: Vec<u64>,
    free: Vec<u32>,
}

impl Vocab {
    fn add(&mut self, key: &str) -> u32 {
        if let Some(&id) = self.ids.get(key) {
            self.df[id as usize] += 1;
            return id;
        }
        let id = match self.free.pop() {
            Some(id) => {
                self.df[id as usize] = 1;
                id
            }
            None => {
                self.df.push(1);
                (self.df.len() - 1) as u32
            }
        };
        self.ids.insert(key.to_owned(), id);
        id
    }

    fn remove(&mut self, key: &str) {
        if let Some(&id) = self.ids.get(key) {
            let df = &mut self.df[id as usize];
            *df = df.saturating_sub(1);
            if *df == 0 {
                self.ids.remove(key);
                self.free.push(id);
            }
        }
    }

    fn df(&self, id: u32) -> u64 {
        self.df.get(id as usize).copied().unwrap_or(0)
    }
}

/// An entry's variants and answer as feature vectors: the features of all of them (ids in key
/// order) and, per variant and for the answer, its features as (position in `features`,
/// sublinear count).
#[derive(Debug)]
struct EntryVectors {
    features: Vec<(u32, u8)>,
    variants: Vec<Vec<(u16, f32)>>,
    answer: Vec<(u16, f32)>,
}

impl EntryVectors {
    fn new(variants: &[BTreeMap<String, u32>], vocab: &mut Vocab) -> Self {
        let union: BTreeSet<&String> = variants.iter().flat_map(BTreeMap::keys).collect();
        let position: HashMap<&String, u16> = union
            .iter()
            .enumerate()
            .map(|(i, k)| (*k, i.min(usize::from(u16::MAX)) as u16))
            .collect();
        let features = union.iter().map(|k| (vocab.add(k), family_of(k) as u8)).collect();
        let mut variants: Vec<Vec<(u16, f32)>> = variants
            .iter()
            .map(|v| {
                v.iter()
                    .filter_map(|(k, &n)| Some((*position.get(k)?, sublinear(n))))
                    .collect()
            })
            .collect();
        let answer = variants.pop().unwrap_or_default();
        EntryVectors {
            features,
            variants,
            answer,
        }
    }
}

/// The 64-bit key an entry is indexed under: a hash of its id, so that it is the same whatever
/// order entries were added in, and ties in score break the same way in every rebuild.
fn key_of(id: &str) -> u64 {
    // FNV-1a, then a final avalanche (FNV's low bits mix poorly).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h
}

/// The writer and whether it holds uncommitted changes.
struct Pending {
    writer: Option<IndexWriter>,
}

/// One tenant's knowledge base: its entries and a full-text index of the enabled ones.
///
/// Mutations (`upsert`, `remove`, `set_enabled`) take `&mut self` and are buffered; the next
/// search (or [`KnowledgeBase::commit`]) makes them visible, so replaying a log of thousands of
/// changes costs one commit. Searches take `&self`; the type is `Send + Sync`, so share it
/// behind an `RwLock` and call it from blocking threads.
///
/// Results depend only on the set of enabled entries, never on the order of the edits that led
/// to it: ranking statistics are kept exactly for the live entries, and equal scores are ordered
/// by entry id.
pub struct KnowledgeBase {
    entries: HashMap<String, Entry>,
    keys: HashMap<u64, String>,
    index: Index,
    reader: IndexReader,
    fields: Fields,
    stats: Stats,
    vocab: Vocab,
    vectors: HashMap<String, EntryVectors>,
    dirty: AtomicBool,
    pending: Mutex<Pending>,
    tuning: Tuning,
}

impl fmt::Debug for KnowledgeBase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KnowledgeBase")
            .field("entries", &self.entries.len())
            .field("indexed", &self.stats.docs)
            .finish_non_exhaustive()
    }
}

impl Default for KnowledgeBase {
    fn default() -> Self {
        Self::new()
    }
}

impl KnowledgeBase {
    /// An empty knowledge base. Loads the shared Chinese dictionary if no one has yet (about
    /// 80 ms, once per process).
    pub fn new() -> Self {
        yy_nlu::warm_up();
        let mut schema = Schema::builder();
        let text_options = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer("default")
                .set_index_option(IndexRecordOption::WithFreqs),
        );
        let key = schema.add_u64_field("key", INDEXED | FAST);
        let text = [
            schema.add_text_field("title", text_options.clone()),
            schema.add_text_field("questions", text_options.clone()),
            schema.add_text_field("answer", text_options.clone()),
            schema.add_text_field("grams", text_options.clone()),
            schema.add_text_field("trigrams", text_options),
        ];
        let locale = schema.add_text_field("locale", STRING);
        let lang = schema.add_text_field("lang", STRING);
        let tag = schema.add_text_field("tag", STRING);
        let index = Index::create_in_ram(schema.build());
        // A RAM index with a manual reload policy starts no thread and cannot fail to open.
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .expect("a reader on a new, empty RAM index opens");
        KnowledgeBase {
            entries: HashMap::new(),
            keys: HashMap::new(),
            index,
            reader,
            fields: Fields {
                key,
                text,
                locale,
                lang,
                tag,
            },
            stats: Stats::default(),
            vocab: Vocab::default(),
            vectors: HashMap::new(),
            dirty: AtomicBool::new(false),
            pending: Mutex::new(Pending { writer: None }),
            tuning: Tuning::default(),
        }
    }

    /// An empty knowledge base with other ranking constants (for evaluation only).
    #[doc(hidden)]
    pub fn with_tuning(tuning: Tuning) -> Self {
        let mut kb = Self::new();
        kb.tuning = tuning;
        kb
    }

    /// A knowledge base holding `entries`, committed. Later entries replace earlier ones with
    /// the same id.
    pub fn from_entries(entries: impl IntoIterator<Item = Entry>) -> Result<Self, KbError> {
        let mut kb = Self::new();
        for e in entries {
            kb.upsert(e)?;
        }
        kb.commit()?;
        Ok(kb)
    }

    /// Number of entries, enabled or not.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of enabled entries: those searches can find.
    pub fn enabled_len(&self) -> usize {
        self.stats.docs as usize
    }

    /// The entry with this id.
    pub fn get(&self, id: &str) -> Option<&Entry> {
        self.entries.get(id)
    }

    /// Every entry, in no particular order.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    /// Adds an entry or replaces the one with the same id. Returns whether one was replaced.
    /// Refuses an invalid entry, naming the field.
    pub fn upsert(&mut self, entry: Entry) -> Result<bool, KbError> {
        entry.validate()?;
        let key = key_of(&entry.id);
        if let Some(other) = self.keys.get(&key)
            && *other != entry.id
        {
            return Err(KbError::IdCollision {
                id: entry.id,
                other: other.clone(),
            });
        }
        let replaced = match self.entries.remove(&entry.id) {
            Some(old) => {
                if old.enabled {
                    self.unindex(&old)?;
                }
                true
            }
            None => false,
        };
        if entry.enabled {
            self.index_entry(&entry)?;
        }
        self.keys.insert(key, entry.id.clone());
        self.entries.insert(entry.id.clone(), entry);
        Ok(replaced)
    }

    /// Removes an entry. Returns whether there was one.
    pub fn remove(&mut self, id: &str) -> Result<bool, KbError> {
        let Some(old) = self.entries.remove(id) else {
            return Ok(false);
        };
        self.keys.remove(&key_of(id));
        if old.enabled {
            self.unindex(&old)?;
        }
        Ok(true)
    }

    /// Enables or disables an entry. Returns whether there was one.
    pub fn set_enabled(&mut self, id: &str, enabled: bool) -> Result<bool, KbError> {
        let Some(was) = self.entries.get(id).map(|e| e.enabled) else {
            return Ok(false);
        };
        if was != enabled {
            let Some(entry) = self.entries.get(id).cloned() else {
                return Ok(false);
            };
            if enabled {
                self.index_entry(&entry)?;
            } else {
                self.unindex(&entry)?;
            }
            if let Some(e) = self.entries.get_mut(id) {
                e.enabled = enabled;
            }
        }
        Ok(true)
    }

    /// Makes every change so far visible to searches. Searches do this themselves when needed;
    /// call it to pay the cost at a moment of your choosing (after replaying a log, say).
    pub fn commit(&self) -> Result<(), KbError> {
        if !self.dirty.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let Some(mut writer) = pending.writer.take() else {
            return Ok(());
        };
        writer.commit()?;
        let segments = self.index.searchable_segment_ids()?;
        if segments.len() > MAX_SEGMENTS {
            writer.merge(&segments).wait()?;
        }
        // The writer's threads end here; the next change starts a new one. Keeping one per
        // tenant would hold several idle threads per tenant.
        writer.wait_merging_threads()?;
        self.reader.reload()?;
        self.dirty.store(false, Ordering::Release);
        Ok(())
    }

    fn writer(&mut self) -> Result<&mut IndexWriter, KbError> {
        let pending = self.pending.get_mut().unwrap_or_else(|e| e.into_inner());
        self.dirty.store(true, Ordering::Release);
        if let Some(writer) = pending.writer.take() {
            return Ok(pending.writer.insert(writer));
        }
        {
            let options = IndexWriterOptions::builder()
                .memory_budget_per_thread(WRITER_MEMORY)
                .num_worker_threads(1)
                .num_merge_threads(1)
                .build();
            let writer: IndexWriter = self.index.writer_with_options(options)?;
            // Merges happen in `commit`, synchronously, so that no thread outlives a commit.
            writer.set_merge_policy(Box::new(NoMergePolicy));
            Ok(pending.writer.insert(writer))
        }
    }

    fn index_entry(&mut self, e: &Entry) -> Result<(), KbError> {
        let analysed = Analysed::new(e, self.tuning.synonyms);
        let f = self.fields;
        let mut doc = TantivyDocument::default();
        doc.add_u64(f.key, key_of(&e.id));
        let pre = |text: &str, terms: &[text::Term]| PreTokenizedString {
            text: text.to_owned(),
            tokens: text::to_tokens(terms.to_vec()),
        };
        doc.add_pre_tokenized_text(f.text[TextField::Title as usize], pre(&e.title, &analysed.title));
        for (q, terms) in e.questions.iter().zip(&analysed.questions) {
            doc.add_pre_tokenized_text(f.text[TextField::Questions as usize], pre(q, terms));
        }
        doc.add_pre_tokenized_text(f.text[TextField::Answer as usize], pre(&e.answer, &analysed.answer));
        let sources = std::iter::once(&e.title).chain(&e.questions);
        for ((source, grams), trigrams) in sources.zip(&analysed.grams).zip(&analysed.trigrams) {
            doc.add_pre_tokenized_text(f.text[TextField::Grams as usize], pre(source, grams));
            doc.add_pre_tokenized_text(f.text[TextField::Trigrams as usize], pre(source, trigrams));
        }
        let locale = normalise_locale(&e.locale);
        let lang = locale.split('-').next().unwrap_or_default().to_owned();
        doc.add_text(f.locale, &locale);
        doc.add_text(f.lang, &lang);
        for tag in &e.tags {
            doc.add_text(f.tag, tag);
        }
        self.writer()?.add_document(doc)?;
        self.stats.apply(&analysed, true);
        let vectors = EntryVectors::new(&analysed.variant_features(), &mut self.vocab);
        self.vectors.insert(e.id.clone(), vectors);
        Ok(())
    }

    fn unindex(&mut self, e: &Entry) -> Result<(), KbError> {
        let term = Term::from_field_u64(self.fields.key, key_of(&e.id));
        self.writer()?.delete_term(term);
        let analysed = Analysed::new(e, self.tuning.synonyms);
        self.stats.apply(&analysed, false);
        self.vectors.remove(&e.id);
        let union: BTreeSet<String> = analysed
            .variant_features()
            .into_iter()
            .flat_map(BTreeMap::into_keys)
            .collect();
        for key in &union {
            self.vocab.remove(key);
        }
        Ok(())
    }

    /// Searches the enabled entries: the best `limit` by score, equal scores by id, each with
    /// the fields that matched marked. An empty query, or one with no indexed word in it, finds
    /// nothing.
    pub fn search(&self, query: &str, options: &SearchOptions) -> Result<Vec<Hit>, KbError> {
        let limit = options.limit.clamp(1, MAX_LIMIT);
        let q = QueryTerms::new(query, self.tuning.synonyms);
        let ranked = self.rank(&q, options, limit)?;
        Ok(ranked
            .into_iter()
            .filter_map(|r| {
                let e = self.entries.get(r.id)?;
                Some(Hit {
                    id: e.id.clone(),
                    score: r.score,
                    title: e.title.clone(),
                    highlights: highlights(e, &q),
                })
            })
            .collect())
    }

    /// Decides whether an entry answers `query` with at least `threshold` confidence (try
    /// [`DEFAULT_THRESHOLD`]), searching every enabled entry.
    pub fn answer(&self, query: &str, threshold: f32) -> Result<Answer, KbError> {
        self.answer_with(query, threshold, &SearchOptions::default())
    }

    /// [`KnowledgeBase::answer`] among the entries `options` select (its `limit` is ignored).
    ///
    /// Confidence: the best-ranked entry's similarity to the query, in [0, 1]: sublinear TF-IDF
    /// cosines over words (read through the synonym lexicon), Chinese character grams and Latin
    /// trigrams, with its nearest variant, the centroid of its variants and its answer. One
    /// sharing no term scores 0. Because it is a ratio of the query's own weight, it reads alike
    /// for Chinese and English; [`DEFAULT_THRESHOLD`] was chosen on development questions.
    pub fn answer_with(&self, query: &str, threshold: f32, options: &SearchOptions) -> Result<Answer, KbError> {
        let q = QueryTerms::new(query, self.tuning.synonyms);
        let ranked = self.rank(&q, options, ANSWER_CANDIDATES)?;
        let Some(best) = ranked.first() else {
            return Ok(Answer::Fallback { best_confidence: 0.0 });
        };
        // A NaN threshold answers nothing rather than everything.
        if best.confidence.partial_cmp(&threshold).is_none_or(|o| o.is_lt()) {
            return Ok(Answer::Fallback {
                best_confidence: best.confidence,
            });
        }
        Ok(Answer::Found {
            id: best.id.to_owned(),
            confidence: best.confidence,
            alternatives: ranked[1..]
                .iter()
                .filter(|r| r.confidence >= threshold)
                .take(MAX_ALTERNATIVES)
                .map(|r| Alternative {
                    id: r.id.to_owned(),
                    confidence: r.confidence,
                })
                .collect(),
        })
    }

    /// The best `limit` entries for the query as (score, confidence, id), by score then id.
    ///
    /// BM25 over the weighted fields picks the candidates; each candidate's score is then its
    /// confidence (similarity to its nearest variant) plus a share of its BM25 score relative
    /// to the best candidate's, which breaks ties between variants that look alike by the
    /// evidence of the whole entry, answer included.
    fn rank(&self, q: &QueryTerms, options: &SearchOptions, limit: usize) -> Result<Vec<Ranked<'_>>, KbError> {
        if self.stats.docs == 0 {
            return Ok(Vec::new());
        }
        let Some(query) = self.build_query(q, options) else {
            return Ok(Vec::new());
        };
        self.commit()?;
        let searcher = self.reader.searcher();
        let provider = StatsProvider {
            stats: &self.stats,
            fields: &self.fields,
        };
        let found = searcher.search_with_statistics_provider(&query, &AllMatches, &provider)?;
        let mut bm25: Vec<(f32, &str)> = found
            .into_iter()
            .filter_map(|(score, key)| Some((score, self.keys.get(&key)?.as_str())))
            .collect();
        let order = |a: &(f32, &str), b: &(f32, &str)| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1));
        let keep = limit.max(self.tuning.candidates).max(1);
        if bm25.len() > keep {
            bm25.select_nth_unstable_by(keep - 1, order);
            bm25.truncate(keep);
        }
        bm25.sort_by(order);
        let top = bm25.first().map_or(1.0, |b| b.0.max(f32::MIN_POSITIVE));
        let qv = self.query_vector(q);
        let mut ranked: Vec<Ranked<'_>> = bm25
            .into_iter()
            .filter_map(|(score, id)| {
                let e = self.entries.get(id)?;
                let confidence = self.similarity(&qv, self.vectors.get(id)?);
                if confidence < MIN_SIMILARITY {
                    return None;
                }
                Some(Ranked {
                    score: confidence + self.tuning.bm25_share * score / top,
                    confidence,
                    id: e.id.as_str(),
                })
            })
            .collect();
        ranked.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(b.id)));
        ranked.truncate(limit);
        Ok(ranked)
    }

    fn build_query(&self, q: &QueryTerms, options: &SearchOptions) -> Option<Box<dyn Query>> {
        let f = &self.fields;
        let mut should: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let mut add = |field: TextField, term: &str, boost: Score| {
            if self.stats.df(field, term) > 0 {
                let t = Term::from_field_text(f.text[field as usize], term);
                let tq = TermQuery::new(t, IndexRecordOption::WithFreqs);
                should.push((Occur::Should, Box::new(BoostQuery::new(Box::new(tq), boost))));
            }
        };
        let t = self.tuning;
        for w in &q.words {
            add(TextField::Title, w, t.boost_title);
            add(TextField::Questions, w, t.boost_questions);
            add(TextField::Answer, w, t.boost_answer);
        }
        for g in &q.grams {
            add(TextField::Grams, g, t.boost_grams);
        }
        for g in &q.trigrams {
            add(TextField::Trigrams, g, t.boost_trigrams);
        }
        if should.is_empty() {
            return None;
        }
        let text_query: Box<dyn Query> = Box::new(BooleanQuery::new(should));
        let mut filters: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        if let Some(locale) = options.locale.as_deref() {
            let locale = normalise_locale(locale);
            let field = if locale.contains('-') { f.locale } else { f.lang };
            filters.push((Occur::Must, filter(Term::from_field_text(field, &locale))));
        }
        if !options.tags.is_empty() {
            let any: Vec<(Occur, Box<dyn Query>)> = options
                .tags
                .iter()
                .map(|t| (Occur::Should, filter(Term::from_field_text(f.tag, t))))
                .collect();
            filters.push((Occur::Must, Box::new(BooleanQuery::new(any))));
        }
        if filters.is_empty() {
            return Some(text_query);
        }
        filters.push((Occur::Must, text_query));
        Some(Box::new(BooleanQuery::new(filters)))
    }

    /// A feature's weight: its family's weight times its inverse document frequency over the
    /// entries' variants. A feature no entry has gets the largest IDF, so that a question
    /// mostly about something else stays far from every entry.
    fn feature_weight(&self, family: usize, df: u64) -> f32 {
        let n = self.stats.docs.max(1) as f32;
        let df = df.min(self.stats.docs) as f32;
        self.tuning.family_weight[family.min(FAMILIES - 1)] * (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
    }

    fn query_vector(&self, q: &QueryTerms) -> QueryVector {
        let mut weights = HashMap::with_capacity(q.features.len());
        let mut norm = 0.0f32;
        for (key, &count) in &q.features {
            let id = self.vocab.ids.get(key).copied();
            let df = id.map_or(0, |id| self.vocab.df(id));
            let w = sublinear(count) * self.feature_weight(family_of(key), df);
            norm += w * w;
            if let Some(id) = id {
                weights.insert(id, w);
            }
        }
        QueryVector {
            weights,
            norm: norm.sqrt(),
        }
    }

    /// The confidence that an entry answers the query: a mix of the cosine between the query
    /// and the entry's nearest variant (one close paraphrase is strong evidence) and the cosine
    /// with the centroid of its variants (what they share; words from several variants add
    /// up), over sublinear TF-IDF vectors of words, Chinese grams and Latin trigrams.
    fn similarity(&self, q: &QueryVector, e: &EntryVectors) -> f32 {
        if q.norm <= 0.0 {
            return 0.0;
        }
        let w: Vec<f32> = e
            .features
            .iter()
            .map(|&(id, family)| self.feature_weight(usize::from(family), self.vocab.df(id)))
            .collect();
        let query_weight = |i: u16| -> f32 {
            e.features
                .get(usize::from(i))
                .and_then(|(id, _)| q.weights.get(id))
                .copied()
                .unwrap_or(0.0)
        };
        let mut centroid = vec![0.0f32; w.len()];
        let mut nearest = 0.0f32;
        for variant in &e.variants {
            let (mut norm, mut dot) = (0.0f32, 0.0f32);
            for &(i, tf) in variant {
                let x = tf * w.get(usize::from(i)).copied().unwrap_or(0.0);
                norm += x * x;
                dot += x * query_weight(i);
            }
            if norm <= 0.0 {
                continue;
            }
            let norm = norm.sqrt();
            nearest = nearest.max(dot / (norm * q.norm));
            for &(i, tf) in variant {
                if let (Some(c), Some(&wi)) = (centroid.get_mut(usize::from(i)), w.get(usize::from(i))) {
                    *c += tf * wi / norm;
                }
            }
        }
        let (mut c_norm, mut c_dot) = (0.0f32, 0.0f32);
        for (i, &c) in centroid.iter().enumerate() {
            c_norm += c * c;
            c_dot += c * query_weight(i as u16);
        }
        let to_centroid = if c_norm > 0.0 {
            c_dot / (c_norm.sqrt() * q.norm)
        } else {
            0.0
        };
        let (mut a_norm, mut a_dot) = (0.0f32, 0.0f32);
        for &(i, tf) in &e.answer {
            let x = tf * w.get(usize::from(i)).copied().unwrap_or(0.0);
            a_norm += x * x;
            a_dot += x * query_weight(i);
        }
        let to_answer = if a_norm > 0.0 {
            a_dot / (a_norm.sqrt() * q.norm)
        } else {
            0.0
        };
        let t = &self.tuning;
        let (c, a) = (t.centroid_share.clamp(0.0, 1.0), t.answer_share.clamp(0.0, 1.0));
        ((1.0 - c - a).max(0.0) * nearest + c * to_centroid + a * to_answer).clamp(0.0, 1.0)
    }
}

/// A query's similarity features as weights by feature id, and the length of the whole vector
/// (features no entry has included).
#[derive(Debug)]
struct QueryVector {
    weights: HashMap<u32, f32>,
    norm: f32,
}

/// One ranked entry.
#[derive(Debug)]
struct Ranked<'a> {
    score: f32,
    confidence: f32,
    id: &'a str,
}

/// A filter clause: must match, adds nothing to the score.
fn filter(term: Term) -> Box<dyn Query> {
    Box::new(ConstScoreQuery::new(
        Box::new(TermQuery::new(term, IndexRecordOption::Basic)),
        0.0,
    ))
}

/// A query's distinct words and grams, sorted, so that clauses (and float sums) come in the
/// same order for the same query.
#[derive(Debug)]
struct QueryTerms {
    words: Vec<String>,
    grams: Vec<String>,
    trigrams: Vec<String>,
    /// Similarity features with counts, in key order.
    features: BTreeMap<String, u32>,
    synonyms: bool,
    /// Bigrams only: single characters match too widely to be worth marking.
    marked_grams: BTreeSet<String>,
}

impl QueryTerms {
    fn new(query: &str, synonyms: bool) -> Self {
        let query = match query.char_indices().nth(MAX_QUERY_CHARS) {
            Some((cut, _)) => &query[..cut],
            None => query,
        };
        let distinct = |terms: Vec<text::Term>, max: usize| -> Vec<String> {
            let mut seen = BTreeSet::new();
            for t in terms {
                if seen.len() >= max {
                    break;
                }
                seen.insert(t.text);
            }
            seen.into_iter().collect()
        };
        let all_words = text::words_with(query, synonyms);
        let all_grams = text::grams(query);
        let all_trigrams = text::trigrams(&all_words);
        let mut features = features(&all_words, &all_grams, &all_trigrams);
        while features.len() > MAX_QUERY_FEATURES {
            features.pop_last();
        }
        let words = distinct(all_words, MAX_QUERY_WORDS);
        let grams = distinct(all_grams, MAX_QUERY_GRAMS);
        let trigrams = distinct(all_trigrams, MAX_QUERY_GRAMS);
        let marked_grams = grams.iter().filter(|g| g.chars().count() > 1).cloned().collect();
        QueryTerms {
            words,
            grams,
            trigrams,
            features,
            synonyms,
            marked_grams,
        }
    }

    fn marks(&self, text: &str) -> Vec<std::ops::Range<usize>> {
        let mut ranges: Vec<_> = text::words_with(text, self.synonyms)
            .into_iter()
            .filter(|t| self.words.binary_search(&t.text).is_ok())
            .map(|t| t.span)
            .collect();
        if !self.marked_grams.is_empty() {
            ranges.extend(
                text::grams(text)
                    .into_iter()
                    .filter(|t| self.marked_grams.contains(&t.text))
                    .map(|t| t.span),
            );
        }
        ranges
    }
}

fn highlights(e: &Entry, q: &QueryTerms) -> Vec<Highlight> {
    let mut out = Vec::new();
    let mut mark = |field: String, source: &str, max_chars: usize| {
        if let Some(snippet) = text::highlight(source, &mut q.marks(source), max_chars) {
            out.push(Highlight { field, snippet });
        }
    };
    mark("title".into(), &e.title, usize::MAX);
    for (i, question) in e.questions.iter().enumerate() {
        mark(format!("questions[{i}]"), question, usize::MAX);
    }
    mark("answer".into(), &e.answer, SNIPPET_CHARS);
    out
}

/// Collects every matching document as (score, key). Every match is scored (no top-k pruning),
/// so that which entries make the cut depends only on scores and ids, not on segment layout.
struct AllMatches;

struct SegmentMatches {
    keys: Column<u64>,
    found: Vec<(f32, u64)>,
}

impl Collector for AllMatches {
    type Fruit = Vec<(f32, u64)>;
    type Child = SegmentMatches;

    fn for_segment(&self, _: u32, segment: &SegmentReader) -> tantivy::Result<SegmentMatches> {
        Ok(SegmentMatches {
            keys: segment.fast_fields().u64("key")?,
            found: Vec::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        true
    }

    fn merge_fruits(&self, fruits: Vec<Vec<(f32, u64)>>) -> tantivy::Result<Vec<(f32, u64)>> {
        Ok(fruits.into_iter().flatten().collect())
    }
}

impl SegmentCollector for SegmentMatches {
    type Fruit = Vec<(f32, u64)>;

    fn collect(&mut self, doc: DocId, score: Score) {
        if score > 0.0
            && let Some(key) = self.keys.first(doc)
        {
            self.found.push((score, key));
        }
    }

    fn harvest(self) -> Vec<(f32, u64)> {
        self.found
    }
}
