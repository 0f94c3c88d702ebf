//! Lexicon-based sentiment for Chinese and English, with negation, intensifiers, contrast,
//! exclamation and capitals, and emoji.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::text::FastMap;
use crate::tokenize::{Kind, Mode, Scratch, scan};

/// The polarity of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SentimentLabel {
    /// `score <= -NEUTRAL_BAND`.
    Negative,
    /// `-NEUTRAL_BAND < score < NEUTRAL_BAND`.
    Neutral,
    /// `score >= NEUTRAL_BAND`.
    Positive,
}

/// The sentiment of a message.
///
/// Invariants: `score` is finite and within `[-1, 1]`, and `label` is derived from `score` with
/// [`NEUTRAL_BAND`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sentiment {
    /// From -1 (very negative) through 0 (neutral) to 1 (very positive).
    pub score: f32,
    /// The polarity of `score`.
    pub label: SentimentLabel,
}

impl Sentiment {
    /// A sentiment with `score` clamped into `[-1, 1]` (NaN becomes 0) and its label.
    pub fn from_score(score: f32) -> Self {
        let score = if score.is_nan() { 0.0 } else { score.clamp(-1.0, 1.0) };
        let label = if score >= NEUTRAL_BAND {
            SentimentLabel::Positive
        } else if score <= -NEUTRAL_BAND {
            SentimentLabel::Negative
        } else {
            SentimentLabel::Neutral
        };
        Sentiment { score, label }
    }
}

/// Scores closer to 0 than this are neutral. A single mild word (a problem report like "failed",
/// a lukewarm "ok") stays neutral; a clear sentiment word or an intensified mild one does not.
pub const NEUTRAL_BAND: f32 = 0.35;

/// Squashes the summed lexicon values into (-1, 1) as `x / sqrt(x² + ALPHA)`: one strong word
/// (±3.5, "气死", "worst") lands around ±0.75, and further words approach ±1 without reaching it.
const ALPHA: f64 = 10.0;
/// A sentiment word written in capitals ("TERRIBLE") is shouted.
const CAPS_FACTOR: f64 = 1.4;
/// Each `!` (up to three) strengthens the whole message by this share.
const EXCLAMATION_STEP: f64 = 0.15;
/// How many following tokens a negator reaches ("not very good", "没有及时处理").
const NEGATION_SCOPE: u8 = 3;
/// How many following tokens an intensifier reaches.
const INTENSIFIER_SCOPE: u8 = 2;
/// A negated positive turns most of the way negative ("not good"); a negated negative only
/// becomes mildly positive ("not bad", "没有问题" is no praise).
const NEGATED_POSITIVE: f64 = -0.75;
const NEGATED_NEGATIVE: f64 = -0.4;
/// What comes after "but"/"但是" outweighs what came before.
const BEFORE_CONTRAST: f64 = 0.5;
const AFTER_CONTRAST: f64 = 1.5;

/// One lexicon entry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Entry {
    Word(f32),
    Negator,
    Intensifier(f32),
    Adverb { value: f32, mult: f32 },
    Contrast,
}

/// A parsed lexicon line: the term as written and its entry.
pub(crate) type LexLine = (&'static str, Entry);

/// Parses a lexicon file (format in `data/sentiment/en.tsv`). Errors name the line.
pub(crate) fn parse_lexicon(data: &'static str) -> Result<Vec<LexLine>, String> {
    let mut out = Vec::new();
    for (n, line) in data.lines().enumerate() {
        let n = n + 1;
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        let num = |i: usize| -> Result<f32, String> {
            let s = cols
                .get(i)
                .ok_or_else(|| format!("line {n}: missing column {}", i + 1))?;
            let v: f32 = s.parse().map_err(|_| format!("line {n}: {s:?} is not a number"))?;
            if v.is_finite() {
                Ok(v)
            } else {
                Err(format!("line {n}: {s:?} is not finite"))
            }
        };
        let term = cols.get(1).copied().unwrap_or("").trim();
        if term.is_empty() {
            return Err(format!("line {n}: empty term"));
        }
        let (entry, width) = match cols[0] {
            "word" => {
                let v = num(2)?;
                if !(-4.0..=4.0).contains(&v) {
                    return Err(format!("line {n}: value {v} outside [-4, 4]"));
                }
                (Entry::Word(v), 3)
            }
            "negator" => (Entry::Negator, 2),
            "contrast" => (Entry::Contrast, 2),
            "intensifier" => {
                let m = num(2)?;
                if !(0.1..=3.0).contains(&m) {
                    return Err(format!("line {n}: multiplier {m} outside [0.1, 3]"));
                }
                (Entry::Intensifier(m), 3)
            }
            "adverb" => {
                let (v, m) = (num(2)?, num(3)?);
                if !(-4.0..=4.0).contains(&v) || !(0.1..=3.0).contains(&m) {
                    return Err(format!("line {n}: value or multiplier out of range"));
                }
                (Entry::Adverb { value: v, mult: m }, 4)
            }
            other => return Err(format!("line {n}: unknown kind {other:?}")),
        };
        if cols.len() != width {
            return Err(format!("line {n}: expected {width} columns, found {}", cols.len()));
        }
        out.push((term, entry));
    }
    Ok(out)
}

struct Lexicon {
    /// Chinese terms as written, matched longest first inside runs of Chinese characters.
    zh: FastMap<&'static str, Entry>,
    /// Longest entry (in characters) starting with a given character; most characters start none,
    /// which keeps the scan to one map probe per character.
    zh_first: FastMap<char, u8>,
    /// English terms as the tokenizer normalises them, words joined by one space.
    en: FastMap<String, Entry>,
    /// Longest entry (in words) starting with a given normalised word.
    en_first: FastMap<String, u8>,
    /// Emoji and emoticons.
    symbols: FastMap<&'static str, f32>,
}

fn build_lexicon() -> Result<Lexicon, String> {
    let mut lex = Lexicon {
        zh: FastMap::default(),
        zh_first: FastMap::default(),
        en: FastMap::default(),
        en_first: FastMap::default(),
        symbols: FastMap::default(),
    };
    for (term, entry) in parse_lexicon(include_str!("../data/sentiment/zh.tsv"))? {
        let len = term.chars().count();
        let first = term.chars().next().ok_or("empty Chinese term")?;
        if !term.chars().all(crate::text::is_han) || len > 8 {
            return Err(format!("Chinese term {term:?} must be 1-8 Chinese characters"));
        }
        if lex.zh.insert(term, entry).is_some() {
            return Err(format!("Chinese term {term:?} listed twice"));
        }
        let slot = lex.zh_first.entry(first).or_insert(0);
        *slot = (*slot).max(len as u8);
    }
    let mut scratch = Scratch::default();
    for (term, entry) in parse_lexicon(include_str!("../data/sentiment/en.tsv"))? {
        let mut words: Vec<String> = Vec::new();
        let mut other = false;
        scan(term, &mut scratch, Mode::Raw, |t| match t.kind {
            Kind::Word => words.push(t.text.to_owned()),
            _ => other = true,
        });
        if other || words.is_empty() || words.len() > 4 {
            return Err(format!("English term {term:?} must be one to four words"));
        }
        let key = words.join(" ");
        if lex.en.insert(key, entry).is_some() {
            return Err(format!(
                "English term {term:?} collides with another after normalisation"
            ));
        }
        let slot = lex.en_first.entry(words.swap_remove(0)).or_insert(0);
        *slot = (*slot).max(words.len() as u8 + 1);
    }
    for (term, entry) in parse_lexicon(include_str!("../data/sentiment/emoji.tsv"))? {
        let Entry::Word(v) = entry else {
            return Err(format!("symbol {term:?} must be a word entry"));
        };
        if lex.symbols.insert(term, v).is_some() {
            return Err(format!("symbol {term:?} listed twice"));
        }
    }
    Ok(lex)
}

fn lexicon() -> &'static Lexicon {
    static LEXICON: OnceLock<Lexicon> = OnceLock::new();
    // The lexicons are compiled in and `lexicons_are_valid` checks them, so this cannot fail in
    // a tested build.
    LEXICON.get_or_init(|| build_lexicon().unwrap_or_else(|e| panic!("invalid built-in sentiment lexicon: {e}")))
}

pub(crate) fn warm_up() {
    let _ = lexicon();
}

/// The lexicon value of one whole word (a jieba word or a normalised English word), if it is a
/// sentiment word. Lets the intent classifier see that "垃圾" and "rubbish" are alike.
pub(crate) fn word_value(word: &str, chinese: bool) -> Option<f32> {
    let lex = lexicon();
    let entry = if chinese { lex.zh.get(word) } else { lex.en.get(word) };
    match entry {
        Some(Entry::Word(v)) | Some(Entry::Adverb { value: v, .. }) => Some(*v),
        _ => None,
    }
}

/// One step of the scoring walk.
#[derive(Debug, Clone, Copy)]
enum Ev {
    Word {
        value: f32,
        caps: bool,
    },
    Adverb {
        value: f32,
        mult: f32,
        caps: bool,
    },
    Negator,
    Intensifier(f32),
    Contrast,
    /// End of a clause: negation and intensification do not carry over.
    Break,
    /// A token without sentiment; it uses up negation and intensifier scope.
    Other,
}

fn entry_event(e: Entry, caps: bool) -> Ev {
    match e {
        Entry::Word(value) => Ev::Word { value, caps },
        Entry::Negator => Ev::Negator,
        Entry::Intensifier(m) => Ev::Intensifier(m),
        Entry::Adverb { value, mult } => Ev::Adverb { value, mult, caps },
        Entry::Contrast => Ev::Contrast,
    }
}

/// What the scan produced, before lexicon matching.
#[derive(Debug, Clone, Copy)]
enum Item {
    /// A normalised word stored in the arena at `start..end`.
    Word {
        start: usize,
        end: usize,
        caps: bool,
    },
    HanRun {
        start: usize,
        end: usize,
    },
    Symbol {
        start: usize,
        end: usize,
    },
    Punct {
        c: char,
        start: usize,
        end: usize,
    },
    Other,
}

/// Scores the sentiment of `text` from the built-in lexicons. Never panics; linear in the input.
///
/// Chinese is matched against the lexicon longest-first, so fixed expressions win over their
/// parts (`不错`, `没问题`, `不好意思`). A negator (`not`, `never`, `不`, `没有`) flips the next
/// sentiment word within three tokens of the same clause; intensifiers (`very`, `非常`, `太`) and
/// downtoners (`a bit`, `有点`) scale it; `but`/`但是` shifts the weight to what follows; words
/// in capitals and exclamation marks strengthen; emoji and a few emoticons count as words.
pub fn sentiment(text: &str) -> Sentiment {
    let lex = lexicon();
    let mut scratch = Scratch::default();
    let mut arena = String::new();
    let mut items: Vec<Item> = Vec::new();
    scan(text, &mut scratch, Mode::Raw, |t| {
        let item = match t.kind {
            Kind::Word => {
                let start = arena.len();
                arena.push_str(t.text);
                Item::Word {
                    start,
                    end: arena.len(),
                    caps: t.caps,
                }
            }
            Kind::HanRun | Kind::Han => Item::HanRun {
                start: t.span.start,
                end: t.span.end,
            },
            Kind::Emoji => Item::Symbol {
                start: t.span.start,
                end: t.span.end,
            },
            Kind::Punct => match t.text.chars().next() {
                Some(c) => Item::Punct {
                    c,
                    start: t.span.start,
                    end: t.span.end,
                },
                None => Item::Other,
            },
            Kind::Number | Kind::Code => Item::Other,
        };
        items.push(item);
    });

    let mut events: Vec<Ev> = Vec::with_capacity(items.len());
    let mut exclamations = 0u32;
    let mut key = String::new();
    let mut bounds: Vec<usize> = Vec::new();
    let mut i = 0;
    while i < items.len() {
        match items[i] {
            Item::Word { start, end, caps } => {
                let first = &arena[start..end];
                let max_words = lex.en_first.get(first).copied().unwrap_or(0) as usize;
                let mut matched = false;
                for n in (1..=max_words.min(items.len() - i)).rev() {
                    key.clear();
                    let mut all_words = true;
                    let mut any_caps = false;
                    for item in &items[i..i + n] {
                        if let Item::Word { start, end, caps } = *item {
                            if !key.is_empty() {
                                key.push(' ');
                            }
                            key.push_str(&arena[start..end]);
                            any_caps |= caps;
                        } else {
                            all_words = false;
                            break;
                        }
                    }
                    if !all_words {
                        continue;
                    }
                    if let Some(&e) = lex.en.get(key.as_str()) {
                        events.push(entry_event(e, any_caps || caps));
                        i += n;
                        matched = true;
                        break;
                    }
                }
                if !matched {
                    events.push(Ev::Other);
                    i += 1;
                }
            }
            Item::HanRun { start, end } => {
                match_chinese(&text[start..end], lex, &mut bounds, &mut events);
                i += 1;
            }
            Item::Symbol { start, end } => {
                events.push(match lex.symbols.get(&text[start..end]) {
                    Some(&value) => Ev::Word { value, caps: false },
                    None => Ev::Other,
                });
                i += 1;
            }
            Item::Punct { c, start, .. } => {
                // Emoticons are runs of adjacent punctuation such as ":)" or ":'(".
                let mut run_end = start;
                let mut j = i;
                while j < items.len() && j < i + 3 {
                    match items[j] {
                        Item::Punct { start: s, end: e, .. } if s == run_end => {
                            run_end = e;
                            j += 1;
                        }
                        _ => break,
                    }
                }
                let mut consumed = 0;
                for k in (i + 2..=j).rev() {
                    let Item::Punct { end, .. } = items[k - 1] else { break };
                    if let Some(&value) = lex.symbols.get(&text[start..end]) {
                        events.push(Ev::Word { value, caps: false });
                        consumed = k - i;
                        break;
                    }
                }
                if consumed > 0 {
                    i += consumed;
                    continue;
                }
                match c {
                    '!' | '！' => {
                        exclamations += 1;
                        events.push(Ev::Break);
                    }
                    ',' | '.' | ';' | '?' | '，' | '。' | '；' | '？' | '、' | '…' | '~' | '～' => {
                        events.push(Ev::Break)
                    }
                    _ => {}
                }
                i += 1;
            }
            Item::Other => {
                events.push(Ev::Other);
                i += 1;
            }
        }
    }

    let total = score_events(&events);
    let total = if total != 0.0 {
        total * (1.0 + EXCLAMATION_STEP * f64::from(exclamations.min(3)))
    } else {
        total
    };
    Sentiment::from_score((total / (total * total + ALPHA).sqrt()) as f32)
}

/// Longest-first dictionary matching inside one run of Chinese characters.
fn match_chinese(run: &str, lex: &Lexicon, bounds: &mut Vec<usize>, events: &mut Vec<Ev>) {
    bounds.clear();
    bounds.extend(run.char_indices().map(|(i, _)| i));
    bounds.push(run.len());
    let chars = bounds.len() - 1;
    let mut p = 0;
    while p < chars {
        let c = run[bounds[p]..].chars().next().unwrap_or(' ');
        let max = lex.zh_first.get(&c).copied().unwrap_or(0) as usize;
        let mut step = 1;
        let mut event = Ev::Other;
        for len in (1..=max.min(chars - p)).rev() {
            if let Some(&e) = lex.zh.get(&run[bounds[p]..bounds[p + len]]) {
                event = entry_event(e, false);
                step = len;
                break;
            }
        }
        events.push(event);
        p += step;
    }
}

fn score_events(events: &[Ev]) -> f64 {
    let mut total = 0.0f64;
    let mut negation_left = 0u8;
    let mut intensity: Option<(f64, u8)> = None;
    let mut after_contrast = false;
    for (i, ev) in events.iter().enumerate() {
        let word = match *ev {
            Ev::Word { value, caps } => Some((value, caps)),
            Ev::Adverb { value, mult, caps } => {
                let modifies_next = matches!(events.get(i + 1), Some(Ev::Word { .. } | Ev::Adverb { .. }));
                if modifies_next {
                    intensity = Some((f64::from(mult), INTENSIFIER_SCOPE));
                    None
                } else {
                    Some((value, caps))
                }
            }
            Ev::Negator => {
                negation_left = NEGATION_SCOPE;
                None
            }
            Ev::Intensifier(m) => {
                intensity = Some((f64::from(m), INTENSIFIER_SCOPE));
                None
            }
            Ev::Contrast => {
                total *= BEFORE_CONTRAST;
                after_contrast = true;
                negation_left = 0;
                intensity = None;
                None
            }
            Ev::Break => {
                negation_left = 0;
                intensity = None;
                None
            }
            Ev::Other => {
                negation_left = negation_left.saturating_sub(1);
                intensity = intensity.and_then(|(m, left)| (left > 1).then_some((m, left - 1)));
                None
            }
        };
        let Some((value, caps)) = word else { continue };
        let mut x = f64::from(value);
        if let Some((m, _)) = intensity {
            x *= m;
        }
        if caps {
            x *= CAPS_FACTOR;
        }
        if negation_left > 0 {
            x *= if x > 0.0 { NEGATED_POSITIVE } else { NEGATED_NEGATIVE };
        }
        if after_contrast {
            x *= AFTER_CONTRAST;
        }
        total += x;
        negation_left = 0;
        intensity = None;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t: &str) -> f32 {
        sentiment(t).score
    }

    fn label(t: &str) -> SentimentLabel {
        sentiment(t).label
    }

    #[test]
    fn lexicons_are_valid() {
        let lex = build_lexicon().unwrap();
        assert!(lex.zh.len() > 150 && lex.en.len() > 150 && lex.symbols.len() > 40);
    }

    #[test]
    fn strong_anger_is_at_most_minus_point_six() {
        for t in [
            "气死我了",
            "worst service ever",
            "垃圾",
            "什么垃圾东西，气死了！",
            "this is a SCAM",
            "😡😡😡",
        ] {
            assert!(s(t) <= -0.6, "{t}: {}", s(t));
        }
    }

    #[test]
    fn negation() {
        assert_eq!(label("not good"), SentimentLabel::Negative);
        assert_eq!(label("不满意"), SentimentLabel::Negative);
        assert_eq!(label("我不是很满意"), SentimentLabel::Negative);
        assert_ne!(label("没有问题"), SentimentLabel::Negative);
        assert_ne!(label("not bad at all"), SentimentLabel::Negative);
        assert_eq!(label("不错"), SentimentLabel::Positive);
        assert!(s("it isn't helpful") < 0.0);
        assert!(s("nothing is wrong") >= 0.0);
    }

    #[test]
    fn intensifiers_and_emphasis() {
        assert!(s("very good") > s("good"));
        assert!(s("非常好") > s("好"));
        assert!(s("太慢了") < s("慢"));
        assert!(s("有点慢") > s("慢"));
        assert!(s("bad!!!") < s("bad"));
        assert!(s("TERRIBLE") < s("terrible"));
        assert!(s("a bit slow") > s("slow"));
    }

    #[test]
    fn contrast_weighs_the_second_clause() {
        assert!(s("the price is good but the service is terrible") < 0.0);
        assert!(s("虽然慢了点，但是东西很好") > 0.0);
    }

    #[test]
    fn emoji_and_emoticons() {
        assert_eq!(label("👍👍"), SentimentLabel::Positive);
        assert_eq!(label("😭"), SentimentLabel::Negative);
        assert_eq!(label("great :)"), SentimentLabel::Positive);
        assert_eq!(label("it broke :("), SentimentLabel::Negative);
        assert_eq!(label("❤️"), SentimentLabel::Positive);
    }

    #[test]
    fn plain_questions_are_neutral() {
        for t in [
            "where is my order",
            "我的快递到哪了",
            "good morning",
            "你好",
            "不好意思，问一下",
            "how much is shipping",
            "",
        ] {
            assert_eq!(label(t), SentimentLabel::Neutral, "{t}: {}", s(t));
        }
    }

    #[test]
    fn gratitude_is_positive() {
        for t in [
            "thanks a lot",
            "谢谢你",
            "非常感谢！",
            "great, you've been very helpful",
        ] {
            assert_eq!(label(t), SentimentLabel::Positive, "{t}: {}", s(t));
        }
    }

    #[test]
    fn score_bounds_on_extremes() {
        let many = "terrible ".repeat(20_000);
        let v = s(&many);
        assert!((-1.0..=1.0).contains(&v) && v < -0.99);
        let many = "太好了！".repeat(20_000);
        assert!((-1.0..=1.0).contains(&s(&many)));
        assert_eq!(Sentiment::from_score(f32::NAN).score, 0.0);
        assert_eq!(Sentiment::from_score(7.0).score, 1.0);
    }
}
