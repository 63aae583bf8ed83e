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
      id: { type: uuid }
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
    assert!(text.iter().any(|m| m.contains("no `owner`")), "{text:?}");

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
    let stale = gateway_codegen::stale_files(&root, &files);
    assert!(
        stale.is_empty(),
        "stale generated files: {stale:?}; run `cargo run -p gateway-codegen`"
    );
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
