//! How text becomes index terms, and how matched terms are marked in snippets.
//!
//! Two analyses run over every indexed text and every query:
//!
//! - **words**: `yy-nlu`'s tokeniser (jieba for Chinese, shared by the whole process; lowercased,
//!   width-folded, lightly stemmed words for everything else), without stop words and without a
//!   few more words that every FAQ question carries ([`KB_STOP_WORDS`]);
//! - **grams**: every Chinese character and every pair of adjacent Chinese characters. Customers
//!   rephrase Chinese with different compounds ("退掉" for "退货", "邮费" for "运费") that share
//!   characters but no segmented word; the grams let those still meet.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::OnceLock;

use tantivy::tokenizer::Token;

/// Words that carry no topic in a knowledge-base question, beyond `yy-nlu`'s stop words: the
/// question scaffolding ("how do I", "请问怎么") that every entry shares.
const KB_STOP_WORDS: &[&str] = &[
    "怎么",
    "如何",
    "怎样",
    "怎么样",
    "怎么办",
    "一下",
    "请",
    "想",
    "要",
    "吗",
    "呢",
    "么",
    "什么",
    "哪些",
    "哪个",
    "多少",
    "有没有",
    "是不是",
    "能不能",
    "可不可以",
    "需要",
    "应该",
    "please",
    "hi",
    "hello",
    "thank",
    "thanks",
    "want",
    "need",
    "would",
    "like",
    "know",
    "tell",
    "get",
    "way",
    "any",
    "someone",
    "anyone",
    "help",
];

/// One term of an analysed text: its normalised form and the byte range of its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Term {
    pub(crate) text: String,
    pub(crate) span: Range<usize>,
}

/// Chinese characters, as `yy-nlu` counts them: the CJK unified ideographs, their extensions and
/// the compatibility block.
pub(crate) fn is_han(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0x2A700..=0x2EBEF
        | 0xF900..=0xFAFF | 0x2F800..=0x2FA1F | 0x30000..=0x323AF)
}

/// The word terms of `text`, in reading order, each synonym read as its group's first form
/// ([`Lexicon`]).
#[cfg(test)]
pub(crate) fn words(text: &str) -> Vec<Term> {
    words_with(text, true)
}

/// [`words`], optionally without the synonym lexicon (for evaluation).
pub(crate) fn words_with(text: &str, synonyms: bool) -> Vec<Term> {
    let tokens: Vec<yy_nlu::Token> = yy_nlu::tokenize(text)
        .into_iter()
        .filter(|t| t.kind != yy_nlu::TokenKind::Emoji)
        .collect();
    let lexicon = lexicon();
    let mut out = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        if synonyms && let Some((len, canonical)) = lexicon.longest_match(text, &tokens[i..]) {
            out.push(Term {
                text: canonical.to_owned(),
                span: tokens[i].span.start..tokens[i + len - 1].span.end,
            });
            // A phrase's own words stay too: "shipping fee" is postage, and still shipping.
            if len > 1 {
                out.extend(
                    tokens[i..i + len]
                        .iter()
                        .filter(|t| !t.stop && !KB_STOP_WORDS.contains(&t.text.as_str()) && t.text != canonical)
                        .map(|t| Term {
                            text: t.text.clone(),
                            span: t.span.clone(),
                        }),
                );
            }
            i += len;
            continue;
        }
        let t = &tokens[i];
        if !t.stop && !KB_STOP_WORDS.contains(&t.text.as_str()) {
            out.push(Term {
                text: t.text.clone(),
                span: t.span.clone(),
            });
        }
        i += 1;
    }
    out
}

/// Most tokens one synonym form spans.
const MAX_FORM_TOKENS: usize = 4;

/// The synonym groups of `data/synonyms.txt`, keyed by the analysed form of each member.
#[derive(Debug, Default)]
pub(crate) struct Lexicon {
    forms: HashMap<String, String>,
}

impl Lexicon {
    fn parse(data: &str) -> Self {
        let mut forms = HashMap::new();
        for line in data
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let keys: Vec<String> = line.split('|').filter_map(form_key).collect();
            let Some(canonical) = keys.first().cloned() else {
                continue;
            };
            for key in keys {
                // The first group a form appears in keeps it; `tests::lexicon_forms_are_unique`
                // keeps the file free of such repeats.
                forms.entry(key).or_insert_with(|| canonical.clone());
            }
        }
        Lexicon { forms }
    }

    /// The number of tokens and the canonical form of the longest form starting at `tokens[0]`.
    fn longest_match(&self, text: &str, tokens: &[yy_nlu::Token]) -> Option<(usize, &str)> {
        if self.forms.is_empty() {
            return None;
        }
        let mut key = String::new();
        let mut found = None;
        for (n, t) in tokens.iter().take(MAX_FORM_TOKENS).enumerate() {
            if n > 0 {
                let prev = &tokens[n - 1];
                // A phrase does not run across punctuation. The halves of an expanded
                // contraction (`doesn't`) share one span.
                let joined = prev.span == t.span
                    || text
                        .get(prev.span.end..t.span.start)
                        .is_some_and(|gap| gap.chars().all(char::is_whitespace));
                if !joined {
                    break;
                }
                if !(prev.kind == yy_nlu::TokenKind::Han && t.kind == yy_nlu::TokenKind::Han) {
                    key.push(' ');
                }
            }
            key.push_str(&t.text);
            if let Some(canonical) = self.forms.get(&key) {
                found = Some((n + 1, canonical.as_str()));
            }
        }
        found
    }
}

/// How a lexicon form is looked up: its tokens (stop words included), Chinese words joined
/// directly and others by a space, so that the key does not depend on how the segmenter cut it.
fn form_key(form: &str) -> Option<String> {
    let mut key = String::new();
    let mut prev_han = false;
    for (n, t) in yy_nlu::tokenize(form).into_iter().enumerate() {
        let han = t.kind == yy_nlu::TokenKind::Han;
        if n > 0 && !(prev_han && han) {
            key.push(' ');
        }
        key.push_str(&t.text);
        prev_han = han;
    }
    (!key.is_empty()).then_some(key)
}

pub(crate) fn lexicon() -> &'static Lexicon {
    static LEXICON: OnceLock<Lexicon> = OnceLock::new();
    LEXICON.get_or_init(|| Lexicon::parse(include_str!("../data/synonyms.txt")))
}

/// Character trigrams of the Latin words among `words`, with `^` and `$` marking the word's ends:
/// a misspelt word (`refnd`, `warrenty`) still shares most of them with the right one.
pub(crate) fn trigrams(words: &[Term]) -> Vec<Term> {
    let mut out = Vec::new();
    for w in words {
        if !w.text.chars().all(|c| c.is_ascii_alphabetic() || c == ' ') {
            continue;
        }
        let chars: Vec<char> = std::iter::once('^').chain(w.text.chars()).chain(['$']).collect();
        for window in chars.windows(3) {
            out.push(Term {
                text: window.iter().collect(),
                span: w.span.clone(),
            });
        }
    }
    out
}

/// The Chinese character unigrams and adjacent bigrams of `text`, in reading order.
pub(crate) fn grams(text: &str) -> Vec<Term> {
    let mut out = Vec::new();
    let mut prev: Option<(usize, char)> = None;
    for (i, c) in text.char_indices() {
        if !is_han(c) {
            prev = None;
            continue;
        }
        let end = i + c.len_utf8();
        if let Some((start, p)) = prev {
            let mut pair = String::with_capacity(8);
            pair.push(p);
            pair.push(c);
            out.push(Term {
                text: pair,
                span: start..end,
            });
        }
        out.push(Term {
            text: c.to_string(),
            span: i..end,
        });
        prev = Some((i, c));
    }
    out
}

/// Terms as tantivy tokens, positions numbered from 0.
pub(crate) fn to_tokens(terms: Vec<Term>) -> Vec<Token> {
    terms
        .into_iter()
        .enumerate()
        .map(|(position, t)| Token {
            offset_from: t.span.start,
            offset_to: t.span.end,
            position,
            text: t.text,
            position_length: 1,
        })
        .collect()
}

/// Characters of context a snippet of a long text keeps.
pub(crate) const SNIPPET_CHARS: usize = 160;

/// Marks the `ranges` (byte ranges of matched terms in `text`) with `<em>…</em>` and escapes the
/// rest as HTML, keeping at most `max_chars` characters: the window that holds the most marked
/// characters, preferring the earliest. Returns `None` when nothing is marked.
pub(crate) fn highlight(text: &str, ranges: &mut Vec<Range<usize>>, max_chars: usize) -> Option<String> {
    if ranges.is_empty() {
        return None;
    }
    ranges.sort_by_key(|r| (r.start, r.end));
    let mut merged: Vec<Range<usize>> = Vec::with_capacity(ranges.len());
    for r in ranges.drain(..) {
        match merged.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => merged.push(r),
        }
    }
    let (start, end) = window(text, &merged, max_chars);
    let mut html = String::with_capacity(end - start + 16 * merged.len());
    if start > 0 {
        html.push('…');
    }
    let mut at = start;
    for r in &merged {
        let (s, e) = (r.start.max(start), r.end.min(end));
        if s >= e {
            continue;
        }
        escape_into(&text[at..s], &mut html);
        html.push_str("<em>");
        escape_into(&text[s..e], &mut html);
        html.push_str("</em>");
        at = e;
    }
    escape_into(&text[at..end], &mut html);
    if end < text.len() {
        html.push('…');
    }
    Some(html)
}

/// The byte window of at most `max_chars` characters covering the most marked characters.
fn window(text: &str, marks: &[Range<usize>], max_chars: usize) -> (usize, usize) {
    let bounds: Vec<usize> = text.char_indices().map(|(i, _)| i).chain([text.len()]).collect();
    let chars = bounds.len() - 1;
    if chars <= max_chars {
        return (0, text.len());
    }
    // Start candidates: a little before each mark, so a snippet reads into its first match.
    let lead = max_chars / 8;
    let mut best = (0usize, 0usize);
    for m in marks {
        let char_at = bounds.partition_point(|&b| b < m.start);
        let first = char_at.saturating_sub(lead).min(chars - max_chars);
        let (s, e) = (bounds[first], bounds[first + max_chars]);
        let covered: usize = marks.iter().map(|r| r.end.min(e).saturating_sub(r.start.max(s))).sum();
        if covered > best.1 {
            best = (first, covered);
        }
    }
    (bounds[best.0], bounds[best.0 + max_chars])
}

fn escape_into(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => {}
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(terms: &[Term]) -> Vec<&str> {
        terms.iter().map(|t| t.text.as_str()).collect()
    }

    #[test]
    fn words_drop_question_scaffolding() {
        assert_eq!(texts(&words("How do I return my orders?")), ["return", "order"]);
        let zh = words("请问怎么申请退货");
        assert!(texts(&zh).contains(&"退货"), "{zh:?}");
        assert!(!texts(&zh).contains(&"怎么"));
    }

    #[test]
    fn synonyms_meet_and_phrases_keep_their_words() {
        assert_eq!(texts(&words("我要退钱")), texts(&words("我要退款")));
        assert_eq!(texts(&words("is this a knockoff")), ["counterfeit"]);
        // Stemmed, as all English words are.
        assert_eq!(texts(&words("my promo code")), ["coupon", "promo", "cod"]);
        assert_eq!(texts(&words_with("perks", false)), ["perk"]);
        // No phrase across punctuation.
        assert!(!texts(&words("send, back")).contains(&"return"));
        let text = "Members get perks";
        for t in words(text) {
            assert!(text.get(t.span.clone()).is_some(), "{t:?}");
        }
    }

    #[test]
    fn lexicon_forms_are_unique() {
        let mut seen = std::collections::HashSet::new();
        let mut repeated = Vec::new();
        for line in include_str!("../data/synonyms.txt").lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            for form in line.split('|') {
                let key = form_key(form).unwrap_or_default();
                assert!(!key.is_empty(), "{form:?} has no word");
                if !seen.insert(key.clone()) {
                    repeated.push(format!("{form} ({key})"));
                }
            }
        }
        assert!(repeated.is_empty(), "in two groups or twice: {repeated:?}");
        assert!(lexicon().forms.len() > 300);
    }

    #[test]
    fn trigrams_of_latin_words_only() {
        let t = trigrams(&words("refnd 退款"));
        assert_eq!(texts(&t), ["^re", "ref", "efn", "fnd", "nd$"]);
    }

    #[test]
    fn grams_are_chinese_only_and_spans_point_at_source() {
        let text = "退货 A1 运费险";
        let g = grams(text);
        assert_eq!(texts(&g), ["退", "退货", "货", "运", "运费", "费", "费险", "险"]);
        for t in &g {
            assert_eq!(&text[t.span.clone()], t.text);
        }
        assert!(grams("no chinese here").is_empty());
    }

    #[test]
    fn highlight_marks_escapes_and_windows() {
        let text = "Refunds <b>&</b> returns";
        let mut r = vec![0..7, 17..24];
        assert_eq!(
            highlight(text, &mut r, 100).as_deref(),
            Some("<em>Refunds</em> &lt;b&gt;&amp;&lt;/b&gt; <em>returns</em>")
        );
        assert_eq!(highlight(text, &mut Vec::new(), 100), None);
        let long = format!("{}退货政策{}", "前".repeat(300), "后".repeat(300));
        let at = long.find("退货").unwrap();
        let mut r = Vec::new();
        r.push(at..at + "退货".len());
        let h = highlight(&long, &mut r, 40).unwrap();
        assert!(
            h.starts_with('…') && h.ends_with('…') && h.contains("<em>退货</em>"),
            "{h}"
        );
        assert!(h.chars().count() <= 40 + 2 + 9);
    }

    #[test]
    fn highlight_merges_overlaps() {
        let text = "运费险";
        let mut r = vec![0..6, 3..9, 0..3];
        assert_eq!(highlight(text, &mut r, 10).as_deref(), Some("<em>运费险</em>"));
    }
}
