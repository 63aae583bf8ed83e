//! Audit rows, written by every mutation in the transaction of its change.

use diesel_async::RunQueryDsl;
use serde_json::Value as Json;
use uuid::Uuid;

use crate::caller::RequestContext;
use crate::db::sql::SqlBuilder;
use crate::db::value::Value;
use crate::db::Conn;
use crate::error::ApiError;
use crate::graphql::meta::ColumnType;
use crate::graphql::meta::EntityMeta;
use crate::graphql::row::Row;

/// What was done (the catalog's `AuditAction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Create,
    Update,
    Delete,
    Login,
    Logout,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "CREATE",
            Action::Update => "UPDATE",
            Action::Delete => "DELETE",
            Action::Login => "LOGIN",
            Action::Logout => "LOGOUT",
        }
    }
}

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
            new: Some(row.to_json(meta)),
        }
    }
    pub fn updated(meta: &EntityMeta, old: &Row, new: &Row) -> Change {
        Change {
            id: new.id(),
            old: Some(old.to_json(meta)),
            new: Some(new.to_json(meta)),
        }
    }
    pub fn deleted(meta: &EntityMeta, row: &Row) -> Change {
        Change {
            id: row.id(),
            old: Some(row.to_json(meta)),
            new: None,
        }
    }
}

/// Writes one audit row per change, stamped with the caller. Rows never contain hidden
/// fields (the select list is the exposed columns), so no secret reaches the audit log.
pub async fn record(
    conn: &mut Conn,
    rc: &RequestContext,
    action: Action,
    entity: &str,
    changes: Vec<Change>,
) -> Result<(), ApiError> {
    if changes.is_empty() {
        return Ok(());
    }
    let mut b = SqlBuilder::new(
        "INSERT INTO \"audit_logs\" (\"id\", \"tenant_id\", \"action\", \"actor_type\", \"actor_id\", \"entity\", \"entity_id\", \"old_value\", \"new_value\", \"ip_address\", \"user_agent\") VALUES ",
    );
    for (i, c) in changes.into_iter().enumerate() {
        b.push(if i == 0 { "(" } else { ", (" });
        let values = [
            (Value::Uuid(Uuid::now_v7()), ColumnType::Uuid),
            (Value::Uuid(rc.tenant_id), ColumnType::Uuid),
            (
                Value::Text(action.as_str().to_string()),
                ColumnType::Enum("audit_action"),
            ),
            (Value::Text("user".to_string()), ColumnType::Text),
            (Value::Uuid(rc.user_id), ColumnType::Uuid),
            (Value::Text(entity.to_string()), ColumnType::Text),
            (Value::Uuid(c.id), ColumnType::Uuid),
            (Value::from(c.old), ColumnType::Json),
            (Value::from(c.new), ColumnType::Json),
            (Value::from(rc.client_ip.clone()), ColumnType::Text),
            (Value::from(rc.user_agent.clone()), ColumnType::Text),
        ];
        for (j, (v, ty)) in values.into_iter().enumerate() {
            if j > 0 {
                b.push(", ");
            }
            b.bind(v, ty, false);
        }
        b.push(")");
    }
    b.into_query()
        .execute(conn)
        .await
        .map_err(|e| ApiError::internal(format!("audit insert: {e}")))?;
    Ok(())
}
