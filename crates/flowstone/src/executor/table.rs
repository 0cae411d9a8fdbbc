//! The job table of the in-process executors: where each job they own stands, shared by every
//! task of the process, so `status` and `cancel` work from anywhere (the Elixir original kept it
//! in the scheduling process's dictionary, invisible to every other process).
//!
//! Finished entries are kept for `status` up to a bound, oldest evicted first, so a long-lived
//! process that schedules millions of jobs does not grow without limit.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::JobStatus;
use crate::error::{Error, Result};
use crate::ids::JobId;

/// How many finished jobs an executor remembers by default.
pub const DEFAULT_FINISHED_CAPACITY: usize = 100_000;

struct Entry {
    status: JobStatus,
    cancel: CancellationToken,
    finished: CancellationToken,
}

/// Jobs of one executor by id.
pub(crate) struct JobTable {
    inner: Mutex<Tables>,
    capacity: usize,
}

#[derive(Default)]
struct Tables {
    entries: HashMap<JobId, Entry>,
    finished_order: VecDeque<JobId>,
}

impl JobTable {
    pub(crate) fn new(capacity: usize) -> Self {
        JobTable {
            inner: Mutex::new(Tables::default()),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tables> {
        // A panic while holding this lock cannot leave the maps half-updated (each update is a
        // single insert or remove), so a poisoned lock is safe to keep using.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers `id` in `status`; `cancel` is the token that stops it.
    pub(crate) fn insert(&self, id: JobId, status: JobStatus, cancel: CancellationToken) {
        self.lock().entries.insert(
            id,
            Entry {
                status,
                cancel,
                finished: CancellationToken::new(),
            },
        );
    }

    /// Moves `id` to `status` (not a finished one).
    pub(crate) fn set(&self, id: JobId, status: JobStatus) {
        if let Some(entry) = self.lock().entries.get_mut(&id) {
            entry.status = status;
        }
    }

    /// Records the final `status` of `id`, wakes those waiting on it, and evicts the oldest
    /// finished entries beyond the capacity.
    pub(crate) fn finish(&self, id: JobId, status: JobStatus) {
        let mut tables = self.lock();
        if let Some(entry) = tables.entries.get_mut(&id) {
            entry.status = status;
            entry.finished.cancel();
            tables.finished_order.push_back(id);
        }
        while tables.finished_order.len() > self.capacity {
            if let Some(old) = tables.finished_order.pop_front() {
                tables.entries.remove(&old);
            }
        }
    }

    /// Forgets `id` (a job whose caller already has its result).
    pub(crate) fn remove(&self, id: JobId) {
        let mut tables = self.lock();
        if tables.entries.remove(&id).is_some() {
            tables.finished_order.retain(|j| *j != id);
        }
    }

    /// Where `id` stands.
    pub(crate) fn status(&self, id: JobId, executor: &str) -> Result<JobStatus> {
        self.lock()
            .entries
            .get(&id)
            .map(|e| e.status.clone())
            .ok_or_else(|| not_found(id, executor))
    }

    /// Cancels `id` and waits (up to `wait`) until its work has stopped. A job that is already
    /// cancelled is left as it is (Ok); one that completed or failed is an `AlreadyFinished`
    /// error naming its state.
    pub(crate) async fn cancel(&self, id: JobId, executor: &str, wait: Duration) -> Result<()> {
        let finished = {
            let tables = self.lock();
            let entry = tables
                .entries
                .get(&id)
                .ok_or_else(|| not_found(id, executor))?;
            match &entry.status {
                JobStatus::Cancelled => return Ok(()),
                JobStatus::Completed(_) => return Err(Error::already_finished(id, "completed")),
                JobStatus::Failed(_) => return Err(Error::already_finished(id, "failed")),
                _ => {}
            }
            entry.cancel.cancel();
            entry.finished.clone()
        };
        tokio::time::timeout(wait, finished.cancelled())
            .await
            .map_err(|_| {
                Error::new(
                    crate::error::ErrorKind::Cancelled,
                    format!(
                        "job {id} was signalled to cancel but had not stopped after {wait:?}; \
                         its asset may ignore cancellation in blocking code"
                    ),
                )
            })
    }
}

fn not_found(id: JobId, executor: &str) -> Error {
    Error::not_found(format!(
        "job {id} is not known to executor '{executor}' (it ran in another process, or finished \
         long enough ago to be forgotten)"
    ))
}
