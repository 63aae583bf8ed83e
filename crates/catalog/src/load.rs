//! Loading and validating the catalog. Every problem names its file, entity and field, and all
//! problems are reported at once so that one run shows everything to fix.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::Path;

use heck::ToSnakeCase;

use crate::model::*;
use crate::raw::*;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub entity: Option<String>,
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(e) = &self.entity {
            write!(f, ": entity {e}")?;
        }
        if let Some(x) = &self.field {
            write!(f, ", field {x}")?;
        }
        write!(f, ": {}", self.message)
    }
}

#[derive(Debug)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "the catalog has {} problem(s):", self.0.len())?;
        for p in &self.0 {
            writeln!(f, "  {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

const IMPLICIT: &[&str] = &["id", "tenantId", "createdAt", "updatedAt"];

/// GraphQL types written by hand in the gateway.
const GATEWAY_TYPES: &[&str] = &[
    "Query",
    "Mutation",
    "SubscriptionRoot",
    "PageInfo",
    "Viewer",
    "SortOrder",
    "ChangeOp",
    "QueryMode",
    "BigInt",
    "Decimal",
    "DateTime",
    "JSON",
    "BigIntFilter",
    "BooleanFilter",
    "DateTimeFilter",
    "DecimalFilter",
    "FloatFilter",
    "IDFilter",
    "IDListFilter",
    "IntFilter",
    "JSONFilter",
    "StringFilter",
    "StringListFilter",
];

/// The types generated for each entity, by suffix of its name.
pub const ENTITY_TYPE_SUFFIXES: &[&str] = &[
    "",
    "Connection",
    "Edge",
    "Where",
    "OrderBy",
    "CreateInput",
    "UpdateInput",
    "UniqueKey",
    "ListRelationFilter",
    "Change",
];

/// Reads every `<dir>/<package>/entities.yaml`, in package-name order.
pub fn load_dir(dir: &Path) -> Result<Catalog, Problems> {
    let mut files = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| {
        Problems(vec![Problem {
            file: dir.display().to_string(),
            entity: None,
            field: None,
            message: format!("cannot read the catalog folder: {e}"),
        }])
    })?;
    for entry in entries.flatten() {
        let path = entry.path().join("entities.yaml");
        if path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    let mut sources = Vec::new();
    let mut problems = Vec::new();
    for path in files {
        let rel = path
            .strip_prefix(dir.parent().unwrap_or(dir))
            .unwrap_or(&path)
            .display()
            .to_string();
        match std::fs::read_to_string(&path) {
            Ok(text) => sources.push((rel, text)),
            Err(e) => problems.push(Problem {
                file: rel,
                entity: None,
                field: None,
                message: format!("cannot read: {e}"),
            }),
        }
    }
    if !problems.is_empty() {
        return Err(Problems(problems));
    }
    load_sources(&sources)
}

/// One package's `entities.yaml`: where it was read from, the package's name, its text.
#[derive(Debug, Clone)]
pub struct Source {
    pub file: String,
    pub package: String,
    pub text: String,
}

impl Source {
    /// A file of the catalog's layout, `<package>/entities.yaml`: its folder names the package.
    pub fn in_folder(file: &str, text: &str) -> Source {
        Source {
            file: file.to_string(),
            package: Path::new(file)
                .parent()
                .and_then(|p| p.file_name())
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default(),
            text: text.to_string(),
        }
    }
}

/// Loads catalog files given as (path, text) pairs; the path's folder names the package.
pub fn load_sources(sources: &[(String, String)]) -> Result<Catalog, Problems> {
    let sources: Vec<Source> = sources
        .iter()
        .map(|(file, text)| Source::in_folder(file, text))
        .collect();
    load_packages(&sources)
}

/// Loads and validates packages together. A file that names its package (`package:`) must
/// name the one it is loaded as; seed 001's files name none. What the loader had to adapt
/// to the catalog's conventions is in the catalog's `notes`.
pub fn load_packages(sources: &[Source]) -> Result<Catalog, Problems> {
    let mut v = Validator::default();
    let mut raws = Vec::new();
    for source in sources {
        let file = &source.file;
        match serde_norway::from_str::<RawPackage>(&source.text) {
            Ok(raw) => {
                if let Some(named) = &raw.package {
                    if *named != source.package {
                        v.problem(
                            file,
                            None,
                            None,
                            format!(
                                "package `{named}` does not match its folder `{}`",
                                source.package
                            ),
                        );
                    }
                }
                raws.push((file.clone(), source.package.clone(), raw));
            }
            Err(e) => v.problem(file, None, None, format!("not valid catalog YAML: {e}")),
        }
    }
    let mut catalog = v.build(&raws);
    if v.problems.is_empty() {
        catalog.notes = v.notes;
        Ok(catalog)
    } else {
        Err(Problems(v.problems))
    }
}

#[derive(Default)]
struct Validator {
    problems: Vec<Problem>,
    /// What was adapted, not refused: seed 001's conventions mapped onto the catalog's.
    notes: Vec<Problem>,
}

impl Validator {
    fn problem(&mut self, file: &str, entity: Option<&str>, field: Option<&str>, msg: String) {
        self.problems.push(Problem {
            file: file.to_string(),
            entity: entity.map(str::to_string),
            field: field.map(str::to_string),
            message: msg,
        });
    }

    fn note(&mut self, file: &str, entity: &str, field: Option<&str>, msg: String) {
        self.notes.push(Problem {
            file: file.to_string(),
            entity: Some(entity.to_string()),
            field: field.map(str::to_string),
            message: msg,
        });
    }

    fn build(&mut self, raws: &[(String, String, RawPackage)]) -> Catalog {
        let mut packages = Vec::new();
        let mut enums: Vec<EnumDef> = Vec::new();
        let mut enum_files: HashMap<String, String> = HashMap::new();
        for (file, package, raw) in raws {
            packages.push(Package {
                name: package.clone(),
                file: file.clone(),
                description: raw.description.clone(),
            });
            for e in &raw.enums {
                if !is_pascal(&e.name) {
                    self.problem(
                        file,
                        None,
                        None,
                        format!("enum `{}` must be PascalCase", e.name),
                    );
                }
                if let Some(other) = enum_files.get(&e.name) {
                    self.problem(
                        file,
                        None,
                        None,
                        format!("enum `{}` is already defined in {other}", e.name),
                    );
                    continue;
                }
                if e.values.is_empty() {
                    self.problem(file, None, None, format!("enum `{}` has no values", e.name));
                }
                let mut seen = HashSet::new();
                for value in &e.values {
                    if !is_screaming(value) {
                        self.problem(
                            file,
                            None,
                            None,
                            format!(
                                "enum `{}` value `{value}` must be SCREAMING_SNAKE_CASE",
                                e.name
                            ),
                        );
                    }
                    if !seen.insert(value) {
                        self.problem(
                            file,
                            None,
                            None,
                            format!("enum `{}` lists `{value}` twice", e.name),
                        );
                    }
                }
                enum_files.insert(e.name.clone(), file.clone());
                enums.push(EnumDef {
                    name: e.name.clone(),
                    package: package.clone(),
                    description: e.description.clone(),
                    values: e.values.clone(),
                });
            }
        }

        // First pass: each entity on its own.
        let mut entities: Vec<Entity> = Vec::new();
        let mut by_name: BTreeMap<String, usize> = BTreeMap::new();
        for (file, package, raw) in raws {
            for re in &raw.entities {
                let Some(entity) = self.entity(file, package, re, &enums) else {
                    continue;
                };
                if let Some(&i) = by_name.get(&entity.name) {
                    let other = &entities[i];
                    if other.checksum != entity.checksum {
                        self.problem(
                            file,
                            Some(&entity.name),
                            None,
                            format!(
                                "defined differently in {} (checksum {} here, {} there): the packages must agree on one definition",
                                other.file,
                                &entity.checksum[..12],
                                &other.checksum[..12]
                            ),
                        );
                    }
                    // Same checksum: compatible, the first definition serves both.
                    continue;
                }
                by_name.insert(entity.name.clone(), entities.len());
                entities.push(entity);
            }
        }

        // Second pass: what needs the whole catalog.
        let mut tables: HashMap<String, String> = HashMap::new();
        let mut roots: HashMap<String, String> = HashMap::new();
        for e in &entities {
            if let Some(other) = tables.insert(e.table.clone(), e.name.clone()) {
                self.problem(
                    &e.file,
                    Some(&e.name),
                    None,
                    format!("table `{}` is also used by {other}", e.table),
                );
            }
            for root in [e.singular(), e.plural.clone()] {
                if let Some(other) = roots.insert(root.clone(), e.name.clone()) {
                    self.problem(
                        &e.file,
                        Some(&e.name),
                        None,
                        format!("GraphQL field `{root}` is also used by {other}; set `plural:`"),
                    );
                }
            }
        }
        let mut inverse_names: HashMap<(String, String), String> = HashMap::new();
        for e in &entities {
            for r in &e.relations {
                let Some(&ti) = by_name.get(&r.target) else {
                    self.problem(
                        &e.file,
                        Some(&e.name),
                        Some(&r.field),
                        format!(
                            "relation `{}` points to a missing entity `{}`",
                            r.name, r.target
                        ),
                    );
                    continue;
                };
                let target = &entities[ti];
                if e.scope == Scope::Global && target.scope == Scope::Tenant {
                    self.problem(
                        &e.file,
                        Some(&e.name),
                        Some(&r.field),
                        format!(
                            "a global entity cannot reference the tenant-scoped `{}`",
                            target.name
                        ),
                    );
                }
                if target.field(&r.inverse).is_some()
                    || target.relations.iter().any(|x| x.name == r.inverse)
                {
                    self.problem(
                        &e.file,
                        Some(&e.name),
                        Some(&r.field),
                        format!(
                            "inverse `{}` clashes with a field of `{}`",
                            r.inverse, target.name
                        ),
                    );
                }
                let key = (target.name.clone(), r.inverse.clone());
                if let Some(other) = inverse_names.insert(key, e.name.clone()) {
                    self.problem(
                        &e.file,
                        Some(&e.name),
                        Some(&r.field),
                        format!(
                            "inverse `{}` on `{}` is already declared by {other}",
                            r.inverse, target.name
                        ),
                    );
                }
            }
        }

        self.read_rules(&entities);
        self.type_names(&packages, &entities, &enums);
        Catalog {
            packages,
            enums,
            entities,
            notes: Vec::new(),
        }
    }

    /// `members` names a hasMany relation towards the entity, the membership entity's uuid
    /// user field and (`privateWhen`) a boolean field of the entity; `readableWith` one of the
    /// entity's belongsTo relations, in chains of at most 4 and without cycles.
    fn read_rules(&mut self, entities: &[Entity]) {
        for e in entities {
            if let Some(m) = &e.members {
                let member = entities.iter().find(|x| {
                    x.relations
                        .iter()
                        .any(|r| r.target == e.name && r.inverse == m.relation)
                });
                match member {
                    None => self.problem(
                        &e.file,
                        Some(&e.name),
                        None,
                        format!(
                            "members.relation `{}` is no hasMany relation towards {}",
                            m.relation, e.name
                        ),
                    ),
                    Some(x) => {
                        if !x
                            .field(&m.user)
                            .is_some_and(|f| f.ty == FieldType::Uuid && !f.list)
                        {
                            self.problem(
                                &e.file,
                                Some(&e.name),
                                None,
                                format!("members.user `{}` is no uuid field of {}", m.user, x.name),
                            );
                        }
                    }
                }
                if let Some(p) = &m.private_when {
                    if !e
                        .field(p)
                        .is_some_and(|f| f.ty == FieldType::Boolean && !f.list)
                    {
                        self.problem(
                            &e.file,
                            Some(&e.name),
                            Some(p),
                            "members.privateWhen must name a boolean field".into(),
                        );
                    }
                }
            }
            if let Some(r) = &e.readable_with {
                let mut depth = 0;
                let mut at = e;
                let mut next = Some(r.clone());
                while let Some(name) = next {
                    depth += 1;
                    let target = at
                        .relations
                        .iter()
                        .find(|x| x.name == name)
                        .and_then(|x| entities.iter().find(|t| t.name == x.target));
                    let Some(target) = target else {
                        self.problem(
                            &e.file,
                            Some(&e.name),
                            None,
                            format!(
                                "readableWith `{name}` is no belongsTo relation of {}",
                                at.name
                            ),
                        );
                        break;
                    };
                    if depth > 4 {
                        self.problem(
                            &e.file,
                            Some(&e.name),
                            None,
                            "readableWith chains are at most 4 long (and never a cycle)".into(),
                        );
                        break;
                    }
                    at = target;
                    next = target.readable_with.clone();
                }
            }
        }
    }

    /// Every GraphQL type the gateway will define must have one owner: an entity's name and
    /// its generated companions, an enum and its filter, or the gateway's own types.
    fn type_names(&mut self, packages: &[Package], entities: &[Entity], enums: &[EnumDef]) {
        let mut owners: HashMap<String, String> = GATEWAY_TYPES
            .iter()
            .map(|t| (t.to_string(), "the gateway".to_string()))
            .collect();
        let mut claim = |this: &mut Self, file: &str, name: String, owner: String| {
            if let Some(prev) = owners.insert(name.clone(), owner.clone()) {
                if prev != owner {
                    this.problem(
                        file,
                        None,
                        None,
                        format!("GraphQL type `{name}` of {owner} is already defined by {prev}"),
                    );
                }
            }
        };
        for e in entities {
            for suffix in ENTITY_TYPE_SUFFIXES {
                let owner = format!("entity `{}`", e.name);
                claim(self, &e.file, format!("{}{suffix}", e.name), owner);
            }
        }
        for en in enums {
            let file = packages
                .iter()
                .find(|p| p.name == en.package)
                .map_or_else(String::new, |p| p.file.clone());
            for suffix in ["", "Filter"] {
                let owner = format!("enum `{}`", en.name);
                claim(self, &file, format!("{}{suffix}", en.name), owner);
            }
        }
    }

    fn entity(
        &mut self,
        file: &str,
        package: &str,
        re: &RawEntity,
        enums: &[EnumDef],
    ) -> Option<Entity> {
        let en = re.name.as_str();
        let before = self.problems.len();
        if !is_pascal(en) {
            self.problem(
                file,
                Some(en),
                None,
                "entity names must be PascalCase".into(),
            );
        }
        let scope = match re.scope.as_deref() {
            None | Some("tenant") => Scope::Tenant,
            Some("global") => Scope::Global,
            Some(other) => {
                self.problem(
                    file,
                    Some(en),
                    None,
                    format!("unknown scope `{other}` (tenant or global)"),
                );
                Scope::Tenant
            }
        };

        let mut fields = vec![implicit("id", FieldType::Uuid)];
        if scope == Scope::Tenant {
            fields.push(implicit("tenantId", FieldType::Uuid));
        }
        let mut columns = HashSet::new();
        for (name, rf) in &re.fields {
            if IMPLICIT.contains(&name.as_str()) {
                self.declared_implicit(file, en, name, rf, scope);
                continue;
            }
            if rf.primary || rf.generated {
                self.problem(
                    file,
                    Some(en),
                    Some(name),
                    "only `id` is a primary key generated by the database".into(),
                );
            }
            if !is_camel(name) {
                self.problem(
                    file,
                    Some(en),
                    Some(name),
                    "field names must be lowerCamelCase".into(),
                );
            }
            if !columns.insert(name.to_snake_case()) {
                self.problem(
                    file,
                    Some(en),
                    Some(name),
                    "maps to the same column as another field".into(),
                );
            }
            if let Some(f) = self.field(file, en, name, rf, enums) {
                fields.push(f);
            }
        }
        fields.push(implicit("createdAt", FieldType::DateTime));
        fields.push(implicit("updatedAt", FieldType::DateTime));

        let mut indexes = Vec::new();
        for f in &fields {
            if f.unique && !f.implicit {
                indexes.push(Index {
                    fields: vec![f.name.clone()],
                    unique: true,
                });
            }
        }
        for (name, rf) in &re.fields {
            // Every tenant-scoped index leads with tenant_id already.
            if rf.index && !rf.unique && !IMPLICIT.contains(&name.as_str()) {
                indexes.push(Index {
                    fields: vec![name.clone()],
                    unique: false,
                });
            }
        }
        for ri in &re.indexes {
            let cols: Vec<String> = ri
                .fields
                .iter()
                .filter(|f| f.as_str() != "tenantId")
                .cloned()
                .collect();
            if cols.is_empty() {
                self.problem(file, Some(en), None, "an index lists no fields".into());
                continue;
            }
            for c in &cols {
                if !fields.iter().any(|f| &f.name == c) {
                    self.problem(
                        file,
                        Some(en),
                        Some(c),
                        "index names a field the entity does not have".into(),
                    );
                }
            }
            if !indexes
                .iter()
                .any(|i: &Index| i.fields == cols && i.unique == ri.unique)
            {
                indexes.push(Index {
                    fields: cols,
                    unique: ri.unique,
                });
            }
        }

        let mut relations = Vec::new();
        let mut rel_names = HashSet::new();
        for rr in &re.relations {
            if rr.field == "tenantId" && rr.entity == TENANT_ENTITY && rr.ty == "belongsTo" {
                self.note(
                    file,
                    en,
                    Some(&rr.field),
                    format!(
                        "relation `{}` to Tenant is implicit: every tenant-scoped row belongs to the caller's tenant (composite keys and row-level security)",
                        rr.name
                    ),
                );
                continue;
            }
            if rr.ty != "belongsTo" {
                self.problem(
                    file,
                    Some(en),
                    Some(&rr.field),
                    format!(
                        "relation `{}` has type `{}`: declare belongsTo on the child and name the parent's side with `inverse`",
                        rr.name, rr.ty
                    ),
                );
                continue;
            }
            if fields.iter().any(|f| f.name == rr.name) || !rel_names.insert(rr.name.clone()) {
                self.problem(
                    file,
                    Some(en),
                    Some(&rr.field),
                    format!(
                        "relation name `{}` clashes with a field or relation",
                        rr.name
                    ),
                );
            }
            let Some(field) = fields.iter().find(|f| f.name == rr.field) else {
                self.problem(
                    file,
                    Some(en),
                    Some(&rr.field),
                    format!(
                        "relation `{}` uses a field the entity does not have",
                        rr.name
                    ),
                );
                continue;
            };
            if field.ty != FieldType::Uuid || field.list {
                self.problem(
                    file,
                    Some(en),
                    Some(&rr.field),
                    format!("relation `{}` needs a single uuid field", rr.name),
                );
            }
            let on_delete = match rr.on_delete.as_deref() {
                None | Some("Cascade") => OnDelete::Cascade,
                Some("SetNull") => OnDelete::SetNull,
                Some("Restrict") => OnDelete::Restrict,
                Some(other) => {
                    self.problem(
                        file,
                        Some(en),
                        Some(&rr.field),
                        format!("unknown onDelete `{other}` (Cascade, SetNull, Restrict)"),
                    );
                    OnDelete::Cascade
                }
            };
            if on_delete == OnDelete::SetNull && field.required {
                self.problem(
                    file,
                    Some(en),
                    Some(&rr.field),
                    "onDelete SetNull needs a nullable field".into(),
                );
            }
            let inverse_type = match rr.inverse_type.as_deref() {
                None | Some("hasMany") => InverseType::HasMany,
                Some("hasOne") => InverseType::HasOne,
                Some(other) => {
                    self.problem(
                        file,
                        Some(en),
                        Some(&rr.field),
                        format!("unknown inverseType `{other}` (hasMany, hasOne)"),
                    );
                    InverseType::HasMany
                }
            };
            if inverse_type == InverseType::HasOne
                && !indexes
                    .iter()
                    .any(|i| i.unique && i.fields == [rr.field.clone()])
            {
                self.problem(
                    file,
                    Some(en),
                    Some(&rr.field),
                    "inverseType hasOne needs the field to be unique".into(),
                );
            }
            let inverse = rr
                .inverse
                .clone()
                .unwrap_or_else(|| pluralize(&lower_first_word(en)));
            relations.push(Relation {
                name: rr.name.clone(),
                target: rr.entity.clone(),
                field: rr.field.clone(),
                inverse,
                inverse_type,
                on_delete,
            });
        }

        let mut acl = match &re.acl {
            Some(raw) => Acl {
                create: self.roles(file, en, "create", raw.create.as_ref()),
                read: self.roles(file, en, "read", raw.read.as_ref()),
                update: self.roles(file, en, "update", raw.update.as_ref()),
                delete: self.roles(file, en, "delete", raw.delete.as_ref()),
            },
            None => {
                self.problem(file, Some(en), None, "has no `acl`".into());
                Acl::default()
            }
        };
        if re.append_only && (!acl.update.is_empty() || !acl.delete.is_empty()) {
            self.problem(
                file,
                Some(en),
                None,
                "is appendOnly, so its acl update and delete must be []".into(),
            );
        }
        let owner = re.owner.clone();
        if let Some(o) = &owner {
            match fields.iter_mut().find(|f| &f.name == o) {
                Some(f) if f.ty == FieldType::Uuid && !f.list => {
                    f.owner = true;
                    if f.read_only && !f.implicit {
                        self.problem(
                            file,
                            Some(en),
                            Some(o),
                            "the owner field is stamped from the caller; use setBy, not readOnly"
                                .into(),
                        );
                    }
                }
                _ => self.problem(
                    file,
                    Some(en),
                    Some(o),
                    "owner must name a uuid field of the entity".into(),
                ),
            }
        }
        // A global row is every tenant's: only the platform operator may change it. The
        // Tenant entity is each tenant's own row (its admins may edit what it lets them).
        if scope == Scope::Global && en != TENANT_ENTITY {
            for (op, roles) in [
                ("create", &acl.create),
                ("update", &acl.update),
                ("delete", &acl.delete),
            ] {
                if roles.iter().any(|r| *r != Role::Platform) {
                    self.problem(
                        file,
                        Some(en),
                        None,
                        format!("is global, so acl {op} may only name `platform`"),
                    );
                }
            }
        }
        let uses_self = [&acl.create, &acl.read, &acl.update, &acl.delete]
            .iter()
            .any(|r| r.contains(&Role::SelfOwner));
        if uses_self && owner.is_none() {
            // Seed 001's example grants `self` without naming an owner: nothing makes a row
            // anyone's, so `self` grants nothing and the other roles decide.
            for roles in [
                &mut acl.create,
                &mut acl.read,
                &mut acl.update,
                &mut acl.delete,
            ] {
                roles.retain(|r| *r != Role::SelfOwner);
            }
            self.note(
                file,
                en,
                None,
                "acl names `self` but the entity has no `owner` field: `self` grants nothing, the other roles apply".into(),
            );
        }
        if !acl.create.is_empty() {
            for f in &fields {
                if f.hidden && f.required && f.default.is_none() {
                    self.problem(
                        file,
                        Some(en),
                        Some(&f.name),
                        "a hidden required field without default cannot be set through the API: make acl create [] or the field nullable".into(),
                    );
                }
            }
        }
        let concurrency: Vec<_> = fields.iter().filter(|f| f.concurrency).collect();
        if concurrency.len() > 1
            || concurrency
                .first()
                .is_some_and(|f| f.name != "version" || f.ty != FieldType::Int)
        {
            self.problem(
                file,
                Some(en),
                None,
                "concurrency: true is for one int field named `version`".into(),
            );
        }

        let table = re.table.clone().unwrap_or_else(|| default_table(en));
        let plural = re
            .plural
            .clone()
            .unwrap_or_else(|| pluralize(&lower_first_word(en)));
        if self.problems.len() > before {
            return None;
        }
        let mut entity = Entity {
            name: en.to_string(),
            package: package.to_string(),
            file: file.to_string(),
            version: re.version.clone().unwrap_or_else(|| "1.0".into()),
            description: re.description.clone(),
            scope,
            table,
            owner,
            plural,
            append_only: re.append_only,
            fields,
            indexes,
            relations,
            acl,
            members: re.members.as_ref().map(|m| Members {
                relation: m.relation.clone(),
                user: m.user.clone(),
                private_when: m.private_when.clone(),
            }),
            readable_with: re.readable_with.clone(),
            checksum: String::new(),
        };
        entity.checksum = checksum(&entity);
        Some(entity)
    }

    /// Seed 001 declares `id`, `tenantId` and `createdAt` itself. The catalog adds them to
    /// every entity, so a compatible declaration is accepted with a note of how it is served.
    fn declared_implicit(&mut self, file: &str, en: &str, name: &str, rf: &RawField, scope: Scope) {
        let ty = rf.ty.as_str();
        let served = match name {
            "id" if matches!(ty, "uuid" | "cuid" | "string") => {
                "the primary key, a UUID generated by the database"
            }
            "tenantId" if scope == Scope::Global => {
                self.problem(
                    file,
                    Some(en),
                    Some(name),
                    "a global entity has no tenant; remove tenantId or the `scope: global`"
                        .into(),
                );
                return;
            }
            "tenantId" if matches!(ty, "uuid" | "cuid" | "string") => {
                "the caller's tenant, set from the verified credential (the entity is tenant-scoped)"
            }
            "createdAt" | "updatedAt" if matches!(ty, "datetime" | "bigint" | "int") => {
                "a DateTime set by the server"
            }
            _ => {
                self.problem(
                    file,
                    Some(en),
                    Some(name),
                    format!("is implicit on every entity and cannot be of type `{ty}`"),
                );
                return;
            }
        };
        self.note(
            file,
            en,
            Some(name),
            format!("declared as `{ty}`, served as {served}"),
        );
    }

    fn field(
        &mut self,
        file: &str,
        en: &str,
        name: &str,
        rf: &RawField,
        enums: &[EnumDef],
    ) -> Option<Field> {
        let ty = match rf.ty.as_str() {
            "string" | "text" => FieldType::String,
            "int" => FieldType::Int,
            "bigint" => FieldType::BigInt,
            "float" => FieldType::Float,
            "decimal" => FieldType::Decimal,
            "boolean" => FieldType::Boolean,
            "uuid" | "cuid" => FieldType::Uuid,
            "json" => FieldType::Json,
            "datetime" => FieldType::DateTime,
            "enum" => match &rf.enum_name {
                Some(e) if enums.iter().any(|x| &x.name == e) => FieldType::Enum(e.clone()),
                Some(e) => {
                    self.problem(file, Some(en), Some(name), format!("unknown enum `{e}`"));
                    return None;
                }
                None => {
                    self.problem(
                        file,
                        Some(en),
                        Some(name),
                        "type enum needs `enum: Name`".into(),
                    );
                    return None;
                }
            },
            other => {
                self.problem(
                    file,
                    Some(en),
                    Some(name),
                    format!(
                        "unknown type `{other}` (string, int, bigint, float, decimal, boolean, uuid, json, datetime, enum)"
                    ),
                );
                return None;
            }
        };
        if rf.enum_name.is_some() && !matches!(ty, FieldType::Enum(_)) {
            self.problem(file, Some(en), Some(name), "`enum:` needs type enum".into());
        }
        if rf.nullable == Some(true) && rf.required {
            self.problem(
                file,
                Some(en),
                Some(name),
                "cannot be both required and nullable".into(),
            );
        }
        if rf.list && !matches!(ty, FieldType::String | FieldType::Uuid | FieldType::Int) {
            self.problem(
                file,
                Some(en),
                Some(name),
                "lists are supported for string, uuid and int".into(),
            );
        }
        if (rf.max_length.is_some() || rf.min_length.is_some()) && ty != FieldType::String {
            self.problem(
                file,
                Some(en),
                Some(name),
                "maxLength/minLength are for strings".into(),
            );
        }
        if (rf.min.is_some() || rf.max.is_some())
            && !matches!(
                ty,
                FieldType::Int | FieldType::BigInt | FieldType::Float | FieldType::Decimal
            )
        {
            self.problem(file, Some(en), Some(name), "min/max are for numbers".into());
        }
        if rf.list && (rf.min.is_some() || rf.max.is_some() || rf.max_length.is_some()) {
            self.problem(
                file,
                Some(en),
                Some(name),
                "limits are not supported on lists".into(),
            );
        }
        let set_by = self.role_list(
            file,
            en,
            Some(name),
            "setBy",
            rf.set_by.as_deref().unwrap_or_default(),
            &[Role::Admin, Role::Platform],
        );
        if !set_by.is_empty() && (rf.read_only || rf.hidden || rf.concurrency) {
            self.problem(
                file,
                Some(en),
                Some(name),
                "setBy is for fields of the generic inputs, not readOnly, hidden or concurrency ones"
                    .into(),
            );
        }
        let default = match &rf.default {
            None => None,
            Some(v) => match default_value(&ty, rf.list, v, enums) {
                Ok(d) => Some(d),
                Err(msg) => {
                    self.problem(file, Some(en), Some(name), msg);
                    return None;
                }
            },
        };
        Some(Field {
            name: name.to_string(),
            ty,
            list: rf.list,
            required: rf.required,
            default,
            max_length: rf.max_length,
            min_length: rf.min_length,
            min: rf.min,
            max: rf.max,
            unique: rf.unique,
            hidden: rf.hidden,
            read_only: rf.read_only,
            concurrency: rf.concurrency,
            set_by,
            owner: false,
            implicit: false,
            description: rf.description.clone(),
            renamed_from: rf.renamed_from.clone(),
        })
    }

    fn roles(&mut self, file: &str, en: &str, op: &str, raw: Option<&Vec<String>>) -> Vec<Role> {
        let Some(raw) = raw else {
            self.problem(file, Some(en), None, format!("acl has no `{op}` list"));
            return Vec::new();
        };
        self.role_list(file, en, None, &format!("acl {op}"), raw, &Role::ALL)
    }

    /// A list of role names, each one of `allowed`, without repeats, in a stable order.
    fn role_list(
        &mut self,
        file: &str,
        en: &str,
        field: Option<&str>,
        what: &str,
        raw: &[String],
        allowed: &[Role],
    ) -> Vec<Role> {
        let mut out = Vec::new();
        for r in raw {
            match Role::parse(r).filter(|role| allowed.contains(role)) {
                Some(role) if !out.contains(&role) => out.push(role),
                Some(_) => {}
                None => {
                    let names: Vec<&str> = allowed.iter().map(|a| a.as_str()).collect();
                    self.problem(
                        file,
                        Some(en),
                        field,
                        format!("{what}: unknown role `{r}` ({})", names.join(", ")),
                    );
                }
            }
        }
        out.sort();
        out
    }
}

fn implicit(name: &str, ty: FieldType) -> Field {
    Field {
        name: name.to_string(),
        ty,
        list: false,
        required: true,
        default: None,
        max_length: None,
        min_length: None,
        min: None,
        max: None,
        unique: false,
        hidden: false,
        read_only: true,
        concurrency: false,
        set_by: Vec::new(),
        owner: false,
        implicit: true,
        description: None,
        renamed_from: None,
    }
}

fn default_value(
    ty: &FieldType,
    list: bool,
    v: &serde_norway::Value,
    enums: &[EnumDef],
) -> Result<DefaultValue, String> {
    use serde_norway::Value as V;
    if list {
        return match v {
            V::Sequence(s) if s.is_empty() => Ok(DefaultValue::EmptyList),
            _ => Err("a list default can only be []".into()),
        };
    }
    match (ty, v) {
        (FieldType::Boolean, V::Bool(b)) => Ok(DefaultValue::Bool(*b)),
        (FieldType::Int | FieldType::BigInt, V::Number(n)) if n.is_i64() => {
            Ok(DefaultValue::Int(n.as_i64().unwrap_or_default()))
        }
        (FieldType::Float | FieldType::Decimal, V::Number(n)) => {
            Ok(DefaultValue::Float(n.as_f64().unwrap_or_default()))
        }
        (FieldType::String, V::String(s)) => Ok(DefaultValue::Str(s.clone())),
        (FieldType::Enum(e), V::String(s)) => {
            let known = enums
                .iter()
                .find(|x| &x.name == e)
                .is_some_and(|x| x.values.contains(s));
            if known {
                Ok(DefaultValue::EnumValue(s.clone()))
            } else {
                Err(format!("default `{s}` is not a value of enum {e}"))
            }
        }
        (FieldType::Json, V::Mapping(m)) if m.is_empty() => Ok(DefaultValue::EmptyJsonObject),
        (FieldType::Json, V::Sequence(s)) if s.is_empty() => Ok(DefaultValue::EmptyJsonArray),
        (FieldType::DateTime, V::String(s)) if s == "now" => Ok(DefaultValue::Now),
        _ => Err(format!("default {v:?} does not fit the field's type")),
    }
}

/// The structure of an entity, descriptions left out, hashed: two packages that declare the
/// same entity must produce the same checksum.
pub fn checksum(e: &Entity) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "entity {} scope={:?} table={} owner={:?} plural={} appendOnly={}\n",
        e.name, e.scope, e.table, e.owner, e.plural, e.append_only
    ));
    for f in &e.fields {
        s.push_str(&format!(
            "field {} {:?} list={} required={} default={:?} len={:?}..{:?} range={:?}..{:?} unique={} hidden={} readOnly={} concurrency={}\n",
            f.name, f.ty, f.list, f.required, f.default, f.min_length, f.max_length, f.min, f.max,
            f.unique, f.hidden, f.read_only, f.concurrency
        ));
        // Only when given, so that entities without it keep their checksums.
        if !f.set_by.is_empty() {
            s.push_str(&format!("field {} setBy={:?}\n", f.name, f.set_by));
        }
    }
    for i in &e.indexes {
        s.push_str(&format!("index {:?} unique={}\n", i.fields, i.unique));
    }
    for r in &e.relations {
        s.push_str(&format!(
            "relation {} -> {}.{} via {} inverse={} {:?} {:?}\n",
            r.name, r.target, "id", r.field, r.inverse, r.inverse_type, r.on_delete
        ));
    }
    s.push_str(&format!(
        "acl {:?} {:?} {:?} {:?}\n",
        e.acl.create, e.acl.read, e.acl.update, e.acl.delete
    ));
    // Only when given, so that entities without them keep their checksums.
    if let Some(m) = &e.members {
        s.push_str(&format!(
            "members {} {} {:?}\n",
            m.relation, m.user, m.private_when
        ));
    }
    if let Some(r) = &e.readable_with {
        s.push_str(&format!("readableWith {r}\n"));
    }
    crate::sha256_hex(s)
}

fn is_pascal(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && s.chars().all(|c| c.is_ascii_alphanumeric())
}

fn is_camel(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && s.chars().all(|c| c.is_ascii_alphanumeric())
}

fn is_screaming(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}
