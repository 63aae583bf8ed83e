//! Checks and conversions of input values, shared by every input of the engine. Each error
//! names the input field it is about, as `path.field`.

use async_graphql::{Value as G, ID};
use bigdecimal::{BigDecimal, FromPrimitive};
use uuid::Uuid;

use crate::db::value::Value;
use crate::error::ApiError;
use crate::graphql::meta::{ColumnMeta, ColumnType};

pub fn at(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

pub fn id(v: &ID, path: &str, field: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(v.as_str()).map_err(|_| {
        ApiError::bad_input(
            at(path, field),
            format!("{} is not a valid ID", at(path, field)),
        )
    })
}

pub fn ids(v: &[ID], path: &str, field: &str) -> Result<Vec<Uuid>, ApiError> {
    v.iter()
        .enumerate()
        .map(|(i, x)| id(x, path, &format!("{field}[{i}]")))
        .collect()
}

pub fn text(
    v: String,
    path: &str,
    field: &str,
    min_len: Option<u32>,
    max_len: Option<u32>,
) -> Result<String, ApiError> {
    let len = v.chars().count();
    if let Some(max) = max_len {
        if len > max as usize {
            return Err(ApiError::bad_input(
                at(path, field),
                format!("{} is longer than {max} characters", at(path, field)),
            ));
        }
    }
    if let Some(min) = min_len {
        if len < min as usize {
            return Err(ApiError::bad_input(
                at(path, field),
                format!("{} is shorter than {min} characters", at(path, field)),
            ));
        }
    }
    no_nul(&v, path, field)?;
    Ok(v)
}

/// PostgreSQL text cannot hold NUL (U+0000): refused here rather than failing in the database.
pub fn no_nul(v: &str, path: &str, field: &str) -> Result<(), ApiError> {
    if v.contains('\0') {
        return Err(ApiError::bad_input(
            at(path, field),
            format!("{} contains a NUL character", at(path, field)),
        ));
    }
    Ok(())
}

/// A list of strings (each without NUL).
pub fn texts(v: Vec<String>, path: &str, field: &str) -> Result<Vec<String>, ApiError> {
    for (i, s) in v.iter().enumerate() {
        no_nul(s, path, &format!("{field}[{i}]"))?;
    }
    Ok(v)
}

/// A JSON value PostgreSQL's jsonb can store: no NUL in any key or string.
pub fn json(v: serde_json::Value, path: &str, field: &str) -> Result<serde_json::Value, ApiError> {
    if crate::db::value::json_has_nul(&v) {
        return Err(ApiError::bad_input(
            at(path, field),
            format!("{} contains a NUL character", at(path, field)),
        ));
    }
    Ok(v)
}

/// A list of floats (each finite).
pub fn floats(v: Vec<f64>, path: &str, field: &str) -> Result<Vec<f64>, ApiError> {
    for (i, x) in v.iter().enumerate() {
        float(*x, path, &format!("{field}[{i}]"), None, None)?;
    }
    Ok(v)
}

fn range(
    v: f64,
    path: &str,
    field: &str,
    min: Option<f64>,
    max: Option<f64>,
) -> Result<(), ApiError> {
    if min.is_some_and(|m| v < m) || max.is_some_and(|m| v > m) {
        let bounds = match (min, max) {
            (Some(a), Some(b)) => format!("between {a} and {b}"),
            (Some(a), None) => format!("at least {a}"),
            (None, Some(b)) => format!("at most {b}"),
            (None, None) => String::new(),
        };
        return Err(ApiError::bad_input(
            at(path, field),
            format!("{} must be {bounds}", at(path, field)),
        ));
    }
    Ok(())
}

pub fn int(
    v: i32,
    path: &str,
    field: &str,
    min: Option<f64>,
    max: Option<f64>,
) -> Result<i32, ApiError> {
    range(f64::from(v), path, field, min, max).map(|_| v)
}

pub fn bigint(
    v: i64,
    path: &str,
    field: &str,
    min: Option<f64>,
    max: Option<f64>,
) -> Result<i64, ApiError> {
    range(v as f64, path, field, min, max).map(|_| v)
}

pub fn float(
    v: f64,
    path: &str,
    field: &str,
    min: Option<f64>,
    max: Option<f64>,
) -> Result<f64, ApiError> {
    if !v.is_finite() {
        return Err(ApiError::bad_input(
            at(path, field),
            format!("{} must be finite", at(path, field)),
        ));
    }
    range(v, path, field, min, max).map(|_| v)
}

pub fn decimal(
    v: BigDecimal,
    path: &str,
    field: &str,
    min: Option<f64>,
    max: Option<f64>,
) -> Result<BigDecimal, ApiError> {
    let below = min.and_then(BigDecimal::from_f64).is_some_and(|m| v < m);
    let above = max.and_then(BigDecimal::from_f64).is_some_and(|m| v > m);
    if below || above {
        range(
            if below { f64::MIN } else { f64::MAX },
            path,
            field,
            min,
            max,
        )?;
    }
    Ok(v)
}

// ---------------------------------------------------------------- GraphQL values to columns

/// The fields of an input object, as given.
pub type Fields = async_graphql::indexmap::IndexMap<async_graphql::Name, G>;

/// An input object's fields; anything else is refused naming `at`.
pub fn object<'v>(v: &'v G, at: &str) -> Result<&'v Fields, ApiError> {
    match v {
        G::Object(o) => Ok(o),
        _ => Err(ApiError::bad_input(
            at,
            format!("{at} must be an input object"),
        )),
    }
}

/// An ID as GraphQL gives it: a string, or an integer.
pub fn id_of(v: &G) -> Option<ID> {
    match v {
        G::String(s) => Some(ID(s.clone())),
        G::Number(n) => Some(ID(n.to_string())),
        _ => None,
    }
}

fn wrong(at: &str, what: &str) -> ApiError {
    ApiError::bad_input(at, format!("{at} must be {what}"))
}

/// An ID: a string, or an integer (GraphQL allows both).
pub fn id_value(v: &G, at: &str) -> Result<Uuid, ApiError> {
    let text = match v {
        G::String(s) => s.clone(),
        G::Number(n) => n.to_string(),
        _ => return Err(wrong(at, "an ID")),
    };
    Uuid::parse_str(&text).map_err(|_| ApiError::bad_input(at, format!("{at} is not a valid ID")))
}

fn int_value(v: &G, at: &str) -> Result<i32, ApiError> {
    match v {
        G::Number(n) => n.as_i64().and_then(|n| i32::try_from(n).ok()),
        _ => None,
    }
    .ok_or_else(|| wrong(at, "a 32-bit integer"))
}

fn bigint_value(v: &G, at: &str) -> Result<i64, ApiError> {
    match v {
        G::String(s) => s.parse().ok(),
        G::Number(n) => n.as_i64(),
        _ => None,
    }
    .ok_or_else(|| wrong(at, "a 64-bit integer"))
}

fn float_value(v: &G, at: &str) -> Result<f64, ApiError> {
    match v {
        G::Number(n) => n.as_f64(),
        _ => None,
    }
    .ok_or_else(|| wrong(at, "a number"))
}

/// A decimal: a string or a number, within what PostgreSQL's numeric can hold.
pub fn decimal_value(v: &G, at: &str) -> Result<BigDecimal, ApiError> {
    let text = match v {
        G::String(s) => s.clone(),
        G::Number(n) => n.to_string(),
        _ => return Err(wrong(at, "a decimal number")),
    };
    let d = text
        .parse::<BigDecimal>()
        .map_err(|_| wrong(at, "a decimal number"))?;
    let (digits, scale) = d.normalized().as_bigint_and_exponent();
    let integral = digits.to_string().trim_start_matches('-').len() as i64 - scale;
    if integral > 131_072 || scale > 16_383 {
        return Err(ApiError::bad_input(
            at,
            format!(
                "{at} is beyond what can be stored (131072 digits before the point, 16383 after)"
            ),
        ));
    }
    Ok(d)
}

/// A date-time in RFC 3339.
pub fn datetime_value(v: &G, at: &str) -> Result<chrono::DateTime<chrono::Utc>, ApiError> {
    match v {
        G::String(s) => s.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| wrong(at, "a date-time in RFC 3339 format"))
}

fn text_value(col: &ColumnMeta, v: &G, at: &str) -> Result<String, ApiError> {
    match (v, col.ty) {
        (G::String(s), _) => Ok(s.clone()),
        (G::Enum(n), ColumnType::Enum(_)) => Ok(n.to_string()),
        _ => Err(wrong(at, "a string")),
    }
}

/// One element of the column's type (its element type for a list column), unchecked beyond
/// its type: what filters compare with.
pub fn element(col: &ColumnMeta, v: &G, at: &str) -> Result<Value, ApiError> {
    Ok(match col.ty {
        ColumnType::Uuid => Value::Uuid(id_value(v, at)?),
        ColumnType::Text | ColumnType::Enum(_) => Value::Text(text_value(col, v, at)?),
        ColumnType::Int => Value::Int(int_value(v, at)?),
        ColumnType::BigInt => Value::BigInt(bigint_value(v, at)?),
        ColumnType::Float => Value::Float(float_value(v, at)?),
        ColumnType::Decimal => Value::Decimal(decimal_value(v, at)?),
        ColumnType::Bool => match v {
            G::Boolean(b) => Value::Bool(*b),
            _ => return Err(wrong(at, "a boolean")),
        },
        ColumnType::DateTime => Value::DateTime(datetime_value(v, at)?),
        ColumnType::Json => Value::Json(v.clone().into_json().map_err(|_| wrong(at, "JSON"))?),
    })
}

/// A list of elements of the column's type, as one list value.
pub fn elements(col: &ColumnMeta, v: &G, at: &str) -> Result<Value, ApiError> {
    let G::List(items) = v else {
        return Err(wrong(at, "a list"));
    };
    let each = |i: usize, x: &G| element(col, x, &format!("{at}[{i}]"));
    macro_rules! collect {
        ($variant:ident, $pat:ident) => {{
            let mut out = Vec::with_capacity(items.len());
            for (i, x) in items.iter().enumerate() {
                match each(i, x)? {
                    Value::$pat(v) => out.push(v),
                    _ => return Err(wrong(at, "a list")),
                }
            }
            Value::$variant(out)
        }};
    }
    Ok(match col.ty {
        ColumnType::Uuid => collect!(UuidList, Uuid),
        ColumnType::Int => collect!(IntList, Int),
        ColumnType::BigInt => collect!(BigIntList, BigInt),
        ColumnType::Float => collect!(FloatList, Float),
        ColumnType::Decimal => collect!(DecimalList, Decimal),
        ColumnType::DateTime => collect!(DateTimeList, DateTime),
        ColumnType::Json => Value::Json(v.clone().into_json().map_err(|_| wrong(at, "JSON"))?),
        ColumnType::Text | ColumnType::Enum(_) => collect!(TextList, Text),
        // No filter or column takes a list of booleans.
        ColumnType::Bool => return Err(wrong(at, "a single boolean")),
    })
}

/// A value given for a column in a create or update input, with the catalog's checks:
/// lengths, bounds, finite numbers, no NUL characters.
pub fn column_value(col: &ColumnMeta, v: &G, path: &str) -> Result<Value, ApiError> {
    let field = col.field;
    let at = at(path, field);
    if col.list {
        let list = elements(col, v, &at)?;
        return Ok(match list {
            Value::TextList(l) => Value::TextList(texts(l, path, field)?),
            Value::FloatList(l) => Value::FloatList(floats(l, path, field)?),
            Value::Json(j) => Value::Json(json(j, path, field)?),
            other => other,
        });
    }
    let (min, max) = (col.min, col.max);
    Ok(match element(col, v, &at)? {
        Value::Text(s) if col.ty == ColumnType::Text => {
            Value::Text(text(s, path, field, col.min_length, col.max_length)?)
        }
        Value::Int(n) => Value::Int(int(n, path, field, min, max)?),
        Value::BigInt(n) => Value::BigInt(bigint(n, path, field, min, max)?),
        Value::Float(x) => Value::Float(float(x, path, field, min, max)?),
        Value::Decimal(d) => Value::Decimal(decimal(d, path, field, min, max)?),
        Value::Json(j) => Value::Json(json(j, path, field)?),
        other => other,
    })
}
