//! The SQL that creates entities: enum types, tables with their checks, composite tenant
//! foreign keys, indexes, and row-level security. The generator writes the built-in
//! catalog's migration with it; the gateway creates a package's new entities with the same
//! statements.
//!
//! Every tenant-scoped table has `UNIQUE (tenant_id, id)` so that references between tenant-scoped
//! tables are composite foreign keys `(tenant_id, x_id)`: a row can never point into another
//! tenant, whatever the application does.

use std::fmt::Write;

use crate::model::*;
use crate::naming::{constraint_name, index_columns, index_list, index_name};

pub fn sql_type(c: &Catalog, f: &Field) -> String {
    let base = match &f.ty {
        FieldType::String => "text".to_string(),
        FieldType::Int => "integer".into(),
        FieldType::BigInt => "bigint".into(),
        FieldType::Float => "double precision".into(),
        FieldType::Decimal => "numeric".into(),
        FieldType::Boolean => "boolean".into(),
        FieldType::Uuid => "uuid".into(),
        FieldType::Json => "jsonb".into(),
        FieldType::DateTime => "timestamptz".into(),
        FieldType::Enum(e) => {
            let def = c.enums.iter().find(|x| &x.name == e);
            format!("\"{}\"", def.map(|d| d.sql_name()).unwrap_or_default())
        }
    };
    if f.list {
        format!("{base}[]")
    } else {
        base
    }
}

pub fn sql_default(c: &Catalog, f: &Field) -> Option<String> {
    let d = f.default.as_ref()?;
    Some(match d {
        DefaultValue::Bool(b) => b.to_string(),
        DefaultValue::Int(i) => i.to_string(),
        DefaultValue::Float(x) => format!("{x}"),
        DefaultValue::Str(s) => format!("'{}'", s.replace('\'', "''")),
        DefaultValue::EnumValue(v) => format!("'{v}'::{}", sql_type(c, f)),
        DefaultValue::EmptyJsonObject => "'{}'::jsonb".into(),
        DefaultValue::EmptyJsonArray => "'[]'::jsonb".into(),
        DefaultValue::EmptyList => format!("'{{}}'::{}", sql_type(c, f)),
        DefaultValue::Now => "now()".into(),
    })
}

/// The statements creating `entities` of `c` (and the `enums` they need): enum types,
/// tables with their checks, foreign keys, indexes. References to entities outside the
/// selection point at their existing tables.
pub fn create(c: &Catalog, entities: &[&Entity], enums: &[&EnumDef]) -> String {
    let mut s = String::new();
    for e in enums {
        let values: Vec<String> = e.values.iter().map(|v| format!("'{v}'")).collect();
        let _ = writeln!(
            s,
            "CREATE TYPE \"{}\" AS ENUM ({});",
            e.sql_name(),
            values.join(", ")
        );
    }
    s.push('\n');
    // Tables first, in catalog order; foreign keys afterwards so that order never matters.
    for e in entities {
        let _ = writeln!(s, "CREATE TABLE \"{}\" (", e.table);
        let mut lines = Vec::new();
        for f in &e.fields {
            let col = f.column();
            let mut line = format!("    \"{col}\" {}", sql_type(c, f));
            if f.required {
                line.push_str(" NOT NULL");
            }
            match f.name.as_str() {
                "id" => line.push_str(" DEFAULT gen_random_uuid() PRIMARY KEY"),
                "createdAt" | "updatedAt" => line.push_str(" DEFAULT now()"),
                _ => {
                    if let Some(d) = sql_default(c, f) {
                        let _ = write!(line, " DEFAULT {d}");
                    }
                }
            }
            lines.push(line);
        }
        for f in &e.fields {
            for (name, condition) in checks(e, f) {
                lines.push(format!("    CONSTRAINT \"{name}\" CHECK ({condition})"));
            }
        }
        if e.tenant_scoped() {
            lines.push(format!(
                "    CONSTRAINT \"{}\" UNIQUE (\"tenant_id\", \"id\")",
                constraint_name(&e.table, "tenant_id", "key")
            ));
        }
        s.push_str(&lines.join(",\n"));
        s.push_str("\n);\n\n");
    }

    for e in entities {
        if e.tenant_scoped() {
            let _ = writeln!(
                s,
                "ALTER TABLE \"{}\" ADD CONSTRAINT \"{}\" FOREIGN KEY (\"tenant_id\") REFERENCES \"tenants\" (\"id\") ON DELETE CASCADE;",
                e.table,
                constraint_name(&e.table, "tenant_id", "fkey")
            );
        }
        for r in &e.relations {
            if let Some((_, sql)) = foreign_key(c, e, r) {
                let _ = writeln!(s, "{sql}");
            }
        }
    }
    s.push('\n');

    for e in entities {
        for idx in index_list(e) {
            let _ = writeln!(s, "{}", index_sql(e, &idx));
        }
    }
    s
}

/// A field's bounds as (constraint name, condition) pairs, named for the errors that
/// report them.
pub fn checks(e: &Entity, f: &Field) -> Vec<(String, String)> {
    let col = f.column();
    [
        (
            f.max_length
                .map(|n| format!("char_length(\"{col}\") <= {n}")),
            "max_length",
        ),
        (
            f.min_length
                .map(|n| format!("char_length(\"{col}\") >= {n}")),
            "min_length",
        ),
        (f.min.map(|n| format!("\"{col}\" >= {n}")), "min"),
        (f.max.map(|n| format!("\"{col}\" <= {n}")), "max"),
    ]
    .into_iter()
    .filter_map(|(condition, kind)| condition.map(|c| (constraint_name(&e.table, &col, kind), c)))
    .collect()
}

/// The foreign key of a relation as (constraint name, `ALTER TABLE` statement); none when
/// the target is not in `c`.
pub fn foreign_key(c: &Catalog, e: &Entity, r: &Relation) -> Option<(String, String)> {
    let target = c.entities.iter().find(|t| t.name == r.target)?;
    let col = heck::ToSnakeCase::to_snake_case(r.field.as_str());
    let name = constraint_name(&e.table, &col, "fkey");
    let composite = e.tenant_scoped() && target.tenant_scoped();
    let on_delete = match (r.on_delete, composite) {
        (OnDelete::Cascade, _) => "ON DELETE CASCADE".to_string(),
        // Only the reference is cleared, never the row's tenant.
        (OnDelete::SetNull, true) => format!("ON DELETE SET NULL (\"{col}\")"),
        (OnDelete::SetNull, false) => "ON DELETE SET NULL".to_string(),
        (OnDelete::Restrict, _) => "ON DELETE RESTRICT".to_string(),
    };
    let sql = if composite {
        format!(
            "ALTER TABLE \"{}\" ADD CONSTRAINT \"{name}\" FOREIGN KEY (\"tenant_id\", \"{col}\") REFERENCES \"{}\" (\"tenant_id\", \"id\") {on_delete};",
            e.table, target.table
        )
    } else {
        format!(
            "ALTER TABLE \"{}\" ADD CONSTRAINT \"{name}\" FOREIGN KEY (\"{col}\") REFERENCES \"{}\" (\"id\") {on_delete};",
            e.table, target.table
        )
    };
    Some((name, sql))
}

pub fn index_sql(e: &Entity, idx: &Index) -> String {
    let cols: Vec<String> = index_columns(e, idx)
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect();
    format!(
        "CREATE {}INDEX \"{}\" ON \"{}\" ({});",
        if idx.unique { "UNIQUE " } else { "" },
        index_name(e, idx),
        e.table,
        cols.join(", ")
    )
}

/// The tenant a transaction serves, as `Db::transaction` sets it (`set_config(.., true)`, so it
/// ends with the transaction). The sub-select makes PostgreSQL evaluate it once per statement,
/// not once per row; unset, it is null and matches nothing.
pub const CURRENT_TENANT: &str =
    "(SELECT nullif(current_setting('app.tenant_id', true), '')::uuid)";

/// The role serving connections act as (created in migrations/2026-11-24-000000_serving_role).
pub const SERVING_ROLE: &str = "gateway_app";

/// Row-level security as a second lock behind the gateway's own tenant filters: every
/// tenant-scoped table, and the tenants table itself, shows and accepts only the rows of the
/// transaction's tenant, for every role without BYPASSRLS, the tables' owner included (FORCE).
/// Append-only entities cannot be updated or deleted by the serving role at all.
pub fn row_security(entities: &[&Entity]) -> String {
    let mut s = String::new();
    for e in entities {
        let column = if e.name == TENANT_ENTITY {
            "id"
        } else if e.tenant_scoped() {
            "tenant_id"
        } else {
            continue;
        };
        let t = &e.table;
        let _ = writeln!(s, "\nALTER TABLE \"{t}\" ENABLE ROW LEVEL SECURITY;");
        let _ = writeln!(s, "ALTER TABLE \"{t}\" FORCE ROW LEVEL SECURITY;");
        let _ = writeln!(
            s,
            "CREATE POLICY \"tenant_isolation\" ON \"{t}\"\n    USING (\"{column}\" = {CURRENT_TENANT})\n    WITH CHECK (\"{column}\" = {CURRENT_TENANT});"
        );
    }
    s.push('\n');
    for e in entities.iter().filter(|e| e.append_only) {
        let _ = writeln!(
            s,
            "REVOKE UPDATE, DELETE, TRUNCATE ON \"{}\" FROM {SERVING_ROLE};",
            e.table
        );
    }
    s
}
