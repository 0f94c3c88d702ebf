//! Per-tenant routing rules: for every customer message, decide who answers — the bot or a queue
//! of human agents — and explain why.
//!
//! A tenant writes an ordered, versioned rule set as JSON. [`RuleSet::parse`] checks it
//! completely and compiles it; [`RuleSet::decide`] takes the [`Facts`] about one message and
//! returns a [`Decision`]: the first rule whose conditions all hold, its [`Action`], and for
//! every rule before it the first condition that failed, with expected and actual values. The
//! crate is pure: no IO, no clock (the time is one of the facts), no randomness, so a decision
//! can be replayed from the facts and the rule-set version it names.
//!
//! # The format
//!
//! ```json
//! {
//!   "version": 3,
//!   "rules": [
//!     {
//!       "name": "vip-angry",
//!       "description": "Unhappy VIPs go straight to the VIP desk.",
//!       "when": {
//!         "contact_attributes": {"tier": {"one_of": ["vip", "gold"]}},
//!         "sentiment": {"below": -0.5}
//!       },
//!       "then": {"route": "queue", "queue": "vip", "priority": 9, "escalate": true}
//!     },
//!     {"name": "default", "then": {"route": "bot"}}
//!   ]
//! }
//! ```
//!
//! Every object refuses fields it does not know (and an array in its place). A rule has a `name` (unique, 1 to 64 characters
//! of `a-z`, `0-9`, `_`, `-`), an optional `description`, optional conditions `when` (all must
//! hold) and an action `then`. Rules are tried in order and the first that matches decides. The
//! last rule must have no conditions — the default — and is the only one without, so every
//! message gets a decision and no rule is hidden behind a catch-all. A complete rule set is
//! `examples/rules.json` in this crate, described under [Example](#example).
//!
//! ## Conditions
//!
//! | condition | written | holds when |
//! |---|---|---|
//! | `intent` | `{"one_of": ["refund"], "min_confidence": 0.6}` | the top intent ([`Facts::top_intent`]) is listed and its confidence ≥ `min_confidence` (0 when absent) |
//! | `sentiment` | `{"below": -0.5}`, `{"above": 0.3}` or both | the score is known and strictly inside the bounds (bounds in [-1, 1]) |
//! | `sentiment_label` | `["negative"]` | the label (`negative`, `neutral`, `positive`) is known and listed |
//! | `language` | `["zh", "mixed"]` | the detected language (`zh`, `en`, `mixed`) is known and listed |
//! | `channel` | `["web", "wechat"]` | the conversation's channel is listed |
//! | `contact_attributes` | `{"tier": {"one_of": ["vip"]}, "blocked": {"present": false}}` | every test holds: the attribute equals one of the values, or is (not) set |
//! | `keywords` | `["退款", "refund"]` | the text contains one of them, ignoring case (Chinese works as written) |
//! | `business_hours` | `{"utc_offset_minutes": 480, "schedule": {"mon": ["09:00-18:00"]}, "inside": true}` | the local time is inside (`inside: false`: outside) the weekly schedule |
//! | `waiting_seconds` | `{"at_least": 120}`, `{"below": 600}` or both | the conversation is waiting for an agent, for at least `at_least` and less than `below` seconds |
//! | `fallback` | `true` / `false` | the language understanding could not / could classify the message |
//! | `ambiguous` | `true` / `false` | the top intents were / were not too close to tell apart |
//! | `handoff_requested` | `true` / `false` | the customer did / did not ask for a human |
//! | `repeated_low_confidence` | `{"at_least": 2}` | at least that many low-confidence messages in a row |
//!
//! A condition about something the facts do not know (no sentiment score, no language, not
//! waiting) does not hold; numbers that are not finite count as unknown. Names (intents,
//! channels, attribute names and values, queues, skills) compare exactly; only keywords ignore
//! case. Business-hour ranges are `HH:MM-HH:MM`, start inclusive, end exclusive, `24:00` ending a
//! day; an end earlier than the start runs past midnight into the next day (Sunday's into
//! Monday). The UTC offset is fixed: a daylight-saving change is a new rule-set version.
//!
//! ## Actions
//!
//! `{"route": "bot"}`, or `{"route": "queue", "queue": "refunds", "priority": 6, "skills":
//! [{"name": "refund", "min_level": 2}], "languages": ["zh"]}` where `priority` is 1 to 10
//! (higher is served first, 5 when absent), `min_level` 1 to 5 (1 when absent) and `languages`
//! the languages the agent must speak one of (any when absent). Both routes take `"add_tags":
//! ["..."]` (tags to add to the conversation) and `"escalate": true` (flag for a supervisor).
//!
//! # Evaluation
//!
//! First match wins. Within a rule, conditions are checked in this fixed order, cheapest first,
//! and the explanation names the first that failed: `handoff_requested`, `fallback`,
//! `ambiguous`, `repeated_low_confidence`, `language`, `channel`, `sentiment_label`, `sentiment`,
//! `intent`, `waiting_seconds`, `business_hours`, `contact_attributes` (by attribute name),
//! `keywords`.
//!
//! Cost: everything that depends only on the rule set is prepared when it is parsed (lowercase
//! keywords, opening hours as a bitmap of the minutes of the week, shared lists). Checking a
//! condition that holds allocates nothing; a rule that fails adds one compact [`Skipped`] entry
//! whose expected values share the rule set's memory (only a short actual value, such as the
//! channel or the top intent's name, is copied). Keywords without case (Chinese) are plain
//! substring searches; others lowercase the text on the fly instead of copying it.
//! `cargo run --release -p yy-rules --example rules_bench` measures a 10-rule set on one core: 0.6 to
//! 1 million decisions a second when every rule but the default must be tried and explained, over
//! a million for a realistic mix of messages.
//!
//! A [`RuleSet`] is immutable, `Send` and `Sync`: share one per tenant behind an `Arc` and swap
//! it when the tenant publishes a new version.
//!
//! # Validation
//!
//! [`RuleSet::parse`] reports every mistake it can find in one go, each as a [`RuleError`] that
//! names the rule and the field: `rules[2] "vip-angry": when.sentiment.below: must be between -1
//! and 1`. It checks: the JSON shape (unknown, missing and duplicate fields, wrong types, unknown
//! values such as a language `"fr"`); names and their uniqueness; ranges of every number
//! (sentiment bounds, confidences, priorities, skill levels, UTC offsets); lower bounds below
//! upper bounds; time ranges; that lists that make a condition are not empty and have no
//! repeats; that queue fields appear only with `"route": "queue"`; the default rule; rules that
//! can never match (after a rule without conditions, or with the very same conditions as an
//! earlier rule); limits; and, with [`RuleSet::parse_with_queues`], that every queue exists.
//!
//! Limits: [`MAX_JSON_BYTES`] of text, [`MAX_RULES`] rules; per rule a description of 500
//! characters; 100 entries in a list (200 keywords of up to 100 characters each); 32 attribute
//! tests; 16 time ranges a day; 20 skills; 20 tags of up to 50 characters.
//!
//! # Decisions as events
//!
//! [`Decision`] serialises with serde to a compact, self-contained JSON object (see its
//! documentation) and deserialises back, so the routing service can store it in an event. It
//! never contains the message text; other text values from the facts are cut to 128 characters.
//!
//! # Example
//!
//! `examples/rules.json` holds a complete rule set (version 1, queues `vip`, `general`,
//! `refunds`, hours in China Standard Time):
//!
//! 1. `vip-angry`: a contact whose `tier` is `vip` or `gold` with a sentiment below -0.5 goes to
//!    the `vip` queue at priority 9, escalated and tagged `angry-vip`.
//! 2. `handoff`: a customer who asks for a human goes to the `general` queue.
//! 3. `refund-in-hours`: a `refund` intent (confidence 0.6 or more) during opening hours
//!    (Monday to Friday 09:00–18:00, Saturday 10:00–16:00) goes to the `refunds` queue, to an
//!    agent with the `refund` skill at level 2 or more.
//! 4. `refund-after-hours`: the same intent outside those hours stays with the bot, tagged
//!    `refund-after-hours`.
//! 5. `low-confidence`: two or more low-confidence messages in a row go to the `general` queue.
//! 6. `default`: everything else stays with the bot.
//!
//! ```
//! use yy_rules::{Facts, Route, RuleSet};
//!
//! let rules = RuleSet::parse_with_queues(
//!     include_str!("../examples/rules.json"),
//!     &["vip", "general", "refunds"],
//! )
//! .expect("a valid rule set");
//! let facts = Facts { handoff_requested: true, ..Facts::default() };
//! let decision = rules.decide(&facts);
//! assert_eq!(&*decision.rule_name, "handoff");
//! assert!(matches!(&decision.action.route, Route::Queue(q) if q.queue == "general"));
//! ```

mod action;
mod decision;
mod error;
mod eval;
mod facts;
mod hours;
mod parse;
mod spec;
mod text;
mod validate;

use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use action::{Action, QueueTarget, Route, SkillRequirement};
pub use decision::{Decision, LocalTime, Mismatch, Skipped, Weekday};
pub use error::{RuleError, RuleErrorKind};
pub use facts::{Facts, IntentScore, Language, SentimentLabel};
pub use spec::{
    ActionSpec, AtLeast, AttributeTest, BusinessHoursCondition, Conditions, IntentCondition, RouteKind, RuleSetSpec,
    RuleSpec, SentimentCondition, SkillSpec, WaitingCondition, WeeklySchedule,
};

use eval::{Ctx, Rule};

/// The largest rule-set text [`RuleSet::parse`] accepts, in bytes: a stored rule set must fit in
/// one event.
pub const MAX_JSON_BYTES: usize = 512 * 1024;

/// The most rules a rule set may have.
pub const MAX_RULES: usize = 500;

/// A validated, compiled rule set: the only input [`RuleSet::decide`] needs besides the facts.
///
/// Invariants: it passed every check described in the crate documentation; it has at least one
/// rule, the last has no conditions and every other has at least one, so [`RuleSet::decide`]
/// always finds a rule. Immutable once built.
///
/// Serialises as the rule set as written ([`RuleSetSpec`], normalised: absent optional fields
/// are left out); deserialising validates again (without a list of known queues).
#[derive(Debug, Clone)]
pub struct RuleSet {
    spec: RuleSetSpec,
    rules: Vec<Rule>,
    default_name: Arc<str>,
    default_action: Arc<Action>,
}

impl RuleSet {
    /// Parses and validates a rule set written as JSON. On failure, every mistake found, in rule
    /// order (mistakes of the set as a whole first). Text that is not JSON, or whose envelope
    /// (`version`, `rules`) cannot be read, gives one error; a rule of the wrong shape gives one
    /// error and is left out of the checks that compare rules.
    pub fn parse(json: &str) -> Result<RuleSet, Vec<RuleError>> {
        Self::parse_checked(json, None)
    }

    /// Like [`RuleSet::parse`], and also refuses a queue that is not among `known_queues`
    /// ([`RuleErrorKind::UnknownQueue`]).
    pub fn parse_with_queues(json: &str, known_queues: &[impl AsRef<str>]) -> Result<RuleSet, Vec<RuleError>> {
        let known = |queue: &str| known_queues.iter().any(|k| k.as_ref() == queue);
        Self::parse_checked(json, Some(&known))
    }

    /// Validates a rule set built in code (or read by other means than [`RuleSet::parse`]).
    pub fn from_spec(spec: RuleSetSpec) -> Result<RuleSet, Vec<RuleError>> {
        Self::build(spec, None)
    }

    /// Like [`RuleSet::from_spec`], and also refuses a queue that is not among `known_queues`.
    pub fn from_spec_with_queues(
        spec: RuleSetSpec,
        known_queues: &[impl AsRef<str>],
    ) -> Result<RuleSet, Vec<RuleError>> {
        let known = |queue: &str| known_queues.iter().any(|k| k.as_ref() == queue);
        Self::build(spec, Some(&known))
    }

    fn parse_checked(json: &str, known_queue: Option<&dyn Fn(&str) -> bool>) -> Result<RuleSet, Vec<RuleError>> {
        let parsed = parse::parse_spec(json).map_err(|e| vec![e])?;
        let mut errors = parsed.errors;
        // Rules that could not be read are left out of validation, not the others: one round
        // reports the mistakes of every rule.
        let readable = parsed
            .rules
            .iter()
            .enumerate()
            .filter_map(|(index, rule)| rule.as_ref().map(|rule| (index, rule)))
            .collect::<Vec<_>>();
        let compiled = validate::compile(parsed.version, &readable, parsed.rules.len(), known_queue, &mut errors);
        match compiled {
            Some(compiled) if errors.is_empty() => Ok(Self::assemble(
                RuleSetSpec {
                    version: parsed.version,
                    rules: parsed.rules.into_iter().flatten().collect(),
                },
                compiled,
            )),
            _ => Err(errors),
        }
    }

    fn assemble(spec: RuleSetSpec, compiled: validate::Compiled) -> RuleSet {
        RuleSet {
            rules: compiled.rules,
            default_name: compiled.default_name,
            default_action: compiled.default_action,
            spec,
        }
    }

    fn build(spec: RuleSetSpec, known_queue: Option<&dyn Fn(&str) -> bool>) -> Result<RuleSet, Vec<RuleError>> {
        let mut errors = Vec::new();
        let rules = spec.rules.iter().enumerate().collect::<Vec<_>>();
        match validate::compile(spec.version, &rules, spec.rules.len(), known_queue, &mut errors) {
            Some(compiled) if errors.is_empty() => Ok(Self::assemble(spec, compiled)),
            _ => Err(errors),
        }
    }

    /// Decides who answers the message described by `facts`: the first rule that matches, with
    /// an explanation for every rule before it. Never fails and never panics, whatever the facts.
    pub fn decide(&self, facts: &Facts) -> Decision {
        let ctx = Ctx::new(facts);
        let mut skipped = Vec::new();
        for (index, rule) in self.rules.iter().enumerate() {
            match rule.check(&ctx) {
                Ok(()) => return self.decision(index, &rule.name, &rule.action, skipped),
                Err(failed) => skipped.push(Skipped {
                    index,
                    name: Arc::clone(&rule.name),
                    failed,
                }),
            }
        }
        self.decision(self.rules.len(), &self.default_name, &self.default_action, skipped)
    }

    fn decision(&self, index: usize, name: &Arc<str>, action: &Arc<Action>, skipped: Vec<Skipped>) -> Decision {
        Decision {
            version: self.spec.version,
            rule_index: index,
            rule_name: Arc::clone(name),
            action: Arc::clone(action),
            skipped,
        }
    }

    /// The tenant's version number of this rule set.
    pub fn version(&self) -> u64 {
        self.spec.version
    }

    /// The number of rules, the default included (at least 1).
    pub fn len(&self) -> usize {
        self.rules.len() + 1
    }

    /// Always false: a rule set has at least its default rule.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The rule set as written (normalised).
    pub fn spec(&self) -> &RuleSetSpec {
        &self.spec
    }

    /// The rule names in order, the default last.
    pub fn rule_names(&self) -> impl Iterator<Item = &str> {
        self.rules
            .iter()
            .map(|r| &*r.name)
            .chain(std::iter::once(&*self.default_name))
    }

    /// The queues the rules route to, each once, sorted: the queues that must keep existing while
    /// this rule set is in force.
    pub fn queues(&self) -> Vec<&str> {
        let mut queues = self
            .rules
            .iter()
            .map(|r| &r.action)
            .chain(std::iter::once(&self.default_action))
            .filter_map(|a| match &a.route {
                Route::Queue(target) => Some(target.queue.as_str()),
                Route::Bot => None,
            })
            .collect::<Vec<_>>();
        queues.sort_unstable();
        queues.dedup();
        queues
    }
}

impl PartialEq for RuleSet {
    /// Two rule sets are equal when they were written the same (the compiled form follows).
    fn eq(&self, other: &Self) -> bool {
        self.spec == other.spec
    }
}

impl Serialize for RuleSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.spec.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for RuleSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spec = RuleSetSpec::deserialize(deserializer)?;
        RuleSet::from_spec(spec).map_err(|errors| {
            let list = errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
            serde::de::Error::custom(format!("invalid rule set: {list}"))
        })
    }
}
