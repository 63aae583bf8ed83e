//! The forum's operations (issue 15): starting a thread with its opening post, replies,
//! likes and reactions, pin, lock and views, through the HTTP router against the database:
//! counters, authorisation, concurrency, locked threads, and the notifications of replies
//! and mentions delivered live.

use std::time::Duration;

use gateway::auth::Role;
use serde_json::{json, Value as Json};
use uuid::Uuid;

use crate::harness::TestApp;
use crate::subscriptions::{acked, recv, send, Socket};

const WAIT: Duration = Duration::from_secs(10);
const QUIET: Duration = Duration::from_millis(700);

const START: &str = "mutation($i: StartForumThreadInput!) { startForumThread(input: $i) { id slug title authorId replyCount viewCount lastPostAt isPinned isLocked posts { totalCount nodes { id content authorId } } } }";
const REPLY: &str = "mutation($t: ID!, $c: String!, $p: ID, $k: String) { replyToForumThread(threadId: $t, content: $c, parentId: $p, clientKey: $k) { id threadId parentId authorId content likes } }";
const LIKE: &str = "mutation($p: ID!) { likeForumPost(postId: $p) { id likes } }";
const UNLIKE: &str = "mutation($p: ID!) { unlikeForumPost(postId: $p) { id likes } }";
const REACT: &str = "mutation($p: ID!, $k: ForumReactionKind!) { reactToForumPost(postId: $p, kind: $k) { id likes } }";
const UNREACT: &str = "mutation($p: ID!, $k: ForumReactionKind!) { unreactToForumPost(postId: $p, kind: $k) { id likes } }";
const PIN: &str =
    "mutation($id: ID!, $on: Boolean!) { pinForumThread(id: $id, pinned: $on) { id isPinned } }";
const LOCK: &str =
    "mutation($id: ID!, $on: Boolean!) { lockForumThread(id: $id, locked: $on) { id isLocked } }";
const VIEW: &str = "mutation($id: ID!) { viewForumThread(id: $id) { id viewCount } }";
const THREAD: &str = "query($id: ID!) { forumThread(id: $id) { id replyCount viewCount lastPostAt isPinned isLocked posts { totalCount } } }";
const POST: &str = "query($id: ID!) { forumPost(id: $id) { id likes content threadId } }";

/// Another user of tenant A with a username; its id and token.
async fn member(app: &TestApp, username: &str) -> (String, String) {
    let d = app
        .ok(
            &app.a.admin,
            "mutation($i: UserCreateInput!) { createUser(input: $i) { id } }",
            json!({ "i": { "email": format!("{username}@alpha.test"), "name": format!("User {username}"), "username": username } }),
        )
        .await;
    let id = d["createUser"]["id"].as_str().expect("id").to_string();
    let token = app
        .keys
        .issue(app.a.id, id.parse().expect("uuid"), Role::User, 3600)
        .expect("token");
    (id, token)
}

async fn category(app: &TestApp, token: &str, slug: &str) -> Json {
    app.ok(
        token,
        "mutation($s: String!) { createForumCategory(input: {name: $s, slug: $s}) { id } }",
        json!({ "s": slug }),
    )
    .await["createForumCategory"]["id"]
        .clone()
}

async fn start(app: &TestApp, token: &str, category: &Json, title: &str, content: &str) -> Json {
    app.ok(
        token,
        START,
        json!({ "i": { "categoryId": category, "title": title, "content": content } }),
    )
    .await["startForumThread"]
        .clone()
}

async fn reply(app: &TestApp, token: &str, thread: &Json, content: &str) -> Json {
    app.ok(token, REPLY, json!({ "t": thread, "c": content }))
        .await["replyToForumThread"]
        .clone()
}

#[tokio::test]
async fn forum_thread_started_replied_to_liked_and_viewed() {
    let app = &TestApp::new().await;
    let (u1, t1) = member(app, "ada").await;
    let (_, t2) = member(app, "bob").await;
    let (_, t3) = member(app, "cyd").await;
    let cat = category(app, &app.a.admin, "general").await;

    // A thread with its opening post, in one call.
    let thread = start(app, &t1, &cat, "  Hello, World!  ", "The first post").await;
    assert_eq!(thread["slug"], "hello-world", "{thread}");
    assert_eq!(thread["title"], "Hello, World!");
    assert_eq!(thread["authorId"], json!(u1));
    assert_eq!(thread["replyCount"], 1, "{thread}");
    assert_eq!(thread["viewCount"], 0);
    assert_eq!(thread["isPinned"], false);
    assert_eq!(thread["isLocked"], false);
    assert!(thread["lastPostAt"].is_string(), "{thread}");
    assert_eq!(thread["posts"]["totalCount"], 1);
    let opening = thread["posts"]["nodes"][0].clone();
    assert_eq!(opening["content"], "The first post");
    assert_eq!(opening["authorId"], json!(u1));
    let id = thread["id"].clone();

    // The same title again gets a slug of its own; another category may reuse it.
    let again = start(app, &t2, &cat, "Hello world", "again").await;
    assert_eq!(again["slug"], "hello-world-2");
    let third = start(app, &t3, &cat, "hello WORLD?", "and again").await;
    assert_eq!(third["slug"], "hello-world-3");
    let other = category(app, &app.a.admin, "other").await;
    assert_eq!(
        start(app, &t1, &other, "Hello world", "x").await["slug"],
        "hello-world"
    );
    let blank = start(app, &t1, &cat, "¿¡!?", "x").await;
    assert_eq!(blank["slug"], "thread");

    // Replies by several users, one answering another.
    let r1 = reply(app, &t2, &id, "A reply").await;
    assert_eq!(r1["threadId"], id);
    assert_eq!(r1["likes"], 0);
    let r2 = app
        .ok(
            &app.a.admin,
            REPLY,
            json!({ "t": id, "c": "An answer", "p": r1["id"] }),
        )
        .await["replyToForumThread"]
        .clone();
    assert_eq!(r2["parentId"], r1["id"]);
    let after = app.ok(&t1, THREAD, json!({ "id": id })).await["forumThread"].clone();
    assert_eq!(after["replyCount"], 3, "{after}");
    assert_eq!(after["posts"]["totalCount"], 3);
    assert!(after["lastPostAt"].as_str() >= thread["lastPostAt"].as_str());

    // Likes: one per user, however often given; unlike takes one back.
    let post = opening["id"].clone();
    for token in [&t1, &t2, &t3, &t2] {
        app.ok(token, LIKE, json!({ "p": post })).await;
    }
    let likes = |d: Json, f: &str| d[f]["likes"].clone();
    assert_eq!(
        likes(
            app.ok(&t2, LIKE, json!({ "p": post })).await,
            "likeForumPost"
        ),
        3
    );
    assert_eq!(
        likes(
            app.ok(&t3, UNLIKE, json!({ "p": post })).await,
            "unlikeForumPost"
        ),
        2
    );
    assert_eq!(
        likes(
            app.ok(&t3, UNLIKE, json!({ "p": post })).await,
            "unlikeForumPost"
        ),
        2
    );
    // Other reactions: one per user and kind, not likes; LIKE through react is a like.
    for (token, kind) in [(&t1, "LOVE"), (&t1, "LOVE"), (&t2, "LOVE"), (&t2, "ROCKET")] {
        let d = app.ok(token, REACT, json!({ "p": post, "k": kind })).await;
        assert_eq!(d["reactToForumPost"]["likes"], 2, "{d}");
    }
    let d = app.ok(&t3, REACT, json!({ "p": post, "k": "LIKE" })).await;
    assert_eq!(d["reactToForumPost"]["likes"], 3);
    let d = app
        .ok(&t2, UNREACT, json!({ "p": post, "k": "ROCKET" }))
        .await;
    assert_eq!(d["unreactToForumPost"]["likes"], 3);
    let counts = app
        .ok(
            &t1,
            "query($id: ID!) { forumPost(id: $id) { likes love: reactions(where: {kind: {equals: LOVE}}) { totalCount } rocket: reactions(where: {kind: {equals: ROCKET}}) { totalCount } like: reactions(where: {kind: {equals: LIKE}}) { totalCount } } }",
            json!({ "id": post }),
        )
        .await["forumPost"]
        .clone();
    assert_eq!(
        counts,
        json!({ "likes": 3, "love": { "totalCount": 2 }, "rocket": { "totalCount": 0 }, "like": { "totalCount": 3 } })
    );
    // The reactions are audited as the caller's.
    let audited = app
        .scalar("SELECT count(*)::text FROM audit_logs WHERE entity = 'ForumReaction'")
        .await;
    // 3 likes, 1 unlike, 2 LOVE, 1 ROCKET, 1 LIKE, 1 un-ROCKET: the repeats wrote nothing.
    assert_eq!(audited, "9");

    // Views.
    app.ok(&t2, VIEW, json!({ "id": id })).await;
    let d = app.ok(&t3, VIEW, json!({ "id": id })).await;
    assert_eq!(d["viewForumThread"]["viewCount"], 2);

    // Clients cannot set the system's fields through the generic inputs.
    for input in [
        json!({ "isLocked": true }),
        json!({ "viewCount": 5 }),
        json!({ "replyCount": 5 }),
    ] {
        let (code, _) = app
            .err(
                &app.a.admin,
                "mutation($id: ID!, $i: ForumThreadUpdateInput!) { updateForumThread(id: $id, input: $i) { id } }",
                json!({ "id": id, "i": input }),
            )
            .await;
        assert_eq!(code, "BAD_USER_INPUT", "{input}");
    }
    let (code, _) = app
        .err(
            &t1,
            "mutation($id: ID!) { updateForumPost(id: $id, input: {likes: 100}) { id } }",
            json!({ "id": post }),
        )
        .await;
    assert_eq!(code, "BAD_USER_INPUT");
    let (code, _) = app
        .err(
            &t1,
            "mutation($p: ID!, $u: ID!) { createForumReaction(input: {postId: $p, userId: $u}) { id } }",
            json!({ "p": post, "u": u1 }),
        )
        .await;
    // Reactions have no generic create at all: only the operations above write them.
    assert_eq!(code, "GRAPHQL_VALIDATION_FAILED");
}

/// A retried start or reply with the same client key returns what the first call made.
#[tokio::test]
async fn forum_client_keys_make_retries_harmless() {
    let app = &TestApp::new().await;
    let user = &app.a.user;
    let cat = category(app, &app.a.admin, "general").await;
    let input = json!({ "i": { "categoryId": cat, "title": "Once", "content": "only once", "clientKey": "start-1" } });
    let attempts = (0..4).map(|_| app.ok(user, START, input.clone()));
    let made: Vec<Json> = futures::future::join_all(attempts).await;
    let id = made[0]["startForumThread"]["id"].clone();
    assert!(
        made.iter().all(|d| d["startForumThread"]["id"] == id),
        "{made:?}"
    );
    assert_eq!(app.count_rows("forum_threads").await, 1);
    assert_eq!(app.count_rows("forum_posts").await, 1);

    let vars = json!({ "t": id, "c": "a reply", "k": "reply-1" });
    let attempts = (0..4).map(|_| app.ok(user, REPLY, vars.clone()));
    let made: Vec<Json> = futures::future::join_all(attempts).await;
    let post = made[0]["replyToForumThread"]["id"].clone();
    assert!(made.iter().all(|d| d["replyToForumThread"]["id"] == post));
    let t = app.ok(user, THREAD, json!({ "id": id })).await;
    assert_eq!(t["forumThread"]["replyCount"], 2, "{t}");
    // Keys are the caller's own: another user's same key is another reply.
    let d = app.ok(&app.a.admin, REPLY, vars.clone()).await;
    assert_ne!(d["replyToForumThread"]["id"], post);
    // The same key for another thread is a mistake, not a retry.
    let other = start(app, user, &cat, "Twice", "x").await;
    let (code, err) = app
        .err(
            user,
            REPLY,
            json!({ "t": other["id"], "c": "a reply", "k": "reply-1" }),
        )
        .await;
    assert_eq!(code, "CONFLICT", "{err}");
    assert_eq!(err["extensions"]["field"], "clientKey");
    // A start key and a reply key do not mix.
    let d = app
        .ok(
            user,
            START,
            json!({ "i": { "categoryId": cat, "title": "Third", "content": "x", "clientKey": "reply-1" } }),
        )
        .await;
    assert_ne!(d["startForumThread"]["id"], id);
    let (code, _) = app
        .err(
            user,
            REPLY,
            json!({ "t": id, "c": "x", "k": "k".repeat(101) }),
        )
        .await;
    assert_eq!(code, "BAD_USER_INPUT");
}

#[tokio::test]
async fn forum_operations_are_authorised_by_role_and_tenant() {
    let app = &TestApp::new().await;
    let (user, admin) = (&app.a.user, &app.a.admin);
    let cat = category(app, admin, "general").await;
    let thread = start(app, user, &cat, "Mine", "opening").await;
    let id = thread["id"].clone();
    let post = thread["posts"]["nodes"][0]["id"].clone();

    // Pin and lock are an admin's, even on the user's own thread.
    for q in [PIN, LOCK] {
        let (code, _) = app.err(user, q, json!({ "id": id, "on": true })).await;
        assert_eq!(code, "FORBIDDEN", "{q}");
    }
    let d = app.ok(admin, PIN, json!({ "id": id, "on": true })).await;
    assert_eq!(d["pinForumThread"]["isPinned"], true);
    // Pinning again changes nothing (no second audit row), `pinned` defaults to true.
    let d = app
        .ok(
            admin,
            "mutation($id: ID!) { pinForumThread(id: $id) { isPinned } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(d["pinForumThread"]["isPinned"], true);
    let audited = app
        .scalar("SELECT count(*)::text FROM audit_logs WHERE entity = 'ForumThread' AND action = 'UPDATE'")
        .await;
    assert_eq!(audited, "1");
    let d = app.ok(admin, PIN, json!({ "id": id, "on": false })).await;
    assert_eq!(d["pinForumThread"]["isPinned"], false);
    let row = app.ok(user, THREAD, json!({ "id": id })).await;
    assert_eq!(row["forumThread"]["isPinned"], false);

    // Another tenant's rows answer exactly as missing ones do.
    let missing = json!(Uuid::now_v7().to_string());
    let b = (&app.b.user, &app.b.admin);
    let b_cat = category(app, b.1, "general").await;
    let cases: Vec<(&str, &str, Json, Json)> = vec![
        (
            b.1,
            PIN,
            json!({ "id": id, "on": true }),
            json!({ "id": missing, "on": true }),
        ),
        (
            b.1,
            LOCK,
            json!({ "id": id, "on": true }),
            json!({ "id": missing, "on": true }),
        ),
        (b.0, VIEW, json!({ "id": id }), json!({ "id": missing })),
        (b.0, LIKE, json!({ "p": post }), json!({ "p": missing })),
        (b.0, UNLIKE, json!({ "p": post }), json!({ "p": missing })),
        (
            b.0,
            REACT,
            json!({ "p": post, "k": "LOVE" }),
            json!({ "p": missing, "k": "LOVE" }),
        ),
        (
            b.0,
            REPLY,
            json!({ "t": id, "c": "hi" }),
            json!({ "t": missing, "c": "hi" }),
        ),
        (
            b.0,
            START,
            json!({ "i": { "categoryId": cat, "title": "t", "content": "c" } }),
            json!({ "i": { "categoryId": missing, "title": "t", "content": "c" } }),
        ),
    ];
    for (token, q, theirs, none) in cases {
        let (code, err) = app.err(token, q, theirs).await;
        let (code_missing, err_missing) = app.err(token, q, none).await;
        assert_eq!(code, "NOT_FOUND", "{q}: {err}");
        assert_eq!(err["message"], err_missing["message"], "{q}");
        assert_eq!(code, code_missing);
    }
    // Tenant B's reply to its own thread with A's post as parent: a parent it cannot have.
    let b_thread = start(app, b.0, &b_cat, "Theirs", "x").await;
    let (code, err) = app
        .err(
            b.0,
            REPLY,
            json!({ "t": b_thread["id"], "c": "x", "p": post }),
        )
        .await;
    assert_eq!(code, "BAD_USER_INPUT", "{err}");
    assert_eq!(err["extensions"]["field"], "parentId");
    // Nothing of A's changed.
    let row = app.ok(user, THREAD, json!({ "id": id })).await["forumThread"].clone();
    assert_eq!(row["viewCount"], 0);
    assert_eq!(row["replyCount"], 1);
    assert_eq!(row["isLocked"], false);
    let p = app.ok(user, POST, json!({ "id": post })).await;
    assert_eq!(p["forumPost"]["likes"], 0);

    // Bad input is named.
    let bad: Vec<(&str, Json, &str)> = vec![
        (REPLY, json!({ "t": "nope", "c": "x" }), "threadId"),
        (REPLY, json!({ "t": id, "c": "   " }), "content"),
        (REPLY, json!({ "t": id, "c": "a\u{0}b" }), "content"),
        (LIKE, json!({ "p": "42" }), "postId"),
        (
            START,
            json!({ "i": { "categoryId": cat, "title": "t".repeat(201), "content": "c" } }),
            "input.title",
        ),
        (
            START,
            json!({ "i": { "categoryId": cat, "title": " ", "content": "c" } }),
            "input.title",
        ),
        (
            START,
            json!({ "i": { "categoryId": cat, "title": "t", "content": "" } }),
            "input.content",
        ),
    ];
    for (q, vars, field) in bad {
        let (code, err) = app.err(user, q, vars).await;
        assert_eq!(code, "BAD_USER_INPUT", "{err}");
        assert_eq!(err["extensions"]["field"], field, "{err}");
    }
    // A parent from another thread of the same tenant.
    let other = start(app, user, &cat, "Other", "x").await;
    let (code, err) = app
        .err(
            user,
            REPLY,
            json!({ "t": id, "c": "x", "p": other["posts"]["nodes"][0]["id"] }),
        )
        .await;
    assert_eq!(code, "BAD_USER_INPUT");
    assert_eq!(err["extensions"]["field"], "parentId");
    // An unknown kind is refused before anything runs.
    let (code, err) = app
        .err(user, REACT, json!({ "p": post, "k": "THUMBS" }))
        .await;
    assert!(!code.is_empty() && code != "INTERNAL", "{err}");
    // Without a token, nothing.
    let (status, _) = app
        .post_graphql(None, LIKE, json!({ "p": post }), None)
        .await;
    assert_eq!(status.as_u16(), 401);
}

#[tokio::test]
async fn forum_locked_threads_refuse_posts_from_anyone() {
    let app = &TestApp::new().await;
    let (user, admin) = (&app.a.user, &app.a.admin);
    let cat = category(app, admin, "general").await;
    let thread = start(app, user, &cat, "Heated", "opening").await;
    let id = thread["id"].clone();
    let opening = thread["posts"]["nodes"][0]["id"].clone();
    let elsewhere = start(app, user, &cat, "Calm", "x").await;
    let stray = elsewhere["posts"]["nodes"][0]["id"].clone();

    let d = app.ok(admin, LOCK, json!({ "id": id, "on": true })).await;
    assert_eq!(d["lockForumThread"]["isLocked"], true);

    for token in [user, admin] {
        let (code, err) = app.err(token, REPLY, json!({ "t": id, "c": "more" })).await;
        assert_eq!(code, "FORBIDDEN", "{err}");
        let (code, err) = app
            .err(
                token,
                "mutation($t: ID!) { createForumPost(input: {threadId: $t, content: \"generic\"}) { id } }",
                json!({ "t": id }),
            )
            .await;
        assert_eq!(code, "FORBIDDEN", "{err}");
        let (code, err) = app
            .err(
                token,
                "mutation($t: ID!) { createForumPosts(inputs: [{threadId: $t, content: \"a\"}]) { id } }",
                json!({ "t": id }),
            )
            .await;
        assert_eq!(code, "FORBIDDEN", "{err}");
    }
    // Nor may a post be moved into it.
    let (code, err) = app
        .err(
            user,
            "mutation($p: ID!, $t: ID!) { updateForumPost(id: $p, input: {threadId: $t}) { id } }",
            json!({ "p": stray, "t": id }),
        )
        .await;
    assert_eq!(code, "FORBIDDEN", "{err}");
    // What it has may still be edited, liked and viewed.
    app.ok(
        user,
        "mutation($p: ID!) { updateForumPost(id: $p, input: {content: \"edited\"}) { id } }",
        json!({ "p": opening }),
    )
    .await;
    app.ok(user, LIKE, json!({ "p": opening })).await;
    app.ok(user, VIEW, json!({ "id": id })).await;
    let row = app.ok(user, THREAD, json!({ "id": id })).await["forumThread"].clone();
    assert_eq!(row["replyCount"], 1, "{row}");
    assert_eq!(row["isLocked"], true);
    assert_eq!(app.count_rows("forum_posts").await, 2);

    // Unlocked, it takes posts again.
    app.ok(admin, LOCK, json!({ "id": id, "on": false })).await;
    reply(app, user, &id, "at last").await;
    let row = app.ok(user, THREAD, json!({ "id": id })).await["forumThread"].clone();
    assert_eq!(row["replyCount"], 2, "{row}");
}

/// Likes given at the same moment by different users all count; the same user liking at
/// once from several requests counts once.
#[tokio::test]
async fn forum_concurrent_likes_count_exactly() {
    let app = &TestApp::new().await;
    let cat = category(app, &app.a.admin, "general").await;
    let thread = start(app, &app.a.user, &cat, "Popular", "like me").await;
    let post = thread["posts"]["nodes"][0]["id"].clone();
    let mut tokens = Vec::new();
    for i in 0..8 {
        tokens.push(member(app, &format!("fan{i}")).await.1);
    }
    let likes = tokens.iter().map(|t| app.ok(t, LIKE, json!({ "p": post })));
    futures::future::join_all(likes).await;
    let d = app.ok(&app.a.user, POST, json!({ "id": post })).await;
    assert_eq!(d["forumPost"]["likes"], 8, "{d}");

    let same = (0..8).map(|_| app.ok(&app.a.user, LIKE, json!({ "p": post })));
    futures::future::join_all(same).await;
    let d = app.ok(&app.a.user, POST, json!({ "id": post })).await;
    assert_eq!(d["forumPost"]["likes"], 9, "{d}");
    assert_eq!(app.count_rows("forum_reactions").await, 9);

    // Likes and unlikes interleaved: the count is the rows that remain.
    let mixed = tokens.iter().enumerate().map(|(i, t)| {
        let q = if i % 2 == 0 { UNLIKE } else { LIKE };
        app.ok(t, q, json!({ "p": post }))
    });
    futures::future::join_all(mixed).await;
    let d = app.ok(&app.a.user, POST, json!({ "id": post })).await;
    assert_eq!(d["forumPost"]["likes"], 5, "{d}");
    assert_eq!(app.count_rows("forum_reactions").await, 5);
}

async fn inbox(addr: std::net::SocketAddr, token: &str) -> Socket {
    let mut ws = acked(addr, token).await;
    send(
        &mut ws,
        json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription { myNotifications { op node { type title message data userId } } }" } }),
    )
    .await;
    ws
}

async fn notification(ws: &mut Socket) -> Json {
    let m = recv(ws, WAIT).await.expect("a notification in time");
    assert_eq!(m["type"], "next", "{m}");
    assert!(m["payload"].get("errors").is_none(), "{m}");
    m["payload"]["data"]["myNotifications"]["node"].clone()
}

/// Replies notify the thread's author and the author of the post answered, mentions the
/// users named; never the poster, never anyone of another tenant; live, on `myNotifications`.
#[tokio::test]
async fn forum_replies_and_mentions_notify_live() {
    let app = &TestApp::new().await;
    let addr = app.listen().await;
    let (author, t_author) = member(app, "ada").await;
    let (mentioned, t_mentioned) = member(app, "Grace.H").await;
    let (_, t_poster) = member(app, "bob").await;
    let cat = category(app, &app.a.admin, "general").await;
    // Tenant B has a user of the same username.
    app.ok(
        &app.b.admin,
        "mutation { createUser(input: {email: \"g@beta.test\", name: \"G\", username: \"grace.h\"}) { id } }",
        json!({}),
    )
    .await;

    let mut to_author = inbox(addr, &t_author).await;
    let mut to_mentioned = inbox(addr, &t_mentioned).await;
    let mut to_poster = inbox(addr, &t_poster).await;
    let mut to_b = inbox(addr, &app.b.admin).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The opening post mentions @grace.h (case-insensitively) and its own author.
    let thread = start(
        app,
        &t_author,
        &cat,
        "Plans",
        "Hi @GRACE.H and @ada, thoughts?",
    )
    .await;
    let id = thread["id"].clone();
    let n = notification(&mut to_mentioned).await;
    assert_eq!(n["type"], "MENTION", "{n}");
    assert_eq!(n["userId"], json!(mentioned));
    assert_eq!(n["title"], "User ada mentioned you in \"Plans\"");
    assert_eq!(n["message"], "Hi @GRACE.H and @ada, thoughts?");
    assert_eq!(n["data"]["threadId"], id);

    // A reply notifies the thread's author; the poster is told nothing of its own post.
    let r = reply(app, &t_poster, &id, "I am in. @bob").await;
    let n = notification(&mut to_author).await;
    assert_eq!(n["type"], "REPLY", "{n}");
    assert_eq!(n["title"], "User bob replied to \"Plans\"");
    assert_eq!(n["userId"], json!(author));
    assert_eq!(n["data"]["postId"], r["id"]);

    // A reply to a post notifies that post's author and the thread's, and mentions, once each.
    let d = app
        .ok(
            &t_mentioned,
            REPLY,
            json!({ "t": id, "c": "Me too, @ada @bob @nobody", "p": r["id"] }),
        )
        .await;
    let answer = d["replyToForumThread"]["id"].clone();
    let n = notification(&mut to_poster).await;
    assert_eq!(n["type"], "MENTION", "{n}");
    assert_eq!(n["data"]["postId"], answer);
    let n = notification(&mut to_author).await;
    assert_eq!(n["type"], "MENTION", "{n}");

    // Through the generic mutation too; an edit notifies only whom it newly mentions.
    let d = app
        .ok(
            &t_poster,
            "mutation($t: ID!, $p: ID!) { createForumPost(input: {threadId: $t, parentId: $p, content: \"Answering\"}) { id } }",
            json!({ "t": id, "p": answer }),
        )
        .await;
    let generic = d["createForumPost"]["id"].clone();
    let n = notification(&mut to_mentioned).await;
    assert_eq!(n["type"], "REPLY");
    assert_eq!(n["title"], "User bob replied to your post in \"Plans\"");
    let n = notification(&mut to_author).await;
    assert_eq!(n["type"], "REPLY");
    app.ok(
        &t_poster,
        "mutation($p: ID!, $c: String!) { updateForumPost(id: $p, input: {content: $c}) { id } }",
        json!({ "p": generic, "c": "Answering @grace.h" }),
    )
    .await;
    let n = notification(&mut to_mentioned).await;
    assert_eq!(n["type"], "MENTION");
    app.ok(
        &t_poster,
        "mutation($p: ID!, $c: String!) { updateForumPost(id: $p, input: {content: $c}) { id } }",
        json!({ "p": generic, "c": "Answering @grace.h, edited" }),
    )
    .await;

    // Nothing else arrived: no second notice, none to the poster of its own, none in B.
    assert_eq!(recv(&mut to_mentioned, QUIET).await, None);
    assert_eq!(recv(&mut to_author, QUIET).await, None);
    assert_eq!(recv(&mut to_b, QUIET).await, None);
    assert_eq!(recv(&mut to_poster, QUIET).await, None);
    let b_count = app
        .scalar(&format!(
            "SELECT count(*)::text FROM notifications WHERE tenant_id = '{}'",
            app.b.id
        ))
        .await;
    assert_eq!(b_count, "0");
    // And the notifications are there to list.
    let d = app
        .ok(
            &t_author,
            "{ notifications(orderBy: [{createdAt: ASC}]) { totalCount nodes { type } } }",
            json!({}),
        )
        .await;
    assert_eq!(d["notifications"]["totalCount"], 3, "{d}");

    // Mentions are bounded per post.
    let many: String = (0..30).map(|i| format!("@fan{i} ")).collect();
    for i in 0..12 {
        member(app, &format!("fan{i}")).await;
    }
    reply(app, &t_poster, &id, &many).await;
    let notified = app
        .scalar("SELECT count(*)::text FROM notifications n JOIN users u ON u.id = n.user_id WHERE u.username LIKE 'fan%'")
        .await;
    assert_eq!(notified, "10");
}
