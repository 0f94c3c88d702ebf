use prost::Message as _;
use yy_proto::eventlog::v1::Commit;

use crate::error::LogError;
use crate::trace::TraceContext;

/// One stored commit, as read back from the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The partition (stream) it is in.
    pub partition: u32,
    /// Its sequence in that partition's stream.
    pub sequence: u64,
    /// The tenant, from the subject.
    pub tenant_id: String,
    /// The aggregate, from the subject.
    pub aggregate_id: String,
    /// The command's events.
    pub commit: Commit,
    /// The trace context the commit was appended under.
    pub trace: Option<TraceContext>,
}

impl Record {
    /// Decodes a JetStream message stored at `sequence` in `stream` on `subject`.
    pub(crate) fn decode(
        stream: &str,
        subject: &str,
        sequence: u64,
        headers: Option<&async_nats::HeaderMap>,
        payload: &[u8],
    ) -> Result<Self, LogError> {
        let corrupt = |reason: String| LogError::Corrupt {
            stream: stream.to_owned(),
            sequence,
            reason,
        };
        // yy.evt.<context>.<partition>.<tenant>.<aggregate>
        let mut tokens = subject.split('.').skip(3);
        let (Some(partition), Some(tenant), Some(aggregate), None) =
            (tokens.next(), tokens.next(), tokens.next(), tokens.next())
        else {
            return Err(corrupt(format!("unexpected subject {subject}")));
        };
        let partition = partition
            .parse()
            .map_err(|_| corrupt(format!("unexpected subject {subject}")))?;
        let commit = Commit::decode(payload).map_err(|e| corrupt(e.to_string()))?;
        Ok(Record {
            partition,
            sequence,
            tenant_id: tenant.to_owned(),
            aggregate_id: aggregate.to_owned(),
            commit,
            trace: TraceContext::from_headers(headers),
        })
    }
}
