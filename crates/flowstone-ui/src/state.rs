//! What every handler shares: the FlowStone, the token (if any) and the CSRF token.

use std::sync::Arc;

use flowstone::FlowStone;

/// How the dashboard guards itself.
#[derive(Debug, Clone, Default)]
pub struct UiOptions {
    /// When set, every request must carry it (`Authorization: Bearer TOKEN`, or the cookie the
    /// login form sets). [`crate::serve`] insists on one for any address but loopback.
    pub token: Option<String>,
}

/// The state behind the router (cheap to clone).
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) fs: FlowStone,
    pub(crate) inner: Arc<Guards>,
}

/// The secrets: the access token and the CSRF token forms carry.
pub(crate) struct Guards {
    pub(crate) token: Option<String>,
    pub(crate) csrf: String,
}

impl AppState {
    pub(crate) fn new(fs: FlowStone, options: UiOptions) -> Self {
        AppState {
            fs,
            inner: Arc::new(Guards {
                token: options.token.filter(|t| !t.is_empty()),
                csrf: crate::auth::new_secret(),
            }),
        }
    }

    /// The CSRF token every form of this server carries.
    pub(crate) fn csrf(&self) -> &str {
        &self.inner.csrf
    }

    /// The queue, when the FlowStone has a database.
    pub(crate) fn queue(&self) -> Option<flowstone_queue::Queue> {
        self.fs.queue()
    }
}
