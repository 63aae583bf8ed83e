//! Create and update inputs read into the rows the engine writes: one loop over the entity's
//! columns checks who may give each field, converts and bounds its value, and stamps what the
//! server sets (id, tenant, owner).

use async_graphql::Value as G;
use uuid::Uuid;

use crate::error::ApiError;
use crate::graphql::crud::{insert_columns, InsertForm, UpdateForm, WriteScope};
use crate::graphql::input::{at, column_value, id_of, object as fields};
use crate::graphql::meta::{ColumnMeta, EntityMeta};

/// A create input (`XCreateInput`) as a new row.
pub fn insert_form(
    meta: &'static EntityMeta,
    input: &G,
    w: &WriteScope,
    path: &str,
) -> Result<InsertForm, ApiError> {
    insert_form_with(meta, input, w, path, None)
}

/// The same with one column's value set by the server (a nested row's reference to the row
/// it is created with), which the input does not carry.
pub fn insert_form_with(
    meta: &'static EntityMeta,
    input: &G,
    w: &WriteScope,
    path: &str,
    preset: Option<(&'static ColumnMeta, crate::db::value::Value)>,
) -> Result<InsertForm, ApiError> {
    let given = fields(input, path)?;
    let preset_col = preset.as_ref().map(|(c, _)| *c);
    let is_preset = |col: &ColumnMeta| preset_col.is_some_and(|p| std::ptr::eq(p, col));
    let value = |name: &str| given.get(name).filter(|v| !matches!(v, G::Null));
    let cols = insert_columns(meta);
    for col in &cols {
        if col.writable
            && !col.set_by.is_empty()
            && meta.owner != Some(col.column)
            && !is_preset(col)
        {
            w.may_set(value(col.field).is_some(), col.set_by, path, col.field)?;
        }
    }
    let mut values = Vec::with_capacity(cols.len());
    for col in cols {
        if is_preset(col) {
            values.push(preset.as_ref().map(|(_, v)| v.clone()));
            continue;
        }
        let v = match col.column {
            "id" => Some(Uuid::now_v7().into()),
            "tenant_id" => Some(w.tenant.into()),
            c if meta.owner == Some(c) => {
                if col.set_by.is_empty() {
                    // Stamped: always the caller.
                    Some(w.user.into())
                } else {
                    let given = value(col.field).and_then(id_of);
                    let owner = if col.nullable {
                        w.owner_nullable(given.as_ref(), col.set_by, path, col.field)?
                    } else {
                        Some(w.owner(given.as_ref(), col.set_by, path, col.field)?)
                    };
                    owner.map(Into::into)
                }
            }
            _ => match value(col.field) {
                Some(v) => Some(column_value(col, v, path)?),
                None if col.required_on_create => {
                    let at = at(path, col.field);
                    return Err(ApiError::bad_input(at.clone(), format!("{at} is required")));
                }
                None => None,
            },
        };
        values.push(v);
    }
    Ok(InsertForm { values })
}

/// An update input (`XUpdateInput`) as changes: omitted fields stay, null clears a nullable
/// field and is refused for any other.
pub fn update_form(
    meta: &'static EntityMeta,
    input: &G,
    w: &WriteScope,
    path: &str,
) -> Result<UpdateForm, ApiError> {
    let given = fields(input, path)?;
    let writable = || meta.columns.iter().filter(|c| c.writable);
    for col in writable().filter(|c| !c.set_by.is_empty()) {
        w.may_set(given.contains_key(col.field), col.set_by, path, col.field)?;
    }
    let mut form = UpdateForm::default();
    for col in writable() {
        match given.get(col.field) {
            None => {}
            Some(G::Null) if col.nullable => {
                form.set.push((col, crate::db::value::Value::Null));
            }
            Some(G::Null) => {
                let at = at(path, col.field);
                return Err(ApiError::bad_input(
                    at.clone(),
                    format!("{at} cannot be null"),
                ));
            }
            Some(v) => form.set.push((col, column_value(col, v, path)?)),
        }
    }
    Ok(form)
}
