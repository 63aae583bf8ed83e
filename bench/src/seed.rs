//! The standard data set, written with set-based SQL straight into a freshly migrated
//! database: 3 tenants, 300 users, 50 forum categories, 5,000 threads, 100,000 posts, 1,000
//! workflows, 20,000 executions (with 3 node executions each), 50,000 notifications.

use diesel_async::{AsyncConnection, RunQueryDsl, SimpleAsyncConnection};
use gateway::db::Conn;
use uuid::Uuid;

pub const TENANTS: usize = 3;

/// Totals over all tenants.
pub struct Sizes {
    pub users: usize,
    pub categories: usize,
    pub threads: usize,
    pub posts: usize,
    pub workflows: usize,
    pub executions: usize,
    pub node_executions_per_execution: usize,
    pub notifications: usize,
}

pub const STANDARD: Sizes = Sizes {
    users: 300,
    categories: 50,
    threads: 5_000,
    posts: 100_000,
    workflows: 1_000,
    executions: 20_000,
    node_executions_per_execution: 3,
    notifications: 50_000,
};

/// Tenant `i`'s share of `total` (the first tenants take the remainder).
fn share(total: usize, i: usize) -> usize {
    total / TENANTS + usize::from(i < total % TENANTS)
}

/// Ids the load scenarios pick from, per tenant.
#[derive(Default, Clone)]
pub struct TenantIds {
    pub users: Vec<Uuid>,
    pub categories: Vec<Uuid>,
    pub threads: Vec<Uuid>,
    pub workflows: Vec<Uuid>,
}

/// Seeds tenant number `i` (whose admin user already exists) and returns its ids.
pub async fn tenant(url: &str, i: usize, tenant: Uuid, s: &Sizes) -> Result<TenantIds, String> {
    let mut conn = Conn::establish(url).await.map_err(|e| e.to_string())?;
    // Every row is the tenant's: the SQL names it once, as a literal of our own making.
    let t = format!("'{tenant}'::uuid");
    let users = share(s.users, i).saturating_sub(1);
    let (cats, threads, posts) = (
        share(s.categories, i),
        share(s.threads, i),
        share(s.posts, i),
    );
    let (workflows, executions, notes) = (
        share(s.workflows, i),
        share(s.executions, i),
        share(s.notifications, i),
    );
    let nodes = s.node_executions_per_execution;
    let sql = format!(
        "
INSERT INTO users (tenant_id, email, name)
  SELECT {t}, 'user' || g || '@bench.example', 'User ' || g FROM generate_series(1, {users}) g;
INSERT INTO forum_categories (tenant_id, name, slug, sort_order)
  SELECT {t}, 'Category ' || g, 'category-' || g, g FROM generate_series(1, {cats}) g;
WITH c AS (SELECT array_agg(id ORDER BY slug) a FROM forum_categories WHERE tenant_id = {t}),
     u AS (SELECT array_agg(id ORDER BY email) a FROM users WHERE tenant_id = {t})
INSERT INTO forum_threads (tenant_id, category_id, author_id, title, slug, created_at)
  SELECT {t}, c.a[1 + g % cardinality(c.a)], u.a[1 + g % cardinality(u.a)],
         'Thread ' || g, 'thread-' || g, now() - g * interval '1 minute'
  FROM generate_series(1, {threads}) g, c, u;
WITH th AS (SELECT array_agg(id) a FROM forum_threads WHERE tenant_id = {t}),
     u AS (SELECT array_agg(id ORDER BY email) a FROM users WHERE tenant_id = {t})
INSERT INTO forum_posts (tenant_id, thread_id, author_id, content, created_at)
  SELECT {t}, th.a[1 + g % cardinality(th.a)], u.a[1 + (g * 7) % cardinality(u.a)],
         'Post ' || g || ': the quick brown fox jumps over the lazy dog.',
         now() - g * interval '1 second'
  FROM generate_series(1, {posts}) g, th, u;
WITH u AS (SELECT array_agg(id ORDER BY email) a FROM users WHERE tenant_id = {t})
INSERT INTO workflows (tenant_id, owner_id, name, enabled)
  SELECT {t}, u.a[1 + g % cardinality(u.a)], 'Workflow ' || g, g % 2 = 0
  FROM generate_series(1, {workflows}) g, u;
WITH w AS (SELECT array_agg(id) a FROM workflows WHERE tenant_id = {t}),
     u AS (SELECT array_agg(id ORDER BY email) a FROM users WHERE tenant_id = {t})
INSERT INTO workflow_executions (tenant_id, workflow_id, user_id, status, started_at)
  SELECT {t}, w.a[1 + g % cardinality(w.a)], u.a[1 + g % cardinality(u.a)],
         (ARRAY['PENDING', 'RUNNING', 'COMPLETED', 'FAILED'])[1 + g % 4]::workflow_execution_status,
         now() - g * interval '10 seconds'
  FROM generate_series(1, {executions}) g, w, u;
INSERT INTO node_executions (tenant_id, execution_id, node_id)
  SELECT {t}, e.id, 'node-' || n FROM workflow_executions e, generate_series(1, {nodes}) n
  WHERE e.tenant_id = {t};
WITH u AS (SELECT array_agg(id ORDER BY email) a FROM users WHERE tenant_id = {t})
INSERT INTO notifications (tenant_id, user_id, title, message, read, created_at)
  SELECT {t}, u.a[1 + g % cardinality(u.a)], 'Notification ' || g, 'Something happened.',
         g % 3 = 0, now() - g * interval '5 seconds'
  FROM generate_series(1, {notes}) g, u;
"
    );
    conn.batch_execute(&sql)
        .await
        .map_err(|e| format!("seeding tenant {i}: {e}"))?;
    Ok(TenantIds {
        users: ids(&mut conn, "users", &t, 1_000).await?,
        categories: ids(&mut conn, "forum_categories", &t, 1_000).await?,
        threads: ids(&mut conn, "forum_threads", &t, 1_000).await?,
        workflows: ids(&mut conn, "workflows", &t, 1_000).await?,
    })
}

#[derive(diesel::QueryableByName)]
struct IdRow {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: Uuid,
}

async fn ids(conn: &mut Conn, table: &str, t: &str, limit: usize) -> Result<Vec<Uuid>, String> {
    let rows: Vec<IdRow> = diesel::sql_query(format!(
        "SELECT id FROM {table} WHERE tenant_id = {t} ORDER BY id LIMIT {limit}"
    ))
    .load(conn)
    .await
    .map_err(|e| format!("reading {table}: {e}"))?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// Fresh planner statistics after the bulk load.
pub async fn analyze(url: &str) -> Result<(), String> {
    let mut conn = Conn::establish(url).await.map_err(|e| e.to_string())?;
    conn.batch_execute("ANALYZE")
        .await
        .map_err(|e| e.to_string())
}
