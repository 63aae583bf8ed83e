//! `/metrics` in Prometheus' text format: requests by operation type and outcome, their
//! latency, the database pool, statements sent, open sockets and subscriptions, the outbox's
//! lag and failed sign-ins. Served to loopback clients only unless `GATEWAY_METRICS_PUBLIC`
//! says otherwise (a scraper on the same host or through a sidecar).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::AppState;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// What the HTTP layer counts; the pool, statements, sockets and subscriptions are read when
/// scraped.
#[derive(Default)]
pub struct Metrics {
    /// (operation type, outcome code) -> requests.
    requests: Mutex<BTreeMap<(&'static str, String), u64>>,
    latency: Mutex<BTreeMap<&'static str, Histogram>>,
    sign_in_failures: AtomicU64,
    /// Whether `/metrics` answers clients beyond loopback.
    pub public: bool,
}

/// Sockets open on this process (both protocols).
static SOCKETS: AtomicUsize = AtomicUsize::new(0);

/// Counts a socket while it is open.
pub struct SocketGuard;

impl SocketGuard {
    pub fn open() -> SocketGuard {
        SOCKETS.fetch_add(1, Ordering::Relaxed);
        SocketGuard
    }
}

impl Drop for SocketGuard {
    fn drop(&mut self) {
        SOCKETS.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    pub fn new(public: bool) -> Arc<Metrics> {
        Arc::new(Metrics {
            public,
            ..Metrics::default()
        })
    }

    /// One request: its operation type (`query`, `mutation`, `subscription`, or `none` when
    /// it never parsed), its outcome (`ok` or the first error's code) and how long it took.
    pub fn request(&self, operation: &'static str, outcome: &str, took: Duration) {
        if let Ok(mut r) = self.requests.lock() {
            // Codes are the gateway's own few; anything else is bucketed, so a client cannot
            // grow the label set.
            let outcome = if outcome.len() <= 40
                && outcome
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_lowercase())
            {
                outcome.to_string()
            } else {
                "OTHER".to_string()
            };
            *r.entry((operation, outcome)).or_default() += 1;
        }
        if let Ok(mut l) = self.latency.lock() {
            let h = l.entry(operation).or_default();
            let secs = took.as_secs_f64();
            for (i, upper) in BUCKETS.iter().enumerate() {
                if secs <= *upper {
                    h.counts[i] += 1;
                }
            }
            h.count += 1;
            h.sum += secs;
        }
    }

    pub fn sign_in_failed(&self) {
        self.sign_in_failures.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, state: &AppState, newest_event: Option<i64>) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# HELP gateway_requests_total GraphQL requests over HTTP by operation type and outcome code.");
        let _ = writeln!(s, "# TYPE gateway_requests_total counter");
        if let Ok(r) = self.requests.lock() {
            for ((op, outcome), n) in r.iter() {
                let _ = writeln!(
                    s,
                    "gateway_requests_total{{operation=\"{op}\",outcome=\"{outcome}\"}} {n}"
                );
            }
        }
        let _ = writeln!(
            s,
            "# HELP gateway_request_duration_seconds Time to answer a GraphQL request over HTTP."
        );
        let _ = writeln!(s, "# TYPE gateway_request_duration_seconds histogram");
        if let Ok(l) = self.latency.lock() {
            for (op, h) in l.iter() {
                for (i, upper) in BUCKETS.iter().enumerate() {
                    let _ = writeln!(
                        s,
                        "gateway_request_duration_seconds_bucket{{operation=\"{op}\",le=\"{upper}\"}} {}",
                        h.counts[i]
                    );
                }
                let _ = writeln!(
                    s,
                    "gateway_request_duration_seconds_bucket{{operation=\"{op}\",le=\"+Inf\"}} {}",
                    h.count
                );
                let _ = writeln!(
                    s,
                    "gateway_request_duration_seconds_sum{{operation=\"{op}\"}} {}",
                    h.sum
                );
                let _ = writeln!(
                    s,
                    "gateway_request_duration_seconds_count{{operation=\"{op}\"}} {}",
                    h.count
                );
            }
        }
        let pool = state.db.pool_status();
        let circuit = state.db.circuit_stats();
        let gauges: [(&str, &str, f64); 8] = [
            (
                "gateway_db_circuit_open",
                "1 while the database is unreachable: requests fail fast with SERVICE_UNAVAILABLE and one probe reconnects.",
                if circuit.open { 1.0 } else { 0.0 },
            ),
            ("gateway_db_pool_connections", "Connections the pool holds.", pool.size as f64),
            ("gateway_db_pool_in_use", "Connections lent out.", pool.size.saturating_sub(pool.available) as f64),
            ("gateway_db_pool_waiting", "Requests waiting for a connection.", pool.waiting as f64),
            ("gateway_sockets_open", "WebSockets open (both protocols).", SOCKETS.load(Ordering::Relaxed) as f64),
            (
                "gateway_subscriptions_active",
                "Subscriptions running on this instance.",
                crate::live::quota::active() as f64,
            ),
            (
                "gateway_outbox_delivered_seq",
                "The last change event delivered to this instance's subscribers.",
                state.hub_cursor().unwrap_or(0) as f64,
            ),
            (
                "gateway_outbox_lag_events",
                "Committed change events not yet delivered here (newest committed minus delivered).",
                match (newest_event, state.hub_cursor()) {
                    (Some(n), Some(c)) => (n - c).max(0) as f64,
                    _ => 0.0,
                },
            ),
        ];
        for (name, help, v) in gauges {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        let counters: [(&str, &str, u64); 14] = [
            (
                "gateway_db_connect_attempts_total",
                "Connections to PostgreSQL attempted (pool, probe, change listener).",
                circuit.attempts,
            ),
            (
                "gateway_db_circuit_opened_total",
                "Times the database became unreachable and the circuit opened.",
                circuit.opened,
            ),
            (
                "gateway_db_circuit_rejections_total",
                "Requests answered SERVICE_UNAVAILABLE at once because the circuit was open.",
                circuit.rejected,
            ),
            (
                "gateway_db_pool_wait_timeouts_total",
                "Requests answered SERVICE_UNAVAILABLE because no connection freed up within GATEWAY_DB_POOL_WAIT_MS.",
                pool.wait_timeouts,
            ),
            (
                "gateway_db_statements_total",
                "Statements sent to PostgreSQL.",
                state.db.statements(),
            ),
            (
                "gateway_db_round_trips_total",
                "Round trips to PostgreSQL.",
                state.db.round_trips(),
            ),
            (
                "gateway_credential_admissions_reused_total",
                "Callers entered on an earlier admission: no credential row changed since, so gateway_enter's lookups were skipped.",
                state.db.admissions_reused(),
            ),
            (
                "gateway_planned_operations_total",
                "Query operations answered by a plan (one read per relation and level, no per-field resolution).",
                state.schema.plan_counts().planned.load(Ordering::Relaxed),
            ),
            (
                "gateway_generic_plan_operations_total",
                "Planned operations made only of keys (no `where`), whose statements ran with PostgreSQL's generic plans.",
                state.schema.plan_counts().generic.load(Ordering::Relaxed),
            ),
            (
                "gateway_plans_given_up_total",
                "Planned operations left to the executor after all (a bad argument, a failed read).",
                state.schema.plan_counts().given_up.load(Ordering::Relaxed),
            ),
            (
                "gateway_planned_subscriptions_total",
                "Subscriptions run by a plan (no per-event resolution, one render per plan and event).",
                state.schema.subscription_counts().planned.load(Ordering::Relaxed),
            ),
            (
                "gateway_subscription_renders_total",
                "Events rendered for planned subscriptions: once per plan and event, shared by its subscribers.",
                state.schema.subscription_counts().renders.load(Ordering::Relaxed),
            ),
            (
                "gateway_planned_deliveries_total",
                "Events delivered by planned subscriptions (one per subscriber and event).",
                state.schema.subscription_counts().deliveries.total(),
            ),
            (
                "gateway_sign_in_failures_total",
                "Sign-in attempts refused (wrong credentials, limits).",
                self.sign_in_failures.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        }
        let name = "gateway_db_connect_failures_total";
        let _ = writeln!(
            s,
            "# HELP {name} Failed connection attempts by cause.\n# TYPE {name} counter"
        );
        for (cause, n) in crate::db::circuit::Cause::ALL.iter().zip(circuit.failures) {
            let _ = writeln!(s, "{name}{{cause=\"{}\"}} {n}", cause.as_str());
        }
        s
    }
}

/// `GET /metrics`.
pub async fn handler(State(state): State<Arc<AppState>>, req: Request) -> Response {
    // No peer address: an in-process caller (the tests' router), as local as it gets.
    let local = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .is_none_or(|ConnectInfo(a)| a.ip().is_loopback());
    if !local && !state.metrics.public {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    }
    let newest = state.db.newest_event().await;
    let body = state.metrics.render(&state, newest);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}
