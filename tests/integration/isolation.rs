//! The second lock: PostgreSQL row-level security on every tenant-scoped table, a serving role
//! that cannot get around it, and pooled connections that never carry a tenant from one
//! request to the next (after errors and cancelled requests too).

use std::time::Duration;

use diesel::sql_types::{BigInt, Bool, Text};
use diesel_async::{AsyncConnection, RunQueryDsl, SimpleAsyncConnection};
use gateway::db::{self, Conn};
use serde_json::{json, Value as Json};

use crate::harness::{graphql_request, send_to, TestApp};

#[derive(diesel::QueryableByName, Debug)]
struct Protection {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Bool)]
    enabled: bool,
    #[diesel(sql_type = Bool)]
    forced: bool,
    /// Policies for everyone that read the transaction's tenant, both for rows seen and rows
    /// written.
    #[diesel(sql_type = BigInt)]
    tenant_policies: i64,
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(diesel::QueryableByName)]
struct Word {
    #[diesel(sql_type = Text)]
    v: String,
}

async fn count(conn: &mut Conn, sql: &str) -> i64 {
    diesel::sql_query(sql)
        .get_result::<Count>(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .n
}

async fn word(conn: &mut Conn, sql: &str) -> String {
    diesel::sql_query(sql)
        .get_result::<Word>(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .v
}

/// The error PostgreSQL answers `sql` with; the statement must fail.
async fn refused(conn: &mut Conn, sql: &str) -> String {
    match conn.batch_execute(sql).await {
        Ok(()) => panic!("{sql} was allowed"),
        Err(e) => e.to_string(),
    }
}

/// `url` logging in as the serving role itself (the test cluster trusts loopback logins).
fn login_as_serving_role(url: &str) -> String {
    let scheme = url.find("://").map(|i| i + 3).expect("scheme");
    let at = url[scheme..].find('@').map(|i| scheme + i).expect("user");
    format!("{}{}{}", &url[..scheme], db::SERVING_ROLE, &url[at..])
}

#[tokio::test]
async fn every_tenant_table_forces_row_level_security() {
    let app = TestApp::new().await;
    let mut owner = app.owner().await;
    let tables: Vec<Protection> = diesel::sql_query(
        "SELECT c.relname::text AS name, c.relrowsecurity AS enabled,
                c.relforcerowsecurity AS forced,
                (SELECT count(*) FROM pg_policy p
                 WHERE p.polrelid = c.oid AND p.polroles = '{0}'
                   AND pg_get_expr(p.polqual, p.polrelid) LIKE '%current_setting(''app.tenant_id''%'
                   AND pg_get_expr(p.polwithcheck, p.polrelid) LIKE '%current_setting(''app.tenant_id''%'
                ) AS tenant_policies
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
           AND (c.relname = 'tenants' OR EXISTS (
                SELECT 1 FROM pg_attribute a
                WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped))
         ORDER BY 1",
    )
    .load(&mut owner)
    .await
    .expect("tables");
    // 75 tenant-scoped catalog tables, the tenants themselves, the outbox, spent refresh tokens.
    assert!(tables.len() >= 70, "only {} tables found", tables.len());
    let open: Vec<&Protection> = tables
        .iter()
        .filter(|t| !(t.enabled && t.forced && t.tenant_policies == 1))
        .collect();
    assert!(
        open.is_empty(),
        "tables without forced tenant policies: {open:?}"
    );
    for name in [
        "tenants",
        "users",
        "credentials",
        "sessions",
        "change_events",
    ] {
        assert!(tables.iter().any(|t| t.name == name), "{name} not checked");
    }

    // The serving role, and every role it belongs to, is neither superuser nor BYPASSRLS.
    let privileged = count(
        &mut owner,
        "SELECT count(*) AS n FROM pg_roles r
         WHERE pg_has_role('gateway_app', r.oid, 'MEMBER') AND (r.rolsuper OR r.rolbypassrls)",
    )
    .await;
    assert_eq!(privileged, 0);
}

#[tokio::test]
async fn the_serving_role_cannot_get_past_the_policies() {
    let app = TestApp::new().await;
    let mut owner = app.owner().await;
    owner
        .batch_execute("ALTER ROLE gateway_app LOGIN")
        .await
        .expect("login");
    let serving_url = login_as_serving_role(&app.url);
    db::check_serving_role(&serving_url)
        .await
        .expect("the serving role is accepted");
    let err = db::check_serving_role(&app.url)
        .await
        .expect_err("a superuser is refused");
    assert!(err.contains("superuser"), "{err}");

    let mut conn = Conn::establish(&serving_url).await.expect("connect");
    assert_eq!(
        word(&mut conn, "SELECT current_user::text AS v").await,
        "gateway_app"
    );
    let all_users = count(&mut owner, "SELECT count(*) AS n FROM users").await;
    assert!(all_users >= 4);
    // No tenant in the transaction: nothing at all.
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM users").await, 0);
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM tenants").await,
        0
    );
    let e = refused(
        &mut conn,
        "SET row_security = off; SELECT count(*) FROM users",
    )
    .await;
    assert!(e.contains("row-level security"), "{e}");
    conn.batch_execute("RESET row_security")
        .await
        .expect("reset");
    let e = refused(&mut conn, "SET ROLE postgres").await;
    assert!(e.contains("permission denied"), "{e}");
    let e = refused(&mut conn, "ALTER TABLE users DISABLE ROW LEVEL SECURITY").await;
    assert!(e.contains("owner"), "{e}");

    // Tenant A's transaction sees A's rows only and cannot write B's.
    let (a, b) = (app.a.id, app.b.id);
    let a_users = count(
        &mut owner,
        &format!("SELECT count(*) AS n FROM users WHERE tenant_id = '{a}'"),
    )
    .await;
    conn.batch_execute(&format!(
        "BEGIN; SELECT set_config('app.tenant_id', '{a}', true)"
    ))
    .await
    .expect("begin");
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM users").await,
        a_users
    );
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM tenants").await,
        1
    );
    let touched = diesel::sql_query(format!(
        "UPDATE users SET name = 'taken over' WHERE tenant_id = '{b}'"
    ))
    .execute(&mut conn)
    .await
    .expect("update");
    assert_eq!(touched, 0);
    let e = refused(
        &mut conn,
        &format!(
            "INSERT INTO forum_categories (tenant_id, name, slug) VALUES ('{b}', 'planted', 'planted')"
        ),
    )
    .await;
    assert!(e.contains("row-level security"), "{e}");
    conn.batch_execute(&format!(
        "ROLLBACK; BEGIN; SELECT set_config('app.tenant_id', '{a}', true)"
    ))
    .await
    .expect("again");
    // Append-only tables refuse changes to everyone serving, whatever the tenant.
    let e = refused(&mut conn, "DELETE FROM audit_logs").await;
    assert!(e.contains("permission denied"), "{e}");
    conn.batch_execute("ROLLBACK").await.expect("rollback");
    assert_eq!(
        count(
            &mut owner,
            &format!(
                "SELECT count(*) AS n FROM users WHERE tenant_id = '{b}' AND name = 'taken over'"
            )
        )
        .await,
        0
    );

    // The listener's and sign-in's cross-tenant reads reveal ids, tenants and entity names
    // only; the events' contents stay behind the policies.
    let events = count(&mut owner, "SELECT count(*) AS n FROM change_events").await;
    assert!(events > 0);
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM gateway_outbox_after(0, 1000000)"
        )
        .await,
        events
    );
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM change_events").await,
        count(
            &mut owner,
            "SELECT count(*) AS n FROM change_events WHERE tenant_id IS NULL"
        )
        .await
    );
    assert_eq!(
        word(
            &mut conn,
            "SELECT id::text AS v FROM gateway_tenant_for_sign_in('beta')"
        )
        .await,
        b.to_string()
    );
}

/// Names of the forum categories `token`'s tenant sees through `router`.
async fn category_slugs(router: &axum::Router, token: &str) -> Vec<String> {
    let (_, _, body) = send_to(
        router,
        graphql_request(
            Some(token),
            "{ forumCategories(first: 500) { nodes { slug } } }",
            json!({}),
            None,
        ),
    )
    .await;
    let doc: Json = serde_json::from_str(&body).expect("JSON");
    assert!(doc.get("errors").is_none(), "{doc}");
    doc["data"]["forumCategories"]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| n["slug"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test]
async fn a_pooled_connection_carries_no_tenant_between_requests() {
    let app = TestApp::new().await;
    // One connection: every request below runs on the same PostgreSQL session.
    let (router, pool) = app.instance_with_pool(1).await;
    let tenants = [(&app.a.admin, "a-"), (&app.b.admin, "b-")];
    for (token, prefix) in tenants {
        app.ok(
            token,
            "mutation($s: String!) { createForumCategory(input: {name: $s, slug: $s}) { id } }",
            json!({ "s": format!("{prefix}first") }),
        )
        .await;
    }
    let bulk =
        "mutation($i: [ForumCategoryCreateInput!]!) { createForumCategories(inputs: $i) { id } }";
    let mut cancelled = 0;
    for round in 0..40u64 {
        let (token, prefix) = tenants[(round % 2) as usize];
        let (other, other_prefix) = tenants[((round + 1) % 2) as usize];
        // Cancelled mid-way: a bulk insert dropped after a few hundred microseconds.
        let inputs: Vec<Json> = (0..100)
            .map(|k| json!({ "name": "bulk", "slug": format!("{prefix}r{round}-{k}") }))
            .collect();
        let req = graphql_request(Some(token), bulk, json!({ "i": inputs }), None);
        let budget = Duration::from_micros(200 + 120 * round);
        if tokio::time::timeout(budget, send_to(&router, req))
            .await
            .is_err()
        {
            cancelled += 1;
        }
        // Failed inside the transaction: the database refuses a duplicate.
        let (_, _, body) = send_to(
            &router,
            graphql_request(
                Some(token),
                bulk,
                json!({ "i": [{ "name": "d", "slug": format!("{prefix}dup") },
                              { "name": "d", "slug": format!("{prefix}dup") }] }),
                None,
            ),
        )
        .await;
        assert!(body.contains("\"errors\""), "{body}");
        // The other tenant, next on the same connection, sees only its own rows.
        let seen = category_slugs(&router, other).await;
        assert!(seen.iter().any(|s| s == &format!("{other_prefix}first")));
        let foreign: Vec<&String> = seen
            .iter()
            .filter(|s| !s.starts_with(other_prefix))
            .collect();
        assert!(foreign.is_empty(), "round {round}: {foreign:?}");
    }
    assert!(cancelled > 0, "no request was cancelled mid-way");

    // Cancelled writes are all or nothing.
    let mut owner = app.owner().await;
    for (_, prefix) in tenants {
        for round in 0..40 {
            let n = count(
                &mut owner,
                &format!(
                    "SELECT count(*) AS n FROM forum_categories WHERE slug LIKE '{prefix}r{round}-%'"
                ),
            )
            .await;
            assert!(n == 0 || n == 100, "round {round}: {n} of 100 rows");
        }
        let dups = count(
            &mut owner,
            &format!("SELECT count(*) AS n FROM forum_categories WHERE slug = '{prefix}dup'"),
        )
        .await;
        assert_eq!(dups, 0);
    }

    // No session of the database was left inside a transaction.
    let open = count(
        &mut owner,
        "SELECT count(*) AS n FROM pg_stat_activity
         WHERE datname = current_database() AND state LIKE 'idle in transaction%'",
    )
    .await;
    assert_eq!(open, 0);
    // The pool's connection: no tenant, and so no rows.
    let mut conn = pool.get().await.expect("connection");
    assert_eq!(
        word(
            &mut conn,
            "SELECT coalesce(current_setting('app.tenant_id', true), '') AS v"
        )
        .await,
        ""
    );
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM forum_categories").await,
        0
    );
}
