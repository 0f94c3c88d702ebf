//! Checking a customer's answer to an `ask` and turning it into a slot value.

use std::sync::OnceLock;

use regex::Regex;
use serde_json::Value;

use crate::context::{LocalNow, Message, civil_from_days, days_from_civil, days_in_month};
use crate::spec::{DateRange, NumberRule};

/// Answers longer than this are refused without looking: no slot needs more, and it bounds the
/// cost of every check.
pub(crate) const MAX_ANSWER_CHARS: usize = 2000;
/// The default for `text.max_chars`.
pub(crate) const DEFAULT_TEXT_CHARS: usize = 500;

/// A compiled validator.
#[derive(Debug, Clone)]
pub(crate) enum Validator {
    Pattern(Regex),
    Choice(Vec<Choice>),
    Number(NumberRule),
    Date(DateRange),
    OrderNumber,
    Text(usize),
}

/// A choice option with its answers normalised.
#[derive(Debug, Clone)]
pub(crate) struct Choice {
    pub(crate) value: String,
    pub(crate) answers: Vec<String>,
}

impl Validator {
    /// The slot value for a valid answer, `None` for an invalid one.
    pub(crate) fn check(&self, message: &Message, today: LocalNow) -> Option<Value> {
        let text = message.text.trim();
        if text.chars().count() > MAX_ANSWER_CHARS {
            return None;
        }
        match self {
            Validator::Pattern(re) => {
                let caps = re.captures(text)?;
                let m = caps.get(1).or_else(|| caps.get(0))?;
                (!m.as_str().is_empty()).then(|| Value::from(m.as_str()))
            }
            Validator::Choice(options) => choose(options, text).map(Value::from),
            Validator::Number(rule) => number(text, rule),
            Validator::Date(range) => date(text, *range, today.day),
            Validator::OrderNumber => order_number(message, text).map(Value::from),
            Validator::Text(max) => (!text.is_empty() && text.chars().count() <= *max).then(|| Value::from(text)),
        }
    }
}

/// Lowercase, punctuation and symbols to spaces, spaces collapsed: `" 是的！"` → `"是的"`.
pub(crate) fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = true;
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            out.push(c);
            space = false;
        } else if !space {
            out.push(' ');
            space = true;
        }
    }
    if out.ends_with(' ') {
        out.pop();
    }
    out
}

/// The option an answer chooses: one whose value or synonym is the whole answer; otherwise the
/// one whose value or synonym appears first in the answer, the longest when several start at the
/// same place (whole words for Latin script, any substring for Chinese). So `不是` chooses "no"
/// over the "yes" of `是`, and `没有帮助` "no" (`没有`) over "yes" (`有帮助`). Two options tied
/// on place and length choose nothing.
fn choose(options: &[Choice], text: &str) -> Option<String> {
    let answer = normalise(text);
    if answer.is_empty() {
        return None;
    }
    if let Some(option) = options.iter().find(|o| o.answers.contains(&answer)) {
        return Some(option.value.clone());
    }
    let padded = format!(" {answer} ");
    // (position, -length) orders the best match first.
    let mut best: Option<((usize, isize), usize)> = None;
    let mut tie = false;
    for (index, option) in options.iter().enumerate() {
        for candidate in &option.answers {
            let found = if candidate.is_ascii() {
                padded.find(&format!(" {candidate} "))
            } else {
                answer.find(candidate.as_str())
            };
            let Some(position) = found else { continue };
            let key = (position, -isize::try_from(candidate.len()).unwrap_or(isize::MAX));
            match best {
                Some((best_key, _)) if key > best_key => {}
                Some((best_key, best_index)) if key == best_key => tie |= best_index != index,
                _ => {
                    best = Some((key, index));
                    tie = false;
                }
            }
        }
    }
    match best {
        Some((_, index)) if !tie => options.get(index).map(|o| o.value.clone()),
        _ => None,
    }
}

/// ASCII and full-width digits, `.`, `-`, `+` as ASCII; everything else as is.
fn ascii_digits(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '０'..='９' => char::from_u32(u32::from(c) - u32::from('０') + u32::from('0')).unwrap_or(c),
            '．' | '。' => '.',
            '－' | '−' => '-',
            '＋' => '+',
            _ => c,
        })
        .collect()
}

fn number(text: &str, rule: &NumberRule) -> Option<Value> {
    let value = first_number(&ascii_digits(text)).or_else(|| chinese_number(text))?;
    if !value.is_finite()
        || rule.min.is_some_and(|min| value < min)
        || rule.max.is_some_and(|max| value > max)
        || (rule.integer && value.fract() != 0.0)
    {
        return None;
    }
    if value.fract() == 0.0 && value.abs() < 9.0e15 {
        // Whole numbers are kept as integers so `{{slot.n}}` reads `3`, not `3.0`.
        #[allow(clippy::cast_possible_truncation)]
        return Some(Value::from(value as i64));
    }
    serde_json::Number::from_f64(value).map(Value::Number)
}

/// The first number written with digits: an optional sign, digits, an optional fraction;
/// thousands separators (`1,200`) are read through.
fn first_number(text: &str) -> Option<f64> {
    let bytes = text.as_bytes();
    let start = bytes.iter().position(u8::is_ascii_digit)?;
    let negative = start > 0 && bytes.get(start - 1) == Some(&b'-');
    let mut digits = String::new();
    let mut end = start;
    let mut seen_point = false;
    while let Some(&b) = bytes.get(end) {
        match b {
            b'0'..=b'9' => digits.push(char::from(b)),
            b',' if !seen_point && bytes.get(end + 1).is_some_and(u8::is_ascii_digit) => {}
            b'.' if !seen_point && bytes.get(end + 1).is_some_and(u8::is_ascii_digit) => {
                seen_point = true;
                digits.push('.');
            }
            _ => break,
        }
        end += 1;
        if digits.len() > 30 {
            return None;
        }
    }
    let value = digits.parse::<f64>().ok()?;
    Some(if negative { -value } else { value })
}

/// A whole answer written in Chinese numerals from 零 to 九十九 (with 两 for 2), optionally
/// followed by a measure word.
fn chinese_number(text: &str) -> Option<f64> {
    let digit = |c: char| {
        "零一二三四五六七八九"
            .chars()
            .position(|d| d == c)
            .or((c == '两').then_some(2))
    };
    let core = normalise(text);
    let core = core.trim_end_matches(['个', '件', '位', '次', '天', '人', '岁', '本', '份']);
    let chars = core.chars().collect::<Vec<_>>();
    let value = match chars.as_slice() {
        ['十'] => 10,
        [d] => digit(*d)?,
        ['十', d] => 10 + digit(*d)?,
        [t, '十'] => digit(*t)? * 10,
        [t, '十', d] => digit(*t)? * 10 + digit(*d)?,
        _ => return None,
    };
    u32::try_from(value).ok().map(f64::from)
}

fn date_patterns() -> Option<&'static [Regex; 4]> {
    static PATTERNS: OnceLock<Option<[Regex; 4]>> = OnceLock::new();
    PATTERNS
        .get_or_init(|| {
            Some([
                // 2026-11-25, 2026/11/25, 2026.11.25, 2026年11月25日
                Regex::new(r"(\d{4})\s*(?:[-/.]|年)\s*(\d{1,2})\s*(?:[-/.]|月)\s*(\d{1,2})").ok()?,
                // 11月25日, 11月25号
                Regex::new(r"(\d{1,2})\s*月\s*(\d{1,2})\s*[日号]").ok()?,
                // November 25, 2026 / Nov 25
                Regex::new(r"(?i)\b([a-z]{3,9})\.?\s+(\d{1,2})(?:st|nd|rd|th)?\b(?:,?\s*(\d{4}))?").ok()?,
                // 25 November 2026 / 25 Nov
                Regex::new(r"(?i)\b(\d{1,2})(?:st|nd|rd|th)?\s+([a-z]{3,9})\.?\b(?:,?\s*(\d{4}))?").ok()?,
            ])
        })
        .as_ref()
}

fn month_number(name: &str) -> Option<u32> {
    let name = name.to_ascii_lowercase();
    const MONTHS: [&str; 12] = [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    // A month is its name or any prefix of three letters or more (`nov`, `sept`); all unique.
    let index = MONTHS
        .iter()
        .position(|m| name.len() >= 3 && m.starts_with(name.as_str()))?;
    u32::try_from(index + 1).ok()
}

/// A date: ISO-like (`2026-11-25`, `2026/11/25`, `2026.11.25`), Chinese (`2026年11月25日`,
/// `11月25日` or `号`, this year), English (`November 25, 2026`, `Nov 25`, `25 Nov 2026`), or a
/// relative word (`今天`/`today`, `明天`/`tomorrow`, `后天`/`the day after tomorrow`,
/// `昨天`/`yesterday`, `前天`/`the day before yesterday`). Digits may be full-width.
fn date(text: &str, range: DateRange, today: i64) -> Option<Value> {
    let day = parse_date(&ascii_digits(text), today)?;
    let ok = match range {
        DateRange::Any => true,
        DateRange::Past => day <= today,
        DateRange::Future => day >= today,
    };
    if !ok {
        return None;
    }
    let (y, m, d) = civil_from_days(day);
    Some(Value::from(format!("{y:04}-{m:02}-{d:02}")))
}

fn parse_date(text: &str, today: i64) -> Option<i64> {
    let lower = text.to_lowercase();
    // Longest words first: "the day after tomorrow" contains "tomorrow", 后天 is not in 明天.
    for (words, offset) in [
        (&["the day after tomorrow", "day after tomorrow", "后天"][..], 2),
        (&["the day before yesterday", "day before yesterday", "前天"][..], -2),
        (&["tomorrow", "明天", "明日"][..], 1),
        (&["yesterday", "昨天", "昨日"][..], -1),
        (&["today", "今天", "今日"][..], 0),
    ] {
        if words.iter().any(|w| lower.contains(w)) {
            return Some(today + offset);
        }
    }
    let [full, chinese_md, en_md, en_dm] = date_patterns()?;
    let (this_year, _, _) = civil_from_days(today);
    let num = |s: Option<regex::Match<'_>>| s.and_then(|m| m.as_str().parse::<i64>().ok());
    let ymd = if let Some(c) = full.captures(&lower) {
        (num(c.get(1))?, num(c.get(2))?, num(c.get(3))?)
    } else if let Some(c) = chinese_md.captures(&lower) {
        (this_year, num(c.get(1))?, num(c.get(2))?)
    } else if let Some((c, month)) = en_md
        .captures(&lower)
        .and_then(|c| Some((month_number(c.get(1)?.as_str())?, c)))
        .map(|(m, c)| (c, m))
    {
        (num(c.get(3)).unwrap_or(this_year), i64::from(month), num(c.get(2))?)
    } else if let Some((c, month)) = en_dm
        .captures(&lower)
        .and_then(|c| Some((month_number(c.get(2)?.as_str())?, c)))
        .map(|(m, c)| (c, m))
    {
        (num(c.get(3)).unwrap_or(this_year), i64::from(month), num(c.get(1))?)
    } else {
        return None;
    };
    let (year, month, day) = ymd;
    let month = u32::try_from(month).ok()?;
    let day = u32::try_from(day).ok()?;
    if !(1..=9999).contains(&year) || !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    Some(days_from_civil(year, month, day))
}

fn bare_digit_range() -> (usize, usize) {
    static RANGE: OnceLock<(usize, usize)> = OnceLock::new();
    *RANGE.get_or_init(|| yy_nlu::EntityConfig::default().bare_digits)
}

/// An order number: the first the understanding found (the tenant's configuration); else the
/// first `yy_nlu` finds with its default patterns; else, since the customer is answering a
/// question about their order number, a whole answer of bare digits (an optional `#`) of the
/// length `yy_nlu` accepts for a bare order number next to the word "order".
fn order_number(message: &Message, text: &str) -> Option<String> {
    if let Some(found) = message
        .understanding
        .order_numbers
        .iter()
        .find(|n| !n.trim().is_empty())
    {
        return Some(found.trim().to_owned());
    }
    if let Some(entity) = yy_nlu::entities(text)
        .into_iter()
        .find(|e| e.kind == yy_nlu::EntityKind::OrderNumber)
    {
        return Some(entity.value);
    }
    let digits = ascii_digits(text);
    let bare = digits
        .trim()
        .trim_start_matches('#')
        .trim_end_matches(|c: char| !c.is_alphanumeric());
    let (lo, hi) = bare_digit_range();
    (bare.bytes().all(|b| b.is_ascii_digit()) && (lo..=hi).contains(&bare.len())).then(|| bare.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Understanding;

    fn today() -> LocalNow {
        LocalNow {
            day: days_from_civil(2026, 11, 25),
            minute: 600,
            weekday: 2,
        }
    }

    fn check(v: &Validator, text: &str) -> Option<Value> {
        v.check(&Message::text(text), today())
    }

    #[test]
    fn given_a_pattern_when_answered_then_group_one_or_the_match_is_the_value() {
        let v = Validator::Pattern(Regex::new(r"([A-Z]{2}\d{4})").unwrap());
        assert_eq!(check(&v, "it is AB1234 thanks"), Some(Value::from("AB1234")));
        assert_eq!(check(&v, "ab1234"), None);
        let whole = Validator::Pattern(Regex::new(r"^\d{6}$").unwrap());
        assert_eq!(check(&whole, " 123456 "), Some(Value::from("123456")));
        assert_eq!(check(&whole, "1234567"), None);
    }

    #[test]
    fn given_choices_when_answered_in_either_language_then_synonyms_and_negations_choose_right() {
        let options = vec![
            Choice {
                value: "yes".into(),
                answers: ["yes", "y", "是", "是的", "有帮助", "好的"].map(normalise).to_vec(),
            },
            Choice {
                value: "no".into(),
                answers: ["no", "n", "不是", "没有", "没帮助", "不"].map(normalise).to_vec(),
            },
        ];
        let v = Validator::Choice(options);
        assert_eq!(check(&v, "YES!"), Some(Value::from("yes")));
        assert_eq!(check(&v, "是的，谢谢"), Some(Value::from("yes")));
        assert_eq!(check(&v, "不是"), Some(Value::from("no")));
        assert_eq!(check(&v, "没有帮助"), Some(Value::from("no")));
        assert_eq!(check(&v, "well no, not really"), Some(Value::from("no")));
        assert_eq!(check(&v, "I don't know"), None, "no inside know is not a word");
        assert_eq!(check(&v, "maybe"), None);
        assert_eq!(check(&v, ""), None);
    }

    #[test]
    fn given_a_number_rule_when_answered_then_digits_full_width_and_chinese_numerals_are_read() {
        let v = Validator::Number(NumberRule {
            min: Some(1.0),
            max: Some(30.0),
            integer: true,
        });
        assert_eq!(check(&v, "3"), Some(Value::from(3)));
        assert_eq!(check(&v, "我要２５个"), Some(Value::from(25)));
        assert_eq!(check(&v, "二十五个"), Some(Value::from(25)));
        assert_eq!(check(&v, "两"), Some(Value::from(2)));
        assert_eq!(check(&v, "31"), None);
        assert_eq!(check(&v, "2.5"), None);
        assert_eq!(check(&v, "-3"), None);
        assert_eq!(check(&v, "none"), None);
        let any = Validator::Number(NumberRule::default());
        assert_eq!(check(&any, "price 1,299.50 yuan"), Some(serde_json::json!(1299.5)));
        assert_eq!(check(&any, &"9".repeat(500)), None);
    }

    #[test]
    fn given_a_date_rule_when_answered_then_formats_and_relative_words_are_read() {
        let v = Validator::Date(DateRange::Any);
        for (text, expected) in [
            ("2026-11-25", "2026-11-25"),
            ("2026/1/5", "2026-01-05"),
            ("2026年11月25日", "2026-11-25"),
            ("２０２６年１２月１日", "2026-12-01"),
            ("12月3号", "2026-12-03"),
            ("明天", "2026-11-26"),
            ("后天下午", "2026-11-27"),
            ("昨天", "2026-11-24"),
            ("tomorrow please", "2026-11-26"),
            ("the day after tomorrow", "2026-11-27"),
            ("November 30, 2026", "2026-11-30"),
            ("Dec 1", "2026-12-01"),
            ("1st March 2027", "2027-03-01"),
        ] {
            assert_eq!(check(&v, text), Some(Value::from(expected)), "{text}");
        }
        assert_eq!(check(&v, "2026-02-30"), None);
        assert_eq!(check(&v, "someday"), None);
        let future = Validator::Date(DateRange::Future);
        assert_eq!(check(&future, "昨天"), None);
        assert!(check(&future, "今天").is_some());
        let past = Validator::Date(DateRange::Past);
        assert_eq!(check(&past, "明天"), None);
    }

    #[test]
    fn given_an_order_number_question_when_answered_then_nlu_entities_and_bare_digits_count() {
        let v = Validator::OrderNumber;
        assert_eq!(check(&v, "订单 A-1024"), Some(Value::from("A-1024")));
        assert_eq!(check(&v, "#20231125-7781"), Some(Value::from("20231125-7781")));
        assert_eq!(check(&v, "88123456"), Some(Value::from("88123456")));
        assert_eq!(check(&v, "１２３４５６７８９"), Some(Value::from("123456789")));
        assert_eq!(check(&v, "1234"), None);
        assert_eq!(check(&v, "不知道"), None);
        let understood = Message {
            text: "it's YW123456".into(),
            understanding: Understanding {
                order_numbers: vec!["YW123456".into()],
                ..Understanding::default()
            },
        };
        assert_eq!(v.check(&understood, today()), Some(Value::from("YW123456")));
    }

    #[test]
    fn given_text_rule_when_answered_then_length_counts() {
        let v = Validator::Text(5);
        assert_eq!(check(&v, " 你好 "), Some(Value::from("你好")));
        assert_eq!(check(&v, "toolong"), None);
        assert_eq!(check(&v, "   "), None);
    }
}
