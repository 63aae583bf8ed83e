//! The forum (seeds 000, 002): its operations beyond CRUD, and the write hook that keeps
//! posts and their threads true whoever writes them.
//!
//! Operations, each a root mutation running in one transaction with its audit rows and change
//! events:
//! - `startForumThread(input)`: a thread and its opening post at once; the slug is derived
//!   from the title and made unique in the category.
//! - `replyToForumThread(threadId, content, parentId, clientKey)`.
//! - `likeForumPost` / `unlikeForumPost`, `reactToForumPost` / `unreactToForumPost`: one
//!   reaction per user, post and kind (a unique key and `ON CONFLICT DO NOTHING`), the post's
//!   `likes` recounted under the post's row lock.
//! - `pinForumThread`, `lockForumThread` (admins), `viewForumThread` (anyone who reads it).
//!
//! The hook on ForumPost runs after every create, update and delete, generic or not: a locked
//! thread takes no new post, a parent must be a post of the same thread, the threads'
//! `replyCount` and `lastPostAt` are recounted, and the people concerned are notified (the
//! thread's author and the parent post's author of a reply, and users mentioned as
//! `@username`), in the same transaction.

use std::collections::{HashMap, HashSet};

use async_graphql::dynamic::{
    Field, FieldFuture, FieldValue, InputObject, InputValue, ResolverContext, TypeRef,
};
use async_graphql::Value as G;
use diesel::sql_types::{Array, Text, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use futures::future::{BoxFuture, FutureExt};
use serde_json::json;
use uuid::Uuid;

use super::write;
use crate::audit::{Action, Change};
use crate::auth::RequestContext;
use crate::db::sql::{Filter, SortKey, SortOrder, SqlBuilder};
use crate::db::value::Value;
use crate::db::Conn;
use crate::domain::notify::{self, Kind, Notice};
use crate::error::ApiError;
use crate::graphql::acl::{self, Op};
use crate::graphql::crud::{self, caller, load_rows, select_rows};
use crate::graphql::hooks::{self, WriteEvent};
use crate::graphql::input;
use crate::graphql::meta::{metadata, AclRole, ColumnType, EntityMeta};
use crate::graphql::row::Row;
use crate::graphql::schema::{arg, id_arg, Extensions};
use crate::live::outbox::{self, ChangeOp};

/// Mentions looked up per post: handles after the first ten distinct ones notify nobody.
pub const MAX_MENTIONS: usize = 10;
/// Longest `clientKey` a client may give.
const CLIENT_KEY_MAX: usize = 100;
/// Characters of a post quoted in the notifications about it.
const EXCERPT: usize = 280;
/// Characters of a title kept in a derived slug (room is left for a `-n` suffix).
const SLUG_BASE_MAX: usize = 180;
/// Notifications written per statement (six bound values each).
const NOTICES_PER_INSERT: usize = 1000;

pub fn extensions() -> Extensions {
    Extensions {
        types: vec![start_input().into()],
        mutation: mutations(),
        after_write: vec![("ForumPost", posts_written)],
        ..Extensions::default()
    }
}

// ---------------------------------------------------------------- entities

fn entity(name: &str) -> Result<&'static EntityMeta, ApiError> {
    metadata()
        .entity(name)
        .ok_or_else(|| ApiError::internal(format!("the catalog has no {name}")))
}

/// The forum's entities.
struct Forum {
    categories: &'static EntityMeta,
    threads: &'static EntityMeta,
    posts: &'static EntityMeta,
    reactions: &'static EntityMeta,
}

fn forum() -> Result<Forum, ApiError> {
    Ok(Forum {
        categories: entity("ForumCategory")?,
        threads: entity("ForumThread")?,
        posts: entity("ForumPost")?,
        reactions: entity("ForumReaction")?,
    })
}

fn uuid_of(v: Value) -> Option<Uuid> {
    match v {
        Value::Uuid(id) => Some(id),
        _ => None,
    }
}

fn text_of(v: Value) -> String {
    match v {
        Value::Text(s) => s,
        _ => String::new(),
    }
}

/// `WHERE t.tenant_id = <tenant> AND t.id = <id>`.
fn this_row(b: &mut SqlBuilder, rc: &RequestContext, id: Uuid) {
    b.push(" WHERE t.\"tenant_id\" = ");
    b.bind(Value::Uuid(rc.tenant_id), ColumnType::Uuid, false);
    b.push(" AND t.\"id\" = ");
    b.bind(Value::Uuid(id), ColumnType::Uuid, false);
}

/// The row `id` of `meta` that the caller may read, locked against concurrent changes
/// (`FOR NO KEY UPDATE`: inserts referencing it still proceed); NOT_FOUND otherwise, as for
/// another tenant's row.
async fn locked(
    conn: &mut Conn,
    meta: &'static EntityMeta,
    rc: &RequestContext,
    id: Uuid,
) -> Result<Row, ApiError> {
    let filter = Filter::and(vec![
        acl::row_scope(meta, rc, Op::Read),
        Filter::eq(meta.id_column(), Value::Uuid(id)),
    ]);
    let mut b = select_rows(meta, None, &filter, &[], Some(1), false);
    b.push(" FOR NO KEY UPDATE");
    load_rows(conn, meta, b)
        .await?
        .pop()
        .ok_or_else(|| ApiError::not_found(meta.name))
}

/// The row `id` of `meta` that the caller may read; NOT_FOUND otherwise.
async fn readable(
    conn: &mut Conn,
    meta: &'static EntityMeta,
    rc: &RequestContext,
    id: Uuid,
) -> Result<Row, ApiError> {
    let filter = Filter::and(vec![
        acl::row_scope(meta, rc, Op::Read),
        Filter::eq(meta.id_column(), Value::Uuid(id)),
    ]);
    crud::select(conn, meta, &filter, &[], Some(1), false)
        .await?
        .pop()
        .ok_or_else(|| ApiError::not_found(meta.name))
}

/// Serializes the transactions that use `key` until they end (a transaction-level advisory
/// lock; a hash collision only makes two unrelated keys wait for each other).
async fn serialize_on(conn: &mut Conn, key: &str) -> Result<(), ApiError> {
    diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind::<Text, _>(key)
        .execute(conn)
        .await?;
    Ok(())
}

// ---------------------------------------------------------------- inputs

/// A required, non-blank string argument or input field, bounded and without NUL.
fn required_text(
    v: Option<&G>,
    path: &str,
    field: &str,
    max: Option<u32>,
) -> Result<String, ApiError> {
    let at = input::at(path, field);
    let s = match v {
        Some(G::String(s)) => s.clone(),
        None | Some(G::Null) => {
            return Err(ApiError::bad_input(at.clone(), format!("{at} is required")));
        }
        Some(_) => {
            return Err(ApiError::bad_input(
                at.clone(),
                format!("{at} must be a string"),
            ))
        }
    };
    if s.trim().is_empty() {
        return Err(ApiError::bad_input(
            at.clone(),
            format!("{at} must not be blank"),
        ));
    }
    input::text(s, path, field, None, max)
}

/// An optional client key: non-blank, at most [`CLIENT_KEY_MAX`] characters.
fn client_key(v: Option<&G>, path: &str) -> Result<Option<String>, ApiError> {
    match v {
        None | Some(G::Null) => Ok(None),
        v => required_text(v, path, "clientKey", Some(CLIENT_KEY_MAX as u32)).map(Some),
    }
}

fn id_argument(ctx: &ResolverContext<'_>, name: &str) -> Result<Uuid, ApiError> {
    input::id(&id_arg(ctx, name), "", name)
}

fn optional_id(ctx: &ResolverContext<'_>, name: &str) -> Result<Option<Uuid>, ApiError> {
    arg(ctx, name).map(|v| input::id_value(v, name)).transpose()
}

fn flag(ctx: &ResolverContext<'_>, name: &str) -> bool {
    !matches!(arg(ctx, name), Some(G::Boolean(false)))
}

struct StartThread {
    category: Uuid,
    title: String,
    content: String,
    client_key: Option<String>,
}

fn read_start(ctx: &ResolverContext<'_>, threads: &EntityMeta) -> Result<StartThread, ApiError> {
    let v = arg(ctx, "input").ok_or_else(|| ApiError::bad_input("input", "input is required"))?;
    let fields = input::object(v, "input")?;
    let get = |name: &str| fields.get(name);
    let category = match get("categoryId") {
        Some(v) if !matches!(v, G::Null) => input::id_value(v, "input.categoryId")?,
        _ => {
            return Err(ApiError::bad_input(
                "input.categoryId",
                "input.categoryId is required",
            ))
        }
    };
    let title_max = threads.column("title").and_then(|c| c.max_length);
    Ok(StartThread {
        category,
        title: required_text(get("title"), "input", "title", title_max)?
            .trim()
            .to_string(),
        content: required_text(get("content"), "input", "content", None)?,
        client_key: client_key(get("clientKey"), "input")?,
    })
}

struct Reply {
    thread: Uuid,
    parent: Option<Uuid>,
    content: String,
    client_key: Option<String>,
}

fn read_reply(ctx: &ResolverContext<'_>) -> Result<Reply, ApiError> {
    Ok(Reply {
        thread: id_argument(ctx, "threadId")?,
        parent: optional_id(ctx, "parentId")?,
        content: required_text(arg(ctx, "content"), "", "content", None)?,
        client_key: client_key(arg(ctx, "clientKey"), "")?,
    })
}

/// The `kind` argument, one of `ForumReactionKind`'s values.
fn reaction_kind(ctx: &ResolverContext<'_>, reactions: &EntityMeta) -> Result<String, ApiError> {
    let kind = match arg(ctx, "kind") {
        Some(G::Enum(n)) => n.to_string(),
        Some(G::String(s)) => s.clone(),
        _ => return Err(ApiError::bad_input("kind", "kind is required")),
    };
    let known = reactions
        .column("kind")
        .is_some_and(|c| c.enum_values.contains(&kind.as_str()));
    if !known {
        return Err(ApiError::bad_input(
            "kind",
            "kind is not a ForumReactionKind",
        ));
    }
    Ok(kind)
}

// ---------------------------------------------------------------- operations

/// The post an earlier call with the caller's client key `key` made, if any; the key stays
/// locked until the transaction ends, so a retry racing its first attempt waits for it.
async fn keyed_post(
    conn: &mut Conn,
    rc: &RequestContext,
    posts: &'static EntityMeta,
    key: &str,
) -> Result<Option<Row>, ApiError> {
    serialize_on(
        conn,
        &format!("forum-post-key:{}:{}:{key}", rc.tenant_id, rc.user_id),
    )
    .await?;
    let mut b = SqlBuilder::new("SELECT ");
    b.select_list(posts);
    b.push(" FROM \"forum_posts\" t WHERE t.\"tenant_id\" = ");
    b.bind(Value::Uuid(rc.tenant_id), ColumnType::Uuid, false);
    b.push(" AND t.\"author_id\" = ");
    b.bind(Value::Uuid(rc.user_id), ColumnType::Uuid, false);
    b.push(" AND t.\"client_key\" = ");
    b.bind(Value::Text(key.to_string()), ColumnType::Text, false);
    b.push(" LIMIT 1");
    Ok(load_rows(conn, posts, b).await?.pop())
}

/// A new post by the caller, audited, with its change event and the post hooks (lock,
/// parent, counters, notifications).
async fn insert_post(
    conn: &mut Conn,
    rc: &RequestContext,
    posts: &'static EntityMeta,
    thread: Uuid,
    parent: Option<Uuid>,
    content: String,
    key: Option<String>,
) -> Result<Row, ApiError> {
    let mut b = SqlBuilder::new(
        "INSERT INTO \"forum_posts\" AS t (\"id\", \"tenant_id\", \"thread_id\", \"author_id\", \"parent_id\", \"content\", \"client_key\") VALUES (",
    );
    let values = [
        (Value::Uuid(Uuid::now_v7()), ColumnType::Uuid),
        (Value::Uuid(rc.tenant_id), ColumnType::Uuid),
        (Value::Uuid(thread), ColumnType::Uuid),
        (Value::Uuid(rc.user_id), ColumnType::Uuid),
        (parent.map_or(Value::Null, Value::Uuid), ColumnType::Uuid),
        (Value::Text(content), ColumnType::Text),
        (key.map_or(Value::Null, Value::Text), ColumnType::Text),
    ];
    for (i, (v, ty)) in values.into_iter().enumerate() {
        if i > 0 {
            b.push(", ");
        }
        b.bind(v, ty, false);
    }
    b.push(") RETURNING ");
    b.select_list(posts);
    let rows = load_rows(conn, posts, b).await?;
    let changes = rows.iter().map(|r| Change::created(posts, r)).collect();
    crud::record(conn, posts, rc, Action::Create, changes).await?;
    hooks::after_write(conn, rc, posts, WriteEvent::created(&rows)).await?;
    rows.into_iter()
        .next()
        .ok_or_else(|| ApiError::internal("insert returned no post"))
}

/// A slug for `title`: lower-case letters and digits, other runs of characters as one `-`.
fn slugify(title: &str) -> String {
    let mut slug = String::new();
    let mut kept = 0;
    for c in title.chars().flat_map(char::to_lowercase) {
        if kept >= SLUG_BASE_MAX {
            break;
        }
        if c.is_alphanumeric() {
            slug.push(c);
            kept += 1;
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
            kept += 1;
        }
    }
    let slug = slug.trim_end_matches('-');
    if slug.is_empty() {
        "thread".to_string()
    } else {
        slug.to_string()
    }
}

#[derive(diesel::QueryableByName)]
struct Slug {
    #[diesel(sql_type = Text)]
    slug: String,
}

/// The slug of `title` not yet taken in `category`: `base`, else `base-2`, `base-3`...
/// Starts of threads with the same base slug in the category wait for each other.
async fn unique_slug(
    conn: &mut Conn,
    rc: &RequestContext,
    category: Uuid,
    title: &str,
) -> Result<String, ApiError> {
    let base = slugify(title);
    serialize_on(
        conn,
        &format!("forum-slug:{}:{category}:{base}", rc.tenant_id),
    )
    .await?;
    let taken: Vec<Slug> = diesel::sql_query(
        "SELECT slug FROM forum_threads WHERE tenant_id = $1 AND category_id = $2 \
         AND (slug = $3 OR starts_with(slug, $3 || '-'))",
    )
    .bind::<SqlUuid, _>(rc.tenant_id)
    .bind::<SqlUuid, _>(category)
    .bind::<Text, _>(&base)
    .load(conn)
    .await?;
    if !taken.iter().any(|s| s.slug == base) {
        return Ok(base);
    }
    let used: HashSet<u64> = taken
        .iter()
        .filter_map(|s| {
            s.slug
                .strip_prefix(base.as_str())?
                .strip_prefix('-')?
                .parse()
                .ok()
        })
        .collect();
    let n = (2..=used.len() as u64 + 2)
        .find(|n| !used.contains(n))
        .unwrap_or(used.len() as u64 + 2);
    Ok(format!("{base}-{n}"))
}

async fn start_thread(
    conn: &mut Conn,
    rc: &RequestContext,
    s: StartThread,
) -> Result<Row, ApiError> {
    let f = forum()?;
    let key = s.client_key.map(|k| format!("thread:{k}"));
    if let Some(key) = &key {
        if let Some(post) = keyed_post(conn, rc, f.posts, key).await? {
            let thread = uuid_of(post.value(f.posts, "thread_id")).unwrap_or_default();
            return readable(conn, f.threads, rc, thread).await;
        }
    }
    readable(conn, f.categories, rc, s.category).await?;
    let slug = unique_slug(conn, rc, s.category, &s.title).await?;
    let mut b = SqlBuilder::new(
        "INSERT INTO \"forum_threads\" AS t (\"id\", \"tenant_id\", \"category_id\", \"author_id\", \"title\", \"slug\") VALUES (",
    );
    let values = [
        (Value::Uuid(Uuid::now_v7()), ColumnType::Uuid),
        (Value::Uuid(rc.tenant_id), ColumnType::Uuid),
        (Value::Uuid(s.category), ColumnType::Uuid),
        (Value::Uuid(rc.user_id), ColumnType::Uuid),
        (Value::Text(s.title), ColumnType::Text),
        (Value::Text(slug), ColumnType::Text),
    ];
    for (i, (v, ty)) in values.into_iter().enumerate() {
        if i > 0 {
            b.push(", ");
        }
        b.bind(v, ty, false);
    }
    b.push(") RETURNING ");
    b.select_list(f.threads);
    let threads = load_rows(conn, f.threads, b).await?;
    let thread = threads
        .as_slice()
        .first()
        .map(Row::id)
        .ok_or_else(|| ApiError::internal("insert returned no thread"))?;
    let changes = threads
        .iter()
        .map(|r| Change::created(f.threads, r))
        .collect();
    crud::record(conn, f.threads, rc, Action::Create, changes).await?;
    hooks::after_write(conn, rc, f.threads, WriteEvent::created(&threads)).await?;
    insert_post(conn, rc, f.posts, thread, None, s.content, key).await?;
    // As the opening post left it (its counters moved).
    readable(conn, f.threads, rc, thread).await
}

async fn reply(conn: &mut Conn, rc: &RequestContext, r: Reply) -> Result<Row, ApiError> {
    let f = forum()?;
    let key = r.client_key.map(|k| format!("reply:{k}"));
    if let Some(key) = &key {
        if let Some(post) = keyed_post(conn, rc, f.posts, key).await? {
            if uuid_of(post.value(f.posts, "thread_id")) != Some(r.thread) {
                return Err(ApiError::Conflict {
                    field: Some("clientKey".into()),
                    message: "clientKey was already used for a post in another thread".into(),
                });
            }
            return Ok(post);
        }
    }
    readable(conn, f.threads, rc, r.thread).await?;
    // The post hook refuses a locked thread and a parent from another thread.
    insert_post(conn, rc, f.posts, r.thread, r.parent, r.content, key).await
}

/// Gives (`on`) or takes back the caller's reaction `kind` to the post `id`; the post as it
/// is afterwards. Idempotent: a reaction given twice is one reaction.
async fn react(
    conn: &mut Conn,
    rc: &RequestContext,
    id: Uuid,
    kind: String,
    on: bool,
) -> Result<Row, ApiError> {
    let f = forum()?;
    let kind_type = f
        .reactions
        .column("kind")
        .map_or(ColumnType::Text, |c| c.ty);
    // Reactions to one post queue behind each other here, so that each recount (a
    // statement after the lock, with its own snapshot) sees every reaction committed before.
    let post = locked(conn, f.posts, rc, id).await?;
    let mut b = if on {
        let mut b = SqlBuilder::new(
            "INSERT INTO \"forum_reactions\" AS t (\"id\", \"tenant_id\", \"post_id\", \"user_id\", \"kind\") VALUES (",
        );
        b.bind(Value::Uuid(Uuid::now_v7()), ColumnType::Uuid, false);
        for v in [rc.tenant_id, id, rc.user_id] {
            b.push(", ");
            b.bind(Value::Uuid(v), ColumnType::Uuid, false);
        }
        b.push(", ");
        b.bind(Value::Text(kind.clone()), kind_type, false);
        b.push(
            ") ON CONFLICT (\"tenant_id\", \"post_id\", \"user_id\", \"kind\") DO NOTHING RETURNING ",
        );
        b
    } else {
        let mut b = SqlBuilder::new("DELETE FROM \"forum_reactions\" t WHERE t.\"tenant_id\" = ");
        b.bind(Value::Uuid(rc.tenant_id), ColumnType::Uuid, false);
        b.push(" AND t.\"post_id\" = ");
        b.bind(Value::Uuid(id), ColumnType::Uuid, false);
        b.push(" AND t.\"user_id\" = ");
        b.bind(Value::Uuid(rc.user_id), ColumnType::Uuid, false);
        b.push(" AND t.\"kind\" = ");
        b.bind(Value::Text(kind.clone()), kind_type, false);
        b.push(" RETURNING ");
        b
    };
    b.select_list(f.reactions);
    let rows = load_rows(conn, f.reactions, b).await?;
    if rows.is_empty() {
        // Already so: nothing changed.
        return Ok(post);
    }
    let (action, event) = if on {
        let changes = rows
            .iter()
            .map(|r| Change::created(f.reactions, r))
            .collect();
        (Action::Create, changes)
    } else {
        let changes = rows
            .iter()
            .map(|r| Change::deleted(f.reactions, r))
            .collect();
        (Action::Delete, changes)
    };
    crud::record(conn, f.reactions, rc, action, event).await?;
    let written = if on {
        WriteEvent::created(&rows)
    } else {
        WriteEvent::deleted(&rows)
    };
    hooks::after_write(conn, rc, f.reactions, written).await?;
    if kind != "LIKE" {
        return Ok(post);
    }
    let mut b = SqlBuilder::new(
        "UPDATE \"forum_posts\" t SET \"likes\" = (SELECT count(*) FROM \"forum_reactions\" r \
         WHERE r.\"tenant_id\" = t.\"tenant_id\" AND r.\"post_id\" = t.\"id\" AND r.\"kind\" = 'LIKE')",
    );
    this_row(&mut b, rc, id);
    b.push(" RETURNING ");
    b.select_list(f.posts);
    let new = load_rows(conn, f.posts, b)
        .await?
        .pop()
        .ok_or_else(|| ApiError::not_found(f.posts.name))?;
    if new != post {
        // Subscribers see the counter move; the audit trail keeps the reaction.
        let changes = [Change::updated(f.posts, &post, &new)];
        outbox::record(conn, f.posts, rc.tenant_id, ChangeOp::Updated, &changes).await?;
    }
    Ok(new)
}

/// Sets the boolean `column` of the thread `id` (an admin's pin or lock); the thread as it is
/// afterwards. Setting it to what it is already changes nothing.
async fn set_thread_flag(
    conn: &mut Conn,
    rc: &RequestContext,
    id: Uuid,
    column: &'static str,
    on: bool,
) -> Result<Row, ApiError> {
    let f = forum()?;
    let old = locked(conn, f.threads, rc, id).await?;
    if old.value(f.threads, column) == Value::Bool(on) {
        return Ok(old);
    }
    let mut b = SqlBuilder::new(&format!("UPDATE \"forum_threads\" t SET \"{column}\" = "));
    b.bind(Value::Bool(on), ColumnType::Bool, false);
    b.push(", \"updated_at\" = now()");
    this_row(&mut b, rc, id);
    b.push(" RETURNING ");
    b.select_list(f.threads);
    let new = load_rows(conn, f.threads, b).await?;
    let changes = new
        .iter()
        .map(|n| Change::updated(f.threads, &old, n))
        .collect();
    crud::record(conn, f.threads, rc, Action::Update, changes).await?;
    let old = [old];
    hooks::after_write(conn, rc, f.threads, WriteEvent::updated(&old, &new)).await?;
    new.into_iter()
        .next()
        .ok_or_else(|| ApiError::not_found(f.threads.name))
}

/// Counts one view of the thread `id`.
async fn view_thread(conn: &mut Conn, rc: &RequestContext, id: Uuid) -> Result<Row, ApiError> {
    let f = forum()?;
    let old = locked(conn, f.threads, rc, id).await?;
    let mut b = SqlBuilder::new(
        "UPDATE \"forum_threads\" t SET \"view_count\" = LEAST(t.\"view_count\", 2147483646) + 1",
    );
    this_row(&mut b, rc, id);
    b.push(" RETURNING ");
    b.select_list(f.threads);
    let new = load_rows(conn, f.threads, b)
        .await?
        .pop()
        .ok_or_else(|| ApiError::not_found(f.threads.name))?;
    let changes = [Change::updated(f.threads, &old, &new)];
    outbox::record(conn, f.threads, rc.tenant_id, ChangeOp::Updated, &changes).await?;
    Ok(new)
}

// ---------------------------------------------------------------- GraphQL

fn start_input() -> InputObject {
    InputObject::new("StartForumThreadInput")
        .description("A new thread with its opening post (`startForumThread`).")
        .field(InputValue::new("categoryId", TypeRef::named_nn(TypeRef::ID)))
        .field(
            InputValue::new("title", TypeRef::named_nn(TypeRef::STRING))
                .description("At most 200 characters, not blank; the thread's slug is derived from it."),
        )
        .field(
            InputValue::new("content", TypeRef::named_nn(TypeRef::STRING))
                .description("The opening post, not blank; `@username` mentions notify those users."),
        )
        .field(
            InputValue::new("clientKey", TypeRef::named(TypeRef::STRING)).description(
                "Any string of at most 100 characters unique to this attempt: a retry with the same key\nreturns the thread the first call started instead of starting another.",
            ),
        )
}

fn row_value(row: Row) -> Option<FieldValue<'static>> {
    Some(FieldValue::owned_any(row))
}

fn post_id_arg() -> InputValue {
    InputValue::new("postId", TypeRef::named_nn(TypeRef::ID))
}

fn kind_arg() -> InputValue {
    InputValue::new("kind", TypeRef::named_nn("ForumReactionKind"))
}

/// `likeForumPost`-like fields: `(postId[, kind])` giving or taking back a reaction.
fn reaction_field(name: &str, fixed: Option<&'static str>, on: bool, doc: &str) -> Field {
    let f = Field::new(name, TypeRef::named_nn("ForumPost"), move |ctx| {
        FieldFuture::new(async move {
            let f = forum()?;
            let id = id_argument(&ctx, "postId")?;
            let kind = match fixed {
                Some(k) => k.to_string(),
                None => reaction_kind(&ctx, f.reactions)?,
            };
            let row = write(&ctx, move |conn, rc| {
                async move { react(conn, &rc, id, kind, on).await }.boxed()
            })
            .await?;
            Ok(row_value(row))
        })
    })
    .argument(post_id_arg())
    .description(doc);
    if fixed.is_some() {
        f
    } else {
        f.argument(kind_arg())
    }
}

/// `pinForumThread` / `lockForumThread`: an admin sets a flag of a thread.
fn flag_field(name: &str, arg_name: &'static str, column: &'static str, doc: &str) -> Field {
    Field::new(name, TypeRef::named_nn("ForumThread"), move |ctx| {
        FieldFuture::new(async move {
            if !acl::holds(caller(&ctx)?, AclRole::Admin) {
                return Err(ApiError::forbidden(format!(
                    "only an admin may {} a thread",
                    if column == "is_locked" {
                        "lock or unlock"
                    } else {
                        "pin or unpin"
                    }
                ))
                .into());
            }
            let id = id_argument(&ctx, "id")?;
            let on = flag(&ctx, arg_name);
            let row = write(&ctx, move |conn, rc| {
                async move { set_thread_flag(conn, &rc, id, column, on).await }.boxed()
            })
            .await?;
            Ok(row_value(row))
        })
    })
    .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID)))
    .argument(InputValue::new(arg_name, TypeRef::named_nn(TypeRef::BOOLEAN)).default_value(true))
    .description(doc)
}

fn mutations() -> Vec<Field> {
    vec![
        Field::new("startForumThread", TypeRef::named_nn("ForumThread"), |ctx| {
            FieldFuture::new(async move {
                let f = forum()?;
                let rc = caller(&ctx)?;
                crud::require(f.threads, rc, Op::Create)?;
                crud::require(f.posts, rc, Op::Create)?;
                let s = read_start(&ctx, f.threads)?;
                let row = write(&ctx, move |conn, rc| {
                    async move { start_thread(conn, &rc, s).await }.boxed()
                })
                .await?;
                Ok(row_value(row))
            })
        })
        .argument(InputValue::new("input", TypeRef::named_nn("StartForumThreadInput")))
        .description(
            "Starts a thread in a category with its opening post, in one transaction; returns the\nthread (`posts` lists the opening post). The slug is derived from the title and made\nunique in the category (`my-title`, `my-title-2`, ...). Mentioned users are notified.\nErrors: NOT_FOUND (no such category), BAD_USER_INPUT (blank or too long title, blank\ncontent, invalid id or clientKey).",
        ),
        Field::new("replyToForumThread", TypeRef::named_nn("ForumPost"), |ctx| {
            FieldFuture::new(async move {
                let f = forum()?;
                crud::require(f.posts, caller(&ctx)?, Op::Create)?;
                let r = read_reply(&ctx)?;
                let row = write(&ctx, move |conn, rc| {
                    async move { reply(conn, &rc, r).await }.boxed()
                })
                .await?;
                Ok(row_value(row))
            })
        })
        .argument(InputValue::new("threadId", TypeRef::named_nn(TypeRef::ID)))
        .argument(
            InputValue::new("content", TypeRef::named_nn(TypeRef::STRING))
                .description("Not blank; `@username` mentions notify those users."),
        )
        .argument(
            InputValue::new("parentId", TypeRef::named(TypeRef::ID))
                .description("The post of the same thread this one answers."),
        )
        .argument(InputValue::new("clientKey", TypeRef::named(TypeRef::STRING)).description(
            "Any string of at most 100 characters unique to this attempt: a retry with the same key\nreturns the post the first call made instead of posting again.",
        ))
        .description(
            "Posts a reply in a thread; the thread's `replyCount` and `lastPostAt` follow, and the\nthread's author, the parent post's author and mentioned users are notified (never the\nposter). Errors: NOT_FOUND (no such thread), FORBIDDEN (the thread is locked),\nBAD_USER_INPUT (blank content, a parent from another thread), CONFLICT (clientKey used\nin another thread).",
        ),
        reaction_field(
            "likeForumPost",
            Some("LIKE"),
            true,
            "Likes a post (a LIKE reaction of the caller); liking it again changes nothing. Returns\nthe post with its `likes`. Errors: NOT_FOUND (no such post).",
        ),
        reaction_field(
            "unlikeForumPost",
            Some("LIKE"),
            false,
            "Takes back the caller's like of a post, if any. Returns the post with its `likes`.\nErrors: NOT_FOUND (no such post).",
        ),
        reaction_field(
            "reactToForumPost",
            None,
            true,
            "Gives the caller's reaction `kind` to a post: one per user and kind, giving it again\nchanges nothing (LIKE is `likeForumPost`). The counts per kind are\n`reactions(where: {kind: {equals: ...}}) { totalCount }`. Errors: NOT_FOUND (no such post).",
        ),
        reaction_field(
            "unreactToForumPost",
            None,
            false,
            "Takes back the caller's reaction `kind` to a post, if any. Errors: NOT_FOUND (no such\npost).",
        ),
        flag_field(
            "pinForumThread",
            "pinned",
            "is_pinned",
            "Pins (or, with `pinned: false`, unpins) a thread (admins only). Errors: FORBIDDEN (not an\nadmin), NOT_FOUND (no such thread).",
        ),
        flag_field(
            "lockForumThread",
            "locked",
            "is_locked",
            "Locks (or, with `locked: false`, unlocks) a thread (admins only): a locked thread takes\nno new posts, from anyone, through any mutation. Errors: FORBIDDEN (not an admin),\nNOT_FOUND (no such thread).",
        ),
        Field::new("viewForumThread", TypeRef::named_nn("ForumThread"), |ctx| {
            FieldFuture::new(async move {
                let id = id_argument(&ctx, "id")?;
                let row = write(&ctx, move |conn, rc| {
                    async move { view_thread(conn, &rc, id).await }.boxed()
                })
                .await?;
                Ok(row_value(row))
            })
        })
        .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID)))
        .description(
            "Counts a view of a thread (every call is one view; views are not audited) and returns\nit. Errors: NOT_FOUND (no such thread).",
        ),
    ]
}

// ---------------------------------------------------------------- the post hook

fn posts_written<'c>(
    conn: &'c mut Conn,
    rc: &'c RequestContext,
    posts: &'static EntityMeta,
    event: &'c WriteEvent<'c>,
) -> BoxFuture<'c, Result<(), ApiError>> {
    async move { posts_changed(conn, rc, posts, event).await }.boxed()
}

/// A written post: its row before (None when created) and after.
struct Written<'r> {
    old: Option<&'r Row>,
    new: &'r Row,
}

async fn posts_changed(
    conn: &mut Conn,
    rc: &RequestContext,
    posts: &'static EntityMeta,
    event: &WriteEvent<'_>,
) -> Result<(), ApiError> {
    let Some(threads_meta) = metadata().entity("ForumThread") else {
        return Ok(());
    };
    let thread_of = |r: &Row| uuid_of(r.value(posts, "thread_id"));
    let written: Vec<Written> = event
        .new
        .iter()
        .map(|new| Written {
            old: event.old.iter().find(|o| o.id() == new.id()),
            new,
        })
        .collect();
    let mut ids: Vec<Uuid> = event
        .old
        .iter()
        .chain(event.new)
        .filter_map(thread_of)
        .collect();
    ids.sort();
    ids.dedup();
    let threads = lock_threads(conn, rc, threads_meta, ids).await?;

    // A locked thread takes no new post (created in it or moved into it).
    for w in &written {
        let thread = thread_of(w.new);
        if w.old.is_some_and(|o| thread_of(o) == thread) {
            continue;
        }
        let is_locked = threads.iter().any(|t| {
            Some(t.id()) == thread && t.value(threads_meta, "is_locked") == Value::Bool(true)
        });
        if is_locked {
            return Err(ApiError::forbidden(
                "the thread is locked: it takes no new posts",
            ));
        }
    }
    let parents = check_parents(conn, rc, posts, &written).await?;
    recount(conn, rc, threads_meta, &threads).await?;
    notify_posts(conn, rc, posts, threads_meta, &threads, &parents, &written).await
}

/// A post's thread and author.
#[derive(diesel::QueryableByName)]
struct PostRef {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    thread_id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    author_id: Uuid,
}

/// A post's parent must be another post of its thread. Returns the parents of the posts
/// written (by id), for the notifications.
async fn check_parents(
    conn: &mut Conn,
    rc: &RequestContext,
    posts: &'static EntityMeta,
    written: &[Written<'_>],
) -> Result<HashMap<Uuid, PostRef>, ApiError> {
    let parent_of = |r: &Row| uuid_of(r.value(posts, "parent_id"));
    let thread_of = |r: &Row| uuid_of(r.value(posts, "thread_id"));
    let mut ids: Vec<Uuid> = written.iter().filter_map(|w| parent_of(w.new)).collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    ids.sort();
    ids.dedup();
    let found: Vec<PostRef> = diesel::sql_query(
        "SELECT id, thread_id, author_id FROM forum_posts WHERE tenant_id = $1 AND id = ANY($2)",
    )
    .bind::<SqlUuid, _>(rc.tenant_id)
    .bind::<Array<SqlUuid>, _>(ids)
    .load(conn)
    .await?;
    let parents: HashMap<Uuid, PostRef> = found.into_iter().map(|p| (p.id, p)).collect();
    for w in written {
        let Some(parent) = parent_of(w.new) else {
            continue;
        };
        // Only what this write changed is checked: rows moved before the rule stay as they are.
        let unchanged = w
            .old
            .is_some_and(|o| parent_of(o) == Some(parent) && thread_of(o) == thread_of(w.new));
        if unchanged {
            continue;
        }
        if parent == w.new.id() {
            return Err(ApiError::bad_input(
                "parentId",
                "a post cannot answer itself",
            ));
        }
        let same_thread = parents
            .get(&parent)
            .is_some_and(|p| Some(p.thread_id) == thread_of(w.new));
        if !same_thread {
            return Err(ApiError::bad_input(
                "parentId",
                "parentId must be a post of the same thread",
            ));
        }
    }
    Ok(parents)
}

/// The threads `ids`, locked: FOR NO KEY UPDATE, not FOR UPDATE: the post's foreign key
/// already holds a key-share lock on its thread, which FOR UPDATE would have to upgrade (two
/// concurrent replies would deadlock), while a no-key-update lock coexists with key-share
/// locks and queues the replies of one thread behind each other. Locking the thread also
/// orders a post against a concurrent `lockForumThread`, which sees it or is seen by it.
async fn lock_threads(
    conn: &mut Conn,
    rc: &RequestContext,
    threads: &'static EntityMeta,
    ids: Vec<Uuid>,
) -> Result<Vec<Row>, ApiError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut b = SqlBuilder::new("SELECT ");
    b.select_list(threads);
    b.push(" FROM \"forum_threads\" t WHERE t.\"tenant_id\" = ");
    b.bind(Value::Uuid(rc.tenant_id), ColumnType::Uuid, false);
    b.push(" AND ");
    b.filter(&Filter::In {
        col: threads.id_column(),
        values: Value::UuidList(ids),
        negated: false,
    });
    b.order_by(&[SortKey::new(threads.id_column(), SortOrder::Asc)]);
    b.push(" FOR NO KEY UPDATE");
    load_rows(conn, threads, b).await
}

/// Recounts the locked threads `old` from their posts: the recount (a statement of its own,
/// with a snapshot taken after the lock) sees every post committed before it, so concurrent
/// replies cannot lose a count.
async fn recount(
    conn: &mut Conn,
    rc: &RequestContext,
    threads: &'static EntityMeta,
    old: &[Row],
) -> Result<(), ApiError> {
    if old.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = old.iter().map(Row::id).collect();
    let mut b = super::Counters {
        parents: "forum_threads",
        children: "forum_posts",
        fk: "thread_id",
        count: "reply_count",
        last: "last_post_at",
    }
    .recount(rc.tenant_id, ids);
    b.push(" RETURNING ");
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

// ---------------------------------------------------------------- mentions and notices

fn handle_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// The users `text` mentions: `@handle` at the start or after a character that cannot be
/// part of a handle (so `ada@example.com` mentions nobody), the handle being letters, digits,
/// `_`, `.` and `-` without a trailing `.` or `-`; lower-cased, distinct, in order, at most
/// [`MAX_MENTIONS`].
pub fn mentions(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut prev: Option<char> = None;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let starts = c == '@' && prev.is_none_or(|p| !handle_char(p) && p != '@');
        prev = Some(c);
        if !starts {
            continue;
        }
        let mut handle = String::new();
        while let Some(&n) = chars.peek() {
            if !handle_char(n) {
                break;
            }
            handle.push(n);
            prev = Some(n);
            chars.next();
        }
        let handle = handle.trim_end_matches(['.', '-']).to_lowercase();
        if handle.is_empty() || handle.chars().count() > 100 || out.contains(&handle) {
            continue;
        }
        out.push(handle);
        if out.len() == MAX_MENTIONS {
            break;
        }
    }
    out
}

#[derive(diesel::QueryableByName)]
struct Named {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Text)]
    name: String,
}

/// A post to notify of: its thread, and whom to tell why.
struct Pending<'a> {
    post: &'a Written<'a>,
    thread: &'a Row,
    recipients: Vec<(Uuid, Why)>,
}

/// Why someone is notified of a post.
#[derive(Debug, Clone, Copy)]
enum Why {
    Mentioned,
    RepliedToPost,
    RepliedToThread,
}

fn excerpt(text: &str) -> String {
    let mut out: String = text.chars().take(EXCERPT).collect();
    if text.chars().nth(EXCERPT).is_some() {
        out.push('…');
    }
    out
}

/// Notifies the people concerned by the posts written: for a new post, the users it mentions,
/// the author of the post it answers and the thread's author; for an edited one, the users
/// it mentions now and did not before. One notification per person and post (a mention
/// before a reply), never to the post's author.
async fn notify_posts(
    conn: &mut Conn,
    rc: &RequestContext,
    posts: &'static EntityMeta,
    threads_meta: &'static EntityMeta,
    threads: &[Row],
    parents: &HashMap<Uuid, PostRef>,
    written: &[Written<'_>],
) -> Result<(), ApiError> {
    let content = |r: &Row| text_of(r.value(posts, "content"));
    // Who each post mentions anew.
    let mentioned: Vec<Vec<String>> = written
        .iter()
        .map(|w| {
            let now = mentions(&content(w.new));
            match w.old {
                Some(o) if content(o) == content(w.new) => Vec::new(),
                Some(o) => {
                    let before = mentions(&content(o));
                    now.into_iter().filter(|h| !before.contains(h)).collect()
                }
                None => now,
            }
        })
        .collect();
    let created = written.iter().any(|w| w.old.is_none());
    if !created && mentioned.iter().all(Vec::is_empty) {
        return Ok(());
    }
    let mut handles: Vec<String> = mentioned.iter().flatten().cloned().collect();
    handles.sort();
    handles.dedup();
    let users: HashMap<String, Vec<Uuid>> = if handles.is_empty() {
        HashMap::new()
    } else {
        let found: Vec<Named> = diesel::sql_query(
            "SELECT id, lower(username) AS name FROM users \
             WHERE tenant_id = $1 AND status = 'ACTIVE' AND lower(username) = ANY($2)",
        )
        .bind::<SqlUuid, _>(rc.tenant_id)
        .bind::<Array<Text>, _>(handles)
        .load(conn)
        .await?;
        let mut by_handle: HashMap<String, Vec<Uuid>> = HashMap::new();
        for u in found {
            by_handle.entry(u.name).or_default().push(u.id);
        }
        by_handle
    };
    let author_of = |r: &Row| uuid_of(r.value(posts, "author_id")).unwrap_or_default();
    // Whom each post notifies, and why.
    let mut pending: Vec<Pending> = Vec::new();
    for (w, handles) in written.iter().zip(&mentioned) {
        let author = author_of(w.new);
        let thread_id = uuid_of(w.new.value(posts, "thread_id"));
        let Some(thread) = threads.iter().find(|t| Some(t.id()) == thread_id) else {
            continue;
        };
        let mut candidates: Vec<(Uuid, Why)> = handles
            .iter()
            .flat_map(|h| users.get(h).into_iter().flatten())
            .map(|u| (*u, Why::Mentioned))
            .collect();
        if w.old.is_none() {
            let parent = uuid_of(w.new.value(posts, "parent_id")).and_then(|p| parents.get(&p));
            if let Some(p) = parent {
                candidates.push((p.author_id, Why::RepliedToPost));
            }
            if let Some(owner) = uuid_of(thread.value(threads_meta, "author_id")) {
                candidates.push((owner, Why::RepliedToThread));
            }
        }
        let mut seen = HashSet::from([author]);
        candidates.retain(|(user, _)| seen.insert(*user));
        if !candidates.is_empty() {
            pending.push(Pending {
                post: w,
                thread,
                recipients: candidates,
            });
        }
    }
    if pending.is_empty() {
        return Ok(());
    }
    let mut authors: Vec<Uuid> = pending.iter().map(|p| author_of(p.post.new)).collect();
    authors.sort();
    authors.dedup();
    let names: HashMap<Uuid, String> =
        diesel::sql_query("SELECT id, name FROM users WHERE tenant_id = $1 AND id = ANY($2)")
            .bind::<SqlUuid, _>(rc.tenant_id)
            .bind::<Array<SqlUuid>, _>(authors)
            .load::<Named>(conn)
            .await?
            .into_iter()
            .map(|u| (u.id, u.name))
            .collect();
    let mut notices = Vec::new();
    for Pending {
        post: w,
        thread,
        recipients,
    } in pending
    {
        let title = text_of(thread.value(threads_meta, "title"));
        let who = names
            .get(&author_of(w.new))
            .map_or("Someone", String::as_str);
        let message = excerpt(&content(w.new));
        for (user, why) in recipients {
            let (kind, heading) = match why {
                Why::Mentioned => (Kind::Mention, format!("{who} mentioned you in \"{title}\"")),
                Why::RepliedToPost => (
                    Kind::Reply,
                    format!("{who} replied to your post in \"{title}\""),
                ),
                Why::RepliedToThread => (Kind::Reply, format!("{who} replied to \"{title}\"")),
            };
            notices.push(Notice {
                user,
                kind,
                title: heading,
                message: message.clone(),
                data: Some(json!({
                    "threadId": thread.id().to_string(),
                    "postId": w.new.id().to_string(),
                })),
            });
        }
    }
    for chunk in notices.chunks(NOTICES_PER_INSERT) {
        notify::notify(conn, rc.tenant_id, chunk).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{mentions, slugify, MAX_MENTIONS};

    #[test]
    fn mentions_are_handles_after_an_at_sign() {
        assert_eq!(
            mentions("Hi @Ada and @bob.smith, see ada@example.com and @ada again."),
            vec!["ada", "bob.smith"]
        );
        assert_eq!(mentions("(@grace) @@x @ @-"), vec!["grace"]);
        assert_eq!(mentions("@émile_1-"), vec!["émile_1"]);
        let many: String = (0..30).map(|i| format!("@u{i} ")).collect();
        assert_eq!(mentions(&many).len(), MAX_MENTIONS);
    }

    #[test]
    fn slugs_are_lower_case_words() {
        assert_eq!(slugify("Hello, World!"), "hello-world");
        assert_eq!(
            slugify("  --Rust 2024: what's new?  "),
            "rust-2024-what-s-new"
        );
        assert_eq!(slugify("!!!"), "thread");
        assert_eq!(slugify(&"x".repeat(500)).len(), 180);
    }
}
