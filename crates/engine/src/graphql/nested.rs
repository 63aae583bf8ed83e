//! Nested writes: a create that also creates or connects related rows through its `hasMany`
//! and `hasOne` relations (a thread with its first posts, an execution with its node
//! executions), as Hasura and Prisma allow.
//!
//! The whole tree is read before anything is written: every row's id is made when its
//! input is read, so a child's reference to its parent is known up front and its input is
//! checked like any create's. Then one transaction writes it level by level, each row
//! through the same path as a separate create (the ACL of its entity, owner stamping, its
//! checks, hooks, audit rows and change events) and each connection as an update of the
//! connected row; any error rolls everything back.

use async_graphql::Value as G;
use futures::future::{BoxFuture, FutureExt};
use uuid::Uuid;

use crate::caller::RequestContext;
use crate::db::sql::{Filter, SortKey, SortOrder};
use crate::db::value::Value;
use crate::db::Conn;
use crate::error::ApiError;
use crate::graphql::acl::{self, Op};
use crate::graphql::crud::{self, InsertForm, UpdateForm, WriteScope, MAX_CREATE_ROWS};
use crate::graphql::input::{self, object};
use crate::graphql::meta::EntityMeta;
use crate::graphql::meta::{metadata, LinkKind, Metadata, RelationLink};
use crate::graphql::row::Row;
use crate::graphql::schema::forms::insert_form_with;

/// How deep creates may nest below the row a mutation creates.
pub const MAX_NESTING: usize = 4;

/// The `belongsTo` relation (its name) by which the related rows of `link` reference the
/// parent: `thread` for `ForumThread.posts`.
pub fn parent_relation(link: &RelationLink) -> Option<&'static str> {
    link.target
        .relations
        .iter()
        .find(|r| r.column == link.fk.column)
        .map(|r| r.name)
}

/// Whether rows of `link` may be created with their parent: a `hasMany` / `hasOne` whose
/// entity has creates at all, whose reference an insert writes (and is not the owner the
/// server stamps), and which has a field of its own to give.
pub fn nestable(m: &Metadata, link: &RelationLink) -> bool {
    let target = link.target;
    matches!(link.kind, LinkKind::Children | LinkKind::Child)
        && link.fk.inserted
        && link.fk.writable
        && target.owner != Some(link.fk.column)
        && parent_relation(link).is_some()
        && m.definition(target.name).is_some_and(|d| d.can_create())
        && target
            .columns
            .iter()
            .any(|c| c.writable && !std::ptr::eq(c, link.fk))
}

/// Whether existing rows of `link` may be connected: their reference may be updated.
pub fn connectable(m: &Metadata, link: &RelationLink) -> bool {
    nestable(m, link)
        && m.definition(link.target.name)
            .is_some_and(|d| d.can_update())
}

/// A row to create, with the related rows to create or connect with it.
pub struct NestedCreate {
    pub form: InsertForm,
    pub relations: Vec<NestedRelation>,
}

/// What one relation of a new row asks for.
pub struct NestedRelation {
    pub link: &'static RelationLink,
    pub create: Vec<NestedCreate>,
    pub connect: Vec<Uuid>,
    /// Where `connect` is in the input, for errors.
    pub path: String,
}

/// Rows one mutation may create or connect in all, nested ones included.
pub struct Budget(usize);

impl Budget {
    pub fn new() -> Self {
        Budget(MAX_CREATE_ROWS)
    }

    fn spend(&mut self, n: usize, at: &str) -> Result<(), ApiError> {
        self.0 = self.0.checked_sub(n).ok_or_else(|| {
            ApiError::bad_input(
                at,
                format!("one mutation may create or connect at most {MAX_CREATE_ROWS} rows"),
            )
        })?;
        Ok(())
    }
}

impl Default for Budget {
    fn default() -> Self {
        Self::new()
    }
}

fn given<'v>(o: &'v input::Fields, name: &str) -> Option<&'v G> {
    o.get(name).filter(|v| !matches!(v, G::Null))
}

/// A create input (`XCreateInput`, or a nested `XCreateWithoutRelInput` whose reference
/// `preset` fills in) as a row to create and what to write with it.
pub fn read(
    meta: &'static EntityMeta,
    v: &G,
    w: &WriteScope,
    path: &str,
    preset: Option<(&'static crate::graphql::meta::ColumnMeta, Uuid)>,
    budget: &mut Budget,
    depth: usize,
) -> Result<NestedCreate, ApiError> {
    budget.spend(1, path)?;
    let form = insert_form_with(meta, v, w, path, preset.map(|(c, id)| (c, Value::Uuid(id))))?;
    let id = match form.values.first() {
        Some(Some(Value::Uuid(id))) => *id,
        _ => return Err(ApiError::internal("a new row without an id")),
    };
    let fields = object(v, path)?;
    let m = metadata();
    let mut relations = Vec::new();
    for link in m.links(meta).iter().filter(|l| nestable(m, l)) {
        let Some(nested) = given(fields, link.name) else {
            continue;
        };
        let at = input::at(path, link.name);
        if depth >= MAX_NESTING {
            return Err(ApiError::bad_input(
                &at,
                format!("creates may nest at most {MAX_NESTING} levels"),
            ));
        }
        let o = object(nested, &at)?;
        let one = link.kind == LinkKind::Child;
        let mut create = Vec::new();
        if let Some(c) = given(o, "create") {
            let items: &[G] = match c {
                G::List(l) => l,
                single => std::slice::from_ref(single),
            };
            for (i, item) in items.iter().enumerate() {
                let item_at = if one {
                    format!("{at}.create")
                } else {
                    format!("{at}.create[{i}]")
                };
                create.push(read(
                    link.target,
                    item,
                    w,
                    &item_at,
                    Some((link.fk, id)),
                    budget,
                    depth + 1,
                )?);
            }
        }
        let connect_at = format!("{at}.connect");
        let mut connect = Vec::new();
        if let Some(c) = given(o, "connect") {
            let items: &[G] = match c {
                G::List(l) => l,
                single => std::slice::from_ref(single),
            };
            budget.spend(items.len(), &connect_at)?;
            for (i, item) in items.iter().enumerate() {
                let id = input::id_of(item).ok_or_else(|| {
                    ApiError::bad_input(&connect_at, format!("{connect_at}[{i}] is not an id"))
                })?;
                connect.push(input::id(&id, &connect_at, &i.to_string())?);
            }
            connect.sort_unstable();
            connect.dedup();
        }
        if one && create.len() + connect.len() > 1 {
            return Err(ApiError::bad_input(
                &at,
                format!("{at}: give create or connect, not both"),
            ));
        }
        relations.push(NestedRelation {
            link,
            create,
            connect,
            path: connect_at,
        });
    }
    Ok(NestedCreate { form, relations })
}

/// Whether a create input asks for nested writes (upserts refuse them).
pub fn asks(meta: &'static EntityMeta, v: &G) -> Option<&'static str> {
    let G::Object(fields) = v else { return None };
    let m = metadata();
    m.links(meta)
        .iter()
        .filter(|l| nestable(m, l))
        .find(|l| given(fields, l.name).is_some())
        .map(|l| l.name)
}

/// Writes `rows` of `meta` and, level by level, what they nest; returns `rows` as written.
pub fn write<'a>(
    conn: &'a mut Conn,
    meta: &'static EntityMeta,
    rc: &'a RequestContext,
    rows: Vec<NestedCreate>,
) -> BoxFuture<'a, Result<Vec<Row>, ApiError>> {
    async move {
        let grant = crud::require(meta, rc, Op::Create)?;
        let (forms, relations): (Vec<InsertForm>, Vec<Vec<NestedRelation>>) =
            rows.into_iter().map(|r| (r.form, r.relations)).unzip();
        let written = crud::insert_rows(conn, meta, rc, grant, &forms).await?;
        // Every relation's rows of this level in one insert, whatever the number of parents.
        type Level = (
            &'static RelationLink,
            Vec<NestedCreate>,
            Vec<(Uuid, Vec<Uuid>, String)>,
        );
        let mut levels: Vec<Level> = Vec::new();
        for (form, rels) in forms.iter().zip(relations) {
            let parent = match form.values.first() {
                Some(Some(Value::Uuid(id))) => *id,
                _ => continue,
            };
            for rel in rels {
                let at = match levels
                    .iter()
                    .position(|(l, _, _)| std::ptr::eq(*l, rel.link))
                {
                    Some(i) => i,
                    None => {
                        levels.push((rel.link, Vec::new(), Vec::new()));
                        levels.len() - 1
                    }
                };
                let level = &mut levels[at];
                level.1.extend(rel.create);
                if !rel.connect.is_empty() {
                    level.2.push((parent, rel.connect, rel.path));
                }
            }
        }
        for (link, create, connects) in levels {
            if !create.is_empty() {
                write(conn, link.target, rc, create).await?;
            }
            for (parent, ids, path) in connects {
                connect(conn, rc, link, parent, ids, &path).await?;
            }
        }
        Ok(written)
    }
    .boxed()
}

/// Points the rows `ids` of `link` at `parent`: an update of each, under the caller's
/// update ACL; every id must name a row the caller may update.
async fn connect(
    conn: &mut Conn,
    rc: &RequestContext,
    link: &'static RelationLink,
    parent: Uuid,
    ids: Vec<Uuid>,
    path: &str,
) -> Result<(), ApiError> {
    let target = link.target;
    let grant = crud::require(target, rc, Op::Update)?;
    let filter = Filter::and(vec![
        acl::row_scope(target, rc, Op::Update),
        Filter::In {
            col: target.id_column(),
            values: Value::UuidList(ids.clone()),
            negated: false,
        },
    ]);
    let order = [SortKey::new(target.id_column(), SortOrder::Asc)];
    let old = crud::select(conn, target, &filter, &order, None, true).await?;
    if old.len() != ids.len() {
        return Err(ApiError::bad_input(
            path,
            format!(
                "{path} names a {} that does not exist or that you may not change",
                target.name
            ),
        ));
    }
    let form = UpdateForm {
        set: vec![(link.fk, Value::Uuid(parent))],
    };
    crud::update_rows(conn, target, rc, grant, old, &form).await?;
    Ok(())
}
