//! Faults (issue 18): the database stopped and restarted under load, a restart while
//! subscribers are connected, a pool whose every connection is busy, and SIGTERM during a
//! burst of mutations.
//!
//! Tests that stop PostgreSQL never touch the shared test cluster: each starts a private
//! cluster of its own (with `log_connections`, so the server's log counts what reached it)
//! and runs the built `gateway serve` over it, as `cargo run -- serve` does.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use gateway::auth::Role;
use gateway::db::cluster::{ClusterOptions, PrivateCluster};
use http_body_util::BodyExt;
use serde_json::{json, Value as Json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tower::ServiceExt;

use crate::harness::{pool_settings, TestApp};
use crate::subscriptions::{acked, recv, send, Socket};

const BY_ID: &str = "query($id: ID!) { forumThread(id: $id) { id title } }";

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
}

/// How long the database stays away in the outage test (`FAULTS_OUTAGE_SECS`, 5).
fn outage() -> Duration {
    Duration::from_secs(
        std::env::var("FAULTS_OUTAGE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(5),
    )
}

/// `gateway serve` over a private cluster of its own, under `.data/faults/`.
struct Served {
    dir: PathBuf,
    opts: ClusterOptions,
    cluster: PrivateCluster,
    child: tokio::process::Child,
    addr: SocketAddr,
    /// The demo tenant's admin, as `serve` prints it.
    token: String,
    log: PathBuf,
    http: reqwest::Client,
}

impl Served {
    async fn start(name: &str) -> Served {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(".data/faults")
            .join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("fault test directory");
        let opts = ClusterOptions {
            unsafe_fast: true,
            max_connections: 100,
            log_connections: true,
            ..ClusterOptions::default()
        };
        let cluster = ensure(dir.join("postgres"), opts.clone()).await;
        let addr = free_addr();
        let log = dir.join("gateway.log");
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
            .arg("serve")
            .env("GATEWAY_DATA_DIR", &dir)
            .env("GATEWAY_BIND", addr.to_string())
            .env("GATEWAY_DB_POOL_SIZE", "8")
            .env("RUST_LOG", "info")
            .env_remove("DATABASE_URL")
            .env_remove("GATEWAY_OWNER_DATABASE_URL")
            .env_remove("GATEWAY_JWT_SECRET")
            .env_remove("GATEWAY_PACKAGES_DIR")
            .env_remove("GATEWAY_LOG_FORMAT")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .kill_on_drop(true)
            .spawn()
            .expect("start gateway");
        let stdout = child.stdout.take().expect("stdout");
        // Read to the end: a closed pipe would fail the gateway's next line of output.
        let (token_tx, token_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            let mut token_tx = Some(token_tx);
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some((_, rest)) = line.split_once("Bearer ") {
                    if let Some(tx) = token_tx.take() {
                        let _ = tx.send(rest.trim_end_matches(['"', '}']).to_string());
                    }
                }
            }
        });
        let token = tokio::time::timeout(Duration::from_secs(120), token_rx)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        assert!(
            !token.is_empty(),
            "gateway serve printed no token: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        Served {
            dir,
            opts,
            cluster,
            child,
            addr,
            token,
            log,
            http: reqwest::Client::new(),
        }
    }

    /// POSTs a GraphQL request: status, response document, time taken.
    async fn post(&self, query: &str, variables: Json) -> (u16, Json, Duration) {
        let started = Instant::now();
        let res = self
            .http
            .post(format!("http://{}/graphql", self.addr))
            .bearer_auth(&self.token)
            .header(header::CONTENT_TYPE, "application/json")
            .body(json!({ "query": query, "variables": variables }).to_string())
            .timeout(Duration::from_secs(30))
            .send()
            .await;
        match res {
            Ok(r) => {
                let status = r.status().as_u16();
                let text = r.text().await.unwrap_or_default();
                let body = serde_json::from_str(&text).unwrap_or(Json::Null);
                (status, body, started.elapsed())
            }
            Err(_) => (0, Json::Null, started.elapsed()),
        }
    }

    async fn get(&self, path: &str) -> (u16, String) {
        match self
            .http
            .get(format!("http://{}{path}", self.addr))
            .send()
            .await
        {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(_) => (0, String::new()),
        }
    }

    async fn metric(&self, name: &str) -> f64 {
        let (_, text) = self.get("/metrics").await;
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    }

    fn gateway_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Connections the server's log says it received.
    fn connections_received(&self) -> usize {
        std::fs::read_to_string(&self.cluster.log_file)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("connection received"))
            .count()
    }

    async fn stop_database(&self) {
        let cluster = self.cluster.clone();
        tokio::task::spawn_blocking(move || cluster.stop())
            .await
            .expect("stop task")
            .expect("pg_ctl stop");
    }

    /// Starts the cluster again, as `serve` would (its socket must be free at once).
    async fn start_database(&self) {
        let again = ensure(self.dir.join("postgres"), self.opts.clone()).await;
        assert!(again.started_here, "the cluster was still running");
    }

    fn assert_alive(&mut self) {
        assert!(
            matches!(self.child.try_wait(), Ok(None)),
            "the gateway exited: {}",
            self.gateway_log()
        );
        assert!(
            !self.gateway_log().contains("panicked"),
            "{}",
            self.gateway_log()
        );
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.cluster.stop();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

async fn ensure(dir: PathBuf, opts: ClusterOptions) -> PrivateCluster {
    tokio::task::spawn_blocking(move || PrivateCluster::ensure(&dir, &opts))
        .await
        .expect("cluster task")
        .expect("private cluster")
}

/// One answered request of the load: when it was sent, its status, how long it took.
type Sample = (Instant, u16, Duration);

#[tokio::test]
async fn a_database_outage_fails_fast_reconnects_gently_and_recovers_within_a_second() {
    let s = Served::start("outage").await;
    let (status, page, _) = s
        .post("{ forumThreads(first: 1) { nodes { id } } }", json!({}))
        .await;
    assert_eq!(status, 200, "{page}");
    let id = page["data"]["forumThreads"]["nodes"][0]["id"].clone();

    // 8 clients reading by id without pause, as wrk did.
    let s = Arc::new(tokio::sync::RwLock::new(s));
    let stop = Arc::new(AtomicBool::new(false));
    let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
    let mut load = Vec::new();
    for _ in 0..8 {
        let (s, stop, samples, id) = (s.clone(), stop.clone(), samples.clone(), id.clone());
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let sent = Instant::now();
                let (status, _, took) = s.read().await.post(BY_ID, json!({ "id": id })).await;
                if let Ok(mut v) = samples.lock() {
                    v.push((sent, status, took));
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    let g = s.read().await;
    let attempts_before = g.metric("gateway_db_connect_attempts_total").await;
    let lines_before = g.gateway_log().lines().count();
    g.stop_database().await;
    let down = Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Readiness follows the circuit; a request is refused at once, with Retry-After.
    assert_eq!(g.get("/readyz").await.0, 503);
    let res = g
        .http
        .post(format!("http://{}/graphql", g.addr))
        .bearer_auth(&g.token)
        .header(header::CONTENT_TYPE, "application/json")
        .body(json!({ "query": BY_ID, "variables": { "id": id } }).to_string())
        .send()
        .await
        .expect("answer during the outage");
    assert_eq!(res.status().as_u16(), 503);
    assert_eq!(
        res.headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let body: Json = serde_json::from_str(&res.text().await.expect("body")).expect("JSON");
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        json!("SERVICE_UNAVAILABLE")
    );
    tokio::time::sleep(outage().saturating_sub(Duration::from_millis(500))).await;
    let attempts = g.metric("gateway_db_connect_attempts_total").await - attempts_before;
    let lines = g.gateway_log().lines().count() - lines_before;
    let received_before = g.connections_received();

    // The outage ends when the restart begins: the server may accept connections before
    // `start_database` returns, and a request sent then may already be answered.
    let restarting = Instant::now();
    g.start_database().await;
    let up = Instant::now();
    let recovered = loop {
        let (status, _, _) = g.post(BY_ID, json!({ "id": id })).await;
        if status == 200 {
            break up.elapsed();
        }
        assert!(up.elapsed() < Duration::from_secs(10), "no recovery");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    drop(g);
    for t in load {
        t.await.expect("load task");
    }
    let mut s = Arc::try_unwrap(s).ok().expect("one owner").into_inner();
    s.assert_alive();
    let received_after = s.connections_received() - received_before;
    let secs = outage().as_secs_f64();
    let samples = samples.lock().map(|v| v.clone()).unwrap_or_default();
    let during: Vec<&Sample> = samples
        .iter()
        .filter(|(sent, _, _)| *sent > down + Duration::from_millis(300) && *sent < restarting)
        .collect();
    let slowest = during.iter().map(|(_, _, took)| *took).max();
    let after: Vec<&Sample> = samples
        .iter()
        .filter(|(sent, _, _)| *sent > up + recovered + Duration::from_millis(500))
        .collect();
    eprintln!(
        "outage {secs} s: {} requests answered during it (slowest {slowest:?}), {attempts} \
         connection attempts, {lines} log lines; first good answer {recovered:?} after the \
         restart; {received_after} connections received by the restarted server; {} requests after",
        during.len(),
        after.len()
    );
    // Fail fast: every request during the outage answered 503 at once, none waited for a
    // connect timeout.
    assert!(during.len() > 100, "too little load: {}", during.len());
    let other: Vec<u16> = during
        .iter()
        .map(|(_, status, _)| *status)
        .filter(|status| *status != 503)
        .collect();
    assert!(
        other.is_empty(),
        "answered otherwise during the outage: {other:?}"
    );
    assert!(slowest.is_some_and(|t| t < Duration::from_millis(500)));
    // Reconnect gently: the probe and the change listener, a few attempts a second.
    assert!(
        attempts <= 5.0 * secs + 10.0,
        "{attempts} connection attempts in {secs} s"
    );
    // Logs that help: the cause once, then counts.
    assert!(lines <= 30, "{lines} log lines: {}", s.gateway_log());
    let log = s.gateway_log();
    assert!(log.contains("the database is unreachable"), "{log}");
    assert!(log.contains("reachable again"), "{log}");
    // No storm against the restarted server: the pool refills (8), the listener, the probe.
    assert!(
        received_after <= 20,
        "{received_after} connections after the restart"
    );
    assert!(
        recovered < Duration::from_millis(1500),
        "recovered after {recovered:?}"
    );
    assert!(!after.is_empty() && after.iter().all(|(_, status, _)| *status == 200));
}

/// The next `graphql-transport-ws` message of subscription "1", skipping keep-alives.
async fn next(ws: &mut Socket, wait: Duration) -> Option<Json> {
    recv(ws, wait).await
}

async fn subscribe_categories(s: &Served, after: Option<&str>) -> Socket {
    let mut ws = acked(s.addr, &s.token).await;
    send(
        &mut ws,
        json!({ "id": "1", "type": "subscribe", "payload": {
            "query": "subscription($after: String) { forumCategoryChanged(after: $after) { op cursor node { slug } } }",
            "variables": { "after": after },
        } }),
    )
    .await;
    // Subscribed once the server has the operation: give it a moment.
    tokio::time::sleep(Duration::from_millis(300)).await;
    ws
}

/// `n` events of subscription "1": (slug, cursor) each.
async fn events(ws: &mut Socket, n: usize) -> Vec<(String, String)> {
    let mut out = Vec::new();
    while out.len() < n {
        let Some(m) = next(ws, Duration::from_secs(15)).await else {
            panic!("only {} of {n} events: {out:?}", out.len());
        };
        assert_eq!(m["type"], json!("next"), "{m}");
        let c = &m["payload"]["data"]["forumCategoryChanged"];
        out.push((
            c["node"]["slug"].as_str().unwrap_or("").to_string(),
            c["cursor"].as_str().unwrap_or("").to_string(),
        ));
    }
    out
}

async fn create_category(s: &Served, slug: &str) -> u16 {
    let (status, body, _) = s
        .post(
            "mutation($s: String!) { createForumCategory(input: {name: $s, slug: $s}) { id } }",
            json!({ "s": slug }),
        )
        .await;
    if status == 200 {
        assert!(body.get("errors").is_none(), "{body}");
    }
    status
}

#[tokio::test]
async fn subscribers_miss_nothing_across_a_database_restart() {
    let mut s = Served::start("restart").await;
    let mut stays = subscribe_categories(&s, None).await;
    let mut leaves = subscribe_categories(&s, None).await;
    for slug in ["before-1", "before-2"] {
        assert_eq!(create_category(&s, slug).await, 200);
    }
    let seen = events(&mut stays, 2).await;
    let left_at = events(&mut leaves, 2).await[1].1.clone();
    drop(leaves);
    assert_eq!(create_category(&s, "before-3").await, 200);

    s.stop_database().await;
    // Refused, not acknowledged: it must not appear.
    assert_eq!(create_category(&s, "during").await, 503);
    // A subscription asked for now is accepted and waits for the database.
    let mut opened_during = subscribe_categories(&s, None).await;
    assert_eq!(
        next(&mut opened_during, Duration::from_millis(500)).await,
        None
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    s.start_database().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.get("/readyz").await.0 != 200 {
        assert!(Instant::now() < deadline, "not ready again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for slug in ["after-1", "after-2"] {
        assert_eq!(create_category(&s, slug).await, 200);
    }

    // The socket that stayed open through the restart gets the rest, in order, once each;
    // should the server have closed it, it resumes from its last cursor like any client.
    let mut rest = Vec::new();
    let mut last = seen[1].1.clone();
    while rest.len() < 3 {
        match next(&mut stays, Duration::from_secs(15)).await {
            Some(m) if m["type"] == "next" => {
                let c = &m["payload"]["data"]["forumCategoryChanged"];
                last = c["cursor"].as_str().unwrap_or("").to_string();
                rest.push(c["node"]["slug"].as_str().unwrap_or("").to_string());
            }
            Some(m) if m.get("close").is_some() || m["type"] == "error" => {
                stays = subscribe_categories(&s, Some(&last)).await;
            }
            other => panic!("after the restart: {other:?}, got {rest:?}"),
        }
    }
    assert_eq!(rest, ["before-3", "after-1", "after-2"]);
    assert_eq!(next(&mut stays, Duration::from_millis(700)).await, None);

    let later: Vec<String> = events(&mut opened_during, 2)
        .await
        .into_iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(later, ["after-1", "after-2"]);

    // The one that left before the outage resumes with its cursor: nothing missed.
    let mut back = subscribe_categories(&s, Some(&left_at)).await;
    let resumed: Vec<String> = events(&mut back, 3)
        .await
        .into_iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(resumed, ["before-3", "after-1", "after-2"]);
    assert_eq!(next(&mut back, Duration::from_millis(700)).await, None);
    s.assert_alive();
}

#[tokio::test]
async fn with_every_connection_busy_requests_wait_a_bounded_time_then_get_service_unavailable() {
    let app = TestApp::new().await;
    let mut settings = pool_settings(1);
    settings.wait_timeout = Duration::from_millis(400);
    settings.max_waiting = 4;
    let (router, db) = app.instance_with_pool_settings(settings).await;
    // A slow statement holds the only connection.
    let rc = gateway::auth::RequestContext::new(app.a.id, app.a.user_id, Role::User);
    let slow = tokio::spawn({
        let db = db.clone();
        async move {
            db.transaction(&rc, true, |conn| {
                Box::pin(async move {
                    use diesel_async::RunQueryDsl;
                    diesel::sql_query("SELECT pg_sleep(2)")
                        .execute(conn)
                        .await
                        .map(|_| ())
                        .map_err(gateway::error::ApiError::from)
                })
            })
            .await
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut burst = Vec::new();
    for _ in 0..10 {
        let router = router.clone();
        let token = app.a.user.clone();
        burst.push(tokio::spawn(async move {
            let started = Instant::now();
            let res = router
                .oneshot(crate::harness::graphql_request(
                    Some(&token),
                    "{ me { id } }",
                    json!({}),
                    None,
                ))
                .await
                .expect("router");
            let retry = res.headers().get(header::RETRY_AFTER).cloned();
            let status = res.status();
            let bytes = res.into_body().collect().await.expect("body").to_bytes();
            let body: Json = serde_json::from_slice(&bytes).expect("JSON");
            (status, retry, body, started.elapsed())
        }));
    }
    // While they wait, the metric shows them.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let scrape = Request::builder()
        .method(Method::GET)
        .uri("/metrics")
        .body(Body::empty())
        .expect("request");
    let (_, _, text) = crate::harness::send_to(&router, scrape).await;
    let waiting = text
        .lines()
        .find(|l| l.starts_with("gateway_db_pool_waiting "))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok());
    assert_eq!(
        waiting,
        Some(4.0),
        "{}",
        text.lines()
            .filter(|l| l.starts_with("gateway_db") || l.starts_with("gateway_requests"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    let mut quick = 0;
    for t in burst {
        let (status, retry, body, took) = t.await.expect("request task");
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(retry.as_ref().and_then(|v| v.to_str().ok()), Some("1"));
        assert_eq!(
            body["errors"][0]["extensions"]["code"],
            json!("SERVICE_UNAVAILABLE")
        );
        // Nobody waits past the configured wait (plus scheduling).
        assert!(took < Duration::from_millis(1200), "waited {took:?}");
        if took < Duration::from_millis(200) {
            quick += 1;
        }
    }
    // Beyond the 4 allowed to wait, refused at once.
    assert!(quick >= 6, "{quick} refused at once");
    slow.await.expect("slow task").expect("slow statement");
    let (status, _, text) = crate::harness::send_to(
        &router,
        crate::harness::graphql_request(Some(&app.a.user), "{ me { id } }", json!({}), None),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    // The burst, and the caller's activity write that went the same way.
    assert!(db.pool_status().wait_timeouts >= 10);
}

#[tokio::test]
async fn sigterm_during_a_burst_of_mutations_loses_no_acknowledged_write() {
    let app = TestApp::new().await;
    let Some(mut cmd) = app.serve_command().await else {
        eprintln!("skipped: TEST_DATABASE_URL gives no login for the serving role");
        return;
    };
    let addr = free_addr();
    let dir = std::env::temp_dir().join(format!("gateway-sigterm-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("log dir");
    let log = dir.join("gateway.log");
    let mut child = cmd
        .env("GATEWAY_BIND", addr.to_string())
        .env("GATEWAY_SHUTDOWN_GRACE_SECS", "10")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("start gateway");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ok = http
            .get(format!("http://{addr}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ok {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // 16 clients writing without pause, each on its keep-alive connection.
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut writers = Vec::new();
    for w in 0..16 {
        let (acked, token) = (acked.clone(), app.a.admin.clone());
        writers.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut failures = 0;
            for i in 0.. {
                let slug = format!("burst-{w}-{i}");
                let res = http
                    .post(format!("http://{addr}/graphql"))
                    .bearer_auth(&token)
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(json!({
                        "query": "mutation($s: String!) { createForumCategory(input: {name: $s, slug: $s}) { id } }",
                        "variables": { "s": slug },
                    }).to_string())
                    .send()
                    .await;
                let id = match res {
                    Ok(r) => r.text().await.ok().and_then(|t| {
                        let b: Json = serde_json::from_str(&t).ok()?;
                        b["data"]["createForumCategory"]["id"]
                            .as_str()
                            .map(str::to_string)
                    }),
                    Err(_) => None,
                };
                match id {
                    Some(id) => acked.lock().expect("acked").push(id),
                    None => {
                        failures += 1;
                        if failures >= 3 {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pid = child.id().expect("pid") as i32;
    // SAFETY: signals the child this test started; no memory is involved.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("the gateway exits within its grace period")
        .expect("exit status");
    for w in writers {
        w.await.expect("writer");
    }
    let gateway_log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "exit {status:?}: {gateway_log}");
    assert!(gateway_log.contains("shut down"), "{gateway_log}");

    let acked = acked.lock().map(|v| v.clone()).unwrap_or_default();
    assert!(
        acked.len() >= 20,
        "only {} writes acknowledged",
        acked.len()
    );
    let ids = acked
        .iter()
        .map(|id| format!("'{id}'"))
        .collect::<Vec<_>>()
        .join(",");
    // Every acknowledged write is in the table and in the outbox (and audited).
    for (what, sql) in [
        ("rows", format!("SELECT count(*)::text FROM forum_categories WHERE id IN ({ids})")),
        (
            "change events",
            format!("SELECT count(DISTINCT row_id)::text FROM change_events WHERE entity = 'ForumCategory' AND op = 'CREATED' AND row_id IN ({ids})"),
        ),
        (
            "audit rows",
            format!("SELECT count(DISTINCT entity_id)::text FROM audit_logs WHERE entity = 'ForumCategory' AND entity_id IN ({ids})"),
        ),
    ] {
        assert_eq!(app.scalar(&sql).await, acked.len().to_string(), "{what}");
    }
    // None half-applied: whatever committed (acknowledged or not) has its event and audit.
    let rows = app
        .scalar("SELECT count(*)::text FROM forum_categories WHERE slug LIKE 'burst-%'")
        .await;
    let events = app
        .scalar("SELECT count(*)::text FROM change_events e JOIN forum_categories c ON c.id = e.row_id WHERE e.entity = 'ForumCategory' AND c.slug LIKE 'burst-%'")
        .await;
    let audits = app
        .scalar("SELECT count(*)::text FROM audit_logs a JOIN forum_categories c ON c.id = a.entity_id WHERE a.entity = 'ForumCategory' AND c.slug LIKE 'burst-%'")
        .await;
    assert_eq!((&events, &audits), (&rows, &rows));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn while_the_circuit_is_open_idle_pooled_connections_still_serve_and_nothing_is_dialled() {
    let app = TestApp::new().await;
    let mut settings = pool_settings(2);
    // The probe waits long enough for the test to look.
    settings.circuit.probe_min = Duration::from_secs(3);
    settings.circuit.probe_max = Duration::from_secs(3);
    let (router, db) = app.instance_with_pool_settings(settings).await;
    let me =
        || crate::harness::graphql_request(Some(&app.a.user), "{ me { id } }", json!({}), None);
    // One connection made and pooled.
    let (status, _, text) = crate::harness::send_to(&router, me()).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    db.settled().await;
    let attempts = db.circuit_stats().attempts;
    // A server out of connection slots opens the circuit as an outage does.
    db.circuit().failed(gateway::db::circuit::ConnectFailure {
        cause: gateway::db::circuit::Cause::NotReady,
        detail: "sorry, too many clients already (53300)".into(),
    });
    // The idle connection serves; a second request at once finds none and is refused.
    let (first, second) = tokio::join!(crate::harness::send_to(&router, me()), async {
        tokio::time::sleep(Duration::from_millis(5)).await;
        crate::harness::send_to(&router, me()).await
    });
    assert!(
        [first.0, second.0].contains(&StatusCode::OK),
        "{first:?} {second:?}"
    );
    db.settled().await;
    let (status, _, _) = crate::harness::send_to(&router, me()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(db.circuit_stats().attempts, attempts, "nothing dialled");
    assert!(db.circuit_stats().open);
    // The probe closes it.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert!(!db.circuit_stats().open);
}
