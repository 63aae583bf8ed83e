//! Behaviour beyond CRUD, written by hand on top of the engine: each module contributes
//! fields and write hooks through `graphql::schema::Extensions`.

pub mod forum;
pub mod notifications;
pub mod notify;
pub mod tasks;
pub mod users;

use std::time::Duration;

use async_graphql::dynamic::ResolverContext;
use futures::future::BoxFuture;

use crate::auth::RequestContext;
use crate::db::{Conn, Db};
use crate::error::ApiError;
use crate::graphql::crud::{caller, database};
use crate::graphql::schema::Extensions;

/// Every domain module's extensions.
pub fn extensions() -> Extensions {
    forum::extensions()
        .merge(tasks::extensions())
        .merge(notifications::extensions())
        .merge(users::extensions())
}

/// Runs `f` in one read-write transaction as the caller (its tenant, its checks).
pub(crate) async fn write<T, F>(ctx: &ResolverContext<'_>, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: for<'r> FnOnce(&'r mut Conn, RequestContext) -> BoxFuture<'r, Result<T, ApiError>>
        + Send
        + 'static,
{
    let rc = caller(ctx)?.clone();
    let inner = rc.clone();
    database(ctx)?
        .transaction(&rc, false, move |conn| f(conn, inner))
        .await
}

/// Runs the sweeps every `every` until the process ends: tasks past their SLA deadline are
/// escalated, expired notifications removed. Every instance runs them; the database makes
/// each escalation happen once (`tasks::sweep_overdue`).
pub fn start_sweeps(db: Db, every: Duration) {
    const BATCH: i32 = 100;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            // A full batch means more may be waiting.
            loop {
                match tasks::sweep_overdue(&db, BATCH).await {
                    Ok(n) if n == BATCH as usize => continue,
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!("SLA sweep failed: {}", e.message());
                        break;
                    }
                }
            }
            if let Err(e) = notifications::sweep_expired(&db, 1000).await {
                tracing::warn!("notification expiry failed: {}", e.message());
            }
        }
    });
}
