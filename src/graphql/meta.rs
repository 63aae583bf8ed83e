//! Static descriptions of the catalog's entities, written by the generator and read by the
//! generic code (SQL building, scoping, cursors, error mapping) and by the test sweep.

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
    /// GraphQL field name.
    pub field: &'static str,
    /// SQL column name.
    pub column: &'static str,
    /// Name of the Rust field the row struct reads it into.
    pub alias: &'static str,
    pub ty: ColumnType,
    pub list: bool,
    pub nullable: bool,
    /// Part of the generic create/update inputs.
    pub writable: bool,
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
    /// The exposed columns, in the order of the row struct.
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
    pub checksum: &'static str,
}

impl EntityMeta {
    pub fn column(&self, name: &str) -> Option<&'static ColumnMeta> {
        self.columns.iter().find(|c| c.column == name)
    }
    pub fn id_column(&self) -> &'static ColumnMeta {
        // The generator always emits `id` first.
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
