//! Operator actions that no API caller may take: creating a tenant with its first admin.

use diesel::{ExpressionMethods, OptionalExtension, QueryDsl};
use diesel_async::{AsyncConnection, RunQueryDsl};
use serde::Serialize;
use uuid::Uuid;

use crate::auth::{JwtKeys, Role};
use crate::db::Conn;
use crate::entities::enums::UserRole;
use crate::entities::schema::{tenants, users};

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
    let existing: Option<Uuid> = tenants::table
        .filter(tenants::slug.eq(slug))
        .select(tenants::id)
        .first(&mut conn)
        .await
        .optional()
        .map_err(|e| format!("cannot read tenants: {e}"))?;
    let (tenant_id, created) = match existing {
        Some(id) => (id, false),
        None => {
            let id = Uuid::now_v7();
            diesel::insert_into(tenants::table)
                .values((
                    tenants::id.eq(id),
                    tenants::name.eq(name),
                    tenants::slug.eq(slug),
                ))
                .execute(&mut conn)
                .await
                .map_err(|e| format!("cannot create tenant {slug}: {e}"))?;
            (id, true)
        }
    };
    let admin: Option<Uuid> = users::table
        .filter(users::tenant_id.eq(tenant_id))
        .filter(users::email.eq(admin_email))
        .select(users::id)
        .first(&mut conn)
        .await
        .optional()
        .map_err(|e| format!("cannot read users: {e}"))?;
    let admin_user_id = match admin {
        Some(id) => id,
        None => {
            let id = Uuid::now_v7();
            diesel::insert_into(users::table)
                .values((
                    users::id.eq(id),
                    users::tenant_id.eq(tenant_id),
                    users::email.eq(admin_email),
                    users::name.eq("Administrator"),
                    users::role.eq(UserRole::Admin),
                ))
                .execute(&mut conn)
                .await
                .map_err(|e| format!("cannot create the admin user: {e}"))?;
            id
        }
    };
    let token = keys
        .issue(tenant_id, admin_user_id, Role::Admin, ttl_secs)
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

/// A token for an existing user of tenant `slug`, looked up by email.
pub async fn token_for(
    url: &str,
    keys: &JwtKeys,
    slug: &str,
    email: &str,
    role: Option<Role>,
    ttl_secs: i64,
) -> Result<String, String> {
    let mut conn = Conn::establish(url)
        .await
        .map_err(|e| format!("cannot connect to the database: {e}"))?;
    let tenant_id: Uuid = tenants::table
        .filter(tenants::slug.eq(slug))
        .select(tenants::id)
        .first(&mut conn)
        .await
        .optional()
        .map_err(|e| format!("cannot read tenants: {e}"))?
        .ok_or_else(|| format!("no tenant with slug {slug}"))?;
    let (user_id, user_role): (Uuid, UserRole) = users::table
        .filter(users::tenant_id.eq(tenant_id))
        .filter(users::email.eq(email))
        .select((users::id, users::role))
        .first(&mut conn)
        .await
        .optional()
        .map_err(|e| format!("cannot read users: {e}"))?
        .ok_or_else(|| format!("no user {email} in tenant {slug}"))?;
    let role = role.unwrap_or(match user_role {
        UserRole::Admin => Role::Admin,
        _ => Role::User,
    });
    keys.issue(tenant_id, user_id, role, ttl_secs)
        .map_err(|e| e.message())
}
