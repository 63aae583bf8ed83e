//! A statement the SQL builder wrote, run as a prepared statement that each connection keeps.
//!
//! Diesel never caches `sql_query` text, so every statement used to cost a Parse/Describe
//! round trip before its Bind/Execute, and PostgreSQL planned it afresh. A [`Statement`] is
//! marked cacheable instead: the connection prepares its text once and then binds and runs it
//! in one round trip. The text is stable per query shape (identifiers come from the catalog,
//! values are bound), but a client choosing filters can make many shapes, and each cached
//! shape costs memory on every pooled connection and in its PostgreSQL backend. So only the
//! first [`MAX_SHAPES`] distinct texts the process sees are cached; later ones still run,
//! unprepared as before.

use std::collections::HashSet;
use std::hash::BuildHasher;
use std::sync::{LazyLock, Mutex};

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::result::QueryResult;
use diesel::sql_types::{
    Array, Bool, Float8, Int4, Int8, Jsonb, Nullable, Numeric, Text, Timestamptz, Untyped,
    Uuid as SqlUuid,
};

use crate::db::value::Value;

/// Distinct statement texts prepared and kept per connection: a few per entity and operation
/// in practice; the bound keeps a client inventing filter shapes from growing every
/// connection's cache without limit.
pub const MAX_SHAPES: usize = 256;

/// The hashes of the texts admitted to the connections' caches.
static SHAPES: LazyLock<Mutex<(HashSet<u64>, std::hash::RandomState)>> =
    LazyLock::new(|| Mutex::new((HashSet::new(), std::hash::RandomState::new())));

/// Whether statements of this text are kept prepared (admitting it while there is room).
fn admitted(sql: &str) -> bool {
    let Ok(mut shapes) = SHAPES.lock() else {
        return false;
    };
    let (set, state) = &mut *shapes;
    let key = state.hash_one(sql);
    if set.contains(&key) {
        return true;
    }
    if set.len() >= MAX_SHAPES {
        return false;
    }
    set.insert(key)
}

/// SQL text with its bind values, placeholders `$1..$n` in order.
#[derive(Debug)]
pub struct Statement {
    sql: String,
    /// Where each placeholder starts in `sql`, and its length.
    marks: Vec<(usize, usize)>,
    binds: Vec<Value>,
    cache: bool,
}

impl Statement {
    /// `marks[i]` is the span of the placeholder of `binds[i]`.
    pub(crate) fn new(sql: String, marks: Vec<(usize, usize)>, binds: Vec<Value>) -> Self {
        let cache = admitted(&sql);
        Statement {
            sql,
            marks,
            binds,
            cache,
        }
    }

    /// A fixed statement without binds (transaction control).
    pub fn fixed(sql: &'static str) -> Self {
        Statement {
            sql: sql.to_string(),
            marks: Vec::new(),
            binds: Vec::new(),
            cache: true,
        }
    }
}

impl QueryFragment<Pg> for Statement {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        if !self.cache {
            out.unsafe_to_cache_prepared();
        }
        // Pg numbers the placeholders it writes for binds in order, as the builder did.
        let mut at = 0;
        for (&(start, len), value) in self.marks.iter().zip(&self.binds) {
            out.push_sql(self.sql.get(at..start).unwrap_or_default());
            push_bind(&mut out, value)?;
            at = start + len;
        }
        out.push_sql(self.sql.get(at..).unwrap_or_default());
        Ok(())
    }
}

fn push_bind<'b>(out: &mut AstPass<'_, 'b, Pg>, value: &'b Value) -> QueryResult<()> {
    match value {
        Value::Null => out.push_bind_param::<Nullable<Text>, _>(&None::<String>),
        Value::Uuid(v) => out.push_bind_param::<SqlUuid, _>(v),
        Value::Text(v) => out.push_bind_param::<Text, _>(v),
        Value::Int(v) => out.push_bind_param::<Int4, _>(v),
        Value::BigInt(v) => out.push_bind_param::<Int8, _>(v),
        Value::Float(v) => out.push_bind_param::<Float8, _>(v),
        Value::Decimal(v) => out.push_bind_param::<Numeric, _>(v),
        Value::Bool(v) => out.push_bind_param::<Bool, _>(v),
        Value::DateTime(v) => out.push_bind_param::<Timestamptz, _>(v),
        Value::Json(v) => out.push_bind_param::<Jsonb, _>(v),
        Value::UuidList(v) => out.push_bind_param::<Array<SqlUuid>, _>(v),
        Value::TextList(v) => out.push_bind_param::<Array<Text>, _>(v),
        Value::IntList(v) => out.push_bind_param::<Array<Int4>, _>(v),
        Value::BigIntList(v) => out.push_bind_param::<Array<Int8>, _>(v),
        Value::FloatList(v) => out.push_bind_param::<Array<Float8>, _>(v),
        Value::DecimalList(v) => out.push_bind_param::<Array<Numeric>, _>(v),
        Value::DateTimeList(v) => out.push_bind_param::<Array<Timestamptz>, _>(v),
    }
}

// The cache is keyed by the SQL text and bind types: no static query id.
impl QueryId for Statement {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for Statement {
    type SqlType = Untyped;
}
