//! The catalog loader: what it accepts, and how precisely it names what it refuses.

use gateway_codegen::load::{load_dir, load_sources, Problem};
use gateway_codegen::model::{FieldType, InverseType, Scope};

fn load(files: &[(&str, &str)]) -> Result<gateway_codegen::model::Catalog, Vec<Problem>> {
    let sources: Vec<(String, String)> = files
        .iter()
        .map(|(p, t)| (p.to_string(), t.to_string()))
        .collect();
    load_sources(&sources).map_err(|p| p.0)
}

const CORE: &str = r#"
package: core
entities:
  - name: Tenant
    scope: global
    fields:
      slug: { type: string, required: true, unique: true }
    acl: { create: [], read: [user], update: [admin], delete: [] }
  - name: User
    owner: id
    fields:
      email: { type: string, required: true, maxLength: 320, unique: true }
    acl: { create: [admin], read: [user], update: [self, admin], delete: [admin] }
"#;

fn forum_yaml(extra_field: &str, relation_entity: &str) -> String {
    format!(
        r#"
package: forum
enums:
  - name: ThreadState
    values: [OPEN, CLOSED]
entities:
  - name: ForumThread
    owner: authorId
    fields:
      authorId: {{ type: uuid, required: true }}
      title: {{ type: string, required: true, maxLength: 200 }}
      state: {{ type: enum, enum: ThreadState, required: true, default: OPEN }}
{extra_field}
    relations:
      - name: author
        type: belongsTo
        entity: {relation_entity}
        field: authorId
        inverse: forumThreads
    acl: {{ create: [user], read: [user], update: [self, admin], delete: [self, admin] }}
"#
    )
}

fn messages(problems: &[Problem]) -> Vec<String> {
    problems.iter().map(|p| p.to_string()).collect()
}

#[test]
fn a_valid_catalog_loads_with_implicit_fields_and_inverses() {
    let forum = forum_yaml("", "User");
    let c = load(&[
        ("catalog/core/entities.yaml", CORE),
        ("catalog/forum/entities.yaml", &forum),
    ])
    .expect("valid");
    assert_eq!(c.entities.len(), 3);
    let thread = c
        .entities
        .iter()
        .find(|e| e.name == "ForumThread")
        .expect("thread");
    let names: Vec<&str> = thread.fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "id",
            "tenantId",
            "authorId",
            "title",
            "state",
            "createdAt",
            "updatedAt"
        ]
    );
    assert_eq!(thread.scope, Scope::Tenant);
    assert_eq!(thread.table, "forum_threads");
    assert_eq!(thread.plural, "forumThreads");
    assert_eq!(thread.relations[0].inverse_type, InverseType::HasMany);
    assert_eq!(
        thread.field("state").map(|f| f.ty.clone()),
        Some(FieldType::Enum("ThreadState".into()))
    );
    let tenant = c
        .entities
        .iter()
        .find(|e| e.name == "Tenant")
        .expect("tenant");
    assert!(
        tenant.field("tenantId").is_none(),
        "global entities have no tenantId"
    );
}

#[test]
fn problems_name_file_entity_and_field() {
    let forum = forum_yaml("      views: { type: integer }\n", "Nobody");
    let problems = load(&[
        ("catalog/core/entities.yaml", CORE),
        ("catalog/forum/entities.yaml", &forum),
    ])
    .expect_err("invalid");
    let text = messages(&problems);
    assert!(
        problems
            .iter()
            .any(|p| p.file == "catalog/forum/entities.yaml"
                && p.entity.as_deref() == Some("ForumThread")
                && p.field.as_deref() == Some("views")
                && p.message.contains("unknown type `integer`")),
        "{text:?}"
    );
    // Loading stops at the first broken entity pass, so fix the type and look again.
    let forum = forum_yaml("", "Nobody");
    let problems = load(&[
        ("catalog/core/entities.yaml", CORE),
        ("catalog/forum/entities.yaml", &forum),
    ])
    .expect_err("invalid");
    assert!(
        problems
            .iter()
            .any(|p| p.entity.as_deref() == Some("ForumThread")
                && p.field.as_deref() == Some("authorId")
                && p.message.contains("missing entity `Nobody`")),
        "{:?}",
        messages(&problems)
    );
}

#[test]
fn unknown_keys_duplicates_and_bad_acl_are_refused() {
    let bad = r#"
package: core
entities:
  - name: Thing
    fields:
      name: { type: string, requried: true }
    acl: { create: [user], read: [user], update: [user], delete: [user] }
"#;
    let problems = load(&[("catalog/core/entities.yaml", bad)]).expect_err("typo");
    assert!(
        messages(&problems)[0].contains("requried"),
        "{:?}",
        messages(&problems)
    );

    let dup = r#"
package: core
entities:
  - name: Thing
    fields:
      name: { type: string }
      id: { type: json }
    acl: { create: [user], read: [owner], update: [self], delete: [user] }
"#;
    let text = messages(&load(&[("catalog/core/entities.yaml", dup)]).expect_err("bad"));
    assert!(
        text.iter()
            .any(|m| m.contains("field id") && m.contains("implicit")),
        "{text:?}"
    );
    assert!(
        text.iter().any(|m| m.contains("unknown role `owner`")),
        "{text:?}"
    );

    // Seed 001's files declare `id` and grant `self` without an owner: both are accepted,
    // with a note of how they are served.
    let seed = dup
        .replace("{ type: json }", "{ type: uuid }")
        .replace("[owner]", "[user]");
    let c = load(&[("catalog/core/entities.yaml", &seed)]).expect("seed 001's conventions");
    let notes = messages(&c.notes);
    assert!(
        notes
            .iter()
            .any(|m| m.contains("field id") && m.contains("served as the primary key")),
        "{notes:?}"
    );
    assert!(notes.iter().any(|m| m.contains("no `owner`")), "{notes:?}");

    let wrong_folder = load(&[("catalog/other/entities.yaml", CORE)]).expect_err("folder");
    assert!(messages(&wrong_folder)[0].contains("does not match its folder"));
}

#[test]
fn the_same_entity_in_two_packages_must_have_the_same_checksum() {
    let user_again = r#"
package: extra
entities:
  - name: User
    owner: id
    description: "Descriptions do not count"
    fields:
      email: { type: string, required: true, maxLength: 320, unique: true, description: "nor here" }
    acl: { create: [admin], read: [user], update: [self, admin], delete: [admin] }
"#;
    let c = load(&[
        ("catalog/core/entities.yaml", CORE),
        ("catalog/extra/entities.yaml", user_again),
    ])
    .expect("same structure is compatible");
    assert_eq!(c.entities.iter().filter(|e| e.name == "User").count(), 1);

    let user_changed = user_again.replace("maxLength: 320", "maxLength: 100");
    let problems = load(&[
        ("catalog/core/entities.yaml", CORE),
        ("catalog/extra/entities.yaml", &user_changed),
    ])
    .expect_err("different structure");
    let text = messages(&problems);
    assert!(
        text.iter()
            .any(|m| m.contains("catalog/extra/entities.yaml")
                && m.contains("entity User")
                && m.contains("defined differently in catalog/core/entities.yaml")),
        "{text:?}"
    );
}

#[test]
fn global_entities_cannot_reference_tenant_rows_and_set_null_needs_nullable() {
    let bad = r#"
package: billing
entities:
  - name: Plan
    scope: global
    fields:
      ownerId: { type: uuid, required: true }
    relations:
      - { name: owner, type: belongsTo, entity: User, field: ownerId, inverse: plans, onDelete: SetNull }
    acl: { create: [platform], read: [user], update: [platform], delete: [platform] }
  - name: Offer
    scope: global
    fields:
      userId: { type: uuid }
    relations:
      - { name: user, type: belongsTo, entity: User, field: userId, inverse: offers }
    acl: { create: [platform], read: [user], update: [platform], delete: [platform] }
"#;
    let text = messages(
        &load(&[
            ("catalog/core/entities.yaml", CORE),
            ("catalog/billing/entities.yaml", bad),
        ])
        .expect_err("bad"),
    );
    assert!(
        text.iter()
            .any(|m| m.contains("SetNull needs a nullable field")),
        "{text:?}"
    );
    assert!(
        text.iter().any(|m| m.contains("entity Offer")
            && m.contains("cannot reference the tenant-scoped `User`")),
        "{text:?}"
    );
}

#[test]
fn global_rows_are_written_by_the_platform_and_set_by_names_known_roles() {
    let bad = r#"
package: billing
entities:
  - name: Plan
    scope: global
    fields:
      name: { type: string, required: true }
    acl: { create: [admin], read: [user], update: [platform], delete: [user] }
  - name: Voucher
    owner: userId
    fields:
      userId: { type: uuid, required: true, setBy: [user] }
      code: { type: string, setBy: [admin], readOnly: true }
    relations:
      - { name: user, type: belongsTo, entity: User, field: userId, inverse: vouchers }
    acl: { create: [user], read: [user], update: [admin], delete: [admin] }
"#;
    let text = messages(
        &load(&[
            ("catalog/core/entities.yaml", CORE),
            ("catalog/billing/entities.yaml", bad),
        ])
        .expect_err("bad"),
    );
    for want in [
        "entity Plan: is global, so acl create may only name `platform`",
        "entity Plan: is global, so acl delete may only name `platform`",
        "field userId: setBy: unknown role `user` (admin, platform)",
        "field code: setBy is for fields of the generic inputs",
    ] {
        assert!(text.iter().any(|m| m.contains(want)), "{want}: {text:?}");
    }
    assert!(
        !text.iter().any(|m| m.contains("acl update may only")),
        "{text:?}"
    );
}

#[test]
fn the_repository_catalog_is_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../catalog");
    let c = load_dir(&dir).unwrap_or_else(|p| panic!("{p}"));
    assert!(c.entities.len() >= 80, "{} entities", c.entities.len());
    for name in [
        "Tenant",
        "User",
        "ForumThread",
        "Workflow",
        "Task",
        "Wallet",
        "AuditLog",
    ] {
        assert!(c.entities.iter().any(|e| e.name == name), "{name} missing");
    }
}

#[test]
fn generated_files_are_marked_and_fresh() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let c = load_dir(&root.join("catalog")).unwrap_or_else(|p| panic!("{p}"));
    let files = gateway_codegen::generate(&c);
    for (path, text) in &files {
        let first = text.lines().next().unwrap_or("");
        assert!(
            first.contains("@generated"),
            "{} is not marked generated",
            path.display()
        );
    }
    let stale = gateway_codegen::run(&root, true, 0)
        .unwrap_or_else(|e| panic!("{e}"))
        .stale;
    assert!(
        stale.is_empty(),
        "stale generated files: {stale:?}; run `cargo run -p gateway-codegen`"
    );
    // The frozen migrations keep the mark they were generated with.
    for dir in gateway_codegen::emit_sql::FROZEN {
        for script in ["up.sql", "down.sql"] {
            let text = std::fs::read_to_string(root.join(dir).join(script))
                .unwrap_or_else(|e| panic!("{dir}/{script}: {e}"));
            assert!(text.starts_with("-- @generated"), "{dir}/{script}");
        }
    }
}

#[test]
fn generated_graphql_type_names_never_collide() {
    let clash = r#"
package: billing
enums:
  - name: PlanChange
    values: [UP, DOWN]
entities:
  - name: Plan
    fields:
      name: { type: string, required: true }
    acl: { create: [admin], read: [user], update: [admin], delete: [admin] }
  - name: PageInfo
    fields:
      name: { type: string, required: true }
    acl: { create: [admin], read: [user], update: [admin], delete: [admin] }
"#;
    let problems = load(&[
        ("core/entities.yaml", CORE),
        ("billing/entities.yaml", clash),
    ])
    .err()
    .unwrap_or_default();
    let text = messages(&problems).join("\n");
    assert!(
        text.contains(
            "GraphQL type `PlanChange` of enum `PlanChange` is already defined by entity `Plan`"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "GraphQL type `PageInfo` of entity `PageInfo` is already defined by the gateway"
        ),
        "{text}"
    );
}

// The difference between two catalogs, as the next migration's SQL (`gateway_catalog::diff`).

use gateway_codegen::diff::{self, ChangeKind, EntityChange, Step};

/// The forum package with `fields` added to ForumThread's and ThreadState's `values`.
fn forum_with(fields: &str, values: &str) -> String {
    format!(
        r#"
package: forum
enums:
  - name: ThreadState
    values: [{values}]
entities:
  - name: ForumThread
    owner: authorId
    fields:
      authorId: {{ type: uuid, required: true }}
      title: {{ type: string, required: true, maxLength: 200 }}
      state: {{ type: enum, enum: ThreadState, required: true, default: OPEN }}
{fields}
    relations:
      - {{ name: author, type: belongsTo, entity: User, field: authorId, inverse: forumThreads }}
    acl: {{ create: [user], read: [user], update: [self, admin], delete: [self, admin] }}
"#
    )
}

fn forum_catalog(forum: &str) -> gateway_codegen::model::Catalog {
    load(&[
        ("catalog/core/entities.yaml", CORE),
        ("catalog/forum/entities.yaml", forum),
    ])
    .unwrap_or_else(|p| panic!("{:?}", messages(&p)))
}

/// Every step from `old` to `new` (enum steps first), and the entity changes.
fn diff_forum(old: &str, new: &str) -> (Vec<Step>, Vec<EntityChange>) {
    let (old, new) = (forum_catalog(old), forum_catalog(new));
    let (mut steps, changes) = diff::diff(&old, &new, |_| true);
    steps.extend(changes.iter().flat_map(|c| c.steps.clone()));
    (steps, changes)
}

fn one_step(old: &str, new: &str) -> Step {
    let (steps, changes) = diff_forum(old, new);
    assert!(changes.iter().all(|c| c.refused.is_empty()), "{changes:?}");
    assert_eq!(steps.len(), 1, "{steps:#?}");
    steps[0].clone()
}

const STATES: &str = "OPEN, CLOSED";

#[test]
fn diff_adding_a_field_adds_a_column() {
    let old = forum_with("", STATES);
    let (steps, _) = diff_forum(
        &old,
        &forum_with("      summary: { type: string, maxLength: 500 }\n", STATES),
    );
    let sql: Vec<&str> = steps.iter().map(|s| s.sql.as_str()).collect();
    assert_eq!(
        sql,
        [
            "ALTER TABLE \"forum_threads\" ADD COLUMN \"summary\" text;",
            "ALTER TABLE \"forum_threads\" ADD CONSTRAINT \"forum_threads_summary_max_length\" CHECK (char_length(\"summary\") <= 500);",
        ]
    );
    assert!(steps.iter().all(|s| s.destructive.is_none()), "{steps:#?}");

    let with_default = one_step(
        &old,
        &forum_with(
            "      views: { type: int, required: true, default: 0 }\n",
            STATES,
        ),
    );
    assert_eq!(
        with_default.sql,
        "ALTER TABLE \"forum_threads\" ADD COLUMN \"views\" integer DEFAULT 0 NOT NULL;"
    );
    assert_eq!(with_default.destructive, None);

    // Required without a default: existing rows have no value for it.
    let required = one_step(
        &old,
        &forum_with("      slug: { type: string, required: true }\n", STATES),
    );
    assert!(required.sql.contains("ADD COLUMN \"slug\" text NOT NULL"));
    assert!(
        required
            .destructive
            .as_deref()
            .is_some_and(|w| w.contains("without a default")),
        "{required:?}"
    );
}

#[test]
fn diff_dropping_a_field_is_destructive() {
    let old = forum_with("      views: { type: int }\n", STATES);
    let step = one_step(&old, &forum_with("", STATES));
    assert_eq!(
        step.sql,
        "ALTER TABLE \"forum_threads\" DROP COLUMN \"views\";"
    );
    assert!(
        step.destructive
            .as_deref()
            .is_some_and(|w| w.contains("drops ForumThread.views and its data")),
        "{step:?}"
    );
}

#[test]
fn diff_a_type_change_is_destructive() {
    let old = forum_with("      views: { type: int, default: 0 }\n", STATES);
    let step = one_step(
        &old,
        &forum_with("      views: { type: bigint, default: 0 }\n", STATES),
    );
    assert!(
        step.sql
            .contains("ALTER COLUMN \"views\" TYPE bigint USING \"views\"::text::bigint;"),
        "{step:?}"
    );
    assert!(
        step.sql.contains("ALTER COLUMN \"views\" SET DEFAULT 0;"),
        "the default comes back after the type change: {step:?}"
    );
    assert!(
        step.destructive
            .as_deref()
            .is_some_and(|w| w.contains("from integer to bigint")),
        "{step:?}"
    );
}

#[test]
fn diff_relaxing_nullability_is_plain_tightening_destructive() {
    let required = forum_with(
        "      views: { type: int, required: true, default: 0 }\n",
        STATES,
    );
    let nullable = forum_with("      views: { type: int, default: 0 }\n", STATES);
    let relax = one_step(&required, &nullable);
    assert_eq!(
        relax.sql,
        "ALTER TABLE \"forum_threads\" ALTER COLUMN \"views\" DROP NOT NULL;"
    );
    assert_eq!(relax.destructive, None);

    let tighten = one_step(&nullable, &required);
    assert!(
        tighten
            .sql
            .ends_with("ALTER TABLE \"forum_threads\" ALTER COLUMN \"views\" SET NOT NULL;"),
        "{tighten:?}"
    );
    // Rows without a value get the default first, past the table's forced row-level
    // security (the owner migrating has no tenant).
    assert!(
        tighten
            .sql
            .contains("UPDATE \"forum_threads\" SET \"views\" = 0 WHERE \"views\" IS NULL;"),
        "{tighten:?}"
    );
    assert!(tighten.sql.contains("NO FORCE ROW LEVEL SECURITY"));
    assert!(tighten.destructive.is_some(), "{tighten:?}");

    // Bounds alike: a looser bound is plain, a tighter one destructive.
    let (wider, _) = diff_forum(
        &forum_with("", STATES),
        &forum_with("", STATES).replace("maxLength: 200", "maxLength: 300"),
    );
    assert!(wider.iter().all(|s| s.destructive.is_none()), "{wider:#?}");
    let (narrower, _) = diff_forum(
        &forum_with("", STATES),
        &forum_with("", STATES).replace("maxLength: 200", "maxLength: 100"),
    );
    assert!(
        narrower.iter().any(|s| s
            .destructive
            .as_deref()
            .is_some_and(|w| w.contains("tightens the bounds of ForumThread.title"))),
        "{narrower:#?}"
    );
}

#[test]
fn diff_a_new_enum_value_is_added_in_its_place() {
    let old = forum_with("", STATES);
    let step = one_step(&old, &forum_with("", "OPEN, ARCHIVED, CLOSED"));
    assert_eq!(
        step.sql,
        "ALTER TYPE \"thread_state\" ADD VALUE IF NOT EXISTS 'ARCHIVED' AFTER 'OPEN';"
    );
    assert_eq!(step.destructive, None);
    let first = one_step(&old, &forum_with("", "DRAFT, OPEN, CLOSED"));
    assert_eq!(
        first.sql,
        "ALTER TYPE \"thread_state\" ADD VALUE IF NOT EXISTS 'DRAFT' BEFORE 'OPEN';"
    );

    // Stored values cannot lose their label or their order.
    for values in ["OPEN", "CLOSED, OPEN"] {
        let (steps, changes) = diff_forum(&old, &forum_with("", values));
        let refused: Vec<&String> = changes.iter().flat_map(|c| &c.refused).collect();
        assert!(
            refused.iter().any(|r| r.contains("enum ThreadState")),
            "{values}: {changes:?}"
        );
        assert!(steps.is_empty(), "{values}: {steps:#?}");
    }
}

#[test]
fn diff_a_new_entity_gets_its_table_grants_and_row_level_security() {
    let old = forum_with("", STATES);
    let new = format!(
        "{old}{}",
        r#"  - name: ForumPost
    owner: authorId
    appendOnly: true
    fields:
      threadId: { type: uuid, required: true }
      authorId: { type: uuid, required: true }
      body: { type: string, required: true }
    relations:
      - { name: thread, type: belongsTo, entity: ForumThread, field: threadId, inverse: posts }
      - { name: author, type: belongsTo, entity: User, field: authorId, inverse: forumPosts }
    acl: { create: [user], read: [user], update: [], delete: [] }
"#
    );
    let (steps, changes) = diff_forum(&old, &new);
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].kind, ChangeKind::Add);
    assert_eq!(changes[0].entity, "ForumPost");
    let sql = diff::script(&steps);
    for want in [
        "CREATE TABLE \"forum_posts\" (",
        "FOREIGN KEY (\"tenant_id\", \"thread_id\") REFERENCES \"forum_threads\" (\"tenant_id\", \"id\")",
        "GRANT SELECT, INSERT, UPDATE, DELETE ON \"forum_posts\" TO gateway_app;",
        "ALTER TABLE \"forum_posts\" ENABLE ROW LEVEL SECURITY;",
        "ALTER TABLE \"forum_posts\" FORCE ROW LEVEL SECURITY;",
        "CREATE POLICY \"tenant_isolation\" ON \"forum_posts\"",
        "REVOKE UPDATE, DELETE, TRUNCATE ON \"forum_posts\" FROM gateway_app;",
    ] {
        assert!(sql.contains(want), "{want} missing from:\n{sql}");
    }
    assert!(steps.iter().all(|s| s.destructive.is_none()), "{steps:#?}");
}

#[test]
fn diff_removed_tables_drop_the_keys_between_them_first() {
    let both = forum_with("", STATES);
    let none = r#"
package: forum
entities:
  - name: ForumNote
    fields:
      body: { type: string }
    acl: { create: [user], read: [user], update: [admin], delete: [admin] }
"#;
    let (old, new) = (
        forum_catalog(&format!(
            "{both}{}",
            r#"  - name: ForumPost
    fields:
      threadId: { type: uuid, required: true }
    relations:
      - { name: thread, type: belongsTo, entity: ForumThread, field: threadId, inverse: posts }
    acl: { create: [user], read: [user], update: [admin], delete: [admin] }
"#
        )),
        forum_catalog(none),
    );
    let (_, changes) = diff::diff(&old, &new, |_| true);
    let thread = changes
        .iter()
        .find(|c| c.entity == "ForumThread")
        .expect("ForumThread removed");
    assert_eq!(thread.kind, ChangeKind::Remove);
    let sql = thread.sql();
    assert!(
        sql.contains("ALTER TABLE IF EXISTS \"forum_posts\" DROP CONSTRAINT IF EXISTS \"forum_posts_thread_id_fkey\";")
            && sql.ends_with("DROP TABLE \"forum_threads\";\n"),
        "{sql}"
    );
    assert!(!thread.destructive().is_empty());
}

#[test]
fn diff_a_changed_scope_is_refused() {
    let plan = |scope: &str, acl: &str| {
        format!(
            r#"
package: billing
entities:
  - name: Plan
    scope: {scope}
    fields:
      name: {{ type: string, required: true }}
    acl: {{ create: [{acl}], read: [user], update: [{acl}], delete: [{acl}] }}
"#
        )
    };
    let catalog = |billing: &str| {
        load(&[
            ("catalog/core/entities.yaml", CORE),
            ("catalog/billing/entities.yaml", billing),
        ])
        .unwrap_or_else(|p| panic!("{:?}", messages(&p)))
    };
    let (old, new) = (
        catalog(&plan("global", "platform")),
        catalog(&plan("tenant", "admin")),
    );
    let (_, changes) = diff::diff(&old, &new, |_| true);
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert!(changes[0].steps.is_empty(), "{changes:?}");
    assert!(
        changes[0]
            .refused
            .iter()
            .any(|r| r.contains("Plan changes scope")),
        "{changes:?}"
    );
}

// The generator's run: the snapshot of what the migrations create, and the next migration.

/// A repository with the core and forum packages, generated and with its snapshot.
fn repository(forum: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary folder");
    write_package(dir.path(), "core", CORE);
    write_package(dir.path(), "forum", forum);
    let sources = gateway_codegen::snapshot::read_catalog(dir.path()).expect("catalog");
    std::fs::create_dir_all(dir.path().join("migrations")).expect("migrations folder");
    std::fs::write(
        dir.path().join(gateway_codegen::snapshot::SNAPSHOT),
        gateway_codegen::snapshot::render(&sources).expect("snapshot"),
    )
    .expect("write snapshot");
    let report = gateway_codegen::run(dir.path(), false, NOW).expect("first run");
    assert!(report.migrations.is_empty(), "{report:?}");
    dir
}

fn write_package(root: &std::path::Path, package: &str, text: &str) {
    let dir = root.join("catalog").join(package);
    std::fs::create_dir_all(&dir).expect("package folder");
    std::fs::write(dir.join("entities.yaml"), text).expect("write package");
}

fn read(root: &std::path::Path, path: &str) -> String {
    std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// 2027-01-02 03:04:05 UTC.
const NOW: u64 = 1_798_859_045;

#[test]
fn a_catalog_change_becomes_a_new_migration_and_moves_the_snapshot() {
    let repo = repository(&forum_with("", STATES));
    let root = repo.path();
    let clean = gateway_codegen::run(root, true, NOW).expect("check");
    assert!(clean.stale.is_empty(), "{:?}", clean.stale);
    let before = read(root, gateway_codegen::snapshot::SNAPSHOT);

    write_package(
        root,
        "forum",
        &forum_with(
            "      views: { type: int, required: true, default: 0 }\n",
            STATES,
        ),
    );
    let check = gateway_codegen::run(root, true, NOW).expect("check");
    assert!(
        check
            .stale
            .iter()
            .any(|s| s.contains("catalog.lock.json") && s.contains("to add a migration")),
        "{:?}",
        check.stale
    );
    assert_eq!(
        read(root, gateway_codegen::snapshot::SNAPSHOT),
        before,
        "--check writes nothing"
    );

    let report = gateway_codegen::run(root, false, NOW).expect("run");
    assert_eq!(report.migrations, ["migrations/2027-01-02-030405_catalog"]);
    assert!(report.destructive.is_empty(), "{:?}", report.destructive);
    let up = read(root, "migrations/2027-01-02-030405_catalog/up.sql");
    assert!(up.starts_with("-- @generated"), "{up}");
    assert!(
        up.contains(
            "ALTER TABLE \"forum_threads\" ADD COLUMN \"views\" integer DEFAULT 0 NOT NULL;"
        ),
        "{up}"
    );
    let down = read(root, "migrations/2027-01-02-030405_catalog/down.sql");
    assert!(
        down.contains("ALTER TABLE \"forum_threads\" DROP COLUMN \"views\";"),
        "{down}"
    );
    assert_ne!(read(root, gateway_codegen::snapshot::SNAPSHOT), before);
    assert!(read(root, "src/entities/schema.rs").contains("views -> Int4"));
    assert!(gateway_codegen::run(root, true, NOW)
        .expect("check")
        .stale
        .is_empty());

    // Nothing changed: nothing written, and the next migration comes a second after the last
    // even when the clock says otherwise.
    let again = gateway_codegen::run(root, false, NOW).expect("run");
    assert!(
        again.migrations.is_empty() && again.written.is_empty(),
        "{again:?}"
    );
    write_package(
        root,
        "forum",
        &forum_with("      views: { type: int, default: 0 }\n", STATES),
    );
    let relaxed = gateway_codegen::run(root, false, NOW - 60).expect("run");
    assert_eq!(relaxed.migrations, ["migrations/2027-01-02-030406_catalog"]);
}

#[test]
fn a_change_without_sql_moves_the_snapshot_only() {
    let old = forum_with("", STATES);
    let repo = repository(&old);
    let root = repo.path();
    let before = read(root, gateway_codegen::snapshot::SNAPSHOT);
    let acl_only = old
        .replace("update: [self, admin]", "update: [admin]")
        .replace(
            "values: [",
            "description: \"Where a thread is\"\n    values: [",
        );
    write_package(root, "forum", &acl_only);
    let report = gateway_codegen::run(root, false, NOW).expect("run");
    assert!(report.migrations.is_empty(), "{report:?}");
    assert_ne!(read(root, gateway_codegen::snapshot::SNAPSHOT), before);
    assert!(gateway_codegen::run(root, true, NOW)
        .expect("check")
        .stale
        .is_empty());
    let folders = std::fs::read_dir(root.join("migrations"))
        .expect("migrations")
        .flatten()
        .filter(|e| e.path().is_dir())
        .count();
    assert_eq!(folders, 0);
}

#[test]
fn a_change_that_cannot_be_migrated_fails_and_writes_nothing() {
    let repo = repository(&forum_with("", STATES));
    let root = repo.path();
    let before = read(root, gateway_codegen::snapshot::SNAPSHOT);
    write_package(root, "forum", &forum_with("", "OPEN"));
    let err = gateway_codegen::run(root, false, NOW).expect_err("refused");
    assert!(
        err.contains("cannot be migrated") && err.contains("loses its value CLOSED"),
        "{err}"
    );
    assert_eq!(read(root, gateway_codegen::snapshot::SNAPSHOT), before);
    assert!(!root.join("migrations/2027-01-02-030405_catalog").exists());
}

#[test]
fn new_enum_values_that_other_steps_use_are_committed_first() {
    let repo = repository(&forum_with("", STATES));
    let root = repo.path();
    write_package(
        root,
        "forum",
        &forum_with(
            "      review: { type: enum, enum: ThreadState, required: true, default: HELD }\n",
            "OPEN, CLOSED, HELD",
        ),
    );
    let report = gateway_codegen::run(root, false, NOW).expect("run");
    assert_eq!(
        report.migrations,
        [
            "migrations/2027-01-02-030405_catalog_enums",
            "migrations/2027-01-02-030406_catalog"
        ]
    );
    let values = read(root, "migrations/2027-01-02-030405_catalog_enums/up.sql");
    assert!(
        values.contains("ADD VALUE IF NOT EXISTS 'HELD' AFTER 'CLOSED';"),
        "{values}"
    );
    let values_down = read(root, "migrations/2027-01-02-030405_catalog_enums/down.sql");
    assert!(
        values_down.contains("-- Not undone: enum ThreadState loses its value HELD")
            && values_down.contains("SELECT 1;"),
        "{values_down}"
    );
    let column = read(root, "migrations/2027-01-02-030406_catalog/up.sql");
    assert!(
        column.contains(
            "ADD COLUMN \"review\" \"thread_state\" DEFAULT 'HELD'::\"thread_state\" NOT NULL;"
        ) && !column.contains("ADD VALUE"),
        "{column}"
    );
}

#[test]
fn migration_versions_are_utc_timestamps() {
    use gateway_codegen::emit_sql::{parse_version, version_name};
    assert_eq!(version_name(0), "1970-01-01-000000");
    assert_eq!(version_name(NOW), "2027-01-02-030405");
    assert_eq!(version_name(951_868_799), "2000-02-29-235959");
    assert_eq!(parse_version("2026-11-23-000000"), Some(1_795_392_000));
    for t in [0, NOW, 951_868_799, 1_795_392_000, 4_102_444_800] {
        assert_eq!(parse_version(&version_name(t)), Some(t));
    }
    assert_eq!(parse_version("2026-11-23"), None);
    assert_eq!(parse_version("2026-13-23-000000"), None);
}

#[test]
fn a_renamed_field_is_renamed_back_by_down_sql() {
    let old = forum_with("      views: { type: int }\n", STATES);
    let repo = repository(&old);
    let root = repo.path();
    write_package(
        root,
        "forum",
        &old.replace(
            "      views: { type: int }",
            "      viewCount: { type: int, renamedFrom: views }",
        ),
    );
    let report = gateway_codegen::run(root, false, NOW).expect("run");
    assert_eq!(report.migrations, ["migrations/2027-01-02-030405_catalog"]);
    assert!(
        report
            .destructive
            .iter()
            .any(|w| w.contains("renames ForumThread.views to viewCount")),
        "{:?}",
        report.destructive
    );
    let up = read(root, "migrations/2027-01-02-030405_catalog/up.sql");
    assert!(
        up.contains("ALTER TABLE \"forum_threads\" RENAME COLUMN \"views\" TO \"view_count\";")
            && !up.contains("DROP COLUMN"),
        "{up}"
    );
    let down = read(root, "migrations/2027-01-02-030405_catalog/down.sql");
    assert!(
        down.contains("ALTER TABLE \"forum_threads\" RENAME COLUMN \"view_count\" TO \"views\";")
            && !down.contains("DROP COLUMN"),
        "{down}"
    );
}
