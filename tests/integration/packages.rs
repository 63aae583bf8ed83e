//! Packages served from `GATEWAY_PACKAGES_DIR`: their entities are in the schema and served
//! after a restart of the same binary, with no build.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value as Json};

use crate::harness::{TestApp, SECRET};

const BOOKMARKS: &str = r#"package: bookmarks
description: "Saved links"
enums:
  - name: BookmarkKind
    values: [LINK, THREAD]
entities:
  - name: Bookmark
    version: "1.0"
    description: "A link a user keeps"
    owner: userId
    fields:
      userId:
        type: uuid
        required: true
      kind:
        type: enum
        enum: BookmarkKind
        required: true
        default: LINK
      url:
        type: string
        required: true
        maxLength: 2000
      threadId:
        type: uuid
    relations:
      - name: user
        type: belongsTo
        entity: User
        field: userId
        inverse: bookmarks
        onDelete: Cascade
      - name: thread
        type: belongsTo
        entity: ForumThread
        field: threadId
        inverse: bookmarks
        onDelete: SetNull
    acl:
      create: [user]
      read: [self, admin]
      update: [self]
      delete: [self, admin]
"#;

/// A packages folder holding `files` as (package, entities.yaml).
fn packages(files: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gateway-packages-{}", uuid::Uuid::new_v4()));
    for (package, yaml) in files {
        std::fs::create_dir_all(dir.join(package)).expect("package folder");
        std::fs::write(dir.join(package).join("entities.yaml"), yaml).expect("entities.yaml");
    }
    dir
}

fn gateway() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gateway"));
    c.env_remove("DATABASE_URL")
        .env_remove("GATEWAY_OWNER_DATABASE_URL")
        .env("RUST_LOG", "warn");
    c
}

/// `gateway export-schema`, with the packages of `dir` when given.
fn export_schema(dir: Option<&Path>) -> std::process::Output {
    let mut c = gateway();
    c.arg("export-schema");
    if let Some(dir) = dir {
        c.env("GATEWAY_PACKAGES_DIR", dir);
    }
    c.output().expect("run gateway")
}

#[test]
fn a_package_entity_is_in_the_schema_without_a_build() {
    let dir = packages(&[("bookmarks", BOOKMARKS)]);
    let out = export_schema(Some(&dir));
    let sdl = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "type Bookmark {",
        "enum BookmarkKind {",
        "createBookmark(input: BookmarkCreateInput!): Bookmark!",
        "bookmarkChanged(where: BookmarkWhere",
        // The inverse relations reach the built-in entities too.
        "bookmarks(where: BookmarkWhere, orderBy: [BookmarkOrderBy!]",
    ] {
        assert!(sdl.contains(expected), "missing {expected}");
    }
    // Without the folder, the built-in schema.
    let plain = export_schema(None);
    assert!(!String::from_utf8_lossy(&plain.stdout).contains("Bookmark"));
}

#[test]
fn a_conflicting_package_is_refused_naming_its_file() {
    // Redefines a built-in entity differently.
    let clash = r#"package: clash
entities:
  - name: Tag
    version: "1.0"
    fields:
      label:
        type: string
    acl:
      read: [user]
"#;
    let dir = packages(&[("clash", clash)]);
    let out = export_schema(Some(&dir));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("clash/entities.yaml"), "{err}");
    assert!(err.contains("Tag"), "{err}");
}

async fn post(client: &reqwest::Client, addr: &str, token: &str, query: &str, vars: Json) -> Json {
    client
        .post(format!("http://{addr}/graphql"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(json!({"query": query, "variables": vars}).to_string())
        .send()
        .await
        .expect("request")
        .text()
        .await
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Json::Null)
}

/// Restarting the binary with a package creates the entity's table (with row-level security
/// and composite tenant keys) and serves it: created, read back, related both ways, and
/// confined to its tenant.
#[tokio::test]
async fn a_package_entity_is_served_after_a_restart() {
    let app = TestApp::new().await;
    // The binary serves through a login role bound by row-level security: the private test
    // cluster's `gateway_app` (trusted on loopback), as `serve` does with its own cluster.
    let Some(rest) = app.url.strip_prefix("postgres://postgres@") else {
        eprintln!("skipped: TEST_DATABASE_URL gives no login for the serving role");
        return;
    };
    gateway::db::allow_serving_login(&app.url)
        .await
        .expect("serving role login");
    let serving_login = format!("postgres://{}@{rest}", gateway::db::SERVING_ROLE);
    let dir = packages(&[("bookmarks", BOOKMARKS)]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
        .arg("serve")
        .env("DATABASE_URL", &serving_login)
        .env("GATEWAY_OWNER_DATABASE_URL", &app.url)
        .env(
            "GATEWAY_JWT_SECRET",
            String::from_utf8_lossy(SECRET).to_string(),
        )
        .env("GATEWAY_BIND", &addr)
        .env("GATEWAY_PACKAGES_DIR", &dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start gateway");
    let client = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..150 {
        let up = client.get(format!("http://{addr}/readyz")).send().await;
        if up.is_ok_and(|r| r.status().is_success()) {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "the gateway did not become ready");

    let created = post(
        &client,
        &addr,
        &app.a.user,
        "mutation { createBookmark(input: {url: \"https://example.org\", kind: THREAD}) { id kind userId user { id } } }",
        json!({}),
    )
    .await;
    let b = &created["data"]["createBookmark"];
    assert_eq!(b["kind"], "THREAD", "{created}");
    assert_eq!(b["userId"], app.a.user_id.to_string());
    assert_eq!(b["user"]["id"], app.a.user_id.to_string());

    let mine = post(
        &client,
        &addr,
        &app.a.user,
        "{ bookmarks { totalCount } me { bookmarks { nodes { url } } } }",
        json!({}),
    )
    .await;
    assert_eq!(mine["data"]["bookmarks"]["totalCount"], 1, "{mine}");
    assert_eq!(
        mine["data"]["me"]["bookmarks"]["nodes"][0]["url"],
        "https://example.org"
    );
    // Another tenant sees none of it.
    let theirs = post(
        &client,
        &addr,
        &app.b.admin,
        "{ bookmarks { totalCount } }",
        json!({}),
    )
    .await;
    assert_eq!(theirs["data"]["bookmarks"]["totalCount"], 0, "{theirs}");

    let rls = app
        .scalar("SELECT relforcerowsecurity::text FROM pg_class WHERE relname = 'bookmarks'")
        .await;
    assert_eq!(rls, "true");
    child.kill().await.ok();
}
