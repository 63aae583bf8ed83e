//! The GraphQL schema: generated entity fields merged with hand-written ones, and the limits
//! every request runs under.

pub mod account;
pub mod acl;
pub mod crud;
pub mod filter;
pub mod input;
pub mod limits;
pub mod loaders;
pub mod meta;
pub mod page;
pub mod scalars;

use async_graphql::parser::types::Selection;
use async_graphql::{MergedObject, MergedSubscription, Object, Schema, Subscription};
use futures::{Stream, StreamExt};

use crate::config::Limits;
use crate::db::Db;
use crate::entities::notifications::{Notification, NotificationChange, NotificationWhere};
use crate::entities::{EntityMutation, EntityQuery, EntitySubscription};
use crate::error::ApiError;
use crate::graphql::crud::PageLimits;
use crate::live::{ChangeOp, Hub};

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
        // Entering the tenant refuses a suspended tenant, an inactive user or a revoked
        // token, as every other field does; the token alone would not tell.
        crud::database(ctx)?.check_caller(rc).await?;
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
pub struct Query(SystemQuery, account::AccountQuery, EntityQuery);

#[derive(MergedObject, Default)]
pub struct Mutation(account::AccountMutation, EntityMutation);

/// Subscriptions that are not per-entity.
#[derive(Default)]
pub struct SystemSubscription;

#[Subscription]
impl SystemSubscription {
    /// The caller's own notifications: each new one, and changes such as being read.
    /// `after` (a change's cursor) first replays what was missed.
    #[graphql(name = "myNotifications")]
    async fn my_notifications(
        &self,
        ctx: &async_graphql::Context<'_>,
        after: Option<String>,
    ) -> Result<impl Stream<Item = crate::error::GqlResult<NotificationChange>>, async_graphql::Error>
    {
        let rc = ctx
            .data_opt::<crate::auth::RequestContext>()
            .ok_or_else(|| {
                crate::error::ApiError::unauthenticated("a valid bearer token is required")
            })?;
        let mine = NotificationWhere {
            user_id: Some(crate::graphql::filter::IdFilter {
                equals: Some(async_graphql::ID(rc.user_id.to_string())),
                ..Default::default()
            }),
            ..Default::default()
        };
        let ops = vec![ChangeOp::Created, ChangeOp::Updated];
        let changes =
            crate::live::changes::<Notification, _>(ctx, Some(&mine), Some(ops), after).await?;
        Ok(changes.map(|c| c.map(NotificationChange)))
    }
}

/// Named `SubscriptionRoot`: the catalog's billing entity is called `Subscription`.
#[derive(MergedSubscription, Default)]
#[graphql(name = "SubscriptionRoot")]
pub struct Subscription(SystemSubscription, EntitySubscription);

pub type GatewaySchema = Schema<Query, Mutation, Subscription>;

/// Admits a request for `rc` (None: anonymous): the document limits, and introspection only
/// for those the configuration allows. Parses the query once; execution reuses the parse.
pub fn admit(
    mut request: async_graphql::Request,
    rc: Option<&crate::auth::RequestContext>,
    limits: &Limits,
) -> Result<async_graphql::Request, Vec<async_graphql::ServerError>> {
    if let Ok(doc) = request.parsed_query() {
        limits::check(doc, limits).map_err(|e| vec![crate::error::server_error(e)])?;
    }
    if !exposed(limits.introspection, rc) {
        let asks = request.parsed_query().is_ok_and(|doc| {
            doc.operations.iter().any(|(_, op)| {
                op.node.selection_set.node.items.iter().any(|s| {
                    matches!(&s.node, Selection::Field(f) if f.node.name.node == "__schema" || f.node.name.node == "__type")
                })
            })
        });
        if asks {
            return Err(vec![crate::error::server_error(ApiError::forbidden(
                "introspection is only for admins here",
            ))]);
        }
        // Nested or in fragments: answered with null.
        request = request.disable_introspection();
    }
    Ok(request)
}

fn exposed(to: crate::config::Exposure, rc: Option<&crate::auth::RequestContext>) -> bool {
    to == crate::config::Exposure::Everyone
        || rc.is_some_and(|rc| rc.role == crate::auth::Role::Admin)
}

/// Drops "Did you mean ...?" hints from errors for callers not meant to learn field names.
pub fn scrub_suggestions(
    errors: &mut [async_graphql::ServerError],
    rc: Option<&crate::auth::RequestContext>,
    limits: &Limits,
) {
    if exposed(limits.suggestions, rc) {
        return;
    }
    for e in errors {
        if let Some(i) = e.message.find(" Did you mean") {
            e.message.truncate(i);
        }
    }
}

/// The one pipeline every transport runs an operation through (HTTP and both WebSocket
/// protocols): document limits and introspection policy ([`admit`]), the caller and its
/// loaders attached, suggestions scrubbed and every error given a code.
pub async fn run(
    schema: &GatewaySchema,
    db: &Db,
    request: async_graphql::Request,
    rc: Option<crate::auth::RequestContext>,
    client: crate::auth::Client,
    limits: &Limits,
) -> async_graphql::Response {
    let mut response = match admit(request, rc.as_ref(), limits) {
        Ok(request) => {
            let request = match rc.clone() {
                Some(rc) => with_caller(request, db, rc),
                None => request,
            };
            schema.execute(request.data(client)).await
        }
        Err(errors) => async_graphql::Response::from_errors(errors),
    };
    finish(&mut response, rc.as_ref(), limits);
    response
}

/// What [`run`] does to every response, for streams too (subscriptions).
pub fn finish(
    response: &mut async_graphql::Response,
    rc: Option<&crate::auth::RequestContext>,
    limits: &Limits,
) {
    scrub_suggestions(&mut response.errors, rc, limits);
    for err in &mut response.errors {
        crate::error::classify_engine_error(err);
    }
}

/// Attaches the caller, where it comes from (sign-in limits per address apply on every
/// transport) and its request-scoped loaders to a request.
pub fn with_caller(
    request: async_graphql::Request,
    db: &Db,
    rc: crate::auth::RequestContext,
) -> async_graphql::Request {
    request
        .data(client_of(&rc))
        .data(loaders::for_request(db.clone(), rc.clone()))
        .data(rc)
}

/// The same for a WebSocket connection: its subscriptions resolve events with these.
pub fn with_caller_data(data: &mut async_graphql::Data, db: &Db, rc: crate::auth::RequestContext) {
    data.insert(client_of(&rc));
    data.insert(loaders::for_request(db.clone(), rc.clone()));
    data.insert(rc);
}

fn client_of(rc: &crate::auth::RequestContext) -> crate::auth::Client {
    crate::auth::Client {
        ip: rc.client_ip.clone(),
        user_agent: rc.user_agent.clone(),
    }
}

/// Builds the schema. Without a database it still serves `export-schema` and introspection;
/// without a hub, subscriptions answer with an error; without accounts, signing in does.
pub fn build(
    db: Option<Db>,
    hub: Option<Hub>,
    accounts: Option<crate::auth::Accounts>,
    limits: &Limits,
) -> GatewaySchema {
    page::set_cost_rows(limits.default_page_size, limits.max_page_size);
    let mut b = Schema::build(
        Query::default(),
        Mutation::default(),
        Subscription::default(),
    )
    .limit_complexity(limits.max_complexity)
    .limit_recursive_depth(64)
    .data(std::sync::Arc::new(
        crate::live::quota::SubscriptionQuota::new(limits),
    ))
    .data(PageLimits {
        default: limits.default_page_size,
        max: limits.max_page_size,
    });
    if let Some(db) = db {
        b = b.data(db);
    }
    if let Some(hub) = hub {
        b = b.data(hub);
    }
    if let Some(accounts) = accounts {
        b = b.data(accounts);
    }
    b.finish()
}
