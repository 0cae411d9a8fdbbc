//! The queue as callers use it: insert (one or many in one statement), read, list, count,
//! cancel, wait for a result, prune. Workers run elsewhere ([`crate::Worker`]); this handle
//! never runs jobs.

use std::time::{Duration, Instant};

use tokio::sync::broadcast;

use crate::database::{Database, Engine, Event};
use crate::engine::{self, CancelTarget};
use crate::error::{Error, Result};
use crate::job::{Inserted, InsertedId, Job, JobFilter, JobState, NewJob};
use crate::migrate::QUEUE_MIGRATIONS;

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

    /// Inserts many jobs with one statement per 5,000; ids in input order.
    pub async fn insert_many(&self, jobs: &[NewJob]) -> Result<Vec<InsertedId>> {
        engine::insert_many(&self.db, jobs).await
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

    /// Cancels a job: pending ones become `cancelled` at once; a running one too, and its
    /// node fires the handler's cancellation token. Returns the job as it is now.
    pub async fn cancel(&self, id: i64) -> Result<Job> {
        engine::cancel(&self.db, CancelTarget::Ids(&[id])).await?;
        self.get(id).await
    }

    /// Cancels every unfinished job of a batch (running ones are signalled); returns how
    /// many were cancelled.
    pub async fn cancel_batch(&self, batch: &str) -> Result<usize> {
        Ok(engine::cancel(&self.db, CancelTarget::Batch(batch))
            .await?
            .len())
    }

    /// Waits until the job is completed, discarded or cancelled, and returns it. Woken by
    /// the same signals as workers, with polling as a fallback.
    pub async fn wait(&self, id: i64, timeout: Duration) -> Result<Job> {
        let started = Instant::now();
        let mut events = self.db.subscribe().await;
        let poll = match self.db.engine() {
            Engine::Sqlite => Duration::from_millis(50),
            Engine::Postgres => Duration::from_millis(500),
        };
        loop {
            let job = self.get(id).await?;
            if job.state.is_final() {
                return Ok(job);
            }
            let left = timeout.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(Error::WaitTimeout {
                    id,
                    state: job.state.to_string(),
                    waited: started.elapsed(),
                });
            }
            let deadline = tokio::time::sleep(left.min(poll));
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    _ = &mut deadline => break,
                    event = events.recv() => match event {
                        Ok(Event::Finished(ids)) if ids.contains(&id) => break,
                        Ok(Event::Resync) | Err(broadcast::error::RecvError::Lagged(_)) => break,
                        Ok(_) => {}
                        Err(broadcast::error::RecvError::Closed) => {
                            (&mut deadline).await;
                            break;
                        }
                    },
                }
            }
        }
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
