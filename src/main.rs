#![recursion_limit = "256"]
//! The `gateway` command: serve, migrate, tenants, tokens, schema export. The transport and the
//! process (signals, private database) live here; the schema is the library's.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::path::Path;

use clap::{Parser, Subcommand};
use gateway::auth::{Jwks, JwksSource, JwtKeys, Role};
use gateway::bootstrap::{Instance, Settings};
use gateway::config::Config;
use gateway::db;
use gateway::db::cluster::{ClusterOptions, PrivateCluster};
use gateway::registry::cli as schema_cli;
use gateway::{demo, graphql, tenants};

// Many small allocations per field of a response, from every worker thread: mimalloc's
// thread-local heaps beat glibc's arenas by far here (docs/performance.md).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// mimalloc's option numbers (v2's `mi_option_e`; libmimalloc-sys names only some of them).
#[cfg(feature = "mimalloc")]
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
#[cfg(feature = "mimalloc")]
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Commits mimalloc's arena memory page by page as it is used, not all at once, and purges
/// what start-up frees at once: the schema's start-up garbage then leaves no committed pages
/// behind (idle RSS 59 -> 42 MiB with the aggregate types; docs/performance.md). Runs from
/// `.init_array`, before the Rust runtime's first allocation reserves the first arena;
/// [`release_startup_memory`] restores the purge delay for serving. `MIMALLOC_*` variables
/// still override.
#[cfg(all(feature = "mimalloc", target_os = "linux"))]
#[used]
#[link_section = ".init_array"]
static LAZY_ARENA_COMMIT: extern "C" fn() = {
    extern "C" {
        fn getenv(name: *const std::ffi::c_char) -> *mut std::ffi::c_char;
    }
    extern "C" fn lazy_arena_commit() {
        // SAFETY: getenv reads the environment (a C string literal; nothing is allocated, so
        // mimalloc is not touched first); mi_option_set sets one of its integer options.
        unsafe {
            if getenv(c"MIMALLOC_ARENA_EAGER_COMMIT".as_ptr()).is_null() {
                libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0);
            }
            if getenv(c"MIMALLOC_PURGE_DELAY".as_ptr()).is_null() {
                libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
            }
        }
    }
    lazy_arena_commit
};

#[derive(Parser)]
#[command(
    name = "gateway",
    version,
    about = "Multi-tenant GraphQL gateway over PostgreSQL"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve GraphQL over HTTP. Without DATABASE_URL: starts a private PostgreSQL, migrates it,
    /// creates a demo tenant with sample data and prints how to connect.
    Serve {
        #[arg(long, env = "GATEWAY_BIND", default_value = "127.0.0.1:8080")]
        bind: SocketAddr,
        /// Do not apply pending migrations at start.
        #[arg(long)]
        no_migrate: bool,
    },
    /// Apply pending migrations and exit.
    Migrate,
    /// Tenants (operator actions).
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Print a signed token for an existing user.
    Token {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        user: String,
        /// admin or user; defaults to the user's role.
        #[arg(long)]
        role: Option<String>,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: i64,
        /// A platform operator's token: may create, change and delete global rows (pricing
        /// tiers, the block library, the schema registry). Never granted by signing in.
        #[arg(long)]
        platform: bool,
    },
    /// Revoke every operator token issued so far for a tenant (`token`, `tenant create`);
    /// they are refused from their next request. Sign-in sessions are not affected.
    RevokeTokens {
        #[arg(long)]
        tenant: String,
    },
    /// Print the GraphQL schema (SDL): the built-in catalog, with the packages of
    /// GATEWAY_PACKAGES_DIR as declared (what they serve once approved and applied).
    ExportSchema,
    /// The package schema registry: scan packages, review, approve or reject their changes.
    /// Approved changes are applied at the next `serve` or `migrate`.
    Schema {
        #[command(subcommand)]
        command: SchemaCommand,
    },
}

#[derive(Subcommand)]
enum SchemaCommand {
    /// Load every package under GATEWAY_PACKAGES_DIR, validate them together and queue each
    /// difference from the applied catalog as a pending change.
    Scan,
    /// Changes waiting for a decision, approved for the next start, or failed.
    List {
        /// Every change, applied and rejected ones too.
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Approve a pending change (its id) or `all` of them.
    Approve {
        target: String,
        /// Accept changes that drop, rename, retype or tighten what is stored.
        #[arg(long)]
        allow_destructive: bool,
    },
    /// Reject a change not yet applied (its id) or `all` of them.
    Reject { target: String },
    /// The SQL a package's changes would run and the GraphQL types it would add.
    Preview { package: String },
    /// Applied package entities, the queue, failures, drift, and unscanned packages.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Apply approved changes now (what `serve` and `migrate` do at start).
    Apply,
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Create a tenant and its admin user; prints JSON with their ids and an admin token.
    Create {
        slug: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        admin_email: Option<String>,
        #[arg(long, default_value_t = 86400)]
        ttl: i64,
    },
}

fn main() -> std::process::ExitCode {
    let _telemetry = gateway::telemetry::init();
    let cli = Cli::parse();
    // Schema building and validation recurse deeply over ~80 entities: give workers room.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(16 << 20)
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(run(cli));
    // Tasks still running (commits of read sessions, abandoned requests) get a moment, not
    // an unbounded wait.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Where the database is, as the schema owner and as the serving role.
struct Database {
    /// Migrations and operator commands.
    owner: String,
    /// Requests: a role row-level security binds.
    serving: String,
    cluster: Option<PrivateCluster>,
}

/// The database to use: DATABASE_URL (and GATEWAY_OWNER_DATABASE_URL), or the private cluster
/// (started if needed), owned by `postgres` and served as `gateway_app`.
async fn database(config: &Config) -> Result<Database, String> {
    if let Some(url) = &config.database_url {
        return Ok(Database {
            owner: config.owner_database_url.clone().unwrap_or(url.clone()),
            serving: url.clone(),
            cluster: None,
        });
    }
    let dir = config.data_dir.join("postgres");
    let cluster = tokio::task::spawn_blocking(move || {
        PrivateCluster::ensure(&dir, &ClusterOptions::default())
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    db::create_database(&cluster.url("postgres"), "gateway", None).await?;
    Ok(Database {
        owner: cluster.url("gateway"),
        serving: cluster.url_as(db::SERVING_ROLE, "gateway"),
        cluster: Some(cluster),
    })
}

/// The token keys, with the configured issuer and audience.
fn jwt_keys(config: &Config, private: bool) -> Result<JwtKeys, String> {
    Ok(secret_keys(config, private)?
        .with_issuer_audience(config.jwt_issuer.clone(), config.jwt_audience.clone()))
}

/// The keys `serve` verifies with: `jwt_keys`, and an external identity provider's key set
/// when one is configured (read or fetched now, so a wrong one stops the start). Operator
/// commands only sign, and do not need it.
async fn serving_keys(config: &Config, private: bool) -> Result<JwtKeys, String> {
    let keys = jwt_keys(config, private)?;
    let Some(source) = &config.jwks_source else {
        return Ok(keys);
    };
    let jwks = Jwks::load(source.clone(), config.jwks.clone())
        .await
        .map_err(|e| match source {
            JwksSource::File(_) => format!("GATEWAY_JWKS_FILE: {e}"),
            JwksSource::Url(_) => format!("GATEWAY_JWKS_URL (is it reachable?): {e}"),
        })?;
    Ok(keys.with_jwks(jwks))
}

/// The token secret: configured, or (for the private cluster only) generated once and kept.
fn secret_keys(config: &Config, private: bool) -> Result<JwtKeys, String> {
    if let Some(secret) = &config.jwt_secret {
        if secret.len() < 32 {
            return Err("GATEWAY_JWT_SECRET must be at least 32 bytes".into());
        }
        return Ok(JwtKeys::hs256(secret.as_bytes()));
    }
    if !private {
        return Err("GATEWAY_JWT_SECRET is required when DATABASE_URL is set".into());
    }
    let path = config.data_dir.join("jwt-secret");
    let secret = match std::fs::read_to_string(&path) {
        Ok(s) if s.trim().len() >= 32 => s.trim().to_string(),
        _ => {
            let bytes: [u8; 32] = rand::random();
            let s: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            write_private(&path, &s)?;
            s
        }
    };
    Ok(JwtKeys::hs256(secret.as_bytes()))
}

fn write_private(path: &Path, contents: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    f.write_all(contents.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

async fn run(cli: Cli) -> Result<(), String> {
    let config = Config::from_env()?;
    match cli.command {
        Command::ExportSchema => {
            gateway::catalog::install(config.packages_dir.as_deref())?;
            print!(
                "{}",
                graphql::build(None, None, Default::default(), &config.limits).sdl()
            );
            Ok(())
        }
        Command::Migrate => {
            let database = database(&config).await?;
            let applied = db::migrate(&database.owner).await?;
            println!("{} migration(s) applied", applied.len());
            let changes = schema_cli::apply(&database.owner).await?;
            println!("{} schema change(s) applied", changes.applied.len());
            schema_cli::failed(&changes)
        }
        Command::Schema { command } => {
            let database = database(&config).await?;
            db::migrate(&database.owner).await?;
            let (owner, dir) = (&database.owner, config.packages_dir.as_deref());
            match command {
                SchemaCommand::Scan => schema_cli::scan(owner, dir).await,
                SchemaCommand::List { all, json } => schema_cli::list(owner, all, json).await,
                SchemaCommand::Approve {
                    target,
                    allow_destructive,
                } => schema_cli::approve(owner, &target, allow_destructive).await,
                SchemaCommand::Reject { target } => schema_cli::reject(owner, &target).await,
                SchemaCommand::Preview { package } => {
                    schema_cli::preview(owner, dir, &package).await
                }
                SchemaCommand::Status { json } => schema_cli::status(owner, dir, json).await,
                SchemaCommand::Apply => {
                    let changes = schema_cli::apply(owner).await?;
                    println!("{} schema change(s) applied", changes.applied.len());
                    schema_cli::failed(&changes)
                }
            }
        }
        Command::Tenant {
            command:
                TenantCommand::Create {
                    slug,
                    name,
                    admin_email,
                    ttl,
                },
        } => {
            let database = database(&config).await?;
            let keys = jwt_keys(&config, database.cluster.is_some())?;
            let url = database.owner;
            db::migrate(&url).await?;
            let email = admin_email.unwrap_or_else(|| format!("admin@{slug}.example"));
            let created = tenants::create_tenant(
                &url,
                &keys,
                &slug,
                name.as_deref().unwrap_or(&slug),
                &email,
                ttl,
            )
            .await?;
            println!(
                "{}",
                serde_json::to_string_pretty(&created).map_err(|e| e.to_string())?
            );
            Ok(())
        }
        Command::Token {
            tenant,
            user,
            role,
            ttl,
            platform,
        } => {
            let role = match role.as_deref() {
                None => None,
                Some(r) => Some(Role::parse(r).ok_or_else(|| format!("unknown role {r}"))?),
            };
            let database = database(&config).await?;
            let keys = jwt_keys(&config, database.cluster.is_some())?;
            println!(
                "{}",
                tenants::token_for(&database.owner, &keys, &tenant, &user, role, platform, ttl)
                    .await?
            );
            Ok(())
        }
        Command::RevokeTokens { tenant } => {
            let database = database(&config).await?;
            let generation = tenants::revoke_operator_tokens(&database.owner, &tenant).await?;
            println!("operator tokens of {tenant} revoked (generation {generation})");
            Ok(())
        }
        Command::Serve { bind, no_migrate } => serve(config, bind, no_migrate).await,
    }
}

/// Gives back what start-up (migrations, catalog, schema build) allocated and freed: mimalloc
/// keeps freed pages for reuse a while, and an idle gateway would carry them in its RSS.
fn release_startup_memory() {
    // SAFETY: mi_collect only walks mimalloc's own heaps, mi_option_set sets an integer
    // option; no pointer is passed.
    #[cfg(feature = "mimalloc")]
    unsafe {
        libmimalloc_sys::mi_collect(true);
        // Serving purges with mimalloc's default delay (10 ms): fewer syscalls under load.
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 10);
        }
    }
}

async fn serve(config: Config, bind: SocketAddr, no_migrate: bool) -> Result<(), String> {
    gateway::catalog::embedded().map_err(|e| e.to_string())?;
    let Database {
        owner,
        serving,
        cluster,
    } = database(&config).await?;
    let keys = serving_keys(&config, cluster.is_some()).await?;
    if !no_migrate {
        let applied = db::migrate(&owner).await?;
        if !applied.is_empty() {
            tracing::info!(count = applied.len(), "migrations applied");
        }
        // A change that fails is marked FAILED (see `gateway schema status`); the catalog
        // served is the one before it.
        let changes = schema_cli::apply(&owner).await?;
        if !changes.applied.is_empty() {
            tracing::info!(changes = ?changes.applied, "schema changes applied");
        }
    }
    let catalog = &gateway::catalog::install_applied(&owner).await?.catalog;
    tracing::info!(
        packages = catalog.packages.len(),
        entities = catalog.entities.len(),
        "catalog loaded"
    );
    if cluster.is_some() {
        db::allow_serving_login(&owner).await?;
    }
    db::check_serving_role(&serving).await?;
    gateway::auth::password::prepare()
        .await
        .map_err(|e| format!("{e:?}"))?;
    let instance = Instance::start(Settings {
        serving_url: serving.clone(),
        keys: keys.clone(),
        pool: config.pool,
        event_retention: config.event_retention,
        limits: config.limits.clone(),
        auth: config.auth.clone(),
        allowed_origins: config.allowed_origins.clone(),
        packages_dir: config.packages_dir.clone(),
        sweep_every: Some(config.sweep_every),
        persisted: std::sync::Arc::new(persisted_queries(&config)?),
        metrics_public: config.metrics_public,
    })
    .await?;

    let mut demo_header = None;
    if cluster.is_some() {
        // The development setup: a demo tenant with sample data, and a token to use it.
        let created = tenants::create_tenant(
            &owner,
            &keys,
            "demo",
            "Demo",
            "admin@demo.example",
            30 * 86400,
        )
        .await?;
        if created.created {
            demo::seed(&instance.schema, created.tenant_id, created.admin_user_id).await?;
        }
        demo_header = Some(created.token);
    }

    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|e| format!("cannot listen on {bind}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let (drain_tx, drain_rx) = tokio::sync::watch::channel(false);
    let app = instance.router(drain_rx);
    release_startup_memory();
    println!("GraphiQL: http://{local}/graphql");
    if let Some(token) = &demo_header {
        println!("Paste into GraphiQL's Headers tab (demo tenant admin, valid 30 days):");
        println!("{{\"Authorization\": \"Bearer {token}\"}}");
        println!("More tokens: cargo run -- token --tenant demo --user ada@demo.example");
    }
    tracing::info!(%local, "serving");
    let grace = config.shutdown_grace;
    let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
    // On SIGTERM: stop accepting, fail readiness, close sockets with 1001, and let the
    // requests in flight finish (a mutation's COMMIT is awaited before its answer, so what
    // was acknowledged is committed); idle keep-alive connections are closed at once.
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown_signal().await;
        tracing::info!(
            grace_secs = grace.as_secs(),
            "shutting down: no new connections, closing subscription sockets, finishing requests in flight"
        );
        let _ = drain_tx.send(true);
        let _ = signalled_tx.send(());
    });
    let grace_over = async move {
        if signalled_rx.await.is_err() {
            // The server ended without a signal: nothing to wait for.
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(grace).await;
    };
    let result = tokio::select! {
        r = server.into_future() => r.map_err(|e| format!("server error: {e}")),
        () = grace_over => {
            // What still runs is dropped with the runtime: a transaction left half-way
            // closes its connection, which PostgreSQL rolls back whole.
            tracing::warn!(
                "requests still running after the {} s grace period (GATEWAY_SHUTDOWN_GRACE_SECS) are abandoned",
                grace.as_secs()
            );
            Ok(())
        }
    };
    if result.is_ok() {
        tracing::info!("shut down");
    }
    if let Some(cluster) = cluster {
        if cluster.started_here {
            if let Err(e) = cluster.stop() {
                tracing::warn!("stopping the private PostgreSQL: {e}");
            }
        }
    }
    result
}

/// Trusted documents when a manifest is configured (a broken one stops the start), else
/// automatic persisted queries unless turned off.
fn persisted_queries(
    config: &Config,
) -> Result<gateway::http::persisted::PersistedQueries, String> {
    use gateway::http::persisted::PersistedQueries;
    match &config.trusted_documents {
        Some(path) => {
            let p = PersistedQueries::trusted(path)?;
            tracing::info!(
                documents = p.trusted_count().unwrap_or(0),
                "trusted documents only"
            );
            Ok(p)
        }
        None if config.apq => Ok(PersistedQueries::automatic()),
        None => Ok(PersistedQueries::off()),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
