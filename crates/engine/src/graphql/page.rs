//! Relay connections with keyset cursors.
//!
//! A cursor holds the sort-key values of its row (and the sort it was made for), so the next
//! page is "rows after these values": a deep page costs what the first page costs, and rows
//! inserted meanwhile never shift a page.

use std::sync::atomic::{AtomicUsize, Ordering};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value as Json};

use crate::db::sql::{Filter, SortKey, SortOrder};
use crate::db::value::Value;
use crate::error::ApiError;
use crate::graphql::meta::EntityMeta;
use crate::graphql::row::Row;

/// Rows a list field without `first`/`last` is charged for (the configured default page size),
/// and the largest page. Set by `graphql::build`; complexity expressions cannot read
/// the schema's data, hence process-wide values, shared by every schema of the process.
static COST_DEFAULT_ROWS: AtomicUsize = AtomicUsize::new(50);
static COST_MAX_ROWS: AtomicUsize = AtomicUsize::new(500);

pub fn set_cost_rows(default: i32, max: i32) {
    COST_DEFAULT_ROWS.store(default.max(1) as usize, Ordering::Relaxed);
    COST_MAX_ROWS.store(max.max(1) as usize, Ordering::Relaxed);
}

/// The complexity of a list field (every list and hasMany field): what one
/// row's selection costs, times the rows the page may hold. Totals and page info are charged
/// per row too: a safe overestimate.
pub fn cost(first: Option<i32>, last: Option<i32>, child_complexity: usize) -> usize {
    let rows = match first.or(last) {
        // Beyond the largest page the resolver refuses `first` itself, with a clearer error.
        Some(n) if n as usize > COST_MAX_ROWS.load(Ordering::Relaxed) => {
            COST_DEFAULT_ROWS.load(Ordering::Relaxed)
        }
        Some(n) => n.max(0) as usize,
        None => COST_DEFAULT_ROWS.load(Ordering::Relaxed),
    };
    1usize.saturating_add(rows.saturating_mul(child_complexity.max(1)))
}

/// The Relay pagination arguments of a list field.
#[derive(Debug, Default, Clone)]
pub struct PageArgs {
    pub first: Option<i32>,
    pub after: Option<String>,
    pub last: Option<i32>,
    pub before: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct PageInfo {
    pub has_next_page: bool,
    pub has_previous_page: bool,
    pub start_cursor: Option<String>,
    pub end_cursor: Option<String>,
}

/// How to count the rows behind a page, should `totalCount` be asked for.
pub enum CountSource {
    /// Counted by the statement that read the page (when `totalCount` was selected).
    Known(i64),
    /// A root list: the scoped filter.
    Filter(Filter),
    /// A relation's page: one parent's share of a batched count.
    Child(crate::graphql::loaders::ChildCount),
}

/// A row of a page and its cursor.
pub struct Edge {
    pub cursor: String,
    pub node: Row,
}

/// A Relay connection's page as its GraphQL types read it: rows of entities, or groups.
pub trait Connection: std::any::Any + Send + Sync {
    type Edge: ConnectionEdge;
    fn edges(&self) -> &[Self::Edge];
    fn info(&self) -> &PageInfo;
}

/// One edge of a [`Connection`].
pub trait ConnectionEdge: std::any::Any + Send + Sync {
    type Node: std::any::Any + Send + Sync;
    fn cursor(&self) -> &str;
    fn node(&self) -> &Self::Node;
}

impl Connection for Page {
    type Edge = Edge;
    fn edges(&self) -> &[Edge] {
        &self.edges
    }
    fn info(&self) -> &PageInfo {
        &self.info
    }
}

impl ConnectionEdge for Edge {
    type Node = Row;
    fn cursor(&self) -> &str {
        &self.cursor
    }
    fn node(&self) -> &Row {
        &self.node
    }
}

/// One page of rows with their cursors, and how to count all of them.
pub struct Page {
    pub meta: &'static EntityMeta,
    pub edges: Vec<Edge>,
    pub info: PageInfo,
    pub count: CountSource,
}

/// A row of a sorted page, with the values of its sort keys that lie in related rows (the
/// `__keys` column written by `SqlBuilder::foreign_key_values`, the row's JSON extra).
#[derive(Clone)]
pub struct Keyed {
    pub row: Row,
    foreign: Vec<Json>,
}

impl From<Row> for Keyed {
    fn from(mut row: Row) -> Self {
        let foreign = row
            .extra
            .iter_mut()
            .find_map(|v| match v {
                Value::Json(Json::Array(values)) => Some(std::mem::take(values)),
                _ => None,
            })
            .unwrap_or_default();
        Keyed { row, foreign }
    }
}

impl Keyed {
    /// The `__total` a statement counted with the page (its first integer extra).
    pub fn total(&self) -> Option<i64> {
        self.row.extra.iter().find_map(|v| match v {
            Value::BigInt(n) => Some(*n),
            _ => None,
        })
    }

    /// The row's value for each key, for its cursor.
    pub fn key_values(&self, keys: &[SortKey]) -> Vec<Value> {
        let mut foreign = self.foreign.iter();
        keys.iter()
            .map(|k| {
                if k.is_local() {
                    self.row.get(k.col).clone()
                } else {
                    foreign
                        .next()
                        .and_then(|v| Value::from_json(k.col.ty, v))
                        .unwrap_or(Value::Null)
                }
            })
            .collect()
    }
}

/// Sort keys as `column:A` (through relations `fk>column:A`), so a cursor made for another
/// order is refused.
fn signature(keys: &[SortKey]) -> Vec<String> {
    keys.iter()
        .map(|k| {
            let mut s = String::new();
            for hop in &k.hops {
                s.push_str(hop.link.outer.column);
                s.push('>');
            }
            s.push_str(k.col.column);
            s.push_str(match k.dir {
                SortOrder::Asc => ":A",
                SortOrder::Desc => ":D",
            });
            s
        })
        .collect()
}

pub fn encode_cursor(keys: &[SortKey], values: &[Value]) -> String {
    let v: Vec<Json> = values.iter().map(Value::to_json).collect();
    let doc = json!({ "k": signature(keys), "v": v });
    URL_SAFE_NO_PAD.encode(doc.to_string())
}

pub fn decode_cursor(keys: &[SortKey], cursor: &str, arg: &str) -> Result<Vec<Value>, ApiError> {
    let bad = || ApiError::bad_input(arg, format!("{arg} is not a cursor of this list and order"));
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor.as_bytes())
        .map_err(|_| bad())?;
    let doc: Json = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let sig: Vec<String> = doc
        .get("k")
        .and_then(|k| serde_json::from_value(k.clone()).ok())
        .ok_or_else(bad)?;
    if sig != signature(keys) {
        return Err(bad());
    }
    let values = doc.get("v").and_then(Json::as_array).ok_or_else(bad)?;
    if values.len() != keys.len() {
        return Err(bad());
    }
    keys.iter()
        .zip(values)
        .map(|(k, v)| Value::from_json(k.col.ty, v).ok_or_else(bad))
        .collect()
}
