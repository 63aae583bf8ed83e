//! What the operator reads: the queue, the registry's status (with drift between what was
//! recorded and what the database has), and a package's preview.

use std::path::Path;

use chrono::{DateTime, Utc};
use diesel::{ExpressionMethods, QueryDsl};
use diesel_async::RunQueryDsl;
use gateway_catalog::diff;
use gateway_catalog::model::Catalog;
use serde::Serialize;
use uuid::Uuid;

use super::catalogs::{self, built_in};
use super::queue::applied;
use super::RegistryError;
use crate::db::Conn;
use crate::entities::enums::SchemaChangeStatus;
use crate::entities::registry::{SchemaChange, SchemaMigrationRecord};
use crate::entities::schema::{schema_changes, schema_migration_records};

/// The changes waiting for a decision or for the next start, and those that failed, oldest
/// first; with `all`, every change.
pub async fn list(conn: &mut Conn, all: bool) -> Result<Vec<SchemaChange>, RegistryError> {
    let mut q = schema_changes::table
        .order(schema_changes::created_at)
        .into_boxed();
    if !all {
        q = q.filter(schema_changes::status.eq_any([
            SchemaChangeStatus::Pending,
            SchemaChangeStatus::Approved,
            SchemaChangeStatus::Failed,
        ]));
    }
    Ok(q.limit(1000).load(conn).await?)
}

#[derive(Debug, Serialize)]
pub struct AppliedEntity {
    pub entity: String,
    pub package: String,
    pub table: String,
    pub checksum: Option<String>,
    pub applied_at: Option<DateTime<Utc>>,
    pub change: Uuid,
}

#[derive(Debug, Default, Serialize)]
pub struct Status {
    pub applied: Vec<AppliedEntity>,
    pub pending: usize,
    pub approved: usize,
    /// Changes whose last attempt failed, with PostgreSQL's or the loader's reason.
    pub failed: Vec<(Uuid, String, String)>,
    /// Where the database, the migration records and the registry disagree.
    pub drift: Vec<String>,
    /// Package entities on disk that differ from what is applied and were not scanned.
    pub unscanned: Vec<String>,
    /// Problems of the packages on disk.
    pub problems: Vec<String>,
}

#[derive(diesel::QueryableByName)]
struct Column {
    #[diesel(sql_type = diesel::sql_types::Text)]
    column_name: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    is_nullable: String,
}

/// The registry's status; `dir` adds what the packages on disk would change.
pub async fn status(conn: &mut Conn, dir: Option<&Path>) -> Result<Status, RegistryError> {
    let current = applied(conn).await?;
    let mut status = Status::default();
    let catalog = match catalogs::applied_with(&current, None) {
        Ok(c) => Some(c),
        Err(e) => {
            status
                .drift
                .push(format!("the applied catalog does not load: {e}"));
            None
        }
    };
    let records: Vec<SchemaMigrationRecord> = schema_migration_records::table
        .order(schema_migration_records::applied_at)
        .load(conn)
        .await?;
    for c in &current {
        let entity = catalog
            .as_ref()
            .and_then(|cat| cat.entities.iter().find(|e| e.name == c.entity_name));
        status.applied.push(AppliedEntity {
            entity: c.entity_name.clone(),
            package: c.package_id.clone(),
            table: entity.map(|e| e.table.clone()).unwrap_or_default(),
            checksum: c.checksum.clone(),
            applied_at: c.applied_at,
            change: c.id,
        });
        match records.iter().rev().find(|r| r.changes.contains(&c.id)) {
            None => status.drift.push(format!(
                "{}: change {} is APPLIED but no migration record holds it",
                c.entity_name, c.id
            )),
            Some(r) if Some(&r.checksum) != c.checksum.as_ref() => status.drift.push(format!(
                "{}: migration {} recorded checksum {} but the registry says {}",
                c.entity_name,
                r.name,
                r.checksum,
                c.checksum.as_deref().unwrap_or("none")
            )),
            Some(_) => {}
        }
        let (Some(cat), Some(e)) = (&catalog, entity) else {
            continue;
        };
        if Some(diff::structural_checksum(cat, e)) != c.checksum {
            status.drift.push(format!(
                "{}: the stored definition no longer has the checksum it was applied with",
                e.name
            ));
        }
        let columns: Vec<Column> = diesel::sql_query(
            "SELECT column_name::text AS column_name, is_nullable::text AS is_nullable \
             FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1",
        )
        .bind::<diesel::sql_types::Text, _>(&e.table)
        .load(conn)
        .await?;
        if columns.is_empty() {
            status
                .drift
                .push(format!("{}: table {} is missing", e.name, e.table));
            continue;
        }
        for f in &e.fields {
            match columns.iter().find(|col| col.column_name == f.column()) {
                None => status.drift.push(format!(
                    "{}: column {}.{} is missing",
                    e.name,
                    e.table,
                    f.column()
                )),
                Some(col) if (col.is_nullable == "NO") != f.required => status.drift.push(format!(
                    "{}: column {}.{} is {}nullable in the database",
                    e.name,
                    e.table,
                    f.column(),
                    if f.required { "" } else { "not " }
                )),
                Some(_) => {}
            }
        }
        for col in &columns {
            if !e.fields.iter().any(|f| f.column() == col.column_name) {
                status.drift.push(format!(
                    "{}: column {}.{} is not in the definition",
                    e.name, e.table, col.column_name
                ));
            }
        }
    }
    let open: Vec<SchemaChange> = schema_changes::table
        .filter(schema_changes::status.eq_any([
            SchemaChangeStatus::Pending,
            SchemaChangeStatus::Approved,
            SchemaChangeStatus::Failed,
        ]))
        .order(schema_changes::created_at)
        .load(conn)
        .await?;
    for c in &open {
        match c.status {
            SchemaChangeStatus::Pending => status.pending += 1,
            SchemaChangeStatus::Approved => status.approved += 1,
            _ => status.failed.push((
                c.id,
                c.entity_name.clone(),
                c.error.clone().unwrap_or_default(),
            )),
        }
    }
    if let (Some(dir), Some(applied_catalog)) = (dir, &catalog) {
        match catalogs::declared(Some(dir)) {
            Err(e) => status.problems.push(e.to_string()),
            Ok((declared, _)) => {
                for e in declared.entities.iter().filter(|e| !built_in(&e.name)) {
                    let now = Some(diff::structural_checksum(&declared, e));
                    let applied_sum = applied_catalog
                        .entities
                        .iter()
                        .find(|a| a.name == e.name)
                        .map(|a| diff::structural_checksum(applied_catalog, a));
                    let queued = open
                        .iter()
                        .any(|c| c.entity_name == e.name && c.checksum == now);
                    if now != applied_sum && !queued {
                        status.unscanned.push(e.name.clone());
                    }
                }
            }
        }
    }
    Ok(status)
}

#[derive(Debug, Serialize)]
pub struct PreviewChange {
    pub entity: String,
    pub kind: &'static str,
    pub sql: String,
    pub destructive: Vec<String>,
    pub refused: Vec<String>,
}

/// What a package on disk would change, against the applied catalog.
#[derive(Debug)]
pub struct Preview {
    pub package: String,
    pub changes: Vec<PreviewChange>,
    pub notes: Vec<String>,
    /// The declared catalog, to build the GraphQL types from.
    pub declared: Catalog,
}

pub async fn preview(conn: &mut Conn, dir: &Path, package: &str) -> Result<Preview, RegistryError> {
    let (declared, files) = catalogs::declared(Some(dir))?;
    let Some(file) = files.iter().find(|f| f.source.package == package) else {
        return Err(RegistryError::Refused(format!(
            "no package `{package}` under {}",
            dir.display()
        )));
    };
    let current = applied(conn).await?;
    let applied_catalog = catalogs::applied_with(&current, None)?;
    let mut names: Vec<&str> = declared
        .entities
        .iter()
        .filter(|e| e.package == package)
        .chain(
            current
                .iter()
                .filter(|c| c.package_id == package)
                .filter_map(|c| {
                    applied_catalog
                        .entities
                        .iter()
                        .find(|e| e.name == c.entity_name)
                }),
        )
        .map(|e| e.name.as_str())
        .filter(|n| !built_in(n))
        .collect();
    names.sort();
    names.dedup();
    let mut changes = Vec::new();
    for name in names {
        let before = applied_catalog.entities.iter().find(|e| e.name == name);
        let after = declared.entities.iter().find(|e| e.name == name);
        let same = before.map(|b| diff::structural_checksum(&applied_catalog, b))
            == after.map(|a| diff::structural_checksum(&declared, a));
        if same {
            continue;
        }
        if let Some(c) = diff::entity_change(&applied_catalog, before, &declared, after) {
            changes.push(PreviewChange {
                entity: c.entity.clone(),
                kind: c.kind.as_str(),
                sql: c.sql(),
                destructive: c.destructive().into_iter().map(str::to_string).collect(),
                refused: c.refused.clone(),
            });
        }
    }
    let notes = declared
        .notes
        .iter()
        .filter(|n| n.file == file.source.file)
        .map(|n| n.to_string())
        .collect();
    Ok(Preview {
        package: package.to_string(),
        changes,
        notes,
        declared,
    })
}

/// The definitions of `sdl` (a whole schema) that a package's entities and enums produce,
/// and the root fields that use them.
pub fn package_sdl(sdl: &str, catalog: &Catalog, package: &str) -> String {
    let mut names: Vec<String> = Vec::new();
    for e in catalog.entities.iter().filter(|e| e.package == package) {
        names.extend(
            gateway_catalog::load::ENTITY_TYPE_SUFFIXES
                .iter()
                .map(|s| format!("{}{s}", e.name)),
        );
    }
    for en in catalog.enums.iter().filter(|e| e.package == package) {
        names.push(en.name.clone());
        names.push(format!("{}Filter", en.name));
    }
    let mut out = String::new();
    let mut roots = Vec::new();
    for block in sdl.split("\n\n") {
        let block = block.trim_matches('\n');
        // The definition's first line, after its description.
        let header = block
            .lines()
            .find(|l| {
                [
                    "type ",
                    "input ",
                    "enum ",
                    "scalar ",
                    "interface ",
                    "union ",
                ]
                .iter()
                .any(|k| l.starts_with(k))
            })
            .unwrap_or_default();
        let mut words = header.split_whitespace();
        let (kind, name) = (
            words.next().unwrap_or_default(),
            words.next().unwrap_or_default(),
        );
        if matches!(kind, "type" | "input" | "enum") && names.iter().any(|n| n == name) {
            out.push_str(block);
            out.push_str("\n\n");
        } else if kind == "type" && matches!(name, "Query" | "Mutation" | "SubscriptionRoot") {
            let used: Vec<&str> = block
                .lines()
                .filter(|l| l.starts_with('\t') || l.starts_with("  "))
                .filter(|l| {
                    l.split(|c: char| !c.is_ascii_alphanumeric())
                        .any(|w| names.iter().any(|n| n == w))
                })
                .collect();
            if !used.is_empty() {
                roots.push(format!("extend type {name} {{\n{}\n}}", used.join("\n")));
            }
        }
    }
    for r in roots {
        out.push_str(&r);
        out.push_str("\n\n");
    }
    out
}
