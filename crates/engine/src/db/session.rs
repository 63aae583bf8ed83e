//! Reads share one connection and one transaction.
//!
//! A [`ReadSession`] borrows a pooled connection at its first read and keeps it until it is
//! dropped: every read of a GraphQL query operation (root fields, relation loaders, counts)
//! runs in its one read-only transaction, REPEATABLE READ, so a page, its `totalCount` and
//! its nested relations agree. Opening costs no round trip of its own: `BEGIN`, the caller's
//! `gateway_enter` and the first reads are pipelined (sent together, answered in order), and
//! the closing `COMMIT` is sent after the response, off the request's path, or with the first
//! reads when the caller knows they are also the last ([`ReadSession::read_all`]). Reads
//! that arrive together (one level's loaders) are pipelined on the connection as well.
//!
//! A one-read session (`Db::read`, a mutation's nested reads, subscription events) is the same
//! with READ COMMITTED: one round trip for the read, whatever the transaction control.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use diesel::deserialize::FromSqlRow;
use diesel::pg::Pg;
use diesel::sql_types::Untyped;
use diesel_async::pooled_connection::deadpool::Object;
use tokio::sync::OnceCell;

use crate::caller::RequestContext;
use crate::db::sql::SqlBuilder;
use crate::db::statement::Statement;
use crate::db::{begin, load, Conn, Counters, Db, Plans, Transaction, Who};
use crate::error::ApiError;

/// How the session's transaction sees the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Snapshot {
    /// One snapshot for every read (a query operation).
    Shared,
    /// Each statement sees what was committed before it (one-read sessions, and reads
    /// between a mutation's writes, which must see them).
    PerStatement,
}

impl Snapshot {
    fn begin(self) -> &'static str {
        match self {
            Snapshot::Shared => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
            Snapshot::PerStatement => "BEGIN READ ONLY",
        }
    }
}

/// The reads of one request (see the module documentation).
pub struct ReadSession {
    db: Db,
    who: Who,
    snapshot: Snapshot,
    lease: OnceCell<Lease>,
    /// Whether the first transaction ended with its reads (`last` reads of [`Self::read_all`]).
    ended: AtomicBool,
    /// A transaction of its own for any read after that.
    after: OnceCell<Lease>,
    /// Generic plans for the transaction's statements (see [`Plans`]), when asked for before
    /// the first read.
    generic_plans: AtomicBool,
    /// The first read that failed: its transaction is over, so every later read of the
    /// request gets the same answer (never a second try that could outlive an outage).
    failed: std::sync::OnceLock<ApiError>,
}

impl ReadSession {
    pub(crate) fn new(db: Db, who: Who, snapshot: Snapshot) -> Self {
        ReadSession {
            db,
            who,
            snapshot,
            lease: OnceCell::new(),
            ended: AtomicBool::new(false),
            after: OnceCell::new(),
            generic_plans: AtomicBool::new(false),
            failed: std::sync::OnceLock::new(),
        }
    }

    /// Asks for generic plans (see [`Plans`]): every statement of the session will be made
    /// of keys only. Too late once the session has begun its transaction.
    pub fn plan_generically(&self) {
        self.generic_plans.store(true, Ordering::Relaxed);
    }

    /// Runs one read statement; database errors are reported as errors of `entity`.
    pub async fn read<T>(&self, entity: &'static str, b: SqlBuilder) -> Result<Vec<T>, ApiError>
    where
        T: FromSqlRow<Untyped, Pg> + Send + 'static,
    {
        let mut all = self.read_all(vec![(entity, b)], false).await?;
        Ok(all.pop().unwrap_or_default())
    }

    /// Runs read statements together: pipelined, in one round trip (with the transaction's
    /// opening when they are the session's first). Each one's database errors are reported
    /// as errors of its entity. When they are the request's `last` reads and also its first,
    /// `COMMIT` rides in their round trip and the connection is free once they are read,
    /// instead of one more round trip after the response; should anything read after all (the
    /// executor answering when a plan gave up), it gets a transaction of its own.
    pub async fn read_all<T>(
        &self,
        reads: Vec<(&'static str, SqlBuilder)>,
        last: bool,
    ) -> Result<Vec<Vec<T>>, ApiError>
    where
        T: FromSqlRow<Untyped, Pg> + Send + 'static,
    {
        if let Some(e) = self.failed.get() {
            return Err(e.clone());
        }
        let read = self.read_once(reads, last).await;
        match &read {
            Ok(rows) => {
                let n = rows.iter().map(Vec::len).sum::<usize>() as u64;
                self.db.counters.rows_read.fetch_add(n, Ordering::Relaxed);
            }
            Err(e) => {
                let _ = self.failed.set(e.clone());
            }
        }
        read
    }

    async fn read_once<T>(
        &self,
        reads: Vec<(&'static str, SqlBuilder)>,
        last: bool,
    ) -> Result<Vec<Vec<T>>, ApiError>
    where
        T: FromSqlRow<Untyped, Pg> + Send + 'static,
    {
        let ended = self.ended.load(Ordering::Acquire);
        let cell = if ended { &self.after } else { &self.lease };
        let mut pending = Some(reads);
        let mut first = None;
        let lease = cell
            .get_or_try_init(|| self.open(&mut pending, &mut first, last && !ended))
            .await?;
        if let Some(rows) = first {
            return Ok(rows);
        }
        match pending {
            Some(reads) => load_all(lease.conn()?, reads).await,
            None => Err(ApiError::internal("a read of the session was lost")),
        }
    }

    /// Borrows a connection and begins the transaction, entered as the session's caller,
    /// with the first reads in the same round trip (and `COMMIT` after them when they are the
    /// `last`).
    async fn open<T>(
        &self,
        pending: &mut Option<Vec<(&'static str, SqlBuilder)>>,
        first: &mut Option<Vec<Vec<T>>>,
        last: bool,
    ) -> Result<Lease, ApiError>
    where
        T: FromSqlRow<Untyped, Pg> + Send + 'static,
    {
        let mut lease = Lease::new(self.db.counters.clone(), self.db.get().await?);
        let conn = lease.conn()?;
        let plans = match self.generic_plans.load(Ordering::Relaxed) {
            true => Plans::Generic,
            false => Plans::Auto,
        };
        let begun = begin(conn, self.snapshot.begin(), &self.who, plans, &self.db);
        let rows = load_all(conn, pending.take().unwrap_or_default());
        // Statements go out in the order their futures are first polled (the connection's
        // statement cache is locked in that order), so COMMIT follows the reads.
        let commit = async {
            let mut c: &Conn = conn;
            match last {
                true => Some(
                    diesel_async::RunQueryDsl::execute(Statement::fixed("COMMIT"), &mut c).await,
                ),
                false => None,
            }
        };
        let (begun, rows, committed) = futures::join!(begun, rows, commit);
        if let Some(Ok(_)) = committed {
            // The connection goes back to the pool now; a read after this one opens another.
            if let Some(tx) = lease.tx.take() {
                tx.release();
            }
            self.ended.store(true, Ordering::Release);
        }
        // Rows read for a caller who is refused are dropped unseen.
        begun?;
        *first = Some(rows?);
        Ok(lease)
    }
}

/// Runs statements on `conn` together (pipelined), each to its end even when another fails.
async fn load_all<T>(
    conn: &Conn,
    reads: Vec<(&'static str, SqlBuilder)>,
) -> Result<Vec<Vec<T>>, ApiError>
where
    T: FromSqlRow<Untyped, Pg> + Send + 'static,
{
    futures::future::join_all(reads.into_iter().map(|(entity, b)| load(conn, b, entity)))
        .await
        .into_iter()
        .collect()
}

/// The session's connection, inside the transaction it began. Dropping it commits in the
/// background and only then gives the connection back (see [`Transaction`]); until then it
/// counts as a lease, which [`Db::settled`] waits for.
struct Lease {
    counters: Arc<Counters>,
    /// `None` once its transaction has ended with its reads.
    tx: Option<Transaction>,
}

impl Lease {
    fn new(counters: Arc<Counters>, conn: Object<Conn>) -> Self {
        counters.leases.fetch_add(1, Ordering::Relaxed);
        Lease {
            counters,
            tx: Some(Transaction::new(conn)),
        }
    }

    fn conn(&self) -> Result<&Conn, ApiError> {
        match &self.tx {
            Some(tx) => tx.conn(),
            None => Err(ApiError::internal("the session's connection is gone")),
        }
    }
}

/// Ends a lease's count when its transaction has ended, however that happens.
pub(super) struct Released(pub(super) Arc<Counters>);

impl Drop for Released {
    fn drop(&mut self) {
        self.0.leases.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let released = Released(self.counters.clone());
        let Some(tx) = self.tx.take() else {
            return;
        };
        // Without a runtime to commit on (shutting down), the transaction's drop closes the
        // connection.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = tx.end(true).await;
                drop(released);
            });
        }
    }
}

/// Where the reads of a request go: its session (a query operation), or a one-read session
/// each (a mutation's nested reads, which must see its writes; a socket's events).
#[derive(Clone)]
pub enum Reads {
    Session(Arc<ReadSession>),
    Each(Db, RequestContext),
}

impl Reads {
    /// Whether every read sees the same snapshot: a statement run twice finds the same rows.
    pub fn one_snapshot(&self) -> bool {
        matches!(self, Reads::Session(s) if s.snapshot == Snapshot::Shared)
    }

    /// See [`ReadSession::plan_generically`]; one-read sessions keep PostgreSQL's choice.
    pub fn plan_generically(&self) {
        if let Reads::Session(s) = self {
            s.plan_generically();
        }
    }

    /// Runs one read statement; database errors are reported as errors of `entity`.
    pub async fn read<T>(&self, entity: &'static str, b: SqlBuilder) -> Result<Vec<T>, ApiError>
    where
        T: FromSqlRow<Untyped, Pg> + Send + 'static,
    {
        match self {
            Reads::Session(s) => s.read(entity, b).await,
            Reads::Each(db, rc) => db.read(rc, entity, b).await,
        }
    }

    /// Runs read statements together (see [`ReadSession::read_all`]); one-read sessions run
    /// each in its own.
    pub async fn read_all<T>(
        &self,
        reads: Vec<(&'static str, SqlBuilder)>,
        last: bool,
    ) -> Result<Vec<Vec<T>>, ApiError>
    where
        T: FromSqlRow<Untyped, Pg> + Send + 'static,
    {
        match self {
            Reads::Session(s) => s.read_all(reads, last).await,
            Reads::Each(db, rc) => {
                futures::future::try_join_all(reads.into_iter().map(|(e, b)| db.read(rc, e, b)))
                    .await
            }
        }
    }
}
