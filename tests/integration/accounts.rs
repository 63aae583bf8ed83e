//! Signing in: login, refresh-token rotation and reuse detection, logout, password changes,
//! attempt limits, and no secret in any response, audit row or change event.

use serde_json::{json, Value as Json};

use crate::harness::TestApp;

const LOGIN: &str = "mutation($t: String!, $e: String!, $p: String!) {
  login(tenant: $t, email: $e, password: $p) {
    accessToken accessTokenExpiresAt refreshToken session { id userId expiresAt } user { id email }
  }
}";
const REFRESH: &str = "mutation($r: String!) {
  refreshSession(refreshToken: $r) { accessToken refreshToken session { id } }
}";
const SET_PASSWORD: &str =
    "mutation($u: ID!, $p: String!) { setUserPassword(userId: $u, password: $p) }";
pub(crate) const PASSWORD: &str = "correct horse battery";

fn code(res: &Json) -> &str {
    res["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("")
}

async fn login(app: &TestApp, tenant: &str, email: &str, password: &str) -> Json {
    app.anon(
        LOGIN,
        json!({ "t": tenant, "e": email, "p": password }),
        None,
    )
    .await
}

/// Logs in and returns (access token, refresh token).
pub(crate) async fn signed_in(app: &TestApp, email: &str, password: &str) -> (String, String) {
    let res = login(app, "alpha", email, password).await;
    assert!(res.get("errors").is_none(), "{res}");
    let l = &res["data"]["login"];
    (
        l["accessToken"].as_str().unwrap_or("").to_string(),
        l["refreshToken"].as_str().unwrap_or("").to_string(),
    )
}

/// Gives tenant A's user the password `PASSWORD`; returns the user's id.
pub(crate) async fn with_password(app: &TestApp) -> String {
    let user = app.a.user_id.to_string();
    let vars = json!({ "u": user, "p": PASSWORD });
    app.ok(&app.a.admin, SET_PASSWORD, vars).await;
    user
}

async fn refresh(app: &TestApp, token: &str) -> Json {
    app.anon(REFRESH, json!({ "r": token }), None).await
}

#[tokio::test]
async fn login_refresh_rotation_and_reuse_detection() {
    let app = TestApp::new().await;
    let user = with_password(&app).await;

    // Wrong password, unknown email, unknown tenant: one and the same answer.
    let mut answers = Vec::new();
    for (t, e, p) in [
        ("alpha", "user@alpha.test", "not the password"),
        ("alpha", "nobody@alpha.test", PASSWORD),
        ("nowhere", "user@alpha.test", PASSWORD),
    ] {
        let res = login(&app, t, e, p).await;
        assert_eq!(code(&res), "UNAUTHENTICATED", "{res}");
        assert!(res["data"].is_null() || res["data"]["login"].is_null());
        answers.push(res["errors"][0]["message"].clone());
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");

    // Emails match case-insensitively; the access token works like any other.
    let res = login(&app, "alpha", "User@Alpha.test", PASSWORD).await;
    assert!(res.get("errors").is_none(), "{res}");
    let l = &res["data"]["login"];
    assert_eq!(l["user"]["id"], json!(user));
    assert_eq!(l["session"]["userId"], json!(user));
    let access = l["accessToken"].as_str().unwrap_or("").to_string();
    let first = l["refreshToken"].as_str().unwrap_or("").to_string();
    assert!(
        first.len() >= 43 + 33,
        "32 random bytes after the tenant: {first}"
    );
    let me = app
        .ok(&access, "{ me { id email } viewer { role } }", json!({}))
        .await;
    assert_eq!(me["me"]["id"], json!(user));
    assert_eq!(me["viewer"]["role"], json!("user"));

    // Refresh: new tokens, and the old refresh token is spent.
    let r = refresh(&app, &first).await;
    assert!(r.get("errors").is_none(), "{r}");
    let second = r["data"]["refreshSession"]["refreshToken"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert_ne!(second, first);
    let access2 = r["data"]["refreshSession"]["accessToken"]
        .as_str()
        .unwrap_or("");
    app.ok(access2, "{ me { id } }", json!({})).await;

    // Presenting the spent token again: reuse, so the whole session ends, the current token
    // included.
    let reuse = refresh(&app, &first).await;
    assert_eq!(code(&reuse), "UNAUTHENTICATED", "{reuse}");
    assert!(
        reuse["errors"][0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("already used"),
        "{reuse}"
    );
    assert_eq!(code(&refresh(&app, &second).await), "UNAUTHENTICATED");
    // Garbage and another tenant's prefix are simply invalid.
    for bad in [
        "",
        "x",
        "not.a-token",
        &format!("{}.{}", app.b.id.simple(), &first[33..]),
    ] {
        assert_eq!(code(&refresh(&app, bad).await), "UNAUTHENTICATED", "{bad}");
    }

    // Only hashes are stored: argon2id with OWASP's parameters, SHA-256 of refresh tokens.
    let hash = app
        .scalar(&format!(
            "SELECT secret_hash FROM credentials WHERE user_id = '{user}' AND kind = 'PASSWORD'"
        ))
        .await;
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    let sha = app
        .scalar(&format!("SELECT encode(sha256('{second}'::bytea), 'hex')"))
        .await;
    assert_eq!(
        app.scalar(&format!(
            "SELECT count(*)::text FROM sessions WHERE refresh_token_hash = '{sha}' AND revoked_at IS NOT NULL"
        ))
        .await,
        "1"
    );
    // No secret or hash in audit rows or change events.
    for needle in [hash.as_str(), sha.as_str(), second.as_str(), PASSWORD] {
        let n = app
            .scalar(&format!(
                "SELECT ((SELECT count(*) FROM audit_logs WHERE position('{needle}' in coalesce(old_value::text, '') || coalesce(new_value::text, '') || coalesce(details::text, '')) > 0)
                       + (SELECT count(*) FROM change_events WHERE position('{needle}' in node::text || coalesce(previous::text, '')) > 0))::text"
            ))
            .await;
        assert_eq!(n, "0", "{needle} was written somewhere");
    }
    // The session changes were recorded like every other mutation's.
    assert_ne!(
        app.scalar("SELECT count(*)::text FROM change_events WHERE entity = 'Session'")
            .await,
        "0"
    );
}

#[tokio::test]
async fn logout_logout_everywhere_and_password_changes() {
    let app = TestApp::new().await;
    with_password(&app).await;

    let (access, refresh_token) = signed_in(&app, "user@alpha.test", PASSWORD).await;
    assert_eq!(
        app.ok(&access, "mutation { logout }", json!({})).await["logout"],
        json!(true)
    );
    assert_eq!(
        code(&refresh(&app, &refresh_token).await),
        "UNAUTHENTICATED"
    );
    // A token not issued by login has no session to end.
    let (c, _) = app.err(&app.a.user, "mutation { logout }", json!({})).await;
    assert_eq!(c, "BAD_USER_INPUT");

    let (a1, r1) = signed_in(&app, "user@alpha.test", PASSWORD).await;
    let (_, r2) = signed_in(&app, "user@alpha.test", PASSWORD).await;
    let n = app
        .ok(&a1, "mutation { logoutEverywhere }", json!({}))
        .await;
    assert_eq!(n["logoutEverywhere"], json!(2));
    for r in [&r1, &r2] {
        assert_eq!(code(&refresh(&app, r).await), "UNAUTHENTICATED");
    }

    // changePassword proves the current password; the caller's other sessions end.
    let (a1, r1) = signed_in(&app, "user@alpha.test", PASSWORD).await;
    let (_, other) = signed_in(&app, "user@alpha.test", PASSWORD).await;
    let change = "mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) }";
    let (c, e) = app
        .err(
            &a1,
            change,
            json!({ "c": "wrong password!", "n": "a new long password" }),
        )
        .await;
    assert_eq!(c, "BAD_USER_INPUT");
    assert_eq!(e["extensions"]["field"], json!("currentPassword"));
    let (c, e) = app
        .err(&a1, change, json!({ "c": PASSWORD, "n": "short" }))
        .await;
    assert_eq!(
        (c.as_str(), &e["extensions"]["field"]),
        ("BAD_USER_INPUT", &json!("newPassword"))
    );
    app.ok(
        &a1,
        change,
        json!({ "c": PASSWORD, "n": "a new long password" }),
    )
    .await;
    assert_eq!(code(&refresh(&app, &other).await), "UNAUTHENTICATED");
    assert!(
        refresh(&app, &r1).await.get("errors").is_none(),
        "own session stays"
    );
    assert_eq!(
        code(&login(&app, "alpha", "user@alpha.test", PASSWORD).await),
        "UNAUTHENTICATED"
    );
    signed_in(&app, "user@alpha.test", "a new long password").await;

    // setUserPassword: admins only, own tenant only (another tenant's user is "not found").
    let cases = [
        (&app.a.user, app.a.admin_id, "FORBIDDEN"),
        (&app.a.admin, app.b.user_id, "NOT_FOUND"),
        (&app.a.admin, uuid::Uuid::new_v4(), "NOT_FOUND"),
    ];
    for (token, target, expected) in cases {
        let vars = json!({ "u": target.to_string(), "p": PASSWORD });
        let (c, _) = app.err(token, SET_PASSWORD, vars).await;
        assert_eq!(c, expected, "{target}");
    }
}

#[tokio::test]
async fn login_attempts_are_limited_per_account_and_per_address() {
    let app = TestApp::new().await;
    with_password(&app).await;

    // Five attempts per account, then even the right password is refused for a while.
    for _ in 0..5 {
        let res = login(&app, "alpha", "user@alpha.test", "guess guess guess").await;
        assert_eq!(code(&res), "UNAUTHENTICATED");
    }
    let res = login(&app, "alpha", "user@alpha.test", PASSWORD).await;
    assert_eq!(code(&res), "LIMIT_EXCEEDED", "{res}");

    // Aliases in one request count one by one.
    let batched: String = (0..8)
        .map(|i| format!("a{i}: login(tenant: \"alpha\", email: \"admin@alpha.test\", password: \"guess {i} guess\") {{ accessToken }}"))
        .collect::<Vec<_>>()
        .join("\n");
    let res = app
        .anon(&format!("mutation {{ {batched} }}"), json!({}), None)
        .await;
    let codes: Vec<&str> = res["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| e["extensions"]["code"].as_str().unwrap_or(""))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(codes.len(), 8, "{res}");
    assert_eq!(
        codes.iter().filter(|c| **c == "UNAUTHENTICATED").count(),
        5,
        "{codes:?}"
    );
    assert_eq!(
        codes.iter().filter(|c| **c == "LIMIT_EXCEEDED").count(),
        3,
        "{codes:?}"
    );

    // One client address trying many accounts is stopped too.
    let ip = "203.0.113.7";
    let mut limited = 0;
    let started = std::time::Instant::now();
    for i in 0..40 {
        let res = app
            .anon(
                LOGIN,
                json!({ "t": "alpha", "e": format!("probe{i}@alpha.test"), "p": "whatever it is" }),
                Some(ip),
            )
            .await;
        if code(&res) == "LIMIT_EXCEEDED" {
            limited += 1;
        }
    }
    // 30 attempts, then one more every 2 s: a slow (debug, busy) run earns a few back.
    let refilled = (started.elapsed().as_secs() / 2) as usize;
    assert!(
        limited <= 10 && limited + refilled >= 10,
        "30 attempts per address, then refused: {limited} refused in {:?}",
        started.elapsed()
    );
    // Another address is not affected.
    let res = login(&app, "alpha", "probe@alpha.test", "whatever it is").await;
    assert_eq!(code(&res), "UNAUTHENTICATED");
}

#[tokio::test]
async fn only_sign_in_fields_run_without_a_token() {
    let app = TestApp::new().await;
    let (status, text) = app.anon_status("{ me { id } }", json!({})).await;
    assert_eq!(status, 401, "{text}");
    let (status, text) = app
        .anon_status(
            "mutation { login(tenant: \"alpha\", email: \"x@alpha.test\", password: \"whatever it is\") { accessToken } createForumCategory(input: {name: \"n\", slug: \"s\"}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(
        status, 401,
        "a sign-in field does not carry others along: {text}"
    );
    let (status, text) = app
        .anon_status(
            "mutation { login(tenant: \"alpha\", email: \"x@alpha.test\", password: \"whatever it is\") { accessToken } }",
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{text}");
}
