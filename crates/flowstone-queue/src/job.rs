//! What a job is: the row's fields as Rust types ([`Job`]), the states it moves through
//! ([`JobState`]), and what a caller fills in to insert one ([`NewJob`], [`Unique`]).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

/// Where a job is in its life. `scheduled` and `retryable` jobs become claimable once their
/// `scheduled_at` has passed; the three last states are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Ready to run.
    Available,
    /// Waiting for its `scheduled_at` (inserted for later, or snoozed).
    Scheduled,
    /// Claimed by a node, running.
    Executing,
    /// Failed an attempt; waits for its backoff to pass.
    Retryable,
    /// Finished successfully.
    Completed,
    /// Gave up: out of attempts, or a non-retryable error.
    Discarded,
    /// Cancelled before finishing.
    Cancelled,
}

impl JobState {
    /// Every state, in life order.
    pub const ALL: [JobState; 7] = [
        Self::Available,
        Self::Scheduled,
        Self::Executing,
        Self::Retryable,
        Self::Completed,
        Self::Discarded,
        Self::Cancelled,
    ];

    /// The name stored in the `state` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Available => "available",
            Self::Scheduled => "scheduled",
            Self::Executing => "executing",
            Self::Retryable => "retryable",
            Self::Completed => "completed",
            Self::Discarded => "discarded",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses a stored state name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Completed, discarded or cancelled.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Discarded | Self::Cancelled)
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One failed attempt, as recorded in the job's `errors`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptError {
    /// The attempt that failed.
    pub attempt: i32,
    /// When it was recorded (RFC 3339).
    pub at: String,
    /// What went wrong.
    pub error: String,
}

/// A job row.
#[derive(Debug, Clone)]
pub struct Job {
    /// Id, increasing with insertion.
    pub id: i64,
    /// Queue name.
    pub queue: String,
    /// Worker name: which handler runs it.
    pub kind: String,
    /// Arguments. If the stored text is not JSON (a row written by hand), a JSON string
    /// holding the text.
    pub args: Value,
    /// Free-form metadata.
    pub meta: Value,
    /// 0 (first) to 9.
    pub priority: u8,
    /// Current state.
    pub state: JobState,
    /// Attempts started (snoozes and give-backs return theirs).
    pub attempt: i32,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// Times the job snoozed.
    pub snoozed: i32,
    /// Times a worker without a handler for its kind gave it back.
    pub unhandled: i32,
    /// Every failed attempt's error, oldest first.
    pub errors: Vec<AttemptError>,
    /// What the handler returned with `Outcome::Complete`, if anything.
    pub result: Option<Value>,
    /// Uniqueness key, if inserted as unique.
    pub unique_key: Option<String>,
    /// Batch (group) the job belongs to.
    pub batch: Option<String>,
    /// Node that ran (or runs) the latest attempt.
    pub node: Option<String>,
    /// Inserted at.
    pub inserted_at: Option<DateTime<Utc>>,
    /// Not claimed before this time.
    pub scheduled_at: Option<DateTime<Utc>>,
    /// Latest attempt started at.
    pub attempted_at: Option<DateTime<Utc>>,
    /// Completed at.
    pub completed_at: Option<DateTime<Utc>>,
    /// Cancelled at.
    pub cancelled_at: Option<DateTime<Utc>>,
    /// Discarded at.
    pub discarded_at: Option<DateTime<Utc>>,
}

/// Which fields make up a unique job's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unique {
    /// Queue, kind and args (canonical JSON, key order ignored).
    ByArgs,
    /// Queue, kind, args and meta.
    ByArgsAndMeta,
    /// Queue and kind only: one active job per kind and queue.
    ByKind,
    /// A key the caller chose (scoped by nothing else).
    Key(String),
}

/// A job to insert. Build with [`NewJob::new`] and the setters.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub(crate) queue: String,
    pub(crate) kind: String,
    pub(crate) args: String,
    pub(crate) meta: String,
    pub(crate) priority: u8,
    pub(crate) scheduled_at: Option<DateTime<Utc>>,
    pub(crate) max_attempts: i32,
    pub(crate) unique: Option<Unique>,
    pub(crate) batch: Option<String>,
}

impl NewJob {
    /// A job of `kind` with JSON `args`, on queue `"default"`, priority 0, 20 attempts.
    pub fn new(kind: impl Into<String>, args: Value) -> Self {
        Self {
            queue: "default".into(),
            kind: kind.into(),
            args: args.to_string(),
            meta: "{}".into(),
            priority: 0,
            scheduled_at: None,
            max_attempts: 20,
            unique: None,
            batch: None,
        }
    }

    /// A job whose args are any serializable value.
    pub fn with_args<T: Serialize>(kind: impl Into<String>, args: &T) -> Result<Self> {
        let mut job = Self::new(kind, Value::Null);
        job.args = serde_json::to_string(args)?;
        Ok(job)
    }

    /// The queue (default `"default"`).
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    /// Metadata.
    pub fn meta(mut self, meta: Value) -> Self {
        self.meta = meta.to_string();
        self
    }

    /// Priority, 0 (first) to 9.
    pub fn priority(mut self, priority: u8) -> Self {
        self.priority = priority;
        self
    }

    /// Do not run before `at`.
    pub fn scheduled_at(mut self, at: DateTime<Utc>) -> Self {
        self.scheduled_at = Some(at);
        self
    }

    /// Do not run before `delay` from now.
    pub fn schedule_in(mut self, delay: Duration) -> Self {
        let delay = chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
        self.scheduled_at = Some(
            Utc::now()
                .checked_add_signed(delay)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        );
        self
    }

    /// Attempts allowed (default 20).
    pub fn max_attempts(mut self, max_attempts: i32) -> Self {
        self.max_attempts = max_attempts;
        self
    }

    /// Makes the job unique among active jobs (available, scheduled, executing, retryable).
    pub fn unique(mut self, unique: Unique) -> Self {
        self.unique = Some(unique);
        self
    }

    /// Puts the job in a batch (group), to list, count or cancel together.
    pub fn batch(mut self, batch: impl Into<String>) -> Self {
        self.batch = Some(batch.into());
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        validate_queue_name(&self.queue)?;
        if self.kind.is_empty() {
            return Err(Error::InvalidJob("kind must not be empty".into()));
        }
        if self.priority > 9 {
            return Err(Error::InvalidJob(format!(
                "priority {} is out of range: use 0 (first) to 9",
                self.priority
            )));
        }
        if self.max_attempts < 1 {
            return Err(Error::InvalidJob(format!(
                "max_attempts {} must be at least 1",
                self.max_attempts
            )));
        }
        Ok(())
    }

    /// The unique key stored with the job, if it is unique.
    pub(crate) fn unique_key(&self) -> Option<String> {
        let unique = self.unique.as_ref()?;
        let parts: Vec<String> = match unique {
            Unique::Key(key) => return Some(format!("key:{key}")),
            Unique::ByKind => vec![self.queue.clone(), self.kind.clone()],
            Unique::ByArgs => vec![self.queue.clone(), self.kind.clone(), canonical(&self.args)],
            Unique::ByArgsAndMeta => vec![
                self.queue.clone(),
                self.kind.clone(),
                canonical(&self.args),
                canonical(&self.meta),
            ],
        };
        let mut hash = Fnv128::default();
        for p in &parts {
            hash.write(&(p.len() as u64).to_le_bytes());
            hash.write(p.as_bytes());
        }
        Some(format!("h:{}:{:032x}", self.kind, hash.finish()))
    }
}

/// JSON text with object keys sorted, so `{"a":1,"b":2}` and `{"b":2,"a":1}` match.
fn canonical(json: &str) -> String {
    fn sort(v: Value) -> Value {
        match v {
            Value::Object(map) => {
                let mut entries: Vec<(String, Value)> = map.into_iter().collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                let mut out = serde_json::Map::new();
                for (k, v) in entries {
                    out.insert(k, sort(v));
                }
                Value::Object(out)
            }
            Value::Array(items) => Value::Array(items.into_iter().map(sort).collect()),
            other => other,
        }
    }
    match serde_json::from_str::<Value>(json) {
        Ok(v) => {
            // Serialise sorted entries by hand: a map type may keep insertion order.
            fn write(v: &Value, out: &mut String) {
                match v {
                    Value::Object(map) => {
                        let mut keys: Vec<&String> = map.keys().collect();
                        keys.sort();
                        out.push('{');
                        for (i, k) in keys.iter().enumerate() {
                            if i > 0 {
                                out.push(',');
                            }
                            out.push_str(&Value::String((*k).clone()).to_string());
                            out.push(':');
                            write(&map[k.as_str()], out);
                        }
                        out.push('}');
                    }
                    Value::Array(items) => {
                        out.push('[');
                        for (i, item) in items.iter().enumerate() {
                            if i > 0 {
                                out.push(',');
                            }
                            write(item, out);
                        }
                        out.push(']');
                    }
                    other => out.push_str(&other.to_string()),
                }
            }
            let mut out = String::new();
            write(&sort(v), &mut out);
            out
        }
        Err(_) => json.to_string(),
    }
}

/// FNV-1a, 128 bits: a stable hash (std's hasher may change between Rust releases).
struct Fnv128(u128);

impl Default for Fnv128 {
    fn default() -> Self {
        Self(0x6c62272e07bb014262b821756295c58d)
    }
}

impl Fnv128 {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u128::from(*b);
            self.0 = self.0.wrapping_mul(0x0000000001000000000000000000013B);
        }
    }

    fn finish(&self) -> u128 {
        self.0
    }
}

/// What an insert did.
#[derive(Debug, Clone)]
pub struct Inserted {
    /// The new job, or on conflict the active job that holds the same unique key.
    pub job: Job,
    /// True when a unique job with the same key was already active (nothing inserted).
    pub conflict: bool,
}

/// Id of each job of a bulk insert, in input order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InsertedId {
    /// The new job's id, or on conflict the existing active job's id.
    pub id: i64,
    /// True when nothing was inserted because of the unique key.
    pub conflict: bool,
}

/// Filter for listing jobs. Empty fields match everything.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Only this queue.
    pub queue: Option<String>,
    /// Only this state.
    pub state: Option<JobState>,
    /// Only this batch.
    pub batch: Option<String>,
    /// Only ids greater than this (for paging).
    pub after_id: Option<i64>,
    /// At most this many (default 100).
    pub limit: Option<i64>,
}

/// Checks a queue name: 1–64 characters from `[A-Za-z0-9_.:-]`.
pub(crate) fn validate_queue_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidQueueName(name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unique_key_ignores_key_order() {
        let a = NewJob::new("k", json!({"a": 1, "b": {"x": 1, "y": 2}})).unique(Unique::ByArgs);
        let b = NewJob::new("k", json!({"b": {"y": 2, "x": 1}, "a": 1})).unique(Unique::ByArgs);
        let c = NewJob::new("k", json!({"a": 2})).unique(Unique::ByArgs);
        assert_eq!(a.unique_key(), b.unique_key());
        assert_ne!(a.unique_key(), c.unique_key());
        assert_eq!(NewJob::new("k", json!({})).unique_key(), None);
    }

    #[test]
    fn validation_names_the_problem() {
        let err = NewJob::new("k", json!({}))
            .priority(12)
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("priority 12"), "{err}");
        let err = NewJob::new("k", json!({}))
            .queue("bad queue")
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("bad queue"), "{err}");
    }
}
