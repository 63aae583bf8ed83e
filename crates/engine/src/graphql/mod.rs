//! The GraphQL schema, built at start-up from the installed catalog's metadata with the
//! binary's hand-written extensions, and the pipeline every operation runs through: the
//! limits, the caller and its loaders, errors given codes.

pub mod acl;
pub mod aggregate;
pub mod columns;
pub mod crud;
pub mod documents;
pub mod filter;
pub mod hooks;
pub mod input;
pub mod limits;
pub mod loaders;
pub mod meta;
pub mod nested;
pub mod page;
pub mod plan;
pub mod row;
pub mod schema;
pub mod subscription;

use std::sync::Arc;

use async_graphql::futures_util::stream::BoxStream;
use async_graphql::parser::types::Selection;
use async_graphql::{Data, Executor, Request, Response};
use futures::StreamExt;

use crate::config::{Limits, PlannedReads};
use crate::db::session::{Reads, Snapshot};
use crate::db::Db;
use crate::error::ApiError;
use crate::graphql::crud::PageLimits;
use crate::graphql::schema::cost::{Costs, TOO_COMPLEX};
use crate::graphql::schema::Extensions;
use crate::live::Hub;

/// The schema every transport executes: the engine's dynamic schema, and the complexity
/// budget it is charged against (counted by `engine::cost`, lists by page size).
#[derive(Clone)]
pub struct GatewaySchema {
    inner: async_graphql::dynamic::Schema,
    costs: Arc<Costs>,
    max_complexity: usize,
    planned_reads: PlannedReads,
    plan_counts: Arc<plan::PlanCounts>,
    documents: Arc<documents::Documents>,
    db: Option<Db>,
    hub: Option<Hub>,
    quota: Arc<crate::live::quota::SubscriptionQuota>,
    sub_plans: Arc<subscription::Plans>,
    sub_counts: Arc<subscription::SubscriptionCounts>,
}

impl GatewaySchema {
    /// The database the schema's resolvers use, when it has one.
    pub fn db(&self) -> Option<&Db> {
        self.db.as_ref()
    }

    /// The parse of a document's text (kept for the next request sending the same text).
    pub fn parse(
        &self,
        query: &str,
    ) -> async_graphql::parser::Result<async_graphql::parser::types::ExecutableDocument> {
        self.documents.parse(query)
    }

    /// How many operations plans answered, and left to the executor.
    pub fn plan_counts(&self) -> &plan::PlanCounts {
        &self.plan_counts
    }

    /// How many subscriptions ran planned, and their events' renders and deliveries.
    pub fn subscription_counts(&self) -> &subscription::SubscriptionCounts {
        &self.sub_counts
    }

    /// The subscription plans subscribers hold.
    pub fn subscription_plans(&self) -> &subscription::Plans {
        &self.sub_plans
    }

    /// The schema in SDL.
    pub fn sdl(&self) -> String {
        self.inner.sdl()
    }

    /// Refuses an operation over the complexity budget before anything runs; otherwise
    /// attaches the operation's plan when it has one (`plan`).
    fn prepare(&self, request: &mut Request) -> Option<Response> {
        // Taken out while the parse borrows the request, and put back: no copy per request.
        let mut variables = std::mem::take(&mut request.variables);
        let name = request.operation_name.take();
        let mut planned = None;
        let mut kept_as = None;
        let registry = self.inner.registry();
        // Parsed first: taken out, the text is then only the validation's key.
        let query = match request.parsed_query() {
            Ok(_) => Some(std::mem::take(&mut request.query)),
            Err(_) => None,
        };
        let within = request.parsed_query().ok().is_none_or(|doc| {
            with_defaults(doc, name.as_deref(), &mut variables);
            let within = schema::cost::check(
                &self.costs,
                doc,
                name.as_deref(),
                &variables,
                self.max_complexity,
            );
            if within && self.planned_reads != PlannedReads::Off {
                planned = plan::compile(doc, name.as_deref(), &variables);
            }
            if let (true, Some(query)) = (within, &query) {
                kept_as =
                    documents::validation_key(registry, query, doc, name.as_deref(), &variables);
            }
            within
        });
        if let Some(query) = query {
            request.query = query;
        }
        request.variables = variables;
        request.operation_name = name;
        if within {
            if let Some(p) = planned {
                request.data.insert(plan::Planned(Arc::new(p)));
            }
            if let Some(key) = kept_as {
                request.data.insert(key);
            }
            return None;
        }
        let err = crate::error::server_error(ApiError::limit_exceeded(TOO_COMPLEX));
        Some(Response::from_errors(vec![err]))
    }

    pub async fn execute(&self, request: impl Into<Request>) -> Response {
        let mut request = request.into();
        match self.prepare(&mut request) {
            Some(refused) => refused,
            None => self.inner.execute(request).await,
        }
    }

    /// Executes as [`Self::execute`] does, but a planned query's `data` comes back as the
    /// JSON text the plan wrote (the response's own `data` is then null), for a transport
    /// that sends it on as text.
    pub async fn execute_rendered(&self, request: impl Into<Request>) -> Answer {
        let mut request = request.into();
        if let Some(refused) = self.prepare(&mut request) {
            return Answer::of(refused);
        }
        let planned = request
            .data
            .contains_key(&std::any::TypeId::of::<plan::Planned>());
        let slot = planned.then(plan::RenderedData::default);
        if let Some(slot) = &slot {
            request.data.insert(slot.clone());
        }
        let response = self.inner.execute(request).await;
        Answer {
            response,
            data_text: slot.and_then(|s| s.take()),
        }
    }

    pub fn execute_stream(&self, request: impl Into<Request>) -> BoxStream<'static, Response> {
        Executor::execute_stream(self, request.into(), None)
    }

    /// Runs an operation of a WebSocket for `rc` (`session_data`: the socket's): a
    /// subscription plans cover as a planned one (see `subscription`), anything else as
    /// [`Executor::execute_stream`] does.
    pub fn subscribe(
        &self,
        mut request: Request,
        rc: &crate::caller::RequestContext,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, subscription::Delivery> {
        use subscription::Delivery;
        if let Some(refused) = self.prepare(&mut request) {
            return futures::stream::once(async move { Delivery::Response(Box::new(refused)) })
                .boxed();
        }
        let (Some(db), Some(hub)) = (self.db.clone(), self.hub.clone()) else {
            return self.executed(request, session_data);
        };
        if self.planned_reads == PlannedReads::Off
            || operation_type(&mut request)
                != Some(async_graphql::parser::types::OperationType::Subscription)
        {
            return self.executed(request, session_data);
        }
        let key = subscription::Plans::key(&request);
        let interned = self.sub_plans.get(&key);
        let compiled = match interned {
            Some(_) => None,
            None => {
                let name = request.operation_name.clone();
                let variables = request.variables.clone();
                match request.parsed_query() {
                    Ok(doc) => subscription::compile(
                        self.inner.registry(),
                        doc,
                        name.as_deref(),
                        &variables,
                    ),
                    Err(_) => None,
                }
            }
        };
        if interned.is_none() && compiled.is_none() {
            return self.executed(request, session_data);
        }
        let schema = self.clone();
        let sources = crate::live::Sources {
            rc: rc.clone(),
            db,
            hub,
            quota: self.quota.clone(),
        };
        // Boxed: a finished setup then leaves nothing behind in the subscription's stream.
        futures::stream::once(Box::pin(async move {
            let plan = match interned {
                Some(plan) => plan,
                None => {
                    // async-graphql validates it (an interned plan's document was).
                    let mut check = Request::new(request.query.clone())
                        .variables(request.variables.clone());
                    if let Ok(doc) = schema.parse(&check.query) {
                        check.set_parsed_query(doc);
                    }
                    check.operation_name = request.operation_name.clone();
                    check.introspection_mode = request.introspection_mode;
                    let answer = schema.inner.execute(check).await;
                    let valid = answer.data == async_graphql::Value::Null
                        && matches!(answer.errors.as_slice(), [e]
                            if e.message == subscription::NOT_ON_THIS_TRANSPORT && e.path.is_empty());
                    match compiled {
                        Some(c) if valid => schema.sub_plans.intern(key, c),
                        _ => return schema.executed(request, session_data),
                    }
                }
            };
            match schema.start_planned(plan, sources).await {
                Some(stream) => stream,
                // The executor answers with its errors.
                None => schema.executed(request, session_data),
            }
        }))
        .flatten()
        .boxed()
    }

    fn executed(
        &self,
        request: Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, subscription::Delivery> {
        Executor::execute_stream(&self.inner, request, session_data)
            .map(|r| subscription::Delivery::Response(Box::new(r)))
            .boxed()
    }

    /// The stream of a planned subscription; `None` when it cannot start (the executor then
    /// tells why).
    async fn start_planned(
        &self,
        plan: Arc<subscription::SubPlan>,
        sources: crate::live::Sources,
    ) -> Option<BoxStream<'static, subscription::Delivery>> {
        let meta = plan.meta;
        let filter = match &plan.filter {
            Some(w) => Some(filter::where_filter(meta, w, "where").ok()?),
            None => None,
        };
        let ops = crate::live::ops_arg(plan.ops.as_ref());
        let after = match &plan.after {
            Some(async_graphql::Value::String(s)) => Some(s.clone()),
            _ => None,
        };
        let changes = crate::live::changes_of(sources, meta, filter, ops, after)
            .await
            .ok()?;
        self.sub_counts
            .planned
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Some(
            subscription::Planned {
                changes,
                plan,
                counts: self.sub_counts.clone(),
                ended: false,
            }
            .boxed(),
        )
    }
}

/// The operation a document runs as the executor finds it: the one named, or the only one.
pub fn operation<'d>(
    doc: &'d async_graphql::parser::types::ExecutableDocument,
    name: Option<&str>,
) -> Option<&'d async_graphql::Positioned<async_graphql::parser::types::OperationDefinition>> {
    use async_graphql::parser::types::DocumentOperations;
    match (&doc.operations, name) {
        (DocumentOperations::Single(op), None) => Some(op),
        (DocumentOperations::Multiple(ops), Some(n)) => ops.get(n),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => ops.values().next(),
        _ => None,
    }
}

/// The operation a document runs when it is of type `ty` with no directives of its own: what
/// query and subscription plans start from.
pub(crate) fn plannable_operation<'d>(
    doc: &'d async_graphql::parser::types::ExecutableDocument,
    name: Option<&str>,
    ty: async_graphql::parser::types::OperationType,
) -> Option<&'d async_graphql::Positioned<async_graphql::parser::types::OperationDefinition>> {
    operation(doc, name).filter(|op| op.node.ty == ty && op.node.directives.is_empty())
}

/// The type of the operation a request runs (parsed once; execution reuses the parse).
fn operation_type(request: &mut Request) -> Option<async_graphql::parser::types::OperationType> {
    let name = request.operation_name.clone();
    let doc = request.parsed_query().ok()?;
    operation(doc, name.as_deref()).map(|op| op.node.ty)
}

/// Gives the operation's variables their declared defaults where the request leaves them
/// out. The executor applies defaults to arguments, but async-graphql 7.2 reads `@skip(if:)`
/// and `@include(if:)` from the given variables only, so a default of `true` counted as
/// false there; the GraphQL specification applies defaults everywhere.
fn with_defaults(
    doc: &async_graphql::parser::types::ExecutableDocument,
    name: Option<&str>,
    variables: &mut async_graphql::Variables,
) {
    let Some(op) = operation(doc, name) else {
        return;
    };
    for def in &op.node.variable_definitions {
        let var = &def.node.name.node;
        if let Some(default) = def.node.default_value() {
            if !variables.contains_key(var) {
                variables.insert(var.clone(), default.clone());
            }
        }
    }
}

impl Executor for GatewaySchema {
    async fn execute(&self, request: Request) -> Response {
        GatewaySchema::execute(self, request).await
    }

    fn execute_stream(
        &self,
        mut request: Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response> {
        match self.prepare(&mut request) {
            Some(refused) => futures::stream::once(async move { refused }).boxed(),
            None => Executor::execute_stream(&self.inner, request, session_data),
        }
    }
}

/// Admits a request for `rc` (None: anonymous): the document limits, and introspection only
/// for those the configuration allows. Parses the query once; execution reuses the parse.
pub fn admit(
    mut request: async_graphql::Request,
    rc: Option<&crate::caller::RequestContext>,
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

fn exposed(to: crate::config::Exposure, rc: Option<&crate::caller::RequestContext>) -> bool {
    to == crate::config::Exposure::Everyone
        || rc.is_some_and(|rc| rc.role == crate::caller::Role::Admin)
}

/// Drops "Did you mean ...?" hints from errors for callers not meant to learn field names.
pub fn scrub_suggestions(
    errors: &mut [async_graphql::ServerError],
    rc: Option<&crate::caller::RequestContext>,
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

/// A response, with its `data` as JSON text when a plan wrote it (`response.data` is then
/// null).
pub struct Answer {
    pub response: async_graphql::Response,
    pub data_text: Option<Vec<u8>>,
}

impl Answer {
    fn of(response: async_graphql::Response) -> Self {
        Answer {
            response,
            data_text: None,
        }
    }

    /// The response with values for `data` (for a transport that serializes them itself).
    pub fn into_response(self) -> async_graphql::Response {
        let mut response = self.response;
        if let Some(values) = self.data_text.as_deref().and_then(plan::values_of) {
            response.data = values;
        }
        response
    }
}

/// The one pipeline the HTTP and `graphql-ws` transports run an operation through: document
/// limits and introspection policy ([`admit`]), the caller and its loaders attached,
/// suggestions scrubbed and every error given a code.
pub async fn run(
    schema: &GatewaySchema,
    db: &Db,
    request: async_graphql::Request,
    rc: Option<crate::caller::RequestContext>,
    client: crate::caller::Client,
    limits: &Limits,
) -> Answer {
    let mut answer = match admit(request, rc.as_ref(), limits) {
        Ok(request) => {
            let request = match rc.clone() {
                Some(rc) => with_caller(request, db, rc),
                None => request,
            };
            schema.execute_rendered(request.data(client)).await
        }
        Err(errors) => Answer::of(async_graphql::Response::from_errors(errors)),
    };
    finish(&mut answer.response, rc.as_ref(), limits);
    answer
}

/// What [`run`] does to every response, for streams too (subscriptions).
pub fn finish(
    response: &mut async_graphql::Response,
    rc: Option<&crate::caller::RequestContext>,
    limits: &Limits,
) {
    scrub_suggestions(&mut response.errors, rc, limits);
    for err in &mut response.errors {
        crate::error::classify_engine_error(err);
    }
}

/// Attaches the caller, where it comes from (sign-in limits per address apply on every
/// transport), where its reads go and its request-scoped loaders to a request. A query
/// operation reads through one session (one connection, one snapshot); a mutation's reads
/// each see what it wrote before them.
pub fn with_caller(
    mut request: async_graphql::Request,
    db: &Db,
    rc: crate::caller::RequestContext,
) -> async_graphql::Request {
    let reads = if operation_type(&mut request)
        == Some(async_graphql::parser::types::OperationType::Query)
    {
        Reads::Session(Arc::new(db.session(&rc, Snapshot::Shared)))
    } else {
        Reads::Each(db.clone(), rc.clone())
    };
    request
        .data(client_of(&rc))
        .data(loaders::for_request(reads.clone(), rc.clone()))
        .data(reads)
        .data(rc)
}

/// The same for a WebSocket connection: its subscriptions resolve events with these.
pub fn with_caller_data(
    data: &mut async_graphql::Data,
    db: &Db,
    rc: crate::caller::RequestContext,
) {
    let reads = Reads::Each(db.clone(), rc.clone());
    data.insert(client_of(&rc));
    data.insert(loaders::for_request(reads.clone(), rc.clone()));
    data.insert(reads);
    data.insert(rc);
}

fn client_of(rc: &crate::caller::RequestContext) -> crate::caller::Client {
    crate::caller::Client {
        ip: rc.client_ip.clone(),
        user_agent: rc.user_agent.clone(),
    }
}

/// Builds the schema of `metadata` with `extensions`. Without a database it still serves
/// `export-schema` and introspection; without a hub, subscriptions answer with an error.
/// `data` adds what the extensions' resolvers need (the binary's sign-in, for one).
pub fn build(
    metadata: &'static meta::Metadata,
    extensions: Extensions,
    db: Option<Db>,
    hub: Option<Hub>,
    limits: &Limits,
    data: impl FnOnce(async_graphql::dynamic::SchemaBuilder) -> async_graphql::dynamic::SchemaBuilder,
) -> GatewaySchema {
    page::set_cost_rows(limits.default_page_size, limits.max_page_size);
    let quota = Arc::new(crate::live::quota::SubscriptionQuota::new(limits));
    let mut b = schema::schema(metadata, extensions)
        .limit_recursive_depth(64)
        .data(quota.clone())
        .data(PageLimits {
            default: limits.default_page_size,
            max: limits.max_page_size,
        });
    if let Some(db) = db.clone() {
        b = b.data(db);
    }
    if let Some(hub) = hub.clone() {
        b = b.data(hub);
    }
    b = data(b);
    b = b.extension(documents::Validations::default());
    let plan_counts = Arc::new(plan::PlanCounts::default());
    if limits.planned_reads != PlannedReads::Off {
        b = b.extension(plan::Planner {
            mode: limits.planned_reads,
            counts: plan_counts.clone(),
        });
    }
    // The catalog was validated, and the engine builds the same types from any valid one:
    // a schema that does not finish is a bug in the engine, found by every test.
    let inner = match b.finish() {
        Ok(schema) => schema,
        Err(e) => panic!("the engine built an invalid schema: {e}"),
    };
    GatewaySchema {
        costs: Arc::new(Costs::of(inner.registry())),
        max_complexity: limits.max_complexity,
        planned_reads: limits.planned_reads,
        plan_counts,
        documents: Default::default(),
        inner,
        db,
        hub,
        quota,
        sub_plans: Arc::default(),
        sub_counts: Arc::default(),
    }
}
