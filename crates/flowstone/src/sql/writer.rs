//! Group commit for the SQL storage: writes from concurrent materializations share transactions.
//!
//! A materialization writes several rows (its record twice, lineage, its output). Written one
//! autocommit statement at a time, a busy worker spends its time waiting for commits (an fsync
//! on PostgreSQL, the single writer lock on SQLite). Instead every write goes to one background
//! task per storage, which takes everything queued, deduplicates by key (the last write of a row
//! wins, as it would have one statement later), writes each table with multi-row statements in
//! one transaction, and only then answers each caller. A caller still returns after its write is
//! committed, so reads after a write see it; what changes is how many writes share a commit.

use std::collections::HashMap;
use std::sync::OnceLock;

use flowstone_queue::Database;
use tokio::sync::{mpsc, oneshot};

use super::by_engine;
#[cfg(feature = "postgres")]
use super::postgres;
use super::rows::{EdgeRow, OutputRow, RecordRow};
#[cfg(feature = "sqlite")]
use super::sqlite;
use crate::error::{Error, Result};

/// Most writes committed together.
const MAX_BATCH: usize = 512;

/// One write.
#[derive(Debug)]
pub(crate) enum Write {
    Record(RecordRow),
    Edges(Vec<EdgeRow>),
    Output(OutputRow),
}

type Request = (Write, oneshot::Sender<Result<()>>);

/// The handle to a storage's writer task (started on first write).
#[derive(Debug)]
pub(crate) struct Writer {
    db: Database,
    tx: OnceLock<mpsc::UnboundedSender<Request>>,
}

impl Writer {
    pub(crate) fn new(db: Database) -> Self {
        Writer {
            db,
            tx: OnceLock::new(),
        }
    }

    /// Writes `write`: returns once it is committed, or, inside a materialization, once it is
    /// queued, leaving the wait for the commit to the materialization ([`crate::deferred`]).
    pub(crate) async fn write(&self, write: Write) -> Result<()> {
        let answer = self.enqueue(write)?;
        let committed = async move {
            answer
                .await
                .map_err(|_| Error::store("the SQL writer task stopped before committing"))?
        };
        match crate::deferred::defer(committed) {
            None => Ok(()),
            Some(committed) => committed.await,
        }
    }

    /// Queues `write` behind every write queued before it.
    fn enqueue(&self, write: Write) -> Result<oneshot::Receiver<Result<()>>> {
        let tx = self.tx.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(run(self.db.clone(), rx));
            tx
        });
        let (done, answer) = oneshot::channel();
        tx.send((write, done))
            .map_err(|_| Error::store("the SQL writer task has stopped"))?;
        Ok(answer)
    }
}

async fn run(db: Database, mut rx: mpsc::UnboundedReceiver<Request>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (writes, waiters): (Vec<Write>, Vec<_>) = batch.drain(..).unzip();
        let result = commit(&db, Batch::dedup(writes)).await;
        for waiter in waiters {
            let _ = waiter.send(result.clone());
        }
    }
}

/// Writes one batch in one transaction, in the engine's dialect.
async fn commit(db: &Database, batch: Batch) -> Result<()> {
    by_engine!(db.pool(), pool => {
        sqlite: sqlite::write(db, pool, &batch).await,
        postgres: postgres::write(pool, &batch).await,
    })
}

/// One transaction's rows, deduplicated by key (PostgreSQL refuses to upsert a row twice in
/// one statement).
pub(crate) struct Batch {
    pub records: Vec<RecordRow>,
    pub edges: Vec<EdgeRow>,
    pub outputs: Vec<OutputRow>,
}

impl Batch {
    /// The rows of `writes`, the last write of each key winning.
    fn dedup(writes: Vec<Write>) -> Self {
        let mut records: HashMap<(String, String, String), RecordRow> = HashMap::new();
        let mut edges: Vec<EdgeRow> = Vec::new();
        let mut outputs: HashMap<(String, String), OutputRow> = HashMap::new();
        for write in writes {
            match write {
                Write::Record(r) => {
                    records.insert((r.asset.clone(), r.partition.clone(), r.run_id.clone()), r);
                }
                Write::Edges(e) => edges.extend(e),
                Write::Output(o) => {
                    outputs.insert((o.asset.clone(), o.partition.clone()), o);
                }
            }
        }
        edges.sort_by(|a, b| (&a.consumer, &a.upstream).cmp(&(&b.consumer, &b.upstream)));
        edges.dedup_by(|a, b| a.consumer == b.consumer && a.upstream == b.upstream);
        Batch {
            records: records.into_values().collect(),
            edges,
            outputs: outputs.into_values().collect(),
        }
    }
}
