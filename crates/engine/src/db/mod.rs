//! PostgreSQL access for requests: the connection pool and the transactions every request
//! runs in, entered as its caller for row-level security; the SQL builder and its values.

pub mod sql;
pub mod value;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use diesel::connection::InstrumentationEvent;

use diesel::result::QueryResult;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use futures::future::{BoxFuture, FutureExt};

use crate::caller::RequestContext;
use crate::error::ApiError;

pub type Conn = AsyncPgConnection;
pub type DbFuture<'a, T> = BoxFuture<'a, QueryResult<T>>;

/// The pool every request borrows its connection from.
#[derive(Clone)]
pub struct Db {
    pool: Pool<Conn>,
    statements: Arc<AtomicU64>,
}

impl Db {
    /// A pool of `size` connections whose statements PostgreSQL cancels after
    /// `statement_timeout`, so that no request can hold a pooled connection for long.
    pub fn connect(url: &str, size: usize, statement_timeout: Duration) -> Result<Db, String> {
        let timeout_ms = statement_timeout.as_millis().max(1);
        let statements = Arc::new(AtomicU64::new(0));
        let counter = statements.clone();
        let mut config = ManagerConfig::default();
        // No ping on every checkout: a round trip per request saved; a broken connection
        // fails its query and is dropped by the pool.
        config.recycling_method = RecyclingMethod::Fast;
        config.custom_setup = Box::new(move |url| {
            let counter = counter.clone();
            async move {
                let mut conn = Conn::establish(url).await?;
                conn.batch_execute(&format!("SET statement_timeout = {timeout_ms}"))
                    .await
                    .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                conn.set_instrumentation(move |event: InstrumentationEvent<'_>| {
                    if let InstrumentationEvent::StartQuery { .. } = event {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                });
                Ok(conn)
            }
            .boxed()
        });
        let manager = AsyncDieselConnectionManager::<Conn>::new_with_config(url, config);
        let pool = Pool::builder(manager)
            .max_size(size)
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(10)))
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .map_err(|e| format!("cannot build the database pool: {e}"))?;
        Ok(Db { pool, statements })
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
        self.scoped_transaction(rc.tenant_id, Some(Caller::of(rc)), read_only, f)
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
        self.scoped_transaction(tenant, None, read_only, f).await
    }

    /// A transaction scoped to `tenant`, entered as `caller` when there is one.
    async fn scoped_transaction<T, F>(
        &self,
        tenant: uuid::Uuid,
        caller: Option<Caller>,
        read_only: bool,
        f: F,
    ) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: for<'r> FnOnce(&'r mut Conn) -> BoxFuture<'r, Result<T, ApiError>> + Send + 'static,
    {
        let mut pooled = self.get().await?;
        let conn: &mut Conn = &mut pooled;
        let body = async move |conn: &mut Conn| {
            match caller {
                Some(c) => enter(conn, c).await?,
                None => scope_to_tenant(conn, tenant).await?,
            }
            f(conn).await
        };
        if read_only {
            conn.build_transaction().read_only().run(body).await
        } else {
            conn.transaction(body).await
        }
    }

    /// Whether the caller may still act (tenant active, user active, token not revoked,
    /// session not ended): `gateway_enter` alone, one statement, no transaction around it.
    pub async fn check_caller(&self, rc: &RequestContext) -> Result<(), ApiError> {
        enter(&mut *self.get().await?, Caller::of(rc)).await
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
        self.transaction_in(tenant, true, move |conn| load(conn, b, entity).boxed())
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
        self.transaction(rc, true, move |conn| load(conn, b, entity).boxed())
            .await
    }

    /// SQL statements sent through this pool so far (tests use it to prove batching).
    pub fn statements(&self) -> u64 {
        AtomicU64::load(&self.statements, Ordering::Relaxed)
    }

    pub async fn get(&self) -> Result<Object<Conn>, ApiError> {
        self.pool
            .get()
            .await
            .map_err(|e| ApiError::internal(format!("database connection: {e}")))
    }

    /// For `/readyz`: can a connection run a query right now?
    pub async fn ready(&self) -> bool {
        match self.pool.get().await {
            Ok(mut conn) => diesel::sql_query("SELECT 1")
                .execute(&mut conn)
                .await
                .is_ok(),
            Err(_) => false,
        }
    }
}

/// Scopes the rest of the current transaction on `conn` to `tenant`: the row-level security
/// policies read this setting. `set_config(.., true)` is transaction-local, so it ends with
/// the transaction (commit, rollback, or a connection dropped mid-way) and never outlives it
/// on a pooled connection.
pub async fn scope_to_tenant(conn: &mut Conn, tenant: uuid::Uuid) -> QueryResult<()> {
    diesel::sql_query("SELECT set_config('app.tenant_id', $1, true)")
        .bind::<diesel::sql_types::Text, _>(tenant.to_string())
        .execute(conn)
        .await
        .map(|_| ())
}

async fn load<T>(
    conn: &mut Conn,
    b: sql::SqlBuilder,
    entity: &'static str,
) -> Result<Vec<T>, ApiError>
where
    T: diesel::deserialize::FromSqlRow<diesel::sql_types::Untyped, diesel::pg::Pg> + Send + 'static,
{
    b.into_query()
        .load::<T>(conn)
        .await
        .map_err(|e| ApiError::from_db(e, entity, crate::graphql::meta::constraints()))
}

/// Who a request transaction acts for.
#[derive(Debug, Clone, Copy)]
struct Caller {
    tenant: uuid::Uuid,
    user: uuid::Uuid,
    operator_generation: Option<i64>,
    session: Option<uuid::Uuid>,
}

impl Caller {
    fn of(rc: &RequestContext) -> Self {
        Caller {
            tenant: rc.tenant_id,
            user: rc.user_id,
            operator_generation: rc.operator_generation,
            session: rc.session_id,
        }
    }
}

/// Enters a request's transaction: scopes it to the caller's tenant (as [`scope_to_tenant`])
/// and refuses a caller whose tenant is suspended, whose account is inactive, whose operator
/// token was revoked or whose sign-in session ended since the token was issued, in the same
/// round trip
/// (migrations/2026-12-01-000000_credential_checks).
async fn enter(conn: &mut Conn, caller: Caller) -> Result<(), ApiError> {
    #[derive(diesel::QueryableByName)]
    struct Entered {
        #[diesel(sql_type = diesel::sql_types::Text)]
        verdict: String,
    }
    let entered: Entered = diesel::sql_query("SELECT gateway_enter($1, $2, $3, $4) AS verdict")
        .bind::<diesel::sql_types::Uuid, _>(caller.tenant)
        .bind::<diesel::sql_types::Uuid, _>(caller.user)
        .bind::<diesel::sql_types::Nullable<diesel::sql_types::BigInt>, _>(
            caller.operator_generation,
        )
        .bind::<diesel::sql_types::Nullable<diesel::sql_types::Uuid>, _>(caller.session)
        .get_result(conn)
        .await?;
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
