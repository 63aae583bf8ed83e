//! The catalog this binary was built from, carried inside it. At start-up it is loaded and
//! validated with the same rules as the generator's (`gateway-catalog`), and every entity's
//! checksum is compared with the generated typed models': a binary whose models and catalog
//! disagree refuses to serve instead of writing through stale tables. The engine builds the
//! schema from this catalog (`graphql::meta::metadata`).

use gateway_catalog::model::Catalog;
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
}

/// Loads the embedded catalog and checks that the generated code was made from it.
pub fn embedded() -> Result<Catalog, CatalogError> {
    let sources: Vec<(String, String)> = CATALOG_SOURCES
        .iter()
        .map(|(file, text)| (file.to_string(), text.to_string()))
        .collect();
    let catalog = gateway_catalog::load_sources(&sources).map_err(CatalogError::Invalid)?;
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
