//! Chat (seeds 000, 002). A private room, and every direct conversation, is read by its
//! members and its owner only — its messages, memberships and receipts with it, through
//! queries, relations, writes and subscriptions alike (the catalog's `members` /
//! `readableWith`, applied by the engine's row scope). A public room is open to every user of
//! the tenant; joining it (a membership) gives an unread count. Here: `openDirectChat`,
//! `inviteToChatRoom` (the owner, OWNER and MODERATOR members), `markChatRoomRead`, each
//! room's `unreadCount`, the room's `messageCount` and `lastMessageAt`, and `editedAt`
//! stamped on edits.

use async_graphql::dynamic::{Field, FieldFuture, FieldValue, InputValue, TypeRef};
use futures::future::{BoxFuture, FutureExt};
use uuid::Uuid;

use super::{entity, insert_row, readable_row, update_row, write};
use crate::auth::RequestContext;
use crate::db::sql::SqlBuilder;
use crate::db::value::Value;
use crate::db::Conn;
use crate::error::ApiError;
use crate::graphql::crud::{caller, load_rows};
use crate::graphql::hooks::WriteEvent;
use crate::graphql::input;
use crate::graphql::meta::{ColumnType, EntityMeta};
use crate::graphql::row::Row;
use crate::graphql::schema::{id_arg, parent, Extensions};

fn uuid(row: &Row, meta: &EntityMeta, column: &str) -> Option<Uuid> {
    match row.value(meta, column) {
        Value::Uuid(u) => Some(u),
        _ => None,
    }
}

#[derive(diesel::QueryableByName)]
struct Found {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    role: Option<String>,
}

/// The caller's role in `room` (OWNER, MODERATOR, MEMBER), if a member.
async fn membership(
    conn: &mut Conn,
    rc: &RequestContext,
    room: Uuid,
    user: Uuid,
) -> Result<Option<String>, ApiError> {
    let mut b = SqlBuilder::new(
        "SELECT (SELECT \"role\"::text FROM \"chat_room_members\" WHERE \"tenant_id\" = ",
    );
    b.bind(Value::Uuid(rc.tenant_id), ColumnType::Uuid, false);
    b.push(" AND \"room_id\" = ");
    b.bind(Value::Uuid(room), ColumnType::Uuid, false);
    b.push(" AND \"user_id\" = ");
    b.bind(Value::Uuid(user), ColumnType::Uuid, false);
    b.push(") AS role");
    let found: Found = diesel_async::RunQueryDsl::get_result(b.into_query(), conn)
        .await
        .map_err(|e| ApiError::internal(format!("membership: {e}")))?;
    Ok(found.role)
}

async fn add_member(
    conn: &mut Conn,
    rc: &RequestContext,
    room: Uuid,
    user: Uuid,
    role: &str,
) -> Result<Row, ApiError> {
    insert_row(
        conn,
        rc,
        entity("ChatRoomMember")?,
        vec![
            ("room_id", Value::Uuid(room), ColumnType::Uuid),
            ("user_id", Value::Uuid(user), ColumnType::Uuid),
            (
                "role",
                Value::Text(role.into()),
                ColumnType::Enum("chat_room_member_role"),
            ),
        ],
    )
    .await
}

/// A direct room is always private. (Its creator, the room's owner, reads it as such and
/// acts as its OWNER without a membership row.)
fn rooms_written<'c>(
    _conn: &'c mut Conn,
    _rc: &'c RequestContext,
    rooms: &'static EntityMeta,
    event: &'c WriteEvent<'c>,
) -> BoxFuture<'c, Result<(), ApiError>> {
    async move {
        for room in event.new {
            let direct = matches!(room.value(rooms, "kind"), Value::Text(k) if k == "DIRECT");
            if direct && room.value(rooms, "is_private") != Value::Bool(true) {
                return Err(ApiError::bad_input(
                    "input.isPrivate",
                    "a DIRECT room is always private",
                ));
            }
        }
        Ok(())
    }
    .boxed()
}

/// The room's counters follow its messages; an edit is stamped. (Who may write where is
/// the read rule's: a private room takes messages from its members only.)
fn messages_written<'c>(
    conn: &'c mut Conn,
    rc: &'c RequestContext,
    messages: &'static EntityMeta,
    event: &'c WriteEvent<'c>,
) -> BoxFuture<'c, Result<(), ApiError>> {
    async move {
        let mut rooms: Vec<Uuid> = Vec::new();
        for (i, m) in event.new.iter().enumerate() {
            let room = uuid(m, messages, "room_id").unwrap_or_default();
            if let Some(old) = event.old.get(i) {
                if old.value(messages, "body") != m.value(messages, "body") {
                    let mut b = SqlBuilder::new(
                        "UPDATE \"chat_messages\" SET \"edited_at\" = now() WHERE \"tenant_id\" = ",
                    );
                    b.bind(Value::Uuid(rc.tenant_id), ColumnType::Uuid, false);
                    b.push(" AND \"id\" = ");
                    b.bind(Value::Uuid(m.id()), ColumnType::Uuid, false);
                    diesel_async::RunQueryDsl::execute(b.into_query(), &mut *conn)
                        .await
                        .map_err(|e| ApiError::internal(format!("edited at: {e}")))?;
                }
            }
            rooms.push(room);
        }
        for m in event.old {
            rooms.extend(uuid(m, messages, "room_id"));
        }
        rooms.sort();
        rooms.dedup();
        if rooms.is_empty() {
            return Ok(());
        }
        let b = super::Counters {
            parents: "chat_rooms",
            children: "chat_messages",
            fk: "room_id",
            count: "message_count",
            last: "last_message_at",
        }
        .recount(rc.tenant_id, rooms);
        diesel_async::RunQueryDsl::execute(b.into_query(), &mut *conn)
            .await
            .map_err(|e| ApiError::internal(format!("room counters: {e}")))?;
        Ok(())
    }
    .boxed()
}

fn open_direct_chat() -> Field {
    Field::new("openDirectChat", TypeRef::named_nn("ChatRoom"), |ctx| {
        FieldFuture::new(async move {
            let other = input::id(&id_arg(&ctx, "userId"), "", "userId")?;
            if other == caller(&ctx)?.user_id {
                return Err(
                    ApiError::bad_input("userId", "a direct chat needs another user").into(),
                );
            }
            let row = write(&ctx, move |conn, rc| {
                async move {
                    let rooms = entity("ChatRoom")?;
                    // One direct room per pair: its slug names both, in order.
                    let (a, b) = if rc.user_id < other {
                        (rc.user_id, other)
                    } else {
                        (other, rc.user_id)
                    };
                    let slug = format!("direct-{}-{}", a.simple(), b.simple());
                    let mut q = SqlBuilder::new("SELECT ");
                    q.select_list(rooms);
                    q.push(" FROM \"chat_rooms\" t WHERE t.\"tenant_id\" = ");
                    q.bind(Value::Uuid(rc.tenant_id), ColumnType::Uuid, false);
                    q.push(" AND t.\"slug\" = ");
                    q.bind(Value::Text(slug.clone()), ColumnType::Text, false);
                    if let Some(room) = load_rows(conn, rooms, q).await?.pop() {
                        return Ok(room);
                    }
                    let room = insert_row(
                        conn,
                        &rc,
                        rooms,
                        vec![
                            ("name", Value::Text("Direct".into()), ColumnType::Text),
                            ("slug", Value::Text(slug), ColumnType::Text),
                            (
                                "kind",
                                Value::Text("DIRECT".into()),
                                ColumnType::Enum("chat_room_kind"),
                            ),
                            ("is_private", Value::Bool(true), ColumnType::Bool),
                            ("created_by_id", Value::Uuid(rc.user_id), ColumnType::Uuid),
                        ],
                    )
                    .await?;
                    add_member(conn, &rc, room.id(), rc.user_id, "OWNER").await?;
                    add_member(conn, &rc, room.id(), other, "MEMBER")
                        .await
                        .map_err(|e| match e {
                            ApiError::BadUserInput { .. } => {
                                ApiError::bad_input("userId", "no such user")
                            }
                            e => e,
                        })?;
                    Ok(room)
                }
                .boxed()
            })
            .await?;
            Ok(Some(FieldValue::owned_any(row)))
        })
    })
    .argument(InputValue::new("userId", TypeRef::named_nn(TypeRef::ID)))
    .description("The private DIRECT room of the caller and another user, opened on first use.")
}

fn invite() -> Field {
    Field::new(
        "inviteToChatRoom",
        TypeRef::named_nn("ChatRoomMember"),
        |ctx| {
            FieldFuture::new(async move {
                let room = input::id(&id_arg(&ctx, "roomId"), "", "roomId")?;
                let user = input::id(&id_arg(&ctx, "userId"), "", "userId")?;
                let row = write(&ctx, move |conn, rc| {
                    async move {
                        let rooms = entity("ChatRoom")?;
                        let found = readable_row(conn, &rc, rooms, room, true).await?;
                        let owner = uuid(&found, rooms, "created_by_id") == Some(rc.user_id);
                        let role = membership(conn, &rc, room, rc.user_id).await?;
                        if !owner && !matches!(role.as_deref(), Some("OWNER" | "MODERATOR")) {
                            return Err(ApiError::forbidden(
                                "only the room's owners and moderators may invite",
                            ));
                        }
                        if membership(conn, &rc, room, user).await?.is_some() {
                            return Err(ApiError::Conflict {
                                field: Some("userId".into()),
                                message: "already a member".into(),
                            });
                        }
                        add_member(conn, &rc, room, user, "MEMBER").await
                    }
                    .boxed()
                })
                .await?;
                Ok(Some(FieldValue::owned_any(row)))
            })
        },
    )
    .argument(InputValue::new("roomId", TypeRef::named_nn(TypeRef::ID)))
    .argument(InputValue::new("userId", TypeRef::named_nn(TypeRef::ID)))
    .description("Adds a user to a room (its owners and moderators); the way into a private room.")
}

fn mark_read() -> Field {
    Field::new(
        "markChatRoomRead",
        TypeRef::named_nn("ChatRoomMember"),
        |ctx| {
            FieldFuture::new(async move {
                let room = input::id(&id_arg(&ctx, "roomId"), "", "roomId")?;
                let row = write(&ctx, move |conn, rc| {
                    async move {
                        let members = entity("ChatRoomMember")?;
                        let mut q = SqlBuilder::new("SELECT ");
                        q.select_list(members);
                        q.push(" FROM \"chat_room_members\" t WHERE t.\"tenant_id\" = ");
                        q.bind(Value::Uuid(rc.tenant_id), ColumnType::Uuid, false);
                        q.push(" AND t.\"room_id\" = ");
                        q.bind(Value::Uuid(room), ColumnType::Uuid, false);
                        q.push(" AND t.\"user_id\" = ");
                        q.bind(Value::Uuid(rc.user_id), ColumnType::Uuid, false);
                        q.push(" FOR UPDATE");
                        let old = load_rows(conn, members, q)
                            .await?
                            .pop()
                            .ok_or_else(|| ApiError::not_found("ChatRoom"))?;
                        update_row(
                            conn,
                            &rc,
                            members,
                            &old,
                            vec![(
                                "last_read_at",
                                Value::DateTime(chrono::Utc::now()),
                                ColumnType::DateTime,
                            )],
                        )
                        .await
                    }
                    .boxed()
                })
                .await?;
                Ok(Some(FieldValue::owned_any(row)))
            })
        },
    )
    .argument(InputValue::new("roomId", TypeRef::named_nn(TypeRef::ID)))
    .description("Marks the room read up to now for the caller (a member): its read receipt.")
}

#[derive(diesel::QueryableByName)]
struct Unread {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// `ChatRoom.unreadCount`: messages of others since the caller last read the room (0 for a
/// non-member).
fn unread_count() -> Field {
    Field::new("unreadCount", TypeRef::named_nn(TypeRef::INT), |ctx| {
        FieldFuture::new(async move {
            let rc = caller(&ctx)?.clone();
            let room = parent::<Row>(&ctx)?.id();
            let mut b = SqlBuilder::new(
                "SELECT count(*) AS n FROM \"chat_messages\" m JOIN \"chat_room_members\" me \
                 ON me.\"tenant_id\" = m.\"tenant_id\" AND me.\"room_id\" = m.\"room_id\" AND me.\"user_id\" = ",
            );
            b.bind(Value::Uuid(rc.user_id), ColumnType::Uuid, false);
            b.push(" WHERE m.\"tenant_id\" = ");
            b.bind(Value::Uuid(rc.tenant_id), ColumnType::Uuid, false);
            b.push(" AND m.\"room_id\" = ");
            b.bind(Value::Uuid(room), ColumnType::Uuid, false);
            b.push(
                " AND m.\"sender_id\" IS DISTINCT FROM me.\"user_id\" AND m.\"deleted_at\" IS NULL \
                 AND (me.\"last_read_at\" IS NULL OR m.\"created_at\" > me.\"last_read_at\")",
            );
            let rows: Vec<Unread> = crate::graphql::crud::read(&ctx, "ChatMessage", b).await?;
            let n = rows.first().map_or(0, |u| u.n);
            Ok(Some(FieldValue::value(i32::try_from(n).unwrap_or(i32::MAX))))
        })
    })
    .description("Messages of others in this room since the caller last marked it read (0 unless a member).")
}

pub fn extensions() -> Extensions {
    Extensions {
        mutation: vec![open_direct_chat(), invite(), mark_read()],
        entity_fields: vec![("ChatRoom", unread_count())],
        after_write: vec![
            ("ChatRoom", rooms_written),
            ("ChatMessage", messages_written),
        ],
        ..Extensions::default()
    }
}
