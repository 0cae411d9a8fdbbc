//! The one place that says the durable queue is not wired into this build yet.
//!
//! `schedule --at/--queue/--priority`, `jobs`, `job status`, `job cancel` and `worker` need a
//! database-backed queue. Until `Builder::database(url)` registers the queue executor (and the
//! API offers job lookup by id, job listing and `fs.worker()`), they end here with exit 2.

use flowstone::FlowStone;

use crate::CliError;

/// The error for a feature that needs the durable queue.
pub(crate) fn needs_queue(what: &str) -> CliError {
    CliError::usage(format!(
        "{what} needs a database-backed queue (`--database sqlite://...`); not available in \
         this build yet"
    ))
    .with_hint(
        "materialize and backfill run in this process with --executor sync|async|serial; \
         they need no queue",
    )
}

/// Ok when a queue executor is registered; the [`needs_queue`] error otherwise.
pub(crate) fn require_queue(fs: &FlowStone, what: &str) -> Result<(), CliError> {
    if fs.executors().contains("queue") {
        Ok(())
    } else {
        Err(needs_queue(what))
    }
}
