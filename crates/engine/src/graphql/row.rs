//! A row of any entity, as the engine reads it: the values of the entity's exposed columns in
//! the order of `EntityMeta::columns`, decoded by their PostgreSQL type. The select list
//! (`SqlBuilder::select_list`) writes those columns, enums cast to text, so one decoder
//! serves every entity; a read of some columns only names each by its position, and the
//! decoder puts it in its place. What a statement adds after them (`__keys`, `__rn`, ...) is
//! kept apart as `extra`.

use bigdecimal::BigDecimal;
use chrono::{DateTime, SecondsFormat, Utc};
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::pg::{Pg, PgValue};
use diesel::row::{Field, Row as DieselRow};
use diesel::sql_types::{
    Array, Bool, Float4, Float8, Int2, Int4, Int8, Jsonb, Numeric, Text, Timestamptz, Untyped,
    Uuid as SqlUuid,
};
use serde_json::{Map, Value as Json};
use uuid::Uuid;

use crate::db::value::Value;
use crate::graphql::meta::{ColumnMeta, ColumnType, EntityMeta};

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Row {
    /// One per column of the entity's metadata, in its order (up to the last column read:
    /// [`Row::get`] answers `NULL` for the ones after it).
    pub values: Vec<Value>,
    /// The statement's own columns after the row's (named `__...`), in their order.
    pub extra: Vec<Value>,
    /// Parents read with the row (columns named `"N.i"`, see `SqlBuilder::join_parents`):
    /// the link's position, and the parent's row (its id `NULL` when there is none the
    /// caller may read).
    pub joined: Vec<(usize, Row)>,
}

impl Row {
    /// The row's id (the first column of every entity).
    pub fn id(&self) -> Uuid {
        match self.values.first() {
            Some(Value::Uuid(id)) => *id,
            _ => Uuid::nil(),
        }
    }

    /// The value of one of the row's columns.
    pub fn get(&self, col: &ColumnMeta) -> &Value {
        self.values.get(col.position).unwrap_or(&Value::Null)
    }

    /// The parent of the entity's `at`-th link read with the row, if the statement joined it
    /// and found one.
    pub fn joined(&self, at: usize) -> Option<&Row> {
        self.joined
            .iter()
            .find(|(p, _)| *p == at)
            .map(|(_, row)| row)
            .filter(|row| !matches!(row.values.first(), None | Some(Value::Null)))
    }

    /// The value of a column by its SQL name.
    pub fn value(&self, meta: &EntityMeta, column: &str) -> Value {
        meta.column(column)
            .map_or(Value::Null, |col| self.get(col).clone())
    }

    /// The row as a JSON object keyed by GraphQL field names, as serde writes the typed
    /// models: audit rows store it, and change events re-key it by column
    /// (`live::outbox`), so engine rows and hand-written writes read back alike.
    pub fn to_json(&self, meta: &EntityMeta) -> Json {
        let mut out = Map::with_capacity(meta.columns.len());
        for col in meta.columns {
            out.insert(col.field.to_string(), json_of(self.get(col)));
        }
        Json::Object(out)
    }
}

fn datetime_json(v: &DateTime<Utc>) -> Json {
    // What chrono's own serializer writes, so audit rows read as before.
    Json::String(v.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

fn float_json(v: f64) -> Json {
    serde_json::Number::from_f64(v).map_or(Json::Null, Json::Number)
}

/// A value as serde would have serialized the column's Rust type.
pub fn json_of(v: &Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Uuid(v) => Json::String(v.to_string()),
        Value::Text(v) => Json::String(v.clone()),
        Value::Int(v) => Json::from(*v),
        Value::BigInt(v) => Json::from(*v),
        Value::Float(v) => float_json(*v),
        Value::Decimal(v) => Json::String(v.to_string()),
        Value::Bool(v) => Json::Bool(*v),
        Value::DateTime(v) => datetime_json(v),
        Value::Json(v) => v.clone(),
        Value::UuidList(l) => l.iter().map(|v| Json::String(v.to_string())).collect(),
        Value::TextList(l) => l.iter().map(|v| Json::String(v.clone())).collect(),
        Value::IntList(l) => l.iter().map(|v| Json::from(*v)).collect(),
        Value::BigIntList(l) => l.iter().map(|v| Json::from(*v)).collect(),
        Value::FloatList(l) => l.iter().map(|v| float_json(*v)).collect(),
        Value::DecimalList(l) => l.iter().map(|v| Json::String(v.to_string())).collect(),
        Value::DateTimeList(l) => l.iter().map(datetime_json).collect(),
    }
}

/// A column's value as GraphQL returns it (the scalar conventions of `graphql::scalars`).
pub fn graphql_value(col: &ColumnMeta, v: &Value) -> async_graphql::Value {
    use async_graphql::Value as G;
    let text = |s: &str| match col.ty {
        ColumnType::Enum(_) => G::Enum(async_graphql::Name::new(s)),
        _ => G::String(s.to_string()),
    };
    let float = |f: f64| serde_json::Number::from_f64(f).map_or(G::Null, G::Number);
    let decimal = |d: &BigDecimal| G::String(d.normalized().to_string());
    match v {
        Value::Null => G::Null,
        Value::Uuid(v) => G::String(v.to_string()),
        Value::Text(v) => text(v),
        Value::Int(v) => G::from(*v),
        Value::BigInt(v) => G::String(v.to_string()),
        Value::Float(v) => float(*v),
        Value::Decimal(v) => decimal(v),
        Value::Bool(v) => G::Boolean(*v),
        Value::DateTime(v) => G::String(v.to_rfc3339()),
        Value::Json(v) => G::from_json(v.clone()).unwrap_or_default(),
        Value::UuidList(l) => G::List(l.iter().map(|v| G::String(v.to_string())).collect()),
        Value::TextList(l) => G::List(l.iter().map(|s| text(s)).collect()),
        Value::IntList(l) => G::List(l.iter().map(|v| G::from(*v)).collect()),
        Value::BigIntList(l) => G::List(l.iter().map(|v| G::String(v.to_string())).collect()),
        Value::FloatList(l) => G::List(l.iter().map(|v| float(*v)).collect()),
        Value::DecimalList(l) => G::List(l.iter().map(decimal).collect()),
        Value::DateTimeList(l) => G::List(l.iter().map(|v| G::String(v.to_rfc3339())).collect()),
    }
}

/// Writes `s` as a JSON string, escaped as serde_json escapes it (async-graphql's values
/// serialize their strings through it, so the text is the same).
pub fn write_json_str(out: &mut Vec<u8>, s: &str) {
    write_json(out, s);
}

/// Writes `v` as serde_json does. Writing into a `Vec` cannot fail.
pub fn write_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
    let _ = serde_json::to_writer(out, v);
}

/// Writes a column's value as JSON text: the text `graphql_value`'s value serializes to,
/// written without building it for the common scalars.
pub fn write_graphql_value(out: &mut Vec<u8>, col: &ColumnMeta, v: &Value) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        // An enum's name serializes as a string too.
        Value::Text(s) => write_json_str(out, s),
        Value::Uuid(id) => {
            let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
            out.push(b'"');
            out.extend_from_slice(id.hyphenated().encode_lower(&mut buf).as_bytes());
            out.push(b'"');
        }
        Value::Int(n) => write_json(out, n),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::DateTime(t) => write_json_str(out, &t.to_rfc3339()),
        other => write_json(out, &graphql_value(col, other)),
    }
}

// PostgreSQL's built-in type oids (pg_type.dat).
const BOOL: u32 = 16;
const INT8: u32 = 20;
const INT2: u32 = 21;
const INT4: u32 = 23;
const TEXT: u32 = 25;
const JSON: u32 = 114;
const FLOAT4: u32 = 700;
const FLOAT8: u32 = 701;
const BPCHAR: u32 = 1042;
const VARCHAR: u32 = 1043;
const TIMESTAMPTZ: u32 = 1184;
const NUMERIC: u32 = 1700;
const UUID: u32 = 2950;
const JSONB: u32 = 3802;
const INT4_ARRAY: u32 = 1007;
const TEXT_ARRAY: u32 = 1009;
const VARCHAR_ARRAY: u32 = 1015;
const INT8_ARRAY: u32 = 1016;
const FLOAT8_ARRAY: u32 = 1022;
const TIMESTAMPTZ_ARRAY: u32 = 1185;
const NUMERIC_ARRAY: u32 = 1231;
const UUID_ARRAY: u32 = 2951;

fn decode<T, ST>(v: PgValue<'_>) -> deserialize::Result<T>
where
    T: FromSql<ST, Pg>,
{
    T::from_sql(v)
}

/// Decodes one value by its type oid. Anything else the engine selects is text (enums are
/// cast in the select list); an unknown type is read as its text form.
fn decode_value(v: PgValue<'_>) -> deserialize::Result<Value> {
    Ok(match v.get_oid().get() {
        UUID => Value::Uuid(decode::<Uuid, SqlUuid>(v)?),
        TEXT | VARCHAR | BPCHAR => Value::Text(decode::<String, Text>(v)?),
        INT4 => Value::Int(decode::<i32, Int4>(v)?),
        INT2 => Value::Int(i32::from(decode::<i16, Int2>(v)?)),
        INT8 => Value::BigInt(decode::<i64, Int8>(v)?),
        FLOAT8 => Value::Float(decode::<f64, Float8>(v)?),
        FLOAT4 => Value::Float(f64::from(decode::<f32, Float4>(v)?)),
        NUMERIC => Value::Decimal(decode::<BigDecimal, Numeric>(v)?),
        BOOL => Value::Bool(decode::<bool, Bool>(v)?),
        TIMESTAMPTZ => Value::DateTime(decode::<DateTime<Utc>, Timestamptz>(v)?),
        JSONB => Value::Json(decode::<Json, Jsonb>(v)?),
        JSON => Value::Json(serde_json::from_slice(v.as_bytes())?),
        UUID_ARRAY => Value::UuidList(decode::<Vec<Uuid>, Array<SqlUuid>>(v)?),
        TEXT_ARRAY | VARCHAR_ARRAY => Value::TextList(decode::<Vec<String>, Array<Text>>(v)?),
        INT4_ARRAY => Value::IntList(decode::<Vec<i32>, Array<Int4>>(v)?),
        INT8_ARRAY => Value::BigIntList(decode::<Vec<i64>, Array<Int8>>(v)?),
        FLOAT8_ARRAY => Value::FloatList(decode::<Vec<f64>, Array<Float8>>(v)?),
        NUMERIC_ARRAY => Value::DecimalList(decode::<Vec<BigDecimal>, Array<Numeric>>(v)?),
        TIMESTAMPTZ_ARRAY => {
            Value::DateTimeList(decode::<Vec<DateTime<Utc>>, Array<Timestamptz>>(v)?)
        }
        _ => Value::Text(String::from_utf8(v.as_bytes().to_vec())?),
    })
}

impl FromSqlRow<Untyped, Pg> for Row {
    fn build_from_row<'a>(row: &impl DieselRow<'a, Pg>) -> deserialize::Result<Self> {
        let n = row.field_count();
        // Sized once for the row's last position (growing it column by column cost ~2 % of
        // the gateway's CPU on the nested bench query). Select lists write a row's columns in
        // their order, then joined parents' and the statement's own: the last column named
        // by a number, found from the end, is the highest position. Were it not, `place`
        // would still grow the row.
        let len = (0..n)
            .rev()
            .filter_map(|i| row.get(i))
            .find_map(|f| f.field_name().and_then(|name| name.parse::<usize>().ok()))
            .map_or(n, |at| at + 1);
        let mut values = Vec::with_capacity(len);
        let mut extra = Vec::new();
        let mut joined: Vec<(usize, Row)> = Vec::new();
        for i in 0..n {
            let Some(field) = row.get(i) else { continue };
            let name = field.field_name().unwrap_or_default();
            let v = match field.value() {
                None => Value::Null,
                Some(raw) => decode_value(raw)?,
            };
            if name.starts_with("__") {
                extra.push(v);
                continue;
            }
            // A joined parent's column: `"N.i"`, the `N`-th link's parent's `i`-th column.
            if let Some((link, col)) = name.split_once('.') {
                let (Ok(link), Ok(col)) = (link.parse::<usize>(), col.parse::<usize>()) else {
                    continue;
                };
                let parent = match joined.iter().position(|(p, _)| *p == link) {
                    Some(k) => k,
                    None => {
                        joined.push((link, Row::default()));
                        joined.len() - 1
                    }
                };
                if let Some((_, row)) = joined.get_mut(parent) {
                    place(&mut row.values, col, v);
                }
                continue;
            }
            // A column named by its position (a read of some columns only) goes in its place.
            match name.parse::<usize>() {
                Ok(at) => place(&mut values, at, v),
                Err(_) => values.push(v),
            }
        }
        Ok(Row {
            values,
            extra,
            joined,
        })
    }
}

/// Puts `v` at position `at`, the positions before it `NULL` until read.
fn place(values: &mut Vec<Value>, at: usize, v: Value) {
    if values.len() < at {
        values.resize(at, Value::Null);
    }
    if values.len() == at {
        values.push(v);
    } else if let Some(slot) = values.get_mut(at) {
        *slot = v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(ty: ColumnType) -> ColumnMeta {
        crate::graphql::aggregate::derived_column(0, "f", "f".into(), ty)
    }

    /// Plans write values as text; it must be the text async-graphql's values serialize to.
    #[test]
    fn written_values_are_the_serialized_values() {
        let when = |s: &str| s.parse::<DateTime<Utc>>().expect("a timestamp");
        let decimal = |s: &str| s.parse::<BigDecimal>().expect("a decimal");
        let cases: Vec<(ColumnType, Value)> = vec![
            (ColumnType::Text, Value::Null),
            (ColumnType::Text, Value::Text(String::new())),
            (
                ColumnType::Text,
                Value::Text(
                    "quote \" backslash \\ newline \n tab \t nul \u{0} é 🦀 </script>".into(),
                ),
            ),
            (ColumnType::Enum("status"), Value::Text("RUNNING".into())),
            (
                ColumnType::Uuid,
                Value::Uuid(Uuid::from_u128(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210)),
            ),
            (ColumnType::Int, Value::Int(i32::MIN)),
            (ColumnType::Int, Value::Int(i32::MAX)),
            (ColumnType::BigInt, Value::BigInt(i64::MIN)),
            (ColumnType::Float, Value::Float(1.0)),
            (ColumnType::Float, Value::Float(0.1)),
            (ColumnType::Float, Value::Float(-0.0)),
            (ColumnType::Float, Value::Float(1e300)),
            (ColumnType::Decimal, Value::Decimal(decimal("1234.5000"))),
            (ColumnType::Bool, Value::Bool(true)),
            (ColumnType::Bool, Value::Bool(false)),
            (
                ColumnType::DateTime,
                Value::DateTime(when("2026-01-02T03:04:05Z")),
            ),
            (
                ColumnType::DateTime,
                Value::DateTime(when("2026-01-02T03:04:05.123456Z")),
            ),
            (
                ColumnType::Json,
                Value::Json(serde_json::json!({ "b": [1, 2.5, null, "x\"y"], "a": { "c": true } })),
            ),
            (
                ColumnType::Text,
                Value::TextList(vec!["a".into(), "b\"".into()]),
            ),
            (
                ColumnType::Enum("status"),
                Value::TextList(vec!["A".into()]),
            ),
            (ColumnType::Int, Value::IntList(vec![1, -2])),
            (ColumnType::BigInt, Value::BigIntList(vec![i64::MAX])),
            (ColumnType::Float, Value::FloatList(vec![1.5])),
            (
                ColumnType::Decimal,
                Value::DecimalList(vec![decimal("0.10")]),
            ),
            (ColumnType::Uuid, Value::UuidList(vec![Uuid::nil()])),
            (
                ColumnType::DateTime,
                Value::DateTimeList(vec![when("2026-01-02T03:04:05Z")]),
            ),
        ];
        for (ty, v) in cases {
            let col = column(ty);
            let mut written = Vec::new();
            write_graphql_value(&mut written, &col, &v);
            let serialized = serde_json::to_vec(&graphql_value(&col, &v)).expect("serializes");
            assert_eq!(
                String::from_utf8_lossy(&written),
                String::from_utf8_lossy(&serialized),
                "{v:?}"
            );
        }
    }
}
