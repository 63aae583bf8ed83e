//! Reading `where` and `orderBy` arguments into the SQL filter tree and sort keys. One
//! function per kind of input, driven by the entity's metadata: the per-type filter inputs
//! (`IntFilter`, `StringFilter`, ...), `XWhere` with AND / OR / NOT and relation conditions,
//! and `XOrderBy` entries.

use async_graphql::Value as G;

use crate::db::sql::{
    ArrayOp, CmpOp, Filter, Hop, JsonOp, Link, Quantifier, SortKey, SortOrder, TextMatch,
};
use crate::db::value::Value;
use crate::error::ApiError;
use crate::graphql::input::{self, object, Fields};
use crate::graphql::meta::{metadata, ColumnMeta, ColumnType, EntityMeta, LinkKind};

/// A field given in an input object (an explicit null counts as not given, as it did for the
/// typed inputs' `Option`s).
fn given<'v>(o: &'v Fields, name: &str) -> Option<&'v G> {
    o.get(name).filter(|v| !matches!(v, G::Null))
}

fn list(v: &G) -> &[G] {
    match v {
        G::List(l) => l,
        // A single value where a list is expected is a list of one (GraphQL input coercion).
        _ => std::slice::from_ref(v),
    }
}

/// Values one `in`, `notIn`, `hasSome` or `hasEvery` list may hold.
pub const MAX_LIST_VALUES: usize = 1_000;
/// Conditions one `where` may hold in all (fields, AND / OR / NOT, relation conditions).
pub const MAX_CONDITIONS: usize = 200;
/// How deep AND / OR / NOT and relation conditions may nest within one another.
pub const MAX_NESTING: usize = 10;

/// Refuses a filter too large to send as one statement in good time: every list, condition
/// and nesting level becomes SQL text and bind values. `arg` names the argument.
pub fn check_size(f: &Filter, arg: &str) -> Result<(), ApiError> {
    #[derive(Default)]
    struct Size {
        conditions: usize,
        nesting: usize,
        longest_list: usize,
    }
    fn walk(f: &Filter, level: usize, size: &mut Size) {
        size.conditions += 1;
        size.nesting = size.nesting.max(level);
        match f {
            Filter::And(parts) | Filter::Or(parts) => {
                for p in parts {
                    walk(p, level + 1, size);
                }
            }
            Filter::Not(inner) => walk(inner, level + 1, size),
            Filter::Related { filter, .. } => walk(filter, level + 1, size),
            Filter::In { values, .. } | Filter::Array { value: values, .. } => {
                size.longest_list = size.longest_list.max(values.list_len());
            }
            _ => {}
        }
    }
    let mut size = Size::default();
    walk(f, 0, &mut size);
    if size.longest_list > MAX_LIST_VALUES {
        return Err(ApiError::bad_input(
            arg,
            format!("{arg}: a list may hold at most {MAX_LIST_VALUES} values"),
        ));
    }
    if size.conditions > MAX_CONDITIONS {
        return Err(ApiError::bad_input(
            arg,
            format!("{arg} may hold at most {MAX_CONDITIONS} conditions"),
        ));
    }
    if size.nesting > MAX_NESTING {
        return Err(ApiError::bad_input(
            arg,
            format!("{arg} may nest AND, OR, NOT and relations at most {MAX_NESTING} deep"),
        ));
    }
    Ok(())
}

/// Whether a field's condition holds a NUL character: PostgreSQL's text and jsonb cannot, so
/// the statement would fail.
fn carries_nul(f: &Filter) -> bool {
    match f {
        Filter::And(parts) | Filter::Or(parts) => parts.iter().any(carries_nul),
        Filter::Not(inner) => carries_nul(inner),
        Filter::Cmp { value, .. } | Filter::Array { value, .. } => value.has_nul(),
        Filter::In { values, .. } => values.has_nul(),
        Filter::Text { needle, .. } => needle.contains('\0'),
        Filter::Json { path, value, .. } => {
            value.has_nul() || path.iter().flatten().any(|p| p.contains('\0'))
        }
        _ => false,
    }
}

/// Combines AND / OR / NOT of a where input.
fn combinators(meta: &'static EntityMeta, o: &Fields, path: &str) -> Result<Vec<Filter>, ApiError> {
    let mut all = Vec::new();
    if let Some(l) = given(o, "AND") {
        for (i, w) in list(l).iter().enumerate() {
            all.push(where_filter(meta, w, &format!("{path}.AND[{i}]"))?);
        }
    }
    if let Some(l) = given(o, "OR") {
        let mut any = Vec::new();
        for (i, w) in list(l).iter().enumerate() {
            any.push(where_filter(meta, w, &format!("{path}.OR[{i}]"))?);
        }
        all.push(Filter::Or(any));
    }
    if let Some(w) = given(o, "NOT") {
        all.push(Filter::Not(Box::new(where_filter(
            meta,
            w,
            &format!("{path}.NOT"),
        )?)));
    }
    Ok(all)
}

/// An `XWhere` input of `meta` as a filter: its combinators, one condition per field given
/// and the relation conditions, all of which must hold.
pub fn where_filter(meta: &'static EntityMeta, v: &G, path: &str) -> Result<Filter, ApiError> {
    let o = object(v, path)?;
    let mut all = combinators(meta, o, path)?;
    for col in meta.columns {
        if let Some(f) = given(o, col.field) {
            let at = format!("{path}.{}", col.field);
            let condition = field_filter(col, f, &at)?;
            if carries_nul(&condition) {
                return Err(ApiError::bad_input(
                    at.clone(),
                    format!("{at} contains a NUL character"),
                ));
            }
            all.push(condition);
        }
    }
    for link in metadata().links(meta) {
        let Some(nested) = given(o, link.name) else {
            continue;
        };
        let at = format!("{path}.{}", link.name);
        match link.kind {
            LinkKind::Parent => all.push(related(
                parent_link(link.target, link.fk),
                Quantifier::Some,
                link.target,
                nested,
                &at,
            )?),
            LinkKind::Child => all.push(related(
                child_link(meta, link.target, link.fk),
                Quantifier::Some,
                link.target,
                nested,
                &at,
            )?),
            LinkKind::Children => {
                let parts = object(nested, &at)?;
                for (key, quantifier) in [
                    ("some", Quantifier::Some),
                    ("every", Quantifier::Every),
                    ("none", Quantifier::None),
                ] {
                    if let Some(w) = given(parts, key) {
                        all.push(related(
                            child_link(meta, link.target, link.fk),
                            quantifier,
                            link.target,
                            w,
                            &format!("{at}.{key}"),
                        )?);
                    }
                }
            }
        }
    }
    Ok(Filter::and(all))
}

/// From a row to the row of `target` its `fk` column references.
fn parent_link(target: &'static EntityMeta, fk: &'static ColumnMeta) -> Link {
    Link {
        target,
        outer: fk,
        inner: target.id_column(),
    }
}

/// From a row of `meta` (its `id`) to the rows of `target` whose `fk` column references it.
fn child_link(
    meta: &'static EntityMeta,
    target: &'static EntityMeta,
    fk: &'static ColumnMeta,
) -> Link {
    Link {
        target,
        outer: meta.id_column(),
        inner: fk,
    }
}

fn related(
    link: Link,
    quantifier: Quantifier,
    target: &'static EntityMeta,
    w: &G,
    path: &str,
) -> Result<Filter, ApiError> {
    Ok(Filter::Related {
        link,
        quantifier,
        filter: Box::new(where_filter(target, w, path)?),
        scope: None,
    })
}

/// One field's filter input (`IntFilter`, `StringFilter`, ...) as conditions on its column.
pub(crate) fn field_filter(col: &'static ColumnMeta, v: &G, at: &str) -> Result<Filter, ApiError> {
    let o = object(v, at)?;
    let mut out = Vec::new();
    let one = |name: &str| -> Result<Option<Value>, ApiError> {
        given(o, name)
            .map(|v| input::element(col, v, &format!("{at}.{name}")))
            .transpose()
    };
    let many = |name: &str| -> Result<Option<Value>, ApiError> {
        given(o, name)
            .map(|v| {
                let at = format!("{at}.{name}");
                input::elements(col, &G::List(list(v).to_vec()), &at)
            })
            .transpose()
    };
    if col.list {
        // StringListFilter, IntListFilter, IDListFilter.
        if let Some(v) = one("has")? {
            out.push(Filter::Array {
                col,
                op: ArrayOp::Has,
                value: v,
            });
        }
        for (name, op) in [
            ("hasEvery", ArrayOp::HasEvery),
            ("hasSome", ArrayOp::HasSome),
            ("equals", ArrayOp::Equals),
        ] {
            if let Some(v) = many(name)? {
                out.push(Filter::Array { col, op, value: v });
            }
        }
        if let Some(G::Boolean(empty)) = given(o, "isEmpty") {
            out.push(Filter::ArrayEmpty { col, empty: *empty });
        }
    } else if col.ty == ColumnType::Json {
        json_filter(col, o, &mut out)?;
    } else {
        let insensitive = col.ty == ColumnType::Text
            && match given(o, "mode") {
                Some(G::Enum(m)) => m.as_str() == "INSENSITIVE",
                Some(G::String(m)) => m == "INSENSITIVE",
                _ => false,
            };
        for (name, op) in [
            ("equals", CmpOp::Eq),
            ("not", CmpOp::Ne),
            ("lt", CmpOp::Lt),
            ("lte", CmpOp::Lte),
            ("gt", CmpOp::Gt),
            ("gte", CmpOp::Gte),
        ] {
            if let Some(value) = one(name)? {
                out.push(Filter::Cmp {
                    col,
                    op,
                    value,
                    insensitive,
                });
            }
        }
        for (name, negated) in [("in", false), ("notIn", true)] {
            let Some(values) = many(name)? else { continue };
            if insensitive {
                let Value::TextList(values) = values else {
                    continue;
                };
                let any = values
                    .into_iter()
                    .map(|v| Filter::Cmp {
                        col,
                        op: CmpOp::Eq,
                        value: Value::Text(v),
                        insensitive: true,
                    })
                    .collect();
                let f = Filter::Or(any);
                out.push(if negated { Filter::Not(Box::new(f)) } else { f });
            } else {
                out.push(Filter::In {
                    col,
                    values,
                    negated,
                });
            }
        }
        for (name, how) in [
            ("contains", TextMatch::Contains),
            ("startsWith", TextMatch::StartsWith),
            ("endsWith", TextMatch::EndsWith),
        ] {
            if let Some(Value::Text(needle)) = one(name)? {
                out.push(Filter::Text {
                    col,
                    how,
                    needle,
                    insensitive,
                });
            }
        }
    }
    if let Some(G::Boolean(is_null)) = given(o, "isNull") {
        out.push(Filter::IsNull {
            col,
            is_null: *is_null,
        });
    }
    Ok(Filter::and(out))
}

/// `JSONFilter`: with `path`, `equals`, `not`, `contains` and `containedBy` apply to the value
/// at that path instead of the whole document.
fn json_filter(
    col: &'static ColumnMeta,
    o: &Fields,
    out: &mut Vec<Filter>,
) -> Result<(), ApiError> {
    let strings = |v: &G| -> Vec<String> {
        match v {
            G::List(l) => l
                .iter()
                .filter_map(|x| match x {
                    G::String(s) => Some(s.clone()),
                    _ => None,
                })
                .collect(),
            G::String(s) => vec![s.clone()],
            _ => Vec::new(),
        }
    };
    let path = given(o, "path").map(strings);
    let json = |v: &G| Value::Json(v.clone().into_json().unwrap_or_default());
    for (name, op) in [
        ("equals", JsonOp::Equals),
        ("not", JsonOp::NotEquals),
        ("contains", JsonOp::Contains),
        ("containedBy", JsonOp::ContainedBy),
    ] {
        if let Some(v) = given(o, name) {
            out.push(Filter::Json {
                col,
                path: path.clone(),
                op,
                value: json(v),
            });
        }
    }
    if let Some(G::String(k)) = given(o, "hasKey") {
        out.push(Filter::Json {
            col,
            path: path.clone(),
            op: JsonOp::HasKey,
            value: Value::Text(k.clone()),
        });
    }
    for (name, op) in [
        ("hasAnyKeys", JsonOp::HasAnyKeys),
        ("hasAllKeys", JsonOp::HasAllKeys),
    ] {
        if let Some(v) = given(o, name) {
            out.push(Filter::Json {
                col,
                path: path.clone(),
                op,
                value: Value::TextList(strings(v)),
            });
        }
    }
    Ok(())
}

/// Sort direction of an `orderBy` field.
fn direction(v: &G) -> Option<SortOrder> {
    let name = match v {
        G::Enum(n) => n.as_str(),
        G::String(s) => s.as_str(),
        _ => return None,
    };
    match name {
        "ASC" => Some(SortOrder::Asc),
        "DESC" => Some(SortOrder::Desc),
        _ => None,
    }
}

/// The sort keys one `XOrderBy` entry sets: its scalar fields, then those of its `belongsTo`
/// relations (`orderBy: {category: {name: ASC}}`) reached through the row's column.
fn order_keys(meta: &'static EntityMeta, v: &G, keys: &mut Vec<SortKey>) {
    let G::Object(o) = v else { return };
    for col in meta.columns.iter().filter(|c| c.orderable) {
        if let Some(dir) = given(o, col.field).and_then(direction) {
            keys.push(SortKey::new(col, dir));
        }
    }
    for link in metadata().links(meta) {
        if link.kind != LinkKind::Parent {
            continue;
        }
        let Some(nested) = given(o, link.name) else {
            continue;
        };
        let mut inner = Vec::new();
        order_keys(link.target, nested, &mut inner);
        for mut k in inner {
            k.hops.insert(
                0,
                Hop {
                    link: parent_link(link.target, link.fk),
                    scope: None,
                },
            );
            keys.push(k);
        }
    }
}

/// Sort keys a client may give: each is a term of every keyset condition and cursor.
pub const MAX_SORT_KEYS: usize = 8;

/// An `orderBy` argument as sort keys: at most [`MAX_SORT_KEYS`] entries, each setting
/// exactly one field.
pub fn order_by(meta: &'static EntityMeta, v: Option<&G>) -> Result<Vec<SortKey>, ApiError> {
    let Some(v) = v.filter(|v| !matches!(v, G::Null)) else {
        return Ok(Vec::new());
    };
    let entries = list(v);
    if entries.len() > MAX_SORT_KEYS {
        return Err(ApiError::bad_input(
            "orderBy",
            format!("orderBy may name at most {MAX_SORT_KEYS} fields"),
        ));
    }
    let mut keys = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let mut k = Vec::new();
        order_keys(meta, entry, &mut k);
        if k.len() != 1 {
            return Err(ApiError::bad_input(
                format!("orderBy[{i}]"),
                format!("orderBy[{i}] must set exactly one field"),
            ));
        }
        keys.extend(k);
    }
    Ok(keys)
}
