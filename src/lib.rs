//! A multi-tenant GraphQL gateway over PostgreSQL. The schema is a library; `main.rs` only
//! adds the command line and the transport.

pub mod auth;
pub mod bootstrap;
pub mod catalog;
pub mod config;
pub mod db;
#[rustfmt::skip]
pub mod entities;
pub mod demo;
pub mod domain;
pub mod graphql;
pub mod http;
pub mod registry;
pub mod telemetry;
pub mod tenants;

pub use gateway_engine::{audit, error, live};
