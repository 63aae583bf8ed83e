//! The engine of the gateway: the catalog's metadata, the SQL built over it, access rules,
//! per-request loaders, change events and the GraphQL schema built at start-up from it.
//!
//! It knows no particular catalog and no transport: the binary (`gateway`) installs the
//! catalog, adds its hand-written fields through `graphql::schema::Extensions`, and serves the
//! result over HTTP and WebSockets. Nothing here is compiled per entity.

pub mod audit;
pub mod caller;
pub mod config;
pub mod db;
pub mod error;
pub mod graphql;
pub mod kept;
pub mod live;
pub mod logs;
