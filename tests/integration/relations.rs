//! Relation fields: nested connections paged per parent and compared with the same data
//! fetched by hand, and SQL statement counts that do not grow with the number of parents.

use serde_json::{json, Value as Json};

use crate::harness::TestApp;
use crate::metrics::{sample, scrape};
use gateway::config::{Limits, PlannedReads};

struct Forum {
    category: String,
    /// Per thread (in title order): its id and its posts' (id, author id) in creation order.
    threads: Vec<(String, Vec<(String, String)>)>,
}

/// A category with `threads` threads; thread i has (i * 3) % 13 posts by alternating authors.
async fn forum(app: &TestApp, slug: &str, threads: usize) -> Forum {
    let cat = app
        .ok(
            &app.a.admin,
            "mutation($i: ForumCategoryCreateInput!) { createForumCategory(input: $i) { id } }",
            json!({ "i": { "name": slug, "slug": slug } }),
        )
        .await["createForumCategory"]["id"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let inputs: Vec<Json> = (0..threads)
        .map(|i| {
            json!({ "categoryId": cat, "title": format!("{slug} {i:02}"), "slug": format!("{slug}-{i}") })
        })
        .collect();
    let made = app
        .ok(
            &app.a.admin,
            "mutation($i: [ForumThreadCreateInput!]!) { createForumThreads(inputs: $i) { id } }",
            json!({ "i": inputs }),
        )
        .await;
    let mut out = Vec::new();
    for (i, t) in made["createForumThreads"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let tid = t["id"].as_str().unwrap_or("").to_string();
        let n = (i * 3) % 13;
        let mut posts = Vec::new();
        // Authors are stamped from the caller: admin and user take turns, each with its token.
        for j in 0..n {
            let token = if j % 2 == 0 {
                &app.a.admin
            } else {
                &app.a.user
            };
            let made = app
                .ok(
                    token,
                    "mutation($i: ForumPostCreateInput!) { createForumPost(input: $i) { id authorId } }",
                    json!({ "i": { "threadId": tid, "content": format!("post {j}") } }),
                )
                .await;
            let p = &made["createForumPost"];
            posts.push((
                p["id"].as_str().unwrap_or("").to_string(),
                p["authorId"].as_str().unwrap_or("").to_string(),
            ));
        }
        out.push((tid, posts));
    }
    Forum {
        category: cat,
        threads: out,
    }
}

const NESTED: &str = "query($c: ID!) {
  forumCategory(id: $c) {
    threads(first: 50, orderBy: [{title: ASC}]) {
      totalCount
      nodes {
        id
        category { id }
        posts(first: 10, orderBy: [{createdAt: ASC}, {id: ASC}]) {
          totalCount
          pageInfo { hasNextPage }
          edges { cursor node { id author { id email } } }
        }
      }
    }
  }
}";

/// Runs the nested query and checks every level against what was created.
async fn check(app: &TestApp, f: &Forum) -> u64 {
    // Transactions end after their response: count only once they have.
    app.db.settled().await;
    let before = app.db.statements();
    let d = app
        .ok(&app.a.admin, NESTED, json!({ "c": f.category }))
        .await;
    app.db.settled().await;
    let used = app.db.statements() - before;
    let threads = &d["forumCategory"]["threads"];
    assert_eq!(threads["totalCount"], json!(f.threads.len()));
    let nodes = threads["nodes"].as_array().cloned().unwrap_or_default();
    assert_eq!(nodes.len(), f.threads.len());
    for (node, (tid, posts)) in nodes.iter().zip(&f.threads) {
        assert_eq!(node["id"], json!(tid));
        assert_eq!(node["category"]["id"], json!(f.category));
        let page = &node["posts"];
        assert_eq!(page["totalCount"], json!(posts.len()), "thread {tid}");
        assert_eq!(page["pageInfo"]["hasNextPage"], json!(posts.len() > 10));
        let got: Vec<(String, String)> = page["edges"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|e| {
                (
                    e["node"]["id"].as_str().unwrap_or("").to_string(),
                    e["node"]["author"]["id"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        let want: Vec<(String, String)> = posts.iter().take(10).cloned().collect();
        assert_eq!(got, want, "posts of thread {tid}");
        for e in page["edges"].as_array().cloned().unwrap_or_default() {
            assert!(e["node"]["author"]["email"]
                .as_str()
                .is_some_and(|m| m.ends_with("@alpha.test")));
        }
    }
    used
}

#[tokio::test]
async fn nested_connections_are_paged_per_parent_in_constant_statements() {
    // Counted as planned (verifying would run every read twice).
    let app = TestApp::with_limits(Limits::default()).await;
    let small = forum(&app, "small", 2).await;
    let large = forum(&app, "large", 30).await;
    let few = check(&app, &small).await;
    let many = check(&app, &large).await;
    assert_eq!(
        few, many,
        "statements grew with the number of parents: {few} vs {many}"
    );
    // The root; threads (with their count, each thread's category read with it); posts
    // (with their counts, each post's author read with it); and the transaction's BEGIN,
    // gateway_enter and COMMIT.
    assert_eq!(many, 6, "statements for one nested query");
}

/// Statements and round trips one request cost, once its transaction has ended.
async fn cost(app: &TestApp, query: &str, vars: Json) -> (u64, u64) {
    app.db.settled().await;
    let (statements, trips) = (app.db.statements(), app.db.round_trips());
    app.ok(&app.a.admin, query, vars).await;
    app.db.settled().await;
    (
        app.db.statements() - statements,
        app.db.round_trips() - trips,
    )
}

#[tokio::test]
async fn a_query_costs_one_statement_and_one_round_trip_per_level() {
    // Planned, and resolved field by field: the same statements either way.
    for mode in [PlannedReads::On, PlannedReads::Off] {
        statements_per_level(mode).await;
    }
}

async fn statements_per_level(mode: PlannedReads) {
    let app = TestApp::with_limits(Limits {
        planned_reads: mode,
        ..Limits::default()
    })
    .await;
    let f = forum(&app, "levels", 12).await;
    let thread = f.threads[3].0.clone();
    let workflow = app
        .ok(
            &app.a.admin,
            "mutation { createWorkflow(input: {name: \"w\"}) { id } }",
            json!({}),
        )
        .await["createWorkflow"]["id"]
        .clone();
    for n in 0..3 {
        let e = app
            .ok(
                &app.a.admin,
                "mutation($w: ID!, $s: String!) { createWorkflowExecution(input: {workflowId: $w, status: RUNNING, startedAt: $s}) { id } }",
                json!({ "w": workflow, "s": format!("2026-01-0{}T00:00:00Z", n + 1) }),
            )
            .await["createWorkflowExecution"]["id"]
            .clone();
        app.ok(
            &app.a.admin,
            "mutation($e: ID!) { createNodeExecution(input: {executionId: $e, nodeId: \"n\", status: COMPLETED}) { id } }",
            json!({ "e": e }),
        )
        .await;
    }
    // (name, query, variables, levels: one statement each, statements when planned (a plan
    // reads a `belongsTo` parent of columns alone in its child's statement), round trips when
    // planned with COMMIT's: a plan reads a level's relations in its round trip when the
    // level has few rows, and a plan that reads everything at once commits in that round
    // trip too).
    let shapes: [(&str, &str, Json, u64, u64, u64); 5] = [
        (
            "by id",
            "query($t: ID!) { forumThread(id: $t) { id title slug createdAt } }",
            json!({ "t": thread }),
            1,
            1,
            1,
        ),
        (
            "a page and its count",
            "{ forumThreads(first: 5, orderBy: [{title: ASC}]) { totalCount pageInfo { hasNextPage } nodes { id } } }",
            json!({}),
            1,
            1,
            1,
        ),
        (
            "a later page and its count",
            "query($a: String) { forumThreads(first: 5, after: $a) { totalCount nodes { id } } }",
            json!({ "a": Json::Null }),
            1,
            1,
            1,
        ),
        (
            "category > threads (count) > posts (count) > author",
            "query($c: ID!) { forumCategory(id: $c) { name threads(first: 20, orderBy: [{id: ASC}]) { totalCount nodes { title posts(first: 10, orderBy: [{id: ASC}]) { totalCount nodes { content author { name } } } } } } }",
            json!({ "c": f.category }),
            4,
            // The category, its threads, their posts with their authors, and COMMIT.
            3,
            1,
        ),
        (
            "workflow > executions > node executions",
            "query($w: ID!) { workflow(id: $w) { name executions(first: 10, orderBy: [{startedAt: DESC}]) { nodes { status nodeExecutions { nodes { nodeId status } } } } } }",
            json!({ "w": workflow }),
            3,
            3,
            1,
        ),
    ];
    // A write: BEGIN and gateway_enter share a round trip; then the insert, its audit row
    // and change event, and COMMIT, each awaited.
    let create =
        "mutation($s: String!) { createForumCategory(input: {name: $s, slug: $s}) { id } }";
    cost(&app, create, json!({ "s": "warm" })).await;
    let (statements, trips) = cost(&app, create, json!({ "s": "counted" })).await;
    assert_eq!(
        (statements, trips),
        (6, 5),
        "a create's statements and round trips"
    );
    for (name, query, vars, levels, planned, planned_trips) in shapes {
        // Once to prepare the statements, then counted.
        cost(&app, query, vars.clone()).await;
        let (statements, trips) = cost(&app, query, vars).await;
        // BEGIN and gateway_enter ride with the first level's statement; COMMIT is sent
        // after the response, or with the reads.
        let expected = match mode {
            PlannedReads::Off => (levels + 3, levels + 1),
            _ => (planned + 3, planned_trips),
        };
        assert_eq!(
            (statements, trips),
            expected,
            "{name} ({mode:?}): statements and round trips"
        );
    }
    // Every shape's query was answered by its plan, or by the executor when plans are off.
    let (_, _, text) = app.send(scrape(Some("127.0.0.1"))).await;
    let planned = sample(&text, "gateway_planned_operations_total ").unwrap_or(-1.0);
    let given_up = sample(&text, "gateway_plans_given_up_total ").unwrap_or(-1.0);
    let want = if mode == PlannedReads::On { 10.0 } else { 0.0 };
    assert_eq!(
        (planned, given_up),
        (want, 0.0),
        "{mode:?}: planned operations"
    );
}

#[tokio::test]
async fn relation_cursors_page_each_parent_separately() {
    let app = TestApp::new().await;
    let f = forum(&app, "paged", 6).await;
    // Thread 4 has 12 posts; walk them 5 at a time.
    let (tid, posts) = &f.threads[4];
    assert_eq!(posts.len(), 12);
    let q = "query($t: ID!, $a: String) { forumThread(id: $t) {
        posts(first: 5, after: $a) { edges { node { id } } pageInfo { hasNextPage endCursor } }
    } }";
    let mut seen = Vec::new();
    let mut after = Json::Null;
    loop {
        let d = app
            .ok(&app.a.admin, q, json!({ "t": tid, "a": after }))
            .await;
        let page = &d["forumThread"]["posts"];
        for e in page["edges"].as_array().cloned().unwrap_or_default() {
            seen.push(e["node"]["id"].as_str().unwrap_or("").to_string());
        }
        if page["pageInfo"]["hasNextPage"] != json!(true) {
            break;
        }
        after = page["pageInfo"]["endCursor"].clone();
    }
    let want: Vec<String> = posts.iter().map(|p| p.0.clone()).collect();
    assert_eq!(seen, want);
    // Backwards from the end, with a filter, for every thread at once.
    let d = app
        .ok(
            &app.a.admin,
            "query($c: ID!, $u: ID!) { forumCategory(id: $c) { threads(orderBy: [{title: ASC}]) { nodes {
                posts(last: 2, where: {authorId: {equals: $u}}) { totalCount nodes { id authorId } }
            } } } }",
            json!({ "c": f.category, "u": app.a.user_id }),
        )
        .await;
    let nodes = d["forumCategory"]["threads"]["nodes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for (node, (_, posts)) in nodes.iter().zip(&f.threads) {
        let by_user: Vec<String> = posts
            .iter()
            .filter(|p| p.1 == app.a.user_id.to_string())
            .map(|p| p.0.clone())
            .collect();
        let want: Vec<String> = by_user
            .iter()
            .skip(by_user.len().saturating_sub(2))
            .cloned()
            .collect();
        let got: Vec<String> = node["posts"]["nodes"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|n| n["id"].as_str().unwrap_or("").to_string())
            .collect();
        assert_eq!(got, want);
        assert_eq!(node["posts"]["totalCount"], json!(by_user.len()));
    }
}

#[tokio::test]
async fn self_relations_has_one_and_acl_through_relations() {
    let app = TestApp::new().await;
    let root = app
        .ok(
            &app.a.admin,
            "mutation { createForumCategory(input: {name: \"Root\", slug: \"root\"}) { id } }",
            json!({}),
        )
        .await["createForumCategory"]["id"]
        .clone();
    app.ok(
        &app.a.admin,
        "mutation($p: ID!) { createForumCategories(inputs: [{name: \"A\", slug: \"a\", parentId: $p}, {name: \"B\", slug: \"b\", parentId: $p}]) { id } }",
        json!({ "p": root }),
    )
    .await;
    let d = app
        .ok(
            &app.a.admin,
            "query($r: ID!) { forumCategory(id: $r) { parent { id } children(orderBy: [{slug: ASC}]) { nodes { slug parent { id } } } } }",
            json!({ "r": root }),
        )
        .await;
    assert_eq!(d["forumCategory"]["parent"], json!(null));
    assert_eq!(
        d["forumCategory"]["children"]["nodes"],
        json!([{ "slug": "a", "parent": { "id": root } }, { "slug": "b", "parent": { "id": root } }])
    );

    // hasOne: a user's profile.
    app.ok(
        &app.a.admin,
        "mutation($u: ID!) { createProfile(input: {userId: $u, fullName: \"Ordinary\"}) { id } }",
        json!({ "u": app.a.user_id }),
    )
    .await;
    let d = app
        .ok(
            &app.a.admin,
            "query($u: ID!) { user(id: $u) { profile { fullName user { id } } } }",
            json!({ "u": app.a.user_id }),
        )
        .await;
    assert_eq!(d["user"]["profile"]["fullName"], json!("Ordinary"));
    assert_eq!(
        d["user"]["profile"]["user"]["id"],
        json!(app.a.user_id.to_string())
    );

    // A user reading the admin's user row sees none of the admin's notifications.
    app.ok(
        &app.a.admin,
        "mutation($u: ID!) { createNotification(input: {userId: $u, title: \"secret\", message: \"m\"}) { id } }",
        json!({ "u": app.a.admin_id }),
    )
    .await;
    let d = app
        .ok(
            &app.a.user,
            "query($u: ID!) { user(id: $u) { email notifications { totalCount nodes { title } } } }",
            json!({ "u": app.a.admin_id }),
        )
        .await;
    assert_eq!(d["user"]["notifications"]["totalCount"], json!(0));
    let d = app
        .ok(
            &app.a.admin,
            "query($u: ID!) { user(id: $u) { notifications { totalCount } } }",
            json!({ "u": app.a.admin_id }),
        )
        .await;
    assert_eq!(d["user"]["notifications"]["totalCount"], json!(1));
}

/// Reads fetch only the columns a selection reads: whatever the selection's shape (aliases,
/// fragments, the same row asked for different fields), every field still gets its value.
#[tokio::test]
async fn partial_selections_read_every_field_they_ask_for() {
    let app = TestApp::new().await;
    let f = forum(&app, "partial", 4).await;
    let full = app
        .ok(
            &app.a.admin,
            "query($c: ID!) { forumCategory(id: $c) { id name slug threads(first: 10, orderBy: [{title: ASC}]) { nodes { id title slug createdAt posts(first: 20, orderBy: [{id: ASC}]) { nodes { id content threadId authorId createdAt author { id name email } } } } } } }",
            json!({ "c": f.category }),
        )
        .await;
    let partial = app
        .ok(
            &app.a.admin,
            "fragment P on ForumPost { content mine: author { email } }
             query($c: ID!) { forumCategory(id: $c) { slug threads(first: 10, orderBy: [{title: ASC}]) { edges { cursor node { title posts(first: 20, orderBy: [{id: ASC}]) { nodes { ...P createdAt author { name } } } } } } } }",
            json!({ "c": f.category }),
        )
        .await;
    let full = &full["forumCategory"];
    let partial = &partial["forumCategory"];
    assert_eq!(partial["slug"], full["slug"]);
    let threads = full["threads"]["nodes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let edges = partial["threads"]["edges"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(threads.len(), 4);
    assert_eq!(edges.len(), threads.len());
    for (t, e) in threads.iter().zip(&edges) {
        let node = &e["node"];
        assert_eq!(node["title"], t["title"]);
        assert!(e["cursor"].as_str().is_some_and(|c| !c.is_empty()));
        let posts = t["posts"]["nodes"].as_array().cloned().unwrap_or_default();
        let got = node["posts"]["nodes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(got.len(), posts.len());
        for (p, g) in posts.iter().zip(&got) {
            assert_eq!(g["content"], p["content"]);
            assert_eq!(g["createdAt"], p["createdAt"]);
            assert_eq!(g["mine"]["email"], p["author"]["email"]);
            assert_eq!(g["author"]["name"], p["author"]["name"]);
            assert!(p["author"]["email"]
                .as_str()
                .is_some_and(|m| m.contains('@')));
        }
    }
    // A later page's cursor still comes from the sort key the page did not select.
    let first = app
        .ok(
            &app.a.admin,
            "{ forumThreads(first: 2, orderBy: [{title: DESC}]) { pageInfo { endCursor } nodes { id } } }",
            json!({}),
        )
        .await;
    let after = first["forumThreads"]["pageInfo"]["endCursor"].clone();
    let next = app
        .ok(
            &app.a.admin,
            "query($a: String) { forumThreads(first: 2, after: $a, orderBy: [{title: DESC}]) { nodes { title } } }",
            json!({ "a": after }),
        )
        .await;
    let mut titles: Vec<String> = threads
        .iter()
        .map(|t| t["title"].as_str().unwrap_or("").to_string())
        .collect();
    titles.sort();
    titles.reverse();
    let got: Vec<String> = next["forumThreads"]["nodes"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|t| t["title"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(got, titles[2..4].to_vec());
}

/// A plan reads a level's relations in the level's own round trip when the level has few rows
/// (the level's statement embedded as their parents, run again in the same snapshot). Pages
/// of every kind (backwards, counted, filtered, under a root list, `hasOne`) answer as the
/// executor answers them: the first app verifies every planned query against it; the second
/// counts the plan's round trips alone.
#[tokio::test]
async fn relations_of_few_rows_are_read_in_their_parents_round_trip() {
    let verifying = TestApp::new().await;
    let counting = TestApp::with_limits(Limits {
        planned_reads: PlannedReads::On,
        ..Limits::default()
    })
    .await;
    for app in [&verifying, &counting] {
        let f = forum(app, "ahead", 6).await;
        app.ok(
            &app.a.user,
            "mutation { createProfile(input: {fullName: \"Ahead\"}) { id } }",
            json!({}),
        )
        .await;
        let cursor = app
            .ok(
                &app.a.admin,
                "{ forumThreads(first: 1) { pageInfo { endCursor } } }",
                json!({}),
            )
            .await["forumThreads"]["pageInfo"]["endCursor"]
            .clone();
        let shapes: [(&str, &str, Json, u64); 8] = [
            (
                "backwards and counted, two levels down",
                "query($c: ID!) { forumCategory(id: $c) { name threads(last: 3, orderBy: [{id: ASC}]) { totalCount pageInfo { hasPreviousPage startCursor } edges { cursor node { title posts(first: 2, orderBy: [{id: DESC}]) { totalCount pageInfo { hasNextPage } nodes { content } } } } } } }",
                json!({ "c": f.category }),
                1,
            ),
            (
                "filtered",
                "query($c: ID!) { forumCategory(id: $c) { threads(first: 5, where: {title: {contains: \"ahead 0\"}}) { nodes { title posts { nodes { content } } } } } }",
                json!({ "c": f.category }),
                1,
            ),
            (
                // The authors read with the posts.
                "under a root list, with the authors",
                "{ forumThreads(first: 3, orderBy: [{id: ASC}]) { nodes { title posts(first: 2) { nodes { content author { name } } } } } }",
                json!({}),
                1,
            ),
            (
                // Authors with a relation of their own are read by id, then their
                // profiles; COMMIT after the response.
                "under a root list, then the authors and their profiles",
                "{ forumThreads(first: 3, orderBy: [{id: ASC}]) { nodes { title posts(first: 2) { nodes { content author { name profile { fullName } } } } } } }",
                json!({}),
                4,
            ),
            (
                // The threads read by id (they have a relation of their own), each with its
                // author read in the same statement; COMMIT after the response.
                "a parent read by id, its own parent with it",
                "{ forumPosts(first: 3, orderBy: [{id: ASC}]) { nodes { content thread { title author { name } } } } }",
                json!({}),
                3,
            ),
            (
                "hasOne",
                "query($u: ID!) { user(id: $u) { name profile { fullName } } }",
                json!({ "u": app.a.user_id }),
                1,
            ),
            (
                // An empty page after a cursor has its count read apart: COMMIT waits.
                "counted after a cursor",
                "query($a: String) { forumThreads(first: 2, after: $a) { totalCount nodes { title } } }",
                json!({ "a": cursor }),
                2,
            ),
            (
                "a missing root",
                "query($c: ID!) { forumCategory(id: $c) { threads { nodes { title } } } }",
                json!({ "c": "00000000-0000-4000-8000-000000000000" }),
                1,
            ),
        ];
        for (name, query, vars, trips) in shapes {
            cost(app, query, vars.clone()).await;
            let (_, counted) = cost(app, query, vars).await;
            if std::ptr::eq(app, &counting) {
                // With COMMIT's: it rides with the reads when a plan reads everything in
                // one round trip and counts nothing apart.
                assert_eq!(counted, trips, "{name}: round trips");
            }
        }
    }
}

/// A `belongsTo` parent read in its child's statement is confined to what the caller may
/// read, as when it is read by id: a task's conversation is null for a user who may read the
/// task but is not among the conversation's participants, and present for one who is. The
/// verifying app compares every planned answer with the executor's.
#[tokio::test]
async fn a_joined_parent_is_read_only_where_the_caller_may_read_it() {
    let app = TestApp::new().await;
    let (assignee, assignee_token) = app.new_user("assignee").await;
    let conversation = app
        .ok(
            &app.a.user,
            "mutation { createConversation(input: {channel: \"web\", participant: {name: \"Ann\"}}) { id } }",
            json!({}),
        )
        .await["createConversation"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let task = app
        .ok(
            &app.a.admin,
            "mutation($i: NewTaskInput!) { createTask(input: $i) { id } }",
            json!({ "i": { "title": "linked", "assignTo": { "userId": assignee } } }),
        )
        .await["createTask"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    // Linked behind the API's back: no caller here may both write the task and read the
    // conversation.
    let mut owner = app.owner().await;
    diesel_async::RunQueryDsl::execute(
        diesel::sql_query(format!(
            "UPDATE tasks SET conversation_id = '{conversation}' WHERE id = '{task}'"
        )),
        &mut owner,
    )
    .await
    .expect("link the task");

    let one = "query($t: ID!) { task(id: $t) { title conversation { id channel } } }";
    let list = "{ tasks(first: 5, orderBy: [{id: ASC}]) { nodes { title conversation { id } } } }";
    let (_, _, before) = app.send(scrape(Some("127.0.0.1"))).await;
    let planned_before = sample(&before, "gateway_planned_operations_total ").unwrap_or(-1.0);

    let hidden = app.ok(&assignee_token, one, json!({ "t": task })).await;
    assert_eq!(hidden["task"]["title"], "linked", "{hidden}");
    assert!(hidden["task"]["conversation"].is_null(), "{hidden}");
    let hidden = app.ok(&assignee_token, list, json!({})).await;
    let nodes = hidden["tasks"]["nodes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(!nodes.is_empty(), "{hidden}");
    assert!(
        nodes.iter().all(|n| n["conversation"].is_null()),
        "{hidden}"
    );

    let seen = app.ok(&app.a.user, one, json!({ "t": task })).await;
    assert_eq!(
        seen["task"]["conversation"]["id"],
        json!(conversation),
        "{seen}"
    );
    assert_eq!(seen["task"]["conversation"]["channel"], "web", "{seen}");

    // Each was answered by its plan (and the executor agreed).
    let (_, _, after) = app.send(scrape(Some("127.0.0.1"))).await;
    let planned_after = sample(&after, "gateway_planned_operations_total ").unwrap_or(-1.0);
    assert_eq!(planned_after - planned_before, 3.0, "planned operations");
}

/// The row read past a page (to learn whether there are more) is never shown, so a plan
/// reads no relations of it: forwards, backwards and under a root list, the rows read are
/// the page's own, its row past the end, and the children of the rows shown alone.
#[tokio::test]
async fn the_row_past_a_page_has_no_relations_read() {
    let app = TestApp::with_limits(Limits {
        planned_reads: PlannedReads::On,
        ..Limits::default()
    })
    .await;
    // Threads 00-03 (by title) have 0, 3, 6 and 9 posts.
    let f = forum(&app, "probe", 4).await;
    let shapes: [(&str, &str, u64); 3] = [
        (
            // The category, threads 00 and 01 and 02 past them, posts of 00 and 01.
            "forwards",
            "query($c: ID!) { forumCategory(id: $c) { threads(first: 2, orderBy: [{title: ASC}]) { nodes { title posts { nodes { content } } } } } }",
            1 + 3 + 3,
        ),
        (
            // The category, threads 03 and 02 and 01 before them, posts of 02 and 03.
            "backwards",
            "query($c: ID!) { forumCategory(id: $c) { threads(last: 2, orderBy: [{title: ASC}]) { nodes { title posts { nodes { content } } } } } }",
            1 + 3 + 6 + 9,
        ),
        (
            "under a root list",
            "query($c: ID!) { forumThreads(first: 2, where: {categoryId: {equals: $c}}, orderBy: [{title: ASC}]) { nodes { title posts { nodes { content } } } } }",
            3 + 3,
        ),
    ];
    for (name, query, rows) in shapes {
        app.db.settled().await;
        let before = app.db.rows_read();
        let data = app
            .ok(&app.a.admin, query, json!({ "c": f.category }))
            .await;
        app.db.settled().await;
        assert_eq!(app.db.rows_read() - before, rows, "{name}: rows read");
        let pages = data["forumCategory"]["threads"]["nodes"]
            .as_array()
            .or_else(|| data["forumThreads"]["nodes"].as_array())
            .cloned()
            .unwrap_or_default();
        let posts: Vec<usize> = pages
            .iter()
            .map(|t| t["posts"]["nodes"].as_array().map_or(0, Vec::len))
            .collect();
        let expected = match name {
            "backwards" => vec![6, 9],
            _ => vec![0, 3],
        };
        assert_eq!(posts, expected, "{name}: posts shown");
    }
}
