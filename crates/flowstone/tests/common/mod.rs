//! Fixtures shared by the integration tests: typical graphs and assets, and the logs and
//! counters through which assets tell a test what ran. Reading results back (outputs, errors,
//! job statuses, records, lineage) is in [`outcome`], polling waits in [`wait`], and workers
//! for the Queue executor tests in [`queue`].
//!
//! Each test binary compiles this module whole and uses part of it, hence `dead_code`.

#![allow(dead_code)]

pub mod outcome;
pub mod queue;
pub mod wait;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::NaiveDate;
use flowstone::store::{Materialization, MaterializationQuery};
use flowstone::{Asset, Error, FlowStone, Partition};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A list shared between the test and the assets or callbacks it records from.
pub type Shared<T> = Arc<Mutex<Vec<T>>>;

/// How many times each (asset, encoded partition) ran in this process, shared by every
/// FlowStone of a test.
#[derive(Clone, Default)]
pub struct Calls(Arc<Mutex<BTreeMap<(String, String), usize>>>);

impl Calls {
    /// Counts one run.
    pub fn bump(&self, asset: &str, partition: &Partition) {
        *self
            .0
            .lock()
            .unwrap()
            .entry((asset.to_owned(), partition.encode()))
            .or_default() += 1;
    }

    /// Runs of one (asset, partition).
    pub fn of(&self, asset: &str, partition: &Partition) -> usize {
        self.0
            .lock()
            .unwrap()
            .get(&(asset.to_owned(), partition.encode()))
            .copied()
            .unwrap_or(0)
    }

    /// Every (asset, encoded partition) that ran more than once.
    pub fn repeated(&self) -> Vec<(String, String)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Every count.
    pub fn all(&self) -> BTreeMap<(String, String), usize> {
        self.0.lock().unwrap().clone()
    }
}

/// A calendar day.
pub fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

/// Every materialization record of `asset`, newest first.
pub async fn records(fs: &FlowStone, asset: &str) -> Vec<Materialization> {
    fs.materializations(&MaterializationQuery::asset(asset))
        .await
        .unwrap()
}

/// Every materialization record in the store.
pub async fn all_records(fs: &FlowStone) -> Vec<Materialization> {
    fs.materializations(&MaterializationQuery::default())
        .await
        .unwrap()
}

/// A log of which assets ran, in order.
#[derive(Clone, Default)]
pub struct RunLog(Arc<Mutex<Vec<String>>>);

impl RunLog {
    pub fn push(&self, entry: impl Into<String>) {
        self.0.lock().unwrap().push(entry.into());
    }

    pub fn entries(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    pub fn count(&self, entry: &str) -> usize {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|e| *e == entry)
            .count()
    }
}

/// How many times something was called, shared between the test and an asset.
#[derive(Clone, Default)]
pub struct Counter(Arc<AtomicUsize>);

impl Counter {
    /// Counts one call and returns how many there were before it.
    pub fn bump(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst)
    }

    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// A FlowStone of `assets` and nothing else: in-memory store, default executors and hooks.
pub fn graph(assets: impl IntoIterator<Item = Asset>) -> FlowStone {
    FlowStone::builder()
        .assets(assets)
        .build()
        .expect("the test graph is valid")
}

/// An asset that reads nothing and returns `value`.
pub fn constant<T>(name: &str, value: T) -> Asset
where
    T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    Asset::new(name).execute(move |_ctx| {
        let value = value.clone();
        async move { Ok::<_, Error>(value) }
    })
}

/// The integer partitions 0 to 9,999: the definition of test assets whose partitions are only
/// keys (an asset without a definition takes no partition).
pub fn numbered() -> flowstone::CustomPartitions {
    flowstone::CustomPartitions::new(|| Ok((0..10_000i64).map(flowstone::Partition::Int).collect()))
}

/// An asset that counts its runs in `calls` and returns how many there were, itself included.
pub fn counted(name: &str, calls: &Counter) -> Asset {
    let calls = calls.clone();
    Asset::new(name).execute(move |_ctx| {
        let calls = calls.clone();
        async move { Ok::<_, Error>(calls.bump() as u32 + 1) }
    })
}

/// An asset that counts its calls in `calls` and fails with `error()` on every one.
pub fn always_failing(name: &str, calls: &Counter, error: fn() -> Error) -> Asset {
    let calls = calls.clone();
    Asset::new(name).execute(move |_ctx| {
        let calls = calls.clone();
        async move {
            calls.bump();
            Err::<u8, Error>(error())
        }
    })
}

/// An asset that counts its calls in `calls`, fails retryably ("flaky on attempt N") before
/// attempt `succeeds_on` and then returns the attempt's number.
pub fn flaky(name: &str, calls: &Counter, succeeds_on: u32) -> Asset {
    let calls = calls.clone();
    Asset::new(name).execute(move |ctx| {
        let calls = calls.clone();
        async move {
            calls.bump();
            if ctx.attempt() < succeeds_on {
                return Err(Error::failed(format!("flaky on attempt {}", ctx.attempt())));
            }
            Ok::<_, Error>(ctx.attempt())
        }
    })
}

/// An asset that logs its name to `log` and returns its name's length, reading nothing.
pub fn logged(name: &str, deps: &[&str], log: &RunLog) -> Asset {
    let log = log.clone();
    Asset::new(name)
        .depends_on(deps.iter().copied())
        .execute(move |ctx| {
            let log = log.clone();
            async move {
                log.push(ctx.asset());
                Ok::<_, Error>(ctx.asset().len() as u64)
            }
        })
}

/// The chain a <- b <- c of [`logged`] assets, each logging to `log`.
pub fn chain(log: &RunLog) -> FlowStone {
    graph([
        logged("a", &[], log),
        logged("b", &["a"], log),
        logged("c", &["b"], log),
    ])
}
