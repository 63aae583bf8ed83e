//! The YAML format of `catalog/<package>/entities.yaml`, as written by people (see
//! `catalog/README.md`). Unknown keys are errors so that a typo never silently drops a rule.

use indexmap::IndexMap;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawPackage {
    /// The package's name; seed 001's files leave it out (the folder or `metadata.json`
    /// names the package).
    #[serde(default)]
    pub package: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub enums: Vec<RawEnum>,
    #[serde(default)]
    pub entities: Vec<RawEntity>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawEnum {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub values: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawEntity {
    pub name: String,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub table: Option<String>,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub plural: Option<String>,
    #[serde(default)]
    pub append_only: bool,
    #[serde(default)]
    pub fields: IndexMap<String, RawField>,
    #[serde(default)]
    pub indexes: Vec<RawIndex>,
    #[serde(default)]
    pub relations: Vec<RawRelation>,
    #[serde(default)]
    pub acl: Option<RawAcl>,
    /// Rows readable only by their members (and their owner): a private room, a conversation.
    #[serde(default)]
    pub members: Option<RawMembers>,
    /// A `belongsTo` relation: a row is readable only when the row it belongs to is.
    #[serde(default)]
    pub readable_with: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawMembers {
    /// The `hasMany` relation (an inverse name) whose rows are the memberships.
    pub relation: String,
    /// The membership entity's field naming the member user.
    pub user: String,
    /// A boolean field of this entity: only rows where it is true are members-only.
    #[serde(default)]
    pub private_when: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawField {
    #[serde(rename = "type")]
    pub ty: String,
    #[serde(default, rename = "enum")]
    pub enum_name: Option<String>,
    #[serde(default)]
    pub list: bool,
    #[serde(default)]
    pub required: bool,
    /// Seed 001 writes `nullable: true`; it only restates the default.
    #[serde(default)]
    pub nullable: Option<bool>,
    /// Seed 001 marks its declared `id` with `primary` and `generated`; the catalog's `id` is
    /// always the generated primary key, so they are accepted on `id` only.
    #[serde(default)]
    pub primary: bool,
    #[serde(default)]
    pub generated: bool,
    /// The field's previous name: the migration renames the column instead of dropping it
    /// and adding another. A migration hint, not part of the structure.
    #[serde(default)]
    pub renamed_from: Option<String>,
    #[serde(default)]
    pub default: Option<serde_norway::Value>,
    #[serde(default)]
    pub max_length: Option<u32>,
    #[serde(default)]
    pub min_length: Option<u32>,
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
    #[serde(default)]
    pub unique: bool,
    #[serde(default)]
    pub index: bool,
    #[serde(default)]
    pub hidden: bool,
    #[serde(default)]
    pub read_only: bool,
    #[serde(default)]
    pub concurrency: bool,
    /// Roles that alone may give the field in the generic inputs (`admin`, `platform`).
    #[serde(default)]
    pub set_by: Option<Vec<String>>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawIndex {
    pub fields: Vec<String>,
    #[serde(default)]
    pub unique: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawRelation {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub entity: String,
    pub field: String,
    #[serde(default)]
    pub inverse: Option<String>,
    #[serde(default)]
    pub inverse_type: Option<String>,
    #[serde(default)]
    pub on_delete: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawAcl {
    #[serde(default)]
    pub create: Option<Vec<String>>,
    #[serde(default)]
    pub read: Option<Vec<String>>,
    #[serde(default)]
    pub update: Option<Vec<String>>,
    #[serde(default)]
    pub delete: Option<Vec<String>>,
}
