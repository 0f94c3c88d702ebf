//! What the service tells the engine about the conversation, and the customer's messages.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The languages flow texts are written in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lang {
    /// Chinese.
    #[default]
    Zh,
    /// English.
    En,
}

/// The conversation around a flow, given by the service with every call: the engine has no
/// clock and no other source of facts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Context {
    /// Now, in milliseconds since the Unix epoch (UTC).
    pub now_ms: i64,
    /// The business's offset from UTC in minutes (480 for China), for local time and dates.
    pub utc_offset_minutes: i32,
    /// The conversation's id (for `{{conversation.id}}`).
    pub conversation_id: String,
    /// The conversation's channel, such as `web` or `wechat`.
    pub channel: String,
    /// The customer.
    pub contact: Contact,
    /// The conversation's language when the flow starts; each message whose language is known
    /// changes it.
    pub language: Lang,
}

/// The customer as the service knows them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Contact {
    /// The contact's id.
    pub id: String,
    /// The display name, when known.
    pub name: Option<String>,
    /// CRM attributes.
    pub attributes: BTreeMap<String, String>,
}

/// A customer message with what the language understanding made of it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Message {
    /// The text as written.
    pub text: String,
    /// The language understanding's view of it.
    pub understanding: Understanding,
}

impl Message {
    /// A message without understanding (no intent, sentiment or entities known).
    pub fn text(text: impl Into<String>) -> Self {
        Message {
            text: text.into(),
            understanding: Understanding::default(),
        }
    }
}

/// The language understanding of one message; every part is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Understanding {
    /// The top intent, when one was recognised (not a fallback).
    pub intent: Option<String>,
    /// Its confidence, 0 to 1.
    pub intent_confidence: Option<f32>,
    /// The sentiment score, -1 (negative) to 1 (positive).
    pub sentiment: Option<f32>,
    /// The detected language, when it was Chinese or English.
    pub language: Option<Lang>,
    /// Order numbers found in the message, as `yy_nlu` recognises them with the tenant's
    /// configuration; an `order_number` question takes the first.
    pub order_numbers: Vec<String>,
}

impl Understanding {
    /// The understanding `yy_nlu` gives: the top intent unless it is a fallback, the sentiment
    /// score, the language when it is Chinese or English, and the order numbers.
    pub fn from_analysis(analysis: &yy_nlu::Analysis) -> Self {
        let intent = if analysis.intents.fallback {
            None
        } else {
            analysis.intents.top.first().cloned()
        };
        Understanding {
            intent_confidence: intent.as_ref().map(|(_, c)| *c),
            intent: intent.map(|(name, _)| name),
            sentiment: Some(analysis.sentiment.score),
            language: match analysis.language {
                yy_nlu::Language::Zh => Some(Lang::Zh),
                yy_nlu::Language::En => Some(Lang::En),
                _ => None,
            },
            order_numbers: analysis
                .entities
                .iter()
                .filter(|e| e.kind == yy_nlu::EntityKind::OrderNumber)
                .map(|e| e.value.clone())
                .collect(),
        }
    }
}

/// A local date and time, derived from [`Context::now_ms`] and the UTC offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LocalNow {
    /// Days since 1970-01-01 (local).
    pub(crate) day: i64,
    /// Minutes since local midnight.
    pub(crate) minute: u32,
    /// 0 = Monday … 6 = Sunday.
    pub(crate) weekday: u32,
}

impl Context {
    pub(crate) fn local(&self) -> LocalNow {
        let offset = i64::from(self.utc_offset_minutes.clamp(-24 * 60, 24 * 60)) * 60;
        let seconds = self.now_ms.div_euclid(1000).saturating_add(offset);
        let day = seconds.div_euclid(86_400);
        let minute = u32::try_from(seconds.rem_euclid(86_400) / 60).unwrap_or(0);
        // 1970-01-01 was a Thursday (3 counting from Monday = 0).
        let weekday = u32::try_from((day + 3).rem_euclid(7)).unwrap_or(0);
        LocalNow { day, minute, weekday }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number: (year, month, day).
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Days in a month of a year.
pub(crate) fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(days_from_civil(2026, 11, 25)), (2026, 11, 25));
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(days_in_month(2026, 2), 28);
        assert_eq!(days_in_month(2000, 2), 29);
    }

    #[test]
    fn local_time_follows_the_offset() {
        // 2026-11-25 14:33 UTC is 22:33 in China, a Wednesday.
        let utc = days_from_civil(2026, 11, 25) * 86_400_000 + (14 * 60 + 33) * 60_000;
        let ctx = Context {
            now_ms: utc,
            utc_offset_minutes: 480,
            ..Context::default()
        };
        let local = ctx.local();
        assert_eq!(civil_from_days(local.day), (2026, 11, 25));
        assert_eq!(local.minute, 22 * 60 + 33);
        assert_eq!(local.weekday, 2);
        let late = Context {
            utc_offset_minutes: 600,
            ..ctx
        };
        assert_eq!(civil_from_days(late.local().day), (2026, 11, 26));
    }
}
