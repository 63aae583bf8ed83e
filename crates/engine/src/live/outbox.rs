//! Writing change events: one outbox row per changed row, in the mutation's transaction, and a
//! NOTIFY that PostgreSQL delivers to every listening instance when that transaction commits.

use diesel::sql_types::{Array, Jsonb, Nullable, Text, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use serde_json::{Map, Value as Json};
use uuid::Uuid;

use crate::audit::Change;
use crate::db::Conn;
use crate::error::ApiError;
use crate::graphql::meta::{EntityMeta, EntityScope};

/// The NOTIFY channel; its payload is empty: listeners read the outbox.
pub const CHANNEL: &str = "gateway_changes";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeOp {
    Created,
    Updated,
    Deleted,
}

impl ChangeOp {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeOp::Created => "CREATED",
            ChangeOp::Updated => "UPDATED",
            ChangeOp::Deleted => "DELETED",
        }
    }
    pub fn parse(s: &str) -> Option<ChangeOp> {
        [ChangeOp::Created, ChangeOp::Updated, ChangeOp::Deleted]
            .into_iter()
            .find(|o| o.as_str() == s)
    }
}

/// A serialized row (GraphQL field names) keyed by column names instead, the form
/// `jsonb_populate_record` reads back as a row of the entity's table.
fn by_column(meta: &EntityMeta, row: &Json) -> Json {
    let mut out = Map::new();
    if let Json::Object(fields) = row {
        for col in meta.columns {
            if let Some(v) = fields.get(col.field) {
                out.insert(col.column.to_string(), v.clone());
            }
        }
    }
    Json::Object(out)
}

/// Appends the events of `changes` to the outbox and notifies the listeners.
pub async fn record(
    conn: &mut Conn,
    meta: &'static EntityMeta,
    tenant: Uuid,
    op: ChangeOp,
    changes: &[Change],
) -> Result<(), ApiError> {
    if changes.is_empty() {
        return Ok(());
    }
    let mut tenants = Vec::new();
    let mut ids = Vec::new();
    let mut nodes = Vec::new();
    let mut previous = Vec::new();
    for c in changes {
        tenants.push(match meta.scope {
            EntityScope::Tenant => Some(tenant),
            EntityScope::TenantRoot => Some(c.id),
            EntityScope::Global => None,
        });
        ids.push(c.id);
        let node = c.new.as_ref().or(c.old.as_ref());
        nodes.push(node.map_or(Json::Null, |n| by_column(meta, n)));
        previous.push(
            c.old
                .as_ref()
                .filter(|_| c.new.is_some())
                .map(|p| by_column(meta, p)),
        );
    }
    diesel::sql_query(
        "WITH ins AS (
           INSERT INTO change_events (tenant_id, entity, row_id, op, node, previous)
           SELECT u.tenant_id, $2, u.row_id, $3, u.node, u.previous
           FROM unnest($1::uuid[], $4::uuid[], $5::jsonb[], $6::jsonb[])
             AS u(tenant_id, row_id, node, previous)
           RETURNING seq
         )
         SELECT pg_notify($7, '') FROM (SELECT 1 FROM ins LIMIT 1) one",
    )
    .bind::<Array<Nullable<SqlUuid>>, _>(tenants)
    .bind::<Text, _>(meta.name)
    .bind::<Text, _>(op.as_str())
    .bind::<Array<SqlUuid>, _>(ids)
    .bind::<Array<Jsonb>, _>(nodes)
    .bind::<Array<Nullable<Jsonb>>, _>(previous)
    .bind::<Text, _>(CHANNEL)
    .execute(conn)
    .await
    .map_err(|e| ApiError::internal(format!("change event insert: {e}")))?;
    Ok(())
}
