//! The catalog compiler: the catalog (loaded and validated by `gateway-catalog`) in, SQL
//! migrations and Rust code out.
//!
//! It knows nothing of the gateway's code (it only writes text the gateway compiles), so the
//! gateway can always be regenerated, even when its current generated code does not build.

pub mod emit_rust;
pub mod emit_sql;

pub use gateway_catalog::{load, model};

use std::path::{Path, PathBuf};

/// Where the generated migration lives. One migration holds the whole catalog's schema.
pub const MIGRATION_DIR: &str = "migrations/2026-11-23-000000_catalog";

/// The generated row-level security migration: after the hand-written one that creates the
/// serving roles (migrations/2026-11-24-000000_serving_role).
pub const RLS_MIGRATION_DIR: &str = "migrations/2026-11-24-100000_row_level_security";

/// Every generated file, as (path relative to the repository root, contents).
pub fn generate(catalog: &model::Catalog) -> Vec<(PathBuf, String)> {
    let mut out = vec![
        (
            PathBuf::from(MIGRATION_DIR).join("up.sql"),
            emit_sql::up(catalog),
        ),
        (
            PathBuf::from(MIGRATION_DIR).join("down.sql"),
            emit_sql::down(catalog),
        ),
        (
            PathBuf::from(RLS_MIGRATION_DIR).join("up.sql"),
            emit_sql::rls_up(catalog),
        ),
        (
            PathBuf::from(RLS_MIGRATION_DIR).join("down.sql"),
            emit_sql::rls_down(catalog),
        ),
        (
            PathBuf::from("src/entities/schema.rs"),
            emit_rust::schema_rs(catalog),
        ),
        (
            PathBuf::from("src/entities/enums.rs"),
            emit_rust::enums_rs(catalog),
        ),
        (
            PathBuf::from("src/entities/mod.rs"),
            emit_rust::mod_rs(catalog),
        ),
    ];
    for p in &catalog.packages {
        out.push((
            PathBuf::from(format!("src/entities/{}.rs", p.name)),
            emit_rust::package_rs(catalog, p),
        ));
    }
    out
}

/// Generated files under `root` that differ from what the catalog produces, or that are
/// missing, or that are generated files no longer produced.
pub fn stale_files(root: &Path, files: &[(PathBuf, String)]) -> Vec<PathBuf> {
    let mut stale: Vec<PathBuf> = files
        .iter()
        .filter(|(path, text)| {
            std::fs::read_to_string(root.join(path)).ok().as_deref() != Some(text)
        })
        .map(|(path, _)| path.clone())
        .collect();
    stale.extend(orphans(root, files));
    stale
}

/// Generated Rust files in src/entities that the catalog no longer produces.
pub fn orphans(root: &Path, files: &[(PathBuf, String)]) -> Vec<PathBuf> {
    let dir = root.join("src/entities");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let rel = PathBuf::from("src/entities").join(entry.file_name());
        let generated = std::fs::read_to_string(entry.path())
            .map(|t| t.starts_with("// @generated"))
            .unwrap_or(false);
        if generated && !files.iter().any(|(p, _)| p == &rel) {
            out.push(rel);
        }
    }
    out
}
