//! A projection every service can keep of the contexts it owns before it has a domain model of
//! them: how many commits and events each tenant has, so a rebuild's result can be seen and checked.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use yy_eventlog::{Projection, Record, Snapshottable};

/// Commits and events per tenant of one log context.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogTally {
    /// Per tenant id.
    pub tenants: BTreeMap<String, TenantTally>,
}

/// One tenant's share of a context.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantTally {
    /// Commits (commands) stored.
    pub commits: u64,
    /// Events in those commits.
    pub events: u64,
}

impl Projection for LogTally {
    fn apply(&mut self, record: &Record) {
        let tally = self.tenants.entry(record.tenant_id.clone()).or_default();
        tally.commits += 1;
        tally.events += record.commit.events.len() as u64;
    }
}

impl Snapshottable for LogTally {
    const STATE_VERSION: u32 = 1;

    fn encode(&self) -> Vec<u8> {
        // Serializing a map of strings and integers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    fn decode(bytes: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }
}
