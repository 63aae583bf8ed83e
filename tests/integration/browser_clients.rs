//! Apollo Client and urql in a real browser page: `tests/browser/clients/app.js`, bundled with
//! esbuild from the pinned npm packages of `tests/browser` and run in headless Chromium by
//! `tests/browser/clients.mjs`. Both clients normalise their caches, page through a
//! connection with relay-style pagination, update the cache from a mutation's result and get
//! a live notification over graphql-ws. The page is served under the gateway's own origin
//! (the gateway has no CORS, and only its own origin and configured ones may open sockets), as
//! a reverse proxy in front of an app and the gateway would serve it.

use std::path::PathBuf;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use serde_json::json;

use crate::harness::TestApp;
use crate::playground::{artefacts, browser_dir, chromium, run_in_chromium};

/// `/clients/<file>`: the app `clients.mjs` builds into `dir`, read at each request.
fn app_routes(dir: PathBuf) -> Router {
    let file = |dir: PathBuf, name: &'static str, ctype: &'static str| {
        get(move || {
            let path = dir.join(name);
            async move {
                match std::fs::read(&path) {
                    Ok(bytes) => ([(header::CONTENT_TYPE, ctype)], bytes).into_response(),
                    Err(_) => axum::http::StatusCode::NOT_FOUND.into_response(),
                }
            }
        })
    };
    Router::new()
        .route(
            "/clients/index.html",
            file(dir.clone(), "index.html", "text/html; charset=utf-8"),
        )
        .route(
            "/clients/app.js",
            file(dir, "app.js", "text/javascript; charset=utf-8"),
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apollo_client_and_urql_work_in_headless_chromium() {
    // Fails at once, saying so, on a machine without Chromium.
    chromium();
    tokio::task::spawn_blocking(|| crate::js_clients::npm_ci(&browser_dir()))
        .await
        .expect("npm");
    let app = TestApp::new().await;

    // A category with five threads of the user's, through the API.
    let category = app
        .ok(
            &app.a.admin,
            "mutation { createForumCategory(input: {name: \"Clients\", slug: \"clients\"}) \
             { id } }",
            json!({}),
        )
        .await["createForumCategory"]["id"]
        .clone();
    let mut threads = Vec::new();
    for n in 1..=5 {
        let slug = format!("thread-{n}");
        let d = app
            .ok(
                &app.a.user,
                "mutation($i: ForumThreadCreateInput!) \
                 { createForumThread(input: $i) { id slug title } }",
                json!({ "i": {
                    "categoryId": category, "title": format!("Thread {n}"), "slug": slug
                } }),
            )
            .await;
        threads.push(d["createForumThread"].clone());
    }
    let config = json!({
        "token": app.a.user,
        "userId": app.a.user_id.to_string(),
        "category": category,
        "threads": threads,
    })
    .to_string();

    let dir = artefacts("clients");
    let addr = app.listen_with(app_routes(dir.join("app"))).await;
    let url = format!("http://{addr}/clients/index.html");
    let admin = app.a.admin.clone();
    let started = std::time::Instant::now();
    let summary = run_in_chromium(
        "clients",
        "the Apollo Client and urql browser test",
        vec![url, config, admin],
        &dir,
    )
    .await;
    let results = &summary["results"];
    let slugs = json!(["thread-1", "thread-2", "thread-3", "thread-4"]);
    for client in ["apollo", "urql"] {
        let r = &results[client];
        assert_eq!(r["pages"], slugs, "{client}: {summary}");
        // Two pages, one mutation: every other read came from the cache.
        assert_eq!(r["requests"], 3, "{client}: {summary}");
        assert_eq!(r["event"]["op"], "CREATED", "{client}: {summary}");
        assert_eq!(
            r["event"]["node"]["userId"],
            app.a.user_id.to_string(),
            "{client}"
        );
        // The renamed thread as the server has it now holds the last client's title.
        let title = r["renamed"]["title"].as_str().expect("title");
        assert_eq!(r["renamed"]["fragment"]["title"], title, "{client}");
    }
    // Development builds: Apollo's and graphcache's own warnings (a field without a merge
    // function, an entity without a key, ...) would show a misconfigured cache.
    assert_eq!(summary["warnings"], json!([]), "{summary}");
    let d = app
        .ok(
            &app.a.user,
            "query($id: ID!) { forumThread(id: $id) { title } }",
            json!({ "id": results["urql"]["renamed"]["id"] }),
        )
        .await;
    assert_eq!(
        d["forumThread"]["title"], results["urql"]["renamed"]["title"],
        "{summary}"
    );
    assert_eq!(
        summary["sockets"],
        json!([
            format!("ws://{addr}/graphql"),
            format!("ws://{addr}/graphql")
        ]),
        "{summary}"
    );
    for shot in summary["screenshots"].as_array().expect("screenshots") {
        let path = PathBuf::from(shot.as_str().expect("path"));
        assert!(
            std::fs::metadata(&path).is_ok_and(|m| m.len() > 1000),
            "{}",
            path.display()
        );
    }
    eprintln!(
        "Apollo Client and urql in Chromium: steps {}, warnings {}, bundle {} bytes \
         ({:.1} s with the build and the browser's start)",
        summary["steps"],
        summary["warnings"],
        summary["bundleBytes"],
        started.elapsed().as_secs_f64()
    );
}
