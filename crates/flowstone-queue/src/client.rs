//! The queue as callers use it: insert (one or many in one statement), read, list, count,
//! cancel, wait for a result, prune. Workers run elsewhere ([`crate::Worker`]); this handle
//! never runs jobs.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::database::{Database, Event};
use crate::engine::{self, CancelTarget, by_engine};
use crate::error::{Error, Result};
use crate::job::{Inserted, InsertedId, Job, JobFilter, JobState, NewJob};
use crate::migrate::QUEUE_MIGRATIONS;

/// Most job ids one statement reads when following many jobs.
const IDS_PER_STATEMENT: usize = 5_000;
/// Most waited-for jobs one poll of [`Queue::wait_all`] looks at.
const POLL_WINDOW: usize = 1_000;

/// What [`Queue::wait_all`] reads next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Look {
    /// Every waited-for job (at the start, and after signals were missed).
    All,
    /// The next window of waited-for jobs (the poll).
    Poll,
    /// The jobs signals named.
    Heard,
}

/// A handle on the queue's tables in one database. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Queue {
    db: Database,
}

impl Queue {
    /// Wraps an open database.
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// Connects by URL (see [`Database::connect`]).
    pub async fn connect(url: &str) -> Result<Self> {
        Ok(Self::new(Database::connect(url).await?))
    }

    /// The database.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Applies the queue's migrations (recorded in `flowstone_migrations` under component
    /// `"queue"`); returns the versions applied now.
    pub async fn migrate(&self) -> Result<Vec<i64>> {
        QUEUE_MIGRATIONS.run(&self.db).await
    }

    /// Inserts one job. A unique job whose key an active job holds is not inserted: the
    /// holder is returned with `conflict: true`.
    pub async fn insert(&self, job: NewJob) -> Result<Inserted> {
        // A lone job's error is its own, not a batch's.
        job.validate()?;
        let ids = engine::insert_many(&self.db, std::slice::from_ref(&job)).await?;
        let first = ids
            .first()
            .copied()
            .ok_or_else(|| Error::InvalidJob("insert returned no row".into()))?;
        let job = self.get(first.id).await?;
        Ok(Inserted {
            job,
            conflict: first.conflict,
        })
    }

    /// Inserts many jobs in one transaction (statements of 5,000 jobs); ids in input order.
    /// All or nothing: an invalid job fails the batch with [`Error::InvalidBatchJob`] naming
    /// its index, a job the database rejects with [`Error::BatchRejected`] naming its
    /// index, and nothing of the batch is inserted.
    pub async fn insert_many(&self, jobs: &[NewJob]) -> Result<Vec<InsertedId>> {
        engine::insert_many(&self.db, jobs).await
    }

    /// Inserts a graph of jobs in one transaction: [`Queue::insert_many`], and each
    /// `(upstream, downstream)` edge (positions in `jobs`) makes the downstream job wait until
    /// the upstream one completes. A waiting job shows as `scheduled` (due in year 9999) until
    /// the transaction that completes its last upstream job makes it available; when an
    /// upstream job is discarded or cancelled, what waits for it is discarded (with the error
    /// [`UPSTREAM_FAILED`](crate::UPSTREAM_FAILED)) or cancelled, transitively, without
    /// running. An edge to a job that was not inserted (its unique key was held) is dropped.
    pub async fn insert_graph(
        &self,
        jobs: &[NewJob],
        edges: &[(usize, usize)],
    ) -> Result<Vec<InsertedId>> {
        engine::insert_graph(&self.db, jobs, edges).await
    }

    /// The job with this id.
    pub async fn get(&self, id: i64) -> Result<Job> {
        engine::get(&self.db, id).await?.ok_or(Error::NotFound(id))
    }

    /// The job with this id, if it exists.
    pub async fn find(&self, id: i64) -> Result<Option<Job>> {
        engine::get(&self.db, id).await
    }

    /// Jobs matching the filter, by id.
    pub async fn list(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        engine::list(&self.db, filter).await
    }

    /// Jobs of a batch, by id (up to `limit`, default 100; page with `after_id`).
    pub async fn list_batch(
        &self,
        batch: &str,
        after_id: Option<i64>,
        limit: Option<i64>,
    ) -> Result<Vec<Job>> {
        self.list(&JobFilter {
            batch: Some(batch.to_string()),
            after_id,
            limit,
            ..JobFilter::default()
        })
        .await
    }

    /// How many jobs of a batch are in each state (states with none are left out).
    pub async fn count_batch(&self, batch: &str) -> Result<Vec<(JobState, i64)>> {
        engine::count_batch(&self.db, batch).await
    }

    /// How many jobs each queue has in each state, ordered by queue then state (pairs with no
    /// jobs are left out): the queue depth a dashboard or a metrics scrape shows.
    pub async fn counts(&self) -> Result<Vec<(String, JobState, i64)>> {
        engine::count_by_queue(&self.db).await
    }

    /// Cancels a job: pending ones become `cancelled` at once; a running one too, and its
    /// node fires the handler's cancellation token. Returns the job as it is now.
    pub async fn cancel(&self, id: i64) -> Result<Job> {
        engine::cancel(&self.db, CancelTarget::Ids(&[id])).await?;
        let job = self.get(id).await?;
        match job.state {
            JobState::Completed | JobState::Discarded => Err(Error::AlreadyFinished {
                id,
                state: job.state,
            }),
            _ => Ok(job),
        }
    }

    /// The workers (node names, sorted) that work `queue` and sent a heartbeat within
    /// `within`: whether a job inserted now will be run soon. Pass the workers'
    /// `rescue_after` (60 s by default) to count a node alive exactly when the rescuer does.
    pub async fn workers_serving(&self, queue: &str, within: Duration) -> Result<Vec<String>> {
        crate::job::validate_queue_name(queue)?;
        engine::nodes_serving(&self.db, queue, within).await
    }

    /// Cancels every unfinished job of a batch (running ones are signalled); returns how
    /// many were cancelled.
    pub async fn cancel_batch(&self, batch: &str) -> Result<usize> {
        Ok(engine::cancel(&self.db, CancelTarget::Batch(batch))
            .await?
            .len())
    }

    /// Waits until the job is completed, discarded or cancelled, and returns it. Woken by
    /// the same signals as workers, with polling as a fallback (see [`Queue::wait_all`]).
    pub async fn wait(&self, id: i64, timeout: Duration) -> Result<Job> {
        let mut finished = None;
        let followed =
            tokio::time::timeout(timeout, self.wait_all(&[id], |job| finished = Some(job))).await;
        if let Some(job) = finished {
            return Ok(job);
        }
        match followed {
            Ok(Err(err)) => Err(err),
            // `wait_all` returns `Ok` only once it has handed the job over.
            Ok(Ok(())) => Err(Error::NotFound(id)),
            Err(_elapsed) => {
                let job = self.get(id).await?;
                if job.state.is_final() {
                    return Ok(job);
                }
                Err(Error::WaitTimeout {
                    id,
                    state: job.state.to_string(),
                    waited: timeout,
                })
            }
        }
    }

    /// Waits until every job in `ids` has finished (completed, discarded or cancelled),
    /// handing each to `on_finished` once, as it finishes, in no particular order. An id that
    /// names no job is an error.
    ///
    /// Woken by the signals workers send when they acknowledge (in this process; on
    /// PostgreSQL from every process, by NOTIFY), which name the finished jobs, so only those
    /// rows are read. Jobs that workers in other processes finish on SQLite are found by
    /// polling, which reads the states of up to 1,000 waited-for jobs per poll, taking them in
    /// turn, so a poll costs the same however many jobs are waited for.
    pub async fn wait_all(&self, ids: &[i64], mut on_finished: impl FnMut(Job)) -> Result<()> {
        let mut remaining: BTreeSet<i64> = ids.iter().copied().collect();
        // Subscribed before the first look, so nothing finishing in between is missed.
        let mut events = self.db.subscribe().await;
        let mut heard: Vec<i64> = Vec::new();
        let mut look = Look::All;
        let mut poll_from = i64::MIN;
        let mut next_poll = Instant::now();
        while !remaining.is_empty() {
            let finished = match look {
                Look::All => self.finished_among(remaining.iter().copied()).await?,
                Look::Poll => {
                    let window: Vec<i64> = remaining
                        .range(poll_from..)
                        .chain(remaining.range(..poll_from))
                        .take(POLL_WINDOW)
                        .copied()
                        .collect();
                    poll_from = window.last().map_or(i64::MIN, |id| id.saturating_add(1));
                    self.finished_among(window).await?
                }
                Look::Heard => std::mem::take(&mut heard),
            };
            if look != Look::Heard {
                next_poll = Instant::now() + self.poll_interval(remaining.len());
            }
            for chunk in finished.chunks(IDS_PER_STATEMENT) {
                for job in engine::get_many(&self.db, chunk).await? {
                    if job.state.is_final() && remaining.remove(&job.id) {
                        on_finished(job);
                    }
                }
            }
            if remaining.is_empty() {
                break;
            }
            // The poll's deadline stands however many signals arrive meanwhile: jobs that
            // other processes finish on SQLite are only seen by polling.
            look = loop {
                if !heard.is_empty() {
                    break Look::Heard;
                }
                tokio::select! {
                    () = tokio::time::sleep_until(next_poll) => break Look::Poll,
                    event = events.recv() => if Self::note_event(event, &remaining, &mut heard) {
                        break Look::All;
                    },
                }
            };
            // Signals that arrived meanwhile share the next read.
            while let Ok(event) = events.try_recv() {
                if Self::note_event(Ok(event), &remaining, &mut heard) {
                    look = Look::All;
                }
            }
        }
        Ok(())
    }

    /// Adds the waited-for jobs a signal names to `heard`; true when every waited-for job
    /// must be looked at again (signals were missed).
    fn note_event(
        event: std::result::Result<Event, broadcast::error::RecvError>,
        remaining: &BTreeSet<i64>,
        heard: &mut Vec<i64>,
    ) -> bool {
        match event {
            Ok(Event::Finished(ids)) => {
                heard.extend(ids.iter().filter(|id| remaining.contains(id)));
                false
            }
            Ok(Event::Inserted(_)) => false,
            Ok(Event::Resync) | Err(_) => true,
        }
    }

    /// The ids among `ids` whose jobs have finished; an error if one names no job.
    async fn finished_among(&self, ids: impl IntoIterator<Item = i64>) -> Result<Vec<i64>> {
        let ids: Vec<i64> = ids.into_iter().collect();
        let mut finished = Vec::new();
        for chunk in ids.chunks(IDS_PER_STATEMENT) {
            let states = engine::states(&self.db, chunk).await?;
            if states.len() < chunk.len() {
                let found: HashSet<i64> = states.iter().map(|(id, _)| *id).collect();
                let missing = chunk.iter().find(|id| !found.contains(id)).copied();
                return Err(Error::NotFound(missing.unwrap_or_default()));
            }
            finished.extend(
                states
                    .into_iter()
                    .filter(|(_, state)| state.is_final())
                    .map(|(id, _)| id),
            );
        }
        Ok(finished)
    }

    /// How long between polls. SQLite has no signals between processes, so this is how long
    /// another process's acks go unseen (for a window of the waited-for jobs); polls are
    /// spaced more when many jobs are waited for, as they then mostly find nothing new.
    fn poll_interval(&self, waiting_for: usize) -> Duration {
        by_engine!(self.db.pool(), _ => {
            sqlite: Duration::from_millis(if waiting_for <= 100 { 50 } else { 250 }),
            // NOTIFY wakes waiters; this poll is only the fallback, however many wait.
            postgres: {
                let _ = waiting_for;
                Duration::from_millis(500)
            },
        })
    }

    /// Deletes finished jobs (completed, discarded, cancelled) that finished more than
    /// `older_than` ago; returns how many.
    pub async fn prune(&self, older_than: Duration) -> Result<u64> {
        let mut total = 0;
        loop {
            let n = engine::prune(&self.db, older_than, 10_000).await?;
            total += n;
            if n < 10_000 {
                return Ok(total);
            }
        }
    }
}
