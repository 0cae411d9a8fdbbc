//! Serving the router on an address, with the safe default: loopback needs no token, any
//! other address refuses to start without one.

use std::future::Future;
use std::net::SocketAddr;

use flowstone::FlowStone;

use crate::state::UiOptions;

/// Why [`serve`] could not serve.
#[derive(Debug)]
pub enum ServeError {
    /// A non-loopback address without a token.
    TokenRequired(SocketAddr),
    /// The address could not be bound.
    Bind(SocketAddr, std::io::Error),
    /// The server failed while running.
    Serve(std::io::Error),
}

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServeError::TokenRequired(addr) => write!(
                f,
                "refusing to serve the dashboard on {addr} without a token: anyone who can reach \
                 that address could steer the pipeline; pass --token (or FLOWSTONE_UI_TOKEN), \
                 or bind 127.0.0.1"
            ),
            ServeError::Bind(addr, err) => write!(f, "could not listen on {addr}: {err}"),
            ServeError::Serve(err) => write!(f, "the dashboard's server failed: {err}"),
        }
    }
}

impl std::error::Error for ServeError {}

/// Serves the dashboard of `fs` on `bind` until `shutdown` resolves. A `bind` address other
/// than loopback requires `token`. The bound address is logged at INFO and printed by the CLI.
pub async fn serve(
    fs: FlowStone,
    bind: SocketAddr,
    token: Option<String>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let listener = listen(bind, token.as_deref()).await?;
    serve_on(fs, listener, token, shutdown).await
}

/// Binds `bind` after the token check of [`serve`] (so a caller can learn the port of `:0`).
pub async fn listen(
    bind: SocketAddr,
    token: Option<&str>,
) -> Result<tokio::net::TcpListener, ServeError> {
    if !bind.ip().is_loopback() && token.is_none_or(str::is_empty) {
        return Err(ServeError::TokenRequired(bind));
    }
    tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|e| ServeError::Bind(bind, e))
}

/// Serves on a bound listener (from [`listen`]) until `shutdown` resolves.
pub async fn serve_on(
    fs: FlowStone,
    listener: tokio::net::TcpListener,
    token: Option<String>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let app = crate::router(fs, UiOptions { token });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(ServeError::Serve)
}
