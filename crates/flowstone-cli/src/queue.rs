//! The durable queue from the command line's side: the check that one is configured, and the
//! note that queued work waits for a worker.

use flowstone::{FlowStone, Strategy};

use crate::CliError;

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
