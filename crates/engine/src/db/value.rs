//! A dynamically typed SQL value: what filters, cursors and unique keys carry to the SQL
//! builder, which binds it with its exact PostgreSQL type.

use bigdecimal::BigDecimal;
use chrono::{DateTime, Utc};
use serde_json::Value as Json;
use uuid::Uuid;

use crate::graphql::meta::ColumnType;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Uuid(Uuid),
    Text(String),
    Int(i32),
    BigInt(i64),
    Float(f64),
    Decimal(BigDecimal),
    Bool(bool),
    DateTime(DateTime<Utc>),
    Json(Json),
    UuidList(Vec<Uuid>),
    TextList(Vec<String>),
    IntList(Vec<i32>),
    BigIntList(Vec<i64>),
    FloatList(Vec<f64>),
    DecimalList(Vec<BigDecimal>),
    DateTimeList(Vec<DateTime<Utc>>),
}

impl Value {
    /// How many values a list holds (0 for a single value).
    pub fn list_len(&self) -> usize {
        match self {
            Value::UuidList(v) => v.len(),
            Value::TextList(v) => v.len(),
            Value::IntList(v) => v.len(),
            Value::BigIntList(v) => v.len(),
            Value::FloatList(v) => v.len(),
            Value::DecimalList(v) => v.len(),
            Value::DateTimeList(v) => v.len(),
            _ => 0,
        }
    }
}

/// Whether a JSON value holds NUL (U+0000) in a key or string: jsonb cannot store it.
pub fn json_has_nul(v: &Json) -> bool {
    match v {
        Json::String(s) => s.contains('\0'),
        Json::Array(a) => a.iter().any(json_has_nul),
        Json::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || json_has_nul(v)),
        _ => false,
    }
}

impl Value {
    /// Whether the value holds a NUL character, which PostgreSQL's text and jsonb cannot.
    pub fn has_nul(&self) -> bool {
        match self {
            Value::Text(s) => s.contains('\0'),
            Value::TextList(l) => l.iter().any(|s| s.contains('\0')),
            Value::Json(j) => json_has_nul(j),
            _ => false,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// JSON form used inside cursors.
    pub fn to_json(&self) -> Json {
        match self {
            Value::Null => Json::Null,
            Value::Uuid(v) => Json::String(v.to_string()),
            Value::Text(v) => Json::String(v.clone()),
            Value::Int(v) => Json::from(*v),
            Value::BigInt(v) => Json::String(v.to_string()),
            Value::Float(v) => Json::from(*v),
            Value::Decimal(v) => Json::String(v.to_string()),
            Value::Bool(v) => Json::Bool(*v),
            Value::DateTime(v) => {
                Json::String(v.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
            }
            other => Json::String(format!("{other:?}")),
        }
    }

    /// Reads a cursor's JSON back with the column's type; `None` when it does not fit.
    pub fn from_json(ty: ColumnType, v: &Json) -> Option<Value> {
        if v.is_null() {
            return Some(Value::Null);
        }
        Some(match ty {
            ColumnType::Uuid => Value::Uuid(v.as_str()?.parse().ok()?),
            ColumnType::Text | ColumnType::Enum(_) => Value::Text(v.as_str()?.to_string()),
            ColumnType::Int => Value::Int(i32::try_from(v.as_i64()?).ok()?),
            ColumnType::BigInt => Value::BigInt(v.as_str()?.parse().ok()?),
            ColumnType::Float => Value::Float(v.as_f64()?),
            ColumnType::Decimal => Value::Decimal(v.as_str()?.parse().ok()?),
            ColumnType::Bool => Value::Bool(v.as_bool()?),
            ColumnType::DateTime => Value::DateTime(
                DateTime::parse_from_rfc3339(v.as_str()?)
                    .ok()?
                    .with_timezone(&Utc),
            ),
            ColumnType::Json => return None,
        })
    }
}

macro_rules! value_from {
    ($($t:ty => $variant:ident),* $(,)?) => {
        $(
            impl From<$t> for Value {
                fn from(v: $t) -> Self {
                    Value::$variant(v)
                }
            }
        )*
    };
}

value_from!(
    Uuid => Uuid,
    String => Text,
    i32 => Int,
    i64 => BigInt,
    f64 => Float,
    BigDecimal => Decimal,
    bool => Bool,
    DateTime<Utc> => DateTime,
    Json => Json,
    Vec<Uuid> => UuidList,
    Vec<String> => TextList,
    Vec<i32> => IntList,
);

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}
