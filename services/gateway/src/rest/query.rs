//! Query parameters of the list routes, parsed strictly: an unknown parameter or a value out of
//! range is a 422 naming it, never silently ignored.

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::problem::{Problem, ProblemKind};
use crate::rest::model::{Priority, Status};
use crate::rest::tickets_model::TicketStatus;
use crate::rest::webhooks_model::{MessageStatus, parse_time_ms};

/// The largest page.
pub const MAX_PAGE_SIZE: u32 = 100;

/// The query string as name-value pairs, in order, repeated names kept.
#[derive(Debug, Clone, Default)]
pub struct QueryPairs(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<Vec<(String, String)>>::from_request_parts(parts, state).await {
            Ok(Query(pairs)) => Ok(QueryPairs(pairs)),
            Err(rejection) => Err(Problem::new(
                ProblemKind::ValidationFailed,
                format!("the query string cannot be read: {}", rejection.body_text()),
            )),
        }
    }
}

impl QueryPairs {
    fn check_known(&self, known: &[&str]) -> Result<(), Problem> {
        match self.0.iter().find(|(name, _)| !known.contains(&name.as_str())) {
            None => Ok(()),
            Some((name, _)) => Err(invalid(format!(
                "unknown query parameter `{}`; expected one of: {}",
                name.chars().take(64).collect::<String>(),
                known.join(", ")
            ))),
        }
    }

    /// The value of a parameter given at most once.
    fn single(&self, name: &str) -> Result<Option<&str>, Problem> {
        let mut values = self.0.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str());
        let first = values.next();
        if values.next().is_some() {
            return Err(invalid(format!("`{name}` may be given once")));
        }
        Ok(first)
    }
}

/// Paging of a list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Paging {
    /// How many items per page, 1 to 100. The default depends on the list (20 conversations,
    /// 50 messages).
    #[param(minimum = 1, maximum = 100, example = 20)]
    pub page_size: Option<u32>,
    /// The `next_page_token` of the previous page.
    pub page_token: Option<String>,
}

impl Paging {
    const NAMES: [&'static str; 2] = ["page_size", "page_token"];

    /// Paging alone: any other parameter is refused.
    pub fn parse(query: &QueryPairs) -> Result<Paging, Problem> {
        query.check_known(&Self::NAMES)?;
        Self::parse_from(query)
    }

    fn parse_from(query: &QueryPairs) -> Result<Paging, Problem> {
        let page_size = match query.single("page_size")? {
            None => None,
            Some(raw) => match raw.parse::<u32>() {
                Ok(size) if (1..=MAX_PAGE_SIZE).contains(&size) => Some(size),
                _ => {
                    return Err(invalid(format!(
                        "page_size must be a whole number from 1 to {MAX_PAGE_SIZE}, got {:?}",
                        raw.chars().take(32).collect::<String>()
                    )));
                }
            },
        };
        let page_token = query.single("page_token")?.filter(|t| !t.is_empty()).map(str::to_owned);
        Ok(Paging { page_size, page_token })
    }

    /// The page size for the conversation service, where 0 means its default.
    pub fn size(&self) -> u32 {
        self.page_size.unwrap_or(0)
    }

    /// The page token for the conversation service, empty for the first page.
    pub fn token(&self) -> String {
        self.page_token.clone().unwrap_or_default()
    }
}

/// Filters of the conversation list; all given filters must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConversationFilter {
    /// Only these statuses: repeat the parameter (`status=bot&status=queued`) or separate them
    /// with commas (`status=bot,queued`). All statuses when not given.
    #[param(explode = true, style = Form)]
    #[serde(default)]
    pub status: Vec<Status>,
    /// Only this channel.
    #[param(example = "web")]
    pub channel: Option<String>,
    /// Only conversations having this tag.
    #[param(example = "delivery")]
    pub tag: Option<String>,
    /// Only this priority.
    pub priority: Option<Priority>,
    /// Only this contact's conversations (including contacts merged into it).
    pub contact_id: Option<String>,
}

impl ConversationFilter {
    /// The filter and paging of a conversation list.
    pub fn parse(query: &QueryPairs) -> Result<(ConversationFilter, Paging), Problem> {
        let mut known = vec!["status", "channel", "tag", "priority", "contact_id"];
        known.extend(Paging::NAMES);
        query.check_known(&known)?;
        let mut status = Vec::new();
        for (_, value) in query.0.iter().filter(|(name, _)| name == "status") {
            for name in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let Some((_, parsed)) = Status::ALL.iter().find(|(n, _)| *n == name) else {
                    return Err(invalid(format!(
                        "status {:?} is not one of: {}",
                        name.chars().take(32).collect::<String>(),
                        Status::ALL.map(|(n, _)| n).join(", ")
                    )));
                };
                if !status.contains(parsed) {
                    status.push(*parsed);
                }
            }
        }
        let priority = match query.single("priority")? {
            None => None,
            Some(name) => match Priority::ALL.iter().find(|(n, _)| *n == name) {
                Some((_, priority)) => Some(*priority),
                None => {
                    return Err(invalid(format!(
                        "priority {:?} is not one of: {}",
                        name.chars().take(32).collect::<String>(),
                        Priority::ALL.map(|(n, _)| n).join(", ")
                    )));
                }
            },
        };
        let text = |name| -> Result<Option<String>, Problem> {
            Ok(query.single(name)?.filter(|v| !v.is_empty()).map(str::to_owned))
        };
        let filter = ConversationFilter {
            status,
            channel: text("channel")?,
            tag: text("tag")?,
            priority,
            contact_id: text("contact_id")?,
        };
        Ok((filter, Paging::parse_from(query)?))
    }
}

/// Filters of the ticket list; all given filters must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TicketFilter {
    /// Only tickets in this status.
    pub status: Option<TicketStatus>,
    /// Only tickets linked to this conversation.
    pub conversation_id: Option<String>,
    /// Only tickets for this contact.
    pub contact_id: Option<String>,
}

impl TicketFilter {
    /// The filter and paging of a ticket list.
    pub fn parse(query: &QueryPairs) -> Result<(TicketFilter, Paging), Problem> {
        let mut known = vec!["status", "conversation_id", "contact_id"];
        known.extend(Paging::NAMES);
        query.check_known(&known)?;
        let status = match query.single("status")? {
            None | Some("") => None,
            Some(name) => match TicketStatus::ALL.iter().find(|(n, _)| *n == name) {
                Some((_, status)) => Some(*status),
                None => {
                    return Err(invalid(format!(
                        "status {:?} is not one of: {}",
                        name.chars().take(32).collect::<String>(),
                        TicketStatus::ALL.map(|(n, _)| n).join(", ")
                    )));
                }
            },
        };
        let text = |name| -> Result<Option<String>, Problem> {
            Ok(query.single(name)?.filter(|v| !v.is_empty()).map(str::to_owned))
        };
        let filter = TicketFilter {
            status,
            conversation_id: text("conversation_id")?,
            contact_id: text("contact_id")?,
        };
        Ok((filter, Paging::parse_from(query)?))
    }
}

/// The largest list of webhook messages or attempts.
pub const MAX_WEBHOOK_LIST: u32 = 1000;

/// Filters of an endpoint's message list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MessageFilter {
    /// Only messages with this status. All when not given.
    pub status: Option<MessageStatus>,
    /// Only messages made at or after this time (RFC 3339).
    #[param(example = "2025-05-20T00:00:00Z")]
    pub since: Option<String>,
    /// At most this many, 1 to 1000; 100 when not given.
    #[param(minimum = 1, maximum = 1000, example = 100)]
    pub limit: Option<u32>,
    /// `true` includes each message's body (the event's JSON).
    pub with_payload: Option<bool>,
}

/// The parsed message filter: status name, time in ms (0: all), limit (0: the default), and
/// whether bodies are wanted.
pub struct MessageQuery {
    pub status: Option<MessageStatus>,
    pub since_ms: i64,
    pub limit: u32,
    pub with_payload: bool,
}

impl MessageFilter {
    /// The filter of an endpoint's message list.
    pub fn parse(query: &QueryPairs) -> Result<MessageQuery, Problem> {
        query.check_known(&["status", "since", "limit", "with_payload"])?;
        let status = match query.single("status")? {
            None | Some("") => None,
            Some(name) => match MessageStatus::ALL.iter().find(|(n, _)| *n == name) {
                Some((_, status)) => Some(*status),
                None => {
                    return Err(invalid(format!(
                        "status {:?} is not one of: {}",
                        name.chars().take(32).collect::<String>(),
                        MessageStatus::ALL.map(|(n, _)| n).join(", ")
                    )));
                }
            },
        };
        let since_ms = match query.single("since")? {
            None | Some("") => 0,
            Some(since) => parse_time_ms("since", since)?,
        };
        let with_payload = match query.single("with_payload")? {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(invalid(format!(
                    "with_payload must be true or false, got {:?}",
                    other.chars().take(32).collect::<String>()
                )));
            }
        };
        Ok(MessageQuery {
            status,
            since_ms,
            limit: parse_limit(query)?,
            with_payload,
        })
    }
}

/// How many attempts to list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AttemptFilter {
    /// At most this many, 1 to 1000; 100 when not given.
    #[param(minimum = 1, maximum = 1000, example = 100)]
    pub limit: Option<u32>,
}

impl AttemptFilter {
    /// The limit for the webhook service, where 0 means its default.
    pub fn parse(query: &QueryPairs) -> Result<u32, Problem> {
        query.check_known(&["limit"])?;
        parse_limit(query)
    }
}

fn parse_limit(query: &QueryPairs) -> Result<u32, Problem> {
    match query.single("limit")? {
        None => Ok(0),
        Some(raw) => match raw.parse::<u32>() {
            Ok(limit) if (1..=MAX_WEBHOOK_LIST).contains(&limit) => Ok(limit),
            _ => Err(invalid(format!(
                "limit must be a whole number from 1 to {MAX_WEBHOOK_LIST}, got {:?}",
                raw.chars().take(32).collect::<String>()
            ))),
        },
    }
}

fn invalid(detail: String) -> Problem {
    Problem::new(ProblemKind::ValidationFailed, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> QueryPairs {
        QueryPairs(list.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect())
    }

    #[test]
    fn statuses_repeat_or_come_comma_separated() {
        let (filter, paging) = ConversationFilter::parse(&pairs(&[
            ("status", "bot,queued"),
            ("status", "resolved"),
            ("status", "bot"),
            ("priority", "high"),
            ("page_size", "100"),
        ]))
        .expect("valid");
        assert_eq!(filter.status, vec![Status::Bot, Status::Queued, Status::Resolved]);
        assert_eq!(filter.priority, Some(Priority::High));
        assert_eq!(paging.size(), 100);
    }

    #[test]
    fn bad_parameters_are_named() {
        for (query, needle) in [
            (vec![("page_size", "1000")], "page_size"),
            (vec![("page_size", "0")], "page_size"),
            (vec![("page_size", "ten")], "page_size"),
            (vec![("status", "open")], "status"),
            (vec![("priority", "p1")], "priority"),
            (vec![("chanel", "web")], "chanel"),
            (vec![("channel", "web"), ("channel", "app")], "channel"),
        ] {
            let problem = ConversationFilter::parse(&pairs(&query)).expect_err(needle);
            assert_eq!(problem.kind(), Some(ProblemKind::ValidationFailed));
            assert!(problem.detail.as_deref().unwrap_or("").contains(needle), "{problem:?}");
        }
        assert!(Paging::parse(&pairs(&[("status", "bot")])).is_err());
    }

    #[test]
    fn webhook_message_filters_are_parsed_naming_mistakes() {
        let parsed = MessageFilter::parse(&pairs(&[
            ("status", "failed"),
            ("since", "2025-05-20T08:30:00Z"),
            ("limit", "1000"),
            ("with_payload", "true"),
        ]))
        .expect("valid");
        assert_eq!(parsed.status, Some(MessageStatus::Failed));
        assert_eq!(parsed.since_ms, 1_747_729_800_000);
        assert_eq!(parsed.limit, 1000);
        assert!(parsed.with_payload);
        for (query, needle) in [
            (vec![("status", "lost")], "status"),
            (vec![("since", "today")], "since"),
            (vec![("limit", "0")], "limit"),
            (vec![("limit", "1001")], "limit"),
            (vec![("with_payload", "yes")], "with_payload"),
            (vec![("statuses", "failed")], "statuses"),
        ] {
            let problem = MessageFilter::parse(&pairs(&query)).map(|_| ()).expect_err(needle);
            assert!(problem.detail.as_deref().unwrap_or("").contains(needle), "{problem:?}");
        }
        assert!(AttemptFilter::parse(&pairs(&[("status", "failed")])).is_err());
    }

    #[test]
    fn ticket_filters_are_parsed_naming_mistakes() {
        let (filter, paging) = TicketFilter::parse(&pairs(&[
            ("status", "pending"),
            ("contact_id", "ctc_1"),
            ("page_size", "5"),
        ]))
        .expect("valid");
        assert_eq!(filter.status, Some(TicketStatus::Pending));
        assert_eq!(filter.contact_id.as_deref(), Some("ctc_1"));
        assert_eq!(paging.size(), 5);
        for (query, needle) in [
            (vec![("status", "bot")], "status"),
            (vec![("status", "new"), ("status", "open")], "status"),
            (vec![("assignee_id", "agt_1")], "assignee_id"),
            (vec![("page_size", "101")], "page_size"),
        ] {
            let problem = TicketFilter::parse(&pairs(&query)).map(|_| ()).expect_err(needle);
            assert!(problem.detail.as_deref().unwrap_or("").contains(needle), "{problem:?}");
        }
    }
}
