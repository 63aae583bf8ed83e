//! Operator actions that no API caller may take: creating a tenant with its first admin.
//! They run as the schema owner, which row-level security binds too (the tables force it), so
//! they also work inside a transaction scoped to the tenant they act on.

use diesel::{ExpressionMethods, OptionalExtension, QueryDsl};
use diesel_async::{AsyncConnection, RunQueryDsl};
use serde::Serialize;
use uuid::Uuid;

use crate::auth::{JwtKeys, OperatorGrant, Role};
use crate::db::Conn;
use crate::entities::enums::UserRole;
use crate::entities::schema::{tenants, users};

diesel::define_sql_function!(fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text);

#[derive(Debug, Serialize)]
pub struct CreatedTenant {
    pub tenant_id: Uuid,
    pub slug: String,
    pub admin_user_id: Uuid,
    pub admin_email: String,
    pub token: String,
    /// False when the tenant (and admin) already existed and were reused.
    pub created: bool,
}

#[derive(diesel::QueryableByName)]
struct Found {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    active: bool,
}

/// The tenant called `slug`: its id, and whether it is active. Before a tenant is known no
/// row of `tenants` is visible, so this asks a SECURITY DEFINER function that reveals no more.
pub async fn by_slug(conn: &mut Conn, slug: &str) -> diesel::QueryResult<Option<(Uuid, bool)>> {
    let found: Option<Found> =
        diesel::sql_query("SELECT id, active FROM gateway_tenant_for_sign_in($1)")
            .bind::<diesel::sql_types::Text, _>(slug)
            .get_result(conn)
            .await
            .optional()?;
    Ok(found.map(|f| (f.id, f.active)))
}

/// Creates tenant `slug` and its admin user, or returns the existing ones; issues an admin token.
pub async fn create_tenant(
    url: &str,
    keys: &JwtKeys,
    slug: &str,
    name: &str,
    admin_email: &str,
    ttl_secs: i64,
) -> Result<CreatedTenant, String> {
    let mut conn = Conn::establish(url)
        .await
        .map_err(|e| format!("cannot connect to the database: {e}"))?;
    let existing = by_slug(&mut conn, slug)
        .await
        .map_err(|e| format!("cannot read tenants: {e}"))?;
    let (tenant_id, created) = match existing {
        Some((id, _)) => (id, false),
        None => (Uuid::now_v7(), true),
    };
    let (name, slug_owned, email) = (name.to_string(), slug.to_string(), admin_email.to_string());
    // The generation is read in the tenant's transaction: row-level security hides it outside.
    let (admin_user_id, generation) = conn
        .transaction::<(Uuid, i64), diesel::result::Error, _>(async move |conn| {
            crate::db::scope_to_tenant(conn, tenant_id).await?;
            if created {
                diesel::insert_into(tenants::table)
                    .values((
                        tenants::id.eq(tenant_id),
                        tenants::name.eq(name),
                        tenants::slug.eq(slug_owned),
                    ))
                    .execute(conn)
                    .await?;
            }
            let admin: Option<Uuid> = users::table
                .filter(users::tenant_id.eq(tenant_id))
                .filter(lower(users::email).eq(email.to_lowercase()))
                .select(users::id)
                .first(conn)
                .await
                .optional()?;
            let generation = generation(conn, tenant_id).await?;
            if let Some(id) = admin {
                return Ok((id, generation));
            }
            let id = Uuid::now_v7();
            diesel::insert_into(users::table)
                .values((
                    users::id.eq(id),
                    users::tenant_id.eq(tenant_id),
                    users::email.eq(email),
                    users::name.eq("Administrator"),
                    users::role.eq(UserRole::Admin),
                ))
                .execute(conn)
                .await?;
            Ok((id, generation))
        })
        .await
        .map_err(|e| format!("cannot create tenant {slug} and its admin: {e}"))?;
    let grant = OperatorGrant {
        platform: false,
        generation,
    };
    let token = keys
        .issue_operator(tenant_id, admin_user_id, Role::Admin, grant, ttl_secs)
        .map_err(|e| e.message())?;
    Ok(CreatedTenant {
        tenant_id,
        slug: slug.to_string(),
        admin_user_id,
        admin_email: admin_email.to_string(),
        token,
        created,
    })
}

#[derive(diesel::QueryableByName)]
struct Generation {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    generation: i64,
}

/// The tenant's current operator-token generation (0 until tokens are first revoked).
async fn generation(conn: &mut Conn, tenant: Uuid) -> diesel::QueryResult<i64> {
    let found: Option<Generation> =
        diesel::sql_query("SELECT generation FROM operator_token_generations WHERE tenant_id = $1")
            .bind::<diesel::sql_types::Uuid, _>(tenant)
            .get_result(conn)
            .await
            .optional()?;
    Ok(found.map_or(0, |g| g.generation))
}

/// A connection as the owner, and the id of tenant `slug`, which must exist.
async fn existing_tenant(url: &str, slug: &str) -> Result<(Conn, Uuid), String> {
    let mut conn = Conn::establish(url)
        .await
        .map_err(|e| format!("cannot connect to the database: {e}"))?;
    let (tenant_id, _) = by_slug(&mut conn, slug)
        .await
        .map_err(|e| format!("cannot read tenants: {e}"))?
        .ok_or_else(|| format!("no tenant with slug {slug}"))?;
    Ok((conn, tenant_id))
}

/// Revokes every operator token issued so far for tenant `slug` (those of `gateway token`
/// and `gateway tenant create`); sign-in sessions are not affected. Returns the new generation.
pub async fn revoke_operator_tokens(url: &str, slug: &str) -> Result<i64, String> {
    let (mut conn, tenant_id) = existing_tenant(url, slug).await?;
    conn.transaction::<i64, diesel::result::Error, _>(async move |conn| {
        crate::db::scope_to_tenant(conn, tenant_id).await?;
        let bumped: Generation = diesel::sql_query(
            "INSERT INTO operator_token_generations (tenant_id, generation) VALUES ($1, 1)
             ON CONFLICT (tenant_id) DO UPDATE
             SET generation = operator_token_generations.generation + 1
             RETURNING generation",
        )
        .bind::<diesel::sql_types::Uuid, _>(tenant_id)
        .get_result(conn)
        .await?;
        Ok(bumped.generation)
    })
    .await
    .map_err(|e| format!("cannot revoke the tokens of {slug}: {e}"))
}

/// A token for an existing user of tenant `slug`, looked up by email (case-insensitively).
/// `platform` makes it a platform operator's, which may write global rows.
pub async fn token_for(
    url: &str,
    keys: &JwtKeys,
    slug: &str,
    email: &str,
    role: Option<Role>,
    platform: bool,
    ttl_secs: i64,
) -> Result<String, String> {
    let (mut conn, tenant_id) = existing_tenant(url, slug).await?;
    let email_owned = email.to_string();
    let (found, generation) = conn
        .transaction::<_, diesel::result::Error, _>(async move |conn| {
            crate::db::scope_to_tenant(conn, tenant_id).await?;
            let found: Option<(Uuid, UserRole)> = users::table
                .filter(users::tenant_id.eq(tenant_id))
                .filter(lower(users::email).eq(email_owned.to_lowercase()))
                .select((users::id, users::role))
                .first(conn)
                .await
                .optional()?;
            Ok((found, generation(conn, tenant_id).await?))
        })
        .await
        .map_err(|e| format!("cannot read users: {e}"))?;
    let (user_id, user_role) = found.ok_or_else(|| format!("no user {email} in tenant {slug}"))?;
    let role = role.unwrap_or(match user_role {
        UserRole::Admin => Role::Admin,
        _ => Role::User,
    });
    let grant = OperatorGrant {
        platform,
        generation,
    };
    keys.issue_operator(tenant_id, user_id, role, grant, ttl_secs)
        .map_err(|e| e.message())
}
