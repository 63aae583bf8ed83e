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
    let mut first = String::new();
    for _ in 0..50 {
        first = app.scalar(&read).await;
        if !first.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!first.is_empty(), "lastActiveAt was not written");
    for _ in 0..5 {
        app.ok(&app.a.user, ME, json!({})).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.scalar(&read).await, first, "written once per interval");
}
