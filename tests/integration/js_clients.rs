//! Real JavaScript clients from the npm registry against a gateway listening on loopback.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value as Json;

use crate::harness::TestApp;

fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/js")
}

/// Installs the pinned packages of the npm folder `dir` (`npm ci`) unless every one of them is
/// there already; one folder at a time.
pub(crate) fn npm_ci(dir: &std::path::Path) {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let manifest: Json = serde_json::from_str(
        &std::fs::read_to_string(dir.join("package.json")).expect("package.json"),
    )
    .expect("package.json");
    let installed = manifest["dependencies"].as_object().is_some_and(|deps| {
        deps.keys()
            .all(|d| dir.join("node_modules").join(d).is_dir())
    });
    if installed {
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .status()
        .expect("npm is needed for the JavaScript tests");
    assert!(status.success(), "npm ci failed in {}", dir.display());
}

fn ensure_node_modules() {
    npm_ci(&js_dir());
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_ws_apollo_and_legacy_clients_receive_events() {
    tokio::task::spawn_blocking(ensure_node_modules)
        .await
        .expect("npm");
    let app = TestApp::new().await;
    let addr = app.listen().await;
    let (http, ws) = (
        format!("http://{addr}/graphql"),
        format!("ws://{addr}/graphql"),
    );
    let token = app.a.admin.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(js_dir().join("subscription-clients.mjs"))
            .args([&http, &ws, &token])
            .output()
            .expect("node is needed for the subscription client tests")
    })
    .await
    .expect("node");
    assert!(
        out.status.success(),
        "client script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Json = serde_json::from_slice(&out.stdout).expect("client output");
    for (client, slug) in [
        ("graphqlWs", "gws-1"),
        ("apollo", "apollo-1"),
        ("legacy", "legacy-1"),
    ] {
        let event = &got[client];
        assert_eq!(event["op"], "CREATED", "{client}: {event}");
        assert_eq!(event["node"]["slug"], slug, "{client}: {event}");
        assert!(event["cursor"].is_string(), "{client}: {event}");
    }
}

/// What GraphiQL and graphql-js tools send first: the full introspection query, whose
/// `ofType` chain nests deeper than the depth limit. It must work under the default limits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standard_introspection_query_works() {
    tokio::task::spawn_blocking(ensure_node_modules)
        .await
        .expect("npm");
    let out = Command::new("node")
        .args([
            "--input-type=module",
            "-e",
            "import { getIntrospectionQuery } from 'graphql'; \
             process.stdout.write(getIntrospectionQuery({ descriptions: true, specifiedByUrl: true, \
             directiveIsRepeatable: true, schemaDescription: true, inputValueDeprecation: true }));",
        ])
        .current_dir(js_dir())
        .output()
        .expect("node");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let query = String::from_utf8(out.stdout).expect("query text");
    assert!(query.matches("ofType").count() >= 8, "{query}");
    let app = TestApp::new().await;
    let data = app.ok(&app.a.user, &query, serde_json::json!({})).await;
    let types = data["__schema"]["types"].as_array().expect("types");
    assert!(types.iter().any(|t| t["name"] == "ForumThread"));
}

/// GraphQL Code Generator's client preset types a front end's documents
/// (tests/js/documents) from the committed `schema.graphql` without errors, and the
/// generated TypeScript type-checks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_types_generate_from_the_schema() {
    tokio::task::spawn_blocking(ensure_node_modules)
        .await
        .expect("npm");
    let out = tokio::task::spawn_blocking(|| {
        Command::new("node")
            .arg(js_dir().join("typed-clients.mjs"))
            // Presets and plugins are found from the working folder.
            .current_dir(js_dir())
            .output()
            .expect("node is needed for GraphQL Code Generator")
    })
    .await
    .expect("node");
    assert!(
        out.status.success(),
        "codegen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: Json = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .expect("a JSON summary");
    assert_eq!(summary["diagnostics"], serde_json::json!([]), "{summary}");
    assert_eq!(
        summary["types"],
        serde_json::json!([
            "ThreadPageQuery",
            "ReplyMutation",
            "ClaimTaskMutation",
            "MyNotificationsSubscription",
            "TaskStatus"
        ]),
        "{summary}"
    );
}
