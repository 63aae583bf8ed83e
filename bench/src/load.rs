//! Load over loopback with wrk: one Lua script per scenario picks a random tenant (its token)
//! and a random prepared body per request, and counts responses that carry GraphQL errors.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// A named GraphQL request with per-tenant bodies to choose from.
pub struct Scenario {
    pub name: String,
    /// Per tenant: (token, request bodies).
    pub tenants: Vec<(String, Vec<String>)>,
}

pub struct Figures {
    pub requests: u64,
    pub seconds: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Transport errors, non-200 responses and responses with GraphQL errors.
    pub errors: u64,
}

impl Figures {
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.seconds
    }
}

fn lua_string(s: &str) -> String {
    format!("[==[{s}]==]")
}

fn script(s: &Scenario) -> String {
    let mut lua = String::from("local tokens = {}\nlocal bodies = {}\n");
    for (i, (token, bodies)) in s.tenants.iter().enumerate() {
        lua.push_str(&format!("tokens[{}] = {}\n", i + 1, lua_string(token)));
        let list: Vec<String> = bodies.iter().map(|b| lua_string(b)).collect();
        lua.push_str(&format!("bodies[{}] = {{{}}}\n", i + 1, list.join(",\n")));
    }
    lua.push_str(
        r#"
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) errs = 0; math.randomseed(os.time() + math.floor(os.clock() * 1e6)) end
function request()
  local t = math.random(#tokens)
  local list = bodies[t]
  return wrk.format("POST", "/graphql", {
    ["Content-Type"] = "application/json",
    ["Accept"] = "application/graphql-response+json",
    ["Authorization"] = "Bearer " .. tokens[t],
  }, list[math.random(#list)])
end
function response(status, headers, body)
  if status ~= 200 or string.find(body, '"errors"', 1, true) then errs = errs + 1 end
end
function done(summary, latency, requests)
  local e = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout
  for _, t in ipairs(threads) do e = e + t:get("errs") end
  io.write(string.format("BENCH %d %d %d %d %d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), e))
end
"#,
    );
    lua
}

/// A file name made of a scenario's name: letters and digits, the rest as single dashes.
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

/// Runs wrk for `duration` with `connections` open connections against `server` (a label for
/// the script's file name) at `addr`.
pub fn run(
    s: &Scenario,
    server: &str,
    addr: SocketAddr,
    duration: u64,
    connections: u32,
    workdir: &Path,
) -> Result<Figures, String> {
    let path = workdir.join(format!("wrk-{server}-{}.lua", slug(&s.name)));
    std::fs::write(&path, script(s)).map_err(|e| format!("{}: {e}", path.display()))?;
    let out = Command::new("wrk")
        .arg("-t2")
        .arg(format!("-c{connections}"))
        .arg(format!("-d{duration}s"))
        .arg("--timeout")
        .arg("10s")
        .arg("-s")
        .arg(&path)
        .arg(format!("http://{addr}/graphql"))
        .output()
        .map_err(|e| format!("cannot run wrk: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("BENCH "))
        .ok_or_else(|| {
            format!(
                "wrk printed no result: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
    let n: Vec<u64> = line
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    let [requests, micros, p50, p99, errors] = n[..] else {
        return Err(format!("unexpected wrk result: {line}"));
    };
    Ok(Figures {
        requests,
        seconds: micros as f64 / 1e6,
        p50_ms: p50 as f64 / 1e3,
        p99_ms: p99 as f64 / 1e3,
        errors,
    })
}

/// One HTTP/1.1 request with `Connection: close`; returns the status and the body.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> Result<(u16, String), String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nAccept: application/graphql-response+json\r\n{auth}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(req.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut resp = String::new();
    stream
        .read_to_string(&mut resp)
        .map_err(|e| e.to_string())?;
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_string()
    };
    Ok((status, body))
}

/// The body of a `Transfer-Encoding: chunked` response.
fn dechunk(mut rest: &str) -> Result<String, String> {
    let mut body = String::new();
    loop {
        let (size, after) = rest
            .split_once("\r\n")
            .ok_or("truncated chunked response")?;
        let size = size.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size, 16)
            .map_err(|_| format!("bad chunk size {size:?} in a chunked response"))?;
        if size == 0 {
            return Ok(body);
        }
        let chunk = after
            .get(..size)
            .ok_or("truncated chunk in a chunked response")?;
        body.push_str(chunk);
        rest = after.get(size..).unwrap_or("").trim_start_matches("\r\n");
    }
}
