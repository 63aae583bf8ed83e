//! One subscription: the change events of one entity that its subscriber may read and asked
//! for, in outbox order, from its `after` cursor (or from the moment it starts) on.
//!
//! A subscription holds its position in the outbox and a place in the feed of its statement
//! (see `feed`): the filter is evaluated by PostgreSQL over the event's row, once per feed.
//! Whatever the feed cannot hand it (events before it joined, chunks dropped while it was
//! slow) it reads from the outbox itself, so a reconnecting client resumes exactly where its
//! last cursor points.

use std::collections::VecDeque;
use std::sync::Arc;

use async_graphql::Context;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use diesel::sql_types::BigInt;
use diesel_async::RunQueryDsl;
use futures::stream::Stream;
use futures::FutureExt;

use crate::caller::RequestContext;
use crate::db::sql::{Filter, SqlBuilder};
use crate::db::value::Value;
use crate::db::Db;
use crate::error::{ApiError, GqlResult};
use crate::graphql::acl::{self, Grant, Op};
use crate::graphql::meta::{ColumnType, EntityMeta};
use crate::graphql::row::Row;
use crate::live::feed::{self, Chunk, Feed};
use crate::live::hub::Hub;
use crate::live::outbox::ChangeOp;
use crate::live::quota::{QuotaSlot, SubscriptionQuota};

/// Events read from the outbox per statement.
const CHUNK: i64 = 100;

/// One change as a subscriber receives it; shared by every subscriber of a feed (copies are
/// reference counts).
#[derive(Clone)]
pub struct Change {
    pub op: ChangeOp,
    /// The row after the change; on delete, the row as it was.
    pub node: Arc<Row>,
    /// The row before an update, when the subscriber could read it then too.
    pub previous: Option<Arc<Row>>,
    pub cursor: Arc<str>,
    /// What planned subscriptions rendered of it, shared by every subscriber of one plan
    /// (see `graphql::subscription`).
    pub(crate) renders: Arc<crate::graphql::subscription::Renders>,
}

pub fn encode_cursor(seq: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("change:{seq}"))
}

fn decode_cursor(c: &str) -> Result<i64, ApiError> {
    URL_SAFE_NO_PAD
        .decode(c.as_bytes())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("change:").and_then(|n| n.parse().ok()))
        .filter(|n: &i64| *n >= 0)
        .ok_or_else(|| ApiError::bad_input("after", "after is not a change cursor"))
}

/// A row of an event query: the entity row, then its event's `__seq`, `__op` and `__prev`
/// (which side of the change it is).
struct EventRow {
    row: Row,
    seq: i64,
    op: String,
    previous: bool,
}

impl EventRow {
    fn of(mut row: Row) -> Option<EventRow> {
        let mut extra = std::mem::take(&mut row.extra).into_iter();
        match (extra.next(), extra.next(), extra.next()) {
            (Some(Value::BigInt(seq)), Some(Value::Text(op)), Some(Value::Bool(previous))) => {
                Some(EventRow {
                    row,
                    seq,
                    op,
                    previous,
                })
            }
            _ => None,
        }
    }
}

/// What one statement reads: the events of `E` in the caller's tenant that the caller may
/// read (`scope`, on the new row) and asked for (`where` on either side, and `ops`).
pub struct Reader {
    meta: &'static EntityMeta,
    db: Db,
    rc: RequestContext,
    scope: Filter,
    filter: Filter,
    ops: Vec<ChangeOp>,
}

fn populated(b: &mut SqlBuilder, table: &str, json: &str, cond: &Filter) {
    b.push(&format!(
        "EXISTS (SELECT 1 FROM jsonb_populate_record(NULL::\"{table}\", {json}) t WHERE "
    ));
    b.filter(cond);
    b.push(")");
}

impl Reader {
    pub fn tenant(&self) -> uuid::Uuid {
        self.rc.tenant_id
    }

    pub fn entity(&self) -> &'static str {
        self.meta.name
    }

    /// Identifies the statement: readers with equal fingerprints read the same events.
    /// Everything a reader's results depend on is in the statement (the tenant is a bind
    /// value, the caller's identity is in `scope`), and `Db::read_in` sets only the tenant.
    pub fn fingerprint(&self) -> String {
        self.query(0, 0).fingerprint()
    }

    /// The statement reading the next events in `(last, upto]`.
    fn query(&self, last: i64, upto: i64) -> SqlBuilder {
        let meta = self.meta;
        let table = meta.table;
        let mut b = SqlBuilder::new("WITH hit AS (SELECT e.seq, e.op, e.node, e.previous FROM change_events e WHERE e.seq > ");
        b.bind(Value::BigInt(last), ColumnType::BigInt, false);
        b.push(" AND e.seq <= ");
        b.bind(Value::BigInt(upto), ColumnType::BigInt, false);
        b.push(" AND e.entity = ");
        b.bind(Value::Text(meta.name.to_string()), ColumnType::Text, false);
        b.push(" AND (e.tenant_id = ");
        b.bind(Value::Uuid(self.rc.tenant_id), ColumnType::Uuid, false);
        b.push(" OR e.tenant_id IS NULL) AND e.op = ANY(");
        let ops: Vec<String> = self.ops.iter().map(|o| o.as_str().to_string()).collect();
        b.bind(Value::TextList(ops), ColumnType::Text, true);
        b.push(") AND ");
        populated(&mut b, table, "e.node", &self.scope);
        b.push(" AND (");
        populated(&mut b, table, "e.node", &self.filter);
        // The row before the change counts only where the caller could read it too: a
        // filter must not probe a version it was never allowed to see.
        b.push(" OR (e.previous IS NOT NULL AND ");
        populated(
            &mut b,
            table,
            "e.previous",
            &Filter::and(vec![self.scope.clone(), self.filter.clone()]),
        );
        b.push(&format!(")) ORDER BY e.seq LIMIT {CHUNK}) SELECT "));
        b.select_list(meta);
        b.push(&format!(
            ", hit.seq AS \"__seq\", hit.op AS \"__op\", FALSE AS \"__prev\" FROM hit CROSS JOIN LATERAL jsonb_populate_record(NULL::\"{table}\", hit.node) t UNION ALL SELECT "
        ));
        b.select_list(meta);
        b.push(&format!(
            ", hit.seq, hit.op, TRUE FROM hit CROSS JOIN LATERAL jsonb_populate_record(NULL::\"{table}\", hit.previous) t WHERE hit.previous IS NOT NULL AND "
        ));
        b.filter(&self.scope);
        b.push(" ORDER BY \"__seq\", \"__prev\"");
        b
    }

    /// Reads the next events after `last`, up to `upto`: at most `CHUNK` of them, and how far
    /// they cover the outbox (`upto` unless the chunk was full).
    pub async fn read(&self, last: i64, upto: i64) -> Result<(Vec<(i64, Change)>, i64), ApiError> {
        if upto <= last {
            return Ok((Vec::new(), last));
        }
        let rows: Vec<Row> = self
            .db
            .read_in(self.rc.tenant_id, self.meta.name, self.query(last, upto))
            .await?;
        let mut out: Vec<(i64, Change)> = Vec::new();
        for r in rows {
            let r = EventRow::of(r)
                .ok_or_else(|| ApiError::internal("an event row without its event"))?;
            if r.previous {
                if let Some((seq, change)) = out.last_mut() {
                    if *seq == r.seq {
                        change.previous = Some(Arc::new(r.row));
                    }
                }
                continue;
            }
            let op = ChangeOp::parse(&r.op)
                .ok_or_else(|| ApiError::internal(format!("unknown change op {}", r.op)))?;
            out.push((
                r.seq,
                Change {
                    op,
                    node: Arc::new(r.row),
                    previous: None,
                    cursor: encode_cursor(r.seq).into(),
                    renders: Arc::default(),
                },
            ));
        }
        let covered = match out.last() {
            Some((seq, _)) if out.len() as i64 >= CHUNK => *seq,
            _ => upto,
        };
        Ok((out, covered))
    }
}

/// A change as a subscription yields it: in its feed's chunk, shared by every member and not
/// copied (a copy is four reference counts, written by both cores for each of 10,000
/// members), or one the subscription read itself.
pub enum ChangeRef {
    InChunk(Arc<Chunk>, usize),
    Own(Change),
}

impl std::ops::Deref for ChangeRef {
    type Target = Change;

    fn deref(&self) -> &Change {
        match self {
            ChangeRef::InChunk(chunk, i) => &chunk.changes[*i].1,
            ChangeRef::Own(c) => c,
        }
    }
}

impl ChangeRef {
    pub fn into_owned(self) -> Change {
        match self {
            ChangeRef::Own(c) => c,
            shared => (*shared).clone(),
        }
    }
}

type GapRead = futures::future::BoxFuture<'static, Result<(Vec<(i64, Change)>, i64), ApiError>>;

/// One subscriber's stream: chunks of its feed, with gaps before them read from the outbox.
/// Written out as a `Stream` rather than an `unfold`, which moves the whole state into a new
/// future for every change.
pub struct Changes {
    feed: Arc<Feed>,
    chunks: feed::Chunks,
    /// Every event up to here has been delivered (or is, from `current`), or did not
    /// concern this subscription.
    last: i64,
    /// The next chunk to deliver, once the gap before it is filled.
    held: Option<Arc<Chunk>>,
    /// The chunk being delivered, from which of its changes on.
    current: Option<(Arc<Chunk>, usize)>,
    /// A gap being read (boxed: rare, and its state would otherwise sit in every stream).
    reading: Option<GapRead>,
    ready: VecDeque<Change>,
    failed: bool,
    /// Counts against the caller's and its tenant's subscription caps while it lives.
    _slot: QuotaSlot,
}

impl Stream for Changes {
    type Item = GqlResult<ChangeRef>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        let this = &mut *self;
        loop {
            if this.failed {
                return Poll::Ready(None);
            }
            if let Some(c) = this.ready.pop_front() {
                return Poll::Ready(Some(Ok(ChangeRef::Own(c))));
            }
            if let Some(read) = &mut this.reading {
                match read.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok((changes, covered))) => {
                        this.reading = None;
                        this.ready.extend(changes.into_iter().map(|(_, c)| c));
                        this.last = covered;
                    }
                    Poll::Ready(Err(e)) => {
                        this.reading = None;
                        this.failed = true;
                        return Poll::Ready(Some(Err(e.into())));
                    }
                }
                continue;
            }
            if let Some((chunk, at)) = &mut this.current {
                let i = *at;
                if i + 1 < chunk.changes.len() {
                    *at = i + 1;
                    return Poll::Ready(Some(Ok(ChangeRef::InChunk(chunk.clone(), i))));
                }
            }
            // The chunk's last change (if any is left) takes the chunk along.
            if let Some((chunk, i)) = this.current.take() {
                if i < chunk.changes.len() {
                    return Poll::Ready(Some(Ok(ChangeRef::InChunk(chunk, i))));
                }
                continue;
            }
            if let Some(chunk) = this.held.take() {
                if this.last < chunk.after {
                    let (feed, from, to) = (this.feed.clone(), this.last, chunk.after);
                    this.reading = Some(Box::pin(async move { feed.reader.read(from, to).await }));
                    this.held = Some(chunk);
                    continue;
                }
                // In outbox order: the fresh ones (after `last`) are a tail.
                let fresh = chunk.changes.partition_point(|(seq, _)| *seq <= this.last);
                this.last = this.last.max(chunk.upto);
                this.current = Some((chunk, fresh));
                continue;
            }
            match this.chunks.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(chunk)) if chunk.upto > this.last => this.held = Some(chunk),
                Poll::Ready(Ok(_)) => {}
                // Dropped chunks: the next one starts past `last` and the gap is read.
                Poll::Ready(Err(feed::Lagged(_))) => {}
            }
        }
    }
}

async fn pruned_upto(db: &Db, rc: &RequestContext) -> Result<i64, ApiError> {
    #[derive(diesel::QueryableByName)]
    struct Horizon {
        #[diesel(sql_type = BigInt)]
        pruned_upto: i64,
    }
    let h: Horizon = db
        .transaction(rc, true, |conn| {
            async move {
                diesel::sql_query("SELECT pruned_upto FROM change_event_horizon")
                    .get_result(conn)
                    .await
                    .map_err(|e| ApiError::internal(format!("change horizon: {e}")))
            }
            .boxed()
        })
        .await?;
    Ok(h.pruned_upto)
}

/// What a subscription reads with: its caller and the schema's database, hub and quota.
pub struct Sources {
    pub rc: RequestContext,
    pub db: Db,
    pub hub: Hub,
    pub quota: Arc<SubscriptionQuota>,
}

impl Sources {
    /// The caller of `ctx` and the schema's data.
    fn of(ctx: &Context<'_>) -> Result<Sources, ApiError> {
        let rc = ctx
            .data_opt::<RequestContext>()
            .ok_or_else(|| ApiError::unauthenticated("a valid bearer token is required"))?
            .clone();
        let db = ctx
            .data_opt::<Db>()
            .ok_or_else(|| ApiError::internal("no database in the schema data"))?
            .clone();
        let hub = ctx
            .data_opt::<Hub>()
            .ok_or_else(|| ApiError::internal("subscriptions are not running"))?
            .clone();
        let quota = ctx
            .data_opt::<Arc<SubscriptionQuota>>()
            .ok_or_else(|| ApiError::internal("no subscription quota in the schema data"))?
            .clone();
        Ok(Sources { rc, db, hub, quota })
    }
}

/// The `ops` argument of a change subscription as its resolver reads it: `None` for all.
pub fn ops_arg(v: Option<&async_graphql::Value>) -> Option<Vec<ChangeOp>> {
    use async_graphql::Value as G;
    match v {
        Some(G::List(l)) => Some(
            l.iter()
                .filter_map(|v| match v {
                    G::Enum(n) => ChangeOp::parse(n.as_str()),
                    G::String(s) => ChangeOp::parse(s),
                    _ => None,
                })
                .collect(),
        ),
        _ => None,
    }
}

/// The changes of `meta`'s rows for the caller of `ctx`; `filter` is the client's `where`,
/// already read.
pub async fn changes(
    ctx: &Context<'_>,
    meta: &'static EntityMeta,
    filter: Option<Filter>,
    ops: Option<Vec<ChangeOp>>,
    after: Option<String>,
) -> Result<impl Stream<Item = GqlResult<Change>> + use<>, ApiError> {
    use futures::StreamExt;
    let sources = Sources::of(ctx)?;
    let changes = changes_of(sources, meta, filter, ops, after).await?;
    Ok(changes.map(|c| c.map(ChangeRef::into_owned)))
}

/// The same from the subscription's [`Sources`].
pub async fn changes_of(
    sources: Sources,
    meta: &'static EntityMeta,
    filter: Option<Filter>,
    ops: Option<Vec<ChangeOp>>,
    after: Option<String>,
) -> Result<Changes, ApiError> {
    let Sources { rc, db, hub, quota } = sources;
    if acl::grant(meta, &rc, Op::Read) == Grant::None {
        return Err(ApiError::forbidden(format!(
            "your role may not read {}",
            meta.name
        )));
    }
    let slot = quota.acquire(&rc)?;
    let filter = crate::graphql::crud::where_filter(filter, &rc)?;
    let ops = match ops {
        Some(o) if !o.is_empty() => o,
        _ => vec![ChangeOp::Created, ChangeOp::Updated, ChangeOp::Deleted],
    };
    let last = match after {
        Some(c) => {
            let seq = decode_cursor(&c)?;
            if seq < pruned_upto(&db, &rc).await? {
                return Err(ApiError::bad_input(
                    "after",
                    "after points to events that have been pruned; reload and subscribe anew",
                ));
            }
            seq
        }
        None => hub.cursor(),
    };
    let reader = Reader {
        meta,
        scope: acl::row_scope(meta, &rc, Op::Read),
        db,
        rc,
        filter,
        ops,
    };
    let feed::Joined { feed, chunks, from } = feed::join(&hub, reader);
    // Joined with an older cursor: what lies between is read before the feed's first chunk.
    let held = (last < from).then(|| {
        Arc::new(Chunk {
            after: from,
            upto: from,
            changes: Vec::new(),
        })
    });
    Ok(Changes {
        feed,
        chunks,
        last,
        held,
        current: None,
        reading: None,
        ready: VecDeque::new(),
        failed: false,
        _slot: slot,
    })
}
