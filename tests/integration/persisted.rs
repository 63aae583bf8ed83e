//! Persisted queries: Apollo's automatic persisted queries (the PersistedQueryNotFound flow,
//! hash-only GETs) and the trusted-documents mode where only a manifest's operations run.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use serde_json::{json, Value as Json};
use sha2::{Digest, Sha256};

use crate::harness::{send_to, TestApp};

const QUERY: &str = "query Me { me { id } }";

fn sha(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn post(token: Option<&str>, body: Json) -> Request<Body> {
    let mut req = Request::builder()
        .method(Method::POST)
        .uri("/graphql")
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    req.body(Body::from(body.to_string())).expect("request")
}

fn get(token: &str, query_string: &str) -> Request<Body> {
    Request::builder()
        .method(Method::GET)
        .uri(format!("/graphql?{query_string}"))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::ACCEPT, "application/json")
        .body(Body::empty())
        .expect("request")
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn parse(body: &str) -> Json {
    serde_json::from_str(body).unwrap_or(Json::Null)
}

fn code(r: &Json) -> &str {
    r["errors"][0]["extensions"]["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn automatic_persisted_queries_follow_apollos_flow() {
    let app = TestApp::new().await;
    let hash = sha(QUERY);
    let ext = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });
    let token = app.a.user.as_str();

    // Unknown hash: the client is told to send the query.
    let (status, _, body) = app
        .send(post(Some(token), json!({ "extensions": ext })))
        .await;
    assert_eq!(status, StatusCode::OK);
    let r = parse(&body);
    assert_eq!(code(&r), "PERSISTED_QUERY_NOT_FOUND", "{r}");
    assert_eq!(r["errors"][0]["message"], "PersistedQueryNotFound");

    // An anonymous request registers nothing (it is refused before running).
    let (status, _, _) = app
        .send(post(None, json!({ "query": QUERY, "extensions": ext })))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, _, body) = app
        .send(post(Some(token), json!({ "extensions": ext })))
        .await;
    assert_eq!(code(&parse(&body)), "PERSISTED_QUERY_NOT_FOUND");

    // A wrong hash with its query is refused; the right one runs and is kept.
    let wrong = json!({ "persistedQuery": { "version": 1, "sha256Hash": sha("{ __typename }") } });
    let (_, _, body) = app
        .send(post(
            Some(token),
            json!({ "query": QUERY, "extensions": wrong }),
        ))
        .await;
    assert_eq!(code(&parse(&body)), "BAD_REQUEST", "{body}");
    let (_, _, body) = app
        .send(post(
            Some(token),
            json!({ "query": QUERY, "extensions": ext }),
        ))
        .await;
    assert_eq!(
        parse(&body)["data"]["me"]["id"],
        json!(app.a.user_id.to_string())
    );

    // From now on the hash alone is enough, over POST and as a cacheable GET.
    let (_, _, body) = app
        .send(post(Some(token), json!({ "extensions": ext })))
        .await;
    assert_eq!(
        parse(&body)["data"]["me"]["id"],
        json!(app.a.user_id.to_string()),
        "{body}"
    );
    let (status, _, body) = app
        .send(get(
            token,
            &format!("extensions={}", encode(&ext.to_string())),
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        parse(&body)["data"]["me"]["id"],
        json!(app.a.user_id.to_string())
    );

    // Malformed extensions are a clear error.
    let bad = json!({ "persistedQuery": { "version": 2, "sha256Hash": hash } });
    let (_, _, body) = app
        .send(post(Some(token), json!({ "extensions": bad })))
        .await;
    assert_eq!(code(&parse(&body)), "BAD_REQUEST");
}

#[tokio::test]
async fn trusted_documents_run_and_nothing_else() {
    let app = TestApp::new().await;
    let dir = std::env::temp_dir().join(format!("trusted-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    let listed = "query Listed { viewer { userId } }";
    // Apollo's manifest and GraphQL Code Generator's map: both load.
    let apollo = dir.join("persisted-query-manifest.json");
    std::fs::write(
        &apollo,
        json!({
            "format": "apollo-persisted-query-manifest",
            "version": 1,
            "operations": [{ "id": sha(listed), "name": "Listed", "type": "query", "body": listed }]
        })
        .to_string(),
    )
    .expect("manifest");
    let codegen = dir.join("persisted-documents.json");
    std::fs::write(
        &codegen,
        json!({ format!("sha256:{}", sha(QUERY)): QUERY }).to_string(),
    )
    .expect("manifest");
    assert!(
        gateway::http::persisted::PersistedQueries::trusted(&dir.join("missing.json")).is_err()
    );

    let router = app
        .instance_with_persisted(
            gateway::http::persisted::PersistedQueries::trusted(&apollo).expect("apollo manifest"),
        )
        .await;
    let token = app.a.user.as_str();
    let ext = |h: String| json!({ "persistedQuery": { "version": 1, "sha256Hash": h } });
    // By hash, by documentId, or in full when registered.
    let (_, _, body) = send_to(
        &router,
        post(Some(token), json!({ "extensions": ext(sha(listed)) })),
    )
    .await;
    assert_eq!(
        parse(&body)["data"]["viewer"]["userId"],
        json!(app.a.user_id.to_string()),
        "{body}"
    );
    let (_, _, body) = send_to(
        &router,
        post(
            Some(token),
            json!({ "documentId": format!("sha256:{}", sha(listed)) }),
        ),
    )
    .await;
    assert!(parse(&body)["data"]["viewer"].is_object(), "{body}");
    let (_, _, body) = send_to(&router, post(Some(token), json!({ "query": listed }))).await;
    assert!(parse(&body)["data"]["viewer"].is_object(), "{body}");
    // Anything else is refused, and nothing gets registered.
    let (_, _, body) = send_to(&router, post(Some(token), json!({ "query": QUERY }))).await;
    assert_eq!(code(&parse(&body)), "PERSISTED_QUERY_NOT_ALLOWED", "{body}");
    let (_, _, body) = send_to(
        &router,
        post(
            Some(token),
            json!({ "query": QUERY, "extensions": ext(sha(QUERY)) }),
        ),
    )
    .await;
    assert_eq!(code(&parse(&body)), "PERSISTED_QUERY_NOT_FOUND", "{body}");

    let router = app
        .instance_with_persisted(
            gateway::http::persisted::PersistedQueries::trusted(&codegen)
                .expect("codegen manifest"),
        )
        .await;
    let (_, _, body) = send_to(
        &router,
        post(Some(token), json!({ "documentId": sha(QUERY) })),
    )
    .await;
    assert_eq!(
        parse(&body)["data"]["me"]["id"],
        json!(app.a.user_id.to_string()),
        "{body}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
