//! Checks a rule set and compiles it for evaluation.
//!
//! Every mistake is collected (not only the first), each located by rule and field path, so a
//! tenant fixes a rule set in one round.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::Hash;
use std::sync::Arc;

use crate::action::{Action, QueueTarget, Route, SkillRequirement};
use crate::error::{RuleError, RuleErrorKind, join};
use crate::eval::{Cond, Rule};
use crate::facts::Language;
use crate::hours::{self, MINUTES_PER_DAY, WeekMask};
use crate::spec::{ActionSpec, AttributeTest, BusinessHoursCondition, Conditions, RouteKind, RuleSpec};
use crate::text::{Keyword, fold};

const MAX_NAME_CHARS: usize = 64;
const MAX_DESCRIPTION_CHARS: usize = 500;
const MAX_LIST: usize = 100;
const MAX_KEYWORDS: usize = 200;
const MAX_KEYWORD_CHARS: usize = 100;
const MAX_INTENT_CHARS: usize = 128;
const MAX_ATTRIBUTE_TESTS: usize = 32;
const MAX_ATTRIBUTE_KEY_CHARS: usize = 128;
const MAX_ATTRIBUTE_VALUE_CHARS: usize = 1024;
const MAX_RANGES_PER_DAY: usize = 16;
const MAX_SKILLS: usize = 20;
const MAX_TAGS: usize = 20;
const MAX_TAG_CHARS: usize = 50;
const MIN_UTC_OFFSET: i32 = -12 * 60;
const MAX_UTC_OFFSET: i32 = 14 * 60;
/// The middle of 1 to 10: neither ahead of nor behind conversations that set one.
pub(crate) const DEFAULT_PRIORITY: u8 = 5;

const WORD_RULE: &str = "must be 1 to 64 characters of a-z, 0-9, '_' and '-'";

/// The compiled form of a valid rule set.
#[derive(Debug, Clone)]
pub(crate) struct Compiled {
    pub(crate) rules: Vec<Rule>,
    pub(crate) default_name: Arc<str>,
    pub(crate) default_action: Arc<Action>,
}

/// Validates `rules` (the ones that could be read, with their positions among `total`) and
/// compiles them when no mistake was found, in `errors` or before.
pub(crate) fn compile(
    version: u64,
    rules: &[(usize, &RuleSpec)],
    total: usize,
    known_queue: Option<&dyn Fn(&str) -> bool>,
    errors: &mut Vec<RuleError>,
) -> Option<Compiled> {
    if version == 0 {
        errors.push(RuleError::whole(
            "version",
            RuleErrorKind::Invalid,
            "must be at least 1",
        ));
    }
    if total == 0 {
        errors.push(RuleError::whole(
            "rules",
            RuleErrorKind::MissingDefault,
            "must not be empty; the last rule is the default",
        ));
    }
    if total > crate::MAX_RULES {
        errors.push(RuleError::whole(
            "rules",
            RuleErrorKind::TooLarge,
            format!("{total} rules; at most {} are allowed", crate::MAX_RULES),
        ));
    }

    let mut compiled = Vec::with_capacity(rules.len());
    for &(index, rule) in rules {
        let mut checker = Checker {
            index,
            name: &rule.name,
            errors: &mut *errors,
        };
        if let Some(rule) = checker.rule(rule, known_queue) {
            compiled.push((index, rule));
        }
    }
    cross_rule_checks(rules, total, errors);

    if !errors.is_empty() {
        errors.sort_by_key(|e| e.rule_index.map_or(0, |i| i + 1));
        return None;
    }
    let (_, default) = compiled.pop()?;
    let rules = compiled.into_iter().map(|(_, rule)| rule).collect::<Vec<_>>();
    // The default has no conditions by now; its action is what remains of it.
    Some(Compiled {
        rules,
        default_name: default.name,
        default_action: default.action,
    })
}

/// Unique names, the default last, and no rule hidden behind another.
fn cross_rule_checks(rules: &[(usize, &RuleSpec)], total: usize, errors: &mut Vec<RuleError>) {
    let mut names: HashMap<&str, usize> = HashMap::new();
    for &(index, rule) in rules {
        if let Some(first) = names.get(rule.name.as_str()) {
            errors.push(RuleError::in_rule(
                index,
                Some(&rule.name),
                "name",
                RuleErrorKind::Duplicate,
                format!("{:?} is already the name of rules[{first}]", rule.name),
            ));
        } else {
            names.insert(&rule.name, index);
        }
    }

    if let Some(&(index, last)) = rules.last()
        && index + 1 == total
        && !last.when.is_empty()
    {
        errors.push(RuleError::in_rule(
            index,
            Some(&last.name),
            "when",
            RuleErrorKind::MissingDefault,
            "the last rule is the default and must have no conditions",
        ));
    }

    let mut catch_all: Option<(usize, &str)> = None;
    let mut seen: Vec<(usize, &RuleSpec)> = Vec::new();
    for &(index, rule) in rules {
        if let Some((first, first_name)) = catch_all {
            errors.push(RuleError::in_rule(
                index,
                Some(&rule.name),
                "",
                RuleErrorKind::Unreachable,
                format!("unreachable: rules[{first}] {first_name:?} has no conditions and always matches first"),
            ));
            continue;
        }
        if rule.when.is_empty() {
            catch_all = Some((index, &rule.name));
            continue;
        }
        if let Some((first, earlier)) = seen.iter().find(|(_, earlier)| earlier.when == rule.when) {
            errors.push(RuleError::in_rule(
                index,
                Some(&rule.name),
                "",
                RuleErrorKind::Unreachable,
                format!(
                    "unreachable: rules[{first}] {:?} has the same conditions and matches first",
                    earlier.name
                ),
            ));
        }
        seen.push((index, rule));
    }
}

struct Checker<'e> {
    index: usize,
    name: &'e str,
    errors: &'e mut Vec<RuleError>,
}

impl Checker<'_> {
    fn error(&mut self, path: impl Into<String>, kind: RuleErrorKind, message: impl Into<String>) {
        self.errors
            .push(RuleError::in_rule(self.index, Some(self.name), path, kind, message));
    }

    fn invalid(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.error(path, RuleErrorKind::Invalid, message);
    }

    fn rule(&mut self, rule: &RuleSpec, known_queue: Option<&dyn Fn(&str) -> bool>) -> Option<Rule> {
        let before = self.errors.len();
        if !is_word(&rule.name) {
            self.invalid("name", WORD_RULE);
        }
        if let Some(description) = &rule.description
            && description.chars().count() > MAX_DESCRIPTION_CHARS
        {
            self.error(
                "description",
                RuleErrorKind::TooLarge,
                format!("at most {MAX_DESCRIPTION_CHARS} characters"),
            );
        }
        let conds = self.conditions(&rule.when);
        let action = self.action(&rule.then, known_queue);
        (self.errors.len() == before).then(|| Rule {
            name: Arc::from(rule.name.as_str()),
            conds: conds.into_boxed_slice(),
            action: Arc::new(action),
        })
    }

    /// The conditions in evaluation order: flags and counts, then enumerations and numbers, then
    /// string comparisons, and the text search last, so a rule that fails early costs little.
    fn conditions(&mut self, when: &Conditions) -> Vec<Cond> {
        let mut conds = Vec::new();
        if let Some(expected) = when.handoff_requested {
            conds.push(Cond::HandoffRequested(expected));
        }
        if let Some(expected) = when.fallback {
            conds.push(Cond::Fallback(expected));
        }
        if let Some(expected) = when.ambiguous {
            conds.push(Cond::Ambiguous(expected));
        }
        if let Some(repeated) = &when.repeated_low_confidence {
            if repeated.at_least == 0 {
                self.invalid("when.repeated_low_confidence.at_least", "must be at least 1");
            }
            conds.push(Cond::RepeatedLowConfidence(repeated.at_least));
        }
        if let Some(languages) = &when.language {
            self.list("when.language", languages, MAX_LIST, no_check, |l| *l, language_name);
            conds.push(Cond::Language(Arc::from(languages.as_slice())));
        }
        if let Some(channels) = &when.channel {
            let check =
                |c: &String| (!is_channel(c)).then_some("must be 1 to 64 characters of a-z, 0-9 and '_'".to_owned());
            self.list("when.channel", channels, MAX_LIST, check, String::as_str, |c| {
                format!("{c:?}")
            });
            conds.push(Cond::Channel(Arc::from(channels.as_slice())));
        }
        if let Some(labels) = &when.sentiment_label {
            self.list(
                "when.sentiment_label",
                labels,
                MAX_LIST,
                no_check,
                |l| *l,
                |l| format!("{:?}", format!("{l:?}").to_lowercase()),
            );
            conds.push(Cond::SentimentLabel(Arc::from(labels.as_slice())));
        }
        if let Some(sentiment) = &when.sentiment {
            for (field, bound) in [("below", sentiment.below), ("above", sentiment.above)] {
                if let Some(bound) = bound
                    && !(-1.0..=1.0).contains(&bound)
                {
                    self.invalid(format!("when.sentiment.{field}"), "must be between -1 and 1");
                }
            }
            match (sentiment.above, sentiment.below) {
                (None, None) => self.invalid("when.sentiment", r#"give "below", "above" or both"#),
                (Some(above), Some(below)) if above >= below => self.invalid(
                    "when.sentiment",
                    format!(r#""above" ({above}) must be less than "below" ({below})"#),
                ),
                _ => {}
            }
            conds.push(Cond::Sentiment {
                above: sentiment.above,
                below: sentiment.below,
            });
        }
        if let Some(intent) = &when.intent {
            let check = |name: &String| {
                (!is_label(name, MAX_INTENT_CHARS)).then_some(
                    "must be 1 to 128 characters, without control characters or surrounding spaces".to_owned(),
                )
            };
            self.list(
                "when.intent.one_of",
                &intent.one_of,
                MAX_LIST,
                check,
                String::as_str,
                |n| format!("{n:?}"),
            );
            if !(0.0..=1.0).contains(&intent.min_confidence) {
                self.invalid("when.intent.min_confidence", "must be between 0 and 1");
            }
            conds.push(Cond::Intent {
                one_of: Arc::from(intent.one_of.as_slice()),
                min_confidence: intent.min_confidence,
            });
        }
        if let Some(waiting) = &when.waiting_seconds {
            match (waiting.at_least, waiting.below) {
                (None, None) => self.invalid("when.waiting_seconds", r#"give "at_least", "below" or both"#),
                (Some(at_least), Some(below)) if at_least >= below => self.invalid(
                    "when.waiting_seconds",
                    format!(r#""at_least" ({at_least}) must be less than "below" ({below})"#),
                ),
                _ => {}
            }
            conds.push(Cond::WaitingSeconds {
                at_least: waiting.at_least,
                below: waiting.below,
            });
        }
        if let Some(hours) = &when.business_hours
            && let Some(cond) = self.business_hours(hours)
        {
            conds.push(cond);
        }
        if let Some(tests) = &when.contact_attributes {
            self.contact_attributes(tests, &mut conds);
        }
        if let Some(keywords) = &when.keywords
            && let Some(cond) = self.keywords(keywords)
        {
            conds.push(cond);
        }
        conds
    }

    fn business_hours(&mut self, spec: &BusinessHoursCondition) -> Option<Cond> {
        const PATH: &str = "when.business_hours";
        if !(MIN_UTC_OFFSET..=MAX_UTC_OFFSET).contains(&spec.utc_offset_minutes) {
            self.invalid(
                format!("{PATH}.utc_offset_minutes"),
                format!("must be between {MIN_UTC_OFFSET} and {MAX_UTC_OFFSET}"),
            );
        }
        let mut open = WeekMask::new();
        let mut bad = false;
        for (day_index, (day, ranges)) in (0u32..).zip(spec.schedule.days()) {
            if ranges.len() > MAX_RANGES_PER_DAY {
                self.error(
                    format!("{PATH}.schedule.{day}"),
                    RuleErrorKind::TooLarge,
                    format!("at most {MAX_RANGES_PER_DAY} ranges a day"),
                );
                bad = true;
                continue;
            }
            for (i, range) in ranges.iter().enumerate() {
                match hours::parse_range(range) {
                    Ok((start, end)) => {
                        let day_start = day_index * MINUTES_PER_DAY;
                        // An end before the start is the next day's time.
                        let end = if end < start { end + MINUTES_PER_DAY } else { end };
                        open.open(day_start + start, day_start + end);
                    }
                    Err(message) => {
                        self.invalid(format!("{PATH}.schedule.{day}[{i}]"), message);
                        bad = true;
                    }
                }
            }
        }
        if !bad && open.is_empty() {
            self.invalid(format!("{PATH}.schedule"), "must have at least one range");
        }
        Some(Cond::BusinessHours {
            utc_offset_minutes: spec.utc_offset_minutes,
            open,
            inside: spec.inside,
        })
    }

    fn contact_attributes(&mut self, tests: &BTreeMap<String, AttributeTest>, conds: &mut Vec<Cond>) {
        const PATH: &str = "when.contact_attributes";
        if tests.is_empty() {
            self.invalid(PATH, "must not be empty");
        }
        if tests.len() > MAX_ATTRIBUTE_TESTS {
            self.error(
                PATH,
                RuleErrorKind::TooLarge,
                format!("at most {MAX_ATTRIBUTE_TESTS} attributes"),
            );
        }
        for (key, test) in tests {
            let path = join(PATH, key);
            if key.is_empty() || key.chars().count() > MAX_ATTRIBUTE_KEY_CHARS || key.chars().any(char::is_control) {
                self.invalid(
                    &*path,
                    "attribute names must be 1 to 128 characters without control characters",
                );
            }
            if let AttributeTest::OneOf(values) = test {
                let path = format!("{path}.one_of");
                let check = |value: &String| {
                    (value.chars().count() > MAX_ATTRIBUTE_VALUE_CHARS)
                        .then(|| format!("at most {MAX_ATTRIBUTE_VALUE_CHARS} characters"))
                };
                self.list(&path, values, MAX_LIST, check, String::as_str, |v| format!("{v:?}"));
            }
            conds.push(Cond::ContactAttribute {
                key: Arc::from(key.as_str()),
                test: test.clone(),
            });
        }
    }

    fn keywords(&mut self, keywords: &[String]) -> Option<Cond> {
        const PATH: &str = "when.keywords";
        if keywords.is_empty() {
            self.invalid(PATH, "must not be empty");
        }
        if keywords.len() > MAX_KEYWORDS {
            self.error(PATH, RuleErrorKind::TooLarge, format!("at most {MAX_KEYWORDS} entries"));
        }
        let mut folded = Vec::with_capacity(keywords.len());
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, keyword) in keywords.iter().enumerate() {
            let usable = keyword.chars().count() <= MAX_KEYWORD_CHARS
                && !keyword.trim().is_empty()
                && !keyword.chars().any(char::is_control);
            match Keyword::new(keyword).filter(|_| usable) {
                Some(k) => {
                    if let Some(first) = seen.insert(fold(keyword), i) {
                        self.error(
                            format!("{PATH}[{i}]"),
                            RuleErrorKind::Duplicate,
                            format!("{keyword:?} repeats {PATH}[{first}] (keywords ignore case)"),
                        );
                    }
                    folded.push(k);
                }
                None => self.invalid(
                    format!("{PATH}[{i}]"),
                    "must be 1 to 100 characters, not only spaces, without control characters",
                ),
            }
        }
        Some(Cond::Keywords {
            written: Arc::from(keywords),
            folded: folded.into_boxed_slice(),
        })
    }

    fn action(&mut self, spec: &ActionSpec, known_queue: Option<&dyn Fn(&str) -> bool>) -> Action {
        let route = match spec.route {
            RouteKind::Bot => {
                for (field, given) in [
                    ("queue", spec.queue.is_some()),
                    ("priority", spec.priority.is_some()),
                    ("skills", spec.skills.is_some()),
                    ("languages", spec.languages.is_some()),
                ] {
                    if given {
                        self.invalid(format!("then.{field}"), r#"only allowed when route is "queue""#);
                    }
                }
                Route::Bot
            }
            RouteKind::Queue => Route::Queue(self.queue_target(spec, known_queue)),
        };

        if spec.add_tags.len() > MAX_TAGS {
            self.error(
                "then.add_tags",
                RuleErrorKind::TooLarge,
                format!("at most {MAX_TAGS} tags"),
            );
        }
        for (i, tag) in spec.add_tags.iter().enumerate() {
            let count = tag.chars().count();
            if count == 0 || count > MAX_TAG_CHARS || tag.trim() != tag || tag.chars().any(char::is_control) {
                self.invalid(
                    format!("then.add_tags[{i}]"),
                    "must be 1 to 50 characters, without control characters or surrounding spaces",
                );
            }
        }
        self.duplicates("then.add_tags", &spec.add_tags, String::as_str, |t| format!("{t:?}"));
        Action {
            route,
            add_tags: spec.add_tags.clone(),
            escalate: spec.escalate,
        }
    }

    fn queue_target(&mut self, spec: &ActionSpec, known_queue: Option<&dyn Fn(&str) -> bool>) -> QueueTarget {
        let queue = spec.queue.clone().unwrap_or_default();
        match &spec.queue {
            None => self.invalid("then.queue", r#"is required when route is "queue""#),
            Some(queue) if !is_word(queue) => self.invalid("then.queue", WORD_RULE),
            Some(queue) => {
                if let Some(known) = known_queue
                    && !known(queue)
                {
                    self.error(
                        "then.queue",
                        RuleErrorKind::UnknownQueue,
                        format!("unknown queue {queue:?}"),
                    );
                }
            }
        }
        let priority = match spec.priority {
            None => DEFAULT_PRIORITY,
            Some(p) => match u8::try_from(p) {
                Ok(p) if (1..=10).contains(&p) => p,
                _ => {
                    self.invalid("then.priority", "must be between 1 and 10");
                    DEFAULT_PRIORITY
                }
            },
        };

        let skills = spec.skills.as_deref().unwrap_or_default();
        if skills.len() > MAX_SKILLS {
            self.error(
                "then.skills",
                RuleErrorKind::TooLarge,
                format!("at most {MAX_SKILLS} skills"),
            );
        }
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut requirements = Vec::with_capacity(skills.len());
        for (i, skill) in skills.iter().enumerate() {
            if !is_word(&skill.name) {
                self.invalid(format!("then.skills[{i}].name"), WORD_RULE);
            } else if let Some(first) = seen.insert(&skill.name, i) {
                self.error(
                    format!("then.skills[{i}].name"),
                    RuleErrorKind::Duplicate,
                    format!("{:?} repeats then.skills[{first}]", skill.name),
                );
            }
            let min_level = match skill.min_level {
                None => 1,
                Some(level) => match u8::try_from(level) {
                    Ok(level) if (1..=5).contains(&level) => level,
                    _ => {
                        self.invalid(format!("then.skills[{i}].min_level"), "must be between 1 and 5");
                        1
                    }
                },
            };
            requirements.push(SkillRequirement {
                name: skill.name.clone(),
                min_level,
            });
        }

        let languages = spec.languages.clone().unwrap_or_default();
        self.duplicates("then.languages", &languages, |l| *l, language_name);
        QueueTarget {
            queue,
            priority,
            skills: requirements,
            languages,
        }
    }

    /// A list that holds a condition: not empty (it could never hold), not too long, each entry
    /// valid (`check` says what is wrong with one), no entry twice.
    fn list<'a, T, K: Eq + Hash>(
        &mut self,
        path: &str,
        items: &'a [T],
        max: usize,
        check: impl Fn(&T) -> Option<String>,
        key: impl Fn(&'a T) -> K,
        show: impl Fn(&T) -> String,
    ) {
        if items.is_empty() {
            self.invalid(path, "must not be empty");
        }
        if items.len() > max {
            self.error(path, RuleErrorKind::TooLarge, format!("at most {max} entries"));
        }
        for (i, item) in items.iter().enumerate() {
            if let Some(message) = check(item) {
                self.invalid(format!("{path}[{i}]"), message);
            }
        }
        self.duplicates(path, items, key, show);
    }

    fn duplicates<'a, T, K: Eq + Hash>(
        &mut self,
        path: &str,
        items: &'a [T],
        key: impl Fn(&'a T) -> K,
        show: impl Fn(&T) -> String,
    ) {
        let mut seen = HashSet::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            if !seen.insert(key(item)) {
                self.error(
                    format!("{path}[{i}]"),
                    RuleErrorKind::Duplicate,
                    format!("{} appears twice", show(item)),
                );
            }
        }
    }
}

fn no_check<T>(_: &T) -> Option<String> {
    None
}

fn language_name(language: &Language) -> String {
    match language {
        Language::Zh => r#""zh""#,
        Language::En => r#""en""#,
        Language::Mixed => r#""mixed""#,
    }
    .to_owned()
}

/// 1 to 64 of `a-z`, `0-9`, `_`, `-`: rule, queue and skill names.
fn is_word(text: &str) -> bool {
    (1..=MAX_NAME_CHARS).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// 1 to 64 of `a-z`, `0-9`, `_`: channel names, as conversations name them.
fn is_channel(text: &str) -> bool {
    (1..=MAX_NAME_CHARS).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Free-form names from other systems (intents): not empty, bounded, no control characters or
/// surrounding spaces.
fn is_label(text: &str, max_chars: usize) -> bool {
    let count = text.chars().count();
    (1..=max_chars).contains(&count) && text.trim() == text && !text.chars().any(char::is_control)
}
