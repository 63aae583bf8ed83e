//! Many concurrent subscribers on one instance: `BENCH_SUBSCRIBERS` graphql-transport-ws
//! sockets (one subscription each) watch the posts of one thread; the harness then creates
//! posts there one at a time over HTTP and times each post's arrival at every subscriber.
//!
//! Figures: the gateway's resident memory per subscriber (growth from before the first socket
//! to all subscribed, divided by their number), and latency from sending the mutation to
//! delivery (the commit lies in between; the mutation's own round trip is printed beside it),
//! per delivery and until the last subscriber has it; and from the commit itself to delivery:
//! the bench cluster tracks commit timestamps, read with `pg_xact_commit_timestamp` (the
//! database's clock is this machine's).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures::SinkExt;
use serde_json::{json, Value as Json};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use crate::live_clients::{Handover, LiveClients};
use crate::load;
use crate::raw_ws::RawSocket;

/// Sockets opened at once while connecting.
const CONNECTING: usize = 200;

pub struct Figures {
    pub subscribers: usize,
    pub connect_seconds: f64,
    pub rss_before_mib: f64,
    pub rss_after_mib: f64,
    pub changes: usize,
    pub mutation_p50_ms: f64,
    pub first_p50_ms: f64,
    pub committed_p50_ms: f64,
    pub committed_p99_ms: f64,
    pub delivery_p50_ms: f64,
    pub delivery_p99_ms: f64,
    pub all_p50_ms: f64,
    pub all_p99_ms: f64,
    pub lost: usize,
    /// The gateway's CPU (all threads) while the changes were made and delivered, per
    /// delivery: steadier than the latencies, which move with the host.
    pub gateway_us_per_delivery: f64,
}

impl Figures {
    pub fn kib_per_subscriber(&self) -> f64 {
        (self.rss_after_mib - self.rss_before_mib) * 1024.0 / self.subscribers as f64
    }
}

/// Arrival times per change number, from every subscriber.
/// When each subscriber received each change: nanoseconds after `base` (0: not yet), and how
/// many have it. Written without locks as messages are read: a shared mutex taken 10,000
/// times per change made the clients, which share the cores with the gateway, slower than it.
struct Arrivals {
    base: Instant,
    at: Vec<Vec<AtomicU64>>,
    count: Vec<AtomicUsize>,
}

impl Arrivals {
    fn new(changes: usize, subscribers: usize) -> Self {
        Arrivals {
            base: Instant::now(),
            at: (0..changes)
                .map(|_| (0..subscribers).map(|_| AtomicU64::new(0)).collect())
                .collect(),
            count: (0..changes).map(|_| AtomicUsize::new(0)).collect(),
        }
    }

    fn record(&self, change: usize, subscriber: usize, when: Instant) {
        let nanos = when.duration_since(self.base).as_nanos().max(1) as u64;
        if let Some(slot) = self.at.get(change).and_then(|c| c.get(subscriber)) {
            if slot.swap(nanos, Ordering::Relaxed) == 0 {
                if let Some(n) = self.count.get(change) {
                    n.fetch_add(1, Ordering::Release);
                }
            }
        }
    }

    fn received(&self, change: usize) -> usize {
        self.count
            .get(change)
            .map_or(0, |n| n.load(Ordering::Acquire))
    }

    fn times(&self, change: usize) -> Vec<Instant> {
        self.at.get(change).map_or_else(Vec::new, |c| {
            c.iter()
                .map(|t| t.load(Ordering::Relaxed))
                .filter(|&t| t > 0)
                .map(|t| self.base + Duration::from_nanos(t))
                .collect()
        })
    }
}

/// The content of a `next` message's post, found without parsing the whole message.
fn content_of(text: &str) -> Option<&str> {
    const KEY: &str = "\"content\":\"";
    let start = text.find(KEY)? + KEY.len();
    let len = text.get(start..)?.find('"')?;
    text.get(start..start + len)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// `connection_init` with the bearer token.
fn init_message(token: &str) -> String {
    json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } })
        .to_string()
}

/// A `graphql-transport-ws` socket to the gateway with `connection_init` sent (the ack is
/// the caller's to read).
pub async fn signed_in(addr: SocketAddr, token: &str) -> Result<Socket, String> {
    let mut req = format!("ws://{addr}/graphql")
        .into_client_request()
        .map_err(|e| e.to_string())?;
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws"
            .parse()
            .map_err(|_| "header".to_string())?,
    );
    // tungstenite zeroes its whole read buffer (128 KiB by default) before every read, on
    // the gateway's cores; the messages here are well under 4 KiB. (The 10,000 subscribers
    // use `RawSocket`, lighter still.)
    let config = WebSocketConfig::default().read_buffer_size(4096);
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(req, Some(config), false)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    ws.send(Message::Text(init_message(token).into()))
        .await
        .map_err(|e| e.to_string())?;
    Ok(ws)
}

/// One subscriber: connects, subscribes, and once the warm-up post reaches it, hands its
/// socket over to the live clients' loop, which records when each numbered post arrives.
async fn subscriber(
    addr: SocketAddr,
    token: String,
    thread: Uuid,
    index: usize,
    ready: Arc<Semaphore>,
    handover: std::sync::mpsc::Sender<Handover>,
    connecting: tokio::sync::OwnedSemaphorePermit,
) -> Result<(), String> {
    let mut ws = RawSocket::connect(addr).await?;
    ws.send_text(&init_message(&token)).await?;
    let subscribe = json!({ "id": "1", "type": "subscribe", "payload": {
        "query": "subscription($t: ID!) { forumPostChanged(where: {threadId: {equals: $t}}, ops: [CREATED]) { op node { id content createdAt } cursor } }",
        "variables": { "t": thread },
    } });
    let mut acked = false;
    let mut connecting = Some(connecting);
    while let Some(text) = ws.next_text().await? {
        if acked && text.contains("\"type\":\"next\"") {
            if content_of(&text).is_none() {
                return Err(format!("a next message without content: {text}"));
            }
            // Live: changes are made only once every subscriber is.
            let (tcp, rest) = ws.into_parts()?;
            handover
                .send(Handover { index, tcp, rest })
                .map_err(|_| "the live clients' loop has stopped".to_string())?;
            ready.add_permits(1);
            return Ok(());
        }
        let v: Json = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        match v["type"].as_str() {
            Some("connection_ack") if !acked => {
                acked = true;
                ws.send_text(&subscribe.to_string()).await?;
                // Subscribed: let the next socket connect.
                connecting.take();
            }
            Some("ping") => ws.send_text(PONG).await?,
            Some("error") => return Err(format!("subscription error: {v}")),
            _ => {}
        }
    }
    Err("the gateway closed the socket".into())
}

const PONG: &str = r#"{"type":"pong"}"#;

/// A live subscriber's text message: a change's arrival is recorded, a ping answered.
fn live_message(
    arrivals: &Arrivals,
    index: usize,
    text: &str,
    now: Instant,
) -> Result<Option<&'static str>, String> {
    if text.contains("\"type\":\"next\"") {
        let content =
            content_of(text).ok_or_else(|| format!("a next message without content: {text}"))?;
        if let Some(n) = content.strip_prefix("change ") {
            let n: usize = n.parse().map_err(|_| "bad content".to_string())?;
            arrivals.record(n, index, now);
        }
        return Ok(None);
    }
    let v: Json = serde_json::from_str(text).map_err(|e| e.to_string())?;
    match v["type"].as_str() {
        Some("ping") => Ok(Some(PONG)),
        Some("error") => Err(format!("subscription error: {v}")),
        _ => Ok(None),
    }
}

/// The subscribers' own runtime while they connect: one thread, apart from the harness's.
/// On the harness's multi-threaded runtime each arrival woke its reactor thread and then,
/// through a futex, another worker to run the task. Once live, a subscriber's socket is read
/// by [`LiveClients`] instead.
struct Clients {
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Clients {
    fn start() -> Result<Clients, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let handle = rt.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("connecting".into())
            .spawn(move || {
                rt.block_on(async {
                    let _ = stopped.await;
                });
            })
            .map_err(|e| e.to_string())?;
        Ok(Clients {
            handle,
            stop: Some(stop),
        })
    }
}

impl Drop for Clients {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Creates a post; its id.
fn create_post(addr: SocketAddr, token: &str, thread: Uuid, content: &str) -> Result<Uuid, String> {
    let body = json!({
        // The author is stamped from the token.
        "query": "mutation($t: ID!, $c: String!) { createForumPost(input: {threadId: $t, content: $c}) { id } }",
        "variables": { "t": thread, "c": content },
    });
    let (status, resp) = load::http(addr, "POST", "/graphql", Some(token), &body.to_string())?;
    if status != 200 || resp.contains("\"errors\"") {
        return Err(format!("mutation: HTTP {status}: {resp}"));
    }
    let v: Json = serde_json::from_str(&resp).map_err(|e| e.to_string())?;
    v["data"]["createForumPost"]["id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| format!("mutation: no id in {resp}"))
}

#[derive(diesel::QueryableByName)]
struct Committed {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    micros: i64,
}

/// When the transaction that wrote post `id` committed: microseconds since the Unix epoch.
async fn committed_at(db: &mut AsyncPgConnection, id: Uuid) -> Result<i64, String> {
    let c: Committed = diesel::sql_query(
        "SELECT (extract(epoch FROM pg_xact_commit_timestamp(xmin)) * 1000000)::bigint AS micros
         FROM forum_posts WHERE id = $1",
    )
    .bind::<diesel::sql_types::Uuid, _>(id)
    .get_result(db)
    .await
    .map_err(|e| format!("commit timestamp: {e}"))?;
    Ok(c.micros)
}

#[allow(clippy::too_many_arguments)]
pub async fn run(
    addr: SocketAddr,
    pid: u32,
    owner_url: &str,
    token: &str,
    thread: Uuid,
    subscribers: usize,
    changes: usize,
) -> Result<Figures, String> {
    let arrivals = Arc::new(Arrivals::new(changes, subscribers));
    let ready = Arc::new(Semaphore::new(0));
    let (_, rss_before) = crate::memory(pid);
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(CONNECTING));
    let failed = Arc::new(AtomicUsize::new(0));
    let recorded = arrivals.clone();
    let live = LiveClients::start(
        failed.clone(),
        Box::new(move |index, text, now| live_message(&recorded, index, text, now)),
    )?;
    let clients = Clients::start()?;
    let mut tasks = Vec::with_capacity(subscribers);
    for index in 0..subscribers {
        let permit = gate
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| e.to_string())?;
        let (token, ready, handover, failed) = (
            token.to_string(),
            ready.clone(),
            live.handover(),
            failed.clone(),
        );
        tasks.push(clients.handle.spawn(async move {
            let r = subscriber(addr, token, thread, index, ready, handover, permit).await;
            if let Err(e) = &r {
                eprintln!("subscriber: {e}");
                failed.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // Warm-up posts until every subscriber has received one: then all are live.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let t = token.to_string();
        tokio::task::spawn_blocking(move || create_post(addr, &t, thread, "warm-up"))
            .await
            .map_err(|e| e.to_string())??;
        tokio::time::sleep(Duration::from_millis(500)).await;
        if AtomicUsize::load(&failed, Ordering::Relaxed) > 0 {
            return Err("a subscriber ended early".into());
        }
        let live = ready.available_permits();
        if live >= subscribers {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "only {live} of {subscribers} subscribers live after 300s"
            ));
        }
    }
    let connect_seconds = started.elapsed().as_secs_f64();
    // Settle the warm-up deliveries before measuring memory.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, rss_after) = crate::memory(pid);

    let mut mutation_ms = Vec::new();
    let mut delivery_ms = Vec::new();
    let mut all_ms = Vec::new();
    let mut first_ms = Vec::new();
    let mut committed_ms = Vec::new();
    let mut db = AsyncPgConnection::establish(owner_url)
        .await
        .map_err(|e| format!("bench database: {e}"))?;
    // The wall clock at `arrivals.base` in ms since the epoch, to set arrivals against the
    // database's timestamps (same machine, same clock).
    let wall_base = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs_f64()
        * 1000.0
        - arrivals.base.elapsed().as_secs_f64() * 1000.0;
    let mut lost = 0;
    let ticks_before = crate::cpu::process_ticks(pid)?;
    for n in 0..changes {
        let t = token.to_string();
        let sent = Instant::now();
        let post = tokio::task::spawn_blocking(move || {
            create_post(addr, &t, thread, &format!("change {n}"))
        })
        .await
        .map_err(|e| e.to_string())??;
        mutation_ms.push(sent.elapsed().as_secs_f64() * 1000.0);
        let wait_until = Instant::now() + Duration::from_secs(30);
        loop {
            let got = arrivals.received(n);
            if got >= subscribers || Instant::now() > wait_until {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let times = arrivals.times(n);
        lost += subscribers.saturating_sub(times.len());
        // The commit on the arrivals' clock: ms after `base`.
        let commit_ms = committed_at(&mut db, post).await? as f64 / 1000.0 - wall_base;
        let mut last: f64 = 0.0;
        let mut first = f64::MAX;
        for t in times {
            let ms = t.duration_since(sent).as_secs_f64() * 1000.0;
            last = last.max(ms);
            first = first.min(ms);
            delivery_ms.push(ms);
            let since_base = t.duration_since(arrivals.base).as_secs_f64() * 1000.0;
            committed_ms.push(since_base - commit_ms);
        }
        all_ms.push(last);
        if std::env::var("BENCH_TRACE").is_ok() {
            let mut these: Vec<f64> = arrivals
                .times(n)
                .iter()
                .map(|t| t.duration_since(sent).as_secs_f64() * 1000.0)
                .collect();
            these.sort_by(|a, b| a.total_cmp(b));
            eprintln!(
                "change {n}: first {first:.1} p50 {:.1} p90 {:.1} p99 {:.1} last {last:.1} ms after sent at {sent:?}",
                percentile(&these, 0.5),
                percentile(&these, 0.9),
                percentile(&these, 0.99)
            );
        }
        if first < f64::MAX {
            first_ms.push(first);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ticks = crate::cpu::process_ticks(pid)?.saturating_sub(ticks_before);
    let delivered = (changes * subscribers).saturating_sub(lost).max(1);
    let gateway_us_per_delivery =
        ticks as f64 / crate::cpu::ticks_per_second() * 1e6 / delivered as f64;
    for t in &tasks {
        t.abort();
    }
    let sort = |v: &mut Vec<f64>| v.sort_by(|a, b| a.total_cmp(b));
    sort(&mut mutation_ms);
    sort(&mut delivery_ms);
    sort(&mut all_ms);
    sort(&mut first_ms);
    sort(&mut committed_ms);
    Ok(Figures {
        subscribers,
        connect_seconds,
        rss_before_mib: rss_before,
        rss_after_mib: rss_after,
        changes,
        mutation_p50_ms: percentile(&mutation_ms, 0.5),
        first_p50_ms: percentile(&first_ms, 0.5),
        committed_p50_ms: percentile(&committed_ms, 0.5),
        committed_p99_ms: percentile(&committed_ms, 0.99),
        delivery_p50_ms: percentile(&delivery_ms, 0.5),
        delivery_p99_ms: percentile(&delivery_ms, 0.99),
        all_p50_ms: percentile(&all_ms, 0.5),
        all_p99_ms: percentile(&all_ms, 0.99),
        lost,
        gateway_us_per_delivery,
    })
}
