//! The `graphql-transport-ws` protocol as graphql-ws's PROTOCOL.md specifies it, close codes
//! included: 4400 bad message, 4401 subscribe before the ack, 4403 refused init, 4408 no init
//! in time, 4409 duplicate subscription id, 4429 second init. Also: a cap on subscriptions per
//! socket, the socket closed when its token expires or its credential stops holding (checked
//! every `GATEWAY_WS_RECHECK_SECS`), and a client that stops reading closed instead of buffered
//! for.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value as Json};
use tokio::time::Instant;

use super::operations::Operations;
use super::wakes::{Wakes, DRAIN, OPS, READ, TIMER};
use super::AppState;
use crate::auth::RequestContext;
use crate::error::{server_error, ApiError};
use crate::graphql::subscription::Delivery;
use crate::graphql::{admit, finish, with_caller};

/// How long one write may wait for a client that does not read before it counts as too slow.
const SLOW_CLIENT: Duration = Duration::from_secs(5);

/// The error for a subscription beyond the per-socket limit (both protocols).
pub(super) fn too_many_subscriptions(limits: &crate::config::Limits) -> ApiError {
    ApiError::limit_exceeded(format!(
        "at most {} subscriptions per connection",
        limits.max_subscriptions_per_socket
    ))
}

/// Why a write did not go through.
enum WriteError {
    Gone,
    TooSlow,
}

/// Writes one message, giving up on a client that has not read for `SLOW_CLIENT`: its
/// messages would otherwise pile up in the server.
async fn write(sink: &mut WebSocket, text: String) -> Result<(), WriteError> {
    let mut send = SinkExt::send(sink, Message::Text(text.into()));
    // Almost every write goes straight into the socket's buffer: the timer is armed only for
    // one that has to wait (10,000 deliveries of a change would otherwise each read the clock).
    if let std::task::Poll::Ready(sent) = futures::poll!(&mut send) {
        return sent.map_err(|_| WriteError::Gone);
    }
    match tokio::time::timeout(SLOW_CLIENT, send).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(WriteError::Gone),
        Err(_) => Err(WriteError::TooSlow),
    }
}

fn ended(e: WriteError) -> Option<(u16, &'static str)> {
    match e {
        WriteError::Gone => None,
        // 1008: policy violation.
        WriteError::TooSlow => Some((1008, "Client too slow")),
    }
}

fn close(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

/// When a signed-in socket's timer fires next: the token's expiry or the next credential
/// recheck, whichever is sooner.
fn next_check(
    now: Instant,
    expires_at: Option<Instant>,
    limits: &crate::config::Limits,
) -> Instant {
    let recheck_at = now + super::ws::recheck_interval(limits);
    expires_at.map_or(recheck_at, |at| at.min(recheck_at))
}

/// What woke a socket's task.
enum Event {
    Timer,
    Drain(bool),
    Op(Arc<str>, Option<Delivery>),
    Incoming(Option<Result<Message, axum::Error>>),
}

/// Serves one socket until either side closes it.
pub async fn serve(
    mut socket: WebSocket,
    state: Arc<AppState>,
    peer: Option<std::net::SocketAddr>,
) {
    let mut caller: Option<RequestContext> = None;
    let mut init_seen = false;
    // The socket's one timer: the initialisation deadline until `connection_init`, then the
    // token's expiry or the next credential recheck, whichever comes first.
    let timer = tokio::time::sleep(state.limits.ws_init_timeout);
    tokio::pin!(timer);
    let mut expires_at: Option<Instant> = None;
    let mut draining = state.draining.clone();
    // One waiter for the socket's life: made anew in every turn of the loop, it would join
    // and leave the watch's waiter list (under its lock) once per message.
    let drain = async move { draining.wait_for(|d| *d).await.is_ok() };
    tokio::pin!(drain);
    let mut drain_watch = true;
    // Each source is polled only when its own waker has fired (see `wakes`).
    let wakes = Wakes::new();
    let wakers = [OPS, READ, TIMER, DRAIN].map(|bit| wakes.waker(bit));
    let mut ops = Operations::new(wakers[0].clone());
    // Which of operations and the client's messages is looked at first, in turns: neither
    // can hold the other back.
    let mut ops_first = false;

    let outcome: Option<(u16, &'static str)> = loop {
        ops_first = !ops_first;
        let event = std::future::poll_fn(|cx| {
            let woken = wakes.take(cx);
            let order = if ops_first {
                [TIMER, DRAIN, OPS, READ]
            } else {
                [TIMER, DRAIN, READ, OPS]
            };
            for (k, bit) in order.into_iter().enumerate() {
                if woken & bit == 0 {
                    continue;
                }
                // Operations wake `wakers[0]` themselves; the others are given theirs here.
                let mut own = Context::from_waker(&wakers[bit.trailing_zeros() as usize]);
                let ready = match bit {
                    TIMER => timer.as_mut().poll(&mut own).map(|()| Event::Timer),
                    DRAIN if drain_watch => drain.as_mut().poll(&mut own).map(Event::Drain),
                    // Not watched any more.
                    DRAIN => continue,
                    // None yet: looked at when one is pushed.
                    OPS if ops.is_empty() => continue,
                    OPS => ops.poll_next().map(|(id, d)| Event::Op(id, d)),
                    _ => socket.poll_next_unpin(&mut own).map(Event::Incoming),
                };
                if let Poll::Ready(event) = ready {
                    // This one registered nothing and may have more; those not reached
                    // are still woken.
                    let rest = order[k + 1..].iter().fold(bit, |acc, b| acc | (woken & b));
                    wakes.mark(rest);
                    return Poll::Ready(event);
                }
            }
            Poll::Pending
        })
        .await;
        match event {
            Event::Timer => {
                let Some(rc) = &caller else {
                    break Some((4408, "Connection initialisation timeout"));
                };
                if expires_at.is_some_and(|at| at <= Instant::now()) {
                    break Some((4403, "Forbidden: the token has expired"));
                }
                // Boxed, as the sign-in below: rare work whose state would otherwise sit in
                // every socket's task for its whole life.
                if !Box::pin(super::ws::credential_holds(&state, rc)).await {
                    break Some((4403, "Forbidden: the credential no longer holds"));
                }
                timer
                    .as_mut()
                    .reset(next_check(Instant::now(), expires_at, &state.limits));
                wakes.mark(TIMER);
            }
            Event::Drain(drained) => {
                if drained {
                    // 1001: going away; the client reconnects (elsewhere) and resumes from
                    // its cursor.
                    break Some((1001, "Server shutting down"));
                }
                drain_watch = false;
            }
            Event::Op(id, result) => {
                let message = match result {
                    Some(Delivery::Next(rendered)) => {
                        ops.start(&id);
                        shared_next_message(&id, &rendered.payload)
                    }
                    Some(Delivery::Response(mut resp)) => {
                        finish(&mut resp, caller.as_ref(), &state.limits);
                        let first = !ops.start(&id);
                        if first && resp.data == async_graphql::Value::Null && resp.is_err() {
                            // Validation and similar errors: the operation never started.
                            ops.remove(&id);
                            let errors = serde_json::to_value(&resp.errors).unwrap_or(Json::Null);
                            json!({ "id": &*id, "type": "error", "payload": errors }).to_string()
                        } else {
                            next_message(&id, &resp)
                        }
                    }
                    None => json!({ "id": &*id, "type": "complete" }).to_string(),
                };
                if let Err(e) = write(&mut socket, message).await {
                    break ended(e);
                }
            }
            Event::Incoming(msg) => {
                let text = match msg {
                    Some(Ok(Message::Text(t))) => t.to_string(),
                    Some(Ok(Message::Binary(_))) => {
                        break Some((4400, "Binary messages are not supported"))
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break None,
                };
                let Ok(msg) = serde_json::from_str::<Json>(&text) else {
                    break Some((4400, "Invalid message received"));
                };
                match msg.get("type").and_then(Json::as_str) {
                    Some("connection_init") => {
                        if init_seen {
                            break Some((4429, "Too many initialisation requests"));
                        }
                        init_seen = true;
                        let payload = msg.get("payload").cloned().unwrap_or(Json::Null);
                        let Ok(rc) = Box::pin(super::ws::caller(&state, &payload, peer)).await
                        else {
                            break Some((4403, "Forbidden"));
                        };
                        let now = Instant::now();
                        expires_at = rc.expires_at.map(|exp| {
                            let left = exp - chrono::Utc::now().timestamp();
                            now + Duration::from_secs(left.max(0) as u64)
                        });
                        timer
                            .as_mut()
                            .reset(next_check(now, expires_at, &state.limits));
                        wakes.mark(TIMER);
                        caller = Some(rc);
                        let ack = json!({ "type": "connection_ack" }).to_string();
                        if let Err(e) = write(&mut socket, ack).await {
                            break ended(e);
                        }
                    }
                    Some("ping") => {
                        let mut pong = json!({ "type": "pong" });
                        if let Some(p) = msg.get("payload") {
                            pong["payload"] = p.clone();
                        }
                        if let Err(e) = write(&mut socket, pong.to_string()).await {
                            break ended(e);
                        }
                    }
                    Some("pong") => {}
                    Some("subscribe") => {
                        let Some(rc) = caller.clone() else {
                            break Some((4401, "Unauthorized"));
                        };
                        let (Some(id), Some(payload)) =
                            (msg.get("id").and_then(Json::as_str), msg.get("payload"))
                        else {
                            break Some((4400, "Invalid message received"));
                        };
                        if ops.contains(id) {
                            break Some((4409, "Subscriber for this id already exists"));
                        }
                        let Ok(request) =
                            serde_json::from_value::<async_graphql::Request>(payload.clone())
                        else {
                            break Some((4400, "Invalid message received"));
                        };
                        if ops.len() >= state.limits.max_subscriptions_per_socket {
                            let refused = server_error(too_many_subscriptions(&state.limits));
                            let err = json!({ "id": id, "type": "error", "payload": [refused] });
                            if let Err(e) = write(&mut socket, err.to_string()).await {
                                break ended(e);
                            }
                            continue;
                        }
                        let request = match admit(request, Some(&rc), &state.limits) {
                            Ok(r) => r,
                            Err(errors) => {
                                let err = json!({ "id": id, "type": "error", "payload": errors });
                                if let Err(e) = write(&mut socket, err.to_string()).await {
                                    break ended(e);
                                }
                                continue;
                            }
                        };
                        let request = with_caller(request, &state.db, rc.clone());
                        ops.push(id.into(), state.schema.subscribe(request, &rc, None));
                        // Its first poll starts it.
                        wakes.mark(OPS);
                    }
                    Some("complete") => {
                        if let Some(id) = msg.get("id").and_then(Json::as_str) {
                            ops.remove(id);
                        }
                    }
                    _ => break Some((4400, "Invalid message received")),
                }
            }
        }
    };
    // Ends every operation of the socket (their feeds forget them).
    drop(ops);
    if let Some((code, reason)) = outcome {
        let _ =
            tokio::time::timeout(Duration::from_secs(1), socket.send(close(code, reason))).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), socket.close()).await;
}

/// A `next` message around a payload rendered once for every subscriber of its plan: the
/// bytes `next_message` writes for the same response.
fn shared_next_message(id: &str, payload: &str) -> String {
    let id = serde_json::to_string(id).unwrap_or_default();
    let mut out = String::with_capacity(id.len() + payload.len() + 32);
    out.push_str("{\"id\":");
    out.push_str(&id);
    out.push_str(",\"type\":\"next\",\"payload\":");
    out.push_str(payload);
    out.push('}');
    out
}

/// A `next` message, written straight from the executor's values: one serialization per
/// delivery, which 10,000 subscribers of one change pay 10,000 times.
fn next_message(id: &str, payload: &async_graphql::Response) -> String {
    #[derive(serde::Serialize)]
    struct Next<'a> {
        id: &'a str,
        #[serde(rename = "type")]
        kind: &'static str,
        payload: &'a async_graphql::Response,
    }
    serde_json::to_string(&Next {
        id,
        kind: "next",
        payload,
    })
    .unwrap_or_else(|_| json!({ "id": id, "type": "complete" }).to_string())
}
