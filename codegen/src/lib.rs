//! The catalog compiler: the catalog (loaded and validated by `gateway-catalog`) in, the
//! typed Rust models and the next SQL migration out.
//!
//! It knows nothing of the gateway's code (it only writes text the gateway compiles), so the
//! gateway can always be regenerated, even when its current generated code does not build.

pub mod emit_rust;
pub mod emit_sql;
pub mod snapshot;

pub use gateway_catalog::{diff, load, model};

use std::fmt::Write;
use std::path::{Path, PathBuf};

/// The generated Rust files, as (path relative to the repository root, contents). They are
/// rewritten from the whole catalog every time; migrations are not (see [`run`]).
pub fn generate(catalog: &model::Catalog) -> Vec<(PathBuf, String)> {
    let mut out = vec![
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

/// What a run found and did.
#[derive(Debug, Default)]
pub struct Report {
    pub entities: usize,
    pub enums: usize,
    /// The files generated from the whole catalog: the Rust models and the snapshot.
    pub files: usize,
    /// With `check`: what is stale, and why.
    pub stale: Vec<String>,
    /// Without: the files written (new migrations included).
    pub written: Vec<PathBuf>,
    /// The new migration folders.
    pub migrations: Vec<String>,
    /// Why steps of the new migrations may lose data or refuse rows already stored.
    pub destructive: Vec<String>,
}

/// Regenerates under `root` from `root/catalog`, or with `check` only tells what is stale.
///
/// The Rust models are rewritten from the catalog. The migrations are not: when the
/// catalog differs from the snapshot of what the migrations create
/// ([`snapshot::SNAPSHOT`]), the difference is written as a new migration folder versioned
/// `now` (seconds since the epoch, UTC) and the snapshot moves on. A change without SQL
/// moves the snapshot only; a change that cannot be migrated is an error, and nothing is
/// written.
pub fn run(root: &Path, check: bool, now: u64) -> Result<Report, String> {
    let sources = snapshot::read_catalog(root)?;
    let catalog = load::load_sources(&sources).map_err(|p| p.to_string())?;
    let mut files = generate(&catalog);
    let snapshot = snapshot::render(&sources)?;
    let mut report = Report {
        entities: catalog.entities.len(),
        enums: catalog.enums.len(),
        files: files.len() + 1,
        ..Report::default()
    };
    let committed = std::fs::read_to_string(root.join(snapshot::SNAPSHOT)).ok();
    let catalog_changed = committed.as_deref() != Some(snapshot.as_str());

    if check {
        if catalog_changed {
            report.stale.push(format!(
                "{}: the catalog changed since the last migration; run `cargo run -p gateway-codegen` to add a migration",
                snapshot::SNAPSHOT
            ));
        }
        report.stale.extend(
            stale_files(root, &files)
                .iter()
                .map(|p| format!("{}: stale", p.display())),
        );
        return Ok(report);
    }

    if catalog_changed {
        let Some(committed) = committed else {
            return Err(format!(
                "{} is missing: it records the catalog the committed migrations create, and the \
                 next migration is what changed since; restore it from version control",
                snapshot::SNAPSHOT
            ));
        };
        let old = load::load_sources(&snapshot::parse(&committed)?)
            .map_err(|p| format!("the catalog of {} does not load: {p}", snapshot::SNAPSHOT))?;
        let version = emit_sql::next_version(root, now)?;
        let plan = emit_sql::plan(&old, &catalog, version).map_err(|refused| {
            let mut msg = String::from("the catalog change cannot be migrated:\n");
            for why in refused {
                let _ = writeln!(msg, "  {why}");
            }
            msg
        })?;
        for m in &plan.migrations {
            let dir = PathBuf::from(&m.dir);
            if root.join(&dir).exists() {
                return Err(format!("{} exists already", dir.display()));
            }
            files.push((dir.join("up.sql"), m.up.clone()));
            files.push((dir.join("down.sql"), m.down.clone()));
            report.migrations.push(m.dir.clone());
        }
        report.destructive = plan.destructive;
        files.push((PathBuf::from(snapshot::SNAPSHOT), snapshot));
    }

    for orphan in orphans(root, &files) {
        std::fs::remove_file(root.join(&orphan))
            .map_err(|e| format!("cannot remove {}: {e}", orphan.display()))?;
        report.written.push(orphan);
    }
    for (path, text) in &files {
        let full = root.join(path);
        if std::fs::read_to_string(&full).ok().as_deref() == Some(text.as_str()) {
            continue;
        }
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        std::fs::write(&full, text).map_err(|e| format!("cannot write {}: {e}", full.display()))?;
        report.written.push(path.clone());
    }
    Ok(report)
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
