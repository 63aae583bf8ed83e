//! The legacy `graphql-ws` protocol (subscriptions-transport-ws, as in Apollo's old
//! `WebSocketLink`), served by async-graphql's implementation through an executor that runs
//! every operation through the same pipeline as HTTP and `transport_ws` (`graphql::run`), and
//! closed on the same terms: no `connection_init` in time (4408), the token expired (4403),
//! the instance draining (1001).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_graphql::{Data, Executor, Request, Response};
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::stream::BoxStream;
use futures::{SinkExt, StreamExt};
use tokio::sync::watch;

use super::AppState;
use crate::auth::{Client, RequestContext};
use crate::error::server_error;
use crate::graphql::{admit, finish, run, with_caller_data};

/// The schema as one legacy socket may use it.
#[derive(Clone)]
struct Guarded {
    state: Arc<AppState>,
    /// Set by `connection_init`.
    caller: watch::Receiver<Option<RequestContext>>,
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
    /// The caller, while its token is valid: an expired one runs nothing, even in the
    /// moment before the socket is closed.
    fn caller(&self) -> Option<RequestContext> {
        let rc = self.caller.borrow().clone()?;
        let now = chrono::Utc::now().timestamp();
        match rc.expires_at {
            Some(exp) if exp <= now => None,
            _ => Some(rc),
        }
    }

    fn refused(errors: Vec<async_graphql::ServerError>) -> BoxStream<'static, Response> {
        futures::stream::once(async move { Response::from_errors(errors) }).boxed()
    }
}

impl Executor for Guarded {
    async fn execute(&self, request: Request) -> Response {
        let rc = self.caller();
        let client = Client {
            ip: rc.as_ref().and_then(|rc| rc.client_ip.clone()),
            user_agent: None,
        };
        let state = &self.state;
        run(&state.schema, &state.db, request, rc, client, &state.limits)
            .await
            .into_response()
    }

    fn execute_stream(
        &self,
        request: Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response> {
        let limits = &self.state.limits;
        let Some(rc) = self.caller() else {
            return Self::refused(vec![server_error(crate::error::ApiError::unauthenticated(
                "the token has expired",
            ))]);
        };
        if self.running.fetch_add(1, Ordering::Relaxed) >= limits.max_subscriptions_per_socket {
            self.running.fetch_sub(1, Ordering::Relaxed);
            return Self::refused(vec![server_error(
                super::transport_ws::too_many_subscriptions(limits),
            )]);
        }
        let running = Running(self.running.clone());
        let request = match admit(request, Some(&rc), limits) {
            Ok(request) => request,
            Err(errors) => return Self::refused(errors),
        };
        let limits = limits.clone();
        self.state
            .schema
            .subscribe(request, &rc, session_data)
            .map(move |delivery| {
                let mut response = delivery.into_response();
                let _alive = &running;
                finish(&mut response, Some(&rc), &limits);
                response
            })
            .boxed()
    }
}

/// Resolves when the socket must close: no caller within the init timeout, the caller's
/// token expired, or its credential stopped holding. Never resolves otherwise.
async fn deadline(
    state: Arc<AppState>,
    mut caller: watch::Receiver<Option<RequestContext>>,
) -> (u16, &'static str) {
    let init = tokio::time::timeout(state.limits.ws_init_timeout, async {
        caller.wait_for(Option::is_some).await.map(|rc| rc.clone())
    })
    .await;
    let rc = match init {
        Err(_) => return (4408, "Connection initialisation timeout"),
        Ok(Err(_)) | Ok(Ok(None)) => return std::future::pending().await,
        Ok(Ok(Some(rc))) => rc,
    };
    let expired = async {
        match rc.expires_at {
            Some(exp) => {
                let left = (exp - chrono::Utc::now().timestamp()).max(0) as u64;
                tokio::time::sleep(Duration::from_secs(left)).await;
            }
            None => std::future::pending().await,
        }
    };
    let ended = async {
        loop {
            tokio::time::sleep(super::ws::recheck_interval(&state.limits)).await;
            if !super::ws::credential_holds(&state, &rc).await {
                return;
            }
        }
    };
    tokio::select! {
        _ = expired => (4403, "Forbidden: the token has expired"),
        _ = ended => (4403, "Forbidden: the credential no longer holds"),
    }
}

/// Serves one legacy socket until the client leaves, its token expires or the instance
/// drains.
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
    // The sink is shared so that, on close, the close frame goes out on it after
    // async-graphql's serving loop is dropped.
    let (sink, stream) = socket.split();
    let sink = Arc::new(tokio::sync::Mutex::new(sink));
    let shared = futures::sink::unfold(sink.clone(), |sink, msg: Message| async move {
        sink.lock().await.send(msg).await?;
        Ok::<_, axum::Error>(sink)
    });
    let (set_caller, caller) = watch::channel(None);
    let executor = Guarded {
        state: state.clone(),
        caller: caller.clone(),
        running: Arc::default(),
    };
    let watched = state.clone();
    let serve = GraphQLWebSocket::new_with_pair(Box::pin(shared), stream, executor, protocol)
        .on_connection_init(move |payload| async move {
            let rc = super::ws::caller(&state, &payload, peer).await?;
            let mut data = Data::default();
            with_caller_data(&mut data, &state.db, rc.clone());
            set_caller.send_replace(Some(rc));
            Ok(data)
        })
        .serve();
    let (code, reason) = tokio::select! {
        _ = serve => return,
        _ = drained => (1001, "Server shutting down"),
        ended = deadline(watched, caller) => ended,
    };
    let close = Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }));
    let mut sink = sink.lock().await;
    let _ = tokio::time::timeout(Duration::from_secs(1), sink.send(close)).await;
}
