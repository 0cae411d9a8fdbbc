//! The Selector: which executor runs a job.
//!
//! Executors are registered under names; a [`Strategy`] names one (or brings its own). The job
//! records the name of the executor that owns it, so `job_status` and `cancel_job` route without
//! the caller repeating the strategy.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::Executor;
use crate::error::{Error, Result};

/// How to choose the executor for a run.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum Strategy {
    /// The queue when one is configured, otherwise Sync.
    #[default]
    Auto,
    /// The `sync` executor.
    Sync,
    /// The `async` (TaskAsync) executor.
    Async,
    /// The `queue` executor.
    Queue,
    /// The `serial` executor.
    Serial,
    /// The executor registered under this name.
    Named(String),
    /// This executor (registered under its name on first use).
    Custom(Arc<dyn Executor>),
}

impl Strategy {
    /// The executor registered as `name`.
    pub fn named(name: impl Into<String>) -> Self {
        Strategy::Named(name.into())
    }

    /// Parses a person's choice: `auto`, `sync`, `async`, `queue`, `serial`, or a registered name.
    pub fn parse(input: &str) -> Self {
        match input {
            "auto" => Strategy::Auto,
            "sync" => Strategy::Sync,
            "async" => Strategy::Async,
            "queue" => Strategy::Queue,
            "serial" => Strategy::Serial,
            other => Strategy::Named(other.to_owned()),
        }
    }

    /// The name [`Strategy::parse`] reads back (a custom executor's registered name).
    pub fn name(&self) -> String {
        match self {
            Strategy::Auto => String::from("auto"),
            Strategy::Sync => String::from("sync"),
            Strategy::Async => String::from("async"),
            Strategy::Queue => String::from("queue"),
            Strategy::Serial => String::from("serial"),
            Strategy::Named(name) => name.clone(),
            Strategy::Custom(executor) => executor.name().to_owned(),
        }
    }
}

impl std::fmt::Debug for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Strategy::Auto => f.write_str("Auto"),
            Strategy::Sync => f.write_str("Sync"),
            Strategy::Async => f.write_str("Async"),
            Strategy::Queue => f.write_str("Queue"),
            Strategy::Serial => f.write_str("Serial"),
            Strategy::Named(name) => write!(f, "Named({name:?})"),
            Strategy::Custom(executor) => write!(f, "Custom({:?})", executor.name()),
        }
    }
}

/// Executors by name.
#[derive(Default)]
pub struct ExecutorTable {
    by_name: RwLock<HashMap<String, Arc<dyn Executor>>>,
}

impl ExecutorTable {
    /// Registers `executor` as `name`, replacing any earlier one.
    pub fn register(&self, name: impl Into<String>, executor: Arc<dyn Executor>) {
        self.write().insert(name.into(), executor);
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<dyn Executor>>> {
        self.by_name.write().unwrap_or_else(|p| p.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<dyn Executor>>> {
        self.by_name.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The executor registered as `name`.
    pub fn get(&self, name: &str) -> Result<Arc<dyn Executor>> {
        let table = self.read();
        table.get(name).cloned().ok_or_else(|| {
            let hint = crate::suggest::did_you_mean(name, table.keys().map(String::as_str));
            let mut names: Vec<&str> = table.keys().map(String::as_str).collect();
            names.sort_unstable();
            Error::config(format!(
                "no executor is registered as '{name}'{hint} (registered: {})",
                names.join(", ")
            ))
        })
    }

    /// Whether an executor is registered as `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.read().contains_key(name)
    }

    /// The registered names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.read().keys().cloned().collect();
        names.sort_unstable();
        names
    }

    /// The executor `strategy` selects, with the name it is registered under.
    pub fn select(&self, strategy: &Strategy) -> Result<(String, Arc<dyn Executor>)> {
        let name = match strategy {
            Strategy::Auto if self.contains("queue") => "queue",
            Strategy::Auto | Strategy::Sync => "sync",
            Strategy::Async => "async",
            Strategy::Serial => "serial",
            Strategy::Queue if !self.contains("queue") => {
                return Err(Error::config(
                    "Strategy::Queue needs a queue: configure one with \
                     FlowStone::builder().database(\"sqlite://flowstone.db\")",
                ));
            }
            Strategy::Queue => "queue",
            Strategy::Named(name) => name,
            Strategy::Custom(executor) => {
                let name = executor.name().to_owned();
                let mut table = self.write();
                match table.get(&name) {
                    Some(existing) if !Arc::ptr_eq(existing, executor) => {
                        return Err(Error::config(format!(
                            "another executor is already registered as '{name}'; give the custom \
                             executor a different name()"
                        )));
                    }
                    Some(_) => {}
                    None => {
                        table.insert(name.clone(), Arc::clone(executor));
                    }
                }
                return Ok((name, Arc::clone(executor)));
            }
        };
        Ok((name.to_owned(), self.get(name)?))
    }
}
