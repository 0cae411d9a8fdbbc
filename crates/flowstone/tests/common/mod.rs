//! Helpers shared by the integration tests.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::NaiveDate;
use flowstone::store::{Materialization, MaterializationQuery};
use flowstone::{Asset, Error, FlowStone};

/// A list shared between the test and the assets or callbacks it records from.
pub type Shared<T> = Arc<Mutex<Vec<T>>>;

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

/// Polls `condition` (every few milliseconds, up to 10 s of wall time) until it holds.
/// Panics with `what` when it never does. Only waits; asserts nothing about how long it took.
pub async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..2_000 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting until {what}");
}
