//! The generic operations behind every root field the engine builds: get, list, count, create, update,
//! delete and upsert. Each runs in one transaction on one pooled connection, confined to the
//! caller's tenant and to what the entity's ACL lets the caller see or change; each mutation
//! writes its audit rows in the same transaction.

use std::sync::Arc;

use async_graphql::{Context, ID};
use diesel_async::RunQueryDsl;
use futures::future::{BoxFuture, FutureExt};
use uuid::Uuid;

use crate::audit::{self, Change};
use crate::caller::RequestContext;
use crate::db::session::Reads;
use crate::db::sql::{Filter, SortKey, SortOrder, SqlBuilder};
use crate::db::value::Value;
use crate::db::{Conn, Db};
use crate::error::{ApiError, GqlResult};
use crate::graphql::acl::{self, Grant, Op};
use crate::graphql::columns::{self, ColumnSet};
use crate::graphql::hooks::{self, WriteEvent};
use crate::graphql::input;
use crate::graphql::loaders::{self, ById, ChildCount, ChildCountKey, ChildPageKey, ChildSpec};
use crate::graphql::meta::{constraints, AclRole, ColumnMeta, ColumnType, EntityMeta, EntityScope};
use crate::graphql::page::{
    decode_cursor, encode_cursor, CountSource, Edge, Keyed, Page, PageArgs, PageInfo,
};
use crate::graphql::row::Row;
use crate::live::outbox::{self, ChangeOp};

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

/// A new row as the engine inserts it: one value per column of [`insert_columns`], `None`
/// where the column takes its default.
pub struct InsertForm {
    pub values: Vec<Option<Value>>,
}

/// Changes to rows: the columns to set and their new values (`Value::Null` clears).
#[derive(Default)]
pub struct UpdateForm {
    pub set: Vec<(&'static ColumnMeta, Value)>,
}

/// The columns an insert writes: id, the tenant, every writable column and the owner the
/// server stamps.
pub fn insert_columns(meta: &EntityMeta) -> Vec<&'static ColumnMeta> {
    let mut cols = vec![meta.id_column()];
    if meta.scope == EntityScope::Tenant {
        cols.extend(meta.column("tenant_id"));
    }
    cols.extend(meta.columns.iter().filter(|c| c.inserted));
    cols
}

impl InsertForm {
    /// The value given for `column`, if the insert writes it.
    pub fn get(&self, meta: &EntityMeta, column: &str) -> Option<&Value> {
        insert_columns(meta)
            .iter()
            .position(|c| c.column == column)
            .and_then(|i| self.values.get(i))
            .and_then(Option::as_ref)
    }
}

/// Page-size limits, from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct PageLimits {
    pub default: i32,
    pub max: i32,
}

fn db_err(meta: &EntityMeta) -> impl Fn(diesel::result::Error) -> ApiError + '_ {
    move |e| ApiError::from_db(e, meta.name, constraints())
}

pub fn caller<'c>(ctx: &'c Context<'_>) -> Result<&'c RequestContext, ApiError> {
    ctx.data_opt::<RequestContext>()
        .ok_or_else(|| ApiError::unauthenticated("a valid bearer token is required"))
}

pub fn database<'c>(ctx: &'c Context<'_>) -> Result<&'c Db, ApiError> {
    ctx.data_opt::<Db>()
        .ok_or_else(|| ApiError::internal("no database in the schema data"))
}

/// Runs a read of the request: in its session for a query operation (see
/// [`crate::db::session`]), in a transaction of its own otherwise.
pub async fn read<T>(
    ctx: &Context<'_>,
    entity: &'static str,
    b: SqlBuilder,
) -> Result<Vec<T>, ApiError>
where
    T: diesel::deserialize::FromSqlRow<diesel::sql_types::Untyped, diesel::pg::Pg> + Send + 'static,
{
    match ctx.data_opt::<Reads>() {
        Some(reads) => reads.read(entity, b).await,
        None => database(ctx)?.read(caller(ctx)?, entity, b).await,
    }
}

/// `SELECT <row> FROM <table> t WHERE <filter> [ORDER BY ...] [LIMIT n] [FOR UPDATE]`, with
/// only the columns in `only` read (all without it).
pub fn select_rows(
    meta: &'static EntityMeta,
    only: Option<&ColumnSet>,
    filter: &Filter,
    order: &[SortKey],
    limit: Option<i64>,
    for_update: bool,
) -> SqlBuilder {
    let mut b = SqlBuilder::new("SELECT ");
    b.select_columns(meta, only);
    b.push(&format!(" FROM \"{}\" t WHERE ", meta.table));
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
    b
}

/// Runs a statement returning rows of `meta`.
pub async fn load_rows(
    conn: &mut Conn,
    meta: &'static EntityMeta,
    b: SqlBuilder,
) -> Result<Vec<Row>, ApiError> {
    b.into_query().load::<Row>(conn).await.map_err(db_err(meta))
}

/// `SELECT <row> FROM <table> t WHERE <filter> [ORDER BY ...] [LIMIT n] [FOR UPDATE]`.
pub async fn select(
    conn: &mut Conn,
    meta: &'static EntityMeta,
    filter: &Filter,
    order: &[SortKey],
    limit: Option<i64>,
    for_update: bool,
) -> Result<Vec<Row>, ApiError> {
    let b = select_rows(meta, None, filter, order, limit, for_update);
    load_rows(conn, meta, b).await
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

pub async fn get(ctx: &Context<'_>, meta: &'static EntityMeta, id: &ID) -> GqlResult<Option<Row>> {
    let rc = caller(ctx)?;
    let id = input::id(id, "", "id")?;
    let b = get_statement(meta, rc, id, &columns::wanted(ctx, meta, false));
    let rows: Vec<Row> = read(ctx, meta.name, b).await?;
    Ok(rows.into_iter().next())
}

/// The statement reading one row by id, if the caller may read it, with `columns`.
pub(crate) fn get_statement(
    meta: &'static EntityMeta,
    rc: &RequestContext,
    id: Uuid,
    columns: &ColumnSet,
) -> SqlBuilder {
    let filter = Filter::and(vec![
        acl::row_scope(meta, rc, Op::Read),
        Filter::eq(meta.id_column(), Value::Uuid(id)),
    ]);
    let mut b = SqlBuilder::new("SELECT ");
    b.select_columns(meta, Some(columns));
    from_where(&mut b, meta, columns, rc);
    b.filter(&filter);
    b.push(" LIMIT 1");
    b
}

/// ` FROM <table> t`, the parents `columns` reads with the row (each under the caller's read
/// scope of its entity, see `SqlBuilder::join_parents`), then ` WHERE `: what a read of some
/// columns writes between its select list and its filter.
pub(crate) fn from_where(
    b: &mut SqlBuilder,
    meta: &'static EntityMeta,
    columns: &ColumnSet,
    rc: &RequestContext,
) {
    b.push(&format!(" FROM \"{}\" t", meta.table));
    b.join_parents(meta, columns, |m| acl::row_scope(m, rc, Op::Read));
    b.push(" WHERE ");
}

/// Completes a client's `orderBy` keys (one per entry, already read) into the list's order:
/// scoped to what the caller may read, always ending with `id` so that the order is total.
fn sort_keys(
    meta: &'static EntityMeta,
    order: Vec<SortKey>,
    rc: &RequestContext,
) -> Result<Vec<SortKey>, ApiError> {
    let mut keys = order;
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

/// A client's `where` (already read), bounded in size, with its relation conditions confined
/// to what the caller may read.
pub(crate) fn where_filter(w: Option<Filter>, rc: &RequestContext) -> Result<Filter, ApiError> {
    let Some(mut f) = w else {
        return Ok(Filter::True);
    };
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

/// What a list or relation connection was asked for, read from its arguments.
pub struct ListArgs {
    pub filter: Option<Filter>,
    pub order: Vec<SortKey>,
    pub page: PageArgs,
}

/// The arguments of a list or relation connection, checked and resolved.
pub(crate) struct ListQuery {
    /// The client's `where` (relation conditions scoped, the entity's own scope not added).
    filter: Filter,
    keys: Vec<SortKey>,
    /// Page size; one more row is fetched to learn whether there are more.
    n: i64,
    backward: bool,
    after: Option<Vec<Value>>,
    before: Option<Vec<Value>>,
    /// Which edges get their cursor (a plan knows which are selected).
    pub(crate) cursors: Cursors,
}

impl ListQuery {
    /// The most rows its statement reads.
    pub(crate) fn rows(&self) -> i64 {
        self.n + 1
    }

    /// Whether its `totalCount` may have to be counted apart (see [`Self::counted`]).
    pub(crate) fn may_count_apart(&self, with_total: bool) -> bool {
        with_total && (self.after.is_some() || self.before.is_some())
    }
}

/// The cursors a page is asked for: every edge's, its start and end cursors, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursors {
    Every,
    Ends,
    No,
}

/// The page limits of the schema `ctx` runs in.
pub fn page_limits(ctx: &Context<'_>) -> PageLimits {
    page_limits_of(ctx.data_opt::<PageLimits>())
}

/// The configured page limits, or the defaults.
pub fn page_limits_of(limits: Option<&PageLimits>) -> PageLimits {
    limits.copied().unwrap_or(PageLimits {
        default: 50,
        max: 500,
    })
}

impl ListQuery {
    pub(crate) fn parse(
        rc: &RequestContext,
        limits: PageLimits,
        meta: &'static EntityMeta,
        args: ListArgs,
    ) -> Result<Self, ApiError> {
        let keys = sort_keys(meta, args.order, rc)?;
        let cursor = |c: &Option<String>, arg| match c {
            Some(c) => decode_cursor(&keys, c, arg).map(Some),
            None => Ok(None),
        };
        Ok(ListQuery {
            filter: where_filter(args.filter, rc)?,
            n: page_size(limits, &args.page)?,
            backward: args.page.last.is_some(),
            after: cursor(&args.page.after, "after")?,
            before: cursor(&args.page.before, "before")?,
            keys,
            cursors: Cursors::Every,
        })
    }

    /// The `totalCount` the page's own statement counted (when it was asked to): carried by
    /// its rows, or 0 when no row matched at all. `None` when it must be counted apart (not
    /// asked, or cursors left every row out).
    pub(crate) fn counted(&self, rows: &[Keyed], with_total: bool) -> Option<CountSource> {
        if !with_total {
            return None;
        }
        match rows.first().map(Keyed::total) {
            Some(n) => n.map(CountSource::Known),
            None if self.after.is_none() && self.before.is_none() => Some(CountSource::Known(0)),
            None => None,
        }
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
    pub(crate) fn page(
        &self,
        meta: &'static EntityMeta,
        mut rows: Vec<Keyed>,
        count: CountSource,
    ) -> Page {
        let more = rows.len() as i64 > self.n;
        rows.truncate(self.n as usize);
        if self.backward {
            rows.reverse();
        }
        let last = rows.len().saturating_sub(1);
        let edges: Vec<Edge> = rows
            .into_iter()
            .enumerate()
            .map(|(i, r)| Edge {
                // The page's first and last make its start and end cursors.
                cursor: if self.cursors == Cursors::Every
                    || (self.cursors == Cursors::Ends && (i == 0 || i == last))
                {
                    encode_cursor(&self.keys, &r.key_values(&self.keys))
                } else {
                    String::new()
                },
                node: r.row,
            })
            .collect();
        let (after, before) = (self.after.is_some(), self.before.is_some());
        let info = PageInfo {
            has_next_page: if self.backward { before } else { more },
            has_previous_page: if self.backward { more } else { after },
            start_cursor: edges.as_slice().first().map(|e| e.cursor.clone()),
            end_cursor: edges.last().map(|e| e.cursor.clone()),
        };
        let info = PageInfo {
            start_cursor: info.start_cursor.filter(|c| !c.is_empty()),
            end_cursor: info.end_cursor.filter(|c| !c.is_empty()),
            ..info
        };
        Page {
            meta,
            edges,
            info,
            count,
        }
    }
}

pub async fn list(ctx: &Context<'_>, meta: &'static EntityMeta, args: ListArgs) -> GqlResult<Page> {
    let rc = caller(ctx)?;
    let q = ListQuery::parse(rc, page_limits(ctx), meta, args)?;
    let columns = columns::wanted(ctx, meta, true);
    let with_total = wants_total(ctx);
    let (b, scoped) = list_statement(meta, rc, &q, &columns, with_total);
    let rows: Vec<Row> = read(ctx, meta.name, b).await?;
    Ok(list_page(meta, &q, rows, scoped, with_total))
}

/// The statement reading a root list's page (one row more than asked, to learn whether there
/// are more), and the list's scoped filter, which counts its rows.
pub(crate) fn list_statement(
    meta: &'static EntityMeta,
    rc: &RequestContext,
    q: &ListQuery,
    columns: &ColumnSet,
    with_total: bool,
) -> (SqlBuilder, Filter) {
    list_select(meta, rc, q, columns, with_total, q.n + 1)
}

/// The ids of the rows a root list's page shows (not the row past it): what the statements
/// of their relations find their parents by.
pub(crate) fn list_ids_statement(
    meta: &'static EntityMeta,
    rc: &RequestContext,
    q: &ListQuery,
    columns: &ColumnSet,
) -> SqlBuilder {
    list_select(meta, rc, q, columns, false, q.n).0
}

fn list_select(
    meta: &'static EntityMeta,
    rc: &RequestContext,
    q: &ListQuery,
    columns: &ColumnSet,
    with_total: bool,
    limit: i64,
) -> (SqlBuilder, Filter) {
    let scoped = Filter::and(vec![acl::row_scope(meta, rc, Op::Read), q.filter.clone()]);
    // `totalCount` is counted by the same statement (its own snapshot anyway), in a CTE that
    // PostgreSQL runs once, over the filter without the cursors.
    let mut b = SqlBuilder::new("");
    if with_total {
        b.push(&format!(
            "WITH \"__count\" AS (SELECT count(*) AS n FROM \"{}\" t WHERE ",
            meta.table
        ));
        b.filter(&scoped);
        b.push(") ");
    }
    let columns = columns.clone().with_keys(&q.keys);
    b.push("SELECT ");
    b.select_columns(meta, Some(&columns));
    b.foreign_key_values(&q.keys);
    if with_total {
        b.push(", (SELECT n FROM \"__count\") AS \"__total\"");
    }
    from_where(&mut b, meta, &columns, rc);
    b.filter(&scoped);
    q.push_cursors(&mut b);
    b.order_by(&q.sql_order());
    b.limit(limit);
    (b, scoped)
}

/// A root list's page from the rows its statement read.
pub(crate) fn list_page(
    meta: &'static EntityMeta,
    q: &ListQuery,
    rows: Vec<Row>,
    scoped: Filter,
    with_total: bool,
) -> Page {
    let rows: Vec<Keyed> = rows.into_iter().map(Keyed::from).collect();
    let count = q
        .counted(&rows, with_total)
        .unwrap_or(CountSource::Filter(scoped));
    q.page(meta, rows, count)
}

/// Whether the connection field being resolved selects `totalCount`.
fn wants_total(ctx: &Context<'_>) -> bool {
    ctx.look_ahead().field("totalCount").exists()
}

/// The parent of a `belongsTo` relation, batched with every other parent of the request.
pub async fn belongs_to(
    ctx: &Context<'_>,
    meta: &'static EntityMeta,
    id: Option<Uuid>,
) -> GqlResult<Option<Row>> {
    let Some(id) = id else { return Ok(None) };
    let loader = loaders::loader(ctx)?;
    let columns = columns::wanted(ctx, meta, false);
    loader.load_one(ById::new(meta, id, columns)).await
}

/// One parent's page of children, loaded in one statement with every other parent's.
async fn child_rows(
    ctx: &Context<'_>,
    meta: &'static EntityMeta,
    parent: Uuid,
    spec: Arc<ChildSpec>,
) -> GqlResult<Vec<Keyed>> {
    let rows = loaders::loader(ctx)?
        .load_one(ChildPageKey::new(meta, parent, spec))
        .await?
        .unwrap_or_default();
    Ok(Arc::try_unwrap(rows).unwrap_or_else(|shared| shared.as_ref().clone()))
}

/// The child of a `hasOne` relation: the row of `meta` whose `fk` is `parent`.
pub async fn has_one(
    ctx: &Context<'_>,
    meta: &'static EntityMeta,
    fk: &'static ColumnMeta,
    parent: Uuid,
) -> GqlResult<Option<Row>> {
    caller(ctx)?;
    let spec = one_child_spec(meta, fk, columns::wanted(ctx, meta, false));
    let rows = child_rows(ctx, meta, parent, spec).await?;
    Ok(rows.into_iter().next().map(|r| r.row))
}

/// What a `hasOne` relation reads of its parents' children: the first by id.
pub(crate) fn one_child_spec(
    meta: &'static EntityMeta,
    fk: &'static ColumnMeta,
    columns: ColumnSet,
) -> Arc<ChildSpec> {
    let keys = vec![SortKey::new(meta.id_column(), SortOrder::Asc)];
    let columns = columns.with_keys(&keys).with(fk);
    let fingerprint = ChildSpec::fingerprint_of(fk, &Filter::True, &keys, &[&"one", &columns]);
    Arc::new(ChildSpec {
        columns,
        fk,
        filter: Filter::True,
        keys,
        after: None,
        before: None,
        limit: 1,
        probe: false,
        backward: false,
        with_total: false,
        fingerprint,
    })
}

/// A `hasMany` relation as a connection with the arguments of a root list, paged per parent.
pub async fn has_many(
    ctx: &Context<'_>,
    meta: &'static EntityMeta,
    fk: &'static ColumnMeta,
    parent: Uuid,
    args: ListArgs,
) -> GqlResult<Page> {
    let q = ListQuery::parse(caller(ctx)?, page_limits(ctx), meta, args)?;
    let with_total = wants_total(ctx);
    let spec = child_spec(&q, fk, columns::wanted(ctx, meta, true), with_total);
    let rows = child_rows(ctx, meta, parent, spec.clone()).await?;
    Ok(child_page(meta, &q, parent, &spec, rows))
}

/// What a relation connection reads of each parent's children.
pub(crate) fn child_spec(
    q: &ListQuery,
    fk: &'static ColumnMeta,
    columns: ColumnSet,
    with_total: bool,
) -> Arc<ChildSpec> {
    // The children's reference to their parent groups them.
    let columns = columns.with_keys(&q.keys).with(fk);
    let fingerprint = ChildSpec::fingerprint_of(
        fk,
        &q.filter,
        &q.keys,
        &[
            &q.after,
            &q.before,
            &q.n,
            &q.backward,
            &with_total,
            &columns,
        ],
    );
    Arc::new(ChildSpec {
        columns,
        fk,
        filter: q.filter.clone(),
        keys: q.keys.clone(),
        after: q.after.clone(),
        before: q.before.clone(),
        limit: q.n + 1,
        probe: true,
        backward: q.backward,
        with_total,
        fingerprint,
    })
}

/// One parent's page of a relation connection from its rows.
pub(crate) fn child_page(
    meta: &'static EntityMeta,
    q: &ListQuery,
    parent: Uuid,
    spec: &Arc<ChildSpec>,
    rows: Vec<Keyed>,
) -> Page {
    let count = q.counted(&rows, spec.with_total).unwrap_or_else(|| {
        CountSource::Child(ChildCount {
            parent,
            spec: spec.clone(),
        })
    });
    q.page(meta, rows, count)
}

#[derive(diesel::QueryableByName)]
pub(crate) struct CountRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    count: i64,
}

impl CountRow {
    /// The count a [`count_statement`] read.
    pub(crate) fn total(rows: Vec<CountRow>) -> i64 {
        rows.into_iter().next().map_or(0, |r| r.count)
    }
}

/// `totalCount` of a connection: counted directly for a root list, batched through the
/// request's loader for a relation (one statement for all parents).
pub async fn count(ctx: &Context<'_>, page: &Page) -> GqlResult<i64> {
    let meta = page.meta;
    let scoped = match &page.count {
        CountSource::Known(n) => return Ok(*n),
        CountSource::Filter(f) => f.clone(),
        CountSource::Child(key) => {
            let loader = loaders::loader(ctx)?;
            return Ok(loader
                .load_one(ChildCountKey::new(meta, key.clone()))
                .await?
                .unwrap_or(0));
        }
    };
    let rows: Vec<CountRow> = read(ctx, meta.name, count_statement(meta, &scoped)).await?;
    Ok(CountRow::total(rows))
}

/// `SELECT count(*)` of the rows of `meta` matching `scoped`.
pub(crate) fn count_statement(meta: &'static EntityMeta, scoped: &Filter) -> SqlBuilder {
    let mut b = SqlBuilder::new(&format!(
        "SELECT count(*) AS count FROM \"{}\" t WHERE ",
        meta.table
    ));
    b.filter(scoped);
    b
}

/// The caller must be allowed to `op` at all; returns what it is allowed on.
pub fn require(meta: &EntityMeta, rc: &RequestContext, op: Op) -> Result<Grant, ApiError> {
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
fn check_owned(
    meta: &EntityMeta,
    grant: Grant,
    rc: &RequestContext,
    rows: &[Row],
) -> Result<(), ApiError> {
    let (Grant::Own, Some(owner)) = (grant, meta.owner) else {
        return Ok(());
    };
    let mine = Value::Uuid(rc.user_id);
    if rows.iter().all(|r| r.value(meta, owner) == mine) {
        return Ok(());
    }
    let field = meta.column(owner).map_or(owner, |c| c.field);
    Err(ApiError::forbidden(format!(
        "{field} must be your own user id"
    )))
}

/// A members-only row the caller writes must stay readable by them (its owner or a member).
/// Checked in the writing transaction, which it rolls back.
async fn check_readable(
    conn: &mut Conn,
    meta: &'static EntityMeta,
    rc: &RequestContext,
    rows: &[Row],
) -> Result<(), ApiError> {
    if rows.is_empty() || meta.members.is_none() {
        return Ok(());
    }
    let ids: Vec<Uuid> = rows.iter().map(Row::id).collect();
    if readable_count(conn, meta, rc, ids.clone()).await? == ids.len() {
        return Ok(());
    }
    Err(ApiError::forbidden(format!(
        "you could not read this {} afterwards",
        meta.name
    )))
}

/// How many of `ids` the caller may read.
async fn readable_count(
    conn: &mut Conn,
    meta: &'static EntityMeta,
    rc: &RequestContext,
    mut ids: Vec<Uuid>,
) -> Result<usize, ApiError> {
    ids.sort();
    ids.dedup();
    let filter = Filter::and(vec![
        acl::row_scope(meta, rc, Op::Read),
        Filter::In {
            col: meta.id_column(),
            values: Value::UuidList(ids),
            negated: false,
        },
    ]);
    let b = select_rows(meta, None, &filter, &[], None, false);
    Ok(load_rows(conn, meta, b).await?.len())
}

/// Where rows are readable only with the row they belong to (`readableWith`), a write may
/// only point at rows the caller can read *before* it: no message into a private room one is
/// not in, and no membership one grants oneself (afterwards it would make its own room
/// readable).
async fn check_targets(
    conn: &mut Conn,
    meta: &'static EntityMeta,
    rc: &RequestContext,
    values: Vec<&Value>,
) -> Result<(), ApiError> {
    let Some(rel) = meta
        .readable_with
        .and_then(|r| meta.relations.iter().find(|x| x.name == r))
    else {
        return Ok(());
    };
    let Some(target) = crate::graphql::meta::metadata().entity(rel.target) else {
        return Ok(());
    };
    let mut ids: Vec<Uuid> = values
        .into_iter()
        .filter_map(|v| match v {
            Value::Uuid(u) => Some(*u),
            _ => None,
        })
        .collect();
    ids.sort();
    ids.dedup();
    if ids.is_empty() || readable_count(conn, target, rc, ids.clone()).await? == ids.len() {
        return Ok(());
    }
    let field = meta.column(rel.column).map_or(rel.column, |c| c.field);
    Err(ApiError::bad_input(
        field,
        format!("{field} names no {} you may read", rel.target),
    ))
}

/// Rows one `createXs` may insert: each is a row of one INSERT statement, whose bind values
/// PostgreSQL caps at 65,535.
pub const MAX_CREATE_ROWS: usize = 500;

/// `INSERT INTO <table> AS t (...) VALUES (...), ... RETURNING <row>`.
async fn insert(
    conn: &mut Conn,
    meta: &'static EntityMeta,
    forms: &[InsertForm],
) -> Result<Vec<Row>, ApiError> {
    let cols = insert_columns(meta);
    let names: Vec<String> = cols.iter().map(|c| format!("\"{}\"", c.column)).collect();
    let mut b = SqlBuilder::new(&format!(
        "INSERT INTO \"{}\" AS t ({}) VALUES ",
        meta.table,
        names.join(", ")
    ));
    for (i, form) in forms.iter().enumerate() {
        b.push(if i == 0 { "(" } else { ", (" });
        for (j, (col, v)) in cols.iter().zip(&form.values).enumerate() {
            if j > 0 {
                b.push(", ");
            }
            match v {
                Some(v) => b.bind(v.clone(), col.ty, col.list),
                None => b.push("DEFAULT"),
            };
        }
        b.push(")");
    }
    b.push(" RETURNING ");
    b.select_list(meta);
    load_rows(conn, meta, b).await
}

/// Where the rows `ids` of the caller's tenant are: `t.id = ANY(ids)` and the tenant.
fn rows_of_tenant(b: &mut SqlBuilder, meta: &'static EntityMeta, tenant: Uuid, ids: Vec<Uuid>) {
    b.push("t.\"id\" = ANY(");
    b.bind(Value::UuidList(ids), ColumnType::Uuid, true);
    b.push(")");
    match meta.scope {
        EntityScope::Tenant => {
            b.push(" AND t.\"tenant_id\" = ");
            b.bind(Value::Uuid(tenant), ColumnType::Uuid, false);
        }
        EntityScope::TenantRoot => {
            b.push(" AND t.\"id\" = ");
            b.bind(Value::Uuid(tenant), ColumnType::Uuid, false);
        }
        EntityScope::Global => {}
    }
}

/// `UPDATE <table> t SET ..., updated_at = now() WHERE <ids> RETURNING <row>`.
async fn update(
    conn: &mut Conn,
    meta: &'static EntityMeta,
    tenant: Uuid,
    ids: Vec<Uuid>,
    form: &UpdateForm,
) -> Result<Vec<Row>, ApiError> {
    let mut b = SqlBuilder::new(&format!("UPDATE \"{}\" t SET ", meta.table));
    let mut first = true;
    let mut sep = |b: &mut SqlBuilder| {
        if !first {
            b.push(", ");
        }
        first = false;
    };
    for (col, v) in &form.set {
        sep(&mut b);
        b.push(&format!("\"{}\" = ", col.column));
        b.bind(v.clone(), col.ty, col.list);
    }
    if meta.column("updated_at").is_some() {
        sep(&mut b);
        b.push("\"updated_at\" = now()");
    }
    if let Some(v) = meta.version {
        sep(&mut b);
        b.push(&format!("\"{v}\" = t.\"{v}\" + 1"));
    }
    if first {
        // Nothing to set: the rows as they are.
        b = SqlBuilder::new("SELECT ");
        b.select_list(meta);
        b.push(&format!(" FROM \"{}\" t WHERE ", meta.table));
        rows_of_tenant(&mut b, meta, tenant, ids);
        return load_rows(conn, meta, b).await;
    }
    b.push(" WHERE ");
    rows_of_tenant(&mut b, meta, tenant, ids);
    b.push(" RETURNING ");
    b.select_list(meta);
    load_rows(conn, meta, b).await
}

async fn delete(
    conn: &mut Conn,
    meta: &'static EntityMeta,
    tenant: Uuid,
    ids: Vec<Uuid>,
) -> Result<Vec<Row>, ApiError> {
    let mut b = SqlBuilder::new(&format!("DELETE FROM \"{}\" t WHERE ", meta.table));
    rows_of_tenant(&mut b, meta, tenant, ids);
    b.push(" RETURNING ");
    b.select_list(meta);
    load_rows(conn, meta, b).await
}

/// Creates `rows` with the related rows they nest (`graphql::nested`), all in one
/// transaction: all or nothing.
pub async fn create_nested(
    ctx: &Context<'_>,
    meta: &'static EntityMeta,
    rows: Vec<crate::graphql::nested::NestedCreate>,
) -> GqlResult<Vec<Row>> {
    let rc = caller(ctx)?.clone();
    require(meta, &rc, Op::Create)?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let rows = in_tx(ctx, false, move |conn| {
        async move { crate::graphql::nested::write(conn, meta, &rc, rows).await }.boxed()
    })
    .await?;
    Ok(rows)
}

pub async fn create_one(
    ctx: &Context<'_>,
    meta: &'static EntityMeta,
    form: InsertForm,
) -> GqlResult<Row> {
    let mut rows = create(ctx, meta, vec![form]).await?;
    rows.pop()
        .ok_or_else(|| ApiError::internal("insert returned no row").into())
}

pub async fn create_many(
    ctx: &Context<'_>,
    meta: &'static EntityMeta,
    forms: Vec<InsertForm>,
) -> GqlResult<Vec<Row>> {
    create(ctx, meta, forms).await
}

/// Inserts rows, checks they are the caller's where only its own rows are allowed, audits.
pub(crate) async fn insert_rows(
    conn: &mut Conn,
    meta: &'static EntityMeta,
    rc: &RequestContext,
    grant: Grant,
    forms: &[InsertForm],
) -> Result<Vec<Row>, ApiError> {
    if let Some(pos) = meta
        .readable_with
        .and_then(|r| meta.relations.iter().find(|x| x.name == r))
        .and_then(|rel| {
            insert_columns(meta)
                .iter()
                .position(|c| c.column == rel.column)
        })
    {
        let fks = forms
            .iter()
            .filter_map(|f| f.values.get(pos).and_then(Option::as_ref))
            .collect();
        check_targets(conn, meta, rc, fks).await?;
    }
    let rows = insert(conn, meta, forms).await?;
    check_owned(meta, grant, rc, &rows)?;
    check_readable(conn, meta, rc, &rows).await?;
    hooks::after_write(conn, rc, meta, WriteEvent::created(&rows)).await?;
    // The trail carries the rows as the hooks left them (a stamped `editedAt`, a count).
    let rows = reread(conn, meta, rc, rows).await?;
    let changes = rows.iter().map(|r| Change::created(meta, r)).collect();
    record(conn, meta, rc, audit::Action::Create, changes).await?;
    Ok(rows)
}

/// The rows again, as hooks may have left them (stamped `editedAt`, a count), in the same
/// order; unchanged when the entity has no hooks.
async fn reread(
    conn: &mut Conn,
    meta: &'static EntityMeta,
    rc: &RequestContext,
    rows: Vec<Row>,
) -> Result<Vec<Row>, ApiError> {
    if rows.is_empty() || !hooks::any(meta) {
        return Ok(rows);
    }
    let ids: Vec<Uuid> = rows.iter().map(Row::id).collect();
    let mut b = SqlBuilder::new("SELECT ");
    b.select_list(meta);
    b.push(&format!(" FROM \"{}\" t WHERE ", meta.table));
    rows_of_tenant(&mut b, meta, rc.tenant_id, ids.clone());
    let mut fresh = load_rows(conn, meta, b).await?;
    // Rows a hook deleted keep their written version.
    Ok(rows
        .into_iter()
        .map(|r| match fresh.iter().position(|f| f.id() == r.id()) {
            Some(i) => fresh.swap_remove(i),
            None => r,
        })
        .collect())
}

/// Applies `form` to the locked rows `old`, checks ownership, audits old and new values.
/// Returns the new rows ordered by id.
pub(crate) async fn update_rows(
    conn: &mut Conn,
    meta: &'static EntityMeta,
    rc: &RequestContext,
    grant: Grant,
    mut old: Vec<Row>,
    form: &UpdateForm,
) -> Result<Vec<Row>, ApiError> {
    if old.is_empty() {
        return Ok(old);
    }
    old.sort_by_key(Row::id);
    let ids: Vec<Uuid> = old.iter().map(Row::id).collect();
    if let Some(rel) = meta
        .readable_with
        .and_then(|r| meta.relations.iter().find(|x| x.name == r))
    {
        let moved = form
            .set
            .iter()
            .filter(|(c, _)| c.column == rel.column)
            .map(|(_, v)| v)
            .collect();
        check_targets(conn, meta, rc, moved).await?;
    }
    let mut new = update(conn, meta, rc.tenant_id, ids, form).await?;
    check_owned(meta, grant, rc, &new)?;
    check_readable(conn, meta, rc, &new).await?;
    new.sort_by_key(Row::id);
    hooks::after_write(conn, rc, meta, WriteEvent::updated(&old, &new)).await?;
    let new = reread(conn, meta, rc, new).await?;
    let changes = old
        .iter()
        .zip(new.iter())
        .map(|(o, n)| Change::updated(meta, o, n))
        .collect();
    record(conn, meta, rc, audit::Action::Update, changes).await?;
    Ok(new)
}

/// The trail of a mutation, in its transaction: change events for subscribers, audit rows.
pub async fn record(
    conn: &mut Conn,
    meta: &'static EntityMeta,
    rc: &RequestContext,
    action: audit::Action,
    changes: Vec<Change>,
) -> Result<(), ApiError> {
    let op = match action {
        audit::Action::Create => ChangeOp::Created,
        audit::Action::Update => ChangeOp::Updated,
        _ => ChangeOp::Deleted,
    };
    outbox::record(conn, meta, rc.tenant_id, op, &changes).await?;
    audit::record(conn, rc, action, meta.name, changes).await
}

async fn create(
    ctx: &Context<'_>,
    meta: &'static EntityMeta,
    forms: Vec<InsertForm>,
) -> GqlResult<Vec<Row>> {
    let rc = caller(ctx)?.clone();
    let grant = require(meta, &rc, Op::Create)?;
    if forms.is_empty() {
        return Ok(Vec::new());
    }
    let rows = in_tx(ctx, false, move |conn| {
        async move { insert_rows(conn, meta, &rc, grant, &forms).await }.boxed()
    })
    .await?;
    Ok(rows)
}

pub async fn update_one(
    ctx: &Context<'_>,
    meta: &'static EntityMeta,
    id: &ID,
    form: UpdateForm,
    expected_version: Option<i32>,
) -> GqlResult<Row> {
    let rc = caller(ctx)?.clone();
    let id = input::id(id, "", "id")?;
    let grant = require(meta, &rc, Op::Update)?;
    let filter = Filter::and(vec![
        acl::row_scope(meta, &rc, Op::Update),
        Filter::eq(meta.id_column(), Value::Uuid(id)),
    ]);
    let row = in_tx(ctx, false, move |conn| {
        async move {
            let old = select(conn, meta, &filter, &[], Some(1), true)
                .await?
                .pop()
                .ok_or_else(|| ApiError::not_found(meta.name))?;
            if let (Some(expected), Some(col)) = (expected_version, meta.version) {
                if old.value(meta, col) != Value::Int(expected) {
                    return Err(ApiError::Conflict {
                        field: Some("expectedVersion".into()),
                        message: format!(
                            "{} was changed by someone else (expected version {expected})",
                            meta.name
                        ),
                    });
                }
            }
            update_rows(conn, meta, &rc, grant, vec![old], &form)
                .await?
                .pop()
                .ok_or_else(|| ApiError::not_found(meta.name))
        }
        .boxed()
    })
    .await?;
    Ok(row)
}

pub async fn update_many(
    ctx: &Context<'_>,
    meta: &'static EntityMeta,
    filter: Filter,
    form: UpdateForm,
) -> GqlResult<Vec<Row>> {
    let rc = caller(ctx)?.clone();
    let grant = require(meta, &rc, Op::Update)?;
    let filter = Filter::and(vec![
        acl::row_scope(meta, &rc, Op::Update),
        where_filter(Some(filter), &rc)?,
    ]);
    let rows = in_tx(ctx, false, move |conn| {
        async move {
            let order = [SortKey::new(meta.id_column(), SortOrder::Asc)];
            let old = select(conn, meta, &filter, &order, None, true).await?;
            update_rows(conn, meta, &rc, grant, old, &form).await
        }
        .boxed()
    })
    .await?;
    Ok(rows)
}

pub async fn delete_one(ctx: &Context<'_>, meta: &'static EntityMeta, id: &ID) -> GqlResult<Row> {
    let rc = caller(ctx)?.clone();
    let id = input::id(id, "", "id")?;
    require(meta, &rc, Op::Delete)?;
    let filter = Filter::and(vec![
        acl::row_scope(meta, &rc, Op::Delete),
        Filter::eq(meta.id_column(), Value::Uuid(id)),
    ]);
    let mut rows = delete_where(ctx, meta, rc, filter).await?;
    rows.pop()
        .ok_or_else(|| ApiError::not_found(meta.name).into())
}

pub async fn delete_many(
    ctx: &Context<'_>,
    meta: &'static EntityMeta,
    filter: Filter,
) -> GqlResult<Vec<Row>> {
    let rc = caller(ctx)?.clone();
    require(meta, &rc, Op::Delete)?;
    let filter = Filter::and(vec![
        acl::row_scope(meta, &rc, Op::Delete),
        where_filter(Some(filter), &rc)?,
    ]);
    delete_where(ctx, meta, rc, filter).await
}

async fn delete_where(
    ctx: &Context<'_>,
    meta: &'static EntityMeta,
    rc: RequestContext,
    filter: Filter,
) -> GqlResult<Vec<Row>> {
    let rows = in_tx(ctx, false, move |conn| {
        async move {
            let order = [SortKey::new(meta.id_column(), SortOrder::Asc)];
            let old = select(conn, meta, &filter, &order, None, true).await?;
            if old.is_empty() {
                return Ok(Vec::new());
            }
            let ids: Vec<Uuid> = old.iter().map(Row::id).collect();
            let mut gone = delete(conn, meta, rc.tenant_id, ids).await?;
            gone.sort_by_key(Row::id);
            let changes = gone.iter().map(|r| Change::deleted(meta, r)).collect();
            record(conn, meta, &rc, audit::Action::Delete, changes).await?;
            hooks::after_write(conn, &rc, meta, WriteEvent::deleted(&gone)).await?;
            Ok(gone)
        }
        .boxed()
    })
    .await?;
    Ok(rows)
}

/// The unique key `key` of a new row, as a filter (for upserts); a part the insert leaves
/// unset is compared with null, which [`unset_key_part`] refuses.
fn key_filter(meta: &'static EntityMeta, form: &InsertForm, key: usize) -> Filter {
    let Some(cols) = meta.unique_keys.get(key) else {
        return Filter::False;
    };
    Filter::and(
        cols.iter()
            .filter_map(|c| meta.column(c))
            .map(|col| {
                let v = form.get(meta, col.column).cloned().unwrap_or(Value::Null);
                Filter::eq(col, v)
            })
            .collect(),
    )
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

pub async fn upsert(
    ctx: &Context<'_>,
    meta: &'static EntityMeta,
    key: usize,
    insert: InsertForm,
    patch: Option<UpdateForm>,
) -> GqlResult<Row> {
    let rc = caller(ctx)?.clone();
    let create_grant = require(meta, &rc, Op::Create)?;
    let update_grant = require(meta, &rc, Op::Update)?;
    // Only rows the caller may update count as "the existing one"; anything else under the
    // same key surfaces as a CONFLICT from the insert.
    let key_filter = key_filter(meta, &insert, key);
    if let Some(field) = unset_key_part(&key_filter) {
        let at = format!("create.{field}");
        return Err(ApiError::bad_input(
            at.clone(),
            format!("{at} is part of the onConflict key: give it to find the existing row"),
        )
        .into());
    }
    let filter = Filter::and(vec![acl::row_scope(meta, &rc, Op::Update), key_filter]);
    let row = in_tx(ctx, false, move |conn| {
        async move {
            let existing = select(conn, meta, &filter, &[], Some(1), true).await?.pop();
            let rows = match (existing, patch) {
                // No update given: the existing row stays as it is.
                (Some(old), None) => vec![old],
                (Some(old), Some(patch)) => {
                    update_rows(conn, meta, &rc, update_grant, vec![old], &patch).await?
                }
                (None, _) => {
                    insert_rows(conn, meta, &rc, create_grant, std::slice::from_ref(&insert))
                        .await?
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
