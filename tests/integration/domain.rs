//! Behaviour the domain modules add to the engine through its extension points.

use serde_json::json;

use crate::harness::TestApp;

/// A thread of tenant A's user, in a category of its admin; its id.
async fn user_thread(app: &TestApp) -> serde_json::Value {
    let category = app
        .ok(
            &app.a.admin,
            "mutation { createForumCategory(input: {name: \"General\", slug: \"general\"}) { id } }",
            json!({}),
        )
        .await["createForumCategory"]["id"]
        .clone();
    app.ok(
        &app.a.user,
        "mutation($c: ID!) { createForumThread(input: {categoryId: $c, title: \"T\", slug: \"t\"}) { id } }",
        json!({"c": category}),
    )
    .await["createForumThread"]["id"]
    .clone()
}

/// `replyCount` and `lastPostAt` follow the thread's posts, whoever writes them and however
/// (one, several, deleted, moved to another thread), in the same transaction.
#[tokio::test]
async fn thread_counters_follow_its_posts() {
    let app = &TestApp::new().await;
    let (admin, user) = (&app.a.admin, &app.a.user);
    let data = app
        .ok(
            admin,
            "mutation { createForumCategory(input: {name: \"General\", slug: \"general\"}) { id } }",
            json!({}),
        )
        .await;
    let category = data["createForumCategory"]["id"].clone();
    let thread = |slug: &'static str| {
        let category = category.clone();
        async move {
            let d = app
                .ok(
                    user,
                    "mutation($c: ID!, $s: String!) { createForumThread(input: {categoryId: $c, title: \"T\", slug: $s}) { id replyCount lastPostAt } }",
                    json!({"c": category, "s": slug}),
                )
                .await;
            d["createForumThread"].clone()
        }
    };
    let t1 = thread("one").await;
    let t2 = thread("two").await;
    assert_eq!(t1["replyCount"], 0);
    assert!(t1["lastPostAt"].is_null());

    let counters = |id: serde_json::Value| async move {
        let d = app
            .ok(
                user,
                "query($id: ID!) { forumThread(id: $id) { replyCount lastPostAt } }",
                json!({"id": id}),
            )
            .await;
        d["forumThread"].clone()
    };

    let posts = app
        .ok(
            user,
            "mutation($t: ID!) { createForumPosts(inputs: [{threadId: $t, content: \"a\"}, {threadId: $t, content: \"b\"}]) { id createdAt } }",
            json!({"t": t1["id"]}),
        )
        .await["createForumPosts"]
        .clone();
    let c = counters(t1["id"].clone()).await;
    assert_eq!(c["replyCount"], 2, "{c}");
    assert_eq!(c["lastPostAt"], posts[1]["createdAt"], "{c}");

    // Moving a post to another thread moves its count.
    app.ok(
        user,
        "mutation($p: ID!, $t: ID!) { updateForumPost(id: $p, input: {threadId: $t}) { id } }",
        json!({"p": posts[1]["id"], "t": t2["id"]}),
    )
    .await;
    let (c1, c2) = (
        counters(t1["id"].clone()).await,
        counters(t2["id"].clone()).await,
    );
    assert_eq!(c1["replyCount"], 1, "{c1}");
    assert_eq!(c1["lastPostAt"], posts[0]["createdAt"], "{c1}");
    assert_eq!(c2["replyCount"], 1, "{c2}");

    // Deleting the last post clears the thread's last post time.
    app.ok(
        admin,
        "mutation($p: ID!) { deleteForumPost(id: $p) { id } }",
        json!({"p": posts[0]["id"]}),
    )
    .await;
    let c1 = counters(t1["id"].clone()).await;
    assert_eq!(c1["replyCount"], 0, "{c1}");
    assert!(c1["lastPostAt"].is_null(), "{c1}");

    // Clients cannot set the counters themselves.
    let (code, _) = app
        .err(
            admin,
            "mutation($t: ID!) { updateForumThread(id: $t, input: {replyCount: 99}) { id } }",
            json!({"t": t1["id"]}),
        )
        .await;
    assert_eq!(code, "BAD_USER_INPUT");
}

/// Replies written at the same moment to one thread all land and are all counted: the
/// counter's lock queues them instead of deadlocking them.
#[tokio::test]
async fn concurrent_replies_are_all_counted() {
    let app = &TestApp::new().await;
    let user = &app.a.user;
    let thread = user_thread(app).await;
    let replies = (0..20).map(|i| {
        let thread = thread.clone();
        async move {
            app.ok(
                user,
                "mutation($t: ID!, $c: String!) { createForumPost(input: {threadId: $t, content: $c}) { id } }",
                json!({"t": thread, "c": format!("reply {i}")}),
            )
            .await
        }
    });
    futures::future::join_all(replies).await;
    let c = app
        .ok(
            user,
            "query($id: ID!) { forumThread(id: $id) { replyCount } }",
            json!({"id": thread}),
        )
        .await;
    assert_eq!(c["forumThread"]["replyCount"], 20, "{c}");
}

/// A query reads one snapshot: while replies are committed, a thread's counter (read by the
/// root statement) and the count of its posts (read by the relation's loader, a statement
/// later) always agree, and so do the posts listed.
#[tokio::test]
async fn a_query_reads_one_snapshot_while_writes_commit() {
    let app = &TestApp::new().await;
    let user = &app.a.user;
    let thread = user_thread(app).await;
    let writes = async {
        for i in 0..40 {
            app.ok(
                user,
                "mutation($t: ID!, $c: String!) { createForumPost(input: {threadId: $t, content: $c}) { id } }",
                json!({"t": thread, "c": format!("reply {i}")}),
            )
            .await;
        }
    };
    let reads = async {
        let mut seen = Vec::new();
        for _ in 0..60 {
            let d = app
                .ok(
                    user,
                    "query($id: ID!) { forumThread(id: $id) { replyCount posts(first: 100) { totalCount nodes { id } } } }",
                    json!({"id": thread}),
                )
                .await;
            let t = &d["forumThread"];
            let listed = t["posts"]["nodes"].as_array().map_or(0, Vec::len);
            assert_eq!(t["replyCount"], t["posts"]["totalCount"], "{d}");
            assert_eq!(t["posts"]["totalCount"], json!(listed), "{d}");
            seen.push(listed);
            tokio::task::yield_now().await;
        }
        seen
    };
    let ((), seen) = futures::future::join(writes, reads).await;
    // The reads ran while the counts moved.
    assert!(seen.iter().any(|&n| n > 0 && n < 40), "{seen:?}");
}
