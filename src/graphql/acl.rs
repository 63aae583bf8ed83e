//! The catalog's access rules (`acl` per entity) applied to a caller.
//!
//! Reads are filtered, never refused: a row the caller may not read looks exactly like a
//! missing one. Writes the caller's role may not make at all are refused with FORBIDDEN.

use crate::auth::{RequestContext, Role};
use crate::db::sql::Filter;
use crate::db::value::Value;
use crate::graphql::meta::{AclRole, EntityMeta, EntityScope};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Create,
    Read,
    Update,
    Delete,
}

impl Op {
    pub fn verb(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Read => "read",
            Op::Update => "update",
            Op::Delete => "delete",
        }
    }
}

/// What a caller may do with an entity's rows for one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// Every row of its tenant (or every global row).
    All,
    /// Only rows whose owner column is the caller.
    Own,
    None,
}

pub fn grant(meta: &EntityMeta, rc: &RequestContext, op: Op) -> Grant {
    let roles = match op {
        Op::Create => meta.acl.create,
        Op::Read => meta.acl.read,
        Op::Update => meta.acl.update,
        Op::Delete => meta.acl.delete,
    };
    if meta.append_only && matches!(op, Op::Update | Op::Delete) {
        return Grant::None;
    }
    let admin = rc.role == Role::Admin;
    if roles.contains(&AclRole::Public)
        || roles.contains(&AclRole::User)
        || (admin && roles.contains(&AclRole::Admin))
    {
        return Grant::All;
    }
    if roles.contains(&AclRole::Owner) && meta.owner.is_some() {
        return Grant::Own;
    }
    Grant::None
}

/// The rows of `meta` the caller may `op`: its tenant's, narrowed by the ACL.
pub fn row_scope(meta: &'static EntityMeta, rc: &RequestContext, op: Op) -> Filter {
    let mut parts = Vec::new();
    match meta.scope {
        EntityScope::Tenant => match meta.column("tenant_id") {
            Some(col) => parts.push(Filter::eq(col, Value::Uuid(rc.tenant_id))),
            None => return Filter::False,
        },
        EntityScope::TenantRoot => {
            parts.push(Filter::eq(meta.id_column(), Value::Uuid(rc.tenant_id)))
        }
        EntityScope::Global => {}
    }
    match grant(meta, rc, op) {
        Grant::All => {}
        Grant::Own => match meta.owner.and_then(|o| meta.column(o)) {
            Some(col) => parts.push(Filter::eq(col, Value::Uuid(rc.user_id))),
            None => return Filter::False,
        },
        Grant::None => return Filter::False,
    }
    Filter::and(parts)
}
