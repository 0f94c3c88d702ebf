//! Entities: order numbers, phone numbers and e-mail addresses.

use std::ops::Range;
use std::sync::OnceLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::error::NluError;

/// What an [`Entity`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    /// An order, shipment or transaction identifier.
    OrderNumber,
    /// A Chinese mobile number or an international number written with `+`.
    Phone,
    /// An e-mail address.
    Email,
}

/// An entity found in a message.
///
/// Invariants: `span` is a byte range of the input on character boundaries and
/// `text[span] == value`; entities returned together never overlap and are sorted by position.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Entity {
    /// What was found.
    pub kind: EntityKind,
    /// The text as written (for an order number after `#`, without the `#`).
    pub value: String,
    /// Where `value` is in the input, in bytes.
    pub span: Range<usize>,
}

/// How order numbers are recognised. Phones and e-mails are not configurable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityConfig {
    /// Regular expressions (Rust `regex` syntax) for order numbers that need no context. A match
    /// counts only when it is not glued to further ASCII letters or digits; when the pattern has
    /// a capture group, group 1 is the order number. Defaults: `#` followed by an id with at
    /// least three digits (`#20231125-7781`, `#A1024`), and up to six letters, a dash (optional
    /// when the letters are capitals) and three or more digits (`A-1024`, `ORD-55821`,
    /// `SO20230001`).
    pub order_patterns: Vec<String>,
    /// Words that make a bare run of digits an order number when they appear within
    /// `keyword_window` characters before or after it (compared case-insensitively).
    pub order_keywords: Vec<String>,
    /// Words that make a Chinese-mobile-shaped number a phone number even next to an order word.
    pub phone_keywords: Vec<String>,
    /// How many characters around a bare number are searched for keywords.
    pub keyword_window: usize,
    /// Length range of a bare digit run that may be an order number.
    pub bare_digits: (usize, usize),
}

impl Default for EntityConfig {
    fn default() -> Self {
        let words = |ws: &[&str]| ws.iter().map(|w| (*w).to_owned()).collect();
        EntityConfig {
            order_patterns: vec![
                r"#((?:[A-Za-z]{1,6}-?)?[0-9]{3,}(?:-[0-9A-Za-z]+)*)".to_owned(),
                r"(?:[A-Z]{1,6}-?|[A-Za-z]{1,6}-)[0-9]{3,20}(?:-[0-9]+)*".to_owned(),
            ],
            order_keywords: words(&[
                "order",
                "ord",
                "purchase",
                "tracking",
                "invoice",
                "订单",
                "单号",
                "编号",
                "运单",
                "快递单",
                "交易号",
                "流水号",
                "订单号",
            ]),
            phone_keywords: words(&["phone", "mobile", "tel", "call", "电话", "手机", "联系方式", "致电"]),
            keyword_window: 16,
            bare_digits: (8, 20),
        }
    }
}

/// Finds entities. Build once (compiling the patterns), then share; `Send + Sync`.
#[derive(Debug, Clone)]
pub struct EntityExtractor {
    order_patterns: Vec<Regex>,
    bare_digits: Regex,
    cn_mobile: Regex,
    intl_phone: Regex,
    email: Regex,
    order_keywords: Vec<String>,
    phone_keywords: Vec<String>,
    window: usize,
    bare_range: (usize, usize),
}

fn compile(pattern: &str) -> Result<Regex, NluError> {
    // A size limit keeps a tenant's pattern from costing unbounded memory.
    regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| NluError::InvalidPattern {
            pattern: pattern.to_owned(),
            reason: e.to_string(),
        })
}

/// Built-in patterns; fixed strings that `default_extractor_builds` compiles.
const BARE_DIGITS: &str = "[0-9]+";
const CN_MOBILE: &str = r"(?:\+?86[ -]?)?1[3-9][0-9](?:[ -]?[0-9]{4}){2}";
const INTL_PHONE: &str = r"\+[1-9][0-9]{0,3}(?:[ ()-]{0,2}[0-9]){6,14}";
const EMAIL: &str = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}";

fn glued(text: &str, span: &Range<usize>) -> bool {
    let before = text[..span.start].chars().next_back();
    let after = text[span.end..].chars().next();
    before.is_some_and(|c| c.is_ascii_alphanumeric()) || after.is_some_and(|c| c.is_ascii_alphanumeric())
}

/// Priority when candidates overlap: lower wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Rank {
    Email,
    IntlPhone,
    OrderPattern,
    Contextual,
}

impl EntityExtractor {
    /// Compiles `config`. Fails with [`NluError::InvalidPattern`] naming a pattern that does not
    /// compile, or naming `bare_digits` when its range is empty or starts at 0.
    pub fn new(config: &EntityConfig) -> Result<Self, NluError> {
        let (lo, hi) = config.bare_digits;
        if lo == 0 || lo > hi {
            return Err(NluError::InvalidPattern {
                pattern: format!("bare_digits {lo}..={hi}"),
                reason: "the range must be non-empty and start at 1 or more".to_owned(),
            });
        }
        Ok(EntityExtractor {
            order_patterns: config
                .order_patterns
                .iter()
                .map(|p| compile(p))
                .collect::<Result<_, _>>()?,
            bare_digits: compile(BARE_DIGITS)?,
            cn_mobile: compile(CN_MOBILE)?,
            intl_phone: compile(INTL_PHONE)?,
            email: compile(EMAIL)?,
            order_keywords: config
                .order_keywords
                .iter()
                .map(|k| k.to_lowercase())
                .filter(|k| !k.is_empty())
                .collect(),
            phone_keywords: config
                .phone_keywords
                .iter()
                .map(|k| k.to_lowercase())
                .filter(|k| !k.is_empty())
                .collect(),
            window: config.keyword_window,
            bare_range: (lo, hi),
        })
    }

    /// Finds order numbers, phone numbers and e-mail addresses in `text`, sorted by position and
    /// never overlapping. Never panics; linear in the input.
    pub fn extract(&self, text: &str) -> Vec<Entity> {
        let mut candidates: Vec<(Rank, EntityKind, Range<usize>)> = Vec::new();
        let has_digit = text.bytes().any(|b| b.is_ascii_digit());
        // Cheap pre-checks skip whole patterns for the common message without '@', '+' or digits.
        if text.contains('@') {
            for m in self.email.find_iter(text) {
                candidates.push((Rank::Email, EntityKind::Email, m.range()));
            }
        }
        if has_digit && text.contains('+') {
            for m in self.intl_phone.find_iter(text) {
                let span = trim_phone(text, m.range());
                let after = text[span.end..].chars().next();
                if !after.is_some_and(|c| c.is_ascii_digit()) {
                    candidates.push((Rank::IntlPhone, EntityKind::Phone, span));
                }
            }
        }
        for re in &self.order_patterns {
            for caps in re.captures_iter(text) {
                let Some(whole) = caps.get(0) else { continue };
                if whole.is_empty() || glued(text, &whole.range()) {
                    continue;
                }
                let id = caps.get(1).unwrap_or(whole);
                if !id.is_empty() {
                    candidates.push((Rank::OrderPattern, EntityKind::OrderNumber, id.range()));
                }
            }
        }
        if !has_digit {
            return finish(text, candidates);
        }
        for m in self.cn_mobile.find_iter(text) {
            let span = m.range();
            if glued(text, &span) {
                continue;
            }
            let kind = if self.near(text, &span, &self.order_keywords) && !self.near(text, &span, &self.phone_keywords)
            {
                EntityKind::OrderNumber
            } else {
                EntityKind::Phone
            };
            candidates.push((Rank::Contextual, kind, span));
        }
        let (lo, hi) = self.bare_range;
        for m in self.bare_digits.find_iter(text) {
            let span = m.range();
            if !(lo..=hi).contains(&span.len()) || glued(text, &span) {
                continue;
            }
            if self.near(text, &span, &self.order_keywords) {
                candidates.push((Rank::Contextual, EntityKind::OrderNumber, span));
            }
        }
        finish(text, candidates)
    }

    /// Whether one of `keywords` occurs within the window before or after `span`.
    fn near(&self, text: &str, span: &Range<usize>, keywords: &[String]) -> bool {
        let start = text[..span.start]
            .char_indices()
            .rev()
            .take(self.window)
            .last()
            .map_or(span.start, |(i, _)| i);
        let end = text[span.end..]
            .char_indices()
            .nth(self.window)
            .map_or(text.len(), |(i, _)| span.end + i);
        let before = text[start..span.start].to_lowercase();
        let after = text[span.end..end].to_lowercase();
        keywords
            .iter()
            .any(|k| before.contains(k.as_str()) || after.contains(k.as_str()))
    }
}

/// Cuts trailing digit groups off an international number until it has at most 15 digits (the
/// E.164 maximum), since the pattern may run on into a following number.
fn trim_phone(text: &str, mut span: Range<usize>) -> Range<usize> {
    loop {
        let s = &text[span.clone()];
        if s.bytes().filter(u8::is_ascii_digit).count() <= 15 {
            return span;
        }
        match s.rfind([' ', '-', '(', ')']) {
            Some(cut) if cut > 1 => {
                span.end = span.start + s[..cut].trim_end_matches([' ', '-', '(', ')']).len();
            }
            _ => return span,
        }
    }
}

fn finish(text: &str, mut candidates: Vec<(Rank, EntityKind, Range<usize>)>) -> Vec<Entity> {
    candidates.sort_by_key(|(rank, _, span)| (*rank, span.start, std::cmp::Reverse(span.end)));
    let mut taken: Vec<Entity> = Vec::new();
    for (_, kind, span) in candidates {
        if span.is_empty() || taken.iter().any(|e| e.span.start < span.end && span.start < e.span.end) {
            continue;
        }
        taken.push(Entity {
            kind,
            value: text[span.clone()].to_owned(),
            span,
        });
    }
    taken.sort_by_key(|e| e.span.start);
    taken
}

fn default_extractor() -> &'static EntityExtractor {
    static DEFAULT: OnceLock<EntityExtractor> = OnceLock::new();
    // The default configuration is fixed and `default_extractor_builds` compiles it.
    DEFAULT.get_or_init(|| {
        EntityExtractor::new(&EntityConfig::default()).unwrap_or_else(|e| panic!("default entity patterns: {e}"))
    })
}

impl Default for EntityExtractor {
    fn default() -> Self {
        default_extractor().clone()
    }
}

/// Finds entities with the default [`EntityConfig`]. See [`EntityExtractor::extract`].
pub fn entities(text: &str) -> Vec<Entity> {
    default_extractor().extract(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Vec<(EntityKind, &str)> {
        let es = entities(text);
        for e in &es {
            assert_eq!(&text[e.span.clone()], e.value);
        }
        es.into_iter().map(|e| (e.kind, &text[e.span])).collect()
    }

    use EntityKind::*;

    #[test]
    fn default_extractor_builds() {
        let _ = EntityExtractor::new(&EntityConfig::default()).unwrap();
    }

    #[test]
    fn order_numbers() {
        assert_eq!(found("订单号 A-1024 现在什么情况"), [(OrderNumber, "A-1024")]);
        assert_eq!(found("can you check #20231125-7781"), [(OrderNumber, "20231125-7781")]);
        assert_eq!(found("any news on ORD-55821?"), [(OrderNumber, "ORD-55821")]);
        assert_eq!(
            found("订单2023112598765432帮忙查下"),
            [(OrderNumber, "2023112598765432")]
        );
        assert_eq!(found("order number 8812345670 status"), [(OrderNumber, "8812345670")]);
        assert_eq!(found("12345678 is my order"), [(OrderNumber, "12345678")]);
        assert_eq!(found("订单A-1024到哪了"), [(OrderNumber, "A-1024")]);
    }

    #[test]
    fn bare_numbers_need_context() {
        assert!(found("I waited 12345678 seconds").is_empty());
        assert!(found("COVID-19 and MP3 and a-12").is_empty());
        assert!(found("order 1234567").is_empty(), "too short");
        assert!(found("order 123456789012345678901").is_empty(), "too long");
    }

    #[test]
    fn phones() {
        assert_eq!(found("我的手机号13812345678"), [(Phone, "13812345678")]);
        assert_eq!(found("call 138 1234 5678 please"), [(Phone, "138 1234 5678")]);
        assert_eq!(found("+86 138-1234-5678"), [(Phone, "+86 138-1234-5678")]);
        assert_eq!(found("reach me at +1 (415) 555-0199."), [(Phone, "+1 (415) 555-0199")]);
        assert_eq!(found("+44 20 7946 0958 or so"), [(Phone, "+44 20 7946 0958")]);
        assert!(found("12813812345678").is_empty(), "longer digit runs are not mobiles");
        assert_eq!(found("订单号13812345678"), [(OrderNumber, "13812345678")]);
        assert_eq!(found("订单有问题，电话13812345678"), [(Phone, "13812345678")]);
    }

    #[test]
    fn emails() {
        assert_eq!(
            found("mail me: li.wei+shop@example.com.cn."),
            [(Email, "li.wei+shop@example.com.cn")]
        );
        assert_eq!(found("邮箱是abc123@qq.com谢谢"), [(Email, "abc123@qq.com")]);
        assert!(found("a@b, @home, x@y.z").is_empty());
    }

    #[test]
    fn mixed_and_sorted() {
        let es = found("订单 A-1024，手机 13912345678，邮箱 a@b.co");
        assert_eq!(es, [(OrderNumber, "A-1024"), (Phone, "13912345678"), (Email, "a@b.co")]);
    }

    #[test]
    fn tenant_patterns() {
        let config = EntityConfig {
            order_patterns: vec![r"YW[0-9]{6}".into()],
            ..EntityConfig::default()
        };
        let x = EntityExtractor::new(&config).unwrap();
        let es = x.extract("单子 YW123456 和 A-1024");
        assert_eq!(es.len(), 1);
        assert_eq!(es[0].value, "YW123456");
        let bad = EntityConfig {
            order_patterns: vec!["(".into()],
            ..EntityConfig::default()
        };
        assert!(matches!(
            EntityExtractor::new(&bad),
            Err(NluError::InvalidPattern { .. })
        ));
        let empty = EntityConfig {
            order_patterns: vec!["x*".into()],
            ..EntityConfig::default()
        };
        let _ = EntityExtractor::new(&empty).unwrap().extract("xx yy 😀");
    }

    #[test]
    fn odd_input() {
        for t in [
            String::new(),
            "#".repeat(50_000),
            "9".repeat(100_000),
            "+".repeat(1000) + &"1".repeat(1000),
            "@.".repeat(20_000),
            "订单".repeat(10_000) + "12345678",
            "\u{0}13812345678\u{0}".into(),
            "１３８１２３４５６７８".into(),
            "a@b.cc😀+8613812345678😀#123456".into(),
        ] {
            for e in entities(&t) {
                assert_eq!(&t[e.span.clone()], e.value);
            }
        }
    }
}
