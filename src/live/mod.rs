//! Live data: change events written by every mutation to an outbox, a per-instance hub that
//! learns of them through LISTEN/NOTIFY, and the per-entity subscriptions fed from it.

pub mod feed;
pub mod hub;
pub mod outbox;
pub mod quota;
pub mod subscribe;

pub use hub::Hub;
pub use outbox::ChangeOp;
pub use subscribe::{changes, Change};

/// Declares the `XChange` GraphQL type of an entity's subscription events.
#[macro_export]
macro_rules! change_type {
    ($node:ident, $change:ident) => {
        #[doc = concat!("A change of a ", stringify!($node), " row.")]
        pub struct $change(pub $crate::live::Change<$node>);

        #[async_graphql::Object]
        impl $change {
            async fn op(&self) -> $crate::live::ChangeOp {
                self.0.op
            }
            /// The row after the change; for DELETED, the row as it was.
            async fn node(&self) -> &$node {
                &self.0.node
            }
            /// The row before an update, when the subscriber could read it then.
            async fn previous(&self) -> Option<&$node> {
                self.0.previous.as_ref()
            }
            /// Pass as `after` to resume right after this change.
            async fn cursor(&self) -> &str {
                &self.0.cursor
            }
        }
    };
}
