//! Aggregates and groups of every entity: `xsAggregate(where)`, `relationAggregate(where)`
//! under every `hasMany` relation (one statement for all parents of a level), and
//! `xsGroups(where, by, having, orderBy, first, after)`, a connection of groups.
//!
//! The figures of one entity are described once, at start-up, as the columns of a derived
//! row ([`Measures::row`]): the group keys (`k_...`), `count`, then one column per aggregate
//! function and field (`s_views` = `sum(views)`). Every read selects that row, with `NULL`
//! for what nobody asked, so one decoder reads it; and the groups' `having`, `orderBy` and
//! keyset cursors are the engine's ordinary filters, sort keys and cursors over the derived
//! row (`SELECT * FROM (<grouped select>) t WHERE <having> AND <after> ORDER BY ...`).
//!
//! Every read is confined like a list: the caller's tenant, the entity's read ACL (a
//! `self`-only entity aggregates only the caller's rows; members-only rows count only for
//! their members), and relation conditions in `where` see only readable rows.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use async_graphql::dataloader::Loader;
use async_graphql::{Context, SelectionField};
use tracing::Instrument;
use uuid::Uuid;

use crate::db::sql::{Filter, SortKey, SortOrder, SqlBuilder};
use crate::db::value::Value;
use crate::error::{ApiError, GqlResult};
use crate::graphql::acl::{self, Op};
use crate::graphql::columns::ColumnSet;
use crate::graphql::crud::{self, PageLimits};
use crate::graphql::loaders::{self, RowLoader};
use crate::graphql::meta::{AclMeta, ColumnMeta, ColumnType, EntityMeta};
use crate::graphql::page::{decode_cursor, encode_cursor, PageInfo};
use crate::graphql::row::Row;

/// An aggregate function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Func {
    Sum,
    Avg,
    Min,
    Max,
    CountDistinct,
}

impl Func {
    pub const ALL: [Func; 5] = [
        Func::Sum,
        Func::Avg,
        Func::Min,
        Func::Max,
        Func::CountDistinct,
    ];

    /// Its field on the aggregate and group types.
    pub fn field(self) -> &'static str {
        match self {
            Func::Sum => "sum",
            Func::Avg => "avg",
            Func::Min => "min",
            Func::Max => "max",
            Func::CountDistinct => "countDistinct",
        }
    }

    /// The suffix of its GraphQL types (`ForumThreadSum`).
    pub fn type_suffix(self) -> &'static str {
        match self {
            Func::Sum => "Sum",
            Func::Avg => "Avg",
            Func::Min => "Min",
            Func::Max => "Max",
            Func::CountDistinct => "CountDistinct",
        }
    }

    fn from_field(name: &str) -> Option<Func> {
        Func::ALL.into_iter().find(|f| f.field() == name)
    }

    fn prefix(self) -> &'static str {
        match self {
            Func::Sum => "s_",
            Func::Avg => "a_",
            Func::Min => "mn_",
            Func::Max => "mx_",
            Func::CountDistinct => "cd_",
        }
    }

    /// The type of its result over `col`, or `None` when it does not apply: sums and
    /// averages of numbers, least and greatest of numbers, instants and text, distinct
    /// counts of any single value but JSON.
    fn result(self, col: &ColumnMeta) -> Option<ColumnType> {
        if col.list || col.ty == ColumnType::Json || col.column == "tenant_id" {
            return None;
        }
        use ColumnType as T;
        match (self, col.ty) {
            (Func::Sum, T::Int | T::BigInt) => Some(T::BigInt),
            (Func::Sum, T::Float) | (Func::Avg, T::Int | T::BigInt | T::Float) => Some(T::Float),
            (Func::Sum | Func::Avg, T::Decimal) => Some(T::Decimal),
            (Func::Min | Func::Max, t @ (T::Int | T::BigInt | T::Float | T::Decimal)) => Some(t),
            (Func::Min | Func::Max, t @ (T::DateTime | T::Text)) => Some(t),
            (Func::CountDistinct, _) if col.column != "id" => Some(T::Int),
            _ => None,
        }
    }

    /// `sum(t."views")` and the like, cast to the result's type.
    fn sql(self, b: &mut SqlBuilder, col: &ColumnMeta, result: ColumnType) {
        let (open, close) = match (self, result) {
            (Func::Sum, ColumnType::BigInt) => ("sum(", ")::bigint"),
            (Func::Sum, _) => ("sum(", ")"),
            (Func::Avg, ColumnType::Float) => ("avg(", ")::float8"),
            (Func::Avg, _) => ("avg(", ")"),
            (Func::Min, _) => ("min(", ")"),
            (Func::Max, _) => ("max(", ")"),
            (Func::CountDistinct, _) => ("count(DISTINCT ", ")::int"),
        };
        b.push(open).column(col).push(close);
    }
}

/// A column rows may be grouped by: enums, booleans, text, integers, references and
/// instants (truncated to a [`Bucket`]).
#[derive(Debug)]
pub struct Key {
    /// The entity's column.
    pub source: &'static ColumnMeta,
    /// Its column in the derived row.
    pub col: &'static ColumnMeta,
}

/// An aggregate function over one column.
#[derive(Debug)]
pub struct Measure {
    pub func: Func,
    pub source: &'static ColumnMeta,
    pub col: &'static ColumnMeta,
}

/// The figures of one entity: its group keys, count and measures as columns of a derived row.
pub struct Measures {
    pub entity: &'static EntityMeta,
    /// The derived row: keys, `count`, measures.
    pub row: &'static EntityMeta,
    pub keys: Vec<Key>,
    pub count: &'static ColumnMeta,
    pub measures: Vec<Measure>,
}

fn groupable(col: &ColumnMeta) -> bool {
    if col.list || col.column == "id" || col.column == "tenant_id" {
        return false;
    }
    match col.ty {
        ColumnType::Enum(_) | ColumnType::Bool | ColumnType::Text | ColumnType::Int => true,
        ColumnType::DateTime => true,
        ColumnType::Uuid => col.references.is_some(),
        _ => false,
    }
}

pub(crate) fn derived_column(
    position: usize,
    field: &'static str,
    column: String,
    ty: ColumnType,
) -> ColumnMeta {
    ColumnMeta {
        position,
        field,
        column: Box::leak(column.into_boxed_str()),
        ty,
        list: false,
        nullable: true,
        writable: false,
        inserted: false,
        orderable: true,
        required_on_create: false,
        min_length: None,
        max_length: None,
        min: None,
        max: None,
        enum_values: &[],
        references: None,
        unique: false,
        set_by: &[],
    }
}

impl Measures {
    /// The figures of `meta`, described once per process and entity (leaked, like the
    /// metadata they come from).
    pub fn of(meta: &'static EntityMeta) -> &'static Measures {
        static BUILT: Mutex<Vec<&'static Measures>> = Mutex::new(Vec::new());
        let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = built.iter().find(|m| std::ptr::eq(m.entity, meta)) {
            return m;
        }
        let m: &'static Measures = Box::leak(Box::new(Self::build(meta)));
        built.push(m);
        m
    }

    fn build(meta: &'static EntityMeta) -> Measures {
        let mut cols = Vec::new();
        let mut keys = Vec::new();
        for source in meta.columns.iter().filter(|c| groupable(c)) {
            // Enums are read as their labels' text, like every row the engine reads.
            let ty = match source.ty {
                ColumnType::Enum(_) => ColumnType::Text,
                t => t,
            };
            keys.push(source);
            cols.push(derived_column(
                cols.len(),
                source.field,
                format!("k_{}", source.column),
                ty,
            ));
        }
        let count_at = cols.len();
        cols.push(derived_column(
            count_at,
            "count",
            "count".into(),
            ColumnType::Int,
        ));
        let mut measures = Vec::new();
        for func in Func::ALL {
            for source in meta.columns {
                if let Some(ty) = func.result(source) {
                    measures.push((func, source));
                    cols.push(derived_column(
                        cols.len(),
                        source.field,
                        format!("{}{}", func.prefix(), source.column),
                        ty,
                    ));
                }
            }
        }
        let cols: &'static [ColumnMeta] = Box::leak(cols.into_boxed_slice());
        let row: &'static EntityMeta = Box::leak(Box::new(EntityMeta {
            name: Box::leak(format!("{}Group", meta.name).into_boxed_str()),
            package: meta.package,
            table: meta.table,
            singular: meta.singular,
            plural: meta.plural,
            scope: meta.scope,
            columns: cols,
            owner: None,
            version: None,
            append_only: true,
            acl: AclMeta {
                create: &[],
                read: &[],
                update: &[],
                delete: &[],
            },
            unique_keys: &[],
            relations: &[],
            members: None,
            readable_with: None,
            checksum: meta.checksum,
        }));
        let n = keys.len();
        Measures {
            entity: meta,
            row,
            keys: keys
                .into_iter()
                .zip(cols)
                .map(|(source, col)| Key { source, col })
                .collect(),
            count: &cols[count_at],
            measures: measures
                .into_iter()
                .zip(&cols[n + 1..])
                .map(|((func, source), col)| Measure { func, source, col })
                .collect(),
        }
    }

    /// The measures of one function, in column order.
    pub fn of_func(&self, func: Func) -> impl Iterator<Item = &Measure> {
        self.measures.iter().filter(move |m| m.func == func)
    }

    pub fn measure(&self, func: Func, field: &str) -> Option<&Measure> {
        self.of_func(func).find(|m| m.source.field == field)
    }

    pub fn key(&self, field: &str) -> Option<&Key> {
        self.keys.iter().find(|k| k.source.field == field)
    }

    /// A derived row of nothing: count 0, every other figure null.
    fn empty_row(&self) -> Row {
        let mut values = vec![Value::Null; self.row.columns.len()];
        values[self.count.position] = Value::Int(0);
        Row {
            values,
            ..Row::default()
        }
    }

    /// Adds the measures the fields of an aggregate (or group) object select.
    fn wanted<'a>(&self, fields: impl Iterator<Item = SelectionField<'a>>, set: &mut ColumnSet) {
        for f in fields {
            let Some(func) = Func::from_field(f.name()) else {
                continue;
            };
            for sub in f.selection_set() {
                if let Some(m) = self.measure(func, sub.name()) {
                    set.insert(m.col);
                }
            }
        }
    }
}

/// Figures of a set of rows (an aggregate) or of one group (with its key values): a row of
/// [`Measures::row`].
pub struct Measured {
    pub m: &'static Measures,
    pub row: Row,
}

impl Measured {
    pub fn get(&self, col: &ColumnMeta) -> &Value {
        self.row.get(col)
    }
}

/// How instants are truncated for grouping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Hour,
    Day,
    Week,
    Month,
    Year,
}

impl Bucket {
    pub const NAMES: [&'static str; 5] = ["HOUR", "DAY", "WEEK", "MONTH", "YEAR"];

    pub fn parse(name: &str) -> Option<Bucket> {
        Some(match name {
            "HOUR" => Bucket::Hour,
            "DAY" => Bucket::Day,
            "WEEK" => Bucket::Week,
            "MONTH" => Bucket::Month,
            "YEAR" => Bucket::Year,
            _ => return None,
        })
    }

    fn sql(self) -> &'static str {
        match self {
            Bucket::Hour => "hour",
            Bucket::Day => "day",
            Bucket::Week => "week",
            Bucket::Month => "month",
            Bucket::Year => "year",
        }
    }
}

/// The derived row's select list over the entity's rows `t`: the keys of `by` (the others
/// `NULL`), instants truncated to `bucket` in `zone`, the count, and the measures in `set`
/// (the others `NULL`).
fn select_figures(
    b: &mut SqlBuilder,
    m: &Measures,
    by: &[&Key],
    bucket: Bucket,
    zone: &str,
    set: &ColumnSet,
) {
    for (i, key) in m.keys.iter().enumerate() {
        if i > 0 {
            b.push(", ");
        }
        if !by.iter().any(|k| std::ptr::eq(*k, key)) {
            b.push(&format!("NULL AS \"{}\"", key.col.column));
            continue;
        }
        match key.source.ty {
            ColumnType::DateTime => {
                // The start of the bucket in the zone, as an instant (PostgreSQL 12+).
                b.push(&format!("date_trunc('{}', ", bucket.sql()));
                b.column(key.source).push(", ");
                b.bind(Value::Text(zone.to_string()), ColumnType::Text, false);
                b.push(")");
            }
            ColumnType::Enum(_) => {
                b.column(key.source).push("::text");
            }
            _ => {
                b.column(key.source);
            }
        }
        b.push(&format!(" AS \"{}\"", key.col.column));
    }
    if !m.keys.is_empty() {
        b.push(", ");
    }
    b.push("count(*)::int AS \"count\"");
    for ms in &m.measures {
        b.push(", ");
        if set.contains(ms.col.position) {
            ms.func.sql(b, ms.source, ms.col.ty);
            b.push(&format!(" AS \"{}\"", ms.col.column));
        } else {
            b.push(&format!("NULL AS \"{}\"", ms.col.column));
        }
    }
}

/// The caller's readable rows of the entity that match the client's `where`.
fn scoped(
    ctx: &Context<'_>,
    meta: &'static EntityMeta,
    filter: Option<Filter>,
) -> Result<Filter, ApiError> {
    let rc = crud::caller(ctx)?;
    Ok(Filter::and(vec![
        acl::row_scope(meta, rc, Op::Read),
        crud::where_filter(filter, rc)?,
    ]))
}

/// `xsAggregate(where)`: the figures the selection asks for, in one statement.
pub async fn aggregate(
    ctx: &Context<'_>,
    m: &'static Measures,
    filter: Option<Filter>,
) -> GqlResult<Measured> {
    let meta = m.entity;
    let filter = scoped(ctx, meta, filter)?;
    let mut set = ColumnSet::empty(m.row);
    m.wanted(ctx.field().selection_set(), &mut set);
    let mut b = SqlBuilder::new("SELECT ");
    select_figures(&mut b, m, &[], Bucket::Day, "UTC", &set);
    b.push(&format!(" FROM \"{}\" t WHERE ", meta.table));
    b.filter(&filter);
    let rows: Vec<Row> = crud::read(ctx, meta.name, b).await?;
    let row = rows.into_iter().next().unwrap_or_else(|| m.empty_row());
    Ok(Measured { m, row })
}

/// What a relation's aggregate asks for, shared by all its parents.
pub struct AggregateSpec {
    pub m: &'static Measures,
    /// The child's column referencing the parent.
    pub fk: &'static ColumnMeta,
    /// The client's `where`, without the caller's scope (the loader adds it).
    pub filter: Filter,
    pub set: ColumnSet,
    /// Equal for equal arguments and selections: keys of one fingerprint load together.
    pub fingerprint: String,
}

/// One parent's figures of a relation.
#[derive(Clone)]
pub struct AggregateKey {
    pub parent: Uuid,
    pub spec: Arc<AggregateSpec>,
}

impl PartialEq for AggregateKey {
    fn eq(&self, other: &Self) -> bool {
        self.parent == other.parent
            && std::ptr::eq(self.spec.m, other.spec.m)
            && self.spec.fingerprint == other.spec.fingerprint
    }
}
impl Eq for AggregateKey {}
impl Hash for AggregateKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.parent.hash(state);
        self.spec.fingerprint.hash(state);
    }
}

/// `relationAggregate(where)` under a `hasMany` relation: one parent's figures, read with
/// every other parent's of the level in one grouped statement.
pub async fn relation_aggregate(
    ctx: &Context<'_>,
    m: &'static Measures,
    fk: &'static ColumnMeta,
    parent: Uuid,
    filter: Option<Filter>,
) -> GqlResult<Measured> {
    let rc = crud::caller(ctx)?;
    let filter = crud::where_filter(filter, rc)?;
    let mut set = ColumnSet::empty(m.row);
    m.wanted(ctx.field().selection_set(), &mut set);
    let fingerprint = format!("{}|{filter:?}|{set:?}", fk.column);
    let spec = Arc::new(AggregateSpec {
        m,
        fk,
        filter,
        set,
        fingerprint,
    });
    let row = loaders::loader(ctx)?
        .load_one(AggregateKey { parent, spec })
        .await?
        .map(|r: Arc<Row>| Arc::try_unwrap(r).unwrap_or_else(|shared| shared.as_ref().clone()))
        .unwrap_or_else(|| m.empty_row());
    Ok(Measured { m, row })
}

impl Loader<AggregateKey> for RowLoader {
    type Value = Arc<Row>;
    type Error = async_graphql::Error;

    async fn load(
        &self,
        keys: &[AggregateKey],
    ) -> Result<HashMap<AggregateKey, Arc<Row>>, Self::Error> {
        let span = self.batch("aggregates", keys.len());
        self.aggregates(keys).instrument(span).await
    }
}

impl RowLoader {
    async fn aggregates(
        &self,
        keys: &[AggregateKey],
    ) -> Result<HashMap<AggregateKey, Arc<Row>>, async_graphql::Error> {
        let mut groups: Vec<(Arc<AggregateSpec>, Vec<&AggregateKey>)> = Vec::new();
        for k in keys {
            match groups
                .iter_mut()
                .find(|(s, _)| std::ptr::eq(s.m, k.spec.m) && s.fingerprint == k.spec.fingerprint)
            {
                Some((_, members)) => members.push(k),
                None => groups.push((k.spec.clone(), vec![k])),
            }
        }
        let mut out = HashMap::new();
        for (spec, members) in groups {
            let meta = spec.m.entity;
            let mut parents: Vec<Uuid> = members.iter().map(|k| k.parent).collect();
            parents.sort_unstable();
            parents.dedup();
            let mut b = SqlBuilder::new("SELECT ");
            b.column(spec.fk).push(" AS \"__parent\", ");
            select_figures(&mut b, spec.m, &[], Bucket::Day, "UTC", &spec.set);
            b.push(&format!(" FROM \"{}\" t WHERE ", meta.table));
            b.column(spec.fk).push(" = ANY(");
            b.bind(Value::UuidList(parents), ColumnType::Uuid, true);
            b.push(") AND ");
            b.filter(&Filter::and(vec![
                acl::row_scope(meta, self.caller(), Op::Read),
                spec.filter.clone(),
            ]));
            b.push(" GROUP BY ");
            b.column(spec.fk);
            let rows: Vec<Row> = self.fetch(meta, b).await?;
            let by_parent: HashMap<Uuid, Arc<Row>> = rows
                .into_iter()
                .filter_map(|r| match r.extra.first() {
                    Some(Value::Uuid(p)) => Some((*p, Arc::new(r))),
                    _ => None,
                })
                .collect();
            for k in members {
                let row = by_parent
                    .get(&k.parent)
                    .cloned()
                    .unwrap_or_else(|| Arc::new(spec.m.empty_row()));
                out.insert(k.clone(), row);
            }
        }
        Ok(out)
    }
}

/// The arguments of `xsGroups`, read.
pub struct GroupArgs {
    pub filter: Option<Filter>,
    /// Keys to group by, in the order given (at least one, each once).
    pub by: Vec<&'static Key>,
    pub bucket: Bucket,
    pub zone: String,
    /// Conditions on the groups' figures (over the derived row).
    pub having: Option<Filter>,
    /// Sort keys over the derived row, as given.
    pub order: Vec<SortKey>,
    pub first: Option<i32>,
    pub after: Option<String>,
}

/// One group and its cursor.
pub struct GroupEdge {
    pub cursor: String,
    pub node: Measured,
}

/// A page of groups.
pub struct GroupPage {
    pub edges: Vec<GroupEdge>,
    pub info: PageInfo,
}

impl crate::graphql::page::Connection for GroupPage {
    type Edge = GroupEdge;
    fn edges(&self) -> &[GroupEdge] {
        &self.edges
    }
    fn info(&self) -> &PageInfo {
        &self.info
    }
}

impl crate::graphql::page::ConnectionEdge for GroupEdge {
    type Node = Measured;
    fn cursor(&self) -> &str {
        &self.cursor
    }
    fn node(&self) -> &Measured {
        &self.node
    }
}

/// Keys one `by` may name.
pub const MAX_GROUP_KEYS: usize = 8;

/// Time zones PostgreSQL knows, read once per process (`pg_timezone_names`).
static ZONES: tokio::sync::OnceCell<HashSet<String>> = tokio::sync::OnceCell::const_new();

#[derive(diesel::QueryableByName)]
struct ZoneName {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
}

/// Refuses a time zone PostgreSQL would not know, before it reaches a statement.
async fn check_zone(ctx: &Context<'_>, zone: &str) -> Result<(), ApiError> {
    if zone == "UTC" {
        return Ok(());
    }
    let zones = ZONES
        .get_or_try_init(|| async {
            let b = SqlBuilder::new("SELECT name FROM pg_timezone_names");
            let rows: Vec<ZoneName> = crud::read(ctx, "TimeZone", b).await?;
            Ok::<_, ApiError>(rows.into_iter().map(|r| r.name).collect())
        })
        .await?;
    if zones.contains(zone) {
        return Ok(());
    }
    Err(ApiError::bad_input(
        "timeZone",
        "timeZone must be an IANA time zone name, such as Europe/Paris or UTC",
    ))
}

/// `xsGroups`: a page of groups with the figures the selection, `having` and `orderBy` use.
pub async fn groups(
    ctx: &Context<'_>,
    m: &'static Measures,
    args: GroupArgs,
) -> GqlResult<GroupPage> {
    let meta = m.entity;
    if args.by.is_empty() {
        return Err(ApiError::bad_input("by", "by must name at least one field").into());
    }
    if args.by.iter().any(|k| k.source.ty == ColumnType::DateTime) {
        check_zone(ctx, &args.zone).await?;
    }
    let limits = ctx.data_opt::<PageLimits>().copied().unwrap_or(PageLimits {
        default: 50,
        max: 500,
    });
    let n = match args.first {
        None => i64::from(limits.default),
        Some(n) if (0..=limits.max).contains(&n) => i64::from(n),
        Some(_) => {
            return Err(ApiError::bad_input(
                "first",
                format!("first must be between 0 and {}", limits.max),
            )
            .into())
        }
    };
    // The order: as given, then every key grouped by, so that it is total over groups.
    let mut keys = args.order;
    for k in &args.by {
        if !keys.iter().any(|s| std::ptr::eq(s.col, k.col)) {
            keys.push(SortKey::new(k.col, SortOrder::Asc));
        }
    }
    let after = match &args.after {
        Some(c) => Some(decode_cursor(&keys, c, "after")?),
        None => None,
    };
    let filter = scoped(ctx, meta, args.filter)?;

    let mut set = ColumnSet::empty(m.row);
    for f in ctx.field().selection_set() {
        match f.name() {
            "nodes" => m.wanted(f.selection_set(), &mut set),
            "edges" => {
                for e in f.selection_set().filter(|e| e.name() == "node") {
                    m.wanted(e.selection_set(), &mut set);
                }
            }
            _ => {}
        }
    }
    for k in &keys {
        set.insert(k.col);
    }
    if let Some(h) = &args.having {
        columns_of(h, &mut set);
    }

    let mut b = SqlBuilder::new("SELECT * FROM (SELECT ");
    select_figures(&mut b, m, &args.by, args.bucket, &args.zone, &set);
    b.push(&format!(" FROM \"{}\" t WHERE ", meta.table));
    b.filter(&filter);
    // By position in the select list: a truncation's bound zone is one expression.
    let positions: Vec<String> = args
        .by
        .iter()
        .map(|k| (k.col.position + 1).to_string())
        .collect();
    b.push(" GROUP BY ");
    b.push(&positions.join(", "));
    b.push(") t WHERE ");
    b.filter(args.having.as_ref().unwrap_or(&Filter::True));
    if let Some(values) = &after {
        b.push(" AND ");
        b.after(&keys, values);
    }
    b.order_by(&keys);
    b.limit(n + 1);
    let mut rows: Vec<Row> = crud::read(ctx, meta.name, b).await?;
    let more = rows.len() as i64 > n;
    rows.truncate(n as usize);
    let edges: Vec<GroupEdge> = rows
        .into_iter()
        .map(|row| {
            let values: Vec<Value> = keys.iter().map(|k| row.get(k.col).clone()).collect();
            GroupEdge {
                cursor: encode_cursor(&keys, &values),
                node: Measured { m, row },
            }
        })
        .collect();
    let info = PageInfo {
        has_next_page: more,
        has_previous_page: after.is_some(),
        start_cursor: edges.first().map(|e| e.cursor.clone()),
        end_cursor: edges.last().map(|e| e.cursor.clone()),
    };
    Ok(GroupPage { edges, info })
}

/// The derived columns a `having` filter reads.
fn columns_of(f: &Filter, set: &mut ColumnSet) {
    match f {
        Filter::And(parts) | Filter::Or(parts) => parts.iter().for_each(|p| columns_of(p, set)),
        Filter::Not(inner) => columns_of(inner, set),
        Filter::Cmp { col, .. }
        | Filter::In { col, .. }
        | Filter::Text { col, .. }
        | Filter::IsNull { col, .. } => set.insert(col),
        _ => {}
    }
}
