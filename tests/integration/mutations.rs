//! Mutations: validation and conflict errors, nullable updates, optimistic concurrency,
//! upserts, bulk operations, rollback and audit rows.

use serde_json::json;

use crate::harness::TestApp;

const CREATE_CATEGORY: &str =
    "mutation($i: ForumCategoryCreateInput!) { createForumCategory(input: $i) { id name slug description } }";

#[tokio::test]
async fn bad_input_names_the_field() {
    let app = TestApp::new().await;
    let long = "x".repeat(500);
    let (code, err) = app
        .err(
            &app.a.admin,
            CREATE_CATEGORY,
            json!({ "i": { "name": long, "slug": "s" } }),
        )
        .await;
    assert_eq!(code, "BAD_USER_INPUT");
    assert_eq!(err["extensions"]["field"], json!("input.name"));

    // Missing required field, wrong enum, malformed DateTime: refused by the schema.
    let (code, _) = app
        .err(
            &app.a.admin,
            CREATE_CATEGORY,
            json!({ "i": { "slug": "s" } }),
        )
        .await;
    assert_eq!(code, "BAD_USER_INPUT");
    let (code, err) = app
        .err(
            &app.a.admin,
            "mutation($i: NotificationCreateInput!) { createNotification(input: $i) { id } }",
            json!({ "i": { "userId": app.a.admin_id, "title": "t", "message": "m", "expiresAt": "yesterday" } }),
        )
        .await;
    assert_eq!(code, "BAD_USER_INPUT", "{err}");
    let (code, _) = app
        .err(
            &app.a.admin,
            "mutation($i: NotificationCreateInput!) { createNotification(input: $i) { id } }",
            json!({ "i": { "userId": app.a.admin_id, "title": "t", "message": "m", "type": "SHOUTING" } }),
        )
        .await;
    assert_eq!(code, "BAD_USER_INPUT");
    // Malformed ID.
    let (code, err) = app
        .err(
            &app.a.admin,
            "mutation($i: ForumThreadCreateInput!) { createForumThread(input: $i) { id } }",
            json!({ "i": { "categoryId": "not-an-id", "title": "t", "slug": "t" } }),
        )
        .await;
    assert_eq!(code, "BAD_USER_INPUT");
    assert_eq!(err["extensions"]["field"], json!("input.categoryId"));
    // A reference to a row of another tenant is the same as a missing one.
    let foreign = app
        .ok(
            &app.b.admin,
            CREATE_CATEGORY,
            json!({ "i": { "name": "B", "slug": "b" } }),
        )
        .await;
    let (code, err) = app
        .err(
            &app.a.admin,
            "mutation($i: ForumThreadCreateInput!) { createForumThread(input: $i) { id } }",
            json!({ "i": { "categoryId": foreign["createForumCategory"]["id"], "title": "t", "slug": "t" } }),
        )
        .await;
    assert_eq!(code, "BAD_USER_INPUT");
    assert_eq!(err["extensions"]["field"], json!("categoryId"));
    let text = err.to_string();
    assert!(
        !text.contains("fkey") && !text.contains("violates"),
        "SQL leaked: {text}"
    );
}

#[tokio::test]
async fn unique_keys_conflict_and_upsert_uses_them() {
    let app = TestApp::new().await;
    app.ok(
        &app.a.admin,
        CREATE_CATEGORY,
        json!({ "i": { "name": "News", "slug": "news" } }),
    )
    .await;
    let (code, err) = app
        .err(
            &app.a.admin,
            CREATE_CATEGORY,
            json!({ "i": { "name": "Other", "slug": "news" } }),
        )
        .await;
    assert_eq!(code, "CONFLICT");
    assert!(
        err["message"].as_str().unwrap_or("").contains("slug"),
        "{err}"
    );
    // Unique per tenant: tenant B may use the same slug.
    app.ok(
        &app.b.admin,
        CREATE_CATEGORY,
        json!({ "i": { "name": "News", "slug": "news" } }),
    )
    .await;

    let upsert = "mutation($c: TagCreateInput!, $u: TagUpdateInput) {
        upsertTag(onConflict: SLUG, create: $c, update: $u) { id name color }
    }";
    let first = app
        .ok(
            &app.a.admin,
            upsert,
            json!({ "c": { "name": "Rust", "slug": "rust" } }),
        )
        .await;
    let second = app
        .ok(
            &app.a.admin,
            upsert,
            json!({ "c": { "name": "Rust", "slug": "rust" }, "u": { "color": "#b7410e" } }),
        )
        .await;
    assert_eq!(first["upsertTag"]["id"], second["upsertTag"]["id"]);
    assert_eq!(second["upsertTag"]["color"], json!("#b7410e"));
    assert_eq!(app.count_rows("tags").await, 1);
}

#[tokio::test]
async fn nullable_fields_can_be_cleared_and_required_ones_cannot() {
    let app = TestApp::new().await;
    let made = app
        .ok(
            &app.a.admin,
            CREATE_CATEGORY,
            json!({ "i": { "name": "News", "slug": "news", "description": "d" } }),
        )
        .await;
    let id = made["createForumCategory"]["id"].clone();
    let update = "mutation($id: ID!, $i: ForumCategoryUpdateInput!) {
        updateForumCategory(id: $id, input: $i) { name description }
    }";
    let d = app
        .ok(
            &app.a.admin,
            update,
            json!({ "id": id, "i": { "description": null } }),
        )
        .await;
    assert_eq!(d["updateForumCategory"]["description"], json!(null));
    assert_eq!(d["updateForumCategory"]["name"], json!("News"));
    let (code, err) = app
        .err(
            &app.a.admin,
            update,
            json!({ "id": id, "i": { "name": null } }),
        )
        .await;
    assert_eq!(code, "BAD_USER_INPUT");
    assert_eq!(err["extensions"]["field"], json!("input.name"));
    let (code, _) = app
        .err(
            &app.a.admin,
            update,
            json!({ "id": uuid::Uuid::now_v7(), "i": { "name": "x" } }),
        )
        .await;
    assert_eq!(code, "NOT_FOUND");
}

#[tokio::test]
async fn stale_versions_conflict() {
    let app = TestApp::new().await;
    let made = app
        .ok(
            &app.a.admin,
            "mutation($i: WorkflowCreateInput!) { createWorkflow(input: $i) { id version } }",
            json!({ "i": { "name": "wf" } }),
        )
        .await;
    let id = made["createWorkflow"]["id"].clone();
    assert_eq!(made["createWorkflow"]["version"], json!(1));
    let update = "mutation($id: ID!, $v: Int) {
        updateWorkflow(id: $id, input: {name: \"wf2\"}, expectedVersion: $v) { version name }
    }";
    let d = app
        .ok(&app.a.admin, update, json!({ "id": id, "v": 1 }))
        .await;
    assert_eq!(d["updateWorkflow"]["version"], json!(2));
    let (code, err) = app
        .err(&app.a.admin, update, json!({ "id": id, "v": 1 }))
        .await;
    assert_eq!(code, "CONFLICT");
    assert_eq!(err["extensions"]["field"], json!("expectedVersion"));
    // Without expectedVersion the update applies and still bumps the version.
    let d = app
        .ok(&app.a.admin, update, json!({ "id": id, "v": null }))
        .await;
    assert_eq!(d["updateWorkflow"]["version"], json!(3));
}

#[tokio::test]
async fn failed_mutations_change_nothing_and_bulk_operations_are_atomic() {
    let app = TestApp::new().await;
    let audit_before = app.count_rows("audit_logs").await;
    // The second row conflicts with the first: neither is stored, no audit row is written.
    let (code, _) = app
        .err(
            &app.a.admin,
            "mutation($i: [TagCreateInput!]!) { createTags(inputs: $i) { id } }",
            json!({ "i": [{ "name": "a", "slug": "same" }, { "name": "b", "slug": "same" }] }),
        )
        .await;
    assert_eq!(code, "CONFLICT");
    assert_eq!(app.count_rows("tags").await, 0);
    assert_eq!(app.count_rows("audit_logs").await, audit_before);

    app.ok(
        &app.a.admin,
        "mutation($i: [TagCreateInput!]!) { createTags(inputs: $i) { id } }",
        json!({ "i": [{ "name": "a", "slug": "a" }, { "name": "b", "slug": "b" }, { "name": "c", "slug": "c" }] }),
    )
    .await;
    // A bulk update that would break a unique key on the second row leaves all rows alone.
    let (code, _) = app
        .err(
            &app.a.admin,
            "mutation { updateTags(where: {slug: {in: [\"a\", \"b\"]}}, input: {slug: \"z\"}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code, "CONFLICT");
    let d = app
        .ok(
            &app.a.admin,
            "{ tags(where: {slug: {equals: \"z\"}}) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(d["tags"]["totalCount"], json!(0));

    let d = app
        .ok(
            &app.a.admin,
            "mutation { updateTags(where: {slug: {in: [\"a\", \"b\"]}}, input: {color: \"red\"}) { slug color } }",
            json!({}),
        )
        .await;
    assert_eq!(d["updateTags"].as_array().map(Vec::len), Some(2));
    // Bulk operations of tenant B never reach tenant A's rows.
    let d = app
        .ok(
            &app.b.admin,
            "mutation { deleteTags(where: {}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(d["deleteTags"], json!([]));
    let d = app
        .ok(
            &app.a.admin,
            "mutation { deleteTags(where: {color: {equals: \"red\"}}) { slug } }",
            json!({}),
        )
        .await;
    assert_eq!(d["deleteTags"].as_array().map(Vec::len), Some(2));
    assert_eq!(app.count_rows("tags").await, 1);
}

#[tokio::test]
async fn every_mutation_writes_audit_rows_in_its_transaction() {
    let app = TestApp::new().await;
    let made = app
        .ok(
            &app.a.admin,
            CREATE_CATEGORY,
            json!({ "i": { "name": "News", "slug": "news" } }),
        )
        .await;
    let id = made["createForumCategory"]["id"]
        .as_str()
        .unwrap_or("")
        .to_string();
    app.ok(
        &app.a.admin,
        "mutation($id: ID!) { updateForumCategory(id: $id, input: {name: \"Latest\"}) { id } }",
        json!({ "id": id }),
    )
    .await;
    app.ok(
        &app.a.admin,
        "mutation($id: ID!) { deleteForumCategory(id: $id) { id } }",
        json!({ "id": id }),
    )
    .await;
    let d = app
        .ok(
            &app.a.admin,
            "query($id: ID!) { auditLogs(where: {entityId: {equals: $id}}, orderBy: [{createdAt: ASC}]) {
                nodes { action entity entityId actorId actorType oldValue newValue }
            } }",
            json!({ "id": id }),
        )
        .await;
    let rows = d["auditLogs"]["nodes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let actions: Vec<_> = rows
        .iter()
        .map(|r| r["action"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(actions, ["CREATE", "UPDATE", "DELETE"]);
    assert!(rows.iter().all(|r| r["entity"] == json!("ForumCategory")));
    assert!(rows
        .iter()
        .all(|r| r["actorId"] == json!(app.a.admin_id.to_string())));
    assert_eq!(rows[0]["oldValue"], json!(null));
    assert_eq!(rows[1]["oldValue"]["name"], json!("News"));
    assert_eq!(rows[1]["newValue"]["name"], json!("Latest"));
    assert_eq!(rows[2]["newValue"], json!(null));

    // The audit log is read-only through the API and invisible to other tenants and to users.
    let other = app
        .ok(
            &app.b.admin,
            "query($id: ID!) { auditLogs(where: {entityId: {equals: $id}}) { totalCount } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(other["auditLogs"]["totalCount"], json!(0));
    let user = app
        .ok(&app.a.user, "{ auditLogs { totalCount } }", json!({}))
        .await;
    assert_eq!(user["auditLogs"]["totalCount"], json!(0));
    let (code, _) = app
        .err(
            &app.a.admin,
            "mutation { deleteAuditLogs(where: {}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code, "GRAPHQL_VALIDATION_FAILED");
}

#[tokio::test]
async fn roles_limit_what_users_may_change() {
    let app = TestApp::new().await;
    // Only admins create feature flags.
    let q = "mutation { createFeatureFlag(input: {key: \"x\"}) { id } }";
    let (code, _) = app.err(&app.a.user, q, json!({})).await;
    assert_eq!(code, "FORBIDDEN");
    app.ok(&app.a.admin, q, json!({})).await;
    // A user's own notifications only.
    app.ok(
        &app.a.admin,
        "mutation($i: [NotificationCreateInput!]!) { createNotifications(inputs: $i) { id } }",
        json!({ "i": [
            { "userId": app.a.user_id, "title": "mine", "message": "m" },
            { "userId": app.a.admin_id, "title": "admin's", "message": "m" },
        ]}),
    )
    .await;
    let d = app
        .ok(
            &app.a.user,
            "{ notifications { nodes { title } } }",
            json!({}),
        )
        .await;
    assert_eq!(d["notifications"]["nodes"], json!([{ "title": "mine" }]));
}
