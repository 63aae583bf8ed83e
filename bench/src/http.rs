//! The HTTP part: each read scenario loaded on the gateway, then on the PostGraphile peer
//! (when it runs), then pgbench over the same SQL; then the gateway-only mutation. Before any
//! timing, every scenario must answer without errors, and both servers' answers to a sample
//! of requests must be the same data.

use std::net::SocketAddr;
use std::path::Path;

use serde_json::Value as Json;
use uuid::Uuid;

use crate::ceiling::{self, Sample};
use crate::peer::{self, Peer};
use crate::scenarios::{self, Read, READS};
use crate::seed::TenantIds;
use crate::{compare, cpu, load};

/// Requests per tenant whose answers are compared between the servers.
const COMPARED_PER_TENANT: usize = 5;
/// Requests per tenant whose SQL pgbench runs.
const CAPTURED_PER_TENANT: usize = ceiling::MAX_SAMPLES / crate::seed::TENANTS;

pub struct Setup<'a> {
    pub gateway: SocketAddr,
    pub gateway_pid: u32,
    pub peer: Option<&'a Peer>,
    pub postmaster: u32,
    /// The database owner's URL (pgbench sets the serving role itself).
    pub owner_url: &'a str,
    pub tokens: &'a [String],
    pub ids: &'a [TenantIds],
    pub duration: u64,
    /// Seconds of unmeasured load on each server before each measured run.
    pub warmup: u64,
    pub connections: u32,
    pub dir: &'a Path,
}

/// `data` of a successful GraphQL answer, or what went wrong.
fn data(server: &str, addr: SocketAddr, token: &str, body: &str) -> Result<Json, String> {
    let (status, resp) = load::http(addr, "POST", "/graphql", Some(token), body)?;
    let v: Json = serde_json::from_str(&resp)
        .map_err(|e| format!("{server}: HTTP {status}, not JSON ({e}): {resp}"))?;
    if status != 200 || v.get("errors").is_some() {
        return Err(format!("{server}: HTTP {status}: {resp}\nrequest: {body}"));
    }
    match v.get("data") {
        Some(d) if !d.is_null() => Ok(d.clone()),
        _ => Err(format!("{server}: no data: {resp}\nrequest: {body}")),
    }
}

/// Both servers answer the sampled requests of every read scenario with the same data.
fn check_answers(s: &Setup, peer: &Peer) -> Result<(), String> {
    for read in READS {
        let mut leaves = 0;
        let samples = read.sample(s.ids, COMPARED_PER_TENANT);
        for (t, id) in &samples {
            let token = &s.tokens[*t];
            let g = data("gateway", s.gateway, token, &read.gateway_body(id))?;
            let p = data("PostGraphile", peer.addr, token, &read.peer_body(id))?;
            let (g, p) = (compare::normalise(&g), compare::normalise(&p));
            if let Some(diff) = compare::first_difference(&g, &p, "") {
                return Err(format!(
                    "{}: the gateway and PostGraphile answer differently for id {id} \
                     (left: gateway, right: PostGraphile): {diff}\ngateway: {g}\nPostGraphile: {p}",
                    read.name
                ));
            }
            leaves += compare::leaves(&g);
        }
        println!(
            "answers equal: {} ({} requests, {} values compared)",
            read.name,
            samples.len(),
            leaves
        );
    }
    Ok(())
}

/// Starts a recording PostGraphile, sends it each read scenario's sampled requests and
/// returns, per scenario, the statements that answered each.
pub fn capture_sql(
    owner_url: &str,
    secret: &str,
    tokens: &[String],
    ids: &[TenantIds],
    tenant_ids: &[Uuid],
    dir: &Path,
) -> Result<Vec<Vec<Sample>>, String> {
    let file = dir.join("postgraphile-statements.jsonl");
    let _ = std::fs::remove_file(&file);
    std::fs::write(&file, "").map_err(|e| format!("{}: {e}", file.display()))?;
    let p = peer::start(owner_url, secret, &tokens[0], Some(&file))?;
    // Drop the start-up's introspection and probes.
    let (_, mut offset) = peer::captured(&file, 0)?;
    let mut all = Vec::new();
    for read in READS {
        let mut samples = Vec::new();
        for (t, id) in read.sample(ids, CAPTURED_PER_TENANT) {
            data("PostGraphile", p.addr, &tokens[t], &read.peer_body(&id))?;
            let (statements, end) = peer::captured(&file, offset)?;
            offset = end;
            if statements.is_empty() {
                return Err(format!("{}: PostGraphile sent no statement", read.name));
            }
            samples.push(Sample {
                tenant: tenant_ids[t],
                statements,
            });
        }
        let per_request = samples.first().map_or(0, |s| s.statements.len());
        println!(
            "PostGraphile's SQL captured: {} ({per_request} statement(s) per request)",
            read.name
        );
        all.push(samples);
    }
    Ok(all)
}

struct Server {
    figures: load::Figures,
    server_ms: f64,
    postgres_ms: f64,
}

fn load_one(
    s: &Setup,
    scenario: &load::Scenario,
    label: &str,
    addr: SocketAddr,
    pid: u32,
) -> Result<Server, String> {
    if s.warmup > 0 {
        load::run(scenario, label, addr, s.warmup, s.connections, s.dir)?;
    }
    let before = cpu::read(pid, s.postmaster)?;
    let figures = load::run(scenario, label, addr, s.duration, s.connections, s.dir)?;
    let after = cpu::read(pid, s.postmaster)?;
    let (server_ms, postgres_ms) = cpu::per_request(before, after, figures.requests);
    Ok(Server {
        figures,
        server_ms,
        postgres_ms,
    })
}

/// 12345.6 as `12,346`.
fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn latency(s: &Server) -> String {
    format!("{:.2} / {:.2}", s.figures.p50_ms, s.figures.p99_ms)
}

fn cpu_cell(s: &Server) -> String {
    format!("{:.2} + {:.2}", s.server_ms, s.postgres_ms)
}

fn row(name: &str, gw: &Server, pg: Option<&Server>, ceiling: Option<&ceiling::Figures>) -> String {
    let dash = || "–".to_string();
    let ratio = pg.map_or_else(dash, |p| {
        format!(
            "{:.2}",
            gw.figures.rps() / p.figures.rps().max(f64::MIN_POSITIVE)
        )
    });
    format!(
        "| {name} | {} | {} | {ratio} | {} | {} | {} | {} | {} | {} | {} |",
        thousands(gw.figures.rps()),
        pg.map_or_else(dash, |p| thousands(p.figures.rps())),
        latency(gw),
        pg.map_or_else(dash, latency),
        cpu_cell(gw),
        pg.map_or_else(dash, cpu_cell),
        ceiling.map_or_else(dash, |c| thousands(c.tps)),
        ceiling.map_or_else(dash, |c| format!("{:.2}", c.postgres_ms)),
        match pg {
            Some(p) => format!("{} / {}", gw.figures.errors, p.figures.errors),
            None => gw.figures.errors.to_string(),
        },
    )
}

/// Runs the HTTP part and prints its table. `sql`: per read scenario, the statements pgbench
/// runs (none without the peer).
pub fn run(s: &Setup, sql: Option<&[Vec<Sample>]>) -> Result<(), String> {
    let mutation = scenarios::create_mutation(s.tokens, s.ids);
    // Every scenario must answer without errors before it is timed.
    let first = |r: &Read| r.sample(s.ids, 1).first().map(|(_, id)| *id);
    for read in READS {
        let id = first(read).ok_or_else(|| format!("{}: no seeded ids", read.name))?;
        data("gateway", s.gateway, &s.tokens[0], &read.gateway_body(&id))?;
    }
    let body = mutation.tenants[0].1.first().ok_or("no request bodies")?;
    data("gateway", s.gateway, &s.tokens[0], body)?;
    let dashboard = scenarios::dashboard(s.tokens);
    let body = dashboard.tenants[0].1.first().ok_or("no request bodies")?;
    data("gateway", s.gateway, &s.tokens[0], body)?;
    if let Some(peer) = s.peer {
        check_answers(s, peer)?;
    }

    let peer_note = match s.peer {
        Some(p) => format!(", then {} on {}", peer::version(), p.addr),
        None => " (BENCH_PEER=off: no PostGraphile, no pgbench)".to_string(),
    };
    println!(
        "\nwrk, {} connections, 2 threads, {}s per scenario and server after {}s of warm-up: the release gateway on {}{peer_note}\n",
        s.connections, s.duration, s.warmup, s.gateway
    );
    println!(
        "| scenario | gateway req/s | PostGraphile req/s | ratio | gateway p50 / p99 ms | \
         PostGraphile p50 / p99 ms | gateway CPU ms/req (server + PostgreSQL) | \
         PostGraphile CPU ms/req (server + PostgreSQL) | pgbench ceiling tx/s | \
         pgbench PostgreSQL CPU ms/tx | errors (gateway / PostGraphile) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (i, read) in READS.iter().enumerate() {
        let gw_scenario = read.load(read.gateway, s.tokens, s.ids);
        let gw = load_one(s, &gw_scenario, "gateway", s.gateway, s.gateway_pid)?;
        let pg = match s.peer {
            Some(p) => {
                let scenario = read.load(read.peer, s.tokens, s.ids);
                Some(load_one(s, &scenario, "postgraphile", p.addr, p.pid())?)
            }
            None => None,
        };
        let ceiling = match sql.and_then(|all| all.get(i)) {
            Some(samples) => Some(ceiling::run(
                read.name,
                samples,
                s.owner_url,
                s.postmaster,
                s.duration,
                s.connections,
                s.dir,
            )?),
            None => None,
        };
        println!("{}", row(read.name, &gw, pg.as_ref(), ceiling.as_ref()));
    }
    let gw = load_one(s, &dashboard, "gateway", s.gateway, s.gateway_pid)?;
    println!(
        "{}",
        row(
            "dashboard: three grouped aggregates (gateway only)",
            &gw,
            None,
            None
        )
    );
    let gw = load_one(s, &mutation, "gateway", s.gateway, s.gateway_pid)?;
    println!("{}", row("create mutation (gateway only)", &gw, None, None));
    println!(
        "\nCPU ms per request: the server process's utime + stime, then PostgreSQL's (the \
         postmaster's and all its children's, exited ones included), over the run, divided by \
         the requests answered."
    );
    if sql.is_some() {
        println!(
            "The ceiling: pgbench -M prepared running PostGraphile's SQL for the scenario in the \
             transaction shape the servers use (role and tenant set, then the statements)."
        );
    }
    Ok(())
}
