//! CPU time from /proc, for CPU per request.
//!
//! A server process: its utime + stime (all its threads), before and after a load.
//!
//! PostgreSQL: one backend process per connection, and backends may exit during a load (a
//! pool that reconnects, pgbench's clients at its end). An exited child's counters are added
//! to its parent's cutime + cstime when the parent reaps it, so the cluster's total is the
//! postmaster's own utime + stime + cutime + cstime plus utime + stime of every live child of
//! the postmaster (backends, and the background workers: checkpointer, WAL writer,
//! autovacuum, which are all but idle during a read load). A backend alive at both readings
//! counts its difference; one that exits in between counts in full after (via cutime) less
//! what it had before; one that starts in between counts in full.

use std::path::Path;

/// Clock ticks per second of /proc's times.
pub fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions; it returns -1 when the value is unknown.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// The fields of /proc/<pid>/stat after the command name: [0] is the state (field 3).
fn stat_fields(pid: u32) -> Result<Vec<u64>, String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("cannot read /proc/{pid}/stat: {e}"))?;
    // The command name is in parentheses and may itself hold spaces and parentheses.
    let rest = text
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| format!("unexpected /proc/{pid}/stat: {text}"))?;
    // The state is a letter; numbers follow. Keep positions: the state becomes 0.
    Ok(rest
        .split_whitespace()
        .map(|f| f.parse::<i64>().map_or(0, |v| v.max(0) as u64))
        .collect())
}

// Offsets into `stat_fields` (field number - 3).
const PPID: usize = 1;
const UTIME: usize = 11;
const STIME: usize = 12;
const CUTIME: usize = 13;
const CSTIME: usize = 14;

fn field(f: &[u64], i: usize) -> u64 {
    f.get(i).copied().unwrap_or(0)
}

/// utime + stime of a process (all its threads), in ticks.
pub fn process_ticks(pid: u32) -> Result<u64, String> {
    let f = stat_fields(pid)?;
    Ok(field(&f, UTIME) + field(&f, STIME))
}

/// CPU of a whole PostgreSQL cluster in ticks: see the module's comment.
pub fn cluster_ticks(postmaster: u32) -> Result<u64, String> {
    let f = stat_fields(postmaster)?;
    let mut total = field(&f, UTIME) + field(&f, STIME) + field(&f, CUTIME) + field(&f, CSTIME);
    let dir = std::fs::read_dir("/proc").map_err(|e| format!("cannot list /proc: {e}"))?;
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // A process may end while we look: skip it (its time moves to cutime).
        let Ok(f) = stat_fields(pid) else { continue };
        if field(&f, PPID) == u64::from(postmaster) {
            total += field(&f, UTIME) + field(&f, STIME);
        }
    }
    Ok(total)
}

/// The postmaster's pid: the first line of `postmaster.pid` in the data directory.
pub fn postmaster_pid(data_dir: &Path) -> Result<u32, String> {
    let path = data_dir.join("postmaster.pid");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    text.lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| format!("no pid in {}", path.display()))
}

/// CPU readings of one server process and the cluster.
#[derive(Clone, Copy)]
pub struct Reading {
    server: u64,
    postgres: u64,
}

pub fn read(server: u32, postmaster: u32) -> Result<Reading, String> {
    Ok(Reading {
        server: process_ticks(server)?,
        postgres: cluster_ticks(postmaster)?,
    })
}

/// CPU milliseconds per request between two readings: (server, PostgreSQL).
pub fn per_request(before: Reading, after: Reading, requests: u64) -> (f64, f64) {
    let ms = |ticks: u64| ticks as f64 * 1000.0 / ticks_per_second() / requests.max(1) as f64;
    (
        ms(after.server.saturating_sub(before.server)),
        ms(after.postgres.saturating_sub(before.postgres)),
    )
}
