//! Custom scalars. 64-bit integers and decimals travel as strings so that JavaScript clients
//! never lose precision; both also accept a JSON number on input.

use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};
use bigdecimal::BigDecimal;

/// A 64-bit integer, serialized as a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BigInt(pub i64);

#[Scalar(name = "BigInt")]
impl ScalarType for BigInt {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(s) => s
                .parse()
                .map(BigInt)
                .map_err(|_| InputValueError::custom("BigInt must be a 64-bit integer")),
            Value::Number(n) => n
                .as_i64()
                .map(BigInt)
                .ok_or_else(|| InputValueError::custom("BigInt must be a 64-bit integer")),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.to_string())
    }
}

/// An arbitrary-precision decimal number, serialized as a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decimal(pub BigDecimal);

#[Scalar(name = "Decimal")]
impl ScalarType for Decimal {
    fn parse(value: Value) -> InputValueResult<Self> {
        let text = match &value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return Err(InputValueError::expected_type(value)),
        };
        let d = text
            .parse::<BigDecimal>()
            .map_err(|_| InputValueError::custom("Decimal must be a decimal number"))?;
        // PostgreSQL's numeric: up to 131072 digits before the point, 16383 after.
        let (digits, scale) = d.normalized().as_bigint_and_exponent();
        let integral = digits.to_string().trim_start_matches('-').len() as i64 - scale;
        if integral > 131_072 || scale > 16_383 {
            return Err(InputValueError::custom(
                "Decimal is beyond what can be stored (131072 digits before the point, 16383 after)",
            ));
        }
        Ok(Decimal(d))
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.normalized().to_string())
    }
}
