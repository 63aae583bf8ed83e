//! PostgreSQL access for requests: the connection pool and the transactions every request
//! runs in, entered as its caller for row-level security; the SQL builder and its values.

pub mod circuit;
pub mod session;
pub mod sql;
pub mod statement;
pub mod value;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use diesel::connection::InstrumentationEvent;

use circuit::{Circuit, CircuitSettings, CircuitStats};
use diesel::result::QueryResult;
use diesel_async::pooled_connection::deadpool::{Object, Pool, PoolError};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};

use futures::future::{BoxFuture, FutureExt};
use session::{ReadSession, Snapshot};
use value::Value;

use crate::caller::RequestContext;
use crate::error::ApiError;
use crate::kept::Kept;

pub type Conn = AsyncPgConnection;
pub type DbFuture<'a, T> = BoxFuture<'a, QueryResult<T>>;

/// Whether each statement gets a tracing span (set when traces are exported).
static TRACE_STATEMENTS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Gives every SQL statement and loader batch a span of its own (`sql`, with its text,
/// never its values; `graphql.batch`).
pub fn trace_statements(on: bool) {
    TRACE_STATEMENTS.store(on, Ordering::Relaxed);
}

/// Whether statements and batches get spans.
pub fn tracing_statements() -> bool {
    std::sync::atomic::AtomicBool::load(&TRACE_STATEMENTS, Ordering::Relaxed)
}

/// A moment's view of the pool (for metrics).
#[derive(Debug, Clone, Copy)]
pub struct PoolStatus {
    pub size: usize,
    pub available: usize,
    pub waiting: usize,
    /// Requests refused because no connection freed up within the pool's wait.
    pub wait_timeouts: u64,
}

/// How the pool is sized and how long anything may wait on it.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    pub size: usize,
    /// PostgreSQL cancels a serving statement after this (`LIMIT_EXCEEDED`).
    pub statement_timeout: Duration,
    /// The longest a request waits for a connection when every one is busy; then it gets
    /// `SERVICE_UNAVAILABLE`.
    pub wait_timeout: Duration,
    /// Requests that may wait at once; further ones get `SERVICE_UNAVAILABLE` at once.
    pub max_waiting: usize,
    pub circuit: CircuitSettings,
}

impl PoolSettings {
    /// `size` connections and `statement_timeout`, the rest as by default.
    pub fn new(size: usize, statement_timeout: Duration) -> Self {
        PoolSettings {
            size,
            statement_timeout,
            wait_timeout: Duration::from_secs(5),
            max_waiting: 10_000,
            circuit: CircuitSettings::default(),
        }
    }
}

/// The pool every request borrows its connection from.
#[derive(Clone)]
pub struct Db {
    pool: Pool<Conn>,
    counters: Arc<Counters>,
    admitted: Arc<Admitted>,
    /// The credential epoch as last read for rechecks of open sockets.
    epoch: Arc<RecentEpoch>,
    circuit: Arc<Circuit>,
    max_waiting: usize,
}

/// What the pool's connections did, for tests and metrics.
#[derive(Default)]
pub(crate) struct Counters {
    /// Statements sent.
    statements: AtomicU64,
    /// Waits for the server: statements sent while none of the same connection was in
    /// flight (pipelined ones share their round trip; a statement new to its connection is
    /// prepared first, one more wait, not counted).
    round_trips: AtomicU64,
    /// Sessions holding a connection, until their transaction has ended, and background
    /// work until it has ended.
    leases: AtomicU64,
    /// Requests waiting for a connection (bounded by `max_waiting`).
    waiting: std::sync::atomic::AtomicUsize,
    /// Requests refused after waiting `wait_timeout` (or beyond `max_waiting`).
    wait_timeouts: AtomicU64,
    /// Callers entered on an earlier admission, without `gateway_enter`'s lookups.
    admissions_reused: AtomicU64,
    /// Rows the reads of sessions returned.
    pub(crate) rows_read: AtomicU64,
}

impl Db {
    /// A pool of `size` connections whose statements PostgreSQL cancels after
    /// `statement_timeout`, so that no request can hold a pooled connection for long.
    pub fn connect(url: &str, size: usize, statement_timeout: Duration) -> Result<Db, String> {
        Db::connect_with(url, PoolSettings::new(size, statement_timeout))
    }

    /// A pool as `settings` say, behind a circuit (see [`circuit`]).
    pub fn connect_with(url: &str, settings: PoolSettings) -> Result<Db, String> {
        let timeout_ms = settings.statement_timeout.as_millis().max(1);
        let counters = Arc::new(Counters::default());
        let counter = counters.clone();
        let circuit = Circuit::new(url, settings.circuit);
        let dialer = circuit.clone();
        let mut config = ManagerConfig::default();
        // No ping on every checkout: a round trip per request saved. A connection whose
        // socket closed (a database restart) is `is_broken` and discarded at checkout; one
        // that fails its query is closed by its transaction, never handed back.
        config.recycling_method = RecyclingMethod::Fast;
        config.custom_setup = Box::new(move |url| {
            let counter = counter.clone();
            let circuit = dialer.clone();
            async move {
                // While the circuit is open only its probe dials.
                if circuit.is_open() {
                    return Err(diesel::ConnectionError::BadConnection(
                        "the database is unavailable (circuit open)".into(),
                    ));
                }
                let mut conn = match circuit.connect(url).await {
                    Ok(conn) => conn,
                    Err(failure) => {
                        let detail = failure.to_string();
                        circuit.failed(failure);
                        return Err(diesel::ConnectionError::BadConnection(detail));
                    }
                };
                conn.batch_execute(&format!("SET statement_timeout = {timeout_ms}"))
                    .await
                    .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                let mut in_flight = 0u32;
                // Statements finish in the order they were sent (one connection, pipelined).
                let mut spans = std::collections::VecDeque::new();
                conn.set_instrumentation(move |event: InstrumentationEvent<'_>| match event {
                    InstrumentationEvent::StartQuery { query, .. } => {
                        counter.statements.fetch_add(1, Ordering::Relaxed);
                        if in_flight == 0 {
                            counter.round_trips.fetch_add(1, Ordering::Relaxed);
                        }
                        in_flight += 1;
                        if std::sync::atomic::AtomicBool::load(&TRACE_STATEMENTS, Ordering::Relaxed)
                        {
                            let text = query.to_string();
                            let text: String = text.chars().take(500).collect();
                            spans.push_back(tracing::info_span!(
                                "sql",
                                db.system = "postgresql",
                                db.statement = %text
                            ));
                        }
                    }
                    InstrumentationEvent::FinishQuery { .. } => {
                        in_flight = in_flight.saturating_sub(1);
                        spans.pop_front();
                    }
                    _ => {}
                });
                Ok(conn)
            }
            .boxed()
        });
        let manager = AsyncDieselConnectionManager::<Conn>::new_with_config(url, config);
        let pool = Pool::builder(manager)
            .max_size(settings.size)
            .wait_timeout(Some(settings.wait_timeout))
            // A backstop: the circuit's dial has its own, shorter timeout.
            .create_timeout(Some(settings.circuit.connect_timeout * 2))
            .recycle_timeout(Some(settings.circuit.connect_timeout))
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .map_err(|e| format!("cannot build the database pool: {e}"))?;
        Ok(Db {
            pool,
            counters,
            admitted: Default::default(),
            epoch: Default::default(),
            circuit,
            max_waiting: settings.max_waiting,
        })
    }

    /// The circuit in front of the database (readiness, metrics, the change listener).
    pub fn circuit(&self) -> &Arc<Circuit> {
        &self.circuit
    }

    /// What the circuit counted.
    pub fn circuit_stats(&self) -> CircuitStats {
        self.circuit.stats()
    }

    /// Runs `f` in one transaction whose `app.tenant_id` setting is the caller's tenant, for
    /// row-level security. `set_config(.., true)` is transaction-local: nothing survives on
    /// the pooled connection.
    pub async fn transaction<T, F>(
        &self,
        rc: &RequestContext,
        read_only: bool,
        f: F,
    ) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: for<'r> FnOnce(&'r mut Conn) -> BoxFuture<'r, Result<T, ApiError>> + Send + 'static,
    {
        self.scoped_transaction(Who::Caller(Caller::of(rc)), read_only, f)
            .await
    }

    /// The same for a tenant known before there is a caller (signing in).
    pub async fn transaction_in<T, F>(
        &self,
        tenant: uuid::Uuid,
        read_only: bool,
        f: F,
    ) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: for<'r> FnOnce(&'r mut Conn) -> BoxFuture<'r, Result<T, ApiError>> + Send + 'static,
    {
        self.scoped_transaction(Who::Tenant(tenant), read_only, f)
            .await
    }

    /// A transaction entered as `who`: `BEGIN` and the entry are pipelined (one round trip),
    /// then `f`, then `COMMIT` (awaited: an acknowledged write is committed) or `ROLLBACK`.
    /// A transaction left half-way (the request dropped mid-write) closes its connection,
    /// which PostgreSQL rolls back; it is never pooled inside a transaction.
    async fn scoped_transaction<T, F>(&self, who: Who, read_only: bool, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: for<'r> FnOnce(&'r mut Conn) -> BoxFuture<'r, Result<T, ApiError>> + Send + 'static,
    {
        let mut tx = Transaction::new(self.get().await?);
        let sql = if read_only {
            "BEGIN READ ONLY"
        } else {
            "BEGIN"
        };
        let result = match begin(tx.conn()?, sql, &who, Plans::Auto, self).await {
            Ok(()) => f(tx.conn_mut()?).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(v) => tx.end(true).await.map(|()| v),
            // The error that ended it is the one to report, whatever the rollback says.
            Err(e) => {
                let _ = tx.end(false).await;
                Err(e)
            }
        }
    }
    /// Whether the caller may still act (tenant active, user active, token not revoked,
    /// session not ended): `gateway_enter` alone, one statement, no transaction around it.
    pub async fn check_caller(&self, rc: &RequestContext) -> Result<(), ApiError> {
        enter(
            &*self.get().await?,
            &Who::Caller(Caller::of(rc)),
            Plans::Auto,
            self,
        )
        .await
    }

    /// Whether the caller of an open socket still may act, as `check_caller` tells, where a
    /// credential epoch read at most `within` ago may stand for `gateway_enter`: the epoch
    /// of the caller's last admission, unchanged since, means none of the rows its verdict
    /// depends on changed (see [`Admitted`]). 10,000 sockets rechecking every 30 s were ~370
    /// round trips a second; with one epoch read per `within` for all of them, they are that
    /// one statement. A change is therefore seen up to `within` late: a socket's recheck
    /// interval leaves room for it.
    pub async fn recheck_caller(
        &self,
        rc: &RequestContext,
        within: Duration,
    ) -> Result<(), ApiError> {
        let caller = Caller::of(rc);
        if let Some(known) = self.admitted.epoch(&caller) {
            if self.recent_epoch(within).await == Some(known) {
                self.counters
                    .admissions_reused
                    .fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
        }
        self.check_caller(rc).await
    }

    /// The credential epoch, read at most `within` ago (one reader at a time reads it anew;
    /// the others wait for its value). `None` when the database cannot tell right now: then
    /// those that waited do not queue up for reads of their own (each of 10,000 sockets
    /// waiting out the pool in turn), they fall back to their own checks side by side.
    async fn recent_epoch(&self, within: Duration) -> Option<i64> {
        #[derive(diesel::QueryableByName)]
        struct Epoch {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let asked = std::time::Instant::now();
        let mut seen = self.epoch.0.lock().await;
        if let Some((n, _)) = seen.value.filter(|(_, at)| at.elapsed() <= within) {
            return Some(n);
        }
        if seen.tried.is_some_and(|t| t >= asked) {
            return None;
        }
        // Timed from before the read: the value is at least this old.
        let started = std::time::Instant::now();
        seen.tried = Some(started);
        let mut conn = self.get().await.ok()?;
        let e: Epoch = diesel::sql_query("SELECT n FROM gateway_credential_epoch")
            .get_result(&mut *conn)
            .await
            .ok()?;
        seen.value = Some((e.n, started));
        Some(e.n)
    }

    /// Runs one read statement in a read-only transaction of `tenant` alone, as no caller in
    /// particular: what several callers share (a subscription feed) must not fail because one
    /// of them signed out. Database errors are reported as errors of `entity`.
    pub async fn read_in<T>(
        &self,
        tenant: uuid::Uuid,
        entity: &'static str,
        b: sql::SqlBuilder,
    ) -> Result<Vec<T>, ApiError>
    where
        T: diesel::deserialize::FromSqlRow<diesel::sql_types::Untyped, diesel::pg::Pg>
            + Send
            + 'static,
    {
        ReadSession::new(self.clone(), Who::Tenant(tenant), Snapshot::PerStatement)
            .read(entity, b)
            .await
    }

    /// Runs one read statement in a read-only transaction of the caller's tenant; database
    /// errors are reported as errors of `entity`.
    pub async fn read<T>(
        &self,
        rc: &RequestContext,
        entity: &'static str,
        b: sql::SqlBuilder,
    ) -> Result<Vec<T>, ApiError>
    where
        T: diesel::deserialize::FromSqlRow<diesel::sql_types::Untyped, diesel::pg::Pg>
            + Send
            + 'static,
    {
        self.session(rc, Snapshot::PerStatement)
            .read(entity, b)
            .await
    }

    /// A session for the reads of one request of `rc` (see [`session`]).
    pub fn session(&self, rc: &RequestContext, snapshot: Snapshot) -> ReadSession {
        ReadSession::new(self.clone(), Who::Caller(Caller::of(rc)), snapshot)
    }

    /// SQL statements sent through this pool so far (tests use it to prove batching).
    pub fn statements(&self) -> u64 {
        AtomicU64::load(&self.counters.statements, Ordering::Relaxed)
    }

    /// Rows the reads of request sessions returned so far (tests use it to prove what a plan
    /// does not read).
    pub fn rows_read(&self) -> u64 {
        AtomicU64::load(&self.counters.rows_read, Ordering::Relaxed)
    }

    /// Callers entered so far on an earlier admission, without `gateway_enter`'s lookups
    /// ([`Admitted`]).
    pub fn admissions_reused(&self) -> u64 {
        AtomicU64::load(&self.counters.admissions_reused, Ordering::Relaxed)
    }

    /// Round trips to the server so far: statements sent while nothing else of their
    /// connection was in flight.
    pub fn round_trips(&self) -> u64 {
        AtomicU64::load(&self.counters.round_trips, Ordering::Relaxed)
    }

    /// Runs `work` (writes a request leaves behind, such as a caller's `lastActiveAt`) on a
    /// task of its own, counted as a lease from now until it ends: a test that waits for
    /// [`settled`](Self::settled) after the request does not count its statements later,
    /// in another request's tally.
    pub fn background<F>(&self, work: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.counters.leases.fetch_add(1, Ordering::Relaxed);
        let released = session::Released(self.counters.clone());
        tokio::spawn(async move {
            let _released = released;
            work.await;
        });
    }

    /// Waits until every session has ended its transaction and given its connection back
    /// (they commit after the response), and every [`background`](Self::background) work has
    /// ended: counts read after this are complete.
    pub async fn settled(&self) {
        for _ in 0..500 {
            if AtomicU64::load(&self.counters.leases, Ordering::Relaxed) == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// A pooled connection: at once while the circuit is open or too many wait already
    /// (`SERVICE_UNAVAILABLE`), else within the pool's wait.
    pub async fn get(&self) -> Result<Object<Conn>, ApiError> {
        if self.circuit.is_open() {
            // A connection still pooled may serve (a server out of connection slots opens
            // the circuit too); none is dialled and nobody waits.
            if let Ok(conn) = self.pool.timeout_get(&self.no_wait()).await {
                return Ok(conn);
            }
            self.circuit.check()?;
        }
        let waiting = &self.counters.waiting;
        if waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting {
            waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(self.busy("too many requests wait for a database connection"));
        }
        let got = self.pool.get().await;
        waiting.fetch_sub(1, Ordering::AcqRel);
        got.map_err(|e| match e {
            PoolError::Timeout(deadpool::managed::TimeoutType::Wait) => {
                self.busy("no database connection freed up in time")
            }
            // The dial failed (and opened the circuit), or the circuit was open.
            PoolError::Backend(_)
            | PoolError::Timeout(_)
            | PoolError::PostCreateHook(_)
            | PoolError::Closed => {
                ApiError::unavailable("the database is unavailable; retry shortly")
            }
            PoolError::NoRuntimeSpecified => {
                ApiError::internal(format!("database connection: {e}"))
            }
        })
    }

    /// The pool's timeouts, but no wait for a busy pool: an idle connection or an error.
    fn no_wait(&self) -> deadpool::managed::Timeouts {
        deadpool::managed::Timeouts {
            wait: Some(Duration::ZERO),
            ..self.pool.timeouts()
        }
    }

    /// Every connection is busy: counted, logged once per interval, `SERVICE_UNAVAILABLE`.
    fn busy(&self, why: &'static str) -> ApiError {
        self.counters.wait_timeouts.fetch_add(1, Ordering::Relaxed);
        if crate::logs::admit(crate::logs::Level::Warn, "db.pool", why) {
            let s = self.pool.status();
            tracing::warn!(
                pool = s.max_size,
                waiting = s.waiting,
                "a request was answered SERVICE_UNAVAILABLE: {why} (every one of {} is busy)",
                s.max_size
            );
        }
        ApiError::unavailable("every database connection is busy; retry shortly")
    }

    /// The pool's connections: held, idle, and requests waiting for one.
    pub fn pool_status(&self) -> PoolStatus {
        let s = self.pool.status();
        PoolStatus {
            size: s.size,
            available: s.available,
            waiting: s.waiting,
            wait_timeouts: AtomicU64::load(&self.counters.wait_timeouts, Ordering::Relaxed),
        }
    }

    /// The newest committed change event's sequence number, for the outbox's lag.
    pub async fn newest_event(&self) -> Option<i64> {
        #[derive(diesel::QueryableByName)]
        struct Newest {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            seq: i64,
        }
        if self.circuit.is_open() {
            return None;
        }
        // A scrape must not queue behind requests for a busy pool: an idle connection or
        // nothing.
        let mut conn = self.pool.timeout_get(&self.no_wait()).await.ok()?;
        diesel::sql_query("SELECT gateway_outbox_max_seq() AS seq")
            .get_result::<Newest>(&mut conn)
            .await
            .ok()
            .map(|n| n.seq)
    }

    /// For `/readyz`: can a connection run a query right now? Not while the circuit is open
    /// (answered at once).
    pub async fn ready(&self) -> bool {
        if self.circuit.is_open() {
            return false;
        }
        match self.pool.get().await {
            Ok(mut conn) => diesel::sql_query("SELECT 1")
                .execute(&mut conn)
                .await
                .is_ok(),
            Err(_) => false,
        }
    }
}

/// A pooled connection inside a transaction that was begun on it (a request's writes, or a
/// read session). It goes back to the pool only through [`Transaction::end`]; dropped
/// before (a request cancelled mid-way, a task dropped at shutdown), or when ending fails,
/// the connection is closed, which ends the transaction on the server.
pub(crate) struct Transaction(Option<Object<Conn>>);

impl Transaction {
    pub(crate) fn new(conn: Object<Conn>) -> Self {
        Transaction(Some(conn))
    }

    pub(crate) fn conn(&self) -> Result<&Conn, ApiError> {
        self.0
            .as_deref()
            .ok_or_else(|| ApiError::internal("the transaction's connection is gone"))
    }

    fn conn_mut(&mut self) -> Result<&mut Conn, ApiError> {
        self.0
            .as_deref_mut()
            .ok_or_else(|| ApiError::internal("the transaction's connection is gone"))
    }

    /// Gives the connection back to the pool, its transaction ended already.
    pub(crate) fn release(mut self) {
        drop(self.0.take());
    }

    /// Commits (or rolls back) and gives the connection back to the pool.
    pub(crate) async fn end(mut self, commit: bool) -> Result<(), ApiError> {
        let Some(conn) = self.0.take() else {
            return Ok(());
        };
        let mut c: &Conn = &conn;
        let sql = if commit { "COMMIT" } else { "ROLLBACK" };
        match statement::Statement::fixed(sql).execute(&mut c).await {
            Ok(_) => Ok(()),
            Err(e) => {
                // Its transaction's fate is unknown: the connection is closed, not pooled.
                drop(Object::take(conn));
                Err(ApiError::from(e))
            }
        }
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take() {
            drop(Object::take(conn));
        }
    }
}

/// Begins a transaction on `conn` with `sql` and enters it as `who`, both in one round trip
/// (pipelined: sent together, answered in order). Statements issued on `conn` while this is
/// pending follow them in the same round trip.
pub(crate) async fn begin(
    mut conn: &Conn,
    sql: &'static str,
    who: &Who,
    plans: Plans,
    db: &Db,
) -> Result<(), ApiError> {
    let began = statement::Statement::fixed(sql).execute(&mut conn);
    let (began, entered) = futures::join!(began, enter(conn, who, plans, db));
    began.map_err(ApiError::from).and(entered)
}

/// Runs a statement returning rows; database errors are reported as errors of `entity`.
/// Takes the connection shared, so that statements of one session can be pipelined.
pub(crate) async fn load<T>(
    mut conn: &Conn,
    b: sql::SqlBuilder,
    entity: &'static str,
) -> Result<Vec<T>, ApiError>
where
    T: diesel::deserialize::FromSqlRow<diesel::sql_types::Untyped, diesel::pg::Pg> + Send + 'static,
{
    b.into_query()
        .load::<T>(&mut conn)
        .await
        .map_err(|e| ApiError::from_db(e, entity, crate::graphql::meta::constraints()))
}

/// Scopes the rest of the current transaction on `conn` to `tenant` (see [`enter`]).
pub async fn scope_to_tenant(mut conn: &Conn, tenant: uuid::Uuid) -> QueryResult<()> {
    let mut b = sql::SqlBuilder::new("SELECT set_config('app.tenant_id', ");
    b.bind(
        Value::Text(tenant.to_string()),
        crate::graphql::meta::ColumnType::Text,
        false,
    );
    b.push(", true)");
    b.into_query().execute(&mut conn).await.map(|_| ())
}

/// Who a request transaction acts for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caller {
    tenant: uuid::Uuid,
    user: uuid::Uuid,
    operator_generation: Option<i64>,
    session: Option<uuid::Uuid>,
    /// When its token expires (unix seconds).
    expires_at: Option<i64>,
}

impl Caller {
    fn of(rc: &RequestContext) -> Self {
        Caller {
            tenant: rc.tenant_id,
            user: rc.user_id,
            operator_generation: rc.operator_generation,
            session: rc.session_id,
            expires_at: rc.expires_at,
        }
    }

    /// What `gateway_enter`'s verdict depends on.
    fn key(&self) -> AdmittedKey {
        (
            self.tenant,
            self.user,
            self.operator_generation,
            self.session,
        )
    }
}

type AdmittedKey = (uuid::Uuid, uuid::Uuid, Option<i64>, Option<uuid::Uuid>);

/// Callers `gateway_enter` admitted, each with the credential epoch its statement read.
///
/// `gateway_enter` answers from four kinds of rows (the tenant's and the user's status, the
/// tenant's operator-token generation, the token's sign-in session), and every change to one
/// of them moves `gateway_credential_epoch` on in the changing transaction
/// (migrations/2026-12-02-000000_credential_epoch). A caller's entering statement reads the
/// epoch in its own snapshot and runs `gateway_enter` only when the epoch is not the one of
/// the caller's last admission: the same epoch means that none of those rows changed since,
/// so the verdict would be the same. Its lookups were most of PostgreSQL's time for a read by
/// id (docs/performance.md). What no row records, time, is covered by the token: a session's
/// token never outlives its session, and an admission is reused only before the token
/// expires.
pub(crate) struct Admitted(Kept<AdmittedKey, i64>);

/// The credential epoch and when it was read (see [`Db::recheck_caller`]), and when a read
/// was last tried; the lock is held across a read so that one socket reads it for all that
/// wait.
#[derive(Default)]
pub(crate) struct RecentEpoch(tokio::sync::Mutex<EpochSeen>);

#[derive(Default)]
pub(crate) struct EpochSeen {
    value: Option<(i64, std::time::Instant)>,
    tried: Option<std::time::Instant>,
}

/// Admissions remembered at most; beyond, they are all forgotten (and found again).
const ADMITTED_MAX: usize = 65_536;

impl Default for Admitted {
    fn default() -> Self {
        Admitted(Kept::new(ADMITTED_MAX))
    }
}

impl Admitted {
    /// The epoch of `c`'s last admission, if it may stand for `gateway_enter`'s lookups.
    fn epoch(&self, c: &Caller) -> Option<i64> {
        if c.session.is_some() {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .ok()?
                .as_secs() as i64;
            if now >= c.expires_at? {
                return None;
            }
        }
        self.0.get(&c.key())
    }

    fn admit(&self, c: &Caller, epoch: i64) {
        self.0.keep(c.key(), epoch);
    }
}

/// What a transaction is entered as: a caller, or a tenant before there is one (signing in)
/// or shared by many (a subscription feed).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Who {
    Caller(Caller),
    Tenant(uuid::Uuid),
}

/// How PostgreSQL plans a transaction's prepared statements.
///
/// Under `auto`, PostgreSQL plans a prepared statement afresh for its values (a custom plan)
/// until a generic plan looks no dearer. For the engine's relation reads it never does: the
/// generic plan assumes ten parents for `unnest($1)`, the custom one sees the real count, so
/// one parent (a by-id root's relation) was planned again at every execution, ~0.1 ms of
/// PostgreSQL's time against ~0.05 ms to run it. A statement made only of keys (ids, the
/// tenant, parents, page sizes, cursors) has one good plan whatever the values, so a read
/// whose statements are all of that kind asks for generic plans. Statements with a client's
/// `where` keep `auto`: their values may change which plan is good (docs/performance.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Plans {
    #[default]
    Auto,
    Generic,
}

#[derive(diesel::QueryableByName)]
struct Entered {
    #[diesel(sql_type = diesel::sql_types::Text)]
    verdict: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    epoch: i64,
}

/// Enters a transaction as `who`. The row-level security policies read `app.tenant_id`;
/// `set_config(.., true)` is transaction-local, so it ends with the transaction (commit,
/// rollback, or a connection dropped mid-way) and never outlives it on a pooled connection.
///
/// A caller is entered through `gateway_enter` (migrations/2026-12-01-000000_credential_checks),
/// which sets the tenant and, in the same statement, refuses a caller whose tenant is
/// suspended, whose account is inactive, whose operator token was revoked or whose sign-in
/// session ended since the token was issued. The same statement sets how PostgreSQL plans
/// the transaction's statements ([`Plans`]).
pub(crate) async fn enter(
    mut conn: &Conn,
    who: &Who,
    plans: Plans,
    db: &Db,
) -> Result<(), ApiError> {
    let caller = match who {
        Who::Tenant(tenant) => return Ok(scope_to_tenant(conn, *tenant).await?),
        Who::Caller(c) => c,
    };
    use crate::graphql::meta::ColumnType;
    let known = db.admitted.epoch(caller);
    // An unchanged epoch: the tenant alone is set, and the verdict is the one of the last
    // admission. Otherwise (or for a caller new to this gateway) gateway_enter decides, in the
    // same snapshot as the epoch read beside it.
    let mut b = sql::SqlBuilder::new("SELECT CASE WHEN e.n = ");
    b.bind(Value::from(known), ColumnType::BigInt, true);
    b.push("::bigint AND set_config('app.tenant_id', ");
    b.bind(Value::Uuid(caller.tenant), ColumnType::Uuid, false);
    b.push("::text, true) IS NOT NULL THEN 'ok' ELSE gateway_enter(");
    b.bind(Value::Uuid(caller.tenant), ColumnType::Uuid, false);
    b.push(", ");
    b.bind(Value::Uuid(caller.user), ColumnType::Uuid, false);
    b.push(", ");
    b.bind(
        Value::from(caller.operator_generation),
        ColumnType::BigInt,
        false,
    );
    b.push("::bigint, ");
    b.bind(Value::from(caller.session), ColumnType::Uuid, false);
    b.push("::uuid) END AS verdict, e.n AS epoch");
    if plans == Plans::Generic {
        b.push(", set_config('plan_cache_mode', 'force_generic_plan', true) AS plans");
    }
    b.push(" FROM gateway_credential_epoch e");
    let entered: Entered = b.into_query().get_result(&mut conn).await?;
    if entered.verdict == "ok" {
        if known == Some(entered.epoch) {
            db.counters
                .admissions_reused
                .fetch_add(1, Ordering::Relaxed);
        } else {
            db.admitted.admit(caller, entered.epoch);
        }
    }
    match entered.verdict.as_str() {
        "ok" => Ok(()),
        "tenant" => Err(ApiError::unauthenticated("your tenant is suspended")),
        "user" => Err(ApiError::unauthenticated("your account is not active")),
        "revoked" => Err(ApiError::unauthenticated("this token has been revoked")),
        "signed_out" => Err(ApiError::unauthenticated(
            "the session of this token has ended: sign in again",
        )),
        other => Err(ApiError::internal(format!(
            "gateway_enter answered {other}"
        ))),
    }
}
