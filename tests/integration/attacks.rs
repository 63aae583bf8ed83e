//! The holes an outside attack found (issue 11), each closed and kept closed: writes authored
//! by someone else, global rows written by a tenant's admin, bodies and inputs without bounds,
//! a legacy socket outliving its token, sign-in state not enforced, subscription filters that
//! probe rows the subscriber could not read. Driven by the catalog's metadata where the rule
//! is per entity, so a new entity is attacked the day it exists.

use std::time::Duration;

use axum::body::Body;
use gateway::auth::Role;
use gateway::graphql::meta::metadata;
use gateway::graphql::meta::{AclRole, EntityScope};
use http::{header, Method, Request, StatusCode};
use serde_json::{json, Map, Value as Json};

use crate::harness::TestApp;
use crate::subscriptions::{acked, connect, init, recv, send};
use crate::sweep::{can, Fixtures};

fn code(res: &Json) -> String {
    res["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("ok")
        .to_string()
}

/// A create input for `m` as an ordinary user would send it: fields only admins may set left
/// out, parents made by the admin.
async fn user_input(
    app: &TestApp,
    m: &'static gateway::graphql::meta::EntityMeta,
) -> Map<String, Json> {
    let mut fx = Fixtures::new(app, &app.a.admin);
    fx.set_me(app.a.user_id.to_string());
    let mut input = fx.input(m).await;
    input.retain(|k, _| {
        m.columns
            .iter()
            .find(|c| c.field == k.as_str())
            .is_none_or(|c| c.set_by.is_empty() || Some(c.column) == m.owner)
    });
    input
}

#[tokio::test]
async fn writes_are_authored_by_the_caller() {
    let app = TestApp::new().await;
    let (admin, user) = (app.a.admin_id.to_string(), app.a.user_id.to_string());
    let mut wrong = Vec::new();
    let mut checked = 0;
    for m in metadata().entities.iter().copied() {
        let Some(owner) = m.owner.and_then(|o| m.column(o)) else {
            continue;
        };
        let user_creates = m
            .acl
            .create
            .iter()
            .any(|r| matches!(r, AclRole::User | AclRole::Public));
        if m.scope != EntityScope::Tenant || !user_creates || owner.column == "id" {
            continue;
        }
        let n = m.name;
        let create = format!(
            "mutation($i: {n}CreateInput!) {{ create{n}(input: $i) {{ id {} }} }}",
            owner.field
        );
        let before = app.count_rows(m.table).await;
        // Naming the admin as author: refused, whether the field is an input or not.
        let mut input = user_input(&app, m).await;
        input.insert(owner.field.to_string(), json!(admin));
        let res = app.gql(&app.a.user, &create, json!({ "i": input })).await;
        let got = code(&res);
        // An owner only admins may name is FORBIDDEN; one that is no input at all fails
        // validation.
        let refused = if owner.writable {
            got == "FORBIDDEN"
        } else {
            matches!(got.as_str(), "GRAPHQL_VALIDATION_FAILED" | "BAD_USER_INPUT")
        };
        if !refused {
            wrong.push(format!("{n}: create as the admin answered {got}: {res}"));
        }
        if app.count_rows(m.table).await != before {
            wrong.push(format!("{n}: a row was stored for the admin"));
        }
        // Without it, the row is the caller's.
        input.remove(owner.field);
        let res = app.gql(&app.a.user, &create, json!({ "i": input })).await;
        let row = &res["data"][format!("create{n}")];
        if row[owner.field] != json!(user) {
            wrong.push(format!(
                "{n}: created without {} is not the caller's: {res}",
                owner.field
            ));
            continue;
        }
        // Moving one's own row to somebody else is not possible either.
        if can(m.acl.update) && !m.append_only {
            let update = format!(
                "mutation($id: ID!, $i: {n}UpdateInput!) {{ update{n}(id: $id, input: $i) {{ id }} }}"
            );
            let res = app
                .gql(
                    &app.a.user,
                    &update,
                    json!({ "id": row["id"], "i": { owner.field: admin } }),
                )
                .await;
            if code(&res) == "ok" {
                wrong.push(format!("{n}: the user handed its row to the admin: {res}"));
            }
            let stored = app
                .scalar(&format!(
                    "SELECT {}::text FROM \"{}\" WHERE id = '{}'",
                    owner.column,
                    m.table,
                    row["id"].as_str().unwrap_or_default()
                ))
                .await;
            if stored != user {
                wrong.push(format!("{n}: owner became {stored}"));
            }
        }
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} owned entities checked");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[tokio::test]
async fn admins_act_for_users_only_where_the_catalog_says_and_only_in_their_tenant() {
    let app = TestApp::new().await;
    let notify = "mutation($u: ID) { createNotification(input: {userId: $u, title: \"t\", message: \"m\"}) { userId } }";
    // setBy admin: an admin may name a user of its tenant.
    let d = app
        .ok(&app.a.admin, notify, json!({ "u": app.a.user_id }))
        .await;
    assert_eq!(
        d["createNotification"]["userId"],
        json!(app.a.user_id.to_string())
    );
    // Not one of another tenant: that looks like a missing user.
    let (c, _) = app
        .err(&app.a.admin, notify, json!({ "u": app.b.user_id }))
        .await;
    assert_eq!(c, "BAD_USER_INPUT");
    // A wallet: users open their own, admins may open one for a user; only admins set status.
    let wallet = "mutation($u: ID, $s: WalletStatus) { createWallet(input: {userId: $u, currency: \"EUR\", status: $s}) { userId status } }";
    let (c, _) = app
        .err(&app.a.user, wallet, json!({ "u": app.a.admin_id }))
        .await;
    assert_eq!(c, "FORBIDDEN");
    let (c, e) = app.err(&app.a.user, wallet, json!({ "s": "FROZEN" })).await;
    assert_eq!(c, "FORBIDDEN", "{e}");
    let d = app.ok(&app.a.user, wallet, json!({})).await;
    assert_eq!(
        d["createWallet"]["userId"],
        json!(app.a.user_id.to_string())
    );
    // Every field only admins may set is refused to a user that gives it.
    let mut checked = 0;
    for m in metadata().entities.iter().copied() {
        let user_creates = m.acl.create.iter().any(|r| matches!(r, AclRole::User));
        if !user_creates {
            continue;
        }
        for col in m
            .columns
            .iter()
            .filter(|c| c.writable && c.set_by == [AclRole::Admin])
        {
            if Some(col.column) == m.owner {
                continue;
            }
            let mut input = user_input(&app, m).await;
            let mut fx = Fixtures::new(&app, &app.a.admin);
            input.insert(col.field.to_string(), fx.value(col).await);
            let n = m.name;
            let q = format!("mutation($i: {n}CreateInput!) {{ create{n}(input: $i) {{ id }} }}");
            let res = app.gql(&app.a.user, &q, json!({ "i": input })).await;
            assert_eq!(code(&res), "FORBIDDEN", "{n}.{}: {res}", col.field);
            checked += 1;
        }
    }
    assert!(checked >= 8, "only {checked} admin-only fields checked");
}

#[tokio::test]
async fn global_rows_belong_to_the_platform_operator() {
    let app = TestApp::new().await;
    let tier = "mutation($n: String!) { createPricingTier(input: {name: $n, priceMonthly: \"1\", priceYearly: \"10\", executionLimit: 10, workflowLimit: 2}) { id } }";
    let (c, _) = app.err(&app.a.admin, tier, json!({ "n": "Gold" })).await;
    assert_eq!(c, "FORBIDDEN");
    let id = app.ok(&app.a.platform, tier, json!({ "n": "Gold" })).await["createPricingTier"]["id"]
        .clone();
    // Tenant admins read it, but change or delete nothing of it.
    let d = app
        .ok(
            &app.b.admin,
            "query($id: ID!) { pricingTier(id: $id) { id } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(d["pricingTier"]["id"], id);
    let update =
        "mutation($id: ID!) { updatePricingTier(id: $id, input: {name: \"Mine\"}) { id } }";
    let (c, _) = app.err(&app.b.admin, update, json!({ "id": id })).await;
    assert_eq!(c, "FORBIDDEN");
    let (c, _) = app
        .err(
            &app.a.admin,
            "mutation($id: ID!) { deletePricingTier(id: $id) { id } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(c, "FORBIDDEN");
    let (c, _) = app
        .err(
            &app.a.admin,
            "mutation { deletePricingTiers(where: {}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(c, "FORBIDDEN");
    app.ok(&app.a.platform, update, json!({ "id": id })).await;
    for q in [
        "mutation { createBlockLibrary(input: {name: \"x\", category: \"c\", blockType: \"code\", executionCode: \"os.exit()\"}) { id } }",
        "mutation { updateSchemaChanges(where: {}, input: {status: APPLIED}) { id } }",
        "mutation { deleteSchemaPackages(where: {}) { id } }",
    ] {
        let (c, e) = app.err(&app.a.admin, q, json!({})).await;
        assert!(c == "FORBIDDEN" || c == "GRAPHQL_VALIDATION_FAILED", "{q}: {e}");
    }
    // Every global entity: no write for a tenant's admin, whatever the catalog grows.
    for m in metadata()
        .entities
        .iter()
        .copied()
        .filter(|m| m.scope == EntityScope::Global)
    {
        for roles in [m.acl.create, m.acl.update, m.acl.delete] {
            assert!(roles.iter().all(|r| *r == AclRole::Platform), "{}", m.name);
        }
    }
    // A tenant's slug is the platform's to change: renaming onto an existing one and onto a
    // free one get the same answer, so the attempt confirms nothing.
    let rename =
        "mutation($id: ID!, $s: String!) { updateTenant(id: $id, input: {slug: $s}) { id } }";
    let taken = app
        .err(&app.a.admin, rename, json!({ "id": app.a.id, "s": "beta" }))
        .await;
    let free = app
        .err(
            &app.a.admin,
            rename,
            json!({ "id": app.a.id, "s": "nobody-has-this" }),
        )
        .await;
    assert_eq!(taken.0, "FORBIDDEN");
    assert_eq!(taken.1["message"], free.1["message"]);
    // A platform token is never what signing in gives: its claim is ignored there.
    let forged = app
        .keys
        .issue_for_session(
            app.a.id,
            app.a.admin_id,
            Role::Admin,
            uuid::Uuid::now_v7(),
            60,
        )
        .expect("token");
    let (c, _) = app.err(&forged, tier, json!({ "n": "Forged" })).await;
    assert_eq!(c, "FORBIDDEN");
}

fn big_post(
    declared: Option<u64>,
    chunks: usize,
    chunk: usize,
    pulled: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> Request<Body> {
    let stream = futures::stream::iter(0..chunks).map(move |_| {
        pulled.fetch_add(chunk, std::sync::atomic::Ordering::Relaxed);
        Ok::<_, std::io::Error>(axum::body::Bytes::from(vec![b' '; chunk]))
    });
    let mut req = Request::builder()
        .method(Method::POST)
        .uri("/graphql")
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(n) = declared {
        req = req.header(header::CONTENT_LENGTH, n);
    }
    req.body(Body::from_stream(stream)).expect("request")
}

use futures::StreamExt;

#[tokio::test]
async fn request_bodies_are_limited_before_they_are_read() {
    let app = TestApp::new().await;
    let limit = gateway::config::Limits::default().max_body_bytes;
    let pulled = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    // 48 MiB declared: refused before a byte is read.
    let (status, _, body) = app
        .send(big_post(Some(48 << 20), 768, 64 << 10, pulled.clone()))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert!(body.contains("LIMIT_EXCEEDED"), "{body}");
    assert_eq!(pulled.load(std::sync::atomic::Ordering::Relaxed), 0);
    // Streamed without a length: refused once past the limit, the rest never read.
    let pulled = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (status, _, _) = app
        .send(big_post(None, 768, 64 << 10, pulled.clone()))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let read = pulled.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        read <= limit + (64 << 10),
        "{read} bytes read for a {limit}-byte limit"
    );
}

#[tokio::test]
async fn inputs_that_drive_sql_size_are_bounded() {
    let app = TestApp::new().await;
    let order: Vec<Json> = (0..2000).map(|_| json!({ "title": "ASC" })).collect();
    let q =
        "query($o: [ForumThreadOrderBy!]) { forumThreads(orderBy: $o, first: 1) { totalCount } }";
    let (c, e) = app.err(&app.a.user, q, json!({ "o": order })).await;
    assert_eq!(
        (c.as_str(), &e["extensions"]["field"]),
        ("BAD_USER_INPUT", &json!("orderBy")),
        "{e}"
    );
    let ids: Vec<String> = (0..5000)
        .map(|_| uuid::Uuid::now_v7().to_string())
        .collect();
    let q = "query($w: ForumThreadWhere) { forumThreads(where: $w) { totalCount } }";
    for w in [
        json!({ "id": { "in": ids } }),
        json!({ "OR": (0..500).map(|i| json!({ "title": { "equals": format!("t{i}") } })).collect::<Vec<_>>() }),
        (0..30).fold(
            json!({ "title": { "equals": "x" } }),
            |w, _| json!({ "NOT": w }),
        ),
    ] {
        let (c, e) = app.err(&app.a.user, q, json!({ "w": w })).await;
        assert_eq!(c, "BAD_USER_INPUT", "{e}");
        assert_eq!(e["extensions"]["field"], json!("where"), "{e}");
    }
    // Batch creates are bounded too: one INSERT may bind at most 65,535 values.
    let many: Vec<Json> = (0..2000)
        .map(|i| json!({ "name": format!("c{i}"), "slug": format!("c{i}") }))
        .collect();
    let (c, e) = app
        .err(
            &app.a.admin,
            "mutation($i: [ForumCategoryCreateInput!]!) { createForumCategories(inputs: $i) { id } }",
            json!({ "i": many }),
        )
        .await;
    assert_eq!(
        (c.as_str(), &e["extensions"]["field"]),
        ("BAD_USER_INPUT", &json!("inputs"))
    );
    // Bulk writes take the same bounds.
    let (c, _) = app
        .err(&app.a.admin, "mutation($w: ForumThreadWhere!) { deleteForumThreads(where: $w) { id } }", json!({ "w": { "id": { "notIn": (0..1500).map(|i| i.to_string()).collect::<Vec<_>>() } } }))
        .await;
    assert_ne!(c, "INTERNAL");
    // No statement holds a pooled connection past the statement timeout.
    let db =
        gateway::db::Db::connect(&app.serving_url, 1, Duration::from_millis(200)).expect("pool");
    let rc = gateway::auth::RequestContext::new(app.a.id, app.a.user_id, Role::User);
    let slow = db
        .transaction(&rc, true, |conn| {
            Box::pin(async move {
                use diesel_async::RunQueryDsl;
                diesel::sql_query("SELECT pg_sleep(2)")
                    .execute(conn)
                    .await
                    .map_err(|e| gateway::error::ApiError::from_db(e, "Test", &[]))
            })
        })
        .await;
    assert_eq!(slow.err().map(|e| e.code()), Some("LIMIT_EXCEEDED"));
}

#[tokio::test]
async fn the_legacy_socket_closes_on_expiry_and_without_init() {
    let app = TestApp::with_limits(gateway::config::Limits {
        ws_init_timeout: Duration::from_secs(1),
        ..Default::default()
    })
    .await;
    let addr = app.listen().await;
    // No connection_init in time.
    let mut ws = connect(addr, "graphql-ws").await;
    let closed = recv(&mut ws, Duration::from_secs(5)).await;
    assert_eq!(closed, Some(json!({ "close": 4408 })));
    // A 3-second token: queries answer before, the socket is closed after.
    let short = app
        .keys
        .issue(app.a.id, app.a.user_id, Role::User, 3)
        .expect("token");
    let mut ws = connect(addr, "graphql-ws").await;
    init(&mut ws, &short).await;
    send(
        &mut ws,
        json!({ "id": "1", "type": "start", "payload": { "query": "{ viewer { userId } }" } }),
    )
    .await;
    let mut answered = false;
    let mut closed = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        match recv(&mut ws, Duration::from_secs(8)).await {
            Some(m) if m["type"] == "data" => answered = true,
            Some(m) if m.get("close").is_some() => {
                closed = Some(m);
                break;
            }
            Some(_) => {}
            None => break,
        }
    }
    assert!(answered, "the query before expiry was not answered");
    assert_eq!(closed, Some(json!({ "close": 4403 })));
}

#[tokio::test]
async fn suspension_revocation_and_email_case_are_enforced_at_the_next_request() {
    let app = TestApp::new().await;
    let me = "{ viewer { userId } }";
    app.ok(&app.a.user, me, json!({})).await;
    // An inactive user is refused at its next request, with the token it already holds.
    app.ok(
        &app.a.admin,
        "mutation($id: ID!) { updateUser(id: $id, input: {status: INACTIVE}) { id } }",
        json!({ "id": app.a.user_id }),
    )
    .await;
    let (c, _) = app
        .err(&app.a.user, "{ forumThreads { totalCount } }", json!({}))
        .await;
    assert_eq!(c, "UNAUTHENTICATED");
    // A user may not reactivate itself or change its status.
    let (c, _) = app
        .err(
            &app.a.user,
            "mutation($id: ID!) { updateUser(id: $id, input: {status: ACTIVE}) { id } }",
            json!({ "id": app.a.user_id }),
        )
        .await;
    assert!(c == "FORBIDDEN" || c == "UNAUTHENTICATED", "{c}");
    // Emails are unique whatever their case.
    let (c, _) = app
        .err(&app.a.admin, "mutation { createUser(input: {email: \"ADMIN@alpha.test\", name: \"Shadow\"}) { id } }", json!({}))
        .await;
    assert_eq!(c, "CONFLICT");
    // Operator tokens of a tenant are revoked together; new ones work.
    let before = gateway::tenants::token_for(
        &app.url,
        &app.keys,
        "beta",
        "admin@beta.test",
        None,
        false,
        60,
    )
    .await
    .expect("token");
    app.ok(&before, "{ forumThreads { totalCount } }", json!({}))
        .await;
    gateway::tenants::revoke_operator_tokens(&app.url, "beta")
        .await
        .expect("revoke");
    let (c, _) = app
        .err(&before, "{ forumThreads { totalCount } }", json!({}))
        .await;
    assert_eq!(c, "UNAUTHENTICATED");
    let (c, _) = app
        .err(&app.b.admin, "{ forumThreads { totalCount } }", json!({}))
        .await;
    assert_eq!(c, "UNAUTHENTICATED");
    let after = gateway::tenants::token_for(
        &app.url,
        &app.keys,
        "beta",
        "ADMIN@BETA.TEST",
        None,
        false,
        60,
    )
    .await
    .expect("token");
    app.ok(&after, "{ forumThreads { totalCount } }", json!({}))
        .await;
    // `tenant create` on an existing tenant issues a token of the current generation too.
    let again =
        gateway::tenants::create_tenant(&app.url, &app.keys, "beta", "beta", "admin@beta.test", 60)
            .await
            .expect("tenant");
    assert!(!again.created);
    app.ok(&again.token, "{ forumThreads { totalCount } }", json!({}))
        .await;
    // A suspended tenant: every token of it is refused at once; tenant A is not affected.
    let operator = gateway::tenants::token_for(
        &app.url,
        &app.keys,
        "beta",
        "admin@beta.test",
        None,
        true,
        60,
    )
    .await
    .expect("token");
    app.ok(
        &operator,
        "mutation($id: ID!) { updateTenant(id: $id, input: {status: SUSPENDED}) { id } }",
        json!({ "id": app.b.id }),
    )
    .await
    .to_string();
    let (c, _) = app.err(&after, me, json!({})).await;
    assert!(c == "UNAUTHENTICATED", "{c}");
    let (c, _) = app
        .err(&after, "{ forumThreads { totalCount } }", json!({}))
        .await;
    assert_eq!(c, "UNAUTHENTICATED");
    app.ok(&app.a.admin, "{ forumThreads { totalCount } }", json!({}))
        .await;
}

#[tokio::test]
async fn subscription_filters_never_see_a_version_the_subscriber_could_not_read() {
    let app = TestApp::new().await;
    let addr = app.listen().await;
    let mut ws = acked(addr, &app.a.user).await;
    send(
        &mut ws,
        json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription { notificationChanged(where: {title: {equals: \"secret\"}}) { op node { title } } }" } }),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The admin's own notification titled "secret", then handed to the user under another
    // title: the user may read the new version only, which does not match.
    let made = app
        .ok(
            &app.a.admin,
            "mutation { createNotification(input: {title: \"secret\", message: \"m\"}) { id } }",
            json!({}),
        )
        .await;
    app.ok(
        &app.a.admin,
        "mutation($id: ID!, $u: ID!) { updateNotification(id: $id, input: {userId: $u, title: \"public\"}) { id } }",
        json!({ "id": made["createNotification"]["id"], "u": app.a.user_id }),
    )
    .await;
    // A control: the user's own "secret" arrives.
    app.ok(&app.a.admin, "mutation($u: ID!) { createNotification(input: {userId: $u, title: \"secret\", message: \"m\"}) { id } }", json!({ "u": app.a.user_id }))
        .await;
    let mut seen = Vec::new();
    while let Some(m) = recv(&mut ws, Duration::from_millis(1500)).await {
        seen.push(m);
    }
    let events: Vec<&Json> = seen.iter().filter(|m| m["type"] == "next").collect();
    assert_eq!(events.len(), 1, "{seen:?}");
    assert_eq!(
        events[0]["payload"]["data"]["notificationChanged"]["op"],
        json!("CREATED")
    );
}

#[tokio::test]
async fn signing_out_ends_the_token_and_its_sockets_on_both_protocols() {
    use crate::accounts::{signed_in, with_password, PASSWORD};
    let app = TestApp::with_limits(gateway::config::Limits {
        ws_recheck: Duration::from_secs(1),
        ..Default::default()
    })
    .await;
    let addr = app.listen().await;
    with_password(&app).await;
    let (access, _) = signed_in(&app, "user@alpha.test", PASSWORD).await;
    let mut modern = acked(addr, &access).await;
    let mut legacy = connect(addr, "graphql-ws").await;
    init(&mut legacy, &access).await;
    app.ok(&access, "mutation { logout }", json!({})).await;
    // The access token is refused from the next request on, not when it expires.
    let (c, _) = app.err(&access, "{ viewer { userId } }", json!({})).await;
    assert_eq!(c, "UNAUTHENTICATED");
    // Open sockets of the session close at their next check.
    for ws in [&mut modern, &mut legacy] {
        let mut closed = None;
        while let Some(m) = recv(ws, Duration::from_secs(5)).await {
            if m.get("close").is_some() {
                closed = Some(m);
                break;
            }
        }
        assert_eq!(closed, Some(json!({ "close": 4403 })));
    }
}
