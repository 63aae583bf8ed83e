//! Sign-in sessions: login with a password, refresh-token rotation with reuse detection,
//! logout, and passwords set by their owner or an admin.
//!
//! A refresh token is `<tenant id>.<32 random bytes, base64url>`; only its SHA-256 is stored
//! (`Session.refreshTokenHash`; `tokenHash` keeps the first one, naming the session). Each
//! refresh replaces it and files the old hash in `session_rotations`: presenting a token from
//! there means it was copied, so the whole session is revoked. The tenant in the token lets the
//! lookup run inside that tenant's transaction like every other statement.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use diesel::{
    BoolExpressionMethods, ExpressionMethods, OptionalExtension, QueryDsl, SelectableHelper,
};
use diesel_async::RunQueryDsl;
use futures::FutureExt;
use uuid::Uuid;

use super::password;
use super::{Accounts, Client, RequestContext, Role};
use crate::audit::{self, Change};
use crate::db::{Conn, Db};
use crate::entities::core::{Credential, Session};
use crate::entities::enums::{CredentialKind, UserRole, UserStatus};
use crate::entities::schema::{credentials, sessions, users};
use crate::error::ApiError;

diesel::table! {
    /// Hashes of refresh tokens already exchanged (hand-written migration, not the catalog:
    /// internal bookkeeping no API exposes).
    session_rotations (token_hash) {
        token_hash -> Text,
        tenant_id -> Uuid,
        session_id -> Uuid,
        rotated_at -> Timestamptz,
    }
}

/// What a successful login or refresh hands out.
pub struct Issued {
    pub access_token: String,
    pub access_expires_at: DateTime<Utc>,
    pub refresh_token: String,
    pub session: Session,
    pub caller: RequestContext,
}

fn sha256_hex(s: &str) -> String {
    gateway_catalog::sha256_hex(s)
}

fn new_refresh_token(tenant: Uuid) -> String {
    let random: [u8; 32] = rand::random();
    format!("{}.{}", tenant.simple(), URL_SAFE_NO_PAD.encode(random))
}

/// The context a session's owner acts in, for audit rows and tokens of sign-in operations.
fn owner_context(
    tenant: Uuid,
    user: Uuid,
    role: Role,
    client: &Client,
    session: Option<Uuid>,
) -> RequestContext {
    RequestContext {
        client_ip: client.ip.clone(),
        user_agent: client.user_agent.clone(),
        session_id: session,
        ..RequestContext::new(tenant, user, role)
    }
}

type PasswordOf = diesel::dsl::And<
    diesel::dsl::And<
        diesel::dsl::Eq<credentials::tenant_id, Uuid>,
        diesel::dsl::Eq<credentials::user_id, Uuid>,
    >,
    diesel::dsl::Eq<credentials::kind, CredentialKind>,
>;

/// The PASSWORD credential of `user` in `tenant`.
fn password_of(tenant: Uuid, user: Uuid) -> PasswordOf {
    credentials::tenant_id
        .eq(tenant)
        .and(credentials::user_id.eq(user))
        .and(credentials::kind.eq(CredentialKind::Password))
}

fn invalid_login() -> ApiError {
    ApiError::unauthenticated("unknown tenant, email or password")
}

fn invalid_refresh() -> ApiError {
    ApiError::unauthenticated("the refresh token is not valid; sign in again")
}

fn db_err(entity: &'static str) -> impl Fn(diesel::result::Error) -> ApiError {
    move |e| ApiError::from_db(e, entity, crate::graphql::meta::constraints())
}

fn role_of(r: UserRole) -> Role {
    match r {
        UserRole::Admin => Role::Admin,
        _ => Role::User,
    }
}

/// An account found by its sign-in name, with its password hash when it has one.
struct Account {
    tenant_id: Uuid,
    user_id: Uuid,
    role: UserRole,
    active: bool,
    hash: Option<String>,
}

async fn find_account(
    db: &Db,
    tenant_slug: &str,
    email: &str,
) -> Result<Option<Account>, ApiError> {
    let mut conn = db.get().await?;
    let tenant = crate::tenants::by_slug(&mut conn, tenant_slug)
        .await
        .map_err(db_err("Tenant"))?;
    drop(conn);
    let Some((tenant_id, tenant_active)) = tenant else {
        return Ok(None);
    };
    let email = email.to_lowercase();
    db.transaction_in(tenant_id, true, move |conn| {
        async move {
            let user: Option<(Uuid, UserRole, UserStatus)> = users::table
                .filter(users::tenant_id.eq(tenant_id))
                .filter(
                    diesel::dsl::sql::<diesel::sql_types::Bool>("lower(email) = ")
                        .bind::<diesel::sql_types::Text, _>(email),
                )
                .select((users::id, users::role, users::status))
                .first(conn)
                .await
                .optional()
                .map_err(db_err("User"))?;
            let Some((user_id, role, status)) = user else {
                return Ok(None);
            };
            let hash: Option<String> = credentials::table
                .filter(password_of(tenant_id, user_id))
                .order(credentials::created_at.desc())
                .select(credentials::secret_hash)
                .first(conn)
                .await
                .optional()
                .map_err(db_err("Credential"))?;
            Ok(Some(Account {
                tenant_id,
                user_id,
                role,
                active: status == UserStatus::Active && tenant_active,
                hash,
            }))
        }
        .boxed()
    })
    .await
}

/// Signs a new access token for `caller` in `session`.
fn access_token(
    accounts: &Accounts,
    caller: &RequestContext,
    session: &Session,
) -> Result<(String, DateTime<Utc>), ApiError> {
    // Never past its session's end: the gateways' admission cache (db::Admitted) relies on a
    // session token expiring no later than its session. A second less: `exp` is counted from
    // the whole second the token is signed in, which may be the next one.
    let left = (session.expires_at - Utc::now()).num_seconds() - 1;
    let ttl = (accounts.access_ttl.as_secs() as i64).min(left);
    if ttl <= 0 {
        return Err(invalid_refresh());
    }
    let token = accounts.keys.issue_for_session(
        caller.tenant_id,
        caller.user_id,
        caller.role,
        session.id,
        ttl,
    )?;
    Ok((token, Utc::now() + chrono::Duration::seconds(ttl)))
}

/// `login(tenant, email, password)`.
pub async fn login(
    db: &Db,
    accounts: &Accounts,
    client: &Client,
    tenant_slug: &str,
    email: &str,
    pass: String,
) -> Result<Issued, ApiError> {
    let account_key = format!("{tenant_slug}/{email}");
    accounts
        .limiter
        .attempt(&account_key, client.ip.as_deref())?;
    let account = find_account(db, tenant_slug, email).await?;
    let matches = password::verify(pass, account.as_ref().and_then(|a| a.hash.clone())).await?;
    let Some(account) = account.filter(|a| matches && a.active) else {
        return Err(invalid_login());
    };
    accounts.limiter.succeeded(&account_key);
    let caller = owner_context(
        account.tenant_id,
        account.user_id,
        role_of(account.role),
        client,
        None,
    );
    let refresh = new_refresh_token(account.tenant_id);
    let hash = sha256_hex(&refresh);
    let expires = Utc::now() + chrono::Duration::seconds(accounts.refresh_ttl.as_secs() as i64);
    let rc = caller.clone();
    let session = db
        .transaction_in(account.tenant_id, false, move |conn| {
            async move {
                let session: Session = diesel::insert_into(sessions::table)
                    .values((
                        sessions::id.eq(Uuid::now_v7()),
                        sessions::tenant_id.eq(rc.tenant_id),
                        sessions::user_id.eq(rc.user_id),
                        sessions::token_hash.eq(&hash),
                        sessions::refresh_token_hash.eq(&hash),
                        sessions::expires_at.eq(expires),
                        sessions::ip_address.eq(&rc.client_ip),
                        sessions::user_agent.eq(&rc.user_agent),
                        sessions::last_used_at.eq(Utc::now()),
                    ))
                    .returning(Session::as_returning())
                    .get_result(conn)
                    .await
                    .map_err(db_err("Session"))?;
                diesel::update(credentials::table)
                    .filter(password_of(rc.tenant_id, rc.user_id))
                    .set(credentials::last_used_at.eq(Utc::now()))
                    .execute(conn)
                    .await
                    .map_err(db_err("Credential"))?;
                trail(
                    conn,
                    &rc,
                    audit::Action::Create,
                    vec![Change::of_model(session.id, None, Some(&session))],
                )
                .await?;
                Ok(session)
            }
            .boxed()
        })
        .await?;
    let (access, access_expires_at) = access_token(accounts, &caller, &session)?;
    let mut caller = caller;
    caller.session_id = Some(session.id);
    Ok(Issued {
        access_token: access,
        access_expires_at,
        refresh_token: refresh,
        session,
        caller,
    })
}

/// The engine's metadata of a built-in entity these typed writes are about.
fn entity(name: &str) -> Result<&'static crate::graphql::meta::EntityMeta, ApiError> {
    crate::graphql::meta::metadata()
        .entity(name)
        .ok_or_else(|| ApiError::internal(format!("the catalog has no {name}")))
}

/// Change events and audit rows of session writes, like every other mutation's.
async fn trail(
    conn: &mut Conn,
    rc: &RequestContext,
    action: audit::Action,
    changes: Vec<Change>,
) -> Result<(), ApiError> {
    crate::graphql::crud::record(conn, entity("Session")?, rc, action, changes).await
}

enum Refreshed {
    Rotated(Box<(Session, RequestContext)>),
    /// A token already exchanged: the session is now revoked.
    Reused,
    Invalid,
}

/// `refreshSession(refreshToken)`: a new access token and a new refresh token; the old one
/// stops working, and using it again revokes the session.
pub async fn refresh(
    db: &Db,
    accounts: &Accounts,
    client: &Client,
    token: &str,
) -> Result<Issued, ApiError> {
    let tenant = token
        .split_once('.')
        .and_then(|(t, _)| Uuid::parse_str(t).ok())
        .ok_or_else(invalid_refresh)?;
    let old = sha256_hex(token);
    let new_token = new_refresh_token(tenant);
    let new = sha256_hex(&new_token);
    let client = client.clone();
    let outcome = db
        .transaction_in(tenant, false, move |conn| {
            async move {
                let current: Option<Session> = sessions::table
                    .filter(sessions::tenant_id.eq(tenant))
                    .filter(sessions::refresh_token_hash.eq(&old))
                    .select(Session::as_select())
                    .for_update()
                    .first(conn)
                    .await
                    .optional()
                    .map_err(db_err("Session"))?;
                let Some(session) = current else {
                    let reused: Option<Uuid> = session_rotations::table
                        .filter(session_rotations::token_hash.eq(&old))
                        .filter(session_rotations::tenant_id.eq(tenant))
                        .select(session_rotations::session_id)
                        .first(conn)
                        .await
                        .optional()
                        .map_err(db_err("Session"))?;
                    let Some(sid) = reused else {
                        return Ok(Refreshed::Invalid);
                    };
                    let owner: Uuid = sessions::table
                        .filter(sessions::id.eq(sid))
                        .select(sessions::user_id)
                        .first(conn)
                        .await
                        .map_err(db_err("Session"))?;
                    let rc = owner_context(tenant, owner, Role::User, &client, Some(sid));
                    revoke(
                        conn,
                        &rc,
                        Which::One {
                            id: sid,
                            user: owner,
                        },
                    )
                    .await?;
                    return Ok(Refreshed::Reused);
                };
                if session.revoked_at.is_some() || session.expires_at <= Utc::now() {
                    return Ok(Refreshed::Invalid);
                }
                let user: Option<(UserRole, UserStatus)> = users::table
                    .filter(users::tenant_id.eq(tenant))
                    .filter(users::id.eq(session.user_id))
                    .select((users::role, users::status))
                    .first(conn)
                    .await
                    .optional()
                    .map_err(db_err("User"))?;
                let Some((role, UserStatus::Active)) = user else {
                    return Ok(Refreshed::Invalid);
                };
                diesel::insert_into(session_rotations::table)
                    .values((
                        session_rotations::token_hash.eq(&old),
                        session_rotations::tenant_id.eq(tenant),
                        session_rotations::session_id.eq(session.id),
                        session_rotations::rotated_at.eq(Utc::now()),
                    ))
                    .execute(conn)
                    .await
                    .map_err(db_err("Session"))?;
                let updated: Session = diesel::update(sessions::table)
                    .filter(sessions::id.eq(session.id))
                    .set((
                        sessions::refresh_token_hash.eq(&new),
                        sessions::last_used_at.eq(Utc::now()),
                        sessions::ip_address.eq(&client.ip),
                        sessions::user_agent.eq(&client.user_agent),
                    ))
                    .returning(Session::as_returning())
                    .get_result(conn)
                    .await
                    .map_err(db_err("Session"))?;
                let rc = owner_context(
                    tenant,
                    updated.user_id,
                    role_of(role),
                    &client,
                    Some(updated.id),
                );
                trail(
                    conn,
                    &rc,
                    audit::Action::Update,
                    vec![Change::of_model(updated.id, Some(&session), Some(&updated))],
                )
                .await?;
                Ok(Refreshed::Rotated(Box::new((updated, rc))))
            }
            .boxed()
        })
        .await?;
    let (session, caller) =
        match outcome {
            Refreshed::Rotated(rotated) => *rotated,
            Refreshed::Reused => return Err(ApiError::unauthenticated(
                "this refresh token was already used; the session has been revoked, sign in again",
            )),
            Refreshed::Invalid => return Err(invalid_refresh()),
        };
    let (access, access_expires_at) = access_token(accounts, &caller, &session)?;
    Ok(Issued {
        access_token: access,
        access_expires_at,
        refresh_token: new_token,
        session,
        caller,
    })
}

/// Which open sessions to revoke.
enum Which {
    /// One session, if it is `user`'s.
    One { id: Uuid, user: Uuid },
    /// Every session of `user` but `except`.
    AllOf { user: Uuid, except: Option<Uuid> },
}

/// Revokes open sessions of the caller's tenant; returns how many.
async fn revoke(conn: &mut Conn, rc: &RequestContext, which: Which) -> Result<usize, ApiError> {
    let open = sessions::table
        .filter(sessions::tenant_id.eq(rc.tenant_id))
        .filter(sessions::revoked_at.is_null());
    let mut before: Vec<Session> = match which {
        Which::One { id, user } => {
            open.filter(sessions::user_id.eq(user))
                .filter(sessions::id.eq(id))
                .select(Session::as_select())
                .for_update()
                .load(conn)
                .await
        }
        Which::AllOf { user, except } => {
            // Uuid::nil() is no session's id: "all but none".
            open.filter(sessions::user_id.eq(user))
                .filter(sessions::id.ne(except.unwrap_or_else(Uuid::nil)))
                .select(Session::as_select())
                .for_update()
                .load(conn)
                .await
        }
    }
    .map_err(db_err("Session"))?;
    if before.is_empty() {
        return Ok(0);
    }
    let ids: Vec<Uuid> = before.iter().map(|s| s.id).collect();
    let mut after: Vec<Session> = diesel::update(sessions::table)
        .filter(sessions::id.eq_any(&ids))
        .set(sessions::revoked_at.eq(Utc::now()))
        .returning(Session::as_returning())
        .get_results(conn)
        .await
        .map_err(db_err("Session"))?;
    before.sort_by_key(|s| s.id);
    after.sort_by_key(|s| s.id);
    let changes = before
        .iter()
        .zip(&after)
        .map(|(b, a)| Change::of_model(a.id, Some(b), Some(a)))
        .collect();
    trail(conn, rc, audit::Action::Update, changes).await?;
    Ok(after.len())
}

/// Ends every open session of `user` (of the caller's tenant), in the caller's transaction:
/// a deactivated user or a changed role must sign in again. Returns how many ended.
pub async fn end_sessions_of(
    conn: &mut Conn,
    rc: &RequestContext,
    user: Uuid,
) -> Result<usize, ApiError> {
    revoke(conn, rc, Which::AllOf { user, except: None }).await
}

/// `logout`: ends the session of the caller's token.
pub async fn logout(db: &Db, rc: &RequestContext) -> Result<bool, ApiError> {
    let id = rc.session_id.ok_or_else(|| {
        ApiError::bad_request("this token was not issued by login: there is no session to end")
    })?;
    let user = rc.user_id;
    let rc2 = rc.clone();
    let n = db
        .transaction(rc, false, move |conn| {
            async move { revoke(conn, &rc2, Which::One { id, user }).await }.boxed()
        })
        .await?;
    Ok(n > 0)
}

/// `logoutEverywhere`: ends every session of the caller; returns how many were open.
pub async fn logout_everywhere(db: &Db, rc: &RequestContext) -> Result<usize, ApiError> {
    let rc2 = rc.clone();
    db.transaction(rc, false, move |conn| {
        async move {
            let which = Which::AllOf {
                user: rc2.user_id,
                except: None,
            };
            revoke(conn, &rc2, which).await
        }
        .boxed()
    })
    .await
}

/// Stores `hash` as `user`'s password, replacing the old one, and ends the user's sessions
/// except `keep`.
async fn store_password(
    db: &Db,
    rc: &RequestContext,
    user: Uuid,
    hash: String,
    keep: Option<Uuid>,
) -> Result<(), ApiError> {
    let rc2 = rc.clone();
    db.transaction(rc, false, move |conn| {
        async move {
            let tenant = rc2.tenant_id;
            let existing: Option<Credential> = credentials::table
                .filter(password_of(tenant, user))
                .select(Credential::as_select())
                .for_update()
                .first(conn)
                .await
                .optional()
                .map_err(db_err("Credential"))?;
            let (action, change) = match existing {
                Some(old) => {
                    let new: Credential = diesel::update(credentials::table)
                        .filter(credentials::id.eq(old.id))
                        .set((
                            credentials::secret_hash.eq(&hash),
                            credentials::updated_at.eq(Utc::now()),
                        ))
                        .returning(Credential::as_returning())
                        .get_result(conn)
                        .await
                        .map_err(db_err("Credential"))?;
                    (
                        audit::Action::Update,
                        Change::of_model(new.id, Some(&old), Some(&new)),
                    )
                }
                None => {
                    let new: Credential = diesel::insert_into(credentials::table)
                        .values((
                            credentials::id.eq(Uuid::now_v7()),
                            credentials::tenant_id.eq(tenant),
                            credentials::user_id.eq(user),
                            credentials::kind.eq(CredentialKind::Password),
                            credentials::secret_hash.eq(&hash),
                        ))
                        .returning(Credential::as_returning())
                        .get_result(conn)
                        .await
                        .map_err(db_err("Credential"))?;
                    (
                        audit::Action::Create,
                        Change::of_model(new.id, None, Some(&new)),
                    )
                }
            };
            crate::graphql::crud::record(conn, entity("Credential")?, &rc2, action, vec![change])
                .await?;
            revoke(conn, &rc2, Which::AllOf { user, except: keep }).await?;
            Ok(())
        }
        .boxed()
    })
    .await
}

/// `changePassword`: the caller's own, proving the current one; other sessions end.
pub async fn change_password(
    db: &Db,
    accounts: &Accounts,
    rc: &RequestContext,
    current: String,
    new: String,
) -> Result<(), ApiError> {
    password::check_policy("newPassword", &new)?;
    let key = format!("user:{}", rc.user_id);
    accounts.limiter.attempt(&key, rc.client_ip.as_deref())?;
    let (tenant, user) = (rc.tenant_id, rc.user_id);
    let hash: Option<String> = db
        .transaction(rc, true, move |conn| {
            async move {
                credentials::table
                    .filter(password_of(tenant, user))
                    .select(credentials::secret_hash)
                    .first(conn)
                    .await
                    .optional()
                    .map_err(db_err("Credential"))
            }
            .boxed()
        })
        .await?;
    if !password::verify(current, hash).await? {
        return Err(ApiError::bad_input(
            "currentPassword",
            "this is not your current password",
        ));
    }
    accounts.limiter.succeeded(&key);
    let hash = password::hash(new).await?;
    store_password(db, rc, user, hash, rc.session_id).await
}

/// `setUserPassword`: an admin sets a user's password; all of that user's sessions end.
pub async fn set_password(
    db: &Db,
    rc: &RequestContext,
    user: Uuid,
    new: String,
) -> Result<(), ApiError> {
    if rc.role != Role::Admin {
        return Err(ApiError::forbidden(
            "only an admin may set another user's password",
        ));
    }
    password::check_policy("password", &new)?;
    let tenant = rc.tenant_id;
    let exists = db
        .transaction(rc, true, move |conn| {
            async move {
                diesel::select(diesel::dsl::exists(
                    users::table
                        .filter(users::tenant_id.eq(tenant))
                        .filter(users::id.eq(user)),
                ))
                .get_result::<bool>(conn)
                .await
                .map_err(db_err("User"))
            }
            .boxed()
        })
        .await?;
    if !exists {
        return Err(ApiError::not_found("User"));
    }
    let hash = password::hash(new).await?;
    store_password(db, rc, user, hash, None).await
}
