//! Planned subscriptions (`graphql::subscription`): the same `next` messages, byte for byte,
//! as the executor writes for the same events; one render per plan and event whatever the
//! number of subscribers; resumption, invalid documents, start errors and quotas as before.

use std::net::SocketAddr;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value as Json};
use tokio_tungstenite::tungstenite::Message;

use crate::harness::TestApp;
use crate::metrics::{sample, scrape};
use crate::subscriptions::{acked, send, Socket};

const WAIT: Duration = Duration::from_secs(10);
const QUIET: Duration = Duration::from_millis(700);

const COLUMNS: &str =
    "__typename id tenantId name description slug sortOrder parentId createdAt updatedAt";

/// Every column of the row and of the row before, `__typename` everywhere: planned.
fn planned() -> String {
    format!(
        "subscription($w: ForumCategoryWhere, $after: String) {{ forumCategoryChanged(where: $w, after: $after) {{ __typename op node {{ {COLUMNS} }} previous {{ {COLUMNS} }} cursor }} }}"
    )
}

/// The same selection with one response key given twice (merged by the executor): the plan
/// leaves it to the executor, which answers with the same values.
fn executed() -> String {
    planned().replace("__typename op node", "__typename op op node")
}

/// Fragments, an alias, defaulted variables in `@include`/`@skip`: planned too.
const FRAGMENTS: &str = "subscription($yes: Boolean = true, $no: Boolean = false) {
  changes: forumCategoryChanged(ops: [CREATED, UPDATED]) {
    ...C
    row: node @include(if: $yes) { ... on ForumCategory { id slug } sortOrder @skip(if: $no) }
    skipped: node @skip(if: $yes) { id }
  }
}
fragment C on ForumCategoryChange { op previous { __typename slug } }";

/// `FRAGMENTS` with a key given twice.
fn fragments_executed() -> String {
    FRAGMENTS.replace("{ op previous", "{ op op previous")
}

/// The next text message, as written (pings answered); `None` after `wait` of silence.
async fn recv_text(ws: &mut Socket, wait: Duration) -> Option<String> {
    loop {
        match tokio::time::timeout(wait, ws.next()).await {
            Err(_) => return None,
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: Json = serde_json::from_str(&t).expect("json message");
                if v["type"] == "ping" {
                    send(ws, json!({ "type": "pong" })).await;
                    continue;
                }
                return Some(t.to_string());
            }
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => {
                return Some("closed".into())
            }
            Ok(Some(Ok(_))) => continue,
        }
    }
}

async fn open(addr: SocketAddr, token: &str, query: &str, variables: Json) -> Socket {
    let mut ws = acked(addr, token).await;
    send(
        &mut ws,
        json!({ "id": "1", "type": "subscribe", "payload": { "query": query, "variables": variables } }),
    )
    .await;
    ws
}

/// Planned subscriptions started, renders, planned deliveries.
async fn counts(app: &TestApp) -> [f64; 3] {
    let (_, _, text) = app.send(scrape(Some("127.0.0.1"))).await;
    [
        "gateway_planned_subscriptions_total ",
        "gateway_subscription_renders_total ",
        "gateway_planned_deliveries_total ",
    ]
    .map(|m| sample(&text, m).unwrap_or(-1.0))
}

fn moved(before: [f64; 3], after: [f64; 3]) -> [f64; 3] {
    [0, 1, 2].map(|i| after[i] - before[i])
}

/// Lets the subscriptions join their feeds before anything happens.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn planned_subscriptions_write_what_the_executor_writes_and_render_once_per_plan() {
    let app = TestApp::new().await;
    let addr = app.listen().await;
    let admin = app.a.admin.clone();
    let c0 = counts(&app).await;
    let mut a = open(addr, &admin, &planned(), json!({})).await;
    let mut b = open(addr, &admin, &planned(), json!({})).await;
    let mut x = open(addr, &admin, &executed(), json!({})).await;
    let mut f = open(addr, &admin, FRAGMENTS, json!({})).await;
    let mut fx = open(addr, &admin, &fragments_executed(), json!({})).await;
    settle().await;
    let c1 = counts(&app).await;
    // `a`, `b` (one plan) and `f` run planned; `x` and `fx` through the executor.
    assert_eq!(moved(c0, c1), [3.0, 0.0, 0.0]);

    let id = app
        .ok(
            &admin,
            "mutation { createForumCategory(input: {name: \"Planned \\\"one\\\"\", slug: \"p1\", description: \"d\", sortOrder: 3}) { id } }",
            json!({}),
        )
        .await["createForumCategory"]["id"]
        .clone();
    app.ok(
        &admin,
        "mutation($id: ID!) { updateForumCategory(id: $id, input: {name: \"Renamed\", description: null}) { id } }",
        json!({ "id": id }),
    )
    .await;
    app.ok(
        &admin,
        "mutation($id: ID!) { deleteForumCategory(id: $id) { id } }",
        json!({ "id": id }),
    )
    .await;
    for op in ["CREATED", "UPDATED", "DELETED"] {
        let from_a = recv_text(&mut a, WAIT).await.expect("an event");
        let from_b = recv_text(&mut b, WAIT).await.expect("an event");
        let from_x = recv_text(&mut x, WAIT).await.expect("an event");
        assert!(from_x.contains(op), "{from_x}");
        assert!(
            from_x.starts_with("{\"id\":\"1\",\"type\":\"next\""),
            "{from_x}"
        );
        assert_eq!(from_a, from_x);
        assert_eq!(from_b, from_x);
        if op == "UPDATED" {
            let v: Json = serde_json::from_str(&from_a).expect("json");
            let change = &v["payload"]["data"]["forumCategoryChanged"];
            assert_eq!(change["previous"]["description"], json!("d"), "{v}");
            assert_eq!(change["node"]["description"], Json::Null, "{v}");
        }
        if op != "DELETED" {
            let from_f = recv_text(&mut f, WAIT).await.expect("an event");
            let from_fx = recv_text(&mut fx, WAIT).await.expect("an event");
            assert_eq!(from_f, from_fx);
            assert!(from_f.contains("\"changes\":{\"op\":"), "{from_f}");
        }
    }
    for ws in [&mut a, &mut b, &mut x, &mut f, &mut fx] {
        assert_eq!(recv_text(ws, QUIET).await, None);
    }
    let c2 = counts(&app).await;
    // Three events for the plan of `a` and `b`, two for `f`'s: one render each, however
    // many subscribers; a delivery per subscriber and event.
    assert_eq!(moved(c1, c2), [0.0, 5.0, 8.0]);
}

#[tokio::test]
async fn planned_subscriptions_resume_after_a_cursor_and_fail_to_start_as_before() {
    let app = TestApp::new().await;
    let addr = app.listen().await;
    let admin = app.a.admin.clone();
    let mut ws = open(addr, &admin, &planned(), json!({})).await;
    settle().await;
    for s in ["r1", "r2", "r3"] {
        app.ok(
            &admin,
            "mutation($s: String!) { createForumCategory(input: {name: $s, slug: $s}) { id } }",
            json!({ "s": s }),
        )
        .await;
    }
    let first = recv_text(&mut ws, WAIT).await.expect("an event");
    let rest = [
        recv_text(&mut ws, WAIT).await.expect("an event"),
        recv_text(&mut ws, WAIT).await.expect("an event"),
    ];
    drop(ws);
    let v: Json = serde_json::from_str(&first).expect("json");
    let cursor = v["payload"]["data"]["forumCategoryChanged"]["cursor"].clone();

    // Replayed from the cursor: planned and executed alike, the same bytes as live.
    for query in [planned(), executed()] {
        let before = counts(&app).await;
        let mut ws = open(addr, &admin, &query, json!({ "after": cursor })).await;
        assert_eq!(recv_text(&mut ws, WAIT).await.as_ref(), Some(&rest[0]));
        assert_eq!(recv_text(&mut ws, WAIT).await.as_ref(), Some(&rest[1]));
        assert_eq!(recv_text(&mut ws, QUIET).await, None);
        let planned_now = moved(before, counts(&app).await)[0];
        assert_eq!(planned_now, if query == planned() { 1.0 } else { 0.0 });
    }

    // Documents that do not validate, and subscriptions that cannot start, get the
    // executor's own answers: the same bytes as the unplanned document's.
    let cases: Vec<(String, Json)> = vec![
        (planned().replace("slug sortOrder", "slug nope"), json!({})),
        (planned(), json!({ "w": { "slug": { "equals": 5 } } })),
        (planned(), json!({ "after": "nope" })),
        (planned(), json!({ "after": "Y2hhbmdlOi0x" })),
        (planned(), json!({ "w": { "sortOrder": { "in": "x" } } })),
    ];
    for (query, vars) in cases {
        let before = counts(&app).await;
        let mut ws = open(addr, &admin, &query, vars.clone()).await;
        let got = recv_text(&mut ws, WAIT)
            .await
            .unwrap_or_else(|| panic!("no answer to {query} {vars}"));
        // A key given twice after every error's location: the executor's own answer.
        let twin = query.replace(" cursor } }", " cursor cursor } }");
        assert_ne!(twin, query, "{query}");
        let mut ws = open(addr, &admin, &twin, vars.clone()).await;
        let want = recv_text(&mut ws, WAIT).await.expect("an answer");
        assert_eq!(got, want, "{query} {vars}");
        assert!(got.contains("error"), "{got}");
        assert_eq!(moved(before, counts(&app).await)[0], 0.0, "{query}");
    }

    // A role that may not read the entity: FORBIDDEN, as before.
    let query = "subscription { auditLogChanged { op op node { id } } }";
    let mut ws = open(addr, &app.a.user, query, json!({})).await;
    let want = recv_text(&mut ws, WAIT).await.expect("an answer");
    let mut ws = open(addr, &app.a.user, &query.replace("op op", "op"), json!({})).await;
    let got = recv_text(&mut ws, WAIT).await.expect("an answer");
    assert_eq!(got, want);
    assert!(got.contains("FORBIDDEN"), "{got}");
}

#[tokio::test]
async fn planned_subscriptions_count_against_the_quotas_while_they_live() {
    let app = TestApp::with_limits(gateway::config::Limits {
        max_subscriptions_per_user: 2,
        planned_reads: gateway::config::PlannedReads::Verify,
        ..gateway::config::Limits::default()
    })
    .await;
    let addr = app.listen().await;
    let admin = app.a.admin.clone();
    let mut ws = acked(addr, &admin).await;
    for id in ["1", "2", "3"] {
        send(
            &mut ws,
            json!({ "id": id, "type": "subscribe", "payload": { "query": planned() } }),
        )
        .await;
    }
    let m = recv_text(&mut ws, WAIT).await.expect("a refusal");
    let v: Json = serde_json::from_str(&m).expect("json");
    assert_eq!(v["id"], json!("3"), "{m}");
    assert_eq!(v["type"], json!("error"), "{m}");
    assert_eq!(
        v["payload"][0]["extensions"]["code"],
        json!("LIMIT_EXCEEDED"),
        "{m}"
    );
    // Ending one frees its slot.
    send(&mut ws, json!({ "id": "1", "type": "complete" })).await;
    settle().await;
    send(
        &mut ws,
        json!({ "id": "4", "type": "subscribe", "payload": { "query": planned() } }),
    )
    .await;
    assert_eq!(recv_text(&mut ws, QUIET).await, None);
    settle().await;
    app.ok(
        &admin,
        "mutation { createForumCategory(input: {name: \"q\", slug: \"q\"}) { id } }",
        json!({}),
    )
    .await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let m = recv_text(&mut ws, WAIT).await.expect("an event");
        let v: Json = serde_json::from_str(&m).expect("json");
        assert_eq!(v["type"], json!("next"), "{m}");
        ids.push(v["id"].as_str().unwrap_or_default().to_string());
    }
    ids.sort();
    assert_eq!(ids, vec!["2".to_string(), "4".to_string()]);
}
