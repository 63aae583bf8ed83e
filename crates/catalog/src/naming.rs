//! Names the migration gives to constraints and indexes. The generator writes them into the
//! SQL; the gateway maps a violated constraint back to its entity and fields by the same names.

use crate::model::{Entity, Index};

pub fn constraint_name(table: &str, what: &str, suffix: &str) -> String {
    let name = format!("{table}_{what}_{suffix}");
    if name.len() <= 63 {
        return name;
    }
    // PostgreSQL truncates at 63 bytes; keep names unique and stable with a short hash.
    let hash = short_hash(&name);
    format!("{}_{hash}_{suffix}", &name[..63 - suffix.len() - 10])
}

fn short_hash(s: &str) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(s.as_bytes());
    d.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

/// The indexes of an entity: declared ones, plus one per foreign key not already covered by
/// the prefix of another index. Tenant-scoped indexes lead with tenant_id.
pub fn index_list(e: &Entity) -> Vec<Index> {
    let mut out: Vec<Index> = e.indexes.clone();
    for r in &e.relations {
        let covered = out.iter().any(|i| i.fields.first() == Some(&r.field));
        if !covered {
            out.push(Index {
                fields: vec![r.field.clone()],
                unique: false,
            });
        }
    }
    out
}

pub fn index_columns(e: &Entity, idx: &Index) -> Vec<String> {
    let mut cols = Vec::new();
    if e.tenant_scoped() {
        cols.push("tenant_id".to_string());
    }
    for f in &idx.fields {
        cols.push(heck::ToSnakeCase::to_snake_case(f.as_str()));
    }
    cols
}

pub fn index_name(e: &Entity, idx: &Index) -> String {
    let cols = index_columns(e, idx).join("_");
    constraint_name(&e.table, &cols, if idx.unique { "key" } else { "idx" })
}
