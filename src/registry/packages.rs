//! Packages on disk: `<dir>/<name>/seed/schema/entities.yaml` as seed 001 lays them out, with
//! an optional `metadata.json` (`packageId`, `schema.path`, `schema.entities`) in `seed/` or
//! in the package folder; `<dir>/<name>/entities.yaml` (the built-in catalog's layout) too.

use std::path::{Path, PathBuf};

use gateway_catalog::{Problem, Source};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Metadata {
    package_id: Option<String>,
    schema: Option<SchemaRef>,
}

#[derive(Debug, Deserialize)]
struct SchemaRef {
    path: Option<String>,
    #[serde(default)]
    entities: Option<Vec<String>>,
}

/// A package's schema file found on disk.
#[derive(Debug, Clone)]
pub struct PackageFile {
    pub source: Source,
    /// The entities `metadata.json` says the package exports, when it says.
    pub exports: Option<Vec<String>>,
}

fn problem(file: &Path, message: String) -> Problem {
    Problem {
        file: file.display().to_string(),
        entity: None,
        field: None,
        message,
    }
}

/// Package ids become enum and table owners' names in messages and the registry; keep them
/// plain.
fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 100
        && id.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// Every package under `dir` that has a schema, in folder-name order. Folders without a
/// schema file are not packages with entities and are skipped.
pub fn discover(dir: &Path) -> Result<Vec<PackageFile>, Vec<Problem>> {
    let mut folders: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| {
            vec![problem(
                dir,
                format!("cannot read the packages folder: {e}"),
            )]
        })?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    folders.sort();
    let mut files = Vec::new();
    let mut problems = Vec::new();
    for folder in folders {
        match package(&folder) {
            Ok(Some(f)) => files.push(f),
            Ok(None) => {}
            Err(p) => problems.push(p),
        }
    }
    if problems.is_empty() {
        Ok(files)
    } else {
        Err(problems)
    }
}

fn package(folder: &Path) -> Result<Option<PackageFile>, Problem> {
    let folder_name = folder
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let metadata_path = [
        folder.join("seed").join("metadata.json"),
        folder.join("metadata.json"),
    ]
    .into_iter()
    .find(|p| p.is_file());
    let mut id = folder_name.clone();
    let mut exports = None;
    let mut schema = None;
    if let Some(path) = &metadata_path {
        let text = std::fs::read_to_string(path).map_err(|e| problem(path, e.to_string()))?;
        let meta: Metadata = serde_json::from_str(&text)
            .map_err(|e| problem(path, format!("not valid metadata.json: {e}")))?;
        if let Some(given) = meta.package_id {
            id = given;
        }
        if let Some(s) = meta.schema {
            exports = s.entities;
            if let Some(rel) = s.path {
                let base = path.parent().unwrap_or(folder);
                let resolved = base.join(&rel);
                // A package's schema lives inside the package.
                if rel.contains("..") || Path::new(&rel).is_absolute() {
                    return Err(problem(
                        path,
                        format!("schema.path `{rel}` must stay inside the package folder"),
                    ));
                }
                if !resolved.is_file() {
                    return Err(problem(
                        path,
                        format!("schema.path `{rel}` names no file ({})", resolved.display()),
                    ));
                }
                schema = Some(resolved);
            }
        }
    }
    let schema = schema.or_else(|| {
        [
            folder.join("seed").join("schema").join("entities.yaml"),
            folder.join("entities.yaml"),
        ]
        .into_iter()
        .find(|p| p.is_file())
    });
    let Some(schema) = schema else {
        return Ok(None);
    };
    if !valid_id(&id) {
        return Err(problem(
            metadata_path.as_deref().unwrap_or(folder),
            format!("package id `{id}` must be lowercase letters, digits, `_` or `-`"),
        ));
    }
    let text = std::fs::read_to_string(&schema).map_err(|e| problem(&schema, e.to_string()))?;
    Ok(Some(PackageFile {
        source: Source {
            file: schema.display().to_string(),
            package: id,
            text,
        },
        exports,
    }))
}
