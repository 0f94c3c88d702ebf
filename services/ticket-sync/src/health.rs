//! Each connector's health as this process saw it (calls, failures, the latest errors), and the
//! service's metrics. Pending work is not kept here: it is in the log, and the API reads it there.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use prometheus::{IntCounterVec, IntGauge, Opts, Registry};
use yy_proto::ticket::v1 as pb;

use crate::domain::timestamp;
use crate::state::now_ms;

const RECENT_ERRORS: usize = 10;

#[derive(Debug, Default, Clone)]
struct Stats {
    successes: u64,
    failures: u64,
    consecutive_failures: u32,
    last_success_ms: Option<i64>,
    last_was_failure: bool,
    recent_errors: VecDeque<pb::ConnectorError>,
    cache_hits: u64,
    inbound_refused: u64,
    kb_last_check_ms: Option<i64>,
    kb_outcome: String,
}

/// Connector health and metrics. Cheap to clone.
#[derive(Clone)]
pub struct Health {
    stats: Arc<Mutex<HashMap<(String, String), Stats>>>,
    calls: IntCounterVec,
    crm_cache: IntCounterVec,
    inbound: IntCounterVec,
    pending: IntGauge,
    kb_checks: IntCounterVec,
    kb_entries: IntCounterVec,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health").finish_non_exhaustive()
    }
}

impl Health {
    pub fn register(registry: &Registry) -> Health {
        let calls = IntCounterVec::new(
            Opts::new(
                "yy_ticket_sync_connector_calls_total",
                "Calls to external systems, by connector kind, operation and outcome (ok or error)",
            ),
            &["kind", "operation", "outcome"],
        )
        .expect("valid metric");
        let crm_cache = IntCounterVec::new(
            Opts::new(
                "yy_ticket_sync_crm_lookups_total",
                "CRM profile lookups, by source: cache, crm, or failed",
            ),
            &["source"],
        )
        .expect("valid metric");
        let inbound = IntCounterVec::new(
            Opts::new(
                "yy_ticket_sync_inbound_updates_total",
                "Inbound webhooks from external ticket systems, by outcome: applied, unchanged or refused",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        let pending = IntGauge::new(
            "yy_ticket_sync_pending_syncs",
            "Ticket changes scheduled for external systems and not sent yet",
        )
        .expect("valid metric");
        let kb_checks = IntCounterVec::new(
            Opts::new(
                "yy_ticket_sync_kb_feed_checks_total",
                "Knowledge-base feed checks and pushes, by outcome: imported, not_modified, refused or failed",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        let kb_entries = IntCounterVec::new(
            Opts::new(
                "yy_ticket_sync_kb_feed_entries_total",
                "Knowledge-base entries changed by feeds, by change: created, updated or disabled",
            ),
            &["change"],
        )
        .expect("valid metric");
        for collector in [
            Box::new(calls.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(kb_checks.clone()),
            Box::new(kb_entries.clone()),
            Box::new(crm_cache.clone()),
            Box::new(inbound.clone()),
            Box::new(pending.clone()),
        ] {
            // A second registration (a service restarted in the same process) keeps the first.
            let _ = registry.register(collector);
        }
        Health {
            stats: Arc::default(),
            calls,
            crm_cache,
            inbound,
            pending,
            kb_checks,
            kb_entries,
        }
    }

    fn with<T>(&self, tenant: &str, connector: &str, f: impl FnOnce(&mut Stats) -> T) -> T {
        let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        f(stats.entry((tenant.to_owned(), connector.to_owned())).or_default())
    }

    pub fn succeeded(&self, tenant: &str, connector: &str, kind: &str, operation: &str) {
        self.calls.with_label_values(&[kind, operation, "ok"]).inc();
        self.with(tenant, connector, |s| {
            s.successes += 1;
            s.consecutive_failures = 0;
            s.last_success_ms = Some(now_ms());
            s.last_was_failure = false;
        });
    }

    pub fn failed(&self, tenant: &str, connector: &str, kind: &str, operation: &str, message: &str, http_status: u32) {
        self.calls.with_label_values(&[kind, operation, "error"]).inc();
        self.with(tenant, connector, |s| {
            s.failures += 1;
            s.consecutive_failures = s.consecutive_failures.saturating_add(1);
            s.last_was_failure = true;
            s.recent_errors.push_front(pb::ConnectorError {
                at: Some(timestamp(now_ms())),
                operation: operation.to_owned(),
                message: message.to_owned(),
                http_status,
            });
            s.recent_errors.truncate(RECENT_ERRORS);
        });
    }

    pub fn cache_hit(&self, tenant: &str, connector: &str) {
        self.crm_cache.with_label_values(&["cache"]).inc();
        self.with(tenant, connector, |s| s.cache_hits += 1);
    }

    pub fn crm_lookup(&self, ok: bool) {
        self.crm_cache
            .with_label_values(&[if ok { "crm" } else { "failed" }])
            .inc();
    }

    pub fn inbound(&self, tenant: &str, connector: &str, outcome: &'static str, error: Option<&str>) {
        self.inbound.with_label_values(&[outcome]).inc();
        if let Some(message) = error {
            self.with(tenant, connector, |s| {
                s.inbound_refused += 1;
                s.recent_errors.push_front(pb::ConnectorError {
                    at: Some(timestamp(now_ms())),
                    operation: "inbound".into(),
                    message: message.to_owned(),
                    http_status: 0,
                });
                s.recent_errors.truncate(RECENT_ERRORS);
            });
        }
    }

    /// Records a feed check's outcome (see `KbFeedHealth.last_outcome`).
    pub fn kb_checked(&self, tenant: &str, connector: &str, outcome: &'static str) {
        self.kb_checks.with_label_values(&[outcome]).inc();
        self.with(tenant, connector, |s| {
            s.kb_last_check_ms = Some(now_ms());
            outcome.clone_into(&mut s.kb_outcome);
        });
    }

    pub fn kb_changed(&self, created: u32, updated: u32, disabled: u32) {
        for (change, n) in [("created", created), ("updated", updated), ("disabled", disabled)] {
            self.kb_entries.with_label_values(&[change]).inc_by(u64::from(n));
        }
    }

    /// The last feed check: when, and its outcome.
    pub fn kb_last(&self, tenant: &str, connector: &str) -> (Option<i64>, String) {
        self.with(tenant, connector, |s| (s.kb_last_check_ms, s.kb_outcome.clone()))
    }

    pub fn set_pending(&self, pending: usize) {
        self.pending.set(i64::try_from(pending).unwrap_or(i64::MAX));
    }

    pub fn report(&self, tenant: &str, connector: &str, enabled: bool, pending_syncs: u32) -> pb::ConnectorHealth {
        let s = self.with(tenant, connector, |s| s.clone());
        let state = if !enabled {
            "disabled"
        } else if s.last_was_failure {
            "failing"
        } else if s.successes > 0 {
            "ok"
        } else {
            "idle"
        };
        pb::ConnectorHealth {
            connector_id: connector.to_owned(),
            state: state.into(),
            successes: s.successes,
            failures: s.failures,
            consecutive_failures: s.consecutive_failures,
            last_success_at: s.last_success_ms.map(timestamp),
            recent_errors: s.recent_errors.into_iter().collect(),
            pending_syncs,
            cache_hits: s.cache_hits,
            inbound_refused: s.inbound_refused,
            kb_feed: None,
        }
    }
}
