//! Who is calling: the context of one request, attached only after its credential verified
//! (verification is the binary's `auth`), and where it comes from.

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
    /// The sign-in session the token was issued for (`login`); None for operator tokens.
    pub session_id: Option<Uuid>,
    /// The platform operator (`gateway token --platform`): may write global rows.
    pub platform: bool,
    /// An operator token's generation (`gateway token`): revoked once its tenant's
    /// generation has moved past it (`gateway token revoke`). None for sign-in sessions and
    /// external identity providers.
    pub operator_generation: Option<i64>,
}

impl RequestContext {
    /// A caller acting in `tenant` as `user` with `role`, and nothing else known of it: no
    /// session, client or expiry (operator actions, the demo seed, tests).
    pub fn new(tenant_id: Uuid, user_id: Uuid, role: Role) -> Self {
        RequestContext {
            tenant_id,
            user_id,
            role,
            client_ip: None,
            user_agent: None,
            expires_at: None,
            session_id: None,
            platform: false,
            operator_generation: None,
        }
    }
}

/// Where a request comes from, known for anonymous requests too (sign-in limits, sessions).
#[derive(Debug, Clone, Default)]
pub struct Client {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}
