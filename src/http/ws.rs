//! GraphQL over WebSocket on `/graphql`: the `graphql-transport-ws` protocol (our own, see
//! `transport_ws`) and the legacy `graphql-ws` one (async-graphql's), with the bearer token in
//! the `connection_init` payload; upgrades only from allowed `Origin`s.

use std::sync::Arc;

use async_graphql_axum::GraphQLProtocol;
use axum::extract::ws::{CloseFrame, Message, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::Value as Json;

use super::AppState;
use crate::error::ApiError;

/// Read buffer of one socket (allocated for its whole life): clients send small messages
/// (`connection_init` with a token, `subscribe`, `ping`); a larger one grows it as it comes.
const SOCKET_READ_BUFFER: usize = 1024;
/// What a socket's writes gather before they are flushed.
const SOCKET_WRITE_BUFFER: usize = 4096;

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

/// The caller a `connection_init` payload authenticates, seen from `peer`.
pub(super) async fn caller(
    state: &AppState,
    payload: &Json,
    peer: Option<std::net::SocketAddr>,
) -> Result<crate::auth::RequestContext, ApiError> {
    let token = token(payload).ok_or_else(|| {
        ApiError::unauthenticated("send {\"Authorization\": \"Bearer <token>\"} in connection_init")
    })?;
    let mut rc = state.keys.verify(&token).await?;
    rc.client_ip = peer.map(|p| p.ip().to_string());
    Ok(rc)
}

/// How old a credential epoch may be to stand for a socket's recheck (see
/// `Db::recheck_caller`): a second, or a quarter of the interval when that is shorter.
fn epoch_age(limits: &crate::config::Limits) -> std::time::Duration {
    (limits.ws_recheck / 4).min(std::time::Duration::from_secs(1))
}

/// When an open socket next checks its credential: within `ws_recheck` less the epoch's age,
/// at a random 75-100 % of it, so that sockets opened together (10,000 after a deploy) do not
/// all check in the same second, cycle after cycle; the configured interval stays the longest
/// a revoked credential goes unnoticed.
pub(super) fn recheck_interval(limits: &crate::config::Limits) -> std::time::Duration {
    (limits.ws_recheck - epoch_age(limits)).mul_f64(rand::random_range(0.75..=1.0))
}

/// Whether `rc`'s credential still holds: its sign-in session not ended, its tenant not
/// suspended, its user active, its operator token not revoked. A database that cannot answer
/// right now is not a reason to close the socket.
pub(super) async fn credential_holds(state: &AppState, rc: &crate::auth::RequestContext) -> bool {
    let within = epoch_age(&state.limits);
    !matches!(state.db.recheck_caller(rc, within).await, Err(e) if e.code() == "UNAUTHENTICATED")
}

pub async fn upgrade(state: Arc<AppState>, req: Request) -> Response {
    if *state.draining.borrow() {
        return (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "shutting down: connect to another instance",
        )
            .into_response();
    }
    if !origin_allowed(&state, req.headers()) {
        return (
            axum::http::StatusCode::FORBIDDEN,
            "this Origin may not open subscriptions (GATEWAY_ALLOWED_ORIGINS)",
        )
            .into_response();
    }
    let offered: Vec<String> = req
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|p| p.trim().to_string()))
        .collect();
    let (mut parts, _) = req.into_parts();
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        // tungstenite's defaults (128 KiB buffers, 64 MiB messages) suit file transfer; a
        // subscription socket carries small JSON messages, and there may be 10,000 of them.
        Ok(u) => u
            .read_buffer_size(SOCKET_READ_BUFFER)
            .write_buffer_size(SOCKET_WRITE_BUFFER)
            .max_message_size(state.limits.max_body_bytes)
            .max_frame_size(state.limits.max_body_bytes),
        Err(e) => return e.into_response(),
    };
    let peer = super::graphql_http::peer_from_parts(&parts);
    if offered.iter().any(|p| p == "graphql-transport-ws") {
        return upgrade
            .protocols(["graphql-transport-ws"])
            .on_upgrade(move |socket| {
                let open = super::metrics::SocketGuard::open();
                async move {
                    super::transport_ws::serve(socket, state, peer).await;
                    drop(open);
                }
            });
    }
    if !offered.iter().any(|p| p == "graphql-ws") {
        // PROTOCOL.md: a socket without a known subprotocol is closed with 4406.
        return upgrade.on_upgrade(|mut socket| async move {
            let _ = socket
                .send(Message::Close(Some(CloseFrame {
                    code: 4406,
                    reason: "Subprotocol not acceptable".into(),
                })))
                .await;
        });
    }
    // The legacy protocol of subscriptions-transport-ws, as async-graphql implements it.
    let protocol = match GraphQLProtocol::from_request_parts(&mut parts, &()).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    upgrade.protocols(["graphql-ws"]).on_upgrade(move |socket| {
        let open = super::metrics::SocketGuard::open();
        async move {
            super::legacy_ws::serve(socket, state, protocol, peer).await;
            drop(open);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::recheck_interval;
    use std::time::Duration;

    #[test]
    fn rechecks_are_spread_within_the_configured_interval() {
        let limits = crate::config::Limits {
            ws_recheck: Duration::from_secs(30),
            ..Default::default()
        };
        let waits: Vec<Duration> = (0..200).map(|_| recheck_interval(&limits)).collect();
        // Within 30 s less the second a credential epoch may be old.
        assert!(waits
            .iter()
            .all(|w| *w >= Duration::from_millis(21_750) && *w <= Duration::from_secs(29)));
        let (min, max) = (waits.iter().min(), waits.iter().max());
        assert!(
            max.zip(min)
                .is_some_and(|(a, b)| *a - *b > Duration::from_secs(3)),
            "{min:?}..{max:?}"
        );
    }
}
