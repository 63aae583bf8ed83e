//! The GraphQL schema as this binary serves it: the engine's schema
//! (`gateway_engine::graphql`) built from the embedded catalog, with the account fields
//! (`account`) and the domain modules' fields and hooks (`crate::domain`).

pub mod account;
pub mod registry;

pub use gateway_engine::graphql::*;

/// The engine's metadata; [`metadata`](meta::metadata) installs the embedded catalog when
/// nothing was installed yet.
pub mod meta {
    pub use gateway_engine::graphql::meta::*;

    /// The metadata of the catalog this process serves: the embedded one unless another was
    /// installed first.
    pub fn metadata() -> &'static Metadata {
        crate::catalog::install_embedded()
    }
}

use crate::config::Limits;
use crate::db::Db;
use crate::live::Hub;

/// What a schema serves besides the database: signing in, and the packages folder the
/// operator's registry fields scan. Tests and `export-schema` go without.
#[derive(Default)]
pub struct Services {
    pub accounts: Option<crate::auth::Accounts>,
    pub packages_dir: Option<std::path::PathBuf>,
}

/// This binary's extensions of the engine's schema.
fn extensions() -> schema::Extensions {
    account::extensions()
        .merge(registry::extensions())
        .merge(crate::domain::extensions())
}

/// The schema of the installed catalog with this binary's extensions. Without a database it
/// still serves `export-schema` and introspection; without a hub, subscriptions answer with
/// an error; without accounts, signing in does.
pub fn build(
    db: Option<Db>,
    hub: Option<Hub>,
    services: Services,
    limits: &Limits,
) -> GatewaySchema {
    let Services {
        accounts,
        packages_dir,
    } = services;
    gateway_engine::graphql::build(meta::metadata(), extensions(), db, hub, limits, |b| {
        let b = b.data(registry::PackagesDir(packages_dir));
        match accounts {
            Some(accounts) => b.data(accounts),
            None => b,
        }
    })
}

/// The SDL `catalog` would be served with, for previews of packages not applied yet. The
/// engine's metadata lives as long as the process (schemas hold `&'static` references into
/// it), so previews of catalogs other than the served one are kept, a few at most.
pub fn preview_sdl(catalog: &gateway_catalog::model::Catalog) -> Result<String, String> {
    use std::sync::Mutex;
    const KEPT: usize = 16;
    static PREVIEWS: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());
    let key: String = catalog
        .entities
        .iter()
        .map(|e| format!("{}:{};", e.name, e.checksum))
        .chain(
            catalog
                .enums
                .iter()
                .map(|e| format!("{}:{:?};", e.name, e.values)),
        )
        .collect();
    if meta::installed().is_none() {
        meta::install(catalog.clone())?;
    }
    let served = meta::metadata();
    let same = served.entities.len() == catalog.entities.len()
        && served
            .entities
            .iter()
            .zip(&catalog.entities)
            .all(|(m, e)| m.name == e.name && m.checksum == e.checksum);
    let limits = Limits::default();
    if same {
        return Ok(build(None, None, Services::default(), &limits).sdl());
    }
    let mut kept = PREVIEWS
        .lock()
        .map_err(|_| "previews unavailable".to_string())?;
    if let Some((_, sdl)) = kept.iter().find(|(k, _)| *k == key) {
        return Ok(sdl.clone());
    }
    if kept.len() >= KEPT {
        return Err(format!(
            "this process has built {KEPT} previews already; use `gateway schema preview` or restart"
        ));
    }
    let metadata: &'static meta::Metadata = Box::leak(Box::new(meta::build(catalog.clone())));
    let sdl =
        gateway_engine::graphql::build(metadata, extensions(), None, None, &limits, |b| b).sdl();
    kept.push((key, sdl.clone()));
    Ok(sdl)
}
