//! The knowledge-base entry and its validation.

use serde::{Deserialize, Serialize};

/// Longest entry id, in characters.
pub const MAX_ID_CHARS: usize = 128;
/// Longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// Most question variants per entry.
pub const MAX_QUESTIONS: usize = 50;
/// Longest question variant, in characters.
pub const MAX_QUESTION_CHARS: usize = 500;
/// Longest answer, in characters.
pub const MAX_ANSWER_CHARS: usize = 20_000;
/// Most tags per entry.
pub const MAX_TAGS: usize = 20;
/// Longest tag, in characters.
pub const MAX_TAG_CHARS: usize = 64;
/// Longest locale tag, in characters (BCP 47 allows more, but no language needs more here).
pub const MAX_LOCALE_CHARS: usize = 35;

/// How an answer's text is to be rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Plain text, shown as written.
    #[default]
    Text,
    /// CommonMark Markdown. Indexed as written: markup characters are punctuation to the
    /// tokeniser, so they neither match nor hurt.
    Markdown,
}

/// One knowledge-base entry: a question customers ask in several ways, and its answer.
///
/// [`Entry::validate`] states the limits; [`crate::KnowledgeBase::upsert`] refuses an entry that
/// breaks one. In JSON, `questions`, `tags`, `format` (`"text"`) and `enabled` (`true`) may be
/// left out; unknown fields are refused, so a misspelt field name is not silently lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Unique within a tenant's knowledge base: 1–128 characters of ASCII letters, digits and
    /// `_ - . :`.
    pub id: String,
    /// The canonical question or topic, searched like a question variant.
    pub title: String,
    /// Other ways customers ask the same thing; searched with the highest weight.
    #[serde(default)]
    pub questions: Vec<String>,
    /// The answer given to the customer.
    pub answer: String,
    /// How [`Entry::answer`] is rendered.
    #[serde(default)]
    pub format: Format,
    /// Free labels for filtering searches (`SearchOptions::tags`); compared exactly.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The language the entry is written in, a BCP 47 tag such as `zh-CN` or `en`.
    pub locale: String,
    /// Disabled entries are kept but never found.
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
}

fn enabled_by_default() -> bool {
    true
}

/// Why an entry was refused: the field (`questions[2]`, `tags[0]`, …) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct EntryError {
    /// The offending field, with an index for list items.
    pub field: String,
    /// What is wrong, in words for the person who wrote the entry.
    pub message: String,
}

impl EntryError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        EntryError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Checks a piece of free text: not blank, not too long, no control characters (except line
/// breaks and tabs where `multiline`).
fn check_text(field: &str, value: &str, max: usize, multiline: bool) -> Result<(), EntryError> {
    if value.trim().is_empty() {
        return Err(EntryError::new(field, "must not be empty"));
    }
    let chars = value.chars().count();
    if chars > max {
        return Err(EntryError::new(
            field,
            format!("has {chars} characters; at most {max} are allowed"),
        ));
    }
    if let Some(c) = value
        .chars()
        .find(|&c| c.is_control() && !(multiline && matches!(c, '\n' | '\r' | '\t')))
    {
        return Err(EntryError::new(
            field,
            format!("contains the control character U+{:04X}", c as u32),
        ));
    }
    Ok(())
}

/// Whether `locale` looks like a BCP 47 tag: a 2–3 letter language, then subtags of 1–8 letters
/// or digits separated by `-` (or `_`, which some systems write).
pub(crate) fn locale_is_valid(locale: &str) -> bool {
    let mut parts = locale.split(['-', '_']);
    let lang_ok = parts
        .next()
        .is_some_and(|l| (2..=3).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_alphabetic()));
    lang_ok
        && locale.len() <= MAX_LOCALE_CHARS
        && parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// `zh_cn`, `ZH-CN` → `zh-cn`: the form locales are compared in.
pub(crate) fn normalise_locale(locale: &str) -> String {
    locale.trim().replace('_', "-").to_ascii_lowercase()
}

impl Entry {
    /// Checks every limit; the error names the first offending field.
    ///
    /// - `id`: 1–[`MAX_ID_CHARS`] of ASCII letters, digits, `_`, `-`, `.`, `:`;
    /// - `title`: not blank, at most [`MAX_TITLE_CHARS`], no control characters;
    /// - `questions`: at most [`MAX_QUESTIONS`], each not blank, at most [`MAX_QUESTION_CHARS`],
    ///   no control characters;
    /// - `answer`: not blank, at most [`MAX_ANSWER_CHARS`], no control characters but line breaks
    ///   and tabs;
    /// - `tags`: at most [`MAX_TAGS`], each 1–[`MAX_TAG_CHARS`] without whitespace or control
    ///   characters, no repeats;
    /// - `locale`: a BCP 47-shaped tag (`zh-CN`, `en`, `pt-BR`), at most [`MAX_LOCALE_CHARS`].
    pub fn validate(&self) -> Result<(), EntryError> {
        if self.id.is_empty() || self.id.len() > MAX_ID_CHARS {
            return Err(EntryError::new(
                "id",
                format!("must have 1 to {MAX_ID_CHARS} characters"),
            ));
        }
        if let Some(c) = self
            .id
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')))
        {
            return Err(EntryError::new(
                "id",
                format!("may only contain ASCII letters, digits and _ - . : (found {c:?})"),
            ));
        }
        check_text("title", &self.title, MAX_TITLE_CHARS, false)?;
        if self.questions.len() > MAX_QUESTIONS {
            return Err(EntryError::new(
                "questions",
                format!(
                    "has {} variants; at most {MAX_QUESTIONS} are allowed",
                    self.questions.len()
                ),
            ));
        }
        for (i, q) in self.questions.iter().enumerate() {
            check_text(&format!("questions[{i}]"), q, MAX_QUESTION_CHARS, false)?;
        }
        check_text("answer", &self.answer, MAX_ANSWER_CHARS, true)?;
        if self.tags.len() > MAX_TAGS {
            return Err(EntryError::new(
                "tags",
                format!("has {} tags; at most {MAX_TAGS} are allowed", self.tags.len()),
            ));
        }
        for (i, tag) in self.tags.iter().enumerate() {
            let field = format!("tags[{i}]");
            let chars = tag.chars().count();
            if chars == 0 || chars > MAX_TAG_CHARS {
                return Err(EntryError::new(
                    field,
                    format!("must have 1 to {MAX_TAG_CHARS} characters"),
                ));
            }
            if tag.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(EntryError::new(
                    field,
                    "must not contain whitespace or control characters",
                ));
            }
            if self.tags[..i].contains(tag) {
                return Err(EntryError::new(field, format!("repeats the tag {tag:?}")));
            }
        }
        if !locale_is_valid(&self.locale) {
            return Err(EntryError::new(
                "locale",
                format!("{:?} is not a language tag such as zh-CN or en", self.locale),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn entry() -> Entry {
        Entry {
            id: "faq-1".into(),
            title: "退货政策".into(),
            questions: vec!["怎么退货".into()],
            answer: "七天无理由退货。".into(),
            format: Format::Text,
            tags: vec!["returns".into()],
            locale: "zh-CN".into(),
            enabled: true,
        }
    }

    fn field_of(e: Entry) -> String {
        e.validate().unwrap_err().field
    }

    #[test]
    fn a_good_entry_passes() {
        entry().validate().unwrap();
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(
            field_of(Entry {
                id: String::new(),
                ..entry()
            }),
            "id"
        );
        assert_eq!(
            field_of(Entry {
                id: "a b".into(),
                ..entry()
            }),
            "id"
        );
        assert_eq!(
            field_of(Entry {
                id: "订单".into(),
                ..entry()
            }),
            "id"
        );
        assert_eq!(
            field_of(Entry {
                id: "x".repeat(129),
                ..entry()
            }),
            "id"
        );
        assert_eq!(
            field_of(Entry {
                title: "  ".into(),
                ..entry()
            }),
            "title"
        );
        assert_eq!(
            field_of(Entry {
                title: "a\u{7}".into(),
                ..entry()
            }),
            "title"
        );
        assert_eq!(
            field_of(Entry {
                title: "题".repeat(201),
                ..entry()
            }),
            "title"
        );
        assert_eq!(
            field_of(Entry {
                questions: vec!["ok".into(), "".into()],
                ..entry()
            }),
            "questions[1]"
        );
        assert_eq!(
            field_of(Entry {
                questions: vec!["q".into(); 51],
                ..entry()
            }),
            "questions"
        );
        assert_eq!(
            field_of(Entry {
                answer: "".into(),
                ..entry()
            }),
            "answer"
        );
        assert_eq!(
            field_of(Entry {
                answer: "a\u{0}".into(),
                ..entry()
            }),
            "answer"
        );
        assert_eq!(
            field_of(Entry {
                tags: vec!["a b".into()],
                ..entry()
            }),
            "tags[0]"
        );
        assert_eq!(
            field_of(Entry {
                tags: vec!["a".into(), "a".into()],
                ..entry()
            }),
            "tags[1]"
        );
        assert_eq!(
            field_of(Entry {
                tags: vec!["t".into(); 21],
                ..entry()
            }),
            "tags"
        );
        assert_eq!(
            field_of(Entry {
                locale: "chinese".into(),
                ..entry()
            }),
            "locale"
        );
        assert_eq!(
            field_of(Entry {
                locale: "".into(),
                ..entry()
            }),
            "locale"
        );
    }

    #[test]
    fn answers_may_span_lines_and_emoji_are_fine() {
        let e = Entry {
            answer: "# Returns\n\n- within 7 days\t✅\r\n".into(),
            title: "退货 😀".into(),
            format: Format::Markdown,
            ..entry()
        };
        e.validate().unwrap();
    }

    #[test]
    fn locales() {
        for ok in ["en", "zh-CN", "zh_cn", "pt-BR", "zh-Hant-TW", "yue"] {
            assert!(locale_is_valid(ok), "{ok}");
        }
        for bad in ["", "e", "english", "zh-", "zh--CN", "zh-CN-toolongsubtag", "中文"] {
            assert!(!locale_is_valid(bad), "{bad}");
        }
        assert_eq!(normalise_locale("zh_CN"), "zh-cn");
    }

    #[test]
    fn json_defaults_and_unknown_fields() {
        let e: Entry = serde_json::from_str(r#"{"id":"a","title":"t","answer":"x","locale":"en"}"#).unwrap();
        assert!(e.enabled && e.questions.is_empty() && e.format == Format::Text);
        let bad = serde_json::from_str::<Entry>(r#"{"id":"a","title":"t","answer":"x","locale":"en","question":[]}"#);
        assert!(bad.unwrap_err().to_string().contains("question"));
        let json = serde_json::to_string(&Entry {
            format: Format::Markdown,
            ..entry()
        })
        .unwrap();
        assert!(json.contains(r#""format":"markdown""#), "{json}");
    }
}
