//! A client's feed: the tail of the log it asked for, as public events each with the cursor that
//! resumes right after it.

use std::collections::VecDeque;

use futures::{Stream, StreamExt};
use yy_eventlog::{Record, Tail, TailFilter, TailPosition};
use yy_events::{PublicEvent, TypeFilter, public_event};

/// One public event and the cursor that resumes right after it.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    /// The resume cursor: a [`TailPosition`] formatted for the feed's filter.
    pub cursor: String,
    /// The event.
    pub event: PublicEvent,
}

/// The public events of `tail` that pass `types`, in tail order.
///
/// Cursors are exact per event: a commit holds several events, and the cursor of one in the middle
/// resumes with the next, so a client that resumes gets every event it has not seen, once.
pub(crate) fn deliveries(tail: Tail, filter: TailFilter, types: TypeFilter) -> impl Stream<Item = Delivery> + Send {
    let feed = Feed {
        position: tail.start().clone(),
        tail,
        filter,
        types,
        pending: VecDeque::new(),
    };
    futures::stream::unfold(feed, |mut feed| async move {
        loop {
            if let Some(delivery) = feed.pending.pop_front() {
                return Some((delivery, feed));
            }
            match feed.tail.next().await? {
                Ok(record) => feed.push(&record),
                Err(error) => tracing::error!(%error, "skipping a commit that cannot be decoded"),
            }
        }
    })
}

struct Feed {
    tail: Tail,
    filter: TailFilter,
    types: TypeFilter,
    /// How far the deliveries handed out so far reach.
    position: TailPosition,
    /// The deliveries of the current commit not yet handed out.
    pending: VecDeque<Delivery>,
}

impl Feed {
    fn push(&mut self, record: &Record) {
        // The tail reads only the filter's subjects; this holds by construction and is checked
        // because showing one tenant another's events is the one failure that must never happen.
        if record.tenant_id != self.filter.tenant_id() {
            tracing::error!(tenant = %record.tenant_id, "a tail delivered another tenant's commit; dropped");
            return;
        }
        let events = &record.commit.events;
        for (index, envelope) in events.iter().enumerate().skip(self.position.covered(record)) {
            let Some(event) = public_event(record, envelope) else {
                continue;
            };
            if !self.types.matches(&event.event_type) {
                continue;
            }
            let cursor = self.position.after(record, index + 1).format(&self.filter);
            self.pending.push_back(Delivery { cursor, event });
        }
        self.position = self.position.after(record, events.len());
    }
}
