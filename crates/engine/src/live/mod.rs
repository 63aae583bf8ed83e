//! Live data: change events written by every mutation to an outbox, a per-instance hub that
//! learns of them through LISTEN/NOTIFY, and the per-entity subscriptions fed from it.

pub mod feed;
pub mod hub;
pub mod outbox;
pub mod quota;
pub mod subscribe;

pub use hub::Hub;
pub use outbox::ChangeOp;
pub use subscribe::{changes, changes_of, ops_arg, Change, ChangeRef, Changes, Sources};
