//! Which columns a field's selection reads.
//!
//! A read selects those columns alone, each named by its position in the entity's metadata,
//! so PostgreSQL neither reads nor sends, and the gateway neither decodes nor keeps, what
//! nobody asked for; `Row` puts each value in its column's place.

use async_graphql::{Context, SelectionField};

use crate::db::sql::SortKey;
use crate::graphql::meta::{metadata, ColumnMeta, EntityMeta, LinkKind};

/// A set of an entity's columns, by position.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ColumnSet {
    bits: Vec<u64>,
    /// Read by name for a statement that embeds this one, not decoded as a `Row`.
    compact: bool,
    /// `belongsTo` parents read in the same statement (`SqlBuilder::join_parents`): the
    /// link's position among the entity's links, and the parent's columns.
    parents: Vec<(usize, ColumnSet)>,
}

impl ColumnSet {
    /// No column of `meta`.
    pub fn empty(meta: &EntityMeta) -> Self {
        ColumnSet {
            bits: vec![0; meta.columns.len().div_ceil(64)],
            compact: false,
            parents: Vec::new(),
        }
    }

    /// The same columns for a statement that another embeds (its rows are never decoded):
    /// they keep their names, and the others are left out instead of written `NULL`.
    pub fn compact(mut self) -> Self {
        self.compact = true;
        self
    }

    pub fn is_compact(&self) -> bool {
        self.compact
    }

    /// Every column of `meta`.
    pub fn all(meta: &EntityMeta) -> Self {
        let mut set = Self::empty(meta);
        for c in meta.columns {
            set.insert(c);
        }
        set
    }

    pub fn insert(&mut self, col: &ColumnMeta) {
        if let Some(word) = self.bits.get_mut(col.position / 64) {
            *word |= 1 << (col.position % 64);
        }
    }

    pub fn contains(&self, position: usize) -> bool {
        self.bits
            .get(position / 64)
            .is_some_and(|w| w & (1 << (position % 64)) != 0)
    }

    /// Every column any of `sets` holds, and every parent any of them joins.
    pub fn union_of<'a>(meta: &EntityMeta, sets: impl Iterator<Item = &'a ColumnSet>) -> Self {
        let mut out = Self::empty(meta);
        for set in sets {
            out.absorb(set);
        }
        out
    }

    /// Adds `other`'s columns and joined parents (a set of the same entity).
    fn absorb(&mut self, other: &ColumnSet) {
        for (a, b) in self.bits.iter_mut().zip(&other.bits) {
            *a |= b;
        }
        for (at, parent) in &other.parents {
            self.join(*at, parent);
        }
    }

    /// Reads the parent of the entity's `at`-th link (a `belongsTo`) with the row, with
    /// `columns` of it (merged with any already joined).
    pub fn join(&mut self, at: usize, columns: &ColumnSet) {
        match self.parents.iter_mut().find(|(p, _)| *p == at) {
            Some((_, set)) => set.absorb(columns),
            None => self.parents.push((at, columns.clone())),
        }
    }

    /// The parents read with the row: link position and columns.
    pub fn parents(&self) -> &[(usize, ColumnSet)] {
        &self.parents
    }

    /// The row's own sort keys: cursors are made of their values.
    pub fn with_keys(mut self, keys: &[SortKey]) -> Self {
        for k in keys.iter().filter(|k| k.is_local()) {
            self.insert(k.col);
        }
        self
    }

    pub fn with(mut self, col: &ColumnMeta) -> Self {
        self.insert(col);
        self
    }
}

/// What a field of `meta`'s object type needs; `false` when it is none of the engine's own
/// (an extension's field may read any column).
fn add_field(meta: &'static EntityMeta, set: &mut ColumnSet, name: &str) -> bool {
    if name == "__typename" {
        return true;
    }
    if let Some(col) = meta.columns.iter().find(|c| c.field == name) {
        set.insert(col);
        return true;
    }
    match metadata().links(meta).iter().find(|l| l.name == name) {
        Some(link) => {
            // A parent is found by this row's column; children by its id (always read).
            if link.kind == LinkKind::Parent {
                set.insert(link.fk);
            }
            true
        }
        None => false,
    }
}

/// The columns the fields of an object of `meta` read, with its id.
fn of_object<'a>(
    meta: &'static EntityMeta,
    fields: impl Iterator<Item = SelectionField<'a>>,
    set: &mut ColumnSet,
) -> bool {
    set.insert(meta.id_column());
    for f in fields {
        if !add_field(meta, set, f.name()) {
            return false;
        }
    }
    true
}

/// The columns the field being resolved reads of `meta`'s row: an object field selects the
/// row's fields directly; a connection under `nodes` and `edges { node }`.
pub fn wanted(ctx: &Context<'_>, meta: &'static EntityMeta, connection: bool) -> ColumnSet {
    let mut set = ColumnSet::empty(meta);
    let field = ctx.field();
    let complete = if connection {
        field.selection_set().all(|f| match f.name() {
            "nodes" => of_object(meta, f.selection_set(), &mut set),
            "edges" => f.selection_set().all(|e| match e.name() {
                "node" => of_object(meta, e.selection_set(), &mut set),
                _ => true,
            }),
            _ => true,
        })
    } else {
        of_object(meta, field.selection_set(), &mut set)
    };
    if complete {
        set.insert(meta.id_column());
        set
    } else {
        ColumnSet::all(meta)
    }
}
