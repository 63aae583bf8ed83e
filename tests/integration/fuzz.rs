//! A fuzzing run of the GraphQL endpoint with schemathesis, as an admin and as an ordinary
//! user, that must find no server error: no HTTP 5xx and no GraphQL error with
//! `extensions.code` `INTERNAL` (the check `no_internal_error` in tests/fuzz/hooks.py).
//!
//! Needs python3 with the `venv` module and access to PyPI: the first run installs the pinned
//! packages of tests/fuzz/requirements.txt into `.data/schemathesis-venv`, later runs reuse it.
//! A full log of each run is left in `.data/fuzz/`, and the gateway's log lines for its INTERNAL
//! errors (the detail behind each `errorId`) in `.data/fuzz/gateway-errors.log`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::TestApp;

/// Test cases per operation and run: both runs together stay within about three minutes on
/// two cores (the schema has some 650 operations).
const MAX_EXAMPLES: u32 = 4;
/// A fixed seed, so that a failure is found again by the next run.
const SEED: u64 = 20261123;
/// Far more than a run takes; a hanging run fails instead of blocking the suite.
const RUN_TIMEOUT: Duration = Duration::from_secs(600);

fn project() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn venv() -> PathBuf {
    project().join(".data/schemathesis-venv")
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Creates the virtualenv and installs the pinned requirements, unless an earlier run did so
/// with the same requirements file (recorded in a stamp file inside the venv).
fn ensure_venv() -> PathBuf {
    let requirements = project().join("tests/fuzz/requirements.txt");
    let wanted = std::fs::read_to_string(&requirements).expect("tests/fuzz/requirements.txt");
    let pinned = wanted
        .lines()
        .find_map(|l| l.trim().strip_prefix("schemathesis=="))
        .expect("requirements.txt pins schemathesis")
        .to_string();
    let venv = venv();
    let exe = venv.join("bin/schemathesis");
    let stamp = venv.join("requirements.installed");
    if !(exe.is_file() && std::fs::read_to_string(&stamp).is_ok_and(|s| s == wanted)) {
        if !venv.join("bin/python").is_file() {
            run(
                Command::new("python3").args(["-m", "venv"]).arg(&venv),
                "python3 -m venv (python3 with the venv module is needed)",
            );
        }
        run(
            Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", "-r"])
                .arg(&requirements),
            "pip install -r tests/fuzz/requirements.txt (PyPI must be reachable)",
        );
        std::fs::write(&stamp, &wanted).expect("write the venv's stamp");
    }
    let out = Command::new(&exe)
        .arg("--version")
        .output()
        .expect("schemathesis --version");
    let version = String::from_utf8_lossy(&out.stdout);
    assert!(
        version.trim_end().ends_with(&format!("version {pinned}")),
        "the venv has {version:?}, not schemathesis {pinned}"
    );
    exe
}

fn fuzz_dir() -> PathBuf {
    let dir = project().join(".data/fuzz");
    std::fs::create_dir_all(&dir).expect("create .data/fuzz");
    dir
}

/// Sends the gateway's error log (the detail of every INTERNAL error, by `errorId`) to
/// `.data/fuzz/gateway-errors.log`: responses carry only the id. The subscriber is global, so
/// other tests of this process may add their lines too.
fn log_gateway_errors() -> PathBuf {
    let path = fuzz_dir().join("gateway-errors.log");
    let file = std::fs::File::create(&path).expect("create gateway-errors.log");
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("gateway::error=error"))
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .try_init();
    path
}

/// The last `n` bytes of `s` (or a little more, up to a character boundary).
fn tail(s: &str, n: usize) -> &str {
    let mut start = s.len().saturating_sub(n);
    while !s.is_char_boundary(start) {
        start -= 1;
    }
    &s[start..]
}

/// Runs schemathesis against `url` with `token`; returns the exit status's success and the
/// output, which it also leaves in `.data/fuzz/<who>.log`.
async fn schemathesis(
    exe: &Path,
    schema: &Path,
    url: &str,
    token: &str,
    ids: &str,
    who: &str,
) -> (bool, String) {
    let mut cmd = tokio::process::Command::new(exe);
    cmd.arg("run")
        .arg(schema)
        .args(["--url", url])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--checks", "no_internal_error", "--phases", "fuzzing"])
        .args(["--max-examples", &MAX_EXAMPLES.to_string()])
        .args(["--seed", &SEED.to_string(), "--workers", "1"])
        // No example database: it would replay earlier runs' cases and make runs differ.
        .args(["--generation-database", "none", "--request-timeout", "30"])
        // The "operations never returned data" list would bury the failures.
        .args(["--warnings", "off", "--no-color"])
        .env("SCHEMATHESIS_HOOKS", project().join("tests/fuzz/hooks.py"))
        .env("GATEWAY_FUZZ_IDS", ids)
        // Anything it writes to its working directory stays in the git-ignored `.data/`.
        .current_dir(project().join(".data"))
        .kill_on_drop(true);
    let started = Instant::now();
    let out = tokio::time::timeout(RUN_TIMEOUT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("schemathesis ({who}) ran longer than {RUN_TIMEOUT:?}"))
        .expect("start schemathesis");
    eprintln!("schemathesis as {who}: {:?}", started.elapsed());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(fuzz_dir().join(format!("{who}.log")), &text).expect("write the run's log");
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error() {
    let exe = tokio::task::spawn_blocking(ensure_venv)
        .await
        .expect("schemathesis venv");
    let errors_log = log_gateway_errors();
    let app = TestApp::new().await;
    // A few rows, whose IDs the hooks also hand out, so that reads and writes hit something.
    let data = app
        .ok(
            &app.a.admin,
            "mutation { createForumCategory(input: {name: \"General\", slug: \"general\"}) { id } }",
            json!({}),
        )
        .await;
    let category = data["createForumCategory"]["id"].as_str().expect("id");
    let data = app
        .ok(
            &app.a.user,
            "mutation($c: ID!) { createForumThread(input: {categoryId: $c, title: \"Hello\", slug: \"hello\"}) { id } }",
            json!({ "c": category }),
        )
        .await;
    let thread = data["createForumThread"]["id"].as_str().expect("id");
    let data = app
        .ok(
            &app.a.user,
            "mutation($t: ID!) { createForumPost(input: {threadId: $t, content: \"First\"}) { id } }",
            json!({ "t": thread }),
        )
        .await;
    let post = data["createForumPost"]["id"].as_str().expect("id");
    let ids = [
        category.to_string(),
        thread.to_string(),
        post.to_string(),
        app.a.admin_id.to_string(),
        app.a.user_id.to_string(),
    ]
    .join(",");

    // From the SDL rather than by introspection: the standard introspection query is deeper
    // than the gateway's default depth limit, so the endpoint refuses it.
    let sdl = gateway::graphql::build(
        None,
        None,
        Default::default(),
        &gateway::config::Limits::default(),
    )
    .sdl();
    let schema = std::env::temp_dir().join(format!("gateway-fuzz-{}.graphql", std::process::id()));
    std::fs::write(&schema, sdl).expect("write the schema");

    let addr = app.listen().await;
    let url = format!("http://{addr}/graphql");
    let mut failed = Vec::new();
    // The user first: the admin's run may delete the seeded rows.
    for (who, token) in [("user", &app.a.user), ("admin", &app.a.admin)] {
        let (ok, output) = schemathesis(&exe, &schema, &url, token, &ids, who).await;
        if !ok {
            failed.push(format!(
                "--- schemathesis as {who} failed (full log: .data/fuzz/{who}.log); its last lines:\n{}",
                tail(&output, 12_000)
            ));
        }
    }
    let _ = std::fs::remove_file(&schema);
    if !failed.is_empty() {
        let details = std::fs::read_to_string(&errors_log).unwrap_or_default();
        failed.push(format!(
            "--- the gateway's log of its INTERNAL errors (.data/fuzz/gateway-errors.log):\n{}",
            tail(&details, 6_000)
        ));
    }
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}
