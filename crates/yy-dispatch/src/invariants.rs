//! A full check of the state's invariants, for tests and for a service that wants to verify a
//! state it rebuilt or read from a snapshot.

use std::collections::BTreeMap;

use crate::state::{Dispatcher, Status, THROUGHPUT_WINDOW};

impl Dispatcher {
    /// Every broken invariant, described; empty when the state is sound. Checks:
    ///
    /// - **capacity**: on every channel where an agent has a pending offer, their assigned plus
    ///   offered conversations fit their capacity (only a capacity lowered below the agent's
    ///   assigned conversations can leave it exceeded, and then without offers on that channel);
    /// - **one agent at a time**: each offered or assigned conversation is listed by exactly the
    ///   one agent its status names, as offered or as assigned, and by nobody else;
    /// - **indices**: a conversation is in its queue's waiting order and in the global one
    ///   exactly when waiting; each pending offer has one expiry entry; loads equal the counts
    ///   of conversations per channel; queues keep at most [`THROUGHPUT_WINDOW`] times;
    /// - **references**: every conversation's queue exists.
    ///
    /// Cost: O(state), meant for tests and checks, not for every command.
    pub fn violations(&self) -> Vec<String> {
        let mut found = Vec::new();
        let mut waiting = 0usize;
        let mut offered = 0usize;
        // Agent → (channel → (assigned, offered)) recounted from the conversations.
        let mut counts: BTreeMap<&str, BTreeMap<&str, (u32, u32)>> = BTreeMap::new();
        for conv in self.conversations.values() {
            let id = &conv.id;
            let Some(queue) = self.queues.get(&conv.queue) else {
                found.push(format!("conversation {id} is in unknown queue {}", conv.queue));
                continue;
            };
            let key = conv.wait_key();
            let in_queue = queue.waiting.contains(&key);
            let in_global = self.waiting.contains(&key);
            let is_waiting = conv.status == Status::Waiting;
            if in_queue != is_waiting || in_global != is_waiting {
                found.push(format!(
                    "conversation {id}: waiting {is_waiting}, in queue order {in_queue}, in global order {in_global}"
                ));
            }
            match &conv.status {
                Status::Waiting => waiting += 1,
                Status::Offered {
                    agent, expires_at_ms, ..
                } => {
                    offered += 1;
                    if !self.expiries.contains(&(*expires_at_ms, id.clone())) {
                        found.push(format!("conversation {id}: its offer has no expiry entry"));
                    }
                    match self.agents.get(agent) {
                        Some(a) if a.offered.contains(id) && !a.assigned.contains(id) => {}
                        _ => found.push(format!(
                            "conversation {id} is offered to {agent}, who does not list it so"
                        )),
                    }
                    let entry = counts.entry(agent).or_default().entry(&conv.channel).or_default();
                    entry.1 = entry.1.saturating_add(1);
                }
                Status::Assigned { agent, .. } => {
                    match self.agents.get(agent) {
                        Some(a) if a.assigned.contains(id) && !a.offered.contains(id) => {}
                        _ => found.push(format!(
                            "conversation {id} is assigned to {agent}, who does not list it so"
                        )),
                    }
                    let entry = counts.entry(agent).or_default().entry(&conv.channel).or_default();
                    entry.0 = entry.0.saturating_add(1);
                }
            }
        }
        let queued: usize = self.queues.values().map(|q| q.waiting.len()).sum();
        if self.waiting.len() != waiting || queued != waiting {
            found.push(format!(
                "the global order holds {} conversations, the queues {queued}, {waiting} are waiting",
                self.waiting.len()
            ));
        }
        if self.expiries.len() != offered {
            found.push(format!(
                "{} expiry entries for {offered} pending offers",
                self.expiries.len()
            ));
        }
        for agent in self.agents.values() {
            for id in agent.assigned.iter().chain(&agent.offered) {
                if self.conversations.get(id).and_then(|c| c.status.agent()) != Some(agent.id.as_str()) {
                    found.push(format!(
                        "agent {} lists conversation {id}, which is not theirs",
                        agent.id
                    ));
                }
            }
            let recount = counts.get(agent.id.as_str());
            let recounted_load: BTreeMap<&str, u32> = recount
                .map(|channels| {
                    channels
                        .iter()
                        .map(|(channel, (a, o))| (*channel, a.saturating_add(*o)))
                        .collect()
                })
                .unwrap_or_default();
            let load: BTreeMap<&str, u32> = agent.load.iter().map(|(c, l)| (c.as_str(), *l)).collect();
            if load != recounted_load {
                found.push(format!(
                    "agent {}: load {load:?}, but holds {recounted_load:?}",
                    agent.id
                ));
            }
            for (channel, (assigned, offers)) in recount.into_iter().flatten() {
                let capacity = agent.profile.capacity_on(channel);
                if *offers > 0 && assigned.saturating_add(*offers) > capacity {
                    found.push(format!(
                        "agent {} on {channel}: {assigned} assigned + {offers} offered exceed capacity {capacity}",
                        agent.id
                    ));
                }
            }
        }
        for queue in self.queues.values() {
            if queue.recent_assignments.len() > THROUGHPUT_WINDOW {
                found.push(format!("queue {} keeps too many assignment times", queue.name));
            }
        }
        found
    }
}
