//! Descriptions of the catalog's entities, built once at start-up from the catalog (see
//! [`metadata`]) and read by the engine (SQL building, scoping, cursors, error mapping,
//! GraphQL types) and by the test sweep.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Uuid,
    Text,
    Int,
    BigInt,
    Float,
    Decimal,
    Bool,
    DateTime,
    Json,
    /// A PostgreSQL enum type, by its SQL name.
    Enum(&'static str),
}

#[derive(Debug)]
pub struct ColumnMeta {
    /// Where the column stands in its entity's `columns` (and a `Row`'s values).
    pub position: usize,
    /// GraphQL field name.
    pub field: &'static str,
    /// SQL column name.
    pub column: &'static str,
    pub ty: ColumnType,
    pub list: bool,
    pub nullable: bool,
    /// Part of the generic create/update inputs.
    pub writable: bool,
    /// Written by an insert: a writable column, or the owner the server stamps.
    pub inserted: bool,
    /// Lists may be sorted by it (a single value that is not JSON).
    pub orderable: bool,
    pub required_on_create: bool,
    pub min_length: Option<u32>,
    pub max_length: Option<u32>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub enum_values: &'static [&'static str],
    /// The entity this uuid column references.
    pub references: Option<&'static str>,
    /// Unique on its own (per tenant).
    pub unique: bool,
    /// Roles that alone may give this column in the generic inputs (empty: whoever may
    /// write the row). On the owner column: who may name another user as the owner.
    pub set_by: &'static [AclRole],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityScope {
    /// Rows carry tenant_id and are confined to the caller's tenant.
    Tenant,
    /// Shared by every tenant.
    Global,
    /// The Tenant entity itself: a caller sees its own row only.
    TenantRoot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclRole {
    Public,
    User,
    Owner,
    Admin,
    /// The platform operator (operator tokens from `gateway token --platform` only).
    Platform,
}

#[derive(Debug)]
pub struct AclMeta {
    pub create: &'static [AclRole],
    pub read: &'static [AclRole],
    pub update: &'static [AclRole],
    pub delete: &'static [AclRole],
}

#[derive(Debug)]
pub struct RelationMeta {
    pub name: &'static str,
    pub column: &'static str,
    pub target: &'static str,
    pub inverse: &'static str,
}

#[derive(Debug)]
pub struct EntityMeta {
    pub name: &'static str,
    pub package: &'static str,
    pub table: &'static str,
    pub singular: &'static str,
    pub plural: &'static str,
    pub scope: EntityScope,
    /// The exposed columns, in the order of a `Row`'s values.
    pub columns: &'static [ColumnMeta],
    /// Column naming the owning user (ACL role `self`).
    pub owner: Option<&'static str>,
    /// Optimistic-concurrency column.
    pub version: Option<&'static str>,
    pub append_only: bool,
    pub acl: AclMeta,
    /// Columns of each unique key, without tenant_id.
    pub unique_keys: &'static [&'static [&'static str]],
    pub relations: &'static [RelationMeta],
    /// Members-only rows: readable by the users their membership rows name (and their owner).
    pub members: Option<MembersMeta>,
    /// The `belongsTo` relation (its field name) whose row must be readable for a row to be.
    pub readable_with: Option<&'static str>,
    pub checksum: &'static str,
}

/// The catalog's `members:` of an entity.
#[derive(Debug, Clone, Copy)]
pub struct MembersMeta {
    /// The `hasMany` relation (field name) of the membership rows.
    pub relation: &'static str,
    /// The membership entity's column naming the user.
    pub user: &'static str,
    /// This entity's boolean column that makes a row members-only; none: every row is.
    pub private_when: Option<&'static str>,
}

impl EntityMeta {
    pub fn column(&self, name: &str) -> Option<&'static ColumnMeta> {
        self.columns.iter().find(|c| c.column == name)
    }
    pub fn id_column(&self) -> &'static ColumnMeta {
        // The catalog loader always puts `id` first.
        &self.columns[0]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConstraintKind {
    Unique,
    ForeignKey,
    Check,
}

#[derive(Debug)]
pub struct ConstraintMeta {
    pub name: &'static str,
    pub entity: &'static str,
    pub fields: &'static [&'static str],
    pub kind: ConstraintKind,
}

// ---------------------------------------------------------------- built from the catalog

use std::sync::OnceLock;

use gateway_catalog::model::{self as cat, Catalog, FieldType, Role};
use gateway_catalog::naming::{constraint_name, index_list, index_name};
use heck::ToSnakeCase;

/// What the engine knows of the catalog it serves: the catalog itself (descriptions, enums,
/// relations for the GraphQL types) and the metadata the generic SQL, ACL and error code
/// work from.
pub struct Metadata {
    pub catalog: Catalog,
    /// In catalog order.
    pub entities: Vec<&'static EntityMeta>,
    /// Named constraints of the migration, mapped back to entities and fields.
    pub constraints: &'static [ConstraintMeta],
    /// Per entity (in the order of `entities`), every relation it can navigate.
    links: Vec<&'static [RelationLink]>,
}

/// How a relation leads from a row to related rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    /// `belongsTo`: the row this one references.
    Parent,
    /// `hasOne`: the row referencing this one.
    Child,
    /// `hasMany`: the rows referencing this one.
    Children,
}

/// A relation of an entity as its object fields, filters and orderings see it.
#[derive(Debug)]
pub struct RelationLink {
    pub kind: LinkKind,
    /// GraphQL field name.
    pub name: &'static str,
    /// The related entity.
    pub target: &'static EntityMeta,
    /// Parent: this entity's referencing column. Child(ren): the related entity's.
    pub fk: &'static ColumnMeta,
    /// The catalog's field name of `fk`.
    pub fk_field: &'static str,
}

impl Metadata {
    /// Every relation of `meta`: its `belongsTo` parents, then the `hasOne` / `hasMany`
    /// inverses other entities declare towards it, in catalog order.
    pub fn links(&self, meta: &EntityMeta) -> &'static [RelationLink] {
        self.entities
            .iter()
            .position(|e| std::ptr::eq(*e, meta))
            .and_then(|i| self.links.get(i).copied())
            .unwrap_or(&[])
    }

    pub fn entity(&self, name: &str) -> Option<&'static EntityMeta> {
        self.entities.iter().copied().find(|e| e.name == name)
    }

    /// The catalog's definition of an entity of this metadata.
    pub fn definition(&self, name: &str) -> Option<&cat::Entity> {
        self.catalog.entities.iter().find(|e| e.name == name)
    }
}

static METADATA: OnceLock<&'static Metadata> = OnceLock::new();

/// The metadata of this process, built once from the catalog given to [`install`]. A process
/// serves one catalog; the metadata lives as long as the process (it is leaked, once, so that
/// every request can hold `&'static` references into it without counting them).
///
/// Only code running under a schema calls this, and a schema is built from installed
/// metadata ([`crate::graphql::build`] takes it): reaching it uninstalled is a bug.
pub fn metadata() -> &'static Metadata {
    match METADATA.get() {
        Some(m) => m,
        None => panic!("no catalog installed: call graphql::meta::install first"),
    }
}

/// The metadata of this process, if a catalog was installed.
pub fn installed() -> Option<&'static Metadata> {
    METADATA.get().copied()
}

/// Serves `catalog` in this process; refused once the metadata has been built from another.
pub fn install(catalog: Catalog) -> Result<&'static Metadata, String> {
    let checksums: Vec<(String, String)> = catalog
        .entities
        .iter()
        .map(|e| (e.name.clone(), e.checksum.clone()))
        .collect();
    let m = METADATA.get_or_init(|| Box::leak(Box::new(build(catalog))));
    let same = m.entities.len() == checksums.len()
        && m.entities
            .iter()
            .zip(&checksums)
            .all(|(e, (name, sum))| e.name == name && e.checksum == sum);
    if same {
        Ok(m)
    } else {
        Err("this process already serves another catalog".into())
    }
}

/// The constraints of the installed catalog (none before one is installed).
pub fn constraints() -> &'static [ConstraintMeta] {
    installed().map_or(&[], |m| m.constraints)
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn leak_slice<T>(v: Vec<T>) -> &'static [T] {
    Box::leak(v.into_boxed_slice())
}

fn acl_roles(roles: &[Role]) -> &'static [AclRole] {
    leak_slice(
        roles
            .iter()
            .map(|r| match r {
                Role::Public => AclRole::Public,
                Role::User => AclRole::User,
                Role::SelfOwner => AclRole::Owner,
                Role::Admin => AclRole::Admin,
                Role::Platform => AclRole::Platform,
            })
            .collect(),
    )
}

fn column_type(c: &Catalog, f: &cat::Field) -> ColumnType {
    match &f.ty {
        FieldType::String => ColumnType::Text,
        FieldType::Int => ColumnType::Int,
        FieldType::BigInt => ColumnType::BigInt,
        FieldType::Float => ColumnType::Float,
        FieldType::Decimal => ColumnType::Decimal,
        FieldType::Boolean => ColumnType::Bool,
        FieldType::Uuid => ColumnType::Uuid,
        FieldType::Json => ColumnType::Json,
        FieldType::DateTime => ColumnType::DateTime,
        FieldType::Enum(e) => ColumnType::Enum(leak(
            c.enums
                .iter()
                .find(|x| &x.name == e)
                .map(|d| d.sql_name())
                .unwrap_or_default(),
        )),
    }
}

fn column(c: &Catalog, e: &cat::Entity, position: usize, f: &cat::Field) -> ColumnMeta {
    let enum_values = match &f.ty {
        FieldType::Enum(en) => c
            .enums
            .iter()
            .find(|x| &x.name == en)
            .map(|d| leak_slice(d.values.iter().map(|v| leak(v.clone())).collect()))
            .unwrap_or(&[]),
        _ => &[],
    };
    ColumnMeta {
        position,
        field: leak(f.name.clone()),
        column: leak(f.column()),
        ty: column_type(c, f),
        list: f.list,
        nullable: !f.required,
        writable: f.writable(),
        inserted: f.inserted(),
        orderable: f.orderable(),
        required_on_create: f.writable() && f.required_on_create(),
        min_length: f.min_length,
        max_length: f.max_length,
        min: f.min,
        max: f.max,
        enum_values,
        references: e
            .relations
            .iter()
            .find(|r| r.field == f.name)
            .map(|r| leak(r.target.clone())),
        unique: e
            .indexes
            .iter()
            .any(|i| i.unique && i.fields == [f.name.clone()]),
        set_by: acl_roles(&f.set_by),
    }
}

fn entity(c: &Catalog, e: &cat::Entity) -> &'static EntityMeta {
    let scope = if e.name == cat::TENANT_ENTITY {
        EntityScope::TenantRoot
    } else if e.tenant_scoped() {
        EntityScope::Tenant
    } else {
        EntityScope::Global
    };
    let columns = leak_slice(
        e.exposed_fields()
            .enumerate()
            .map(|(i, f)| column(c, e, i, f))
            .collect(),
    );
    let unique_keys = leak_slice(
        e.unique_indexes()
            .map(|i| leak_slice(i.fields.iter().map(|f| leak(f.to_snake_case())).collect()))
            .collect(),
    );
    let relations = leak_slice(
        e.relations
            .iter()
            .map(|r| RelationMeta {
                name: leak(r.name.clone()),
                column: leak(r.field.to_snake_case()),
                target: leak(r.target.clone()),
                inverse: leak(r.inverse.clone()),
            })
            .collect(),
    );
    Box::leak(Box::new(EntityMeta {
        name: leak(e.name.clone()),
        package: leak(e.package.clone()),
        table: leak(e.table.clone()),
        singular: leak(e.singular()),
        plural: leak(e.plural.clone()),
        scope,
        columns,
        owner: e.owner.as_ref().map(|o| leak(o.to_snake_case())),
        version: e.version_field().map(|f| leak(f.column())),
        append_only: e.append_only,
        acl: AclMeta {
            create: acl_roles(&e.acl.create),
            read: acl_roles(&e.acl.read),
            update: acl_roles(&e.acl.update),
            delete: acl_roles(&e.acl.delete),
        },
        unique_keys,
        relations,
        members: e.members.as_ref().map(|m| MembersMeta {
            relation: leak(m.relation.clone()),
            user: leak(m.user.to_snake_case()),
            private_when: m.private_when.as_ref().map(|p| leak(p.to_snake_case())),
        }),
        readable_with: e.readable_with.as_ref().map(|r| leak(r.clone())),
        checksum: leak(e.checksum.clone()),
    }))
}

fn constraints_of(e: &cat::Entity, out: &mut Vec<ConstraintMeta>) {
    let name: &'static str = leak(e.name.clone());
    for f in &e.fields {
        let col = f.column();
        let field: &'static [&'static str] = leak_slice(vec![leak(f.name.clone())]);
        for (suffix, present) in [
            ("max_length", f.max_length.is_some()),
            ("min_length", f.min_length.is_some()),
            ("min", f.min.is_some()),
            ("max", f.max.is_some()),
        ] {
            if present {
                out.push(ConstraintMeta {
                    name: leak(constraint_name(&e.table, &col, suffix)),
                    entity: name,
                    fields: field,
                    kind: ConstraintKind::Check,
                });
            }
        }
    }
    for r in &e.relations {
        out.push(ConstraintMeta {
            name: leak(constraint_name(&e.table, &r.field.to_snake_case(), "fkey")),
            entity: name,
            fields: leak_slice(vec![leak(r.field.clone())]),
            kind: ConstraintKind::ForeignKey,
        });
    }
    for idx in index_list(e).iter().filter(|i| i.unique) {
        out.push(ConstraintMeta {
            name: leak(index_name(e, idx)),
            entity: name,
            fields: leak_slice(idx.fields.iter().map(|f| leak(f.clone())).collect()),
            kind: ConstraintKind::Unique,
        });
    }
}

fn links_of(
    c: &Catalog,
    entities: &[&'static EntityMeta],
    e: &cat::Entity,
) -> &'static [RelationLink] {
    let meta_of = |name: &str| entities.iter().copied().find(|m| m.name == name);
    let col = |m: &'static EntityMeta, field: &str| m.columns.iter().find(|c| c.field == field);
    let mut out = Vec::new();
    let this = meta_of(&e.name);
    for r in &e.relations {
        if let (Some(m), Some(target)) = (this, meta_of(&r.target)) {
            if let Some(fk) = col(m, &r.field) {
                out.push(RelationLink {
                    kind: LinkKind::Parent,
                    name: leak(r.name.clone()),
                    target,
                    fk,
                    fk_field: fk.field,
                });
            }
        }
    }
    for child in &c.entities {
        let Some(cm) = meta_of(&child.name) else {
            continue;
        };
        for r in child.relations.iter().filter(|r| r.target == e.name) {
            if let Some(fk) = col(cm, &r.field) {
                out.push(RelationLink {
                    kind: match r.inverse_type {
                        cat::InverseType::HasOne => LinkKind::Child,
                        cat::InverseType::HasMany => LinkKind::Children,
                    },
                    name: leak(r.inverse.clone()),
                    target: cm,
                    fk,
                    fk_field: fk.field,
                });
            }
        }
    }
    leak_slice(out)
}

/// Builds the metadata of a validated catalog.
pub fn build(catalog: Catalog) -> Metadata {
    let entities: Vec<&'static EntityMeta> = catalog
        .entities
        .iter()
        .map(|e| entity(&catalog, e))
        .collect();
    let links = catalog
        .entities
        .iter()
        .map(|e| links_of(&catalog, &entities, e))
        .collect();
    let mut constraints = Vec::new();
    for e in &catalog.entities {
        constraints_of(e, &mut constraints);
    }
    Metadata {
        entities,
        constraints: leak_slice(constraints),
        links,
        catalog,
    }
}
