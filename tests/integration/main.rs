//! The integration tests: one binary, every test against a real PostgreSQL through the real
//! HTTP router, each with a database of its own.

mod accounts;
mod acl_matrix;
mod administration;
mod attacks;
mod browser_clients;
mod chat;
mod cross_tenant;
mod domain;
mod faults;
mod filters;
mod forum;
mod fuzz;
mod harness;
mod http_spec;
mod isolation;
mod js_clients;
mod jwks;
mod limits;
mod logs;
mod metrics;
mod migrations;
mod mutations;
mod packages;
mod pagination;
mod persisted;
mod playground;
mod registry;
mod relation_filters;
mod relations;
mod subscriptions;
mod sweep;
mod tasks;
mod tokens;
mod traces;
