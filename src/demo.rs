//! Sample data for a new demo tenant, created through the GraphQL schema itself (as its admin),
//! so the demo exercises the same code paths, checks and audit rows as any client.

use async_graphql::Variables;
use serde_json::{json, Value as Json};
use uuid::Uuid;

use crate::auth::{RequestContext, Role};
use crate::graphql::GatewaySchema;

/// Runs one mutation as the admin and returns its `data`, or the errors as text.
async fn run(
    schema: &GatewaySchema,
    rc: &RequestContext,
    query: &str,
    vars: Json,
) -> Result<Json, String> {
    let Some(db) = schema.db() else {
        return Err("demo data: the schema has no database".into());
    };
    let req = async_graphql::Request::new(query).variables(Variables::from_json(vars));
    let req = crate::graphql::with_caller(req, db, rc.clone());
    let res = schema.execute(req).await;
    if !res.errors.is_empty() {
        let msgs: Vec<String> = res.errors.iter().map(|e| e.message.clone()).collect();
        return Err(format!("demo data: {}", msgs.join("; ")));
    }
    res.data.into_json().map_err(|e| e.to_string())
}

fn id_at(data: &Json, pointer: &str) -> Result<String, String> {
    data.pointer(pointer)
        .and_then(Json::as_str)
        .map(str::to_string)
        .ok_or_else(|| format!("demo data: no id at {pointer}"))
}

/// Seeds forums, workflows, notifications, a course, a chat room, tasks and configuration.
pub async fn seed(schema: &GatewaySchema, tenant_id: Uuid, admin_id: Uuid) -> Result<(), String> {
    let rc = RequestContext {
        user_agent: Some("gateway demo seed".into()),
        ..RequestContext::new(tenant_id, admin_id, Role::Admin)
    };
    let admin = admin_id.to_string();
    // Authors are stamped from the caller: each user writes their own posts.
    let acting = |user: &str| -> Result<RequestContext, String> {
        let user_id = Uuid::parse_str(user).map_err(|e| format!("demo data: {e}"))?;
        Ok(RequestContext {
            user_id,
            role: Role::User,
            ..rc.clone()
        })
    };

    let users = run(
        schema,
        &rc,
        "mutation($inputs: [UserCreateInput!]!) { createUsers(inputs: $inputs) { id } }",
        json!({ "inputs": [
            { "email": "ada@demo.example", "name": "Ada Lovelace", "username": "ada" },
            { "email": "alan@demo.example", "name": "Alan Turing", "username": "alan" },
        ]}),
    )
    .await?;
    let ada = id_at(&users, "/createUsers/0/id")?;
    let alan = id_at(&users, "/createUsers/1/id")?;

    let forum = run(
        schema,
        &rc,
        "mutation($cat: ForumCategoryCreateInput!) { createForumCategory(input: $cat) { id } }",
        json!({ "cat": { "name": "News", "slug": "news", "description": "Announcements" } }),
    )
    .await?;
    let category = id_at(&forum, "/createForumCategory/id")?;
    let (as_ada, as_alan) = (acting(&ada)?, acting(&alan)?);
    let thread = run(
        schema,
        &as_ada,
        "mutation($t: ForumThreadCreateInput!) { createForumThread(input: $t) { id } }",
        json!({ "t": { "categoryId": category, "title": "Welcome to the gateway", "slug": "welcome" } }),
    )
    .await?;
    let thread = id_at(&thread, "/createForumThread/id")?;
    let post = "mutation($p: ForumPostCreateInput!) { createForumPost(input: $p) { id } }";
    run(
        schema,
        &as_ada,
        post,
        json!({ "p": { "threadId": thread, "content": "Every entity of the catalog is served here." } }),
    )
    .await?;
    run(
        schema,
        &as_alan,
        post,
        json!({ "p": { "threadId": thread, "content": "Try forumThreads(where: {title: {contains: \"gateway\"}})." } }),
    )
    .await?;

    let wf = run(
        schema,
        &rc,
        "mutation($w: WorkflowCreateInput!) { createWorkflow(input: $w) { id } }",
        json!({ "w": {
            "name": "Onboarding", "description": "Welcome new users",
            "nodes": [{ "id": "start", "type": "trigger" }, { "id": "mail", "type": "email" }],
            "edges": [{ "from": "start", "to": "mail" }], "tags": ["demo", "onboarding"]
        }}),
    )
    .await?;
    let workflow = id_at(&wf, "/createWorkflow/id")?;
    let exec = run(
        schema,
        &rc,
        "mutation($e: WorkflowExecutionCreateInput!) { createWorkflowExecution(input: $e) { id } }",
        json!({ "e": { "workflowId": workflow, "input": { "user": "ada" } } }),
    )
    .await?;
    let execution = id_at(&exec, "/createWorkflowExecution/id")?;
    run(
        schema,
        &rc,
        "mutation($n: [NodeExecutionCreateInput!]!) { createNodeExecutions(inputs: $n) { id } }",
        json!({ "n": [
            { "executionId": execution, "nodeId": "start" },
            { "executionId": execution, "nodeId": "mail" },
        ]}),
    )
    .await?;

    run(
        schema,
        &rc,
        "mutation($n: [NotificationCreateInput!]!) { createNotifications(inputs: $n) { id } }",
        json!({ "n": [
            { "userId": admin, "title": "Welcome", "message": "Your demo tenant is ready." },
            { "userId": ada, "title": "New reply", "message": "Alan replied to your thread.", "type": "REPLY" },
        ]}),
    )
    .await?;

    let course = run(
        schema,
        &rc,
        "mutation($c: CourseCreateInput!) { createCourse(input: $c) { id } }",
        json!({ "c": { "title": "GraphQL basics", "slug": "graphql-basics", "instructorId": alan } }),
    )
    .await?;
    let course = id_at(&course, "/createCourse/id")?;
    let module = run(
        schema,
        &rc,
        "mutation($m: CourseModuleCreateInput!) { createCourseModule(input: $m) { id } }",
        json!({ "m": { "courseId": course, "title": "Queries" } }),
    )
    .await?;
    let module = id_at(&module, "/createCourseModule/id")?;
    run(
        schema,
        &rc,
        "mutation($l: [LessonCreateInput!]!) { createLessons(inputs: $l) { id } }",
        json!({ "l": [
            { "moduleId": module, "title": "Fields and arguments", "sortOrder": 1 },
            { "moduleId": module, "title": "Filtering and paging", "sortOrder": 2 },
        ]}),
    )
    .await?;

    let room = run(
        schema,
        &rc,
        "mutation($r: ChatRoomCreateInput!) { createChatRoom(input: $r) { id } }",
        json!({ "r": { "name": "General", "slug": "general", "topic": "Say hello" } }),
    )
    .await?;
    let room = id_at(&room, "/createChatRoom/id")?;
    run(
        schema,
        &as_ada,
        "mutation($m: ChatMessageCreateInput!) { createChatMessage(input: $m) { id } }",
        json!({ "m": { "roomId": room, "body": "Hello, world!" } }),
    )
    .await?;

    let group = run(
        schema,
        &rc,
        "mutation($g: GroupCreateInput!) { createGroup(input: $g) { id } }",
        json!({ "g": { "name": "Support", "slug": "support" } }),
    )
    .await?;
    let group = id_at(&group, "/createGroup/id")?;
    run(
        schema,
        &rc,
        "mutation($t: NewTaskInput!) { createTask(input: $t) { id } }",
        json!({ "t": { "title": "Review the first thread", "assignTo": { "groupId": group }, "formSchema": { "type": "object" } } }),
    )
    .await?;

    run(
        schema,
        &rc,
        "mutation($f: FeatureFlagCreateInput!, $t: [TagCreateInput!]!) {
            createFeatureFlag(input: $f) { id }
            createTags(inputs: $t) { id }
        }",
        json!({
            "f": { "key": "new-editor", "enabled": true, "rolloutPercent": 50 },
            "t": [{ "name": "Demo", "slug": "demo", "color": "#3366ff" }],
        }),
    )
    .await?;
    Ok(())
}
