//! Packages in `GATEWAY_PACKAGES_DIR` as declared: `export-schema` shows their entities with
//! no build, and refuses a package that conflicts with another. Serving them goes through the
//! schema registry (`registry`).

use std::path::{Path, PathBuf};
use std::process::Command;

pub(crate) const BOOKMARKS: &str = r#"package: bookmarks
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

/// The SDL `export-schema` prints with the packages of `dir`, which it must accept.
fn exported(dir: &Path) -> String {
    let out = export_schema(Some(dir));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_package_entity_is_in_the_schema_without_a_build() {
    let dir = packages(&[("bookmarks", BOOKMARKS)]);
    let sdl = exported(&dir);
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

#[test]
fn package_entities_get_figures_whatever_their_field_names() {
    // Fields named like the figures (`count`, `max`, `sum`), and an entity with nothing to
    // group by: the schema still builds, with aggregates for both and groups for the first.
    let odd = r#"package: odd
entities:
  - name: Reading
    version: "1.0"
    fields:
      count:
        type: int
        required: true
      max:
        type: int
      sum:
        type: decimal
    acl:
      create: [user]
      read: [user]
      update: [admin]
      delete: [admin]
  - name: Blob
    version: "1.0"
    fields:
      body:
        type: json
    acl:
      create: [user]
      read: [user]
      update: [admin]
      delete: [admin]
"#;
    let dir = packages(&[("odd", odd)]);
    let sdl = exported(&dir);
    for expected in [
        "readingsAggregate(where: ReadingWhere): ReadingAggregate!",
        "readingsGroups(",
        "blobsAggregate(where: BlobWhere): BlobAggregate!",
        "type ReadingSum {",
    ] {
        assert!(sdl.contains(expected), "missing {expected}");
    }
}
