//! The two catalogs the registry compares: the *declared* one (the built-in packages and the
//! packages on disk, as they are now) and the *applied* one (the built-in packages and the
//! package entities whose changes were applied, as the registry stored their definitions).
//! The gateway serves the applied one; a scan queues what separates them.

use std::collections::BTreeMap;
use std::path::Path;

use gateway_catalog::model::{Catalog, Entity};
use gateway_catalog::yaml::Value as Yaml;
use gateway_catalog::{Problem, Source};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::packages::{self, PackageFile};
use super::RegistryError;
use crate::entities::registry::SchemaChange;

/// What a change stores in `SchemaChange.definition`: the entity as its package wrote it,
/// with the package's enums it uses, so the applied catalog can be rebuilt from the
/// database alone. Kept as YAML text: field order is part of an entity's structure, and a
/// JSON object would not keep it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Definition {
    pub package: String,
    pub file: String,
    pub entity: String,
    #[serde(default)]
    pub enums: Vec<EnumDefinition>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnumDefinition {
    pub package: String,
    pub definition: String,
}

/// The built-in packages, embedded in the binary.
pub fn builtin_sources() -> Vec<Source> {
    crate::entities::CATALOG_SOURCES
        .iter()
        .map(|(file, text)| Source::in_folder(file, text))
        .collect()
}

/// The packages on disk, checked against the built-in packages' names and their own
/// `metadata.json`.
pub fn disk_packages(dir: &Path) -> Result<Vec<PackageFile>, RegistryError> {
    let files = packages::discover(dir).map_err(RegistryError::Invalid)?;
    let builtin = builtin_sources();
    let mut problems = Vec::new();
    for f in &files {
        if builtin.iter().any(|b| b.package == f.source.package) {
            problems.push(Problem {
                file: f.source.file.clone(),
                entity: None,
                field: None,
                message: format!(
                    "package `{}` has the name of a built-in package; choose another",
                    f.source.package
                ),
            });
        }
        if let Some(other) = files
            .iter()
            .find(|o| o.source.package == f.source.package && o.source.file != f.source.file)
        {
            problems.push(Problem {
                file: f.source.file.clone(),
                entity: None,
                field: None,
                message: format!(
                    "package `{}` is also declared by {}",
                    f.source.package, other.source.file
                ),
            });
        }
    }
    if problems.is_empty() {
        Ok(files)
    } else {
        Err(RegistryError::Invalid(problems))
    }
}

/// The declared catalog: built-in packages and those under `dir`.
pub fn declared(dir: Option<&Path>) -> Result<(Catalog, Vec<PackageFile>), RegistryError> {
    let files = match dir {
        Some(dir) => disk_packages(dir)?,
        None => Vec::new(),
    };
    let mut sources = builtin_sources();
    sources.extend(files.iter().map(|f| f.source.clone()));
    let catalog =
        gateway_catalog::load_packages(&sources).map_err(|p| RegistryError::Invalid(p.0))?;
    let mut problems = Vec::new();
    for f in &files {
        for name in f.exports.iter().flatten() {
            let declared = catalog
                .entities
                .iter()
                .any(|e| &e.name == name && e.package == f.source.package)
                || entity_names(&f.source.text).contains(name);
            if !declared {
                problems.push(Problem {
                    file: f.source.file.clone(),
                    entity: Some(name.clone()),
                    field: None,
                    message: "metadata.json exports it but the schema does not declare it".into(),
                });
            }
        }
    }
    if problems.is_empty() {
        Ok((catalog, files))
    } else {
        Err(RegistryError::Invalid(problems))
    }
}

fn entity_names(text: &str) -> Vec<String> {
    gateway_catalog::yaml::from_str::<gateway_catalog::yaml::Value>(text)
        .ok()
        .and_then(|v| {
            v.get("entities").and_then(|e| e.as_sequence()).map(|seq| {
                seq.iter()
                    .filter_map(|e| e.get("name").and_then(|n| n.as_str()).map(str::to_string))
                    .collect()
            })
        })
        .unwrap_or_default()
}

/// Whether an entity is one of the binary's own.
pub fn built_in(name: &str) -> bool {
    crate::entities::CHECKSUMS.iter().any(|(n, _)| *n == name)
}

/// The stored definition of `entity` of the declared catalog: its YAML as written, and the
/// enums it uses that packages on disk define.
pub fn definition(
    catalog: &Catalog,
    files: &[PackageFile],
    entity: &Entity,
) -> Result<Definition, RegistryError> {
    let raw = |package: &str| -> Result<Yaml, RegistryError> {
        let file = files
            .iter()
            .find(|f| f.source.package == package)
            .ok_or_else(|| RegistryError::Internal(format!("no file for package {package}")))?;
        gateway_catalog::yaml::from_str(&file.source.text)
            .map_err(|e| RegistryError::Internal(format!("{}: {e}", file.source.file)))
    };
    let named = |doc: &Yaml, list: &str, name: &str| -> Option<String> {
        doc.get(list)?
            .as_sequence()?
            .iter()
            .find(|x| x.get("name").and_then(|n| n.as_str()) == Some(name))
            .and_then(|x| gateway_catalog::yaml::to_string(x).ok())
    };
    let doc = raw(&entity.package)?;
    let json = named(&doc, "entities", &entity.name).ok_or_else(|| {
        RegistryError::Internal(format!("{} is not in {}", entity.name, entity.file))
    })?;
    let mut enums = Vec::new();
    for en in gateway_catalog::diff::used_enums(catalog, entity) {
        if files.iter().all(|f| f.source.package != en.package) {
            continue; // a built-in enum: the binary carries it
        }
        let doc = raw(&en.package)?;
        if let Some(def) = named(&doc, "enums", &en.name) {
            enums.push(EnumDefinition {
                package: en.package.clone(),
                definition: def,
            });
        }
    }
    Ok(Definition {
        package: entity.package.clone(),
        file: entity.file.clone(),
        entity: json,
        enums,
    })
}

/// Sources for stored definitions, one per package, each entity under the package it came
/// from and each enum under its own.
pub fn sources_of(definitions: &[Definition]) -> Result<Vec<Source>, RegistryError> {
    let parse = |text: &str| -> Result<Yaml, RegistryError> {
        gateway_catalog::yaml::from_str(text).map_err(|e| {
            RegistryError::Internal(format!("a stored definition does not parse: {e}"))
        })
    };
    let mut packages: BTreeMap<String, (Vec<Yaml>, BTreeMap<String, Yaml>)> = BTreeMap::new();
    for d in definitions {
        let entity = parse(&d.entity)?;
        packages
            .entry(d.package.clone())
            .or_default()
            .0
            .push(entity);
        for en in &d.enums {
            let def = parse(&en.definition)?;
            let name = def
                .get("name")
                .and_then(|n| n.as_str())
                .unwrap_or_default()
                .to_string();
            packages
                .entry(en.package.clone())
                .or_default()
                .1
                .insert(name, def);
        }
    }
    packages
        .into_iter()
        .map(|(package, (entities, enums))| {
            let mut doc = gateway_catalog::yaml::Mapping::new();
            doc.insert("package".into(), package.clone().into());
            doc.insert(
                "enums".into(),
                Yaml::Sequence(enums.into_values().collect()),
            );
            doc.insert("entities".into(), Yaml::Sequence(entities));
            let text = gateway_catalog::yaml::to_string(&doc)
                .map_err(|e| RegistryError::Internal(e.to_string()))?;
            Ok(Source {
                file: format!("{package} (as applied)"),
                package,
                text,
            })
        })
        .collect()
}

/// The applied catalog: the built-in packages and the definitions of `applied` (each
/// entity's latest applied change, removals left out), with `extra` changed on top: a
/// definition to put in place of its entity's, or a name to leave out.
pub fn applied_with(
    applied: &[SchemaChange],
    extra: Option<(&str, Option<&Definition>)>,
) -> Result<Catalog, RegistryError> {
    let mut definitions: Vec<Definition> = Vec::new();
    for c in applied {
        if extra.is_some_and(|(name, _)| name == c.entity_name) {
            continue;
        }
        if let Some(d) = stored(c)? {
            definitions.push(d);
        }
    }
    if let Some((_, Some(d))) = extra {
        definitions.push(d.clone());
    }
    let mut sources = builtin_sources();
    sources.extend(sources_of(&definitions)?);
    gateway_catalog::load_packages(&sources).map_err(|p| RegistryError::Invalid(p.0))
}

/// A change's stored definition (none for a removal).
pub fn stored(c: &SchemaChange) -> Result<Option<Definition>, RegistryError> {
    match &c.definition {
        None | Some(Json::Null) => Ok(None),
        Some(json) => serde_json::from_value(json.clone()).map(Some).map_err(|e| {
            RegistryError::Internal(format!(
                "schema change {} has an unreadable definition: {e}",
                c.id
            ))
        }),
    }
}
