//! Per-request batching of relation fields.
//!
//! One `RowLoader` is created for every request, carrying the caller, so nothing cached ever
//! crosses requests or tenants. Whatever the number of parents at one level of a query, each
//! relation costs one statement: rows by id for `belongsTo`, a window-function page per parent
//! for `hasMany` connections (with the same `where`, `orderBy` and cursors as root lists), and
//! one grouped count for their `totalCount`.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, Loader};
use async_graphql::Context;
use uuid::Uuid;

use crate::auth::RequestContext;
use crate::db::sql::{Filter, SortKey, SqlBuilder};
use crate::db::value::Value;
use crate::db::Db;
use crate::error::ApiError;
use crate::graphql::acl::{self, Op};
use crate::graphql::crud::Entity;
use crate::graphql::meta::{ColumnMeta, ColumnType, EntityMeta};
use crate::graphql::page::Keyed;

/// The loaders of one request.
pub struct RowLoader {
    db: Db,
    rc: RequestContext,
}

pub type RequestLoader = DataLoader<RowLoader>;

/// A loader for one request of `rc`.
pub fn for_request(db: Db, rc: RequestContext) -> RequestLoader {
    DataLoader::new(RowLoader { db, rc }, tokio::spawn)
}

pub fn loader<'c>(ctx: &'c Context<'_>) -> Result<&'c RequestLoader, ApiError> {
    ctx.data_opt::<RequestLoader>()
        .ok_or_else(|| ApiError::internal("no loader in the request data"))
}

type LoadError = async_graphql::Error;

impl RowLoader {
    /// Runs one read statement in the caller's tenant.
    async fn fetch<T>(&self, meta: &'static EntityMeta, b: SqlBuilder) -> Result<Vec<T>, LoadError>
    where
        T: diesel::deserialize::QueryableByName<diesel::pg::Pg> + Send + 'static,
    {
        self.db
            .read(&self.rc, meta.name, b)
            .await
            .map_err(LoadError::from)
    }
}

/// A row of `E` by id.
pub struct ById<E>(pub Uuid, PhantomData<fn() -> E>);

impl<E> ById<E> {
    pub fn new(id: Uuid) -> Self {
        ById(id, PhantomData)
    }
}
impl<E> Clone for ById<E> {
    fn clone(&self) -> Self {
        ById(self.0, PhantomData)
    }
}
impl<E> PartialEq for ById<E> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl<E> Eq for ById<E> {}
impl<E> Hash for ById<E> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state)
    }
}

impl<E: Entity + Clone> Loader<ById<E>> for RowLoader {
    type Value = E;
    type Error = LoadError;

    async fn load(&self, keys: &[ById<E>]) -> Result<HashMap<ById<E>, E>, LoadError> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let meta = E::META;
        let filter = Filter::and(vec![
            acl::row_scope(meta, &self.rc, Op::Read),
            Filter::In {
                col: meta.id_column(),
                values: Value::UuidList(ids),
                negated: false,
            },
        ]);
        let mut b = SqlBuilder::new("SELECT ");
        b.select_list(meta);
        b.push(&format!(" FROM \"{}\" t WHERE ", meta.table));
        b.filter(&filter);
        let rows: Vec<E> = self.fetch(meta, b).await?;
        Ok(rows.into_iter().map(|r| (ById::new(r.id()), r)).collect())
    }
}

/// What a relation connection asks for, shared by all its parents.
pub struct ChildSpec {
    /// The child's column referencing the parent.
    pub fk: &'static ColumnMeta,
    /// The client's `where`, without scoping (the loader adds the caller's scope).
    pub filter: Filter,
    pub keys: Vec<SortKey>,
    pub after: Option<Vec<Value>>,
    pub before: Option<Vec<Value>>,
    pub limit: i64,
    pub backward: bool,
    /// Equal for equal arguments: keys of one fingerprint are loaded together.
    pub fingerprint: String,
}

impl ChildSpec {
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
pub struct ChildPageKey<E> {
    pub parent: Uuid,
    pub spec: Arc<ChildSpec>,
    _e: PhantomData<fn() -> E>,
}

impl<E> ChildPageKey<E> {
    pub fn new(parent: Uuid, spec: Arc<ChildSpec>) -> Self {
        ChildPageKey {
            parent,
            spec,
            _e: PhantomData,
        }
    }
}
impl<E> Clone for ChildPageKey<E> {
    fn clone(&self) -> Self {
        ChildPageKey::new(self.parent, self.spec.clone())
    }
}
impl<E> PartialEq for ChildPageKey<E> {
    fn eq(&self, other: &Self) -> bool {
        self.parent == other.parent && self.spec.fingerprint == other.spec.fingerprint
    }
}
impl<E> Eq for ChildPageKey<E> {}
impl<E> Hash for ChildPageKey<E> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.parent.hash(state);
        self.spec.fingerprint.hash(state);
    }
}

/// Groups keys by their spec's fingerprint, keeping one spec per group.
fn groups<K>(keys: &[K], spec: impl Fn(&K) -> &Arc<ChildSpec>) -> Vec<(Arc<ChildSpec>, Vec<&K>)> {
    let mut out: Vec<(Arc<ChildSpec>, Vec<&K>)> = Vec::new();
    for k in keys {
        let s = spec(k);
        match out.iter_mut().find(|(g, _)| g.fingerprint == s.fingerprint) {
            Some((_, members)) => members.push(k),
            None => out.push((s.clone(), vec![k])),
        }
    }
    out
}

impl<E: Entity + Clone> Loader<ChildPageKey<E>> for RowLoader {
    type Value = Arc<Vec<Keyed<E>>>;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[ChildPageKey<E>],
    ) -> Result<HashMap<ChildPageKey<E>, Self::Value>, LoadError> {
        let meta = E::META;
        let mut out = HashMap::new();
        for (spec, members) in groups(keys, |k| &k.spec) {
            let parents: Vec<Uuid> = members.iter().map(|k| k.parent).collect();
            let reversed: Vec<SortKey> = spec.keys.iter().map(SortKey::reversed).collect();
            let order = if spec.backward { &reversed } else { &spec.keys };
            // Up to limit rows per parent, in one statement for all parents.
            let mut b = SqlBuilder::new("SELECT * FROM (SELECT ");
            b.select_list(meta);
            b.foreign_key_values(&spec.keys);
            b.push(", row_number() OVER (PARTITION BY ");
            b.column(spec.fk);
            b.order_by(order);
            b.push(&format!(") AS \"__rn\" FROM \"{}\" t WHERE ", meta.table));
            b.column(spec.fk).push(" = ANY(");
            b.bind(Value::UuidList(parents), ColumnType::Uuid, true);
            b.push(") AND ");
            b.filter(&Filter::and(vec![
                acl::row_scope(meta, &self.rc, Op::Read),
                spec.filter.clone(),
            ]));
            if let Some(values) = &spec.after {
                b.push(" AND ");
                b.after(&spec.keys, values);
            }
            if let Some(values) = &spec.before {
                b.push(" AND ");
                b.after(&reversed, values);
            }
            b.push(&format!(
                ") s WHERE s.\"__rn\" <= {} ORDER BY s.\"__rn\"",
                spec.limit
            ));
            let rows: Vec<Keyed<E>> = self.fetch(meta, b).await?;
            let mut by_parent: HashMap<Uuid, Vec<Keyed<E>>> = HashMap::new();
            for row in rows {
                if let Value::Uuid(p) = row.row.value(spec.fk.column) {
                    by_parent.entry(p).or_default().push(row);
                }
            }
            for k in members {
                let rows = by_parent.remove(&k.parent).unwrap_or_default();
                out.insert((*k).clone(), Arc::new(rows));
            }
        }
        Ok(out)
    }
}

/// One parent's share of a relation connection's `totalCount`.
#[derive(Clone)]
pub struct ChildCount {
    pub parent: Uuid,
    pub spec: Arc<ChildSpec>,
}

pub struct ChildCountKey<E> {
    inner: ChildCount,
    _e: PhantomData<fn() -> E>,
}

impl<E> ChildCountKey<E> {
    pub fn new(inner: ChildCount) -> Self {
        ChildCountKey {
            inner,
            _e: PhantomData,
        }
    }
}
impl<E> Clone for ChildCountKey<E> {
    fn clone(&self) -> Self {
        ChildCountKey::new(self.inner.clone())
    }
}
impl<E> PartialEq for ChildCountKey<E> {
    fn eq(&self, other: &Self) -> bool {
        self.inner.parent == other.inner.parent
            && self.inner.spec.fingerprint == other.inner.spec.fingerprint
    }
}
impl<E> Eq for ChildCountKey<E> {}
impl<E> Hash for ChildCountKey<E> {
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

impl<E: Entity> Loader<ChildCountKey<E>> for RowLoader {
    type Value = i64;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[ChildCountKey<E>],
    ) -> Result<HashMap<ChildCountKey<E>, i64>, LoadError> {
        let meta = E::META;
        let mut out = HashMap::new();
        for (spec, members) in groups(keys, |k| &k.inner.spec) {
            let parents: Vec<Uuid> = members.iter().map(|k| k.inner.parent).collect();
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
            let by_parent: HashMap<Uuid, i64> =
                counts.into_iter().map(|c| (c.parent, c.count)).collect();
            for k in members {
                let n = by_parent.get(&k.inner.parent).copied().unwrap_or(0);
                out.insert((*k).clone(), n);
            }
        }
        Ok(out)
    }
}
