//! Intent classification from example utterances.
//!
//! Each message becomes a sparse TF-IDF vector over several feature families: words (jieba words
//! for Chinese, stemmed words otherwise), Chinese character unigrams and bigrams, character
//! trigrams of Latin words (they survive typos: `refnd`, `pasword`), adjacent word pairs,
//! placeholders for long numbers and identifier-like codes, and a cue shared by all strongly
//! positive or negative words of the sentiment lexicons (so "垃圾" and "rubbish" look alike).
//! Besides IDF, each feature is weighted by how concentrated it is in one intent, so words that
//! every intent uses count for little. An intent's score mixes the cosine similarity to its
//! centroid (what its examples share) with the similarity to its nearest example (one close
//! paraphrase is strong evidence). Scores become confidences with a softmax at a fixed
//! temperature over the intents plus "none of these", which has a constant score and the
//! similarity to the nearest of a list of out-of-scope messages (small talk, general questions).
//! A message unlike every example, or like one of those, gets low confidence everywhere, and the
//! confidences of the intents sum to less than 1. The out-of-scope messages also take part in the
//! concentration, so words as common in small talk as in one intent count little for it.

use serde::{Deserialize, Serialize};

use crate::error::NluError;
use crate::language::{Language, detect_language};
use crate::text::{FastMap, Fnv};
use crate::tokenize::{Kind, Mode, Scratch, scan};

/// One intent and the utterances that express it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntentDef {
    /// The intent's name, as reported in [`Classification::top`]. Unique within a set; 1 to 64
    /// characters, no control characters.
    pub name: String,
    /// Example messages, in any mix of Chinese and English. A few dozen varied ones work well;
    /// each must contain at least one word that is not a stop word.
    pub examples: Vec<String>,
}

/// Decision thresholds applied to calibrated confidences.
///
/// Invariant (checked by [`IntentModel::with_thresholds`]): both values are within `[0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// The top intent's confidence below which the message is not understood
    /// ([`Classification::fallback`]). Default 0.25, the value that maximised leave-one-out
    /// accuracy over the built-in examples plus out-of-scope messages; raise it to hand fewer
    /// messages to the bot.
    pub fallback_below: f32,
    /// The gap between the two best confidences below which the message is
    /// [`Classification::ambiguous`]. Default 0.2.
    pub ambiguity_gap: f32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            fallback_below: 0.25,
            ambiguity_gap: 0.2,
        }
    }
}

impl Thresholds {
    fn validate(self) -> Result<Self, NluError> {
        for (name, value) in [
            ("fallback_below", self.fallback_below),
            ("ambiguity_gap", self.ambiguity_gap),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(NluError::InvalidThreshold { name, value });
            }
        }
        Ok(self)
    }
}

/// The result of classifying one message.
///
/// Invariants: `top` holds the `min(3, number of intents)` most confident intents, best first,
/// each confidence within `[0, 1]`, and their sum is at most 1 (the remainder is the belief that
/// no intent applies or that a lower-ranked one does).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Classification {
    /// `(intent, confidence)`, best first.
    pub top: Vec<(String, f32)>,
    /// The best confidence is below [`Thresholds::fallback_below`]: treat the message as not
    /// understood (out of scope, or too little to go on).
    pub fallback: bool,
    /// The two best confidences are closer than [`Thresholds::ambiguity_gap`]. Independent of
    /// `fallback`; a router typically checks `fallback` first.
    pub ambiguous: bool,
    /// The message's language.
    pub language: Language,
}

impl Classification {
    /// The best intent, unless the message fell back.
    pub fn intent(&self) -> Option<&str> {
        if self.fallback {
            None
        } else {
            self.top.first().map(|(name, _)| name.as_str())
        }
    }

    /// The best intent's confidence (0 when there is none).
    pub fn confidence(&self) -> f32 {
        self.top.first().map_or(0.0, |&(_, c)| c)
    }
}

/// Feature families; each hashes into its own namespace and has its own weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Family {
    Word = 0,
    HanUnigram = 1,
    HanBigram = 2,
    LatinTrigram = 3,
    WordPair = 4,
    LongNumber = 5,
    Code = 6,
    Emoji = 7,
    /// A strongly positive or negative sentiment word, whichever word it is.
    SentimentCue = 8,
}

pub(crate) const FAMILIES: usize = 9;

/// Lexicon values at or beyond which a word also yields a [`Family::SentimentCue`].
const CUE_VALUE: f32 = 2.0;

/// Hyperparameters. The defaults were chosen by leave-one-out cross-validation over the default
/// intent set plus the default out-of-scope messages (`calibrate_leave_one_out` in the tests),
/// minimising the log loss of the calibrated confidences.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Params {
    /// Weight of each [`Family`], indexed by its discriminant.
    pub(crate) family_weight: [f32; FAMILIES],
    /// IDF given to a feature no example has, relative to the IDF of a feature seen once.
    /// Unseen features still count in a message's length, so a message that is mostly unknown
    /// words scores low everywhere.
    pub(crate) unseen_idf_scale: f32,
    /// Share of the centroid similarity in an intent's score; the rest is the nearest example's.
    pub(crate) centroid_share: f32,
    /// Softmax temperature over scores (cosine similarities, 0 to 1).
    pub(crate) temperature: f32,
    /// The score of "none of these" in the softmax.
    pub(crate) none_score: f32,
    /// Exponent of a feature's concentration in one intent (the smoothed largest share of its
    /// examples that belong to one intent) applied to its weight; 0 turns it off. Words spread
    /// over many intents ("please", "订单") then count less than words typical of one.
    pub(crate) concentration_power: f32,
    /// Scale of the similarity to the nearest out-of-scope example when it joins "none of these"
    /// in the softmax; 0 leaves "none" at its constant score.
    pub(crate) out_of_scope_weight: f32,
}

pub(crate) const DEFAULT_PARAMS: Params = Params {
    family_weight: [0.6, 0.42, 0.7, 0.35, 0.5, 0.5, 0.5, 0.5, 0.55],
    unseen_idf_scale: 0.5,
    centroid_share: 0.5,
    temperature: 0.04,
    none_score: 0.1,
    concentration_power: 1.0,
    out_of_scope_weight: 0.6,
};

/// Additive smoothing of the per-intent counts behind the concentration: a feature seen in one
/// example is trusted less than one seen in five examples of the same intent.
const CONCENTRATION_SMOOTHING: f32 = 0.2;

/// A feature of a message: its hash, family and number of occurrences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Feat {
    pub(crate) hash: u64,
    pub(crate) family: u8,
    pub(crate) count: u32,
}

fn hash_str(family: Family, s: &str) -> u64 {
    let mut h = Fnv::new(family as u8);
    h.bytes(s.as_bytes());
    h.finish()
}

/// Extracts the aggregated features of `text` into `out` (cleared first), sorted by hash.
pub(crate) fn extract_features(text: &str, scratch: &mut Scratch, raw: &mut Vec<(u64, u8)>, out: &mut Vec<Feat>) {
    raw.clear();
    out.clear();
    // The previous kept Chinese character and the byte where it ends: a bigram joins two kept
    // characters only when they were adjacent in the text, so dropping a stop word never invents
    // a bigram across it.
    let mut prev_han: Option<(char, usize)> = None;
    let mut prev_word: Option<u64> = None;
    scan(text, scratch, Mode::Segmented, |t| {
        if t.kind != Kind::Han {
            prev_han = None;
        }
        if t.kind != Kind::Word {
            prev_word = None;
        }
        if t.stop {
            prev_han = None;
            return;
        }
        match t.kind {
            Kind::Han => {
                raw.push((hash_str(Family::Word, t.text), Family::Word as u8));
                push_cue(t.text, true, raw);
                let mut pos = t.span.start;
                for c in t.text.chars() {
                    let mut h = Fnv::new(Family::HanUnigram as u8);
                    h.char(c);
                    raw.push((h.finish(), Family::HanUnigram as u8));
                    if let Some((p, end)) = prev_han
                        && end == pos
                    {
                        let mut h = Fnv::new(Family::HanBigram as u8);
                        h.char(p);
                        h.char(c);
                        raw.push((h.finish(), Family::HanBigram as u8));
                    }
                    pos += c.len_utf8();
                    prev_han = Some((c, pos));
                }
            }
            Kind::Word => {
                let h = hash_str(Family::Word, t.text);
                raw.push((h, Family::Word as u8));
                if let Some(p) = prev_word {
                    let mut pair = Fnv::new(Family::WordPair as u8);
                    pair.bytes(&p.to_le_bytes());
                    pair.bytes(&h.to_le_bytes());
                    raw.push((pair.finish(), Family::WordPair as u8));
                }
                prev_word = Some(h);
                push_trigrams(t.surface, raw);
                push_cue(t.text, false, raw);
            }
            Kind::Number => {
                if t.text.len() >= 6 {
                    raw.push((hash_str(Family::LongNumber, ""), Family::LongNumber as u8));
                }
            }
            Kind::Code => {
                // Identifier-like codes (`a1024`, `so20230001`) share one placeholder so that any
                // order number looks alike; short ones (`3q`, `mp3`) are words in their own right.
                let digits = t.text.bytes().filter(u8::is_ascii_digit).count();
                if t.text.len() >= 5 && digits >= 3 {
                    raw.push((hash_str(Family::Code, ""), Family::Code as u8));
                } else {
                    raw.push((hash_str(Family::Word, t.text), Family::Word as u8));
                }
            }
            Kind::Emoji => raw.push((hash_str(Family::Emoji, t.text), Family::Emoji as u8)),
            Kind::HanRun | Kind::Punct => {}
        }
    });
    raw.sort_unstable_by_key(|&(h, _)| h);
    for &(hash, family) in raw.iter() {
        match out.last_mut() {
            Some(last) if last.hash == hash => last.count += 1,
            _ => out.push(Feat { hash, family, count: 1 }),
        }
    }
}

fn push_cue(word: &str, chinese: bool, raw: &mut Vec<(u64, u8)>) {
    if let Some(v) = crate::sentiment::word_value(word, chinese) {
        let polarity = if v >= CUE_VALUE {
            "+"
        } else if v <= -CUE_VALUE {
            "-"
        } else {
            return;
        };
        raw.push((hash_str(Family::SentimentCue, polarity), Family::SentimentCue as u8));
    }
}

/// Character trigrams of `^word$`.
fn push_trigrams(word: &str, raw: &mut Vec<(u64, u8)>) {
    let mut window = ['^', '^', '^'];
    let mut filled = 1;
    for c in word.chars().chain(std::iter::once('$')) {
        window = [window[1], window[2], c];
        filled += 1;
        if filled >= 3 {
            let mut h = Fnv::new(Family::LatinTrigram as u8);
            for ch in window {
                h.char(ch);
            }
            raw.push((h.finish(), Family::LatinTrigram as u8));
        }
    }
}

/// Compressed sparse rows: for feature `f`, entries `start[f]..start[f + 1]` of `target`/`weight`.
#[derive(Debug, Clone, Default)]
struct Postings {
    start: Vec<u32>,
    target: Vec<u32>,
    weight: Vec<f32>,
}

impl Postings {
    fn build(features: usize, rows: &[Vec<(u32, f32)>]) -> Self {
        let mut counts = vec![0u32; features + 1];
        for row in rows {
            for &(f, _) in row {
                counts[f as usize + 1] += 1;
            }
        }
        for i in 1..counts.len() {
            counts[i] += counts[i - 1];
        }
        let total = counts[features] as usize;
        let mut fill = counts.clone();
        let mut target = vec![0u32; total];
        let mut weight = vec![0f32; total];
        for (r, row) in rows.iter().enumerate() {
            for &(f, w) in row {
                let slot = fill[f as usize] as usize;
                target[slot] = r as u32;
                weight[slot] = w;
                fill[f as usize] += 1;
            }
        }
        Postings {
            start: counts,
            target,
            weight,
        }
    }

    fn row(&self, f: u32) -> (&[u32], &[f32]) {
        let (a, b) = (self.start[f as usize] as usize, self.start[f as usize + 1] as usize);
        (&self.target[a..b], &self.weight[a..b])
    }
}

/// A trained intent classifier. Immutable, `Send + Sync`; share it behind an `Arc`.
///
/// Training is deterministic: the same definitions always give the same model.
#[derive(Debug, Clone)]
pub struct IntentModel {
    names: Vec<String>,
    index: FastMap<u64, u32>,
    idf: Vec<f32>,
    unseen_idf: f32,
    examples: Postings,
    centroids: Postings,
    /// The intent of each example; `names.len()` marks an out-of-scope example.
    example_intent: Vec<u32>,
    params: Params,
    thresholds: Thresholds,
}

/// Examples with extracted features, ready to build a model from. Out-of-scope examples are in
/// `docs` with the intent `names.len()`.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    pub(crate) names: Vec<String>,
    pub(crate) docs: Vec<Vec<Feat>>,
    pub(crate) doc_intent: Vec<u32>,
}

fn truncate_chars(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

pub(crate) fn prepare(defs: &[IntentDef], out_of_scope: &[String]) -> Result<Prepared, NluError> {
    if defs.is_empty() {
        return Err(NluError::NoIntents);
    }
    let mut names: Vec<String> = Vec::with_capacity(defs.len());
    let mut docs = Vec::new();
    let mut doc_intent = Vec::new();
    let mut scratch = Scratch::default();
    let mut raw = Vec::new();
    for (i, def) in defs.iter().enumerate() {
        let name = def.name.as_str();
        let reason = if name.trim().is_empty() {
            Some("empty")
        } else if name.chars().count() > 64 {
            Some("longer than 64 characters")
        } else if name.chars().any(char::is_control) {
            Some("contains control characters")
        } else if name.trim() != name {
            Some("leading or trailing whitespace")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(NluError::InvalidIntentName {
                name: truncate_chars(name, 80),
                reason,
            });
        }
        if names.iter().any(|n| n == name) {
            return Err(NluError::DuplicateIntent {
                intent: name.to_owned(),
            });
        }
        if def.examples.is_empty() {
            return Err(NluError::NoExamples {
                intent: name.to_owned(),
            });
        }
        for (index, example) in def.examples.iter().enumerate() {
            let mut feats = Vec::new();
            extract_features(example, &mut scratch, &mut raw, &mut feats);
            if feats.is_empty() {
                return Err(NluError::UnusableExample {
                    intent: name.to_owned(),
                    index,
                    example: truncate_chars(example, 80),
                });
            }
            docs.push(feats);
            doc_intent.push(i as u32);
        }
        names.push(name.to_owned());
    }
    for example in out_of_scope {
        let mut feats = Vec::new();
        extract_features(example, &mut scratch, &mut raw, &mut feats);
        // Nothing to compare with, so nothing to learn from; unlike an intent's example this is
        // harmless, and a tenant's list need not be checked word by word.
        if !feats.is_empty() {
            docs.push(feats);
            doc_intent.push(names.len() as u32);
        }
    }
    Ok(Prepared {
        names,
        docs,
        doc_intent,
    })
}

fn sublinear(count: u32) -> f32 {
    1.0 + (count as f32).ln()
}

fn normalise(row: &mut [(u32, f32)]) {
    let norm = row.iter().map(|&(_, w)| w * w).sum::<f32>().sqrt();
    if norm > 0.0 {
        for (_, w) in row.iter_mut() {
            *w /= norm;
        }
    }
}

impl IntentModel {
    /// Trains a model on `defs` with the default [`Thresholds`].
    ///
    /// Errors name the offending intent: no intents, an invalid or repeated name, an intent
    /// without examples, or an example with nothing to learn from. Takes a few milliseconds per
    /// hundred examples.
    ///
    /// The built-in out-of-scope messages ([`default_out_of_scope`]) are learnt along with `defs`;
    /// [`IntentModel::train_with_out_of_scope`] replaces them.
    pub fn train(defs: &[IntentDef]) -> Result<Self, NluError> {
        Self::train_with_out_of_scope(defs, &default_out_of_scope())
    }

    /// Trains a model on `defs` that also learns what none of them is from `out_of_scope`:
    /// messages that should fall back (small talk, topics the tenant does not serve). The more a
    /// message resembles one of them, the more confidence goes to "none of these"; words they
    /// share with an intent's examples count less for that intent. An empty list turns this off.
    /// Messages with nothing but stop words are skipped.
    pub fn train_with_out_of_scope(defs: &[IntentDef], out_of_scope: &[String]) -> Result<Self, NluError> {
        Ok(Self::build(&prepare(defs, out_of_scope)?, DEFAULT_PARAMS))
    }

    /// The model for [`default_intents`]: order status, shipping, refunds, complaints, human
    /// handoff, greetings, thanks, account and login, and payment, in Chinese and English.
    pub fn default_bilingual() -> Self {
        // The definitions are compiled in and `default_intents_train` proves they train, so this
        // cannot fail in a tested build.
        Self::train(&default_intents()).unwrap_or_else(|e| panic!("built-in intents do not train: {e}"))
    }

    /// The same model deciding with other thresholds; refused unless both are within `[0, 1]`.
    pub fn with_thresholds(mut self, thresholds: Thresholds) -> Result<Self, NluError> {
        self.thresholds = thresholds.validate()?;
        Ok(self)
    }

    /// The thresholds in use.
    pub fn thresholds(&self) -> Thresholds {
        self.thresholds
    }

    /// The intent names, in definition order.
    pub fn intents(&self) -> impl ExactSizeIterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }

    pub(crate) fn build(prep: &Prepared, params: Params) -> Self {
        let mut index: FastMap<u64, u32> = FastMap::default();
        let mut df: Vec<u32> = Vec::new();
        for doc in &prep.docs {
            for f in doc {
                let next = index.len() as u32;
                let id = *index.entry(f.hash).or_insert(next);
                if id == next {
                    df.push(0);
                }
                df[id as usize] += 1;
            }
        }
        let n = prep.docs.len() as f32;
        let mut idf: Vec<f32> = df.iter().map(|&d| ((1.0 + n) / (1.0 + d as f32)).ln() + 1.0).collect();
        if params.concentration_power > 0.0 {
            // The out-of-scope examples are one more class: a word as common in small talk as in
            // an intent is not typical of that intent.
            let intents = prep.names.len() + 1;
            let mut per_intent = vec![0u32; index.len() * intents];
            for (doc, &intent) in prep.docs.iter().zip(&prep.doc_intent) {
                for f in doc {
                    if let Some(&id) = index.get(&f.hash) {
                        per_intent[id as usize * intents + intent as usize] += 1;
                    }
                }
            }
            let smoothing = CONCENTRATION_SMOOTHING;
            for (id, w) in idf.iter_mut().enumerate() {
                let counts = &per_intent[id * intents..(id + 1) * intents];
                let max = counts.iter().copied().max().unwrap_or(0) as f32;
                let total = counts.iter().sum::<u32>() as f32;
                let share = (max + smoothing) / (total + smoothing * intents as f32);
                *w *= share.powf(params.concentration_power);
            }
        }
        let unseen_idf = (((1.0 + n) / 2.0).ln() + 1.0) * params.unseen_idf_scale;

        let rows: Vec<Vec<(u32, f32)>> = prep
            .docs
            .iter()
            .map(|doc| {
                let mut row: Vec<(u32, f32)> = doc
                    .iter()
                    .filter_map(|f| {
                        let id = *index.get(&f.hash)?;
                        let w = sublinear(f.count) * params.family_weight[f.family as usize] * idf[id as usize];
                        Some((id, w))
                    })
                    .collect();
                normalise(&mut row);
                row
            })
            .collect();

        let features = index.len();
        let mut dense = vec![0f32; features];
        let mut centroid_rows = Vec::with_capacity(prep.names.len());
        for intent in 0..prep.names.len() as u32 {
            dense.iter_mut().for_each(|x| *x = 0.0);
            for (row, _) in rows.iter().zip(&prep.doc_intent).filter(|&(_, &d)| d == intent) {
                for &(f, w) in row {
                    dense[f as usize] += w;
                }
            }
            let mut row: Vec<(u32, f32)> = dense
                .iter()
                .enumerate()
                .filter(|&(_, &w)| w > 0.0)
                .map(|(f, &w)| (f as u32, w))
                .collect();
            normalise(&mut row);
            centroid_rows.push(row);
        }

        IntentModel {
            names: prep.names.clone(),
            idf,
            unseen_idf,
            examples: Postings::build(features, &rows),
            centroids: Postings::build(features, &centroid_rows),
            example_intent: prep.doc_intent.clone(),
            index,
            params,
            thresholds: Thresholds::default(),
        }
    }

    /// Classifies one message. Never panics; cost grows linearly with the message.
    pub fn classify(&self, text: &str) -> Classification {
        self.classify_in(text, detect_language(text))
    }

    pub(crate) fn classify_in(&self, text: &str, language: Language) -> Classification {
        let mut scratch = Scratch::default();
        let mut raw = Vec::new();
        let mut feats = Vec::new();
        extract_features(text, &mut scratch, &mut raw, &mut feats);
        let confidences = self.confidences(&feats);
        self.decide(&confidences, language)
    }

    /// Calibrated per-intent confidences for a message's features; they sum to at most 1.
    fn confidences(&self, feats: &[Feat]) -> Vec<f32> {
        calibrate(&self.scores(feats), &self.params)
    }

    /// Per-intent similarity scores in `[0, 1]` for a message's features, followed by the
    /// similarity to the nearest out-of-scope example.
    pub(crate) fn scores(&self, feats: &[Feat]) -> Vec<f32> {
        let mut query: Vec<(u32, f32)> = Vec::with_capacity(feats.len());
        let mut norm2 = 0f32;
        for f in feats {
            let fam = self.params.family_weight.get(f.family as usize).copied().unwrap_or(0.0);
            match self.index.get(&f.hash) {
                Some(&id) => {
                    let w = sublinear(f.count) * fam * self.idf[id as usize];
                    norm2 += w * w;
                    query.push((id, w));
                }
                None => {
                    let w = sublinear(f.count) * fam * self.unseen_idf;
                    norm2 += w * w;
                }
            }
        }
        let intents = self.names.len();
        let mut centroid = vec![0f32; intents];
        let mut nearest = vec![0f32; intents + 1];
        if norm2 > 0.0 && !query.is_empty() {
            let inv = 1.0 / norm2.sqrt();
            for (_, w) in query.iter_mut() {
                *w *= inv;
            }
            let mut per_example = vec![0f32; self.example_intent.len()];
            for &(f, w) in &query {
                let (targets, weights) = self.examples.row(f);
                for (&t, &x) in targets.iter().zip(weights) {
                    per_example[t as usize] += w * x;
                }
                let (targets, weights) = self.centroids.row(f);
                for (&t, &x) in targets.iter().zip(weights) {
                    centroid[t as usize] += w * x;
                }
            }
            for (&s, &intent) in per_example.iter().zip(&self.example_intent) {
                let best = &mut nearest[intent as usize];
                if s > *best {
                    *best = s;
                }
            }
        }
        let share = self.params.centroid_share;
        let mut scores: Vec<f32> = centroid
            .iter()
            .zip(&nearest)
            .map(|(&c, &n)| (share * c + (1.0 - share) * n).clamp(0.0, 1.0))
            .collect();
        scores.push(nearest[intents].clamp(0.0, 1.0));
        scores
    }

    fn decide(&self, confidences: &[f32], language: Language) -> Classification {
        let mut order: Vec<usize> = (0..confidences.len()).collect();
        // Stable sort: equal confidences keep definition order, so results are deterministic.
        order.sort_by(|&a, &b| confidences[b].total_cmp(&confidences[a]));
        let top: Vec<(String, f32)> = order
            .iter()
            .take(3)
            .map(|&i| (self.names[i].clone(), confidences[i].clamp(0.0, 1.0)))
            .collect();
        let first = top.first().map_or(0.0, |t| t.1);
        let second = top.get(1).map_or(0.0, |t| t.1);
        Classification {
            fallback: first < self.thresholds.fallback_below,
            ambiguous: top.len() >= 2 && first - second < self.thresholds.ambiguity_gap,
            top,
            language,
        }
    }

    /// How many distinct features the model learnt from its examples.
    pub fn feature_count(&self) -> usize {
        self.index.len()
    }
}

/// Softmax over `scores / T` of the intents (all of `scores` but the last) and two kinds of "none
/// of these": the constant "none" score and the weighted out-of-scope similarity (the last of
/// `scores`). The returned confidences are the intents' only, so they sum to less than 1.
pub(crate) fn calibrate(scores: &[f32], params: &Params) -> Vec<f32> {
    let t = params.temperature.max(1e-4);
    let (intents, out_of_scope) = scores.split_at(scores.len().saturating_sub(1));
    let none = params.none_score / t;
    let other = out_of_scope.first().map_or(f32::NEG_INFINITY, |&s| {
        if params.out_of_scope_weight > 0.0 {
            s * params.out_of_scope_weight / t
        } else {
            f32::NEG_INFINITY
        }
    });
    let max = intents.iter().map(|&s| s / t).fold(none.max(other), f32::max);
    let exps: Vec<f32> = intents.iter().map(|&s| (s / t - max).exp()).collect();
    let total: f32 = exps.iter().sum::<f32>() + (none - max).exp() + (other - max).exp();
    exps.iter()
        .map(|&e| if total > 0.0 { e / total } else { 0.0 })
        .collect()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IntentFile {
    intents: Vec<FileIntent>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileIntent {
    name: String,
    /// Documents the intent for people editing the file; accepted here only so that
    /// `deny_unknown_fields` can still catch misspelt keys.
    #[serde(default)]
    #[allow(dead_code)]
    description: String,
    examples: Vec<String>,
}

/// Reads intent definitions from JSON in the format of the built-in set:
/// `{"intents": [{"name": "...", "description": "...", "examples": ["...", ...]}, ...]}`
/// (`description` optional and informative only; other fields are refused).
pub fn intents_from_json(json: &str) -> Result<Vec<IntentDef>, NluError> {
    let file: IntentFile = serde_json::from_str(json).map_err(|e| NluError::InvalidDefinitions(e.to_string()))?;
    Ok(file
        .intents
        .into_iter()
        .map(|i| IntentDef {
            name: i.name,
            examples: i.examples,
        })
        .collect())
}

/// The built-in bilingual intent set (`data/intents.json`), to use as is or to extend with
/// [`extend_intents`] before [`IntentModel::train`].
pub fn default_intents() -> Vec<IntentDef> {
    // Compiled in and checked by `default_intents_parse_and_are_balanced`.
    intents_from_json(include_str!("../data/intents.json"))
        .unwrap_or_else(|e| panic!("built-in intents are invalid: {e}"))
}

/// The built-in out-of-scope messages (`data/out_of_scope.txt`): small talk and general questions
/// in Chinese and English that [`IntentModel::train`] learns should fall back. Extend the list for
/// a tenant's own off-topic traffic and pass it to [`IntentModel::train_with_out_of_scope`].
pub fn default_out_of_scope() -> Vec<String> {
    include_str!("../data/out_of_scope.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// Merges `extra` into `base`: examples of an intent already in `base` are appended to it (exact
/// duplicates skipped), new intents are added at the end. Order is otherwise kept.
pub fn extend_intents(base: &mut Vec<IntentDef>, extra: impl IntoIterator<Item = IntentDef>) {
    for def in extra {
        match base.iter_mut().find(|b| b.name == def.name) {
            Some(existing) => {
                for e in def.examples {
                    if !existing.examples.contains(&e) {
                        existing.examples.push(e);
                    }
                }
            }
            None => base.push(def),
        }
    }
}

#[cfg(test)]
mod tests;
