//! The binary's logs: JSON lines with `GATEWAY_LOG_FORMAT=json`, and no colour codes when
//! stderr is not a terminal.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::harness::TestApp;

/// The first `n` lines `gateway serve` logs, as given.
async fn first_lines(app: &TestApp, json: bool, n: usize) -> Vec<String> {
    let Some(mut cmd) = app.serve_command().await else {
        return Vec::new();
    };
    cmd.env("GATEWAY_BIND", "127.0.0.1:0")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if json {
        cmd.env("GATEWAY_LOG_FORMAT", "json");
    } else {
        cmd.env_remove("GATEWAY_LOG_FORMAT");
    }
    let mut child = cmd.spawn().expect("start gateway");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let mut out = Vec::new();
    while out.len() < n {
        match tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await {
            Ok(Ok(Some(line))) => out.push(line),
            _ => break,
        }
    }
    child.kill().await.ok();
    out
}

#[tokio::test]
async fn logs_are_json_lines_on_request_and_never_coloured_in_a_pipe() {
    let app = TestApp::new().await;
    if !app.url.starts_with("postgres://postgres@") {
        eprintln!("skipped: TEST_DATABASE_URL gives no login for the serving role");
        return;
    }
    let lines = first_lines(&app, true, 2).await;
    assert!(!lines.is_empty(), "no log lines");
    for line in &lines {
        let v: serde_json::Value = serde_json::from_str(line).expect("a JSON log line");
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
        assert!(v["fields"]["message"].is_string(), "{line}");
    }
    assert!(
        lines.iter().any(|l| l.contains("catalog loaded")),
        "{lines:?}"
    );
    let plain = first_lines(&app, false, 2).await;
    assert!(
        plain.iter().any(|l| l.contains("catalog loaded")),
        "{plain:?}"
    );
    assert!(plain.iter().all(|l| !l.contains('\u{1b}')), "{plain:?}");
}
