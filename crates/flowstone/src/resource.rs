//! Resources: shared things assets use (a connection pool, an HTTP client, a config).
//!
//! Registered by name on the builder and set up lazily, once, on first use. An asset receives only
//! the resources it declared with `requires`. A resource whose setup fails is reported as an error
//! naming it to the assets that asked for it; every other asset keeps working, and the next use
//! tries the setup again.

use std::any::Any;
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tokio::sync::OnceCell;

use crate::error::{Error, ErrorKind, Result};

type AnyResource = Arc<dyn Any + Send + Sync>;
type SetupFn = Box<dyn Fn() -> BoxFuture<'static, Result<AnyResource>> + Send + Sync>;

struct Slot {
    setup: SetupFn,
    value: OnceCell<AnyResource>,
    type_name: &'static str,
}

/// The registered resources of one FlowStone instance.
#[derive(Clone, Default)]
pub struct Resources {
    slots: Arc<HashMap<String, Slot>>,
}

/// Collects resources on the builder.
#[derive(Default)]
pub(crate) struct ResourcesBuilder {
    slots: HashMap<String, Slot>,
}

impl ResourcesBuilder {
    pub(crate) fn add<F, Fut, T, E>(&mut self, name: String, setup: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<T, E>> + Send + 'static,
        T: Send + Sync + 'static,
        E: std::fmt::Display + 'static,
    {
        let slot_name = name.clone();
        let setup: SetupFn = Box::new(move || {
            let name = slot_name.clone();
            setup()
                .map(move |result| match result {
                    Ok(value) => Ok(Arc::new(value) as AnyResource),
                    Err(err) => Err(Error::new(
                        ErrorKind::Resource,
                        format!("resource '{name}' failed to set up: {err}"),
                    )),
                })
                .boxed()
        });
        self.slots.insert(
            name,
            Slot {
                setup,
                value: OnceCell::new(),
                type_name: std::any::type_name::<T>(),
            },
        );
    }

    pub(crate) fn names(&self) -> BTreeSet<String> {
        self.slots.keys().cloned().collect()
    }

    pub(crate) fn build(self) -> Resources {
        Resources {
            slots: Arc::new(self.slots),
        }
    }
}

impl Resources {
    /// The resource `name` as `T`, set up on first use.
    pub async fn get<T: Send + Sync + 'static>(&self, name: &str) -> Result<Arc<T>> {
        let slot = self.slots.get(name).ok_or_else(|| {
            Error::new(
                ErrorKind::Resource,
                format!("resource '{name}' is not registered"),
            )
        })?;
        let value = slot.value.get_or_try_init(|| (slot.setup)()).await?;
        Arc::clone(value).downcast::<T>().map_err(|_| {
            Error::new(
                ErrorKind::Resource,
                format!(
                    "resource '{name}' holds a {}, not a {}",
                    slot.type_name,
                    std::any::type_name::<T>()
                ),
            )
        })
    }
}

impl std::fmt::Debug for Resources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.slots.keys()).finish()
    }
}
