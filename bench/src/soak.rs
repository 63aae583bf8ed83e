//! The soak (`BENCH_ONLY=soak`): the gateway under a steady mix for a long time (30 minutes
//! by default), its resident memory sampled all along. Reads by id and notification pages,
//! one post created for every ten reads (wrk), subscribers that stay connected to the posts
//! of a thread, and one socket a second that connects, subscribes and leaves. It prints the
//! series and the growth from the first quarter of the run to the last, and fails when that
//! growth passes the threshold: what leaks per request, per socket or per change shows as a
//! slope, what is only a cache levels off.
//!
//! Options: BENCH_SOAK_SECS (1800), BENCH_SOAK_SAMPLE_SECS (30, at most a tenth of the run),
//! BENCH_SOAK_CONNECTIONS (wrk's, 8), BENCH_SOAK_SUBSCRIBERS (200),
//! BENCH_SOAK_MAX_GROWTH_MIB (16).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use crate::load::{self, Scenario};
use crate::scenarios::{self, READS};
use crate::seed::TenantIds;
use crate::subscribers::{signed_in, Socket};

pub struct Options {
    pub seconds: u64,
    pub sample_every: u64,
    pub connections: u32,
    pub subscribers: usize,
    pub max_growth_mib: f64,
}

impl Options {
    pub fn from_env() -> Options {
        let seconds = crate::env_num("BENCH_SOAK_SECS", 1800).max(20);
        Options {
            seconds,
            sample_every: crate::env_num("BENCH_SOAK_SAMPLE_SECS", 30).clamp(1, seconds / 10),
            connections: crate::env_num("BENCH_SOAK_CONNECTIONS", 8) as u32,
            subscribers: crate::env_num("BENCH_SOAK_SUBSCRIBERS", 200) as usize,
            max_growth_mib: crate::env_num("BENCH_SOAK_MAX_GROWTH_MIB", 16) as f64,
        }
    }
}

/// Reads and mutations mixed, ten to one, per tenant.
fn mix(tokens: &[String], ids: &[TenantIds]) -> Scenario {
    let mut tenants: Vec<(String, Vec<String>)> =
        tokens.iter().map(|t| (t.clone(), Vec::new())).collect();
    let by_id = READS[0].load(READS[0].gateway, tokens, ids);
    let notifications = READS[READS.len() - 1].load(READS[READS.len() - 1].gateway, tokens, ids);
    let writes = scenarios::create_mutation(tokens, ids);
    for (i, (_, bodies)) in tenants.iter_mut().enumerate() {
        let reads = by_id.tenants[i].1.iter().zip(&notifications.tenants[i].1);
        for (n, (a, b)) in reads.enumerate() {
            bodies.push(a.clone());
            bodies.push(b.clone());
            if n % 5 == 0 {
                if let Some(w) = writes.tenants[i].1.get(n / 5) {
                    bodies.push(w.clone());
                }
            }
        }
    }
    Scenario {
        name: "soak mix".to_string(),
        tenants,
    }
}

async fn socket(addr: SocketAddr, token: &str, thread: Uuid) -> Result<Socket, String> {
    let mut ws = signed_in(addr, token).await?;
    let subscribe = json!({ "id": "1", "type": "subscribe", "payload": {
        "query": "subscription($t: ID!) { forumPostChanged(where: {threadId: {equals: $t}}) { op node { id } cursor } }",
        "variables": { "t": thread },
    } });
    ws.send(Message::Text(subscribe.to_string().into()))
        .await
        .map_err(|e| e.to_string())?;
    Ok(ws)
}

/// A subscriber that stays: counts the events it receives until told to stop.
async fn stay(
    addr: SocketAddr,
    token: String,
    thread: Uuid,
    events: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> Result<(), String> {
    let mut ws = socket(addr, &token, thread).await?;
    while !stop.load(Ordering::Relaxed) {
        let Ok(msg) = tokio::time::timeout(Duration::from_secs(1), ws.next()).await else {
            continue;
        };
        match msg {
            Some(Ok(Message::Text(t))) => {
                if t.contains("\"type\":\"next\"") {
                    events.fetch_add(1, Ordering::Relaxed);
                } else if t.contains("\"type\":\"ping\"") {
                    let pong = json!({ "type": "pong" }).to_string();
                    ws.send(Message::Text(pong.into()))
                        .await
                        .map_err(|e| e.to_string())?;
                }
            }
            Some(Ok(_)) => {}
            other => return Err(format!("subscriber ended: {other:?}")),
        }
    }
    Ok(())
}

pub async fn run(
    addr: SocketAddr,
    pid: u32,
    tokens: &[String],
    ids: &[TenantIds],
    dir: &Path,
    opts: &Options,
) -> Result<(), String> {
    let stop = Arc::new(AtomicBool::new(false));
    let events = Arc::new(AtomicU64::new(0));
    let churned = Arc::new(AtomicU64::new(0));
    // The busiest threads of the load: the first of each tenant's.
    let threads: Vec<Uuid> = ids
        .iter()
        .filter_map(|i| i.threads.first().copied())
        .collect();
    if threads.is_empty() {
        return Err("no seeded thread".into());
    }
    let mut tasks = Vec::new();
    for n in 0..opts.subscribers {
        let t = n % threads.len();
        let (token, thread) = (tokens[t].clone(), threads[t]);
        let (events, stop) = (events.clone(), stop.clone());
        tasks.push(tokio::spawn(stay(addr, token, thread, events, stop)));
    }
    // One socket a second comes and goes.
    let churn = {
        let (token, thread, stop, churned) =
            (tokens[0].clone(), threads[0], stop.clone(), churned.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(mut ws) = socket(addr, &token, thread).await {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    let _ = ws.close(None).await;
                    churned.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };
    let scenario = mix(tokens, ids);
    let (seconds, connections, dir) = (opts.seconds, opts.connections, dir.to_path_buf());
    let wrk = tokio::task::spawn_blocking(move || {
        load::run(&scenario, "soak", addr, seconds, connections, &dir)
    });

    println!(
        "soak: {} s, {} wrk connections (reads and one post per ten), {} subscribers, one socket a second; RSS every {} s",
        opts.seconds, opts.connections, opts.subscribers, opts.sample_every
    );
    let started = Instant::now();
    let mut series: Vec<(u64, f64)> = Vec::new();
    while started.elapsed() < Duration::from_secs(opts.seconds) {
        tokio::time::sleep(Duration::from_secs(opts.sample_every)).await;
        let (_, rss) = crate::memory(pid);
        if rss == 0.0 {
            return Err("the gateway is gone".into());
        }
        let at = started.elapsed().as_secs();
        println!(
            "soak t={at:>5}s rss={rss:.1} MiB events={} sockets-churned={}",
            events.load(Ordering::Relaxed),
            churned.load(Ordering::Relaxed)
        );
        series.push((at, rss));
    }
    let figures = wrk
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("wrk: {e}"))?;
    stop.store(true, Ordering::Relaxed);
    let _ = churn.await;
    let mut ended = 0;
    for t in tasks {
        if let Ok(Err(e)) = t.await {
            ended += 1;
            eprintln!("{e}");
        }
    }
    let quarter = (series.len() / 4).max(1);
    let mean = |s: &[(u64, f64)]| s.iter().map(|(_, r)| r).sum::<f64>() / s.len().max(1) as f64;
    let first = mean(&series[..quarter]);
    let last = mean(&series[series.len() - quarter..]);
    let growth = last - first;
    println!(
        "soak: {} requests ({:.0}/s, p99 {:.1} ms, {} errors), {} events delivered, {} sockets churned, {} subscribers ended early",
        figures.requests,
        figures.rps(),
        figures.p99_ms,
        figures.errors,
        events.load(Ordering::Relaxed),
        churned.load(Ordering::Relaxed),
        ended
    );
    println!(
        "soak: RSS first quarter {first:.1} MiB, last quarter {last:.1} MiB, growth {growth:+.1} MiB (threshold {:.0} MiB)",
        opts.max_growth_mib
    );
    if growth > opts.max_growth_mib {
        return Err(format!(
            "memory grew by {growth:.1} MiB between the first and the last quarter of the soak"
        ));
    }
    if ended > 0 || events.load(Ordering::Relaxed) == 0 {
        return Err(format!(
            "subscribers: {ended} ended early, {} events delivered",
            events.load(Ordering::Relaxed)
        ));
    }
    Ok(())
}
