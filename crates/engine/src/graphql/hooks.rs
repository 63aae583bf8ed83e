//! Write hooks: hand-written code that runs inside a mutation's transaction after the engine
//! has written an entity's rows (to maintain counters, stamp derived fields, notify). A hook
//! that fails rolls the whole mutation back.

use std::collections::HashMap;
use std::sync::OnceLock;

use futures::future::BoxFuture;

use crate::caller::RequestContext;
use crate::db::Conn;
use crate::error::ApiError;
use crate::graphql::meta::EntityMeta;
use crate::graphql::row::Row;

/// What a mutation did to an entity's rows.
pub struct WriteEvent<'r> {
    /// The rows before (updates and deletes), ordered like `new` for updates.
    pub old: &'r [Row],
    /// The rows after (creates and updates).
    pub new: &'r [Row],
}

impl<'r> WriteEvent<'r> {
    pub fn created(rows: &'r [Row]) -> Self {
        WriteEvent {
            old: &[],
            new: rows,
        }
    }
    pub fn updated(old: &'r [Row], new: &'r [Row]) -> Self {
        WriteEvent { old, new }
    }
    pub fn deleted(rows: &'r [Row]) -> Self {
        WriteEvent {
            old: rows,
            new: &[],
        }
    }
}

/// A hook run after every write of its entity, in the same transaction.
pub type AfterWrite = for<'c> fn(
    &'c mut Conn,
    &'c RequestContext,
    &'static EntityMeta,
    &'c WriteEvent<'c>,
) -> BoxFuture<'c, Result<(), ApiError>>;

static AFTER_WRITE: OnceLock<HashMap<&'static str, Vec<AfterWrite>>> = OnceLock::new();

/// Installs the hooks of this process (the first schema built installs them; the hooks of
/// one binary are the same for every schema it builds).
pub fn install(hooks: Vec<(&'static str, AfterWrite)>) {
    AFTER_WRITE.get_or_init(|| {
        let mut by_entity: HashMap<&'static str, Vec<AfterWrite>> = HashMap::new();
        for (entity, hook) in hooks {
            by_entity.entry(entity).or_default().push(hook);
        }
        by_entity
    });
}

/// Whether `meta` has hooks (which may change the rows just written: the engine reads them
/// again for the mutation's payload).
pub fn any(meta: &EntityMeta) -> bool {
    AFTER_WRITE
        .get()
        .is_some_and(|h| h.get(meta.name).is_some_and(|v| !v.is_empty()))
}

/// Runs the hooks of `meta` for `event`.
pub async fn after_write(
    conn: &mut Conn,
    rc: &RequestContext,
    meta: &'static EntityMeta,
    event: WriteEvent<'_>,
) -> Result<(), ApiError> {
    let Some(hooks) = AFTER_WRITE.get().and_then(|h| h.get(meta.name)) else {
        return Ok(());
    };
    for hook in hooks {
        hook(conn, rc, meta, &event).await?;
    }
    Ok(())
}
