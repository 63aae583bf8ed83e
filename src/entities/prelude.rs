//! What the generated entity modules use (hand-written; the modules around it are generated).

// Not every generated module uses every import.
#![allow(unused_imports)]

pub use bigdecimal::BigDecimal;
pub use chrono::{DateTime, Utc};
pub use diesel::deserialize::FromSqlRow;
pub use diesel::expression::AsExpression;
pub use diesel::pg::Pg;
pub use diesel::prelude::*;
pub use serde::{Deserialize, Serialize};
pub use serde_json::Value as JsonValue;
pub use uuid::Uuid;

pub use crate::pg_enum;
