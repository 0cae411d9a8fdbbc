//! Group commit for the SQL storage: writes from concurrent materializations share transactions.
//!
//! A materialization writes several rows (its record twice, lineage, its output). Written one
//! autocommit statement at a time, a busy worker spends its time waiting for commits (an fsync
//! on PostgreSQL, the single writer lock on SQLite). Instead every write goes to one background
//! task per storage, which takes everything queued, deduplicates by key (the last write of a row
//! wins, as it would have one statement later), writes each table with multi-row statements in
//! one transaction, and only then answers each caller. A caller still returns after its write is
//! committed, so reads after a write see it; what changes is how many writes share a commit.
//!
//! Two limits keep one write from sinking the others. A batch holds at most [`MAX_BATCH`]
//! writes and [`MAX_BATCH_BYTES`] of payload, so the arrays PostgreSQL receives stay far below
//! its 1 GB field limit. And a batch the database rejects is written again one row per
//! transaction, so a row the database refuses fails only the writes it belongs to.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
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
use crate::store::MaterializationStatus;

/// Most writes committed together.
const MAX_BATCH: usize = 512;

/// Most payload bytes committed together (a single larger write still goes, alone).
const MAX_BATCH_BYTES: usize = 64 << 20;

/// One write.
#[derive(Debug, Clone)]
pub(crate) enum Write {
    Record(RecordRow),
    Edges(Vec<EdgeRow>),
    Output(OutputRow),
}

/// What the writer task is asked to commit.
enum Request {
    /// A write; answered once committed.
    Write(Write, oneshot::Sender<Result<()>>),
    /// The writes that end a materialization, to commit in the same transaction as its queue
    /// job's completion, fenced by the job's state; answered with whether it applied.
    Complete(Completing),
}

struct Completing {
    writes: Vec<Write>,
    completion: Completion,
    answer: oneshot::Sender<Result<bool>>,
}

impl Request {
    /// Roughly how many bytes it sends (see [`Write::size`]).
    fn size(&self) -> usize {
        match self {
            Request::Write(write, _) => write.size(),
            Request::Complete(c) => c.writes.iter().map(Write::size).sum(),
        }
    }
}

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
    /// Inside [`hold`] on this writer's database, a write that ends the materialization is
    /// kept for [`Held::commit_completing`] instead.
    pub(crate) async fn write(&self, write: Write) -> Result<()> {
        let Some(write) = self.hold_back(write) else {
            return Ok(());
        };
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

    /// Keeps `write` in the enclosing [`hold`] when it is on this writer's database and is
    /// not a `Running` record (which others must see while the work runs); else hands it
    /// back.
    fn hold_back(&self, write: Write) -> Option<Write> {
        let running =
            matches!(&write, Write::Record(r) if r.status == MaterializationStatus::Running);
        if running {
            return Some(write);
        }
        if HELD.try_with(|_| ()).is_err() {
            return Some(write);
        }
        HELD.with(|held| {
            let mut held = held.borrow_mut();
            if held.db.is_same_handle(&self.db) {
                held.writer.get_or_insert_with(|| self.sender().clone());
                held.writes.push(write);
                None
            } else {
                Some(write)
            }
        })
    }

    /// The channel to this writer's task, started on first use.
    fn sender(&self) -> &mpsc::UnboundedSender<Request> {
        self.tx.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(run(self.db.clone(), rx));
            tx
        })
    }

    /// Queues `write` behind every write queued before it.
    fn enqueue(&self, write: Write) -> Result<oneshot::Receiver<Result<()>>> {
        let (done, answer) = oneshot::channel();
        self.sender()
            .send(Request::Write(write, done))
            .map_err(|_| Error::store("the SQL writer task has stopped"))?;
        Ok(answer)
    }
}

tokio::task_local! {
    static HELD: RefCell<Held>;
}

/// The writes a materialization kept back inside [`hold`], to commit with its queue job's
/// completion.
pub(crate) struct Held {
    db: Database,
    writes: Vec<Write>,
    /// The writer the held writes were meant for (its group commits take the completion).
    writer: Option<mpsc::UnboundedSender<Request>>,
}

/// What a queue job's success commits with: the job (its id and attempt are the fence) and
/// the result its row keeps for a waiting caller.
// Read by the SQLite dialect only.
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
pub(crate) struct Completion {
    pub ctx: flowstone_queue::JobContext,
    pub result: Option<serde_json::Value>,
}

/// Runs `work` holding back every write it makes to `db` through an SQL writer except its
/// `Running` records (on this task; the writes of tasks it spawns go as usual), and returns
/// them with its result.
pub(crate) async fn hold<T>(db: &Database, work: impl Future<Output = T>) -> (T, Held) {
    let cell = RefCell::new(Held {
        db: db.clone(),
        writes: Vec::new(),
        writer: None,
    });
    HELD.scope(cell, async move {
        let out = work.await;
        let held = HELD.with(|held| {
            let mut held = held.borrow_mut();
            Held {
                db: held.db.clone(),
                writes: std::mem::take(&mut held.writes),
                writer: held.writer.take(),
            }
        });
        (out, held)
    })
    .await
}

impl Held {
    /// Commits the held writes as they are, through the writer's group commit (the work
    /// failed: its failure record must be stored all the same).
    pub(crate) async fn commit(self) -> Result<()> {
        // Writes were held only where a writer took them: they go back to it, into its
        // next group commit.
        let Some(writer) = self.writer else {
            return Ok(());
        };
        let mut answers = Vec::with_capacity(self.writes.len());
        for write in self.writes {
            let (done, answer) = oneshot::channel();
            writer
                .send(Request::Write(write, done))
                .map_err(|_| Error::store("the SQL writer task has stopped"))?;
            answers.push(answer);
        }
        for answer in answers {
            answer
                .await
                .map_err(|_| Error::store("the SQL writer task stopped before committing"))??;
        }
        Ok(())
    }

    /// Commits the held writes in the transaction that completes the queue job, fenced by its
    /// state (SQLite), as part of the writer's next group commit. When the job was cancelled or
    /// rescued since, its records are stored as cancelled instead and its outputs and lineage
    /// not at all; false then.
    pub(crate) async fn commit_completing(self, completion: Completion) -> Result<bool> {
        let (answer, applied) = oneshot::channel();
        let request = Request::Complete(Completing {
            writes: self.writes,
            completion,
            answer,
        });
        match self.writer {
            Some(writer) => writer
                .send(request)
                .map_err(|_| Error::store("the SQL writer task has stopped"))?,
            // Nothing was held (no SQL writes): a group of its own.
            None => write_group(&self.db, vec![request]).await,
        }
        applied
            .await
            .map_err(|_| Error::store("the SQL writer task stopped before committing"))?
    }
}

/// The records of a materialization whose job was cancelled before its success committed:
/// the same records, cancelled, naming the job.
fn cancelled_instead(writes: &[Write], job: i64) -> Vec<Write> {
    writes
        .iter()
        .filter_map(|write| match write {
            Write::Record(r) => {
                let mut r = r.clone();
                r.status = MaterializationStatus::Cancelled;
                let why = format!(
                    "asset '{}' was cancelled: queue job {job} was cancelled (or handed to \
                     another worker) before its success committed",
                    r.asset
                );
                let err = Error::new(crate::error::ErrorKind::Cancelled, why).with_asset(&r.asset);
                r.error = serde_json::to_string(&err.to_record()).ok();
                Some(Write::Record(r))
            }
            Write::Edges(_) | Write::Output(_) => None,
        })
        .collect()
}

async fn run(db: Database, mut rx: mpsc::UnboundedReceiver<Request>) {
    let mut received = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut received, MAX_BATCH).await > 0 {
        let requests = std::mem::take(&mut received);
        for group in split_by_bytes(requests, Request::size, MAX_BATCH_BYTES) {
            write_group(&db, group).await;
        }
    }
}

/// `items` in order, cut into groups of at most `max` bytes by `size` (an item larger than
/// `max` forms a group of its own).
fn split_by_bytes<T>(items: Vec<T>, size: impl Fn(&T) -> usize, max: usize) -> Vec<Vec<T>> {
    let mut groups: Vec<Vec<T>> = Vec::new();
    let mut bytes = 0;
    for item in items {
        let n = size(&item);
        match groups.last_mut() {
            Some(group) if bytes + n <= max => {
                bytes += n;
                group.push(item);
            }
            _ => {
                bytes = n;
                groups.push(vec![item]);
            }
        }
    }
    groups
}

/// Commits `group` in one transaction and answers its writers; when the database rejects it,
/// writes it again row by row and answers each writer with the outcome of its own rows.
async fn write_group(db: &Database, group: Vec<Request>) {
    let mut plain = Vec::with_capacity(group.len());
    let mut completing = Vec::new();
    for request in group {
        match request {
            Request::Write(write, waiter) => plain.push((write, waiter)),
            Request::Complete(c) => completing.push(c),
        }
    }
    if !completing.is_empty() {
        return write_completing_group(db, plain, completing).await;
    }
    let keys: Vec<Vec<Key>> = plain.iter().map(|(write, _)| write.keys()).collect();
    let (writes, waiters): (Vec<Write>, Vec<_>) = plain.into_iter().unzip();
    let batch = Batch::dedup(writes);
    let rows = batch.rows();
    let result = commit(db, &batch).await;
    if result.is_ok() || rows == 1 {
        for waiter in waiters {
            let _ = waiter.send(result.clone());
        }
        return;
    }
    tracing::warn!(
        rows,
        error = %result.as_ref().err().map(ToString::to_string).unwrap_or_default(),
        "the database rejected a group commit; writing its rows one by one"
    );
    let outcomes = commit_row_by_row(db, batch).await;
    for (waiter, keys) in waiters.into_iter().zip(keys) {
        let outcome = keys
            .iter()
            .find_map(|key| outcomes.get(key).and_then(|r| r.clone().err()))
            .map_or(Ok(()), Err);
        let _ = waiter.send(outcome);
    }
}

/// A group with materializations to complete (SQLite): one transaction runs each job's fenced
/// completion, then writes the plain rows, the held rows of the completions that applied and
/// the cancelled records of those that did not. When it fails, each part is written again on
/// its own, so one bad row fails only its own writers.
async fn write_completing_group(
    db: &Database,
    plain: Vec<(Write, oneshot::Sender<Result<()>>)>,
    completing: Vec<Completing>,
) {
    let mut plain_writes = Vec::with_capacity(plain.len());
    let mut waiters = Vec::with_capacity(plain.len());
    for (write, waiter) in plain {
        plain_writes.push(write);
        waiters.push(waiter);
    }
    let fences: Vec<&Completion> = completing.iter().map(|c| &c.completion).collect();
    let build = |applied: &[bool]| {
        let mut all: Vec<Write> = plain_writes.clone();
        for (c, applied) in completing.iter().zip(applied) {
            if *applied {
                all.extend(c.writes.iter().cloned());
            } else {
                all.extend(cancelled_instead(&c.writes, c.completion.ctx.id));
            }
        }
        Batch::dedup(all)
    };
    let together = by_engine_completing(db, &fences, build).await;
    if let Ok(applied) = together {
        for waiter in waiters {
            let _ = waiter.send(Ok(()));
        }
        for (c, applied) in completing.into_iter().zip(applied) {
            let _ = c.answer.send(Ok(applied));
        }
        return;
    }
    // Apart: the plain writes as an ordinary group, each completion alone.
    let plain: Vec<Request> = plain_writes
        .into_iter()
        .zip(waiters)
        .map(|(write, waiter)| Request::Write(write, waiter))
        .collect();
    if !plain.is_empty() {
        Box::pin(write_group(db, plain)).await;
    }
    for c in completing {
        let fence = [&c.completion];
        let alone = by_engine_completing(db, &fence, |applied: &[bool]| {
            Batch::dedup(if applied[0] {
                c.writes.clone()
            } else {
                cancelled_instead(&c.writes, c.completion.ctx.id)
            })
        })
        .await
        .map(|applied| applied[0]);
        let _ = c.answer.send(alone);
    }
}

/// Runs `fences` and writes `build(applied)` in one transaction, in the engine's dialect.
async fn by_engine_completing(
    db: &Database,
    fences: &[&Completion],
    build: impl FnOnce(&[bool]) -> Batch,
) -> Result<Vec<bool>> {
    by_engine!(db.pool(), pool => {
        sqlite: sqlite::write_completing(db, pool, fences, build).await,
        postgres: {
            let _ = (pool, fences, build);
            Err(Error::store(
                "a completing commit is for SQLite, where cancels are polled; on PostgreSQL \
                 the queue's own ack completes the job",
            ))
        },
    })
}

/// Commits each row of `batch` in a transaction of its own; the outcome per row key.
async fn commit_row_by_row(db: &Database, batch: Batch) -> HashMap<Key, Result<()>> {
    let mut outcomes = HashMap::new();
    for r in batch.records {
        let key = Key::Record(r.asset.clone(), r.partition.clone(), r.run_id.clone());
        let alone = Batch {
            records: vec![r],
            ..Batch::default()
        };
        outcomes.insert(key, commit(db, &alone).await);
    }
    for e in batch.edges {
        let key = Key::Edge(e.consumer.clone(), e.upstream.clone());
        let alone = Batch {
            edges: vec![e],
            ..Batch::default()
        };
        outcomes.insert(key, commit(db, &alone).await);
    }
    for o in batch.outputs {
        let key = Key::Output(o.asset.clone(), o.partition.clone());
        let alone = Batch {
            outputs: vec![o],
            ..Batch::default()
        };
        outcomes.insert(key, commit(db, &alone).await);
    }
    outcomes
}

/// The key of a row: the unit the database accepts or rejects.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Record(String, String, String),
    Edge([String; 3], [String; 3]),
    Output(String, String),
}

impl Write {
    /// Roughly how many bytes it sends: what the byte limit of a batch counts.
    fn size(&self) -> usize {
        match self {
            Write::Record(r) => {
                r.asset.len()
                    + r.partition.len()
                    + r.metadata.len()
                    + r.error.as_ref().map_or(0, String::len)
                    + 128
            }
            Write::Edges(edges) => edges
                .iter()
                .map(|e| {
                    e.consumer
                        .iter()
                        .chain(&e.upstream)
                        .map(String::len)
                        .sum::<usize>()
                        + 16
                })
                .sum(),
            Write::Output(o) => o.asset.len() + o.partition.len() + o.value.len() + 64,
        }
    }

    /// The keys of the rows it writes.
    fn keys(&self) -> Vec<Key> {
        match self {
            Write::Record(r) => vec![Key::Record(
                r.asset.clone(),
                r.partition.clone(),
                r.run_id.clone(),
            )],
            Write::Edges(edges) => edges
                .iter()
                .map(|e| Key::Edge(e.consumer.clone(), e.upstream.clone()))
                .collect(),
            Write::Output(o) => vec![Key::Output(o.asset.clone(), o.partition.clone())],
        }
    }
}

/// Writes one batch in one transaction, in the engine's dialect.
async fn commit(db: &Database, batch: &Batch) -> Result<()> {
    by_engine!(db.pool(), pool => {
        sqlite: sqlite::write(db, pool, batch).await,
        postgres: postgres::write(pool, batch).await,
    })
}

/// One transaction's rows, deduplicated by key (PostgreSQL refuses to upsert a row twice in
/// one statement).
#[derive(Default)]
pub(crate) struct Batch {
    pub records: Vec<RecordRow>,
    pub edges: Vec<EdgeRow>,
    pub outputs: Vec<OutputRow>,
}

impl Batch {
    /// How many rows it writes.
    fn rows(&self) -> usize {
        self.records.len() + self.edges.len() + self.outputs.len()
    }

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

#[cfg(test)]
mod tests {
    use super::split_by_bytes;

    #[test]
    fn batches_are_cut_by_bytes_in_order() {
        let groups = split_by_bytes(vec![4, 4, 4, 9, 1, 30, 2], |n| *n, 10);
        assert_eq!(
            groups,
            vec![vec![4, 4], vec![4], vec![9, 1], vec![30], vec![2]]
        );
        assert!(split_by_bytes(Vec::<usize>::new(), |n| *n, 10).is_empty());
    }
}
