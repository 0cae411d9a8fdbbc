//! Hooks: middleware around one materialization attempt (tower's `Service`/`Layer` idea).
//!
//! A hook gets the attempt's [`Materializing`] state and a [`Next`] to call the rest of the stack;
//! it can act before, after, or instead of it. The default stack is
//! `telemetry → record → lineage → storage → core`; `core` runs the asset and ends every stack.
//! Hooks are registered by name so a [`crate::Job`] can name its stack (and carry per-hook
//! configuration), and a worker on another machine rebuilds the same stack from its own registry.

mod core;
mod lineage;
mod record;
mod storage;
mod telemetry;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

pub use self::core::CoreHook;
pub use self::lineage::LineageHook;
pub use self::record::RecordHook;
pub use self::storage::StorageHook;
pub use self::telemetry::{
    MATERIALIZATION_SECONDS, MATERIALIZATIONS, Metrics, MetricsSnapshot, TelemetryHook,
    describe_metrics,
};

use crate::asset::Asset;
use crate::context::Dependencies;
use crate::error::{Error, Result};
use crate::job::Job;
use crate::lineage::MaterializationKey;
use crate::output::Output;
use crate::resource::Resources;
use crate::storage::Storage;
use crate::suggest::did_you_mean;

/// Dependencies loaded for one attempt (by the runtime, before the stack runs).
#[derive(Debug, Default)]
pub struct LoadedDeps {
    /// Outputs by dependency name; missing optional ones are `None`.
    pub outputs: Arc<Dependencies>,
    /// The materializations those outputs came from, for lineage.
    pub consumed: Vec<MaterializationKey>,
}

/// Named hook stacks for common cases.
pub mod stacks {
    /// telemetry → record → lineage → storage → core.
    pub const DEFAULT: &[&str] = &["telemetry", "record", "lineage", "storage", "core"];
    /// Only run the asset: no records, no lineage, output not stored. For tests and benchmarks.
    pub const CORE_ONLY: &[&str] = &["core"];
    /// Everything but the materialization record.
    pub const WITHOUT_RECORDING: &[&str] = &["telemetry", "lineage", "storage", "core"];
}

/// The state of one materialization attempt, shared along the hook stack.
pub struct Materializing<'a> {
    /// The job being run.
    pub job: &'a Job,
    /// The asset being materialized.
    pub asset: &'a Arc<Asset>,
    /// Attempt number, 1-based.
    pub attempt: u32,
    /// The executor running it (recorded in the materialization).
    pub executor: &'a str,
    /// The loaded dependencies.
    pub deps: &'a LoadedDeps,
    /// Where results go: IO managers, the materialization store, lineage.
    pub storage: &'a Storage,
    /// The resources this process registered (the asset sees only those it requires).
    pub resources: &'a Resources,
    /// The longest the asset's function may run.
    pub timeout: Duration,
    /// Fires when the work is cancelled.
    pub cancel: &'a CancellationToken,
    /// Wall-clock start of the attempt.
    pub started_at: DateTime<Utc>,
    /// Monotonic start of the attempt.
    pub started: Instant,
    /// Metadata hooks add; the record hook stores it with the materialization.
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

impl Materializing<'_> {
    /// The configuration the job gives hook `name`.
    pub fn hook_config(&self, name: &str) -> Option<&serde_json::Value> {
        self.job.hook_config(name)
    }
}

/// Middleware around a materialization attempt.
#[async_trait]
pub trait Hook: Send + Sync + 'static {
    /// Runs around the rest of the stack; call `next.run(cx)` to continue.
    async fn call(&self, cx: &mut Materializing<'_>, next: Next<'_>) -> Result<Output>;
}

/// The rest of the hook stack.
pub struct Next<'a> {
    rest: &'a [Arc<dyn Hook>],
}

impl<'a> Next<'a> {
    pub(crate) fn new(stack: &'a [Arc<dyn Hook>]) -> Self {
        Next { rest: stack }
    }

    /// Runs the rest of the stack.
    pub async fn run(self, cx: &mut Materializing<'_>) -> Result<Output> {
        match self.rest.split_first() {
            Some((hook, rest)) => hook.call(cx, Next { rest }).await,
            None => Err(Error::config(
                "the hook stack ended before the 'core' hook; every stack must end with 'core'",
            )),
        }
    }
}

/// A resolved hook stack, ending with `core`.
pub type Stack = Arc<[Arc<dyn Hook>]>;

/// Hooks by name.
#[derive(Clone)]
pub struct HookRegistry {
    hooks: HashMap<String, Arc<dyn Hook>>,
    default_stack: Arc<[Arc<dyn Hook>]>,
    /// Stacks jobs named before, resolved once.
    named_stacks: Arc<std::sync::RwLock<HashMap<Vec<String>, Stack>>>,
}

/// How many distinct named stacks are cached; beyond that they are resolved per job.
const NAMED_STACK_CACHE: usize = 64;

impl HookRegistry {
    /// The built-in hooks plus `extra`, and the default stack resolved once.
    pub(crate) fn new(extra: Vec<(String, Arc<dyn Hook>)>, metrics: Arc<Metrics>) -> Result<Self> {
        let mut hooks: HashMap<String, Arc<dyn Hook>> = HashMap::new();
        hooks.insert("telemetry".into(), Arc::new(TelemetryHook::new(metrics)));
        hooks.insert("record".into(), Arc::new(RecordHook));
        hooks.insert("lineage".into(), Arc::new(LineageHook));
        hooks.insert("storage".into(), Arc::new(StorageHook));
        hooks.insert("core".into(), Arc::new(CoreHook));
        for (name, hook) in extra {
            hooks.insert(name, hook);
        }
        let mut registry = HookRegistry {
            hooks,
            default_stack: Arc::from(Vec::new()),
            named_stacks: Arc::default(),
        };
        registry.default_stack = registry.resolve_names(stacks::DEFAULT.iter().copied())?;
        Ok(registry)
    }

    /// The stack a job names, or the default stack.
    pub fn stack_for(&self, job: &Job) -> Result<Arc<[Arc<dyn Hook>]>> {
        let Some(names) = &job.hooks else {
            return Ok(Arc::clone(&self.default_stack));
        };
        if let Some(stack) = self
            .named_stacks
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(names)
        {
            return Ok(Arc::clone(stack));
        }
        let stack = self.resolve_names(names.iter().map(String::as_str))?;
        let mut cached = self
            .named_stacks
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cached.len() < NAMED_STACK_CACHE {
            cached.insert(names.clone(), Arc::clone(&stack));
        }
        Ok(stack)
    }

    /// Whether a hook called `name` is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.hooks.contains_key(name)
    }

    fn resolve_names<'n>(
        &self,
        names: impl Iterator<Item = &'n str>,
    ) -> Result<Arc<[Arc<dyn Hook>]>> {
        let mut stack = Vec::new();
        let mut last = None;
        for name in names {
            let hook = self.hooks.get(name).ok_or_else(|| {
                let hint = did_you_mean(name, self.hooks.keys().map(String::as_str));
                Error::config(format!("hook '{name}' is not registered{hint}"))
            })?;
            stack.push(Arc::clone(hook));
            last = Some(name);
        }
        if last != Some("core") {
            return Err(Error::config(format!(
                "a hook stack must end with 'core' (the hook that runs the asset); got {:?}",
                last.unwrap_or("an empty stack")
            )));
        }
        Ok(Arc::from(stack))
    }
}
