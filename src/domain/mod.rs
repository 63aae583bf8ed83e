//! Behaviour beyond CRUD, written by hand on top of the engine: each module contributes
//! fields and write hooks through `graphql::schema::Extensions`.

pub mod forum;

use crate::graphql::schema::Extensions;

/// Every domain module's extensions.
pub fn extensions() -> Extensions {
    forum::extensions()
}
