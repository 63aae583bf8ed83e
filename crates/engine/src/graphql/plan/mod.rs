//! Planned reads: a query operation made only of the engine's own reads (rows by id, lists,
//! their columns, relations and connections) runs without async-graphql's field-by-field
//! resolution.
//!
//! Resolving a nested page one field at a time costs a future, a map insertion and a
//! downcast per field (~700 of them for 20 threads of 10 posts with their authors): that was
//! most of the gateway's CPU per request. A plan is compiled from the parsed document before
//! execution; async-graphql still parses, checks the limits and validates the document, and
//! then, in [`Planner`]'s `execute` hook, the plan reads the same statements through the
//! same builders (the caller's scope, cursors, sort keys, per-level batching, one session)
//! and writes the response's `data` as JSON text straight from the rows (`Text`): over
//! HTTP that text is the response body's `data` as it is ([`RenderedData`]); other
//! transports get it as values. Anything a plan does not cover — another root or object
//! field, an aggregate, introspection, a directive other than `@skip`/`@include`, one
//! response key given twice, a field that fails — is left to the executor: the plan gives up
//! and async-graphql answers as it always did, errors and their paths included.
//!
//! `GATEWAY_PLANNED_READS=verify` runs both and refuses a request whose answers differ as
//! JSON (the test suite runs so); `off` leaves every operation to the executor.

mod run;

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextExecute};
use async_graphql::parser::types::{
    ExecutableDocument, Field, OperationDefinition, OperationType, Selection, SelectionSet,
};
use async_graphql::{Name, Positioned, Response, Value as G, Variables};

use crate::config::PlannedReads;
use crate::db::value::Value;
use crate::graphql::columns::ColumnSet;
use crate::graphql::crud::{Cursors, ListArgs};
use crate::graphql::filter;
use crate::graphql::meta::{metadata, ColumnMeta, EntityMeta, LinkKind, RelationLink};
use crate::graphql::page::PageArgs;
use crate::graphql::row::{write_graphql_value, write_json_str, Row};

/// A compiled query operation.
pub struct Plan {
    fields: Vec<(Name, Root)>,
    /// No list or relation of the plan has a `where`: all its statements are made of keys,
    /// and run with generic plans ([`crate::db::Plans`]).
    keys_only: bool,
}

/// The plan of a request, attached to its data for [`Planner`].
#[derive(Clone)]
pub struct Planned(pub Arc<Plan>);

enum Root {
    Typename,
    Get {
        meta: &'static EntityMeta,
        id: G,
        obj: Obj,
    },
    List {
        meta: &'static EntityMeta,
        args: Args,
        conn: Conn,
    },
}

/// A list's arguments, as given (read when the plan runs, so that a bad one is refused by
/// the executor with its usual error and path).
#[derive(Clone)]
pub(crate) struct Args {
    filter: Option<G>,
    order: Option<G>,
    page: PageArgs,
}

impl Args {
    fn read(&self, meta: &'static EntityMeta) -> Option<ListArgs> {
        Some(ListArgs {
            filter: match &self.filter {
                Some(w) => Some(filter::where_filter(meta, w, "where").ok()?),
                None => None,
            },
            order: filter::order_by(meta, self.order.as_ref()).ok()?,
            page: self.page.clone(),
        })
    }
}

/// The selection of an entity's object.
pub(crate) struct Obj {
    pub(crate) meta: &'static EntityMeta,
    pub(crate) fields: Vec<(Name, ObjField)>,
    /// The columns its fields read (with the id, and the references of selected parents).
    columns: ColumnSet,
}

impl Obj {
    /// Writes the object of `row` as JSON text: its columns, `__typename` and joined parents,
    /// and `related(i)` for the `i`-th field otherwise (a relation, read apart). `Err(key)`
    /// for the field without a value (what was written is then left unfinished): a required
    /// column left empty, or a relation `related` has none for.
    pub(crate) fn write<'o>(
        &'o self,
        row: &Row,
        out: &mut Vec<u8>,
        mut related: impl FnMut(usize) -> Option<Text>,
    ) -> Result<(), &'o Name> {
        let mut object = ObjectWriter::open(out);
        for (i, (key, f)) in self.fields.iter().enumerate() {
            let out = object.key(key);
            match f {
                ObjField::Typename => write_json_str(out, self.meta.name),
                ObjField::Column(col) => match row.get(col) {
                    Value::Null if !col.nullable => return Err(key),
                    v => write_graphql_value(out, col, v),
                },
                // None the caller may read reads as null, as from the parents' loader.
                ObjField::Joined(at, parent) => match row.joined(*at) {
                    Some(p) => parent.write(p, out, no_relations)?,
                    None => out.extend_from_slice(b"null"),
                },
                _ => out.extend_from_slice(&related(i).ok_or(key)?.0),
            }
        }
        object.close();
        Ok(())
    }
}

/// For an object without relations read apart (a joined parent).
fn no_relations(_: usize) -> Option<Text> {
    None
}

/// The JSON text of one value of a response: what async-graphql's value would serialize to.
/// Plans write their answers as text: building the values (a map per object, a string per
/// field) and then serializing them was a third of the gateway's CPU on nested reads.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Text(pub(crate) Vec<u8>);

impl Default for Text {
    fn default() -> Self {
        Text(b"null".to_vec())
    }
}

/// Writes a JSON object member by member: `{`, `"key":` before each value (with the commas
/// between), and `}` at [`ObjectWriter::close`].
pub(crate) struct ObjectWriter<'w> {
    out: &'w mut Vec<u8>,
    empty: bool,
}

impl<'w> ObjectWriter<'w> {
    pub(crate) fn open(out: &'w mut Vec<u8>) -> Self {
        out.push(b'{');
        ObjectWriter { out, empty: true }
    }

    /// Writes `"key":` (response keys are GraphQL names; escaped all the same) and gives the
    /// buffer its value goes to.
    pub(crate) fn key(&mut self, key: &str) -> &mut Vec<u8> {
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        write_json_str(self.out, key);
        self.out.push(b':');
        self.out
    }

    pub(crate) fn close(self) {
        self.out.push(b'}');
    }
}

/// A plan's `data` as JSON text, handed to the transport past async-graphql's response
/// (whose `data` is then null): attached to requests by [`crate::graphql::GatewaySchema::execute_rendered`].
#[derive(Clone, Default)]
pub struct RenderedData(Arc<std::sync::Mutex<Option<Vec<u8>>>>);

impl RenderedData {
    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Vec<u8>>> {
        // Nothing panics while holding it; a poisoned slot still holds whole text.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn set(&self, text: Vec<u8>) {
        *self.slot() = Some(text);
    }

    pub(crate) fn take(&self) -> Option<Vec<u8>> {
        self.slot().take()
    }
}

/// The values of JSON text (a plan's answer for a transport that needs values).
pub(crate) fn values_of(text: &[u8]) -> Option<G> {
    let json: serde_json::Value = serde_json::from_slice(text).ok()?;
    G::from_json(json).ok()
}

pub(crate) enum ObjField {
    Typename,
    Column(&'static ColumnMeta),
    /// A `belongsTo` parent read with the row (the entity's `at`-th link).
    Joined(usize, Obj),
    Parent(&'static RelationLink, Obj),
    Child(&'static RelationLink, Obj),
    Children(&'static RelationLink, Box<(Args, Conn)>),
}

/// The selection of a connection of `meta` rows.
pub(crate) struct Conn {
    meta: &'static EntityMeta,
    fields: Vec<(Name, ConnField)>,
    /// The columns its nodes read.
    columns: ColumnSet,
    with_total: bool,
    /// The cursors its selection reads.
    cursors: Cursors,
}

enum ConnField {
    Typename,
    TotalCount,
    Edges(Vec<(Name, EdgeField)>),
    Nodes(Obj),
    PageInfo(Vec<(Name, InfoField)>),
}

enum EdgeField {
    Typename,
    Cursor,
    Node(Obj),
}

#[derive(Clone, Copy)]
enum InfoField {
    Typename,
    HasNextPage,
    HasPreviousPage,
    StartCursor,
    EndCursor,
}

/// The plan of the request's operation, when it is a query made only of what plans cover.
pub fn compile(
    doc: &ExecutableDocument,
    name: Option<&str>,
    variables: &Variables,
) -> Option<Plan> {
    let op = crate::graphql::plannable_operation(doc, name, OperationType::Query)?;
    let c = Compiler::new(doc, &op.node, variables);
    let mut fields = Vec::new();
    for (key, f) in c.collect(&op.node.selection_set.node, "Query")? {
        let root = match f.name.node.as_str() {
            "__typename" => Root::Typename,
            name => c.root(name, f)?,
        };
        fields.push((key, root));
    }
    Some(Plan {
        fields,
        keys_only: !c.filtered.get(),
    })
}

pub(crate) struct Compiler<'d> {
    pub(crate) doc: &'d ExecutableDocument,
    pub(crate) op: &'d OperationDefinition,
    pub(crate) variables: &'d Variables,
    /// Whether a `where` was read.
    pub(crate) filtered: Cell<bool>,
}

impl<'d> Compiler<'d> {
    pub(crate) fn new(
        doc: &'d ExecutableDocument,
        op: &'d OperationDefinition,
        variables: &'d Variables,
    ) -> Self {
        Compiler {
            doc,
            op,
            variables,
            filtered: Cell::new(false),
        }
    }

    /// An argument's value with the variables in it, as the executor reads it; `None` when
    /// absent or null.
    pub(crate) fn arg(&self, f: &Field, name: &str) -> Option<Option<G>> {
        let Some(v) = f.get_argument(name) else {
            return Some(None);
        };
        let v = self.value(v)?;
        Some((v != G::Null).then_some(v))
    }

    /// A value of the document with the variables in it (given, or their defaults).
    fn value(&self, v: &Positioned<async_graphql_value::Value>) -> Option<G> {
        v.node
            .clone()
            .into_const_with(|var| {
                self.op
                    .variable_definitions
                    .iter()
                    .find(|d| d.node.name.node == var)
                    .and_then(|d| self.variables.get(&var).or_else(|| d.node.default_value()))
                    .cloned()
                    .ok_or(())
            })
            .ok()
    }

    fn int(&self, f: &Field, name: &str) -> Option<Option<i32>> {
        Some(match self.arg(f, name)? {
            Some(G::Number(n)) => n.as_i64().and_then(|n| i32::try_from(n).ok()),
            _ => None,
        })
    }

    fn string(&self, f: &Field, name: &str) -> Option<Option<String>> {
        Some(match self.arg(f, name)? {
            Some(G::String(s)) => Some(s),
            _ => None,
        })
    }

    fn args(&self, f: &Field) -> Option<Args> {
        let filter = self.arg(f, "where")?;
        if filter.is_some() {
            self.filtered.set(true);
        }
        Some(Args {
            filter,
            order: self.arg(f, "orderBy")?,
            page: PageArgs {
                first: self.int(f, "first")?,
                after: self.string(f, "after")?,
                last: self.int(f, "last")?,
                before: self.string(f, "before")?,
            },
        })
    }

    fn root(&self, name: &str, f: &'d Field) -> Option<Root> {
        let meta = metadata()
            .entities
            .iter()
            .copied()
            .find(|m| m.singular == name || m.plural == name)?;
        if meta.singular == name {
            if f.arguments.len() != 1 {
                return None;
            }
            return Some(Root::Get {
                meta,
                id: self.arg(f, "id")??,
                obj: self.obj(meta, &f.selection_set.node)?,
            });
        }
        Some(Root::List {
            meta,
            args: self.args(f)?,
            conn: self.conn(meta, &f.selection_set.node)?,
        })
    }

    /// Whether `@skip`/`@include` leave a selection in; `None` for any other directive.
    fn included(
        &self,
        directives: &[Positioned<async_graphql::parser::types::Directive>],
    ) -> Option<bool> {
        let mut keep = true;
        for d in directives {
            let cond = match self.value(d.node.get_argument("if")?)? {
                G::Boolean(b) => b,
                _ => return None,
            };
            match d.node.name.node.as_str() {
                "skip" => keep &= !cond,
                "include" => keep &= cond,
                _ => return None,
            }
        }
        Some(keep)
    }

    /// The fields of a selection on `ty`, fragments spread, skipped ones left out; `None`
    /// when one response key is given twice (the executor merges those) or a fragment is on
    /// another type.
    pub(crate) fn collect(
        &self,
        set: &'d SelectionSet,
        ty: &str,
    ) -> Option<Vec<(Name, &'d Field)>> {
        let mut out: Vec<(Name, &'d Field)> = Vec::new();
        self.collect_into(set, ty, &mut out, 0)?;
        Some(out)
    }

    fn collect_into(
        &self,
        set: &'d SelectionSet,
        ty: &str,
        out: &mut Vec<(Name, &'d Field)>,
        depth: usize,
    ) -> Option<()> {
        if depth > 16 {
            return None;
        }
        for s in &set.items {
            match &s.node {
                Selection::Field(f) => {
                    if !self.included(&f.node.directives)? {
                        continue;
                    }
                    let key = f.node.response_key().node.clone();
                    if out.iter().any(|(k, _)| *k == key) {
                        return None;
                    }
                    out.push((key, &f.node));
                }
                Selection::FragmentSpread(spread) => {
                    if !self.included(&spread.node.directives)? {
                        continue;
                    }
                    let frag = self.doc.fragments.get(&spread.node.fragment_name.node)?;
                    if frag.node.type_condition.node.on.node != ty
                        || !frag.node.directives.is_empty()
                    {
                        return None;
                    }
                    self.collect_into(&frag.node.selection_set.node, ty, out, depth + 1)?;
                }
                Selection::InlineFragment(inline) => {
                    if !self.included(&inline.node.directives)? {
                        continue;
                    }
                    if inline
                        .node
                        .type_condition
                        .as_ref()
                        .is_some_and(|t| t.node.on.node != ty)
                    {
                        return None;
                    }
                    self.collect_into(&inline.node.selection_set.node, ty, out, depth + 1)?;
                }
            }
        }
        Some(())
    }

    pub(crate) fn obj(&self, meta: &'static EntityMeta, set: &'d SelectionSet) -> Option<Obj> {
        let mut columns = ColumnSet::empty(meta);
        columns.insert(meta.id_column());
        let mut fields = Vec::new();
        for (key, f) in self.collect(set, meta.name)? {
            let name = f.name.node.as_str();
            let field = if name == "__typename" {
                ObjField::Typename
            } else if let Some(col) = meta.columns.iter().find(|c| c.field == name) {
                columns.insert(col);
                ObjField::Column(col)
            } else {
                let links = metadata().links(meta);
                let at = links.iter().position(|l| l.name == name)?;
                let link = links.get(at)?;
                let set = &f.selection_set.node;
                match link.kind {
                    LinkKind::Parent => {
                        columns.insert(link.fk);
                        let parent = self.obj(link.target, set)?;
                        // A parent of columns alone is read in its child's statement; one
                        // with relations of its own, by id, a level of its own.
                        if parent
                            .fields
                            .iter()
                            .all(|(_, f)| matches!(f, ObjField::Typename | ObjField::Column(_)))
                        {
                            columns.join(at, &parent.columns);
                            ObjField::Joined(at, parent)
                        } else {
                            ObjField::Parent(link, parent)
                        }
                    }
                    LinkKind::Child => ObjField::Child(link, self.obj(link.target, set)?),
                    LinkKind::Children => ObjField::Children(
                        link,
                        Box::new((self.args(f)?, self.conn(link.target, set)?)),
                    ),
                }
            };
            fields.push((key, field));
        }
        Some(Obj {
            meta,
            fields,
            columns,
        })
    }

    fn conn(&self, meta: &'static EntityMeta, set: &'d SelectionSet) -> Option<Conn> {
        let mut columns = ColumnSet::empty(meta);
        columns.insert(meta.id_column());
        let mut with_total = false;
        let mut cursors = Cursors::No;
        let mut fields = Vec::new();
        let conn_type = format!("{}Connection", meta.name);
        for (key, f) in self.collect(set, &conn_type)? {
            let set = &f.selection_set.node;
            let field = match f.name.node.as_str() {
                "__typename" => ConnField::Typename,
                "totalCount" => {
                    with_total = true;
                    ConnField::TotalCount
                }
                "nodes" => {
                    let obj = self.obj(meta, set)?;
                    columns = ColumnSet::union_of(meta, [&columns, &obj.columns].into_iter());
                    ConnField::Nodes(obj)
                }
                "edges" => {
                    let mut edge = Vec::new();
                    for (key, e) in self.collect(set, &format!("{}Edge", meta.name))? {
                        let field = match e.name.node.as_str() {
                            "__typename" => EdgeField::Typename,
                            "cursor" => {
                                cursors = Cursors::Every;
                                EdgeField::Cursor
                            }
                            "node" => {
                                let obj = self.obj(meta, &e.selection_set.node)?;
                                columns =
                                    ColumnSet::union_of(meta, [&columns, &obj.columns].into_iter());
                                EdgeField::Node(obj)
                            }
                            _ => return None,
                        };
                        edge.push((key, field));
                    }
                    ConnField::Edges(edge)
                }
                "pageInfo" => {
                    let mut info = Vec::new();
                    for (key, i) in self.collect(set, "PageInfo")? {
                        let field = match i.name.node.as_str() {
                            "__typename" => InfoField::Typename,
                            "hasNextPage" => InfoField::HasNextPage,
                            "hasPreviousPage" => InfoField::HasPreviousPage,
                            "startCursor" | "endCursor" => {
                                if cursors == Cursors::No {
                                    cursors = Cursors::Ends;
                                }
                                if i.name.node == "startCursor" {
                                    InfoField::StartCursor
                                } else {
                                    InfoField::EndCursor
                                }
                            }
                            _ => return None,
                        };
                        info.push((key, field));
                    }
                    ConnField::PageInfo(info)
                }
                _ => return None,
            };
            fields.push((key, field));
        }
        Some(Conn {
            meta,
            fields,
            columns,
            with_total,
            cursors,
        })
    }
}

/// How many operations plans answered, and how many they left to the executor after
/// compiling (a field that failed, a bad argument).
#[derive(Default)]
pub struct PlanCounts {
    pub planned: AtomicU64,
    /// Of the operations planned, those run with generic plans ([`Plan::keys_only`]).
    pub generic: AtomicU64,
    pub given_up: AtomicU64,
}

/// The schema's extension that runs planned operations (see the module documentation).
pub struct Planner {
    pub mode: PlannedReads,
    pub counts: Arc<PlanCounts>,
}

impl ExtensionFactory for Planner {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(PlannerExtension {
            mode: self.mode,
            counts: self.counts.clone(),
        })
    }
}

struct PlannerExtension {
    mode: PlannedReads,
    counts: Arc<PlanCounts>,
}

#[async_graphql::async_trait::async_trait]
impl Extension for PlannerExtension {
    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let Some(Planned(plan)) = ctx.data_opt::<Planned>() else {
            return next.run(ctx, operation_name).await;
        };
        let alone = self.mode != PlannedReads::Verify;
        let Some(data) = run::run(plan, ctx, alone).await else {
            self.counts.given_up.fetch_add(1, Ordering::Relaxed);
            return next.run(ctx, operation_name).await;
        };
        self.counts.planned.fetch_add(1, Ordering::Relaxed);
        if plan.keys_only {
            self.counts.generic.fetch_add(1, Ordering::Relaxed);
        }
        if self.mode != PlannedReads::Verify {
            if let Some(slot) = ctx.data_opt::<RenderedData>() {
                slot.set(data);
                return Response::new(G::Null);
            }
            if let Some(values) = values_of(&data) {
                return Response::new(values);
            }
            return next.run(ctx, operation_name).await;
        }
        let executed = next.run(ctx, operation_name).await;
        // As JSON, whose objects compare without their keys' order: the executor's root
        // fields do not always come in the document's order (the plan's do).
        let planned = serde_json::from_slice::<serde_json::Value>(&data).ok();
        if executed.errors.is_empty() && planned == serde_json::to_value(&executed.data).ok() {
            return executed;
        }
        tracing::error!(
            planned = %String::from_utf8_lossy(&data),
            executed = %executed.data,
            "a planned read answered differently from the executor"
        );
        Response::from_errors(vec![crate::error::server_error(
            crate::error::ApiError::internal("a planned read answered differently"),
        )])
    }
}
