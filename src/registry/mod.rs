//! The package schema registry (seed 001): packages declare entities in YAML, a scan queues
//! what differs from the applied catalog as schema changes with the SQL they will run, the
//! platform operator approves or rejects them, and the next start applies the approved ones
//! under an advisory lock and serves the result.
//!
//! - `packages`: the packages on disk (seed 001's layout, `metadata.json`).
//! - `catalogs`: the declared catalog (disk) and the applied one (the registry's rows).
//! - `queue`: scan, approve, reject — the operator's actions, for the CLI and GraphQL.
//! - `apply`: applying approved changes at start-up.
//! - `report`: list, status (with drift), preview.
//! - `cli`: `gateway schema ...`, as the schema owner.
//!
//! Every function takes the connection it works on and opens no transaction of its own:
//! the CLI wraps them in one as the schema owner, GraphQL in the operator's request.

pub mod apply;
pub mod catalogs;
pub mod cli;
pub mod packages;
pub mod queue;
pub mod report;

use diesel_async::RunQueryDsl;
use gateway_catalog::Problem;
use uuid::Uuid;

use crate::db::Conn;
use crate::error::ApiError;

/// Why a registry action did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{}", problems(.0))]
    Invalid(Vec<Problem>),
    #[error("no schema change {0}")]
    NotFound(String),
    #[error("{0}")]
    Refused(String),
    #[error("database: {0}")]
    Database(String),
    #[error("{0}")]
    Internal(String),
}

fn problems(list: &[Problem]) -> String {
    let mut s = format!("the packages have {} problem(s):", list.len());
    for p in list {
        s.push_str(&format!("\n  {p}"));
    }
    s
}

impl From<diesel::result::Error> for RegistryError {
    fn from(e: diesel::result::Error) -> Self {
        RegistryError::Database(e.to_string())
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::Invalid(_) => ApiError::bad_request(e.to_string()),
            RegistryError::NotFound(_) => ApiError::not_found("SchemaChange"),
            RegistryError::Refused(m) => ApiError::bad_request(m),
            RegistryError::Database(m) | RegistryError::Internal(m) => ApiError::internal(m),
        }
    }
}

/// Who proposes or approves a change: a platform operator's user, or the command line.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user_id: Option<Uuid>,
    pub name: String,
}

impl Actor {
    /// The operator running the `gateway schema` command on the server.
    pub fn command_line() -> Actor {
        let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
        Actor {
            user_id: None,
            name: format!("gateway schema (command line, {user})"),
        }
    }
}

/// Serialises the registry's writers: scans, approvals and the start-up that applies them.
const LOCK: i64 = 0x6761_7465_7761_7901;

/// Takes the registry's lock for the current transaction.
pub async fn lock_for_transaction(conn: &mut Conn) -> Result<(), RegistryError> {
    diesel::sql_query(format!("SELECT pg_advisory_xact_lock({LOCK})"))
        .execute(conn)
        .await?;
    Ok(())
}
