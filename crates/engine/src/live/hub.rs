//! The instance's view of the outbox: one task LISTENs for commits, reads which events became
//! final, and tells the subscriptions of this instance which tenants and entities changed.
//!
//! "Final" matters because sequence numbers are taken before commit: event 11 can commit
//! before event 10. The hub only advances its cursor over a gap once every transaction that
//! could still fill it has ended (the gap's snapshot `xmax` is below the current `xmin`), so a
//! subscription that has read up to the cursor has missed nothing, ever.
//!
//! The listener reads every tenant's events, which row-level security forbids the serving
//! role: it calls the `gateway_outbox_*` SECURITY DEFINER functions (migration
//! 2026-11-24-000000_serving_role), which return only sequence numbers, tenants and entities.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use diesel::sql_types::{BigInt, Nullable, Text, Uuid as SqlUuid};
use diesel_async::{AsyncConnection, RunQueryDsl, SimpleAsyncConnection};
use futures::StreamExt;
use tokio::sync::{broadcast, watch};
use uuid::Uuid;

use crate::db::circuit::Circuit;
use crate::db::Conn;
use crate::live::outbox::CHANNEL;
use crate::logs::{self, Level};

/// The longest the listener waits between two reconnections (recovery within a second).
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// `application_name` of the listening connection, to find it in `pg_stat_activity`.
pub const LISTENER_NAME: &str = "gateway-change-listener";

fn listener_url(url: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}application_name={LISTENER_NAME}")
}

/// Events `(after, upto]` are final; these tenants (None: global) and entities changed.
#[derive(Debug)]
pub struct Batch {
    pub after: i64,
    pub upto: i64,
    pub touched: HashSet<(Option<Uuid>, String)>,
}

impl Batch {
    pub fn touches(&self, tenant: Uuid, entity: &str) -> bool {
        self.touched.contains(&(Some(tenant), entity.to_string()))
            || self.touched.contains(&(None, entity.to_string()))
    }
}

/// Handle shared by the subscriptions of one instance.
#[derive(Clone)]
pub struct Hub {
    batches: broadcast::Sender<Arc<Batch>>,
    cursor: watch::Receiver<i64>,
    /// The shared reads of this instance's subscriptions.
    pub(crate) feeds: crate::live::feed::Feeds,
}

impl Hub {
    /// Starts the listener task on `url`; the hub is ready once it has read the cursor.
    /// With the pool's `circuit`, the listener reconnects through it: while the database is
    /// away it waits for the circuit's probe instead of dialling on its own.
    pub async fn start(
        url: String,
        retention: Duration,
        circuit: Option<Arc<Circuit>>,
    ) -> Result<Hub, String> {
        let url = listener_url(&url);
        let mut conn = Conn::establish(&url)
            .await
            .map_err(|e| format!("cannot connect the change listener: {e}"))?;
        let start = max_seq(&mut conn)
            .await
            .map_err(|e| format!("cannot read the change cursor: {e}"))?;
        let (batches, _) = broadcast::channel(1024);
        let (cursor_tx, cursor) = watch::channel(start);
        let hub = Hub {
            batches,
            cursor,
            feeds: Default::default(),
        };
        let listener = Listener {
            url,
            circuit,
            retention,
            batches: hub.batches.clone(),
            cursor: cursor_tx,
            gap: None,
        };
        tokio::spawn(listener.run(conn));
        Ok(hub)
    }

    /// Every event up to this sequence number is final.
    pub fn cursor(&self) -> i64 {
        *self.cursor.borrow()
    }

    pub fn batches(&self) -> broadcast::Receiver<Arc<Batch>> {
        self.batches.subscribe()
    }
}

#[derive(diesel::QueryableByName)]
struct MaxSeq {
    #[diesel(sql_type = BigInt)]
    seq: i64,
}

async fn max_seq(conn: &mut Conn) -> diesel::QueryResult<i64> {
    let row: MaxSeq = diesel::sql_query("SELECT gateway_outbox_max_seq() AS seq")
        .get_result(conn)
        .await?;
    Ok(row.seq)
}

#[derive(diesel::QueryableByName)]
struct Pending {
    #[diesel(sql_type = BigInt)]
    seq: i64,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    tenant_id: Option<Uuid>,
    #[diesel(sql_type = Text)]
    entity: String,
    /// The reading snapshot's horizons (the same on every row).
    #[diesel(sql_type = BigInt)]
    snap_xmin: i64,
    #[diesel(sql_type = BigInt)]
    snap_xmax: i64,
}

struct Listener {
    url: String,
    circuit: Option<Arc<Circuit>>,
    retention: Duration,
    batches: broadcast::Sender<Arc<Batch>>,
    cursor: watch::Sender<i64>,
    /// A gap right after the cursor, and the `xmax` of the snapshot that first saw it.
    gap: Option<(i64, i64)>,
}

impl Listener {
    async fn run(mut self, first: Conn) {
        let mut conn = Some(first);
        let mut backoff = Duration::from_millis(100);
        let mut last_prune = tokio::time::Instant::now();
        loop {
            let mut c = match conn.take() {
                Some(c) => c,
                None => match self.reconnect().await {
                    Ok(c) => c,
                    Err(e) => {
                        if logs::admit(Level::Warn, "live.listener", "reconnect") {
                            tracing::warn!("change listener cannot reconnect: {e}");
                        }
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        continue;
                    }
                },
            };
            if let Err(e) = self.listen(&mut c, &mut last_prune).await {
                if logs::admit(Level::Warn, "live.listener", "lost") {
                    tracing::warn!("change listener lost its connection: {e}");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
            backoff = Duration::from_millis(100);
        }
    }

    /// A new connection: through the circuit when there is one (waiting while it is open,
    /// and opening it on failure), else dialled directly.
    async fn reconnect(&self) -> Result<Conn, String> {
        let Some(circuit) = &self.circuit else {
            return Conn::establish(&self.url).await.map_err(|e| e.to_string());
        };
        circuit.closed().await;
        match circuit.connect(&self.url).await {
            Ok(c) => Ok(c),
            Err(f) => {
                let detail = f.to_string();
                circuit.failed(f);
                Err(detail)
            }
        }
    }

    /// LISTENs on `conn` and reads the outbox after every notification (and every second,
    /// for gaps and for notifications lost with a connection) until the connection fails.
    async fn listen(
        &mut self,
        conn: &mut Conn,
        last_prune: &mut tokio::time::Instant,
    ) -> diesel::QueryResult<()> {
        conn.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
        // Whatever committed while we were away.
        self.read(conn).await?;
        loop {
            let woke = {
                let mut notes = std::pin::pin!(conn.notifications_stream());
                tokio::time::timeout(Duration::from_secs(1), notes.next()).await
            };
            match woke {
                Ok(Some(Err(e))) => return Err(e),
                Ok(None) => {
                    return Err(diesel::result::Error::BrokenTransactionManager);
                }
                Ok(Some(Ok(_))) | Err(_) => {}
            }
            self.read(conn).await?;
            if last_prune.elapsed() > Duration::from_secs(60) {
                self.prune(conn).await?;
                *last_prune = tokio::time::Instant::now();
            }
        }
    }

    /// Advances the cursor over every event that is final, and announces them.
    async fn read(&mut self, conn: &mut Conn) -> diesel::QueryResult<()> {
        loop {
            let after = *self.cursor.borrow();
            let rows: Vec<Pending> = diesel::sql_query(
                "SELECT seq, tenant_id, entity,
                        pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS snap_xmin,
                        pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS snap_xmax
                 FROM gateway_outbox_after($1, 5000)",
            )
            .bind::<BigInt, _>(after)
            .load(conn)
            .await?;
            if rows.is_empty() {
                self.gap = None;
                return Ok(());
            }
            let mut upto = after;
            let mut touched = HashSet::new();
            for r in &rows {
                if r.seq != upto + 1 {
                    // A gap: skip it only once every transaction that might fill it is over.
                    let (gap_at, gap_xmax) = match self.gap {
                        Some((at, xmax)) if at == upto + 1 => (at, xmax),
                        _ => (upto + 1, r.snap_xmax),
                    };
                    if r.snap_xmin < gap_xmax {
                        self.gap = Some((gap_at, gap_xmax));
                        break;
                    }
                    self.gap = None;
                }
                upto = r.seq;
                touched.insert((r.tenant_id, r.entity.clone()));
            }
            if upto > after {
                self.cursor.send_replace(upto);
                // No receiver is not an error: nobody subscribes yet.
                let _ = self.batches.send(Arc::new(Batch {
                    after,
                    upto,
                    touched,
                }));
            }
            // A full batch read without stopping at a gap: there may be more right away.
            // Otherwise a gap waits for the next notification or tick.
            let full = rows.len() == 5000 && rows.last().is_some_and(|r| r.seq == upto);
            if !full {
                return Ok(());
            }
        }
    }

    /// Drops events older than the retention, remembering how far (never past the cursor).
    async fn prune(&mut self, conn: &mut Conn) -> diesel::QueryResult<()> {
        let secs = self.retention.as_secs() as i64;
        let cursor = *self.cursor.borrow();
        diesel::sql_query("SELECT gateway_outbox_prune($1, $2)")
            .bind::<BigInt, _>(secs)
            .bind::<BigInt, _>(cursor)
            .execute(conn)
            .await?;
        Ok(())
    }
}
