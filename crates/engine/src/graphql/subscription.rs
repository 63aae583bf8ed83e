//! Planned subscriptions: a subscription made of one `xChanged` root field selecting only
//! `__typename`, `op`, `cursor` and the columns of `node`/`previous` runs without
//! async-graphql's per-event resolution, and each event is rendered once for every
//! subscriber of the same plan.
//!
//! Through the executor, each subscription keeps its own query environment (the parsed
//! document, its context) for its whole life and resolves every event field by field into its
//! own response, serialized once per subscriber: 10,000 subscribers of one feed paid that
//! 10,000 times per change. Here the document is compiled once per text, operation name and
//! variables ([`SubPlan`], interned while subscribers hold it), async-graphql still validates
//! it (a valid subscription is what its `execute` refuses with "Subscriptions are not supported
//! on this transport."; anything else is answered by the executor as before), and the
//! subscription is the feed's stream of shared changes: the first subscriber of a plan to
//! take a change renders its `payload` (`{"data":{...}}`, the values built as the executor
//! builds them and serialized by the same serializer), the memo on the change hands the
//! others the same bytes.
//!
//! Whatever the plan does not cover stays with the executor: another root field, several of
//! them, a directive on the root field, a relation or extension field under `node`, one
//! response key given twice. So does a subscription whose start fails (a bad `where` or
//! `after`, a pruned cursor, a quota, FORBIDDEN): it is started anew through the executor,
//! which answers with its usual errors.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use async_graphql::parser::types::{ExecutableDocument, OperationType, Selection};
use async_graphql::{
    Name, PathSegment, Pos, Request, Response, ServerError, Value as G, Variables,
};

use crate::graphql::meta::{metadata, EntityMeta};
use crate::graphql::plan::{Compiler, Obj, ObjField, ObjectWriter, Text};
use crate::graphql::row::{write_json_str, Row};
use crate::live::Change;

/// What async-graphql's `execute` answers a valid subscription with.
pub(crate) const NOT_ON_THIS_TRANSPORT: &str = "Subscriptions are not supported on this transport.";

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain data: usable after a panic elsewhere.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// How many subscriptions ran planned, and what their events cost.
#[derive(Default)]
pub struct SubscriptionCounts {
    /// Subscriptions started on a plan.
    pub planned: AtomicU64,
    /// Events rendered (once per plan and event).
    pub renders: AtomicU64,
    /// Events delivered by planned subscriptions (one per subscriber and event).
    pub deliveries: Tally,
}

/// A counter every worker adds to at every delivery: a cache line per thread (by turns), not
/// one line the cores hand back and forth 10,000 times per change.
#[derive(Default)]
pub struct Tally([TallySlot; 8]);

#[derive(Default)]
#[repr(align(128))]
struct TallySlot(AtomicU64);

static NEXT_SLOT: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static SLOT: usize = (NEXT_SLOT.fetch_add(1, Ordering::Relaxed) % 8) as usize;
}

impl Tally {
    pub fn add(&self, n: u64) {
        SLOT.with(|&i| self.0[i].0.fetch_add(n, Ordering::Relaxed));
    }

    pub fn total(&self) -> u64 {
        self.0.iter().map(|s| s.0.load(Ordering::Relaxed)).sum()
    }
}

/// One event as a plan renders it: the response serialized.
pub struct Rendered {
    /// `{"data":{...}}`: a `next` message's `payload`.
    pub payload: Box<str>,
}

/// The renders of one change, by plan. The first plan's is read without a lock: 10,000
/// subscribers of one plan look it up from both cores.
#[derive(Default)]
pub struct Renders {
    first: OnceLock<(u64, Arc<Rendered>)>,
    /// Other plans' renders; every render is made under this lock.
    more: Mutex<Vec<(u64, Arc<Rendered>)>>,
}

impl Renders {
    fn first_of(&self, plan: u64) -> Option<&Arc<Rendered>> {
        self.first
            .get()
            .filter(|(id, _)| *id == plan)
            .map(|(_, r)| r)
    }
}

/// One step of a subscription's stream.
pub enum Delivery {
    /// An answer of the executor (every operation it runs), or an error of a planned one.
    Response(Box<Response>),
    /// An event of a planned subscription, rendered once for every subscriber of its plan.
    Next(Arc<Rendered>),
}

impl Delivery {
    pub fn into_response(self) -> Response {
        match self {
            Delivery::Response(r) => *r,
            // Values only for the transports that serialize them themselves.
            Delivery::Next(r) => serde_json::from_str(&r.payload).unwrap_or_default(),
        }
    }
}

/// A planned subscription's stream: its changes, each delivered with its plan's render,
/// ended (as the executor ends a subscription) after its first error.
pub(crate) struct Planned {
    pub(crate) changes: crate::live::Changes,
    pub(crate) plan: Arc<SubPlan>,
    pub(crate) counts: Arc<SubscriptionCounts>,
    pub(crate) ended: bool,
}

impl futures::Stream for Planned {
    type Item = Delivery;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Delivery>> {
        use futures::StreamExt;
        use std::task::Poll;
        let this = &mut *self;
        if this.ended {
            return Poll::Ready(None);
        }
        let delivery = match this.changes.poll_next_unpin(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Ready(Some(Ok(change))) => this.plan.deliver(&change, &this.counts),
            Poll::Ready(Some(Err(e))) => this.plan.error(e),
        };
        this.ended = matches!(delivery, Delivery::Response(_));
        Poll::Ready(Some(delivery))
    }
}

/// A field of an `XChange` selection.
enum ChangeField {
    Typename,
    Op,
    Cursor,
    Node(Obj),
    Previous(Obj),
}

/// A compiled subscription.
pub struct SubPlan {
    /// Tells the renders of plans apart (never reused, unlike an address).
    id: u64,
    pub(crate) meta: &'static EntityMeta,
    /// The root field's response key and position (errors carry both).
    key: Name,
    pos: Pos,
    pub(crate) filter: Option<G>,
    pub(crate) ops: Option<G>,
    pub(crate) after: Option<G>,
    fields: Vec<(Name, ChangeField)>,
    /// Where it is interned, under which key.
    home: Weak<Plans>,
    text: String,
}

impl Drop for SubPlan {
    fn drop(&mut self) {
        let Some(home) = self.home.upgrade() else {
            return;
        };
        let mut map = lock(&home.map);
        if map.get(&self.text).is_some_and(|w| w.strong_count() == 0) {
            map.remove(&self.text);
        }
    }
}

/// The plans subscribers hold, by document text, operation name and variables.
#[derive(Default)]
pub struct Plans {
    map: Mutex<HashMap<String, Weak<SubPlan>>>,
    next_id: AtomicU64,
}

impl Plans {
    /// The key of a request's plan.
    pub(crate) fn key(request: &Request) -> String {
        let vars = serde_json::to_string(&request.variables).unwrap_or_default();
        format!(
            "{}\0{}\0{}\0{:?}",
            request.query,
            request.operation_name.as_deref().unwrap_or(""),
            vars,
            request.introspection_mode
        )
    }

    /// The plan interned under `key`, while some subscriber holds it.
    pub(crate) fn get(&self, key: &str) -> Option<Arc<SubPlan>> {
        lock(&self.map).get(key).and_then(Weak::upgrade)
    }

    /// Interns a plan compiled (and validated) under `key`.
    pub(crate) fn intern(self: &Arc<Self>, key: String, plan: Compiled) -> Arc<SubPlan> {
        let mut map = lock(&self.map);
        if let Some(p) = map.get(&key).and_then(Weak::upgrade) {
            return p;
        }
        let plan = Arc::new(SubPlan {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            meta: plan.meta,
            key: plan.key,
            pos: plan.pos,
            filter: plan.filter,
            ops: plan.ops,
            after: plan.after,
            fields: plan.fields,
            home: Arc::downgrade(self),
            text: key.clone(),
        });
        map.insert(key, Arc::downgrade(&plan));
        plan
    }

    /// How many plans are interned (for tests).
    pub fn len(&self) -> usize {
        lock(&self.map).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A plan before it is interned.
pub(crate) struct Compiled {
    meta: &'static EntityMeta,
    key: Name,
    pos: Pos,
    filter: Option<G>,
    ops: Option<G>,
    after: Option<G>,
    fields: Vec<(Name, ChangeField)>,
}

/// The entity whose change subscription the root field `name` is, when it is the engine's
/// (`SubscriptionRoot.<singular>Changed: <Entity>Change!`).
fn changed_entity(
    registry: &async_graphql::registry::Registry,
    name: &str,
) -> Option<&'static EntityMeta> {
    let meta = metadata()
        .entities
        .iter()
        .copied()
        .find(|m| name.strip_suffix("Changed") == Some(m.singular))?;
    let root = registry.types.get(registry.subscription_type.as_deref()?)?;
    let field = root.field_by_name(name)?;
    (field.ty == format!("{}Change!", meta.name)).then_some(meta)
}

/// The plan of a subscription operation covered by plans.
pub(crate) fn compile(
    registry: &async_graphql::registry::Registry,
    doc: &ExecutableDocument,
    name: Option<&str>,
    variables: &Variables,
) -> Option<Compiled> {
    let op = crate::graphql::plannable_operation(doc, name, OperationType::Subscription)?;
    // The executor starts one stream per field written at the root (fragments and
    // directives there are not looked at): exactly one, as written, plans cover.
    let [root] = op.node.selection_set.node.items.as_slice() else {
        return None;
    };
    let Selection::Field(root) = &root.node else {
        return None;
    };
    let f = &root.node;
    if !f.directives.is_empty() {
        return None;
    }
    let meta = changed_entity(registry, f.name.node.as_str())?;
    let c = Compiler::new(doc, &op.node, variables);
    if f.arguments
        .iter()
        .any(|(n, _)| !matches!(n.node.as_str(), "where" | "ops" | "after"))
    {
        return None;
    }
    let mut fields = Vec::new();
    let change = format!("{}Change", meta.name);
    for (key, f) in c.collect(&f.selection_set.node, &change)? {
        let set = &f.selection_set.node;
        let field = match f.name.node.as_str() {
            "__typename" => ChangeField::Typename,
            "op" => ChangeField::Op,
            "cursor" => ChangeField::Cursor,
            "node" => ChangeField::Node(columns_only(c.obj(meta, set)?)?),
            "previous" => ChangeField::Previous(columns_only(c.obj(meta, set)?)?),
            _ => return None,
        };
        fields.push((key, field));
    }
    Some(Compiled {
        meta,
        key: f.response_key().node.clone(),
        pos: root.pos,
        filter: c.arg(f, "where")?,
        ops: c.arg(f, "ops")?,
        after: c.arg(f, "after")?,
        fields,
    })
}

/// `obj`, when it selects only the row's own columns and `__typename`.
fn columns_only(obj: Obj) -> Option<Obj> {
    obj.fields
        .iter()
        .all(|(_, f)| matches!(f, ObjField::Typename | ObjField::Column(_)))
        .then_some(obj)
}

/// A non-null column without a value: the executor's error for it.
struct Missing(Vec<PathSegment>);

impl SubPlan {
    /// The delivery of `change`: its render for this plan, made by the first subscriber to
    /// ask and shared by the others.
    pub fn deliver(&self, change: &Change, counts: &SubscriptionCounts) -> Delivery {
        counts.deliveries.add(1);
        let renders = &change.renders;
        if let Some(r) = renders.first_of(self.id) {
            return Delivery::Next(r.clone());
        }
        let mut more = lock(&renders.more);
        // Rendered by another subscriber while this one waited for the lock?
        if let Some(r) = renders.first_of(self.id) {
            return Delivery::Next(r.clone());
        }
        if let Some((_, r)) = more.iter().find(|(id, _)| *id == self.id) {
            return Delivery::Next(r.clone());
        }
        match self.render(change) {
            Ok(r) => {
                counts.renders.fetch_add(1, Ordering::Relaxed);
                let r = Arc::new(r);
                if renders.first.set((self.id, r.clone())).is_err() {
                    more.push((self.id, r.clone()));
                }
                Delivery::Next(r)
            }
            Err(Missing(path)) => {
                let mut e = ServerError::new(
                    "internal: non-null types require a return value",
                    Some(self.pos),
                );
                e.path = path;
                Delivery::Response(Box::new(Response::from_errors(vec![e])))
            }
        }
    }

    /// An error of the subscription's stream (a gap read that failed), as the executor
    /// reports it: at the root field, the stream ending with it.
    pub fn error(&self, e: async_graphql::Error) -> Delivery {
        let mut e = e.into_server_error(self.pos);
        e.path = vec![PathSegment::Field(self.key.to_string())];
        Delivery::Response(Box::new(Response::from_errors(vec![e])))
    }

    fn render(&self, change: &Change) -> Result<Rendered, Missing> {
        let mut out = Vec::with_capacity(256);
        let mut response = ObjectWriter::open(&mut out);
        let mut data = ObjectWriter::open(response.key("data"));
        let mut object = ObjectWriter::open(data.key(&self.key));
        for (key, f) in &self.fields {
            let out = object.key(key);
            match f {
                ChangeField::Typename => write_json_str(out, &format!("{}Change", self.meta.name)),
                ChangeField::Op => write_json_str(out, change.op.as_str()),
                ChangeField::Cursor => write_json_str(out, change.cursor.as_ref()),
                ChangeField::Node(o) => self.row(o, &change.node, key, out)?,
                ChangeField::Previous(o) => match &change.previous {
                    Some(p) => self.row(o, p, key, out)?,
                    None => out.extend_from_slice(b"null"),
                },
            }
        }
        object.close();
        data.close();
        response.close();
        let payload = match String::from_utf8(out) {
            Ok(text) => text,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        };
        Ok(Rendered {
            payload: payload.into_boxed_str(),
        })
    }

    fn row(&self, o: &Obj, row: &Row, at: &Name, out: &mut Vec<u8>) -> Result<(), Missing> {
        // `columns_only` left nothing but columns and `__typename`.
        o.write(row, out, |_| Some(Text::default())).map_err(|key| {
            Missing(vec![
                PathSegment::Field(self.key.to_string()),
                PathSegment::Field(at.to_string()),
                PathSegment::Field(key.to_string()),
            ])
        })
    }
}
