//! Request limits beyond depth, complexity and body size: aliases per field, directives,
//! introspection and field suggestions only for admins when so configured.

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
