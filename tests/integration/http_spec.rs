//! GraphQL over HTTP: methods, media types, credentials and status codes.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use serde_json::{json, Value as Json};

use crate::harness::TestApp;

fn post(
    body: &str,
    token: Option<&str>,
    accept: Option<&str>,
    ctype: Option<&str>,
) -> Request<Body> {
    let mut b = Request::builder().method(Method::POST).uri("/graphql");
    if let Some(t) = token {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    if let Some(a) = accept {
        b = b.header(header::ACCEPT, a);
    }
    if let Some(c) = ctype {
        b = b.header(header::CONTENT_TYPE, c);
    }
    b.body(Body::from(body.to_string())).expect("request")
}

fn get(query_string: &str, token: Option<&str>, accept: &str) -> Request<Body> {
    let mut b = Request::builder()
        .method(Method::GET)
        .uri(format!("/graphql?{query_string}"))
        .header(header::ACCEPT, accept);
    if let Some(t) = token {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    b.body(Body::empty()).expect("request")
}

#[tokio::test]
async fn post_and_get_queries_with_both_media_types() {
    let app = TestApp::new().await;
    let q = r#"{"query":"{ viewer { role tenantId } }"}"#;
    let (status, ctype, body) = app
        .send(post(
            q,
            Some(&app.a.admin),
            Some("application/graphql-response+json"),
            Some("application/json"),
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        ctype.starts_with("application/graphql-response+json"),
        "{ctype}"
    );
    let v: Json = serde_json::from_str(&body).expect("json");
    assert_eq!(v["data"]["viewer"]["role"], json!("admin"));
    assert_eq!(v["data"]["viewer"]["tenantId"], json!(app.a.id.to_string()));

    let (status, ctype, _) = app
        .send(post(
            q,
            Some(&app.a.admin),
            Some("application/json"),
            Some("application/json"),
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(ctype.starts_with("application/json"), "{ctype}");

    // No Accept header: application/json.
    let (status, ctype, _) = app
        .send(post(q, Some(&app.a.admin), None, Some("application/json")))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(ctype.starts_with("application/json"));

    let (status, _, body) = app
        .send(get(
            "query=%7B%20viewer%20%7B%20role%20%7D%20%7D",
            Some(&app.a.user),
            "application/json",
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v: Json = serde_json::from_str(&body).expect("json");
    assert_eq!(v["data"]["viewer"]["role"], json!("user"));
}

#[tokio::test]
async fn mutations_over_get_are_refused() {
    let app = TestApp::new().await;
    let qs = "query=mutation%20%7B%20deleteTags(where%3A%20%7B%7D)%20%7B%20id%20%7D%20%7D";
    let (status, _, body) = app
        .send(get(qs, Some(&app.a.admin), "application/json"))
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
}

#[tokio::test]
async fn unsupported_content_types_and_bodies_are_refused() {
    let app = TestApp::new().await;
    let q = r#"{"query":"{ viewer { role } }"}"#;
    let (status, _, _) = app.send(post(q, Some(&app.a.admin), None, None)).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // What a page on another site can send without a preflight is never executed: the three
    // "simple" content types, with a token or without one (signing in).
    let login = r#"{"query":"mutation { login(tenant: \"alpha\", email: \"a@b.c\", password: \"0123456789\") { accessToken } }"}"#;
    for ctype in [
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
    ] {
        for (body, token) in [(q, Some(app.a.admin.as_str())), (login, None)] {
            let (status, _, text) = app.send(post(body, token, None, Some(ctype))).await;
            assert_eq!(
                status,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{ctype}: {text}"
            );
        }
    }
    let (status, _, _) = app
        .send(post(
            "{not json",
            Some(&app.a.admin),
            None,
            Some("application/json"),
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = app
        .send(post(
            r#"{"query": 5}"#,
            Some(&app.a.admin),
            None,
            Some("application/json"),
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = app
        .send(post(
            q,
            Some(&app.a.admin),
            Some("text/xml"),
            Some("application/json"),
        ))
        .await;
    assert_eq!(status, StatusCode::NOT_ACCEPTABLE);
}

#[tokio::test]
async fn invalid_documents_are_400_with_graphql_response_json_and_200_with_json() {
    let app = TestApp::new().await;
    let bad = r#"{"query":"{ viewer { nope } }"}"#;
    let (status, _, body) = app
        .send(post(
            bad,
            Some(&app.a.admin),
            Some("application/graphql-response+json"),
            Some("application/json"),
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let v: Json = serde_json::from_str(&body).expect("json");
    assert!(v.get("data").is_none());
    assert!(v["errors"][0]["extensions"]["code"].is_string(), "{v}");
    let (status, _, _) = app
        .send(post(
            bad,
            Some(&app.a.admin),
            Some("application/json"),
            Some("application/json"),
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn missing_or_bad_credentials_are_unauthenticated() {
    let app = TestApp::new().await;
    let q = r#"{"query":"{ tags { totalCount } }"}"#;
    for token in [
        None,
        Some("not-a-jwt"),
        Some("eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl"),
    ] {
        let (status, _, body) = app
            .send(post(q, token, None, Some("application/json")))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        let v: Json = serde_json::from_str(&body).expect("json");
        assert_eq!(
            v["errors"][0]["extensions"]["code"],
            json!("UNAUTHENTICATED")
        );
    }
    // Signed with another secret.
    let other = gateway::auth::JwtKeys::hs256(b"another-secret-another-secret-another-secret");
    let forged = other
        .issue(app.a.id, app.a.admin_id, gateway::auth::Role::Admin, 60)
        .expect("token");
    let (status, _, _) = app
        .send(post(q, Some(&forged), None, Some("application/json")))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Expired.
    let expired = app
        .keys
        .issue(app.a.id, app.a.admin_id, gateway::auth::Role::Admin, -120)
        .expect("token");
    let (status, _, _) = app
        .send(post(q, Some(&expired), None, Some("application/json")))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn graphiql_health_and_readiness() {
    let app = TestApp::new().await;
    let req = Request::builder()
        .uri("/graphql")
        .header(header::ACCEPT, "text/html")
        .body(Body::empty())
        .expect("request");
    let (status, ctype, body) = app.send(req).await;
    assert_eq!(status, StatusCode::OK);
    assert!(ctype.starts_with("text/html"));
    assert!(body.to_lowercase().contains("graphiql"));
    for path in ["/healthz", "/readyz"] {
        let req = Request::builder()
            .uri(path)
            .body(Body::empty())
            .expect("request");
        let (status, _, _) = app.send(req).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn committed_schema_graphql_is_fresh() {
    let sdl = gateway::graphql::build(
        None,
        None,
        Default::default(),
        &gateway::config::Limits::default(),
    )
    .sdl();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema.graphql");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == sdl,
        "schema.graphql is stale: run `cargo run -- export-schema > schema.graphql`"
    );
}

#[tokio::test]
async fn secrets_have_no_graphql_field() {
    let full = gateway::graphql::build(
        None,
        None,
        Default::default(),
        &gateway::config::Limits::default(),
    )
    .sdl();
    // The sign-in result is where tokens are handed out, once; every other type is checked.
    let sdl: String = full
        .split("\n}\n")
        .filter(|block| !block.contains("type AuthPayload {"))
        .collect::<Vec<_>>()
        .join("\n}\n");
    assert!(full.contains("type AuthPayload {") && !sdl.contains("type AuthPayload {"));
    for hidden in [
        "secretHash",
        "tokenHash",
        "refreshTokenHash",
        "accessToken",
        "idToken",
    ] {
        assert!(!sdl.contains(&format!("{hidden}:")), "{hidden} is exposed");
        assert!(!sdl.contains(&format!("{hidden}(")), "{hidden} is exposed");
    }
    // Tenant-scoped inputs never take a tenant: it comes from the credential.
    assert!(!sdl.contains("input ForumThreadCreateInput {\n\ttenantId"));
}

#[tokio::test]
async fn depth_and_complexity_limits() {
    let limits = gateway::config::Limits {
        max_depth: 3,
        max_complexity: 20,
        ..Default::default()
    };
    let app = TestApp::with_limits(limits).await;
    let (code, _) = app
        .err(
            &app.a.admin,
            "{ tags { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(code, "LIMIT_EXCEEDED");
    let wide: Vec<String> = (0..25)
        .map(|i| format!("t{i}: viewer {{ role }}"))
        .collect();
    let (code, _) = app
        .err(
            &app.a.admin,
            &format!("{{ {} }}", wide.join(" ")),
            json!({}),
        )
        .await;
    assert_eq!(code, "LIMIT_EXCEEDED");
}
