//! Behaviour beyond CRUD, written by hand on top of the engine: each module contributes
//! fields and write hooks through `graphql::schema::Extensions`.

pub mod chat;
pub mod conversations;
pub mod forum;
pub mod notifications;
pub mod notify;
pub mod tasks;
pub mod users;

use std::time::Duration;

use async_graphql::dynamic::ResolverContext;
use futures::future::BoxFuture;

use uuid::Uuid;

use crate::audit::{self, Change};
use crate::auth::RequestContext;
use crate::db::sql::{Filter, SqlBuilder};
use crate::db::value::Value;
use crate::db::{Conn, Db};
use crate::error::ApiError;
use crate::graphql::acl::{self, Op};
use crate::graphql::crud::{caller, database, load_rows, record, select_rows};
use crate::graphql::meta::{metadata, ColumnType, EntityMeta};
use crate::graphql::row::Row;
use crate::graphql::schema::Extensions;

/// Every domain module's extensions.
pub fn extensions() -> Extensions {
    forum::extensions()
        .merge(tasks::extensions())
        .merge(notifications::extensions())
        .merge(users::extensions())
        .merge(chat::extensions())
        .merge(conversations::extensions())
}

/// Runs `f` in one read-write transaction as the caller (its tenant, its checks).
pub(crate) async fn write<T, F>(ctx: &ResolverContext<'_>, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: for<'r> FnOnce(&'r mut Conn, RequestContext) -> BoxFuture<'r, Result<T, ApiError>>
        + Send
        + 'static,
{
    let rc = caller(ctx)?.clone();
    let inner = rc.clone();
    database(ctx)?
        .transaction(&rc, false, move |conn| f(conn, inner))
        .await
}

/// The row `id` of `meta` if the caller may read it (its tenant, acl and read rules), locked
/// for the transaction when `lock`; NOT_FOUND otherwise, as for a missing row.
pub(crate) async fn readable_row(
    conn: &mut Conn,
    rc: &RequestContext,
    meta: &'static EntityMeta,
    id: Uuid,
    lock: bool,
) -> Result<Row, ApiError> {
    let filter = Filter::and(vec![
        acl::row_scope(meta, rc, Op::Read),
        Filter::eq(meta.id_column(), Value::Uuid(id)),
    ]);
    let b = select_rows(meta, None, &filter, &[], Some(1), lock);
    load_rows(conn, meta, b)
        .await?
        .pop()
        .ok_or_else(|| ApiError::not_found(meta.name))
}

/// Inserts one row of `meta` in the caller's tenant with `values` (column, value, type), with
/// its audit row and change event.
pub(crate) async fn insert_row(
    conn: &mut Conn,
    rc: &RequestContext,
    meta: &'static EntityMeta,
    values: Vec<(&str, Value, ColumnType)>,
) -> Result<Row, ApiError> {
    let mut b = SqlBuilder::new(&format!(
        "INSERT INTO \"{}\" AS t (\"id\", \"tenant_id\"",
        meta.table
    ));
    for (column, _, _) in &values {
        b.push(&format!(", \"{column}\""));
    }
    b.push(") VALUES (");
    b.bind(Value::Uuid(Uuid::now_v7()), ColumnType::Uuid, false);
    b.push(", ");
    b.bind(Value::Uuid(rc.tenant_id), ColumnType::Uuid, false);
    for (_, v, ty) in values {
        b.push(", ");
        b.bind(v, ty, false);
    }
    b.push(") RETURNING ");
    b.select_list(meta);
    let row = load_rows(conn, meta, b)
        .await?
        .pop()
        .ok_or_else(|| ApiError::internal(format!("insert into {} returned no row", meta.table)))?;
    record(
        conn,
        meta,
        rc,
        audit::Action::Create,
        vec![Change::created(meta, &row)],
    )
    .await?;
    Ok(row)
}

/// Sets columns of the row `old` of `meta`, with its audit row and change event.
pub(crate) async fn update_row(
    conn: &mut Conn,
    rc: &RequestContext,
    meta: &'static EntityMeta,
    old: &Row,
    sets: Vec<(&str, Value, ColumnType)>,
) -> Result<Row, ApiError> {
    let mut b = SqlBuilder::new(&format!(
        "UPDATE \"{}\" t SET \"updated_at\" = now()",
        meta.table
    ));
    for (column, v, ty) in sets {
        b.push(&format!(", \"{column}\" = "));
        b.bind(v, ty, false);
    }
    b.push(" WHERE t.\"id\" = ");
    b.bind(Value::Uuid(old.id()), ColumnType::Uuid, false);
    if meta.column("tenant_id").is_some() {
        b.push(" AND t.\"tenant_id\" = ");
        b.bind(Value::Uuid(rc.tenant_id), ColumnType::Uuid, false);
    }
    b.push(" RETURNING ");
    b.select_list(meta);
    let new = load_rows(conn, meta, b)
        .await?
        .pop()
        .ok_or_else(|| ApiError::not_found(meta.name))?;
    record(
        conn,
        meta,
        rc,
        audit::Action::Update,
        vec![Change::updated(meta, old, &new)],
    )
    .await?;
    Ok(new)
}

/// Which counters of a parent row follow its children: `parents.count` = how many
/// `children` reference it through `fk`, `parents.last` = the newest child's `created_at`.
pub(crate) struct Counters {
    pub parents: &'static str,
    pub children: &'static str,
    pub fk: &'static str,
    pub count: &'static str,
    pub last: &'static str,
}

impl Counters {
    /// `UPDATE <parents> t SET <count> = .., <last> = .. WHERE` the rows `ids` of the
    /// caller's tenant: recounted from the children in one statement (seeing every child
    /// committed before it, so concurrent writers cannot lose a count).
    pub(crate) fn recount(&self, tenant: Uuid, ids: Vec<Uuid>) -> SqlBuilder {
        let Counters {
            parents,
            children,
            fk,
            count,
            last,
        } = self;
        let of_row = format!("FROM \"{children}\" c WHERE c.\"tenant_id\" = t.\"tenant_id\" AND c.\"{fk}\" = t.\"id\"");
        let mut b = SqlBuilder::new(&format!(
            "UPDATE \"{parents}\" t SET \"{count}\" = (SELECT count(*) {of_row}), \
             \"{last}\" = (SELECT max(c.\"created_at\") {of_row}) WHERE t.\"tenant_id\" = "
        ));
        b.bind(Value::Uuid(tenant), ColumnType::Uuid, false);
        b.push(" AND t.\"id\" = ANY(");
        b.bind(Value::UuidList(ids), ColumnType::Uuid, true);
        b.push(")");
        b
    }
}

/// The entity `name` of the installed catalog.
pub(crate) fn entity(name: &str) -> Result<&'static EntityMeta, ApiError> {
    metadata()
        .entity(name)
        .ok_or_else(|| ApiError::internal(format!("the catalog has no {name}")))
}

/// Runs the sweeps every `every` until the process ends: tasks past their SLA deadline are
/// escalated, expired notifications removed. Every instance runs them; the database makes
/// each escalation happen once (`tasks::sweep_overdue`).
pub fn start_sweeps(db: Db, every: Duration) {
    const BATCH: i32 = 100;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            // A full batch means more may be waiting.
            loop {
                match tasks::sweep_overdue(&db, BATCH).await {
                    Ok(n) if n == BATCH as usize => continue,
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!("SLA sweep failed: {}", e.message());
                        break;
                    }
                }
            }
            if let Err(e) = notifications::sweep_expired(&db, 1000).await {
                tracing::warn!("notification expiry failed: {}", e.message());
            }
        }
    });
}
