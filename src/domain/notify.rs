//! Notifications the system creates (seed 000): a reply, a mention, a task assigned,
//! escalated or completed. Written in the transaction of what caused them, with their change
//! events, so `myNotifications` delivers them live and only if that transaction commits.

use serde_json::Value as Json;
use uuid::Uuid;

use crate::audit::Change;
use crate::db::sql::SqlBuilder;
use crate::db::value::Value;
use crate::db::Conn;
use crate::error::ApiError;
use crate::graphql::crud::load_rows;
use crate::graphql::meta::{metadata, ColumnType};
use crate::live::outbox::{self, ChangeOp};

/// The catalog's `NotificationType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Info,
    Warning,
    Mention,
    Reply,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Info => "INFO",
            Kind::Warning => "WARNING",
            Kind::Mention => "MENTION",
            Kind::Reply => "REPLY",
        }
    }
}

/// One notification for one user.
#[derive(Debug, Clone)]
pub struct Notice {
    pub user: Uuid,
    pub kind: Kind,
    pub title: String,
    pub message: String,
    /// What it is about, for the client to link to (`{"taskId": ...}`).
    pub data: Option<Json>,
}

/// Longest title the catalog allows.
const TITLE_MAX: usize = 200;

fn bounded(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// Creates `notices` in `tenant`, in the caller's transaction, and records their events.
pub async fn notify(conn: &mut Conn, tenant: Uuid, notices: &[Notice]) -> Result<(), ApiError> {
    if notices.is_empty() {
        return Ok(());
    }
    let meta = metadata()
        .entity("Notification")
        .ok_or_else(|| ApiError::internal("the catalog has no Notification"))?;
    let mut b = SqlBuilder::new(
        "INSERT INTO \"notifications\" AS t (\"tenant_id\", \"user_id\", \"type\", \"title\", \"message\", \"data\") VALUES ",
    );
    for (i, n) in notices.iter().enumerate() {
        b.push(if i == 0 { "(" } else { ", (" });
        let values = [
            (Value::Uuid(tenant), ColumnType::Uuid),
            (Value::Uuid(n.user), ColumnType::Uuid),
            (
                Value::Text(n.kind.as_str().to_string()),
                ColumnType::Enum("notification_type"),
            ),
            (Value::Text(bounded(&n.title, TITLE_MAX)), ColumnType::Text),
            (Value::Text(n.message.clone()), ColumnType::Text),
            (Value::from(n.data.clone()), ColumnType::Json),
        ];
        for (j, (v, ty)) in values.into_iter().enumerate() {
            if j > 0 {
                b.push(", ");
            }
            b.bind(v, ty, false);
        }
        b.push(")");
    }
    b.push(" RETURNING ");
    b.select_list(meta);
    let rows = load_rows(conn, meta, b).await?;
    let changes: Vec<Change> = rows.iter().map(|r| Change::created(meta, r)).collect();
    outbox::record(conn, meta, tenant, ChangeOp::Created, &changes).await
}
