//! The caller's notifications: `markNotificationsRead(ids | all)`, and the sweep that removes
//! expired ones (seed 000's `expiresAt`). Creating them is `notify`'s, on the events of the
//! other modules; they reach their user live through `myNotifications`.

use async_graphql::dynamic::{Field, FieldFuture, FieldValue, InputValue, TypeRef};
use async_graphql::Value as G;
use futures::FutureExt;
use uuid::Uuid;

use crate::audit::Change;
use crate::db::sql::SqlBuilder;
use crate::db::value::Value;
use crate::db::Db;
use crate::error::ApiError;
use crate::graphql::crud::{caller, database, load_rows};
use crate::graphql::input;
use crate::graphql::meta::{metadata, ColumnType};
use crate::graphql::schema::{arg, Extensions};
use crate::live::outbox::{self, ChangeOp};

/// At most this many ids per call.
const MAX_IDS: usize = 1000;

fn mark_read() -> Field {
    Field::new("markNotificationsRead", TypeRef::named_nn(TypeRef::INT), |ctx| {
        FieldFuture::new(async move {
            let rc = caller(&ctx)?.clone();
            let all = matches!(arg(&ctx, "all"), Some(G::Boolean(true)));
            let ids: Option<Vec<Uuid>> = match arg(&ctx, "ids") {
                Some(G::List(items)) if !all => {
                    if items.len() > MAX_IDS {
                        return Err(ApiError::limit_exceeded(format!(
                            "at most {MAX_IDS} ids per call"
                        ))
                        .into());
                    }
                    Some(
                        items
                            .iter()
                            .map(|v| input::id_value(v, "ids"))
                            .collect::<Result<_, _>>()?,
                    )
                }
                _ if all => None,
                _ => return Err(ApiError::bad_input("ids", "give ids, or all: true").into()),
            };
            let meta = metadata()
                .entity("Notification")
                .ok_or_else(|| ApiError::internal("the catalog has no Notification"))?;
            let n = database(&ctx)?
                .transaction(&rc.clone(), false, move |conn| {
                    async move {
                        // Only the caller's own unread ones; others' ids change nothing.
                        let mut b = SqlBuilder::new("SELECT ");
                        b.select_list(meta);
                        b.push(" FROM \"notifications\" t WHERE t.\"tenant_id\" = ");
                        b.bind(Value::Uuid(rc.tenant_id), ColumnType::Uuid, false);
                        b.push(" AND t.\"user_id\" = ");
                        b.bind(Value::Uuid(rc.user_id), ColumnType::Uuid, false);
                        b.push(" AND NOT t.\"read\"");
                        if let Some(ids) = ids {
                            b.push(" AND t.\"id\" = ANY(");
                            b.bind(Value::UuidList(ids), ColumnType::Uuid, true);
                            b.push(")");
                        }
                        b.push(" ORDER BY t.\"id\" FOR UPDATE");
                        let old = load_rows(conn, meta, b).await?;
                        if old.is_empty() {
                            return Ok(0);
                        }
                        let mut b = SqlBuilder::new(
                            "UPDATE \"notifications\" t SET \"read\" = true, \"updated_at\" = now() WHERE t.\"tenant_id\" = ",
                        );
                        b.bind(Value::Uuid(rc.tenant_id), ColumnType::Uuid, false);
                        b.push(" AND t.\"id\" = ANY(");
                        b.bind(
                            Value::UuidList(old.iter().map(|r| r.id()).collect()),
                            ColumnType::Uuid,
                            true,
                        );
                        b.push(") RETURNING ");
                        b.select_list(meta);
                        let mut new = load_rows(conn, meta, b).await?;
                        new.sort_by_key(|r| r.id());
                        let changes: Vec<Change> = old
                            .iter()
                            .zip(&new)
                            .map(|(o, n)| Change::updated(meta, o, n))
                            .collect();
                        outbox::record(conn, meta, rc.tenant_id, ChangeOp::Updated, &changes)
                            .await?;
                        Ok(new.len())
                    }
                    .boxed()
                })
                .await?;
            Ok(Some(FieldValue::value(i32::try_from(n).unwrap_or(i32::MAX))))
        })
    })
    .argument(InputValue::new("ids", TypeRef::named_nn_list(TypeRef::ID)))
    .argument(InputValue::new("all", TypeRef::named(TypeRef::BOOLEAN)))
    .description(
        "Marks the caller's notifications read: those of `ids`, or `all: true`. Returns how many\nchanged; `myNotifications` delivers each change.",
    )
}

pub fn extensions() -> Extensions {
    Extensions {
        mutation: vec![mark_read()],
        ..Extensions::default()
    }
}

#[derive(diesel::QueryableByName)]
struct Removed {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    removed: i64,
}

/// Deletes notifications past their `expiresAt`, in every tenant, at most `batch`.
pub async fn sweep_expired(db: &Db, batch: i32) -> Result<usize, ApiError> {
    db.transaction_in(Uuid::nil(), false, move |conn| {
        async move {
            let mut b = SqlBuilder::new("SELECT gateway_delete_expired_notifications(");
            b.bind(Value::Int(batch), ColumnType::Int, false);
            b.push(") AS removed");
            let r: Removed = diesel_async::RunQueryDsl::get_result(b.into_query(), conn)
                .await
                .map_err(|e| ApiError::internal(format!("notification expiry: {e}")))?;
            Ok(usize::try_from(r.removed).unwrap_or(0))
        }
        .boxed()
    })
    .await
}
