//! Running a plan: one statement per relation and level for all the parents of that level
//! (the loaders' own statements, called directly), sibling relations read together, the
//! response's JSON text written straight from the rows. Any failure gives up (`None`): the
//! executor then answers the operation, with its usual errors.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::extensions::ExtensionContext;
use async_graphql::Name;
use futures::future::{try_join_all, BoxFuture, FutureExt};
use uuid::Uuid;

use super::{
    Args, Conn, ConnField, EdgeField, InfoField, Obj, ObjField, ObjectWriter, Plan, Root, Text,
};
use crate::caller::RequestContext;
use crate::db::session::Reads;
use crate::db::sql::SqlBuilder;
use crate::db::value::Value;
use crate::graphql::columns::ColumnSet;
use crate::graphql::crud::{self, CountRow, ListQuery, PageLimits};
use crate::graphql::input;
use crate::graphql::loaders::{by_parent, ChildSpec, Parents, RequestLoader, RowLoader};
use crate::graphql::meta::{EntityMeta, RelationLink};
use crate::graphql::page::{CountSource, Keyed, Page};
use crate::graphql::row::{write_json, write_json_str, Row};

/// The plan gave up: the executor answers instead.
struct GiveUp;

type Out<T> = Result<T, GiveUp>;

impl From<crate::error::ApiError> for GiveUp {
    fn from(_: crate::error::ApiError) -> Self {
        GiveUp
    }
}

impl From<async_graphql::Error> for GiveUp {
    fn from(_: async_graphql::Error) -> Self {
        GiveUp
    }
}

/// Rows per level up to which the level's relations are read in the same round trip as the
/// level itself, its statement embedded in theirs as their parents (PostgreSQL runs it again,
/// in the same snapshot, so it finds the same rows). Re-reading a few rows costs less than a
/// round trip; re-reading many would not.
const AHEAD_MAX_ROWS: i64 = 50;

/// What was read ahead under an object: for each of its fields (by position), the pages of
/// that relation for all the object's rows, and what was read ahead under their objects.
#[derive(Default)]
struct Ahead(Vec<Option<Pages>>);

/// A relation's pages by parent, and what was read ahead under their objects.
type Read = (HashMap<Uuid, Vec<Keyed>>, Vec<Ahead>);

/// A relation read ahead: its pages, and the query and spec they were read with.
struct Pages {
    read: Read,
    query: Option<ListQuery>,
    spec: Arc<ChildSpec>,
}

impl Ahead {
    fn take(&mut self, i: usize) -> Option<Pages> {
        self.0.get_mut(i).and_then(Option::take)
    }
}

/// Where the statements read ahead under an object are among a level's reads.
struct AheadPlan(Vec<Option<AheadStep>>);

struct AheadStep {
    at: usize,
    query: Option<ListQuery>,
    spec: Arc<ChildSpec>,
    under: Vec<AheadPlan>,
}

impl AheadPlan {
    fn fill(self, results: &mut [Vec<Row>]) -> Ahead {
        Ahead(
            self.0
                .into_iter()
                .map(|step| {
                    let step = step?;
                    let rows = results.get_mut(step.at).map(std::mem::take)?;
                    let under = step.under.into_iter().map(|p| p.fill(results)).collect();
                    Some(Pages {
                        read: (by_parent(&step.spec, rows), under),
                        query: step.query,
                        spec: step.spec,
                    })
                })
                .collect(),
        )
    }
}

/// A read of `meta`'s rows for their ids alone.
fn ids_only(meta: &EntityMeta) -> ColumnSet {
    ColumnSet::empty(meta).with(meta.id_column()).compact()
}

/// Whether nothing under `obj` reads again once its rows and `plan`'s pages are read: every
/// relation read ahead, no parent read by id, no count that may be read apart.
fn complete(obj: &Obj, plan: Option<&AheadPlan>) -> bool {
    let step = |i: usize| plan.and_then(|p| p.0.get(i)).and_then(Option::as_ref);
    obj.fields.iter().enumerate().all(|(i, (_, f))| match f {
        ObjField::Typename | ObjField::Column(_) | ObjField::Joined(..) => true,
        ObjField::Parent(..) => false,
        ObjField::Child(_, child) => step(i).is_some_and(|s| complete(child, s.under.first())),
        ObjField::Children(_, list) => {
            let conn = &list.1;
            step(i).is_some_and(|s| {
                // A count not found in a page (cursors left every row out) is read apart.
                let apart =
                    s.spec.with_total && (s.spec.after.is_some() || s.spec.before.is_some());
                !apart
                    && conn_objs(conn)
                        .iter()
                        .enumerate()
                        .all(|(k, o)| complete(o, s.under.get(k)))
            })
        }
    })
}

/// The objects of a connection's nodes (`nodes`, then each `edges { node }`), in order.
fn conn_objs(conn: &Conn) -> Vec<&Obj> {
    conn.fields
        .iter()
        .flat_map(|(_, f)| match f {
            ConnField::Nodes(obj) => vec![obj],
            ConnField::Edges(edge) => edge
                .iter()
                .filter_map(|(_, e)| match e {
                    EdgeField::Node(obj) => Some(obj),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        })
        .collect()
}

/// The operation's `data` as JSON text, or `None` when the executor must answer it.
/// `alone`: nothing reads after the plan (the executor does not check it), so a plan that
/// reads everything in one round trip can end the transaction in it.
pub(super) async fn run(plan: &Plan, ctx: &ExtensionContext<'_>, alone: bool) -> Option<Vec<u8>> {
    let runner = Runner {
        rc: ctx.data_opt::<RequestContext>()?,
        reads: ctx.data_opt::<Reads>()?,
        loader: ctx.data_opt::<RequestLoader>()?.loader(),
        limits: crud::page_limits_of(ctx.data_opt::<PageLimits>()),
        may_end: alone && plan.fields.len() == 1,
    };
    if plan.keys_only {
        runner.reads.plan_generically();
    }
    let values = try_join_all(plan.fields.iter().map(|(_, f)| runner.root(f)))
        .await
        .ok()?;
    let mut out = Vec::with_capacity(values.iter().map(|v| v.0.len() + 32).sum::<usize>() + 2);
    let mut object = ObjectWriter::open(&mut out);
    for ((key, _), v) in plan.fields.iter().zip(values) {
        object.key(key).extend_from_slice(&v.0);
    }
    object.close();
    Some(out)
}

struct Runner<'a> {
    rc: &'a RequestContext,
    /// Whether the root's level may end the transaction (one root field, nothing after).
    may_end: bool,
    reads: &'a Reads,
    loader: &'a RowLoader,
    limits: PageLimits,
}

fn name(s: &str) -> Text {
    let mut out = Vec::with_capacity(s.len() + 2);
    write_json_str(&mut out, s);
    Text(out)
}

impl<'a> Runner<'a> {
    async fn root(&self, f: &Root) -> Out<Text> {
        match f {
            Root::Typename => Ok(name("Query")),
            Root::Get { meta, id, obj } => {
                let id = input::id(&input::id_of(id).unwrap_or_default(), "", "id")?;
                let b = crud::get_statement(meta, self.rc, id, &obj.columns);
                let ids = || crud::get_statement(meta, self.rc, id, &ids_only(meta));
                let last = self.may_end;
                let (rows, mut ahead) = self.level(meta, b, ids, 1, &[obj], last).await?;
                let ahead = ahead.pop().unwrap_or_default();
                match rows.first() {
                    Some(row) => Ok(self
                        .objects(obj, &[row], ahead)
                        .await?
                        .pop()
                        .unwrap_or_default()),
                    None => Ok(Text::default()),
                }
            }
            Root::List { meta, args, conn } => {
                let q = self.query(meta, args, conn)?;
                let (b, scoped) =
                    crud::list_statement(meta, self.rc, &q, &conn.columns, conn.with_total);
                let ids = || crud::list_ids_statement(meta, self.rc, &q, &ids_only(meta));
                let objs = conn_objs(conn);
                // A count not found in the page is read apart.
                let last = self.may_end && !q.may_count_apart(conn.with_total);
                let (rows, ahead) = self.level(meta, b, ids, q.rows(), &objs, last).await?;
                let page = crud::list_page(meta, &q, rows, scoped, conn.with_total);
                Ok(self
                    .connections(conn, vec![page], ahead)
                    .await?
                    .pop()
                    .unwrap_or_default())
            }
        }
    }

    /// Reads `b`, the statement of a level of at most `rows` rows whose objects are `objs`,
    /// with what can be read ahead under them, in one round trip; `ids` reads the same rows'
    /// ids alone, for the statements read ahead to find their parents by. When nothing under
    /// them reads again (and `last` allows), the transaction ends in the same round trip.
    async fn level(
        &self,
        meta: &'static EntityMeta,
        b: SqlBuilder,
        ids: impl FnOnce() -> SqlBuilder,
        rows: i64,
        objs: &[&Obj],
        last: bool,
    ) -> Out<(Vec<Row>, Vec<Ahead>)> {
        let mut reads = Vec::new();
        // Only where the level's statement, run again, finds the same rows.
        let ahead = rows <= AHEAD_MAX_ROWS
            && self.reads.one_snapshot()
            && objs.iter().any(|obj| {
                obj.fields
                    .iter()
                    .any(|(_, f)| matches!(f, ObjField::Children(..) | ObjField::Child(..)))
            });
        let plans = match ahead {
            true => {
                let ids = ids();
                objs.iter()
                    .map(|obj| self.plan_ahead(obj, &ids, rows, &mut reads))
                    .collect::<Out<Vec<_>>>()?
            }
            false => Vec::new(),
        };
        reads.insert(0, (meta.name, b));
        let last = last
            && objs
                .iter()
                .enumerate()
                .all(|(k, obj)| complete(obj, plans.get(k)));
        let mut results: Vec<Vec<Row>> = self.reads.read_all(reads, last).await?;
        let own = results.first_mut().map(std::mem::take).unwrap_or_default();
        let rest = results.get_mut(1..).unwrap_or_default();
        // `at` counts from the first read ahead, behind the level's own.
        let ahead = plans.into_iter().map(|p| p.fill(rest)).collect();
        Ok((own, ahead))
    }

    /// The pages of `obj`'s relations, read with `parent` (the statement of `obj`'s rows, at
    /// most `rows` of them) when it reads few enough, and theirs further down; their
    /// statements are appended to `reads`.
    fn plan_ahead(
        &self,
        obj: &Obj,
        parent: &SqlBuilder,
        rows: i64,
        reads: &mut Vec<(&'static str, SqlBuilder)>,
    ) -> Out<AheadPlan> {
        let mut steps = Vec::with_capacity(obj.fields.len());
        for (_, f) in &obj.fields {
            let step = match f {
                _ if rows > AHEAD_MAX_ROWS => None,
                ObjField::Children(link, list) => {
                    let objs = conn_objs(&list.1);
                    Some(self.step(link.target, self.relation(f)?, parent, rows, &objs, reads)?)
                }
                ObjField::Child(link, child) => Some(self.step(
                    link.target,
                    self.relation(f)?,
                    parent,
                    rows,
                    &[child],
                    reads,
                )?),
                _ => None,
            };
            steps.push(step);
        }
        Ok(AheadPlan(steps))
    }

    /// What a relation field reads of its rows' children: the connection's query (`None` for
    /// `hasOne`) and the pages' spec.
    fn relation(&self, f: &ObjField) -> Out<(Option<ListQuery>, Arc<ChildSpec>)> {
        match f {
            ObjField::Children(link, list) => {
                let (args, conn) = list.as_ref();
                let q = self.query(link.target, args, conn)?;
                let spec = crud::child_spec(&q, link.fk, conn.columns.clone(), conn.with_total);
                Ok((Some(q), spec))
            }
            ObjField::Child(link, obj) => {
                let spec = crud::one_child_spec(link.target, link.fk, obj.columns.clone());
                Ok((None, spec))
            }
            _ => Err(GiveUp),
        }
    }

    /// One relation read ahead (`relation`, its query and spec), and what can be read ahead
    /// under it.
    fn step(
        &self,
        meta: &'static EntityMeta,
        relation: (Option<ListQuery>, Arc<ChildSpec>),
        parent: &SqlBuilder,
        rows: i64,
        objs: &[&Obj],
        reads: &mut Vec<(&'static str, SqlBuilder)>,
    ) -> Out<AheadStep> {
        let (query, spec) = relation;
        let b = self
            .loader
            .pages_statement(meta, &spec, Parents::Of(parent));
        let rows = rows.saturating_mul(spec.limit);
        let under = match rows > AHEAD_MAX_ROWS {
            true => Vec::new(),
            false => {
                let lean = spec.ids_only(meta);
                let ids = self
                    .loader
                    .pages_statement(meta, &lean, Parents::Of(parent));
                objs.iter()
                    .map(|obj| self.plan_ahead(obj, &ids, rows, reads))
                    .collect::<Out<Vec<_>>>()?
            }
        };
        reads.push((meta.name, b));
        Ok(AheadStep {
            at: reads.len() - 1,
            query,
            spec,
            under,
        })
    }

    fn query(&self, meta: &'static EntityMeta, args: &Args, conn: &Conn) -> Out<ListQuery> {
        let args = args.read(meta).ok_or(GiveUp)?;
        let mut q = ListQuery::parse(self.rc, self.limits, meta, args)?;
        q.cursors = conn.cursors;
        Ok(q)
    }

    /// The values of `obj` for each of `rows`, in their order; `ahead`, what was read with
    /// the rows.
    fn objects<'s>(
        &'s self,
        obj: &'s Obj,
        rows: &'s [&'s Row],
        mut ahead: Ahead,
    ) -> BoxFuture<'s, Out<Vec<Text>>> {
        async move {
            // Each relation's values for every row, read together with the others'.
            let related = try_join_all(
                obj.fields
                    .iter()
                    .enumerate()
                    .map(|(i, (_, f))| self.related(f, rows, ahead.take(i))),
            )
            .await?;
            let mut related: Vec<std::vec::IntoIter<Text>> =
                related.into_iter().map(Vec::into_iter).collect();
            let mut out = Vec::with_capacity(rows.len());
            // Rows of one object write texts of about one size: each starts with room for
            // the one before it (up to 4 KiB: one long row must not size every other).
            let mut room = 16 * obj.fields.len();
            for row in rows {
                let mut text = Vec::with_capacity(room + room / 4);
                // A missing required value is the executor's error to report.
                obj.write(row, &mut text, |i| {
                    related.get_mut(i).and_then(Iterator::next)
                })
                .map_err(|_| GiveUp)?;
                room = text.len().min(4096);
                out.push(Text(text));
            }
            Ok(out)
        }
        .boxed()
    }

    /// A relation field's value for each of `rows` (empty for a field of the row itself);
    /// `ahead`, its pages if they were read with the rows.
    async fn related(&self, f: &ObjField, rows: &[&Row], ahead: Option<Pages>) -> Out<Vec<Text>> {
        let (query, spec, read) = match (f, ahead) {
            (ObjField::Typename | ObjField::Column(_) | ObjField::Joined(..), _) => {
                return Ok(Vec::new())
            }
            (ObjField::Parent(link, obj), _) => return self.parents(link, obj, rows).await,
            (_, Some(p)) => (p.query, p.spec, Some(p.read)),
            (_, None) => {
                let (query, spec) = self.relation(f)?;
                (query, spec, None)
            }
        };
        match f {
            ObjField::Child(link, obj) => {
                let (mut pages, mut under) = self
                    .children(link.target, &spec, rows, &[obj], read)
                    .await?;
                let under = under.pop().unwrap_or_default();
                let firsts: Vec<Option<Row>> = pages
                    .iter_mut()
                    .map(|p| (!p.is_empty()).then(|| p.swap_remove(0).row))
                    .collect();
                let found: Vec<&Row> = firsts.iter().flatten().collect();
                let mut values = self.objects(obj, &found, under).await?.into_iter();
                Ok(firsts
                    .iter()
                    .map(|r| match r {
                        Some(_) => values.next().unwrap_or_default(),
                        None => Text::default(),
                    })
                    .collect())
            }
            ObjField::Children(link, list) => {
                let conn = &list.1;
                let meta = link.target;
                let q = query.ok_or(GiveUp)?;
                let (pages, under) = self
                    .children(meta, &spec, rows, &conn_objs(conn), read)
                    .await?;
                let pages = rows
                    .iter()
                    .zip(pages)
                    .map(|(row, keyed)| crud::child_page(meta, &q, row.id(), &spec, keyed))
                    .collect();
                self.connections(conn, pages, under).await
            }
            _ => Ok(Vec::new()),
        }
    }

    /// The rows `link` points to from each of `rows`, by id in one statement.
    async fn parents(&self, link: &RelationLink, obj: &Obj, rows: &[&Row]) -> Out<Vec<Text>> {
        let ids: Vec<Option<Uuid>> = rows
            .iter()
            .map(|r| match r.get(link.fk) {
                Value::Uuid(id) => Some(*id),
                _ => None,
            })
            .collect();
        let wanted: Vec<Uuid> = ids.iter().flatten().copied().collect();
        let found: Vec<Row> = if wanted.is_empty() {
            Vec::new()
        } else {
            let by_id = self.loader.rows_by_id(link.target, &obj.columns, wanted);
            by_id.await?.into_values().collect()
        };
        let refs: Vec<&Row> = found.iter().collect();
        let values = self.objects(obj, &refs, Ahead::default()).await?;
        let by_id: HashMap<Uuid, Text> = found.iter().map(Row::id).zip(values).collect();
        Ok(ids
            .iter()
            .map(|id| {
                id.and_then(|id| by_id.get(&id).cloned())
                    .unwrap_or_default()
            })
            .collect())
    }

    /// Each of `rows`' children as `spec` reads them, in one statement (unless `ahead` has
    /// them already), with what is read ahead under their objects `objs`.
    async fn children(
        &self,
        meta: &'static EntityMeta,
        spec: &Arc<ChildSpec>,
        rows: &[&Row],
        objs: &[&Obj],
        ahead: Option<Read>,
    ) -> Out<(Vec<Vec<Keyed>>, Vec<Ahead>)> {
        let parents: Vec<Uuid> = rows.iter().map(|r| r.id()).collect();
        if parents.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let (mut pages, under) = match ahead {
            Some(read) => read,
            None => {
                let most = (parents.len() as i64).saturating_mul(spec.limit);
                let b = self
                    .loader
                    .pages_statement(meta, spec, Parents::Ids(parents.clone()));
                let ids = || {
                    let lean = spec.ids_only(meta);
                    self.loader
                        .pages_statement(meta, &lean, Parents::Ids(parents.clone()))
                };
                let (rows, under) = self.level(meta, b, ids, most, objs, false).await?;
                (by_parent(spec, rows), under)
            }
        };
        // A parent listed twice (reached along two paths) gets a copy of its page.
        let mut left: HashMap<Uuid, usize> = HashMap::new();
        for p in &parents {
            *left.entry(*p).or_default() += 1;
        }
        let pages = parents
            .iter()
            .map(|p| {
                let n = left.entry(*p).or_default();
                *n -= 1;
                if *n == 0 {
                    pages.remove(p).unwrap_or_default()
                } else {
                    pages.get(p).cloned().unwrap_or_default()
                }
            })
            .collect();
        Ok((pages, under))
    }

    /// The values of `conn` for each of `pages`: their nodes' relations read for all pages
    /// at once.
    async fn connections(
        &self,
        conn: &Conn,
        pages: Vec<Page>,
        ahead: Vec<Ahead>,
    ) -> Out<Vec<Text>> {
        let rows: Vec<&Row> = pages
            .iter()
            .flat_map(|p| p.edges.iter().map(|e| &e.node))
            .collect();
        let mut ahead = ahead.into_iter();
        let objs: Vec<(&Obj, Ahead)> = conn_objs(conn)
            .into_iter()
            .map(|obj| (obj, ahead.next().unwrap_or_default()))
            .collect();
        let (nodes, totals) = futures::join!(
            try_join_all(
                objs.into_iter()
                    .map(|(obj, ahead)| self.objects(obj, &rows, ahead))
            ),
            self.totals(conn, &pages)
        );
        let mut nodes: Vec<std::vec::IntoIter<Text>> =
            nodes?.into_iter().map(Vec::into_iter).collect();
        let totals = totals?;
        let mut out = Vec::with_capacity(pages.len());
        for (page, total) in pages.iter().zip(totals) {
            let mut next_obj = nodes.iter_mut();
            let mut text = Vec::with_capacity(64 * conn.fields.len());
            let mut object = ObjectWriter::open(&mut text);
            for (key, f) in &conn.fields {
                let text = object.key(key);
                match f {
                    ConnField::Typename => {
                        write_json_str(text, &format!("{}Connection", conn.meta.name))
                    }
                    ConnField::TotalCount => write_json(text, &total),
                    ConnField::Nodes(_) => {
                        let it = next_obj.next().ok_or(GiveUp)?;
                        write_list(text, it.take(page.edges.len()));
                    }
                    ConnField::Edges(fields) => {
                        edges(text, conn.meta, fields, page, &mut next_obj)?
                    }
                    ConnField::PageInfo(fields) => info(text, fields, page),
                }
            }
            object.close();
            out.push(Text(text));
        }
        Ok(out)
    }

    /// Each page's `totalCount` when selected (0 otherwise): counted by its statement, or
    /// counted apart in one statement for all pages that need it.
    async fn totals(&self, conn: &Conn, pages: &[Page]) -> Out<Vec<i64>> {
        if !conn.with_total {
            return Ok(vec![0; pages.len()]);
        }
        let mut apart: Vec<Uuid> = Vec::new();
        let mut spec = None;
        let mut out = Vec::with_capacity(pages.len());
        for page in pages {
            out.push(match &page.count {
                CountSource::Known(n) => *n,
                CountSource::Filter(f) => {
                    let b = crud::count_statement(page.meta, f);
                    let rows: Vec<CountRow> = self.reads.read(page.meta.name, b).await?;
                    CountRow::total(rows)
                }
                // The pages of one connection share their spec.
                CountSource::Child(c) => {
                    apart.push(c.parent);
                    spec = Some(c.spec.clone());
                    -1
                }
            });
        }
        if let Some(spec) = spec {
            let counts = self.loader.counts_of(conn.meta, &spec, apart).await?;
            let mut parents = pages.iter().filter_map(|p| match &p.count {
                CountSource::Child(c) => Some(c.parent),
                _ => None,
            });
            for n in out.iter_mut().filter(|n| **n < 0) {
                *n = parents
                    .next()
                    .and_then(|p| counts.get(&p).copied())
                    .unwrap_or(0);
            }
        }
        Ok(out)
    }
}

/// Writes a list of values: `[a,b,...]`.
fn write_list(out: &mut Vec<u8>, items: impl Iterator<Item = Text>) {
    out.push(b'[');
    for (n, item) in items.enumerate() {
        if n > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&item.0);
    }
    out.push(b']');
}

/// Writes a page's `edges`, their nodes taken in order from the selections' values.
fn edges(
    out: &mut Vec<u8>,
    meta: &EntityMeta,
    fields: &[(Name, EdgeField)],
    page: &Page,
    objs: &mut std::slice::IterMut<'_, std::vec::IntoIter<Text>>,
) -> Out<()> {
    let mut nodes: Vec<&mut std::vec::IntoIter<Text>> = Vec::new();
    for (_, f) in fields {
        if let EdgeField::Node(_) = f {
            nodes.push(objs.next().ok_or(GiveUp)?);
        }
    }
    out.push(b'[');
    for (n, edge) in page.edges.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        let mut object = ObjectWriter::open(out);
        let mut node = nodes.iter_mut();
        for (key, f) in fields {
            let out = object.key(key);
            match f {
                EdgeField::Typename => write_json_str(out, &format!("{}Edge", meta.name)),
                EdgeField::Cursor => write_json_str(out, &edge.cursor),
                EdgeField::Node(_) => {
                    let text = node.next().and_then(|it| it.next()).ok_or(GiveUp)?;
                    out.extend_from_slice(&text.0);
                }
            }
        }
        object.close();
    }
    out.push(b']');
    Ok(())
}

/// Writes a page's `pageInfo`.
fn info(out: &mut Vec<u8>, fields: &[(Name, InfoField)], page: &Page) {
    let i = &page.info;
    let cursor = |out: &mut Vec<u8>, c: &Option<String>| match c {
        Some(c) => write_json_str(out, c),
        None => out.extend_from_slice(b"null"),
    };
    let mut object = ObjectWriter::open(out);
    for (key, f) in fields {
        let out = object.key(key);
        match f {
            InfoField::Typename => write_json_str(out, "PageInfo"),
            InfoField::HasNextPage => write_json(out, &i.has_next_page),
            InfoField::HasPreviousPage => write_json(out, &i.has_previous_page),
            InfoField::StartCursor => cursor(out, &i.start_cursor),
            InfoField::EndCursor => cursor(out, &i.end_cursor),
        }
    }
    object.close();
}
