//! The limits every request runs under. The binary fills them from its environment
//! variables (documented in its `config`); [`Limits::default`] holds the defaults.

#[derive(Debug, Clone)]
pub struct Limits {
    pub default_page_size: i32,
    pub max_page_size: i32,
    pub max_depth: usize,
    pub max_complexity: usize,
    pub max_body_bytes: usize,
    /// How long a WebSocket client has to send `connection_init`.
    pub ws_init_timeout: std::time::Duration,
    /// How often an open WebSocket checks that its credential still holds.
    pub ws_recheck: std::time::Duration,
    /// How often one field may appear under different aliases in a document.
    pub max_aliases_per_field: usize,
    /// Directives one document may carry.
    pub max_directives: usize,
    /// Requests one batched POST may carry.
    pub max_batch_operations: usize,
    /// Subscriptions one WebSocket may hold at once.
    pub max_subscriptions_per_socket: usize,
    /// Subscriptions one user may hold at once on this instance (all its sockets).
    pub max_subscriptions_per_user: usize,
    /// Subscriptions one tenant may hold at once on this instance.
    pub max_subscriptions_per_tenant: usize,
    /// Who may introspect the schema.
    pub introspection: Exposure,
    /// Who gets "Did you mean ...?" suggestions in validation errors.
    pub suggestions: Exposure,
    /// Whether query operations run as plans (`graphql::plan`).
    pub planned_reads: PlannedReads,
}
/// Whether query operations run as plans (`GATEWAY_PLANNED_READS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PlannedReads {
    /// Plans where they apply (the default).
    #[default]
    On,
    /// Never: async-graphql resolves everything.
    Off,
    /// Both, and a request whose answers differ fails (for tests).
    Verify,
}

impl std::str::FromStr for PlannedReads {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "on" => Ok(PlannedReads::On),
            "off" => Ok(PlannedReads::Off),
            "verify" => Ok(PlannedReads::Verify),
            _ => Err(()),
        }
    }
}

/// Who a schema-revealing feature is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposure {
    Everyone,
    Admins,
}

impl std::str::FromStr for Exposure {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "all" | "everyone" => Ok(Exposure::Everyone),
            "admin" | "admins" => Ok(Exposure::Admins),
            _ => Err(()),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            default_page_size: 50,
            max_page_size: 500,
            max_depth: 12,
            max_complexity: 10_000,
            max_body_bytes: 1 << 20,
            ws_init_timeout: std::time::Duration::from_secs(10),
            ws_recheck: std::time::Duration::from_secs(30),
            max_aliases_per_field: 15,
            max_directives: 50,
            max_batch_operations: 10,
            max_subscriptions_per_socket: 100,
            max_subscriptions_per_user: 500,
            max_subscriptions_per_tenant: 20_000,
            introspection: Exposure::Everyone,
            suggestions: Exposure::Everyone,
            planned_reads: PlannedReads::On,
        }
    }
}
