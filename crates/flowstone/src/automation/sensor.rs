//! Sensors: a user's async function, called by the automation leader at most once per
//! interval with the cursor it returned last time (persisted, so it survives restarts and
//! failovers), answering with run requests, a new cursor, or a reason to skip.
//!
//! A run request with a run key is launched once, ever: asking again with the same key
//! launches nothing. Without a key, each request launches.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;

use crate::error::{Error, Result};
use crate::partition::Partition;

/// What a sensor's function is given.
#[derive(Debug, Clone)]
pub struct SensorContext {
    /// The sensor's name.
    pub name: String,
    /// The cursor it returned last (`None` the first time).
    pub cursor: Option<String>,
    /// When it is called.
    pub now: DateTime<Utc>,
}

/// One thing a sensor asks to run: a selection of assets at one partition of its anchor (the
/// selection's first asset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRequest {
    /// The assets (the syntax of [`crate::selection`]).
    pub selection: String,
    /// The anchor's partition (`Partition::Unpartitioned` for an unpartitioned anchor).
    pub partition: Partition,
    /// Launched once, ever, per key.
    pub run_key: Option<String>,
}

impl RunRequest {
    /// Runs `selection` at `partition`.
    pub fn new(selection: impl Into<String>, partition: impl Into<Partition>) -> Self {
        RunRequest {
            selection: selection.into(),
            partition: partition.into(),
            run_key: None,
        }
    }

    /// With the run key `key`: launched once, ever.
    pub fn run_key(mut self, key: impl Into<String>) -> Self {
        self.run_key = Some(key.into());
        self
    }
}

/// What a sensor's function answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SensorResult {
    /// What to run.
    pub run_requests: Vec<RunRequest>,
    /// The cursor to be given next time (`None` keeps the current one).
    pub cursor: Option<String>,
    /// Why nothing runs (recorded on the tick when there are no requests).
    pub skip_reason: Option<String>,
}

impl SensorResult {
    /// Nothing to run, because `reason`.
    pub fn skip(reason: impl Into<String>) -> Self {
        SensorResult {
            skip_reason: Some(reason.into()),
            ..Default::default()
        }
    }

    /// Runs `requests`.
    pub fn run(requests: impl IntoIterator<Item = RunRequest>) -> Self {
        SensorResult {
            run_requests: requests.into_iter().collect(),
            ..Default::default()
        }
    }

    /// With the cursor to be given next time.
    pub fn cursor(mut self, cursor: impl Into<String>) -> Self {
        self.cursor = Some(cursor.into());
        self
    }
}

type SensorFn =
    Arc<dyn Fn(SensorContext) -> BoxFuture<'static, Result<SensorResult>> + Send + Sync>;

/// A sensor. See the [module docs](self).
#[derive(Clone)]
#[must_use = "a sensor does nothing until it is added to FlowStone::builder().sensor(..)"]
pub struct Sensor {
    name: String,
    interval: Duration,
    default_on: bool,
    func: Option<SensorFn>,
}

impl Sensor {
    /// The sensor `name`, called at most every 30 s until [`Sensor::interval`] says otherwise.
    pub fn new(name: impl Into<String>) -> Self {
        Sensor {
            name: name.into(),
            interval: Duration::from_secs(30),
            default_on: true,
            func: None,
        }
    }

    /// The least time between two calls.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Whether the sensor is on until someone turns it off (default on).
    pub fn default_on(mut self, on: bool) -> Self {
        self.default_on = on;
        self
    }

    /// The function it calls.
    pub fn evaluate<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(SensorContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<SensorResult>> + Send + 'static,
    {
        self.func = Some(Arc::new(move |cx| Box::pin(f(cx))));
        self
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its interval.
    pub fn interval_of(&self) -> Duration {
        self.interval
    }

    /// Whether it is on by default.
    pub fn is_default_on(&self) -> bool {
        self.default_on
    }

    /// Calls the function on a task of its own, so that a panic is an error naming the
    /// sensor rather than the end of the evaluator.
    pub(crate) async fn call(&self, cx: SensorContext) -> Result<SensorResult> {
        let func = self
            .func
            .clone()
            .ok_or_else(|| self.error("it has no function"))?;
        match tokio::spawn(async move { func(cx).await }).await {
            Ok(result) => result.map_err(|e| self.error(&format!("it failed: {e}"))),
            Err(join) if join.is_panic() => Err(self.error(&format!(
                "it panicked: {}",
                crate::asset::panic_message(join.into_panic())
            ))),
            Err(_) => Err(self.error("it was cancelled")),
        }
    }

    /// Checks what the build can.
    pub(crate) fn check(&self) -> Result<()> {
        crate::limits::asset_name(&self.name)
            .map_err(|e| Error::invalid_graph(format!("sensor name: {}", e.message())))?;
        if self.func.is_none() {
            return Err(Error::invalid_graph(format!(
                "sensor '{}' has no function; give it one with .evaluate(|cx| async {{ .. }})",
                self.name
            )));
        }
        if self.interval.is_zero() {
            return Err(Error::invalid_graph(format!(
                "sensor '{}' has an interval of zero; give it at least a millisecond",
                self.name
            )));
        }
        Ok(())
    }

    pub(crate) fn error(&self, why: &str) -> Error {
        Error::invalid_options(format!("sensor '{}': {why}", self.name))
    }
}

impl fmt::Debug for Sensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sensor")
            .field("name", &self.name)
            .field("interval", &self.interval)
            .field("default_on", &self.default_on)
            .finish_non_exhaustive()
    }
}
