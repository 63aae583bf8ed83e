//! Nested writes: a create that creates or connects related rows in the same transaction,
//! with the tenancy, ACL, owner stamping, audit rows and change events of separate creates,
//! and nothing left behind when any part fails.

use serde_json::{json, Value as Json};

use crate::harness::TestApp;

async fn category(app: &TestApp, slug: &str) -> Json {
    app.ok(
        &app.a.admin,
        "mutation($s: String!) { createForumCategory(input: {name: $s, slug: $s}) { id } }",
        json!({ "s": slug }),
    )
    .await["createForumCategory"]["id"]
        .clone()
}

/// Rows of the tables a nested create writes, and the trail it leaves.
async fn counts(app: &TestApp) -> [i64; 4] {
    [
        app.count_rows("forum_threads").await,
        app.count_rows("forum_posts").await,
        app.count_rows("audit_logs").await,
        app.count_rows("change_events").await,
    ]
}

const START: &str = "mutation($i: ForumThreadCreateInput!) {
  createForumThread(input: $i) {
    id title authorId
    posts(orderBy: [{content: ASC}]) { totalCount nodes { id content authorId threadId } }
  }
}";

#[tokio::test]
async fn a_thread_is_created_with_its_first_posts_as_separate_creates_would() {
    let app = TestApp::new().await;
    let c = category(&app, "nested").await;
    let before = counts(&app).await;
    let d = app
        .ok(
            &app.a.user,
            START,
            json!({ "i": { "categoryId": c, "title": "Hello", "slug": "hello",
                "posts": { "create": [{ "content": "a first" }, { "content": "b second" }] } } }),
        )
        .await;
    let t = &d["createForumThread"];
    assert_eq!(t["posts"]["totalCount"], json!(2), "{d}");
    let me = app.a.user_id.to_string();
    assert_eq!(t["authorId"], json!(me));
    for p in t["posts"]["nodes"].as_array().cloned().unwrap_or_default() {
        assert_eq!(p["authorId"], json!(me), "posts are the caller's: {p}");
        assert_eq!(p["threadId"], t["id"]);
    }
    let after = counts(&app).await;
    assert_eq!(after[0] - before[0], 1);
    assert_eq!(after[1] - before[1], 2);
    // A create's audit row and change event per row, as separate creates write them.
    assert!(
        after[2] - before[2] >= 3,
        "audit rows: {before:?} -> {after:?}"
    );
    assert!(
        after[3] - before[3] >= 3,
        "change events: {before:?} -> {after:?}"
    );
    let audited = app
        .scalar(&format!(
            "SELECT count(*)::text FROM audit_logs WHERE entity = 'ForumPost' AND action = 'CREATE' AND actor_id = '{me}'"
        ))
        .await;
    assert_eq!(audited, "2");
    // The hooks of posts ran: the thread counts its replies.
    let d = app
        .ok(
            &app.a.user,
            "query($t: ID!) { forumThread(id: $t) { replyCount } }",
            json!({ "t": t["id"] }),
        )
        .await;
    assert!(d["forumThread"]["replyCount"].as_i64().is_some());
    // Another tenant sees none of it.
    let d = app
        .ok(&app.b.admin, "{ forumPostsAggregate { count } }", json!({}))
        .await;
    assert_eq!(d["forumPostsAggregate"]["count"], json!(0));
}

#[tokio::test]
async fn an_execution_is_created_with_its_node_executions() {
    let app = TestApp::new().await;
    let w = app
        .ok(
            &app.a.admin,
            "mutation { createWorkflow(input: {name: \"w\"}) { id } }",
            json!({}),
        )
        .await["createWorkflow"]["id"]
        .clone();
    let d = app
        .ok(
            &app.a.admin,
            "mutation($w: ID!) { createWorkflowExecutions(inputs: [
                {workflowId: $w, status: RUNNING, nodeExecutions: {create: [{nodeId: \"a\", status: COMPLETED}, {nodeId: \"b\", status: RUNNING}]}},
                {workflowId: $w, status: PENDING, nodeExecutions: {create: [{nodeId: \"c\", status: PENDING}]}}
              ]) { id nodeExecutions(orderBy: [{nodeId: ASC}]) { nodes { nodeId executionId } } } }",
            json!({ "w": w }),
        )
        .await;
    let rows = d["createWorkflowExecutions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(rows.len(), 2);
    let nodes: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            r["nodeExecutions"]["nodes"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|n| {
                    assert_eq!(n["executionId"], r["id"]);
                    n["nodeId"].as_str().unwrap_or_default().to_string()
                })
                .collect()
        })
        .collect();
    assert_eq!(
        nodes,
        vec![vec!["a".to_string(), "b".into()], vec!["c".into()]]
    );
}

#[tokio::test]
async fn connect_moves_rows_the_caller_may_change_and_nothing_else() {
    let app = TestApp::new().await;
    let c = category(&app, "moves").await;
    let old = app
        .ok(
            &app.a.user,
            START,
            json!({ "i": { "categoryId": c, "title": "Old", "slug": "old",
                "posts": { "create": [{ "content": "mine" }] } } }),
        )
        .await;
    let mine = old["createForumThread"]["posts"]["nodes"][0]["id"].clone();
    let theirs = app
        .ok(
            &app.a.admin,
            START,
            json!({ "i": { "categoryId": c, "title": "Admin's", "slug": "admins",
                "posts": { "create": [{ "content": "theirs" }] } } }),
        )
        .await["createForumThread"]["posts"]["nodes"][0]["id"]
        .clone();
    // The user's own post moves to the new thread.
    let d = app
        .ok(
            &app.a.user,
            START,
            json!({ "i": { "categoryId": c, "title": "New", "slug": "new",
                "posts": { "connect": [mine], "create": [{ "content": "fresh" }] } } }),
        )
        .await;
    assert_eq!(
        d["createForumThread"]["posts"]["totalCount"],
        json!(2),
        "{d}"
    );
    let moved = app
        .scalar(&format!("SELECT t.slug FROM forum_posts p JOIN forum_threads t ON t.id = p.thread_id WHERE p.id = '{}'", mine.as_str().unwrap_or_default()))
        .await;
    assert_eq!(moved, "new");

    // Someone else's post, a missing one, another tenant's: refused, and nothing is left
    // of the thread or the posts created before the failing connect.
    let other_tenant = app
        .ok(
            &app.b.admin,
            "mutation { createForumCategory(input: {name: \"b\", slug: \"b\"}) { id } }",
            json!({}),
        )
        .await["createForumCategory"]["id"]
        .clone();
    let b_post = app
        .ok(
            &app.b.admin,
            START,
            json!({ "i": { "categoryId": other_tenant, "title": "B", "slug": "b",
                "posts": { "create": [{ "content": "b's" }] } } }),
        )
        .await["createForumThread"]["posts"]["nodes"][0]["id"]
        .clone();
    for (n, stranger) in [
        theirs,
        json!("0190a000-0000-7000-8000-000000000000"),
        b_post,
    ]
    .into_iter()
    .enumerate()
    {
        let before = counts(&app).await;
        let (code, err) = app
            .err(
                &app.a.user,
                START,
                json!({ "i": { "categoryId": c, "title": "Fails", "slug": format!("fails{n}"),
                    "posts": { "create": [{ "content": "x" }, { "content": "y" }], "connect": [stranger] } } }),
            )
            .await;
        assert_eq!(code, "BAD_USER_INPUT", "{err}");
        assert!(
            err["message"]
                .as_str()
                .is_some_and(|m| m.contains("posts.connect")),
            "{err}"
        );
        assert_eq!(
            counts(&app).await,
            before,
            "nothing stored after a failed nested create"
        );
    }
}

#[tokio::test]
async fn a_failure_anywhere_leaves_nothing_and_inputs_are_bounded() {
    let app = TestApp::new().await;
    let c = category(&app, "bounded").await;
    let before = counts(&app).await;
    // A post that breaks a foreign key when the posts are written, after the thread was.
    let (code, err) = app
        .err(
            &app.a.user,
            START,
            json!({ "i": { "categoryId": c, "title": "T", "slug": "t",
                "posts": { "create": [{ "content": "ok" }, { "content": "reply", "parentId": "0190a000-0000-7000-8000-000000000001" }] } } }),
        )
        .await;
    assert_eq!(code, "BAD_USER_INPUT", "{err}");
    assert_eq!(counts(&app).await, before);
    // A thread slug already taken: the conflict surfaces, the posts go with it.
    app.ok(
        &app.a.user,
        START,
        json!({ "i": { "categoryId": c, "title": "T", "slug": "taken" } }),
    )
    .await;
    let before = counts(&app).await;
    let (code, _) = app
        .err(
            &app.a.user,
            START,
            json!({ "i": { "categoryId": c, "title": "T", "slug": "taken", "posts": { "create": [{ "content": "lost" }] } } }),
        )
        .await;
    assert_eq!(code, "CONFLICT");
    assert_eq!(counts(&app).await, before);
    // At most 500 rows per mutation, nested ones included.
    let posts: Vec<Json> = (0..500)
        .map(|i| json!({ "content": format!("p{i}") }))
        .collect();
    let (code, err) = app
        .err(
            &app.a.user,
            START,
            json!({ "i": { "categoryId": c, "title": "Big", "slug": "big", "posts": { "create": posts } } }),
        )
        .await;
    assert_eq!(code, "BAD_USER_INPUT", "{err}");
    assert_eq!(counts(&app).await, before);
    // Upserts write one row.
    let (code, _) = app
        .err(
            &app.a.admin,
            "mutation($c: ID!) { upsertForumThread(onConflict: CATEGORY_ID_SLUG, create: {categoryId: $c, title: \"u\", slug: \"u\", posts: {create: [{content: \"no\"}]}}) { id } }",
            json!({ "c": c }),
        )
        .await;
    assert!(
        code == "BAD_USER_INPUT" || code == "GRAPHQL_VALIDATION_FAILED",
        "{code}"
    );
}
