//! `/metrics`: Prometheus' text format with requests by operation and outcome, latency
//! histograms, the pool, statements, sockets, subscriptions, the outbox's lag and failed
//! sign-ins; loopback clients only.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::json;

use crate::harness::TestApp;
use crate::subscriptions::{acked, send};

pub(crate) fn scrape(from: Option<&str>) -> Request<Body> {
    let mut req = Request::builder()
        .method(Method::GET)
        .uri("/metrics")
        .body(Body::empty())
        .expect("request");
    if let Some(ip) = from {
        let addr: std::net::SocketAddr = format!("{ip}:40000").parse().expect("address");
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(addr));
    }
    req
}

/// The value of the sample `line` starts with.
pub(crate) fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn metrics_count_requests_outcomes_and_resources() {
    let app = TestApp::new().await;
    app.ok(&app.a.user, "{ me { id } }", json!({})).await;
    app.ok(&app.a.user, "{ me { id } }", json!({})).await;
    let denied = app
        .gql(
            &app.a.user,
            "mutation { createTenantSetting(input: {}) { id } }",
            json!({}),
        )
        .await;
    assert!(denied.get("errors").is_some());
    let failed = app
        .anon(
            "mutation { login(tenant: \"alpha\", email: \"user@alpha.test\", password: \"not the password at all\") { accessToken } }",
            json!({}),
            None,
        )
        .await;
    assert!(failed.get("errors").is_some(), "{failed}");
    let addr = app.listen().await;
    let mut ws = acked(addr, &app.a.user).await;
    send(
        &mut ws,
        json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription { myNotifications { op } }" } }),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (status, headers, text) = app.send(scrape(None)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.contains("text/plain"), "{headers}");
    assert_eq!(
        sample(
            &text,
            "gateway_requests_total{operation=\"query\",outcome=\"ok\"}"
        ),
        Some(2.0),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l
            .starts_with("gateway_requests_total{operation=\"mutation\",outcome=\"")
            && !l.contains("outcome=\"ok\"")),
        "{text}"
    );
    assert_eq!(
        sample(&text, "gateway_sign_in_failures_total"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "gateway_request_duration_seconds_count{operation=\"query\"}"
        ),
        Some(2.0)
    );
    assert!(
        text.contains("gateway_request_duration_seconds_bucket{operation=\"query\",le=\"+Inf\"} 2")
    );
    for gauge in [
        "gateway_db_pool_connections ",
        "gateway_db_pool_in_use ",
        "gateway_db_pool_waiting ",
        "gateway_outbox_lag_events ",
        "gateway_outbox_delivered_seq ",
    ] {
        assert!(sample(&text, gauge).is_some(), "missing {gauge} in {text}");
    }
    assert!(sample(&text, "gateway_db_statements_total").is_some_and(|n| n > 0.0));
    // Process-wide: other tests' sockets count too.
    assert!(
        sample(&text, "gateway_sockets_open").is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert!(
        sample(&text, "gateway_subscriptions_active").is_some_and(|n| n >= 1.0),
        "{text}"
    );

    // Not for the outside world.
    let (status, _, _) = app.send(scrape(Some("203.0.113.9"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = app.send(scrape(Some("127.0.0.1"))).await;
    assert_eq!(status, StatusCode::OK);
}
