//! The `where` operators, one family at a time, on rows made for the purpose.

use serde_json::{json, Value as Json};

use crate::harness::TestApp;

/// Workflows cover text, boolean, int, JSON, string lists and datetimes.
async fn workflows(app: &TestApp) {
    let inputs = json!([
        { "name": "Alpha build", "description": "compiles", "enabled": true,
          "tags": ["ci", "rust"], "nodes": { "kind": "graph", "size": 3, "meta": { "lang": "rust" } } },
        { "name": "beta deploy", "description": null, "enabled": false,
          "tags": ["cd"], "nodes": { "kind": "graph", "size": 5 } },
        { "name": "Gamma_100%", "description": "edge", "enabled": true,
          "tags": [], "nodes": [1, 2, 3] },
    ]);
    app.ok(
        &app.a.admin,
        "mutation($i: [WorkflowCreateInput!]!) { createWorkflows(inputs: $i) { id } }",
        json!({ "i": inputs }),
    )
    .await;
}

async fn names(app: &TestApp, filter: Json) -> Vec<String> {
    let data = app
        .ok(
            &app.a.admin,
            "query($w: WorkflowWhere) { workflows(where: $w, orderBy: [{name: ASC}]) { totalCount nodes { name } } }",
            json!({ "w": filter }),
        )
        .await;
    let nodes = data["workflows"]["nodes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        data["workflows"]["totalCount"],
        json!(nodes.len()),
        "{data}"
    );
    nodes
        .iter()
        .map(|n| n["name"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test]
async fn text_operators_and_case_insensitive_mode() {
    let app = TestApp::new().await;
    workflows(&app).await;
    assert_eq!(
        names(&app, json!({ "name": { "equals": "beta deploy" } })).await,
        ["beta deploy"]
    );
    assert_eq!(
        names(
            &app,
            json!({ "name": { "equals": "BETA DEPLOY", "mode": "INSENSITIVE" } })
        )
        .await,
        ["beta deploy"]
    );
    assert_eq!(
        names(&app, json!({ "name": { "contains": "a b" } })).await,
        ["Alpha build"]
    );
    assert_eq!(
        names(&app, json!({ "name": { "startsWith": "alpha" } })).await,
        Vec::<String>::new()
    );
    assert_eq!(
        names(
            &app,
            json!({ "name": { "startsWith": "alpha", "mode": "INSENSITIVE" } })
        )
        .await,
        ["Alpha build"]
    );
    assert_eq!(
        names(&app, json!({ "name": { "endsWith": "_100%" } })).await,
        ["Gamma_100%"]
    );
    // LIKE wildcards in the needle are literal.
    assert_eq!(
        names(&app, json!({ "name": { "contains": "%" } })).await,
        ["Gamma_100%"]
    );
    assert_eq!(
        names(&app, json!({ "name": { "contains": "_" } })).await,
        ["Gamma_100%"]
    );
    assert_eq!(
        names(&app, json!({ "name": { "in": ["beta deploy", "nope"] } })).await,
        ["beta deploy"]
    );
    assert_eq!(
        names(&app, json!({ "name": { "notIn": ["beta deploy"] } })).await,
        ["Alpha build", "Gamma_100%"]
    );
    assert_eq!(
        names(
            &app,
            json!({ "name": { "gt": "Alpha build", "lt": "beta deploy" } })
        )
        .await,
        ["Gamma_100%"]
    );
    assert_eq!(
        names(&app, json!({ "description": { "isNull": true } })).await,
        ["beta deploy"]
    );
    // `not` keeps rows where the column is null.
    assert_eq!(
        names(&app, json!({ "description": { "not": "edge" } })).await,
        ["Alpha build", "beta deploy"]
    );
}

#[tokio::test]
async fn boolean_json_list_and_combinators() {
    let app = TestApp::new().await;
    workflows(&app).await;
    assert_eq!(
        names(&app, json!({ "enabled": { "equals": false } })).await,
        ["beta deploy"]
    );
    assert_eq!(
        names(
            &app,
            json!({ "nodes": { "path": ["kind"], "equals": "graph" } })
        )
        .await,
        ["Alpha build", "beta deploy"]
    );
    assert_eq!(
        names(
            &app,
            json!({ "nodes": { "contains": { "meta": { "lang": "rust" } } } })
        )
        .await,
        ["Alpha build"]
    );
    assert_eq!(
        names(&app, json!({ "nodes": { "hasKey": "meta" } })).await,
        ["Alpha build"]
    );
    assert_eq!(
        names(&app, json!({ "nodes": { "path": ["size"], "equals": 5 } })).await,
        ["beta deploy"]
    );
    assert_eq!(
        names(&app, json!({ "tags": { "has": "rust" } })).await,
        ["Alpha build"]
    );
    assert_eq!(
        names(&app, json!({ "tags": { "hasSome": ["cd", "rust"] } })).await,
        ["Alpha build", "beta deploy"]
    );
    assert_eq!(
        names(&app, json!({ "tags": { "hasEvery": ["ci", "rust"] } })).await,
        ["Alpha build"]
    );
    assert_eq!(
        names(&app, json!({ "tags": { "isEmpty": true } })).await,
        ["Gamma_100%"]
    );
    assert_eq!(
        names(
            &app,
            json!({ "OR": [{ "name": { "startsWith": "A" } }, { "enabled": { "equals": false } }] })
        )
        .await,
        ["Alpha build", "beta deploy"]
    );
    assert_eq!(
        names(&app, json!({ "AND": [{ "enabled": { "equals": true } }], "NOT": { "name": { "contains": "Gamma" } } })).await,
        ["Alpha build"]
    );
    // NOT over a null comparison still matches the row whose column is null.
    assert_eq!(
        names(
            &app,
            json!({ "NOT": { "description": { "equals": "compiles" } } })
        )
        .await,
        ["Gamma_100%", "beta deploy"]
    );
}

#[tokio::test]
async fn number_datetime_enum_and_id_operators() {
    let app = TestApp::new().await;
    let made = app
        .ok(
            &app.a.admin,
            "mutation($i: [MediaJobCreateInput!]!) { createMediaJobs(inputs: $i) { id progress status } }",
            json!({ "i": [
                { "type": "TRANSCODE", "status": "PENDING", "progress": 0, "inputPath": "/in/a" },
                { "type": "THUMBNAIL", "status": "PROCESSING", "progress": 40, "inputPath": "/in/b" },
                { "type": "CONVERT", "status": "COMPLETED", "progress": 100, "inputPath": "/in/c" },
            ]}),
        )
        .await;
    let ids: Vec<String> = made["createMediaJobs"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["id"].as_str().unwrap_or("").to_string())
        .collect();
    let count = |w: Json| {
        let app = &app;
        async move {
            let d = app
                .ok(
                    &app.a.admin,
                    "query($w: MediaJobWhere) { mediaJobs(where: $w) { totalCount } }",
                    json!({ "w": w }),
                )
                .await;
            d["mediaJobs"]["totalCount"].as_i64().unwrap_or(-1)
        }
    };
    assert_eq!(count(json!({ "progress": { "gte": 40 } })).await, 2);
    assert_eq!(
        count(json!({ "progress": { "gt": 0, "lt": 100 } })).await,
        1
    );
    assert_eq!(count(json!({ "progress": { "in": [0, 100] } })).await, 2);
    assert_eq!(
        count(json!({ "status": { "equals": "COMPLETED" } })).await,
        1
    );
    assert_eq!(
        count(json!({ "status": { "in": ["PENDING", "PROCESSING"] } })).await,
        2
    );
    assert_eq!(
        count(json!({ "status": { "notIn": ["PENDING"] } })).await,
        2
    );
    assert_eq!(count(json!({ "id": { "equals": ids[1] } })).await, 1);
    assert_eq!(count(json!({ "id": { "in": [ids[0], ids[2]] } })).await, 2);
    assert_eq!(count(json!({ "id": { "not": ids[0] } })).await, 2);
    assert_eq!(
        count(json!({ "createdAt": { "lte": "2999-01-01T00:00:00Z" } })).await,
        3
    );
    assert_eq!(
        count(json!({ "createdAt": { "gt": "2999-01-01T00:00:00Z" } })).await,
        0
    );
    assert_eq!(count(json!({ "updatedAt": { "isNull": true } })).await, 0);

    // A malformed ID in a filter names the field.
    let (code, err) = app
        .err(
            &app.a.admin,
            "{ mediaJobs(where: {id: {equals: \"nope\"}}) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(code, "BAD_USER_INPUT");
    assert_eq!(err["extensions"]["field"], json!("where.id.equals"));
    // An unknown enum value is refused before anything runs.
    let (code, _) = app
        .err(
            &app.a.admin,
            "{ mediaJobs(where: {status: {equals: DANCING}}) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(code, "BAD_USER_INPUT");
}
