//! The approval queue: a scan records what separates the packages on disk from the applied
//! catalog as pending changes; the operator approves or rejects them.

use std::path::Path;

use chrono::Utc;
use diesel::{ExpressionMethods, QueryDsl};
use diesel_async::RunQueryDsl;
use gateway_catalog::diff::{self, ChangeKind};
use gateway_catalog::model::Catalog;
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use super::catalogs::{self, built_in};
use super::{lock_for_transaction, Actor, RegistryError};
use crate::db::Conn;
use crate::entities::enums::{SchemaChangeKind, SchemaChangeStatus};
use crate::entities::registry::SchemaChange;
use crate::entities::schema::{schema_changes, schema_packages};

/// What a scan found.
#[derive(Debug, Default, Serialize)]
pub struct ScanReport {
    /// Changes queued by this scan.
    pub queued: Vec<Uuid>,
    /// Changes that were already queued for the same definition.
    pub already_queued: Vec<Uuid>,
    /// Queued changes this scan replaced (their entity changed again, or back).
    pub superseded: Vec<Uuid>,
    /// Package entities that match what is applied.
    pub unchanged: Vec<String>,
    /// Differences that cannot be migrated, by entity.
    pub refused: Vec<(String, Vec<String>)>,
    /// What the loader adapted in the packages' files.
    pub notes: Vec<String>,
}

/// The latest applied change of every package entity (removed ones included).
pub async fn applied(conn: &mut Conn) -> Result<Vec<SchemaChange>, RegistryError> {
    let rows = schema_changes::table
        .filter(schema_changes::status.eq(SchemaChangeStatus::Applied))
        .order((
            schema_changes::entity_name,
            schema_changes::applied_at.desc(),
            schema_changes::created_at.desc(),
        ))
        .distinct_on(schema_changes::entity_name)
        .load::<SchemaChange>(conn)
        .await?;
    Ok(rows
        .into_iter()
        .filter(|c| c.kind != SchemaChangeKind::Remove)
        .collect())
}

/// The structural checksum of `name` in `c`, if `c` has it.
fn checksum_in(c: &Catalog, name: &str) -> Option<String> {
    c.entities
        .iter()
        .find(|e| e.name == name)
        .map(|e| diff::structural_checksum(c, e))
}

fn kind_of(k: ChangeKind) -> SchemaChangeKind {
    match k {
        ChangeKind::Add => SchemaChangeKind::Add,
        ChangeKind::Modify => SchemaChangeKind::Modify,
        ChangeKind::Remove => SchemaChangeKind::Remove,
    }
}

/// Scans the packages under `dir` and queues what differs from the applied catalog.
pub async fn scan(conn: &mut Conn, dir: &Path, by: &Actor) -> Result<ScanReport, RegistryError> {
    lock_for_transaction(conn).await?;
    let (declared, files) = catalogs::declared(Some(dir))?;
    let applied_rows = applied(conn).await?;
    let applied = catalogs::applied_with(&applied_rows, None)?;
    let mut report = ScanReport {
        notes: declared.notes.iter().map(|n| n.to_string()).collect(),
        ..ScanReport::default()
    };
    let waiting: Vec<SchemaChange> = schema_changes::table
        .filter(
            schema_changes::status
                .eq_any([SchemaChangeStatus::Pending, SchemaChangeStatus::Approved]),
        )
        .load(conn)
        .await?;
    // Entities declared, applied, or with a change waiting (one a package no longer declares
    // and that was never applied has its change superseded).
    let mut names: Vec<&str> = declared
        .entities
        .iter()
        .chain(&applied.entities)
        .map(|e| e.name.as_str())
        .chain(waiting.iter().map(|c| c.entity_name.as_str()))
        .filter(|n| !built_in(n))
        .collect();
    names.sort();
    names.dedup();
    let now = Utc::now();
    for name in names {
        let before = applied.entities.iter().find(|e| e.name == name);
        let after = declared.entities.iter().find(|e| e.name == name);
        let (old_sum, new_sum) = (checksum_in(&applied, name), checksum_in(&declared, name));
        let open: Vec<SchemaChange> = waiting
            .iter()
            .filter(|c| c.entity_name == name)
            .cloned()
            .collect();
        if old_sum == new_sum {
            report.unchanged.push(name.to_string());
            supersede(
                conn,
                &open,
                &mut report,
                "the package matches what is applied",
            )
            .await?;
            continue;
        }
        if let Some(same) = open
            .iter()
            .find(|c| c.checksum == new_sum && c.previous_checksum == old_sum)
        {
            report.already_queued.push(same.id);
            let others: Vec<SchemaChange> =
                open.iter().filter(|c| c.id != same.id).cloned().collect();
            supersede(conn, &others, &mut report, "replaced by a later scan").await?;
            continue;
        }
        let Some(change) = diff::entity_change(&applied, before, &declared, after) else {
            continue;
        };
        if !change.refused.is_empty() {
            report
                .refused
                .push((name.to_string(), change.refused.clone()));
            continue;
        }
        supersede(conn, &open, &mut report, "replaced by a later scan").await?;
        let definition = match after {
            Some(e) => Some(
                serde_json::to_value(catalogs::definition(&declared, &files, e)?)
                    .map_err(|e| RegistryError::Internal(e.to_string()))?,
            ),
            None => None,
        };
        let package = after
            .or(before)
            .map(|e| e.package.clone())
            .unwrap_or_default();
        let version = after
            .or(before)
            .map(|e| e.version.clone())
            .unwrap_or_default();
        let notes: Vec<String> = declared
            .notes
            .iter()
            .filter(|n| n.entity.as_deref() == Some(name))
            .map(|n| n.to_string())
            .collect();
        let destructive = change.destructive();
        let id = Uuid::now_v7();
        diesel::insert_into(schema_changes::table)
            .values((
                schema_changes::id.eq(id),
                schema_changes::package_id.eq(&package),
                schema_changes::entity_name.eq(name),
                schema_changes::entity_version.eq(&version),
                schema_changes::checksum.eq(&new_sum),
                schema_changes::previous_checksum.eq(&old_sum),
                schema_changes::kind.eq(kind_of(change.kind)),
                schema_changes::status.eq(SchemaChangeStatus::Pending),
                schema_changes::definition.eq(definition),
                schema_changes::diff.eq(Some(json!({
                    "steps": change.steps.iter().map(|s| json!({
                        "sql": s.sql,
                        "destructive": s.destructive,
                    })).collect::<Vec<_>>(),
                    "notes": notes,
                }))),
                schema_changes::sql.eq(change.sql()),
                schema_changes::destructive.eq(!destructive.is_empty()),
                schema_changes::proposed_by.eq(&by.name),
                schema_changes::created_at.eq(now),
                schema_changes::updated_at.eq(now),
            ))
            .execute(conn)
            .await?;
        report.queued.push(id);
    }
    record_packages(conn, &declared, &files, now).await?;
    Ok(report)
}

/// Marks `open` changes rejected: a newer scan replaced them.
async fn supersede(
    conn: &mut Conn,
    open: &[SchemaChange],
    report: &mut ScanReport,
    why: &str,
) -> Result<(), RegistryError> {
    if open.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = open.iter().map(|c| c.id).collect();
    diesel::update(schema_changes::table.filter(schema_changes::id.eq_any(&ids)))
        .set((
            schema_changes::status.eq(SchemaChangeStatus::Rejected),
            schema_changes::error.eq(Some(format!("superseded: {why}"))),
            schema_changes::updated_at.eq(Utc::now()),
        ))
        .execute(conn)
        .await?;
    report.superseded.extend(ids);
    Ok(())
}

/// One SchemaPackage row per package on disk, with the checksum of its entities.
async fn record_packages(
    conn: &mut Conn,
    declared: &Catalog,
    files: &[super::packages::PackageFile],
    now: chrono::DateTime<Utc>,
) -> Result<(), RegistryError> {
    for f in files {
        let package = &f.source.package;
        let entities: Vec<String> = declared
            .entities
            .iter()
            .filter(|e| &e.package == package)
            .map(|e| e.name.clone())
            .collect();
        let sums: String = entities
            .iter()
            .filter_map(|name| checksum_in(declared, name))
            .collect();
        let checksum = gateway_catalog::sha256_hex(sums);
        diesel::insert_into(schema_packages::table)
            .values((
                schema_packages::id.eq(Uuid::now_v7()),
                schema_packages::package_id.eq(package),
                schema_packages::path.eq(&f.source.file),
                schema_packages::checksum.eq(&checksum),
                schema_packages::entities.eq(&entities),
                schema_packages::last_scanned_at.eq(Some(now)),
                schema_packages::created_at.eq(now),
                schema_packages::updated_at.eq(now),
            ))
            .on_conflict(schema_packages::package_id)
            .do_update()
            .set((
                schema_packages::path.eq(&f.source.file),
                schema_packages::checksum.eq(&checksum),
                schema_packages::entities.eq(&entities),
                schema_packages::last_scanned_at.eq(Some(now)),
                schema_packages::updated_at.eq(now),
            ))
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// Which queued changes an approval or rejection is for.
#[derive(Debug, Clone)]
pub enum Selection {
    All,
    Ids(Vec<Uuid>),
}

/// What an approval did.
#[derive(Debug, Default, Serialize)]
pub struct Approval {
    pub approved: Vec<Uuid>,
    /// Destructive changes left pending, with why: they need `allow_destructive`.
    pub refused: Vec<(Uuid, String)>,
}

async fn selected(
    conn: &mut Conn,
    selection: &Selection,
    statuses: &[SchemaChangeStatus],
) -> Result<Vec<SchemaChange>, RegistryError> {
    let mut q = schema_changes::table
        .filter(schema_changes::status.eq_any(statuses.to_vec()))
        .order(schema_changes::created_at)
        .into_boxed();
    if let Selection::Ids(ids) = selection {
        q = q.filter(schema_changes::id.eq_any(ids.clone()));
    }
    let rows: Vec<SchemaChange> = q.load(conn).await?;
    if let Selection::Ids(ids) = selection {
        if let Some(missing) = ids.iter().find(|id| !rows.iter().any(|c| c.id == **id)) {
            return Err(RegistryError::NotFound(format!(
                "{missing} among the changes waiting for a decision"
            )));
        }
    }
    Ok(rows)
}

/// Approves pending changes. A destructive one needs `allow_destructive`; without it, it
/// stays pending and is listed as refused.
pub async fn approve(
    conn: &mut Conn,
    selection: &Selection,
    by: &Actor,
    allow_destructive: bool,
) -> Result<Approval, RegistryError> {
    lock_for_transaction(conn).await?;
    let rows = selected(conn, selection, &[SchemaChangeStatus::Pending]).await?;
    let mut approval = Approval::default();
    for c in rows {
        if c.destructive && !allow_destructive {
            let reasons = c
                .diff
                .as_ref()
                .and_then(|d| d.get("steps"))
                .and_then(|s| s.as_array())
                .map(|steps| {
                    steps
                        .iter()
                        .filter_map(|s| s.get("destructive").and_then(|d| d.as_str()))
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .unwrap_or_default();
            approval.refused.push((
                c.id,
                format!(
                    "{} ({}) is destructive: {reasons}. Approve it with allow-destructive to accept that",
                    c.entity_name,
                    c.id
                ),
            ));
            continue;
        }
        approval.approved.push(c.id);
    }
    let now = Utc::now();
    diesel::update(schema_changes::table.filter(schema_changes::id.eq_any(&approval.approved)))
        .set((
            schema_changes::status.eq(SchemaChangeStatus::Approved),
            schema_changes::approved_by_id.eq(by.user_id),
            schema_changes::approved_by.eq(Some(by.name.clone())),
            schema_changes::approved_at.eq(Some(now)),
            schema_changes::updated_at.eq(now),
        ))
        .execute(conn)
        .await?;
    Ok(approval)
}

/// Rejects pending or approved (not yet applied) changes.
pub async fn reject(
    conn: &mut Conn,
    selection: &Selection,
    by: &Actor,
) -> Result<Vec<Uuid>, RegistryError> {
    lock_for_transaction(conn).await?;
    let rows = selected(
        conn,
        selection,
        &[SchemaChangeStatus::Pending, SchemaChangeStatus::Approved],
    )
    .await?;
    let ids: Vec<Uuid> = rows.iter().map(|c| c.id).collect();
    diesel::update(schema_changes::table.filter(schema_changes::id.eq_any(&ids)))
        .set((
            schema_changes::status.eq(SchemaChangeStatus::Rejected),
            schema_changes::error.eq(Some(format!("rejected by {}", by.name))),
            schema_changes::updated_at.eq(Utc::now()),
        ))
        .execute(conn)
        .await?;
    Ok(ids)
}
