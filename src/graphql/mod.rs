//! The GraphQL schema as this binary serves it: the engine's schema
//! (`gateway_engine::graphql`) built from the embedded catalog, with the account fields
//! (`account`) and the domain modules' fields and hooks (`crate::domain`).

pub mod account;

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

/// The schema of the embedded catalog with this binary's extensions. Without a database it
/// still serves `export-schema` and introspection; without a hub, subscriptions answer with
/// an error; without accounts, signing in does.
pub fn build(
    db: Option<Db>,
    hub: Option<Hub>,
    accounts: Option<crate::auth::Accounts>,
    limits: &Limits,
) -> GatewaySchema {
    let extensions = account::extensions().merge(crate::domain::extensions());
    gateway_engine::graphql::build(
        meta::metadata(),
        extensions,
        db,
        hub,
        limits,
        |b| match accounts {
            Some(accounts) => b.data(accounts),
            None => b,
        },
    )
}
