//! `where` through relations (`belongsTo`, `hasOne`, and `some` / `every` / `none` over
//! `hasMany`) and `orderBy` through `belongsTo`, compared with the same data filtered and
//! sorted by hand.

use std::collections::BTreeSet;

use serde_json::{json, Value as Json};

use crate::harness::TestApp;

struct Thread {
    id: String,
    title: String,
    category: String,
    /// Author ids of its posts.
    authors: Vec<String>,
}

struct Data {
    /// (id, name, slug)
    categories: Vec<(String, String, String)>,
    threads: Vec<Thread>,
}

fn ids(d: &Json) -> BTreeSet<String> {
    d.as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|n| n["id"].as_str().unwrap_or("").to_string())
        .collect()
}

fn list(d: &Json) -> Vec<String> {
    d.as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|n| n["id"].as_str().unwrap_or("").to_string())
        .collect()
}

/// Three categories (one nested under another); each gets threads whose posts are written by
/// the admin, the user, both, or nobody.
async fn seed(app: &TestApp) -> Data {
    let admin = app.a.admin_id.to_string();
    let user = app.a.user_id.to_string();
    let mut categories = Vec::new();
    for (name, slug) in [("News", "news"), ("Misc", "misc"), ("Zeta", "zeta")] {
        let parent = categories
            .first()
            .map(|(id, _, _): &(String, String, String)| id.clone());
        let parent = if slug == "zeta" { parent } else { None };
        let d = app
            .ok(
                &app.a.admin,
                "mutation($i: ForumCategoryCreateInput!) { createForumCategory(input: $i) { id } }",
                json!({ "i": { "name": name, "slug": slug, "parentId": parent } }),
            )
            .await;
        let id = d["createForumCategory"]["id"]
            .as_str()
            .unwrap_or("")
            .to_string();
        categories.push((id, name.to_string(), slug.to_string()));
    }
    let mixes: [&[&str]; 4] = [&["a"], &["u"], &["a", "u"], &[]];
    let mut threads = Vec::new();
    for (ci, (cat, _, slug)) in categories.iter().enumerate() {
        for (mi, mix) in mixes.iter().enumerate() {
            // Titles interleave across categories so that sorting by category matters.
            let title = format!("t{} {slug}", (mi * 3 + ci) % 7);
            let d = app
                .ok(
                    &app.a.admin,
                    "mutation($i: ForumThreadCreateInput!) { createForumThread(input: $i) { id } }",
                    json!({ "i": { "categoryId": cat, "title": title, "slug": format!("{slug}-{mi}") } }),
                )
                .await;
            let id = d["createForumThread"]["id"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let authors: Vec<String> = mix
                .iter()
                .map(|w| {
                    if *w == "a" {
                        admin.clone()
                    } else {
                        user.clone()
                    }
                })
                .collect();
            // Authors are stamped from the caller: each writes with its own token.
            for a in &authors {
                let token = if *a == admin {
                    &app.a.admin
                } else {
                    &app.a.user
                };
                app.ok(
                    token,
                    "mutation($i: ForumPostCreateInput!) { createForumPost(input: $i) { id } }",
                    json!({ "i": { "threadId": id, "content": "c" } }),
                )
                .await;
            }
            threads.push(Thread {
                id,
                title,
                category: cat.clone(),
                authors,
            });
        }
    }
    Data {
        categories,
        threads,
    }
}

async fn thread_ids(app: &TestApp, token: &str, filter: Json) -> BTreeSet<String> {
    let d = app
        .ok(
            token,
            "query($w: ForumThreadWhere) { forumThreads(where: $w, first: 500) { totalCount nodes { id } } }",
            json!({ "w": filter }),
        )
        .await;
    let got = ids(&d["forumThreads"]["nodes"]);
    assert_eq!(d["forumThreads"]["totalCount"], json!(got.len()));
    got
}

fn expect(data: &Data, keep: impl Fn(&Thread) -> bool) -> BTreeSet<String> {
    data.threads
        .iter()
        .filter(|t| keep(t))
        .map(|t| t.id.clone())
        .collect()
}

#[tokio::test]
async fn where_through_belongs_to_and_has_many() {
    let app = TestApp::new().await;
    let data = seed(&app).await;
    let tok = &app.a.admin;
    let user = app.a.user_id.to_string();
    let news = data.categories[0].0.clone();

    // belongsTo
    let got = thread_ids(
        &app,
        tok,
        json!({ "category": { "slug": { "equals": "news" } } }),
    )
    .await;
    assert_eq!(got, expect(&data, |t| t.category == news));
    let got = thread_ids(
        &app,
        tok,
        json!({ "NOT": { "category": { "name": { "in": ["News", "Zeta"] } } } }),
    )
    .await;
    assert_eq!(got, expect(&data, |t| t.category == data.categories[1].0));
    // Two levels up: threads of categories whose parent is "news".
    let got = thread_ids(
        &app,
        tok,
        json!({ "category": { "parent": { "slug": { "equals": "news" } } } }),
    )
    .await;
    assert_eq!(got, expect(&data, |t| t.category == data.categories[2].0));

    // hasMany: some / every / none, alone and combined with a scalar condition.
    let by_user = json!({ "authorId": { "equals": user } });
    let got = thread_ids(&app, tok, json!({ "posts": { "some": by_user } })).await;
    assert_eq!(got, expect(&data, |t| t.authors.contains(&user)));
    let got = thread_ids(&app, tok, json!({ "posts": { "every": by_user } })).await;
    assert_eq!(got, expect(&data, |t| t.authors.iter().all(|a| *a == user)));
    let got = thread_ids(&app, tok, json!({ "posts": { "none": by_user } })).await;
    assert_eq!(got, expect(&data, |t| !t.authors.contains(&user)));
    let got = thread_ids(
        &app,
        tok,
        json!({ "posts": { "some": {}, "none": by_user }, "category": { "slug": { "startsWith": "m" } } }),
    )
    .await;
    assert_eq!(
        got,
        expect(&data, |t| {
            !t.authors.is_empty()
                && !t.authors.contains(&user)
                && t.category == data.categories[1].0
        })
    );
    // `every` holds for threads without posts; `some: {}` does not.
    let got = thread_ids(
        &app,
        tok,
        json!({ "posts": { "every": { "content": { "equals": "nope" } } } }),
    )
    .await;
    assert_eq!(got, expect(&data, |t| t.authors.is_empty()));

    // Down two levels, from categories: those with a thread that has a post by the user.
    let d = app
        .ok(
            tok,
            "query($u: ID!) { forumCategories(where: {threads: {some: {posts: {some: {authorId: {equals: $u}}}}}}) { nodes { id } } }",
            json!({ "u": user }),
        )
        .await;
    let all: BTreeSet<String> = data.categories.iter().map(|c| c.0.clone()).collect();
    assert_eq!(ids(&d["forumCategories"]["nodes"]), all);

    // The same conditions inside a relation connection.
    let d = app
        .ok(
            tok,
            "query($c: ID!, $u: ID!) { forumCategory(id: $c) { threads(where: {posts: {some: {authorId: {equals: $u}}}}) { totalCount nodes { id } } } }",
            json!({ "c": news, "u": user }),
        )
        .await;
    let want = expect(&data, |t| t.category == news && t.authors.contains(&user));
    assert_eq!(ids(&d["forumCategory"]["threads"]["nodes"]), want);
    assert_eq!(
        d["forumCategory"]["threads"]["totalCount"],
        json!(want.len())
    );

    // hasOne: users with a profile called "Ordinary".
    app.ok(
        tok,
        "mutation($u: ID!) { createProfile(input: {userId: $u, fullName: \"Ordinary\"}) { id } }",
        json!({ "u": user }),
    )
    .await;
    let d = app
        .ok(
            tok,
            "{ users(where: {profile: {fullName: {equals: \"Ordinary\"}}}) { nodes { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(list(&d["users"]["nodes"]), vec![user.clone()]);
}

#[tokio::test]
async fn relation_filters_see_only_what_the_caller_may_read() {
    let app = TestApp::new().await;
    let data = seed(&app).await;
    // Tenant B has a category of the same slug; A's filters never reach it and B's never
    // reach A's.
    app.ok(
        &app.b.admin,
        "mutation { createForumCategory(input: {name: \"News\", slug: \"news\"}) { id } }",
        json!({}),
    )
    .await;
    let got = thread_ids(
        &app,
        &app.b.admin,
        json!({ "category": { "slug": { "equals": "news" } } }),
    )
    .await;
    assert!(got.is_empty());
    let got = thread_ids(
        &app,
        &app.a.user,
        json!({ "category": { "slug": { "equals": "news" } } }),
    )
    .await;
    assert_eq!(got, expect(&data, |t| t.category == data.categories[0].0));

    // Notifications are readable by their owner only: a user cannot find the admin through
    // the admin's notifications, the admin can.
    app.ok(
        &app.a.admin,
        "mutation($u: ID!) { createNotification(input: {userId: $u, title: \"secret\", message: \"m\"}) { id } }",
        json!({ "u": app.a.admin_id }),
    )
    .await;
    let q = "{ users(where: {notifications: {some: {title: {equals: \"secret\"}}}}) { totalCount nodes { id } } }";
    let d = app.ok(&app.a.user, q, json!({})).await;
    assert_eq!(d["users"]["totalCount"], json!(0));
    let d = app.ok(&app.a.admin, q, json!({})).await;
    assert_eq!(list(&d["users"]["nodes"]), vec![app.a.admin_id.to_string()]);
    // ...and `none` does not turn the hidden row into a match for the user either way:
    // for the user, no user has a readable "secret" notification.
    let q =
        "{ users(where: {notifications: {none: {title: {equals: \"secret\"}}}}) { totalCount } }";
    let d = app.ok(&app.a.user, q, json!({})).await;
    let everyone = app
        .ok(&app.a.user, "{ users { totalCount } }", json!({}))
        .await;
    assert_eq!(d["users"]["totalCount"], everyone["users"]["totalCount"]);

    // Bulk mutations take relation filters too, and touch only the matching rows.
    let d = app
        .ok(
            &app.a.admin,
            "mutation { updateForumThreads(where: {category: {slug: {equals: \"misc\"}}}, input: {isPinned: true}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(
        ids(&d["updateForumThreads"]),
        expect(&data, |t| t.category == data.categories[1].0)
    );
    let pinned = thread_ids(
        &app,
        &app.a.admin,
        json!({ "isPinned": { "equals": true } }),
    )
    .await;
    assert_eq!(
        pinned,
        expect(&data, |t| t.category == data.categories[1].0)
    );

    // Nesting is bounded.
    let (code, _) = app
        .err(
            &app.a.admin,
            "{ forumThreads(where: {category: {threads: {some: {category: {threads: {some: {category: {slug: {equals: \"x\"}}}}}}}}}) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(code, "BAD_USER_INPUT");
}

#[tokio::test]
async fn order_by_belongs_to_fields_with_cursors() {
    let app = TestApp::new().await;
    let data = seed(&app).await;
    let name_of = |cat: &str| {
        data.categories
            .iter()
            .find(|c| c.0 == cat)
            .map(|c| c.1.clone())
            .unwrap_or_default()
    };
    // By category name descending, then title, then id.
    let mut want: Vec<&Thread> = data.threads.iter().collect();
    want.sort_by(|x, y| {
        name_of(&y.category)
            .cmp(&name_of(&x.category))
            .then(x.title.cmp(&y.title))
            .then(x.id.cmp(&y.id))
    });
    let want: Vec<String> = want.iter().map(|t| t.id.clone()).collect();

    let q = "query($a: String) { forumThreads(first: 5, after: $a, orderBy: [{category: {name: DESC}}, {title: ASC}]) {
        edges { node { id } } pageInfo { hasNextPage endCursor } } }";
    let mut seen = Vec::new();
    let mut after = Json::Null;
    loop {
        let d = app.ok(&app.a.admin, q, json!({ "a": after })).await;
        let page = &d["forumThreads"];
        seen.extend(
            page["edges"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|e| e["node"]["id"].as_str().unwrap_or("").to_string()),
        );
        if page["pageInfo"]["hasNextPage"] != json!(true) {
            break;
        }
        after = page["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(seen, want);

    // Backwards: the last 4.
    let d = app
        .ok(
            &app.a.admin,
            "{ forumThreads(last: 4, orderBy: [{category: {name: DESC}}, {title: ASC}]) { nodes { id } pageInfo { hasPreviousPage } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        list(&d["forumThreads"]["nodes"]),
        want[want.len() - 4..].to_vec()
    );
    assert_eq!(
        d["forumThreads"]["pageInfo"]["hasPreviousPage"],
        json!(true)
    );

    // Through two relations, inside a relation connection: a user's posts ordered by their
    // thread's category name, then by the thread's title.
    let d = app
        .ok(
            &app.a.admin,
            "query($u: ID!) { user(id: $u) { forumPosts(orderBy: [{thread: {category: {name: ASC}}}, {thread: {title: ASC}}]) { nodes { thread { id } } } } }",
            json!({ "u": app.a.user_id }),
        )
        .await;
    let got: Vec<String> = d["user"]["forumPosts"]["nodes"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|n| n["thread"]["id"].as_str().unwrap_or("").to_string())
        .collect();
    let user = app.a.user_id.to_string();
    let mut by_user: Vec<&Thread> = data
        .threads
        .iter()
        .filter(|t| t.authors.contains(&user))
        .collect();
    by_user.sort_by(|x, y| {
        name_of(&x.category)
            .cmp(&name_of(&y.category))
            .then(x.title.cmp(&y.title))
    });
    let expected: Vec<String> = by_user.iter().map(|t| t.id.clone()).collect();
    assert_eq!(got, expected);

    // A missing parent sorts like null: last ascending.
    let d = app
        .ok(
            &app.a.admin,
            "{ forumCategories(orderBy: [{parent: {name: ASC}}, {slug: DESC}]) { nodes { slug } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        d["forumCategories"]["nodes"],
        json!([{ "slug": "zeta" }, { "slug": "news" }, { "slug": "misc" }])
    );

    // One field per entry, at every level.
    let (code, _) = app
        .err(
            &app.a.admin,
            "{ forumThreads(orderBy: [{category: {name: ASC, slug: ASC}}]) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(code, "BAD_USER_INPUT");
    // A cursor of another order is refused.
    let d = app
        .ok(
            &app.a.admin,
            "{ forumThreads(first: 1, orderBy: [{title: ASC}]) { pageInfo { endCursor } } }",
            json!({}),
        )
        .await;
    let (code, _) = app
        .err(
            &app.a.admin,
            "query($a: String) { forumThreads(after: $a, orderBy: [{category: {name: ASC}}]) { totalCount } }",
            json!({ "a": d["forumThreads"]["pageInfo"]["endCursor"] }),
        )
        .await;
    assert_eq!(code, "BAD_USER_INPUT");
}
