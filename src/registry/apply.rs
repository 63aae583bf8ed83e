//! Applying approved changes, at start-up (`serve`, `migrate`), as the schema owner. One
//! instance applies while the others wait on the registry's lock, then finds nothing left:
//! instances restarted one after another converge on the same catalog. Each change runs in
//! its own transaction with its SchemaMigrationRecord; one that fails rolls back whole, is
//! marked FAILED with PostgreSQL's reason, and the catalog served is the one before it.

use std::time::Instant;

use chrono::Utc;
use diesel::{ExpressionMethods, QueryDsl};
use diesel_async::{AsyncConnection, RunQueryDsl, SimpleAsyncConnection};
use serde::Serialize;
use uuid::Uuid;

use super::catalogs::{self, Definition};
use super::queue::applied;
use super::{RegistryError, LOCK};
use crate::db::Conn;
use crate::entities::enums::{SchemaChangeKind, SchemaChangeStatus};
use crate::entities::registry::SchemaChange;
use crate::entities::schema::{schema_changes, schema_migration_records};

/// What applying did.
#[derive(Debug, Default, Serialize)]
pub struct Applied {
    pub applied: Vec<(Uuid, String)>,
    pub failed: Vec<(Uuid, String, String)>,
}

/// Applies every approved change the applied catalog can take, holding the registry's lock
/// for the whole run (other instances starting meanwhile wait, then find nothing to do).
pub async fn apply_approved(conn: &mut Conn) -> Result<Applied, RegistryError> {
    diesel::sql_query(format!("SELECT pg_advisory_lock({LOCK})"))
        .execute(conn)
        .await?;
    let result = apply_locked(conn).await;
    diesel::sql_query(format!("SELECT pg_advisory_unlock({LOCK})"))
        .execute(conn)
        .await?;
    result
}

fn approved_query() -> schema_changes::BoxedQuery<'static, diesel::pg::Pg> {
    schema_changes::table
        .filter(schema_changes::status.eq(SchemaChangeStatus::Approved))
        .order(schema_changes::created_at)
        .into_boxed()
}

async fn apply_locked(conn: &mut Conn) -> Result<Applied, RegistryError> {
    let mut done = Applied::default();
    loop {
        let current = applied(conn).await?;
        let approved: Vec<SchemaChange> = approved_query().load(conn).await?;
        if approved.is_empty() {
            return Ok(done);
        }
        // The first change the catalog can take as it stands: a new entity waits for the new
        // entity it references, a removal for the removal of what references it.
        let mut next = None;
        let mut problems = Vec::new();
        for c in &approved {
            match candidate(&current, c) {
                Ok(()) => {
                    next = Some(c.clone());
                    break;
                }
                Err(e) => problems.push((c.clone(), e.to_string())),
            }
        }
        let Some(change) = next else {
            for (c, why) in problems {
                fail(conn, &c, &why).await?;
                done.failed.push((c.id, c.entity_name.clone(), why));
            }
            return Ok(done);
        };
        match apply_one(conn, &change).await {
            Ok(()) => done.applied.push((change.id, change.entity_name.clone())),
            Err(why) => {
                fail(conn, &change, &why).await?;
                done.failed
                    .push((change.id, change.entity_name.clone(), why));
            }
        }
    }
}

/// Checks that `c` applies to the applied catalog `current`: it was computed from what is
/// applied now, and the catalog with it is valid.
fn candidate(current: &[SchemaChange], c: &SchemaChange) -> Result<(), RegistryError> {
    let before = current
        .iter()
        .find(|a| a.entity_name == c.entity_name)
        .and_then(|a| a.checksum.clone());
    if before != c.previous_checksum {
        return Err(RegistryError::Refused(format!(
            "{} changed since this change was scanned (applied checksum {}); scan again",
            c.entity_name,
            before.as_deref().unwrap_or("none")
        )));
    }
    let definition: Option<Definition> = catalogs::stored(c)?;
    catalogs::applied_with(current, Some((&c.entity_name, definition.as_ref())))?;
    Ok(())
}

async fn apply_one(conn: &mut Conn, c: &SchemaChange) -> Result<(), String> {
    let started = Instant::now();
    let sql = c.sql.clone();
    let id = c.id;
    let name = format!(
        "{}-{}-{}",
        c.entity_name,
        match c.kind {
            SchemaChangeKind::Add => "add",
            SchemaChangeKind::Modify => "modify",
            SchemaChangeKind::Remove => "remove",
        },
        &id.simple().to_string()[..12]
    );
    // The record's checksum is the definition's as applied (a removal: the SQL's), so that
    // `status` can tell when the stored definition was changed afterwards.
    let checksum = c
        .checksum
        .clone()
        .unwrap_or_else(|| gateway_catalog::sha256_hex(&sql));
    conn.transaction(async |conn| {
        conn.batch_execute(&sql).await?;
        let now = Utc::now();
        diesel::update(schema_changes::table.filter(schema_changes::id.eq(id)))
            .set((
                schema_changes::status.eq(SchemaChangeStatus::Applied),
                schema_changes::applied_at.eq(Some(now)),
                schema_changes::error.eq(None::<String>),
                schema_changes::updated_at.eq(now),
            ))
            .execute(conn)
            .await?;
        diesel::insert_into(schema_migration_records::table)
            .values((
                schema_migration_records::id.eq(Uuid::now_v7()),
                schema_migration_records::name.eq(&name),
                schema_migration_records::checksum.eq(&checksum),
                schema_migration_records::applied_at.eq(now),
                schema_migration_records::execution_time_ms.eq(Some(
                    started.elapsed().as_millis().min(i32::MAX as u128) as i32,
                )),
                schema_migration_records::changes.eq(vec![id]),
                schema_migration_records::created_at.eq(now),
                schema_migration_records::updated_at.eq(now),
            ))
            .execute(conn)
            .await?;
        Ok::<(), diesel::result::Error>(())
    })
    .await
    .map_err(|e| e.to_string())
}

async fn fail(conn: &mut Conn, c: &SchemaChange, why: &str) -> Result<(), RegistryError> {
    tracing::error!(change = %c.id, entity = %c.entity_name, "schema change failed: {why}");
    diesel::update(schema_changes::table.filter(schema_changes::id.eq(c.id)))
        .set((
            schema_changes::status.eq(SchemaChangeStatus::Failed),
            schema_changes::error.eq(Some(why.to_string())),
            schema_changes::updated_at.eq(Utc::now()),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// The catalog to serve: the built-in packages and the applied package entities.
pub async fn served_catalog(
    conn: &mut Conn,
) -> Result<gateway_catalog::model::Catalog, RegistryError> {
    let current = applied(conn).await?;
    catalogs::applied_with(&current, None)
}
