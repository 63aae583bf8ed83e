//! SQL text for the generic reads: a filter tree, ordering and keyset conditions written over
//! the catalog's column metadata, values always bound as parameters.
//!
//! Identifiers come only from the catalog's metadata (never from a request), so quoting them is
//! enough; every value a client sends is a bind parameter.

use std::fmt::Write;

use crate::db::statement::Statement;
use crate::db::value::Value;
use crate::graphql::columns::ColumnSet;
use crate::graphql::meta::{ColumnMeta, ColumnType, EntityMeta};

/// How a row reaches related rows: `target.inner = outer_row.outer`.
#[derive(Clone, Copy)]
pub struct Link {
    pub target: &'static EntityMeta,
    /// Column of the row we come from.
    pub outer: &'static ColumnMeta,
    /// Column of the target row.
    pub inner: &'static ColumnMeta,
}

// Short, because filters' debug text keys the loaders' batches.
impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}.{}={}",
            self.target.table, self.inner.column, self.outer.column
        )
    }
}

/// Which related rows must match a relation filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantifier {
    /// At least one (a `belongsTo` / `hasOne` condition, or `some`).
    Some,
    /// All of them (vacuously true without related rows).
    Every,
    /// Not one.
    None,
}

/// One step of a sort key through a `belongsTo` relation.
#[derive(Debug, Clone)]
pub struct Hop {
    pub link: Link,
    /// The target rows the caller may read; `None` until the caller's scope is applied, and
    /// then treated as "no row", so an unscoped hop can never reveal anything.
    pub scope: Option<Box<Filter>>,
}

/// One ORDER BY key: a column of the row itself, or of a row it references.
#[derive(Debug, Clone)]
pub struct SortKey {
    pub hops: Vec<Hop>,
    pub col: &'static ColumnMeta,
    pub dir: SortOrder,
}

impl SortKey {
    pub fn new(col: &'static ColumnMeta, dir: SortOrder) -> Self {
        SortKey {
            hops: Vec::new(),
            col,
            dir,
        }
    }
    pub fn reversed(&self) -> SortKey {
        SortKey {
            dir: self.dir.reversed(),
            ..self.clone()
        }
    }
    pub fn is_local(&self) -> bool {
        self.hops.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    /// `IS DISTINCT FROM`: rows where the column is null count as different.
    Ne,
    Lt,
    Lte,
    Gt,
    Gte,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextMatch {
    Contains,
    StartsWith,
    EndsWith,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonOp {
    Equals,
    NotEquals,
    /// `@>`
    Contains,
    /// `<@`
    ContainedBy,
    /// `?`
    HasKey,
    /// `?|`
    HasAnyKeys,
    /// `?&`
    HasAllKeys,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArrayOp {
    /// value = ANY(column)
    Has,
    /// column @> values
    HasEvery,
    /// column && values
    HasSome,
    Equals,
}

/// A boolean condition over one entity's columns.
#[derive(Debug, Clone)]
pub enum Filter {
    True,
    False,
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    Cmp {
        col: &'static ColumnMeta,
        op: CmpOp,
        value: Value,
        insensitive: bool,
    },
    In {
        col: &'static ColumnMeta,
        values: Value,
        negated: bool,
    },
    Text {
        col: &'static ColumnMeta,
        how: TextMatch,
        needle: String,
        insensitive: bool,
    },
    IsNull {
        col: &'static ColumnMeta,
        is_null: bool,
    },
    Json {
        col: &'static ColumnMeta,
        path: Option<Vec<String>>,
        op: JsonOp,
        value: Value,
    },
    Array {
        col: &'static ColumnMeta,
        op: ArrayOp,
        value: Value,
    },
    ArrayEmpty {
        col: &'static ColumnMeta,
        empty: bool,
    },
    /// A condition on related rows (`EXISTS` / `NOT EXISTS`).
    Related {
        link: Link,
        quantifier: Quantifier,
        filter: Box<Filter>,
        /// The related rows the caller may read; `None` (not yet scoped) means none.
        scope: Option<Box<Filter>>,
    },
}

impl Filter {
    pub fn and(parts: Vec<Filter>) -> Filter {
        let parts: Vec<Filter> = parts
            .into_iter()
            .filter(|p| !matches!(p, Filter::True))
            .collect();
        match parts.len() {
            0 => Filter::True,
            1 => parts.into_iter().next().unwrap_or(Filter::True),
            _ => Filter::And(parts),
        }
    }
    pub fn eq(col: &'static ColumnMeta, value: Value) -> Filter {
        Filter::Cmp {
            col,
            op: CmpOp::Eq,
            value,
            insensitive: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortOrder {
    Asc,
    Desc,
}

impl SortOrder {
    pub fn reversed(self) -> SortOrder {
        match self {
            SortOrder::Asc => SortOrder::Desc,
            SortOrder::Desc => SortOrder::Asc,
        }
    }
}

/// Accumulates SQL text and its bind values, numbering placeholders.
#[derive(Default, Clone)]
pub struct SqlBuilder {
    pub sql: String,
    binds: Vec<Value>,
    /// Where each bind's placeholder is in `sql`.
    marks: Vec<(usize, usize)>,
    /// Nesting of relation subqueries: the row at depth 0 is `t`, related rows `t1`, `t2`...
    depth: usize,
}

impl SqlBuilder {
    pub fn new(sql: &str) -> Self {
        SqlBuilder {
            sql: sql.to_string(),
            binds: Vec::new(),
            marks: Vec::new(),
            depth: 0,
        }
    }

    pub fn push(&mut self, s: &str) -> &mut Self {
        self.sql.push_str(s);
        self
    }

    /// Appends a placeholder for `value`, cast to the column's enum type where needed.
    pub fn bind(&mut self, value: Value, ty: ColumnType, list: bool) -> &mut Self {
        if value.is_null() {
            // An untyped NULL takes the type of whatever it is written into; a bound one
            // would be text, which a jsonb or uuid column refuses.
            self.sql.push_str("NULL");
            return self;
        }
        self.placeholder(value);
        match ty {
            ColumnType::Enum(name) if list => write!(self.sql, "::\"{name}\"[]").ok(),
            ColumnType::Enum(name) => write!(self.sql, "::\"{name}\"").ok(),
            _ => None,
        };
        self
    }

    /// `$n` for `value`, the next bind.
    fn placeholder(&mut self, value: Value) {
        self.binds.push(value);
        let n = self.binds.len();
        let start = self.sql.len();
        write!(self.sql, "${n}").ok();
        self.marks.push((start, self.sql.len() - start));
    }

    /// Appends `other`'s text (a statement used as a subquery), its placeholders numbered
    /// after this builder's.
    pub fn embed(&mut self, other: &SqlBuilder) -> &mut Self {
        let mut at = 0;
        for (&(start, len), value) in other.marks.iter().zip(&other.binds) {
            self.sql
                .push_str(other.sql.get(at..start).unwrap_or_default());
            self.placeholder(value.clone());
            at = start + len;
        }
        self.sql.push_str(other.sql.get(at..).unwrap_or_default());
        self
    }

    /// ` LIMIT $n`: bound, so that pages of every size are one prepared statement.
    pub fn limit(&mut self, n: i64) -> &mut Self {
        self.push(" LIMIT ");
        self.bind(Value::BigInt(n), ColumnType::BigInt, false)
    }

    /// The statement and its bind values as text: equal fingerprints, equal statements.
    pub fn fingerprint(&self) -> String {
        format!("{} {:?}", self.sql, self.binds)
    }

    /// The statement to run, prepared once per connection where its shape allows.
    pub fn into_query(self) -> Statement {
        Statement::new(self.sql, self.marks, self.binds)
    }

    fn alias(&self) -> String {
        match self.depth {
            0 => "t".to_string(),
            n => format!("t{n}"),
        }
    }

    pub fn column(&mut self, col: &ColumnMeta) -> &mut Self {
        let alias = self.alias();
        write!(self.sql, "{alias}.\"{}\"", col.column).ok();
        self
    }

    /// `(SELECT <select> FROM <target> tN WHERE tN.inner = t.outer AND <scope><rest>)`, with
    /// `select` and `rest` written over the related row.
    fn related(
        &mut self,
        link: &Link,
        scope: Option<&Filter>,
        select: impl FnOnce(&mut Self),
        rest: impl FnOnce(&mut Self),
    ) {
        let outer = self.alias();
        self.depth += 1;
        let inner = self.alias();
        self.push("(SELECT ");
        select(self);
        write!(
            self.sql,
            " FROM \"{}\" {inner} WHERE {inner}.\"{}\" = {outer}.\"{}\" AND ",
            link.target.table, link.inner.column, link.outer.column
        )
        .ok();
        self.filter(scope.unwrap_or(&Filter::False));
        rest(self);
        self.push(")");
        self.depth -= 1;
    }

    /// The value a sort key orders by: a column, or a scalar subquery through its hops.
    pub fn key(&mut self, key: &SortKey) -> &mut Self {
        self.key_through(&key.hops, key.col);
        self
    }

    fn key_through(&mut self, hops: &[Hop], col: &ColumnMeta) {
        match hops.split_first() {
            None => {
                self.column(col);
            }
            Some((hop, rest)) => self.related(
                &hop.link,
                hop.scope.as_deref(),
                |b| b.key_through(rest, col),
                |_| {},
            ),
        }
    }

    /// `, jsonb_build_array(...) AS "__keys"`: the values of the keys that are not columns of
    /// the row itself, for the cursors (see `Keyed`).
    /// Nothing when every key is the row's own.
    pub fn foreign_key_values(&mut self, keys: &[SortKey]) -> &mut Self {
        if keys.iter().all(SortKey::is_local) {
            return self;
        }
        self.push(", jsonb_build_array(");
        for (i, k) in keys.iter().filter(|k| !k.is_local()).enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.key(k);
            // JSON numbers would lose digits; cursors carry these as strings.
            if matches!(k.col.ty, ColumnType::BigInt | ColumnType::Decimal) {
                self.push("::text");
            }
        }
        self.push(") AS \"__keys\"");
        self
    }

    /// The select list of an entity's row: its exposed columns in order (what `Row` decodes),
    /// enums as their labels' text so that one decoder reads every entity.
    pub fn select_list(&mut self, meta: &EntityMeta) -> &mut Self {
        self.select_columns(meta, None)
    }

    /// The same with only the columns in `only` read (and the id, always), each named by its
    /// position in the metadata (`Row` puts it in its place); a compact set's keep their names.
    pub fn select_columns(&mut self, meta: &EntityMeta, only: Option<&ColumnSet>) -> &mut Self {
        self.select_named(meta, only, None);
        for (at, _) in only.map(ColumnSet::parents).unwrap_or_default() {
            write!(self.sql, ", \"__j{at}\".*").ok();
        }
        self
    }

    /// ` LEFT JOIN LATERAL (...) "__jN" ON TRUE` for each parent `set` joins (see
    /// [`ColumnSet::join`]): the parent the row's reference points to, if `scope` (the
    /// caller's read scope of the parent's entity) lets it be read, its columns named
    /// `"N.i"` (`Row` keeps them as the row's `joined`). Written after `FROM <table> t`.
    pub fn join_parents(
        &mut self,
        meta: &EntityMeta,
        set: &ColumnSet,
        scope: impl Fn(&'static EntityMeta) -> Filter,
    ) -> &mut Self {
        let links = crate::graphql::meta::metadata().links(meta);
        for (at, columns) in set.parents() {
            let Some(link) = links.get(*at) else {
                continue;
            };
            let outer = self.alias();
            self.depth += 1;
            let inner = self.alias();
            self.push(" LEFT JOIN LATERAL (SELECT ");
            self.select_named(link.target, Some(columns), Some(*at));
            write!(
                self.sql,
                " FROM \"{}\" {inner} WHERE {inner}.\"{}\" = {outer}.\"{}\" AND ",
                link.target.table,
                link.target.id_column().column,
                link.fk.column
            )
            .ok();
            self.filter(&scope(link.target));
            write!(self.sql, ") \"__j{at}\" ON TRUE").ok();
            self.depth -= 1;
        }
        self
    }

    /// The select list of [`Self::select_columns`], over the row at this depth; `joined`
    /// names each column `"N.i"` instead of `"i"`, for the parent of the `N`-th link.
    fn select_named(&mut self, meta: &EntityMeta, only: Option<&ColumnSet>, joined: Option<usize>) {
        let alias = self.alias();
        let mut first = true;
        for (i, c) in meta.columns.iter().enumerate() {
            let by_position = match only {
                None => false,
                Some(set) if i > 0 && !set.contains(i) => continue,
                Some(set) => !set.is_compact(),
            };
            if !first {
                self.sql.push_str(", ");
            }
            first = false;
            let cast = match (c.ty, c.list) {
                (ColumnType::Enum(_), false) => "::text",
                (ColumnType::Enum(_), true) => "::text[]",
                _ => "",
            };
            write!(self.sql, "{alias}.\"{}\"{cast} AS ", c.column).ok();
            match (joined, by_position) {
                (Some(at), _) => write!(self.sql, "\"{at}.{i}\""),
                (None, true) => write!(self.sql, "\"{i}\""),
                (None, false) => write!(self.sql, "\"{}\"", c.column),
            }
            .ok();
        }
    }

    pub fn filter(&mut self, f: &Filter) -> &mut Self {
        match f {
            Filter::True => {
                self.push("TRUE");
            }
            Filter::False => {
                self.push("FALSE");
            }
            Filter::And(parts) | Filter::Or(parts) => {
                let joiner = if matches!(f, Filter::And(_)) {
                    " AND "
                } else {
                    " OR "
                };
                if parts.is_empty() {
                    self.push(if matches!(f, Filter::And(_)) {
                        "TRUE"
                    } else {
                        "FALSE"
                    });
                    return self;
                }
                self.push("(");
                for (i, p) in parts.iter().enumerate() {
                    if i > 0 {
                        self.push(joiner);
                    }
                    self.filter(p);
                }
                self.push(")");
            }
            Filter::Not(inner) => {
                // NOT over SQL's three-valued logic: a row whose condition is unknown (null)
                // does not match the inner filter, so it matches its negation.
                self.push("(NOT coalesce(");
                self.filter(inner);
                self.push(", FALSE))");
            }
            Filter::Cmp {
                col,
                op,
                value,
                insensitive,
            } => {
                if *insensitive {
                    self.push("lower(").column(col).push(")");
                } else {
                    self.column(col);
                }
                self.push(match op {
                    CmpOp::Eq => " = ",
                    CmpOp::Ne => " IS DISTINCT FROM ",
                    CmpOp::Lt => " < ",
                    CmpOp::Lte => " <= ",
                    CmpOp::Gt => " > ",
                    CmpOp::Gte => " >= ",
                });
                if *insensitive {
                    self.push("lower(")
                        .bind(value.clone(), col.ty, false)
                        .push(")");
                } else {
                    self.bind(value.clone(), col.ty, false);
                }
            }
            Filter::In {
                col,
                values,
                negated,
            } => {
                if *negated {
                    self.push("(").column(col).push(" IS NULL OR NOT (");
                    self.column(col).push(" = ANY(");
                    self.bind(values.clone(), col.ty, true).push(")))");
                } else {
                    self.column(col).push(" = ANY(");
                    self.bind(values.clone(), col.ty, true).push(")");
                }
            }
            Filter::Text {
                col,
                how,
                needle,
                insensitive,
            } => {
                let escaped = needle
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_");
                let pattern = match how {
                    TextMatch::Contains => format!("%{escaped}%"),
                    TextMatch::StartsWith => format!("{escaped}%"),
                    TextMatch::EndsWith => format!("%{escaped}"),
                };
                self.column(col);
                self.push(if *insensitive { " ILIKE " } else { " LIKE " });
                self.bind(Value::Text(pattern), ColumnType::Text, false);
            }
            Filter::IsNull { col, is_null } => {
                self.column(col);
                self.push(if *is_null { " IS NULL" } else { " IS NOT NULL" });
            }
            Filter::Json {
                col,
                path,
                op,
                value,
            } => {
                self.push("(");
                self.column(col);
                if let Some(p) = path {
                    self.push(" #> ");
                    self.bind(Value::TextList(p.clone()), ColumnType::Text, true);
                }
                self.push(")");
                match op {
                    JsonOp::Equals => self.push(" = "),
                    JsonOp::NotEquals => self.push(" IS DISTINCT FROM "),
                    JsonOp::Contains => self.push(" @> "),
                    JsonOp::ContainedBy => self.push(" <@ "),
                    JsonOp::HasKey => self.push(" ? "),
                    JsonOp::HasAnyKeys => self.push(" ?| "),
                    JsonOp::HasAllKeys => self.push(" ?& "),
                };
                let ty = match value {
                    Value::Text(_) | Value::TextList(_) => ColumnType::Text,
                    _ => ColumnType::Json,
                };
                self.bind(value.clone(), ty, matches!(value, Value::TextList(_)));
            }
            Filter::Array { col, op, value } => match op {
                ArrayOp::Has => {
                    self.bind(value.clone(), col.ty, false).push(" = ANY(");
                    self.column(col).push(")");
                }
                ArrayOp::HasEvery | ArrayOp::HasSome | ArrayOp::Equals => {
                    self.column(col);
                    self.push(match op {
                        ArrayOp::HasEvery => " @> ",
                        ArrayOp::HasSome => " && ",
                        _ => " = ",
                    });
                    self.bind(value.clone(), col.ty, true);
                }
            },
            Filter::ArrayEmpty { col, empty } => {
                self.push("cardinality(").column(col);
                self.push(if *empty { ") = 0" } else { ") > 0" });
            }
            Filter::Related {
                link,
                quantifier,
                filter,
                scope,
            } => {
                self.push(match quantifier {
                    Quantifier::Some => "EXISTS ",
                    Quantifier::Every | Quantifier::None => "NOT EXISTS ",
                });
                let every = *quantifier == Quantifier::Every;
                self.related(
                    link,
                    scope.as_deref(),
                    |b| {
                        b.push("1");
                    },
                    |b| {
                        // `every` = no readable related row that fails the condition.
                        b.push(if every {
                            " AND NOT coalesce("
                        } else {
                            " AND ("
                        });
                        b.filter(filter);
                        b.push(if every { ", FALSE)" } else { ")" });
                    },
                );
            }
        }
        self
    }

    /// ORDER BY for the given keys. Nulls sort as the largest value in both directions
    /// (PostgreSQL's default), which the keyset conditions below rely on.
    pub fn order_by(&mut self, keys: &[SortKey]) -> &mut Self {
        self.push(" ORDER BY ");
        for (i, k) in keys.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.key(k);
            self.push(match k.dir {
                SortOrder::Asc => " ASC NULLS LAST",
                SortOrder::Desc => " DESC NULLS FIRST",
            });
        }
        self
    }

    /// Rows strictly after `values` in the order of `keys` (same length).
    pub fn after(&mut self, keys: &[SortKey], values: &[Value]) -> &mut Self {
        self.push("(");
        for i in 0..keys.len() {
            if i > 0 {
                self.push(" OR ");
            }
            self.push("(");
            for j in 0..i {
                self.equal(&keys[j], &values[j]);
                self.push(" AND ");
            }
            self.beyond(&keys[i], &values[i]);
            self.push(")");
        }
        self.push(")");
        self
    }

    fn equal(&mut self, k: &SortKey, v: &Value) {
        if v.is_null() {
            self.key(k).push(" IS NULL");
        } else {
            self.key(k).push(" = ");
            self.bind(v.clone(), k.col.ty, false);
        }
    }

    fn beyond(&mut self, k: &SortKey, v: &Value) {
        match (k.dir, v.is_null()) {
            // Nothing sorts after null ascending.
            (SortOrder::Asc, true) => {
                self.push("FALSE");
            }
            (SortOrder::Asc, false) => {
                self.push("(").key(k).push(" > ");
                self.bind(v.clone(), k.col.ty, false);
                self.push(" OR ").key(k).push(" IS NULL)");
            }
            // Descending, nulls come first: everything not null is after.
            (SortOrder::Desc, true) => {
                self.key(k).push(" IS NOT NULL");
            }
            (SortOrder::Desc, false) => {
                self.key(k).push(" < ");
                self.bind(v.clone(), k.col.ty, false);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_embedded_statement_numbers_its_placeholders_after_the_outer_ones() {
        let mut inner = SqlBuilder::new("SELECT id FROM x t WHERE t.a = ");
        inner.bind(Value::Int(7), ColumnType::Int, false);
        inner.push(" AND t.b = ");
        inner.bind(Value::Text("e".into()), ColumnType::Enum("kind"), false);
        inner.push(" LIMIT ");
        inner.bind(Value::BigInt(3), ColumnType::BigInt, false);
        let mut outer = SqlBuilder::new("SELECT * FROM y WHERE y.c = ");
        outer.bind(Value::Int(1), ColumnType::Int, false);
        outer.push(" AND y.id IN (");
        outer.embed(&inner);
        outer.push(") AND y.d = ");
        outer.bind(Value::Int(2), ColumnType::Int, false);
        assert_eq!(
            outer.sql,
            "SELECT * FROM y WHERE y.c = $1 AND y.id IN (SELECT id FROM x t WHERE t.a = $2 \
             AND t.b = $3::\"kind\" LIMIT $4) AND y.d = $5"
        );
        assert_eq!(
            outer.binds,
            vec![
                Value::Int(1),
                Value::Int(7),
                Value::Text("e".into()),
                Value::BigInt(3),
                Value::Int(2)
            ]
        );
        let spans: Vec<&str> = outer
            .marks
            .iter()
            .map(|&(start, len)| &outer.sql[start..start + len])
            .collect();
        assert_eq!(spans, ["$1", "$2", "$3", "$4", "$5"]);
    }
}
