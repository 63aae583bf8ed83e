//! `migrations/catalog.lock.json`: the catalog the committed migrations add up to, as the
//! text of its files, so that the loader rebuilds it exactly (`gateway_catalog::load_sources`).
//! The generator diffs it with `catalog/` to write the next migration, then replaces it.
//! diesel's `embed_migrations!` reads folders only, so a file beside them is left alone.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// Where the snapshot lives, relative to the repository root.
pub const SNAPSHOT: &str = "migrations/catalog.lock.json";

const NOTE: &str = "by gateway-codegen: the catalog/*/entities.yaml that migrations/ creates. \
    Do not edit; run `cargo run -p gateway-codegen`, which adds a migration for what changed \
    since and then rewrites this file.";

#[derive(Serialize, Deserialize)]
struct Snapshot {
    #[serde(rename = "@generated")]
    generated: String,
    files: Vec<SnapshotFile>,
}

#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    file: String,
    text: String,
}

/// The catalog's files under `root` as (`catalog/<package>/entities.yaml`, text), in the
/// order and with the names `gateway_catalog::load_dir` gives them.
pub fn read_catalog(root: &Path) -> Result<Vec<(String, String)>, String> {
    let dir = root.join("catalog");
    let entries =
        std::fs::read_dir(&dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut packages: Vec<String> = entries
        .flatten()
        .filter(|e| e.path().join("entities.yaml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    packages.sort();
    packages
        .into_iter()
        .map(|package| {
            let file = format!("catalog/{package}/entities.yaml");
            match std::fs::read_to_string(root.join(&file)) {
                Ok(text) => Ok((file, text)),
                Err(e) => Err(format!("cannot read {file}: {e}")),
            }
        })
        .collect()
}

/// The snapshot file of these catalog files.
pub fn render(sources: &[(String, String)]) -> Result<String, String> {
    let snapshot = Snapshot {
        generated: NOTE.to_string(),
        files: sources
            .iter()
            .map(|(file, text)| SnapshotFile {
                file: file.clone(),
                text: text.clone(),
            })
            .collect(),
    };
    let mut text = serde_json::to_string_pretty(&snapshot)
        .map_err(|e| format!("cannot write {SNAPSHOT}: {e}"))?;
    text.push('\n');
    Ok(text)
}

/// The catalog files a snapshot holds.
pub fn parse(text: &str) -> Result<Vec<(String, String)>, String> {
    let snapshot: Snapshot =
        serde_json::from_str(text).map_err(|e| format!("{SNAPSHOT} is not a snapshot: {e}"))?;
    Ok(snapshot
        .files
        .into_iter()
        .map(|f| (f.file, f.text))
        .collect())
}
