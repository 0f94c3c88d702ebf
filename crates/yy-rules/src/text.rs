//! Case-insensitive substring search that allocates nothing at decision time.
//!
//! "Ignoring case" means comparing the Unicode lowercase of every character (`char::to_lowercase`,
//! without the context-dependent final sigma). Keywords are lowercased once, when the rule set is
//! validated; the message text is lowercased on the fly, character by character, so a decision
//! never copies the text. Scripts without case (Chinese) compare as they are.

/// A keyword, lowercased at validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Keyword {
    folded: Box<str>,
    ascii: bool,
    /// No character of the text but the keyword's own lowercases to any of its characters (true
    /// of Chinese), so a plain substring search is exact and needs no lowercasing at all.
    caseless: bool,
}

impl Keyword {
    /// `None` for a keyword that lowercases to nothing (only the empty string does).
    pub(crate) fn new(keyword: &str) -> Option<Self> {
        let folded = fold(keyword);
        (!folded.is_empty()).then(|| Keyword {
            ascii: folded.is_ascii(),
            caseless: folded.chars().all(is_caseless),
            folded: folded.into_boxed_str(),
        })
    }

    #[cfg(test)]
    pub(crate) fn folded(&self) -> &str {
        &self.folded
    }

    /// Whether `text` contains this keyword, ignoring case. `text_is_ascii` must be
    /// `text.is_ascii()`: callers compute it once per message, not once per keyword.
    pub(crate) fn found_in(&self, text: &str, text_is_ascii: bool) -> bool {
        if self.caseless {
            return text.contains(&*self.folded);
        }
        if self.ascii && text_is_ascii {
            let needle = self.folded.as_bytes();
            return text
                .as_bytes()
                .windows(needle.len())
                .any(|w| w.eq_ignore_ascii_case(needle));
        }
        text.char_indices().any(|(at, _)| {
            text.get(at..)
                .is_some_and(|rest| starts_with_folded(rest, &self.folded))
        })
    }
}

/// Lowercases character by character, the same way [`Keyword::found_in`] reads the text.
pub(crate) fn fold(text: &str) -> String {
    text.chars().flat_map(char::to_lowercase).collect()
}

/// True when `c` is the lowercase of no other character: it has no other case (so no upper or
/// title case maps to it) and it is not the combining dot that U+0130 'İ' lowercases into, the one
/// lowercase mapping to two characters. A test checks this against every character.
fn is_caseless(c: char) -> bool {
    let mut upper = c.to_uppercase();
    let mut lower = c.to_lowercase();
    upper.next() == Some(c)
        && upper.next().is_none()
        && lower.next() == Some(c)
        && lower.next().is_none()
        && c != '\u{307}'
}

fn starts_with_folded(text: &str, folded_prefix: &str) -> bool {
    let mut expected = folded_prefix.chars();
    for c in text.chars() {
        for lower in c.to_lowercase() {
            match expected.next() {
                None => return true,
                Some(e) if e == lower => {}
                Some(_) => return false,
            }
        }
    }
    expected.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(keyword: &str, text: &str) -> bool {
        let kw = Keyword::new(keyword).expect("non-empty keyword");
        let fast = kw.found_in(text, text.is_ascii());
        // The general path must agree with the ASCII fast path.
        let slow = kw.found_in(text, false);
        assert_eq!(fast, slow, "{keyword:?} in {text:?}");
        assert_eq!(fast, fold(text).contains(kw.folded()), "{keyword:?} in {text:?}");
        fast
    }

    #[test]
    fn ascii_ignores_case() {
        assert!(found("Refund", "I want a REFUND now"));
        assert!(found("refund", "refund"));
        assert!(!found("refunds", "refund"));
        assert!(!found("x", ""));
    }

    #[test]
    fn chinese_and_mixed_text() {
        assert!(found("退款", "我要退款！"));
        assert!(!found("退货", "我要退款！"));
        assert!(found("refund", "我要 REFUND 退款"));
        assert!(found("投诉", "投诉"));
        assert!(found("VIP客户", "我是vip客户"));
    }

    #[test]
    fn non_ascii_case() {
        assert!(found("straße", "STRASSE oder STRAẞE"));
        assert!(found("ΣΟΦΙΑ", "σοφια"));
        assert!(found("émile", "ÉMILE"));
    }

    #[test]
    fn caseless_characters_are_the_lowercase_of_nothing_else() {
        for x in (0..=u32::from(char::MAX)).filter_map(char::from_u32) {
            for lower in x.to_lowercase() {
                assert!(
                    lower == x || !is_caseless(lower),
                    "{x:?} lowercases to {lower:?}, which is taken as caseless"
                );
            }
        }
        assert!("退款投诉，。123 😀".chars().all(is_caseless));
        assert!(!"aßσk".chars().any(is_caseless));
    }

    #[test]
    fn empty_keyword_is_refused() {
        assert!(Keyword::new("").is_none());
    }
}
