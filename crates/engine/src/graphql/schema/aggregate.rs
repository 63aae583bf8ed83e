//! The GraphQL face of the aggregates and groups of one entity (`graphql::aggregate`): the
//! `XAggregate`, `XGroup`, `XGroupKey` and per-function types, `having` and group `orderBy`
//! inputs, the root fields `xsAggregate` and `xsGroups`, and `relationAggregate` under every
//! `hasMany` relation.

use async_graphql::dynamic::{
    Enum, Field, FieldFuture, FieldValue, InputObject, InputValue, Object, ResolverContext, TypeRef,
};
use async_graphql::Value as G;
use heck::ToShoutySnakeCase;

use crate::db::sql::{Filter, SortKey, SortOrder};
use crate::db::value::Value;
use crate::error::ApiError;
use crate::graphql::aggregate::{
    self, Bucket, Func, GroupArgs, GroupPage, Measured, Measures, MAX_GROUP_KEYS,
};
use crate::graphql::crud;
use crate::graphql::filter;
use crate::graphql::input::{object, Fields};
use crate::graphql::meta::{ColumnMeta, ColumnType, EntityMeta, LinkKind, Metadata, RelationLink};
use crate::graphql::row::{graphql_value, Row};
use crate::graphql::schema::{arg, int_arg, parent, ready, string_arg, Registry};

/// The GraphQL scalar of a derived column.
fn scalar(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Int => TypeRef::INT,
        ColumnType::BigInt => "BigInt",
        ColumnType::Float => TypeRef::FLOAT,
        ColumnType::Decimal => "Decimal",
        ColumnType::DateTime => "DateTime",
        _ => TypeRef::STRING,
    }
}

/// The filter input of a derived column, for `having`.
fn filter_of(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Int => "IntFilter",
        ColumnType::BigInt => "BigIntFilter",
        ColumnType::Float => "FloatFilter",
        ColumnType::Decimal => "DecimalFilter",
        ColumnType::DateTime => "DateTimeFilter",
        _ => "StringFilter",
    }
}

/// The type of a group key as the entity's field shows it.
fn key_type(col: &ColumnMeta, m: &Metadata, entity: &EntityMeta) -> String {
    match col.ty {
        ColumnType::Enum(_) => m
            .definition(entity.name)
            .and_then(|d| d.fields.iter().find(|f| f.name == col.field))
            .and_then(|f| match &f.ty {
                gateway_catalog::model::FieldType::Enum(e) => Some(e.clone()),
                _ => None,
            })
            .unwrap_or_else(|| TypeRef::STRING.to_string()),
        ColumnType::Bool => TypeRef::BOOLEAN.into(),
        ColumnType::Uuid => TypeRef::ID.into(),
        ColumnType::DateTime => "DateTime".into(),
        ColumnType::Int => TypeRef::INT.into(),
        _ => TypeRef::STRING.into(),
    }
}

fn value_of(
    m: &Measured,
    col: &'static ColumnMeta,
    shown_as: &'static ColumnMeta,
) -> Option<FieldValue<'static>> {
    match m.get(col) {
        Value::Null => None,
        v => Some(FieldValue::value(graphql_value(shown_as, v))),
    }
}

/// The fields every figure-carrying object has (`count`, `sum { .. }`, ...).
fn with_figures(mut o: Object, m: &'static Measures) -> Object {
    let n = m.entity.name;
    let count = m.count;
    o = o.field(
        Field::new("count", TypeRef::named_nn(TypeRef::INT), move |ctx| {
            ready(parent::<Measured>(&ctx).map(|p| {
                Some(FieldValue::value(match p.get(count) {
                    Value::Int(n) => *n,
                    _ => 0,
                }))
            }))
        })
        .description("The number of rows."),
    );
    for func in Func::ALL {
        if m.of_func(func).next().is_none() {
            continue;
        }
        let ty = format!("{n}{}", func.type_suffix());
        let ty = if func == Func::CountDistinct {
            TypeRef::named_nn(ty)
        } else {
            TypeRef::named(ty)
        };
        o = o.field(Field::new(func.field(), ty, |ctx| {
            ready(parent::<Measured>(&ctx).map(|p| Some(FieldValue::borrowed_any(p))))
        }));
    }
    o
}

/// `XSum`, `XAvg`, `XMin`, `XMax`, `XCountDistinct`: one field per column the function
/// applies to.
fn function_types(r: &mut Registry, m: &'static Measures) {
    let n = m.entity.name;
    for func in Func::ALL {
        if m.of_func(func).next().is_none() {
            continue;
        }
        let mut o = Object::new(format!("{n}{}", func.type_suffix())).description(format!(
            "`{}` of {n} fields over the rows (null over no row{}).",
            func.field(),
            if func == Func::CountDistinct {
                ", 0 for counts"
            } else {
                ""
            }
        ));
        for ms in m.of_func(func) {
            let col = ms.col;
            let ty = if func == Func::CountDistinct {
                TypeRef::named_nn(TypeRef::INT)
            } else {
                TypeRef::named(scalar(col.ty))
            };
            o = o.field(Field::new(ms.source.field, ty, move |ctx| {
                ready(parent::<Measured>(&ctx).map(|p| match (func, p.get(col)) {
                    (Func::CountDistinct, Value::Null) => Some(FieldValue::value(0)),
                    _ => value_of(p, col, col),
                }))
            }));
        }
        r.add(o);
    }
}

/// `XGroupKey`: the values a group was formed by (null for fields not in `by`), and the
/// related row of each reference.
fn key_type_object(r: &mut Registry, md: &'static Metadata, m: &'static Measures) {
    let n = m.entity.name;
    let mut o = Object::new(format!("{n}GroupKey")).description(format!(
        "The values of a group of {n} rows (null for fields not grouped by)."
    ));
    for key in &m.keys {
        let (col, source) = (key.col, key.source);
        o = o.field(Field::new(
            source.field,
            TypeRef::named(key_type(source, md, m.entity)),
            move |ctx| ready(parent::<Measured>(&ctx).map(|p| value_of(p, col, source))),
        ));
    }
    for link in md
        .links(m.entity)
        .iter()
        .filter(|l| l.kind == LinkKind::Parent)
    {
        let Some(key) = m.keys.iter().find(|k| std::ptr::eq(k.source, link.fk)) else {
            continue;
        };
        if m.key(link.name).is_some() {
            continue;
        }
        let (col, target) = (key.col, link.target);
        o = o.field(
            Field::new(link.name, TypeRef::named(target.name), move |ctx| {
                FieldFuture::new(async move {
                    let id = match parent::<Measured>(&ctx)?.get(col) {
                        Value::Uuid(id) => Some(*id),
                        _ => None,
                    };
                    let row = crud::belongs_to(&ctx, target, id).await?;
                    Ok(row.map(FieldValue::owned_any))
                })
            })
            .description(format!(
                "The {} of the group's `{}`.",
                target.name, link.fk_field
            )),
        );
    }
    r.add(o);
}

/// Inputs `XHaving` and `XGroupOrderBy`, with their per-function parts.
fn inputs(r: &mut Registry, m: &'static Measures) {
    let n = m.entity.name;
    let having = format!("{n}Having");
    let mut h = InputObject::new(&having)
        .description(format!(
            "Conditions on the figures of a group of {n} rows; all given must hold."
        ))
        .field(InputValue::new("AND", TypeRef::named_nn_list(&having)))
        .field(InputValue::new("OR", TypeRef::named_nn_list(&having)))
        .field(InputValue::new("NOT", TypeRef::named(&having)))
        .field(InputValue::new("count", TypeRef::named("IntFilter")));
    let order = format!("{n}GroupOrderBy");
    let mut o = InputObject::new(&order).description(format!(
        "One sort key for {n} groups: set exactly one field. Ties are broken by the group's keys."
    ));
    // A key named like a figure (a package's `max` field) is ordered as the groups' tie-break
    // only: the figure keeps the name.
    for key in m.keys.iter().filter(|k| !figure_name(k.source.field)) {
        o = o.field(InputValue::new(
            key.source.field,
            TypeRef::named("SortOrder"),
        ));
    }
    o = o.field(InputValue::new("count", TypeRef::named("SortOrder")));
    for func in Func::ALL {
        if m.of_func(func).next().is_none() {
            continue;
        }
        let suffix = func.type_suffix();
        let mut fh = InputObject::new(format!("{n}{suffix}Having"));
        let mut fo = InputObject::new(format!("{n}{suffix}OrderBy"));
        for ms in m.of_func(func) {
            fh = fh.field(InputValue::new(
                ms.source.field,
                TypeRef::named(filter_of(ms.col.ty)),
            ));
            fo = fo.field(InputValue::new(
                ms.source.field,
                TypeRef::named("SortOrder"),
            ));
        }
        r.add(fh);
        r.add(fo);
        h = h.field(InputValue::new(
            func.field(),
            TypeRef::named(format!("{n}{suffix}Having")),
        ));
        o = o.field(InputValue::new(
            func.field(),
            TypeRef::named(format!("{n}{suffix}OrderBy")),
        ));
    }
    r.add(h);
    r.add(o);
    let mut e = Enum::new(format!("{n}GroupField"))
        .description(format!("The {n} fields rows can be grouped by."));
    for key in &m.keys {
        e = e.item(key.source.field.to_shouty_snake_case());
    }
    r.add(e);
}

/// Whether `name` is one of the figures' own fields (`count`, `sum`, ...).
fn figure_name(name: &str) -> bool {
    name == "count" || Func::ALL.iter().any(|f| f.field() == name)
}

fn given<'v>(o: &'v Fields, name: &str) -> Option<&'v G> {
    o.get(name).filter(|v| !matches!(v, G::Null))
}

fn list(v: &G) -> &[G] {
    match v {
        G::List(l) => l,
        one => std::slice::from_ref(one),
    }
}

/// A `having` input as a filter over the derived row.
fn having(m: &'static Measures, v: &G, at: &str, depth: usize) -> Result<Filter, ApiError> {
    if depth > 8 {
        return Err(ApiError::bad_input(at, format!("{at} nests too deep")));
    }
    let o = object(v, at)?;
    let mut parts = Vec::new();
    for (name, all) in [("AND", true), ("OR", false)] {
        if let Some(l) = given(o, name) {
            let fs = list(l)
                .iter()
                .enumerate()
                .map(|(i, x)| having(m, x, &format!("{at}.{name}[{i}]"), depth + 1))
                .collect::<Result<Vec<_>, _>>()?;
            parts.push(if all { Filter::and(fs) } else { Filter::Or(fs) });
        }
    }
    if let Some(x) = given(o, "NOT") {
        parts.push(Filter::Not(Box::new(having(
            m,
            x,
            &format!("{at}.NOT"),
            depth + 1,
        )?)));
    }
    if let Some(x) = given(o, "count") {
        parts.push(filter::field_filter(m.count, x, &format!("{at}.count"))?);
    }
    for func in Func::ALL {
        let Some(x) = given(o, func.field()) else {
            continue;
        };
        let fat = format!("{at}.{}", func.field());
        for (field, v) in object(x, &fat)?.iter() {
            if matches!(v, G::Null) {
                continue;
            }
            let ms = m.measure(func, field.as_str()).ok_or_else(|| {
                ApiError::bad_input(&fat, format!("{fat}.{field} is not a field"))
            })?;
            parts.push(filter::field_filter(ms.col, v, &format!("{fat}.{field}"))?);
        }
    }
    Ok(Filter::and(parts))
}

fn direction(v: &G, at: &str) -> Result<SortOrder, ApiError> {
    match v {
        G::Enum(n) if n.as_str() == "ASC" => Ok(SortOrder::Asc),
        G::Enum(n) if n.as_str() == "DESC" => Ok(SortOrder::Desc),
        G::String(s) if s == "ASC" => Ok(SortOrder::Asc),
        G::String(s) if s == "DESC" => Ok(SortOrder::Desc),
        _ => Err(ApiError::bad_input(at, format!("{at} must be ASC or DESC"))),
    }
}

/// A group `orderBy`: each entry sets one key (grouped by) or one figure.
fn group_order(
    m: &'static Measures,
    by: &[&'static aggregate::Key],
    v: Option<&G>,
) -> Result<Vec<SortKey>, ApiError> {
    let Some(v) = v else { return Ok(Vec::new()) };
    let entries = list(v);
    if entries.len() > filter::MAX_SORT_KEYS {
        return Err(ApiError::bad_input(
            "orderBy",
            format!("orderBy may name at most {} fields", filter::MAX_SORT_KEYS),
        ));
    }
    let mut keys = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let at = format!("orderBy[{i}]");
        let o = object(entry, &at)?;
        let mut found = Vec::new();
        for (name, v) in o.iter().filter(|(_, v)| !matches!(v, G::Null)) {
            let name = name.as_str();
            let fat = format!("{at}.{name}");
            if name == "count" {
                found.push(SortKey::new(m.count, direction(v, &fat)?));
            } else if let Some(func) = Func::ALL.into_iter().find(|f| f.field() == name) {
                for (field, d) in object(v, &fat)?
                    .iter()
                    .filter(|(_, v)| !matches!(v, G::Null))
                {
                    let ms = m.measure(func, field.as_str()).ok_or_else(|| {
                        ApiError::bad_input(&fat, format!("{fat}.{field} is not a field"))
                    })?;
                    found.push(SortKey::new(
                        ms.col,
                        direction(d, &format!("{fat}.{field}"))?,
                    ));
                }
            } else if let Some(key) = m.key(name) {
                if !by.iter().any(|k| std::ptr::eq(*k, key)) {
                    return Err(ApiError::bad_input(
                        &fat,
                        format!("{fat}: the groups are not formed by {name}; add it to `by`"),
                    ));
                }
                found.push(SortKey::new(key.col, direction(v, &fat)?));
            }
        }
        if found.len() != 1 {
            return Err(ApiError::bad_input(
                &at,
                format!("{at} must set exactly one field"),
            ));
        }
        keys.extend(found);
    }
    Ok(keys)
}

fn group_args(m: &'static Measures, ctx: &ResolverContext<'_>) -> Result<GroupArgs, ApiError> {
    let meta = m.entity;
    let mut by: Vec<&'static aggregate::Key> = Vec::new();
    if let Some(v) = arg(ctx, "by") {
        let names = list(v);
        if names.len() > MAX_GROUP_KEYS {
            return Err(ApiError::bad_input(
                "by",
                format!("by may name at most {MAX_GROUP_KEYS} fields"),
            ));
        }
        for (i, name) in names.iter().enumerate() {
            let name = match name {
                G::Enum(n) => n.as_str(),
                G::String(s) => s.as_str(),
                _ => "",
            };
            let key = m
                .keys
                .iter()
                .find(|k| k.source.field.to_shouty_snake_case() == name)
                .ok_or_else(|| {
                    ApiError::bad_input(
                        format!("by[{i}]"),
                        format!("by[{i}] is not a field of {}", meta.name),
                    )
                })?;
            if !by.iter().any(|k| std::ptr::eq(*k, key)) {
                by.push(key);
            }
        }
    }
    let bucket = match arg(ctx, "dateBucket") {
        Some(G::Enum(n)) => Bucket::parse(n.as_str()),
        Some(G::String(s)) => Bucket::parse(s),
        _ => Some(Bucket::Day),
    }
    .ok_or_else(|| ApiError::bad_input("dateBucket", "dateBucket is not a bucket"))?;
    let zone = string_arg(ctx, "timeZone").unwrap_or_else(|| "UTC".into());
    if zone.is_empty() || zone.len() > 64 {
        return Err(ApiError::bad_input(
            "timeZone",
            "timeZone must be an IANA time zone name",
        ));
    }
    let having = arg(ctx, "having")
        .map(|v| having(m, v, "having", 0))
        .transpose()?;
    if let Some(h) = &having {
        filter::check_size(h, "having")?;
    }
    Ok(GroupArgs {
        filter: arg(ctx, "where")
            .map(|w| filter::where_filter(meta, w, "where"))
            .transpose()?,
        order: group_order(m, &by, arg(ctx, "orderBy"))?,
        by,
        bucket,
        zone,
        having,
        first: int_arg(ctx, "first"),
        after: string_arg(ctx, "after"),
    })
}

/// `XAggregate`, `XGroup`, `XGroupConnection`, `XGroupEdge` and the other types of `meta`'s
/// figures, and its root fields `xsAggregate` and `xsGroups`.
pub fn register(r: &mut Registry, md: &'static Metadata, meta: &'static EntityMeta) {
    let m = Measures::of(meta);
    let n = meta.name;
    function_types(r, m);
    r.add(with_figures(
        Object::new(format!("{n}Aggregate")).description(format!(
            "Figures over the {n} rows the caller may read that match `where`."
        )),
        m,
    ));
    r.query.push(
        Field::new(
            format!("{}Aggregate", meta.plural),
            TypeRef::named_nn(format!("{n}Aggregate")),
            move |ctx| {
                FieldFuture::new(async move {
                    let w = arg(&ctx, "where")
                        .map(|w| filter::where_filter(meta, w, "where"))
                        .transpose()?;
                    let figures = aggregate::aggregate(&ctx, m, w).await?;
                    Ok(Some(FieldValue::owned_any(figures)))
                })
            },
        )
        .argument(InputValue::new("where", TypeRef::named(format!("{n}Where"))))
        .description(format!(
            "Count, sums, averages, least, greatest and distinct counts over the {n} rows the caller may read that match `where`."
        )),
    );
    // Nothing to group by (no enum, boolean, text, integer, reference or instant): no groups.
    if m.keys.is_empty() {
        return;
    }
    key_type_object(r, md, m);
    inputs(r, m);
    r.add(
        with_figures(Object::new(format!("{n}Group")), m).field(Field::new(
            "key",
            TypeRef::named_nn(format!("{n}GroupKey")),
            |ctx| ready(parent::<Measured>(&ctx).map(|p| Some(FieldValue::borrowed_any(p)))),
        )),
    );
    let [conn, edge] = super::connection::<GroupPage>(
        &format!("{n}GroupConnection"),
        &format!("{n}GroupEdge"),
        &format!("{n}Group"),
    );
    r.add(conn);
    r.add(edge);

    r.query.push(
        Field::new(
            format!("{}Groups", meta.plural),
            TypeRef::named_nn(format!("{n}GroupConnection")),
            move |ctx| {
                FieldFuture::new(async move {
                    let args = group_args(m, &ctx)?;
                    let page = aggregate::groups(&ctx, m, args).await?;
                    Ok(Some(FieldValue::owned_any(page)))
                })
            },
        )
        .argument(InputValue::new("where", TypeRef::named(format!("{n}Where"))))
        .argument(InputValue::new(
            "by",
            TypeRef::named_nn_list_nn(format!("{n}GroupField")),
        ))
        .argument(
            InputValue::new("dateBucket", TypeRef::named("DateBucket"))
                .description("How DateTime fields in `by` are truncated (default DAY)."),
        )
        .argument(
            InputValue::new("timeZone", TypeRef::named(TypeRef::STRING))
                .description("The IANA time zone the buckets are cut in (default UTC)."),
        )
        .argument(InputValue::new("having", TypeRef::named(format!("{n}Having"))))
        .argument(InputValue::new(
            "orderBy",
            TypeRef::named_nn_list(format!("{n}GroupOrderBy")),
        ))
        .argument(InputValue::new("first", TypeRef::named(TypeRef::INT)))
        .argument(InputValue::new("after", TypeRef::named(TypeRef::STRING)))
        .description(format!(
            "{n} rows the caller may read that match `where`, grouped by the fields of `by` (DateTime fields by `dateBucket` in `timeZone`), each group with its key and figures; `having` filters groups, `orderBy` sorts them (ties broken by the keys), `first`/`after` page them."
        )),
    );
}

/// `relationAggregate(where)` on the parent's object type, for a `hasMany` relation.
pub fn relation_field(link: &'static RelationLink) -> Field {
    let target = link.target;
    let m = Measures::of(target);
    let fk = link.fk;
    Field::new(
        format!("{}Aggregate", link.name),
        TypeRef::named_nn(format!("{}Aggregate", target.name)),
        move |ctx| {
            FieldFuture::new(async move {
                let id = parent::<Row>(&ctx)?.id();
                let w = arg(&ctx, "where")
                    .map(|w| filter::where_filter(target, w, "where"))
                    .transpose()?;
                let figures = aggregate::relation_aggregate(&ctx, m, fk, id, w).await?;
                Ok(Some(FieldValue::owned_any(figures)))
            })
        },
    )
    .argument(InputValue::new("where", TypeRef::named(format!("{}Where", target.name))))
    .description(format!(
        "Figures over the {} rows of `{}` the caller may read that match `where` (batched with every parent of the level).",
        target.name, link.name
    ))
}

/// Types every entity's figures share.
pub fn register_shared(r: &mut Registry) {
    let mut e = Enum::new("DateBucket").description("How instants are truncated when grouped.");
    for name in Bucket::NAMES {
        e = e.item(name);
    }
    r.add(e);
}
