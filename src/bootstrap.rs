//! One place that wires a gateway instance together — pool, change listener, sign-in, schema
//! and router — for `serve`, the integration tests and anything else that starts one, so that
//! what the tests exercise is what production runs.

use std::time::Duration;

use axum::Router;

use crate::auth::{Accounts, JwtKeys};
use crate::config::{AuthSettings, Limits};
use crate::db::{Db, PoolSettings};
use crate::graphql::{self, GatewaySchema};
use crate::http::{self, AppState};
use crate::live::Hub;

/// What an instance is started with.
pub struct Settings {
    /// The database as the serving role (row-level security binds it).
    pub serving_url: String,
    pub keys: JwtKeys,
    /// The pool's size, statement timeout, waits and reconnection.
    pub pool: PoolSettings,
    pub event_retention: Duration,
    pub limits: Limits,
    pub auth: AuthSettings,
    /// `Origin`s allowed to open WebSockets besides the gateway's own.
    pub allowed_origins: Vec<String>,
    /// The packages the operator's registry fields scan (`GATEWAY_PACKAGES_DIR`).
    pub packages_dir: Option<std::path::PathBuf>,
    /// How often the SLA and expiry sweeps run; none runs them not at all (tests call them).
    pub sweep_every: Option<Duration>,
    /// Automatic persisted queries, or the trusted documents only.
    pub persisted: std::sync::Arc<crate::http::persisted::PersistedQueries>,
    /// Whether `/metrics` answers beyond loopback (`GATEWAY_METRICS_PUBLIC`).
    pub metrics_public: bool,
}

/// A started instance: its pool and schema are usable at once (the demo seed runs through
/// the schema), its router serves once taken.
pub struct Instance {
    pub db: Db,
    pub schema: GatewaySchema,
    persisted: std::sync::Arc<crate::http::persisted::PersistedQueries>,
    metrics: std::sync::Arc<crate::http::metrics::Metrics>,
    hub: Hub,
    keys: JwtKeys,
    limits: Limits,
    allowed_origins: Vec<String>,
    activity_every: Duration,
}

impl Instance {
    /// Connects the pool, starts the change listener and builds the schema.
    pub async fn start(settings: Settings) -> Result<Instance, String> {
        let db = Db::connect_with(&settings.serving_url, settings.pool)?;
        let hub = Hub::start(
            settings.serving_url.clone(),
            settings.event_retention,
            Some(db.circuit().clone()),
        )
        .await?;
        let accounts = Accounts::new(settings.keys.clone(), &settings.auth);
        if let Some(every) = settings.sweep_every {
            crate::domain::start_sweeps(db.clone(), every);
        }
        let schema = graphql::build(
            Some(db.clone()),
            Some(hub.clone()),
            graphql::Services {
                accounts: Some(accounts),
                packages_dir: settings.packages_dir.clone(),
            },
            &settings.limits,
        );
        Ok(Instance {
            db,
            schema,
            persisted: settings.persisted.clone(),
            metrics: crate::http::metrics::Metrics::new(settings.metrics_public),
            hub,
            keys: settings.keys,
            limits: settings.limits,
            allowed_origins: settings.allowed_origins,
            activity_every: settings.auth.activity_every,
        })
    }

    /// The HTTP and WebSocket routes; `draining` turning true starts the graceful shutdown of
    /// sockets and readiness.
    pub fn router(&self, draining: tokio::sync::watch::Receiver<bool>) -> Router {
        http::router(AppState {
            schema: self.schema.clone(),
            keys: self.keys.clone(),
            db: self.db.clone(),
            limits: self.limits.clone(),
            allowed_origins: self.allowed_origins.clone(),
            draining,
            activity: crate::auth::activity::Activity::new(self.activity_every),
            persisted: self.persisted.clone(),
            metrics: self.metrics.clone(),
            hub: Some(self.hub.clone()),
        })
    }
}
