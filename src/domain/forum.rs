//! Forum counters: a thread's `replyCount` (its posts) and `lastPostAt` (its newest post's
//! creation) follow the posts written through any mutation, in the mutation's transaction.

use futures::future::{BoxFuture, FutureExt};
use uuid::Uuid;

use crate::audit::Change;
use crate::auth::RequestContext;
use crate::db::sql::{Filter, SortKey, SortOrder, SqlBuilder};
use crate::db::value::Value;
use crate::db::Conn;
use crate::error::ApiError;
use crate::graphql::crud::load_rows;
use crate::graphql::hooks::WriteEvent;
use crate::graphql::meta::{metadata, ColumnType, EntityMeta};
use crate::graphql::schema::Extensions;
use crate::live::outbox::{self, ChangeOp};

pub fn extensions() -> Extensions {
    Extensions {
        after_write: vec![("ForumPost", posts_written)],
        ..Extensions::default()
    }
}

fn posts_written<'c>(
    conn: &'c mut Conn,
    rc: &'c RequestContext,
    posts: &'static EntityMeta,
    event: &'c WriteEvent<'c>,
) -> BoxFuture<'c, Result<(), ApiError>> {
    async move {
        let mut threads: Vec<Uuid> = event
            .old
            .iter()
            .chain(event.new)
            .filter_map(|r| match r.value(posts, "thread_id") {
                Value::Uuid(id) => Some(id),
                _ => None,
            })
            .collect();
        threads.sort();
        threads.dedup();
        recount(conn, rc, threads).await
    }
    .boxed()
}

/// Recounts the threads `ids` from their posts. The threads are locked first, so the
/// recount (a statement of its own, with a snapshot taken after the lock) sees every post
/// committed before it: concurrent replies cannot lose a count.
async fn recount(conn: &mut Conn, rc: &RequestContext, ids: Vec<Uuid>) -> Result<(), ApiError> {
    let Some(threads) = metadata().entity("ForumThread") else {
        return Ok(());
    };
    if ids.is_empty() {
        return Ok(());
    }
    // FOR NO KEY UPDATE, not FOR UPDATE: the post's foreign key already holds a key-share
    // lock on its thread, which FOR UPDATE would have to upgrade (two concurrent replies
    // would deadlock), while a no-key-update lock coexists with key-share locks and queues
    // the replies of one thread behind each other.
    let mut b = SqlBuilder::new("SELECT ");
    b.select_list(threads);
    b.push(" FROM \"forum_threads\" t WHERE ");
    b.filter(&Filter::In {
        col: threads.id_column(),
        values: Value::UuidList(ids.clone()),
        negated: false,
    });
    b.order_by(&[SortKey::new(threads.id_column(), SortOrder::Asc)]);
    b.push(" FOR NO KEY UPDATE");
    let old = load_rows(conn, threads, b).await?;
    if old.is_empty() {
        return Ok(());
    }
    let mut b = SqlBuilder::new(
        "UPDATE \"forum_threads\" t SET \
         \"reply_count\" = (SELECT count(*) FROM \"forum_posts\" p WHERE p.\"tenant_id\" = t.\"tenant_id\" AND p.\"thread_id\" = t.\"id\"), \
         \"last_post_at\" = (SELECT max(p.\"created_at\") FROM \"forum_posts\" p WHERE p.\"tenant_id\" = t.\"tenant_id\" AND p.\"thread_id\" = t.\"id\") \
         WHERE t.\"tenant_id\" = ",
    );
    b.bind(Value::Uuid(rc.tenant_id), ColumnType::Uuid, false);
    b.push(" AND t.\"id\" = ANY(");
    b.bind(Value::UuidList(ids), ColumnType::Uuid, true);
    b.push(") RETURNING ");
    b.select_list(threads);
    let mut new = load_rows(conn, threads, b).await?;
    new.sort_by_key(|r| r.id());
    let changes: Vec<Change> = old
        .iter()
        .zip(&new)
        .filter(|(o, n)| o != n)
        .map(|(o, n)| Change::updated(threads, o, n))
        .collect();
    // Subscribers see the counters move; the audit trail keeps what people did.
    outbox::record(conn, threads, rc.tenant_id, ChangeOp::Updated, &changes).await
}
