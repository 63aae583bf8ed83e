//! The validated catalog: what the generator and the gateway work from. Built by `load`, never
//! from YAML directly.

use heck::{ToLowerCamelCase, ToSnakeCase};

/// The entity whose rows are the tenants themselves: global in the catalog, but each tenant
/// sees and edits its own row only.
pub const TENANT_ENTITY: &str = "Tenant";

#[derive(Debug, Clone)]
pub struct Catalog {
    pub packages: Vec<Package>,
    pub enums: Vec<EnumDef>,
    pub entities: Vec<Entity>,
    /// What the loader adapted to the catalog's conventions (seed 001's declared `id`,
    /// `tenantId`, `createdAt`, ...), to show whoever reviews the package.
    pub notes: Vec<crate::load::Problem>,
}

#[derive(Debug, Clone)]
pub struct Package {
    pub name: String,
    pub file: String,
    pub description: Option<String>,
}

#[derive(Debug, Clone)]
pub struct EnumDef {
    pub name: String,
    pub package: String,
    pub description: Option<String>,
    pub values: Vec<String>,
}

impl EnumDef {
    /// PostgreSQL type name.
    pub fn sql_name(&self) -> String {
        self.name.to_snake_case()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Tenant,
    Global,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FieldType {
    String,
    Int,
    BigInt,
    Float,
    Decimal,
    Boolean,
    Uuid,
    Json,
    DateTime,
    Enum(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum DefaultValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    EnumValue(String),
    EmptyJsonObject,
    EmptyJsonArray,
    EmptyList,
    Now,
}

#[derive(Debug, Clone)]
pub struct Field {
    /// lowerCamelCase, as in the YAML and in GraphQL.
    pub name: String,
    pub ty: FieldType,
    pub list: bool,
    pub required: bool,
    pub default: Option<DefaultValue>,
    pub max_length: Option<u32>,
    pub min_length: Option<u32>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub unique: bool,
    pub hidden: bool,
    pub read_only: bool,
    pub concurrency: bool,
    /// Roles that alone may give this field in the generic inputs; empty = whoever may write
    /// the row. On the owner field: who may name another user as owner.
    pub set_by: Vec<Role>,
    /// The entity's `owner` field.
    pub owner: bool,
    /// id, tenantId, createdAt, updatedAt: added by the loader, set by the server.
    pub implicit: bool,
    pub description: Option<String>,
    /// The field's previous name, for the migration (`renamedFrom`); not structure.
    pub renamed_from: Option<String>,
}

impl Field {
    pub fn column(&self) -> String {
        self.name.to_snake_case()
    }
    /// The identifier of the field in Rust code and in the Diesel table.
    pub fn rust_ident(&self) -> String {
        rust_ident(&self.column())
    }
    /// Settable through the generic create/update inputs.
    pub fn writable(&self) -> bool {
        !self.implicit && !self.hidden && !self.read_only && !self.concurrency && !self.stamped()
    }
    /// The owner field nobody may set: always the caller on create, never changed by update.
    pub fn stamped(&self) -> bool {
        self.owner && !self.implicit && self.set_by.is_empty()
    }
    /// The owner field that some roles may set (to act for another user); the caller by default.
    pub fn owner_input(&self) -> bool {
        self.owner && !self.implicit && !self.set_by.is_empty()
    }
    /// Part of the insert form: given by the client or stamped by the server.
    pub fn inserted(&self) -> bool {
        self.writable() || self.stamped()
    }
    /// Must be given on create.
    pub fn required_on_create(&self) -> bool {
        self.required && self.default.is_none() && !self.owner
    }
    pub fn orderable(&self) -> bool {
        !self.list && !self.hidden && self.ty != FieldType::Json
    }
    /// The field's documentation in the create and update inputs: who may give it.
    pub fn input_description(&self) -> Option<String> {
        let who: Vec<&str> = self
            .set_by
            .iter()
            .map(|r| match r {
                Role::Platform => "the platform operator",
                _ => "an admin",
            })
            .collect();
        let rule = if self.owner_input() {
            Some(format!(
                "Defaults to you; only {} may name another user.",
                who.join(" or ")
            ))
        } else if !self.set_by.is_empty() {
            Some(format!("Only {} may set this.", who.join(" or ")))
        } else {
            None
        };
        match (self.description.as_deref(), rule) {
            (Some(d), Some(r)) => Some(format!("{}. {r}", d.trim_end_matches('.'))),
            (d, r) => r.or(d.map(str::to_string)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDelete {
    Cascade,
    SetNull,
    Restrict,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InverseType {
    HasMany,
    HasOne,
}

#[derive(Debug, Clone)]
pub struct Relation {
    /// belongsTo field name on this entity.
    pub name: String,
    pub target: String,
    pub field: String,
    pub inverse: String,
    pub inverse_type: InverseType,
    pub on_delete: OnDelete,
}

#[derive(Debug, Clone)]
pub struct Index {
    /// Field names (lowerCamel); tenantId is not listed, it is prepended for tenant scope.
    pub fields: Vec<String>,
    pub unique: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Public,
    User,
    SelfOwner,
    Admin,
    /// The platform operator: tokens from `gateway token --platform` only.
    Platform,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Public,
        Role::User,
        Role::SelfOwner,
        Role::Admin,
        Role::Platform,
    ];

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Public => "public",
            Role::User => "user",
            Role::SelfOwner => "self",
            Role::Admin => "admin",
            Role::Platform => "platform",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Acl {
    pub create: Vec<Role>,
    pub read: Vec<Role>,
    pub update: Vec<Role>,
    pub delete: Vec<Role>,
}

#[derive(Debug, Clone)]
pub struct Entity {
    pub name: String,
    pub package: String,
    pub file: String,
    pub version: String,
    pub description: Option<String>,
    pub scope: Scope,
    pub table: String,
    pub owner: Option<String>,
    pub plural: String,
    pub append_only: bool,
    pub fields: Vec<Field>,
    pub indexes: Vec<Index>,
    pub relations: Vec<Relation>,
    pub acl: Acl,
    /// Members-only rows (`members:`).
    pub members: Option<Members>,
    /// The `belongsTo` relation whose target must be readable for a row to be (`readableWith:`).
    pub readable_with: Option<String>,
    pub checksum: String,
}

/// Who may read an entity's rows beyond its `acl`: the users named by its membership rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Members {
    /// The `hasMany` relation (inverse name) of the membership entity.
    pub relation: String,
    /// The membership entity's field naming the user.
    pub user: String,
    /// This entity's boolean field that makes a row members-only; none: every row is.
    pub private_when: Option<String>,
}

impl Entity {
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }
    /// GraphQL field name of the by-id query.
    pub fn singular(&self) -> String {
        lower_first_word(&self.name)
    }
    pub fn tenant_scoped(&self) -> bool {
        self.scope == Scope::Tenant
    }
    pub fn version_field(&self) -> Option<&Field> {
        self.fields.iter().find(|f| f.concurrency)
    }
    pub fn exposed_fields(&self) -> impl Iterator<Item = &Field> {
        self.fields.iter().filter(|f| !f.hidden)
    }
    pub fn writable_fields(&self) -> impl Iterator<Item = &Field> {
        self.fields.iter().filter(|f| f.writable())
    }
    /// The columns of the insert form: the writable fields and the stamped owner.
    pub fn inserted_fields(&self) -> impl Iterator<Item = &Field> {
        self.fields.iter().filter(|f| f.inserted())
    }
    pub fn unique_indexes(&self) -> impl Iterator<Item = &Index> {
        self.indexes.iter().filter(|i| i.unique)
    }
    pub fn can_create(&self) -> bool {
        !self.acl.create.is_empty()
    }
    pub fn can_update(&self) -> bool {
        !self.append_only && !self.acl.update.is_empty()
    }
    pub fn can_delete(&self) -> bool {
        !self.append_only && !self.acl.delete.is_empty()
    }
}

/// `CSSTheme` -> `cssTheme`, `GitHubRepository` -> `gitHubRepository`.
pub fn lower_first_word(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut upper_run = chars.iter().take_while(|c| c.is_ascii_uppercase()).count();
    if upper_run > 1 && upper_run < chars.len() {
        // An acronym followed by a word: keep the word's capital.
        upper_run -= 1;
    }
    let upper_run = upper_run.max(1);
    let head: String = chars[..upper_run].iter().collect::<String>().to_lowercase();
    let tail: String = chars[upper_run..].iter().collect();
    format!("{head}{tail}")
}

/// Naive English plural, good enough for entity names; `plural:` in YAML overrides it.
pub fn pluralize(word: &str) -> String {
    let lower = word.to_lowercase();
    if lower.ends_with("data") {
        return format!("{word}List");
    }
    if lower.ends_with('y')
        && !matches!(
            lower.chars().rev().nth(1),
            Some('a') | Some('e') | Some('o') | Some('u')
        )
    {
        return format!("{}ies", &word[..word.len() - 1]);
    }
    if lower.ends_with('s')
        || lower.ends_with('x')
        || lower.ends_with("ch")
        || lower.ends_with("sh")
    {
        return format!("{word}es");
    }
    format!("{word}s")
}

pub fn default_table(name: &str) -> String {
    pluralize(&lower_first_word(name)).to_snake_case()
}

pub fn camel(s: &str) -> String {
    s.to_lower_camel_case()
}

const RUST_KEYWORDS: &[&str] = &[
    "as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn", "for",
    "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return",
    "static", "struct", "super", "trait", "true", "type", "unsafe", "use", "where", "while",
    "async", "await", "dyn", "abstract", "become", "box", "do", "final", "macro", "override",
    "priv", "typeof", "unsized", "virtual", "yield", "try", "gen",
];

/// Keywords get a trailing underscore, the way `diesel print-schema` names such columns.
pub fn rust_ident(snake: &str) -> String {
    if RUST_KEYWORDS.contains(&snake) {
        format!("{snake}_")
    } else {
        snake.to_string()
    }
}
