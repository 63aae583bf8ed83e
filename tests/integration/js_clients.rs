//! Real JavaScript clients from the npm registry against a gateway listening on loopback.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value as Json;

use crate::harness::TestApp;

fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/js")
}

/// Installs the pinned packages once (`npm ci`), unless they are there already.
fn ensure_node_modules() {
    let dir = js_dir();
    if dir.join("node_modules/graphql-http").is_dir() {
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .status()
        .expect("npm is needed for the JavaScript client tests");
    assert!(status.success(), "npm ci failed in tests/js");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_http_audit_reports_no_errors() {
    tokio::task::spawn_blocking(ensure_node_modules)
        .await
        .expect("npm");
    let app = TestApp::new().await;
    let addr = app.listen().await;
    let url = format!("http://{addr}/graphql");
    let token = app.a.user.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(js_dir().join("graphql-http-audit.mjs"))
            .args([&url, &token])
            .output()
            .expect("node is needed for the graphql-http audit")
    })
    .await
    .expect("node");
    assert!(
        out.status.success(),
        "audit script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<Json> = serde_json::from_slice(&out.stdout).expect("audit output");
    assert!(results.len() > 20, "too few audits ran: {}", results.len());
    let errors: Vec<&Json> = results.iter().filter(|r| r["status"] == "error").collect();
    assert!(errors.is_empty(), "graphql-http audit errors: {errors:#?}");
    let warnings: Vec<String> = results
        .iter()
        .filter(|r| r["status"] == "warn")
        .map(|r| format!("{}: {}", r["name"], r["reason"]))
        .collect();
    if !warnings.is_empty() {
        eprintln!("graphql-http audit warnings:\n{}", warnings.join("\n"));
    }
}
