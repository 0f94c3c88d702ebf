//! Assigning waiting conversations to human agents.
//!
//! A [`Dispatcher`] holds the agents, the queues and the conversations waiting for, offered to
//! or assigned to an agent. It is pure and synchronous: no IO, no clock (every command takes
//! `now_ms`, milliseconds since the epoch), no randomness. Commands take `&self`, check the
//! request and return the [`Event`]s to record, or a [`Rejection`]; [`Dispatcher::apply`] folds
//! an event into the state. The routing service records the events, then applies them, and
//! rebuilds the same state from its log with [`Dispatcher::replay`] (or from a serde snapshot).
//!
//! # The model
//!
//! **Agents** have a profile ([`AgentProfile`]): skills with levels 1–5, languages, a capacity
//! per channel (`web: 3, email: 5`; a channel that is absent is one they do not work on), and
//! the queues they serve (none listed: every queue). Their presence is online, away or offline
//! (new agents start offline). Their *load* on a channel counts the conversations assigned to
//! them there plus those offered and not yet answered, so an agent cannot be offered more than
//! they could accept. They remember when a conversation was last assigned to or released by
//! them, for the least-busy tie-break.
//!
//! **Queues** have a [`Strategy`] — least busy (smallest share of total capacity in use, then
//! longest idle, then agent id) or round robin (the next agent by id after the one last offered
//! to) — an offer timeout, and SLA targets carried for the service.
//!
//! **Conversations** wait in one queue with a priority, a channel, required skills (name and
//! minimum level) and acceptable languages (an agent must speak one; none listed: any). Waiting
//! conversations are ordered by priority (higher first), enqueue time (earlier first), then id;
//! the order is total, so every replay serves them alike. A conversation that is offered leaves
//! the order; when the offer is rejected, expires or is withdrawn it returns *to the same place*
//! (its key is unchanged), not to the end.
//!
//! # Lifecycle
//!
//! ```text
//! enqueue ─▶ Waiting ──dispatch──▶ Offered ──accept──▶ Assigned ──release / remove──▶ (gone)
//!              ▲                      │                    │
//!              └──reject / expire / withdraw               │
//!              └──────────── transfer to a queue ◀─────────┘
//! ```
//!
//! | command | records | refused when |
//! |---|---|---|
//! | [`register_agent`](Dispatcher::register_agent) | `agent_registered` | invalid, exists |
//! | [`update_agent`](Dispatcher::update_agent) | `offer_withdrawn`* (offers that no longer fit), `agent_updated` | invalid, unknown |
//! | [`set_presence`](Dispatcher::set_presence) | `offer_withdrawn`* (when leaving online), `presence_changed` | unknown |
//! | [`configure_queue`](Dispatcher::configure_queue) | `queue_configured` | invalid |
//! | [`enqueue`](Dispatcher::enqueue) | `enqueued` | invalid, unknown queue, already queued |
//! | [`set_priority`](Dispatcher::set_priority) | `priority_changed` | unknown |
//! | [`dispatch`](Dispatcher::dispatch) | `offered`* | never |
//! | [`accept`](Dispatcher::accept) | `assigned` | not offered to that agent |
//! | [`reject`](Dispatcher::reject) | `offer_rejected` | not offered to that agent |
//! | [`offer_expired`](Dispatcher::offer_expired) | `offer_expired` (nothing if stale or early) | never |
//! | [`transfer`](Dispatcher::transfer) | `transferred`, + `offered` (direct) to an agent | unknown, agent unavailable |
//! | [`release`](Dispatcher::release) | `released` | not assigned to that agent |
//! | [`remove`](Dispatcher::remove) | `removed` (nothing if unknown) | never |
//!
//! Commands that change nothing (the same presence, profile, settings or priority; accepting
//! an offer already accepted) record nothing.
//!
//! # Dispatch
//!
//! [`Dispatcher::dispatch`] walks the waiting conversations of all queues in serving order and
//! offers each to the best *eligible* agent serving its queue: online, every required skill at
//! the required level, one of its languages, free capacity on its channel. An agent who
//! rejected or let expire an offer of this conversation is passed over while another agent who
//! qualifies has declined it fewer times — qualifies meaning online, skilled, speaking the
//! language and working on the channel, even if momentarily full. So everyone gets a turn
//! before anyone gets a second one, and a conversation may wait for a busy untried agent rather
//! than go back to one who just turned it down. When everyone qualified has declined equally
//! often, the round starts again. A transfer to another queue starts the count afresh.
//!
//! Each `offered` event explains the decision: for every agent serving the queue, in id order,
//! a [`Verdict`] — chosen, lost the tie-break, declined before, away, offline, missing skill
//! (which, needed and actual level), language, or no capacity (load and capacity on the
//! channel). It is compact JSON, a few dozen bytes per agent.
//!
//! # Position and estimated wait
//!
//! [`Dispatcher::position`] gives a waiting conversation's place in its queue (1 is next) and
//! an estimate from the queue's recent pace: each queue keeps the times of its last
//! [`THROUGHPUT_WINDOW`] assignments (in the state, so it is rebuilt with it), and the estimate
//! is `position × (now − oldest of them) / their number`, in seconds rounded up. Measuring up
//! to `now` makes a queue that stopped assigning look slower the longer it stays stopped.
//! Without any assignment yet the estimate is `None`.
//!
//! # Invariants
//!
//! Documented on [`Dispatcher::violations`], which checks them all, and tested after every step
//! of randomized simulations:
//!
//! 1. **Capacity.** No offer takes an agent above their capacity on a channel: where an agent
//!    has a pending offer, assigned plus offered fit. (Lowering a capacity below the
//!    conversations an agent already has leaves those assigned; the agent gets no offer on that
//!    channel until below it again.)
//! 2. **One agent at a time.** A conversation is offered to at most one agent, never offered
//!    and assigned at once, and assigned at most once: its single [`Status`] names the agent,
//!    and only that agent lists it.
//! 3. **Nobody idles past a waiting conversation.** After the events of
//!    [`Dispatcher::dispatch`] are applied, no waiting conversation has an eligible agent (in
//!    the sense above, including the turn rule), so dispatching again offers nothing.
//! 4. **Replay.** [`Dispatcher::replay`] of the recorded events, and a snapshot read back,
//!    equal the live state.
//!
//! Commands never panic, whatever their input; `apply` ignores an event that does not fit the
//! state rather than corrupting it.
//!
//! # Wiring it into the routing service
//!
//! - Keep one `Dispatcher` per tenant and decide its commands one at a time: offers depend on
//!   the whole tenant's agents and queues.
//! - For each request: run the command, record its events, apply them; then call
//!   [`Dispatcher::dispatch`] with the same `now_ms`, record and apply its offers (they may go
//!   in the same commit). Anything can free or fill capacity — presence, profiles, queue
//!   settings, accept, reject, expiry, release, remove, transfer, enqueue — so dispatch after
//!   each, or after a batch.
//! - Timers: after recording an `offered` event, arm a timer for `expires_at_ms` that calls
//!   [`Dispatcher::offer_expired`] (then dispatch). Stale or early timers record nothing, so
//!   they need not be cancelled. After a restart, re-arm from [`Dispatcher::pending_offers`]
//!   (overdue ones fire at once); [`Dispatcher::next_expiry`] is enough for a single timer.
//! - Call [`Dispatcher::remove`] whenever a conversation is resolved or handed back to the bot,
//!   and [`Dispatcher::release`] when an agent finishes one. An agent who goes offline keeps
//!   their assigned conversations; moving them is a [`Dispatcher::transfer`] to a queue, the
//!   service's policy.
//! - Snapshots: `Dispatcher` is `Serialize`/`Deserialize`; indices are rebuilt on reading and a
//!   snapshot that does not hold together is refused.

mod command;
mod dispatch;
mod error;
mod event;
mod invariants;
mod model;
mod state;

pub use error::Rejection;
pub use event::{Candidate, Event, Verdict, WithdrawReason};
pub use model::{
    AgentProfile, MAX_CAPACITY, MAX_ENTRIES, MAX_NAME_BYTES, MAX_OFFER_TIMEOUT_MS, MAX_SKILL_LEVEL, NewConversation,
    Presence, QueueConfig, SkillRequirement, Sla, Strategy, TransferTarget,
};
pub use state::{Agent, Conversation, Dispatcher, Queue, QueuePosition, Status, THROUGHPUT_WINDOW};
