//! Parsed documents and their validations, kept by their text.
//!
//! Clients send the same few documents over and over (Apollo Client and urql send each
//! operation's text verbatim). pest's parse of a nested query cost ~5 % of the gateway's CPU
//! per request and async-graphql's validation of a by-id query ~7 %; a copy of a kept parse
//! costs a few allocations, a kept validation a lookup. Bounded in count and in the size of
//! what is kept, so a client inventing documents only churns the caches.

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextValidation};
use async_graphql::parser::types::{BaseType, DocumentOperations, ExecutableDocument};
use async_graphql::registry::{MetaType, Registry};
use async_graphql::{ServerError, ValidationResult, Value, Variables};

use crate::kept::Kept;

/// Entries kept at most; when full, a cache starts over.
const KEPT: usize = 128;
/// Longer texts are parsed and validated each time.
const LONGEST: usize = 8 * 1024;

pub struct Documents {
    parsed: Kept<Arc<str>, Arc<ExecutableDocument>>,
}

impl Default for Documents {
    fn default() -> Self {
        Documents {
            parsed: Kept::new(KEPT),
        }
    }
}

impl Documents {
    /// The parse of `query`, from the cache when it was parsed before.
    pub fn parse(&self, query: &str) -> async_graphql::parser::Result<ExecutableDocument> {
        if query.len() > LONGEST {
            return async_graphql::parser::parse_query(query);
        }
        if let Some(doc) = self.parsed.get(query) {
            return Ok(doc.as_ref().clone());
        }
        let doc = async_graphql::parser::parse_query(query)?;
        self.parsed.keep(query.into(), Arc::new(doc.clone()));
        Ok(doc)
    }
}

/// What a request's validation is kept by, when it can be: see [`validation_key`].
pub struct ValidationKey(String);

/// The key under which a request's validation may be kept, or `None` when it must be
/// validated each time.
///
/// async-graphql's rules read the variables' values in one place only: an argument holding
/// variables is checked with their values put in (`ArgumentsOfCorrectType`); a variable it
/// has no value for is not checked. Every other rule reads the document and the schema. So a
/// document that passed with some variables passes with any others that give a value to the
/// same variables, each of them a valid value of its declared type, when that type is a
/// scalar that is not a list: a passing document uses such a variable only where a value of
/// that very type goes (`VariableInAllowedPosition` wants the same named type). Anything
/// else (lists, input objects, enums, nulls, several operations) is validated each time.
pub fn validation_key(
    registry: &Registry,
    query: &str,
    doc: &ExecutableDocument,
    name: Option<&str>,
    variables: &Variables,
) -> Option<ValidationKey> {
    if query.len() > LONGEST {
        return None;
    }
    // One operation: a fragment can then only use that operation's variables.
    let op = match &doc.operations {
        DocumentOperations::Single(op) => op,
        DocumentOperations::Multiple(ops) if ops.len() == 1 => ops.values().next()?,
        DocumentOperations::Multiple(_) => return None,
    };
    let defs = &op.node.variable_definitions;
    if variables
        .keys()
        .any(|k| !defs.iter().any(|d| d.node.name.node == *k))
    {
        return None;
    }
    let mut key = String::with_capacity(query.len() + defs.len() + 2);
    key.push_str(query);
    key.push('\0');
    key.push_str(name.unwrap_or_default());
    key.push('\0');
    for def in defs {
        let Some(value) = variables.get(&def.node.name.node) else {
            key.push('0');
            continue;
        };
        let BaseType::Named(ty) = &def.node.var_type.node.base else {
            return None;
        };
        let valid = match registry.types.get(ty.as_str()) {
            Some(MetaType::Scalar { is_valid, .. }) => {
                *value != Value::Null && is_valid.as_ref().is_none_or(|f| f(value))
            }
            _ => false,
        };
        if !valid {
            return None;
        }
        key.push('1');
    }
    Some(ValidationKey(key))
}

/// The schema's extension that keeps validations by [`ValidationKey`]: a request carrying
/// one that passed before skips async-graphql's rules. Only passes are kept, so every error
/// is still the validator's own.
pub struct Validations {
    passed: Arc<Kept<Arc<str>, ValidationResult>>,
}

impl Default for Validations {
    fn default() -> Self {
        Validations {
            passed: Arc::new(Kept::new(KEPT)),
        }
    }
}

impl ExtensionFactory for Validations {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(KeptValidations(self.passed.clone()))
    }
}

struct KeptValidations(Arc<Kept<Arc<str>, ValidationResult>>);

#[async_graphql::async_trait::async_trait]
impl Extension for KeptValidations {
    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let Some(ValidationKey(key)) = ctx.data_opt::<ValidationKey>() else {
            return next.run(ctx).await;
        };
        if let Some(passed) = self.0.get(key.as_str()) {
            return Ok(passed);
        }
        let result = next.run(ctx).await?;
        self.0.keep(key.as_str().into(), result);
        Ok(result)
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
        assert!(docs.parsed.len() <= KEPT);
        let long = format!("{{ {} }}", "__typename ".repeat(LONGEST / 10));
        docs.parse(&long).expect("parses");
        assert!(docs.parsed.get(long.as_str()).is_none());
    }

    fn registry() -> async_graphql::dynamic::Schema {
        use async_graphql::dynamic::{Field, FieldFuture, InputValue, Object, Schema, TypeRef};
        let f = Field::new("f", TypeRef::named(TypeRef::INT), |_| {
            FieldFuture::new(async { Ok(None::<async_graphql::dynamic::FieldValue>) })
        })
        .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID)))
        .argument(InputValue::new("n", TypeRef::named(TypeRef::INT)))
        .argument(InputValue::new("ns", TypeRef::named_list(TypeRef::INT)));
        Schema::build("Query", None, None)
            .register(Object::new("Query").field(f))
            .finish()
            .expect("schema")
    }

    fn key(query: &str, variables: serde_json::Value) -> Option<String> {
        let schema = registry();
        let doc = async_graphql::parser::parse_query(query).expect("parses");
        let variables = Variables::from_json(variables);
        validation_key(schema.registry(), query, &doc, None, &variables).map(|k| k.0)
    }

    #[test]
    fn a_validation_is_kept_only_for_values_any_of_which_the_validator_takes_alike() {
        use serde_json::json;
        let q = "query($id: ID!, $n: Int) { f(id: $id, n: $n) }";
        let one = key(q, json!({ "id": "a", "n": 1 }));
        assert!(one.is_some());
        assert_eq!(one, key(q, json!({ "id": 7, "n": 2 })));
        // A variable left out is not checked at all: another key.
        let without = key(q, json!({ "id": "a" }));
        assert!(without.is_some());
        assert_ne!(one, without);
        // Values the validator refuses, nulls, and names the operation does not declare.
        assert_eq!(key(q, json!({ "id": "a", "n": 1.5 })), None);
        assert_eq!(key(q, json!({ "id": "a", "n": "one" })), None);
        assert_eq!(key(q, json!({ "id": null })), None);
        assert_eq!(key(q, json!({ "id": "a", "m": 1 })), None);
        // Lists, and documents with several operations.
        let list = "query($ns: [Int]) { f(id: 1, ns: $ns) }";
        assert_eq!(key(list, json!({ "ns": [1] })), None);
        assert!(key(list, json!({})).is_some());
        let two = "query A($n: Int) { f(id: 1, n: $n) } query B { f(id: 2) }";
        assert_eq!(key(two, json!({ "n": 1 })), None);
    }

    /// Counts the validations that reach async-graphql's rules.
    struct Counted(Arc<std::sync::atomic::AtomicUsize>);

    impl ExtensionFactory for Counted {
        fn create(&self) -> Arc<dyn Extension> {
            Arc::new(Counted(self.0.clone()))
        }
    }

    #[async_graphql::async_trait::async_trait]
    impl Extension for Counted {
        async fn validation(
            &self,
            ctx: &ExtensionContext<'_>,
            next: NextValidation<'_>,
        ) -> Result<ValidationResult, Vec<ServerError>> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            next.run(ctx).await
        }
    }

    #[test]
    fn a_kept_validation_skips_the_rules_and_an_invalid_value_still_meets_them() {
        use async_graphql::dynamic::{Field, FieldFuture, InputValue, Object, Schema, TypeRef};
        use async_graphql::Request;
        use serde_json::json;
        let validated = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let f = Field::new("f", TypeRef::named(TypeRef::INT), |ctx| {
            FieldFuture::new(async move {
                let n = ctx.args.try_get("n")?.i64()?;
                Ok(Some(async_graphql::Value::from(n)))
            })
        })
        .argument(InputValue::new("n", TypeRef::named_nn(TypeRef::INT)));
        let schema = Schema::build("Query", None, None)
            .register(Object::new("Query").field(f))
            .extension(Validations::default())
            .extension(Counted(validated.clone()))
            .finish()
            .expect("schema");
        let run = |n: serde_json::Value| {
            let q = "query($n: Int!) { f(n: $n) }";
            let mut request = Request::new(q).variables(Variables::from_json(json!({ "n": n })));
            let doc = async_graphql::parser::parse_query(q).expect("parses");
            if let Some(key) = validation_key(schema.registry(), q, &doc, None, &request.variables)
            {
                request = request.data(key);
            }
            futures::executor::block_on(schema.execute(request))
        };
        let count = || validated.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(run(json!(1)).data, async_graphql::value!({ "f": 1 }));
        assert_eq!(count(), 1);
        assert_eq!(run(json!(2)).data, async_graphql::value!({ "f": 2 }));
        assert_eq!(count(), 1, "the second value reuses the first's validation");
        let refused = run(json!("two"));
        assert_eq!(count(), 2);
        assert!(
            refused.errors[0]
                .message
                .starts_with("Invalid value for argument"),
            "{:?}",
            refused.errors
        );
    }
}
