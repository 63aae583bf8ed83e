//! Keys of external identity providers: a JSON Web Key Set (RS256 and ES256 keys) read from a
//! file or fetched over HTTP(S), kept in memory and refreshed at a bounded rate — when a token
//! names a `kid` the cached set lacks (at most once per `min_refresh`) and, in the background,
//! once the set is older than `max_age`. A failed refresh keeps the keys already known.
//!
//! Each key's algorithm comes from the key (its `alg`, else RSA → RS256, EC P-256 → ES256),
//! never from a token: a token whose header names another algorithm than its key is refused,
//! and symmetric (`oct`) keys in a set are ignored, so a set can never turn into an HMAC secret.
//!
//! Claims of external tokens are read through configurable paths ([`ClaimPath`]).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Header};
use serde_json::Value as Json;
use uuid::Uuid;

use super::Role;
use crate::error::ApiError;

/// The largest key set accepted, from a file or a URL.
pub const MAX_JWKS_BYTES: usize = 1 << 20;
/// How long fetching the key set from a URL may take, body included.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the key set comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    File(PathBuf),
    /// An `http://` or `https://` URL.
    Url(String),
}

impl std::fmt::Display for JwksSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JwksSource::File(p) => write!(f, "{}", p.display()),
            JwksSource::Url(u) => f.write_str(u),
        }
    }
}

/// How a key set is refreshed and how external tokens' claims are read.
#[derive(Debug, Clone)]
pub struct JwksOptions {
    /// Least time between two fetches prompted by unknown `kid`s.
    pub min_refresh: Duration,
    /// Age after which the set is refreshed in the background.
    pub max_age: Duration,
    pub claims: ClaimPaths,
}

impl Default for JwksOptions {
    fn default() -> Self {
        JwksOptions {
            min_refresh: Duration::from_secs(60),
            max_age: Duration::from_secs(3600),
            claims: ClaimPaths::default(),
        }
    }
}

/// Where an external token carries the tenant, the user and the role.
#[derive(Debug, Clone)]
pub struct ClaimPaths {
    pub tenant: ClaimPath,
    pub user: ClaimPath,
    pub role: ClaimPath,
}

impl Default for ClaimPaths {
    fn default() -> Self {
        ClaimPaths {
            tenant: ClaimPath::plain("tenant_id"),
            user: ClaimPath::plain("sub"),
            role: ClaimPath::plain("role"),
        }
    }
}

/// A claim's place in the token's JSON: `a.b.c` walks nested objects; a path starting with `/`
/// is a JSON pointer (RFC 6901), for keys that contain dots or slashes:
/// `/https:~1~1example.com~1claims/tenant` reads `{"https://example.com/claims": {"tenant": ..}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimPath {
    text: String,
    kind: PathKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PathKind {
    Keys(Vec<String>),
    Pointer,
}

impl ClaimPath {
    fn plain(key: &str) -> ClaimPath {
        ClaimPath {
            text: key.to_string(),
            kind: PathKind::Keys(vec![key.to_string()]),
        }
    }

    pub fn parse(text: &str) -> Result<ClaimPath, String> {
        let text = text.trim();
        if text.starts_with('/') {
            if text.len() < 2 {
                return Err("a JSON pointer must name a claim".into());
            }
            return Ok(ClaimPath {
                text: text.to_string(),
                kind: PathKind::Pointer,
            });
        }
        let keys: Vec<String> = text.split('.').map(str::to_string).collect();
        if keys.iter().any(String::is_empty) {
            return Err(format!("`{text}` has an empty segment"));
        }
        Ok(ClaimPath {
            text: text.to_string(),
            kind: PathKind::Keys(keys),
        })
    }

    /// The value at this path, if any (JSON null counts as absent).
    pub fn read<'a>(&self, claims: &'a Json) -> Option<&'a Json> {
        let found = match &self.kind {
            PathKind::Pointer => claims.pointer(&self.text),
            PathKind::Keys(keys) => keys.iter().try_fold(claims, |v, k| v.get(k.as_str())),
        }?;
        (!found.is_null()).then_some(found)
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl std::str::FromStr for ClaimPath {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ClaimPath::parse(s)
    }
}

/// The caller an external token names, read through the configured paths.
pub(super) struct Caller {
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub role: Role,
}

impl ClaimPaths {
    pub(super) fn caller(&self, claims: &Json) -> Result<Caller, ApiError> {
        let id = |path: &ClaimPath, what: &str| -> Result<Uuid, ApiError> {
            let value = path.read(claims).ok_or_else(|| {
                ApiError::unauthenticated(format!(
                    "invalid token: no {what} claim `{}`",
                    path.as_str()
                ))
            })?;
            value
                .as_str()
                .and_then(|s| Uuid::parse_str(s).ok())
                .ok_or_else(|| {
                    ApiError::unauthenticated(format!(
                        "invalid token: {what} claim `{}` is not an id",
                        path.as_str()
                    ))
                })
        };
        let tenant_id = id(&self.tenant, "tenant")?;
        let user_id = id(&self.user, "user")?;
        let role = match self.role.read(claims) {
            None => {
                return Err(ApiError::unauthenticated(format!(
                    "invalid token: no role claim `{}`",
                    self.role.as_str()
                )))
            }
            Some(Json::String(s)) => Role::parse(s),
            // Providers often list several roles: the strongest one known here counts.
            Some(Json::Array(list)) => {
                let has = |r: &str| list.iter().any(|v| v.as_str() == Some(r));
                if has("admin") {
                    Some(Role::Admin)
                } else if has("user") {
                    Some(Role::User)
                } else {
                    None
                }
            }
            Some(_) => None,
        }
        .ok_or_else(|| ApiError::unauthenticated("invalid token: unknown role"))?;
        Ok(Caller {
            tenant_id,
            user_id,
            role,
        })
    }
}

/// One verification key of the set.
#[derive(Debug)]
pub(super) struct Key {
    kid: Option<String>,
    pub alg: Algorithm,
    pub key: DecodingKey,
}

struct Snapshot {
    keys: Arc<[Arc<Key>]>,
    fetched_at: Instant,
}

struct Inner {
    source: JwksSource,
    client: Option<reqwest::Client>,
    options: JwksOptions,
    current: RwLock<Snapshot>,
    /// When the last fetch started (successful or not): the rate limit's clock.
    last_attempt: Mutex<Instant>,
    /// One fetch at a time; waiters find the fresh set when they get the lock.
    refresh: tokio::sync::Mutex<()>,
    background: AtomicBool,
}

/// A cached key set. Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct Jwks {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Jwks({})", self.inner.source)
    }
}

enum Lookup {
    Found(Arc<Key>),
    /// The `kid` is known, for another algorithm than the token names.
    WrongAlgorithm,
    NotFound,
}

impl Jwks {
    /// Reads or fetches the set once; fails if that is impossible or it holds no usable key.
    pub async fn load(source: JwksSource, options: JwksOptions) -> Result<Jwks, String> {
        let client = match &source {
            JwksSource::File(_) => None,
            JwksSource::Url(url) => {
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(format!("{url} is not an http:// or https:// URL"));
                }
                Some(
                    reqwest::Client::builder()
                        .timeout(FETCH_TIMEOUT)
                        .build()
                        .map_err(|e| format!("cannot build an HTTP client: {}", chain(&e)))?,
                )
            }
        };
        let started = Instant::now();
        let keys = fetch(&source, client.as_ref())
            .await
            .map_err(|e| match &source {
                JwksSource::Url(_) => format!("cannot fetch the key set at start-up: {e}"),
                JwksSource::File(_) => e,
            })?;
        tracing::info!(source = %source, keys = keys.len(), "JSON Web Key Set loaded");
        Ok(Jwks {
            inner: Arc::new(Inner {
                source,
                client,
                options,
                current: RwLock::new(Snapshot {
                    keys: keys.into(),
                    fetched_at: started,
                }),
                last_attempt: Mutex::new(started),
                refresh: tokio::sync::Mutex::new(()),
                background: AtomicBool::new(false),
            }),
        })
    }

    pub fn claims(&self) -> &ClaimPaths {
        &self.inner.options.claims
    }

    /// The key that verifies a token with this header, refreshing the set (rate-limited) when
    /// the header names an unknown `kid`.
    pub(super) async fn key_for(&self, header: &Header) -> Result<Arc<Key>, ApiError> {
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(ApiError::unauthenticated("invalid token: wrong algorithm"));
        }
        self.refresh_if_old();
        let Some(kid) = header.kid.as_deref() else {
            // Without a `kid` only an unambiguous key will do; never worth a fetch.
            let keys = self.keys();
            let mut fitting = keys.iter().filter(|k| k.alg == header.alg);
            return match (fitting.next(), fitting.next()) {
                (Some(k), None) => Ok(k.clone()),
                _ => Err(ApiError::unauthenticated(
                    "invalid token: no kid, and no single key for its algorithm",
                )),
            };
        };
        let mut lookup = self.find(kid, header.alg);
        if matches!(lookup, Lookup::NotFound) {
            self.refresh_limited().await;
            lookup = self.find(kid, header.alg);
        }
        match lookup {
            Lookup::Found(k) => Ok(k),
            Lookup::WrongAlgorithm => {
                Err(ApiError::unauthenticated("invalid token: wrong algorithm"))
            }
            Lookup::NotFound => Err(ApiError::unauthenticated("invalid token: unknown key")),
        }
    }

    fn keys(&self) -> Arc<[Arc<Key>]> {
        let current = self
            .inner
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        current.keys.clone()
    }

    fn find(&self, kid: &str, alg: Algorithm) -> Lookup {
        let keys = self.keys();
        let mut named = keys
            .iter()
            .filter(|k| k.kid.as_deref() == Some(kid))
            .peekable();
        if named.peek().is_none() {
            return Lookup::NotFound;
        }
        match named.find(|k| k.alg == alg) {
            Some(k) => Lookup::Found(k.clone()),
            None => Lookup::WrongAlgorithm,
        }
    }

    /// Starts a background refresh once the set is older than `max_age`.
    fn refresh_if_old(&self) {
        let age = {
            let current = self
                .inner
                .current
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            current.fetched_at.elapsed()
        };
        if age < self.inner.options.max_age || self.inner.background.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.inner.background.store(false, Ordering::Release);
            return;
        };
        let this = self.clone();
        runtime.spawn(async move {
            this.refresh_limited().await;
            this.inner.background.store(false, Ordering::Release);
        });
    }

    fn refresh_due(&self) -> bool {
        let last = self
            .inner
            .last_attempt
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        last.elapsed() >= self.inner.options.min_refresh
    }

    /// Fetches the set unless a fetch started less than `min_refresh` ago; concurrent callers
    /// wait for the one fetch in flight instead of starting their own.
    async fn refresh_limited(&self) {
        if !self.refresh_due() {
            return;
        }
        let _one_at_a_time = self.inner.refresh.lock().await;
        if !self.refresh_due() {
            return;
        }
        let started = Instant::now();
        *self
            .inner
            .last_attempt
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = started;
        match fetch(&self.inner.source, self.inner.client.as_ref()).await {
            Ok(keys) => {
                tracing::info!(source = %self.inner.source, keys = keys.len(), "JSON Web Key Set refreshed");
                *self
                    .inner
                    .current
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = Snapshot {
                    keys: keys.into(),
                    fetched_at: started,
                };
            }
            Err(e) => {
                tracing::warn!(source = %self.inner.source, error = %e, "refreshing the JSON Web Key Set failed; keeping the keys known");
            }
        }
    }
}

/// Reads or downloads the set and keeps its usable keys.
async fn fetch(
    source: &JwksSource,
    client: Option<&reqwest::Client>,
) -> Result<Vec<Arc<Key>>, String> {
    let body = match (source, client) {
        (JwksSource::File(path), _) => {
            let read = async {
                let meta = tokio::fs::metadata(path).await?;
                if meta.len() > MAX_JWKS_BYTES as u64 {
                    return Ok(None);
                }
                tokio::fs::read(path).await.map(Some)
            };
            match read.await {
                Ok(Some(body)) => body,
                Ok(None) => {
                    return Err(format!(
                        "{}: larger than {MAX_JWKS_BYTES} bytes",
                        path.display()
                    ))
                }
                Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
            }
        }
        (JwksSource::Url(url), Some(client)) => download(client, url)
            .await
            .map_err(|e| format!("{url}: {e}"))?,
        (JwksSource::Url(url), None) => return Err(format!("{url}: no HTTP client")),
    };
    parse(&body).map_err(|e| format!("{source}: {e}"))
}

async fn download(client: &reqwest::Client, url: &str) -> Result<Vec<u8>, String> {
    let mut res = client
        .get(url)
        .header(
            reqwest::header::ACCEPT,
            "application/json, application/jwk-set+json",
        )
        .send()
        .await
        .map_err(|e| chain(&e))?;
    if !res.status().is_success() {
        return Err(format!("answered {}", res.status()));
    }
    let too_large = || format!("larger than {MAX_JWKS_BYTES} bytes");
    if res
        .content_length()
        .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(|e| chain(&e))? {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// An error with its causes: reqwest's own message alone rarely says what went wrong.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The RS256 and ES256 signature keys of a set; other keys (encryption keys, other
/// algorithms, symmetric keys) are skipped rather than failing the whole set.
fn parse(body: &[u8]) -> Result<Vec<Arc<Key>>, String> {
    let doc: Json =
        serde_json::from_slice(body).map_err(|e| format!("not a JSON Web Key Set: {e}"))?;
    let list = doc
        .get("keys")
        .and_then(Json::as_array)
        .ok_or("not a JSON Web Key Set: no `keys` array")?;
    let mut keys = Vec::new();
    for value in list {
        let Ok(jwk) = serde_json::from_value::<Jwk>(value.clone()) else {
            tracing::debug!(key = %value, "skipping an unreadable JSON Web Key");
            continue;
        };
        if let Some(key) = usable(&jwk) {
            keys.push(Arc::new(key));
        }
    }
    if keys.is_empty() {
        return Err("no RS256 or ES256 signature key in the set".into());
    }
    Ok(keys)
}

fn usable(jwk: &Jwk) -> Option<Key> {
    let common = &jwk.common;
    if matches!(common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
        return None;
    }
    if let Some(ops) = &common.key_operations {
        if !ops
            .iter()
            .any(|o| matches!(o, jsonwebtoken::jwk::KeyOperations::Verify))
        {
            return None;
        }
    }
    let alg = match (&jwk.algorithm, common.key_algorithm) {
        (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
        (AlgorithmParameters::EllipticCurve(p), None | Some(KeyAlgorithm::ES256))
            if p.curve == EllipticCurve::P256 =>
        {
            Algorithm::ES256
        }
        _ => return None,
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(Key {
        kid: common.key_id.clone(),
        alg,
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::JwtKeys;
    use base64::Engine;
    use jsonwebtoken::{encode, EncodingKey};
    use serde_json::json;

    const SECRET: &[u8] = b"unit-test-secret-unit-test-secret-0123";

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/jwks")
            .join(name)
    }

    /// The DER inside a PEM fixture (PKCS#1 for RSA, PKCS#8 for EC, as jsonwebtoken wants).
    fn der(name: &str) -> Vec<u8> {
        let pem = std::fs::read_to_string(fixture(name)).unwrap();
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap()
    }

    fn rsa_a() -> EncodingKey {
        EncodingKey::from_rsa_der(&der("rsa-a.pem"))
    }
    fn rsa_b() -> EncodingKey {
        EncodingKey::from_rsa_der(&der("rsa-b.pem"))
    }
    fn ec_a() -> EncodingKey {
        EncodingKey::from_ec_der(&der("ec-a.pem"))
    }

    /// The public JWKs of the fixtures: `rsa-a`, `ec-a` (no `alg`), `rsa-b`.
    fn jwk(kid: &str) -> Json {
        let set: Json =
            serde_json::from_str(&std::fs::read_to_string(fixture("jwks.json")).unwrap()).unwrap();
        let b: Json =
            serde_json::from_str(&std::fs::read_to_string(fixture("rsa-b.jwk.json")).unwrap())
                .unwrap();
        let mut all = set["keys"].as_array().unwrap().clone();
        all.push(b);
        all.into_iter().find(|k| k["kid"] == kid).unwrap()
    }

    /// A key set file of its own, removed when dropped.
    struct TempSet(PathBuf);
    impl TempSet {
        fn new(keys: &[Json]) -> TempSet {
            let path = std::env::temp_dir().join(format!("gateway-jwks-{}.json", Uuid::new_v4()));
            let set = TempSet(path);
            set.write(keys);
            set
        }
        fn write(&self, keys: &[Json]) {
            std::fs::write(&self.0, json!({ "keys": keys }).to_string()).unwrap();
        }
        fn source(&self) -> JwksSource {
            JwksSource::File(self.0.clone())
        }
    }
    impl Drop for TempSet {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Json) -> String {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_string);
        encode(&header, claims, key).unwrap()
    }

    fn claims(tenant: Uuid, user: Uuid) -> Json {
        json!({ "sub": user, "tenant_id": tenant, "role": "admin", "exp": now() + 300 })
    }

    async fn keys_with(source: JwksSource, options: JwksOptions) -> JwtKeys {
        JwtKeys::hs256(SECRET).with_jwks(Jwks::load(source, options).await.unwrap())
    }

    async fn fixture_keys() -> JwtKeys {
        keys_with(
            JwksSource::File(fixture("jwks.json")),
            JwksOptions::default(),
        )
        .await
    }

    /// The refusal's message; every refusal is UNAUTHENTICATED.
    async fn refused(keys: &JwtKeys, token: &str) -> String {
        let e = keys.verify(token).await.unwrap_err();
        assert_eq!(e.code(), "UNAUTHENTICATED", "{}", e.message());
        e.message()
    }

    #[tokio::test]
    async fn rs256_and_es256_tokens_verify_against_a_jwks_file() {
        let keys = fixture_keys().await;
        let (t, u) = (Uuid::now_v7(), Uuid::now_v7());
        let c = claims(t, u);
        let rs = sign(Algorithm::RS256, Some("rsa-a"), &rsa_a(), &c);
        let rc = keys.verify(&rs).await.unwrap();
        assert_eq!((rc.tenant_id, rc.user_id, rc.role), (t, u, Role::Admin));
        assert_eq!(rc.expires_at, c["exp"].as_i64());
        assert_eq!(rc.session_id, None);
        // The EC key names no `alg`: P-256 means ES256.
        let es = sign(Algorithm::ES256, Some("ec-a"), &ec_a(), &c);
        assert_eq!(keys.verify(&es).await.unwrap().user_id, u);
        // The gateway's own tokens still verify with the secret.
        let own = keys.issue(t, u, Role::User, 60).unwrap();
        assert_eq!(keys.verify(&own).await.unwrap().role, Role::User);
    }

    #[tokio::test]
    async fn wrong_key_bad_signature_and_mismatched_algorithms_are_refused() {
        let keys = fixture_keys().await;
        let c = claims(Uuid::now_v7(), Uuid::now_v7());
        let other_key = sign(Algorithm::RS256, Some("rsa-a"), &rsa_b(), &c);
        assert_eq!(
            refused(&keys, &other_key).await,
            "invalid token: bad signature"
        );
        let mut flipped = sign(Algorithm::RS256, Some("rsa-a"), &rsa_a(), &c);
        let last = flipped.pop().unwrap();
        flipped.push(if last == 'A' { 'B' } else { 'A' });
        refused(&keys, &flipped).await;
        // The header's algorithm must be its key's.
        let es_on_rsa = sign(Algorithm::ES256, Some("rsa-a"), &ec_a(), &c);
        assert_eq!(
            refused(&keys, &es_on_rsa).await,
            "invalid token: wrong algorithm"
        );
        let rs_on_ec = sign(Algorithm::RS256, Some("ec-a"), &rsa_a(), &c);
        assert_eq!(
            refused(&keys, &rs_on_ec).await,
            "invalid token: wrong algorithm"
        );
        let rs384 = sign(Algorithm::RS384, Some("rsa-a"), &rsa_a(), &c);
        assert_eq!(
            refused(&keys, &rs384).await,
            "invalid token: wrong algorithm"
        );
        // Without a key set, external tokens are not accepted at all.
        let plain = JwtKeys::hs256(SECRET);
        let rs = sign(Algorithm::RS256, Some("rsa-a"), &rsa_a(), &c);
        assert_eq!(refused(&plain, &rs).await, "invalid token: wrong algorithm");
    }

    #[tokio::test]
    async fn algorithm_confusion_is_refused() {
        let hmac = json!({ "kty": "oct", "kid": "hmac", "alg": "HS256", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0" });
        let set = TempSet::new(&[jwk("rsa-a"), hmac]);
        let keys = keys_with(set.source(), JwksOptions::default()).await;
        let c = claims(Uuid::now_v7(), Uuid::now_v7());
        // HS256 naming the RSA key, with the public key's bytes as the HMAC secret.
        let n = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(jwk("rsa-a")["n"].as_str().unwrap())
            .unwrap();
        let public_json = jwk("rsa-a").to_string();
        for secret in [n.as_slice(), public_json.as_bytes()] {
            let forged = sign(
                Algorithm::HS256,
                Some("rsa-a"),
                &EncodingKey::from_secret(secret),
                &c,
            );
            assert_eq!(
                refused(&keys, &forged).await,
                "invalid token: bad signature"
            );
        }
        // A symmetric key in the set is never used.
        let with_oct = sign(
            Algorithm::HS256,
            Some("hmac"),
            &EncodingKey::from_secret(b"secret-secret-secret-secret"),
            &c,
        );
        refused(&keys, &with_oct).await;
        // RS256 named, the gateway's secret used: never verified with the secret.
        let header = json!({ "alg": "RS256", "kid": "rsa-a" });
        let b64 = |v: &Json| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let input = format!("{}.{}", b64(&header), b64(&c));
        let sig = jsonwebtoken::crypto::sign(
            input.as_bytes(),
            &EncodingKey::from_secret(SECRET),
            Algorithm::HS256,
        )
        .unwrap();
        refused(&keys, &format!("{input}.{sig}")).await;
        // `none`.
        refused(
            &keys,
            &format!("{}.{}.", b64(&json!({ "alg": "none" })), b64(&c)),
        )
        .await;
    }

    #[tokio::test]
    async fn a_token_without_kid_needs_a_single_key_of_its_algorithm() {
        let keys = fixture_keys().await;
        let c = claims(Uuid::now_v7(), Uuid::now_v7());
        // One RSA and one EC key: each algorithm has a single candidate.
        assert!(keys
            .verify(&sign(Algorithm::RS256, None, &rsa_a(), &c))
            .await
            .is_ok());
        assert!(keys
            .verify(&sign(Algorithm::ES256, None, &ec_a(), &c))
            .await
            .is_ok());
        let set = TempSet::new(&[jwk("rsa-a"), jwk("rsa-b")]);
        let two = keys_with(set.source(), JwksOptions::default()).await;
        assert_eq!(
            refused(&two, &sign(Algorithm::RS256, None, &rsa_a(), &c)).await,
            "invalid token: no kid, and no single key for its algorithm"
        );
    }

    fn refresh(min: u64, max_age: u64) -> JwksOptions {
        JwksOptions {
            min_refresh: Duration::from_secs(min),
            max_age: Duration::from_secs(max_age),
            ..JwksOptions::default()
        }
    }

    #[tokio::test]
    async fn unknown_kids_refetch_at_a_bounded_rate_and_failures_keep_the_keys() {
        let c = claims(Uuid::now_v7(), Uuid::now_v7());
        let a = sign(Algorithm::RS256, Some("rsa-a"), &rsa_a(), &c);
        let b = sign(Algorithm::RS256, Some("rsa-b"), &rsa_b(), &c);

        // Rotation: the set gains `rsa-b`; its first token fetches it.
        let set = TempSet::new(&[jwk("rsa-a")]);
        let keys = keys_with(set.source(), refresh(0, 3600)).await;
        assert_eq!(refused(&keys, &b).await, "invalid token: unknown key");
        set.write(&[jwk("rsa-a"), jwk("rsa-b")]);
        assert!(keys.verify(&b).await.is_ok());

        // Within `min_refresh` of the last fetch (here: the load), no refetch.
        let set = TempSet::new(&[jwk("rsa-a")]);
        let keys = keys_with(set.source(), refresh(3600, 3600)).await;
        set.write(&[jwk("rsa-a"), jwk("rsa-b")]);
        assert_eq!(refused(&keys, &b).await, "invalid token: unknown key");

        // A failed fetch keeps the keys known.
        let set = TempSet::new(&[jwk("rsa-a")]);
        let keys = keys_with(set.source(), refresh(0, 3600)).await;
        std::fs::write(&set.0, "not json").unwrap();
        assert_eq!(refused(&keys, &b).await, "invalid token: unknown key");
        std::fs::remove_file(&set.0).unwrap();
        assert_eq!(refused(&keys, &b).await, "invalid token: unknown key");
        assert!(keys.verify(&a).await.is_ok());
    }

    #[tokio::test]
    async fn an_old_set_is_refreshed_in_the_background() {
        let set = TempSet::new(&[jwk("rsa-a")]);
        let jwks = Jwks::load(set.source(), refresh(0, 0)).await.unwrap();
        let keys = JwtKeys::hs256(SECRET).with_jwks(jwks.clone());
        set.write(&[jwk("rsa-a"), jwk("rsa-b")]);
        let c = claims(Uuid::now_v7(), Uuid::now_v7());
        // A known key: no fetch is needed for it, but the set's age starts one.
        assert!(keys
            .verify(&sign(Algorithm::RS256, Some("rsa-a"), &rsa_a(), &c))
            .await
            .is_ok());
        for _ in 0..100 {
            if jwks.keys().len() == 2 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the set was not refreshed");
    }

    #[tokio::test]
    async fn claim_paths_read_nested_objects_pointers_and_role_lists() {
        let options = JwksOptions {
            claims: ClaimPaths {
                tenant: ClaimPath::parse("app.tenant").unwrap(),
                user: ClaimPath::parse("/https:~1~1example.com~1claims/user").unwrap(),
                role: ClaimPath::parse("app.roles").unwrap(),
            },
            ..JwksOptions::default()
        };
        let keys = keys_with(JwksSource::File(fixture("jwks.json")), options).await;
        let (t, u) = (Uuid::now_v7(), Uuid::now_v7());
        let token = |app: Json, user: Json| {
            let c = json!({
                "app": app,
                "https://example.com/claims": { "user": user },
                "exp": now() + 300,
            });
            sign(Algorithm::RS256, Some("rsa-a"), &rsa_a(), &c)
        };
        let rc = keys
            .verify(&token(
                json!({ "tenant": t, "roles": ["viewer", "admin"] }),
                json!(u),
            ))
            .await
            .unwrap();
        assert_eq!((rc.tenant_id, rc.user_id, rc.role), (t, u, Role::Admin));
        let rc = keys
            .verify(&token(
                json!({ "tenant": t, "roles": ["user", "viewer"] }),
                json!(u),
            ))
            .await
            .unwrap();
        assert_eq!(rc.role, Role::User);
        let rc = keys
            .verify(&token(json!({ "tenant": t, "roles": "admin" }), json!(u)))
            .await
            .unwrap();
        assert_eq!(rc.role, Role::Admin);
        for (app, user, message) in [
            (
                json!({ "tenant": t, "roles": ["viewer"] }),
                json!(u),
                "invalid token: unknown role",
            ),
            (
                json!({ "tenant": t, "roles": "superadmin" }),
                json!(u),
                "invalid token: unknown role",
            ),
            (
                json!({ "tenant": t }),
                json!(u),
                "invalid token: no role claim `app.roles`",
            ),
            (
                json!({ "roles": "user" }),
                json!(u),
                "invalid token: no tenant claim `app.tenant`",
            ),
            (
                json!({ "tenant": "acme", "roles": "user" }),
                json!(u),
                "invalid token: tenant claim `app.tenant` is not an id",
            ),
            (
                json!({ "tenant": t, "roles": "user" }),
                json!("auth0|12345"),
                "invalid token: user claim `/https:~1~1example.com~1claims/user` is not an id",
            ),
        ] {
            assert_eq!(refused(&keys, &token(app, user)).await, message);
        }
    }

    #[test]
    fn claim_paths_parse() {
        let p = ClaimPath::parse("a.b").unwrap();
        assert_eq!(p.read(&json!({ "a": { "b": 1 } })), Some(&json!(1)));
        assert_eq!(p.read(&json!({ "a.b": 1 })), None);
        let p = ClaimPath::parse("/a.b").unwrap();
        assert_eq!(p.read(&json!({ "a.b": 1 })), Some(&json!(1)));
        assert_eq!(p.read(&json!({ "a.b": null })), None);
        for bad in ["", "a..b", ".a", "a.", "/"] {
            assert!(ClaimPath::parse(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn exp_nbf_issuer_and_audience_apply_to_external_tokens() {
        let keys = fixture_keys().await;
        let c = claims(Uuid::now_v7(), Uuid::now_v7());
        let with = |changes: Json| {
            let mut c = c.clone();
            for (k, v) in changes.as_object().unwrap() {
                if v.is_null() {
                    c.as_object_mut().unwrap().remove(k);
                } else {
                    c[k] = v.clone();
                }
            }
            sign(Algorithm::RS256, Some("rsa-a"), &rsa_a(), &c)
        };
        let expired = with(json!({ "exp": now() - 120 }));
        assert_eq!(refused(&keys, &expired).await, "invalid token: expired");
        // Within the 5 s leeway.
        assert!(keys
            .verify(&with(json!({ "exp": now() - 2 })))
            .await
            .is_ok());
        let early = with(json!({ "nbf": now() + 3600 }));
        assert_eq!(refused(&keys, &early).await, "invalid token: not yet valid");
        let no_exp = with(json!({ "exp": null }));
        assert_eq!(
            refused(&keys, &no_exp).await,
            "invalid token: missing claim"
        );

        let strict = keys
            .clone()
            .with_issuer_audience(Some("https://idp.example".into()), Some("gateway".into()));
        let good = with(json!({ "iss": "https://idp.example", "aud": ["gateway", "other"] }));
        assert!(strict.verify(&good).await.is_ok());
        for (bad, message) in [
            (with(json!({ "aud": "gateway" })), "missing claim"),
            (
                with(json!({ "iss": "https://idp.example" })),
                "missing claim",
            ),
            (
                with(json!({ "iss": "https://evil.example", "aud": "gateway" })),
                "wrong issuer",
            ),
            (
                with(json!({ "iss": "https://idp.example", "aud": "billing" })),
                "wrong audience",
            ),
        ] {
            assert_eq!(
                refused(&strict, &bad).await,
                format!("invalid token: {message}")
            );
        }
        // The clone shares nothing it should not: the first keys stay unconfigured.
        assert!(keys.verify(&with(json!({}))).await.is_ok());
    }

    #[tokio::test]
    async fn loading_fails_clearly() {
        let options = JwksOptions::default;
        let missing = fixture("does-not-exist.json");
        let e = Jwks::load(JwksSource::File(missing), options())
            .await
            .unwrap_err();
        assert!(e.contains("cannot read"), "{e}");
        let garbage = TempSet::new(&[]);
        std::fs::write(&garbage.0, "{").unwrap();
        let e = Jwks::load(garbage.source(), options()).await.unwrap_err();
        assert!(e.contains("not a JSON Web Key Set"), "{e}");
        let only_hmac = TempSet::new(&[json!({ "kty": "oct", "kid": "h", "k": "c2VjcmV0" })]);
        let e = Jwks::load(only_hmac.source(), options()).await.unwrap_err();
        assert!(e.contains("no RS256 or ES256 signature key"), "{e}");
        let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = unused.local_addr().unwrap().port();
        drop(unused);
        let url = format!("http://127.0.0.1:{port}/jwks.json");
        let e = Jwks::load(JwksSource::Url(url), options())
            .await
            .unwrap_err();
        assert!(e.contains("cannot fetch the key set at start-up"), "{e}");
    }
}
