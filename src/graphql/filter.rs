//! The `where` inputs shared by every entity: one filter type per scalar type, turned into the
//! SQL filter tree. Each entity's generated `XWhere` lists its fields with these types.

use async_graphql::{InputObject, ID};
use chrono::{DateTime, Utc};
use serde_json::Value as JsonValue;

use crate::db::sql::{
    ArrayOp, CmpOp, Filter, Hop, JsonOp, Link, Quantifier, SortKey, SortOrder, TextMatch,
};
use crate::db::value::Value;
use crate::error::ApiError;
use crate::graphql::crud::Entity;
use crate::graphql::input;
use crate::graphql::meta::ColumnMeta;
use crate::graphql::scalars::{BigInt, Decimal};

/// Turns one field's filter input into conditions on its column.
pub trait FieldFilter {
    fn to_filter(&self, col: &'static ColumnMeta, path: &str) -> Result<Filter, ApiError>;
}

/// A generated `XWhere` input.
pub trait WhereInput {
    fn to_filter(&self, path: &str) -> Result<Filter, ApiError>;
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

/// Combines AND / OR / NOT of a where input.
pub fn combinators<W: WhereInput>(
    and: &Option<Vec<W>>,
    or: &Option<Vec<W>>,
    not: &Option<Box<W>>,
    path: &str,
) -> Result<Vec<Filter>, ApiError> {
    let mut all = Vec::new();
    if let Some(list) = and {
        for (i, w) in list.iter().enumerate() {
            all.push(w.to_filter(&format!("{path}.AND[{i}]"))?);
        }
    }
    if let Some(list) = or {
        let mut any = Vec::new();
        for (i, w) in list.iter().enumerate() {
            any.push(w.to_filter(&format!("{path}.OR[{i}]"))?);
        }
        all.push(Filter::Or(any));
    }
    if let Some(w) = not {
        all.push(Filter::Not(Box::new(w.to_filter(&format!("{path}.NOT"))?)));
    }
    Ok(all)
}

pub fn push_field<F: FieldFilter>(
    all: &mut Vec<Filter>,
    filter: Option<&F>,
    col: &'static ColumnMeta,
    path: &str,
) -> Result<(), ApiError> {
    if let Some(f) = filter {
        let at = format!("{path}.{}", col.field);
        let condition = f.to_filter(col, &at)?;
        if carries_nul(&condition) {
            return Err(ApiError::bad_input(
                at.clone(),
                format!("{at} contains a NUL character"),
            ));
        }
        all.push(condition);
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

fn cmp(col: &'static ColumnMeta, op: CmpOp, value: Value) -> Filter {
    Filter::Cmp {
        col,
        op,
        value,
        insensitive: false,
    }
}

fn null_check(out: &mut Vec<Filter>, col: &'static ColumnMeta, is_null: Option<bool>) {
    if let Some(is_null) = is_null {
        out.push(Filter::IsNull { col, is_null });
    }
}

/// The comparison operators every ordered type shares.
fn ordered<T: Clone + Into<Value>>(
    out: &mut Vec<Filter>,
    col: &'static ColumnMeta,
    ops: [(&Option<T>, CmpOp); 6],
) {
    for (v, op) in ops {
        if let Some(v) = v {
            out.push(cmp(col, op, v.clone().into()));
        }
    }
}

macro_rules! ordered_filter {
    ($name:ident, $gql:literal, $t:ty, $list:ident, $doc:literal) => {
        #[doc = $doc]
        #[derive(InputObject, Default)]
        #[graphql(name = $gql)]
        pub struct $name {
            pub equals: Option<$t>,
            pub not: Option<$t>,
            #[graphql(name = "in")]
            pub in_: Option<Vec<$t>>,
            #[graphql(name = "notIn")]
            pub not_in: Option<Vec<$t>>,
            pub lt: Option<$t>,
            pub lte: Option<$t>,
            pub gt: Option<$t>,
            pub gte: Option<$t>,
            #[graphql(name = "isNull")]
            pub is_null: Option<bool>,
        }

        impl FieldFilter for $name {
            fn to_filter(&self, col: &'static ColumnMeta, _path: &str) -> Result<Filter, ApiError> {
                let mut out = Vec::new();
                ordered(
                    &mut out,
                    col,
                    [
                        (&self.equals, CmpOp::Eq),
                        (&self.not, CmpOp::Ne),
                        (&self.lt, CmpOp::Lt),
                        (&self.lte, CmpOp::Lte),
                        (&self.gt, CmpOp::Gt),
                        (&self.gte, CmpOp::Gte),
                    ],
                );
                if let Some(l) = &self.in_ {
                    out.push(Filter::In {
                        col,
                        values: Value::$list(l.iter().cloned().map(Into::into).collect()),
                        negated: false,
                    });
                }
                if let Some(l) = &self.not_in {
                    out.push(Filter::In {
                        col,
                        values: Value::$list(l.iter().cloned().map(Into::into).collect()),
                        negated: true,
                    });
                }
                null_check(&mut out, col, self.is_null);
                Ok(Filter::and(out))
            }
        }
    };
}

ordered_filter!(
    IntFilter,
    "IntFilter",
    i32,
    IntList,
    "Conditions on an Int field."
);
ordered_filter!(
    FloatFilter,
    "FloatFilter",
    f64,
    FloatList,
    "Conditions on a Float field."
);
ordered_filter!(
    DateTimeFilter,
    "DateTimeFilter",
    DateTime<Utc>,
    DateTimeList,
    "Conditions on a DateTime field (RFC 3339)."
);

impl From<BigInt> for Value {
    fn from(v: BigInt) -> Self {
        Value::BigInt(v.0)
    }
}
impl From<BigInt> for i64 {
    fn from(v: BigInt) -> Self {
        v.0
    }
}
impl From<Decimal> for Value {
    fn from(v: Decimal) -> Self {
        Value::Decimal(v.0)
    }
}
impl From<Decimal> for bigdecimal::BigDecimal {
    fn from(v: Decimal) -> Self {
        v.0
    }
}

ordered_filter!(
    BigIntFilter,
    "BigIntFilter",
    BigInt,
    BigIntList,
    "Conditions on a BigInt field."
);
ordered_filter!(
    DecimalFilter,
    "DecimalFilter",
    Decimal,
    DecimalList,
    "Conditions on a Decimal field."
);

/// How text comparisons treat letter case.
#[derive(async_graphql::Enum, Clone, Copy, PartialEq, Eq, Default)]
#[graphql(name = "QueryMode")]
pub enum QueryMode {
    #[default]
    #[graphql(name = "DEFAULT")]
    Default,
    #[graphql(name = "INSENSITIVE")]
    Insensitive,
}

/// Conditions on a String field. `mode: INSENSITIVE` ignores letter case for every operator.
#[derive(InputObject, Default)]
#[graphql(name = "StringFilter")]
pub struct StringFilter {
    pub equals: Option<String>,
    pub not: Option<String>,
    #[graphql(name = "in")]
    pub in_: Option<Vec<String>>,
    #[graphql(name = "notIn")]
    pub not_in: Option<Vec<String>>,
    pub lt: Option<String>,
    pub lte: Option<String>,
    pub gt: Option<String>,
    pub gte: Option<String>,
    pub contains: Option<String>,
    #[graphql(name = "startsWith")]
    pub starts_with: Option<String>,
    #[graphql(name = "endsWith")]
    pub ends_with: Option<String>,
    pub mode: Option<QueryMode>,
    #[graphql(name = "isNull")]
    pub is_null: Option<bool>,
}

impl FieldFilter for StringFilter {
    fn to_filter(&self, col: &'static ColumnMeta, _path: &str) -> Result<Filter, ApiError> {
        let insensitive = self.mode == Some(QueryMode::Insensitive);
        let mut out = Vec::new();
        for (v, op) in [
            (&self.equals, CmpOp::Eq),
            (&self.not, CmpOp::Ne),
            (&self.lt, CmpOp::Lt),
            (&self.lte, CmpOp::Lte),
            (&self.gt, CmpOp::Gt),
            (&self.gte, CmpOp::Gte),
        ] {
            if let Some(v) = v {
                out.push(Filter::Cmp {
                    col,
                    op,
                    value: Value::Text(v.clone()),
                    insensitive,
                });
            }
        }
        for (list, negated) in [(&self.in_, false), (&self.not_in, true)] {
            let Some(list) = list else { continue };
            if insensitive {
                let any = list
                    .iter()
                    .map(|v| Filter::Cmp {
                        col,
                        op: CmpOp::Eq,
                        value: Value::Text(v.clone()),
                        insensitive: true,
                    })
                    .collect();
                let f = Filter::Or(any);
                out.push(if negated { Filter::Not(Box::new(f)) } else { f });
            } else {
                out.push(Filter::In {
                    col,
                    values: Value::TextList(list.clone()),
                    negated,
                });
            }
        }
        for (v, how) in [
            (&self.contains, TextMatch::Contains),
            (&self.starts_with, TextMatch::StartsWith),
            (&self.ends_with, TextMatch::EndsWith),
        ] {
            if let Some(v) = v {
                out.push(Filter::Text {
                    col,
                    how,
                    needle: v.clone(),
                    insensitive,
                });
            }
        }
        null_check(&mut out, col, self.is_null);
        Ok(Filter::and(out))
    }
}

/// Conditions on an ID field.
#[derive(InputObject, Default)]
#[graphql(name = "IDFilter")]
pub struct IdFilter {
    pub equals: Option<ID>,
    pub not: Option<ID>,
    #[graphql(name = "in")]
    pub in_: Option<Vec<ID>>,
    #[graphql(name = "notIn")]
    pub not_in: Option<Vec<ID>>,
    #[graphql(name = "isNull")]
    pub is_null: Option<bool>,
}

impl FieldFilter for IdFilter {
    fn to_filter(&self, col: &'static ColumnMeta, path: &str) -> Result<Filter, ApiError> {
        let mut out = Vec::new();
        if let Some(v) = &self.equals {
            out.push(cmp(
                col,
                CmpOp::Eq,
                Value::Uuid(input::id(v, path, "equals")?),
            ));
        }
        if let Some(v) = &self.not {
            out.push(cmp(col, CmpOp::Ne, Value::Uuid(input::id(v, path, "not")?)));
        }
        if let Some(l) = &self.in_ {
            out.push(Filter::In {
                col,
                values: Value::UuidList(input::ids(l, path, "in")?),
                negated: false,
            });
        }
        if let Some(l) = &self.not_in {
            out.push(Filter::In {
                col,
                values: Value::UuidList(input::ids(l, path, "notIn")?),
                negated: true,
            });
        }
        null_check(&mut out, col, self.is_null);
        Ok(Filter::and(out))
    }
}

/// Conditions on a Boolean field.
#[derive(InputObject, Default)]
#[graphql(name = "BooleanFilter")]
pub struct BooleanFilter {
    pub equals: Option<bool>,
    pub not: Option<bool>,
    #[graphql(name = "isNull")]
    pub is_null: Option<bool>,
}

impl FieldFilter for BooleanFilter {
    fn to_filter(&self, col: &'static ColumnMeta, _path: &str) -> Result<Filter, ApiError> {
        let mut out = Vec::new();
        if let Some(v) = self.equals {
            out.push(cmp(col, CmpOp::Eq, Value::Bool(v)));
        }
        if let Some(v) = self.not {
            out.push(cmp(col, CmpOp::Ne, Value::Bool(v)));
        }
        null_check(&mut out, col, self.is_null);
        Ok(Filter::and(out))
    }
}

/// Conditions on a JSON field. With `path` (a list of keys or array indexes), `equals`, `not`,
/// `contains` and `containedBy` apply to the value at that path instead of the whole document.
#[derive(InputObject, Default)]
#[graphql(name = "JSONFilter")]
pub struct JsonFilter {
    pub path: Option<Vec<String>>,
    pub equals: Option<JsonValue>,
    pub not: Option<JsonValue>,
    /// The value contains this JSON (`@>`).
    pub contains: Option<JsonValue>,
    /// The value is contained in this JSON (`<@`).
    #[graphql(name = "containedBy")]
    pub contained_by: Option<JsonValue>,
    /// An object with this top-level key, or an array with this string element.
    #[graphql(name = "hasKey")]
    pub has_key: Option<String>,
    #[graphql(name = "hasAnyKeys")]
    pub has_any_keys: Option<Vec<String>>,
    #[graphql(name = "hasAllKeys")]
    pub has_all_keys: Option<Vec<String>>,
    #[graphql(name = "isNull")]
    pub is_null: Option<bool>,
}

impl FieldFilter for JsonFilter {
    fn to_filter(&self, col: &'static ColumnMeta, _path: &str) -> Result<Filter, ApiError> {
        let mut out = Vec::new();
        let path = self.path.clone();
        for (v, op) in [
            (&self.equals, JsonOp::Equals),
            (&self.not, JsonOp::NotEquals),
            (&self.contains, JsonOp::Contains),
            (&self.contained_by, JsonOp::ContainedBy),
        ] {
            if let Some(v) = v {
                out.push(Filter::Json {
                    col,
                    path: path.clone(),
                    op,
                    value: Value::Json(v.clone()),
                });
            }
        }
        if let Some(k) = &self.has_key {
            out.push(Filter::Json {
                col,
                path: path.clone(),
                op: JsonOp::HasKey,
                value: Value::Text(k.clone()),
            });
        }
        for (keys, op) in [
            (&self.has_any_keys, JsonOp::HasAnyKeys),
            (&self.has_all_keys, JsonOp::HasAllKeys),
        ] {
            if let Some(k) = keys {
                out.push(Filter::Json {
                    col,
                    path: path.clone(),
                    op,
                    value: Value::TextList(k.clone()),
                });
            }
        }
        null_check(&mut out, col, self.is_null);
        Ok(Filter::and(out))
    }
}

macro_rules! list_filter {
    ($name:ident, $gql:literal, $t:ty, $conv_one:expr, $conv_list:expr, $doc:literal) => {
        #[doc = $doc]
        #[derive(InputObject, Default)]
        #[graphql(name = $gql)]
        pub struct $name {
            /// The list contains this element.
            pub has: Option<$t>,
            /// The list contains every one of these elements.
            #[graphql(name = "hasEvery")]
            pub has_every: Option<Vec<$t>>,
            /// The list contains at least one of these elements.
            #[graphql(name = "hasSome")]
            pub has_some: Option<Vec<$t>>,
            #[graphql(name = "isEmpty")]
            pub is_empty: Option<bool>,
            pub equals: Option<Vec<$t>>,
            #[graphql(name = "isNull")]
            pub is_null: Option<bool>,
        }

        impl FieldFilter for $name {
            fn to_filter(&self, col: &'static ColumnMeta, path: &str) -> Result<Filter, ApiError> {
                let one = $conv_one;
                let list = $conv_list;
                let mut out = Vec::new();
                if let Some(v) = &self.has {
                    out.push(Filter::Array {
                        col,
                        op: ArrayOp::Has,
                        value: one(v, path)?,
                    });
                }
                for (v, op) in [
                    (&self.has_every, ArrayOp::HasEvery),
                    (&self.has_some, ArrayOp::HasSome),
                    (&self.equals, ArrayOp::Equals),
                ] {
                    if let Some(v) = v {
                        out.push(Filter::Array {
                            col,
                            op,
                            value: list(v, path)?,
                        });
                    }
                }
                if let Some(empty) = self.is_empty {
                    out.push(Filter::ArrayEmpty { col, empty });
                }
                null_check(&mut out, col, self.is_null);
                Ok(Filter::and(out))
            }
        }
    };
}

list_filter!(
    StringListFilter,
    "StringListFilter",
    String,
    |v: &String, _p: &str| -> Result<Value, ApiError> { Ok(Value::Text(v.clone())) },
    |v: &Vec<String>, _p: &str| -> Result<Value, ApiError> { Ok(Value::TextList(v.clone())) },
    "Conditions on a list of strings."
);
list_filter!(
    IntListFilter,
    "IntListFilter",
    i32,
    |v: &i32, _p: &str| -> Result<Value, ApiError> { Ok(Value::Int(*v)) },
    |v: &Vec<i32>, _p: &str| -> Result<Value, ApiError> { Ok(Value::IntList(v.clone())) },
    "Conditions on a list of integers."
);
list_filter!(
    IdListFilter,
    "IDListFilter",
    ID,
    |v: &ID, p: &str| -> Result<Value, ApiError> { Ok(Value::Uuid(input::id(v, p, "has")?)) },
    |v: &Vec<ID>, p: &str| -> Result<Value, ApiError> {
        Ok(Value::UuidList(input::ids(v, p, "list")?))
    },
    "Conditions on a list of IDs."
);

/// The parts of a generated enum filter, as SQL labels.
pub struct EnumFilterParts {
    pub equals: Option<&'static str>,
    pub not: Option<&'static str>,
    pub in_: Option<Vec<&'static str>>,
    pub not_in: Option<Vec<&'static str>>,
    pub is_null: Option<bool>,
}

pub fn enum_filter(
    col: &'static ColumnMeta,
    _path: &str,
    parts: EnumFilterParts,
) -> Result<Filter, ApiError> {
    let mut out = Vec::new();
    if let Some(v) = parts.equals {
        out.push(cmp(col, CmpOp::Eq, Value::Text(v.to_string())));
    }
    if let Some(v) = parts.not {
        out.push(cmp(col, CmpOp::Ne, Value::Text(v.to_string())));
    }
    for (l, negated) in [(parts.in_, false), (parts.not_in, true)] {
        if let Some(l) = l {
            out.push(Filter::In {
                col,
                values: Value::TextList(l.iter().map(|s| s.to_string()).collect()),
                negated,
            });
        }
    }
    null_check(&mut out, col, parts.is_null);
    Ok(Filter::and(out))
}

/// A generated `XOrderBy` input: the sort keys it sets (exactly one is allowed per entry).
pub trait OrderInput {
    fn keys(&self) -> Vec<SortKey>;
}

/// Adds the key of a scalar field, when set.
pub fn order_field(keys: &mut Vec<SortKey>, dir: Option<SortOrder>, col: &'static ColumnMeta) {
    if let Some(dir) = dir {
        keys.push(SortKey::new(col, dir));
    }
}

/// Adds the keys of a `belongsTo` relation's order input (`orderBy: {category: {name: ASC}}`),
/// reached through the row's `fk` column.
pub fn order_parent<T: Entity, O: OrderInput>(
    keys: &mut Vec<SortKey>,
    nested: Option<&O>,
    fk: &'static ColumnMeta,
) {
    let Some(nested) = nested else { return };
    for mut k in nested.keys() {
        let link = parent_link::<T>(fk);
        k.hops.insert(0, Hop { link, scope: None });
        keys.push(k);
    }
}

/// From a row to the row its `fk` column references.
fn parent_link<T: Entity>(fk: &'static ColumnMeta) -> Link {
    Link {
        target: T::META,
        outer: fk,
        inner: T::META.id_column(),
    }
}

/// From a row (its `id` column) to the rows of `T` whose `fk` column references it.
fn child_link<T: Entity>(id: &'static ColumnMeta, fk: &str) -> Result<Link, ApiError> {
    let inner = T::META
        .column(fk)
        .ok_or_else(|| ApiError::internal(format!("{} has no column {fk}", T::META.name)))?;
    Ok(Link {
        target: T::META,
        outer: id,
        inner,
    })
}

fn related<W: WhereInput>(
    link: Link,
    quantifier: Quantifier,
    w: &W,
    path: &str,
) -> Result<Filter, ApiError> {
    Ok(Filter::Related {
        link,
        quantifier,
        filter: Box::new(w.to_filter(path)?),
        scope: None,
    })
}

/// A condition on the one row a relation leads to, when given.
fn push_one<W: WhereInput>(
    all: &mut Vec<Filter>,
    nested: Option<&W>,
    link: impl FnOnce() -> Result<Link, ApiError>,
    name: &str,
    path: &str,
) -> Result<(), ApiError> {
    let Some(w) = nested else { return Ok(()) };
    all.push(related(
        link()?,
        Quantifier::Some,
        w,
        &format!("{path}.{name}"),
    )?);
    Ok(())
}

/// `where: {category: {...}}`: the row this one references through `fk` matches.
pub fn push_parent<T: Entity, W: WhereInput>(
    all: &mut Vec<Filter>,
    nested: Option<&W>,
    fk: &'static ColumnMeta,
    name: &str,
    path: &str,
) -> Result<(), ApiError> {
    push_one(all, nested, || Ok(parent_link::<T>(fk)), name, path)
}

/// `where: {profile: {...}}`: the `hasOne` row pointing at this one through `fk` matches.
pub fn push_child<T: Entity, W: WhereInput>(
    all: &mut Vec<Filter>,
    nested: Option<&W>,
    id: &'static ColumnMeta,
    fk: &str,
    name: &str,
    path: &str,
) -> Result<(), ApiError> {
    push_one(all, nested, || child_link::<T>(id, fk), name, path)
}

/// `where: {posts: {some: {...}, every: {...}, none: {...}}}` over a `hasMany` relation.
pub fn push_children<T: Entity, L: ListRelationInput>(
    all: &mut Vec<Filter>,
    nested: Option<&L>,
    id: &'static ColumnMeta,
    fk: &str,
    name: &str,
    path: &str,
) -> Result<(), ApiError> {
    let Some(l) = nested else { return Ok(()) };
    let link = child_link::<T>(id, fk)?;
    for (quantifier, key, w) in l.parts() {
        if let Some(w) = w {
            all.push(related(
                link,
                quantifier,
                w,
                &format!("{path}.{name}.{key}"),
            )?);
        }
    }
    Ok(())
}

/// A generated `XListRelationFilter` input (see `list_relation_filter!`).
pub trait ListRelationInput {
    type Where: WhereInput;
    fn parts(&self) -> [(Quantifier, &'static str, Option<&Self::Where>); 3];
}

/// Declares the `some` / `every` / `none` input of a `hasMany` relation towards `$node`.
#[macro_export]
macro_rules! list_relation_filter {
    ($node:ident, $where:ident, $filter:ident) => {
        #[doc = concat!("Conditions on a list of related ", stringify!($node), " rows.")]
        #[derive(async_graphql::InputObject, Default)]
        pub struct $filter {
            /// At least one related row matches.
            pub some: Option<Box<$where>>,
            /// Every related row matches (true when there are none).
            pub every: Option<Box<$where>>,
            /// No related row matches.
            pub none: Option<Box<$where>>,
        }

        impl $crate::graphql::filter::ListRelationInput for $filter {
            type Where = $where;
            fn parts(&self) -> [($crate::db::sql::Quantifier, &'static str, Option<&$where>); 3] {
                use $crate::db::sql::Quantifier;
                [
                    (Quantifier::Some, "some", self.some.as_deref()),
                    (Quantifier::Every, "every", self.every.as_deref()),
                    (Quantifier::None, "none", self.none.as_deref()),
                ]
            }
        }
    };
}
