//! The catalog model: the YAML entity definitions of `catalog/<package>/entities.yaml` loaded,
//! validated and checksummed. The generator (`codegen/`) writes migrations and code from it;
//! the gateway loads the same files, embedded in its binary, at start-up. It depends on
//! neither, so both read one definition of what a valid catalog is.

pub mod diff;
pub mod load;
pub mod model;
pub mod naming;
mod raw;
pub mod sql;

pub use load::{load_dir, load_packages, load_sources, Problem, Problems, Source};
/// The YAML parser the catalog is read with, for code that reads package files itself.
pub use serde_norway as yaml;

/// The SHA-256 of `bytes` in lower-case hex: checksums of entities and packages, persisted
/// queries, asset names.
pub fn sha256_hex(bytes: impl AsRef<[u8]>) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes.as_ref())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
