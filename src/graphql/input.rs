//! Checks and conversions of input values, shared by every generated input type. Each error
//! names the input field it is about, as `path.field`.

use async_graphql::{MaybeUndefined, ID};
use bigdecimal::{BigDecimal, FromPrimitive};
use uuid::Uuid;

use crate::error::ApiError;
use crate::graphql::scalars::{BigInt, Decimal};

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
    v: BigInt,
    path: &str,
    field: &str,
    min: Option<f64>,
    max: Option<f64>,
) -> Result<i64, ApiError> {
    range(v.0 as f64, path, field, min, max).map(|_| v.0)
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
    v: Decimal,
    path: &str,
    field: &str,
    min: Option<f64>,
    max: Option<f64>,
) -> Result<BigDecimal, ApiError> {
    let below = min.and_then(BigDecimal::from_f64).is_some_and(|m| v.0 < m);
    let above = max.and_then(BigDecimal::from_f64).is_some_and(|m| v.0 > m);
    if below || above {
        range(
            if below { f64::MIN } else { f64::MAX },
            path,
            field,
            min,
            max,
        )?;
    }
    Ok(v.0)
}

/// An update of a NOT NULL column: absent leaves it alone, null is refused.
pub fn patch<T, U>(
    v: MaybeUndefined<T>,
    path: &str,
    field: &str,
    convert: impl FnOnce(T) -> Result<U, ApiError>,
) -> Result<Option<U>, ApiError> {
    match v {
        MaybeUndefined::Undefined => Ok(None),
        MaybeUndefined::Null => Err(ApiError::bad_input(
            at(path, field),
            format!("{} cannot be null", at(path, field)),
        )),
        MaybeUndefined::Value(v) => convert(v).map(Some),
    }
}

/// An update of a nullable column: absent leaves it alone, null clears it.
pub fn patch_nullable<T, U>(
    v: MaybeUndefined<T>,
    _path: &str,
    _field: &str,
    convert: impl FnOnce(T) -> Result<U, ApiError>,
) -> Result<Option<Option<U>>, ApiError> {
    match v {
        MaybeUndefined::Undefined => Ok(None),
        MaybeUndefined::Null => Ok(Some(None)),
        MaybeUndefined::Value(v) => convert(v).map(|x| Some(Some(x))),
    }
}
