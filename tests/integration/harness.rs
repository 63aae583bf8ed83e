//! The test harness: one PostgreSQL for the run (a private cluster, or `TEST_DATABASE_URL`),
//! one migrated template database, and a fresh database cloned from it for every test, so
//! tests run in parallel and never see each other's rows.

use std::path::PathBuf;
use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use gateway::auth::{JwtKeys, OperatorGrant, Role};
use gateway::bootstrap::{Instance, Settings};
use gateway::config::{AuthSettings, Limits};
use gateway::db::cluster::{ClusterOptions, PrivateCluster};
use gateway::db::{self, Db};
use gateway::tenants;
use http_body_util::BodyExt;
use serde_json::{json, Value as Json};
use tower::ServiceExt;
use uuid::Uuid;

pub const SECRET: &[u8] = b"integration-test-secret-0123456789abcdef";

struct Server {
    /// URL of a maintenance database on the test server, without the database name.
    base: String,
    template: String,
}

static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();

fn project() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A hash of the migrations, so a changed schema gets a new template.
fn migrations_hash() -> String {
    fn walk(dir: &std::path::Path, out: &mut Vec<(String, Vec<u8>)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if let Ok(bytes) = std::fs::read(&p) {
                out.push((p.display().to_string(), bytes));
            }
        }
    }
    let mut files = Vec::new();
    walk(&project().join("migrations"), &mut files);
    files.sort();
    // FNV-1a: stable across runs and platforms.
    let mut h: u64 = 0xcbf29ce484222325;
    for (name, bytes) in files {
        for b in name.bytes().chain(bytes) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100000001b3);
        }
    }
    format!("{h:016x}")
}

fn base_of(url: &str) -> String {
    match url.rfind('/') {
        Some(i)
            if url[..i].contains("://") && url[..i].len() > url.find("://").unwrap_or(0) + 3 =>
        {
            url[..i].to_string()
        }
        _ => url.to_string(),
    }
}

fn setup() -> Result<Server, String> {
    let base = match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => base_of(url.trim()),
        _ => {
            let opts = ClusterOptions {
                unsafe_fast: true,
                max_connections: 400,
                ..ClusterOptions::default()
            };
            let cluster = PrivateCluster::ensure(&project().join(".data/test-postgres"), &opts)
                .map_err(|e| e.to_string())?;
            base_of(&cluster.url("postgres"))
        }
    };
    let template = format!("gateway_tmpl_{}", migrations_hash());
    let admin = format!("{base}/postgres");
    // A runtime of its own: this runs once, inside whichever test gets here first.
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    rt.block_on(async {
        use diesel_async::{AsyncConnection, SimpleAsyncConnection};
        let mut conn = diesel_async::AsyncPgConnection::establish(&admin)
            .await
            .map_err(|e| e.to_string())?;
        // Only one process builds the template; the others wait here.
        conn.batch_execute("SELECT pg_advisory_lock(99173)")
            .await
            .map_err(|e| e.to_string())?;
        drop_leftovers(&mut conn).await?;
        db::create_database(&admin, &template, None).await?;
        let applied = db::migrate(&format!("{base}/{template}")).await;
        conn.batch_execute("SELECT pg_advisory_unlock(99173)")
            .await
            .map_err(|e| e.to_string())?;
        applied?;
        Ok::<(), String>(())
    })?;
    Ok(Server { base, template })
}

/// Drops the test databases of earlier runs whose process is gone.
async fn drop_leftovers(conn: &mut diesel_async::AsyncPgConnection) -> Result<(), String> {
    use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
    #[derive(diesel::QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        datname: String,
    }
    let names: Vec<Name> =
        diesel::sql_query("SELECT datname FROM pg_database WHERE datname LIKE 'test\\_%'")
            .load(conn)
            .await
            .map_err(|e| e.to_string())?;
    for Name { datname } in names {
        let pid = datname
            .split('_')
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        let alive = pid.is_some_and(|p| std::path::Path::new(&format!("/proc/{p}")).exists());
        if !alive {
            conn.batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{datname}\" WITH (FORCE)"
            ))
            .await
            .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// Sends a request through `router`; returns status, content type and body.
pub async fn send_to(router: &Router, req: Request<Body>) -> (StatusCode, String, String) {
    let res = router.clone().oneshot(req).await.expect("router");
    let status = res.status();
    let ctype = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    (status, ctype, String::from_utf8_lossy(&bytes).into_owned())
}

/// A GraphQL POST, with a bearer token and from client address `ip` when given.
pub fn graphql_request(
    token: Option<&str>,
    query: &str,
    variables: Json,
    ip: Option<&str>,
) -> Request<Body> {
    let body = json!({ "query": query, "variables": variables }).to_string();
    let mut req = Request::builder()
        .method(Method::POST)
        .uri("/graphql")
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(token) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let mut req = req.body(Body::from(body)).expect("request");
    if let Some(ip) = ip {
        let addr: std::net::SocketAddr = format!("{ip}:40000").parse().expect("address");
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(addr));
    }
    req
}

/// A gateway instance as `serve` builds it: pool, change listener, schema and router.
async fn instance(
    serving_url: &str,
    keys: &JwtKeys,
    pool: db::PoolSettings,
    limits: Limits,
    allowed_origins: Vec<String>,
    draining: tokio::sync::watch::Receiver<bool>,
) -> (Router, Db) {
    // The same wiring as `serve`.
    let instance = Instance::start(Settings {
        serving_url: serving_url.to_string(),
        keys: keys.clone(),
        pool,
        event_retention: std::time::Duration::from_secs(3600),
        limits,
        auth: test_auth(),
        allowed_origins,
        packages_dir: None,
        sweep_every: None,
        persisted: Default::default(),
        metrics_public: false,
    })
    .await
    .expect("gateway instance");
    (instance.router(draining), instance.db)
}

/// Sign-in as by default, with a caller's activity written at most hourly: after its first
/// write, none lands in the middle of a test's statement count, however slowly the test runs.
fn test_auth() -> AuthSettings {
    AuthSettings {
        activity_every: std::time::Duration::from_secs(3600),
        ..AuthSettings::default()
    }
}

/// The tests' pool: `size` connections, a 15 s statement timeout, the rest as by default.
pub fn pool_settings(size: usize) -> db::PoolSettings {
    db::PoolSettings::new(size, std::time::Duration::from_secs(15))
}

/// `url` acting as the serving role: the login stays the owner's (so the tests need no
/// password for it), the session's role is `gateway_app`.
pub fn serving(url: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-c%20role%3D{}", db::SERVING_ROLE)
}

pub struct Tenant {
    pub id: Uuid,
    pub admin_id: Uuid,
    pub admin: String,
    pub user_id: Uuid,
    pub user: String,
    /// The admin as the platform operator (`gateway token --platform`): writes global rows.
    pub platform: String,
}

pub struct TestApp {
    pub router: Router,
    pub keys: JwtKeys,
    /// The test database as its owner (a superuser): for set-up and direct checks.
    pub url: String,
    /// The same database as the gateway serves it: acting as the serving role, which
    /// row-level security binds.
    pub serving_url: String,
    pub db: Db,
    pub a: Tenant,
    pub b: Tenant,
    /// Send true to make the instance drain as on SIGTERM.
    pub drain: tokio::sync::watch::Sender<bool>,
}

impl TestApp {
    /// An app whose planned reads are checked against the executor's answers on every
    /// query (`GATEWAY_PLANNED_READS=verify`): a difference fails the request.
    pub async fn new() -> TestApp {
        TestApp::with_limits(Limits {
            planned_reads: gateway::config::PlannedReads::Verify,
            ..Limits::default()
        })
        .await
    }

    pub async fn with_limits(limits: Limits) -> TestApp {
        TestApp::with_keys(JwtKeys::hs256(SECRET), limits).await
    }

    /// Verifying tokens with `keys` (which must still sign with `SECRET`), e.g. with a JWKS.
    pub async fn with_keys(keys: JwtKeys, limits: Limits) -> TestApp {
        let server = SERVER
            .get_or_init(|| {
                std::thread::spawn(setup)
                    .join()
                    .unwrap_or_else(|_| Err("setup panicked".into()))
            })
            .as_ref()
            .expect("test database server");
        // The pid lets a later run drop what this process leaves behind.
        let name = format!("test_{}_{}", std::process::id(), Uuid::new_v4().simple());
        db::create_database(
            &format!("{}/postgres", server.base),
            &name,
            Some(&server.template),
        )
        .await
        .expect("create test database");
        let url = format!("{}/{name}", server.base);
        let serving_url = serving(&url);
        let drain = tokio::sync::watch::channel(false).0;
        let (router, pool) = instance(
            &serving_url,
            &keys,
            pool_settings(8),
            limits,
            vec!["https://app.example".into()],
            drain.subscribe(),
        )
        .await;
        let mut app = TestApp {
            router,
            keys,
            url,
            serving_url,
            db: pool,
            a: Tenant::empty(),
            b: Tenant::empty(),
            drain,
        };
        app.a = app.tenant("alpha").await;
        app.b = app.tenant("beta").await;
        app
    }

    /// Serves the router on a free loopback port (for clients that need a real socket).
    pub async fn listen(&self) -> std::net::SocketAddr {
        serve(self.router.clone()).await
    }

    /// Serves the router with `extra`'s routes merged in, on a free loopback port: pages a
    /// test serves under the gateway's own origin (as a reverse proxy in front of both would).
    pub async fn listen_with(&self, extra: Router) -> std::net::SocketAddr {
        serve(self.router.clone().merge(extra)).await
    }

    /// Another gateway instance over the same database, with its own pool and change
    /// listener, served on a port of its own.
    pub async fn second_instance(&self) -> std::net::SocketAddr {
        let (router, _) = self.instance_with_pool(4).await;
        serve(router).await
    }

    /// Another gateway instance (router and pool) over the same database whose pool holds
    /// `size` connections.
    pub async fn instance_with_pool(&self, size: usize) -> (Router, Db) {
        self.instance_with_pool_settings(pool_settings(size)).await
    }

    /// Another gateway instance (router and pool) over the same database with a pool as
    /// `pool` says (size, waits, reconnection).
    pub async fn instance_with_pool_settings(&self, pool: db::PoolSettings) -> (Router, Db) {
        instance(
            &self.serving_url,
            &self.keys,
            pool,
            Limits::default(),
            Vec::new(),
            tokio::sync::watch::channel(false).1,
        )
        .await
    }

    /// `gateway serve` (the built binary) on this database, as `serve` runs in production:
    /// serving through a login of `gateway_app`, migrating as the owner. None when
    /// `TEST_DATABASE_URL` gives no login for the serving role.
    pub async fn serve_command(&self) -> Option<tokio::process::Command> {
        let rest = self.url.strip_prefix("postgres://postgres@")?;
        db::allow_serving_login(&self.url)
            .await
            .expect("serving role login");
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_gateway"));
        cmd.arg("serve")
            .env(
                "DATABASE_URL",
                format!("postgres://{}@{rest}", db::SERVING_ROLE),
            )
            .env("GATEWAY_OWNER_DATABASE_URL", &self.url)
            .env(
                "GATEWAY_JWT_SECRET",
                String::from_utf8_lossy(SECRET).to_string(),
            )
            .env_remove("GATEWAY_PACKAGES_DIR")
            .kill_on_drop(true);
        Some(cmd)
    }

    /// Another instance on this database whose persisted queries are `persisted`.
    pub async fn instance_with_persisted(
        &self,
        persisted: gateway::http::persisted::PersistedQueries,
    ) -> Router {
        let instance = Instance::start(Settings {
            serving_url: self.serving_url.clone(),
            keys: self.keys.clone(),
            pool: db::PoolSettings::new(2, std::time::Duration::from_secs(15)),
            event_retention: std::time::Duration::from_secs(3600),
            limits: Limits::default(),
            auth: test_auth(),
            allowed_origins: Vec::new(),
            packages_dir: None,
            sweep_every: None,
            persisted: std::sync::Arc::new(persisted),
            metrics_public: false,
        })
        .await
        .expect("gateway instance");
        instance.router(tokio::sync::watch::channel(false).1)
    }

    /// A tenant with an admin and one ordinary user, with tokens for both.
    async fn tenant(&self, slug: &str) -> Tenant {
        let t = tenants::create_tenant(
            &self.url,
            &self.keys,
            slug,
            slug,
            &format!("admin@{slug}.test"),
            3600,
        )
        .await
        .expect("create tenant");
        let data = self
            .ok(
                &t.token,
                "mutation($i: UserCreateInput!) { createUser(input: $i) { id } }",
                json!({ "i": { "email": format!("user@{slug}.test"), "name": "Ordinary User" } }),
            )
            .await;
        let user_id: Uuid = data["createUser"]["id"]
            .as_str()
            .expect("user id")
            .parse()
            .expect("uuid");
        let user = self
            .keys
            .issue(t.tenant_id, user_id, Role::User, 3600)
            .expect("token");
        let platform = self
            .keys
            .issue_operator(
                t.tenant_id,
                t.admin_user_id,
                Role::Admin,
                OperatorGrant {
                    platform: true,
                    generation: 0,
                },
                3600,
            )
            .expect("token");
        Tenant {
            id: t.tenant_id,
            admin_id: t.admin_user_id,
            admin: t.token,
            user_id,
            user,
            platform,
        }
    }

    /// Sends a request through the real router; returns status, content type and body.
    pub async fn send(&self, req: Request<Body>) -> (StatusCode, String, String) {
        send_to(&self.router, req).await
    }

    /// POSTs a GraphQL request, with a bearer token and from client address `ip` when given;
    /// returns status and body whatever they are.
    pub async fn post_graphql(
        &self,
        token: Option<&str>,
        query: &str,
        variables: Json,
        ip: Option<&str>,
    ) -> (StatusCode, String) {
        let (status, _, text) = self
            .send(graphql_request(token, query, variables, ip))
            .await;
        (status, text)
    }

    /// Another user of tenant a, created by its admin: (id, token).
    pub async fn new_user(&self, name: &str) -> (Uuid, String) {
        let data = self
            .ok(
                &self.a.admin,
                "mutation($i: UserCreateInput!) { createUser(input: $i) { id } }",
                json!({ "i": { "email": format!("{name}@alpha.test"), "name": name } }),
            )
            .await;
        let id: Uuid = data["createUser"]["id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("user id");
        let token = self
            .keys
            .issue(self.a.id, id, Role::User, 3600)
            .expect("token");
        (id, token)
    }

    /// POSTs a GraphQL request with `token`; returns the whole response document.
    pub async fn gql(&self, token: &str, query: &str, variables: Json) -> Json {
        let (status, text) = self.post_graphql(Some(token), query, variables, None).await;
        assert_eq!(status, StatusCode::OK, "response: {text}");
        serde_json::from_str(&text).expect("JSON response")
    }

    /// POSTs `query` with `Authorization: Bearer <token>`, whatever the answer.
    pub async fn bearer_request(&self, token: &str, query: &str) -> (u16, String) {
        let (status, text) = self.post_graphql(Some(token), query, json!({}), None).await;
        (status.as_u16(), text)
    }

    /// An anonymous request that must be answered with 200; returns the response document.
    pub async fn anon(&self, query: &str, variables: Json, ip: Option<&str>) -> Json {
        let (status, text) = self.post_graphql(None, query, variables, ip).await;
        assert_eq!(status, StatusCode::OK, "response: {text}");
        serde_json::from_str(&text).expect("JSON response")
    }

    /// An anonymous request's status and body.
    pub async fn anon_status(&self, query: &str, variables: Json) -> (u16, String) {
        let (status, text) = self.post_graphql(None, query, variables, None).await;
        (status.as_u16(), text)
    }

    /// The first column of the first row of `sql`, as text, run directly in the database.
    pub async fn scalar(&self, sql: &str) -> String {
        use diesel_async::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct V {
            #[diesel(sql_type = diesel::sql_types::Text)]
            v: String,
        }
        let mut conn = self.owner().await;
        let rows: Vec<V> = diesel::sql_query(format!("SELECT ({sql}) AS v"))
            .load(&mut conn)
            .await
            .expect("scalar query");
        rows.into_iter().next().map(|r| r.v).unwrap_or_default()
    }

    /// Like `gql`, but the request must succeed without errors; returns `data`.
    pub async fn ok(&self, token: &str, query: &str, variables: Json) -> Json {
        let res = self.gql(token, query, variables).await;
        assert!(
            res.get("errors").is_none(),
            "unexpected errors: {res}\nquery: {query}"
        );
        res["data"].clone()
    }

    /// The request must fail; returns the first error's `extensions.code` and the error.
    pub async fn err(&self, token: &str, query: &str, variables: Json) -> (String, Json) {
        let res = self.gql(token, query, variables).await;
        let err = res["errors"][0].clone();
        assert!(!err.is_null(), "expected an error: {res}\nquery: {query}");
        (
            err["extensions"]["code"].as_str().unwrap_or("").to_string(),
            err,
        )
    }

    /// A connection as the database's owner, whom no tenant policy restricts (a superuser).
    pub async fn owner(&self) -> gateway::db::Conn {
        use diesel_async::AsyncConnection;
        gateway::db::Conn::establish(&self.url)
            .await
            .expect("owner connection")
    }

    /// Rows of a table, counted directly in the database (no tenant scoping).
    pub async fn count_rows(&self, table: &str) -> i64 {
        use diesel_async::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct C {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = self.owner().await;
        let c: C = diesel::sql_query(format!("SELECT count(*) AS n FROM \"{table}\""))
            .get_result(&mut conn)
            .await
            .expect("count");
        c.n
    }
}

impl Tenant {
    fn empty() -> Tenant {
        Tenant {
            id: Uuid::nil(),
            admin_id: Uuid::nil(),
            admin: String::new(),
            user_id: Uuid::nil(),
            user: String::new(),
            platform: String::new(),
        }
    }
}

async fn serve(router: Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await;
    });
    addr
}
