//! Language detection by script.

use serde::{Deserialize, Serialize};

use crate::text::{CharClass, classify, fold_width, is_han, is_latin_letter};

/// The language of a message, decided by the scripts it is written in.
///
/// Detection looks only at scripts: Chinese characters mean `Zh`, Latin letters mean `En`. Any
/// other Latin-script language (French, Spanish, pinyin) therefore reports `En`, and Japanese or
/// Korean text, which mixes other scripts in, reports `Unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// Chinese (simplified or traditional).
    Zh,
    /// English, or any Latin-script text.
    En,
    /// Chinese and Latin-script words in comparable amounts, e.g. `我的order还没到`.
    Mixed,
    /// No letters at all (digits, punctuation, emoji, empty), or mostly another script.
    Unknown,
}

impl Language {
    /// The lowercase code used in JSON: `zh`, `en`, `mixed` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Language::Zh => "zh",
            Language::En => "en",
            Language::Mixed => "mixed",
            Language::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for Language {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One Latin word carries roughly as much as a couple of Chinese characters, so words are
/// weighted rather than letters counted; otherwise one English word in a Chinese sentence would
/// outweigh the sentence.
const LATIN_WORD_WEIGHT: f32 = 1.5;
/// Share of Chinese weight at or above which a message is `Zh` (and at or below `1 - this`, `En`).
const DOMINANT_SHARE: f32 = 0.8;

/// Detects the language of `text` by script.
///
/// Digits, punctuation, emoji and codes with digits in them (`A-1024`, `iPhone15`) are ignored, so
/// `订单A-1024到哪了` is `Zh` and `order 12345678 where` is `En`. Never panics; linear in the input.
pub fn detect_language(text: &str) -> Language {
    let mut han = 0u32;
    let mut latin_words = 0u32;
    let mut other_letters = 0u32;

    // A chunk is a run of non-space, non-Han characters; letters in a chunk that also holds a
    // digit belong to a code or an order number rather than to a word.
    let mut chunk_latin_runs = 0u32;
    let mut chunk_other = 0u32;
    let mut chunk_has_digit = false;
    let mut in_latin_run = false;

    let mut flush = |runs: &mut u32, other: &mut u32, has_digit: &mut bool| {
        if !*has_digit {
            latin_words += *runs;
            other_letters += *other;
        }
        *runs = 0;
        *other = 0;
        *has_digit = false;
    };

    for raw in text.chars() {
        let c = fold_width(raw);
        if is_han(c) {
            han += 1;
            flush(&mut chunk_latin_runs, &mut chunk_other, &mut chunk_has_digit);
            in_latin_run = false;
            continue;
        }
        if c.is_whitespace() || (classify(c) == CharClass::Other && c != '\'' && c != '’' && c != '-') {
            flush(&mut chunk_latin_runs, &mut chunk_other, &mut chunk_has_digit);
            in_latin_run = false;
            continue;
        }
        if c.is_numeric() {
            chunk_has_digit = true;
            in_latin_run = false;
        } else if is_latin_letter(c) {
            if !in_latin_run {
                chunk_latin_runs += 1;
                in_latin_run = true;
            }
        } else if c.is_alphabetic() {
            chunk_other += 1;
            in_latin_run = false;
        } else {
            in_latin_run = false;
        }
    }
    flush(&mut chunk_latin_runs, &mut chunk_other, &mut chunk_has_digit);

    let han = han as f32;
    let latin = latin_words as f32 * LATIN_WORD_WEIGHT;
    let other = other_letters as f32;
    if han + latin == 0.0 || other > han + latin {
        return Language::Unknown;
    }
    let share = han / (han + latin);
    if share >= DOMINANT_SHARE {
        Language::Zh
    } else if share <= 1.0 - DOMINANT_SHARE {
        Language::En
    } else {
        Language::Mixed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts() {
        assert_eq!(detect_language("我的订单到哪了"), Language::Zh);
        assert_eq!(detect_language("where is my order"), Language::En);
        assert_eq!(detect_language("我的order还没到"), Language::Mixed);
        assert_eq!(detect_language("hello 你好"), Language::Mixed);
        assert_eq!(detect_language("订单A-1024到哪了？"), Language::Zh);
        assert_eq!(detect_language("order #20231125-7781 pls"), Language::En);
        assert_eq!(detect_language("ＷＨＥＲＥ is it"), Language::En);
    }

    #[test]
    fn nothing_to_go_on() {
        assert_eq!(detect_language(""), Language::Unknown);
        assert_eq!(detect_language("12345678"), Language::Unknown);
        assert_eq!(detect_language("😡😡!!!"), Language::Unknown);
        assert_eq!(detect_language("\u{0}\u{7}\t\r\n"), Language::Unknown);
        assert_eq!(detect_language("こんにちは"), Language::Unknown);
        assert_eq!(detect_language("Привет, как дела"), Language::Unknown);
    }

    #[test]
    fn emoji_and_digits_do_not_tip_the_balance() {
        assert_eq!(detect_language("谢谢🙏🙏🙏 123"), Language::Zh);
        assert_eq!(detect_language("thanks!!! 👍 2024"), Language::En);
    }
}
