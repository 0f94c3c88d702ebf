//! Sends ticket changes to external ticket systems, from the outbox in the log.
//!
//! Every local change records its syncs (`TicketSyncScheduled`) in the same commit, before
//! anything is sent. This worker reads the pending ones from the state, one at a time per ticket
//! and connector in the order they were made, and records each attempt's outcome as an event.
//! Its timers are the pending syncs' due times, so a restart resumes exactly where the log says.
//!
//! Exactly one external ticket per ticket: the create carries the sync id as its
//! `Idempotency-Key`, and a create that may have reached the system before (an earlier failed
//! attempt, or one made before this process started) first searches the system for the ticket's
//! id and records what it finds instead of creating again.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use yy_proto::ticket::v1 as pb;

use crate::connectors::{CallError, Gateway, text_at};
use crate::domain::{Command, Operation, PendingSync, Ticket, timestamp};
use crate::health::Health;
use crate::state::{Connector, Store, now_ms};

/// How attempts are spaced.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub base_ms: u64,
    pub max_ms: u64,
    pub concurrency: usize,
}

impl Retry {
    /// The delay after the `attempt`th failure: doubling from the base, capped.
    pub fn delay_ms(&self, attempt: u32) -> u64 {
        let factor = 1u64 << attempt.saturating_sub(1).min(20);
        self.base_ms.saturating_mul(factor).min(self.max_ms)
    }
}

type Key = (String, String, String);

/// The outbound worker. Cheap to clone.
#[derive(Clone)]
pub struct Outbound {
    store: Store,
    gateway: Gateway,
    health: Health,
    retry: Retry,
    wake: Arc<Notify>,
    /// When this process started: a create scheduled before may have been sent by a process
    /// that stopped before recording the outcome, so it searches first.
    started_at_ms: i64,
    /// Keys whose outcome could not be recorded (the log was unreachable): not before this time.
    held: Arc<Mutex<HashMap<Key, i64>>>,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound").finish_non_exhaustive()
    }
}

struct Due {
    tenant: String,
    ticket_id: String,
    sync: PendingSync,
}

impl Outbound {
    pub fn new(store: Store, gateway: Gateway, health: Health, retry: Retry) -> Self {
        Outbound {
            store,
            gateway,
            health,
            retry,
            wake: Arc::new(Notify::new()),
            started_at_ms: now_ms(),
            held: Arc::default(),
        }
    }

    /// Looks at the outbox now rather than at its next due time.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Runs until `shutdown`, then waits for the attempts in flight.
    pub async fn run(self, shutdown: CancellationToken) {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = self.store.follower().caught_up() => {}
        }
        let mut in_flight: HashSet<Key> = HashSet::new();
        let mut tasks: JoinSet<Key> = JoinSet::new();
        loop {
            let now = now_ms();
            let (due, next) = self.due(now, &in_flight);
            for item in due {
                if in_flight.len() >= self.retry.concurrency {
                    break;
                }
                let key = (
                    item.tenant.clone(),
                    item.ticket_id.clone(),
                    item.sync.connector_id.clone(),
                );
                in_flight.insert(key.clone());
                let worker = self.clone();
                tasks.spawn(async move {
                    worker.attempt(item).await;
                    key
                });
            }
            let sleep = next.map_or(1000, |at| (at - now).clamp(10, 1000));
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(u64::try_from(sleep).unwrap_or(1000))) => {}
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    if let Ok(key) = done {
                        in_flight.remove(&key);
                    }
                }
            }
        }
        // An attempt cut short here is resumed from the log by the next start.
        while tasks.join_next().await.is_some() {}
    }

    /// The syncs due now (the first pending one per ticket and connector), and when the next is due.
    fn due(&self, now: i64, in_flight: &HashSet<Key>) -> (Vec<Due>, Option<i64>) {
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let applied = self.store.follower().read();
        let mut due = Vec::new();
        let mut next: Option<i64> = None;
        let mut pending_total = 0;
        for (tenant_id, tenant) in &applied.state.tenants {
            for ticket in tenant.with_pending.iter().filter_map(|id| tenant.tickets.get(id)) {
                pending_total += ticket.pending.len();
                let mut seen = HashSet::new();
                for sync in &ticket.pending {
                    if !seen.insert(sync.connector_id.as_str()) {
                        continue;
                    }
                    // A disabled connector keeps its outbox until it is enabled again.
                    if tenant
                        .connectors
                        .get(&sync.connector_id)
                        .is_some_and(|c| !c.config.enabled)
                    {
                        continue;
                    }
                    let key = (tenant_id.clone(), ticket.id.clone(), sync.connector_id.clone());
                    if in_flight.contains(&key) {
                        continue;
                    }
                    let at = sync.due_at_ms.max(held.get(&key).copied().unwrap_or(0));
                    if at <= now {
                        due.push(Due {
                            tenant: tenant_id.clone(),
                            ticket_id: ticket.id.clone(),
                            sync: sync.clone(),
                        });
                    } else {
                        next = Some(next.map_or(at, |n| n.min(at)));
                    }
                }
            }
        }
        self.health.set_pending(pending_total);
        due.sort_by_key(|d| d.sync.due_at_ms);
        (due, next)
    }

    async fn attempt(&self, item: Due) {
        let Due {
            tenant,
            ticket_id,
            sync,
        } = item;
        let (ticket, connector) = self.store.read(&tenant, |t| {
            (
                t.tickets.get(&ticket_id).cloned(),
                t.connectors.get(&sync.connector_id).cloned(),
            )
        });
        let Some(ticket) = ticket else { return };
        let usable =
            connector.filter(|c| c.is_ticket_system() && c.config.ticket_system.as_ref().is_some_and(|s| s.outbound));
        let Some(connector) = usable else {
            let command = Command::SyncAbandoned {
                sync_id: sync.sync_id.clone(),
                reason: format!("connector {} was deleted or no longer sends tickets", sync.connector_id),
            };
            self.record(&tenant, &ticket_id, &sync, command).await;
            return;
        };
        let outcome = match sync.operation {
            Operation::Create => self.create(&tenant, &ticket, &connector, &sync).await,
            Operation::Update | Operation::Comment => self.change(&tenant, &ticket, &connector, &sync).await,
        };
        let command = match outcome {
            Ok(Sent::Done {
                external_id,
                reconciled,
                http_status,
            }) => Command::SyncSucceeded {
                sync_id: sync.sync_id.clone(),
                external_id,
                reconciled,
                http_status,
            },
            Ok(Sent::Abandon(reason)) => Command::SyncAbandoned {
                sync_id: sync.sync_id.clone(),
                reason,
            },
            Err(error) => {
                let delay = self.retry.delay_ms(sync.attempts + 1);
                tracing::warn!(
                    tenant, ticket = %ticket_id, connector = %sync.connector_id,
                    operation = sync.operation.as_str(), attempt = sync.attempts + 1,
                    error = %error.message, retry_in_ms = delay, "sync to an external ticket system failed"
                );
                Command::SyncFailed {
                    sync_id: sync.sync_id.clone(),
                    error: error.message,
                    http_status: error.http_status,
                    next_attempt_at_ms: now_ms().saturating_add(i64::try_from(delay).unwrap_or(i64::MAX)),
                }
            }
        };
        self.record(&tenant, &ticket_id, &sync, command).await;
    }

    async fn record(&self, tenant: &str, ticket_id: &str, sync: &PendingSync, command: Command) {
        let command_id = format!("sync-{}-{}", sync.sync_id, sync.attempts + 1);
        let result = self
            .store
            .execute(tenant, "ticket", ticket_id, &command_id, |t| {
                let ticket = t.tickets.get(ticket_id).cloned().unwrap_or_default();
                crate::domain::decide(&ticket, command.clone(), &crate::domain::Context::default())
                    .map_err(|r| crate::errors::rejected(r, ticket_id))
            })
            .await;
        let key = (tenant.to_owned(), ticket_id.to_owned(), sync.connector_id.clone());
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(_) => {
                held.remove(&key);
            }
            Err(status) => {
                tracing::warn!(%status, ticket = ticket_id, "cannot record a sync's outcome; trying again shortly");
                held.insert(key, now_ms() + 1000);
            }
        }
    }

    fn context(&self, ticket: &Ticket, connector: &Connector, sync: &PendingSync) -> Value {
        let settings = connector.config.ticket_system.clone().unwrap_or_default();
        let mapped = |map: &std::collections::HashMap<String, String>, value: &str| {
            map.get(value).cloned().unwrap_or_else(|| value.to_owned())
        };
        let comment = ticket.comments.iter().find(|c| c.id == sync.comment_id).map(|c| {
            json!({
                "id": c.id,
                "body": c.body,
                "public": c.public,
                "author_kind": c.author.kind,
                "author_id": c.author.id,
            })
        });
        json!({
            "ticket": ticket_json(ticket),
            "mapped": {
                "status": mapped(&settings.status_map, &ticket.status),
                "priority": mapped(&settings.priority_map, &ticket.priority),
            },
            "external": {"id": ticket.external.get(&connector.id)},
            "sync": {"id": sync.sync_id, "operation": sync.operation.as_str()},
            "comment": comment,
        })
    }

    async fn create(
        &self,
        tenant: &str,
        ticket: &Ticket,
        connector: &Connector,
        sync: &PendingSync,
    ) -> Result<Sent, CallError> {
        let settings = connector.config.ticket_system.clone().unwrap_or_default();
        let context = self.context(ticket, connector, sync);
        let may_exist = sync.attempts > 0 || sync.due_at_ms < self.started_at_ms;
        if let Some(search) = settings.search.as_ref().filter(|s| !s.method.is_empty())
            && may_exist
        {
            let found = self.call(tenant, connector, "search", search, &context, None).await?;
            if let Some(external_id) = text_at(&found.body, &settings.search_id_pointer) {
                tracing::info!(tenant, ticket = %ticket.id, connector = %connector.id, %external_id,
                    "found the ticket in the external system; not creating it again");
                return Ok(Sent::Done {
                    external_id,
                    reconciled: true,
                    http_status: found.http_status,
                });
            }
        }
        let template = settings.create.clone().unwrap_or_default();
        let answer = self
            .call(tenant, connector, "create", &template, &context, Some(&sync.sync_id))
            .await?;
        let external_id = text_at(&answer.body, &settings.external_id_pointer).ok_or_else(|| CallError {
            message: format!(
                "the create answer has no external id at {}",
                settings.external_id_pointer
            ),
            http_status: answer.http_status,
        })?;
        Ok(Sent::Done {
            external_id,
            reconciled: false,
            http_status: answer.http_status,
        })
    }

    async fn change(
        &self,
        tenant: &str,
        ticket: &Ticket,
        connector: &Connector,
        sync: &PendingSync,
    ) -> Result<Sent, CallError> {
        let settings = connector.config.ticket_system.clone().unwrap_or_default();
        if !ticket.external.contains_key(&connector.id) {
            return Ok(Sent::Abandon(
                "the ticket was never created in the external system".into(),
            ));
        }
        let (name, template) = match sync.operation {
            Operation::Comment => ("comment", settings.comment),
            _ => ("update", settings.update),
        };
        let Some(template) = template.filter(|t| !t.method.is_empty()) else {
            return Ok(Sent::Abandon(format!("the connector has no {name} template")));
        };
        if sync.operation == Operation::Comment && !ticket.comments.iter().any(|c| c.id == sync.comment_id) {
            return Ok(Sent::Abandon(format!("comment {} not found", sync.comment_id)));
        }
        let context = self.context(ticket, connector, sync);
        let answer = self
            .call(tenant, connector, name, &template, &context, Some(&sync.sync_id))
            .await?;
        Ok(Sent::Done {
            external_id: String::new(),
            reconciled: false,
            http_status: answer.http_status,
        })
    }

    async fn call(
        &self,
        tenant: &str,
        connector: &Connector,
        operation: &str,
        template: &pb::RequestTemplate,
        context: &Value,
        idempotency_key: Option<&str>,
    ) -> Result<crate::connectors::Answer, CallError> {
        let result = self
            .gateway
            .call(tenant, connector, template, context, idempotency_key)
            .await;
        match &result {
            Ok(_) => self.health.succeeded(tenant, &connector.id, "ticket_system", operation),
            Err(e) => self.health.failed(
                tenant,
                &connector.id,
                "ticket_system",
                operation,
                &e.message,
                e.http_status,
            ),
        }
        result
    }
}

enum Sent {
    Done {
        external_id: String,
        reconciled: bool,
        http_status: u32,
    },
    Abandon(String),
}

/// A ticket as templates see it.
pub fn ticket_json(ticket: &Ticket) -> Value {
    json!({
        "id": ticket.id,
        "subject": ticket.subject,
        "description": ticket.description,
        "priority": ticket.priority,
        "status": ticket.status,
        "assignee_id": ticket.assignee_id,
        "group": ticket.group,
        "tags": ticket.tags,
        "custom_fields": ticket.custom_fields,
        "due_at": ticket.due_at_ms.map(|ms| timestamp(ms).to_string()),
        "requester": {
            "contact_id": ticket.requester.contact_id,
            "name": ticket.requester.name,
            "email": ticket.requester.email,
        },
        "conversation_ids": ticket.conversations,
        "created_at": timestamp(ticket.created_at_ms).to_string(),
        "updated_at": timestamp(ticket.updated_at_ms).to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::Retry;

    #[test]
    fn retries_back_off_to_a_cap() {
        let retry = Retry {
            base_ms: 100,
            max_ms: 1000,
            concurrency: 1,
        };
        assert_eq!(retry.delay_ms(1), 100);
        assert_eq!(retry.delay_ms(2), 200);
        assert_eq!(retry.delay_ms(4), 800);
        assert_eq!(retry.delay_ms(5), 1000);
        assert_eq!(retry.delay_ms(u32::MAX), 1000);
    }
}
