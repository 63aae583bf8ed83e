//! The catalog this process serves: the built-in packages carried inside the binary, and the
//! packages of `GATEWAY_PACKAGES_DIR` read from disk at start-up. Both are loaded and
//! validated together with the same rules as the generator's (`gateway-catalog`), so a
//! package conflicting with another is refused with the file, entity and field named. Every
//! built-in entity's checksum is compared with the generated typed models': a binary whose
//! models and catalog disagree refuses to serve instead of writing through stale tables. The
//! engine builds the schema from the installed catalog (`graphql::meta::metadata`); a
//! package's new entities get their tables at start-up ([`create_package_entities`]) and need
//! no build at all.

use std::path::Path;

use diesel_async::{AsyncConnection, RunQueryDsl, SimpleAsyncConnection};
use gateway_catalog::model::{Catalog, EnumDef, FieldType};
use gateway_engine::graphql::meta::{self, Metadata};

use crate::entities::{CATALOG_SOURCES, CHECKSUMS};

/// Why the embedded catalog cannot serve.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("{0}")]
    Invalid(gateway_catalog::Problems),
    #[error(
        "entity {entity}: the generated code (checksum {generated}) does not match the catalog \
         (checksum {declared}); run `cargo run -p gateway-codegen` and rebuild"
    )]
    Stale {
        entity: String,
        generated: String,
        declared: String,
    },
    #[error("entity {0} is in the generated code but not in the catalog, or the other way round")]
    Missing(String),
    #[error("cannot read the packages folder {0}: {1}")]
    Unreadable(String, String),
}

fn embedded_sources() -> Vec<(String, String)> {
    CATALOG_SOURCES
        .iter()
        .map(|(file, text)| (file.to_string(), text.to_string()))
        .collect()
}

/// Loads the embedded catalog and checks that the generated code was made from it.
pub fn embedded() -> Result<Catalog, CatalogError> {
    let catalog =
        gateway_catalog::load_sources(&embedded_sources()).map_err(CatalogError::Invalid)?;
    if catalog.entities.len() != CHECKSUMS.len() {
        let missing = catalog
            .entities
            .iter()
            .map(|e| e.name.as_str())
            .find(|n| !CHECKSUMS.iter().any(|(m, _)| m == n))
            .or_else(|| {
                CHECKSUMS
                    .iter()
                    .map(|(m, _)| *m)
                    .find(|n| !catalog.entities.iter().any(|e| e.name == *n))
            })
            .unwrap_or_default();
        return Err(CatalogError::Missing(missing.to_string()));
    }
    for (name, checksum) in CHECKSUMS {
        let Some(entity) = catalog.entities.iter().find(|e| e.name == *name) else {
            return Err(CatalogError::Missing(name.to_string()));
        };
        if entity.checksum != *checksum {
            return Err(CatalogError::Stale {
                entity: name.to_string(),
                generated: checksum.to_string(),
                declared: entity.checksum.clone(),
            });
        }
    }
    Ok(catalog)
}

/// The `entities.yaml` of every package folder under `dir`, named `<dir>/<package>/entities.yaml`
/// (the folder must be the package's name), in name order.
fn package_sources(dir: &Path) -> Result<Vec<(String, String)>, CatalogError> {
    let unreadable =
        |e: std::io::Error| CatalogError::Unreadable(dir.display().to_string(), e.to_string());
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(unreadable)?
        .flatten()
        .map(|entry| entry.path().join("entities.yaml"))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let base = dir.parent().unwrap_or(dir);
    files
        .into_iter()
        .map(|path| {
            let name = path
                .strip_prefix(base)
                .unwrap_or(&path)
                .display()
                .to_string();
            std::fs::read_to_string(&path)
                .map(|text| (name, text))
                .map_err(unreadable)
        })
        .collect()
}

/// The built-in catalog and the packages under `packages`, validated together. The built-in
/// entities must stay as the binary's models know them.
pub fn load(packages: Option<&Path>) -> Result<Catalog, CatalogError> {
    let Some(dir) = packages else {
        return embedded();
    };
    embedded()?;
    let mut sources = embedded_sources();
    sources.extend(package_sources(dir)?);
    let catalog = gateway_catalog::load_sources(&sources).map_err(CatalogError::Invalid)?;
    for (name, checksum) in CHECKSUMS {
        match catalog.entities.iter().find(|e| e.name == *name) {
            Some(e) if e.checksum == *checksum => {}
            Some(e) => {
                return Err(CatalogError::Stale {
                    entity: name.to_string(),
                    generated: checksum.to_string(),
                    declared: e.checksum.clone(),
                })
            }
            None => return Err(CatalogError::Missing(name.to_string())),
        }
    }
    Ok(catalog)
}

/// Loads the catalog of [`load`] and installs it as the one this process serves.
pub fn install(packages: Option<&Path>) -> Result<&'static Metadata, String> {
    let catalog = load(packages).map_err(|e| e.to_string())?;
    meta::install(catalog)
}

/// Whether an entity is one of the binary's own (it has generated models and a migration).
fn built_in(name: &str) -> bool {
    CHECKSUMS.iter().any(|(n, _)| *n == name)
}

/// Creates the tables of the catalog's package entities that the database does not have yet,
/// with their enum types, keys, indexes and row-level security, in one transaction as the
/// schema's owner. Returns the tables created. Only new entities are created: changing an
/// entity that has its table is a migration of the schema registry (seed 001), not of this.
pub async fn create_package_entities(
    owner_url: &str,
    catalog: &Catalog,
) -> Result<Vec<String>, String> {
    #[derive(diesel::QueryableByName)]
    struct Exists {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        exists: bool,
    }
    let mut conn = crate::db::Conn::establish(owner_url)
        .await
        .map_err(|e| format!("cannot connect to the database: {e}"))?;
    let mut exists = async |sql: &str, name: &str| -> Result<bool, String> {
        diesel::sql_query(sql)
            .bind::<diesel::sql_types::Text, _>(name)
            .get_result::<Exists>(&mut conn)
            .await
            .map(|r| r.exists)
            .map_err(|e| format!("cannot inspect the database: {e}"))
    };
    let mut entities = Vec::new();
    for e in catalog.entities.iter().filter(|e| !built_in(&e.name)) {
        let sql = "SELECT to_regclass(quote_ident($1)) IS NOT NULL AS exists";
        if !exists(sql, &e.table).await? {
            entities.push(e);
        }
    }
    if entities.is_empty() {
        return Ok(Vec::new());
    }
    let mut enums: Vec<&EnumDef> = Vec::new();
    for def in &catalog.enums {
        let used = entities.iter().any(|e| {
            e.fields
                .iter()
                .any(|f| f.ty == FieldType::Enum(def.name.clone()))
        });
        let sql = "SELECT EXISTS (SELECT 1 FROM pg_type WHERE typname = $1) AS exists";
        if used && !exists(sql, &def.sql_name()).await? {
            enums.push(def);
        }
    }
    let ddl = format!(
        "{}\n{}",
        gateway_catalog::sql::create(catalog, &entities, &enums),
        gateway_catalog::sql::row_security(&entities)
    );
    conn.transaction(async |conn| conn.batch_execute(&ddl).await)
        .await
        .map_err(|e| format!("cannot create the packages' entities: {e}"))?;
    Ok(entities.iter().map(|e| e.table.clone()).collect())
}

/// Installs the embedded catalog as the one this process serves (once), and returns its
/// metadata. A binary whose embedded catalog is invalid or disagrees with its models cannot
/// serve anything: `serve` checks [`embedded`] first and reports why; anything reaching here
/// with a broken catalog is a build that CI refused.
pub fn install_embedded() -> &'static Metadata {
    if let Some(m) = meta::installed() {
        return m;
    }
    let installed = embedded()
        .map_err(|e| e.to_string())
        .and_then(meta::install);
    match installed {
        Ok(m) => m,
        Err(e) => panic!("the embedded catalog cannot be served: {e}"),
    }
}
