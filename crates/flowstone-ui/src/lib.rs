//! FlowStone's web dashboard, as a library: an [axum] router over a [`FlowStone`] that shows
//! the pipeline (assets, their graph, every partition's status, jobs, backfills, schedules) and
//! steers it (materialize, backfill, cancel, resume, retry, schedules on and off), plus the
//! Prometheus endpoint `/metrics`.
//!
//! ```no_run
//! # async fn run(fs: flowstone::FlowStone) -> Result<(), flowstone_ui::ServeError> {
//! // Mount it in your own server...
//! let app: axum::Router = flowstone_ui::router(fs.clone(), flowstone_ui::UiOptions::default());
//! // ...or serve it as `flowstone-cli ui` does (127.0.0.1 needs no token; any other address does).
//! let bind: std::net::SocketAddr = "127.0.0.1:3000".parse().unwrap();
//! flowstone_ui::serve(fs, bind, None, std::future::pending()).await
//! # }
//! ```
//!
//! Pages are HTML rendered on the server ([`html`]) with a little hand-written CSS and
//! JavaScript served from the binary (nothing is fetched from elsewhere): the asset graph is an
//! SVG laid out here ([`graph_svg`]), the partition grid a canvas fed by one character per
//! partition ([`grid`]), and backfill progress arrives by server-sent events ([`sse`]).
//!
//! Safety: GET never changes anything; every action is a POST carrying the page's CSRF token,
//! and with a token configured ([`UiOptions::token`]) every request needs it, as a bearer
//! header or the cookie the login form sets ([`auth`]).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
mod error;
pub mod graph_svg;
pub mod grid;
pub mod html;
pub mod metrics;
mod pages;
mod serve;
pub mod sse;
mod state;

pub use error::UiError;
pub use serve::{ServeError, listen, serve, serve_on};
pub use state::UiOptions;

use axum::Router;
use axum::routing::{get, post};
use flowstone::FlowStone;

/// The dashboard's routes over `fs`, ready to serve or to nest in a larger router.
pub fn router(fs: FlowStone, options: UiOptions) -> Router {
    // Record from now on, not from the first scrape.
    metrics::install();
    let state = state::AppState::new(fs, options);
    Router::new()
        .route("/", get(pages::overview::page))
        .route("/graph", get(pages::graph::page))
        .route("/assets/{asset}", get(pages::asset::page))
        .route(
            "/assets/{asset}/materialize",
            post(pages::asset::materialize),
        )
        .route("/assets/{asset}/backfill", post(pages::asset::backfill))
        .route(
            "/assets/{asset}/partitions/{partition}",
            get(pages::partition::page),
        )
        .route("/jobs", get(pages::jobs::list))
        .route("/jobs/{id}", get(pages::jobs::detail))
        .route("/jobs/{id}/cancel", post(pages::jobs::cancel))
        .route("/jobs/{id}/retry", post(pages::jobs::retry))
        .route("/backfills", get(pages::backfills::list))
        .route("/backfills/{id}", get(pages::backfills::detail))
        .route("/backfills/{id}/events", get(sse::backfill_events))
        .route("/backfills/{id}/cancel", post(pages::backfills::cancel))
        .route("/backfills/{id}/resume", post(pages::backfills::resume))
        .route("/automation", get(pages::automation::page))
        .route("/automation/{kind}/{name}", post(pages::automation::switch))
        .route("/metrics", get(metrics::endpoint))
        .route("/static/app.css", get(html::stylesheet))
        .route("/static/app.js", get(html::script))
        .route("/login", get(auth::login_page).post(auth::login))
        .fallback(pages::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .with_state(state)
}
