//! Login attempts allowed per account and per client address: token buckets that refill one
//! attempt per interval. Every attempt takes a token before the password is checked, so
//! parallel or alias-batched guesses are counted as much as sequential ones; a successful
//! login refills the account's bucket.
//!
//! Buckets live in this instance's memory: with several instances an attacker gets each
//! instance's allowance, which bounds guessing just as well for a handful of instances.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::ApiError;

/// Buckets kept before full (idle) ones are forgotten.
const PRUNE_AT: usize = 10_000;

#[derive(Debug, Clone, Copy)]
pub struct Allowance {
    /// Attempts available at once.
    pub burst: u32,
    /// One more attempt becomes available after each interval.
    pub refill: Duration,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

struct Buckets {
    allowance: Allowance,
    map: HashMap<String, Bucket>,
}

impl Buckets {
    fn new(allowance: Allowance) -> Self {
        Buckets {
            allowance,
            map: HashMap::new(),
        }
    }

    fn level(&self, b: &Bucket, now: Instant) -> f64 {
        let a = self.allowance;
        let gained = now.duration_since(b.at).as_secs_f64() / a.refill.as_secs_f64().max(0.001);
        (b.tokens + gained).min(a.burst as f64)
    }

    /// Takes one attempt, or says how long until one is available.
    fn take(&mut self, key: &str, now: Instant) -> Result<(), Duration> {
        if self.map.len() >= PRUNE_AT {
            let burst = self.allowance.burst as f64;
            let full: Vec<String> = self
                .map
                .iter()
                .filter(|(_, b)| self.level(b, now) >= burst)
                .map(|(k, _)| k.clone())
                .collect();
            for k in full {
                self.map.remove(&k);
            }
        }
        let burst = self.allowance.burst as f64;
        let level = self.map.get(key).map_or(burst, |b| self.level(b, now));
        if level < 1.0 {
            let wait = (1.0 - level) * self.allowance.refill.as_secs_f64();
            return Err(Duration::from_secs_f64(wait.max(1.0)));
        }
        self.map.insert(
            key.to_string(),
            Bucket {
                tokens: level - 1.0,
                at: now,
            },
        );
        Ok(())
    }

    fn reset(&mut self, key: &str) {
        self.map.remove(key);
    }
}

pub struct LoginLimiter {
    accounts: Mutex<Buckets>,
    addresses: Mutex<Buckets>,
}

fn too_many(wait: Duration) -> ApiError {
    ApiError::limit_exceeded(format!(
        "too many sign-in attempts; try again in {} s",
        wait.as_secs().max(1)
    ))
}

impl LoginLimiter {
    pub fn new(per_account: Allowance, per_address: Allowance) -> Self {
        LoginLimiter {
            accounts: Mutex::new(Buckets::new(per_account)),
            addresses: Mutex::new(Buckets::new(per_address)),
        }
    }

    /// Counts one attempt on `account` from `address`.
    pub fn attempt(&self, account: &str, address: Option<&str>) -> Result<(), ApiError> {
        let now = Instant::now();
        if let Some(addr) = address {
            let mut a = self.addresses.lock().unwrap_or_else(|e| e.into_inner());
            a.take(addr, now).map_err(too_many)?;
        }
        let mut a = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        a.take(&account.to_lowercase(), now).map_err(too_many)
    }

    /// The account proved its password: its earlier failures no longer count.
    pub fn succeeded(&self, account: &str) {
        let mut a = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        a.reset(&account.to_lowercase());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_empty_refill_and_reset() {
        let mut b = Buckets::new(Allowance {
            burst: 3,
            refill: Duration::from_secs(10),
        });
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(b.take("a", t0).is_ok());
        }
        assert!(b.take("a", t0).is_err());
        assert!(b.take("other", t0).is_ok(), "buckets are per key");
        assert!(b.take("a", t0 + Duration::from_secs(5)).is_err());
        assert!(b.take("a", t0 + Duration::from_secs(11)).is_ok());
        assert!(b.take("a", t0 + Duration::from_secs(11)).is_err());
        b.reset("a");
        assert!(b.take("a", t0 + Duration::from_secs(11)).is_ok());
    }
}
