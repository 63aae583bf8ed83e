//! Replaying every migration gives the catalog's schema. The harness's database has had every
//! migration of `migrations/` applied, as `gateway migrate` applies them: the two generated
//! from the whole catalog (frozen as committed), then the incremental ones the generator
//! added for each catalog change since. It is compared with a scratch database made from the
//! current catalog directly: the hand-written migrations, with `gateway_catalog::sql::create`
//! and `row_security` of the whole catalog in place of the frozen ones, and no incremental
//! one. A catalog change committed without its migration (or a migration edited, or a
//! generator change that would create the catalog differently) shows as a difference.

use std::collections::BTreeSet;
use std::path::Path;

use diesel_async::{AsyncConnection, RunQueryDsl, SimpleAsyncConnection};
use gateway::db::Conn;
use gateway_catalog::model::{Catalog, Entity, EnumDef};

use crate::harness::TestApp;

/// The migrations generated from the whole catalog before migrations became incremental
/// (the generator's `emit_sql::FROZEN`); the catalog is created in their place.
const FROZEN_TABLES: &str = "2026-11-23-000000_catalog";
const FROZEN_ROW_SECURITY: &str = "2026-11-24-100000_row_level_security";

/// Lines of the migrated database's description that a database made from the catalog may
/// lack, each with why. None today: the hand-written migrations run on both sides, so what
/// they add to catalog tables (the case-insensitive email index and the column grants of
/// 2026-12-01-000000_credential_checks, the sign-in policy on `tenants`) is on both.
const ALLOWED: &[(&str, &str)] = &[];

/// Every table of the public schema (catalog tables and hand-written ones alike): columns
/// (type, nullability, default; not their order, which `ADD COLUMN` cannot choose),
/// constraints, indexes, policies, row-level security, and the grants of every role but the
/// owner; and every enum type with its labels in order.
const DESCRIBE: &str = r#"
WITH tables AS (
    SELECT c.oid, c.relname, c.relowner, c.relacl, c.relrowsecurity, c.relforcerowsecurity
    FROM pg_class c
    WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
      AND c.relname <> '__diesel_schema_migrations'
)
SELECT format('table %s: column %s %s%s%s', t.relname, a.attname,
              format_type(a.atttypid, a.atttypmod),
              CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END,
              coalesce(' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), '')) AS line
FROM tables t
JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_attrdef d ON d.adrelid = t.oid AND d.adnum = a.attnum
UNION ALL
SELECT format('table %s: constraint %s %s', t.relname, k.conname, pg_get_constraintdef(k.oid))
FROM tables t JOIN pg_constraint k ON k.conrelid = t.oid
UNION ALL
SELECT format('table %s: index %s', t.relname, pg_get_indexdef(i.indexrelid))
FROM tables t JOIN pg_index i ON i.indrelid = t.oid
UNION ALL
SELECT format('table %s: policy %s %s %s to %s using (%s) check (%s)', t.relname, p.polname,
              CASE WHEN p.polpermissive THEN 'permissive' ELSE 'restrictive' END, p.polcmd,
              (SELECT string_agg(n, ', ' ORDER BY n)
               FROM (SELECT CASE WHEN r = 0 THEN 'public' ELSE r::regrole::text END AS n
                     FROM unnest(p.polroles) r) roles),
              pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid))
FROM tables t JOIN pg_policy p ON p.polrelid = t.oid
UNION ALL
SELECT format('table %s: row level security %s, forced %s', t.relname, t.relrowsecurity,
              t.relforcerowsecurity)
FROM tables t
UNION ALL
SELECT format('table %s: grants %s to %s', t.relname, g.privilege_type,
              CASE WHEN g.grantee = 0 THEN 'public' ELSE g.grantee::regrole::text END)
FROM tables t CROSS JOIN LATERAL aclexplode(t.relacl) g
WHERE g.grantee <> t.relowner
UNION ALL
SELECT format('table %s: grants %s (%s) to %s', t.relname, g.privilege_type, a.attname,
              CASE WHEN g.grantee = 0 THEN 'public' ELSE g.grantee::regrole::text END)
FROM tables t
JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped
CROSS JOIN LATERAL aclexplode(a.attacl) g
WHERE g.grantee <> t.relowner
UNION ALL
SELECT format('enum %s: %s', ty.typname, string_agg(e.enumlabel, ', ' ORDER BY e.enumsortorder))
FROM pg_type ty JOIN pg_enum e ON e.enumtypid = ty.oid
WHERE ty.typnamespace = 'public'::regnamespace
GROUP BY ty.typname
"#;

#[tokio::test]
async fn replaying_the_migrations_gives_the_catalogs_schema() {
    let app = TestApp::new().await;
    let catalog = current_catalog();
    let (base, _) = app.url.rsplit_once('/').expect("database URL");
    let scratch = format!(
        "test_{}_catalog_{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    );
    let admin = format!("{base}/postgres");
    gateway::db::create_database(&admin, &scratch, None)
        .await
        .expect("create the scratch database");
    let scratch_url = format!("{base}/{scratch}");
    create_from_catalog(&scratch_url, &catalog).await;

    let migrated = describe(&app.url).await;
    let fresh = describe(&scratch_url).await;
    let mut admin_conn = Conn::establish(&admin).await.expect("admin connection");
    admin_conn
        .batch_execute(&format!("DROP DATABASE \"{scratch}\" WITH (FORCE)"))
        .await
        .expect("drop the scratch database");

    // The description must cover the catalog, or comparing it would prove nothing.
    for e in &catalog.entities {
        let row_security = format!("table {}: row level security", e.table);
        assert!(
            fresh.iter().any(|l| l.starts_with(&row_security)),
            "{} is missing from the database made from the catalog",
            e.table
        );
    }
    let allowed = |line: &String| ALLOWED.iter().any(|(prefix, _)| line.starts_with(prefix));
    let only_migrated: Vec<&String> = migrated
        .difference(&fresh)
        .filter(|l| !allowed(l))
        .collect();
    let only_fresh: Vec<&String> = fresh.difference(&migrated).collect();
    assert!(
        only_migrated.is_empty() && only_fresh.is_empty(),
        "the migrations do not create the catalog's schema; did a catalog change miss \
         `cargo run -p gateway-codegen`, which adds its migration?\n\
         only after the migrations:\n  {}\nonly in a database made from the catalog:\n  {}",
        join(&only_migrated),
        join(&only_fresh)
    );
}

/// The catalog the binary embeds (and serves).
fn current_catalog() -> Catalog {
    let sources: Vec<(String, String)> = gateway::entities::CATALOG_SOURCES
        .iter()
        .map(|(file, text)| (file.to_string(), text.to_string()))
        .collect();
    gateway_catalog::load_sources(&sources).unwrap_or_else(|p| panic!("{p}"))
}

/// Runs the hand-written migrations in order, with the whole catalog created in place of the
/// frozen generated migrations and none of the incremental ones.
async fn create_from_catalog(url: &str, catalog: &Catalog) {
    let entities: Vec<&Entity> = catalog.entities.iter().collect();
    let enums: Vec<&EnumDef> = catalog.enums.iter().collect();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("migrations folder")
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut conn = Conn::establish(url).await.expect("scratch connection");
    // As diesel creates it: the serving-role migration revokes the serving role's rights on it.
    conn.batch_execute(
        "CREATE TABLE __diesel_schema_migrations (
             version VARCHAR(50) PRIMARY KEY NOT NULL,
             run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)",
    )
    .await
    .expect("migrations table");
    for name in names {
        let sql = match name.as_str() {
            FROZEN_TABLES => gateway_catalog::sql::create(catalog, &entities, &enums),
            FROZEN_ROW_SECURITY => gateway_catalog::sql::row_security(&entities),
            _ => {
                let up = std::fs::read_to_string(dir.join(&name).join("up.sql"))
                    .unwrap_or_else(|e| panic!("{name}/up.sql: {e}"));
                if up.starts_with("-- @generated") {
                    continue;
                }
                up
            }
        };
        conn.batch_execute(&sql)
            .await
            .unwrap_or_else(|e| panic!("{name} on a database made from the catalog: {e}"));
    }
}

async fn describe(url: &str) -> BTreeSet<String> {
    #[derive(diesel::QueryableByName)]
    struct Line {
        #[diesel(sql_type = diesel::sql_types::Text)]
        line: String,
    }
    let mut conn = Conn::establish(url).await.expect("connection");
    let lines: Vec<Line> = diesel::sql_query(DESCRIBE)
        .load(&mut conn)
        .await
        .expect("describe the schema");
    lines.into_iter().map(|l| l.line).collect()
}

fn join(lines: &[&String]) -> String {
    if lines.is_empty() {
        return "(nothing)".into();
    }
    lines
        .iter()
        .map(|l| l.as_str())
        .collect::<Vec<_>>()
        .join("\n  ")
}
