//! Request limits beyond depth and body size: complexity by page size, batches, aliases per
//! field, directives, introspection and field suggestions only for admins when so configured.

use gateway::config::{Exposure, Limits};
use serde_json::json;

use crate::harness::TestApp;

#[tokio::test]
async fn aliases_per_field_and_directives_are_limited() {
    let app = TestApp::new().await;
    let aliased = |n: usize| {
        let fields: Vec<String> = (0..n)
            .map(|i| format!("a{i}: forumCategories(first: 1) {{ totalCount }}"))
            .collect();
        format!("{{ {} }}", fields.join(" "))
    };
    app.ok(&app.a.user, &aliased(15), json!({})).await;
    let (code, err) = app.err(&app.a.user, &aliased(16), json!({})).await;
    assert_eq!(code, "LIMIT_EXCEEDED", "{err}");
    assert!(err["message"]
        .as_str()
        .unwrap_or("")
        .contains("forumCategories"));

    let directives = |n: usize| {
        let fields: Vec<String> = (0..n)
            .map(|i| format!("f{i}: __typename @include(if: true)"))
            .collect();
        format!("{{ {} }}", fields.join(" "))
    };
    // __typename aliases count too: lift the alias limit to look at directives alone.
    let app = TestApp::with_limits(Limits {
        max_aliases_per_field: 100,
        ..Limits::default()
    })
    .await;
    app.ok(&app.a.user, &directives(50), json!({})).await;
    let (code, _) = app.err(&app.a.user, &directives(51), json!({})).await;
    assert_eq!(code, "LIMIT_EXCEEDED");
}

#[tokio::test]
async fn introspection_and_suggestions_can_be_kept_for_admins() {
    let app = TestApp::with_limits(Limits {
        introspection: Exposure::Admins,
        suggestions: Exposure::Admins,
        ..Limits::default()
    })
    .await;
    let schema = "{ __schema { queryType { name } } }";
    let res = app.gql(&app.a.user, schema, json!({})).await;
    assert!(res.get("errors").is_some(), "{res}");
    let data = app.ok(&app.a.admin, schema, json!({})).await;
    assert_eq!(data["__schema"]["queryType"]["name"], json!("Query"));

    let typo = "{ forumThreadz { totalCount } }";
    let user = app.gql(&app.a.user, typo, json!({})).await;
    let admin = app.gql(&app.a.admin, typo, json!({})).await;
    let msg = |r: &serde_json::Value| r["errors"][0]["message"].as_str().unwrap_or("").to_string();
    assert!(msg(&admin).contains("Did you mean"), "{admin}");
    assert!(!msg(&user).contains("Did you mean"), "{user}");
    assert!(msg(&user).contains("forumThreadz"), "{user}");

    // By default everyone may introspect.
    let app = TestApp::new().await;
    app.ok(&app.a.user, schema, json!({})).await;
}

#[tokio::test]
async fn a_list_costs_in_proportion_to_its_page_size() {
    let app = TestApp::new().await;
    let nested = |outer: u32, inner: u32| {
        format!(
            "{{ forumCategories(first: {outer}) {{ nodes {{ id threads(first: {inner}) {{ nodes {{ id title }} }} }} }} }}"
        )
    };
    // The same selection: small pages pass, large ones exceed the complexity budget.
    app.ok(&app.a.user, &nested(10, 10), json!({})).await;
    let (code, err) = app.err(&app.a.user, &nested(100, 100), json!({})).await;
    assert_eq!(code, "LIMIT_EXCEEDED", "{err}");
    // Without `first`, a list is charged the default page size (50 rows).
    let (code, _) = app
        .err(
            &app.a.user,
            "{ forumCategories { nodes { id threads { nodes { id title slug isPinned } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(code, "LIMIT_EXCEEDED");
    app.ok(
        &app.a.user,
        "{ forumCategories { nodes { id threads(first: 1) { nodes { id title } } } } }",
        json!({}),
    )
    .await;
}

#[tokio::test]
async fn batches_run_in_order_up_to_a_limit() {
    use axum::http::{header, Method, Request, StatusCode};
    let app = TestApp::new().await;
    let post = |body: serde_json::Value| {
        Request::builder()
            .method(Method::POST)
            .uri("/graphql")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::AUTHORIZATION, format!("Bearer {}", app.a.user))
            .body(axum::body::Body::from(body.to_string()))
            .expect("request")
    };
    let (status, _, body) = app
        .send(post(json!([
            { "query": "{ viewer { role } }" },
            { "query": "query($n: Int) { forumCategories(first: $n) { totalCount } }", "variables": { "n": 1 } },
            { "query": "{ nope }" },
            7
        ])))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let answers: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(
        answers[0]["data"]["viewer"]["role"],
        json!("user"),
        "{answers}"
    );
    assert_eq!(
        answers[1]["data"]["forumCategories"]["totalCount"],
        json!(0)
    );
    assert_eq!(
        answers[2]["errors"][0]["extensions"]["code"],
        json!("GRAPHQL_VALIDATION_FAILED")
    );
    assert_eq!(
        answers[3]["errors"][0]["extensions"]["code"],
        json!("BAD_REQUEST")
    );
    assert_eq!(answers.as_array().map(Vec::len), Some(4));

    let eleven: Vec<serde_json::Value> = (0..11)
        .map(|_| json!({ "query": "{ __typename }" }))
        .collect();
    let (status, _, body) = app.send(post(json!(eleven))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("LIMIT_EXCEEDED"), "{body}");
    let (status, _, _) = app.send(post(json!([]))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // A batch is still one request: without a token, nothing in it runs.
    let (status, _, body) = app
        .send(
            Request::builder()
                .method(Method::POST)
                .uri("/graphql")
                .header(header::CONTENT_TYPE, "application/json")
                .body(axum::body::Body::from(
                    json!([{ "query": "{ viewer { role } }" }]).to_string(),
                ))
                .expect("request"),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}
