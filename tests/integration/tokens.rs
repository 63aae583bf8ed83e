//! Forged and invalid bearer tokens: every one is a 401 with `UNAUTHENTICATED` and none reaches
//! the database. (WebSocket `connection_init` goes through the same verification; its refusal
//! code, 4403, is tested with the subscriptions.)

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value as Json};

use crate::harness::{TestApp, SECRET};

fn b64(v: &Json) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

fn claims(app: &TestApp, exp_in: i64) -> Json {
    let now = chrono::Utc::now().timestamp();
    json!({
        "sub": app.a.admin_id.to_string(),
        "tenant_id": app.a.id.to_string(),
        "role": "admin",
        "iat": now,
        "exp": now + exp_in,
    })
}

/// `header.claims` signed with HMAC-SHA256 over `SECRET`, whatever the header says.
fn hmac_signed(header: &Json, claims: &Json) -> String {
    let input = format!("{}.{}", b64(header), b64(claims));
    let sig = jsonwebtoken::crypto::sign(
        input.as_bytes(),
        &EncodingKey::from_secret(SECRET),
        Algorithm::HS256,
    )
    .expect("sign");
    format!("{input}.{sig}")
}

#[tokio::test]
async fn forged_and_invalid_tokens_are_refused() {
    let app = TestApp::new().await;
    let good = claims(&app, 300);
    let genuine = hmac_signed(&json!({ "alg": "HS256", "typ": "JWT" }), &good);
    // The genuine token works, so every refusal below is about what was changed.
    app.ok(&genuine, "{ viewer { role } }", json!({})).await;

    let mut forged: Vec<(&str, String)> = Vec::new();
    forged.push((
        "alg none",
        format!(
            "{}.{}.",
            b64(&json!({ "alg": "none", "typ": "JWT" })),
            b64(&good)
        ),
    ));
    forged.push((
        "alg None without signature part",
        format!("{}.{}", b64(&json!({ "alg": "None" })), b64(&good)),
    ));
    // Algorithm confusion: an asymmetric algorithm named, the shared secret used as the key.
    for alg in ["RS256", "ES256", "PS256", "EdDSA"] {
        forged.push((
            "algorithm confusion",
            hmac_signed(&json!({ "alg": alg, "typ": "JWT" }), &good),
        ));
    }
    // Another HMAC strength with the right secret.
    let hs512 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS512),
        &good,
        &EncodingKey::from_secret(SECRET),
    )
    .expect("sign");
    forged.push(("HS512", hs512));
    // A changed claim under the original signature: escalation to another tenant.
    let mut escalated = good.clone();
    escalated["tenant_id"] = json!(app.b.id.to_string());
    let sig = genuine.rsplit('.').next().unwrap_or("").to_string();
    forged.push((
        "claims swapped under a genuine signature",
        format!(
            "{}.{}.{sig}",
            b64(&json!({ "alg": "HS256", "typ": "JWT" })),
            b64(&escalated)
        ),
    ));
    let mut flipped = genuine.clone();
    let last = flipped.pop().unwrap_or('A');
    flipped.push(if last == 'A' { 'B' } else { 'A' });
    forged.push(("bad signature", flipped));
    forged.push((
        "expired",
        hmac_signed(&json!({ "alg": "HS256" }), &claims(&app, -120)),
    ));
    let mut future = good.clone();
    future["nbf"] = json!(chrono::Utc::now().timestamp() + 3600);
    forged.push((
        "not yet valid",
        hmac_signed(&json!({ "alg": "HS256" }), &future),
    ));
    let mut no_exp = good.clone();
    if let Some(o) = no_exp.as_object_mut() {
        o.remove("exp");
    }
    forged.push(("no exp", hmac_signed(&json!({ "alg": "HS256" }), &no_exp)));
    let mut bad_role = good.clone();
    bad_role["role"] = json!("superadmin");
    forged.push((
        "unknown role",
        hmac_signed(&json!({ "alg": "HS256" }), &bad_role),
    ));
    let mut bad_tenant = good.clone();
    bad_tenant["tenant_id"] = json!("*");
    forged.push((
        "tenant not an id",
        hmac_signed(&json!({ "alg": "HS256" }), &bad_tenant),
    ));
    forged.push(("empty", String::new()));
    forged.push(("garbage", "a.b.c".into()));

    let before = app.db.statements();
    for (what, token) in &forged {
        let (status, text) = app
            .bearer_request(token, "{ viewer { role } forumCategories { totalCount } }")
            .await;
        assert_eq!(status, 401, "{what}: {text}");
        let v: Json = serde_json::from_str(&text).expect("json");
        assert_eq!(
            v["errors"][0]["extensions"]["code"],
            json!("UNAUTHENTICATED"),
            "{what}"
        );
        assert!(v.get("data").is_none(), "{what}: {text}");
    }
    assert_eq!(
        app.db.statements(),
        before,
        "no forged request touched the database"
    );
}
