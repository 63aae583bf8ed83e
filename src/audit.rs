//! Audit rows, written by every mutation in the transaction of its change.

use diesel::ExpressionMethods;
use diesel_async::RunQueryDsl;
use serde_json::Value as Json;
use uuid::Uuid;

use crate::auth::RequestContext;
use crate::db::Conn;
use crate::entities::enums::AuditAction;
use crate::entities::schema::audit_logs;
use crate::error::ApiError;
use crate::graphql::meta::EntityMeta;
use crate::graphql::row::Row;

pub use crate::entities::enums::AuditAction as Action;

/// One row's change: its id and its values before and after (absent on create / delete).
pub struct Change {
    pub id: Uuid,
    pub old: Option<Json>,
    pub new: Option<Json>,
}

impl Change {
    /// A row written by hand-written code through a typed model (serialized with the
    /// catalog's field names, like the engine's rows).
    pub fn of_model<T: serde::Serialize>(id: Uuid, old: Option<&T>, new: Option<&T>) -> Change {
        let json = |r: &T| serde_json::to_value(r).ok();
        Change {
            id,
            old: old.and_then(json),
            new: new.and_then(json),
        }
    }

    pub fn created(meta: &EntityMeta, row: &Row) -> Change {
        Change {
            id: row.id(),
            old: None,
            new: Some(row.to_json(meta, true)),
        }
    }
    pub fn updated(meta: &EntityMeta, old: &Row, new: &Row) -> Change {
        Change {
            id: new.id(),
            old: Some(old.to_json(meta, true)),
            new: Some(new.to_json(meta, true)),
        }
    }
    pub fn deleted(meta: &EntityMeta, row: &Row) -> Change {
        Change {
            id: row.id(),
            old: Some(row.to_json(meta, true)),
            new: None,
        }
    }
}

/// Writes one audit row per change, stamped with the caller. Rows never contain hidden
/// fields (the select list is the exposed columns), so no secret reaches the audit log.
pub async fn record(
    conn: &mut Conn,
    rc: &RequestContext,
    action: AuditAction,
    entity: &str,
    changes: Vec<Change>,
) -> Result<(), ApiError> {
    if changes.is_empty() {
        return Ok(());
    }
    let rows: Vec<_> = changes
        .into_iter()
        .map(|c| {
            (
                audit_logs::id.eq(Uuid::now_v7()),
                audit_logs::tenant_id.eq(rc.tenant_id),
                audit_logs::action.eq(action),
                audit_logs::actor_type.eq("user"),
                audit_logs::actor_id.eq(Some(rc.user_id)),
                audit_logs::entity.eq(entity.to_string()),
                audit_logs::entity_id.eq(Some(c.id)),
                audit_logs::old_value.eq(c.old),
                audit_logs::new_value.eq(c.new),
                audit_logs::ip_address.eq(rc.client_ip.clone()),
                audit_logs::user_agent.eq(rc.user_agent.clone()),
            )
        })
        .collect();
    diesel::insert_into(audit_logs::table)
        .values(rows)
        .execute(conn)
        .await
        .map_err(|e| ApiError::internal(format!("audit insert: {e}")))?;
    Ok(())
}
