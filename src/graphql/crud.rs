//! The generic operations behind every generated root field: get, list, count, create, update,
//! delete and upsert. Each runs in one transaction on one pooled connection, confined to the
//! caller's tenant and to what the entity's ACL lets the caller see or change; each mutation
//! writes its audit rows in the same transaction.

use std::sync::Arc;

use async_graphql::{Context, ID};
use diesel::deserialize::QueryableByName;
use diesel::pg::Pg;
use diesel_async::RunQueryDsl;
use futures::future::{BoxFuture, FutureExt};
use serde::Serialize;
use uuid::Uuid;

use crate::audit::{self, Change};
use crate::auth::RequestContext;
use crate::db::sql::{Filter, SortKey, SortOrder, SqlBuilder};
use crate::db::value::Value;
use crate::db::{Conn, Db, DbFuture};
use crate::entities::CONSTRAINTS;
use crate::error::{ApiError, GqlResult};
use crate::graphql::acl::{self, Grant, Op};
use crate::graphql::filter::{OrderInput, WhereInput};
use crate::graphql::input;
use crate::graphql::loaders::{self, ById, ChildCount, ChildCountKey, ChildPageKey, ChildSpec};
use crate::graphql::meta::{AclRole, ColumnMeta, EntityMeta};
use crate::graphql::page::{
    decode_cursor, encode_cursor, CountSource, Keyed, Page, PageArgs, PageInfo,
};
use crate::live::outbox::{self, ChangeOp};

/// A row type of the catalog (generated).
pub trait Entity: QueryableByName<Pg> + Serialize + Send + Sync + Sized + 'static {
    const META: &'static EntityMeta;
    fn id(&self) -> Uuid;
    /// The value of an orderable or uuid column, for cursors and ownership checks.
    fn value(&self, column: &str) -> Value;
}

/// The identity of the writer, stamped on new rows, and what it may set in the inputs.
pub struct WriteScope {
    pub tenant: Uuid,
    pub user: Uuid,
    roles: Vec<AclRole>,
}

impl WriteScope {
    pub fn new(rc: &RequestContext) -> Self {
        let roles = [AclRole::Admin, AclRole::Platform]
            .into_iter()
            .filter(|r| acl::holds(rc, *r))
            .collect();
        WriteScope {
            tenant: rc.tenant_id,
            user: rc.user_id,
            roles,
        }
    }

    fn holds_any(&self, roles: &[AclRole]) -> bool {
        roles.iter().any(|r| self.roles.contains(r))
    }

    /// A field only `roles` may give (`setBy` in the catalog): FORBIDDEN for anyone else.
    pub fn may_set(
        &self,
        given: bool,
        roles: &[AclRole],
        path: &str,
        field: &str,
    ) -> Result<(), ApiError> {
        if !given || self.holds_any(roles) {
            return Ok(());
        }
        Err(ApiError::forbidden(format!(
            "{} may only be set by {}",
            input::at(path, field),
            role_names(roles)
        )))
    }

    /// The owner of a new row: the caller, unless one of `roles` names another user of its
    /// tenant (the composite foreign key keeps it in the tenant).
    pub fn owner(
        &self,
        given: Option<&ID>,
        roles: &[AclRole],
        path: &str,
        field: &str,
    ) -> Result<Uuid, ApiError> {
        Ok(self
            .owner_nullable(given, roles, path, field)?
            .unwrap_or(self.user))
    }

    /// The same for an owner that may be empty: the roles that may name another user may
    /// also leave it empty (an unassigned task); anyone else owns what it creates.
    pub fn owner_nullable(
        &self,
        given: Option<&ID>,
        roles: &[AclRole],
        path: &str,
        field: &str,
    ) -> Result<Option<Uuid>, ApiError> {
        let Some(id) = given else {
            return Ok((!self.holds_any(roles)).then_some(self.user));
        };
        let id = input::id(id, path, field)?;
        if id != self.user && !self.holds_any(roles) {
            return Err(ApiError::forbidden(format!(
                "{} must be your own user id",
                input::at(path, field)
            )));
        }
        Ok(Some(id))
    }
}

fn role_names(roles: &[AclRole]) -> String {
    let names: Vec<&str> = roles
        .iter()
        .map(|r| match r {
            AclRole::Admin => "an admin",
            AclRole::Platform => "the platform operator",
            AclRole::Owner => "the owner",
            AclRole::Public | AclRole::User => "anyone",
        })
        .collect();
    names.join(" or ")
}

/// An input type that cannot be built: the input of an operation the catalog does not allow.
pub enum Never {}

/// The typed Diesel writes of an entity (generated).
pub trait Writable: Entity {
    type CreateInput: Send;
    type UpdateInput: Send;
    type InsertForm: Send + Sync;
    type UpdateForm: Send + Sync;
    fn insert_form(
        input: Self::CreateInput,
        scope: &WriteScope,
        path: &str,
    ) -> Result<Self::InsertForm, ApiError>;
    fn update_form(
        input: Self::UpdateInput,
        scope: &WriteScope,
        path: &str,
    ) -> Result<Self::UpdateForm, ApiError>;
    /// The unique key `key` of a new row, as a filter (for upserts).
    fn key_filter(form: &Self::InsertForm, key: usize) -> Filter;
    fn insert<'a>(conn: &'a mut Conn, forms: &'a [Self::InsertForm]) -> DbFuture<'a, Vec<Self>>;
    fn update<'a>(
        conn: &'a mut Conn,
        tenant: Uuid,
        ids: &'a [Uuid],
        form: &'a Self::UpdateForm,
    ) -> DbFuture<'a, Vec<Self>>;
    fn delete<'a>(conn: &'a mut Conn, tenant: Uuid, ids: &'a [Uuid]) -> DbFuture<'a, Vec<Self>>;
}

/// Page-size limits, from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct PageLimits {
    pub default: i32,
    pub max: i32,
}

fn db_err<E: Entity>(e: diesel::result::Error) -> ApiError {
    ApiError::from_db(e, E::META.name, CONSTRAINTS)
}

pub(crate) fn caller<'c>(ctx: &'c Context<'_>) -> Result<&'c RequestContext, ApiError> {
    ctx.data_opt::<RequestContext>()
        .ok_or_else(|| ApiError::unauthenticated("a valid bearer token is required"))
}

pub(crate) fn database<'c>(ctx: &'c Context<'_>) -> Result<&'c Db, ApiError> {
    ctx.data_opt::<Db>()
        .ok_or_else(|| ApiError::internal("no database in the schema data"))
}

/// `SELECT <row> FROM <table> t WHERE <filter> [ORDER BY ...] [LIMIT n] [FOR UPDATE]`.
async fn select<E: Entity>(
    conn: &mut Conn,
    filter: &Filter,
    order: &[SortKey],
    limit: Option<i64>,
    for_update: bool,
) -> Result<Vec<E>, ApiError> {
    let mut b = SqlBuilder::new("SELECT ");
    b.select_list(E::META);
    b.push(&format!(" FROM \"{}\" t WHERE ", E::META.table));
    b.filter(filter);
    if !order.is_empty() {
        b.order_by(order);
    }
    if let Some(n) = limit {
        b.push(&format!(" LIMIT {n}"));
    }
    if for_update {
        b.push(" FOR UPDATE");
    }
    b.into_query().load::<E>(conn).await.map_err(db_err::<E>)
}

/// Runs `f` in a transaction that carries the caller's tenant for row-level security.
async fn in_tx<T, F>(ctx: &Context<'_>, read_only: bool, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: for<'r> FnOnce(&'r mut Conn) -> BoxFuture<'r, Result<T, ApiError>> + Send + 'static,
{
    let rc = caller(ctx)?;
    database(ctx)?.transaction(rc, read_only, f).await
}

pub async fn get<E: Entity>(ctx: &Context<'_>, id: &ID) -> GqlResult<Option<E>> {
    let rc = caller(ctx)?;
    let id = input::id(id, "", "id")?;
    let filter = Filter::and(vec![
        acl::row_scope(E::META, rc, Op::Read),
        Filter::eq(E::META.id_column(), Value::Uuid(id)),
    ]);
    let rows = in_tx(ctx, true, move |conn| {
        async move { select::<E>(conn, &filter, &[], Some(1), false).await }.boxed()
    })
    .await?;
    Ok(rows.into_iter().next())
}

/// Sort keys a client may give: each is a term of every keyset condition and cursor.
pub const MAX_SORT_KEYS: usize = 8;

/// Resolves `orderBy` into sort keys, always ending with `id` so that the order is total.
fn sort_keys<O: OrderInput>(
    meta: &'static EntityMeta,
    order: Option<&[O]>,
    rc: &RequestContext,
) -> Result<Vec<SortKey>, ApiError> {
    let order = order.unwrap_or_default();
    if order.len() > MAX_SORT_KEYS {
        return Err(ApiError::bad_input(
            "orderBy",
            format!("orderBy may name at most {MAX_SORT_KEYS} fields"),
        ));
    }
    let mut keys = Vec::new();
    for (i, o) in order.iter().enumerate() {
        let k = o.keys();
        if k.len() != 1 {
            return Err(ApiError::bad_input(
                format!("orderBy[{i}]"),
                format!("orderBy[{i}] must set exactly one field"),
            ));
        }
        keys.extend(k);
    }
    acl::scope_sort_keys(&mut keys, rc)?;
    let id = meta.id_column();
    match keys
        .iter()
        .position(|k| k.is_local() && std::ptr::eq(k.col, id))
    {
        // Anything after id can never break a tie.
        Some(p) => keys.truncate(p + 1),
        None => keys.push(SortKey::new(id, SortOrder::Asc)),
    }
    Ok(keys)
}

/// A client's `where`, bounded in size, with its relation conditions confined to what the
/// caller may read.
pub(crate) fn where_filter<W: WhereInput>(
    w: Option<&W>,
    rc: &RequestContext,
) -> Result<Filter, ApiError> {
    let Some(w) = w else { return Ok(Filter::True) };
    let mut f = w.to_filter("where")?;
    crate::graphql::filter::check_size(&f, "where")?;
    acl::scope_relations(&mut f, rc, 0)?;
    Ok(f)
}

fn page_size(limits: PageLimits, args: &PageArgs) -> Result<i64, ApiError> {
    let (name, n) = match (args.first, args.last) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request("give either first or last, not both"));
        }
        (Some(n), None) => ("first", n),
        (None, Some(n)) => ("last", n),
        (None, None) => return Ok(i64::from(limits.default)),
    };
    if n < 0 || n > limits.max {
        return Err(ApiError::bad_input(
            name,
            format!("{name} must be between 0 and {}", limits.max),
        ));
    }
    Ok(i64::from(n))
}

/// The arguments of a list or relation connection, checked and resolved.
struct ListQuery {
    /// The client's `where` (relation conditions scoped, the entity's own scope not added).
    filter: Filter,
    keys: Vec<SortKey>,
    /// Page size; one more row is fetched to learn whether there are more.
    n: i64,
    backward: bool,
    after: Option<Vec<Value>>,
    before: Option<Vec<Value>>,
}

impl ListQuery {
    fn parse<E: Entity, W: WhereInput, O: OrderInput>(
        ctx: &Context<'_>,
        filter: Option<&W>,
        order: Option<&[O]>,
        args: &PageArgs,
    ) -> Result<Self, ApiError> {
        let rc = caller(ctx)?;
        let limits = ctx.data_opt::<PageLimits>().copied().unwrap_or(PageLimits {
            default: 50,
            max: 500,
        });
        let keys = sort_keys(E::META, order, rc)?;
        let cursor = |c: &Option<String>, arg| match c {
            Some(c) => decode_cursor(&keys, c, arg).map(Some),
            None => Ok(None),
        };
        Ok(ListQuery {
            filter: where_filter(filter, rc)?,
            n: page_size(limits, args)?,
            backward: args.last.is_some(),
            after: cursor(&args.after, "after")?,
            before: cursor(&args.before, "before")?,
            keys,
        })
    }

    /// The rows' order in SQL: reversed when paging backwards.
    fn sql_order(&self) -> Vec<SortKey> {
        if self.backward {
            self.keys.iter().map(SortKey::reversed).collect()
        } else {
            self.keys.clone()
        }
    }

    /// ` AND <after the cursors>` conditions.
    fn push_cursors(&self, b: &mut SqlBuilder) {
        if let Some(values) = &self.after {
            b.push(" AND ");
            b.after(&self.keys, values);
        }
        if let Some(values) = &self.before {
            let reversed: Vec<SortKey> = self.keys.iter().map(SortKey::reversed).collect();
            b.push(" AND ");
            b.after(&reversed, values);
        }
    }

    /// Turns up to `n + 1` fetched rows into a page: cursors, and whether more rows exist.
    fn page<E: Entity>(&self, mut rows: Vec<Keyed<E>>, count: CountSource) -> Page<E> {
        let more = rows.len() as i64 > self.n;
        rows.truncate(self.n as usize);
        if self.backward {
            rows.reverse();
        }
        let edges: Vec<(String, E)> = rows
            .into_iter()
            .map(|r| (encode_cursor(&self.keys, &r.key_values(&self.keys)), r.row))
            .collect();
        let (after, before) = (self.after.is_some(), self.before.is_some());
        let info = PageInfo {
            has_next_page: if self.backward { before } else { more },
            has_previous_page: if self.backward { more } else { after },
            start_cursor: edges.as_slice().first().map(|(c, _)| c.clone()),
            end_cursor: edges.last().map(|(c, _)| c.clone()),
        };
        Page { edges, info, count }
    }
}

pub async fn list<E: Entity, W: WhereInput, O: OrderInput>(
    ctx: &Context<'_>,
    filter: Option<&W>,
    order: Option<&[O]>,
    args: PageArgs,
) -> GqlResult<Page<E>> {
    let rc = caller(ctx)?;
    let q = ListQuery::parse::<E, W, O>(ctx, filter, order, &args)?;
    let scoped = Filter::and(vec![
        acl::row_scope(E::META, rc, Op::Read),
        q.filter.clone(),
    ]);
    let mut b = SqlBuilder::new("SELECT ");
    b.select_list(E::META);
    b.foreign_key_values(&q.keys);
    b.push(&format!(" FROM \"{}\" t WHERE ", E::META.table));
    b.filter(&scoped);
    q.push_cursors(&mut b);
    b.order_by(&q.sql_order());
    b.push(&format!(" LIMIT {}", q.n + 1));

    let rows: Vec<Keyed<E>> = database(ctx)?.read(rc, E::META.name, b).await?;
    Ok(q.page(rows, CountSource::Filter(scoped)))
}

/// The parent of a `belongsTo` relation, batched with every other parent of the request.
pub async fn belongs_to<E: Entity + Clone>(
    ctx: &Context<'_>,
    id: Option<Uuid>,
) -> GqlResult<Option<E>> {
    let Some(id) = id else { return Ok(None) };
    let loader = loaders::loader(ctx)?;
    loader.load_one(ById::<E>::new(id)).await
}

fn child_column(meta: &'static EntityMeta, fk: &str) -> Result<&'static ColumnMeta, ApiError> {
    meta.column(fk)
        .ok_or_else(|| ApiError::internal(format!("{} has no column {fk}", meta.name)))
}

/// One parent's page of children, loaded in one statement with every other parent's.
async fn child_rows<E: Entity + Clone>(
    ctx: &Context<'_>,
    parent: Uuid,
    spec: Arc<ChildSpec>,
) -> GqlResult<Vec<Keyed<E>>> {
    let rows = loaders::loader(ctx)?
        .load_one(ChildPageKey::<E>::new(parent, spec))
        .await?
        .unwrap_or_default();
    Ok(rows.as_ref().clone())
}

/// The child of a `hasOne` relation.
pub async fn has_one<E: Entity + Clone>(
    ctx: &Context<'_>,
    fk: &str,
    parent: Uuid,
) -> GqlResult<Option<E>> {
    caller(ctx)?;
    let fk = child_column(E::META, fk)?;
    let keys = vec![SortKey::new(E::META.id_column(), SortOrder::Asc)];
    let fingerprint = ChildSpec::fingerprint_of(fk, &Filter::True, &keys, &[&"one"]);
    let spec = Arc::new(ChildSpec {
        fk,
        filter: Filter::True,
        keys,
        after: None,
        before: None,
        limit: 1,
        backward: false,
        fingerprint,
    });
    let rows = child_rows::<E>(ctx, parent, spec).await?;
    Ok(rows.into_iter().next().map(|r| r.row))
}

/// A `hasMany` relation as a connection with the arguments of a root list, paged per parent.
pub async fn has_many<E: Entity + Clone, W: WhereInput, O: OrderInput>(
    ctx: &Context<'_>,
    fk: &str,
    parent: Uuid,
    filter: Option<&W>,
    order: Option<&[O]>,
    args: PageArgs,
) -> GqlResult<Page<E>> {
    let fk = child_column(E::META, fk)?;
    let q = ListQuery::parse::<E, W, O>(ctx, filter, order, &args)?;
    let fingerprint = ChildSpec::fingerprint_of(
        fk,
        &q.filter,
        &q.keys,
        &[&q.after, &q.before, &q.n, &q.backward],
    );
    let spec = Arc::new(ChildSpec {
        fk,
        filter: q.filter.clone(),
        keys: q.keys.clone(),
        after: q.after.clone(),
        before: q.before.clone(),
        limit: q.n + 1,
        backward: q.backward,
        fingerprint,
    });
    let rows = child_rows::<E>(ctx, parent, spec.clone()).await?;
    Ok(q.page(rows, CountSource::Child(ChildCount { parent, spec })))
}

#[derive(QueryableByName)]
struct CountRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    count: i64,
}

/// `totalCount` of a connection: counted directly for a root list, batched through the
/// request's loader for a relation (one statement for all parents).
pub async fn count<E: Entity>(ctx: &Context<'_>, source: &CountSource) -> GqlResult<i64> {
    let scoped = match source {
        CountSource::Filter(f) => f,
        CountSource::Child(key) => {
            let loader = loaders::loader(ctx)?;
            return Ok(loader
                .load_one(ChildCountKey::<E>::new(key.clone()))
                .await?
                .unwrap_or(0));
        }
    };
    let mut b = SqlBuilder::new(&format!(
        "SELECT count(*) AS count FROM \"{}\" t WHERE ",
        E::META.table
    ));
    b.filter(scoped);
    let row: CountRow = in_tx(ctx, true, move |conn| {
        async move {
            b.into_query()
                .get_result::<CountRow>(conn)
                .await
                .map_err(db_err::<E>)
        }
        .boxed()
    })
    .await?;
    Ok(row.count)
}

/// The caller must be allowed to `op` at all; returns what it is allowed on.
fn require(meta: &EntityMeta, rc: &RequestContext, op: Op) -> Result<Grant, ApiError> {
    match acl::grant(meta, rc, op) {
        Grant::None => Err(ApiError::forbidden(format!(
            "your role may not {} {}",
            op.verb(),
            meta.name
        ))),
        g => Ok(g),
    }
}

/// Rows the caller creates or changes under an owner-only grant must stay its own.
fn check_owned<E: Entity>(grant: Grant, rc: &RequestContext, rows: &[E]) -> Result<(), ApiError> {
    let (Grant::Own, Some(owner)) = (grant, E::META.owner) else {
        return Ok(());
    };
    let mine = Value::Uuid(rc.user_id);
    if rows.iter().all(|r| r.value(owner) == mine) {
        return Ok(());
    }
    let field = E::META.column(owner).map_or(owner, |c| c.field);
    Err(ApiError::forbidden(format!(
        "{field} must be your own user id"
    )))
}

pub async fn create_one<E: Writable>(ctx: &Context<'_>, input: E::CreateInput) -> GqlResult<E> {
    let mut rows = create(ctx, vec![input], false).await?;
    rows.pop()
        .ok_or_else(|| ApiError::internal("insert returned no row").into())
}

/// Rows one `createXs` may insert: each is a row of one INSERT statement, whose bind values
/// PostgreSQL caps at 65,535.
pub const MAX_CREATE_ROWS: usize = 500;

pub async fn create_many<E: Writable>(
    ctx: &Context<'_>,
    inputs: Vec<E::CreateInput>,
) -> GqlResult<Vec<E>> {
    if inputs.len() > MAX_CREATE_ROWS {
        return Err(ApiError::bad_input(
            "inputs",
            format!("inputs may hold at most {MAX_CREATE_ROWS} rows"),
        )
        .into());
    }
    create(ctx, inputs, true).await
}

/// Inserts rows, checks they are the caller's where only its own rows are allowed, audits.
async fn insert_rows<E: Writable>(
    conn: &mut Conn,
    rc: &RequestContext,
    grant: Grant,
    forms: &[E::InsertForm],
) -> Result<Vec<E>, ApiError> {
    let rows = E::insert(conn, forms).await.map_err(db_err::<E>)?;
    check_owned(grant, rc, &rows)?;
    let changes = rows.iter().map(Change::created).collect();
    record::<E>(conn, rc, audit::Action::Create, changes).await?;
    Ok(rows)
}

/// Applies `form` to the locked rows `old`, checks ownership, audits old and new values.
/// Returns the new rows ordered by id.
async fn update_rows<E: Writable>(
    conn: &mut Conn,
    rc: &RequestContext,
    grant: Grant,
    mut old: Vec<E>,
    form: &E::UpdateForm,
) -> Result<Vec<E>, ApiError> {
    if old.is_empty() {
        return Ok(old);
    }
    old.sort_by_key(Entity::id);
    let ids: Vec<Uuid> = old.iter().map(Entity::id).collect();
    let mut new = E::update(conn, rc.tenant_id, &ids, form)
        .await
        .map_err(db_err::<E>)?;
    check_owned(grant, rc, &new)?;
    new.sort_by_key(Entity::id);
    let changes = old
        .iter()
        .zip(new.iter())
        .map(|(o, n)| Change::updated(o, n))
        .collect();
    record::<E>(conn, rc, audit::Action::Update, changes).await?;
    Ok(new)
}

/// The trail of a mutation, in its transaction: change events for subscribers, audit rows.
pub(crate) async fn record<E: Entity>(
    conn: &mut Conn,
    rc: &RequestContext,
    action: audit::Action,
    changes: Vec<Change>,
) -> Result<(), ApiError> {
    let op = match action {
        audit::Action::Create => ChangeOp::Created,
        audit::Action::Update => ChangeOp::Updated,
        _ => ChangeOp::Deleted,
    };
    outbox::record(conn, E::META, rc.tenant_id, op, &changes).await?;
    audit::record(conn, rc, action, E::META.name, changes).await
}

async fn create<E: Writable>(
    ctx: &Context<'_>,
    inputs: Vec<E::CreateInput>,
    many: bool,
) -> GqlResult<Vec<E>> {
    let rc = caller(ctx)?.clone();
    let grant = require(E::META, &rc, Op::Create)?;
    let scope = WriteScope::new(&rc);
    let forms = inputs
        .into_iter()
        .enumerate()
        .map(|(i, input)| {
            let path = if many {
                format!("inputs[{i}]")
            } else {
                "input".to_string()
            };
            E::insert_form(input, &scope, &path)
        })
        .collect::<Result<Vec<_>, _>>()?;
    if forms.is_empty() {
        return Ok(Vec::new());
    }
    let rows = in_tx(ctx, false, move |conn| {
        async move { insert_rows::<E>(conn, &rc, grant, &forms).await }.boxed()
    })
    .await?;
    Ok(rows)
}

pub async fn update_one<E: Writable>(
    ctx: &Context<'_>,
    id: &ID,
    input: E::UpdateInput,
    expected_version: Option<i32>,
) -> GqlResult<E> {
    let rc = caller(ctx)?.clone();
    let id = input::id(id, "", "id")?;
    let form = E::update_form(input, &WriteScope::new(&rc), "input")?;
    let grant = require(E::META, &rc, Op::Update)?;
    let filter = Filter::and(vec![
        acl::row_scope(E::META, &rc, Op::Update),
        Filter::eq(E::META.id_column(), Value::Uuid(id)),
    ]);
    let row = in_tx(ctx, false, move |conn| {
        async move {
            let old = select::<E>(conn, &filter, &[], Some(1), true)
                .await?
                .pop()
                .ok_or_else(|| ApiError::not_found(E::META.name))?;
            if let (Some(expected), Some(col)) = (expected_version, E::META.version) {
                if old.value(col) != Value::Int(expected) {
                    return Err(ApiError::Conflict {
                        field: Some("expectedVersion".into()),
                        message: format!(
                            "{} was changed by someone else (expected version {expected})",
                            E::META.name
                        ),
                    });
                }
            }
            update_rows::<E>(conn, &rc, grant, vec![old], &form)
                .await?
                .pop()
                .ok_or_else(|| ApiError::not_found(E::META.name))
        }
        .boxed()
    })
    .await?;
    Ok(row)
}

pub async fn update_many<E: Writable, W: WhereInput>(
    ctx: &Context<'_>,
    filter: &W,
    input: E::UpdateInput,
) -> GqlResult<Vec<E>> {
    let rc = caller(ctx)?.clone();
    let form = E::update_form(input, &WriteScope::new(&rc), "input")?;
    let grant = require(E::META, &rc, Op::Update)?;
    let filter = Filter::and(vec![
        acl::row_scope(E::META, &rc, Op::Update),
        where_filter(Some(filter), &rc)?,
    ]);
    let rows = in_tx(ctx, false, move |conn| {
        async move {
            let old = select::<E>(
                conn,
                &filter,
                &[SortKey::new(E::META.id_column(), SortOrder::Asc)],
                None,
                true,
            )
            .await?;
            update_rows::<E>(conn, &rc, grant, old, &form).await
        }
        .boxed()
    })
    .await?;
    Ok(rows)
}

pub async fn delete_one<E: Writable>(ctx: &Context<'_>, id: &ID) -> GqlResult<E> {
    let rc = caller(ctx)?.clone();
    let id = input::id(id, "", "id")?;
    require(E::META, &rc, Op::Delete)?;
    let filter = Filter::and(vec![
        acl::row_scope(E::META, &rc, Op::Delete),
        Filter::eq(E::META.id_column(), Value::Uuid(id)),
    ]);
    let mut rows = delete_where::<E>(ctx, rc, filter).await?;
    rows.pop()
        .ok_or_else(|| ApiError::not_found(E::META.name).into())
}

pub async fn delete_many<E: Writable, W: WhereInput>(
    ctx: &Context<'_>,
    filter: &W,
) -> GqlResult<Vec<E>> {
    let rc = caller(ctx)?.clone();
    require(E::META, &rc, Op::Delete)?;
    let filter = Filter::and(vec![
        acl::row_scope(E::META, &rc, Op::Delete),
        where_filter(Some(filter), &rc)?,
    ]);
    delete_where::<E>(ctx, rc, filter).await
}

async fn delete_where<E: Writable>(
    ctx: &Context<'_>,
    rc: RequestContext,
    filter: Filter,
) -> GqlResult<Vec<E>> {
    let rows = in_tx(ctx, false, move |conn| {
        async move {
            let id = E::META.id_column();
            let old = select::<E>(
                conn,
                &filter,
                &[SortKey::new(id, SortOrder::Asc)],
                None,
                true,
            )
            .await?;
            if old.is_empty() {
                return Ok(Vec::new());
            }
            let ids: Vec<Uuid> = old.iter().map(Entity::id).collect();
            let mut gone = E::delete(conn, rc.tenant_id, &ids)
                .await
                .map_err(db_err::<E>)?;
            gone.sort_by_key(Entity::id);
            let changes = gone.iter().map(Change::deleted).collect();
            record::<E>(conn, &rc, audit::Action::Delete, changes).await?;
            Ok(gone)
        }
        .boxed()
    })
    .await?;
    Ok(rows)
}

/// A part of a unique key the create input left unset (null): no row can be found by it.
fn unset_key_part(key: &Filter) -> Option<&'static str> {
    match key {
        Filter::And(parts) => parts.iter().find_map(unset_key_part),
        Filter::Cmp {
            col,
            value: Value::Null,
            ..
        } => Some(col.field),
        _ => None,
    }
}

pub async fn upsert<E: Writable>(
    ctx: &Context<'_>,
    key: usize,
    create: E::CreateInput,
    update: Option<E::UpdateInput>,
) -> GqlResult<E> {
    let rc = caller(ctx)?.clone();
    let create_grant = require(E::META, &rc, Op::Create)?;
    let update_grant = require(E::META, &rc, Op::Update)?;
    let scope = WriteScope::new(&rc);
    let insert = E::insert_form(create, &scope, "create")?;
    let patch = update
        .map(|u| E::update_form(u, &scope, "update"))
        .transpose()?;
    // Only rows the caller may update count as "the existing one"; anything else under the
    // same key surfaces as a CONFLICT from the insert.
    let key_filter = E::key_filter(&insert, key);
    if let Some(field) = unset_key_part(&key_filter) {
        let at = format!("create.{field}");
        return Err(ApiError::bad_input(
            at.clone(),
            format!("{at} is part of the onConflict key: give it to find the existing row"),
        )
        .into());
    }
    let filter = Filter::and(vec![acl::row_scope(E::META, &rc, Op::Update), key_filter]);
    let row = in_tx(ctx, false, move |conn| {
        async move {
            let existing = select::<E>(conn, &filter, &[], Some(1), true).await?.pop();
            let rows = match (existing, patch) {
                // No update given: the existing row stays as it is.
                (Some(old), None) => vec![old],
                (Some(old), Some(patch)) => {
                    update_rows::<E>(conn, &rc, update_grant, vec![old], &patch).await?
                }
                (None, _) => {
                    insert_rows::<E>(conn, &rc, create_grant, std::slice::from_ref(&insert)).await?
                }
            };
            rows.into_iter()
                .next()
                .ok_or_else(|| ApiError::internal("upsert returned no row"))
        }
        .boxed()
    })
    .await?;
    Ok(row)
}
