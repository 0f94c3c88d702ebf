//! Checks a flow and compiles it for the engine.
//!
//! Every mistake is collected, each naming its node and field, so an author fixes a flow in one
//! round.

use std::collections::{BTreeSet, HashMap};

use regex::RegexBuilder;
use serde_json::Value;

use crate::answer::{Choice, DEFAULT_TEXT_CHARS, MAX_ANSWER_CHARS, Validator, normalise};
use crate::condition::{Condition, Subject};
use crate::error::{FlowError, FlowErrorKind, index, join};
use crate::spec::{CardSpec, FlowSpec, NodeSpec, Text, ValidatorSpec};
use crate::template::{CallPath, Ref, Template};
use crate::{MAX_NODES, MAX_SLOTS};

const MAX_ID_CHARS: usize = 64;
const MAX_TEXT_CHARS: usize = 4000;
const MAX_NAME_CHARS: usize = 200;
const MAX_DESCRIPTION_CHARS: usize = 2000;
const MAX_LIST: usize = 20;
const MAX_CASES: usize = 50;
const MAX_CHOICES: usize = 50;
const MAX_SYNONYMS: usize = 50;
const MAX_TRIGGERS: usize = 100;
const MAX_PATTERN_CHARS: usize = 500;
const MAX_BODY_BYTES: usize = 16 * 1024;
const DEFAULT_ATTEMPTS: u8 = 3;
const DEFAULT_TIMEOUT_MS: u32 = 5000;
const DEFAULT_BACKOFF_MS: u32 = 500;
/// The middle of 1 to 10, as in routing rules.
const DEFAULT_PRIORITY: u8 = 5;

/// A text compiled per language.
#[derive(Debug, Clone)]
pub(crate) struct LocalText {
    pub(crate) zh: Option<Template>,
    pub(crate) en: Option<Template>,
}

/// A compiled card.
#[derive(Debug, Clone)]
pub(crate) struct Card {
    pub(crate) title: LocalText,
    pub(crate) text: Option<LocalText>,
    pub(crate) image_url: Option<Template>,
    pub(crate) buttons: Vec<(LocalText, Option<Template>, Option<LocalText>)>,
}

/// A JSON body whose strings are templates.
#[derive(Debug, Clone)]
pub(crate) enum Body {
    Text(Template),
    List(Vec<Body>),
    Object(Vec<(String, Body)>),
    Other(Value),
}

/// A compiled node.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    Say {
        text: LocalText,
        quick_replies: Vec<LocalText>,
        card: Option<Card>,
        next: Option<usize>,
    },
    Ask {
        slot: String,
        prompt: LocalText,
        reprompt: Option<LocalText>,
        validator: Validator,
        max_attempts: u8,
        quick_replies: Vec<LocalText>,
        prefill: bool,
        next: usize,
        on_invalid: usize,
    },
    Branch {
        cases: Vec<(Condition, usize)>,
        default: usize,
    },
    Call {
        method: String,
        url: Template,
        headers: Vec<(String, Template)>,
        body: Option<Body>,
        timeout_ms: u32,
        retries: u8,
        backoff_ms: u32,
        save: Vec<(String, CallPath)>,
        next: usize,
        on_status: Vec<(u16, usize)>,
        on_error: usize,
    },
    Kb {
        query: Option<Template>,
        next: usize,
        on_no_answer: usize,
    },
    Handoff {
        queue: String,
        priority: u8,
        note: Option<Template>,
    },
    Ticket {
        fields: Vec<(String, Template)>,
        next: usize,
    },
    Set {
        slots: Vec<(String, Template)>,
        attributes: Vec<(String, Template)>,
        tags: Vec<String>,
        next: usize,
    },
    End {
        resolve: bool,
        ask_csat: bool,
    },
}

/// What a node reads: (field path, slot) pairs, and the call values.
type NodeFacts = (Vec<(String, String)>, Vec<CallPath>);

/// The compiled form of a valid flow.
#[derive(Debug, Clone)]
pub(crate) struct Compiled {
    pub(crate) ids: Vec<String>,
    pub(crate) nodes: Vec<Node>,
    pub(crate) start: usize,
    pub(crate) call_paths: Vec<CallPath>,
    pub(crate) warnings: Vec<FlowError>,
}

fn is_id(s: &str) -> bool {
    !s.is_empty()
        && s.chars().count() <= MAX_ID_CHARS
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn is_slot(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID_CHARS
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

const ID_RULE: &str = "must be 1 to 64 characters of a-z, 0-9, '_' and '-'";
const SLOT_RULE: &str = "must be 1 to 64 characters of a-z, 0-9 and '_'";

/// Validates `spec` (whose node `i` was at position `positions[i]` of the document, among
/// `total`) and compiles it when nothing was wrong.
pub(crate) fn compile(
    spec: &FlowSpec,
    positions: &[usize],
    total: usize,
    unreadable: &[String],
    errors: &mut Vec<FlowError>,
) -> Option<Compiled> {
    let whole = |errors: &mut Vec<FlowError>, path: &str, kind, message: String| {
        errors.push(FlowError::whole(path, kind, message));
    };
    if !is_id(&spec.id) {
        whole(errors, "id", FlowErrorKind::Invalid, ID_RULE.to_owned());
    }
    if spec.version == 0 {
        whole(
            errors,
            "version",
            FlowErrorKind::Invalid,
            "must be at least 1".to_owned(),
        );
    }
    if spec.name.as_ref().is_some_and(|n| n.chars().count() > MAX_NAME_CHARS) {
        whole(
            errors,
            "name",
            FlowErrorKind::TooLarge,
            format!("at most {MAX_NAME_CHARS} characters"),
        );
    }
    if spec
        .description
        .as_ref()
        .is_some_and(|n| n.chars().count() > MAX_DESCRIPTION_CHARS)
    {
        whole(
            errors,
            "description",
            FlowErrorKind::TooLarge,
            format!("at most {MAX_DESCRIPTION_CHARS} characters"),
        );
    }
    for (field, list) in [
        ("triggers.intents", &spec.triggers.intents),
        ("triggers.keywords", &spec.triggers.keywords),
    ] {
        if list.len() > MAX_TRIGGERS {
            whole(
                errors,
                field,
                FlowErrorKind::TooLarge,
                format!("at most {MAX_TRIGGERS} entries"),
            );
        }
        for (i, entry) in list.iter().enumerate() {
            if entry.trim().is_empty() || entry.chars().count() > 100 {
                whole(
                    errors,
                    &index(field, i),
                    FlowErrorKind::Invalid,
                    "must be 1 to 100 characters".to_owned(),
                );
            }
        }
    }
    if total == 0 {
        whole(errors, "nodes", FlowErrorKind::Invalid, "must not be empty".to_owned());
    }
    if total > MAX_NODES {
        whole(
            errors,
            "nodes",
            FlowErrorKind::TooLarge,
            format!("at most {MAX_NODES} nodes"),
        );
    }

    // Ids first: every reference is checked against the ids of all readable nodes.
    let mut by_id: HashMap<&str, usize> = HashMap::new();
    for (i, node) in spec.nodes.iter().enumerate() {
        let at = positions.get(i).copied().unwrap_or(i);
        let id = node.id();
        if !is_id(id) {
            errors.push(FlowError::in_node(at, Some(id), "id", FlowErrorKind::Invalid, ID_RULE));
        } else if let Some(&first) = by_id.get(id) {
            let first_at = positions.get(first).copied().unwrap_or(first);
            errors.push(FlowError::in_node(
                at,
                Some(id),
                "id",
                FlowErrorKind::Duplicate,
                format!("{id:?} is already the id of nodes[{first_at}]"),
            ));
        } else {
            by_id.insert(id, i);
        }
    }
    let start = by_id.get(spec.start.as_str()).copied();
    if start.is_none() && !unreadable.contains(&spec.start) {
        whole(
            errors,
            "start",
            FlowErrorKind::UnknownNode,
            format!("no node {:?}", crate::error::clip(&spec.start, 80)),
        );
    }

    let mut nodes = Vec::with_capacity(spec.nodes.len());
    let mut facts = Vec::with_capacity(spec.nodes.len());
    for (i, node) in spec.nodes.iter().enumerate() {
        let mut checker = Checker {
            at: positions.get(i).copied().unwrap_or(i),
            id: node.id(),
            by_id: &by_id,
            unreadable,
            errors: &mut *errors,
            reads: Vec::new(),
            call_paths: Vec::new(),
        };
        let compiled = checker.node(node);
        facts.push((checker.reads, checker.call_paths));
        nodes.push(compiled);
    }
    if !errors.is_empty() {
        return None;
    }
    let nodes = nodes.into_iter().collect::<Option<Vec<_>>>()?;
    let start = start?;
    let ids = spec.nodes.iter().map(|n| n.id().to_owned()).collect::<Vec<_>>();
    let at = |i: usize| positions.get(i).copied().unwrap_or(i);

    non_waiting_loops(&nodes, &ids, &at, errors);
    let mut warnings = Vec::new();
    slot_checks(&nodes, &ids, start, &facts, &at, errors, &mut warnings);
    let reachable = reachable_from(&nodes, start);
    for (i, seen) in reachable.iter().enumerate() {
        if !seen {
            warnings.push(
                FlowError::in_node(
                    at(i),
                    ids.get(i).map(String::as_str),
                    "",
                    FlowErrorKind::Unreachable,
                    "no path from start reaches this node",
                )
                .warning(),
            );
        }
    }
    if !errors.is_empty() {
        return None;
    }
    let mut call_paths = facts
        .iter()
        .flat_map(|(_, paths)| paths.iter().cloned())
        .collect::<Vec<_>>();
    call_paths.sort();
    call_paths.dedup();
    Some(Compiled {
        ids,
        nodes,
        start,
        call_paths,
        warnings,
    })
}

/// The nodes each node can go to next, with the slots the edge sets.
pub(crate) fn edges(node: &Node) -> Vec<(usize, Vec<&str>)> {
    match node {
        Node::Say { next, .. } => next.iter().map(|n| (*n, vec![])).collect(),
        Node::Ask {
            slot, next, on_invalid, ..
        } => vec![(*next, vec![slot.as_str()]), (*on_invalid, vec![])],
        Node::Branch { cases, default } => cases
            .iter()
            .map(|(_, n)| (*n, vec![]))
            .chain(std::iter::once((*default, vec![])))
            .collect(),
        Node::Call {
            save,
            next,
            on_status,
            on_error,
            ..
        } => std::iter::once((*next, save.iter().map(|(s, _)| s.as_str()).collect()))
            .chain(on_status.iter().map(|(_, n)| (*n, vec![])))
            .chain(std::iter::once((*on_error, vec![])))
            .collect(),
        Node::Kb { next, on_no_answer, .. } => vec![(*next, vec![]), (*on_no_answer, vec![])],
        Node::Handoff { .. } | Node::End { .. } => vec![],
        Node::Ticket { next, .. } => vec![(*next, vec![])],
        Node::Set { slots, next, .. } => vec![(*next, slots.iter().map(|(s, _)| s.as_str()).collect())],
    }
}

fn reachable_from(nodes: &[Node], start: usize) -> Vec<bool> {
    let mut seen = vec![false; nodes.len()];
    let mut stack = vec![start];
    while let Some(n) = stack.pop() {
        if seen.get(n).copied().unwrap_or(true) {
            continue;
        }
        if let Some(s) = seen.get_mut(n) {
            *s = true;
        }
        if let Some(node) = nodes.get(n) {
            stack.extend(edges(node).into_iter().map(|(t, _)| t));
        }
    }
    seen
}

/// A cycle that passes through no `ask` would run forever within one turn. Each group of nodes
/// that reach one another without waiting is reported once, at its first node.
fn non_waiting_loops(nodes: &[Node], ids: &[String], at: &dyn Fn(usize) -> usize, errors: &mut Vec<FlowError>) {
    let waits = |n: usize| matches!(nodes.get(n), Some(Node::Ask { .. }));
    let successors = |n: usize| -> Vec<usize> {
        nodes
            .get(n)
            .map(|node| edges(node).into_iter().map(|(t, _)| t).filter(|t| !waits(*t)).collect())
            .unwrap_or_default()
    };
    // reach[n]: the nodes reachable from n in one or more steps without passing an ask.
    let reach = (0..nodes.len())
        .map(|n| {
            let mut seen = vec![false; nodes.len()];
            if waits(n) {
                return seen;
            }
            let mut stack = successors(n);
            while let Some(m) = stack.pop() {
                if let Some(s) = seen.get_mut(m)
                    && !*s
                {
                    *s = true;
                    stack.extend(successors(m));
                }
            }
            seen
        })
        .collect::<Vec<_>>();
    let mut reported = vec![false; nodes.len()];
    for n in 0..nodes.len() {
        if reported.get(n).copied().unwrap_or(true) || !reach.get(n).and_then(|r| r.get(n)).copied().unwrap_or(false) {
            continue;
        }
        let members = (0..nodes.len())
            .filter(|&m| {
                m == n
                    || (reach.get(n).and_then(|r| r.get(m)).copied().unwrap_or(false)
                        && reach.get(m).and_then(|r| r.get(n)).copied().unwrap_or(false))
            })
            .collect::<Vec<_>>();
        for &m in &members {
            if let Some(r) = reported.get_mut(m) {
                *r = true;
            }
        }
        let names = members
            .iter()
            .filter_map(|&m| ids.get(m))
            .map(|id| format!("{id:?}"))
            .collect::<Vec<_>>()
            .join(" → ");
        errors.push(FlowError::in_node(
            at(n),
            ids.get(n).map(String::as_str),
            "",
            FlowErrorKind::NonWaitingLoop,
            format!("loop that never waits for input: {names} can repeat without an ask node in between"),
        ));
    }
}

/// Slots: a slot that is read but that no node sets is refused (a typo, most likely); a slot
/// read where some path from `start` has not set it yet is a warning (it reads as empty there).
#[allow(clippy::too_many_arguments)]
fn slot_checks(
    nodes: &[Node],
    ids: &[String],
    start: usize,
    facts: &[NodeFacts],
    at: &dyn Fn(usize) -> usize,
    errors: &mut Vec<FlowError>,
    warnings: &mut Vec<FlowError>,
) {
    let mut names: BTreeSet<&str> = BTreeSet::new();
    for node in nodes {
        for (_, set) in edges(node) {
            names.extend(set);
        }
    }
    if names.len() > MAX_SLOTS {
        errors.push(FlowError::whole(
            "nodes",
            FlowErrorKind::TooLarge,
            format!("{} slots; at most {MAX_SLOTS} are allowed", names.len()),
        ));
        return;
    }
    let slot_bit = |name: &str| names.iter().position(|n| *n == name).map(|p| 1u128 << p);

    // Must-analysis: in[n] = slots set on every path from start to n.
    let all = u128::MAX;
    let mut set_in = vec![all; nodes.len()];
    if let Some(s) = set_in.get_mut(start) {
        *s = 0;
    }
    let mut changed = true;
    let mut rounds = 0;
    while changed && rounds <= nodes.len() + 1 {
        changed = false;
        rounds += 1;
        let mut next_in = vec![all; nodes.len()];
        if let Some(s) = next_in.get_mut(start) {
            *s = 0;
        }
        for (n, node) in nodes.iter().enumerate() {
            let here = set_in.get(n).copied().unwrap_or(all);
            if here == all && n != start {
                continue;
            }
            for (target, set) in edges(node) {
                let out = set.iter().filter_map(|s| slot_bit(s)).fold(here, |acc, bit| acc | bit);
                if let Some(t) = next_in.get_mut(target) {
                    *t &= out;
                }
            }
        }
        if next_in != set_in {
            set_in = next_in;
            changed = true;
        }
    }

    for (n, (reads, _)) in facts.iter().enumerate() {
        for (path, slot) in reads {
            let id = ids.get(n).map(String::as_str);
            match slot_bit(slot) {
                None => errors.push(FlowError::in_node(
                    at(n),
                    id,
                    path.clone(),
                    FlowErrorKind::UnknownSlot,
                    format!("slot {slot:?} is read here but no node sets it (ask, call save or set)"),
                )),
                Some(bit) => {
                    let here = set_in.get(n).copied().unwrap_or(all);
                    if here != all && here & bit == 0 {
                        warnings.push(
                            FlowError::in_node(
                                at(n),
                                id,
                                path.clone(),
                                FlowErrorKind::MaybeUnsetSlot,
                                format!("slot {slot:?} may not be set yet on some path to this node; it reads as empty there"),
                            )
                            .warning(),
                        );
                    }
                }
            }
        }
    }
}

struct Checker<'a> {
    at: usize,
    id: &'a str,
    by_id: &'a HashMap<&'a str, usize>,
    unreadable: &'a [String],
    errors: &'a mut Vec<FlowError>,
    /// (path, slot) for every slot this node reads.
    reads: Vec<(String, String)>,
    call_paths: Vec<CallPath>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Where {
    /// Text for people: no secrets.
    Text,
    /// A URL or header: secrets allowed.
    Request,
}

impl Checker<'_> {
    fn error(&mut self, path: impl Into<String>, kind: FlowErrorKind, message: impl Into<String>) {
        self.errors
            .push(FlowError::in_node(self.at, Some(self.id), path, kind, message));
    }

    fn target(&mut self, path: &str, id: &str) -> Option<usize> {
        let found = self.by_id.get(id).copied();
        if found.is_none() && !self.unreadable.iter().any(|u| u == id) {
            self.error(
                path,
                FlowErrorKind::UnknownNode,
                format!("no node {:?}", crate::error::clip(id, 80)),
            );
        }
        found
    }

    fn template(&mut self, path: &str, text: &str, place: Where) -> Option<Template> {
        if text.chars().count() > MAX_TEXT_CHARS {
            self.error(
                path,
                FlowErrorKind::TooLarge,
                format!("at most {MAX_TEXT_CHARS} characters"),
            );
            return None;
        }
        match Template::parse(text) {
            Ok(t) => {
                let mut ok = true;
                for r in t.refs() {
                    match r {
                        Ref::Secret(name) if place == Where::Text => {
                            ok = false;
                            self.errors.push(FlowError::in_node(
                                self.at,
                                Some(self.id),
                                path,
                                FlowErrorKind::Template,
                                format!("{{{{secrets.{name}}}}} is only allowed in a call's url and headers"),
                            ));
                        }
                        Ref::Slot(slot) => self.reads.push((path.to_owned(), slot.clone())),
                        Ref::Call(call) => self.call_paths.push(call.clone()),
                        _ => {}
                    }
                }
                ok.then_some(t)
            }
            Err(e) => {
                self.error(path, FlowErrorKind::Template, format!("bad template: {e}"));
                None
            }
        }
    }

    fn text(&mut self, path: &str, text: &Text) -> Option<LocalText> {
        let variants = text.variants();
        if variants.is_empty() {
            self.error(path, FlowErrorKind::Invalid, "needs zh, en or both");
            return None;
        }
        let mut out = LocalText { zh: None, en: None };
        let mut ok = true;
        for (lang, s) in variants {
            let at = if lang.is_empty() {
                path.to_owned()
            } else {
                join(path, lang)
            };
            if s.trim().is_empty() {
                self.error(&at, FlowErrorKind::Invalid, "must not be empty");
                ok = false;
                continue;
            }
            match (lang, self.template(&at, s, Where::Text)) {
                (_, None) => ok = false,
                ("zh", t) => out.zh = t,
                ("en", t) => out.en = t,
                (_, Some(t)) => {
                    out.zh = Some(t.clone());
                    out.en = Some(t);
                }
            }
        }
        ok.then_some(out)
    }

    fn texts(&mut self, path: &str, list: &[Text]) -> Option<Vec<LocalText>> {
        if list.len() > MAX_LIST {
            self.error(path, FlowErrorKind::TooLarge, format!("at most {MAX_LIST} entries"));
            return None;
        }
        list.iter()
            .enumerate()
            .map(|(i, t)| self.text(&index(path, i), t))
            .collect::<Vec<_>>()
            .into_iter()
            .collect()
    }

    fn card(&mut self, card: &CardSpec) -> Option<Card> {
        let title = self.text("card.title", &card.title);
        let text = card.text.as_ref().map(|t| self.text("card.text", t));
        let image_url = card
            .image_url
            .as_ref()
            .map(|u| self.template("card.image_url", u, Where::Text));
        if card.buttons.len() > MAX_LIST {
            self.error(
                "card.buttons",
                FlowErrorKind::TooLarge,
                format!("at most {MAX_LIST} buttons"),
            );
        }
        let mut buttons = Vec::new();
        for (i, b) in card.buttons.iter().enumerate() {
            let at = index("card.buttons", i);
            if b.url.is_some() == b.reply.is_some() {
                self.error(&at, FlowErrorKind::Invalid, "needs exactly one of url and reply");
            }
            let label = self.text(&join(&at, "label"), &b.label);
            let url = b.url.as_ref().map(|u| self.template(&join(&at, "url"), u, Where::Text));
            let reply = b.reply.as_ref().map(|r| self.text(&join(&at, "reply"), r));
            buttons.push((label, url, reply));
        }
        let buttons = buttons
            .into_iter()
            .map(|(l, u, r)| {
                Some((
                    l?,
                    u.map_or(Some(None), |u| u.map(Some))?,
                    r.map_or(Some(None), |r| r.map(Some))?,
                ))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Card {
            title: title?,
            text: text.map_or(Some(None), |t| t.map(Some))?,
            image_url: image_url.map_or(Some(None), |t| t.map(Some))?,
            buttons,
        })
    }

    fn validator(&mut self, spec: &ValidatorSpec) -> Option<Validator> {
        match spec {
            ValidatorSpec::Pattern(pattern) => {
                if pattern.chars().count() > MAX_PATTERN_CHARS {
                    self.error(
                        "validate.pattern",
                        FlowErrorKind::TooLarge,
                        format!("at most {MAX_PATTERN_CHARS} characters"),
                    );
                    return None;
                }
                // A size limit keeps an author's pattern from costing unbounded memory.
                match RegexBuilder::new(pattern).size_limit(1 << 20).build() {
                    Ok(re) => Some(Validator::Pattern(re)),
                    Err(e) => {
                        self.error(
                            "validate.pattern",
                            FlowErrorKind::Invalid,
                            format!("not a regular expression: {e}"),
                        );
                        None
                    }
                }
            }
            ValidatorSpec::Choice(options) => {
                if options.is_empty() || options.len() > MAX_CHOICES {
                    self.error(
                        "validate.choice",
                        FlowErrorKind::Invalid,
                        format!("must have 1 to {MAX_CHOICES} options"),
                    );
                    return None;
                }
                let mut seen: HashMap<String, usize> = HashMap::new();
                let mut out = Vec::new();
                for (i, option) in options.iter().enumerate() {
                    let at = index("validate.choice", i);
                    if option.synonyms.len() > MAX_SYNONYMS {
                        self.error(
                            join(&at, "synonyms"),
                            FlowErrorKind::TooLarge,
                            format!("at most {MAX_SYNONYMS}"),
                        );
                    }
                    let mut answers = Vec::new();
                    for (j, answer) in std::iter::once(&option.value).chain(&option.synonyms).enumerate() {
                        let path = if j == 0 {
                            join(&at, "value")
                        } else {
                            index(&join(&at, "synonyms"), j - 1)
                        };
                        let norm = normalise(answer);
                        if norm.is_empty() || answer.chars().count() > 100 {
                            self.error(
                                path,
                                FlowErrorKind::Invalid,
                                "must be 1 to 100 characters with a letter or digit",
                            );
                            continue;
                        }
                        match seen.get(&norm) {
                            Some(&other) if other != i => self.error(
                                path,
                                FlowErrorKind::Duplicate,
                                format!("{answer:?} also chooses option {other}"),
                            ),
                            _ => {
                                seen.insert(norm.clone(), i);
                                answers.push(norm);
                            }
                        }
                    }
                    out.push(Choice {
                        value: option.value.clone(),
                        answers,
                    });
                }
                Some(Validator::Choice(out))
            }
            ValidatorSpec::Number(rule) => {
                for (field, bound) in [("min", rule.min), ("max", rule.max)] {
                    if bound.is_some_and(|b| !b.is_finite()) {
                        self.error(
                            format!("validate.number.{field}"),
                            FlowErrorKind::Invalid,
                            "must be a finite number",
                        );
                    }
                }
                if let (Some(min), Some(max)) = (rule.min, rule.max)
                    && min > max
                {
                    self.error("validate.number.min", FlowErrorKind::Invalid, "must not be above max");
                }
                Some(Validator::Number(rule.clone()))
            }
            ValidatorSpec::Date(rule) => Some(Validator::Date(rule.range)),
            ValidatorSpec::OrderNumber => Some(Validator::OrderNumber),
            ValidatorSpec::Text(rule) => {
                let max = rule.max_chars.map_or(DEFAULT_TEXT_CHARS, usize::from);
                if max == 0 || max > MAX_ANSWER_CHARS {
                    self.error(
                        "validate.text.max_chars",
                        FlowErrorKind::Invalid,
                        format!("must be 1 to {MAX_ANSWER_CHARS}"),
                    );
                }
                Some(Validator::Text(max))
            }
        }
    }

    fn body(&mut self, path: &str, value: &Value, depth: usize) -> Option<Body> {
        if depth > 16 {
            self.error(path, FlowErrorKind::TooLarge, "nested more than 16 deep");
            return None;
        }
        Some(match value {
            Value::String(s) => Body::Text(self.template(path, s, Where::Text)?),
            Value::Array(items) => Body::List(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| self.body(&index(path, i), v, depth + 1))
                    .collect::<Vec<_>>()
                    .into_iter()
                    .collect::<Option<_>>()?,
            ),
            Value::Object(map) => Body::Object(
                map.iter()
                    .map(|(k, v)| Some((k.clone(), self.body(&join(path, k), v, depth + 1)?)))
                    .collect::<Vec<_>>()
                    .into_iter()
                    .collect::<Option<_>>()?,
            ),
            other => Body::Other(other.clone()),
        })
    }

    fn slot_name(&mut self, path: &str, name: &str) -> bool {
        let ok = is_slot(name);
        if !ok {
            self.error(path, FlowErrorKind::Invalid, SLOT_RULE);
        }
        ok
    }

    fn node(&mut self, spec: &NodeSpec) -> Option<Node> {
        let before = self.errors.len();
        let node = self.node_inner(spec);
        if self.errors.len() == before { node } else { None }
    }

    fn node_inner(&mut self, spec: &NodeSpec) -> Option<Node> {
        match spec {
            NodeSpec::Say(n) => {
                let text = self.text("text", &n.text);
                let quick_replies = self.texts("quick_replies", &n.quick_replies);
                let card = n.card.as_ref().map(|c| self.card(c));
                let next = n.next.as_ref().map(|t| self.target("next", t));
                Some(Node::Say {
                    text: text?,
                    quick_replies: quick_replies?,
                    card: card.map_or(Some(None), |c| c.map(Some))?,
                    next: next.map_or(Some(None), |t| t.map(Some))?,
                })
            }
            NodeSpec::Ask(n) => {
                self.slot_name("slot", &n.slot);
                let prompt = self.text("prompt", &n.prompt);
                let reprompt = n.reprompt.as_ref().map(|t| self.text("reprompt", t));
                let validator = self.validator(&n.validate);
                let max_attempts = n.max_attempts.unwrap_or(DEFAULT_ATTEMPTS);
                if !(1..=10).contains(&max_attempts) {
                    self.error("max_attempts", FlowErrorKind::Invalid, "must be 1 to 10");
                }
                let quick_replies = self.texts("quick_replies", &n.quick_replies);
                let next = self.target("next", &n.next);
                let on_invalid = self.target("on_invalid", &n.on_invalid);
                Some(Node::Ask {
                    slot: n.slot.clone(),
                    prompt: prompt?,
                    reprompt: reprompt.map_or(Some(None), |t| t.map(Some))?,
                    validator: validator?,
                    max_attempts,
                    quick_replies: quick_replies?,
                    prefill: n.prefill,
                    next: next?,
                    on_invalid: on_invalid?,
                })
            }
            NodeSpec::Branch(n) => {
                if n.cases.is_empty() || n.cases.len() > MAX_CASES {
                    self.error(
                        "cases",
                        FlowErrorKind::Invalid,
                        format!("must have 1 to {MAX_CASES} cases"),
                    );
                }
                let mut cases = Vec::new();
                for (i, case) in n.cases.iter().enumerate() {
                    let at = index("cases", i);
                    let when_path = join(&at, "when");
                    let condition = match Condition::parse(&case.when, &when_path) {
                        Ok(c) => {
                            let mut subjects = Vec::new();
                            c.subjects(&mut subjects);
                            for s in subjects {
                                match s {
                                    Subject::Slot(slot) => self.reads.push((when_path.clone(), slot)),
                                    Subject::Call(call) => self.call_paths.push(call),
                                    Subject::Contact(_) => {}
                                }
                            }
                            Some(c)
                        }
                        Err(list) => {
                            for (path, message) in list {
                                self.error(path, FlowErrorKind::Condition, message);
                            }
                            None
                        }
                    };
                    let next = self.target(&join(&at, "next"), &case.next);
                    cases.push(condition.zip(next));
                }
                let default = self.target("default", &n.default);
                Some(Node::Branch {
                    cases: cases.into_iter().collect::<Option<_>>()?,
                    default: default?,
                })
            }
            NodeSpec::Call(n) => self.call(n),
            NodeSpec::Kb(n) => {
                let query = n.query.as_ref().map(|q| self.template("query", q, Where::Text));
                let next = self.target("next", &n.next);
                let on_no_answer = match &n.on_no_answer {
                    Some(t) => self.target("on_no_answer", t),
                    None => next,
                };
                Some(Node::Kb {
                    query: query.map_or(Some(None), |q| q.map(Some))?,
                    next: next?,
                    on_no_answer: on_no_answer?,
                })
            }
            NodeSpec::Handoff(n) => {
                if !is_slot(&n.queue) {
                    self.error("queue", FlowErrorKind::Invalid, SLOT_RULE);
                }
                let priority = n.priority.unwrap_or(DEFAULT_PRIORITY);
                if !(1..=10).contains(&priority) {
                    self.error("priority", FlowErrorKind::Invalid, "must be 1 to 10");
                }
                let note = n.note.as_ref().map(|t| self.template("note", t, Where::Text));
                Some(Node::Handoff {
                    queue: n.queue.clone(),
                    priority,
                    note: note.map_or(Some(None), |t| t.map(Some))?,
                })
            }
            NodeSpec::Ticket(n) => {
                if n.fields.is_empty() || n.fields.len() > MAX_LIST {
                    self.error(
                        "fields",
                        FlowErrorKind::Invalid,
                        format!("must have 1 to {MAX_LIST} fields"),
                    );
                }
                let fields = n
                    .fields
                    .iter()
                    .map(|(k, v)| {
                        let path = join("fields", k);
                        if !is_slot(k) {
                            self.error(&path, FlowErrorKind::Invalid, format!("field name {SLOT_RULE}"));
                        }
                        Some((k.clone(), self.template(&path, v, Where::Text)?))
                    })
                    .collect::<Vec<_>>();
                let next = self.target("next", &n.next);
                Some(Node::Ticket {
                    fields: fields.into_iter().collect::<Option<_>>()?,
                    next: next?,
                })
            }
            NodeSpec::Set(n) => {
                if n.slots.is_empty() && n.attributes.is_empty() && n.tags.is_empty() {
                    self.error(
                        "",
                        FlowErrorKind::Invalid,
                        "sets nothing: give slots, attributes or tags",
                    );
                }
                for (field, len) in [
                    ("slots", n.slots.len()),
                    ("attributes", n.attributes.len()),
                    ("tags", n.tags.len()),
                ] {
                    if len > MAX_LIST {
                        self.error(field, FlowErrorKind::TooLarge, format!("at most {MAX_LIST} entries"));
                    }
                }
                let slots = n
                    .slots
                    .iter()
                    .map(|(k, v)| {
                        let path = join("slots", k);
                        self.slot_name(&path, k);
                        Some((k.clone(), self.template(&path, v, Where::Text)?))
                    })
                    .collect::<Vec<_>>();
                let attributes = n
                    .attributes
                    .iter()
                    .map(|(k, v)| {
                        let path = join("attributes", k);
                        if k.is_empty() || k.chars().count() > 128 {
                            self.error(&path, FlowErrorKind::Invalid, "attribute names are 1 to 128 characters");
                        }
                        Some((k.clone(), self.template(&path, v, Where::Text)?))
                    })
                    .collect::<Vec<_>>();
                for (i, tag) in n.tags.iter().enumerate() {
                    if tag.trim().is_empty() || tag.chars().count() > 50 {
                        self.error(index("tags", i), FlowErrorKind::Invalid, "tags are 1 to 50 characters");
                    }
                }
                let next = self.target("next", &n.next);
                Some(Node::Set {
                    slots: slots.into_iter().collect::<Option<_>>()?,
                    attributes: attributes.into_iter().collect::<Option<_>>()?,
                    tags: n.tags.clone(),
                    next: next?,
                })
            }
            NodeSpec::End(n) => Some(Node::End {
                resolve: n.resolve.unwrap_or(true),
                ask_csat: n.ask_csat,
            }),
        }
    }

    fn call(&mut self, n: &crate::spec::CallNode) -> Option<Node> {
        let method = n.request.method.as_deref().unwrap_or("GET").to_ascii_uppercase();
        if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method.as_str()) {
            self.error(
                "request.method",
                FlowErrorKind::Invalid,
                "must be GET, POST, PUT, PATCH or DELETE",
            );
        }
        let url = self.template("request.url", &n.request.url, Where::Request);
        if let Some(url) = &url {
            let absolute = url
                .literal_prefix()
                .is_some_and(|p| p.starts_with("https://") || p.starts_with("http://"));
            if !absolute && !url.starts_with_secret() {
                self.error(
                    "request.url",
                    FlowErrorKind::Invalid,
                    "must start with http:// or https://, or with a {{secrets.…}} base URL",
                );
            }
        }
        if n.request.headers.len() > MAX_LIST {
            self.error(
                "request.headers",
                FlowErrorKind::TooLarge,
                format!("at most {MAX_LIST} headers"),
            );
        }
        let headers = n
            .request
            .headers
            .iter()
            .map(|(name, value)| {
                let path = join("request.headers", name);
                let token = !name.is_empty()
                    && name.len() <= 64
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
                if !token {
                    self.error(&path, FlowErrorKind::Invalid, "not a valid header name");
                }
                Some((name.clone(), self.template(&path, value, Where::Request)?))
            })
            .collect::<Vec<_>>();
        let body = match &n.request.body {
            Some(body) => {
                if serde_json::to_string(body).map_or(0, |s| s.len()) > MAX_BODY_BYTES {
                    self.error(
                        "request.body",
                        FlowErrorKind::TooLarge,
                        format!("at most {MAX_BODY_BYTES} bytes"),
                    );
                }
                if method == "GET" {
                    self.error("request.body", FlowErrorKind::Invalid, "a GET request has no body");
                }
                Some(self.body("request.body", body, 0))
            }
            None => None,
        };
        let timeout_ms = n.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
        if !(100..=30_000).contains(&timeout_ms) {
            self.error("timeout_ms", FlowErrorKind::Invalid, "must be 100 to 30000");
        }
        let retries = n.retries.unwrap_or(0);
        if retries > 5 {
            self.error("retries", FlowErrorKind::Invalid, "must be 0 to 5");
        }
        let backoff_ms = n.backoff_ms.unwrap_or(DEFAULT_BACKOFF_MS);
        if backoff_ms > 60_000 {
            self.error("backoff_ms", FlowErrorKind::Invalid, "must be 0 to 60000");
        }
        if n.save.len() > MAX_LIST {
            self.error("save", FlowErrorKind::TooLarge, format!("at most {MAX_LIST} slots"));
        }
        let mut save = Vec::new();
        for (slot, path) in &n.save {
            let at = join("save", slot);
            self.slot_name(&at, slot);
            match CallPath::parse(path) {
                Ok(p) => save.push((slot.clone(), p)),
                Err(e) => self.error(&at, FlowErrorKind::Invalid, e),
            }
        }
        let next = self.target("next", &n.next);
        let mut on_status = Vec::new();
        for (status, target) in &n.on_status {
            let at = join("on_status", status);
            match status.parse::<u16>() {
                Ok(code) if (100..=599).contains(&code) && !(200..=299).contains(&code) => {
                    if let Some(t) = self.target(&at, target) {
                        on_status.push((code, t));
                    }
                }
                _ => self.error(
                    &at,
                    FlowErrorKind::Invalid,
                    "must be an HTTP status from 100 to 599, not 2xx",
                ),
            }
        }
        let on_error = self.target("on_error", &n.on_error);
        Some(Node::Call {
            method,
            url: url?,
            headers: headers.into_iter().collect::<Option<_>>()?,
            body: body.map_or(Some(None), |b| b.map(Some))?,
            timeout_ms,
            retries,
            backoff_ms,
            save,
            next: next?,
            on_status,
            on_error: on_error?,
        })
    }
}
