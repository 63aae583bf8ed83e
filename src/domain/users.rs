//! Tenant administration (seeds 003, 004): an admin changes a user's role (`setUserRole`) or
//! status (`setUserStatus`, or the generic `updateUser`); the platform operator suspends and
//! reactivates a tenant (`setTenantStatus`). A deactivated user or a changed role ends the
//! user's sessions, whatever mutation made the change (a write hook), and every request
//! checks the user and tenant again (`gateway_enter`), so the change holds from the next one.

use async_graphql::dynamic::{Field, FieldFuture, FieldValue, InputValue, TypeRef};
use async_graphql::Value as G;
use futures::future::{BoxFuture, FutureExt};
use serde_json::json;

use super::notify::{notify, Kind, Notice};
use crate::auth::{sessions, RequestContext, Role};
use crate::db::sql::SqlBuilder;
use crate::db::value::Value;
use crate::db::Conn;
use crate::error::ApiError;
use crate::graphql::crud::{caller, database};
use crate::graphql::hooks::WriteEvent;
use crate::graphql::input;
use crate::graphql::meta::{metadata, ColumnType, EntityMeta};
use crate::graphql::row::Row;
use crate::graphql::schema::{arg, id_arg, Extensions};

fn entity(name: &str) -> Result<&'static EntityMeta, ApiError> {
    metadata()
        .entity(name)
        .ok_or_else(|| ApiError::internal(format!("the catalog has no {name}")))
}

fn text(row: &Row, meta: &EntityMeta, column: &str) -> String {
    match row.value(meta, column) {
        Value::Text(s) => s,
        _ => String::new(),
    }
}

/// After users changed, however: sessions end for a user deactivated or given another role,
/// and a user whose role changed is told.
async fn accounts_changed(
    conn: &mut Conn,
    rc: &RequestContext,
    users: &'static EntityMeta,
    old: &[Row],
    new: &[Row],
) -> Result<(), ApiError> {
    let mut notices = Vec::new();
    for (o, n) in old.iter().zip(new) {
        let role_changed = text(o, users, "role") != text(n, users, "role");
        let deactivated =
            text(o, users, "status") == "ACTIVE" && text(n, users, "status") != "ACTIVE";
        if role_changed || deactivated {
            sessions::end_sessions_of(conn, rc, n.id()).await?;
        }
        if role_changed && !deactivated && n.id() != rc.user_id {
            let role = text(n, users, "role");
            notices.push(Notice {
                user: n.id(),
                kind: Kind::Info,
                title: format!("Your role is now {role}"),
                message: format!("An admin changed your role to {role}; sign in again to use it."),
                data: Some(json!({ "event": "roleChanged", "role": role })),
            });
        }
    }
    notify(conn, rc.tenant_id, &notices).await
}

fn users_written<'c>(
    conn: &'c mut Conn,
    rc: &'c RequestContext,
    users: &'static EntityMeta,
    event: &'c WriteEvent<'c>,
) -> BoxFuture<'c, Result<(), ApiError>> {
    async move {
        if event.old.is_empty() || event.new.is_empty() {
            return Ok(());
        }
        let mut old = event.old.to_vec();
        let mut new = event.new.to_vec();
        old.sort_by_key(Row::id);
        new.sort_by_key(Row::id);
        accounts_changed(conn, rc, users, &old, &new).await
    }
    .boxed()
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Sets one column of a user of the caller's tenant (admins only), with its trail and the
/// consequences of [`accounts_changed`]. The tenant keeps an active admin.
async fn set_user(
    ctx: &async_graphql::dynamic::ResolverContext<'_>,
    column: &'static str,
    value: String,
    enum_type: &'static str,
) -> Result<Row, ApiError> {
    if caller(ctx)?.role != Role::Admin {
        return Err(ApiError::forbidden(
            "only an admin may change a user's role or status",
        ));
    }
    let user = input::id(&id_arg(ctx, "userId"), "", "userId")?;
    let users = entity("User")?;
    super::write(ctx, move |conn, rc| {
            async move {
                let old = super::readable_row(conn, &rc, users, user, true).await?;
                let new = super::update_row(
                    conn,
                    &rc,
                    users,
                    &old,
                    vec![(column, Value::Text(value), ColumnType::Enum(enum_type))],
                )
                .await?;
                // Never leave a tenant without an active admin to manage it.
                let mut b = SqlBuilder::new(
                    "SELECT count(*) AS n FROM \"users\" WHERE \"role\" = 'ADMIN' AND \"status\" = 'ACTIVE' AND \"tenant_id\" = ",
                );
                b.bind(Value::Uuid(rc.tenant_id), ColumnType::Uuid, false);
                let admins: Count = diesel_async::RunQueryDsl::get_result(b.into_query(), conn)
                    .await
                    .map_err(|e| ApiError::internal(format!("admins: {e}")))?;
                if admins.n == 0 {
                    return Err(ApiError::Conflict {
                        field: Some("userId".into()),
                        message: "the tenant would have no active admin left".into(),
                    });
                }
                accounts_changed(conn, &rc, users, std::slice::from_ref(&old), std::slice::from_ref(&new))
                    .await?;
                Ok(new)
            }
            .boxed()
        })
        .await
}

fn enum_arg(
    ctx: &async_graphql::dynamic::ResolverContext<'_>,
    name: &str,
) -> Result<String, ApiError> {
    match arg(ctx, name) {
        Some(G::Enum(v)) => Ok(v.to_string()),
        Some(G::String(v)) => Ok(v.clone()),
        _ => Err(ApiError::bad_input(name, format!("{name} is required"))),
    }
}

fn set_user_role() -> Field {
    Field::new("setUserRole", TypeRef::named_nn("User"), |ctx| {
        FieldFuture::new(async move {
            let role = enum_arg(&ctx, "role")?;
            let row = set_user(&ctx, "role", role, "user_role").await?;
            Ok(Some(FieldValue::owned_any(row)))
        })
    })
    .argument(InputValue::new("userId", TypeRef::named_nn(TypeRef::ID)))
    .argument(InputValue::new("role", TypeRef::named_nn("UserRole")))
    .description(
        "Gives a user of the tenant another role (admins only). The user's sessions end (their\ntokens carry the old role) and they are notified; the tenant keeps an active admin.",
    )
}

fn set_user_status() -> Field {
    Field::new("setUserStatus", TypeRef::named_nn("User"), |ctx| {
        FieldFuture::new(async move {
            let status = enum_arg(&ctx, "status")?;
            let row = set_user(&ctx, "status", status, "user_status").await?;
            Ok(Some(FieldValue::owned_any(row)))
        })
    })
    .argument(InputValue::new("userId", TypeRef::named_nn(TypeRef::ID)))
    .argument(InputValue::new("status", TypeRef::named_nn("UserStatus")))
    .description(
        "Activates or deactivates a user of the tenant (admins only). A deactivated user's\nsessions end and every request of theirs is refused from the next one.",
    )
}

fn set_tenant_status() -> Field {
    Field::new("setTenantStatus", TypeRef::named_nn("Tenant"), |ctx| {
        FieldFuture::new(async move {
            let rc = caller(&ctx)?.clone();
            if !rc.platform {
                return Err(ApiError::forbidden(
                    "only the platform operator may suspend or reactivate a tenant",
                )
                .into());
            }
            let target = input::id(&id_arg(&ctx, "tenantId"), "", "tenantId")?;
            if target == rc.tenant_id {
                return Err(ApiError::Conflict {
                    field: Some("tenantId".into()),
                    message: "an operator cannot change the status of their own tenant".into(),
                }
                .into());
            }
            let status = enum_arg(&ctx, "status")?;
            let db = database(&ctx)?;
            // The operator's own token is checked as on every request; then the transaction
            // acts inside the target tenant, whose audit log records the operator.
            db.check_caller(&rc).await?;
            let tenants = entity("Tenant")?;
            let row = db
                .transaction_in(target, false, move |conn| {
                    async move {
                        // Inside the target tenant: its row, and its audit log names the
                        // operator.
                        let mut acting = rc.clone();
                        acting.tenant_id = target;
                        let old = super::readable_row(conn, &acting, tenants, target, true).await?;
                        let new = super::update_row(
                            conn,
                            &acting,
                            tenants,
                            &old,
                            vec![(
                                "status",
                                Value::Text(status),
                                ColumnType::Enum("tenant_status"),
                            )],
                        )
                        .await?;
                        Ok(new)
                    }
                    .boxed()
                })
                .await?;
            Ok(Some(FieldValue::owned_any(row)))
        })
    })
    .argument(InputValue::new("tenantId", TypeRef::named_nn(TypeRef::ID)))
    .argument(InputValue::new("status", TypeRef::named_nn("TenantStatus")))
    .description(
        "Suspends (SUSPENDED) or reactivates (ACTIVE) another tenant (platform operator only);\nits users are refused from their next request while it is not ACTIVE.",
    )
}

pub fn extensions() -> Extensions {
    Extensions {
        mutation: vec![set_user_role(), set_user_status(), set_tenant_status()],
        after_write: vec![("User", users_written)],
        ..Extensions::default()
    }
}
