//! Fail fast while the database is away, and reconnect gently.
//!
//! Without this, every request during an outage dialled PostgreSQL itself: tens of thousands
//! of connection attempts a second against a database trying to come back, each request
//! waiting for its own failure. Every dial of the instance (the pool's, the change
//! listener's) goes through [`Circuit::connect`]. The first failure opens the circuit: from
//! then on the pool dials nothing and requests fail at once with `SERVICE_UNAVAILABLE`, while
//! one background probe dials with a jittered backoff (from `probe_min` up to `probe_max`,
//! so at most a few attempts a second) until a connection succeeds and closes the circuit.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::db::Conn;
use crate::error::ApiError;
use crate::logs::{self, Level};

/// Why a connection could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// Nothing listens (connection refused, or no socket file).
    Refused,
    /// The server refused the credentials.
    Authentication,
    /// No answer in time.
    Timeout,
    /// The server is starting up, shutting down or out of connection slots.
    NotReady,
    Other,
}

impl Cause {
    pub const ALL: [Cause; 5] = [
        Cause::Refused,
        Cause::Authentication,
        Cause::Timeout,
        Cause::NotReady,
        Cause::Other,
    ];

    /// The name logs and metrics use.
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Refused => "connection_refused",
            Cause::Authentication => "authentication_failed",
            Cause::Timeout => "timeout",
            Cause::NotReady => "not_accepting_connections",
            Cause::Other => "other",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// The cause of a failed `tokio_postgres` connect, by error kind and SQLSTATE.
    pub fn of(e: &tokio_postgres::Error) -> Cause {
        use tokio_postgres::error::SqlState;
        if let Some(code) = e.code() {
            return if *code == SqlState::INVALID_PASSWORD
                || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
            {
                Cause::Authentication
            } else if *code == SqlState::CANNOT_CONNECT_NOW
                || *code == SqlState::TOO_MANY_CONNECTIONS
                || *code == SqlState::ADMIN_SHUTDOWN
            {
                Cause::NotReady
            } else {
                Cause::Other
            };
        }
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(s) = source {
            if let Some(io) = s.downcast_ref::<std::io::Error>() {
                return match io.kind() {
                    std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound => {
                        Cause::Refused
                    }
                    std::io::ErrorKind::TimedOut => Cause::Timeout,
                    _ => Cause::Other,
                };
            }
            source = s.source();
        }
        if e.to_string().contains("timeout") {
            return Cause::Timeout;
        }
        Cause::Other
    }
}

/// A failed dial: its cause and the driver's words for it (for the log).
#[derive(Debug, Clone)]
pub struct ConnectFailure {
    pub cause: Cause,
    pub detail: String,
}

impl std::fmt::Display for ConnectFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.cause.as_str(), self.detail)
    }
}

/// How the circuit dials and probes.
#[derive(Debug, Clone, Copy)]
pub struct CircuitSettings {
    /// The longest one dial (TCP or socket connect, authentication, set-up) may take.
    pub connect_timeout: Duration,
    /// The first probe's delay after the circuit opens; doubled after each failure...
    pub probe_min: Duration,
    /// ...up to this (jittered down to half of it), so recovery is noticed within it.
    pub probe_max: Duration,
}

impl Default for CircuitSettings {
    fn default() -> Self {
        CircuitSettings {
            connect_timeout: Duration::from_secs(5),
            probe_min: Duration::from_millis(100),
            probe_max: Duration::from_secs(1),
        }
    }
}

/// What the circuit counted, for metrics and tests.
#[derive(Debug, Clone, Copy, Default)]
pub struct CircuitStats {
    pub open: bool,
    /// Dials made (pool, probe, change listener).
    pub attempts: u64,
    /// Failed dials by cause, in the order of [`Cause::ALL`].
    pub failures: [u64; 5],
    /// Times the circuit opened.
    pub opened: u64,
    /// Requests answered `SERVICE_UNAVAILABLE` without dialling because it was open.
    pub rejected: u64,
}

struct Opened {
    since: Instant,
    failure: ConnectFailure,
}

/// The circuit of one database (see the module documentation).
pub struct Circuit {
    url: String,
    settings: CircuitSettings,
    open: AtomicBool,
    state: Mutex<Option<Opened>>,
    /// True while open, for waiters (the change listener).
    watch: watch::Sender<bool>,
    attempts: AtomicU64,
    failures: [AtomicU64; 5],
    opened: AtomicU64,
    rejected: AtomicU64,
}

impl Circuit {
    /// A closed circuit for `url`, whose probe dials `url`.
    pub fn new(url: &str, settings: CircuitSettings) -> Arc<Circuit> {
        Arc::new(Circuit {
            url: url.to_string(),
            settings,
            open: AtomicBool::new(false),
            state: Mutex::new(None),
            watch: watch::channel(false).0,
            attempts: AtomicU64::new(0),
            failures: Default::default(),
            opened: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
        })
    }

    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    /// Ok while closed; the error a request gets while it is open.
    pub fn check(&self) -> Result<(), ApiError> {
        if !self.is_open() {
            return Ok(());
        }
        self.rejected.fetch_add(1, Ordering::Relaxed);
        let cause = self
            .state
            .lock()
            .ok()
            .and_then(|s| s.as_ref().map(|o| o.failure.cause))
            .unwrap_or(Cause::Other);
        if logs::admit(Level::Warn, "db.unavailable", cause.as_str()) {
            tracing::warn!(
                cause = cause.as_str(),
                "a request was answered SERVICE_UNAVAILABLE: the database is unreachable ({})",
                cause.as_str()
            );
        }
        Err(ApiError::unavailable(
            "the database is unavailable; retry shortly",
        ))
    }

    /// Dials `url` once (counted), within the connect timeout.
    pub async fn connect(&self, url: &str) -> Result<Conn, ConnectFailure> {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        let result = tokio::time::timeout(self.settings.connect_timeout, dial(url)).await;
        let failure = match result {
            Ok(Ok(conn)) => return Ok(conn),
            Ok(Err(f)) => f,
            Err(_) => ConnectFailure {
                cause: Cause::Timeout,
                detail: format!(
                    "no connection within {} ms",
                    self.settings.connect_timeout.as_millis()
                ),
            },
        };
        self.failures[failure.cause.index()].fetch_add(1, Ordering::Relaxed);
        Err(failure)
    }

    /// Opens the circuit after `failure` (once: later failures while open change nothing)
    /// and starts the probe.
    pub fn failed(self: &Arc<Self>, failure: ConnectFailure) {
        {
            let Ok(mut state) = self.state.lock() else {
                return;
            };
            if state.is_some() {
                return;
            }
            tracing::error!(
                cause = failure.cause.as_str(),
                "the database is unreachable ({failure}); requests fail fast with \
                 SERVICE_UNAVAILABLE until a probe connects"
            );
            *state = Some(Opened {
                since: Instant::now(),
                failure,
            });
            self.open.store(true, Ordering::Release);
            self.opened.fetch_add(1, Ordering::Relaxed);
            self.watch.send_replace(true);
        }
        // Without a runtime (a process ending) nothing would serve requests either.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(self.clone().probe());
        }
    }

    /// Dials with a jittered, growing delay until a connection succeeds, then closes.
    async fn probe(self: Arc<Self>) {
        let mut delay = self.settings.probe_min;
        loop {
            tokio::time::sleep(jitter(delay)).await;
            match self.connect(&self.url).await {
                Ok(conn) => {
                    drop(conn);
                    self.close();
                    return;
                }
                Err(f) => {
                    if logs::admit(Level::Warn, "db.probe", f.cause.as_str()) {
                        tracing::warn!(cause = f.cause.as_str(), "database probe failed: {f}");
                    }
                }
            }
            delay = (delay * 2).min(self.settings.probe_max);
        }
    }

    fn close(&self) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if let Some(opened) = state.take() {
            self.open.store(false, Ordering::Release);
            self.watch.send_replace(false);
            tracing::info!(
                down_ms = opened.since.elapsed().as_millis() as u64,
                "the database is reachable again after {} ms ({}); serving",
                opened.since.elapsed().as_millis(),
                opened.failure.cause.as_str()
            );
        }
    }

    /// Waits until the circuit is closed (at once when it is).
    pub async fn closed(&self) {
        let mut rx = self.watch.subscribe();
        let _ = rx.wait_for(|open| !*open).await;
    }

    pub fn stats(&self) -> CircuitStats {
        let mut failures = [0; 5];
        for (i, f) in self.failures.iter().enumerate() {
            failures[i] = f.load(Ordering::Relaxed);
        }
        CircuitStats {
            open: self.is_open(),
            attempts: self.attempts.load(Ordering::Relaxed),
            failures,
            opened: self.opened.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
        }
    }
}

/// Between half and all of `d`: instances that lost the database together do not probe it
/// together.
fn jitter(d: Duration) -> Duration {
    let r = (uuid::Uuid::new_v4().as_u128() % 1000) as u32;
    d / 2 + d / 2 * r / 1000
}

/// One connection, made the way diesel-async makes it but keeping the driver's error, whose
/// kind and SQLSTATE name the cause.
async fn dial(url: &str) -> Result<Conn, ConnectFailure> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| ConnectFailure {
            cause: Cause::of(&e),
            detail: describe(&e),
        })?;
    Conn::try_from_client_and_connection(client, connection)
        .await
        .map_err(|e| ConnectFailure {
            cause: Cause::Other,
            detail: e.to_string(),
        })
}

/// The driver's error with what it wraps: "db error" alone names nothing.
fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} ({})", db.message(), db.code().code());
    }
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_half_and_all() {
        for _ in 0..1000 {
            let j = jitter(Duration::from_secs(1));
            assert!(j >= Duration::from_millis(500) && j <= Duration::from_secs(1));
        }
    }

    #[tokio::test]
    async fn a_refused_dial_opens_the_circuit_and_requests_fail_fast() {
        // A port nothing listens on: bound, then closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("port");
        let url = format!("postgres://nobody@127.0.0.1:{port}/none");
        let circuit = Circuit::new(&url, CircuitSettings::default());
        assert!(circuit.check().is_ok());
        let Err(failure) = circuit.connect(&url).await else {
            panic!("refused")
        };
        assert_eq!(failure.cause, Cause::Refused);
        circuit.failed(failure);
        let started = Instant::now();
        let err = circuit.check().expect_err("open");
        assert_eq!(err.code(), "SERVICE_UNAVAILABLE");
        assert!(started.elapsed() < Duration::from_millis(50));
        // The probe keeps dialling, at most a few times a second.
        tokio::time::sleep(Duration::from_millis(1600)).await;
        let stats = circuit.stats();
        assert!(stats.open);
        assert!(
            (2..=7).contains(&stats.attempts),
            "attempts: {}",
            stats.attempts
        );
        assert_eq!(stats.rejected, 1);
        assert_eq!(stats.opened, 1);
    }
}
