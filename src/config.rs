//! Configuration, from the environment. Every variable the gateway reads is listed here.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `DATABASE_URL` | PostgreSQL to serve from, as a role without SUPERUSER/BYPASSRLS granted `gateway_app` (docs/database-roles.md) | unset: a private cluster under `.data/postgres`, served as `gateway_app` |
//! | `GATEWAY_OWNER_DATABASE_URL` | the same database as the schema owner: migrations and operator commands (`tenant`, `token`) use it | `DATABASE_URL` |
//! | `GATEWAY_JWT_SECRET` | HS256 secret of bearer tokens (at least 32 bytes) | required with `DATABASE_URL`; otherwise generated once into `.data/jwt-secret` |
//! | `GATEWAY_JWT_ISSUER` | when set, tokens must carry this `iss` (and are issued with it) | unset |
//! | `GATEWAY_JWT_AUDIENCE` | when set, tokens must carry this `aud` (and are issued with it) | unset |
//! | `GATEWAY_JWKS_FILE` | JSON Web Key Set file of an external identity provider: its RS256 / ES256 tokens are accepted besides the gateway's own HS256 ones | unset |
//! | `GATEWAY_JWKS_URL` | the same, fetched over `http://` or `https://` (at start-up, which fails if it cannot; 5 s timeout, 1 MiB at most); only one of the two | unset |
//! | `GATEWAY_JWKS_MIN_REFRESH_SECS` | least time between two refetches of the key set prompted by tokens naming an unknown `kid` | `60` |
//! | `GATEWAY_JWKS_MAX_AGE_SECS` | age after which the key set is refetched in the background | `3600` |
//! | `GATEWAY_JWT_TENANT_CLAIM` | where external tokens carry the tenant id: dot-separated keys of nested objects (`app.tenant`), or a JSON pointer starting with `/` for keys containing dots (`/https:~1~1example.com~1claims/tenant`) | `tenant_id` |
//! | `GATEWAY_JWT_USER_CLAIM` | where external tokens carry the user id (same syntax) | `sub` |
//! | `GATEWAY_JWT_ROLE_CLAIM` | where external tokens carry the role, `admin` or `user`, or a list of roles (`admin` if listed, else `user` if listed) (same syntax) | `role` |
//! | `GATEWAY_BIND` | listen address of `serve` | `127.0.0.1:8080` |
//! | `GATEWAY_DATA_DIR` | where the private cluster and the dev secret live | `<project>/.data` |
//! | `GATEWAY_DB_POOL_SIZE` | connections in the pool | two per core of the machine, 4 to 32 ([`default_pool_size`]) |
//! | `GATEWAY_DB_POOL_WAIT_MS` | longest a request waits for a connection when every one is busy; then it is answered `SERVICE_UNAVAILABLE` (HTTP 503) | `5000` |
//! | `GATEWAY_DB_POOL_MAX_WAITING` | requests that may wait for a connection at once; further ones are answered `SERVICE_UNAVAILABLE` at once | `10000` |
//! | `GATEWAY_DB_CONNECT_TIMEOUT_MS` | longest one connection attempt (connect, authenticate, set up) may take before it counts as failed (cause `timeout`) | `5000` |
//! | `GATEWAY_DB_RECONNECT_MIN_MS` | after a failed connection attempt the circuit opens: requests fail fast with `SERVICE_UNAVAILABLE` and one probe dials, first after this delay... | `100` |
//! | `GATEWAY_DB_RECONNECT_MAX_MS` | ...doubling up to this, jittered down to half of it, until a connection succeeds and closes the circuit (so recovery is noticed within it) | `1000` |
//! | `GATEWAY_SHUTDOWN_GRACE_SECS` | on SIGTERM, how long in-flight requests may take to finish before the process exits anyway | `10` |
//! | `GATEWAY_DEFAULT_PAGE_SIZE` | rows per page when a list gives no `first`/`last` | `50` |
//! | `GATEWAY_MAX_PAGE_SIZE` | largest `first`/`last` accepted | `500` |
//! | `GATEWAY_MAX_DEPTH` | deepest query accepted | `12` |
//! | `GATEWAY_MAX_COMPLEXITY` | most complex query accepted: each field costs 1, a list its selection times its page size (`first`, `last` or the default) | `10000` |
//! | `GATEWAY_MAX_BODY_BYTES` | largest request body | `1048576` |
//! | `GATEWAY_MAX_ALIASES_PER_FIELD` | how often one field may be aliased in a document | `15` |
//! | `GATEWAY_MAX_DIRECTIVES` | directives in one document | `50` |
//! | `GATEWAY_MAX_BATCH_OPERATIONS` | requests in one batched POST (a JSON array) | `10` |
//! | `GATEWAY_INTROSPECTION` | who may introspect the schema: `all` or `admin` | `all` |
//! | `GATEWAY_FIELD_SUGGESTIONS` | who gets "Did you mean" hints in errors: `all` or `admin` | `all` |
//! | `GATEWAY_PLANNED_READS` | `on`: query operations made only of rows, lists, relations and connections run as one plan each (`graphql::plan`), and subscriptions made of one `xChanged` field selecting `op`, `cursor` and the columns of `node`/`previous` run planned, each event rendered once per plan (`graphql::subscription`); `off`: async-graphql resolves every field of both; `verify`: queries run both ways, and a request whose answers differ fails (the tests run so; subscriptions run planned) | `on` |
//! | `GATEWAY_MAX_SUBSCRIPTIONS_PER_SOCKET` | subscriptions one WebSocket may hold at once | `100` |
//! | `GATEWAY_MAX_SUBSCRIPTIONS_PER_USER` | subscriptions one user may hold at once on this instance, over all its sockets | `500` |
//! | `GATEWAY_MAX_SUBSCRIPTIONS_PER_TENANT` | subscriptions one tenant's users may hold at once on this instance | `20000` |
//! | `GATEWAY_STATEMENT_TIMEOUT_MS` | longest a serving connection's statement may run before PostgreSQL cancels it (the request gets `LIMIT_EXCEEDED`) | `15000` |
//! | `GATEWAY_WS_INIT_TIMEOUT_SECS` | how long a WebSocket client has to send `connection_init` | `10` |
//! | `GATEWAY_WS_RECHECK_SECS` | how often an open WebSocket checks that its credential still holds (session not ended, tenant not suspended, user active, token not revoked); it closes with 4403 otherwise; each socket checks at a random 75-100 % of it less the age a shared read of the credential epoch may have (a second, or a quarter of it when shorter), so that sockets opened together do not all check at once and the sockets of an instance share that one read instead of a statement each | `30` |
//! | `GATEWAY_ALLOWED_ORIGINS` | comma-separated `Origin`s whose pages may open subscription WebSockets (`*` for any); the gateway's own pages and clients that send no `Origin` are always accepted | empty |
//! | `GATEWAY_PACKAGES_DIR` | a folder of packages (`<package>/seed/schema/entities.yaml` or `<package>/entities.yaml`) the schema registry scans; their entities are served once approved and applied at a start, with no build (docs/registry.md) | `<project>/packages` when that folder exists |
//! | `GATEWAY_EVENT_RETENTION_SECS` | how long change events stay resumable by subscribers | `86400` |
//! | `GATEWAY_SWEEP_SECS` | how often overdue tasks are escalated and expired notifications removed | `30` |
//! | `GATEWAY_TRUSTED_DOCUMENTS` | a persisted-documents manifest (Apollo's or GraphQL Code Generator's): only its operations run | unset |
//! | `GATEWAY_APQ` | `off` turns automatic persisted queries off | `on` |
//! | `GATEWAY_METRICS_PUBLIC` | `1` serves `/metrics` beyond loopback clients | unset |
//! | `GATEWAY_LOG_FORMAT` | `json`: one JSON object per log line (read by `telemetry::init`, before the rest) | text |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` | export traces over OTLP/HTTP there (with the other standard `OTEL_*` variables) | unset |
//! | `GATEWAY_ACCESS_TOKEN_TTL_SECS` | lifetime of access tokens issued by `login` / `refreshSession` | `900` |
//! | `GATEWAY_REFRESH_TOKEN_TTL_SECS` | lifetime of a sign-in session (its refresh tokens) | `2592000` (30 days) |
//! | `GATEWAY_LOGIN_ACCOUNT_BURST` | sign-in attempts per account before it must wait | `5` |
//! | `GATEWAY_LOGIN_ACCOUNT_REFILL_SECS` | then one more attempt per account every | `60` |
//! | `GATEWAY_LOGIN_ADDRESS_BURST` | sign-in attempts per client address before it must wait | `30` |
//! | `GATEWAY_LOGIN_ADDRESS_REFILL_SECS` | then one more attempt per address every | `2` |
//! | `GATEWAY_ACTIVITY_SECS` | how often at most a user's `lastActiveAt` is written (by each instance, beside the request; the stored value is only replaced when older than this) | `60` |
//! | `RUST_LOG` | log filter (tracing-subscriber syntax) | `info` |

use std::path::PathBuf;
use std::time::Duration;

pub use crate::auth::limiter::Allowance;
use crate::auth::{ClaimPath, ClaimPaths, JwksOptions, JwksSource};
use crate::db::circuit::CircuitSettings;
use crate::db::PoolSettings;

pub use gateway_engine::config::{Exposure, Limits, PlannedReads};

/// Signing in: token lifetimes and attempt limits.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub login_per_account: Allowance,
    pub login_per_address: Allowance,
    /// Least time between two writes of a user's `lastActiveAt` by one instance.
    pub activity_every: Duration,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            access_ttl: Duration::from_secs(900),
            refresh_ttl: Duration::from_secs(30 * 86_400),
            login_per_account: Allowance {
                burst: 5,
                refill: Duration::from_secs(60),
            },
            login_per_address: Allowance {
                burst: 30,
                refill: Duration::from_secs(2),
            },
            activity_every: Duration::from_secs(60),
        }
    }
}

impl AuthSettings {
    fn from_env() -> Result<Self, String> {
        let d = AuthSettings::default();
        let secs = |name: &str, default: Duration| -> Result<Duration, String> {
            Ok(Duration::from_secs(parsed(name, default.as_secs())?))
        };
        Ok(AuthSettings {
            access_ttl: secs("GATEWAY_ACCESS_TOKEN_TTL_SECS", d.access_ttl)?,
            refresh_ttl: secs("GATEWAY_REFRESH_TOKEN_TTL_SECS", d.refresh_ttl)?,
            login_per_account: Allowance {
                burst: parsed("GATEWAY_LOGIN_ACCOUNT_BURST", d.login_per_account.burst)?,
                refill: secs(
                    "GATEWAY_LOGIN_ACCOUNT_REFILL_SECS",
                    d.login_per_account.refill,
                )?,
            },
            login_per_address: Allowance {
                burst: parsed("GATEWAY_LOGIN_ADDRESS_BURST", d.login_per_address.burst)?,
                refill: secs(
                    "GATEWAY_LOGIN_ADDRESS_REFILL_SECS",
                    d.login_per_address.refill,
                )?,
            },
            activity_every: secs("GATEWAY_ACTIVITY_SECS", d.activity_every)?
                .max(Duration::from_secs(1)),
        })
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: Option<String>,
    pub owner_database_url: Option<String>,
    pub jwt_secret: Option<String>,
    pub jwt_issuer: Option<String>,
    pub jwt_audience: Option<String>,
    pub data_dir: PathBuf,
    /// Packages served besides the built-in catalog (`GATEWAY_PACKAGES_DIR`).
    pub packages_dir: Option<PathBuf>,
    /// The pool: size, statement timeout, waits, and the circuit's reconnection.
    pub pool: PoolSettings,
    /// How long in-flight requests may take to finish after SIGTERM.
    pub shutdown_grace: Duration,
    pub event_retention: std::time::Duration,
    /// How often the SLA and notification-expiry sweeps run.
    pub sweep_every: std::time::Duration,
    /// A trusted-documents manifest: only its operations run.
    pub trusted_documents: Option<PathBuf>,
    /// Automatic persisted queries (when no manifest is given).
    pub apq: bool,
    /// Whether `/metrics` answers beyond loopback.
    pub metrics_public: bool,
    pub allowed_origins: Vec<String>,
    pub limits: Limits,
    pub auth: AuthSettings,
    /// External identity providers' key set, if any (GATEWAY_JWKS_FILE / GATEWAY_JWKS_URL).
    pub jwks_source: Option<JwksSource>,
    pub jwks: JwksOptions,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn parsed<T: std::str::FromStr>(name: &str, default: T) -> Result<T, String> {
    match var(name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| format!("{name}={v} is not a valid value")),
    }
}

fn jwks_source() -> Result<Option<JwksSource>, String> {
    match (var("GATEWAY_JWKS_FILE"), var("GATEWAY_JWKS_URL")) {
        (Some(_), Some(_)) => Err("set GATEWAY_JWKS_FILE or GATEWAY_JWKS_URL, not both".into()),
        (Some(file), None) => Ok(Some(JwksSource::File(PathBuf::from(file.trim())))),
        (None, Some(url)) => {
            let url = url.trim().to_string();
            if url.starts_with("https://") || url.starts_with("http://") {
                Ok(Some(JwksSource::Url(url)))
            } else {
                Err(format!(
                    "GATEWAY_JWKS_URL={url} is not an http:// or https:// URL"
                ))
            }
        }
        (None, None) => Ok(None),
    }
}

fn jwks_options() -> Result<JwksOptions, String> {
    let d = JwksOptions::default();
    let path = |name: &str, default: ClaimPath| -> Result<ClaimPath, String> {
        match var(name) {
            None => Ok(default),
            Some(v) => ClaimPath::parse(&v).map_err(|e| format!("{name}: {e}")),
        }
    };
    Ok(JwksOptions {
        min_refresh: Duration::from_secs(parsed(
            "GATEWAY_JWKS_MIN_REFRESH_SECS",
            d.min_refresh.as_secs(),
        )?),
        max_age: Duration::from_secs(parsed("GATEWAY_JWKS_MAX_AGE_SECS", d.max_age.as_secs())?),
        claims: ClaimPaths {
            tenant: path("GATEWAY_JWT_TENANT_CLAIM", d.claims.tenant)?,
            user: path("GATEWAY_JWT_USER_CLAIM", d.claims.user)?,
            role: path("GATEWAY_JWT_ROLE_CLAIM", d.claims.role)?,
        },
    })
}

/// The pool's size unless `GATEWAY_DB_POOL_SIZE` says otherwise: two connections per core
/// of the machine, 4 to 32 (PostgreSQL's own rule of thumb). Connections beyond what
/// PostgreSQL can keep busy only make its backends take turns on the cores: on 2 cores,
/// reads cost PostgreSQL up to a third less CPU with 4 connections than with 16. Writes,
/// which hold their connection across several round trips, gain from a few more (8 served
/// ~10 % more creates than 4): set the size for a write-heavy load (docs/performance.md).
/// Meant for a database on a machine like the gateway's (the private cluster is on the same
/// one); size it for the database's cores otherwise.
pub fn default_pool_size() -> usize {
    std::thread::available_parallelism()
        .map_or(4, |n| 2 * n.get())
        .clamp(4, 32)
}

fn pool_settings() -> Result<PoolSettings, String> {
    let ms = |name: &str, default: u64| -> Result<Duration, String> {
        Ok(Duration::from_millis(parsed(name, default)?))
    };
    let d = PoolSettings::new(default_pool_size(), Duration::from_secs(15));
    let probe_min = ms("GATEWAY_DB_RECONNECT_MIN_MS", 100)?.max(Duration::from_millis(10));
    Ok(PoolSettings {
        size: parsed::<usize>("GATEWAY_DB_POOL_SIZE", d.size)?.max(1),
        statement_timeout: ms("GATEWAY_STATEMENT_TIMEOUT_MS", 15_000)?,
        wait_timeout: ms("GATEWAY_DB_POOL_WAIT_MS", d.wait_timeout.as_millis() as u64)?,
        max_waiting: parsed("GATEWAY_DB_POOL_MAX_WAITING", d.max_waiting)?,
        circuit: CircuitSettings {
            connect_timeout: ms("GATEWAY_DB_CONNECT_TIMEOUT_MS", 5_000)?
                .max(Duration::from_millis(100)),
            probe_min,
            probe_max: ms("GATEWAY_DB_RECONNECT_MAX_MS", 1_000)?.max(probe_min),
        },
    })
}

/// The project folder: where `cargo run` was invoked from, or the binary's compile-time root.
pub fn project_dir() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    if manifest.join("Cargo.toml").is_file() {
        manifest
    } else {
        std::env::current_dir().unwrap_or(manifest)
    }
}

impl Config {
    pub fn from_env() -> Result<Config, String> {
        let defaults = Limits::default();
        Ok(Config {
            database_url: var("DATABASE_URL"),
            owner_database_url: var("GATEWAY_OWNER_DATABASE_URL"),
            jwt_secret: var("GATEWAY_JWT_SECRET"),
            jwt_issuer: var("GATEWAY_JWT_ISSUER"),
            jwt_audience: var("GATEWAY_JWT_AUDIENCE"),
            packages_dir: var("GATEWAY_PACKAGES_DIR")
                .map(PathBuf::from)
                .or_else(|| Some(project_dir().join("packages")).filter(|d| d.is_dir())),
            data_dir: var("GATEWAY_DATA_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| project_dir().join(".data")),
            pool: pool_settings()?,
            shutdown_grace: Duration::from_secs(parsed("GATEWAY_SHUTDOWN_GRACE_SECS", 10)?),
            allowed_origins: var("GATEWAY_ALLOWED_ORIGINS")
                .map(|v| {
                    v.split(',')
                        .map(|o| o.trim().trim_end_matches('/').to_string())
                        .filter(|o| !o.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            event_retention: std::time::Duration::from_secs(parsed(
                "GATEWAY_EVENT_RETENTION_SECS",
                86_400,
            )?),
            sweep_every: std::time::Duration::from_secs(
                parsed::<u64>("GATEWAY_SWEEP_SECS", 30)?.max(1),
            ),
            trusted_documents: var("GATEWAY_TRUSTED_DOCUMENTS").map(PathBuf::from),
            apq: var("GATEWAY_APQ").is_none_or(|v| v != "off"),
            metrics_public: var("GATEWAY_METRICS_PUBLIC").is_some_and(|v| v == "1" || v == "true"),
            auth: AuthSettings::from_env()?,
            jwks_source: jwks_source()?,
            jwks: jwks_options()?,
            limits: Limits {
                default_page_size: parsed("GATEWAY_DEFAULT_PAGE_SIZE", defaults.default_page_size)?,
                max_page_size: parsed("GATEWAY_MAX_PAGE_SIZE", defaults.max_page_size)?,
                max_depth: parsed("GATEWAY_MAX_DEPTH", defaults.max_depth)?,
                max_complexity: parsed("GATEWAY_MAX_COMPLEXITY", defaults.max_complexity)?,
                max_body_bytes: parsed("GATEWAY_MAX_BODY_BYTES", defaults.max_body_bytes)?,
                ws_init_timeout: std::time::Duration::from_secs(parsed(
                    "GATEWAY_WS_INIT_TIMEOUT_SECS",
                    defaults.ws_init_timeout.as_secs(),
                )?),
                ws_recheck: std::time::Duration::from_secs(
                    parsed("GATEWAY_WS_RECHECK_SECS", defaults.ws_recheck.as_secs())?.max(1),
                ),
                max_aliases_per_field: parsed(
                    "GATEWAY_MAX_ALIASES_PER_FIELD",
                    defaults.max_aliases_per_field,
                )?,
                max_directives: parsed("GATEWAY_MAX_DIRECTIVES", defaults.max_directives)?,
                max_batch_operations: parsed(
                    "GATEWAY_MAX_BATCH_OPERATIONS",
                    defaults.max_batch_operations,
                )?,
                max_subscriptions_per_socket: parsed(
                    "GATEWAY_MAX_SUBSCRIPTIONS_PER_SOCKET",
                    defaults.max_subscriptions_per_socket,
                )?,
                max_subscriptions_per_user: parsed(
                    "GATEWAY_MAX_SUBSCRIPTIONS_PER_USER",
                    defaults.max_subscriptions_per_user,
                )?,
                max_subscriptions_per_tenant: parsed(
                    "GATEWAY_MAX_SUBSCRIPTIONS_PER_TENANT",
                    defaults.max_subscriptions_per_tenant,
                )?,
                introspection: parsed("GATEWAY_INTROSPECTION", defaults.introspection)?,
                suggestions: parsed("GATEWAY_FIELD_SUGGESTIONS", defaults.suggestions)?,
                planned_reads: parsed("GATEWAY_PLANNED_READS", defaults.planned_reads)?,
            },
        })
    }
}
