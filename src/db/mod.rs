//! PostgreSQL for the binary: the request-serving pool and transactions come from the engine
//! (`gateway_engine::db`); here are the migrations of the built-in catalog, the serving
//! role's checks, database creation, and the private development cluster.

pub mod cluster;
mod pg_enum;

pub use gateway_engine::db::*;

use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::{AsyncConnection, RunQueryDsl, SimpleAsyncConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

// `embed_migrations!` reads the folder when this crate compiles, and Cargo is not told of a
// folder added since. The generator rewrites this snapshot with every migration it adds, so
// reading it here rebuilds the crate, and the new migration is embedded.
const _: &str = include_str!("../../migrations/catalog.lock.json");

/// The role serving connections act as (migrations/2026-11-24-000000_serving_role).
pub const SERVING_ROLE: &str = "gateway_app";

/// Refuses to serve through a connection that row-level security would not bind: a
/// superuser or BYPASSRLS role, as the current or the login (session) user, or one that is
/// not granted the serving role's privileges.
pub async fn check_serving_role(url: &str) -> Result<(), String> {
    #[derive(diesel::QueryableByName)]
    struct Who {
        #[diesel(sql_type = diesel::sql_types::Text)]
        current: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        privileged: String,
        #[diesel(sql_type = diesel::sql_types::Bool)]
        granted: bool,
    }
    let mut conn = Conn::establish(url)
        .await
        .map_err(|e| format!("cannot connect to the database: {e}"))?;
    let who: Who = diesel::sql_query(
        "SELECT current_user::text AS current,
                coalesce((SELECT string_agg(rolname, ', ') FROM pg_roles
                          WHERE rolname IN (current_user, session_user)
                            AND (rolsuper OR rolbypassrls)), '') AS privileged,
                pg_has_role(current_user, $1, 'USAGE') AS granted",
    )
    .bind::<diesel::sql_types::Text, _>(SERVING_ROLE)
    .get_result(&mut conn)
    .await
    .map_err(|e| format!("cannot read the serving role (are the migrations applied?): {e}"))?;
    if !who.privileged.is_empty() {
        return Err(format!(
            "DATABASE_URL connects as {}, which is a superuser or may bypass row-level security; \
             serve through a role without SUPERUSER and BYPASSRLS that is granted {SERVING_ROLE} \
             (GRANT {SERVING_ROLE} TO <role>), and give the schema owner's URL as \
             GATEWAY_OWNER_DATABASE_URL for migrations (docs/database-roles.md)",
            who.privileged
        ));
    }
    if !who.granted {
        return Err(format!(
            "DATABASE_URL connects as {}, which is not granted {SERVING_ROLE}: run \
             GRANT {SERVING_ROLE} TO {} as the schema owner (docs/database-roles.md)",
            who.current, who.current
        ));
    }
    Ok(())
}

/// Lets the serving role log in (the private cluster: trust authentication on loopback).
pub async fn allow_serving_login(owner_url: &str) -> Result<(), String> {
    let mut conn = Conn::establish(owner_url)
        .await
        .map_err(|e| format!("cannot connect to the database: {e}"))?;
    conn.batch_execute(&format!("ALTER ROLE {SERVING_ROLE} LOGIN"))
        .await
        .map_err(|e| format!("cannot let {SERVING_ROLE} log in: {e}"))
}

/// Applies pending migrations, holding an advisory lock so that instances starting together
/// migrate once.
pub async fn migrate(url: &str) -> Result<Vec<String>, String> {
    let mut conn = Conn::establish(url)
        .await
        .map_err(|e| format!("cannot connect to the database: {e}"))?;
    conn.batch_execute("SELECT pg_advisory_lock(7383615)")
        .await
        .map_err(|e| format!("cannot take the migration lock: {e}"))?;
    let mut wrapper: AsyncConnectionWrapper<Conn> = AsyncConnectionWrapper::from(conn);
    let applied = tokio::task::spawn_blocking(move || {
        let result = wrapper
            .run_pending_migrations(MIGRATIONS)
            .map(|v| v.iter().map(|m| m.to_string()).collect::<Vec<_>>())
            .map_err(|e| format!("migration failed: {e}"));
        // The lock goes with the session when the connection closes.
        drop(wrapper);
        result
    })
    .await
    .map_err(|e| format!("migration task: {e}"))??;
    Ok(applied)
}

/// Creates `name` on the server of `admin_url` unless it exists (optionally from a template).
pub async fn create_database(
    admin_url: &str,
    name: &str,
    template: Option<&str>,
) -> Result<(), String> {
    let mut conn = Conn::establish(admin_url)
        .await
        .map_err(|e| format!("cannot connect to {admin_url}: {e}"))?;
    #[derive(diesel::QueryableByName)]
    struct Exists {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        exists: bool,
    }
    let found: Exists =
        diesel::sql_query("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS exists")
            .bind::<diesel::sql_types::Text, _>(name)
            .get_result(&mut conn)
            .await
            .map_err(|e| format!("cannot list databases: {e}"))?;
    if found.exists {
        return Ok(());
    }
    let sql = match template {
        Some(t) => format!("CREATE DATABASE \"{name}\" TEMPLATE \"{t}\""),
        None => format!("CREATE DATABASE \"{name}\""),
    };
    conn.batch_execute(&sql)
        .await
        .map_err(|e| format!("cannot create database {name}: {e}"))
}
