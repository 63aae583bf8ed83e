//! Planned reads (`graphql::plan`): queries of every shape plans cover, and of shapes they
//! leave to the executor, answered alike both ways. The app verifies (`TestApp::new`): each
//! planned query also runs through async-graphql's executor in the same snapshot, and a
//! difference fails the request. The metrics tell which way each query went.

use gateway::auth::Role;
use gateway::config::{Limits, PlannedReads};
use serde_json::{json, Value as Json};

use crate::harness::TestApp;
use crate::metrics::{sample, scrape};

/// Operations plans answered and gave up on so far.
async fn counts(app: &TestApp) -> (f64, f64) {
    let (_, _, text) = app.send(scrape(Some("127.0.0.1"))).await;
    (
        sample(&text, "gateway_planned_operations_total ").unwrap_or(-1.0),
        sample(&text, "gateway_plans_given_up_total ").unwrap_or(-1.0),
    )
}

/// Sends `query` and checks it went the expected way: planned, given up, or never planned.
async fn ask(app: &TestApp, token: &str, query: &str, vars: Json, way: Way) -> Json {
    let (planned, given_up) = counts(app).await;
    let body = app.gql(token, query, vars).await;
    let (p, g) = counts(app).await;
    let went = match (p - planned, g - given_up) {
        (1.0, 0.0) => Way::Planned,
        (0.0, 1.0) => Way::GivenUp,
        (0.0, 0.0) => Way::Executor,
        other => panic!("{query}: counts moved by {other:?}"),
    };
    assert_eq!(went, way, "{query}: {body}");
    if way == Way::Planned {
        assert!(body.get("errors").is_none(), "{query}: {body}");
    }
    body
}

/// Planned operations run with generic plans so far.
async fn generic(app: &TestApp) -> f64 {
    let (_, _, text) = app.send(scrape(Some("127.0.0.1"))).await;
    sample(&text, "gateway_generic_plan_operations_total ").unwrap_or(-1.0)
}

#[derive(Debug, PartialEq, Clone, Copy)]
enum Way {
    Planned,
    GivenUp,
    Executor,
}

/// A category of four threads with 0-3 posts (by two authors), and the user's profile: the
/// category's id and the threads'.
async fn seed(app: &TestApp) -> (Json, Vec<Json>) {
    let admin = app.a.admin.clone();
    let cat = app
        .ok(
            &admin,
            "mutation { createForumCategory(input: {name: \"Plans\", slug: \"plans\"}) { id } }",
            json!({}),
        )
        .await["createForumCategory"]["id"]
        .clone();
    let mut threads = Vec::new();
    for i in 0..4 {
        let t = app
            .ok(
                &admin,
                "mutation($c: ID!, $t: String!) { createForumThread(input: {categoryId: $c, title: $t, slug: $t}) { id } }",
                json!({ "c": cat, "t": format!("t{i}") }),
            )
            .await["createForumThread"]["id"]
            .clone();
        for j in 0..i {
            let token = if j % 2 == 0 { &admin } else { &app.a.user };
            app.ok(
                token,
                "mutation($t: ID!, $s: String!) { createForumPost(input: {threadId: $t, content: $s}) { id } }",
                json!({ "t": t, "s": format!("p{j}") }),
            )
            .await;
        }
        threads.push(t);
    }
    app.ok(
        &app.a.user,
        "mutation($u: ID!) { createProfile(input: {userId: $u, fullName: \"Planned\"}) { id } }",
        json!({ "u": app.a.user_id }),
    )
    .await;
    (cat, threads)
}

#[tokio::test]
async fn plans_answer_like_the_executor() {
    let app = TestApp::new().await;
    let admin = app.a.admin.clone();
    let (cat, threads) = seed(&app).await;

    use Way::*;
    let planned: Vec<(&str, Json)> = vec![
        // Every field of a connection, typenames at every level, aliases.
        (
            "query($c: ID!) { __typename forumCategory(id: $c) { __typename id name cat: slug threads(first: 2, orderBy: [{title: DESC}]) { __typename totalCount pageInfo { __typename hasNextPage hasPreviousPage startCursor endCursor } edges { __typename cursor node { id title category { id name } } } nodes { title posts { totalCount nodes { content author { name } } } } } } }",
            json!({ "c": cat }),
        ),
        // Fragments, inline fragments, @skip and @include with variables and defaults.
        (
            "fragment T on ForumThread { id title } query($c: ID!, $more: Boolean = true, $less: Boolean!) { forumCategory(id: $c) { ... on ForumCategory { name } threads { nodes { ...T posts @include(if: $more) { nodes { id } } slug @skip(if: $less) } } } }",
            json!({ "c": cat, "less": true }),
        ),
        // Backwards, from a cursor, with a filter through a relation.
        (
            "{ forumThreads(last: 2, where: {posts: {some: {content: {equals: \"p0\"}}}}) { totalCount pageInfo { hasPreviousPage hasNextPage } nodes { title } } }",
            json!({}),
        ),
        // A cursor past the end: totalCount counted apart.
        (
            "query($t: ID!) { forumThread(id: $t) { posts(first: 1) { pageInfo { endCursor } } } }",
            json!({ "t": threads[3] }),
        ),
        // A missing row, a null reference, a hasOne child, several root fields.
        (
            "query($u: ID!) { nobody: forumThread(id: \"00000000-0000-0000-0000-000000000000\") { id } me: user(id: $u) { name profile { fullName user { id } } } forumCategories { nodes { name parent { id } } } }",
            json!({ "u": app.a.user_id }),
        ),
    ];
    for (q, vars) in planned {
        ask(&app, &admin, q, vars.clone(), Planned).await;
        ask(&app, &app.a.user, q, vars.clone(), Planned).await;
        ask(&app, &app.b.admin, q, vars, Planned).await;
    }

    // A variable's default counts in @include (the specification's rule; async-graphql 7.2
    // read only given variables there), and a given one in @skip.
    let d = ask(
        &app,
        &admin,
        "query($c: ID!, $more: Boolean = true, $less: Boolean!) { forumCategory(id: $c) { threads(first: 1) { nodes { title posts @include(if: $more) { totalCount } slug @skip(if: $less) } } } }",
        json!({ "c": cat, "less": true }),
        Planned,
    )
    .await;
    assert_eq!(
        d["data"]["forumCategory"]["threads"]["nodes"][0],
        json!({ "title": "t0", "posts": { "totalCount": 0 } })
    );

    // A later page from an earlier page's cursor, both ways.
    let first = ask(
        &app,
        &admin,
        "query($t: ID!) { forumThread(id: $t) { posts(first: 1) { pageInfo { endCursor } } } }",
        json!({ "t": threads[3] }),
        Planned,
    )
    .await;
    let cursor = first["data"]["forumThread"]["posts"]["pageInfo"]["endCursor"].clone();
    let later = ask(
        &app,
        &admin,
        "query($t: ID!, $a: String) { forumThread(id: $t) { posts(first: 5, after: $a) { totalCount nodes { content } } } }",
        json!({ "t": threads[3], "a": cursor }),
        Planned,
    )
    .await;
    assert_eq!(
        later["data"]["forumThread"]["posts"]["totalCount"],
        json!(3)
    );
    assert_eq!(
        later["data"]["forumThread"]["posts"]["nodes"],
        json!([{ "content": "p1" }, { "content": "p2" }])
    );

    // Bad arguments: the plan gives up and the executor reports them, with their paths.
    for q in [
        "{ forumThreads(first: 100000) { nodes { id } } }",
        "{ forumThreads(after: \"not a cursor\") { nodes { id } } }",
        "{ forumThread(id: \"nope\") { id } }",
    ] {
        let body = ask(&app, &admin, q, json!({}), GivenUp).await;
        assert!(
            body["errors"][0]["extensions"]["code"].is_string(),
            "{q}: {body}"
        );
    }

    // Shapes plans leave alone: an aggregate, a field an extension adds, one key twice,
    // introspection, and anything invalid (validation answers first).
    for q in [
        "{ forumThreadsAggregate { count } }",
        "{ forumThreads { nodes { id } } forumThreadsAggregate { count } }",
        "{ forumThreads { nodes { id id } } }",
        "{ __schema { queryType { name } } }",
        "{ forumThreads { nodes { nope } } }",
        "mutation { createForumCategory(input: {name: \"M\", slug: \"m\"}) { id threads { totalCount } } }",
    ] {
        ask(&app, &admin, q, json!({}), Executor).await;
    }
}

/// With plans on and nothing verifying them, a planned query's `data` goes out as the JSON
/// text the plan wrote, never built as values. It reads as the executor's answer to the same
/// query, sent with an aggregate beside it so that the executor answers the whole of it.
#[tokio::test]
async fn planned_text_reads_as_the_executors_answer() {
    let app = TestApp::with_limits(Limits {
        planned_reads: PlannedReads::On,
        ..Limits::default()
    })
    .await;
    let admin = app.a.admin.clone();
    let (cat, threads) = seed(&app).await;
    let workflow = app
        .ok(
            &admin,
            "mutation { createWorkflow(input: {name: \"text \\\"quoted\\\" \\u00e9\"}) { id } }",
            json!({}),
        )
        .await["createWorkflow"]["id"]
        .clone();
    app.ok(
        &admin,
        "mutation($w: ID!) { createWorkflowExecution(input: {workflowId: $w, status: RUNNING, startedAt: \"2026-01-02T03:04:05Z\"}) { id } }",
        json!({ "w": workflow }),
    )
    .await;
    let shapes: [(&str, Json); 4] = [
        (
            "query($c: ID!) { __typename forumCategory(id: $c) { __typename id name createdAt parent { id } threads(first: 3, orderBy: [{title: DESC}]) { __typename totalCount pageInfo { __typename hasNextPage hasPreviousPage startCursor endCursor } edges { __typename cursor node { id title category { id name } } } nodes { title posts(last: 2) { totalCount nodes { content author { name } } } } } } }",
            json!({ "c": cat }),
        ),
        (
            "query($w: ID!) { workflow(id: $w) { name executions { nodes { id status startedAt finishedAt nodeExecutions { totalCount nodes { id } } } } } }",
            json!({ "w": workflow }),
        ),
        (
            "query($t: ID!) { forumThread(id: $t) { title posts(first: 1) { pageInfo { endCursor } } } }",
            json!({ "t": threads[3] }),
        ),
        (
            "query($u: ID!) { nobody: forumThread(id: \"00000000-0000-0000-0000-000000000000\") { id } me: user(id: $u) { name profile { fullName } } }",
            json!({ "u": app.a.user_id }),
        ),
    ];
    for (q, vars) in shapes {
        let planned = ask(&app, &admin, q, vars.clone(), Way::Planned).await;
        let whole = q.replacen("{ ", "{ forumThreadsAggregate { count } ", 1);
        let mut executed = ask(&app, &admin, &whole, vars, Way::Executor).await;
        if let Some(data) = executed["data"].as_object_mut() {
            data.remove("forumThreadsAggregate");
        }
        assert_eq!(planned, executed, "{q}");
    }
}

/// A planned operation made only of keys (no `where` anywhere) asks PostgreSQL for generic
/// plans; one with a `where` keeps PostgreSQL's own choice. The setting is the
/// transaction's: the next one on the same connection plans as usual.
#[tokio::test]
async fn reads_of_keys_only_run_with_generic_plans() {
    use gateway::db::session::Snapshot;
    use gateway::db::sql::SqlBuilder;

    let app = TestApp::new().await;
    let admin = app.a.admin.clone();
    let before = generic(&app).await;
    ask(
        &app,
        &admin,
        "{ forumThreads(first: 5, orderBy: [{id: ASC}]) { nodes { id posts(first: 2) { totalCount nodes { id } } } } }",
        json!({}),
        Way::Planned,
    )
    .await;
    assert_eq!(generic(&app).await, before + 1.0);
    ask(
        &app,
        &admin,
        "{ forumThreads(first: 5, where: {title: {contains: \"a\"}}) { nodes { id } } }",
        json!({}),
        Way::Planned,
    )
    .await;
    ask(
        &app,
        &admin,
        "{ forumThreads(first: 5) { nodes { id posts(where: {content: {contains: \"a\"}}) { nodes { id } } } } }",
        json!({}),
        Way::Planned,
    )
    .await;
    assert_eq!(generic(&app).await, before + 1.0);

    #[derive(diesel::QueryableByName)]
    struct Mode {
        #[diesel(sql_type = diesel::sql_types::Text)]
        mode: String,
    }
    let mode = || SqlBuilder::new("SELECT current_setting('plan_cache_mode') AS mode");
    // One connection, so that the second session's transaction is on the first's.
    let db = gateway::db::Db::connect(&app.serving_url, 1, std::time::Duration::from_secs(5))
        .expect("pool");
    let rc = gateway::auth::RequestContext::new(app.a.id, app.a.user_id, Role::User);
    let session = db.session(&rc, Snapshot::Shared);
    session.plan_generically();
    let read: Vec<Mode> = session.read("Mode", mode()).await.expect("read");
    assert_eq!(read[0].mode, "force_generic_plan");
    drop(session);
    db.settled().await;
    let read: Vec<Mode> = db
        .session(&rc, Snapshot::Shared)
        .read("Mode", mode())
        .await
        .expect("read");
    assert_eq!(read[0].mode, "auto");
}

/// A plan that reads everything in one round trip commits in it (`last` reads); should
/// anything read after all (the executor answering when the plan gave up), it reads in a
/// transaction of its own, entered as the caller like the first.
#[tokio::test]
async fn a_read_after_the_last_gets_a_transaction_of_its_own() {
    use gateway::db::session::Snapshot;
    use gateway::db::sql::SqlBuilder;

    #[derive(diesel::QueryableByName)]
    struct Tx {
        #[diesel(sql_type = diesel::sql_types::Text)]
        tenant: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        tx: String,
    }
    let app = TestApp::new().await;
    let probe = || {
        SqlBuilder::new(
            "SELECT current_setting('app.tenant_id', true) AS tenant, \
             transaction_timestamp()::text AS tx",
        )
    };
    let db = gateway::db::Db::connect(&app.serving_url, 1, std::time::Duration::from_secs(5))
        .expect("pool");
    let rc = gateway::auth::RequestContext::new(app.a.id, app.a.user_id, Role::User);
    let session = db.session(&rc, Snapshot::Shared);
    let first: Vec<Vec<Tx>> = session
        .read_all(vec![("Tx", probe())], true)
        .await
        .expect("first");
    // One pooled connection: the read after needs it back, so the first transaction ended.
    let after: Vec<Tx> = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        session.read("Tx", probe()),
    )
    .await
    .expect("the connection came back")
    .expect("after");
    assert_eq!(first[0][0].tenant, app.a.id.to_string());
    assert_eq!(after[0].tenant, app.a.id.to_string());
    assert_ne!(first[0][0].tx, after[0].tx, "two transactions");
    drop(session);
    db.settled().await;
}

/// A document's validation is kept for the next request sending it with variables of the
/// same kinds (`graphql::documents`); values the validator refuses still meet it, with its
/// message, however often the document passed before.
#[tokio::test]
async fn a_kept_validation_still_refuses_what_the_validator_refuses() {
    let app = TestApp::new().await;
    let admin = app.a.admin.clone();
    let q =
        "query($t: ID!, $n: Int) { forumThread(id: $t) { id posts(first: $n) { totalCount } } }";
    let none = "00000000-0000-0000-0000-000000000000";
    let passes = [
        json!({ "t": none, "n": 1 }),
        json!({ "t": none, "n": 2 }),
        json!({ "t": none }),
        // A name the operation does not declare is no error; it is validated each time.
        json!({ "t": none, "n": 1, "m": 2 }),
    ];
    let refused = [
        json!({ "t": none, "n": 1.5 }),
        json!({ "t": none, "n": "one" }),
        json!({ "t": null, "n": 1 }),
        json!({ "t": { "id": none } }),
        json!({ "t": [none], "n": 1 }),
    ];
    for round in 0..2 {
        for vars in passes.iter().chain(&refused) {
            let body = app.gql(&admin, q, vars.clone()).await;
            let code = &body["errors"][0]["extensions"]["code"];
            if passes.contains(vars) {
                assert!(
                    body.get("errors").is_none(),
                    "round {round}, {vars}: {body}"
                );
                assert_eq!(body["data"]["forumThread"], Json::Null, "{body}");
            } else {
                // The validator's own message, under the gateway's code for bad values.
                assert_eq!(
                    code,
                    &json!("BAD_USER_INPUT"),
                    "round {round}, {vars}: {body}"
                );
                let message = body["errors"][0]["message"].as_str().unwrap_or_default();
                assert!(
                    message.starts_with("Invalid value for argument"),
                    "round {round}, {vars}: {body}"
                );
            }
        }
    }
}
