//! Tokens of an external identity provider: its key set served over HTTP by a local server
//! that counts fetches, the gateway fetching it through `GATEWAY_JWKS_URL`'s code path. An
//! RS256 token reaches the GraphQL endpoint; a new `kid` (key rotation) costs one refetch; a
//! flood of unknown `kid`s costs at most one fetch per `min_refresh`; and an HS256 token keyed
//! with the provider's public key is refused.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use gateway::auth::{Jwks, JwksOptions, JwksSource, JwtKeys};
use gateway::config::Limits;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value as Json};
use uuid::Uuid;

use crate::harness::{TestApp, SECRET};

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/jwks")
        .join(name)
}

fn read_json(name: &str) -> Json {
    serde_json::from_str(&std::fs::read_to_string(fixture(name)).expect("fixture"))
        .expect("fixture JSON")
}

/// The public JWK `rsa-a`, `ec-a` or `rsa-b`.
fn jwk(kid: &str) -> Json {
    let mut all = read_json("jwks.json")["keys"]
        .as_array()
        .expect("keys")
        .clone();
    all.push(read_json("rsa-b.jwk.json"));
    all.into_iter()
        .find(|k| k["kid"] == kid)
        .expect("fixture key")
}

/// An RSA private key fixture (PKCS#1 PEM) as jsonwebtoken's signing key.
fn rsa(name: &str) -> EncodingKey {
    let pem = std::fs::read_to_string(fixture(name)).expect("fixture");
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("PEM body");
    EncodingKey::from_rsa_der(&der)
}

/// The identity provider's key set endpoint.
struct Idp {
    url: String,
    keys: Arc<Mutex<Vec<Json>>>,
    fetches: Arc<AtomicUsize>,
}

impl Idp {
    async fn start(keys: Vec<Json>) -> Idp {
        let keys = Arc::new(Mutex::new(keys));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (k, f) = (keys.clone(), fetches.clone());
        let app = axum::Router::new().route(
            "/.well-known/jwks.json",
            axum::routing::get(move || {
                let (k, f) = (k.clone(), f.clone());
                async move {
                    f.fetch_add(1, Ordering::SeqCst);
                    let keys = k.lock().expect("keys").clone();
                    axum::Json(json!({ "keys": keys }))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Idp {
            url: format!("http://{addr}/.well-known/jwks.json"),
            keys,
            fetches,
        }
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    fn publish(&self, keys: Vec<Json>) {
        *self.keys.lock().expect("keys") = keys;
    }
}

fn sign(kid: &str, key: &EncodingKey, claims: &Json) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_string());
    jsonwebtoken::encode(&header, claims, key).expect("sign")
}

const VIEWER: &str = "{ viewer { tenantId userId role } }";

/// Sends `token`; must be refused with UNAUTHENTICATED; returns the message.
async fn refused(app: &TestApp, token: &str) -> String {
    let (status, text) = app.bearer_request(token, VIEWER).await;
    assert_eq!(status, 401, "{text}");
    let v: Json = serde_json::from_str(&text).expect("json");
    assert_eq!(
        v["errors"][0]["extensions"]["code"],
        json!("UNAUTHENTICATED")
    );
    v["errors"][0]["message"].as_str().unwrap_or("").to_string()
}

#[tokio::test]
async fn external_tokens_verified_with_a_fetched_key_set() {
    let idp = Idp::start(vec![jwk("rsa-a")]).await;
    let min_refresh = Duration::from_secs(1);
    let jwks = Jwks::load(
        JwksSource::Url(idp.url.clone()),
        JwksOptions {
            min_refresh,
            ..JwksOptions::default()
        },
    )
    .await
    .expect("key set");
    assert_eq!(idp.fetches(), 1, "loaded once at start");
    let loaded = tokio::time::Instant::now();
    let app = TestApp::with_keys(JwtKeys::hs256(SECRET).with_jwks(jwks), Limits::default()).await;

    let now = chrono::Utc::now().timestamp();
    let claims = json!({
        "iss": "https://idp.example",
        "sub": app.a.user_id.to_string(),
        "tenant_id": app.a.id.to_string(),
        "role": ["user"],
        "exp": now + 300,
    });
    let token = sign("rsa-a", &rsa("rsa-a.pem"), &claims);
    let data = app.ok(&token, VIEWER, json!({})).await;
    assert_eq!(
        data["viewer"],
        json!({
            "tenantId": app.a.id.to_string(),
            "userId": app.a.user_id.to_string(),
            "role": "user",
        })
    );
    assert_eq!(idp.fetches(), 1, "a known key needs no fetch");

    // A flood of unknown kids, once `min_refresh` has passed since the load: one fetch.
    tokio::time::sleep_until(loaded + min_refresh + Duration::from_millis(100)).await;
    let flood = || {
        futures::future::join_all((0..40).map(|_| {
            let token = sign(&Uuid::new_v4().to_string(), &rsa("rsa-a.pem"), &claims);
            let app = &app;
            async move { refused(app, &token).await }
        }))
    };
    for message in flood().await {
        assert_eq!(message, "invalid token: unknown key");
    }
    assert_eq!(idp.fetches(), 2, "one fetch for the whole flood");
    // Another flood within the interval: no fetch at all.
    for message in flood().await {
        assert_eq!(message, "invalid token: unknown key");
    }
    assert_eq!(idp.fetches(), 2, "no fetch within min_refresh");

    // Key rotation: the provider publishes `rsa-b`; its first token fetches it.
    idp.publish(vec![jwk("rsa-a"), jwk("rsa-b")]);
    tokio::time::sleep(min_refresh + Duration::from_millis(100)).await;
    let rotated = sign("rsa-b", &rsa("rsa-b.pem"), &claims);
    let data = app.ok(&rotated, VIEWER, json!({})).await;
    assert_eq!(data["viewer"]["userId"], json!(app.a.user_id.to_string()));
    assert_eq!(idp.fetches(), 3, "one refetch for the new kid");
    app.ok(&rotated, VIEWER, json!({})).await;
    app.ok(&token, VIEWER, json!({})).await;
    assert_eq!(idp.fetches(), 3, "known keys need no fetch");

    // Algorithm confusion: HS256 naming the provider's key, keyed with its public parts.
    let public = jwk("rsa-a");
    let n = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(public["n"].as_str().expect("n"))
        .expect("n bytes");
    let public_text = public.to_string();
    for secret in [n.as_slice(), public_text.as_bytes()] {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("rsa-a".into());
        let forged = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(secret))
            .expect("sign");
        assert_eq!(refused(&app, &forged).await, "invalid token: bad signature");
    }
    assert_eq!(idp.fetches(), 3, "HS256 tokens never consult the key set");
}
