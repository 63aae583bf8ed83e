//! Parsed documents, kept by their text.
//!
//! Clients send the same few documents over and over (Apollo Client and urql send each
//! operation's text verbatim), and pest's parse of a nested query cost ~5 % of the gateway's
//! CPU per request; a copy of a kept parse costs a few allocations. Bounded in count and in
//! the size of what is kept, so a client inventing documents only churns the cache.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_graphql::parser::types::ExecutableDocument;

/// Documents kept at most; when full, the cache starts over.
const KEPT: usize = 128;
/// Longer texts are parsed each time.
const LONGEST: usize = 8 * 1024;

#[derive(Default)]
pub struct Documents {
    parsed: Mutex<HashMap<Arc<str>, Arc<ExecutableDocument>>>,
}

impl Documents {
    /// The parse of `query`, from the cache when it was parsed before.
    pub fn parse(&self, query: &str) -> async_graphql::parser::Result<ExecutableDocument> {
        if query.len() > LONGEST {
            return async_graphql::parser::parse_query(query);
        }
        if let Some(doc) = self.lock().get(query).cloned() {
            return Ok(doc.as_ref().clone());
        }
        let doc = async_graphql::parser::parse_query(query)?;
        let mut kept = self.lock();
        if kept.len() >= KEPT {
            kept.clear();
        }
        kept.insert(query.into(), Arc::new(doc.clone()));
        Ok(doc)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, Arc<ExecutableDocument>>> {
        // A panic while holding the lock leaves a map that is still whole.
        self.parsed.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_parse_is_the_parse_and_the_cache_stays_bounded() {
        let docs = Documents::default();
        let q = "query($id: ID!) { forumThread(id: $id) { id title } }";
        let first = docs.parse(q).expect("parses");
        let again = docs.parse(q).expect("parses");
        assert_eq!(format!("{first:?}"), format!("{again:?}"));
        assert!(docs.parse("{ broken").is_err());
        for i in 0..(KEPT * 3) {
            docs.parse(&format!("{{ a{i}: __typename }}"))
                .expect("parses");
        }
        assert!(docs.lock().len() <= KEPT);
        let long = format!("{{ {} }}", "__typename ".repeat(LONGEST / 10));
        docs.parse(&long).expect("parses");
        assert!(!docs.lock().contains_key(long.as_str()));
    }
}
