//! The GraphQL schema: generated entity fields merged with hand-written ones, and the limits
//! every request runs under.

pub mod acl;
pub mod crud;
pub mod filter;
pub mod input;
pub mod loaders;
pub mod meta;
pub mod page;
pub mod scalars;

use async_graphql::{EmptySubscription, MergedObject, Object, Schema};

use crate::config::Limits;
use crate::db::Db;
use crate::entities::{EntityMutation, EntityQuery};
use crate::graphql::crud::PageLimits;

/// Fields that are not per-entity.
#[derive(Default)]
pub struct SystemQuery;

#[Object]
impl SystemQuery {
    /// The caller as the gateway sees it: tenant, user and role from the verified token.
    async fn viewer(&self, ctx: &async_graphql::Context<'_>) -> crate::error::GqlResult<Viewer> {
        let rc = ctx
            .data_opt::<crate::auth::RequestContext>()
            .ok_or_else(|| {
                crate::error::ApiError::unauthenticated("a valid bearer token is required")
            })?;
        Ok(Viewer {
            tenant_id: async_graphql::ID(rc.tenant_id.to_string()),
            user_id: async_graphql::ID(rc.user_id.to_string()),
            role: rc.role.as_str().to_string(),
        })
    }
}

/// The authenticated caller.
#[derive(async_graphql::SimpleObject)]
pub struct Viewer {
    #[graphql(name = "tenantId")]
    pub tenant_id: async_graphql::ID,
    #[graphql(name = "userId")]
    pub user_id: async_graphql::ID,
    pub role: String,
}

#[derive(MergedObject, Default)]
pub struct Query(SystemQuery, EntityQuery);

#[derive(MergedObject, Default)]
pub struct Mutation(EntityMutation);

pub type GatewaySchema = Schema<Query, Mutation, EmptySubscription>;

/// Attaches the caller and its request-scoped loaders to a request.
pub fn with_caller(
    request: async_graphql::Request,
    db: &Db,
    rc: crate::auth::RequestContext,
) -> async_graphql::Request {
    request
        .data(loaders::for_request(db.clone(), rc.clone()))
        .data(rc)
}

/// Builds the schema. Without a database it still serves `export-schema` and introspection.
pub fn build(db: Option<Db>, limits: &Limits) -> GatewaySchema {
    let mut b = Schema::build(Query::default(), Mutation::default(), EmptySubscription)
        .limit_depth(limits.max_depth)
        .limit_complexity(limits.max_complexity)
        .limit_recursive_depth(64)
        .data(PageLimits {
            default: limits.default_page_size,
            max: limits.max_page_size,
        });
    if let Some(db) = db {
        b = b.data(db);
    }
    b.finish()
}
