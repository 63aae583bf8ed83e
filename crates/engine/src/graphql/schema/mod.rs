//! The engine: the GraphQL schema built at start-up from the catalog's metadata, as an
//! async-graphql `dynamic` schema. One generic set of types and resolvers serves every entity
//! (`entity`), over the shared scalars and filters (`shared`); hand-written modules add their
//! own fields and write hooks through [`Extensions`].
//!
//! Nothing here is compiled per entity: an entity added to the catalog is served after a
//! restart, without a build.

mod aggregate;
pub mod cost;
mod entity;
pub mod forms;
mod nested;
mod shared;

use async_graphql::dynamic::{
    Field, FieldFuture, FieldValue, Object, ResolverContext, Schema, SchemaBuilder, Subscription,
    SubscriptionField, Type,
};
use async_graphql::Value as G;

use crate::error::ApiError;
use crate::graphql::hooks::AfterWrite;
use crate::graphql::meta::Metadata;

/// Types and root fields as they are built, in the order the SDL lists fields.
pub struct Registry {
    types: Vec<Type>,
    query: Vec<Field>,
    mutation: Vec<Field>,
    subscription: Vec<SubscriptionField>,
}

impl Registry {
    pub fn add(&mut self, t: impl Into<Type>) {
        self.types.push(t.into());
    }
}

/// What hand-written modules add to the engine's schema: root fields (listed before the
/// entities' own), types those fields use, fields on entity types, and write hooks that run
/// inside a mutation's transaction.
#[derive(Default)]
pub struct Extensions {
    pub types: Vec<Type>,
    pub query: Vec<Field>,
    pub mutation: Vec<Field>,
    pub subscription: Vec<SubscriptionField>,
    /// (entity name, field) pairs: extra fields of an entity's object type.
    pub entity_fields: Vec<(&'static str, Field)>,
    /// (entity name, hook) pairs: run after every create, update or delete of the entity.
    pub after_write: Vec<(&'static str, AfterWrite)>,
}

impl Extensions {
    /// Adds another module's extensions after these.
    pub fn merge(mut self, other: Extensions) -> Extensions {
        self.types.extend(other.types);
        self.query.extend(other.query);
        self.mutation.extend(other.mutation);
        self.subscription.extend(other.subscription);
        self.entity_fields.extend(other.entity_fields);
        self.after_write.extend(other.after_write);
        self
    }
}

/// Builds the schema of `metadata` with `extensions`; the caller adds data and limits and
/// finishes it.
pub fn schema(metadata: &'static Metadata, extensions: Extensions) -> SchemaBuilder {
    let mut r = Registry {
        types: Vec::new(),
        query: extensions.query,
        mutation: extensions.mutation,
        subscription: extensions.subscription,
    };
    crate::graphql::hooks::install(extensions.after_write);
    shared::register(&mut r, metadata);
    aggregate::register_shared(&mut r);
    let mut entity_fields = extensions.entity_fields;
    for meta in &metadata.entities {
        let extra: Vec<Field> = {
            let (mine, rest): (Vec<_>, Vec<_>) = entity_fields
                .into_iter()
                .partition(|(name, _)| *name == meta.name);
            entity_fields = rest;
            mine.into_iter().map(|(_, f)| f).collect()
        };
        entity::register(&mut r, metadata, meta, extra);
    }
    let mut query = Object::new("Query");
    for f in r.query {
        query = query.field(f);
    }
    let mut mutation = Object::new("Mutation");
    for f in r.mutation {
        mutation = mutation.field(f);
    }
    // Named `SubscriptionRoot`: the catalog's billing entity is called `Subscription`.
    let mut subscription = Subscription::new("SubscriptionRoot");
    for f in r.subscription {
        subscription = subscription.field(f);
    }
    let mut b = Schema::build("Query", Some("Mutation"), Some("SubscriptionRoot"))
        .register(query)
        .register(mutation)
        .register(subscription);
    for t in r.types.into_iter().chain(extensions.types) {
        b = b.register(t);
    }
    b
}

/// The parent value of a field, as the type its object resolves from.
pub fn parent<'a, T: std::any::Any>(ctx: &ResolverContext<'a>) -> Result<&'a T, ApiError> {
    ctx.parent_value
        .downcast_ref::<T>()
        .ok_or_else(|| ApiError::internal("a field resolved on an unexpected parent"))
}

/// An argument's value, unless absent or null.
pub fn arg<'b>(ctx: &'b ResolverContext<'_>, name: &str) -> Option<&'b G> {
    ctx.args
        .get(name)
        .map(|v| v.as_value())
        .filter(|v| !matches!(v, G::Null))
}

/// An Int argument.
pub fn int_arg(ctx: &ResolverContext<'_>, name: &str) -> Option<i32> {
    match arg(ctx, name) {
        Some(G::Number(n)) => n.as_i64().and_then(|n| i32::try_from(n).ok()),
        _ => None,
    }
}

/// A String argument.
pub fn string_arg(ctx: &ResolverContext<'_>, name: &str) -> Option<String> {
    match arg(ctx, name) {
        Some(G::String(s)) => Some(s.clone()),
        _ => None,
    }
}

/// An ID argument (empty when absent, which no ID check accepts).
pub fn id_arg(ctx: &ResolverContext<'_>, name: &str) -> async_graphql::ID {
    arg(ctx, name)
        .and_then(crate::graphql::input::id_of)
        .unwrap_or_default()
}

/// Adds a description when there is one.
pub fn described<T>(t: T, text: Option<&str>, with: fn(T, String) -> T) -> T {
    match text {
        Some(d) => with(t, doc(d)),
        None => t,
    }
}

/// A catalog description as documentation: each line trimmed.
pub fn doc(text: &str) -> String {
    text.lines().map(str::trim).collect::<Vec<_>>().join("\n")
}

/// A field whose value is computed without waiting.
pub fn ready<'a>(v: Result<Option<FieldValue<'a>>, ApiError>) -> FieldFuture<'a> {
    match v {
        Ok(v) => FieldFuture::Value(v),
        Err(e) => FieldFuture::new(async move { Err::<Option<FieldValue<'a>>, _>(e.into()) }),
    }
}

/// The `XConnection` (`edges`, `nodes`, `pageInfo`) and `XEdge` (`cursor`, `node`) types of
/// pages `P` whose nodes are `node` objects.
pub fn connection<P: crate::graphql::page::Connection>(
    conn: &str,
    edge: &str,
    node: &str,
) -> [Object; 2] {
    use crate::graphql::page::ConnectionEdge;
    let c = Object::new(conn)
        .field(Field::new(
            "edges",
            async_graphql::dynamic::TypeRef::named_nn_list_nn(edge),
            |ctx| {
                ready(parent::<P>(&ctx).map(|p| {
                    Some(FieldValue::list(
                        p.edges().iter().map(|e| FieldValue::borrowed_any(e)),
                    ))
                }))
            },
        ))
        .field(Field::new(
            "nodes",
            async_graphql::dynamic::TypeRef::named_nn_list_nn(node),
            |ctx| {
                ready(parent::<P>(&ctx).map(|p| {
                    Some(FieldValue::list(
                        p.edges().iter().map(|e| FieldValue::borrowed_any(e.node())),
                    ))
                }))
            },
        ))
        .field(Field::new(
            "pageInfo",
            async_graphql::dynamic::TypeRef::named_nn("PageInfo"),
            |ctx| ready(parent::<P>(&ctx).map(|p| Some(FieldValue::borrowed_any(p.info())))),
        ));
    let e = Object::new(edge)
        .field(Field::new(
            "cursor",
            async_graphql::dynamic::TypeRef::named_nn(async_graphql::dynamic::TypeRef::STRING),
            |ctx| {
                ready(
                    parent::<P::Edge>(&ctx)
                        .map(|e| Some(FieldValue::value(e.cursor().to_string()))),
                )
            },
        ))
        .field(Field::new(
            "node",
            async_graphql::dynamic::TypeRef::named_nn(node),
            |ctx| ready(parent::<P::Edge>(&ctx).map(|e| Some(FieldValue::borrowed_any(e.node())))),
        ));
    [c, e]
}
