//! `cargo run -p gateway-codegen [-- --check] [--root DIR]`
//!
//! Reads `catalog/*/entities.yaml` and:
//!
//! - rewrites the typed Diesel models (`src/entities/*.rs`) from the whole catalog;
//! - when the catalog differs from `migrations/catalog.lock.json` (the snapshot of the catalog
//!   the committed migrations create), writes the difference as a NEW migration,
//!   `migrations/<UTC YYYY-MM-DD-HHMMSS>_catalog/{up,down}.sql` (computed by
//!   `gateway_catalog::diff`; `down.sql` undoes it as far as PostgreSQL can), then rewrites
//!   the snapshot. A change without SQL (an acl, a description, `readOnly`) only rewrites the
//!   snapshot. A change that cannot be migrated (a scope or table name, an enum value removed
//!   or reordered) fails with the reasons and writes nothing. Steps that may lose data or
//!   refuse stored rows (drops, type changes, tighter bounds or nullability) are written, and
//!   printed as warnings for the review. New enum values go into a `<version>_catalog_enums`
//!   migration of their own, one second before the rest, when the change has other steps
//!   too (a value cannot be used in the transaction that adds it).
//!
//! Committed migrations are never rewritten: the first two
//! (`2026-11-23-000000_catalog`, `2026-11-24-100000_row_level_security`) were generated from
//! the whole catalog before migrations became incremental and stay as they are.
//!
//! With `--check`, writes nothing and exits 1 when the snapshot differs from the catalog (a
//! migration is missing) or a generated file is stale (CI runs this).

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut check = false;
    let mut root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--check" => check = true,
            "--root" => match args.next() {
                Some(dir) => root = PathBuf::from(dir),
                None => return usage("--root needs a directory"),
            },
            "-h" | "--help" => {
                println!("usage: codegen [--check] [--root DIR]");
                return ExitCode::SUCCESS;
            }
            other => return usage(&format!("unknown argument `{other}`")),
        }
    }

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let report = match gateway_codegen::run(&root, check, now) {
        Ok(report) => report,
        Err(e) => {
            eprint!("{e}");
            if !e.ends_with('\n') {
                eprintln!();
            }
            return ExitCode::FAILURE;
        }
    };
    if check {
        if report.stale.is_empty() {
            println!(
                "generated code is fresh: {} entities, {} enums, {} files, no catalog change without its migration",
                report.entities, report.enums, report.files
            );
            return ExitCode::SUCCESS;
        }
        eprintln!("generated files are stale; run `cargo run -p gateway-codegen`:");
        for why in &report.stale {
            eprintln!("  {why}");
        }
        return ExitCode::FAILURE;
    }
    for dir in &report.migrations {
        println!("new migration: {dir}");
    }
    for why in &report.destructive {
        eprintln!("warning: destructive step: {why}");
    }
    println!(
        "generated {} files from {} entities and {} enums ({} written)",
        report.files,
        report.entities,
        report.enums,
        report.written.len()
    );
    ExitCode::SUCCESS
}

fn usage(msg: &str) -> ExitCode {
    eprintln!("{msg}\nusage: codegen [--check] [--root DIR]");
    ExitCode::from(2)
}
