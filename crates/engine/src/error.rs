//! The error policy, in one place.
//!
//! Every failure a client sees is an `ApiError` turned into a GraphQL error with
//! `extensions.code`. Database errors are translated here: constraint names are mapped back to
//! the entity's fields through the catalog's constraint names (`graphql::meta::constraints`), and anything unexpected
//! becomes `INTERNAL` with a correlation id, its details only in the server log (the same
//! failure of many requests once, then counted: `crate::logs`). A database that cannot be
//! reached, a connection lost to a restart and a pool with no connection free in time are
//! `SERVICE_UNAVAILABLE`: nothing was done and the request may be retried. No SQL text,
//! constraint name or other tenant's data ever reaches a response.

use async_graphql::ErrorExtensions;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use crate::graphql::meta::{ConstraintKind, ConstraintMeta};

/// `ApiError` deliberately does not implement `Display`: async-graphql converts every
/// `Display` type into an error without extensions, and every error here must carry its code.
#[derive(Debug, Clone)]
pub enum ApiError {
    /// The input is wrong; `field` is the path of the offending input field.
    BadUserInput {
        field: Option<String>,
        message: String,
    },
    /// A unique key is taken, or the row changed since the client read it.
    Conflict {
        field: Option<String>,
        message: String,
    },
    NotFound {
        message: String,
    },
    Unauthenticated {
        message: String,
    },
    Forbidden {
        message: String,
    },
    LimitExceeded {
        message: String,
    },
    /// The database cannot be reached, or every connection stayed busy: nothing was done,
    /// and the same request may succeed in a moment (HTTP answers 503 with `Retry-After`).
    Unavailable {
        message: String,
    },
    /// Something the client cannot fix. The detail is logged, never returned.
    Internal {
        detail: String,
    },
}

pub type GqlResult<T> = Result<T, async_graphql::Error>;

/// The code of [`ApiError::Unavailable`], which transports look for (503, `Retry-After`).
pub const SERVICE_UNAVAILABLE: &str = "SERVICE_UNAVAILABLE";

impl ApiError {
    pub fn bad_input(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::BadUserInput {
            field: Some(field.into()),
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::BadUserInput {
            field: None,
            message: message.into(),
        }
    }
    pub fn not_found(entity: &str) -> Self {
        ApiError::NotFound {
            message: format!("{entity} not found"),
        }
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::Forbidden {
            message: message.into(),
        }
    }
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        ApiError::Unauthenticated {
            message: message.into(),
        }
    }
    pub fn limit_exceeded(message: impl Into<String>) -> Self {
        ApiError::LimitExceeded {
            message: message.into(),
        }
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError::Unavailable {
            message: message.into(),
        }
    }
    pub fn internal(detail: impl Into<String>) -> Self {
        ApiError::Internal {
            detail: detail.into(),
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadUserInput { .. } => "BAD_USER_INPUT",
            ApiError::Conflict { .. } => "CONFLICT",
            ApiError::NotFound { .. } => "NOT_FOUND",
            ApiError::Unauthenticated { .. } => "UNAUTHENTICATED",
            ApiError::Forbidden { .. } => "FORBIDDEN",
            ApiError::LimitExceeded { .. } => "LIMIT_EXCEEDED",
            ApiError::Unavailable { .. } => SERVICE_UNAVAILABLE,
            ApiError::Internal { .. } => "INTERNAL",
        }
    }

    pub fn message(&self) -> String {
        match self {
            ApiError::BadUserInput { message, .. }
            | ApiError::Conflict { message, .. }
            | ApiError::NotFound { message }
            | ApiError::Unauthenticated { message }
            | ApiError::Forbidden { message }
            | ApiError::LimitExceeded { message }
            | ApiError::Unavailable { message } => message.clone(),
            ApiError::Internal { .. } => "internal error".to_string(),
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            ApiError::BadUserInput { field, .. } | ApiError::Conflict { field, .. } => {
                field.as_deref()
            }
            _ => None,
        }
    }

    /// Translates a database error for `entity`, using the generated constraint table.
    pub fn from_db(err: DieselError, entity: &str, constraints: &[ConstraintMeta]) -> Self {
        let DieselError::DatabaseError(kind, info) = &err else {
            return match err {
                DieselError::NotFound => ApiError::not_found(entity),
                other => ApiError::internal(format!("{entity}: {other}")),
            };
        };
        let constraint = info
            .constraint_name()
            .and_then(|name| constraints.iter().find(|c| c.name == name));
        let fields = constraint.map(|c| c.fields.join(", "));
        let owner = constraint.map(|c| c.entity).unwrap_or(entity);
        match kind {
            DatabaseErrorKind::UniqueViolation => ApiError::Conflict {
                message: match &fields {
                    Some(f) => format!("another {owner} already has this {f}"),
                    None => format!("this {owner} conflicts with an existing one"),
                },
                field: fields,
            },
            DatabaseErrorKind::ForeignKeyViolation => match constraint {
                // Raised on insert/update: the referenced row is missing (or in another tenant,
                // which must look the same).
                Some(c) if c.entity == entity => ApiError::BadUserInput {
                    message: format!("{} does not reference an existing row", c.fields.join(", ")),
                    field: fields,
                },
                // Raised on delete: other rows still reference this one.
                Some(c) => ApiError::Conflict {
                    message: format!("{entity} is still referenced by {} rows", c.entity),
                    field: None,
                },
                None => ApiError::Conflict {
                    message: format!("{entity} is referenced by or references missing rows"),
                    field: None,
                },
            },
            DatabaseErrorKind::CheckViolation => ApiError::BadUserInput {
                message: match &fields {
                    Some(f) => format!("{f} is out of the allowed range"),
                    None => "a value is out of the allowed range".to_string(),
                },
                field: fields,
            },
            DatabaseErrorKind::NotNullViolation => ApiError::BadUserInput {
                message: match info.column_name() {
                    Some(c) => format!("{} is required", camel(c)),
                    None => "a required field is missing".to_string(),
                },
                field: info.column_name().map(camel),
            },
            DatabaseErrorKind::SerializationFailure => ApiError::Conflict {
                message: "concurrent change; retry".to_string(),
                field: None,
            },
            // The connection is gone (no SQLSTATE: its socket closed), or the server is
            // ending it (57P01..57P03, diesel has no kind for them): the database restarts.
            DatabaseErrorKind::UnableToSendCommand | DatabaseErrorKind::ClosedConnection => {
                ApiError::unavailable("the connection to the database was lost; retry shortly")
            }
            _ if info.message().starts_with("terminating connection due to")
                || info.message().starts_with("the database system is") =>
            {
                ApiError::unavailable("the database is restarting; retry shortly")
            }
            // statement_timeout (SQLSTATE 57014): diesel has no kind for it, only the message.
            _ if info
                .message()
                .starts_with("canceling statement due to statement timeout") =>
            {
                ApiError::limit_exceeded(
                    "the request took longer than the statement timeout; narrow it".to_string(),
                )
            }
            _ => ApiError::internal(format!("{entity}: {kind:?}: {}", info.message())),
        }
    }
}

impl From<DieselError> for ApiError {
    fn from(err: DieselError) -> Self {
        ApiError::from_db(err, "row", crate::graphql::meta::constraints())
    }
}

impl From<ConstraintKind> for &'static str {
    fn from(k: ConstraintKind) -> Self {
        match k {
            ConstraintKind::Unique => "unique",
            ConstraintKind::ForeignKey => "foreign key",
            ConstraintKind::Check => "check",
        }
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(err: ApiError) -> Self {
        if let ApiError::Internal { detail } = &err {
            let id = uuid::Uuid::now_v7();
            // The same failure of many requests is logged once, then counted (crate::logs).
            if crate::logs::admit(crate::logs::Level::Error, "internal", detail) {
                tracing::error!(error_id = %id, "{detail}");
            }
            return async_graphql::Error::new("internal error").extend_with(|_, e| {
                e.set("code", "INTERNAL");
                e.set("errorId", id.to_string());
            });
        }
        let field = err.field().map(str::to_string);
        async_graphql::Error::new(err.message()).extend_with(|_, e| {
            e.set("code", err.code());
            if let Some(f) = &field {
                e.set("field", f.as_str());
            }
        })
    }
}

/// An error raised before execution, with no position in the document.
pub fn server_error(err: ApiError) -> async_graphql::ServerError {
    let err = async_graphql::Error::from(err);
    let mut out = async_graphql::ServerError::new(err.message, None);
    out.extensions = err.extensions;
    out
}

fn camel(snake: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for ch in snake.chars() {
        if ch == '_' {
            upper = true;
        } else if upper {
            out.extend(ch.to_uppercase());
            upper = false;
        } else {
            out.push(ch);
        }
    }
    out
}

/// Adds `extensions.code` to errors async-graphql raises itself (parsing, validation, input
/// coercion), so that every error a client sees has one.
pub fn classify_engine_error(err: &mut async_graphql::ServerError) {
    let has_code = err
        .extensions
        .as_ref()
        .is_some_and(|e| e.get("code").is_some());
    if has_code {
        return;
    }
    let msg = err.message.clone();
    let (code, field) = if msg.starts_with("Invalid value for argument")
        || msg.contains("Failed to parse")
        || msg.starts_with("Invalid value")
    {
        ("BAD_USER_INPUT", argument_name(&msg))
    } else if msg.contains("too complex") || msg.contains("too deep") || msg.contains("limit") {
        ("LIMIT_EXCEEDED", None)
    } else if err.path.is_empty() {
        ("GRAPHQL_VALIDATION_FAILED", None)
    } else {
        ("INTERNAL", None)
    };
    let ext = err.extensions.get_or_insert_with(Default::default);
    ext.set("code", code);
    if let Some(f) = field {
        ext.set("field", f);
    }
}

fn argument_name(msg: &str) -> Option<String> {
    let start = msg.find('"')? + 1;
    let end = start + msg[start..].find('"')?;
    Some(msg[start..end].to_string())
}
