//! The HTTP transport: GraphQL over HTTP (POST and GET, per the GraphQL-over-HTTP spec),
//! GraphQL over WebSocket for subscriptions, GraphiQL for browsers, and health endpoints.

mod graphql_http;
mod legacy_ws;
pub mod metrics;
mod operations;
pub mod persisted;
mod playground;
mod transport_ws;
mod wakes;
mod ws;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::auth::JwtKeys;
use crate::config::Limits;
use crate::db::Db;
use crate::graphql::GatewaySchema;

/// What every handler shares.
pub struct AppState {
    pub schema: GatewaySchema,
    pub keys: JwtKeys,
    pub db: Db,
    pub limits: Limits,
    /// `Origin`s allowed to open WebSockets besides the gateway's own (see `config`).
    pub allowed_origins: Vec<String>,
    /// Turns true when the process is shutting down: readiness fails, upgrades are refused and
    /// open sockets are closed so that their clients reconnect elsewhere.
    pub draining: tokio::sync::watch::Receiver<bool>,
    /// Writes `User.lastActiveAt` at a bounded rate.
    pub activity: crate::auth::activity::Activity,
    /// Automatic persisted queries, or the trusted documents.
    pub persisted: Arc<persisted::PersistedQueries>,
    pub metrics: Arc<metrics::Metrics>,
    /// The change listener, whose cursor the metrics report.
    pub hub: Option<crate::live::Hub>,
}

pub fn router(state: AppState) -> Router {
    let body_limit = state.limits.max_body_bytes;
    Router::new()
        .route(
            "/graphql",
            get(graphql_http::get_handler).post(graphql_http::post_handler),
        )
        .route(playground::ASSETS_ROUTE, get(playground::asset))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics::handler))
        .route("/readyz", get(readyz))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(Arc::new(state))
}

impl AppState {
    /// The last change event delivered to this instance's subscribers.
    pub fn hub_cursor(&self) -> Option<i64> {
        self.hub.as_ref().map(crate::live::Hub::cursor)
    }
}

/// The process is alive.
async fn healthz() -> &'static str {
    "ok"
}

/// The database answers: the instance can take traffic. While the pool's circuit is open
/// (the database unreachable) this is answered at once, without dialling.
async fn readyz(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    if *state.draining.borrow() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down")
    } else if state.db.circuit().is_open() {
        (StatusCode::SERVICE_UNAVAILABLE, "database unreachable")
    } else if state.db.ready().await {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "database unreachable")
    }
}
