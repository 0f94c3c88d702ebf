use crate::error::LogError;

/// A bounded context of the log, such as `conv`: the unit of stream ownership and replay.
///
/// The name is lowercase ASCII letters only; it appears in stream names (`YY_CONV_3`) and subjects
/// (`yy.evt.conv.3.…`), which never change once data exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LogContext {
    name: &'static str,
    keep_forever: bool,
}

impl LogContext {
    /// Identity and access: tenants, API keys. Kept forever, whatever `max_age_secs` says:
    /// losing a tenant's history would lose the tenant.
    pub const IAM: LogContext = LogContext::new("iam").kept_forever();
    /// The audit trail of every state change. Kept forever.
    pub const AUDIT: LogContext = LogContext::new("audit").kept_forever();
    /// Conversations, contacts and messages.
    pub const CONV: LogContext = LogContext::new("conv");
    /// Routing decisions, agents and queues.
    pub const ROUTING: LogContext = LogContext::new("routing");
    /// Tickets and connector state.
    pub const TICKET: LogContext = LogContext::new("ticket");
    /// The knowledge base.
    pub const KB: LogContext = LogContext::new("kb");
    /// Webhook endpoints and deliveries.
    pub const WEBHOOK: LogContext = LogContext::new("webhook");

    /// A context with another name; `name` must be lowercase ASCII letters.
    ///
    /// # Panics
    /// At compile time (in a `const`) or at once otherwise, when the name has other characters.
    pub const fn new(name: &'static str) -> Self {
        let bytes = name.as_bytes();
        assert!(!bytes.is_empty(), "a log context needs a name");
        let mut i = 0;
        while i < bytes.len() {
            assert!(bytes[i].is_ascii_lowercase(), "log context names are lowercase letters");
            i += 1;
        }
        LogContext {
            name,
            keep_forever: false,
        }
    }

    /// The same context, exempt from `max_age_secs`: its events are never expired.
    pub const fn kept_forever(self) -> Self {
        LogContext {
            keep_forever: true,
            ..self
        }
    }

    /// True when the context's events are never expired.
    pub fn is_kept_forever(&self) -> bool {
        self.keep_forever
    }

    /// The context's name, such as `conv`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The stream of one partition, such as `YY_CONV_3`.
    pub fn stream(&self, partition: u32) -> String {
        format!("YY_{}_{partition}", self.name.to_ascii_uppercase())
    }

    /// The subject filter that captures every partition of the context.
    pub fn all_subjects(&self) -> String {
        format!("yy.evt.{}.>", self.name)
    }

    /// The subjects one partition stream captures.
    pub fn partition_subjects(&self, partition: u32) -> String {
        format!("yy.evt.{}.{partition}.>", self.name)
    }

    /// The subject of one aggregate.
    pub fn subject(&self, partition: u32, tenant: &str, aggregate_id: &str) -> String {
        format!("yy.evt.{}.{partition}.{tenant}.{aggregate_id}", self.name)
    }
}

/// The partition an aggregate lives in: FNV-1a (64 bit) of its id, modulo the partition count.
///
/// FNV-1a is fixed forever here: changing the function would move aggregates between partitions
/// and split their histories.
pub fn partition_of(aggregate_id: &str, partitions: u32) -> u32 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = aggregate_id
        .bytes()
        .fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME));
    (hash % u64::from(partitions.max(1))) as u32
}

/// Checks that a tenant or aggregate id can be one token of a subject: 1 to 128 characters of
/// ASCII letters, digits, `_` and `-`.
pub fn validate_token(kind: &'static str, value: &str) -> Result<(), LogError> {
    let ok = !value.is_empty()
        && value.len() <= 128
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(LogError::InvalidId {
            kind,
            value: value.chars().take(140).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_is_stable_and_in_range() {
        // Pinned values: a change here would move existing aggregates to other partitions.
        assert_eq!(partition_of("conv_1", 8), partition_of("conv_1", 8));
        assert_eq!(partition_of("", 8), (0xcbf2_9ce4_8422_2325_u64 % 8) as u32);
        for i in 0..1000 {
            assert!(partition_of(&format!("conv_{i}"), 8) < 8);
        }
    }

    #[test]
    fn partitions_spread_aggregates() {
        let mut counts = [0u32; 8];
        for i in 0..8000 {
            counts[partition_of(&format!("conv_{i:06}"), 8) as usize] += 1;
        }
        assert!(counts.iter().all(|&c| (800..1200).contains(&c)), "{counts:?}");
    }

    #[test]
    fn tokens_reject_subject_syntax() {
        assert!(validate_token("tenant", "acme-01_x").is_ok());
        for bad in ["", "a.b", "a*", ">", "a b", "名字", &"x".repeat(129)] {
            assert!(validate_token("tenant", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names() {
        assert_eq!(LogContext::CONV.stream(3), "YY_CONV_3");
        assert_eq!(LogContext::CONV.subject(3, "t1", "conv_9"), "yy.evt.conv.3.t1.conv_9");
        assert_eq!(LogContext::new("kb").partition_subjects(0), "yy.evt.kb.0.>");
    }
}
