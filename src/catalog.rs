//! The catalog this process serves: the built-in packages carried inside the binary, and the
//! package entities the schema registry has applied (`crate::registry`; packages on disk are
//! served only once scanned, approved and applied at a start). Every built-in entity's
//! checksum is compared with the generated typed models': a binary whose models and catalog
//! disagree refuses to serve instead of writing through stale tables. The engine builds the
//! schema from the installed catalog (`graphql::meta::metadata`); a package's entities need
//! no build at all.

use std::path::Path;

use diesel_async::AsyncConnection;
use gateway_catalog::model::Catalog;
use gateway_engine::graphql::meta::{self, Metadata};

use crate::entities::CHECKSUMS;

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
}

/// Loads the embedded catalog and checks that the generated code was made from it.
pub fn embedded() -> Result<Catalog, CatalogError> {
    let catalog = gateway_catalog::load_packages(&crate::registry::catalogs::builtin_sources())
        .map_err(CatalogError::Invalid)?;
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
    check_builtin(&catalog)?;
    Ok(catalog)
}

/// Checks that the built-in entities of `catalog` are as the binary's models know them.
fn check_builtin(catalog: &Catalog) -> Result<(), CatalogError> {
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
    Ok(())
}

/// The built-in catalog and the packages under `packages` as declared on disk, validated
/// together: what they would serve once approved (`export-schema`, previews).
pub fn declared(packages: Option<&Path>) -> Result<Catalog, String> {
    embedded().map_err(|e| e.to_string())?;
    let (catalog, _) = crate::registry::catalogs::declared(packages).map_err(|e| e.to_string())?;
    check_builtin(&catalog).map_err(|e| e.to_string())?;
    Ok(catalog)
}

/// Installs the declared catalog of [`declared`] as the one this process serves.
pub fn install(packages: Option<&Path>) -> Result<&'static Metadata, String> {
    meta::install(declared(packages)?)
}

/// Installs the applied catalog (built-in packages and the package entities the registry
/// applied) as the one this process serves.
pub async fn install_applied(owner_url: &str) -> Result<&'static Metadata, String> {
    embedded().map_err(|e| e.to_string())?;
    let mut conn = crate::db::Conn::establish(owner_url)
        .await
        .map_err(|e| format!("cannot connect to the database: {e}"))?;
    let catalog = crate::registry::apply::served_catalog(&mut conn)
        .await
        .map_err(|e| format!("the applied catalog cannot be served: {e}"))?;
    check_builtin(&catalog).map_err(|e| e.to_string())?;
    meta::install(catalog)
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
