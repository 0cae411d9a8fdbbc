//! The durable queue from the command line's side: the check that one is configured, the note
//! that queued work waits for a worker, and the one place that says what is not wired yet.
//!
//! `jobs`, `job status`, `job cancel` and `worker` end in [`not_wired`] (exit 2) until they are
//! connected to the queue (`fs.queue()`, `fs.worker()`).

use flowstone::{FlowStone, Strategy};

use crate::CliError;

/// The error for a queue command this build does not offer yet.
pub(crate) fn not_wired(what: &str) -> CliError {
    CliError::usage(format!(
        "{what} needs the durable queue's job table, which this command line does not reach \
         yet; not available in this build"
    ))
    .with_hint(
        "materialize and backfill run in this process with --executor sync|async|serial; \
         schedule enqueues on the queue",
    )
}

/// Ok when a queue executor is registered (a database is configured).
pub(crate) fn require_queue(fs: &FlowStone, what: &str) -> Result<(), CliError> {
    if fs.executors().contains("queue") {
        Ok(())
    } else {
        Err(CliError::usage(format!(
            "{what} needs a database-backed queue: give --database sqlite://flowstone.db (or \
             postgres://...)"
        )))
    }
}

/// Tells the person that work handed to the queue runs only when a worker takes it.
pub(crate) fn note_if_queued(fs: &FlowStone, strategy: &Strategy, globals_json: bool) {
    let queued = fs
        .executors()
        .select(strategy)
        .is_ok_and(|(name, _)| name == "queue");
    if queued && !globals_json {
        eprintln!(
            "note: the work goes through the durable queue and waits for a `worker` process \
             (same --database) to run it"
        );
    }
}
