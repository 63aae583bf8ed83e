//! Per-request batching of relation fields.
//!
//! One `RowLoader` is created for every request, carrying the caller, so nothing cached ever
//! crosses requests or tenants. Whatever the number of parents at one level of a query, each
//! relation costs one statement: rows by id for `belongsTo`, a window-function page per parent
//! for `hasMany` connections (with the same `where`, `orderBy` and cursors as root lists), and
//! one grouped count for their `totalCount`.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, Loader};
use async_graphql::Context;
use uuid::Uuid;

use crate::caller::RequestContext;
use crate::db::session::Reads;
use crate::db::sql::{Filter, SortKey, SqlBuilder};
use crate::db::value::Value;
use crate::error::ApiError;
use crate::graphql::acl::{self, Op};
use crate::graphql::columns::ColumnSet;
use crate::graphql::crud;
use crate::graphql::meta::{ColumnMeta, ColumnType, EntityMeta};
use crate::graphql::page::Keyed;
use crate::graphql::row::Row;
use tracing::Instrument;

/// The loaders of one request.
pub struct RowLoader {
    reads: Reads,
    rc: RequestContext,
    /// The request's span: batches run on tasks of their own, and name it as their parent.
    span: tracing::Span,
}

impl RowLoader {
    /// A span for one batch (`graphql.batch`) under the request's, when traces are exported.
    pub(crate) fn batch(&self, kind: &'static str, keys: usize) -> tracing::Span {
        if crate::db::tracing_statements() {
            tracing::info_span!(parent: &self.span, "graphql.batch", loader = kind, keys)
        } else {
            tracing::Span::none()
        }
    }
}

pub type RequestLoader = DataLoader<RowLoader>;

/// A loader for one request of `rc`, reading through `reads`.
pub fn for_request(reads: Reads, rc: RequestContext) -> RequestLoader {
    DataLoader::new(
        RowLoader {
            reads,
            rc,
            span: tracing::Span::current(),
        },
        tokio::spawn,
    )
}

pub fn loader<'c>(ctx: &'c Context<'_>) -> Result<&'c RequestLoader, ApiError> {
    ctx.data_opt::<RequestLoader>()
        .ok_or_else(|| ApiError::internal("no loader in the request data"))
}

type LoadError = async_graphql::Error;

impl RowLoader {
    /// The caller the request's reads are confined to.
    pub(crate) fn caller(&self) -> &RequestContext {
        &self.rc
    }

    /// Runs one read statement in the caller's tenant.
    pub(crate) async fn fetch<T>(
        &self,
        meta: &'static EntityMeta,
        b: SqlBuilder,
    ) -> Result<Vec<T>, LoadError>
    where
        T: diesel::deserialize::FromSqlRow<diesel::sql_types::Untyped, diesel::pg::Pg>
            + Send
            + 'static,
    {
        self.reads.read(meta.name, b).await.map_err(LoadError::from)
    }
}

/// A row of an entity by id, with the columns its selection reads. Keys of one entity are
/// loaded together, with every column any of them reads.
#[derive(Clone)]
pub struct ById {
    meta: &'static EntityMeta,
    id: Uuid,
    columns: ColumnSet,
}

impl ById {
    pub fn new(meta: &'static EntityMeta, id: Uuid, columns: ColumnSet) -> Self {
        ById { meta, id, columns }
    }
}
impl PartialEq for ById {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id && std::ptr::eq(self.meta, other.meta) && self.columns == other.columns
    }
}
impl Eq for ById {}
impl Hash for ById {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id.hash(state);
        self.meta.name.hash(state);
        self.columns.hash(state);
    }
}

/// Groups keys by entity, in the order the entities first appear.
fn by_entity<K>(
    keys: &[K],
    meta: impl Fn(&K) -> &'static EntityMeta,
) -> Vec<(&'static EntityMeta, Vec<&K>)> {
    let mut out: Vec<(&'static EntityMeta, Vec<&K>)> = Vec::new();
    for k in keys {
        let m = meta(k);
        match out.iter_mut().find(|(g, _)| std::ptr::eq(*g, m)) {
            Some((_, members)) => members.push(k),
            None => out.push((m, vec![k])),
        }
    }
    out
}

impl Loader<ById> for RowLoader {
    type Value = Row;
    type Error = LoadError;

    async fn load(&self, keys: &[ById]) -> Result<HashMap<ById, Row>, LoadError> {
        let span = self.batch("byId", keys.len());
        self.by_id(keys).instrument(span).await
    }
}

impl RowLoader {
    async fn by_id(&self, keys: &[ById]) -> Result<HashMap<ById, Row>, LoadError> {
        let mut out = HashMap::new();
        for (meta, members) in by_entity(keys, |k| k.meta) {
            let columns = ColumnSet::union_of(meta, members.iter().map(|k| &k.columns));
            let ids: Vec<Uuid> = members.iter().map(|k| k.id).collect();
            let mut rows = self.rows_by_id(meta, &columns, ids).await?;
            // Keys of one id (asked with different columns) share its row: copies for all
            // but the last.
            let mut members = members;
            members.sort_by_key(|k| k.id);
            for (i, k) in members.iter().enumerate() {
                let shared = members.get(i + 1).is_some_and(|next| next.id == k.id);
                let row = if shared {
                    rows.get(&k.id).cloned()
                } else {
                    rows.remove(&k.id)
                };
                if let Some(row) = row {
                    out.insert((*k).clone(), row);
                }
            }
        }
        Ok(out)
    }

    /// The rows of `meta` with these ids that the caller may read, with `columns`, in one
    /// statement.
    pub(crate) async fn rows_by_id(
        &self,
        meta: &'static EntityMeta,
        columns: &ColumnSet,
        mut ids: Vec<Uuid>,
    ) -> Result<HashMap<Uuid, Row>, LoadError> {
        ids.sort_unstable();
        ids.dedup();
        let filter = Filter::and(vec![
            acl::row_scope(meta, &self.rc, Op::Read),
            Filter::In {
                col: meta.id_column(),
                values: Value::UuidList(ids),
                negated: false,
            },
        ]);
        let mut b = SqlBuilder::new("SELECT ");
        b.select_columns(meta, Some(columns));
        crud::from_where(&mut b, meta, columns, &self.rc);
        b.filter(&filter);
        let rows: Vec<Row> = self.fetch(meta, b).await?;
        Ok(rows.into_iter().map(|r| (r.id(), r)).collect())
    }
}

/// What a relation connection asks for, shared by all its parents.
#[derive(Clone)]
pub struct ChildSpec {
    /// The columns the children's selection reads (with `fk` and the sort keys).
    pub columns: ColumnSet,
    /// The child's column referencing the parent.
    pub fk: &'static ColumnMeta,
    /// The client's `where`, without scoping (the loader adds the caller's scope).
    pub filter: Filter,
    pub keys: Vec<SortKey>,
    pub after: Option<Vec<Value>>,
    pub before: Option<Vec<Value>>,
    pub limit: i64,
    /// Whether `limit` reads one row past each page, to learn whether there are more.
    pub probe: bool,
    pub backward: bool,
    /// Whether `totalCount` is selected: counted per parent by the page's statement.
    pub with_total: bool,
    /// Equal for equal arguments: keys of one fingerprint are loaded together.
    pub fingerprint: String,
}

impl ChildSpec {
    /// The same pages with no more than their ids (and what they are grouped and ordered by),
    /// uncounted and without the row past each page: what a statement needs of them as
    /// parents (the row past a page is never shown, so its children are never read).
    pub fn ids_only(&self, meta: &EntityMeta) -> ChildSpec {
        ChildSpec {
            columns: ColumnSet::empty(meta)
                .with(meta.id_column())
                .with(self.fk)
                .with_keys(&self.keys)
                .compact(),
            limit: self.limit - i64::from(self.probe),
            probe: false,
            with_total: false,
            ..self.clone()
        }
    }

    pub fn fingerprint_of(
        fk: &ColumnMeta,
        filter: &Filter,
        keys: &[SortKey],
        parts: &[&dyn std::fmt::Debug],
    ) -> String {
        format!("{}|{filter:?}|{keys:?}|{parts:?}", fk.column)
    }
}

/// One parent's page of a relation connection.
#[derive(Clone)]
pub struct ChildPageKey {
    pub meta: &'static EntityMeta,
    pub parent: Uuid,
    pub spec: Arc<ChildSpec>,
}

impl ChildPageKey {
    pub fn new(meta: &'static EntityMeta, parent: Uuid, spec: Arc<ChildSpec>) -> Self {
        ChildPageKey { meta, parent, spec }
    }
}
impl PartialEq for ChildPageKey {
    fn eq(&self, other: &Self) -> bool {
        self.parent == other.parent
            && std::ptr::eq(self.meta, other.meta)
            && self.spec.fingerprint == other.spec.fingerprint
    }
}
impl Eq for ChildPageKey {}
impl Hash for ChildPageKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.parent.hash(state);
        self.spec.fingerprint.hash(state);
    }
}

/// Groups keys by entity and their spec's fingerprint, keeping one spec per group.
type Group<'k, K> = (&'static EntityMeta, Arc<ChildSpec>, Vec<&'k K>);

fn groups<K>(
    keys: &[K],
    spec: impl Fn(&K) -> (&'static EntityMeta, &Arc<ChildSpec>),
) -> Vec<Group<'_, K>> {
    let mut out: Vec<Group<'_, K>> = Vec::new();
    for k in keys {
        let (m, s) = spec(k);
        match out
            .iter_mut()
            .find(|(gm, g, _)| std::ptr::eq(*gm, m) && g.fingerprint == s.fingerprint)
        {
            Some((_, _, members)) => members.push(k),
            None => out.push((m, s.clone(), vec![k])),
        }
    }
    out
}

impl Loader<ChildPageKey> for RowLoader {
    type Value = Arc<Vec<Keyed>>;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[ChildPageKey],
    ) -> Result<HashMap<ChildPageKey, Self::Value>, LoadError> {
        let span = self.batch("childPages", keys.len());
        self.child_pages(keys).instrument(span).await
    }
}

impl RowLoader {
    async fn child_pages(
        &self,
        keys: &[ChildPageKey],
    ) -> Result<HashMap<ChildPageKey, Arc<Vec<Keyed>>>, LoadError> {
        let mut out = HashMap::new();
        for (meta, spec, members) in groups(keys, |k| (k.meta, &k.spec)) {
            let parents: Vec<Uuid> = members.iter().map(|k| k.parent).collect();
            let mut by_parent = self.pages_of(meta, &spec, parents).await?;
            for k in members {
                let rows = by_parent.remove(&k.parent).unwrap_or_default();
                out.insert((*k).clone(), Arc::new(rows));
            }
        }
        Ok(out)
    }

    /// Each parent's page of its `meta` children as `spec` reads them, in one statement.
    pub(crate) async fn pages_of(
        &self,
        meta: &'static EntityMeta,
        spec: &ChildSpec,
        parents: Vec<Uuid>,
    ) -> Result<HashMap<Uuid, Vec<Keyed>>, LoadError> {
        let b = self.pages_statement(meta, spec, Parents::Ids(parents));
        Ok(by_parent(spec, self.fetch(meta, b).await?))
    }

    /// The statement of [`Self::pages_of`], for parents given by id or by the statement that
    /// reads them.
    pub(crate) fn pages_statement(
        &self,
        meta: &'static EntityMeta,
        spec: &ChildSpec,
        parents: Parents<'_>,
    ) -> SqlBuilder {
        let reversed: Vec<SortKey> = spec.keys.iter().map(SortKey::reversed).collect();
        let order = if spec.backward { &reversed } else { &spec.keys };
        let scoped = Filter::and(vec![
            acl::row_scope(meta, &self.rc, Op::Read),
            spec.filter.clone(),
        ]);
        // Up to limit rows per parent, in one statement for all parents; with their
        // totals, counted once per parent in a CTE over the filter without cursors.
        let mut b = SqlBuilder::new("");
        let mut with = "WITH";
        if let Parents::Of(parents) = &parents {
            // Their statement again, in the same snapshot: the same rows.
            b.push("WITH \"__parents\" AS (SELECT \"__q\".id FROM (");
            b.embed(parents);
            b.push(") \"__q\") ");
            with = ",";
        }
        if spec.with_total {
            b.push(with);
            b.push(" \"__count\" AS (SELECT ");
            b.column(spec.fk);
            b.push(&format!(
                " AS p, count(*) AS n FROM \"{}\" t WHERE ",
                meta.table
            ));
            match &parents {
                Parents::Ids(ids) => {
                    b.column(spec.fk).push(" = ANY(");
                    b.bind(Value::UuidList(ids.clone()), ColumnType::Uuid, true);
                    b.push(")");
                }
                Parents::Of(_) => {
                    b.column(spec.fk).push(" IN (SELECT id FROM \"__parents\")");
                }
            }
            b.push(" AND ");
            b.filter(&scoped);
            b.push(" GROUP BY ");
            b.column(spec.fk);
            b.push(") ");
        }
        // Each parent's page is a top-N read of its own children (an index scan and a
        // bounded sort), numbered in its order, joined laterally to the parents.
        b.push("SELECT s.* FROM ");
        match parents {
            Parents::Ids(ids) => {
                b.push("unnest(");
                b.bind(Value::UuidList(ids), ColumnType::Uuid, true);
                b.push(")");
            }
            Parents::Of(_) => {
                b.push("\"__parents\"");
            }
        }
        b.push(" AS \"__p\"(id) CROSS JOIN LATERAL (SELECT q.*");
        if spec.with_total {
            b.push(", (SELECT c.n FROM \"__count\" c WHERE c.p = \"__p\".id) AS \"__total\"");
        }
        b.push(", row_number() OVER () AS \"__rn\" FROM (SELECT ");
        b.select_columns(meta, Some(&spec.columns));
        b.foreign_key_values(&spec.keys);
        crud::from_where(&mut b, meta, &spec.columns, &self.rc);
        b.column(spec.fk).push(" = \"__p\".id AND ");
        b.filter(&scoped);
        if let Some(values) = &spec.after {
            b.push(" AND ");
            b.after(&spec.keys, values);
        }
        if let Some(values) = &spec.before {
            b.push(" AND ");
            b.after(&reversed, values);
        }
        b.order_by(order);
        b.limit(spec.limit);
        // Pages are grouped by parent, each put in its order by `__rn` (`by_parent`): an
        // ORDER BY here would sort every row of the statement again.
        b.push(") q) s");
        b
    }
}

/// Where the parents of a page statement come from.
pub(crate) enum Parents<'a> {
    /// Their ids, bound as an array.
    Ids(Vec<Uuid>),
    /// The statement that reads them (selecting their `id`), embedded: the pages can be read
    /// in the same round trip as their parents.
    Of(&'a SqlBuilder),
}

/// The rows of a page statement, by parent.
pub(crate) fn by_parent(spec: &ChildSpec, rows: Vec<Row>) -> HashMap<Uuid, Vec<Keyed>> {
    let mut by_parent: HashMap<Uuid, Vec<Keyed>> = HashMap::new();
    for row in rows.into_iter().map(Keyed::from) {
        if let Value::Uuid(p) = *row.row.get(spec.fk) {
            by_parent.entry(p).or_default().push(row);
        }
    }
    // `__rn`, the last column, numbers each page's rows in its order.
    let rn = |k: &Keyed| match k.row.extra.last() {
        Some(Value::BigInt(n)) => *n,
        _ => 0,
    };
    for page in by_parent.values_mut() {
        page.sort_by_key(rn);
    }
    by_parent
}

/// One parent's share of a relation connection's `totalCount`.
#[derive(Clone)]
pub struct ChildCount {
    pub parent: Uuid,
    pub spec: Arc<ChildSpec>,
}

#[derive(Clone)]
pub struct ChildCountKey {
    meta: &'static EntityMeta,
    inner: ChildCount,
}

impl ChildCountKey {
    pub fn new(meta: &'static EntityMeta, inner: ChildCount) -> Self {
        ChildCountKey { meta, inner }
    }
}
impl PartialEq for ChildCountKey {
    fn eq(&self, other: &Self) -> bool {
        self.inner.parent == other.inner.parent
            && std::ptr::eq(self.meta, other.meta)
            && self.inner.spec.fingerprint == other.inner.spec.fingerprint
    }
}
impl Eq for ChildCountKey {}
impl Hash for ChildCountKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.inner.parent.hash(state);
        self.inner.spec.fingerprint.hash(state);
    }
}

#[derive(diesel::QueryableByName)]
struct ParentCount {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    parent: Uuid,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    count: i64,
}

impl Loader<ChildCountKey> for RowLoader {
    type Value = i64;
    type Error = LoadError;

    async fn load(&self, keys: &[ChildCountKey]) -> Result<HashMap<ChildCountKey, i64>, LoadError> {
        let span = self.batch("childCounts", keys.len());
        self.child_counts(keys).instrument(span).await
    }
}

impl RowLoader {
    async fn child_counts(
        &self,
        keys: &[ChildCountKey],
    ) -> Result<HashMap<ChildCountKey, i64>, LoadError> {
        let mut out = HashMap::new();
        for (meta, spec, members) in groups(keys, |k| (k.meta, &k.inner.spec)) {
            let parents: Vec<Uuid> = members.iter().map(|k| k.inner.parent).collect();
            let by_parent = self.counts_of(meta, &spec, parents).await?;
            for k in members {
                let n = by_parent.get(&k.inner.parent).copied().unwrap_or(0);
                out.insert((*k).clone(), n);
            }
        }
        Ok(out)
    }

    /// How many `meta` children each parent has under `spec`'s filter, in one statement.
    pub(crate) async fn counts_of(
        &self,
        meta: &'static EntityMeta,
        spec: &ChildSpec,
        parents: Vec<Uuid>,
    ) -> Result<HashMap<Uuid, i64>, LoadError> {
        let mut b = SqlBuilder::new("SELECT ");
        b.column(spec.fk);
        b.push(&format!(
            " AS parent, count(*) AS count FROM \"{}\" t WHERE ",
            meta.table
        ));
        b.column(spec.fk).push(" = ANY(");
        b.bind(Value::UuidList(parents), ColumnType::Uuid, true);
        b.push(") AND ");
        b.filter(&Filter::and(vec![
            acl::row_scope(meta, &self.rc, Op::Read),
            spec.filter.clone(),
        ]));
        b.push(" GROUP BY ");
        b.column(spec.fk);
        let counts: Vec<ParentCount> = self.fetch(meta, b).await?;
        Ok(counts.into_iter().map(|c| (c.parent, c.count)).collect())
    }
}
