//! Signing in and managing one's account: `login`, `refreshSession`, `logout`,
//! `logoutEverywhere`, `me`, `changePassword`, and `setUserPassword` for admins. The work is in
//! `auth::sessions`; these fields only carry arguments and results.

use async_graphql::{Context, Object, ID};
use chrono::{DateTime, Utc};
use diesel::{ExpressionMethods, QueryDsl, SelectableHelper};
use diesel_async::RunQueryDsl;
use futures::FutureExt;

use crate::auth::{sessions, Accounts, Client, RequestContext};
use crate::entities::core::{Session, User};
use crate::entities::schema::users;
use crate::error::{ApiError, GqlResult};
use crate::graphql::crud::{caller, database};
use crate::graphql::input;

fn accounts<'c>(ctx: &'c Context<'_>) -> Result<&'c Accounts, ApiError> {
    ctx.data_opt::<Accounts>()
        .ok_or_else(|| ApiError::internal("sign-in is not configured"))
}

fn client(ctx: &Context<'_>) -> Client {
    ctx.data_opt::<Client>().cloned().unwrap_or_default()
}

/// The tokens of a new or refreshed session. The refresh token appears here once and is
/// stored only as a hash.
pub struct AuthPayload(sessions::Issued);

#[Object]
impl AuthPayload {
    /// Send as `Authorization: Bearer <accessToken>`; short-lived.
    async fn access_token(&self) -> &str {
        &self.0.access_token
    }
    async fn access_token_expires_at(&self) -> DateTime<Utc> {
        self.0.access_expires_at
    }
    /// Exchange for new tokens with `refreshSession` before the session expires; each one
    /// works once.
    async fn refresh_token(&self) -> &str {
        &self.0.refresh_token
    }
    async fn session(&self) -> &Session {
        &self.0.session
    }
    /// The signed-in user.
    async fn user(&self, ctx: &Context<'_>) -> GqlResult<User> {
        Ok(load_user(ctx, &self.0.caller).await?)
    }
}

async fn load_user(ctx: &Context<'_>, rc: &RequestContext) -> Result<User, ApiError> {
    let (tenant, id) = (rc.tenant_id, rc.user_id);
    database(ctx)?
        .transaction(rc, true, move |conn| {
            async move {
                users::table
                    .filter(users::tenant_id.eq(tenant))
                    .filter(users::id.eq(id))
                    .select(User::as_select())
                    .first(conn)
                    .await
                    .map_err(|e| ApiError::from_db(e, "User", crate::entities::CONSTRAINTS))
            }
            .boxed()
        })
        .await
}

#[derive(Default)]
pub struct AccountQuery;

#[Object]
impl AccountQuery {
    /// The signed-in user.
    async fn me(&self, ctx: &Context<'_>) -> GqlResult<User> {
        Ok(load_user(ctx, caller(ctx)?).await?)
    }
}

#[derive(Default)]
pub struct AccountMutation;

#[Object]
impl AccountMutation {
    /// Signs in with a password; needs no bearer token. Failed attempts are limited per
    /// account and per client address.
    async fn login(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The tenant's slug")] tenant: String,
        email: String,
        #[graphql(secret)] password: String,
    ) -> GqlResult<AuthPayload> {
        let issued = sessions::login(
            database(ctx)?,
            accounts(ctx)?,
            &client(ctx),
            &tenant,
            &email,
            password,
        )
        .await?;
        Ok(AuthPayload(issued))
    }

    /// Exchanges a refresh token for new tokens; needs no bearer token. A refresh token works
    /// once: presenting it again ends its session.
    async fn refresh_session(
        &self,
        ctx: &Context<'_>,
        #[graphql(secret)] refresh_token: String,
    ) -> GqlResult<AuthPayload> {
        let issued =
            sessions::refresh(database(ctx)?, accounts(ctx)?, &client(ctx), &refresh_token).await?;
        Ok(AuthPayload(issued))
    }

    /// Ends the session of the bearer token (its refresh token stops working; the access
    /// token itself lapses within its short lifetime).
    async fn logout(&self, ctx: &Context<'_>) -> GqlResult<bool> {
        Ok(sessions::logout(database(ctx)?, caller(ctx)?).await?)
    }

    /// Ends every session of the caller; returns how many were open.
    async fn logout_everywhere(&self, ctx: &Context<'_>) -> GqlResult<i32> {
        let n = sessions::logout_everywhere(database(ctx)?, caller(ctx)?).await?;
        Ok(i32::try_from(n).unwrap_or(i32::MAX))
    }

    /// Changes the caller's password; the caller's other sessions end.
    async fn change_password(
        &self,
        ctx: &Context<'_>,
        #[graphql(secret)] current_password: String,
        #[graphql(secret)] new_password: String,
    ) -> GqlResult<bool> {
        let rc = caller(ctx)?;
        sessions::change_password(
            database(ctx)?,
            accounts(ctx)?,
            rc,
            current_password,
            new_password,
        )
        .await?;
        Ok(true)
    }

    /// Sets a user's password (admins only); that user's sessions end.
    async fn set_user_password(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        #[graphql(secret)] password: String,
    ) -> GqlResult<bool> {
        let rc = caller(ctx)?;
        let user = input::id(&user_id, "", "userId")?;
        sessions::set_password(database(ctx)?, rc, user, password).await?;
        Ok(true)
    }
}
