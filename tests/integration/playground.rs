//! The GraphiQL playground the gateway serves itself (`src/http/playground.rs`): the page, its
//! Content-Security-Policy and embedded assets over HTTP, and the page used in headless
//! Chromium (`tests/browser/graphiql.mjs`, Debian's `chromium` driven by `puppeteer-core`).

use std::path::{Path, PathBuf};
use std::process::Command;

use axum::body::Body;
use axum::http::{header, HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value as Json;
use tower::ServiceExt;

use crate::harness::TestApp;

pub(crate) fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Installs `tests/browser`'s pinned packages unless they are there already.
fn ensure_node_modules() {
    crate::js_clients::npm_ci(&browser_dir());
}

/// The system's Chromium: `GATEWAY_CHROMIUM`, else `chromium` or `chromium-browser` on `PATH`.
/// Missing, the test fails: it must not pass without having run.
pub(crate) fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("GATEWAY_CHROMIUM") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "GATEWAY_CHROMIUM is {}, which is not a file",
            path.display()
        );
        return path;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "headless Chromium is needed for the browser tests (GraphiQL, Apollo Client and \
                 urql) and was not found: install Debian's package with \
                 `apt-get install -y chromium` (.ci/run does), or \
                 set GATEWAY_CHROMIUM to a Chromium or Chrome binary. No browser is downloaded."
            )
        })
}

/// `target/browser-artifacts/<name>`, where the screenshots are kept.
/// Runs `tests/browser/<script>.mjs` in headless Chromium with `args`, its screenshots going
/// to `dir`; it must succeed. Returns the summary it prints.
pub(crate) async fn run_in_chromium(
    script: &str,
    what: &str,
    args: Vec<String>,
    dir: &Path,
) -> Json {
    let chromium = chromium();
    let file = browser_dir().join(format!("{script}.mjs"));
    let dir_arg = dir.to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(file)
            .arg(&chromium)
            .args(&args)
            .arg(&dir_arg)
            .output()
            .expect("node is needed for the browser test")
    })
    .await
    .expect("node");
    assert!(
        out.status.success(),
        "{what} failed (screenshots in {}):\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("summary")
}

pub(crate) fn artefacts(name: &str) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("browser-artifacts")
        .join(name)
}

async fn get(app: &TestApp, uri: &str, headers: &[(header::HeaderName, &str)]) -> Response {
    let mut req = Request::builder().uri(uri);
    for (name, value) in headers {
        req = req.header(name, *value);
    }
    let res = app
        .router
        .clone()
        .oneshot(req.body(Body::empty()).expect("request"))
        .await
        .expect("router");
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    Response {
        status,
        headers,
        body: body.to_vec(),
    }
}

struct Response {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: header::HeaderName) -> &str {
        self.headers
            .get(&name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

fn page_request() -> [(header::HeaderName, &'static str); 2] {
    [
        (header::ACCEPT, "text/html,application/xhtml+xml"),
        (header::HOST, "gateway.example:8080"),
    ]
}

#[tokio::test]
async fn the_page_loads_only_its_own_hashed_assets_under_a_strict_policy() {
    let app = TestApp::new().await;
    let page = get(&app, "/graphql", &page_request()).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.header(header::CONTENT_TYPE).starts_with("text/html"));
    assert_eq!(page.header(header::CACHE_CONTROL), "no-cache");
    let html = String::from_utf8(page.body.clone()).expect("utf-8");
    let csp = page.header(header::CONTENT_SECURITY_POLICY).to_string();
    let directive = |name: &str| -> String {
        csp.split(';')
            .map(str::trim)
            .find_map(|d| d.strip_prefix(name).map(|v| v.trim().to_string()))
            .unwrap_or_else(|| panic!("no {name} in {csp}"))
    };
    assert_eq!(directive("default-src"), "'self'");
    assert_eq!(directive("script-src"), "'self'", "no inline script");
    assert_eq!(
        directive("connect-src"),
        "'self' ws://gateway.example:8080 wss://gateway.example:8080"
    );
    assert_eq!(directive("object-src"), "'none'");
    assert_eq!(directive("frame-ancestors"), "'none'");
    let nonce = directive("style-src")
        .strip_prefix("'self' 'nonce-")
        .and_then(|n| n.strip_suffix('\''))
        .expect("style-src 'self' 'nonce-...'")
        .to_string();
    assert!(
        html.contains(&format!("data-style-nonce=\"{nonce}\"")),
        "{html}"
    );
    assert!(!csp.contains("unsafe"), "{csp}");
    // A fresh nonce for every page.
    let again = get(&app, "/graphql", &page_request()).await;
    assert!(!again
        .header(header::CONTENT_SECURITY_POLICY)
        .contains(&nonce));

    // No inline script, nothing from elsewhere: the page's URLs are its two assets.
    assert_eq!(html.matches("<script").count(), 1, "{html}");
    assert!(html.contains("></script>"), "{html}");
    assert!(!html.contains("http:") && !html.contains("https:") && !html.contains("//"));
    let assets: Vec<&str> = html
        .split('"')
        .filter(|s| s.starts_with("graphql/assets/"))
        .collect();
    assert_eq!(assets.len(), 2, "{html}");
    for asset in assets {
        let uri = format!("/{asset}");
        let res = get(&app, &uri, &[]).await;
        assert_eq!(res.status, StatusCode::OK, "{uri}");
        let ctype = if uri.ends_with(".js") {
            "text/javascript; charset=utf-8"
        } else {
            "text/css; charset=utf-8"
        };
        assert_eq!(res.header(header::CONTENT_TYPE), ctype, "{uri}");
        assert_eq!(
            res.header(header::CACHE_CONTROL),
            "public, max-age=31536000, immutable"
        );
        assert_eq!(res.header(header::X_CONTENT_TYPE_OPTIONS), "nosniff");
        assert!(
            res.body.starts_with(b"/* GENERATED by tools/graphiql"),
            "{uri}"
        );
        assert!(res.body.len() > 10_000, "{uri}");
        // The name carries the start of the content's sha256, the entity tag all of it.
        let etag = res.header(header::ETAG).to_string();
        let hash = uri.rsplit('.').nth(1).expect("hash in the name");
        assert_eq!(hash.len(), 16);
        assert!(etag.starts_with(&format!("\"{hash}")), "{etag}");
        let cached = get(&app, &uri, &[(header::IF_NONE_MATCH, &etag)]).await;
        assert_eq!(cached.status, StatusCode::NOT_MODIFIED, "{uri}");
        assert!(cached.body.is_empty());
        assert_eq!(cached.header(header::ETAG), etag);
        let stale = get(&app, &uri, &[(header::IF_NONE_MATCH, "\"other\"")]).await;
        assert_eq!(stale.status, StatusCode::OK);
    }
    for missing in [
        "/graphql/assets/graphiql.js",
        "/graphql/assets/graphiql.0000000000000000.js",
        "/graphql/assets/..%2FCargo.toml",
    ] {
        let res = get(&app, missing, &[]).await;
        assert_eq!(res.status, StatusCode::NOT_FOUND, "{missing}");
    }

    // A Host that could smuggle a directive into the policy is left out of it.
    let res = get(
        &app,
        "/graphql",
        &[
            (header::ACCEPT, "text/html"),
            (header::HOST, "evil.example;script-src"),
        ],
    )
    .await;
    let csp = res.header(header::CONTENT_SECURITY_POLICY);
    assert!(
        csp.contains("connect-src 'self';") && !csp.contains("evil"),
        "{csp}"
    );
}

/// GraphiQL in headless Chromium against a gateway on loopback: it renders with no request
/// leaving the gateway's origin, the token pasted into the headers editor loads the schema
/// (docs, explorer), a query shows its result, a subscription over graphql-transport-ws shows
/// the event of a mutation, and the browser console stays free of errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphiql_works_offline_in_headless_chromium() {
    // Fails at once, saying so, on a machine without Chromium.
    chromium();
    tokio::task::spawn_blocking(ensure_node_modules)
        .await
        .expect("npm");
    let app = TestApp::new().await;
    let addr = app.listen().await;
    let url = format!("http://{addr}/graphql");
    let token = app.a.admin.clone();
    let dir = artefacts("graphiql");
    let started = std::time::Instant::now();
    let summary = run_in_chromium(
        "graphiql",
        "the GraphiQL browser test",
        vec![url, token, "admin@alpha.test".into()],
        &dir,
    )
    .await;
    let screenshots = summary["screenshots"].as_array().expect("screenshots");
    assert_eq!(screenshots.len(), 3, "{summary}");
    for shot in screenshots {
        let path = PathBuf::from(shot.as_str().expect("path"));
        assert!(
            std::fs::metadata(&path).is_ok_and(|m| m.len() > 1000),
            "{}",
            path.display()
        );
    }
    assert_eq!(
        summary["sockets"],
        serde_json::json!([format!("ws://{addr}/graphql")]),
        "{summary}"
    );
    eprintln!(
        "GraphiQL in Chromium: {summary} ({:.1} s with the browser's start)",
        started.elapsed().as_secs_f64()
    );
}
