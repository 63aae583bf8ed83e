//! Limits checked on the parsed document before anything runs: how often one field may be
//! aliased and how many directives a document may carry. Depth and complexity are
//! async-graphql's (set in `build`), the body size is the HTTP layer's, subscriptions per socket
//! the WebSocket layer's.

use std::collections::HashMap;

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};

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

/// Refuses a document that aliases one field more than `max_aliases_per_field` times (the
/// shape of batched guessing: `a1: login(...) a2: login(...) ...`) or carries more than
/// `max_directives` directives. Counted as written: fragments once, however often spread.
pub fn check(doc: &ExecutableDocument, limits: &Limits) -> Result<(), ApiError> {
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
    fn directives_are_counted_everywhere() {
        assert!(run("query($s: Boolean!) { me @skip(if: $s) { id @include(if: true) } }").is_ok());
        let e = run("query { me @skip(if: false) { id @skip(if: false) name @skip(if: false) email @skip(if: false) } }");
        assert_eq!(e.unwrap_err().code(), "LIMIT_EXCEEDED");
    }
}
