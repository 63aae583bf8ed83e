//! Who is calling: the request context, taken only from a verified credential, and signing in
//! (passwords, sessions, attempt limits).

pub mod activity;
pub mod jwks;
mod jwt;
pub mod limiter;
pub mod password;
pub mod sessions;

pub use jwks::{ClaimPath, ClaimPaths, Jwks, JwksOptions, JwksSource};
pub use jwt::{Claims, JwtKeys, OperatorGrant};

use std::sync::Arc;
use std::time::Duration;

use crate::config::AuthSettings;
use limiter::LoginLimiter;

pub use gateway_engine::caller::{Client, RequestContext, Role};

/// What signing in needs: the signing keys, token lifetimes and the attempt limiter.
#[derive(Clone)]
pub struct Accounts {
    pub keys: JwtKeys,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub limiter: Arc<LoginLimiter>,
}

impl Accounts {
    pub fn new(keys: JwtKeys, settings: &AuthSettings) -> Self {
        Accounts {
            keys,
            access_ttl: settings.access_ttl,
            refresh_ttl: settings.refresh_ttl,
            limiter: Arc::new(LoginLimiter::new(
                settings.login_per_account,
                settings.login_per_address,
            )),
        }
    }
}
