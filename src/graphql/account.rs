//! The fields that are not per entity: `viewer`, signing in and managing one's account
//! (`login`, `refreshSession`, `logout`, `logoutEverywhere`, `me`, `changePassword`, and
//! `setUserPassword` for admins) and `myNotifications`. The work is in `auth::sessions` and
//! the engine; these fields only carry arguments and results. They reach the schema as
//! engine extensions, listed before the entities' fields.

use async_graphql::dynamic::{
    Field, FieldFuture, FieldValue, InputValue, Object, SubscriptionField, SubscriptionFieldFuture,
    TypeRef,
};
use futures::StreamExt;
use uuid::Uuid;

use crate::auth::{sessions, Accounts, Client, RequestContext};
use crate::db::sql::Filter;
use crate::db::value::Value;
use crate::error::ApiError;
use crate::graphql::crud::{caller, database, read, select_rows};
use crate::graphql::input;
use crate::graphql::meta::{metadata, EntityMeta};
use crate::graphql::row::Row;
use crate::graphql::schema::{id_arg, parent, ready, string_arg, Extensions};
use crate::live::{self, ChangeOp};

fn accounts<'c>(ctx: &'c async_graphql::Context<'_>) -> Result<&'c Accounts, ApiError> {
    ctx.data_opt::<Accounts>()
        .ok_or_else(|| ApiError::internal("sign-in is not configured"))
}

fn client(ctx: &async_graphql::Context<'_>) -> Client {
    ctx.data_opt::<Client>().cloned().unwrap_or_default()
}

fn entity(name: &str) -> Result<&'static EntityMeta, ApiError> {
    metadata()
        .entity(name)
        .ok_or_else(|| ApiError::internal(format!("the catalog has no {name}")))
}

/// The caller's own row of `entity` (its user, its session), whatever the entity's read rules.
async fn own_row(
    ctx: &async_graphql::Context<'_>,
    rc: &RequestContext,
    entity_name: &str,
    id: Uuid,
) -> Result<FieldValue<'static>, ApiError> {
    let meta = entity(entity_name)?;
    let filter = Filter::and(vec![
        Filter::eq(meta.id_column(), Value::Uuid(id)),
        match meta.column("tenant_id") {
            Some(col) => Filter::eq(col, Value::Uuid(rc.tenant_id)),
            None => Filter::True,
        },
    ]);
    let b = select_rows(meta, None, &filter, &[], Some(1), false);
    // A payload of signing in reads as the caller it has just made, not the request's.
    let rows: Vec<Row> = if ctx
        .data_opt::<RequestContext>()
        .is_some_and(|c| std::ptr::eq(c, rc))
    {
        read(ctx, meta.name, b).await?
    } else {
        database(ctx)?.read(rc, meta.name, b).await?
    };
    let row = rows
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::not_found(meta.name))?;
    Ok(FieldValue::owned_any(row))
}

fn required(ctx: &async_graphql::dynamic::ResolverContext<'_>, name: &str) -> String {
    string_arg(ctx, name).unwrap_or_default()
}

fn auth_payload() -> Object {
    let text = |name: &str, get: fn(&sessions::Issued) -> String| {
        Field::new(name, TypeRef::named_nn(TypeRef::STRING), move |ctx| {
            ready(parent::<sessions::Issued>(&ctx).map(|i| Some(FieldValue::value(get(i)))))
        })
    };
    Object::new("AuthPayload")
        .field(
            text("accessToken", |i| i.access_token.clone())
                .description("Send as `Authorization: Bearer <accessToken>`; short-lived."),
        )
        .field(Field::new(
            "accessTokenExpiresAt",
            TypeRef::named_nn("DateTime"),
            |ctx| {
                ready(parent::<sessions::Issued>(&ctx).map(|i| {
                    Some(FieldValue::value(i.access_expires_at.to_rfc3339()))
                }))
            },
        ))
        .field(text("refreshToken", |i| i.refresh_token.clone()).description(
            "Exchange for new tokens with `refreshSession` before the session expires; each one\nworks once.",
        ))
        .field(Field::new("session", TypeRef::named_nn("Session"), |ctx| {
            FieldFuture::new(async move {
                let issued = parent::<sessions::Issued>(&ctx)?;
                Ok(Some(
                    own_row(&ctx, &issued.caller, "Session", issued.session.id).await?,
                ))
            })
        }))
        .field(
            Field::new("user", TypeRef::named_nn("User"), |ctx| {
                FieldFuture::new(async move {
                    let issued = parent::<sessions::Issued>(&ctx)?;
                    let rc = &issued.caller;
                    Ok(Some(own_row(&ctx, rc, "User", rc.user_id).await?))
                })
            })
            .description("The signed-in user."),
        )
}

/// The authenticated caller.
struct Viewer {
    tenant_id: Uuid,
    user_id: Uuid,
    role: &'static str,
}

fn viewer_type() -> Object {
    let id = |name: &str, get: fn(&Viewer) -> Uuid| {
        Field::new(name, TypeRef::named_nn(TypeRef::ID), move |ctx| {
            ready(parent::<Viewer>(&ctx).map(|v| Some(FieldValue::value(get(v).to_string()))))
        })
    };
    Object::new("Viewer")
        .description("The authenticated caller.")
        .field(id("tenantId", |v| v.tenant_id))
        .field(id("userId", |v| v.user_id))
        .field(Field::new(
            "role",
            TypeRef::named_nn(TypeRef::STRING),
            |ctx| ready(parent::<Viewer>(&ctx).map(|v| Some(FieldValue::value(v.role)))),
        ))
}

fn queries() -> Vec<Field> {
    vec![
        Field::new("viewer", TypeRef::named_nn("Viewer"), |ctx| {
            FieldFuture::new(async move {
                let rc = caller(&ctx)?;
                // Entering the tenant refuses a suspended tenant, an inactive user or a
                // revoked token, as every other field does; the token alone would not tell.
                database(&ctx)?.check_caller(rc).await?;
                Ok(Some(FieldValue::owned_any(Viewer {
                    tenant_id: rc.tenant_id,
                    user_id: rc.user_id,
                    role: rc.role.as_str(),
                })))
            })
        })
        .description(
            "The caller as the gateway sees it: tenant, user and role from the verified token.",
        ),
        Field::new("me", TypeRef::named_nn("User"), |ctx| {
            FieldFuture::new(async move {
                let rc = caller(&ctx)?;
                Ok(Some(own_row(&ctx, rc, "User", rc.user_id).await?))
            })
        })
        .description("The signed-in user."),
    ]
}

/// A `String!` argument.
fn text(name: &str) -> InputValue {
    InputValue::new(name, TypeRef::named_nn(TypeRef::STRING))
}

fn mutations() -> Vec<Field> {
    let flag = |done: bool| Some(FieldValue::value(done));
    vec![
        Field::new("login", TypeRef::named_nn("AuthPayload"), |ctx| {
            FieldFuture::new(async move {
                let issued = sessions::login(
                    database(&ctx)?,
                    accounts(&ctx)?,
                    &client(&ctx),
                    &required(&ctx, "tenant"),
                    &required(&ctx, "email"),
                    required(&ctx, "password"),
                )
                .await?;
                Ok(Some(FieldValue::owned_any(issued)))
            })
        })
        .argument(text("tenant").description("The tenant's slug"))
        .argument(text("email"))
        .argument(text("password"))
        .description(
            "Signs in with a password; needs no bearer token. Failed attempts are limited per\naccount and per client address.",
        ),
        Field::new("refreshSession", TypeRef::named_nn("AuthPayload"), |ctx| {
            FieldFuture::new(async move {
                let token = required(&ctx, "refreshToken");
                let issued =
                    sessions::refresh(database(&ctx)?, accounts(&ctx)?, &client(&ctx), &token)
                        .await?;
                Ok(Some(FieldValue::owned_any(issued)))
            })
        })
        .argument(text("refreshToken"))
        .description(
            "Exchanges a refresh token for new tokens; needs no bearer token. A refresh token works\nonce: presenting it again ends its session.",
        ),
        Field::new("logout", TypeRef::named_nn(TypeRef::BOOLEAN), move |ctx| {
            FieldFuture::new(async move {
                Ok(flag(sessions::logout(database(&ctx)?, caller(&ctx)?).await?))
            })
        })
        .description(
            "Ends the session of the bearer token (its refresh token stops working; the access\ntoken itself lapses within its short lifetime).",
        ),
        Field::new("logoutEverywhere", TypeRef::named_nn(TypeRef::INT), |ctx| {
            FieldFuture::new(async move {
                let n = sessions::logout_everywhere(database(&ctx)?, caller(&ctx)?).await?;
                Ok(Some(FieldValue::value(i32::try_from(n).unwrap_or(i32::MAX))))
            })
        })
        .description("Ends every session of the caller; returns how many were open."),
        Field::new("changePassword", TypeRef::named_nn(TypeRef::BOOLEAN), move |ctx| {
            FieldFuture::new(async move {
                sessions::change_password(
                    database(&ctx)?,
                    accounts(&ctx)?,
                    caller(&ctx)?,
                    required(&ctx, "currentPassword"),
                    required(&ctx, "newPassword"),
                )
                .await?;
                Ok(flag(true))
            })
        })
        .argument(text("currentPassword"))
        .argument(text("newPassword"))
        .description("Changes the caller's password; the caller's other sessions end."),
        Field::new("setUserPassword", TypeRef::named_nn(TypeRef::BOOLEAN), move |ctx| {
            FieldFuture::new(async move {
                let rc = caller(&ctx)?;
                let user = input::id(&id_arg(&ctx, "userId"), "", "userId")?;
                sessions::set_password(database(&ctx)?, rc, user, required(&ctx, "password"))
                    .await?;
                Ok(flag(true))
            })
        })
        .argument(InputValue::new("userId", TypeRef::named_nn(TypeRef::ID)))
        .argument(text("password"))
        .description("Sets a user's password (admins only); that user's sessions end."),
    ]
}

fn subscriptions() -> Vec<SubscriptionField> {
    vec![SubscriptionField::new(
        "myNotifications",
        TypeRef::named_nn("NotificationChange"),
        |ctx| {
            SubscriptionFieldFuture::new(async move {
                let rc = caller(&ctx)?;
                let meta = entity("Notification")?;
                let mine = meta
                    .column("user_id")
                    .map(|col| Filter::eq(col, Value::Uuid(rc.user_id)))
                    .ok_or_else(|| ApiError::internal("Notification has no userId"))?;
                let ops = vec![ChangeOp::Created, ChangeOp::Updated];
                let after = string_arg(&ctx, "after");
                let changes = live::changes(&ctx, meta, Some(mine), Some(ops), after).await?;
                Ok(changes.map(|c| c.map(FieldValue::owned_any)))
            })
        },
    )
    .argument(InputValue::new("after", TypeRef::named(TypeRef::STRING)))
    .description(
        "The caller's own notifications: each new one, and changes such as being read.\n`after` (a change's cursor) first replays what was missed.",
    )]
}

/// The account and system fields, as engine extensions.
pub fn extensions() -> Extensions {
    Extensions {
        types: vec![auth_payload().into(), viewer_type().into()],
        query: queries(),
        mutation: mutations(),
        subscription: subscriptions(),
        ..Extensions::default()
    }
}
