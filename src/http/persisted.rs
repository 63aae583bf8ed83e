//! Persisted queries. Two modes:
//! - **Automatic persisted queries** (Apollo's APQ, on by default): a client sends
//!   `extensions.persistedQuery.sha256Hash` without the query; an unknown hash answers
//!   `PersistedQueryNotFound` (code `PERSISTED_QUERY_NOT_FOUND`) and the client sends the
//!   query with its hash once, which is checked and kept. A hash-only GET is cacheable by
//!   HTTP caches. Kept in a bounded cache per instance (oldest out first).
//! - **Trusted documents** (`GATEWAY_TRUSTED_DOCUMENTS`, for production): only the
//!   operations of a manifest may run — Apollo's `persisted-query-manifest.json`
//!   (`@apollo/generate-persisted-query-manifest`) or GraphQL Code Generator's
//!   `persisted-documents.json` (`{ "<hash>": "<document>" }`). Requests name them by
//!   `extensions.persistedQuery.sha256Hash` or `documentId`, or send a registered document
//!   in full; anything else is refused (`PERSISTED_QUERY_NOT_ALLOWED`).

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value as Json};

/// Why a request's document could not be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// An unknown hash: send the query with it (APQ), or it is not registered (trusted).
    NotFound,
    /// The query does not hash to the hash sent with it.
    HashMismatch,
    /// Trusted documents only: the query is not one of them.
    NotAllowed,
    /// Neither a query nor a hash.
    Missing,
    /// `extensions.persistedQuery` is malformed or of an unknown version.
    Malformed(&'static str),
}

impl Refusal {
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::NotFound => "PERSISTED_QUERY_NOT_FOUND",
            Refusal::NotAllowed => "PERSISTED_QUERY_NOT_ALLOWED",
            Refusal::HashMismatch | Refusal::Missing | Refusal::Malformed(_) => "BAD_REQUEST",
        }
    }
    pub fn message(&self) -> &'static str {
        match self {
            // Apollo Client's link looks for this exact message.
            Refusal::NotFound => "PersistedQueryNotFound",
            Refusal::HashMismatch => "provided sha does not match query",
            Refusal::NotAllowed => "only registered operations may run on this gateway",
            Refusal::Missing => "query is required",
            Refusal::Malformed(m) => m,
        }
    }
}

/// Automatic persisted queries kept at most (and their total size).
const APQ_ENTRIES: usize = 10_000;
const APQ_BYTES: usize = 32 << 20;

#[derive(Default)]
struct Kept {
    by_hash: HashMap<String, Arc<str>>,
    order: VecDeque<String>,
    bytes: usize,
}

pub struct PersistedQueries {
    /// None: APQ off.
    automatic: Option<Mutex<Kept>>,
    /// Some: only these run (by hash of the document, and by their manifest id).
    trusted: Option<HashMap<String, Arc<str>>>,
}

impl Default for PersistedQueries {
    fn default() -> Self {
        PersistedQueries::automatic()
    }
}

fn sha256(text: &str) -> String {
    gateway_catalog::sha256_hex(text)
}

impl PersistedQueries {
    /// APQ on, any query allowed.
    pub fn automatic() -> Self {
        PersistedQueries {
            automatic: Some(Mutex::new(Kept::default())),
            trusted: None,
        }
    }

    /// Neither: every request sends its query.
    pub fn off() -> Self {
        PersistedQueries {
            automatic: None,
            trusted: None,
        }
    }

    /// Only the manifest's operations run.
    pub fn trusted(manifest: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(manifest)
            .map_err(|e| format!("cannot read {}: {e}", manifest.display()))?;
        let json: Json = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not JSON: {e}", manifest.display()))?;
        let mut documents: Vec<(Option<String>, String)> = Vec::new();
        match &json {
            // Apollo's persisted query manifest.
            Json::Object(o) if o.get("operations").is_some() => {
                let Some(Json::Array(ops)) = o.get("operations") else {
                    return Err("operations must be an array".into());
                };
                for op in ops {
                    let body = op.get("body").and_then(Json::as_str).ok_or_else(|| {
                        format!("{}: an operation has no body", manifest.display())
                    })?;
                    let id = op.get("id").and_then(Json::as_str).map(str::to_string);
                    documents.push((id, body.to_string()));
                }
            }
            // GraphQL Code Generator's persisted documents: hash -> document.
            Json::Object(o) => {
                for (id, body) in o {
                    let body = body.as_str().ok_or_else(|| {
                        format!("{}: document {id} is not a string", manifest.display())
                    })?;
                    documents.push((Some(id.clone()), body.to_string()));
                }
            }
            _ => {
                return Err(format!(
                    "{} is no persisted-documents manifest",
                    manifest.display()
                ))
            }
        }
        if documents.is_empty() {
            return Err(format!("{} lists no operations", manifest.display()));
        }
        let mut trusted = HashMap::new();
        for (id, body) in documents {
            let body: Arc<str> = body.into();
            trusted.insert(sha256(&body), body.clone());
            if let Some(id) = id {
                trusted.insert(id.strip_prefix("sha256:").unwrap_or(&id).to_string(), body);
            }
        }
        Ok(PersistedQueries {
            automatic: None,
            trusted: Some(trusted),
        })
    }

    /// How many trusted documents, if in that mode.
    pub fn trusted_count(&self) -> Option<usize> {
        self.trusted.as_ref().map(HashMap::len)
    }

    /// The document a request runs: its query, or the one its hash names.
    pub fn resolve(
        &self,
        query: Option<String>,
        extensions: Option<&Map<String, Json>>,
        document_id: Option<&str>,
    ) -> Result<String, Refusal> {
        let hash = match (hash_of(extensions)?, document_id) {
            (Some(h), _) => Some(h),
            (None, Some(id)) => Some(
                id.strip_prefix("sha256:")
                    .unwrap_or(id)
                    .to_ascii_lowercase(),
            ),
            (None, None) => None,
        };
        if let Some(trusted) = &self.trusted {
            return match (hash, query) {
                (Some(h), q) => {
                    let doc = trusted.get(&h).ok_or(Refusal::NotFound)?;
                    if q.is_some_and(|q| *q != **doc) {
                        return Err(Refusal::HashMismatch);
                    }
                    Ok(doc.to_string())
                }
                (None, Some(q)) if trusted.contains_key(&sha256(&q)) => Ok(q),
                (None, Some(_)) => Err(Refusal::NotAllowed),
                (None, None) => Err(Refusal::Missing),
            };
        }
        match (hash, query, &self.automatic) {
            (None, Some(q), _) => Ok(q),
            (None, None, _) => Err(Refusal::Missing),
            // APQ off: the hash is ignored, the query runs.
            (Some(_), Some(q), None) => Ok(q),
            (Some(_), None, None) => Err(Refusal::NotFound),
            (Some(h), None, Some(kept)) => kept
                .lock()
                .ok()
                .and_then(|k| k.by_hash.get(&h).map(|d| d.to_string()))
                .ok_or(Refusal::NotFound),
            (Some(h), Some(q), Some(_)) => {
                if sha256(&q) != h {
                    return Err(Refusal::HashMismatch);
                }
                Ok(q)
            }
        }
    }

    /// Keeps `query` for its hash (APQ), once the request that registers it was let in: an
    /// anonymous client cannot push others' queries out.
    pub fn remember(&self, extensions: Option<&Map<String, Json>>, query: &str) {
        let (Some(kept), Ok(Some(h))) = (&self.automatic, hash_of(extensions)) else {
            return;
        };
        if self.trusted.is_some() || sha256(query) != h {
            return;
        }
        let Ok(mut k) = kept.lock() else { return };
        if k.by_hash.contains_key(&h) {
            return;
        }
        while k.order.len() >= APQ_ENTRIES || k.bytes + query.len() > APQ_BYTES {
            let Some(old) = k.order.pop_front() else {
                break;
            };
            if let Some(d) = k.by_hash.remove(&old) {
                k.bytes -= d.len();
            }
        }
        k.bytes += query.len();
        k.order.push_back(h.clone());
        k.by_hash.insert(h, query.into());
    }
}

/// `extensions.persistedQuery.sha256Hash` (version 1), lower case.
fn hash_of(extensions: Option<&Map<String, Json>>) -> Result<Option<String>, Refusal> {
    let Some(pq) = extensions.and_then(|e| e.get("persistedQuery")) else {
        return Ok(None);
    };
    let Json::Object(pq) = pq else {
        return Err(Refusal::Malformed(
            "extensions.persistedQuery must be an object",
        ));
    };
    if pq.get("version").and_then(Json::as_i64) != Some(1) {
        return Err(Refusal::Malformed(
            "extensions.persistedQuery.version must be 1",
        ));
    }
    match pq.get("sha256Hash").and_then(Json::as_str) {
        Some(h) if h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()) => {
            Ok(Some(h.to_ascii_lowercase()))
        }
        _ => Err(Refusal::Malformed(
            "extensions.persistedQuery.sha256Hash must be 64 hexadecimal digits",
        )),
    }
}
