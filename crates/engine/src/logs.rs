//! Repeated log lines, said once.
//!
//! An outage makes every request fail the same way; logging each failure buried the cause
//! under 95,000 identical lines in five seconds. Lines that can repeat go through [`admit`]:
//! the first occurrence of a key is logged with its detail by the caller, later ones within
//! [`WINDOW`] are counted and reported as one summary line ("N more in the last 10 s"), and
//! first lines are capped at [`LINES_PER_SECOND`] overall (the excess is counted, not lost).

use std::collections::HashMap;
use std::sync::{Mutex, Once, OnceLock};
use std::time::{Duration, Instant};

/// How long repeats of a key are counted before their summary is logged.
pub const WINDOW: Duration = Duration::from_secs(10);
/// First lines logged per second at most, over every key.
pub const LINES_PER_SECOND: u32 = 20;
/// Keys followed at once; occurrences of further keys are only counted.
const MAX_KEYS: usize = 512;
/// The longest key kept (keys are message templates).
const MAX_KEY_CHARS: usize = 160;

/// The level of a line and of its summaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Error,
    Warn,
    Info,
}

/// A line the limiter itself logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// Repeats of a key counted since its window began.
    Summary {
        level: Level,
        kind: &'static str,
        key: String,
        count: u64,
        secs: u64,
    },
    /// First lines left out by the per-second cap (or beyond the keys followed).
    Dropped { count: u64 },
}

struct Entry {
    level: Level,
    since: Instant,
    /// Occurrences not logged since `since`.
    more: u64,
}

/// The state behind [`admit`], with the clock passed in (tests drive it).
pub struct Limiter {
    window: Duration,
    per_second: u32,
    max_keys: usize,
    keys: HashMap<(&'static str, String), Entry>,
    second: Option<Instant>,
    lines_in_second: u32,
    dropped: u64,
}

impl Limiter {
    pub fn new(window: Duration, per_second: u32, max_keys: usize) -> Self {
        Limiter {
            window,
            per_second,
            max_keys,
            keys: HashMap::new(),
            second: None,
            lines_in_second: 0,
            dropped: 0,
        }
    }

    /// Whether the caller logs this occurrence of `(kind, key)` now; also the summaries due.
    pub fn admit(
        &mut self,
        level: Level,
        kind: &'static str,
        key: &str,
        now: Instant,
    ) -> (bool, Vec<Line>) {
        let mut lines = Vec::new();
        let k = (kind, template(key));
        let window = self.window;
        let full = self.keys.len() >= self.max_keys;
        match self.keys.get_mut(&k) {
            Some(e) if now.duration_since(e.since) < window => {
                e.more += 1;
                return (false, lines);
            }
            Some(e) => {
                let more = std::mem::take(&mut e.more);
                e.since = now;
                if more > 0 {
                    lines.push(Line::Summary {
                        level: e.level,
                        kind,
                        key: k.1.clone(),
                        count: more,
                        secs: window.as_secs(),
                    });
                    // Still repeating: this one opens the next count.
                    e.more = 1;
                    return (false, lines);
                }
            }
            None if full => {
                self.dropped += 1;
                return (false, lines);
            }
            None => {
                self.keys.insert(
                    k.clone(),
                    Entry {
                        level,
                        since: now,
                        more: 0,
                    },
                );
            }
        }
        if self.take_line(now) {
            (true, lines)
        } else {
            // Over the cap: counted in the key's summary instead.
            if let Some(e) = self.keys.get_mut(&k) {
                e.more += 1;
            }
            (false, lines)
        }
    }

    fn take_line(&mut self, now: Instant) -> bool {
        if self
            .second
            .is_none_or(|s| now.duration_since(s) >= Duration::from_secs(1))
        {
            self.second = Some(now);
            self.lines_in_second = 0;
        }
        if self.lines_in_second < self.per_second {
            self.lines_in_second += 1;
            true
        } else {
            false
        }
    }

    /// Summaries of the keys whose window has ended; keys quiet for a whole window are
    /// forgotten, so their next occurrence is logged in full again.
    pub fn flush(&mut self, now: Instant) -> Vec<Line> {
        let mut lines = Vec::new();
        let window = self.window;
        self.keys.retain(|(kind, key), e| {
            if now.duration_since(e.since) < window {
                return true;
            }
            if e.more == 0 {
                return false;
            }
            lines.push(Line::Summary {
                level: e.level,
                kind,
                key: key.clone(),
                count: std::mem::take(&mut e.more),
                secs: window.as_secs(),
            });
            e.since = now;
            true
        });
        if self.dropped > 0 {
            lines.push(Line::Dropped {
                count: std::mem::take(&mut self.dropped),
            });
        }
        lines
    }
}

/// A message as a key: numbers and identifiers (any word holding a digit) become `#`, so
/// "connection 17 failed" and "connection 18 failed" count as one.
pub fn template(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(MAX_KEY_CHARS));
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if word.chars().any(|c| c.is_ascii_digit()) {
            out.push('#');
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in message.chars() {
        if c.is_alphanumeric() || c == '-' || c == '_' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
        if out.chars().count() >= MAX_KEY_CHARS {
            break;
        }
    }
    flush(&mut word, &mut out);
    out.chars().take(MAX_KEY_CHARS).collect()
}

fn limiter() -> &'static Mutex<Limiter> {
    static LIMITER: OnceLock<Mutex<Limiter>> = OnceLock::new();
    LIMITER.get_or_init(|| Mutex::new(Limiter::new(WINDOW, LINES_PER_SECOND, MAX_KEYS)))
}

/// Whether the caller should log this occurrence of `(kind, key)` now (see the module
/// documentation). `key` is the message without its particulars; summaries name it.
pub fn admit(level: Level, kind: &'static str, key: &str) -> bool {
    start_flusher();
    let (admitted, lines) = match limiter().lock() {
        Ok(mut l) => l.admit(level, kind, key, Instant::now()),
        Err(_) => return true,
    };
    emit(lines);
    admitted
}

/// Summaries of windows that ended without a further occurrence are logged by a thread of
/// their own, once a second: a request-driven flush would never come after the last failure.
fn start_flusher() {
    static STARTED: Once = Once::new();
    STARTED.call_once(|| {
        let _ = std::thread::Builder::new()
            .name("log-summaries".into())
            .spawn(|| loop {
                std::thread::sleep(Duration::from_secs(1));
                let lines = match limiter().lock() {
                    Ok(mut l) => l.flush(Instant::now()),
                    Err(_) => return,
                };
                emit(lines);
            });
    });
}

fn emit(lines: Vec<Line>) {
    for line in lines {
        match line {
            Line::Summary {
                level,
                kind,
                key,
                count,
                secs,
            } => match level {
                Level::Error => {
                    tracing::error!(
                        kind,
                        repeats = count,
                        "{count} more in the last {secs} s: {key}"
                    )
                }
                Level::Warn => {
                    tracing::warn!(
                        kind,
                        repeats = count,
                        "{count} more in the last {secs} s: {key}"
                    )
                }
                Level::Info => {
                    tracing::info!(
                        kind,
                        repeats = count,
                        "{count} more in the last {secs} s: {key}"
                    )
                }
            },
            Line::Dropped { count } => tracing::warn!(
                dropped = count,
                "{count} log lines left out (more than {LINES_PER_SECOND} a second)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    #[test]
    fn the_first_is_logged_then_repeats_are_counted_once_per_window() {
        let t0 = Instant::now();
        let mut l = Limiter::new(Duration::from_secs(10), 100, 10);
        assert_eq!(l.admit(Level::Error, "db", "refused", t0), (true, vec![]));
        for i in 1..=999 {
            let (logged, lines) = l.admit(Level::Error, "db", "refused", at(t0, i * 5));
            assert!(!logged && lines.is_empty());
        }
        // Nothing before the window ends.
        assert!(l.flush(at(t0, 9_999)).is_empty());
        assert_eq!(
            l.flush(at(t0, 10_000)),
            vec![Line::Summary {
                level: Level::Error,
                kind: "db",
                key: "refused".into(),
                count: 999,
                secs: 10,
            }]
        );
        // A quiet window: forgotten, and the next one is logged in full again.
        assert!(l.flush(at(t0, 20_000)).is_empty());
        assert!(l.keys.is_empty());
        assert!(l.admit(Level::Error, "db", "refused", at(t0, 25_000)).0);
    }

    #[test]
    fn a_repeat_after_the_window_brings_the_summary_and_opens_the_next_count() {
        let t0 = Instant::now();
        let mut l = Limiter::new(Duration::from_secs(10), 100, 10);
        assert!(l.admit(Level::Warn, "db", "x", t0).0);
        assert!(!l.admit(Level::Warn, "db", "x", at(t0, 1)).0);
        let (logged, lines) = l.admit(Level::Warn, "db", "x", at(t0, 10_001));
        assert!(!logged);
        assert!(matches!(lines.as_slice(), [Line::Summary { count: 1, .. }]));
        let lines = l.flush(at(t0, 20_001));
        assert!(matches!(lines.as_slice(), [Line::Summary { count: 1, .. }]));
    }

    #[test]
    fn keys_are_templates_and_kinds_apart() {
        let t0 = Instant::now();
        let mut l = Limiter::new(Duration::from_secs(10), 100, 10);
        assert!(
            l.admit(Level::Error, "a", "connection 17 to 10.0.0.1 failed", t0)
                .0
        );
        assert!(
            !l.admit(Level::Error, "a", "connection 18 to 10.0.0.2 failed", t0)
                .0
        );
        assert!(
            l.admit(Level::Error, "b", "connection 18 to 10.0.0.2 failed", t0)
                .0
        );
        assert!(l.admit(Level::Error, "a", "another failure", t0).0);
        assert_eq!(
            template("row 0190a3b2-aaaa-7bbb-8ccc-123456789abc: timeout after 15s"),
            "row #: timeout after #"
        );
    }

    #[test]
    fn first_lines_are_capped_per_second_and_the_excess_counted() {
        let t0 = Instant::now();
        let mut l = Limiter::new(Duration::from_secs(10), 3, 100);
        let logged = (0..10)
            .filter(|i| {
                l.admit(
                    Level::Error,
                    "k",
                    &format!("message {}", "x".repeat(*i)),
                    t0,
                )
                .0
            })
            .count();
        assert_eq!(logged, 3);
        // The next second has room again.
        assert!(l.admit(Level::Error, "k", "fresh", at(t0, 1_000)).0);
        // The 7 left out are in their keys' summaries.
        let counted: u64 = l
            .flush(at(t0, 10_000))
            .iter()
            .map(|line| match line {
                Line::Summary { count, .. } => *count,
                Line::Dropped { count } => *count,
            })
            .sum();
        assert_eq!(counted, 7);
    }

    #[test]
    fn keys_beyond_the_limit_are_only_counted() {
        let t0 = Instant::now();
        let mut l = Limiter::new(Duration::from_secs(10), 100, 2);
        assert!(l.admit(Level::Error, "k", "a", t0).0);
        assert!(l.admit(Level::Error, "k", "b", t0).0);
        assert!(!l.admit(Level::Error, "k", "c", t0).0);
        assert!(l.flush(t0).contains(&Line::Dropped { count: 1 }));
    }
}
