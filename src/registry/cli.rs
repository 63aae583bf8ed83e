//! `gateway schema scan|list|approve|reject|preview|status|apply`: the registry's actions
//! as the schema owner, each in one transaction, printed for a person (or as JSON).

use std::path::Path;

use diesel_async::{AsyncConnection, SimpleAsyncConnection};
use uuid::Uuid;

use super::apply::{self, Applied};
use super::queue::{self, Selection};
use super::{report, Actor, RegistryError};
use crate::db::Conn;

async fn connect(owner: &str) -> Result<Conn, String> {
    Conn::establish(owner)
        .await
        .map_err(|e| format!("cannot connect to the database: {e}"))
}

fn packages(dir: Option<&Path>) -> Result<&Path, String> {
    dir.ok_or_else(|| {
        "no packages folder: set GATEWAY_PACKAGES_DIR (or create ./packages)".to_string()
    })
}

fn selection(target: &str) -> Result<Selection, String> {
    if target == "all" {
        return Ok(Selection::All);
    }
    Uuid::parse_str(target)
        .map(|id| Selection::Ids(vec![id]))
        .map_err(|_| format!("`{target}` is neither a change id nor `all`"))
}

fn json<T: serde::Serialize>(value: &T) -> Result<(), String> {
    println!(
        "{}",
        serde_json::to_string_pretty(value).map_err(|e| e.to_string())?
    );
    Ok(())
}

/// Runs `f` in one transaction on the owner's connection (this process's only one).
async fn in_transaction<T, F>(owner: &str, f: F) -> Result<T, String>
where
    F: AsyncFnOnce(&mut Conn) -> Result<T, RegistryError>,
{
    let mut conn = connect(owner).await?;
    let database = |e: diesel::result::Error| format!("database: {e}");
    conn.batch_execute("BEGIN").await.map_err(database)?;
    match f(&mut conn).await {
        Ok(v) => {
            conn.batch_execute("COMMIT").await.map_err(database)?;
            Ok(v)
        }
        Err(e) => {
            // Dropping the connection would roll back as well; say so explicitly.
            let _ = conn.batch_execute("ROLLBACK").await;
            Err(e.to_string())
        }
    }
}

pub async fn scan(owner: &str, dir: Option<&Path>) -> Result<(), String> {
    let dir = packages(dir)?.to_path_buf();
    let by = Actor::command_line();
    let report = in_transaction(owner, async |conn| queue::scan(conn, &dir, &by).await).await?;
    for note in &report.notes {
        println!("note: {note}");
    }
    for (entity, why) in &report.refused {
        println!("refused: {entity}: {}", why.join("; "));
    }
    println!(
        "{} change(s) queued, {} already queued, {} superseded, {} entities unchanged",
        report.queued.len(),
        report.already_queued.len(),
        report.superseded.len(),
        report.unchanged.len()
    );
    for id in &report.queued {
        println!("queued: {id}");
    }
    if report.refused.is_empty() {
        Ok(())
    } else {
        Err("some differences cannot be migrated (see `refused` above)".into())
    }
}

pub async fn list(owner: &str, all: bool, as_json: bool) -> Result<(), String> {
    let rows = in_transaction(owner, async |conn| report::list(conn, all).await).await?;
    if as_json {
        return json(&rows);
    }
    if rows.is_empty() {
        println!("no schema changes waiting");
    }
    for c in rows {
        println!(
            "{}  {:?}  {:?}  {}.{}{}{}",
            c.id,
            c.status,
            c.kind,
            c.package_id,
            c.entity_name,
            if c.destructive { "  DESTRUCTIVE" } else { "" },
            c.error.map(|e| format!("  ({e})")).unwrap_or_default()
        );
    }
    Ok(())
}

pub async fn approve(owner: &str, target: &str, allow_destructive: bool) -> Result<(), String> {
    let which = selection(target)?;
    let by = Actor::command_line();
    let approval = in_transaction(owner, async |conn| {
        queue::approve(conn, &which, &by, allow_destructive).await
    })
    .await?;
    for id in &approval.approved {
        println!("approved: {id}");
    }
    println!(
        "{} change(s) approved; they are applied at the next start (`gateway serve` or `gateway migrate`)",
        approval.approved.len()
    );
    if approval.refused.is_empty() {
        return Ok(());
    }
    for (_, why) in &approval.refused {
        eprintln!("refused: {why}");
    }
    Err(format!(
        "{} destructive change(s) left pending; approve with --allow-destructive to accept them",
        approval.refused.len()
    ))
}

pub async fn reject(owner: &str, target: &str) -> Result<(), String> {
    let which = selection(target)?;
    let by = Actor::command_line();
    let ids = in_transaction(owner, async |conn| queue::reject(conn, &which, &by).await).await?;
    for id in &ids {
        println!("rejected: {id}");
    }
    Ok(())
}

pub async fn preview(owner: &str, dir: Option<&Path>, package: &str) -> Result<(), String> {
    let dir = packages(dir)?.to_path_buf();
    let preview = in_transaction(owner, async |conn| {
        report::preview(conn, &dir, package).await
    })
    .await?;
    println!("-- package {}", preview.package);
    for note in &preview.notes {
        println!("-- note: {note}");
    }
    if preview.changes.is_empty() {
        println!("-- nothing to change: the package is applied as declared");
    }
    for c in &preview.changes {
        println!("\n-- {} {}", c.kind, c.entity);
        for why in &c.refused {
            println!("-- REFUSED: {why}");
        }
        print!("{}", c.sql);
    }
    let sdl = crate::graphql::preview_sdl(&preview.declared)?;
    println!("\n# GraphQL types of package {}\n", preview.package);
    print!(
        "{}",
        report::package_sdl(&sdl, &preview.declared, &preview.package)
    );
    Ok(())
}

pub async fn status(owner: &str, dir: Option<&Path>, as_json: bool) -> Result<(), String> {
    let status = in_transaction(owner, async |conn| report::status(conn, dir).await).await?;
    if as_json {
        return json(&status);
    }
    println!("applied package entities: {}", status.applied.len());
    for a in &status.applied {
        println!(
            "  {} ({}, table {}, checksum {}, applied {})",
            a.entity,
            a.package,
            a.table,
            a.checksum.as_deref().unwrap_or("none"),
            a.applied_at.map(|t| t.to_rfc3339()).unwrap_or_default()
        );
    }
    println!(
        "pending: {}, approved (applied at the next start): {}",
        status.pending, status.approved
    );
    for (id, entity, why) in &status.failed {
        println!("failed: {entity} ({id}): {why}");
    }
    for d in &status.drift {
        println!("drift: {d}");
    }
    for e in &status.unscanned {
        println!(
            "not scanned: {e} differs on disk from what is applied; run `gateway schema scan`"
        );
    }
    for p in &status.problems {
        println!("problem: {p}");
    }
    Ok(())
}

/// Applies approved changes under the registry's lock.
pub async fn apply(owner: &str) -> Result<Applied, String> {
    let mut conn = connect(owner).await?;
    apply::apply_approved(&mut conn)
        .await
        .map_err(|e| format!("applying schema changes: {e}"))
}

/// Prints failed changes; an error when there were some.
pub fn failed(changes: &Applied) -> Result<(), String> {
    for (id, entity, why) in &changes.failed {
        eprintln!("failed: {entity} ({id}): {why}");
    }
    if changes.failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} schema change(s) failed and were rolled back",
            changes.failed.len()
        ))
    }
}
