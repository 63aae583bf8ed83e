//! Human tasks (seed 003) and system notifications: assignment by group strategy, claims under
//! concurrency, completion with form validation, the SLA sweeper on two instances, and the
//! notifications each step sends, live.

use std::time::Duration;

use serde_json::{json, Value as Json};
use uuid::Uuid;

use crate::harness::TestApp;
use crate::subscriptions::{acked, recv, send};

async fn group(app: &TestApp, slug: &str, strategy: &str, members: &[Uuid]) -> String {
    let g = app
        .ok(
            &app.a.admin,
            "mutation($s: String!, $st: AssignmentStrategy!) { createGroup(input: {name: $s, slug: $s, assignmentStrategy: $st}) { id } }",
            json!({ "s": slug, "st": strategy }),
        )
        .await["createGroup"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    for m in members {
        app.ok(
            &app.a.admin,
            "mutation($g: ID!, $u: ID!) { createGroupMember(input: {groupId: $g, userId: $u}) { id } }",
            json!({ "g": g, "u": m }),
        )
        .await;
    }
    g
}

const CREATE: &str = "mutation($i: NewTaskInput!) { createTask(input: $i) { id status assignedUserId assignedGroupId slaDeadline } }";

async fn create(app: &TestApp, input: Json) -> Json {
    app.ok(&app.a.admin, CREATE, json!({ "i": input })).await["createTask"].clone()
}

const CLAIM: &str = "mutation($id: ID!) { claimTask(id: $id) { id status claimedById } }";

#[tokio::test]
async fn groups_assign_by_strategy_and_one_claim_wins() {
    let app = TestApp::new().await;
    let (u1, t1) = app.new_user("one").await;
    let (u2, t2) = app.new_user("two").await;
    let (u3, t3) = app.new_user("three").await;
    let rr = group(&app, "round", "ROUND_ROBIN", &[u1, u2, u3]).await;
    let lb = group(&app, "balanced", "LOAD_BALANCED", &[u1, u2]).await;
    let manual = group(&app, "manual", "MANUAL", &[u1, u3]).await;

    // Round robin: in joining order, then around again.
    let mut picked = Vec::new();
    for i in 0..4 {
        let t = create(
            &app,
            json!({ "title": format!("rr {i}"), "assignTo": { "groupId": rr } }),
        )
        .await;
        assert_eq!(t["status"], "ASSIGNED", "{t}");
        assert_eq!(t["assignedGroupId"], json!(rr));
        picked.push(t["assignedUserId"].as_str().unwrap_or_default().to_string());
    }
    let ids = |us: &[Uuid]| us.iter().map(Uuid::to_string).collect::<Vec<_>>();
    assert_eq!(picked, ids(&[u1, u2, u3, u1]));

    // Load balanced: the member with the fewest open tasks (u1 has 2, u2 1), then the tie
    // goes to the earlier member.
    let t = create(
        &app,
        json!({ "title": "lb 1", "assignTo": { "groupId": lb } }),
    )
    .await;
    assert_eq!(t["assignedUserId"], json!(u2.to_string()));
    let t = create(
        &app,
        json!({ "title": "lb 2", "assignTo": { "groupId": lb } }),
    )
    .await;
    assert_eq!(t["assignedUserId"], json!(u1.to_string()));

    // Manual: nobody is picked; a member claims. Of two claims at once, one wins.
    let open = create(
        &app,
        json!({ "title": "manual", "assignTo": { "groupId": manual }, "slaMinutes": 5 }),
    )
    .await;
    assert_eq!(open["status"], "CREATED");
    assert!(open["assignedUserId"].is_null());
    let id = open["id"].as_str().unwrap_or_default().to_string();
    let not_member = app.gql(&t2, CLAIM, json!({ "id": id })).await;
    assert_eq!(
        not_member["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{not_member}"
    );
    let elsewhere = app.gql(&app.b.user, CLAIM, json!({ "id": id })).await;
    assert_eq!(
        elsewhere["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{elsewhere}"
    );
    let (a, b) = tokio::join!(
        app.gql(&t1, CLAIM, json!({ "id": id })),
        app.gql(&t3, CLAIM, json!({ "id": id }))
    );
    let won: Vec<&Json> = [&a, &b]
        .into_iter()
        .filter(|r| r.get("errors").is_none())
        .collect();
    let lost: Vec<&Json> = [&a, &b]
        .into_iter()
        .filter(|r| r.get("errors").is_some())
        .collect();
    assert_eq!(won.len(), 1, "{a} {b}");
    assert_eq!(lost[0]["errors"][0]["extensions"]["code"], "CONFLICT");
    assert_eq!(won[0]["data"]["claimTask"]["status"], "CLAIMED");
    let claimant = won[0]["data"]["claimTask"]["claimedById"].clone();

    // Unclaimed by its claimant, it waits in the group again; then u3 claims it.
    let claimant_token = if claimant == json!(u1.to_string()) {
        &t1
    } else {
        &t3
    };
    let back = app
        .ok(
            claimant_token,
            "mutation($id: ID!) { unclaimTask(id: $id) { status claimedById } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(back["unclaimTask"]["status"], "CREATED");
    app.ok(&t3, CLAIM, json!({ "id": id })).await;

    // u3's pending tasks: the claimed one (deadline first) and its round-robin one.
    let pending = app
        .ok(&t3, "{ myPendingTasks { title status } }", json!({}))
        .await;
    let titles: Vec<&str> = pending["myPendingTasks"]
        .as_array()
        .map(|l| l.iter().filter_map(|t| t["title"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(titles, ["manual", "rr 2"], "{pending}");

    // Every transition is in the history.
    let history = app
        .ok(
            &app.a.admin,
            "query($id: ID!) { task(id: $id) { history(orderBy: [{createdAt: ASC}]) { nodes { action actorType } } } }",
            json!({ "id": id }),
        )
        .await;
    let actions: Vec<&str> = history["task"]["history"]["nodes"]
        .as_array()
        .map(|l| l.iter().filter_map(|h| h["action"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        actions,
        ["created", "assigned", "claimed", "unclaimed", "claimed"]
    );

    // Only admins create and reassign; the generic mutations cannot assign.
    let denied = app
        .gql(&t1, CREATE, json!({ "i": { "title": "mine" } }))
        .await;
    assert_eq!(denied["errors"][0]["extensions"]["code"], "FORBIDDEN");
    let reassigned = app
        .ok(
            &app.a.admin,
            "mutation($id: ID!, $u: ID!) { reassignTask(id: $id, assignTo: {userId: $u}) { status assignedUserId claimedById } }",
            json!({ "id": id, "u": u2 }),
        )
        .await;
    assert_eq!(reassigned["reassignTask"]["status"], "ASSIGNED");
    assert!(reassigned["reassignTask"]["claimedById"].is_null());
    let generic = app
        .gql(
            &app.a.admin,
            "mutation($id: ID!, $u: ID!) { updateTask(id: $id, input: {assignedUserId: $u}) { id } }",
            json!({ "id": id, "u": u1 }),
        )
        .await;
    assert!(generic.get("errors").is_some(), "{generic}");
    let cross = app
        .gql(
            &app.a.admin,
            CREATE,
            json!({ "i": { "title": "x", "assignTo": { "userId": app.b.user_id } } }),
        )
        .await;
    assert_eq!(
        cross["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{cross}"
    );
}

#[tokio::test]
async fn completing_checks_the_claimant_and_the_form() {
    let app = TestApp::new().await;
    let (_, other) = app.new_user("other").await;
    let schema = json!({
        "type": "object",
        "required": ["approved"],
        "properties": {
            "approved": { "type": "boolean" },
            "comment": { "type": "string", "maxLength": 10 }
        }
    });
    let bad_schema = app
        .gql(
            &app.a.admin,
            CREATE,
            json!({ "i": { "title": "bad", "formSchema": { "type": 12 } } }),
        )
        .await;
    assert_eq!(
        bad_schema["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{bad_schema}"
    );
    let t = create(
        &app,
        json!({ "title": "approve", "formSchema": schema, "assignTo": { "userId": app.a.user_id } }),
    )
    .await;
    let id = t["id"].as_str().unwrap_or_default().to_string();
    let complete = "mutation($id: ID!, $d: JSON!) { completeTask(id: $id, formData: $d) { status formData completedById completedAt } }";
    // Not claimed yet, and not by the one completing.
    let early = app
        .gql(
            &app.a.user,
            complete,
            json!({ "id": id, "d": { "approved": true } }),
        )
        .await;
    assert_eq!(
        early["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{early}"
    );
    app.ok(&app.a.user, CLAIM, json!({ "id": id })).await;
    let stranger = app
        .gql(
            &other,
            complete,
            json!({ "id": id, "d": { "approved": true } }),
        )
        .await;
    assert_eq!(stranger["errors"][0]["extensions"]["code"], "FORBIDDEN");
    for bad in [
        json!({}),
        json!({ "approved": "yes" }),
        json!({ "approved": true, "comment": "far too long a comment" }),
    ] {
        let r = app
            .gql(&app.a.user, complete, json!({ "id": id, "d": bad }))
            .await;
        assert_eq!(
            r["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{bad}: {r}"
        );
        assert!(
            r["errors"][0]["message"]
                .as_str()
                .is_some_and(|m| m.contains("formData")),
            "{r}"
        );
    }
    let done = app
        .ok(
            &app.a.user,
            complete,
            json!({ "id": id, "d": { "approved": true, "comment": "ok" } }),
        )
        .await;
    assert_eq!(done["completeTask"]["status"], "COMPLETED");
    assert_eq!(
        done["completeTask"]["formData"],
        json!({ "approved": true, "comment": "ok" })
    );
    assert_eq!(
        done["completeTask"]["completedById"],
        json!(app.a.user_id.to_string())
    );
    let again = app
        .gql(
            &app.a.user,
            complete,
            json!({ "id": id, "d": { "approved": true } }),
        )
        .await;
    assert_eq!(again["errors"][0]["extensions"]["code"], "CONFLICT");
}

#[tokio::test]
async fn overdue_tasks_escalate_once_with_two_sweepers_and_notify_live() {
    let app = TestApp::new().await;
    let addr = app.listen().await;
    let mut inbox = acked(addr, &app.a.user).await;
    send(
        &mut inbox,
        json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription { myNotifications { op node { title type } } }" } }),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Assigned to the user: one notification each, live.
    let past = (chrono::Utc::now() - chrono::Duration::minutes(5)).to_rfc3339();
    let mut overdue = Vec::new();
    for i in 0..5 {
        let t = create(
            &app,
            json!({ "title": format!("late {i}"), "slaDeadline": past, "assignTo": { "userId": app.a.user_id } }),
        )
        .await;
        overdue.push(t["id"].as_str().unwrap_or_default().to_string());
    }
    create(
        &app,
        json!({ "title": "in time", "slaMinutes": 60, "assignTo": { "userId": app.a.user_id } }),
    )
    .await;
    let assigned = recv(&mut inbox, Duration::from_secs(10))
        .await
        .expect("a notification");
    assert_eq!(
        assigned["payload"]["data"]["myNotifications"]["node"]["title"], "Task assigned: late 0",
        "{assigned}"
    );
    for _ in 0..5 {
        recv(&mut inbox, Duration::from_secs(10))
            .await
            .expect("the others");
    }

    // Two instances sweep at once: each overdue task is escalated once.
    let (_, other_db) = app.instance_with_pool(2).await;
    let (a, b) = tokio::join!(
        gateway::domain::tasks::sweep_overdue(&app.db, 100),
        gateway::domain::tasks::sweep_overdue(&other_db, 100)
    );
    assert_eq!(a.expect("sweep a") + b.expect("sweep b"), 5);
    assert_eq!(
        gateway::domain::tasks::sweep_overdue(&app.db, 100)
            .await
            .ok(),
        Some(0)
    );
    assert_eq!(
        app.scalar("SELECT count(*)::text FROM tasks WHERE status = 'ESCALATED'")
            .await,
        "5"
    );
    assert_eq!(
        app.scalar("SELECT count(*)::text FROM task_histories WHERE action = 'escalated' AND actor_type = 'system'")
            .await,
        "5"
    );
    let escalated = recv(&mut inbox, Duration::from_secs(10))
        .await
        .expect("escalation notice");
    let node = &escalated["payload"]["data"]["myNotifications"]["node"];
    assert_eq!(node["type"], "WARNING", "{escalated}");
    assert!(node["title"]
        .as_str()
        .is_some_and(|t| t.starts_with("Task escalated: late")));

    // The user reads them all; another user's ids change nothing.
    let unread = "{ notifications(where: {read: {equals: false}}) { totalCount } }";
    assert_eq!(
        app.ok(&app.a.user, unread, json!({})).await["notifications"]["totalCount"],
        11
    );
    let none = app
        .ok(
            &app.b.user,
            "mutation { markNotificationsRead(all: true) }",
            json!({}),
        )
        .await;
    assert_eq!(none["markNotificationsRead"], 0);
    let marked = app
        .ok(
            &app.a.user,
            "mutation { markNotificationsRead(all: true) }",
            json!({}),
        )
        .await;
    assert_eq!(marked["markNotificationsRead"], 11);
    assert_eq!(
        app.ok(&app.a.user, unread, json!({})).await["notifications"]["totalCount"],
        0
    );

    // Expired notifications are removed by the sweep.
    {
        use diesel_async::SimpleAsyncConnection;
        let mut owner = app.owner().await;
        owner
            .batch_execute("UPDATE notifications SET expires_at = now() - interval '1 minute' WHERE title LIKE 'Task assigned%'")
            .await
            .expect("expire");
    }
    let removed = gateway::domain::notifications::sweep_expired(&app.db, 1000).await;
    assert_eq!(removed.map_err(|e| e.message()), Ok(6));
    let left = app
        .ok(&app.a.user, "{ notifications { totalCount } }", json!({}))
        .await;
    assert_eq!(left["notifications"]["totalCount"], 5);
}
