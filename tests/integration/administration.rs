//! Tenant administration (seeds 003, 004): roles and statuses changed by admins end the
//! user's sessions and hold from the next request; the platform operator suspends and
//! reactivates tenants; `lastActiveAt` is written at a bounded rate.

use std::time::Duration;

use serde_json::{json, Value as Json};

use crate::accounts::{signed_in, with_password, PASSWORD};
use crate::harness::TestApp;

fn code(r: &Json) -> &str {
    r["errors"][0]["extensions"]["code"].as_str().unwrap_or("")
}

const ROLE: &str =
    "mutation($u: ID!, $r: UserRole!) { setUserRole(userId: $u, role: $r) { id role } }";
const STATUS: &str =
    "mutation($u: ID!, $s: UserStatus!) { setUserStatus(userId: $u, status: $s) { id status } }";
const ME: &str = "{ me { id role } }";

#[tokio::test]
async fn an_admin_changes_roles_and_statuses_and_they_hold_at_once() {
    let app = TestApp::new().await;
    let user = with_password(&app).await;
    let (session, _) = signed_in(&app, "user@alpha.test", PASSWORD).await;
    assert!(app
        .gql(&session, ME, json!({}))
        .await
        .get("errors")
        .is_none());

    // Only admins, only their own tenant's users.
    let denied = app
        .gql(&app.a.user, ROLE, json!({ "u": user, "r": "ADMIN" }))
        .await;
    assert_eq!(code(&denied), "FORBIDDEN", "{denied}");
    let elsewhere = app
        .gql(&app.b.admin, ROLE, json!({ "u": user, "r": "ADMIN" }))
        .await;
    assert_eq!(code(&elsewhere), "NOT_FOUND", "{elsewhere}");

    // A new role: the session carrying the old one ends; the user is told.
    let promoted = app
        .ok(&app.a.admin, ROLE, json!({ "u": user, "r": "ADMIN" }))
        .await;
    assert_eq!(promoted["setUserRole"]["role"], "ADMIN");
    let ended = app.gql(&session, ME, json!({})).await;
    assert_eq!(code(&ended), "UNAUTHENTICATED", "{ended}");
    let (session, _) = signed_in(&app, "user@alpha.test", PASSWORD).await;
    let told = app
        .ok(&session, "{ notifications { nodes { title } } }", json!({}))
        .await;
    assert_eq!(
        told["notifications"]["nodes"][0]["title"],
        "Your role is now ADMIN"
    );
    // Demoted again; the tenant's first admin cannot demote itself away from the last admin.
    app.ok(&app.a.admin, ROLE, json!({ "u": user, "r": "MEMBER" }))
        .await;
    let last = app
        .gql(
            &app.a.admin,
            ROLE,
            json!({ "u": app.a.admin_id, "r": "MEMBER" }),
        )
        .await;
    assert_eq!(code(&last), "CONFLICT", "{last}");

    // Deactivated: refused from the next request (any token), sessions ended; then back.
    let (session, _) = signed_in(&app, "user@alpha.test", PASSWORD).await;
    app.ok(&app.a.admin, STATUS, json!({ "u": user, "s": "INACTIVE" }))
        .await;
    for token in [&session, &app.a.user] {
        let refused = app.gql(token, ME, json!({})).await;
        assert_eq!(code(&refused), "UNAUTHENTICATED", "{refused}");
    }
    assert_eq!(
        app.scalar(&format!(
            "SELECT count(*)::text FROM sessions WHERE user_id = '{user}' AND revoked_at IS NULL"
        ))
        .await,
        "0"
    );
    app.ok(&app.a.admin, STATUS, json!({ "u": user, "s": "ACTIVE" }))
        .await;
    assert!(app
        .gql(&app.a.user, ME, json!({}))
        .await
        .get("errors")
        .is_none());

    // The generic update deactivating a user ends the sessions too (a write hook).
    let (session, _) = signed_in(&app, "user@alpha.test", PASSWORD).await;
    app.ok(
        &app.a.admin,
        "mutation($u: ID!) { updateUser(id: $u, input: {status: INACTIVE}) { id } }",
        json!({ "u": user }),
    )
    .await;
    assert_eq!(
        app.scalar(&format!(
            "SELECT count(*)::text FROM sessions WHERE user_id = '{user}' AND revoked_at IS NULL"
        ))
        .await,
        "0"
    );
    assert_eq!(
        code(&app.gql(&session, ME, json!({})).await),
        "UNAUTHENTICATED"
    );
}

#[tokio::test]
async fn the_operator_suspends_and_reactivates_another_tenant() {
    let app = TestApp::new().await;
    let suspend = "mutation($t: ID!, $s: TenantStatus!) { setTenantStatus(tenantId: $t, status: $s) { id status } }";
    let vars = |s: &str| json!({ "t": app.b.id, "s": s });
    let denied = app.gql(&app.a.admin, suspend, vars("SUSPENDED")).await;
    assert_eq!(code(&denied), "FORBIDDEN", "{denied}");
    let own = app
        .gql(
            &app.a.platform,
            suspend,
            json!({ "t": app.a.id, "s": "SUSPENDED" }),
        )
        .await;
    assert_eq!(code(&own), "CONFLICT", "{own}");

    let done = app.ok(&app.a.platform, suspend, vars("SUSPENDED")).await;
    assert_eq!(done["setTenantStatus"]["status"], "SUSPENDED");
    for token in [&app.b.user, &app.b.admin] {
        let refused = app.gql(token, ME, json!({})).await;
        assert_eq!(code(&refused), "UNAUTHENTICATED", "{refused}");
    }
    // Tenant a is untouched; the suspended tenant's audit log names the operator.
    assert!(app
        .gql(&app.a.user, ME, json!({}))
        .await
        .get("errors")
        .is_none());
    assert_eq!(
        app.scalar(&format!(
            "SELECT count(*)::text FROM audit_logs WHERE tenant_id = '{}' AND entity = 'Tenant' AND actor_id = '{}'",
            app.b.id, app.a.admin_id
        ))
        .await,
        "1"
    );
    app.ok(&app.a.platform, suspend, vars("ACTIVE")).await;
    assert!(app
        .gql(&app.b.user, ME, json!({}))
        .await
        .get("errors")
        .is_none());
}

#[tokio::test]
async fn last_active_at_is_written_at_a_bounded_rate() {
    let app = TestApp::new().await;
    let read = format!(
        "SELECT coalesce(last_active_at::text, '') FROM users WHERE id = '{}'",
        app.a.user_id
    );
    assert_eq!(app.scalar(&read).await, "");
    app.ok(&app.a.user, ME, json!({})).await;
    // Written beside the request, and counted until written: settled waits for it.
    app.db.settled().await;
    let first = app.scalar(&read).await;
    assert!(!first.is_empty(), "lastActiveAt was not written");
    for _ in 0..5 {
        app.ok(&app.a.user, ME, json!({})).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.scalar(&read).await, first, "written once per interval");
}

#[tokio::test]
async fn a_request_is_settled_only_once_its_activity_is_written() {
    use diesel_async::SimpleAsyncConnection;
    let app = TestApp::new().await;
    let user = app.a.user_id;
    // The user's row locked elsewhere: the activity write waits behind the lock, the request
    // itself (which only reads the row) does not.
    let mut holder = app.owner().await;
    holder
        .batch_execute(&format!(
            "BEGIN; SELECT 1 FROM users WHERE id = '{user}' FOR UPDATE"
        ))
        .await
        .expect("lock the user's row");
    app.ok(&app.a.user, ME, json!({})).await;
    // Statement counts taken now would miss the write still to come: not settled.
    let early = tokio::time::timeout(Duration::from_millis(300), app.db.settled()).await;
    assert!(early.is_err(), "settled while the activity write waited");
    holder.batch_execute("COMMIT").await.expect("unlock");
    app.db.settled().await;
    let sql = format!("SELECT (last_active_at IS NOT NULL)::text FROM users WHERE id = '{user}'");
    assert_eq!(app.scalar(&sql).await, "true", "settled before the write");
}

/// Runs `sql` directly in the database as its owner, outside any gateway.
async fn outside(app: &TestApp, sql: &str) {
    use diesel_async::SimpleAsyncConnection;
    app.owner().await.batch_execute(sql).await.expect(sql);
}

/// `token`, admitted (twice: the second time on its admission), is refused right after
/// `change` and admitted again right after `undo`.
async fn refused_until_undone(app: &TestApp, token: &str, change: &str, undo: &str) {
    let query = "{ forumThreads { totalCount } }";
    app.ok(token, query, json!({})).await;
    app.ok(token, query, json!({})).await;
    outside(app, change).await;
    let (c, _) = app.err(token, query, json!({})).await;
    assert_eq!(c, "UNAUTHENTICATED", "after {change}");
    outside(app, undo).await;
    app.ok(token, query, json!({})).await;
}

#[tokio::test]
async fn an_admission_is_reused_until_a_credential_row_changes_even_outside_the_gateway() {
    let app = TestApp::new().await;
    let query = "{ forumThreads { totalCount } }";
    let user = app.a.user_id;
    let tenant = app.a.id;

    // A caller seen before is entered without gateway_enter's lookups.
    app.ok(&app.a.user, query, json!({})).await;
    // The user's first request also marked it active: a transaction of its own, entered as
    // the caller at its own time, which would move the count below. Settled once it has
    // landed (then no other for the test's length).
    app.db.settled().await;
    let sql = format!("SELECT (last_active_at IS NOT NULL)::text FROM users WHERE id = '{user}'");
    assert_eq!(
        app.scalar(&sql).await,
        "true",
        "the user's activity was not written"
    );
    let reused = app.db.admissions_reused();
    app.ok(&app.a.user, query, json!({})).await;
    app.ok(&app.a.user, query, json!({})).await;
    assert_eq!(app.db.admissions_reused(), reused + 2);

    // Changes gateway_enter does not read leave the admission standing.
    outside(
        &app,
        &format!("UPDATE users SET name = 'Renamed' WHERE id = '{user}'"),
    )
    .await;
    app.ok(&app.a.user, query, json!({})).await;
    assert_eq!(app.db.admissions_reused(), reused + 3);

    // Each kind of row gateway_enter reads, changed behind the gateway's back (another
    // instance, an operator's SQL): refused at the very next request, no wait.
    refused_until_undone(
        &app,
        &app.a.user,
        &format!("UPDATE users SET status = 'INACTIVE' WHERE id = '{user}'"),
        &format!("UPDATE users SET status = 'ACTIVE' WHERE id = '{user}'"),
    )
    .await;
    refused_until_undone(
        &app,
        &app.a.admin,
        &format!("UPDATE tenants SET status = 'SUSPENDED' WHERE id = '{tenant}'"),
        &format!("UPDATE tenants SET status = 'ACTIVE' WHERE id = '{tenant}'"),
    )
    .await;
    let operator = gateway::tenants::token_for(
        &app.url,
        &app.keys,
        "alpha",
        "admin@alpha.test",
        None,
        false,
        60,
    )
    .await
    .expect("token");
    refused_until_undone(
        &app,
        &operator,
        &format!(
            "INSERT INTO operator_token_generations (tenant_id, generation) VALUES ('{tenant}', 5)
             ON CONFLICT (tenant_id) DO UPDATE SET generation = 5"
        ),
        "UPDATE operator_token_generations SET generation = 0",
    )
    .await;

    // A token naming a user that does not exist sees nothing; the user inserted later under
    // that id, inactive, refuses it from then on.
    let unborn = uuid::Uuid::now_v7();
    let token = app
        .keys
        .issue(tenant, unborn, gateway::auth::Role::User, 60)
        .expect("token");
    refused_until_undone(
        &app,
        &token,
        &format!(
            "INSERT INTO users (id, tenant_id, email, name, status)
             VALUES ('{unborn}', '{tenant}', 'unborn@alpha.test', 'Unborn', 'INACTIVE')"
        ),
        &format!("DELETE FROM users WHERE id = '{unborn}'"),
    )
    .await;

    with_password(&app).await;
    let (session, _) = signed_in(&app, "user@alpha.test", PASSWORD).await;
    app.ok(&session, query, json!({})).await;
    app.ok(&session, query, json!({})).await;
    outside(&app, "UPDATE sessions SET revoked_at = now()").await;
    let (c, _) = app.err(&session, query, json!({})).await;
    assert_eq!(c, "UNAUTHENTICATED");
    let (session, _) = signed_in(&app, "user@alpha.test", PASSWORD).await;
    app.ok(&session, query, json!({})).await;
    outside(&app, "UPDATE sessions SET expires_at = now()").await;
    let (c, _) = app.err(&session, query, json!({})).await;
    assert_eq!(c, "UNAUTHENTICATED");
    outside(&app, "DELETE FROM sessions").await;
    app.ok(&app.a.user, query, json!({})).await;
}

#[tokio::test]
async fn a_session_token_never_outlives_its_session() {
    let app = TestApp::new().await;
    with_password(&app).await;
    let login = app
        .anon(
            "mutation($t: String!, $e: String!, $p: String!) {
               login(tenant: $t, email: $e, password: $p) { refreshToken session { id } }
             }",
            json!({ "t": "alpha", "e": "user@alpha.test", "p": PASSWORD }),
            None,
        )
        .await;
    let refresh = login["data"]["login"]["refreshToken"]
        .as_str()
        .expect("refresh token")
        .to_string();
    // Its session ends in 30 s: a refreshed access token (15 min by default) ends with it.
    outside(
        &app,
        "UPDATE sessions SET expires_at = now() + interval '30 seconds'",
    )
    .await;
    let refreshed = app
        .anon(
            "mutation($r: String!) {
               refreshSession(refreshToken: $r) { accessTokenExpiresAt session { expiresAt } }
             }",
            json!({ "r": refresh }),
            None,
        )
        .await;
    let r = &refreshed["data"]["refreshSession"];
    let token_ends = chrono::DateTime::parse_from_rfc3339(
        r["accessTokenExpiresAt"].as_str().expect("token expiry"),
    )
    .expect("a time");
    let session_ends = chrono::DateTime::parse_from_rfc3339(
        r["session"]["expiresAt"].as_str().expect("session expiry"),
    )
    .expect("a time");
    assert!(token_ends <= session_ends, "{refreshed}");
}
