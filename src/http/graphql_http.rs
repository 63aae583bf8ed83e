//! `/graphql` per the GraphQL-over-HTTP specification:
//! - POST with `Content-Type: application/json`; anything else is 415.
//! - GET with `query`, `operationName`, `variables` and `extensions` in the query string;
//!   mutations over GET are 405. A browser GET without a query gets GraphiQL.
//! - The response media type follows `Accept`: `application/graphql-response+json` (with
//!   4xx statuses for requests that never executed) or `application/json` (always 200 once the
//!   request is well-formed); anything else is 406.
//! - A missing or invalid bearer token is 401 with an `UNAUTHENTICATED` GraphQL error.
//! - A POST body may be a JSON array of requests (Apollo's BatchHttpLink, urql's batching):
//!   at most `GATEWAY_MAX_BATCH_OPERATIONS` of them, answered with an array in the same order.

use std::net::SocketAddr;
use std::sync::Arc;

use async_graphql::parser::types::{OperationDefinition, OperationType, Selection};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value as Json};

use super::AppState;
use crate::auth::Client;
use crate::error::ApiError;

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";
const JSON: &str = "application/json";

#[derive(Clone, Copy, PartialEq, Eq)]
enum MediaType {
    GraphqlResponse,
    Json,
}

impl MediaType {
    fn header(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            MediaType::GraphqlResponse => "application/graphql-response+json; charset=utf-8",
            MediaType::Json => "application/json; charset=utf-8",
        })
    }
}

/// Picks the response type from `Accept`; `None` when nothing acceptable is offered.
fn negotiate(headers: &HeaderMap) -> Option<MediaType> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Some(MediaType::Json);
    };
    let mut best: Option<(f32, MediaType)> = None;
    for part in accept.split(',') {
        let mut pieces = part.split(';');
        let ty = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
        let mut q = 1.0f32;
        for p in pieces {
            if let Some(v) = p.trim().strip_prefix("q=") {
                q = v.parse().unwrap_or(0.0);
            }
        }
        let media = match ty.as_str() {
            GRAPHQL_RESPONSE => MediaType::GraphqlResponse,
            JSON | "application/*" | "*/*" => MediaType::Json,
            _ => continue,
        };
        if q > 0.0
            && best.is_none_or(|(bq, bm)| {
                q > bq || (q == bq && media == MediaType::GraphqlResponse && bm != media)
            })
        {
            best = Some((q, media));
        }
    }
    best.map(|(_, m)| m)
}

fn json_response(status: StatusCode, media: MediaType, body: &Json) -> Response {
    bytes_response(status, media, body.to_string().into_bytes())
}

fn bytes_response(status: StatusCode, media: MediaType, body: Vec<u8>) -> Response {
    let mut res = (status, body).into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, media.header());
    if status == StatusCode::SERVICE_UNAVAILABLE {
        // The circuit's probe notices the database's return within a second.
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    res
}

/// A GraphQL response document, written straight from the executor's values: serialized
/// once, with no JSON tree built in between. `data` is left out for a request that never
/// ran, as the GraphQL-over-HTTP specification asks.
#[derive(serde::Serialize)]
struct Document<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a async_graphql::Value>,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    extensions: &'a std::collections::BTreeMap<String, async_graphql::Value>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    errors: &'a [async_graphql::ServerError],
}

fn document(response: &async_graphql::Response, not_executed: bool) -> Vec<u8> {
    let doc = Document {
        data: (!not_executed).then_some(&response.data),
        extensions: &response.extensions,
        errors: &response.errors,
    };
    serde_json::to_vec(&doc).unwrap_or_else(|_| internal_error_body())
}

/// The document around `data` a plan wrote as JSON text (a plan answers without errors):
/// the text goes out as it is, never parsed back into values.
fn rendered_document(response: &async_graphql::Response, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(b"{\"data\":");
    out.extend_from_slice(data);
    if !response.extensions.is_empty() {
        out.extend_from_slice(b",\"extensions\":");
        if serde_json::to_writer(&mut out, &response.extensions).is_err() {
            return internal_error_body();
        }
    }
    out.push(b'}');
    out
}

fn internal_error_body() -> Vec<u8> {
    error_body("INTERNAL", "internal error")
        .to_string()
        .into_bytes()
}

fn error_body(code: &str, message: &str) -> Json {
    json!({ "errors": [{ "message": message, "extensions": { "code": code } }] })
}

fn bad_request(media: MediaType, message: &str) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        media,
        &error_body("BAD_REQUEST", message),
    )
}

/// The GraphQL parameters of a request, before execution. The query may be left out for a
/// persisted one (`extensions.persistedQuery`, `documentId`; see `persisted`).
struct Params {
    query: Option<String>,
    operation_name: Option<String>,
    variables: Option<Map<String, Json>>,
    extensions: Option<Map<String, Json>>,
    document_id: Option<String>,
}

fn params_from_json(body: Json) -> Result<Params, &'static str> {
    let Json::Object(mut obj) = body else {
        return Err("the request body must be a JSON object");
    };
    let query = match obj.remove("query") {
        Some(Json::String(q)) => Some(q),
        None | Some(Json::Null) => None,
        Some(_) => return Err("query must be a string"),
    };
    let document_id = match obj.remove("documentId") {
        None | Some(Json::Null) => None,
        Some(Json::String(s)) => Some(s),
        Some(_) => return Err("documentId must be a string"),
    };
    let operation_name = match obj.remove("operationName") {
        None | Some(Json::Null) => None,
        Some(Json::String(s)) => Some(s),
        Some(_) => return Err("operationName must be a string"),
    };
    let variables = match obj.remove("variables") {
        None | Some(Json::Null) => None,
        Some(Json::Object(m)) => Some(m),
        Some(_) => return Err("variables must be an object"),
    };
    let extensions = match obj.remove("extensions") {
        None | Some(Json::Null) => None,
        Some(Json::Object(m)) => Some(m),
        Some(_) => return Err("extensions must be an object"),
    };
    Ok(Params {
        query,
        operation_name,
        variables,
        extensions,
        document_id,
    })
}

fn params_from_query_string(raw: &str) -> Result<Params, &'static str> {
    let mut query = None;
    let mut operation_name = None;
    let mut variables = None;
    let mut extensions = None;
    let mut document_id = None;
    for (k, v) in form_pairs(raw) {
        match k.as_str() {
            "query" => query = Some(v),
            "documentId" => document_id = Some(v).filter(|s| !s.is_empty()),
            "operationName" => operation_name = Some(v).filter(|s| !s.is_empty()),
            "variables" => {
                variables = object_param(&v).map_err(|_| "variables must be a JSON object")?
            }
            "extensions" => {
                extensions = object_param(&v).map_err(|_| "extensions must be a JSON object")?
            }
            _ => {}
        }
    }
    Ok(Params {
        query,
        operation_name,
        variables,
        extensions,
        document_id,
    })
}

/// A JSON object passed as a query-string parameter; empty or `null` is absent.
fn object_param(v: &str) -> Result<Option<Map<String, Json>>, ()> {
    if v.is_empty() {
        return Ok(None);
    }
    match serde_json::from_str::<Json>(v) {
        Ok(Json::Object(m)) => Ok(Some(m)),
        Ok(Json::Null) => Ok(None),
        _ => Err(()),
    }
}

/// `application/x-www-form-urlencoded` pairs of a query string.
fn form_pairs(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(b) => {
                    out.push(b);
                    i += 2;
                }
                Err(_) => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads the bearer token; the caller's context or a 401 response.
/// Top-level fields that run without a bearer token: they are how one gets a token.
const SIGN_IN_FIELDS: &[&str] = &["login", "refreshSession", "__typename"];

/// A mutation of sign-in fields only (no fragments: they could carry anything).
fn signs_in_only(op: &OperationDefinition) -> bool {
    op.ty == OperationType::Mutation
        && !op.selection_set.node.items.is_empty()
        && op.selection_set.node.items.iter().all(|s| match &s.node {
            Selection::Field(f) => SIGN_IN_FIELDS.contains(&f.node.name.node.as_str()),
            _ => false,
        })
}

fn client_of(headers: &HeaderMap, peer: Option<SocketAddr>) -> Client {
    Client {
        ip: peer.map(|p| p.ip().to_string()),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(512).collect()),
    }
}

async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    media: MediaType,
    client: &Client,
) -> Result<crate::auth::RequestContext, Box<Response>> {
    let unauthorized = |e: ApiError| {
        let mut res = json_response(
            StatusCode::UNAUTHORIZED,
            media,
            &error_body(e.code(), &e.message()),
        );
        res.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        Box::new(res)
    };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let Some(token) = token else {
        return Err(unauthorized(ApiError::unauthenticated(
            "send a bearer token: Authorization: Bearer <token>",
        )));
    };
    let mut rc = state.keys.verify(token).await.map_err(unauthorized)?;
    rc.client_ip = client.ip.clone();
    rc.user_agent = client.user_agent.clone();
    Ok(rc)
}

/// How a request arrived, besides its GraphQL parameters.
struct Arrival<'a> {
    method: Method,
    headers: &'a HeaderMap,
    /// The response type negotiated from `Accept`.
    media: MediaType,
    peer: Option<SocketAddr>,
}

/// The operation type as the metrics name it.
fn kind_of(ty: Option<OperationType>) -> &'static str {
    match ty {
        Some(OperationType::Query) => "query",
        Some(OperationType::Mutation) => "mutation",
        Some(OperationType::Subscription) => "subscription",
        None => "none",
    }
}

/// A response error's `extensions.code`.
fn error_code(e: &async_graphql::ServerError) -> String {
    e.extensions
        .as_ref()
        .and_then(|x| x.get("code"))
        .and_then(|v| match v {
            async_graphql::Value::String(s) => Some(s.clone()),
            async_graphql::Value::Enum(n) => Some(n.to_string()),
            _ => None,
        })
        .unwrap_or_else(|| "GRAPHQL_ERROR".to_string())
}

/// Runs one request in a span of its own (`graphql.request`), whose parent is the trace
/// context the request carries (W3C `traceparent`) when traces are exported.
async fn execute(
    state: &AppState,
    params: Params,
    arrival: &Arrival<'_>,
) -> Result<(StatusCode, Vec<u8>), Response> {
    use tracing::Instrument;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let span = tracing::info_span!(
        "graphql.request",
        otel.kind = "server",
        graphql.operation.name = params.operation_name.as_deref().unwrap_or("")
    );
    let _ = span.set_parent(crate::telemetry::parent_context(arrival.headers));
    execute_in_span(state, params, arrival)
        .instrument(span)
        .await
}

/// Runs one request: its status and response document, or a response that ends the whole
/// HTTP request (a mutation over GET, a missing or bad token).
async fn execute_in_span(
    state: &AppState,
    params: Params,
    arrival: &Arrival<'_>,
) -> Result<(StatusCode, Vec<u8>), Response> {
    let Arrival {
        method,
        headers,
        media,
        peer,
    } = arrival;
    let (headers, media, peer) = (*headers, *media, *peer);
    let started = std::time::Instant::now();
    let count = |kind: &'static str, outcome: &str| {
        state.metrics.request(kind, outcome, started.elapsed());
    };
    let query = match state.persisted.resolve(
        params.query,
        params.extensions.as_ref(),
        params.document_id.as_deref(),
    ) {
        Ok(q) => q,
        Err(refusal) => {
            count("none", refusal.code());
            // Not executed: 200 for application/json (Apollo's link reads the error), 400
            // for application/graphql-response+json.
            let status = match media {
                MediaType::Json => StatusCode::OK,
                MediaType::GraphqlResponse => StatusCode::BAD_REQUEST,
            };
            return Ok((
                status,
                error_body(refusal.code(), refusal.message())
                    .to_string()
                    .into_bytes(),
            ));
        }
    };
    // Over GET only queries run; decide before authenticating or executing anything.
    let doc = state.schema.parse(&query);
    let op = doc
        .as_ref()
        .ok()
        .and_then(|d| crate::graphql::operation(d, params.operation_name.as_deref()));
    if *method == Method::GET {
        {
            let op = op.map(|o| o.node.ty);
            if matches!(
                op,
                Some(OperationType::Mutation) | Some(OperationType::Subscription)
            ) {
                let mut res = json_response(
                    StatusCode::METHOD_NOT_ALLOWED,
                    media,
                    &error_body(
                        "METHOD_NOT_ALLOWED",
                        "only queries can be sent with GET; use POST",
                    ),
                );
                res.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("POST"));
                count(kind_of(op), "METHOD_NOT_ALLOWED");
                return Err(res);
            }
        }
    }
    let client = client_of(headers, peer);
    let anonymous =
        headers.get(header::AUTHORIZATION).is_none() && op.is_some_and(|o| signs_in_only(&o.node));
    let rc = if anonymous {
        None
    } else {
        match authenticate(state, headers, media, &client).await {
            Ok(rc) => {
                state.activity.touch(&state.db, &rc);
                Some(rc)
            }
            Err(res) => {
                count(kind_of(op.map(|o| o.node.ty)), "UNAUTHENTICATED");
                return Err(*res);
            }
        }
    };

    let kind = kind_of(op.map(|o| o.node.ty));
    let signing_in = op.is_some_and(|o| signs_in_only(&o.node));
    state.persisted.remember(params.extensions.as_ref(), &query);
    let mut request = async_graphql::Request::new(query);
    // Parsed once: the limits and the execution read this parse.
    if let Ok(doc) = doc {
        request.set_parsed_query(doc);
    }
    if let Some(name) = params.operation_name {
        request = request.operation_name(name);
    }
    if let Some(vars) = params.variables {
        request = request.variables(async_graphql::Variables::from_json(Json::Object(vars)));
    }
    if let Some(ext) = params.extensions {
        for (k, v) in ext {
            if let Ok(v) = async_graphql::Value::from_json(v) {
                request.extensions.insert(k, v);
            }
        }
    }
    let answer =
        crate::graphql::run(&state.schema, &state.db, request, rc, client, &state.limits).await;
    if let (Some(data), true) = (&answer.data_text, answer.response.errors.is_empty()) {
        count(kind, "ok");
        return Ok((StatusCode::OK, rendered_document(&answer.response, data)));
    }
    let response = answer.into_response();
    // Errors without a path came before execution (parse, validation): the request never ran.
    let not_executed = response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty());
    // Nothing but the database's absence (or a full pool) went wrong: 503, so that load
    // balancers and clients retry (after `Retry-After`) rather than read it as an answer.
    let unavailable = !response.errors.is_empty()
        && response
            .errors
            .iter()
            .all(|e| error_code(e) == crate::error::SERVICE_UNAVAILABLE);
    let status = if unavailable {
        StatusCode::SERVICE_UNAVAILABLE
    } else if media == MediaType::GraphqlResponse && not_executed {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let outcome = response.errors.first().map_or("ok".to_string(), error_code);
    if signing_in && matches!(outcome.as_str(), "UNAUTHENTICATED" | "LIMIT_EXCEEDED") {
        state.metrics.sign_in_failed();
    }
    count(kind, &outcome);
    Ok((status, document(&response, not_executed)))
}

/// One request's answer as an HTTP response.
async fn respond(state: &AppState, params: Params, arrival: &Arrival<'_>) -> Response {
    match execute(state, params, arrival).await {
        Ok((status, body)) => bytes_response(status, arrival.media, body),
        Err(res) => res,
    }
}

/// A batch: each request runs on its own, in order; the answer is the array of their
/// documents (200: some may have run, some not).
async fn execute_batch(state: &AppState, items: Vec<Json>, arrival: &Arrival<'_>) -> Response {
    let media = arrival.media;
    let max = state.limits.max_batch_operations;
    if items.is_empty() {
        return bad_request(media, "a batch must hold at least one request");
    }
    if items.len() > max {
        return json_response(
            StatusCode::BAD_REQUEST,
            media,
            &error_body(
                "LIMIT_EXCEEDED",
                &format!("a batch may hold at most {max} requests"),
            ),
        );
    }
    let mut answers = vec![b'['];
    // 503 only when every request of the batch was refused for the database's absence.
    let mut all_unavailable = true;
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            answers.push(b',');
        }
        match params_from_json(item) {
            Ok(params) => match execute(state, params, arrival).await {
                Ok((status, body)) => {
                    all_unavailable &= status == StatusCode::SERVICE_UNAVAILABLE;
                    answers.extend_from_slice(&body)
                }
                Err(res) => return res,
            },
            Err(msg) => {
                all_unavailable = false;
                answers.extend_from_slice(error_body("BAD_REQUEST", msg).to_string().as_bytes())
            }
        }
    }
    answers.push(b']');
    let status = if all_unavailable {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    bytes_response(status, media, answers)
}

fn peer_of(req: &Request) -> Option<SocketAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
}

pub(super) fn peer_from_parts(parts: &axum::http::request::Parts) -> Option<SocketAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
}

pub async fn get_handler(State(state): State<Arc<AppState>>, req: Request) -> Response {
    if super::ws::is_upgrade(&req) {
        return super::ws::upgrade(state, req).await;
    }
    let headers = req.headers().clone();
    let raw = req.uri().query().unwrap_or("").to_string();
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if wants_html && !raw.split('&').any(|p| p.starts_with("query=")) {
        return super::playground::page(&headers);
    }
    let Some(media) = negotiate(&headers) else {
        return (
            StatusCode::NOT_ACCEPTABLE,
            "accept application/graphql-response+json or application/json",
        )
            .into_response();
    };
    let params = match params_from_query_string(&raw) {
        Ok(p) => p,
        Err(msg) => return bad_request(media, msg),
    };
    let arrival = Arrival {
        method: Method::GET,
        headers: &headers,
        media,
        peer: peer_of(&req),
    };
    respond(&state, params, &arrival).await
}

pub async fn post_handler(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let headers = req.headers().clone();
    let peer = peer_of(&req);
    let Some(media) = negotiate(&headers) else {
        return (
            StatusCode::NOT_ACCEPTABLE,
            "accept application/graphql-response+json or application/json",
        )
            .into_response();
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    if content_type.as_deref() != Some(JSON) {
        return json_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            media,
            &error_body(
                "UNSUPPORTED_MEDIA_TYPE",
                "send the request as Content-Type: application/json",
            ),
        );
    }
    // The limit holds while the body streams in: a declared length past it is refused
    // before reading, and an undeclared one as soon as it passes it, with at most the limit
    // buffered.
    let limit = state.limits.max_body_bytes;
    let too_large = || {
        let mut res = json_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            media,
            &error_body(
                "LIMIT_EXCEEDED",
                &format!("the request body is larger than {limit} bytes"),
            ),
        );
        // The rest of the body is not read: the connection cannot carry another request.
        res.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
        res
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large();
    }
    let bytes: Bytes = match axum::body::to_bytes(req.into_body(), limit).await {
        Ok(b) => b,
        Err(_) => return too_large(),
    };
    let body: Json = match serde_json::from_slice(&bytes) {
        Ok(b) => b,
        Err(_) => return bad_request(media, "the request body is not valid JSON"),
    };
    let arrival = Arrival {
        method: Method::POST,
        headers: &headers,
        media,
        peer,
    };
    let body = match body {
        Json::Array(items) => return execute_batch(&state, items, &arrival).await,
        other => other,
    };
    let params = match params_from_json(body) {
        Ok(p) => p,
        Err(msg) => return bad_request(media, msg),
    };
    respond(&state, params, &arrival).await
}
