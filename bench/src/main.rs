//! The benchmark harness (`cargo run --release -p gateway-bench`): seeds the standard data set
//! into a private PostgreSQL, starts the release gateway on loopback and, beside it, the peer:
//! PostGraphile v5 serving the same database with the same row-level security (`peer`,
//! bench/postgraphile). For each read scenario it checks both servers answer a sample of
//! requests with the same data, loads the gateway then PostGraphile with wrk, then runs
//! pgbench over the SQL PostGraphile sends for it (the ceiling), and prints per scenario both
//! servers' requests/s, p50/p99 latency and CPU per request (server process + PostgreSQL,
//! see `cpu`), and pgbench's rate. Then the gateway's peak RSS.
//!
//! Then `BENCH_SUBSCRIBERS` WebSocket subscribers on the same instance: memory per subscriber
//! and latency from a mutation to its delivery to all of them (see `subscribers`).
//!
//! Options (environment):
//! - BENCH_DURATION: seconds per scenario and server (10); BENCH_WARMUP: seconds of
//!   unmeasured load on the server before each (2);
//! - BENCH_CONNECTIONS: wrk's connections and pgbench's clients (32);
//! - BENCH_PEER: `off` leaves PostGraphile and pgbench's ceiling out (no Node.js needed);
//!   otherwise on, running `npm ci` in bench/postgraphile when its node_modules is missing;
//! - BENCH_SUBSCRIBERS (10000), BENCH_CHANGES mutations timed for them (20); BENCH_TRACE
//!   prints each change's arrivals (first, p50, p90, p99, last) to stderr, with when it was
//!   sent on CLOCK_MONOTONIC (`perf record -k CLOCK_MONOTONIC` shares that clock);
//!   BENCH_CLIENT_TICK_US: how often the subscribers' thread looks at its sockets (250; 0:
//!   it sleeps on them, woken by each arrival; see `subscribers::Clients`);
//! - BENCH_ONLY: `http` or `subscribers`, one part only (the peer runs with `http`); `soak`:
//!   the soak instead of either, a steady mix for 30 minutes with the gateway's memory
//!   sampled (see `soak` for its options); `hold`: seed, start the gateway, print where
//!   it and the database are (with a token and sample ids), and keep them up for
//!   BENCH_HOLD seconds (600): for `perf`, `EXPLAIN` or pgbench by hand;
//! - GATEWAY_BIN: default the release gateway under CARGO_TARGET_DIR or target/, built first.

mod ceiling;
mod compare;
mod cpu;
mod http;
mod live_clients;
mod load;
mod peer;
mod raw_ws;
mod scenarios;
mod seed;
mod soak;
mod subscribers;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use diesel_async::{AsyncConnection, SimpleAsyncConnection};
use gateway::auth::JwtKeys;
use gateway::db::cluster::{ClusterOptions, PrivateCluster};
use gateway::db::{self, Conn};
use gateway::tenants;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub(crate) fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// wrk from Debian's packages when it is missing and we may install it.
fn ensure_wrk() -> Result<(), String> {
    let have = || {
        Command::new("wrk")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    };
    if have() {
        return Ok(());
    }
    eprintln!("installing wrk (apt-get install wrk)...");
    let _ = Command::new("apt-get").arg("update").arg("-qq").status();
    let _ = Command::new("apt-get")
        .args(["install", "-y", "-qq", "wrk"])
        .status();
    if have() {
        Ok(())
    } else {
        Err("wrk is required: apt-get install wrk".into())
    }
}

fn gateway_binary() -> Result<PathBuf, String> {
    if let Ok(bin) = std::env::var("GATEWAY_BIN") {
        return Ok(PathBuf::from(bin));
    }
    eprintln!("building the release gateway...");
    let status = Command::new("cargo")
        .args(["build", "--release", "-p", "gateway", "--bin", "gateway"])
        .current_dir(workspace())
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err("cargo build --release failed".into());
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"));
    Ok(target.join("release/gateway"))
}

pub(crate) fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// Peak and current resident set of a process, in MiB.
pub(crate) fn memory(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

struct Gateway(Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn prepare(url_admin: &str, url: &str) -> Result<(), String> {
    let mut conn = Conn::establish(url_admin)
        .await
        .map_err(|e| e.to_string())?;
    conn.batch_execute("DROP DATABASE IF EXISTS bench WITH (FORCE)")
        .await
        .map_err(|e| e.to_string())?;
    db::create_database(url_admin, "bench", None).await?;
    db::migrate(url).await?;
    // The gateway serves as the role row-level security binds, as in production.
    db::allow_serving_login(url).await?;
    Ok(())
}

async fn run() -> Result<(), String> {
    let duration = env_num("BENCH_DURATION", 10);
    let connections = env_num("BENCH_CONNECTIONS", 32) as u32;
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let with_peer = only != "subscribers"
        && only != "soak"
        && !matches!(
            std::env::var("BENCH_PEER").unwrap_or_default().as_str(),
            "off" | "0" | "false" | "no"
        );
    ensure_wrk()?;
    if with_peer {
        peer::install()?;
    }
    let bin = gateway_binary()?;
    let dir = workspace().join(".data/bench");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let opts = ClusterOptions {
        // The subscriber part times commit → delivery.
        commit_timestamps: true,
        ..ClusterOptions::default()
    };
    let cluster =
        PrivateCluster::ensure(&dir.join("postgres"), &opts).map_err(|e| e.to_string())?;
    let url = cluster.url("bench");
    prepare(&cluster.url("postgres"), &url).await?;

    let secret: String = (0..32)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect();
    let keys = JwtKeys::hs256(secret.as_bytes());
    let sizes = seed::STANDARD;
    let started = Instant::now();
    let mut tokens = Vec::new();
    let mut ids = Vec::new();
    let mut tenant_ids = Vec::new();
    for i in 0..seed::TENANTS {
        let slug = format!("bench-{}", i + 1);
        let t = tenants::create_tenant(
            &url,
            &keys,
            &slug,
            &slug,
            &format!("admin@{slug}.example"),
            86_400,
        )
        .await?;
        ids.push(seed::tenant(&url, i, t.tenant_id, &sizes).await?);
        tenant_ids.push(t.tenant_id);
        tokens.push(t.token);
    }
    seed::analyze(&url).await?;
    println!(
        "seeded {} tenants, {} users, {} categories, {} threads, {} posts, {} workflows, {} executions, {} notifications in {:.1}s",
        seed::TENANTS, sizes.users, sizes.categories, sizes.threads, sizes.posts, sizes.workflows,
        sizes.executions, sizes.notifications, started.elapsed().as_secs_f64()
    );

    let port = free_port()?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let child = Command::new(&bin)
        .args(["serve", "--no-migrate", "--bind", &addr.to_string()])
        .env("DATABASE_URL", cluster.url_as(db::SERVING_ROLE, "bench"))
        .env("GATEWAY_OWNER_DATABASE_URL", &url)
        .env("GATEWAY_JWT_SECRET", &secret)
        // All subscribers share one user and tenant.
        .env("GATEWAY_MAX_SUBSCRIPTIONS_PER_USER", "1000000")
        .env("GATEWAY_MAX_SUBSCRIPTIONS_PER_TENANT", "1000000")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let gw = Gateway(child);
    let pid = gw.0.id();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !matches!(load::http(addr, "GET", "/readyz", None, ""), Ok((200, _))) {
        if Instant::now() > deadline {
            return Err("the gateway did not become ready in 30s".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, idle) = memory(pid);

    if only == "hold" {
        println!("gateway: http://{addr}/graphql (pid {pid})");
        println!("owner database: {url}");
        println!(
            "serving role: {}",
            cluster.url_as(db::SERVING_ROLE, "bench")
        );
        // A throwaway cluster's: another gateway on the same database (an A/B) needs it.
        println!("GATEWAY_JWT_SECRET={secret}");
        for (i, (t, token)) in tenant_ids.iter().zip(&tokens).enumerate() {
            let first = |v: &[uuid::Uuid]| v.first().map(|u| u.to_string()).unwrap_or_default();
            println!(
                "tenant {t}: token {token}\n  category {}, thread {}, workflow {}, user {}",
                first(&ids[i].categories),
                first(&ids[i].threads),
                first(&ids[i].workflows),
                first(&ids[i].users)
            );
        }
        tokio::time::sleep(Duration::from_secs(env_num("BENCH_HOLD", 600))).await;
        drop(gw);
        cluster.stop().map_err(|e| e.to_string())?;
        return Ok(());
    }
    if only == "soak" {
        let result = soak::run(addr, pid, &tokens, &ids, &dir, &soak::Options::from_env()).await;
        drop(gw);
        cluster.stop().map_err(|e| e.to_string())?;
        return result;
    }
    if only != "subscribers" {
        let (sql, peer) = if with_peer {
            let sql = http::capture_sql(&url, &secret, &tokens, &ids, &tenant_ids, &dir)?;
            let peer = peer::start(&url, &secret, &tokens[0], None)?;
            (Some(sql), Some(peer))
        } else {
            (None, None)
        };
        let setup = http::Setup {
            gateway: addr,
            gateway_pid: pid,
            peer: peer.as_ref(),
            postmaster: cpu::postmaster_pid(&cluster.data_dir)?,
            owner_url: &url,
            tokens: &tokens,
            ids: &ids,
            duration,
            warmup: env_num("BENCH_WARMUP", 2),
            connections,
            dir: &dir,
        };
        http::run(&setup, sql.as_deref())?;
    }
    if only != "http" {
        let count = env_num("BENCH_SUBSCRIBERS", 10_000) as usize;
        let changes = env_num("BENCH_CHANGES", 20) as usize;
        let Some(thread) = ids[0].threads.first().copied() else {
            return Err("no seeded thread".into());
        };
        let f = subscribers::run(addr, pid, &url, &tokens[0], thread, count, changes).await?;
        println!(
            "\n{} subscribers (graphql-transport-ws, one subscription each, all on one thread's posts), connected and live in {:.1}s\n",
            f.subscribers, f.connect_seconds
        );
        println!("| figure | value |");
        println!("|---|---:|");
        println!(
            "| gateway RSS before / with subscribers | {:.0} / {:.0} MiB |",
            f.rss_before_mib, f.rss_after_mib
        );
        println!(
            "| memory per subscriber | {:.1} KiB |",
            f.kib_per_subscriber()
        );
        println!("| mutation round trip p50 | {:.1} ms |", f.mutation_p50_ms);
        println!(
            "| mutation sent -> delivered to the first, p50 | {:.1} ms |",
            f.first_p50_ms
        );
        println!(
            "| mutation sent -> delivered, p50 / p99 of {} deliveries | {:.1} / {:.1} ms |",
            f.changes * f.subscribers - f.lost,
            f.delivery_p50_ms,
            f.delivery_p99_ms
        );
        println!(
            "| committed (pg_xact_commit_timestamp) -> delivered, p50 / p99 | {:.1} / {:.1} ms |",
            f.committed_p50_ms, f.committed_p99_ms
        );
        println!(
            "| mutation sent -> delivered to all, p50 / p99 of {} changes | {:.1} / {:.1} ms |",
            f.changes, f.all_p50_ms, f.all_p99_ms
        );
        println!("| deliveries missing after 30 s | {} |", f.lost);
        println!(
            "| gateway CPU per delivery (making and delivering the changes) | {:.1} µs |",
            f.gateway_us_per_delivery
        );
    }
    let (peak, now) = memory(pid);
    println!("\ngateway memory: {idle:.0} MiB RSS when ready, {now:.0} MiB after the run, {peak:.0} MiB peak RSS");
    drop(gw);
    cluster.stop().map_err(|e| e.to_string())?;
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
