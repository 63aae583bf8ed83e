//! Who is calling: the request context, taken only from a verified credential.

mod jwt;

pub use jwt::{Claims, JwtKeys};

use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    User,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "user" => Some(Role::User),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
        }
    }
}

/// The caller of one request. Attached to the GraphQL request only after the credential
/// verified; resolvers find no context at all for an anonymous request.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub role: Role,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    /// When the credential expires (unix seconds): subscription sockets close then.
    pub expires_at: Option<i64>,
}
