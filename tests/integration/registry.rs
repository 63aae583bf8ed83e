//! The package schema registry end to end (seed 001), through the real binary: a package
//! with the seed's own example file and one that conflicts with it; scan, list, preview,
//! approval (refused to a tenant's admin), restarts of two instances at once; the new
//! entities queried, filtered, subscribed to and isolated like built-in ones; an added field,
//! a destructive change refused without the flag, a failing change rolled back, drift.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::{json, Value as Json};

use crate::harness::{TestApp, SECRET};
use crate::packages::BOOKMARKS;
use crate::subscriptions::{acked, recv, send};

/// The example of seed 001, as written there.
const SEED_EXAMPLE: &str = r#"entities:
  - name: MyEntity
    version: "1.0"
    description: "Description of entity"
    
    fields:
      id:
        type: cuid
        primary: true
        generated: true
        
      tenantId:
        type: string
        required: true
        index: true
        
      name:
        type: string
        required: true
        maxLength: 100
        
      data:
        type: string
        nullable: true
        description: "JSON: additional data"
        
      createdAt:
        type: bigint
        required: true

    indexes:
      - fields: [tenantId, name]
        unique: true

    relations:
      - name: tenant
        type: belongsTo
        entity: Tenant
        field: tenantId
        onDelete: Cascade

    acl:
      create: [user]
      read: [public]
      update: [self, admin]
      delete: [admin]
"#;

const METADATA: &str = r#"{
  "packageId": "my_package",
  "schema": {
    "entities": ["MyEntity"],
    "path": "schema/entities.yaml"
  }
}"#;

/// Another package declaring MyEntity differently.
const RIVAL: &str = r#"package: rival
entities:
  - name: MyEntity
    fields:
      title:
        type: string
    acl:
      create: [user]
      read: [user]
      update: [admin]
      delete: [admin]
"#;

/// A packages folder, the database as owner and as a login of the serving role, and the
/// binary run against them.
struct Registry {
    dir: PathBuf,
    owner: String,
    serving: String,
}

impl Registry {
    fn schema_file(&self) -> PathBuf {
        self.dir.join("my_package/seed/schema/entities.yaml")
    }

    fn write(&self, path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("folder");
        std::fs::write(path, text).expect("write");
    }

    fn command(&self) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_gateway"));
        c.env("DATABASE_URL", &self.serving)
            .env("GATEWAY_OWNER_DATABASE_URL", &self.owner)
            .env(
                "GATEWAY_JWT_SECRET",
                String::from_utf8_lossy(SECRET).to_string(),
            )
            .env("GATEWAY_PACKAGES_DIR", &self.dir)
            .env("RUST_LOG", "warn")
            .kill_on_drop(true);
        c
    }

    /// `gateway schema <args>`.
    async fn schema(&self, args: &[&str]) -> Output {
        self.command()
            .arg("schema")
            .args(args)
            .output()
            .await
            .expect("run gateway schema")
    }

    async fn schema_ok(&self, args: &[&str]) -> String {
        let out = self.schema(args).await;
        assert!(
            out.status.success(),
            "gateway schema {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    async fn list(&self) -> Vec<Json> {
        let out = self.schema_ok(&["list", "--json"]).await;
        serde_json::from_str(&out).expect("list --json")
    }

    /// Starts `gateway serve` and waits until it is ready.
    async fn serve(&self) -> Instance {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let addr = format!("127.0.0.1:{port}");
        let child = self
            .command()
            .arg("serve")
            .env("GATEWAY_BIND", &addr)
            .stdout(Stdio::null())
            .spawn()
            .expect("start gateway");
        let instance = Instance {
            child,
            addr,
            client: reqwest::Client::new(),
        };
        instance.ready().await;
        instance
    }
}

struct Instance {
    child: tokio::process::Child,
    addr: String,
    client: reqwest::Client,
}

impl Instance {
    async fn ready(&self) {
        for _ in 0..300 {
            let up = self
                .client
                .get(format!("http://{}/readyz", self.addr))
                .send()
                .await;
            if up.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the gateway on {} did not become ready", self.addr);
    }

    async fn post(&self, token: &str, query: &str, vars: Json) -> Json {
        self.client
            .post(format!("http://{}/graphql", self.addr))
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

    /// The data of a request that must succeed.
    async fn ok(&self, token: &str, query: &str, vars: Json) -> Json {
        let r = self.post(token, query, vars).await;
        assert!(r.get("errors").is_none(), "{query}: {r}");
        r["data"].clone()
    }

    async fn stop(mut self) {
        self.child.kill().await.ok();
    }
}

async fn registry(app: &TestApp) -> Option<Registry> {
    // The binary serves through a login role bound by row-level security: the private test
    // cluster's `gateway_app` (trusted on loopback), as `serve` does with its own cluster.
    let Some(rest) = app.url.strip_prefix("postgres://postgres@") else {
        eprintln!("skipped: TEST_DATABASE_URL gives no login for the serving role");
        return None;
    };
    gateway::db::allow_serving_login(&app.url)
        .await
        .expect("serving role login");
    let dir = std::env::temp_dir().join(format!("gateway-registry-{}", uuid::Uuid::new_v4()));
    let r = Registry {
        dir,
        owner: app.url.clone(),
        serving: format!("postgres://{}@{rest}", gateway::db::SERVING_ROLE),
    };
    r.write(&r.schema_file(), SEED_EXAMPLE);
    r.write(&r.dir.join("my_package/seed/metadata.json"), METADATA);
    Some(r)
}

#[tokio::test]
async fn a_package_goes_from_scan_through_approval_to_served_entities() {
    let app = TestApp::new().await;
    let Some(r) = registry(&app).await else {
        return;
    };

    // Two packages defining MyEntity differently: the scan refuses, naming both files.
    r.write(&r.dir.join("rival/entities.yaml"), RIVAL);
    let out = r.schema(&["scan"]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("rival/entities.yaml"), "{err}");
    assert!(
        err.contains("my_package/seed/schema/entities.yaml"),
        "{err}"
    );
    assert!(err.contains("MyEntity"), "{err}");
    assert!(r.list().await.is_empty(), "a refused scan queues nothing");
    std::fs::remove_dir_all(r.dir.join("rival")).expect("remove rival");

    // The seed's example and a package with enums and relations to built-in entities.
    r.write(&r.dir.join("bookmarks/entities.yaml"), BOOKMARKS);
    let out = r.schema_ok(&["scan"]).await;
    assert!(out.contains("2 change(s) queued"), "{out}");
    assert!(out.contains("served as the primary key"), "{out}");
    let again = r.schema_ok(&["scan"]).await;
    assert!(
        again.contains("0 change(s) queued, 2 already queued"),
        "{again}"
    );
    let pending = r.list().await;
    assert_eq!(pending.len(), 2, "{pending:?}");
    let mine = pending
        .iter()
        .find(|c| c["entityName"] == "MyEntity")
        .expect("MyEntity queued");
    assert_eq!(mine["status"], "PENDING");
    assert_eq!(mine["kind"], "ADD");
    assert_eq!(mine["packageId"], "my_package");
    assert_eq!(mine["destructive"], false);
    assert!(mine["checksum"].as_str().is_some_and(|c| c.len() == 64));
    assert!(mine["previousChecksum"].is_null());
    let sql = mine["sql"].as_str().unwrap_or_default();
    for expected in [
        "CREATE TABLE \"my_entities\"",
        "UNIQUE (\"tenant_id\", \"id\")",
        "FORCE ROW LEVEL SECURITY",
        "GRANT SELECT, INSERT, UPDATE, DELETE ON \"my_entities\" TO gateway_app",
        "CREATE UNIQUE INDEX \"my_entities_tenant_id_name_key\"",
    ] {
        assert!(sql.contains(expected), "missing {expected} in {sql}");
    }
    let preview = r.schema_ok(&["preview", "my_package"]).await;
    for expected in [
        "CREATE TABLE \"my_entities\"",
        "type MyEntity {",
        "input MyEntityCreateInput {",
        "createMyEntity(input: MyEntityCreateInput!): MyEntity!",
        "`self` grants nothing",
    ] {
        assert!(
            preview.contains(expected),
            "missing {expected} in {preview}"
        );
    }

    // Pending changes are not served; only the platform operator may approve.
    let first = r.serve().await;
    let unknown = first
        .post(&app.a.user, "{ myEntities { totalCount } }", json!({}))
        .await;
    assert!(unknown.get("errors").is_some(), "{unknown}");
    let approve = "mutation { approveSchemaChanges(all: true) { approved { id entityName status } refused } }";
    for token in [&app.a.admin, &app.a.user] {
        let denied = first.post(token, approve, json!({})).await;
        assert_eq!(
            denied["errors"][0]["extensions"]["code"], "FORBIDDEN",
            "{denied}"
        );
    }
    let denied = first
        .post(
            &app.a.admin,
            "{ schemaRegistryStatus { pending } }",
            json!({}),
        )
        .await;
    assert_eq!(denied["errors"][0]["extensions"]["code"], "FORBIDDEN");
    let status = first
        .ok(
            &app.a.platform,
            "{ schemaRegistryStatus { pending approved } }",
            json!({}),
        )
        .await;
    assert_eq!(status["schemaRegistryStatus"]["pending"], 2, "{status}");
    // The operator's other actions over GraphQL: a scan finds both queued already, the
    // preview shows the SQL and the types the package would add.
    let scan = first
        .ok(
            &app.a.platform,
            "mutation { scanSchemaPackages { queued { id } alreadyQueued notes } }",
            json!({}),
        )
        .await;
    assert_eq!(scan["scanSchemaPackages"]["queued"], json!([]), "{scan}");
    assert_eq!(
        scan["scanSchemaPackages"]["alreadyQueued"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    let preview = first
        .ok(
            &app.a.platform,
            "{ schemaPackagePreview(packageId: \"my_package\") { sql sdl notes changes { entity kind destructive } } }",
            json!({}),
        )
        .await;
    let preview = &preview["schemaPackagePreview"];
    assert_eq!(preview["changes"][0]["entity"], "MyEntity", "{preview}");
    assert_eq!(preview["changes"][0]["kind"], "ADD");
    assert!(preview["sql"]
        .as_str()
        .is_some_and(|s| s.contains("CREATE TABLE \"my_entities\"")));
    assert!(
        preview["sdl"]
            .as_str()
            .is_some_and(|s| s.contains("type MyEntity {") && s.contains("myEntities(")),
        "{preview}"
    );
    let denied = first
        .post(
            &app.a.admin,
            "{ schemaPackagePreview(packageId: \"my_package\") { sql } }",
            json!({}),
        )
        .await;
    assert_eq!(denied["errors"][0]["extensions"]["code"], "FORBIDDEN");
    // Nor can anyone move a change through the generic mutations.
    let id = mine["id"].as_str().unwrap_or_default();
    let generic = first
        .post(
            &app.a.platform,
            "mutation($id: ID!) { updateSchemaChange(id: $id, input: {}) { id } }",
            json!({ "id": id }),
        )
        .await;
    assert!(generic.get("errors").is_some(), "{generic}");
    let approved = first.ok(&app.a.platform, approve, json!({})).await;
    let approved = approved["approveSchemaChanges"]["approved"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(approved.len(), 2, "{approved:?}");
    assert!(approved.iter().all(|c| c["status"] == "APPROVED"));
    assert_eq!(
        app.scalar(&format!(
            "SELECT count(*)::text FROM schema_changes WHERE status = 'APPROVED' AND approved_by_id = '{}'",
            app.a.admin_id
        ))
        .await,
        "2"
    );
    assert_eq!(
        app.scalar(
            "SELECT count(*)::text FROM audit_logs WHERE entity = 'SchemaChange' AND action = 'UPDATE'"
        )
        .await,
        "2"
    );
    // Approved but not applied until a start: still not served.
    let unknown = first
        .post(&app.a.user, "{ myEntities { totalCount } }", json!({}))
        .await;
    assert!(unknown.get("errors").is_some(), "{unknown}");
    first.stop().await;

    // Two instances started at once: one applies under the lock, the other waits; both
    // serve the same catalog.
    let (one, two) = tokio::join!(r.serve(), r.serve());
    assert_eq!(
        app.scalar("SELECT count(*)::text FROM schema_migration_records")
            .await,
        "2"
    );
    assert!(r.list().await.is_empty(), "nothing left waiting");
    assert_eq!(
        app.scalar("SELECT relforcerowsecurity::text FROM pg_class WHERE relname = 'my_entities'")
            .await,
        "true"
    );

    // The new entity as a built-in one: created, filtered, unique per tenant, isolated.
    let create = "mutation($n: String!) { createMyEntity(input: {name: $n, data: \"{}\"}) { id name createdAt } }";
    let mut events = acked(two.addr.parse().expect("addr"), &app.a.user).await;
    send(
        &mut events,
        json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription { myEntityChanged { op node { name } } }" } }),
    )
    .await;
    let mut other_tenant = acked(two.addr.parse().expect("addr"), &app.b.user).await;
    send(
        &mut other_tenant,
        json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription { myEntityChanged { op node { name } } }" } }),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let created = one.ok(&app.a.user, create, json!({"n": "first"})).await;
    assert_eq!(created["createMyEntity"]["name"], "first");
    let event = recv(&mut events, Duration::from_secs(10))
        .await
        .expect("an event");
    assert_eq!(
        event["payload"]["data"]["myEntityChanged"]["op"], "CREATED",
        "{event}"
    );
    assert_eq!(
        event["payload"]["data"]["myEntityChanged"]["node"]["name"],
        "first"
    );
    one.ok(&app.a.user, create, json!({"n": "second"})).await;
    let dup = one.post(&app.a.user, create, json!({"n": "first"})).await;
    assert_eq!(dup["errors"][0]["extensions"]["code"], "CONFLICT", "{dup}");
    one.ok(&app.b.user, create, json!({"n": "first"})).await;
    let found = two
        .ok(
            &app.a.user,
            "{ myEntities(where: {name: {startsWith: \"fi\"}}, orderBy: [{name: ASC}]) { totalCount nodes { name data } } }",
            json!({}),
        )
        .await;
    assert_eq!(found["myEntities"]["totalCount"], 1, "{found}");
    assert_eq!(found["myEntities"]["nodes"][0]["data"], "{}");
    let all_a = two
        .ok(&app.a.user, "{ myEntities { totalCount } }", json!({}))
        .await;
    assert_eq!(all_a["myEntities"]["totalCount"], 2);
    let all_b = two
        .ok(&app.b.user, "{ myEntities { totalCount } }", json!({}))
        .await;
    assert_eq!(all_b["myEntities"]["totalCount"], 1);
    let event = recv(&mut other_tenant, Duration::from_secs(5))
        .await
        .expect("tenant b's own event");
    assert_eq!(
        event["payload"]["data"]["myEntityChanged"]["node"]["name"], "first",
        "{event}"
    );
    assert!(
        recv(&mut other_tenant, Duration::from_millis(700))
            .await
            .is_none(),
        "tenant b sees none of tenant a's rows"
    );
    // The package with relations: both ways, confined to the caller.
    let bookmark = one
        .ok(
            &app.a.user,
            "mutation { createBookmark(input: {url: \"https://example.org\", kind: THREAD}) { kind user { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        bookmark["createBookmark"]["user"]["id"],
        app.a.user_id.to_string()
    );
    let mine = two
        .ok(
            &app.a.user,
            "{ me { bookmarks { nodes { url } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        mine["me"]["bookmarks"]["nodes"][0]["url"],
        "https://example.org"
    );
    one.stop().await;
    two.stop().await;

    // An added field: one MODIFY change, applied at the next start; stored rows keep theirs.
    let with_score = SEED_EXAMPLE.replace(
        "      createdAt:\n",
        "      score:\n        type: int\n        min: 0\n\n      createdAt:\n",
    );
    r.write(&r.schema_file(), &with_score);
    let out = r.schema_ok(&["scan"]).await;
    assert!(out.contains("1 change(s) queued"), "{out}");
    let modify = r.list().await;
    assert_eq!(modify[0]["kind"], "MODIFY", "{modify:?}");
    assert_eq!(modify[0]["destructive"], false);
    assert!(modify[0]["sql"]
        .as_str()
        .is_some_and(|s| s.contains("ADD COLUMN \"score\" integer")));
    r.schema_ok(&["approve", "all"]).await;
    let third = r.serve().await;
    let scored = third
        .ok(
            &app.a.user,
            "{ myEntities(orderBy: [{name: ASC}]) { nodes { name score } } }",
            json!({}),
        )
        .await;
    assert_eq!(scored["myEntities"]["nodes"][0]["name"], "first");
    assert!(scored["myEntities"]["nodes"][0]["score"].is_null());
    third.stop().await;

    // A destructive change (a dropped field) is refused without the flag and not applied.
    let without_data = with_score.replace(
        "      data:\n        type: string\n        nullable: true\n        description: \"JSON: additional data\"\n",
        "",
    );
    r.write(&r.schema_file(), &without_data);
    r.schema_ok(&["scan"]).await;
    let drop = r.list().await;
    assert_eq!(drop[0]["destructive"], true, "{drop:?}");
    let id = drop[0]["id"].as_str().unwrap_or_default().to_string();
    let refused = r.schema(&["approve", &id]).await;
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("drops MyEntity.data"), "{why}");
    assert!(why.contains("--allow-destructive"), "{why}");
    let fourth = r.serve().await;
    fourth
        .ok(&app.a.user, "{ myEntities { nodes { data } } }", json!({}))
        .await;
    fourth.stop().await;
    assert_eq!(r.list().await[0]["status"], "PENDING");
    r.schema_ok(&["approve", &id, "--allow-destructive"]).await;
    let fifth = r.serve().await;
    let gone = fifth
        .post(&app.a.user, "{ myEntities { nodes { data } } }", json!({}))
        .await;
    assert!(gone.get("errors").is_some(), "{gone}");
    assert_eq!(
        app.scalar("SELECT count(*)::text FROM information_schema.columns WHERE table_name = 'my_entities' AND column_name = 'data'")
            .await,
        "0"
    );
    fifth.stop().await;

    // A change that fails (rows without a value for a field made required) rolls back
    // whole; the previous catalog is served and `status` says why.
    let required_score = without_data.replace(
        "      score:\n        type: int\n",
        "      score:\n        type: int\n        required: true\n",
    );
    r.write(&r.schema_file(), &required_score);
    r.schema_ok(&["scan"]).await;
    r.schema_ok(&["approve", "all", "--allow-destructive"])
        .await;
    let sixth = r.serve().await;
    let still = sixth
        .ok(
            &app.a.user,
            "{ myEntities { totalCount nodes { score } } }",
            json!({}),
        )
        .await;
    assert_eq!(still["myEntities"]["totalCount"], 2);
    sixth.stop().await;
    let status = r.schema_ok(&["status"]).await;
    assert!(status.contains("failed: MyEntity"), "{status}");
    assert!(status.contains("score"), "{status}");
    assert_eq!(
        app.scalar("SELECT is_nullable::text FROM information_schema.columns WHERE table_name = 'my_entities' AND column_name = 'score'")
            .await,
        "YES"
    );

    // The package still differs from what is applied: a scan queues it again, and it can be
    // rejected.
    let out = r.schema_ok(&["scan"]).await;
    assert!(out.contains("1 change(s) queued"), "{out}");
    let rejected = r.schema_ok(&["reject", "all"]).await;
    assert!(rejected.contains("rejected: "), "{rejected}");
    assert!(r.list().await.iter().all(|c| c["status"] == "FAILED"));

    // Drift: a column the definition does not have.
    {
        use diesel_async::SimpleAsyncConnection;
        let mut owner = app.owner().await;
        owner
            .batch_execute("ALTER TABLE my_entities ADD COLUMN extra integer")
            .await
            .expect("alter");
    }
    let status = r.schema_ok(&["status"]).await;
    assert!(
        status.contains("drift: MyEntity: column my_entities.extra is not in the definition"),
        "{status}"
    );
    std::fs::remove_dir_all(&r.dir).ok();
}
