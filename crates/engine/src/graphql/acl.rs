//! The catalog's access rules (`acl` per entity) applied to a caller.
//!
//! Reads are filtered, never refused: a row the caller may not read looks exactly like a
//! missing one. Writes the caller's role may not make at all are refused with FORBIDDEN.

use crate::caller::{RequestContext, Role};
use crate::db::sql::{Filter, Link, Quantifier, SortKey};
use crate::db::value::Value;
use crate::error::ApiError;
use crate::graphql::meta::{metadata, AclRole, EntityMeta, EntityScope, RelationLink};

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
    if roles.iter().any(|r| holds(rc, *r)) {
        return Grant::All;
    }
    if roles.contains(&AclRole::Owner) && meta.owner.is_some() {
        return Grant::Own;
    }
    Grant::None
}

/// Whether the caller holds `role` outright (`self` depends on the row: see [`grant`]).
pub fn holds(rc: &RequestContext, role: AclRole) -> bool {
    match role {
        AclRole::Public | AclRole::User => true,
        AclRole::Admin => rc.role == Role::Admin,
        AclRole::Platform => rc.platform,
        AclRole::Owner => false,
    }
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
    parts.extend(members_only(meta, rc));
    parts.extend(readable_with(meta, rc));
    Filter::and(parts)
}

/// The relation `name` of `meta`, as the installed metadata links it.
fn link_of(meta: &'static EntityMeta, name: &str) -> Option<&'static RelationLink> {
    metadata().links(meta).iter().find(|l| l.name == name)
}

/// A members-only row is readable by the users its membership rows name and by its owner,
/// whatever the role (a private room is private to its admins too); a row its `privateWhen`
/// column leaves false is open to the acl's readers.
fn members_only(meta: &'static EntityMeta, rc: &RequestContext) -> Option<Filter> {
    let m = meta.members?;
    let Some(link) = link_of(meta, m.relation) else {
        return Some(Filter::False);
    };
    let Some(user) = link.target.column(m.user) else {
        return Some(Filter::False);
    };
    // The membership rows are only confined to the tenant here: their own read rules would
    // ask for this row again.
    let tenant = match link.target.column("tenant_id") {
        Some(col) => Filter::eq(col, Value::Uuid(rc.tenant_id)),
        None => Filter::True,
    };
    let mut open = vec![Filter::Related {
        link: Link {
            target: link.target,
            outer: meta.id_column(),
            inner: link.fk,
        },
        quantifier: Quantifier::Some,
        filter: Box::new(Filter::eq(user, Value::Uuid(rc.user_id))),
        scope: Some(Box::new(tenant)),
    }];
    if let Some(owner) = meta.owner.and_then(|o| meta.column(o)) {
        open.push(Filter::eq(owner, Value::Uuid(rc.user_id)));
    }
    if let Some(flag) = m.private_when.and_then(|c| meta.column(c)) {
        open.push(Filter::eq(flag, Value::Bool(false)));
    }
    Some(Filter::Or(open))
}

/// A row readable only with the row it belongs to (a message with its room).
fn readable_with(meta: &'static EntityMeta, rc: &RequestContext) -> Option<Filter> {
    let name = meta.readable_with?;
    let Some(link) = link_of(meta, name) else {
        return Some(Filter::False);
    };
    Some(Filter::Related {
        link: Link {
            target: link.target,
            outer: link.fk,
            inner: link.target.id_column(),
        },
        quantifier: Quantifier::Some,
        filter: Box::new(Filter::True),
        scope: Some(Box::new(row_scope(link.target, rc, Op::Read))),
    })
}

/// How deep a `where` may nest relation conditions, and an `orderBy` may reach through
/// `belongsTo` relations: each level is a correlated subquery.
pub const MAX_RELATION_DEPTH: usize = 4;

/// Confines every relation condition of a client's filter to the related rows the caller may
/// read, so a filter can never reveal a row its reader could not fetch.
pub fn scope_relations(f: &mut Filter, rc: &RequestContext, depth: usize) -> Result<(), ApiError> {
    match f {
        Filter::And(parts) | Filter::Or(parts) => {
            for p in parts {
                scope_relations(p, rc, depth)?;
            }
        }
        Filter::Not(inner) => scope_relations(inner, rc, depth)?,
        Filter::Related {
            link,
            filter,
            scope,
            ..
        } => {
            if depth >= MAX_RELATION_DEPTH {
                return Err(ApiError::bad_input(
                    "where",
                    format!("where may nest relations at most {MAX_RELATION_DEPTH} deep"),
                ));
            }
            *scope = Some(Box::new(row_scope(link.target, rc, Op::Read)));
            scope_relations(filter, rc, depth + 1)?;
        }
        _ => {}
    }
    Ok(())
}

/// The same for sort keys through relations: a related row the caller may not read sorts as
/// if it were missing (null).
pub fn scope_sort_keys(keys: &mut [SortKey], rc: &RequestContext) -> Result<(), ApiError> {
    for k in keys {
        if k.hops.len() > MAX_RELATION_DEPTH {
            return Err(ApiError::bad_input(
                "orderBy",
                format!("orderBy may reach through at most {MAX_RELATION_DEPTH} relations"),
            ));
        }
        for hop in &mut k.hops {
            hop.scope = Some(Box::new(row_scope(hop.link.target, rc, Op::Read)));
        }
    }
    Ok(())
}
