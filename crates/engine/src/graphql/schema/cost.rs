//! The complexity of an operation, counted the way async-graphql counts it (every field 1
//! plus what it selects, fragments inlined) except that a list field (one with `first`) is
//! charged per row its page may hold: `page::cost`. The dynamic schema has no per-field
//! complexity hook, so the gateway counts in its own pass over the document, with the
//! schema's registry telling the type each field returns.

use std::collections::HashMap;

use async_graphql::parser::types::{
    ExecutableDocument, Field, OperationType, Selection, SelectionSet,
};
use async_graphql::registry::{MetaType, MetaTypeName, Registry};
use async_graphql::{Name, Positioned, Value, Variables};

use crate::graphql::page;

/// How a field is charged.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Charge {
    /// 1 plus what it selects.
    Plain,
    /// Per row its page may hold (`page::cost`).
    Paged,
    /// An aggregate reads every row it counts: [`AGGREGATE_COST`] plus what it selects.
    Aggregate,
}

/// What an aggregate (`xsAggregate`, `relationAggregate`) costs beyond its fields.
pub const AGGREGATE_COST: usize = 10;

/// What the counting needs of the schema: per object type, per field, the type it returns
/// and how it is charged.
pub struct Costs {
    fields: HashMap<String, HashMap<String, (String, Charge)>>,
    query: String,
    mutation: String,
    subscription: String,
}

impl Costs {
    pub fn of(registry: &Registry) -> Costs {
        let mut fields = HashMap::new();
        for (name, ty) in &registry.types {
            if let MetaType::Object { fields: fs, .. } = ty {
                let map = fs
                    .iter()
                    .map(|(f, meta)| {
                        let ty = MetaTypeName::concrete_typename(&meta.ty).to_string();
                        let charge = if meta.args.contains_key("first") {
                            Charge::Paged
                        } else if ty.ends_with("Aggregate") && meta.args.contains_key("where") {
                            Charge::Aggregate
                        } else {
                            Charge::Plain
                        };
                        (f.clone(), (ty, charge))
                    })
                    .collect();
                fields.insert(name.clone(), map);
            }
        }
        Costs {
            fields,
            query: registry.query_type.clone(),
            mutation: registry.mutation_type.clone().unwrap_or_default(),
            subscription: registry.subscription_type.clone().unwrap_or_default(),
        }
    }

    /// The complexity of the operation `name` of `doc` (the only one when `name` is None).
    pub fn of_operation(
        &self,
        doc: &ExecutableDocument,
        name: Option<&str>,
        variables: &Variables,
    ) -> usize {
        let mut worst = 0;
        for (op_name, op) in doc.operations.iter() {
            if name.is_some_and(|n| op_name.map(|o| o.as_str()) != Some(n)) {
                continue;
            }
            let root = match op.node.ty {
                OperationType::Query => &self.query,
                OperationType::Mutation => &self.mutation,
                OperationType::Subscription => &self.subscription,
            };
            let mut walk = Walk {
                costs: self,
                doc,
                variables,
                spreads: Vec::new(),
            };
            worst = worst.max(walk.set(&op.node.selection_set.node, root));
        }
        worst
    }
}

struct Walk<'a> {
    costs: &'a Costs,
    doc: &'a ExecutableDocument,
    variables: &'a Variables,
    /// Fragments being inlined: a cycle counts nothing (validation refuses it afterwards).
    spreads: Vec<&'a Name>,
}

impl<'a> Walk<'a> {
    fn set(&mut self, set: &'a SelectionSet, ty: &str) -> usize {
        let mut total: usize = 0;
        for item in &set.items {
            let n = match &item.node {
                Selection::Field(f) => self.field(&f.node, ty),
                Selection::InlineFragment(i) => {
                    let ty = i
                        .node
                        .type_condition
                        .as_ref()
                        .map_or(ty, |c| c.node.on.node.as_str());
                    self.set(&i.node.selection_set.node, ty)
                }
                Selection::FragmentSpread(s) => {
                    let name = &s.node.fragment_name.node;
                    match self.doc.fragments.get(name) {
                        Some(f) if !self.spreads.contains(&name) => {
                            self.spreads.push(name);
                            let n = self.set(
                                &f.node.selection_set.node,
                                f.node.type_condition.node.on.node.as_str(),
                            );
                            self.spreads.pop();
                            n
                        }
                        _ => 0,
                    }
                }
            };
            total = total.saturating_add(n);
        }
        total
    }

    fn field(&mut self, f: &'a Field, parent: &str) -> usize {
        let info = self
            .costs
            .fields
            .get(parent)
            .and_then(|fs| fs.get(f.name.node.as_str()));
        let (ty, charge) = match info {
            Some((ty, charge)) => (ty.as_str(), *charge),
            None => ("", Charge::Plain),
        };
        let children = self.set(&f.selection_set.node, ty);
        match charge {
            Charge::Paged => page::cost(self.int(f, "first"), self.int(f, "last"), children),
            Charge::Aggregate => children.saturating_add(1 + AGGREGATE_COST),
            Charge::Plain => children.saturating_add(1),
        }
    }

    /// An Int argument, written or given as a variable.
    fn int(&self, f: &Field, name: &str) -> Option<i32> {
        let value = f.get_argument(name).map(|v: &Positioned<_>| &v.node)?;
        let v = value
            .clone()
            .into_const_with(|var| {
                Ok::<_, ()>(self.variables.get(&var).cloned().unwrap_or(Value::Null))
            })
            .ok()?;
        match v {
            Value::Number(n) => n.as_i64().and_then(|n| i32::try_from(n).ok()),
            _ => None,
        }
    }
}

/// What async-graphql answers for an operation over the budget.
pub const TOO_COMPLEX: &str = "Query is too complex.";

/// Whether the operation `name` of `doc` is within `max`.
pub fn check(
    costs: &Costs,
    doc: &ExecutableDocument,
    name: Option<&str>,
    variables: &Variables,
    max: usize,
) -> bool {
    costs.of_operation(doc, name, variables) <= max
}
