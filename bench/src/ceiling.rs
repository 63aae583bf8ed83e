//! pgbench's rate for a scenario's SQL: the ceiling neither server can pass.
//!
//! The SQL is what PostGraphile sends for the scenario's sampled requests (`peer::captured`),
//! run as the servers run it: per transaction `BEGIN; SET LOCAL role gateway_app;
//! SELECT set_config('app.tenant_id', <tenant>, true); <the statements>; COMMIT;`. pgbench
//! variables are integers or strings from `-D`, so each sampled request is a script file of
//! its own whose placeholders are variables of its own, all defined with `-D` and sent as
//! parameters of prepared statements (`-M prepared`); pgbench picks a script at random per
//! transaction. Same client count and duration as wrk's, two threads, and JIT optimisation
//! off as PostGraphile sets it on its connections.

use std::path::Path;
use std::process::Command;

use serde_json::Value as Json;
use uuid::Uuid;

use crate::cpu;
use crate::peer::Statement;

/// pgbench takes at most 128 script files.
pub const MAX_SAMPLES: usize = 120;

/// One sampled request: its tenant and the statements that answer it.
pub struct Sample {
    pub tenant: Uuid,
    pub statements: Vec<Statement>,
}

pub struct Figures {
    pub tps: f64,
    /// PostgreSQL's CPU per transaction.
    pub postgres_ms: f64,
}

/// pgbench reads `:name` as a variable anywhere, string literals included, and only skips
/// `::`. A literal with a colon (PostGraphile's `to_char(.., 'YYYY-MM-DD"T"HH24:MI:SS..')`)
/// becomes the same string as an escape string literal with `\x3a` for the colon.
fn literal(content: &str) -> String {
    if !content.contains(':') {
        return format!("'{content}'");
    }
    let escaped = content.replace('\\', "\\\\").replace(':', "\\x3a");
    format!("E'{escaped}'")
}

/// The statement with `$n` placeholders as pgbench variables `:{prefix}_{n}` (NULL inline),
/// and the `-D` definitions they need.
fn script_statement(s: &Statement, prefix: &str) -> Result<(String, Vec<String>), String> {
    let mut sql = String::new();
    let mut defines = Vec::new();
    let mut chars = s.text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            // A string literal, '' standing for a quote inside it.
            let prefixed =
                sql.ends_with(|p: char| p.is_ascii_alphanumeric() || p == '_' || p == '&');
            let mut content = String::new();
            loop {
                match chars.next() {
                    Some('\'') if chars.peek() == Some(&'\'') => {
                        chars.next();
                        content.push_str("''");
                    }
                    Some('\'') => break,
                    Some(ch) => content.push(ch),
                    None => return Err(format!("unterminated string literal in {}", s.text)),
                }
            }
            if prefixed && content.contains(':') {
                return Err(format!(
                    "a prefixed string literal with a colon, which pgbench would misread: {}",
                    s.text
                ));
            }
            sql.push_str(&if prefixed {
                format!("'{content}'")
            } else {
                literal(&content)
            });
            continue;
        }
        if c == ':' {
            // Only casts (`::`) may hold colons outside literals.
            if chars.peek() == Some(&':') {
                chars.next();
                sql.push_str("::");
                continue;
            }
            return Err(format!(
                "a `:` outside a cast, which pgbench would misread: {}",
                s.text
            ));
        }
        if c != '$' {
            sql.push(c);
            continue;
        }
        let mut digits = String::new();
        while let Some(&d) = chars.peek() {
            if !d.is_ascii_digit() {
                break;
            }
            digits.push(d);
            chars.next();
        }
        let Ok(n) = digits.parse::<usize>() else {
            sql.push('$');
            sql.push_str(&digits);
            continue;
        };
        let value = s
            .values
            .get(n.wrapping_sub(1))
            .ok_or_else(|| format!("no value for ${n} in {}", s.text))?;
        let text = match value {
            Json::Null => {
                sql.push_str("NULL");
                continue;
            }
            Json::String(v) => v.clone(),
            other => other.to_string(),
        };
        let name = format!("{prefix}_{n}");
        sql.push(':');
        sql.push_str(&name);
        defines.push(format!("{name}={text}"));
    }
    let sql = sql.trim().trim_end_matches(';').to_string();
    Ok((sql, defines))
}

/// Runs pgbench over `samples` against `url` (the owner's, which may `SET role`).
pub fn run(
    name: &str,
    samples: &[Sample],
    url: &str,
    postmaster: u32,
    duration: u64,
    connections: u32,
    workdir: &Path,
) -> Result<Figures, String> {
    if samples.is_empty() {
        return Err(format!("{name}: no SQL captured for pgbench"));
    }
    let dir = workdir.join(format!("pgbench-{}", crate::load::slug(name)));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut args: Vec<String> = vec![
        "-n".into(),
        "-M".into(),
        "prepared".into(),
        format!("-c{connections}"),
        format!("-j{}", connections.clamp(1, 2)),
        format!("-T{duration}"),
    ];
    for (i, sample) in samples.iter().take(MAX_SAMPLES).enumerate() {
        let mut script = format!(
            "BEGIN;\nSET LOCAL role gateway_app;\nSELECT set_config('app.tenant_id', :t{i}, true);\n"
        );
        args.push("-D".into());
        args.push(format!("t{i}={}", sample.tenant));
        for (j, st) in sample.statements.iter().enumerate() {
            let (sql, defines) = script_statement(st, &format!("v{i}_{j}"))?;
            script.push_str(&sql);
            script.push_str(";\n");
            for d in defines {
                args.push("-D".into());
                args.push(d);
            }
        }
        script.push_str("COMMIT;\n");
        let path = dir.join(format!("s{i}.sql"));
        std::fs::write(&path, script).map_err(|e| format!("{}: {e}", path.display()))?;
        args.push("-f".into());
        args.push(path.to_string_lossy().into_owned());
    }
    args.push(url.to_string());
    let before = cpu::cluster_ticks(postmaster)?;
    let out = Command::new("pgbench")
        .args(&args)
        // As PostGraphile's connections: no JIT optimisation.
        .env("PGOPTIONS", "-c jit_optimize_above_cost=-1")
        .output()
        .map_err(|e| format!("cannot run pgbench (apt-get install postgresql-contrib?): {e}"))?;
    let after = cpu::cluster_ticks(postmaster)?;
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!(
            "{name}: pgbench failed ({}): {err}{text}",
            out.status
        ));
    }
    let number = |prefix: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    };
    let failed = number("number of failed transactions:").unwrap_or(0.0);
    if failed > 0.0 {
        return Err(format!(
            "{name}: pgbench had {failed} failed transactions: {err}{text}"
        ));
    }
    let tps =
        number("tps =").ok_or_else(|| format!("{name}: no tps in pgbench's output: {text}"))?;
    let done = number("number of transactions actually processed:").unwrap_or(0.0);
    let ms = (after.saturating_sub(before)) as f64 * 1000.0 / cpu::ticks_per_second();
    Ok(Figures {
        tps,
        postgres_ms: if done > 0.0 { ms / done } else { 0.0 },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_variables() {
        let s = Statement {
            text: "select x::\"uuid\" from t where a = $1::\"uuid\" and b = $2 and c = $3 and d = 'it''s $1';"
                .into(),
            values: vec![Json::String("abc".into()), Json::from(20), Json::Null],
        };
        let (sql, defines) = script_statement(&s, "v0_0").unwrap();
        assert_eq!(
            sql,
            "select x::\"uuid\" from t where a = :v0_0_1::\"uuid\" and b = :v0_0_2 and c = NULL and d = 'it''s $1'"
        );
        assert_eq!(defines, vec!["v0_0_1=abc", "v0_0_2=20"]);
    }

    #[test]
    fn colons_in_literals_are_escaped() {
        let s = Statement {
            text: "select to_char(now(), 'YYYY-MM-DD\"T\"HH24:MI:SS.USTZH:TZM'::text), 'a\\b:c'"
                .into(),
            values: vec![],
        };
        let (sql, _) = script_statement(&s, "v").unwrap();
        assert_eq!(
            sql,
            "select to_char(now(), E'YYYY-MM-DD\"T\"HH24\\x3aMI\\x3aSS.USTZH\\x3aTZM'::text), E'a\\\\b\\x3ac'"
        );
        let bare = Statement {
            text: "select :x".into(),
            values: vec![],
        };
        assert!(script_statement(&bare, "v").is_err());
    }
}
