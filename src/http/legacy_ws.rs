//! The legacy `graphql-ws` protocol (subscriptions-transport-ws, as in Apollo's old
//! `WebSocketLink`), served by async-graphql's implementation through an executor that applies
//! what `transport_ws` applies to its own protocol: the document limits and introspection
//! policy of `graphql::admit`, the subscriptions-per-socket cap, and no field suggestions for
//! callers not meant to see them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_graphql::{Data, Executor, Request, Response};
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::stream::BoxStream;
use futures::{SinkExt, StreamExt};

use super::AppState;
use crate::auth::RequestContext;
use crate::error::{server_error, ApiError};
use crate::graphql::{admit, scrub_suggestions, with_caller_data};

/// The schema as one legacy socket may use it.
#[derive(Clone)]
struct Guarded {
    state: Arc<AppState>,
    /// Set by `connection_init`.
    caller: Arc<Mutex<Option<RequestContext>>>,
    /// Operations running on the socket.
    running: Arc<AtomicUsize>,
}

/// Counts one running operation while it lives.
struct Running(Arc<AtomicUsize>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Guarded {
    fn caller(&self) -> Option<RequestContext> {
        self.caller.lock().ok().and_then(|c| c.clone())
    }

    fn refused(errors: Vec<async_graphql::ServerError>) -> BoxStream<'static, Response> {
        futures::stream::once(async move { Response::from_errors(errors) }).boxed()
    }
}

impl Executor for Guarded {
    async fn execute(&self, request: Request) -> Response {
        let rc = self.caller();
        let mut response = match admit(request, rc.as_ref(), &self.state.limits) {
            Ok(request) => self.state.schema.execute(request).await,
            Err(errors) => Response::from_errors(errors),
        };
        scrub_suggestions(&mut response.errors, rc.as_ref(), &self.state.limits);
        response
    }

    fn execute_stream(
        &self,
        request: Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response> {
        let limits = &self.state.limits;
        let rc = self.caller();
        if self.running.fetch_add(1, Ordering::Relaxed) >= limits.max_subscriptions_per_socket {
            self.running.fetch_sub(1, Ordering::Relaxed);
            return Self::refused(vec![server_error(ApiError::limit_exceeded(format!(
                "at most {} subscriptions per connection",
                limits.max_subscriptions_per_socket
            )))]);
        }
        let running = Running(self.running.clone());
        let request = match admit(request, rc.as_ref(), limits) {
            Ok(request) => request,
            Err(errors) => return Self::refused(errors),
        };
        let limits = limits.clone();
        Executor::execute_stream(&self.state.schema, request, session_data)
            .map(move |mut response| {
                let _alive = &running;
                scrub_suggestions(&mut response.errors, rc.as_ref(), &limits);
                response
            })
            .boxed()
    }
}

/// Serves one legacy socket until the client leaves or the instance drains.
pub(super) async fn serve(
    socket: WebSocket,
    state: Arc<AppState>,
    protocol: GraphQLProtocol,
    peer: Option<std::net::SocketAddr>,
) {
    let mut draining = state.draining.clone();
    let drained = async move {
        let drained = draining.wait_for(|d| *d).await.is_ok();
        if !drained {
            std::future::pending::<()>().await;
        }
    };
    // The sink is shared so that, on shutdown, the close frame goes out on it after
    // async-graphql's serving loop is dropped.
    let (sink, stream) = socket.split();
    let sink = Arc::new(tokio::sync::Mutex::new(sink));
    let shared = futures::sink::unfold(sink.clone(), |sink, msg: Message| async move {
        sink.lock().await.send(msg).await?;
        Ok::<_, axum::Error>(sink)
    });
    let executor = Guarded {
        state: state.clone(),
        caller: Arc::default(),
        running: Arc::default(),
    };
    let caller = executor.caller.clone();
    let serve = GraphQLWebSocket::new_with_pair(Box::pin(shared), stream, executor, protocol)
        .on_connection_init(move |payload| async move {
            let rc = super::ws::caller(&state, &payload, peer).await?;
            if let Ok(mut slot) = caller.lock() {
                *slot = Some(rc.clone());
            }
            let mut data = Data::default();
            with_caller_data(&mut data, &state.db, rc);
            Ok(data)
        })
        .serve();
    tokio::select! {
        _ = serve => {}
        _ = drained => {
            let close = Message::Close(Some(CloseFrame {
                code: 1001,
                reason: "Server shutting down".into(),
            }));
            let mut sink = sink.lock().await;
            let _ = tokio::time::timeout(Duration::from_secs(1), sink.send(close)).await;
        }
    }
}
