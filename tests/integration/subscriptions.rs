//! Subscriptions over WebSocket (graphql-transport-ws) against a real listening server:
//! events of HTTP mutations in commit order, confined to the subscriber's tenant and filter,
//! nothing from rolled-back mutations, and resumption from a cursor without gap or duplicate.

use std::net::SocketAddr;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value as Json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::TestApp;

pub(crate) type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The upgrade request for `/graphql` offering `protocol` (none when empty).
fn upgrade_request(
    addr: SocketAddr,
    protocol: &str,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let mut req = format!("ws://{addr}/graphql")
        .into_client_request()
        .expect("request");
    if !protocol.is_empty() {
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", protocol.parse().expect("header"));
    }
    req
}

pub(crate) async fn connect(addr: SocketAddr, protocol: &str) -> Socket {
    let req = upgrade_request(addr, protocol);
    let (ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("connect");
    ws
}

pub(crate) async fn send(ws: &mut Socket, msg: Json) {
    ws.send(Message::Text(msg.to_string().into()))
        .await
        .expect("send");
}

/// The next protocol message, or None after `wait` of silence; a close frame as
/// `{"close": code}`.
pub(crate) async fn recv(ws: &mut Socket, wait: Duration) -> Option<Json> {
    loop {
        match tokio::time::timeout(wait, ws.next()).await {
            Err(_) => return None,
            Ok(None) => return Some(json!({ "close": null })),
            Ok(Some(Err(_))) => return Some(json!({ "close": null })),
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: Json = serde_json::from_str(&t).expect("json message");
                if v["type"] == "ping" {
                    send(ws, json!({ "type": "pong" })).await;
                    continue;
                }
                return Some(v);
            }
            Ok(Some(Ok(Message::Close(frame)))) => {
                return Some(json!({ "close": frame.map(|f| u16::from(f.code)) }))
            }
            Ok(Some(Ok(_))) => continue,
        }
    }
}

const WAIT: Duration = Duration::from_secs(10);
const QUIET: Duration = Duration::from_millis(700);

/// A graphql-transport-ws connection of `token` with one subscription `query` as id "1".
async fn subscribe(addr: SocketAddr, token: &str, query: &str, variables: Json) -> Socket {
    let mut ws = acked(addr, token).await;
    send(
        &mut ws,
        json!({ "id": "1", "type": "subscribe", "payload": { "query": query, "variables": variables } }),
    )
    .await;
    ws
}

/// The payload of the next `next` message of subscription "1".
async fn next_event(ws: &mut Socket) -> Json {
    let m = recv(ws, WAIT).await.expect("an event in time");
    assert_eq!(m["type"], json!("next"), "{m}");
    assert_eq!(m["id"], json!("1"));
    assert!(m["payload"].get("errors").is_none(), "{m}");
    m["payload"]["data"].clone()
}

const CATEGORIES: &str = "subscription($w: ForumCategoryWhere, $after: String) {
  forumCategoryChanged(where: $w, after: $after) { op node { id slug } previous { slug } cursor }
}";

async fn create_category(app: &TestApp, token: &str, slug: &str) -> String {
    app.ok(
        token,
        "mutation($s: String!) { createForumCategory(input: {name: $s, slug: $s}) { id } }",
        json!({ "s": slug }),
    )
    .await["createForumCategory"]["id"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[tokio::test]
async fn events_follow_mutations_in_their_tenant_and_filter() {
    let app = TestApp::new().await;
    let addr = app.listen().await;
    let mut all = subscribe(addr, &app.a.admin, CATEGORIES, json!({})).await;
    let mut xs = subscribe(
        addr,
        &app.a.user,
        CATEGORIES,
        json!({ "w": { "slug": { "startsWith": "x" } } }),
    )
    .await;
    let mut other = subscribe(addr, &app.b.admin, CATEGORIES, json!({})).await;
    // Let the subscriptions start before the first mutation.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let x = create_category(&app, &app.a.admin, "x1").await;
    create_category(&app, &app.a.admin, "y1").await;
    app.ok(
        &app.a.admin,
        "mutation($id: ID!) { updateForumCategory(id: $id, input: {slug: \"x2\"}) { id } }",
        json!({ "id": x }),
    )
    .await;
    app.ok(
        &app.a.admin,
        "mutation($id: ID!) { deleteForumCategory(id: $id) { id } }",
        json!({ "id": x }),
    )
    .await;

    let mut seen = Vec::new();
    for _ in 0..4 {
        let e = next_event(&mut all).await;
        let c = &e["forumCategoryChanged"];
        seen.push((
            c["op"].as_str().unwrap_or("").to_string(),
            c["node"]["slug"].as_str().unwrap_or("").to_string(),
            c["previous"]["slug"].as_str().map(str::to_string),
        ));
    }
    assert_eq!(
        seen,
        vec![
            ("CREATED".into(), "x1".into(), None),
            ("CREATED".into(), "y1".into(), None),
            ("UPDATED".into(), "x2".into(), Some("x1".into())),
            ("DELETED".into(), "x2".into(), None),
        ]
    );
    // The filtered subscriber (a plain user: categories are readable by users) sees the
    // three changes of the row that matched, not y1.
    let mut ops = Vec::new();
    for _ in 0..3 {
        let e = next_event(&mut xs).await;
        ops.push(e["forumCategoryChanged"]["op"].clone());
    }
    assert_eq!(
        ops,
        vec![json!("CREATED"), json!("UPDATED"), json!("DELETED")]
    );
    assert_eq!(recv(&mut xs, QUIET).await, None);

    // Tenant B saw nothing of A, and does see its own.
    assert_eq!(recv(&mut other, QUIET).await, None);
    create_category(&app, &app.b.admin, "b1").await;
    let e = next_event(&mut other).await;
    assert_eq!(e["forumCategoryChanged"]["node"]["slug"], json!("b1"));
    assert_eq!(recv(&mut all, QUIET).await, None);
}

#[tokio::test]
async fn rolled_back_mutations_emit_nothing_and_cursors_resume_exactly() {
    let app = TestApp::new().await;
    let addr = app.listen().await;
    let mut ws = subscribe(addr, &app.a.admin, CATEGORIES, json!({})).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    // All or nothing: the second row breaks the unique slug, so neither is stored.
    create_category(&app, &app.a.admin, "first").await;
    let (code, _) = app
        .err(
            &app.a.admin,
            "mutation { createForumCategories(inputs: [{name: \"n\", slug: \"dup\"}, {name: \"n\", slug: \"first\"}]) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code, "CONFLICT");
    create_category(&app, &app.a.admin, "second").await;
    let first = next_event(&mut ws).await;
    let second = next_event(&mut ws).await;
    assert_eq!(
        first["forumCategoryChanged"]["node"]["slug"],
        json!("first")
    );
    assert_eq!(
        second["forumCategoryChanged"]["node"]["slug"],
        json!("second")
    );
    let cursor = second["forumCategoryChanged"]["cursor"].clone();
    drop(ws);

    // Missed while disconnected, then replayed from the cursor, then live.
    for s in ["m1", "m2", "m3"] {
        create_category(&app, &app.a.admin, s).await;
    }
    let mut ws = subscribe(addr, &app.a.admin, CATEGORIES, json!({ "after": cursor })).await;
    let mut got = Vec::new();
    for _ in 0..3 {
        let e = next_event(&mut ws).await;
        got.push(e["forumCategoryChanged"]["node"]["slug"].clone());
    }
    assert_eq!(got, vec![json!("m1"), json!("m2"), json!("m3")]);
    assert_eq!(recv(&mut ws, QUIET).await, None);
    create_category(&app, &app.a.admin, "live").await;
    let e = next_event(&mut ws).await;
    assert_eq!(e["forumCategoryChanged"]["node"]["slug"], json!("live"));

    // A cursor that is not one is refused.
    let mut bad = subscribe(addr, &app.a.admin, CATEGORIES, json!({ "after": "nope" })).await;
    let m = recv(&mut bad, WAIT).await.expect("an answer");
    let text = m.to_string();
    assert!(text.contains("BAD_USER_INPUT"), "{text}");
}

#[tokio::test]
async fn my_notifications_are_mine_only() {
    let app = TestApp::new().await;
    let addr = app.listen().await;
    let q = "subscription { myNotifications { op node { title read userId } } }";
    let mut user = subscribe(addr, &app.a.user, q, json!({})).await;
    let mut admin = subscribe(addr, &app.a.admin, q, json!({})).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let make = "mutation($u: ID!, $t: String!) { createNotification(input: {userId: $u, title: $t, message: \"m\"}) { id } }";
    app.ok(
        &app.a.admin,
        make,
        json!({ "u": app.a.admin_id, "t": "for admin" }),
    )
    .await;
    let mine = app
        .ok(
            &app.a.admin,
            make,
            json!({ "u": app.a.user_id, "t": "for user" }),
        )
        .await["createNotification"]["id"]
        .clone();
    app.ok(
        &app.a.user,
        "mutation($id: ID!) { updateNotification(id: $id, input: {read: true}) { id } }",
        json!({ "id": mine }),
    )
    .await;
    let e = next_event(&mut user).await;
    assert_eq!(e["myNotifications"]["node"]["title"], json!("for user"));
    assert_eq!(e["myNotifications"]["op"], json!("CREATED"));
    let e = next_event(&mut user).await;
    assert_eq!(e["myNotifications"]["op"], json!("UPDATED"));
    assert_eq!(e["myNotifications"]["node"]["read"], json!(true));
    assert_eq!(recv(&mut user, QUIET).await, None);
    // The admin's own notification stream has only the admin's.
    let e = next_event(&mut admin).await;
    assert_eq!(e["myNotifications"]["node"]["title"], json!("for admin"));
    assert_eq!(recv(&mut admin, QUIET).await, None);
}

#[tokio::test]
async fn connection_init_without_a_valid_token_is_refused() {
    let app = TestApp::new().await;
    let addr = app.listen().await;
    let mut ws = connect(addr, "graphql-transport-ws").await;
    send(
        &mut ws,
        json!({ "type": "connection_init", "payload": { "Authorization": "Bearer not-a-token" } }),
    )
    .await;
    let m = recv(&mut ws, WAIT).await.expect("an answer");
    assert_eq!(m, json!({ "close": 4403 }));
}

#[tokio::test]
async fn the_legacy_graphql_ws_protocol_works_too() {
    let app = TestApp::new().await;
    let addr = app.listen().await;
    let mut ws = connect(addr, "graphql-ws").await;
    init(&mut ws, &app.a.admin).await;
    send(
        &mut ws,
        json!({ "id": "7", "type": "start", "payload": { "query": CATEGORIES } }),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    create_category(&app, &app.a.admin, "legacy").await;
    let m = loop {
        let m = recv(&mut ws, WAIT).await.expect("data");
        // The legacy protocol keeps the connection alive with "ka" messages.
        if m["type"] != "ka" {
            break m;
        }
    };
    assert_eq!(m["type"], json!("data"), "{m}");
    assert_eq!(m["id"], json!("7"));
    assert_eq!(
        m["payload"]["data"]["forumCategoryChanged"]["node"]["slug"],
        json!("legacy")
    );
}

#[tokio::test]
async fn events_reach_subscribers_of_another_instance() {
    let app = TestApp::new().await;
    let other = app.second_instance().await;
    let mut ws = subscribe(other, &app.a.admin, CATEGORIES, json!({})).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The mutation goes through the first instance.
    create_category(&app, &app.a.admin, "elsewhere").await;
    let e = next_event(&mut ws).await;
    assert_eq!(
        e["forumCategoryChanged"]["node"]["slug"],
        json!("elsewhere")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_listener_catches_up_without_loss_or_duplicates() {
    let app = TestApp::new().await;
    let addr = app.listen().await;
    let mut ws = subscribe(
        addr,
        &app.a.admin,
        "subscription { forumCategoryChanged(ops: [CREATED]) { node { slug } } }",
        json!({}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Kill the change listener's connection again and again while the burst runs.
    let url = app.url.clone();
    let killer = tokio::spawn(async move {
        use diesel_async::{AsyncConnection, RunQueryDsl};
        let mut conn = gateway::db::Conn::establish(&url).await.expect("connect");
        let mut kills = 0;
        for _ in 0..8 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            kills += diesel::sql_query(format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE application_name = '{}' AND datname = current_database()",
                gateway::live::hub::LISTENER_NAME
            ))
            .execute(&mut conn)
            .await
            .expect("terminate");
        }
        kills
    });
    const N: usize = 1000;
    for i in 0..N {
        create_category(&app, &app.a.admin, &format!("s{i:04}")).await;
    }
    let kills = killer.await.expect("killer");
    assert!(kills > 0, "the listener was never killed");
    let mut got = Vec::with_capacity(N);
    while got.len() < N {
        let e = next_event(&mut ws).await;
        got.push(
            e["forumCategoryChanged"]["node"]["slug"]
                .as_str()
                .unwrap_or("")
                .to_string(),
        );
    }
    let want: Vec<String> = (0..N).map(|i| format!("s{i:04}")).collect();
    assert_eq!(got, want);
    assert_eq!(recv(&mut ws, QUIET).await, None);
}

#[tokio::test]
async fn only_allowed_origins_may_open_sockets() {
    let app = TestApp::new().await;
    let addr = app.listen().await;
    let handshake = |origin: &'static str| async move {
        let mut req = upgrade_request(addr, "graphql-transport-ws");
        req.headers_mut()
            .insert("Origin", origin.parse().expect("header"));
        match tokio_tungstenite::connect_async(req).await {
            Ok(_) => 101,
            Err(tokio_tungstenite::tungstenite::Error::Http(res)) => res.status().as_u16(),
            Err(e) => panic!("handshake: {e}"),
        }
    };
    assert_eq!(handshake("https://evil.example").await, 403);
    assert_eq!(handshake("https://app.example").await, 101);
    // The gateway's own GraphiQL page.
    let own: &'static str = Box::leak(format!("http://{addr}").into_boxed_str());
    assert_eq!(handshake(own).await, 101);
}

/// A graphql-transport-ws socket after `connection_init` and its ack.
pub(crate) async fn acked(addr: SocketAddr, token: &str) -> Socket {
    let mut ws = connect(addr, "graphql-transport-ws").await;
    init(&mut ws, token).await;
    ws
}

/// Sends `connection_init` with `token` (either protocol) and expects the ack.
pub(crate) async fn init(ws: &mut Socket, token: &str) {
    send(
        ws,
        json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } }),
    )
    .await;
    let ack = recv(ws, WAIT).await.expect("ack");
    assert_eq!(ack["type"], json!("connection_ack"), "{ack}");
}

#[tokio::test]
async fn protocol_violations_close_with_the_specified_codes() {
    let app = TestApp::with_limits(gateway::config::Limits {
        ws_init_timeout: Duration::from_millis(500),
        ..Default::default()
    })
    .await;
    let addr = app.listen().await;
    let sub =
        |id: &str| json!({ "id": id, "type": "subscribe", "payload": { "query": CATEGORIES } });

    // 4400: not a protocol message.
    let mut ws = acked(addr, &app.a.admin).await;
    ws.send(Message::Text("{not json".into()))
        .await
        .expect("send");
    assert_eq!(recv(&mut ws, WAIT).await, Some(json!({ "close": 4400 })));
    let mut ws = acked(addr, &app.a.admin).await;
    send(&mut ws, json!({ "type": "shout" })).await;
    assert_eq!(recv(&mut ws, WAIT).await, Some(json!({ "close": 4400 })));

    // 4401: subscribe before the ack.
    let mut ws = connect(addr, "graphql-transport-ws").await;
    send(&mut ws, sub("1")).await;
    assert_eq!(recv(&mut ws, WAIT).await, Some(json!({ "close": 4401 })));

    // 4408: no connection_init in time.
    let mut ws = connect(addr, "graphql-transport-ws").await;
    assert_eq!(recv(&mut ws, WAIT).await, Some(json!({ "close": 4408 })));

    // 4409: a second subscription under a live id.
    let mut ws = acked(addr, &app.a.admin).await;
    send(&mut ws, sub("same")).await;
    send(&mut ws, sub("same")).await;
    assert_eq!(recv(&mut ws, WAIT).await, Some(json!({ "close": 4409 })));

    // 4429: a second connection_init.
    let mut ws = acked(addr, &app.a.admin).await;
    send(
        &mut ws,
        json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {}", app.a.admin) } }),
    )
    .await;
    assert_eq!(recv(&mut ws, WAIT).await, Some(json!({ "close": 4429 })));

    // 4406: no subprotocol the server speaks.
    let mut ws = connect(addr, "").await;
    assert_eq!(recv(&mut ws, WAIT).await, Some(json!({ "close": 4406 })));
}

#[tokio::test]
async fn ping_errors_completion_caps_and_token_expiry() {
    let app = TestApp::new().await;
    let addr = app.listen().await;
    let mut ws = acked(addr, &app.a.admin).await;
    send(&mut ws, json!({ "type": "ping", "payload": { "n": 1 } })).await;
    assert_eq!(
        recv(&mut ws, WAIT).await,
        Some(json!({ "type": "pong", "payload": { "n": 1 } }))
    );
    // An operation that cannot run gets one `error` message, and the socket stays open.
    send(
        &mut ws,
        json!({ "id": "bad", "type": "subscribe", "payload": { "query": "subscription { nope }" } }),
    )
    .await;
    let m = recv(&mut ws, WAIT).await.expect("error");
    assert_eq!(m["type"], json!("error"), "{m}");
    assert_eq!(m["id"], json!("bad"));
    // A query over the socket runs once and completes.
    send(
        &mut ws,
        json!({ "id": "q", "type": "subscribe", "payload": { "query": "{ viewer { role } }" } }),
    )
    .await;
    let m = recv(&mut ws, WAIT).await.expect("next");
    assert_eq!(
        m["payload"]["data"]["viewer"]["role"],
        json!("admin"),
        "{m}"
    );
    assert_eq!(
        recv(&mut ws, WAIT).await,
        Some(json!({ "id": "q", "type": "complete" }))
    );
    // The id of a completed operation can be used again; `complete` from the client ends one.
    send(
        &mut ws,
        json!({ "id": "q", "type": "subscribe", "payload": { "query": CATEGORIES } }),
    )
    .await;
    send(&mut ws, json!({ "id": "q", "type": "complete" })).await;
    assert_eq!(recv(&mut ws, QUIET).await, None);

    // At most 100 subscriptions per socket.
    for i in 0..100 {
        send(&mut ws, json!({ "id": format!("s{i}"), "type": "subscribe", "payload": { "query": CATEGORIES } })).await;
    }
    send(
        &mut ws,
        json!({ "id": "extra", "type": "subscribe", "payload": { "query": CATEGORIES } }),
    )
    .await;
    let m = recv(&mut ws, WAIT).await.expect("limit error");
    assert_eq!(m["id"], json!("extra"), "{m}");
    assert_eq!(
        m["payload"][0]["extensions"]["code"],
        json!("LIMIT_EXCEEDED")
    );

    // The socket closes when its token expires.
    let short = app
        .keys
        .issue(app.a.id, app.a.user_id, gateway::auth::Role::User, 1)
        .expect("token");
    let mut ws = acked(addr, &short).await;
    assert_eq!(recv(&mut ws, WAIT).await, Some(json!({ "close": 4403 })));
}

#[tokio::test]
async fn draining_fails_readiness_refuses_upgrades_and_closes_sockets() {
    let app = TestApp::new().await;
    let addr = app.listen().await;
    let mut ws = subscribe(addr, &app.a.admin, CATEGORIES, json!({})).await;
    let mut legacy = connect(addr, "graphql-ws").await;
    init(&mut legacy, &app.a.admin).await;

    app.drain.send_replace(true);
    assert_eq!(recv(&mut ws, WAIT).await, Some(json!({ "close": 1001 })));
    // The legacy socket is closed the same way.
    let m = loop {
        let m = recv(&mut legacy, WAIT)
            .await
            .expect("end of the legacy socket");
        if m["type"] != "ka" {
            break m;
        }
    };
    assert_eq!(m, json!({ "close": 1001 }));

    let (status, _, _) = app
        .send(
            axum::http::Request::get("/readyz")
                .body(axum::body::Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(status, axum::http::StatusCode::SERVICE_UNAVAILABLE);
    let req = upgrade_request(addr, "graphql-transport-ws");
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
            assert_eq!(res.status().as_u16(), 503)
        }
        other => panic!("upgrade while draining: {:?}", other.map(|_| ())),
    }
}

/// Statements the pool ran while one change was made and every socket received its event,
/// and the event's cursor.
async fn statements_for_one_change(
    app: &TestApp,
    sockets: &mut [Socket],
    slug: &str,
) -> (u64, String) {
    app.db.settled().await;
    let before = app.db.statements();
    create_category(app, &app.a.admin, slug).await;
    let mut cursor = String::new();
    for ws in sockets.iter_mut() {
        let e = next_event(ws).await;
        assert_eq!(e["forumCategoryChanged"]["node"]["slug"], json!(slug));
        cursor = e["forumCategoryChanged"]["cursor"]
            .as_str()
            .unwrap_or("")
            .to_string();
    }
    app.db.settled().await;
    (app.db.statements() - before, cursor)
}

#[tokio::test]
async fn open_sockets_recheck_an_unchanged_credential_with_one_read_between_them() {
    // Rechecks every 1.125-1.5 s, a credential epoch read at most 0.5 s ago standing in.
    let app = TestApp::with_limits(gateway::config::Limits {
        ws_recheck: Duration::from_secs(2),
        ..Default::default()
    })
    .await;
    let addr = app.listen().await;
    let mut sockets = Vec::new();
    for _ in 0..20 {
        sockets.push(acked(addr, &app.a.user).await);
    }
    // By then every socket has rechecked at least once (the caller admitted).
    tokio::time::sleep(Duration::from_secs(3)).await;
    app.db.settled().await;
    let (statements, reused) = (app.db.statements(), app.db.admissions_reused());
    tokio::time::sleep(Duration::from_secs(4)).await;
    let statements = app.db.statements() - statements;
    let reused = app.db.admissions_reused() - reused;
    // Some 60 rechecks in 4 s: one statement each before, one epoch read per 0.5 s now.
    assert!(reused >= 40, "{reused} rechecks reused an admission");
    assert!(
        statements <= 12,
        "{statements} statements for {reused} rechecks"
    );
    // And every socket is still open.
    for ws in sockets.iter_mut() {
        send(ws, json!({ "type": "ping" })).await;
        let m = recv(ws, WAIT).await.expect("a pong");
        assert_eq!(m["type"], json!("pong"), "{m}");
    }
}

#[tokio::test]
async fn identical_subscriptions_share_one_read_per_change() {
    // Statements are counted: no socket may recheck its credential (a statement) meanwhile,
    // however slowly a loaded machine runs the test.
    let app = TestApp::with_limits(gateway::config::Limits {
        ws_recheck: Duration::from_secs(3600),
        ..Default::default()
    })
    .await;
    let addr = app.listen().await;
    // Long enough for a loaded machine to finish starting subscriptions and passing events
    // on (a late start reads the gap it missed: one statement more than counted).
    let settle = || tokio::time::sleep(Duration::from_millis(1000));
    let (mutation_only, _) = statements_for_one_change(&app, &mut [], "s0").await;
    // A subscription starts where this instance's hub is: let it pass s0 first.
    settle().await;

    let mut sockets = vec![subscribe(addr, &app.a.user, CATEGORIES, json!({})).await];
    // Counted only once every socket has received a change (uncounted): however late a
    // subscription started on a loaded machine, it has read any gap by then.
    statements_for_one_change(&app, &mut sockets, "sw1").await;
    let (one, s1) = statements_for_one_change(&app, &mut sockets, "s1").await;
    let read = one - mutation_only;
    assert!(read > 0, "a subscription reads its events");

    // Nineteen more, by callers allowed the same rows: still one read per change.
    for i in 0..19 {
        let token = if i % 2 == 0 {
            &app.a.admin
        } else {
            &app.a.user
        };
        sockets.push(subscribe(addr, token, CATEGORIES, json!({})).await);
    }
    statements_for_one_change(&app, &mut sockets, "sw2").await;
    assert_eq!(
        statements_for_one_change(&app, &mut sockets, "s2").await.0,
        one
    );

    // A different filter is a different statement: one more read.
    let filter = json!({ "w": { "slug": { "startsWith": "s" } } });
    sockets.push(subscribe(addr, &app.a.user, CATEGORIES, filter).await);
    statements_for_one_change(&app, &mut sockets, "sw3").await;
    let (mixed, _) = statements_for_one_change(&app, &mut sockets, "s3").await;
    assert_eq!(mixed, one + read);

    // Tenant B's identical subscription shares nothing with A's and sees none of it.
    let mut b = subscribe(addr, &app.b.user, CATEGORIES, json!({})).await;
    settle().await;
    statements_for_one_change(&app, &mut sockets, "s4").await;
    assert_eq!(recv(&mut b, QUIET).await, None);

    // Joining the shared feed with an older cursor: the missed events first (read from the
    // outbox), then live ones from the feed, each once.
    let mut late = subscribe(addr, &app.a.admin, CATEGORIES, json!({ "after": s1 })).await;
    for slug in ["sw2", "s2", "sw3", "s3", "s4"] {
        let e = next_event(&mut late).await;
        assert_eq!(e["forumCategoryChanged"]["node"]["slug"], json!(slug));
    }
    sockets.push(late);
    statements_for_one_change(&app, &mut sockets, "s5").await;
    for ws in sockets.iter_mut() {
        assert_eq!(recv(ws, QUIET).await, None);
    }
}

/// A socket whose client reads through a tiny receive buffer, so the server's writes to it
/// block as soon as the client stops reading.
async fn connect_small_buffer(addr: SocketAddr) -> Socket {
    let tcp = tokio::net::TcpSocket::new_v4().expect("socket");
    tcp.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let stream = tcp.connect(addr).await.expect("connect");
    let req = upgrade_request(addr, "graphql-transport-ws");
    let (ws, _) =
        tokio_tungstenite::client_async(req, tokio_tungstenite::MaybeTlsStream::Plain(stream))
            .await
            .expect("handshake");
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_closed_and_slows_no_one() {
    let app = TestApp::new().await;
    let addr = app.listen().await;
    let id = create_category(&app, &app.a.admin, "big").await;
    let query =
        "subscription { forumCategoryChanged(ops: [UPDATED]) { node { description } previous { description } } }";
    let mut slow = connect_small_buffer(addr).await;
    init(&mut slow, &app.a.user).await;
    send(
        &mut slow,
        json!({ "id": "1", "type": "subscribe", "payload": { "query": query } }),
    )
    .await;
    let mut fast = subscribe(addr, &app.a.user, query, json!({})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // 150 updates with 40 kB descriptions: ~12 MB of events, far beyond the socket buffers.
    const UPDATES: usize = 150;
    for i in 0..UPDATES {
        let text = format!("{i:03}").repeat(40_000 / 3);
        app.ok(
            &app.a.admin,
            "mutation($id: ID!, $d: String!) { updateForumCategory(id: $id, input: {description: $d}) { id } }",
            json!({ "id": id, "d": text }),
        )
        .await;
    }
    // The reader that keeps up receives everything, in order, while the other is stuck.
    for i in 0..UPDATES {
        let e = next_event(&mut fast).await;
        let d = e["forumCategoryChanged"]["node"]["description"]
            .as_str()
            .unwrap_or("");
        assert!(d.starts_with(&format!("{i:03}")), "event {i} out of order");
    }

    // Past the server's patience (5 s without progress), the stuck one has been dropped:
    // reading again yields what was in flight, then the end, never all 150 events.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let mut received = 0;
    let end = loop {
        match recv(&mut slow, WAIT).await {
            Some(m) if m["type"] == "next" => received += 1,
            Some(m) if m.get("close").is_some() => break m,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(
        received < UPDATES,
        "all {received} events were buffered for a stuck client"
    );
    // The close frame itself may not fit through the full buffer; when it does, it says why.
    assert!(
        end["close"] == json!(1008) || end["close"].is_null(),
        "{end}"
    );
}

#[tokio::test]
async fn the_legacy_protocol_keeps_the_same_limits() {
    let app = TestApp::with_limits(gateway::config::Limits {
        max_subscriptions_per_socket: 2,
        introspection: gateway::config::Exposure::Admins,
        ..Default::default()
    })
    .await;
    let addr = app.listen().await;
    let mut ws = connect(addr, "graphql-ws").await;
    init(&mut ws, &app.a.user).await;
    // The next message for operation `id`, past keep-alives.
    async fn answer(ws: &mut Socket, id: &str) -> Json {
        loop {
            let m = recv(ws, WAIT).await.expect("an answer");
            if m["type"] != "ka" && m["id"] == json!(id) {
                return m;
            }
        }
    }
    let start =
        |id: &str, query: &str| json!({ "id": id, "type": "start", "payload": { "query": query } });
    for id in ["1", "2"] {
        send(&mut ws, start(id, CATEGORIES)).await;
    }
    send(&mut ws, start("3", CATEGORIES)).await;
    let m = answer(&mut ws, "3").await;
    assert_eq!(m["type"], json!("data"), "{m}");
    assert_eq!(
        m["payload"]["errors"][0]["extensions"]["code"],
        json!("LIMIT_EXCEEDED"),
        "{m}"
    );
    // Stopping one makes room for another.
    send(&mut ws, json!({ "id": "1", "type": "stop" })).await;
    assert_eq!(answer(&mut ws, "1").await["type"], json!("complete"));
    send(&mut ws, start("4", CATEGORIES)).await;
    send(&mut ws, json!({ "id": "2", "type": "stop" })).await;
    assert_eq!(answer(&mut ws, "2").await["type"], json!("complete"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    create_category(&app, &app.a.admin, "room").await;
    let m = answer(&mut ws, "4").await;
    assert_eq!(
        m["payload"]["data"]["forumCategoryChanged"]["node"]["slug"],
        json!("room"),
        "{m}"
    );

    // Document limits and the introspection policy apply to queries sent this way too.
    let aliased: String = (0..16)
        .map(|i| format!("a{i}: forumCategories(first: 1) {{ totalCount }}"))
        .collect::<Vec<_>>()
        .join(" ");
    send(&mut ws, start("5", &format!("{{ {aliased} }}"))).await;
    let m = answer(&mut ws, "5").await;
    assert_eq!(
        m["payload"]["errors"][0]["extensions"]["code"],
        json!("LIMIT_EXCEEDED"),
        "{m}"
    );
    send(&mut ws, start("6", "{ __schema { types { name } } }")).await;
    let m = answer(&mut ws, "6").await;
    assert_eq!(
        m["payload"]["errors"][0]["extensions"]["code"],
        json!("FORBIDDEN"),
        "{m}"
    );
}
