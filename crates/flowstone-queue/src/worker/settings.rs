//! A worker's timings and limits ([`WorkerSettings`]), their defaults, and the checks that
//! reject settings that cannot work (a zero interval, a heartbeat slower than rescue, a
//! lease renewed slower than it expires), kept apart from the builder so every knob and its
//! default is read in one place.

use std::time::Duration;

use crate::error::{Error, Result};

/// Timings and limits of a worker. The defaults suit production; tests shorten them.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// How often an idle producer looks for due jobs without a signal (scheduled and
    /// retryable jobs, other SQLite processes). Default 1 s.
    pub poll_interval: Duration,
    /// How often this node records that it is alive. Default 5 s.
    pub heartbeat_interval: Duration,
    /// A node silent for this long is presumed dead and its jobs are rescued (by the lease
    /// holder, with its own value of this setting). Default 60 s.
    pub rescue_after: Duration,
    /// How often the leader looks for dead nodes' jobs, and every node for its own orphaned
    /// claims. Default 15 s.
    pub rescue_interval: Duration,
    /// How often running jobs are checked for cancellation by polling (SQLite across
    /// processes; a safety net on PostgreSQL, where NOTIFY delivers cancels). Default 1 s.
    pub cancel_poll_interval: Duration,
    /// Workers claim only the kinds they have handlers for, and record which (queue, kind)
    /// pairs they serve with every heartbeat. A job due for this long whose kind no live
    /// worker has served on its queue for this long is discarded, naming both (checked by the
    /// leader every `prune_interval`). Long enough that a rolling deploy or an outage never
    /// reaches it. Default 1 h.
    pub unserved_kind_after: Duration,
    /// Finished rows older than this are deleted; `None` keeps them. Default 7 days.
    pub prune_after: Option<Duration>,
    /// How often the leader prunes. Default 5 min.
    pub prune_interval: Duration,
    /// How long the maintenance lease ([`MAINTENANCE_LEASE`](crate::lease::MAINTENANCE_LEASE))
    /// lasts unless renewed: after a leader dies, another node takes over within this
    /// (plus one renewal interval). Default 30 s.
    pub lease_ttl: Duration,
    /// How often every node takes or renews the maintenance lease; must be well below
    /// `lease_ttl`, so one slow renewal does not lose it. Default 5 s.
    pub lease_renew_interval: Duration,
    /// Jobs a queue's producer claims beyond its free slots and keeps in a local buffer, so a
    /// busy queue is claimed (and acknowledged) in bigger batches. `None` (the default)
    /// adapts: the buffer may hold as many jobs as the producer finished in the last
    /// [`PREFETCH_WINDOW`](Self::PREFETCH_WINDOW) (100 ms), at most
    /// [`MAX_PREFETCH`](Self::MAX_PREFETCH), so quick jobs are claimed in batches of up to a
    /// hundred while slow ones are hardly buffered and stay free for other workers.
    /// `Some(n)` holds up to `n`; `Some(0)` turns it off. A buffered job is `executing` on
    /// this node: it is rescued with the node if the node dies, cancelled like a running
    /// one, and given back when the worker shuts down. It may start after a higher-priority
    /// job inserted later, by at most the buffer's size. While buffered jobs run, the acks of
    /// finished ones wait up to 5 ms to share a round trip. An idle queue's latency is
    /// unchanged: a claim takes only what is available.
    pub prefetch: Option<usize>,
    /// PostgreSQL: wait for the WAL flush when claiming. Default false: a claim is a lease,
    /// and one lost in a server crash only makes its job available again, which
    /// at-least-once delivery allows. Inserts and acks are always durable.
    pub durable_claims: bool,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(1),
            heartbeat_interval: Duration::from_secs(5),
            rescue_after: Duration::from_secs(60),
            rescue_interval: Duration::from_secs(15),
            cancel_poll_interval: Duration::from_secs(1),
            unserved_kind_after: Duration::from_secs(3600),
            prune_after: Some(Duration::from_secs(7 * 24 * 3600)),
            prune_interval: Duration::from_secs(300),
            lease_ttl: Duration::from_secs(30),
            lease_renew_interval: Duration::from_secs(5),
            durable_claims: false,
            prefetch: None,
        }
    }
}

impl WorkerSettings {
    /// The most jobs the adaptive prefetch buffers.
    pub const MAX_PREFETCH: usize = 100;
    /// The adaptive prefetch buffers what the producer finished in this long.
    pub const PREFETCH_WINDOW: std::time::Duration = std::time::Duration::from_millis(100);

    /// How many jobs a producer may hold beyond its free slots when it finished `ended` jobs
    /// in the last [`PREFETCH_WINDOW`](Self::PREFETCH_WINDOW) (see
    /// [`prefetch`](Self::prefetch)).
    pub fn prefetch_after(&self, ended: usize) -> usize {
        self.prefetch
            .unwrap_or(ended.min(Self::MAX_PREFETCH))
            .min(super::MAX_CONCURRENCY)
    }

    /// Rejects timings that cannot work, naming the setting and what to use instead.
    pub(super) fn validate(&self) -> Result<()> {
        if self.heartbeat_interval >= self.rescue_after {
            return Err(Error::InvalidConfig(format!(
                "heartbeat_interval ({:?}) must be shorter than rescue_after ({:?}), or live \
                 nodes would be rescued",
                self.heartbeat_interval, self.rescue_after
            )));
        }
        if self.lease_renew_interval >= self.lease_ttl {
            return Err(Error::InvalidConfig(format!(
                "lease_renew_interval ({:?}) must be shorter than lease_ttl ({:?}), or the \
                 leader would lose its lease between renewals",
                self.lease_renew_interval, self.lease_ttl
            )));
        }
        for (name, d) in [
            ("poll_interval", self.poll_interval),
            ("heartbeat_interval", self.heartbeat_interval),
            ("rescue_interval", self.rescue_interval),
            ("cancel_poll_interval", self.cancel_poll_interval),
            ("prune_interval", self.prune_interval),
            ("lease_renew_interval", self.lease_renew_interval),
        ] {
            if d.is_zero() {
                return Err(Error::InvalidConfig(format!(
                    "{name} is zero: use a positive duration"
                )));
            }
        }
        if self.unserved_kind_after <= self.heartbeat_interval {
            return Err(Error::InvalidConfig(format!(
                "unserved_kind_after ({:?}) must be longer than heartbeat_interval ({:?}), or \
                 jobs of served kinds would be discarded between heartbeats",
                self.unserved_kind_after, self.heartbeat_interval
            )));
        }
        Ok(())
    }
}
