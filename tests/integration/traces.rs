//! Traces exported over OTLP/HTTP to a local receiver: the request's span continues the
//! caller's W3C `traceparent`; its loader batches and SQL statements have spans of their own.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::routing::post;
use serde_json::json;

use crate::harness::TestApp;

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn a_request_span_continues_the_callers_trace_with_its_statements() {
    let app = TestApp::new().await;
    let Some(mut cmd) = app.serve_command().await else {
        eprintln!("skipped: TEST_DATABASE_URL gives no login for the serving role");
        return;
    };

    // The receiver: keeps every OTLP trace export it is sent.
    let received: Arc<Mutex<Vec<Bytes>>> = Arc::default();
    let keep = received.clone();
    let receiver = axum::Router::new().route(
        "/v1/traces",
        post(move |body: Bytes| {
            let keep = keep.clone();
            async move {
                keep.lock().expect("lock").push(body);
                ""
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let otlp = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, receiver).await });

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = cmd
        .env("GATEWAY_BIND", &addr)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{otlp}"))
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start gateway");
    let client = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..300 {
        let up = client.get(format!("http://{addr}/readyz")).send().await;
        if up.is_ok_and(|r| r.status().is_success()) {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "the gateway did not become ready");

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let answer = client
        .post(format!("http://{addr}/graphql"))
        .bearer_auth(&app.a.user)
        .header("content-type", "application/json")
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .body(
            json!({ "query": "query Traced { me { id notifications { totalCount } } }" })
                .to_string(),
        )
        .send()
        .await
        .expect("request");
    assert!(answer.status().is_success());

    let id_bytes: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&trace_id[2 * i..2 * i + 2], 16).unwrap_or(0))
        .collect();
    let mut found = false;
    for _ in 0..100 {
        {
            let got = received.lock().expect("lock");
            let all: Vec<u8> = got.iter().flat_map(|b| b.iter().copied()).collect();
            if contains(&all, &id_bytes)
                && contains(&all, b"graphql.request")
                && contains(&all, b"db.statement")
                && contains(&all, b"graphql.batch")
            {
                found = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child.kill().await.ok();
    assert!(
        found,
        "no exported span of the request's trace with its statements ({} exports)",
        received.lock().map(|g| g.len()).unwrap_or(0)
    );
}
