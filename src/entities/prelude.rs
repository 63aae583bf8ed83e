//! What the generated entity modules use (hand-written; the modules around it are generated).

// Not every generated module uses every filter type.
#![allow(unused_imports)]

pub use async_graphql::{Context, Enum, InputObject, MaybeUndefined, Object, ID};
pub use bigdecimal::BigDecimal;
pub use chrono::{DateTime, Utc};
pub use diesel::pg::Pg;
pub use diesel::prelude::*;
pub use diesel::deserialize::FromSqlRow;
pub use diesel::expression::AsExpression;
pub use diesel_async::RunQueryDsl;
pub use futures::FutureExt;
pub use serde::{Deserialize, Serialize};
pub use serde_json::Value as JsonValue;
pub use uuid::Uuid;

pub use crate::db::sql::{Filter, SortKey, SortOrder};
pub use crate::db::value::Value;
pub use crate::db::{Conn, DbFuture};
pub use crate::error::{ApiError, GqlResult};
pub use crate::graphql::crud::{self, Entity, Never, WriteScope, Writable};
pub use crate::graphql::filter::{
    combinators, enum_filter, order_field, order_parent, push_child, push_children, push_field,
    push_parent, BigIntFilter, BooleanFilter, DateTimeFilter, DecimalFilter, EnumFilterParts,
    FieldFilter, FloatFilter, IdFilter, IdListFilter, IntFilter, IntListFilter, JsonFilter,
    OrderInput, StringFilter, StringListFilter, WhereInput,
};
pub use crate::graphql::input;
pub use crate::graphql::meta::{
    AclMeta, AclRole, ColumnMeta, ColumnType, EntityMeta, EntityScope, RelationMeta,
};
pub use crate::graphql::page::PageArgs;
pub use crate::graphql::scalars::{BigInt, Decimal};
pub use crate::{change_type, connection_types, list_relation_filter, pg_enum};
