//! Automation: what runs without anyone calling it.
//!
//! This module holds the definitions and their pure parts, which the builder checks:
//!
//! - [`Schedule`]: a cron expression in a time zone, an asset selection, and the partition
//!   each tick means (by default the time window that just closed: "yesterday" for a daily
//!   asset at 00:05). [`Schedule::ticks_after`] and [`Schedule::preview`] answer when it
//!   fires and what it targets, with the daylight-saving rules written on [`Schedule`].
//!
//! - [`AutomationStore`]: whether each schedule is on, persisted (memory, SQLite,
//!   PostgreSQL) and shared by every process; the definition's default until someone flips it.
//!
//! Evaluating them in the workers (one leader at a time, launches keyed by schedule and tick,
//! tick records, on/off state), sensors and asset automation conditions build on these.

mod schedule;
mod state;

pub use schedule::{Schedule, Tick, TickPartition, TickPreview};
pub use state::{AutomationStore, MemoryAutomation};
