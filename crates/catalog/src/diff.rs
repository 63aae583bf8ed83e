//! What changes between two catalogs, as the SQL that migrates a database from one to the
//! other. The generator writes the built-in catalog's next migration with it; the schema
//! registry (seed 001) queues a package's changes with it, one entity at a time.
//!
//! Additive and relaxing steps (new table, column, index, key, enum value; a bound or a
//! `NOT NULL` dropped) are plain. Steps that can lose data or refuse rows already stored
//! (drop, rename, type change, tightened nullability or bounds) carry the reason in
//! `destructive`, so whoever applies them must say so. What cannot be migrated at all (a
//! changed scope or table name, a removed enum value) is `refused`.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::model::*;
use crate::naming::{index_list, index_name};
use crate::sql::{self, SERVING_ROLE};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Add,
    Modify,
    Remove,
}

impl ChangeKind {
    /// As the registry's `SchemaChangeKind` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Add => "ADD",
            ChangeKind::Modify => "MODIFY",
            ChangeKind::Remove => "REMOVE",
        }
    }
}

/// One statement (or a few that belong together) of a migration.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub sql: String,
    /// Why this step can lose data or refuse rows already stored; `None` when it only adds
    /// or relaxes.
    pub destructive: Option<String>,
}

impl Step {
    fn plain(sql: String) -> Step {
        Step {
            sql,
            destructive: None,
        }
    }
    fn destructive(sql: String, why: String) -> Step {
        Step {
            sql,
            destructive: Some(why),
        }
    }
}

/// How one entity changes.
#[derive(Debug, Clone)]
pub struct EntityChange {
    pub entity: String,
    pub kind: ChangeKind,
    pub steps: Vec<Step>,
    /// Why the change cannot be migrated automatically; such a change is never applied.
    pub refused: Vec<String>,
}

impl EntityChange {
    /// The whole change as one SQL script.
    pub fn sql(&self) -> String {
        script(&self.steps)
    }
    /// The reasons of its destructive steps.
    pub fn destructive(&self) -> Vec<&str> {
        self.steps
            .iter()
            .filter_map(|s| s.destructive.as_deref())
            .collect()
    }
}

/// The steps joined into one script.
pub fn script(steps: &[Step]) -> String {
    let mut s = String::new();
    for step in steps {
        if let Some(why) = &step.destructive {
            let _ = writeln!(s, "-- DESTRUCTIVE: {why}");
        }
        s.push_str(step.sql.trim_end());
        s.push('\n');
    }
    s
}

/// The checksum the registry compares: the entity's structure and the values of the enums
/// it uses (a new enum value changes what its rows may hold), descriptions left out.
pub fn structural_checksum(c: &Catalog, e: &Entity) -> String {
    let mut s = e.checksum.clone();
    for en in used_enums(c, e) {
        let _ = write!(s, "\nenum {} {:?}", en.name, en.values);
    }
    crate::sha256_hex(s)
}

/// The enums an entity's fields use, in catalog order.
pub fn used_enums<'c>(c: &'c Catalog, e: &Entity) -> Vec<&'c EnumDef> {
    c.enums
        .iter()
        .filter(|en| {
            e.fields
                .iter()
                .any(|f| f.ty == FieldType::Enum(en.name.clone()))
        })
        .collect()
}

/// Steps bringing the enum types `enums` (as in `new`) from `old`: new types, new values.
/// `guarded` steps tolerate a type another change created already (the registry applies
/// entities one by one, and two may share an enum).
fn enum_steps(
    old: &Catalog,
    enums: &[&EnumDef],
    guarded: bool,
    refused: &mut Vec<String>,
) -> Vec<Step> {
    let mut steps = Vec::new();
    for en in enums {
        let name = en.sql_name();
        match old.enums.iter().find(|o| o.name == en.name) {
            None => {
                let values: Vec<String> = en.values.iter().map(|v| format!("'{v}'")).collect();
                let create = format!("CREATE TYPE \"{name}\" AS ENUM ({});", values.join(", "));
                steps.push(Step::plain(if guarded {
                    format!(
                        "DO $$ BEGIN {create} EXCEPTION WHEN duplicate_object THEN NULL; END $$;"
                    )
                } else {
                    create
                }));
            }
            Some(o) => {
                for gone in o.values.iter().filter(|v| !en.values.contains(v)) {
                    refused.push(format!(
                        "enum {} loses its value {gone}: enum values cannot be removed",
                        en.name
                    ));
                }
                // Values sort in declaration order (ORDER BY, comparisons): the kept ones must
                // keep theirs, and a new one goes where it is declared.
                let kept: Vec<&String> =
                    en.values.iter().filter(|v| o.values.contains(v)).collect();
                let before: Vec<&String> =
                    o.values.iter().filter(|v| en.values.contains(v)).collect();
                if kept != before {
                    refused.push(format!(
                        "enum {} reorders its values: the order of stored values cannot change",
                        en.name
                    ));
                }
                for (i, added) in en.values.iter().enumerate() {
                    if o.values.contains(added) {
                        continue;
                    }
                    let place = match (
                        i.checked_sub(1).and_then(|p| en.values.get(p)),
                        en.values.get(i + 1),
                    ) {
                        (Some(prev), _) => format!(" AFTER '{prev}'"),
                        (None, Some(next)) => format!(" BEFORE '{next}'"),
                        (None, None) => String::new(),
                    };
                    steps.push(Step::plain(format!(
                        "ALTER TYPE \"{name}\" ADD VALUE IF NOT EXISTS '{added}'{place};"
                    )));
                }
            }
        }
    }
    steps
}

/// Every difference between `old` and `new` among the entities `include` selects: enum
/// steps first, then each entity's change (new ones in one step so that their foreign keys
/// may point at each other). For a migration file.
pub fn diff(
    old: &Catalog,
    new: &Catalog,
    include: impl Fn(&Entity) -> bool,
) -> (Vec<Step>, Vec<EntityChange>) {
    let mut refused = Vec::new();
    let enums: Vec<&EnumDef> = new.enums.iter().collect();
    let mut enum_part = enum_steps(old, &enums, false, &mut refused);
    if !refused.is_empty() {
        enum_part.clear();
    }
    let mut changes = Vec::new();
    let added: Vec<&Entity> = new
        .entities
        .iter()
        .filter(|e| include(e) && !old.entities.iter().any(|o| o.name == e.name))
        .collect();
    if !added.is_empty() {
        changes.push(EntityChange {
            entity: added
                .iter()
                .map(|e| e.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            kind: ChangeKind::Add,
            steps: create_steps(new, &added),
            refused: Vec::new(),
        });
    }
    for e in new.entities.iter().filter(|e| include(e)) {
        if let Some(o) = old.entities.iter().find(|o| o.name == e.name) {
            let change = modify(old, o, new, e, false);
            if !change.steps.is_empty() || !change.refused.is_empty() {
                changes.push(change);
            }
        }
    }
    let removed: Vec<&Entity> = old
        .entities
        .iter()
        .filter(|o| include(o) && !new.entities.iter().any(|e| e.name == o.name))
        .collect();
    for o in &removed {
        changes.push(remove(old, o, &removed));
    }
    if let Some(first) = changes.first_mut() {
        first.refused.extend(refused);
    } else if !refused.is_empty() {
        changes.push(EntityChange {
            entity: String::new(),
            kind: ChangeKind::Modify,
            steps: Vec::new(),
            refused,
        });
    }
    (enum_part, changes)
}

/// How one entity changes from `old` (absent: new) to `new` (absent: removed), with the
/// enum steps it needs, on its own.
pub fn entity_change(
    old: &Catalog,
    before: Option<&Entity>,
    new: &Catalog,
    after: Option<&Entity>,
) -> Option<EntityChange> {
    match (before, after) {
        (None, None) => None,
        (Some(o), None) => Some(remove(old, o, &[o])),
        (None, Some(e)) => {
            let mut refused = Vec::new();
            let mut steps = enum_steps(old, &used_enums(new, e), true, &mut refused);
            steps.extend(create_steps(new, &[e]));
            Some(EntityChange {
                entity: e.name.clone(),
                kind: ChangeKind::Add,
                steps,
                refused,
            })
        }
        (Some(o), Some(e)) => Some(modify(old, o, new, e, true)),
    }
}

/// New tables with their keys, indexes, grants and row-level security.
fn create_steps(new: &Catalog, entities: &[&Entity]) -> Vec<Step> {
    let mut grants = String::new();
    for e in entities {
        let _ = writeln!(
            grants,
            "GRANT SELECT, INSERT, UPDATE, DELETE ON \"{}\" TO {SERVING_ROLE};",
            e.table
        );
    }
    [
        sql::create(new, entities, &[]),
        grants,
        sql::row_security(entities),
    ]
    .into_iter()
    .map(|sql| sql.trim().to_string())
    .filter(|sql| !sql.is_empty())
    .map(Step::plain)
    .collect()
}

/// Drops `o`'s table. The foreign keys of the other tables `removed` with it that point at
/// it go first, whichever of them is dropped first (a table still referenced cannot be
/// dropped, and two may reference each other).
fn remove(old: &Catalog, o: &Entity, removed: &[&Entity]) -> EntityChange {
    let mut sql = String::new();
    for p in removed.iter().filter(|p| p.name != o.name) {
        for r in p.relations.iter().filter(|r| r.target == o.name) {
            if let Some((name, _)) = sql::foreign_key(old, p, r) {
                let _ = writeln!(
                    sql,
                    "ALTER TABLE IF EXISTS \"{}\" DROP CONSTRAINT IF EXISTS \"{name}\";",
                    p.table
                );
            }
        }
    }
    let _ = write!(sql, "DROP TABLE \"{}\";", o.table);
    EntityChange {
        entity: o.name.clone(),
        kind: ChangeKind::Remove,
        steps: vec![Step::destructive(
            sql,
            format!(
                "drops the table {} of {} and every row in it",
                o.table, o.name
            ),
        )],
        refused: Vec::new(),
    }
}

fn modify(old: &Catalog, o: &Entity, new: &Catalog, e: &Entity, with_enums: bool) -> EntityChange {
    let mut refused = Vec::new();
    let mut steps = if with_enums {
        enum_steps(old, &used_enums(new, e), true, &mut refused)
    } else {
        Vec::new()
    };
    if o.scope != e.scope {
        refused.push(format!(
            "{} changes scope from {:?} to {:?}: not supported",
            e.name, o.scope, e.scope
        ));
    }
    if o.table != e.table {
        refused.push(format!(
            "{} changes table from {} to {}: not supported",
            e.name, o.table, e.table
        ));
    }
    if !refused.is_empty() {
        return EntityChange {
            entity: e.name.clone(),
            kind: ChangeKind::Modify,
            steps: Vec::new(),
            refused,
        };
    }
    let t = &e.table;

    // What the new entity no longer has, or has differently, goes first: foreign keys,
    // indexes, checks (dropped with IF EXISTS: a dropped column takes its own along).
    let fks = |c: &Catalog, x: &Entity| -> BTreeMap<String, String> {
        x.relations
            .iter()
            .filter_map(|r| sql::foreign_key(c, x, r))
            .collect()
    };
    let (old_fks, new_fks) = (fks(old, o), fks(new, e));
    let indexes = |x: &Entity| -> BTreeMap<String, String> {
        index_list(x)
            .iter()
            .map(|i| (index_name(x, i), sql::index_sql(x, i)))
            .collect()
    };
    let (old_idx, new_idx) = (indexes(o), indexes(e));
    let checks = |x: &Entity| -> BTreeMap<String, String> {
        x.fields.iter().flat_map(|f| sql::checks(x, f)).collect()
    };
    let (old_checks, new_checks) = (checks(o), checks(e));
    for (name, def) in &old_fks {
        if new_fks.get(name) != Some(def) {
            steps.push(Step::plain(format!(
                "ALTER TABLE \"{t}\" DROP CONSTRAINT IF EXISTS \"{name}\";"
            )));
        }
    }
    for (name, def) in &old_idx {
        if new_idx.get(name) != Some(def) {
            steps.push(Step::plain(format!("DROP INDEX IF EXISTS \"{name}\";")));
        }
    }
    for (name, def) in &old_checks {
        if new_checks.get(name) != Some(def) {
            steps.push(Step::plain(format!(
                "ALTER TABLE \"{t}\" DROP CONSTRAINT IF EXISTS \"{name}\";"
            )));
        }
    }

    // Columns: renamed, dropped, added, altered.
    let mut renamed: Vec<&str> = Vec::new();
    for f in e.fields.iter().filter(|f| !f.implicit) {
        let Some(from) = &f.renamed_from else {
            continue;
        };
        if e.field(from).is_some() {
            continue;
        }
        if let Some(of) = o.field(from) {
            renamed.push(&of.name);
            steps.push(Step::destructive(
                format!(
                    "ALTER TABLE \"{t}\" RENAME COLUMN \"{}\" TO \"{}\";",
                    of.column(),
                    f.column()
                ),
                format!(
                    "renames {}.{from} to {}: clients asking for {from} break",
                    e.name, f.name
                ),
            ));
        }
    }
    for of in o.fields.iter().filter(|f| !f.implicit) {
        if e.field(&of.name).is_none() && !renamed.contains(&of.name.as_str()) {
            steps.push(Step::destructive(
                format!("ALTER TABLE \"{t}\" DROP COLUMN \"{}\";", of.column()),
                format!("drops {}.{} and its data", e.name, of.name),
            ));
        }
    }
    for f in e.fields.iter().filter(|f| !f.implicit) {
        let before = o
            .field(&f.name)
            .or_else(|| f.renamed_from.as_deref().and_then(|from| o.field(from)));
        match before {
            None => steps.push(add_column(new, e, f)),
            Some(of) => steps.extend(alter_column(old, of, new, e, f)),
        }
    }

    // Checks, foreign keys and indexes the new entity has that the old had not.
    for (name, cond) in &new_checks {
        if old_checks.get(name) == Some(cond) {
            continue;
        }
        let sql = format!("ALTER TABLE \"{t}\" ADD CONSTRAINT \"{name}\" CHECK ({cond});");
        let field = e
            .fields
            .iter()
            .find(|f| sql::checks(e, f).iter().any(|(n, _)| n == name));
        let existing = field.and_then(|f| {
            o.field(&f.name)
                .or_else(|| f.renamed_from.as_deref().and_then(|from| o.field(from)))
        });
        match (field, existing) {
            (Some(f), Some(of)) if !relaxed(of, f) => steps.push(Step::destructive(
                sql,
                format!(
                    "tightens the bounds of {}.{}: rows outside them refuse the migration",
                    e.name, f.name
                ),
            )),
            _ => steps.push(Step::plain(sql)),
        }
    }
    for (name, def) in &new_fks {
        if old_fks.get(name) != Some(def) {
            steps.push(Step::plain(def.clone()));
        }
    }
    for (name, def) in &new_idx {
        if old_idx.get(name) != Some(def) {
            steps.push(Step::plain(def.clone()));
        }
    }
    if o.append_only != e.append_only {
        steps.push(Step::plain(if e.append_only {
            format!("REVOKE UPDATE, DELETE, TRUNCATE ON \"{t}\" FROM {SERVING_ROLE};")
        } else {
            format!("GRANT UPDATE, DELETE ON \"{t}\" TO {SERVING_ROLE};")
        }));
    }
    EntityChange {
        entity: e.name.clone(),
        kind: ChangeKind::Modify,
        steps,
        refused,
    }
}

fn add_column(new: &Catalog, e: &Entity, f: &Field) -> Step {
    let mut sql = format!(
        "ALTER TABLE \"{}\" ADD COLUMN \"{}\" {}",
        e.table,
        f.column(),
        sql::sql_type(new, f)
    );
    if let Some(d) = sql::sql_default(new, f) {
        let _ = write!(sql, " DEFAULT {d}");
    }
    if f.required {
        sql.push_str(" NOT NULL");
    }
    sql.push(';');
    if f.required && f.default.is_none() {
        Step::destructive(
            sql,
            format!(
                "adds the required {}.{} without a default: refused if the table has rows",
                e.name, f.name
            ),
        )
    } else {
        Step::plain(sql)
    }
}

/// Runs `sql` past row-level security: the owner migrating is bound by FORCE like everyone
/// (and has no tenant set), so a data step lifts FORCE for its own statement only.
fn unforced(table: &str, sql: &str) -> String {
    format!(
        "ALTER TABLE \"{table}\" NO FORCE ROW LEVEL SECURITY;\n{sql}\nALTER TABLE \"{table}\" FORCE ROW LEVEL SECURITY;"
    )
}

fn alter_column(old: &Catalog, of: &Field, new: &Catalog, e: &Entity, f: &Field) -> Vec<Step> {
    let t = &e.table;
    let col = f.column();
    let mut steps = Vec::new();
    let (old_ty, new_ty) = (sql::sql_type(old, of), sql::sql_type(new, f));
    let (old_default, new_default) = (sql::sql_default(old, of), sql::sql_default(new, f));
    // Through text, so that any type converts that has a text form the new one accepts.
    if old_ty != new_ty {
        let mut sql = format!("ALTER TABLE \"{t}\" ALTER COLUMN \"{col}\" DROP DEFAULT;\n");
        let _ = write!(
            sql,
            "ALTER TABLE \"{t}\" ALTER COLUMN \"{col}\" TYPE {new_ty} USING \"{col}\"::text::{new_ty};"
        );
        if let Some(d) = &new_default {
            let _ = write!(
                sql,
                "\nALTER TABLE \"{t}\" ALTER COLUMN \"{col}\" SET DEFAULT {d};"
            );
        }
        steps.push(Step::destructive(
            sql,
            format!(
                "changes the type of {}.{} from {old_ty} to {new_ty}: values that do not convert refuse the migration",
                e.name, f.name
            ),
        ));
    } else if old_default != new_default {
        steps.push(Step::plain(match &new_default {
            Some(d) => format!("ALTER TABLE \"{t}\" ALTER COLUMN \"{col}\" SET DEFAULT {d};"),
            None => format!("ALTER TABLE \"{t}\" ALTER COLUMN \"{col}\" DROP DEFAULT;"),
        }));
    }
    if of.required && !f.required {
        steps.push(Step::plain(format!(
            "ALTER TABLE \"{t}\" ALTER COLUMN \"{col}\" DROP NOT NULL;"
        )));
    }
    if !of.required && f.required {
        let mut sql = String::new();
        if let Some(d) = &new_default {
            let fill = format!("UPDATE \"{t}\" SET \"{col}\" = {d} WHERE \"{col}\" IS NULL;");
            sql.push_str(&if e.tenant_scoped() || e.name == TENANT_ENTITY {
                unforced(t, &fill)
            } else {
                fill
            });
            sql.push('\n');
        }
        let _ = write!(
            sql,
            "ALTER TABLE \"{t}\" ALTER COLUMN \"{col}\" SET NOT NULL;"
        );
        steps.push(Step::destructive(
            sql,
            match &new_default {
                Some(d) => format!(
                    "makes {}.{} required: rows without a value get {d}",
                    e.name, f.name
                ),
                None => format!(
                    "makes {}.{} required: rows without a value refuse the migration",
                    e.name, f.name
                ),
            },
        ));
    }
    steps
}

/// Whether `f`'s bounds admit every value `of`'s did.
fn relaxed(of: &Field, f: &Field) -> bool {
    let upper = |old: Option<f64>, new: Option<f64>| match (old, new) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some(o), Some(n)) => n >= o,
    };
    let lower = |old: Option<f64>, new: Option<f64>| match (old, new) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some(o), Some(n)) => n <= o,
    };
    upper(of.max_length.map(f64::from), f.max_length.map(f64::from))
        && lower(of.min_length.map(f64::from), f.min_length.map(f64::from))
        && upper(of.max, f.max)
        && lower(of.min, f.min)
}
