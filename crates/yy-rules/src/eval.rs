//! Compiled rules and their evaluation: the decision-time hot path.
//!
//! Everything that can be worked out from the rule set alone (lowercase keywords, opening hours
//! as a bitmap, shared lists) is done at validation. Checking a condition that holds allocates
//! nothing; one that fails builds its [`Mismatch`], whose expected side is a reference-counted
//! share of the rule's own data.

use std::cell::OnceCell;
use std::sync::Arc;

use crate::action::Action;
use crate::decision::Mismatch;
use crate::error::clip;
use crate::facts::{Facts, IntentScore, Language, SentimentLabel};
use crate::hours::{self, WeekMask};
use crate::spec::AttributeTest;
use crate::text::Keyword;

/// Longest actual text value recorded in a mismatch, in characters.
const MAX_ACTUAL_CHARS: usize = 128;

/// One condition, ready to check.
#[derive(Debug, Clone)]
pub(crate) enum Cond {
    HandoffRequested(bool),
    Fallback(bool),
    Ambiguous(bool),
    RepeatedLowConfidence(u32),
    Language(Arc<[Language]>),
    Channel(Arc<[String]>),
    SentimentLabel(Arc<[SentimentLabel]>),
    Sentiment {
        above: Option<f32>,
        below: Option<f32>,
    },
    Intent {
        one_of: Arc<[String]>,
        min_confidence: f32,
    },
    WaitingSeconds {
        at_least: Option<u64>,
        below: Option<u64>,
    },
    BusinessHours {
        utc_offset_minutes: i32,
        open: WeekMask,
        inside: bool,
    },
    ContactAttribute {
        key: Arc<str>,
        test: AttributeTest,
    },
    Keywords {
        written: Arc<[String]>,
        folded: Box<[Keyword]>,
    },
}

/// A rule with at least one condition, ready to check.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub(crate) name: Arc<str>,
    /// In evaluation order: cheap checks first, the text search last.
    pub(crate) conds: Box<[Cond]>,
    pub(crate) action: Arc<Action>,
}

/// What one decision works out once and shares between rules.
pub(crate) struct Ctx<'f> {
    facts: &'f Facts,
    top_intent: OnceCell<Option<&'f IntentScore>>,
    text_is_ascii: OnceCell<bool>,
}

impl<'f> Ctx<'f> {
    pub(crate) fn new(facts: &'f Facts) -> Self {
        Ctx {
            facts,
            top_intent: OnceCell::new(),
            text_is_ascii: OnceCell::new(),
        }
    }

    fn top_intent(&self) -> Option<&'f IntentScore> {
        *self.top_intent.get_or_init(|| self.facts.top_intent())
    }

    fn text_is_ascii(&self) -> bool {
        *self.text_is_ascii.get_or_init(|| self.facts.text.is_ascii())
    }
}

impl Rule {
    /// `Ok` when every condition holds, else the first that does not.
    pub(crate) fn check(&self, ctx: &Ctx<'_>) -> Result<(), Mismatch> {
        self.conds.iter().try_for_each(|cond| cond.check(ctx))
    }
}

impl Cond {
    fn check(&self, ctx: &Ctx<'_>) -> Result<(), Mismatch> {
        let facts = ctx.facts;
        match self {
            Cond::HandoffRequested(expected) => flag(*expected, facts.handoff_requested, |expected, actual| {
                Mismatch::HandoffRequested { expected, actual }
            }),
            Cond::Fallback(expected) => flag(*expected, facts.fallback, |expected, actual| Mismatch::Fallback {
                expected,
                actual,
            }),
            Cond::Ambiguous(expected) => flag(*expected, facts.ambiguous, |expected, actual| Mismatch::Ambiguous {
                expected,
                actual,
            }),
            Cond::RepeatedLowConfidence(at_least) => {
                if facts.consecutive_low_confidence >= *at_least {
                    Ok(())
                } else {
                    Err(Mismatch::RepeatedLowConfidence {
                        at_least: *at_least,
                        actual: facts.consecutive_low_confidence,
                    })
                }
            }
            Cond::Language(expected) => match facts.language {
                Some(language) if expected.contains(&language) => Ok(()),
                actual => Err(Mismatch::Language {
                    expected: Arc::clone(expected),
                    actual,
                }),
            },
            Cond::Channel(expected) => {
                if expected.contains(&facts.channel) {
                    Ok(())
                } else {
                    Err(Mismatch::Channel {
                        expected: Arc::clone(expected),
                        actual: clip(&facts.channel, MAX_ACTUAL_CHARS),
                    })
                }
            }
            Cond::SentimentLabel(expected) => match facts.sentiment_label {
                Some(label) if expected.contains(&label) => Ok(()),
                actual => Err(Mismatch::SentimentLabel {
                    expected: Arc::clone(expected),
                    actual,
                }),
            },
            Cond::Sentiment { above, below } => {
                let actual = facts.finite_sentiment();
                let holds = actual.is_some_and(|score| {
                    above.is_none_or(|bound| score > bound) && below.is_none_or(|bound| score < bound)
                });
                if holds {
                    Ok(())
                } else {
                    Err(Mismatch::Sentiment {
                        above: *above,
                        below: *below,
                        actual,
                    })
                }
            }
            Cond::Intent { one_of, min_confidence } => {
                let top = ctx.top_intent();
                let holds = top.is_some_and(|t| t.confidence >= *min_confidence && one_of.contains(&t.name));
                if holds {
                    Ok(())
                } else {
                    Err(Mismatch::Intent {
                        expected: Arc::clone(one_of),
                        min_confidence: *min_confidence,
                        actual: top.map(|t| IntentScore {
                            name: clip(&t.name, MAX_ACTUAL_CHARS),
                            confidence: t.confidence,
                        }),
                    })
                }
            }
            Cond::WaitingSeconds { at_least, below } => {
                let actual = facts.waiting_seconds;
                let holds = actual.is_some_and(|waited| {
                    at_least.is_none_or(|bound| waited >= bound) && below.is_none_or(|bound| waited < bound)
                });
                if holds {
                    Ok(())
                } else {
                    Err(Mismatch::WaitingSeconds {
                        at_least: *at_least,
                        below: *below,
                        actual,
                    })
                }
            }
            Cond::BusinessHours {
                utc_offset_minutes,
                open,
                inside,
            } => {
                let minute = hours::minute_of_week(facts.now, *utc_offset_minutes);
                if open.is_open(minute) == *inside {
                    Ok(())
                } else {
                    Err(Mismatch::BusinessHours {
                        inside: *inside,
                        local_time: hours::local_time(minute),
                    })
                }
            }
            Cond::ContactAttribute { key, test } => {
                let actual = facts.contact_attributes.get(&**key);
                let holds = match test {
                    AttributeTest::OneOf(values) => actual.is_some_and(|a| values.iter().any(|v| v == a)),
                    AttributeTest::Present(present) => actual.is_some() == *present,
                };
                if holds {
                    Ok(())
                } else {
                    Err(Mismatch::ContactAttribute {
                        key: Arc::clone(key),
                        expected: test.clone(),
                        actual: actual.map(|a| clip(a, MAX_ACTUAL_CHARS)),
                    })
                }
            }
            Cond::Keywords { written, folded } => {
                let text = &facts.text;
                if !text.is_empty() && folded.iter().any(|k| k.found_in(text, ctx.text_is_ascii())) {
                    Ok(())
                } else {
                    Err(Mismatch::Keywords {
                        expected: Arc::clone(written),
                    })
                }
            }
        }
    }
}

fn flag(expected: bool, actual: bool, mismatch: fn(bool, bool) -> Mismatch) -> Result<(), Mismatch> {
    if expected == actual {
        Ok(())
    } else {
        Err(mismatch(expected, actual))
    }
}
