//! One subscription: the change events of one entity that its subscriber may read and asked
//! for, in outbox order, from its `after` cursor (or from the moment it starts) on.
//!
//! A subscription holds only its position in the outbox; each time the hub announces events
//! for its tenant and entity, it reads the next ones from the outbox with its filter, evaluated
//! by PostgreSQL over the event's row. A slow reader therefore costs no memory, and a
//! reconnecting client resumes exactly where its last cursor points.

use std::collections::VecDeque;
use std::sync::Arc;

use async_graphql::Context;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use diesel::deserialize::{self, QueryableByName};
use diesel::pg::Pg;
use diesel::row::NamedRow;
use diesel::sql_types::{BigInt, Bool, Text};
use diesel_async::RunQueryDsl;
use futures::stream::{self, Stream};
use futures::FutureExt;
use tokio::sync::broadcast::error::RecvError;

use crate::auth::RequestContext;
use crate::db::sql::{Filter, SqlBuilder};
use crate::db::value::Value;
use crate::db::Db;
use crate::error::{ApiError, GqlResult};
use crate::graphql::acl::{self, Grant, Op};
use crate::graphql::crud::Entity;
use crate::graphql::filter::WhereInput;
use crate::graphql::meta::ColumnType;
use crate::live::hub::Hub;
use crate::live::outbox::ChangeOp;

/// Events read from the outbox per statement.
const CHUNK: i64 = 100;

/// One change as a subscriber receives it.
#[derive(Clone)]
pub struct Change<E> {
    pub op: ChangeOp,
    /// The row after the change; on delete, the row as it was.
    pub node: E,
    /// The row before an update, when the subscriber could read it then too.
    pub previous: Option<E>,
    pub cursor: String,
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

/// A row of an event query: the entity row, its event and which side of the change it is.
struct EventRow<E> {
    row: E,
    seq: i64,
    op: String,
    previous: bool,
}

impl<E: QueryableByName<Pg>> QueryableByName<Pg> for EventRow<E> {
    fn build<'a>(row: &impl NamedRow<'a, Pg>) -> deserialize::Result<Self> {
        Ok(EventRow {
            row: E::build(row)?,
            seq: NamedRow::get::<BigInt, _>(row, "__seq")?,
            op: NamedRow::get::<Text, _>(row, "__op")?,
            previous: NamedRow::get::<Bool, _>(row, "__prev")?,
        })
    }
}

struct State<E> {
    db: Db,
    hub: Hub,
    rc: RequestContext,
    /// What the subscriber may read.
    scope: Filter,
    /// What it asked for (`where`), matched by the row before or after the change.
    filter: Filter,
    ops: Vec<ChangeOp>,
    /// Every event up to here has been delivered or did not concern this subscription.
    last: i64,
    /// Events may have arrived after `last`: read the outbox before waiting again.
    pending: bool,
    batches: tokio::sync::broadcast::Receiver<Arc<crate::live::hub::Batch>>,
    ready: VecDeque<Change<E>>,
    failed: bool,
}

fn populated(b: &mut SqlBuilder, table: &str, json: &str, cond: &Filter) {
    b.push(&format!(
        "EXISTS (SELECT 1 FROM jsonb_populate_record(NULL::\"{table}\", {json}) t WHERE "
    ));
    b.filter(cond);
    b.push(")");
}

impl<E: Entity> State<E> {
    /// The statement reading this subscription's next events in `(last, upto]`.
    fn query(&self, upto: i64) -> SqlBuilder {
        let meta = E::META;
        let table = meta.table;
        let mut b = SqlBuilder::new("WITH hit AS (SELECT e.seq, e.op, e.node, e.previous FROM change_events e WHERE e.seq > ");
        b.bind(Value::BigInt(self.last), ColumnType::BigInt, false);
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
        b.push(" OR (e.previous IS NOT NULL AND ");
        populated(&mut b, table, "e.previous", &self.filter);
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

    /// Reads the next events into `ready`, advancing `last`.
    async fn fetch(&mut self) -> Result<(), ApiError> {
        let upto = self.hub.cursor();
        if upto <= self.last {
            self.pending = false;
            return Ok(());
        }
        let b = self.query(upto);
        let rows: Vec<EventRow<E>> = self.db.read(&self.rc, E::META.name, b).await?;
        let mut events = 0;
        for r in rows {
            if r.previous {
                if let Some(last) = self.ready.back_mut() {
                    if last.cursor == encode_cursor(r.seq) {
                        last.previous = Some(r.row);
                    }
                }
                continue;
            }
            events += 1;
            let op = ChangeOp::parse(&r.op)
                .ok_or_else(|| ApiError::internal(format!("unknown change op {}", r.op)))?;
            self.last = r.seq;
            self.ready.push_back(Change {
                op,
                node: r.row,
                previous: None,
                cursor: encode_cursor(r.seq),
            });
        }
        if events < CHUNK {
            // Nothing else of ours up to `upto`.
            self.last = upto;
            self.pending = false;
        }
        Ok(())
    }

    async fn next(mut self) -> Option<(GqlResult<Change<E>>, Self)> {
        loop {
            if self.failed {
                return None;
            }
            if let Some(c) = self.ready.pop_front() {
                return Some((Ok(c), self));
            }
            if self.pending {
                if let Err(e) = self.fetch().await {
                    self.failed = true;
                    return Some((Err(e.into()), self));
                }
                continue;
            }
            match self.batches.recv().await {
                Ok(batch) => {
                    if batch.upto <= self.last {
                        continue;
                    }
                    if batch.after <= self.last && !batch.touches(self.rc.tenant_id, E::META.name) {
                        self.last = batch.upto;
                    } else {
                        self.pending = true;
                    }
                }
                // Missed announcements: the outbox still has the events.
                Err(RecvError::Lagged(_)) => self.pending = true,
                Err(RecvError::Closed) => return None,
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

/// The changes of `E` for the caller of `ctx`.
pub async fn changes<E: Entity, W: WhereInput>(
    ctx: &Context<'_>,
    filter: Option<&W>,
    ops: Option<Vec<ChangeOp>>,
    after: Option<String>,
) -> Result<impl Stream<Item = GqlResult<Change<E>>>, ApiError> {
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
    if acl::grant(E::META, &rc, Op::Read) == Grant::None {
        return Err(ApiError::forbidden(format!(
            "your role may not read {}",
            E::META.name
        )));
    }
    let mut filter = match filter {
        Some(w) => w.to_filter("where")?,
        None => Filter::True,
    };
    acl::scope_relations(&mut filter, &rc, 0)?;
    let ops = match ops {
        Some(o) if !o.is_empty() => o,
        _ => vec![ChangeOp::Created, ChangeOp::Updated, ChangeOp::Deleted],
    };
    // Subscribe before reading the cursor, so nothing announced in between is missed.
    let batches = hub.batches();
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
    let state = State::<E> {
        scope: acl::row_scope(E::META, &rc, Op::Read),
        db,
        hub,
        rc,
        filter,
        ops,
        last,
        pending: true,
        batches,
        ready: VecDeque::new(),
        failed: false,
    };
    Ok(stream::unfold(state, State::next))
}
