//! Limits checked on the parsed document before anything runs: how deep fields nest, how often
//! one field may be aliased and how many directives a document may carry. Complexity is
//! async-graphql's (set in `build`), the body size is the HTTP layer's, subscriptions per socket
//! the WebSocket layer's.
//!
//! Depth is counted here rather than by async-graphql so that introspection does not count:
//! the standard introspection queries of GraphiQL, graphql-js and graphql-core nest `ofType`
//! deeper than any data query needs, and what they read is bounded by the schema, not by data.

use std::collections::HashMap;

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::Name;

use crate::config::Limits;
use crate::error::ApiError;

#[derive(Default)]
struct Counts<'d> {
    /// Aliased selections per field name.
    aliases: HashMap<&'d str, usize>,
    directives: usize,
}

fn walk<'d>(set: &'d SelectionSet, counts: &mut Counts<'d>) {
    for item in &set.items {
        match &item.node {
            Selection::Field(f) => {
                let f = &f.node;
                if f.alias.is_some() {
                    *counts.aliases.entry(f.name.node.as_str()).or_default() += 1;
                }
                counts.directives += f.directives.len();
                walk(&f.selection_set.node, counts);
            }
            Selection::FragmentSpread(s) => counts.directives += s.node.directives.len(),
            Selection::InlineFragment(i) => {
                counts.directives += i.node.directives.len();
                walk(&i.node.selection_set.node, counts);
            }
        }
    }
}

/// How deep data fields nest in `set` (introspection fields count as leaves), following
/// fragments; each fragment is measured once.
fn depth<'d>(
    set: &'d SelectionSet,
    doc: &'d ExecutableDocument,
    fragments: &mut HashMap<&'d Name, usize>,
) -> usize {
    let mut deepest = 0;
    for item in &set.items {
        let d = match &item.node {
            Selection::Field(f) if f.node.name.node.starts_with("__") => 1,
            Selection::Field(f) => 1 + depth(&f.node.selection_set.node, doc, fragments),
            Selection::InlineFragment(i) => depth(&i.node.selection_set.node, doc, fragments),
            Selection::FragmentSpread(s) => {
                let name = &s.node.fragment_name.node;
                match fragments.get(name) {
                    Some(d) => *d,
                    None => {
                        // A cycle measures 0 here; validation refuses it afterwards.
                        fragments.insert(name, 0);
                        let d = doc
                            .fragments
                            .get(name)
                            .map_or(0, |f| depth(&f.node.selection_set.node, doc, fragments));
                        fragments.insert(name, d);
                        d
                    }
                }
            }
        };
        deepest = deepest.max(d);
    }
    deepest
}

/// Refuses a document whose data fields nest deeper than `max_depth`, that aliases one field
/// more than `max_aliases_per_field` times (the
/// shape of batched guessing: `a1: login(...) a2: login(...) ...`) or carries more than
/// `max_directives` directives. Counted as written: fragments once, however often spread.
pub fn check(doc: &ExecutableDocument, limits: &Limits) -> Result<(), ApiError> {
    let mut measured = HashMap::new();
    for (_, op) in doc.operations.iter() {
        let d = depth(&op.node.selection_set.node, doc, &mut measured);
        if d > limits.max_depth {
            return Err(ApiError::limit_exceeded(format!(
                "the query nests fields {d} deep; at most {} is allowed",
                limits.max_depth
            )));
        }
    }
    let mut counts = Counts::default();
    for (_, op) in doc.operations.iter() {
        counts.directives += op.node.directives.len();
        for v in &op.node.variable_definitions {
            counts.directives += v.node.directives.len();
        }
        walk(&op.node.selection_set.node, &mut counts);
    }
    for f in doc.fragments.values() {
        counts.directives += f.node.directives.len();
        walk(&f.node.selection_set.node, &mut counts);
    }
    if let Some((field, n)) = counts
        .aliases
        .iter()
        .find(|(_, n)| **n > limits.max_aliases_per_field)
    {
        return Err(ApiError::limit_exceeded(format!(
            "`{field}` is aliased {n} times; at most {} aliases of one field are allowed",
            limits.max_aliases_per_field
        )));
    }
    if counts.directives > limits.max_directives {
        return Err(ApiError::limit_exceeded(format!(
            "the document has {} directives; at most {} are allowed",
            counts.directives, limits.max_directives
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_aliases_per_field: 2,
            max_directives: 3,
            ..Limits::default()
        }
    }

    fn run(q: &str) -> Result<(), ApiError> {
        let doc = async_graphql::parser::parse_query(q).unwrap();
        check(&doc, &limits())
    }

    #[test]
    fn aliases_are_counted_per_field() {
        assert!(run("{ a: me { id } b: me { id } c: viewer { role } }").is_ok());
        let e = run("{ a: me { id } b: me { id } ... on Query { c: me { id } } }").unwrap_err();
        assert_eq!(e.code(), "LIMIT_EXCEEDED");
        assert!(
            run("query { x: me { id } } fragment F on Query { y: me { id } z: me { id } }")
                .is_err()
        );
    }

    #[test]
    fn depth_follows_fragments_and_skips_introspection() {
        let deep = |n: usize| {
            let mut q = String::from("id");
            for _ in 0..n {
                q = format!("a {{ {q} }}");
            }
            q
        };
        let limit = Limits::default().max_depth;
        let at = |q: &str| {
            check(
                &async_graphql::parser::parse_query(q).unwrap(),
                &Limits::default(),
            )
        };
        assert!(at(&format!("{{ {} }}", deep(limit - 1))).is_ok());
        assert!(at(&format!("{{ {} }}", deep(limit))).is_err());
        // Through fragments, spread in several places: measured, once.
        let q = format!(
            "{{ ...F b: x {{ ...F }} }} fragment F on Query {{ {} }}",
            deep(limit - 1)
        );
        assert_eq!(at(&q).unwrap_err().code(), "LIMIT_EXCEEDED");
        // Introspection nests as deep as it likes.
        let of_type = (0..20).fold(String::from("name"), |q, _| {
            format!("kind ofType {{ {q} }}")
        });
        assert!(at(&format!(
            "{{ __schema {{ types {{ fields {{ type {{ {of_type} }} }} }} }} }}"
        ))
        .is_ok());
    }

    #[test]
    fn directives_are_counted_everywhere() {
        assert!(run("query($s: Boolean!) { me @skip(if: $s) { id @include(if: true) } }").is_ok());
        let e = run("query { me @skip(if: false) { id @skip(if: false) name @skip(if: false) email @skip(if: false) } }");
        assert_eq!(e.unwrap_err().code(), "LIMIT_EXCEEDED");
    }
}
