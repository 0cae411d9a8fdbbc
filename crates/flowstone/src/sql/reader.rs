//! Group reads for the SQL blob IO manager: concurrent loads share one query.
//!
//! Every partition of a backfill loads its dependencies, often the same unpartitioned one, and a
//! query per load costs a round trip each (on SQLite, to the connection's own thread). Instead,
//! loads go to one background task per IO manager, which takes everything queued, asks for the
//! distinct keys with one query per asset (`partition_key IN (..)`), and answers each caller.
//! A load joins only a query that starts after it was asked, so it still sees every write
//! committed before it: this batches reads, it does not cache them.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use flowstone_queue::Database;
use tokio::sync::{mpsc, oneshot};

use super::by_engine;
#[cfg(feature = "postgres")]
use super::postgres;
#[cfg(feature = "sqlite")]
use super::sqlite;
use crate::error::{Error, Result};
use crate::io::Stored;

/// Most loads answered together.
const MAX_BATCH: usize = 1024;
/// Most partitions in one `IN (..)` list.
const KEYS_PER_STATEMENT: usize = 256;

/// (asset, encoded partition).
type Key = (String, String);
type Request = (Key, oneshot::Sender<Result<Option<Stored>>>);

/// The handle to an IO manager's reader task (started on first load).
#[derive(Debug)]
pub(crate) struct Reader {
    db: Database,
    tx: OnceLock<mpsc::UnboundedSender<Request>>,
}

impl Reader {
    pub(crate) fn new(db: Database) -> Self {
        Reader {
            db,
            tx: OnceLock::new(),
        }
    }

    /// The output stored for (`asset`, encoded `partition`), if any.
    pub(crate) async fn load(&self, asset: &str, partition: String) -> Result<Option<Stored>> {
        let tx = self.tx.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(run(self.db.clone(), rx));
            tx
        });
        let (done, answer) = oneshot::channel();
        tx.send(((asset.to_owned(), partition), done))
            .map_err(|_| Error::store("the SQL reader task has stopped"))?;
        answer
            .await
            .map_err(|_| Error::store("the SQL reader task stopped before answering"))?
    }
}

async fn run(db: Database, mut rx: mpsc::UnboundedReceiver<Request>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let mut by_asset: HashMap<&str, HashSet<&str>> = HashMap::new();
        for ((asset, partition), _) in &batch {
            by_asset.entry(asset).or_default().insert(partition);
        }
        let found = fetch(&db, &by_asset).await;
        for (key, waiter) in batch.drain(..) {
            let answer = match &found {
                Ok(found) => Ok(found.get(&key).cloned()),
                Err(err) => Err(err.clone()),
            };
            let _ = waiter.send(answer);
        }
    }
}

/// Every stored output among `wanted`'s keys.
async fn fetch(
    db: &Database,
    wanted: &HashMap<&str, HashSet<&str>>,
) -> Result<HashMap<Key, Stored>> {
    let mut found = HashMap::new();
    for (asset, partitions) in wanted {
        let partitions: Vec<&str> = partitions.iter().copied().collect();
        for chunk in partitions.chunks(KEYS_PER_STATEMENT) {
            // Lists padded to a power of two (repeating a key changes nothing) keep the number
            // of distinct statements, and so of prepared ones per connection, small.
            let padded: Vec<&str> = chunk
                .iter()
                .copied()
                .chain(std::iter::repeat_n(
                    chunk[0],
                    chunk.len().next_power_of_two() - chunk.len(),
                ))
                .collect();
            let outputs = by_engine!(db.pool(), pool => {
                sqlite: sqlite::outputs(pool, asset, &padded).await?,
                postgres: postgres::outputs(pool, asset, &padded).await?,
            });
            for (partition, stored) in outputs {
                found.insert(((*asset).to_owned(), partition), stored);
            }
        }
    }
    Ok(found)
}
