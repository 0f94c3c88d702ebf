//! Tokenisation: Chinese segmented with jieba, everything else split into lowercased, lightly
//! stemmed words.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::OnceLock;

use jieba_rs::Jieba;
use serde::Serialize;

use crate::text::{CharClass, FastBuild, classify, fold_width};

/// Jieba's hidden Markov model guesses words missing from its dictionary. It is off: the
/// classifier's character bigrams already cover unknown words, and in leave-one-out
/// cross-validation its guessed words made classification slightly worse, not better.
const JIEBA_HMM: bool = false;

static JIEBA: OnceLock<Jieba> = OnceLock::new();

/// The one segmenter of the process. Loading jieba's dictionary takes tens of milliseconds and
/// tens of megabytes, so every model, analyzer and thread shares this instance.
pub(crate) fn jieba() -> &'static Jieba {
    JIEBA.get_or_init(Jieba::new)
}

/// Loads the shared Chinese dictionary, the stop words and the sentiment lexicons now, so that
/// the first analysed message does not pay for it. Idempotent and cheap after the first call.
pub fn warm_up() {
    let _ = jieba();
    let _ = stop_words();
    crate::sentiment::warm_up();
}

struct StopWords {
    en: HashSet<&'static str, FastBuild>,
    zh: HashSet<&'static str, FastBuild>,
}

fn parse_word_list(data: &'static str) -> HashSet<&'static str, FastBuild> {
    data.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

fn stop_words() -> &'static StopWords {
    static STOP: OnceLock<StopWords> = OnceLock::new();
    STOP.get_or_init(|| StopWords {
        en: parse_word_list(include_str!("../data/stopwords_en.txt")),
        zh: parse_word_list(include_str!("../data/stopwords_zh.txt")),
    })
}

/// What a [`Token`] is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// A Chinese word from the segmenter.
    Han,
    /// A word of letters in any other script, lowercased and stemmed.
    Word,
    /// ASCII digits only.
    Number,
    /// Letters and digits mixed, like `A1024` or `iphone15`.
    Code,
    /// One emoji.
    Emoji,
}

/// One token of a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Token {
    /// The normalised form: Chinese words as written; other words lowercased, full-width forms
    /// folded to ASCII, contractions expanded (`don't` gives `do` and `not`) and plural and verb
    /// suffixes folded (`shipped` → `ship`, `deliveries` → `delivery`).
    pub text: String,
    /// What the token is made of.
    pub kind: TokenKind,
    /// Byte range of the source word in the input; always on character boundaries. Both halves
    /// of an expanded contraction carry the span of the whole word.
    pub span: Range<usize>,
    /// Whether the token is a stop word (a function word that classification ignores).
    pub stop: bool,
}

/// Splits `text` into tokens in reading order. Punctuation, whitespace and control characters
/// separate tokens and produce none. Never panics.
pub fn tokenize(text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut scratch = Scratch::default();
    scan(text, &mut scratch, Mode::Segmented, |t| {
        let kind = match t.kind {
            Kind::Han | Kind::HanRun => TokenKind::Han,
            Kind::Word => TokenKind::Word,
            Kind::Number => TokenKind::Number,
            Kind::Code => TokenKind::Code,
            Kind::Emoji => TokenKind::Emoji,
            Kind::Punct => return,
        };
        out.push(Token {
            text: t.text.to_owned(),
            kind,
            span: t.span,
            stop: t.stop,
        })
    });
    out
}

/// What [`scan`] hands out: the public kinds plus two that only the sentiment scanner asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A segmented Chinese word.
    Han,
    /// A whole run of Chinese characters, unsegmented ([`Mode::Raw`]).
    HanRun,
    Word,
    Number,
    Code,
    Emoji,
    /// One punctuation, symbol or control character ([`Mode::Raw`]); whitespace is never handed out.
    Punct,
}

/// How [`scan`] treats Chinese and punctuation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Chinese runs are segmented by jieba; punctuation is dropped.
    Segmented,
    /// Chinese runs come whole, for dictionary matching; punctuation comes as [`Kind::Punct`].
    Raw,
}

/// A token as handed to internal consumers, borrowing reusable buffers so that scanning a
/// message allocates nothing per word.
#[derive(Debug)]
pub(crate) struct TokenRef<'a> {
    pub(crate) text: &'a str,
    /// Lowercased form before stemming (equal to `text` for Chinese words).
    pub(crate) surface: &'a str,
    pub(crate) kind: Kind,
    pub(crate) span: Range<usize>,
    pub(crate) stop: bool,
    /// Whether the source word was written in capitals (two or more letters, none lowercase).
    pub(crate) caps: bool,
}

/// Reusable buffers for [`scan`].
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    lower: String,
    out: String,
}

/// Walks the tokens of `text`, calling `emit` for each in order.
pub(crate) fn scan(text: &str, scratch: &mut Scratch, mode: Mode, mut emit: impl FnMut(TokenRef<'_>)) {
    let stops = stop_words();
    let mut iter = text.char_indices().peekable();
    while let Some((start, raw)) = iter.next() {
        let c = fold_width(raw);
        match classify(c) {
            CharClass::Han => {
                let mut end = start + raw.len_utf8();
                while let Some(&(i, n)) = iter.peek() {
                    if classify(fold_width(n)) != CharClass::Han {
                        break;
                    }
                    end = i + n.len_utf8();
                    iter.next();
                }
                let run = &text[start..end];
                if mode == Mode::Raw {
                    emit(TokenRef {
                        text: run,
                        surface: run,
                        kind: Kind::HanRun,
                        span: start..end,
                        stop: false,
                        caps: false,
                    });
                    continue;
                }
                for tok in jieba().cut(run, JIEBA_HMM) {
                    emit(TokenRef {
                        text: tok.word,
                        surface: tok.word,
                        kind: Kind::Han,
                        span: start + tok.byte_start..start + tok.byte_end,
                        stop: stops.zh.contains(tok.word),
                        caps: false,
                    });
                }
            }
            CharClass::Alnum => {
                let Scratch { lower, out } = scratch;
                lower.clear();
                let mut end = start + raw.len_utf8();
                let (mut letters, mut upper, mut lowercase, mut digits) = (0u32, 0u32, 0u32, 0u32);
                let mut apostrophe = false;
                let mut take = |c: char, lower: &mut String| {
                    if c.is_ascii_digit() {
                        digits += 1;
                    } else if c.is_alphabetic() {
                        letters += 1;
                        if c.is_uppercase() {
                            upper += 1;
                        } else if c.is_lowercase() {
                            lowercase += 1;
                        }
                    }
                    lower.extend(c.to_lowercase());
                };
                take(c, lower);
                while let Some(&(i, n)) = iter.peek() {
                    let nc = fold_width(n);
                    if classify(nc) == CharClass::Alnum {
                        take(nc, lower);
                        end = i + n.len_utf8();
                        iter.next();
                        continue;
                    }
                    // An apostrophe joins only when a letter follows (`don't`, `it's`), not when it
                    // closes a quotation.
                    if nc == '\'' || nc == '’' {
                        let mut ahead = iter.clone();
                        ahead.next();
                        if let Some(&(j, m)) = ahead.peek()
                            && fold_width(m).is_alphabetic()
                            && classify(fold_width(m)) == CharClass::Alnum
                        {
                            lower.push('\'');
                            apostrophe = true;
                            iter.next();
                            take(fold_width(m), lower);
                            end = j + m.len_utf8();
                            iter.next();
                            continue;
                        }
                    }
                    break;
                }
                let span = start..end;
                let caps = letters >= 2 && upper > 0 && lowercase == 0;
                if digits > 0 && letters == 0 && !apostrophe && lower.bytes().all(|b| b.is_ascii_digit()) {
                    emit(TokenRef {
                        text: lower,
                        surface: lower,
                        kind: Kind::Number,
                        span,
                        stop: false,
                        caps,
                    });
                } else if digits > 0 {
                    emit(TokenRef {
                        text: lower,
                        surface: lower,
                        kind: Kind::Code,
                        span,
                        stop: false,
                        caps,
                    });
                } else {
                    emit_word(lower, out, span, caps, stops, &mut emit);
                }
            }
            CharClass::Emoji => {
                let span = start..start + raw.len_utf8();
                emit(TokenRef {
                    text: &text[span.clone()],
                    surface: &text[span.clone()],
                    kind: Kind::Emoji,
                    span,
                    stop: false,
                    caps: false,
                });
            }
            CharClass::Other => {
                if mode == Mode::Raw && !raw.is_whitespace() {
                    let span = start..start + raw.len_utf8();
                    emit(TokenRef {
                        text: &text[span.clone()],
                        surface: &text[span.clone()],
                        kind: Kind::Punct,
                        span,
                        stop: false,
                        caps: false,
                    });
                }
            }
        }
    }
}

/// Negative contractions written without the apostrophe, as customers often type them.
const BARE_NEGATIVES: &[(&str, &str)] = &[
    ("dont", "do"),
    ("cant", "can"),
    ("wont", "will"),
    ("didnt", "did"),
    ("doesnt", "does"),
    ("isnt", "is"),
    ("wasnt", "was"),
    ("werent", "were"),
    ("arent", "are"),
    ("havent", "have"),
    ("hasnt", "has"),
    ("hadnt", "had"),
    ("couldnt", "could"),
    ("wouldnt", "would"),
    ("shouldnt", "should"),
    ("aint", "is"),
];

/// Emits one lowercased word (possibly with an apostrophe) as one or two tokens.
fn emit_word(
    lower: &str,
    out: &mut String,
    span: Range<usize>,
    caps: bool,
    stops: &StopWords,
    emit: &mut impl FnMut(TokenRef<'_>),
) {
    let (base, negated): (&str, bool) = if let Some((head, tail)) = lower.split_once('\'') {
        match tail {
            "t" if head.ends_with('n') => {
                let stem = &head[..head.len() - 1];
                let base = match stem {
                    "ca" => "can",
                    "wo" => "will",
                    "sha" => "shall",
                    other => other,
                };
                (base, true)
            }
            "s" | "m" | "re" | "ve" | "ll" | "d" => (head, false),
            _ => (head, false),
        }
    } else if let Some(&(_, base)) = BARE_NEGATIVES.iter().find(|(w, _)| *w == lower) {
        (base, true)
    } else {
        (lower, false)
    };
    if !base.is_empty() {
        out.clear();
        out.push_str(base);
        stem_in_place(out);
        emit(TokenRef {
            text: out,
            surface: base,
            kind: Kind::Word,
            span: span.clone(),
            stop: stops.en.contains(base),
            caps,
        });
    }
    if negated {
        emit(TokenRef {
            text: "not",
            surface: "not",
            kind: Kind::Word,
            span,
            stop: stops.en.contains("not"),
            caps,
        });
    }
}

fn is_vowel(b: u8) -> bool {
    matches!(b, b'a' | b'e' | b'i' | b'o' | b'u' | b'y')
}

/// Folds plural and verb suffixes of a lowercase ASCII word so that inflections share one form:
/// `orders`/`order`, `shipped`/`shipping`/`ship`, `charged`/`charge`, `deliveries`/`delivery`.
/// Deliberately small: the result need not be a word, only consistent. Non-ASCII words and words
/// of three letters or fewer are left alone.
pub(crate) fn stem_in_place(w: &mut String) {
    if w.len() <= 3 || !w.bytes().all(|b| b.is_ascii_lowercase()) {
        return;
    }
    if w.ends_with("sses") {
        w.truncate(w.len() - 2);
    } else if w.ends_with("ies") && w.len() > 4 {
        w.truncate(w.len() - 3);
        w.push('y');
    } else if w.ends_with('s') && !w.ends_with("ss") && !w.ends_with("us") && !w.ends_with("is") {
        w.pop();
    }
    if w.ends_with("ied") && w.len() > 4 {
        w.truncate(w.len() - 3);
        w.push('y');
    } else if w.ends_with("ing") && w.len() >= 6 && w.as_bytes()[..w.len() - 3].iter().any(|&b| is_vowel(b)) {
        w.truncate(w.len() - 3);
        undouble(w);
    } else if w.ends_with("ed") && w.len() >= 5 && w.as_bytes()[..w.len() - 2].iter().any(|&b| is_vowel(b)) {
        w.truncate(w.len() - 2);
        undouble(w);
    }
    if w.len() >= 4 && w.ends_with('e') {
        w.pop();
    }
}

/// `shipp` → `ship`, `logg` → `log`; but `call`, `miss`, `buzz` keep their double letter, as
/// they have it in the bare form too.
fn undouble(w: &mut String) {
    let b = w.as_bytes();
    if b.len() >= 3 {
        let (x, y) = (b[b.len() - 2], b[b.len() - 1]);
        if x == y && !is_vowel(y) && !matches!(y, b'l' | b's' | b'z') {
            w.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stem(w: &str) -> String {
        let mut s = w.to_owned();
        stem_in_place(&mut s);
        s
    }

    fn texts(t: &str) -> Vec<String> {
        tokenize(t).into_iter().map(|t| t.text).collect()
    }

    #[test]
    fn stemmer_folds_inflections_together() {
        for group in [
            &["order", "orders", "ordered", "ordering"][..],
            &["ship", "ships", "shipped", "shipping"],
            &["charge", "charged", "charges", "charging"],
            &["delivery", "deliveries"],
            &["arrive", "arrived", "arriving"],
            &["call", "called", "calls"],
            &["try", "tried"],
            &["refund", "refunds", "refunded"],
        ] {
            let first = stem(group[0]);
            for w in group {
                assert_eq!(stem(w), first, "{w} vs {}", group[0]);
            }
        }
        assert_eq!(stem("status"), "status");
        assert_eq!(stem("address"), "address");
        assert_eq!(stem("hi"), "hi");
        assert_eq!(stem("café"), "café");
    }

    #[test]
    fn english_words_are_normalised() {
        assert_eq!(texts("Where's my ORDERS?!"), ["wher", "my", "order"]);
        assert_eq!(texts("I don't like it"), ["i", "do", "not", "lik", "it"]);
        assert_eq!(texts("it cant be"), ["it", "can", "not", "be"]);
        assert_eq!(texts("'quoted' words"), ["quot", "word"]);
        assert_eq!(texts("ＨＥＬＬＯ"), ["hello"]);
    }

    #[test]
    fn kinds_and_spans() {
        let text = "订单A-1024还没到 😡 iphone15 12345678";
        let toks = tokenize(text);
        for t in &toks {
            assert!(text.is_char_boundary(t.span.start) && text.is_char_boundary(t.span.end));
        }
        let kinds: Vec<_> = toks.iter().map(|t| (t.text.as_str(), t.kind)).collect();
        assert!(kinds.contains(&("订单", TokenKind::Han)));
        assert!(kinds.contains(&("a", TokenKind::Word)));
        assert!(kinds.contains(&("1024", TokenKind::Number)));
        assert!(kinds.contains(&("😡", TokenKind::Emoji)));
        assert!(kinds.contains(&("iphone15", TokenKind::Code)));
        assert!(kinds.contains(&("12345678", TokenKind::Number)));
    }

    #[test]
    fn stop_words_are_flagged() {
        let toks = tokenize("我的订单 where is my order");
        let stop: Vec<_> = toks.iter().filter(|t| t.stop).map(|t| t.text.as_str()).collect();
        assert!(stop.contains(&"的") && stop.contains(&"is") && stop.contains(&"my"));
        assert!(toks.iter().any(|t| t.text == "订单" && !t.stop));
    }

    #[test]
    fn odd_input() {
        assert!(tokenize("").is_empty());
        assert!(tokenize("\u{0}\u{1}\u{7f}\t\r\n ,.!?").is_empty());
        let _ = tokenize("'''’’’ '' a' 'b don'");
        let _ = tokenize("e\u{301}\u{200d}\u{fe0f}👍🏽🏳️‍🌈");
    }
}
