//! Computing new offers.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use crate::command::expiry;
use crate::event::{Candidate, Event, Verdict};
use crate::model::{Presence, SkillRequirement, Strategy};
use crate::state::{Agent, Conversation, Dispatcher};

impl Dispatcher {
    /// Offers waiting conversations to agents who can take them, and returns the offers made.
    ///
    /// Waiting conversations are considered once each, across all queues, in serving order
    /// (priority, then enqueue time, then id), so the most urgent conversation anywhere is
    /// served first and no queue starves another that shares its agents. For each, the agents
    /// serving its queue are checked: an agent is *eligible* when online, at or above every
    /// required skill level, speaking one of its languages (if it names any) and with free
    /// capacity on its channel (assigned plus offered below capacity). Among eligible agents,
    /// those who rejected or let expire this conversation more often than some other agent who
    /// qualifies (online, skills, language, any capacity on the channel, free or not) are passed
    /// over: everyone gets a turn before anyone gets a second one. The queue's [`Strategy`] picks
    /// among the rest. Each offer expires after the queue's offer timeout.
    ///
    /// After the returned events are applied, no waiting conversation has an eligible agent
    /// left, so calling it again at once returns nothing.
    ///
    /// Cost: one pass over the waiting conversations, skipping in O(log channels) those whose
    /// channel has no free capacity at all, and stopping when no agent has any; a conversation
    /// that is considered costs O(agents in its queue), plus the explanation when it is offered.
    /// Within one call capacity only shrinks, so once no agent has room for a conversation,
    /// later ones with the same queue, channel, skills and languages are skipped without looking
    /// at agents.
    pub fn dispatch(&self, now_ms: i64) -> Vec<Event> {
        let mut events = Vec::new();
        if self.waiting.is_empty() {
            return events;
        }
        let mut pool = Pool::new(self);
        if pool.free_total == 0 {
            return events;
        }
        let mut members: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        let mut cursors: BTreeMap<&str, &str> = BTreeMap::new();
        let mut hopeless: BTreeSet<Signature<'_>> = BTreeSet::new();
        let mut checks: Vec<(usize, Check<'_>)> = Vec::new();
        for key in &self.waiting {
            let Some(conv) = self.conversations.get(&key.conversation) else {
                continue;
            };
            if pool.free_on(&conv.channel) == 0 {
                continue;
            }
            let Some(queue) = self.queues.get(&conv.queue) else {
                continue;
            };
            let signature = (
                conv.queue.as_str(),
                conv.channel.as_str(),
                conv.skills.as_slice(),
                conv.languages.as_slice(),
            );
            if hopeless.contains(&signature) {
                continue;
            }
            let members = members
                .entry(conv.queue.as_str())
                .or_insert_with(|| pool.members_of(&conv.queue));
            checks.clear();
            let mut fewest_declines = u32::MAX;
            for &slot in members.iter() {
                let check = pool.check(slot, conv);
                if let Some(times) = check.qualified_declines() {
                    fewest_declines = fewest_declines.min(times);
                }
                checks.push((slot, check));
            }
            let cursor = cursors
                .get(conv.queue.as_str())
                .copied()
                .or(queue.last_offered.as_deref());
            let eligible = checks.iter().filter_map(|(slot, check)| match check {
                Check::Free { declines } if *declines <= fewest_declines => Some(*slot),
                _ => None,
            });
            let chosen = match queue.config.strategy {
                Strategy::LeastBusy => eligible.min_by(|&a, &b| pool.compare_least_busy(a, b)),
                Strategy::RoundRobin => pool.next_after(eligible, cursor),
            };
            let Some(chosen) = chosen else {
                // With no agent free for it at all, none is free for a conversation with the
                // same needs either, whatever its declines; capacity only shrinks in this call.
                // (Declines alone proving "nobody" would say nothing about its twins.)
                if !checks.iter().any(|(_, check)| matches!(check, Check::Free { .. })) {
                    hopeless.insert(signature);
                }
                continue;
            };
            let candidates = checks
                .iter()
                .map(|(slot, check)| Candidate {
                    agent: pool.id(*slot).to_owned(),
                    verdict: check.verdict(*slot == chosen, fewest_declines),
                })
                .collect();
            let agent = pool.id(chosen);
            events.push(Event::Offered {
                conversation: conv.id.clone(),
                agent: agent.to_owned(),
                queue: conv.queue.clone(),
                strategy: queue.config.strategy,
                at_ms: now_ms,
                expires_at_ms: expiry(now_ms, queue.config.offer_timeout_ms),
                direct: false,
                candidates,
            });
            cursors.insert(conv.queue.as_str(), agent);
            pool.take(chosen, &conv.channel);
            if pool.free_total == 0 {
                break;
            }
        }
        events
    }
}

/// What makes conversations interchangeable for dispatch: queue, channel, skills, languages.
type Signature<'a> = (&'a str, &'a str, &'a [SkillRequirement], &'a [String]);

/// One agent against one conversation, before the strategy has its say.
#[derive(Debug)]
enum Check<'a> {
    Away,
    Offline,
    MissingSkill { req: &'a SkillRequirement, level: u8 },
    Language,
    NoCapacity { load: u32, capacity: u32, declines: u32 },
    Free { declines: u32 },
}

impl Check<'_> {
    /// The agent's declines of this conversation if they count for "everyone gets a turn":
    /// online, skilled, speaking the language and working on the channel at all.
    fn qualified_declines(&self) -> Option<u32> {
        match self {
            Check::Free { declines } => Some(*declines),
            Check::NoCapacity { capacity, declines, .. } if *capacity > 0 => Some(*declines),
            _ => None,
        }
    }

    fn verdict(&self, chosen: bool, fewest_declines: u32) -> Verdict {
        match self {
            Check::Away => Verdict::Away,
            Check::Offline => Verdict::Offline,
            Check::MissingSkill { req, level } => Verdict::MissingSkill {
                skill: req.name.clone(),
                min_level: req.min_level,
                level: *level,
            },
            Check::Language => Verdict::Language,
            Check::NoCapacity { load, capacity, .. } => Verdict::NoCapacity {
                load: *load,
                capacity: *capacity,
            },
            Check::Free { .. } if chosen => Verdict::Chosen,
            Check::Free { declines } if *declines > fewest_declines => Verdict::DeclinedBefore { times: *declines },
            Check::Free { .. } => Verdict::LostTieBreak,
        }
    }
}

/// The agents during one dispatch: their state plus the offers this call has made so far,
/// which the state does not include until the caller applies them.
struct Pool<'a> {
    slots: Vec<Slot<'a>>,
    /// Channel → free places of online agents on it.
    free_by_channel: BTreeMap<&'a str, u64>,
    free_total: u64,
}

struct Slot<'a> {
    agent: &'a Agent,
    /// Offers made in this call, per channel.
    extra: Vec<(&'a str, u32)>,
    extra_total: u64,
    total_capacity: u64,
}

impl<'a> Pool<'a> {
    fn new(state: &'a Dispatcher) -> Self {
        let mut free_by_channel: BTreeMap<&str, u64> = BTreeMap::new();
        let mut free_total = 0u64;
        let slots = state
            .agents
            .values()
            .map(|agent| {
                if agent.presence == Presence::Online {
                    for (channel, &capacity) in &agent.profile.capacity {
                        let free = u64::from(capacity.saturating_sub(agent.load_on(channel)));
                        if free > 0 {
                            let entry = free_by_channel.entry(channel.as_str()).or_insert(0);
                            *entry = entry.saturating_add(free);
                            free_total = free_total.saturating_add(free);
                        }
                    }
                }
                Slot {
                    agent,
                    extra: Vec::new(),
                    extra_total: 0,
                    total_capacity: agent.profile.total_capacity(),
                }
            })
            .collect();
        Pool {
            slots,
            free_by_channel,
            free_total,
        }
    }

    fn id(&self, slot: usize) -> &'a str {
        self.slots.get(slot).map_or("", |s| s.agent.id.as_str())
    }

    fn free_on(&self, channel: &str) -> u64 {
        self.free_by_channel.get(channel).copied().unwrap_or(0)
    }

    /// The agents serving `queue`, in id order.
    fn members_of(&self, queue: &str) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|&i| self.slots.get(i).is_some_and(|s| s.agent.profile.serves(queue)))
            .collect()
    }

    fn load_on(&self, slot: &Slot<'_>, channel: &str) -> u32 {
        let extra = slot.extra.iter().find(|(c, _)| *c == channel).map_or(0, |(_, n)| *n);
        slot.agent.load_on(channel).saturating_add(extra)
    }

    fn check(&self, slot: usize, conv: &'a Conversation) -> Check<'a> {
        let Some(s) = self.slots.get(slot) else {
            return Check::Offline;
        };
        let profile = &s.agent.profile;
        match s.agent.presence {
            Presence::Online => {}
            Presence::Away => return Check::Away,
            Presence::Offline => return Check::Offline,
        }
        if let Some((req, level)) = profile.missing_skill(&conv.skills) {
            return Check::MissingSkill { req, level };
        }
        if !profile.speaks_any(&conv.languages) {
            return Check::Language;
        }
        let declines = conv.declines.get(&s.agent.id).copied().unwrap_or(0);
        let capacity = profile.capacity_on(&conv.channel);
        let load = self.load_on(s, &conv.channel);
        if load >= capacity {
            return Check::NoCapacity {
                load,
                capacity,
                declines,
            };
        }
        Check::Free { declines }
    }

    /// Least busy first: the smaller share of total capacity in use, then the longer idle
    /// (never assigned counts as idle forever), then the smaller id.
    fn compare_least_busy(&self, a: usize, b: usize) -> Ordering {
        let (Some(a), Some(b)) = (self.slots.get(a), self.slots.get(b)) else {
            return Ordering::Equal;
        };
        let load = |s: &Slot<'_>| u128::from(s.agent.total_load().saturating_add(s.extra_total));
        // Cross-multiplied so the shares compare exactly, without floating point.
        let share_a = load(a).saturating_mul(u128::from(b.total_capacity));
        let share_b = load(b).saturating_mul(u128::from(a.total_capacity));
        share_a
            .cmp(&share_b)
            .then_with(|| a.agent.last_activity_ms.cmp(&b.agent.last_activity_ms))
            .then_with(|| a.agent.id.cmp(&b.agent.id))
    }

    /// Round robin: the first eligible agent whose id comes after `cursor`, else the first.
    fn next_after(&self, eligible: impl Iterator<Item = usize>, cursor: Option<&str>) -> Option<usize> {
        let mut first = None;
        for slot in eligible {
            first.get_or_insert(slot);
            if cursor.is_none_or(|c| self.id(slot) > c) {
                return Some(slot);
            }
        }
        first
    }

    /// Records an offer to `slot` on `channel` made in this call.
    fn take(&mut self, slot: usize, channel: &'a str) {
        if let Some(s) = self.slots.get_mut(slot) {
            match s.extra.iter_mut().find(|(c, _)| *c == channel) {
                Some((_, n)) => *n = n.saturating_add(1),
                None => s.extra.push((channel, 1)),
            }
            s.extra_total = s.extra_total.saturating_add(1);
        }
        if let Some(free) = self.free_by_channel.get_mut(channel) {
            *free = free.saturating_sub(1);
        }
        self.free_total = self.free_total.saturating_sub(1);
    }
}
