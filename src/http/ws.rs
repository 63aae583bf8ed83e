//! GraphQL over WebSocket on `/graphql`: the `graphql-transport-ws` protocol and the legacy
//! `graphql-ws` one, with the bearer token in the `connection_init` payload.

use std::sync::Arc;

use async_graphql::Data;
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, Request};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::Value as Json;

use super::AppState;
use crate::error::ApiError;
use crate::graphql::with_caller_data;

/// True for a WebSocket upgrade request.
pub fn is_upgrade(req: &Request) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// The token of a `connection_init` payload: `{"Authorization": "Bearer <token>"}` (any case),
/// as Apollo and urql send headers, or `{"token": "<token>"}`.
fn token(payload: &Json) -> Option<String> {
    let obj = payload.as_object()?;
    for (k, v) in obj {
        let Some(v) = v.as_str() else { continue };
        if k.eq_ignore_ascii_case("authorization") {
            let t = v
                .strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))?;
            return Some(t.trim().to_string());
        }
        if k == "token" {
            return Some(v.trim().to_string());
        }
    }
    obj.get("headers").and_then(token)
}

/// Browsers send `Origin` with every WebSocket handshake and apply no CORS to it, so a page
/// of any site could open a socket with a token it holds: only the gateway's own pages and
/// configured origins may. Clients that are not browsers send no `Origin`.
fn origin_allowed(state: &AppState, headers: &axum::http::HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let origin = origin.trim_end_matches('/');
    if state
        .allowed_origins
        .iter()
        .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let authority = origin.split_once("://").map(|(_, a)| a);
    matches!((host, authority), (Some(h), Some(a)) if h.eq_ignore_ascii_case(a))
}

pub async fn upgrade(state: Arc<AppState>, req: Request) -> Response {
    if !origin_allowed(&state, req.headers()) {
        return (
            axum::http::StatusCode::FORBIDDEN,
            "this Origin may not open subscriptions (GATEWAY_ALLOWED_ORIGINS)",
        )
            .into_response();
    }
    let (mut parts, _) = req.into_parts();
    let protocol = match GraphQLProtocol::from_request_parts(&mut parts, &()).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(u) => u,
        Err(e) => return e.into_response(),
    };
    let peer = super::graphql_http::peer_from_parts(&parts);
    upgrade
        .protocols(async_graphql::http::ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| async move {
            let schema = state.schema.clone();
            GraphQLWebSocket::new(socket, schema, protocol)
                .on_connection_init(move |payload| async move {
                    let token = token(&payload).ok_or_else(|| {
                        async_graphql::Error::from(ApiError::unauthenticated(
                            "send {\"Authorization\": \"Bearer <token>\"} in connection_init",
                        ))
                    })?;
                    let mut rc = state.keys.verify(&token)?;
                    rc.client_ip = peer.map(|p| p.ip().to_string());
                    let mut data = Data::default();
                    with_caller_data(&mut data, &state.db, rc);
                    Ok(data)
                })
                .serve()
                .await
        })
}
