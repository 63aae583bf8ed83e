//! Conversations (seed 003) are read by their participants only (the catalog's `members`):
//! the creator takes part from the start, a participant adds others
//! (`addConversationParticipant`), and `closeConversation` / `reopenConversation` move its
//! status; a closed conversation takes no new messages.

use async_graphql::dynamic::{Field, FieldFuture, FieldValue, InputValue, TypeRef};
use futures::future::{BoxFuture, FutureExt};
use uuid::Uuid;

use super::{entity, insert_row, readable_row, update_row, write};
use crate::auth::RequestContext;
use crate::db::value::Value;
use crate::db::Conn;
use crate::error::ApiError;
use crate::graphql::hooks::WriteEvent;
use crate::graphql::input;
use crate::graphql::meta::{ColumnType, EntityMeta};
use crate::graphql::schema::{id_arg, Extensions};

async fn add_participant(
    conn: &mut Conn,
    rc: &RequestContext,
    conversation: Uuid,
    user: Uuid,
) -> Result<crate::graphql::row::Row, ApiError> {
    insert_row(
        conn,
        rc,
        entity("ConversationParticipant")?,
        vec![
            (
                "conversation_id",
                Value::Uuid(conversation),
                ColumnType::Uuid,
            ),
            ("user_id", Value::Uuid(user), ColumnType::Uuid),
        ],
    )
    .await
}

/// The creator of a conversation is its first participant.
fn conversations_written<'c>(
    conn: &'c mut Conn,
    rc: &'c RequestContext,
    conversations: &'static EntityMeta,
    event: &'c WriteEvent<'c>,
) -> BoxFuture<'c, Result<(), ApiError>> {
    async move {
        if !event.old.is_empty() {
            return Ok(());
        }
        for c in event.new {
            if let Value::Uuid(creator) = c.value(conversations, "created_by_id") {
                add_participant(conn, rc, c.id(), creator).await?;
            }
        }
        Ok(())
    }
    .boxed()
}

/// New messages only while the conversation is ACTIVE.
fn messages_written<'c>(
    conn: &'c mut Conn,
    rc: &'c RequestContext,
    messages: &'static EntityMeta,
    event: &'c WriteEvent<'c>,
) -> BoxFuture<'c, Result<(), ApiError>> {
    async move {
        if !event.old.is_empty() {
            return Ok(());
        }
        let conversations = entity("Conversation")?;
        for m in event.new {
            let Value::Uuid(id) = m.value(messages, "conversation_id") else {
                continue;
            };
            let c = readable_row(conn, rc, conversations, id, false).await?;
            if c.value(conversations, "status") != Value::Text("ACTIVE".into()) {
                return Err(ApiError::Conflict {
                    field: Some("conversationId".into()),
                    message: "the conversation is closed".into(),
                });
            }
        }
        Ok(())
    }
    .boxed()
}

fn add() -> Field {
    Field::new(
        "addConversationParticipant",
        TypeRef::named_nn("ConversationParticipant"),
        |ctx| {
            FieldFuture::new(async move {
                let conversation =
                    input::id(&id_arg(&ctx, "conversationId"), "", "conversationId")?;
                let user = input::id(&id_arg(&ctx, "userId"), "", "userId")?;
                let row = write(&ctx, move |conn, rc| {
                    async move {
                        // Readable means: the caller takes part (or opened it).
                        readable_row(conn, &rc, entity("Conversation")?, conversation, true)
                            .await?;
                        add_participant(conn, &rc, conversation, user).await
                    }
                    .boxed()
                })
                .await?;
                Ok(Some(FieldValue::owned_any(row)))
            })
        },
    )
    .argument(InputValue::new(
        "conversationId",
        TypeRef::named_nn(TypeRef::ID),
    ))
    .argument(InputValue::new("userId", TypeRef::named_nn(TypeRef::ID)))
    .description("Lets another user of the tenant take part in a conversation (its participants).")
}

fn set_status(name: &'static str, status: &'static str, description: &'static str) -> Field {
    Field::new(name, TypeRef::named_nn("Conversation"), move |ctx| {
        FieldFuture::new(async move {
            let id = input::id(&id_arg(&ctx, "id"), "", "id")?;
            let row = write(&ctx, move |conn, rc| {
                async move {
                    let meta = entity("Conversation")?;
                    let old = readable_row(conn, &rc, meta, id, true).await?;
                    if old.value(meta, "status") == Value::Text(status.into()) {
                        return Ok(old);
                    }
                    let closed_at = if status == "CLOSED" {
                        Value::DateTime(chrono::Utc::now())
                    } else {
                        Value::Null
                    };
                    update_row(
                        conn,
                        &rc,
                        meta,
                        &old,
                        vec![
                            (
                                "status",
                                Value::Text(status.into()),
                                ColumnType::Enum("conversation_status"),
                            ),
                            ("closed_at", closed_at, ColumnType::DateTime),
                        ],
                    )
                    .await
                }
                .boxed()
            })
            .await?;
            Ok(Some(FieldValue::owned_any(row)))
        })
    })
    .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID)))
    .description(description)
}

pub fn extensions() -> Extensions {
    Extensions {
        mutation: vec![
            add(),
            set_status(
                "closeConversation",
                "CLOSED",
                "Closes a conversation (its participants); it takes no new messages.",
            ),
            set_status(
                "reopenConversation",
                "ACTIVE",
                "Reopens a closed conversation (its participants).",
            ),
        ],
        after_write: vec![
            ("Conversation", conversations_written),
            ("ConversationMessage", messages_written),
        ],
        ..Extensions::default()
    }
}
