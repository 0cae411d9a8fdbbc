//! Capabilities: what an executor can honour, so options it cannot are refused, not dropped.
//!
//! Each run option maps to the capability it needs ([`Capability::for_option`]); the API checks a
//! run's options against the chosen executor before anything runs, in one place for every
//! executor, custom ones included.

use std::fmt;

/// One thing an executor can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Capability {
    /// Runs in the caller's task and returns when done.
    Immediate,
    /// Runs on other tasks; the caller may go on.
    Async,
    /// Runs several jobs at once.
    Parallel,
    /// Honours `scheduled_at`.
    Scheduled,
    /// Honours a named `queue`.
    Queues,
    /// Honours `priority`.
    Priority,
    /// Honours `max_attempts` (retries).
    Retries,
    /// Jobs survive a restart.
    Persistent,
    /// Jobs run on other machines.
    Distributed,
    /// Honours a `timeout`.
    Timeout,
    /// Reports `status` of scheduled jobs.
    Status,
    /// Can `cancel` jobs.
    Cancel,
    /// Honours `verbose`, `pause_between` and `on_step`.
    Stepping,
    /// Runs a graph of jobs ([`Executor::execute_graph`](super::Executor::execute_graph)),
    /// releasing each job itself when the jobs it waits for have succeeded.
    Graphs,
}

impl Capability {
    /// Every capability, for display.
    pub const ALL: [Capability; 14] = [
        Capability::Immediate,
        Capability::Async,
        Capability::Parallel,
        Capability::Scheduled,
        Capability::Queues,
        Capability::Priority,
        Capability::Retries,
        Capability::Persistent,
        Capability::Distributed,
        Capability::Timeout,
        Capability::Status,
        Capability::Cancel,
        Capability::Stepping,
        Capability::Graphs,
    ];

    fn bit(self) -> u32 {
        1 << (self as u32)
    }

    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Immediate => "immediate",
            Capability::Async => "async",
            Capability::Parallel => "parallel",
            Capability::Scheduled => "scheduled",
            Capability::Queues => "queues",
            Capability::Priority => "priority",
            Capability::Retries => "retries",
            Capability::Persistent => "persistent",
            Capability::Distributed => "distributed",
            Capability::Timeout => "timeout",
            Capability::Status => "status",
            Capability::Cancel => "cancel",
            Capability::Stepping => "stepping",
            Capability::Graphs => "graphs",
        }
    }
}

/// A set of capabilities.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities(u32);

impl Capabilities {
    /// The empty set.
    pub const NONE: Capabilities = Capabilities(0);

    /// A set of `caps`.
    pub fn of(caps: &[Capability]) -> Self {
        Capabilities(caps.iter().fold(0, |acc, c| acc | c.bit()))
    }

    /// This set plus `cap`.
    pub fn with(self, cap: Capability) -> Self {
        Capabilities(self.0 | cap.bit())
    }

    /// This set without `cap`.
    pub fn without(self, cap: Capability) -> Self {
        Capabilities(self.0 & !cap.bit())
    }

    /// Whether `cap` is in the set.
    pub fn has(self, cap: Capability) -> bool {
        self.0 & cap.bit() != 0
    }

    /// The capabilities in the set.
    pub fn iter(self) -> impl Iterator<Item = Capability> {
        Capability::ALL.into_iter().filter(move |c| self.has(*c))
    }
}

impl fmt::Debug for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(Capability::as_str))
            .finish()
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
