//! JSON Web Tokens: the credential of every request. The gateway's own tokens are HS256 with
//! GATEWAY_JWT_SECRET; external identity providers' tokens are RS256 or ES256, verified with a
//! JSON Web Key Set ([`super::jwks`]) when one is configured. The header's algorithm only
//! chooses between the two, each of which accepts its own algorithms alone (no `none`, no HMAC
//! with a public key); `exp` is required, `nbf` honoured, and `iss` / `aud` required when
//! configured (GATEWAY_JWT_ISSUER, GATEWAY_JWT_AUDIENCE), for both kinds.

use std::sync::Arc;

use gateway_engine::kept::Kept;

use jsonwebtoken::{
    decode, decode_header, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::jwks::Jwks;
use super::{RequestContext, Role};
use crate::error::ApiError;

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    pub tenant_id: String,
    pub role: String,
    pub exp: i64,
    #[serde(default)]
    pub iat: Option<i64>,
    /// The sign-in session (tokens from `login` and `refreshSession`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// A string or a list of strings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<serde_json::Value>,
    /// The platform operator (operator tokens only; never from signing in).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub platform: bool,
    /// Operator tokens: the tenant's token generation when issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gen: Option<i64>,
}

/// What an operator token grants beyond its tenant, user and role.
#[derive(Debug, Clone, Copy, Default)]
pub struct OperatorGrant {
    pub platform: bool,
    /// The tenant's current token generation (tokens of older ones are revoked).
    pub generation: i64,
}

/// Verifies bearer tokens and signs the gateway's own. Cheap to clone.
#[derive(Clone)]
pub struct JwtKeys {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    encoding: EncodingKey,
    decoding: DecodingKey,
    issuer: Option<String>,
    audience: Option<String>,
    /// What the gateway's own tokens must satisfy: built once, not per request.
    own: Validation,
    /// External identity providers' keys, when configured.
    jwks: Option<Jwks>,
    /// Own tokens verified before (a new one whenever what they must satisfy changes).
    verified: Arc<Verified>,
}

/// Own tokens verified before, by their text, with the caller read from them: a client sends
/// the same token with every request until it expires, and checking its HMAC and decoding
/// its claims again was ~4 % of the gateway's CPU per by-id request. A token is kept only
/// once it passed every check, and answered from here only while its `exp` still would: the
/// text is what was signed, so nothing else about it can have changed. External tokens are
/// always verified (their key set may drop a key). Bounded; when full, it starts over.
struct Verified(Kept<Box<str>, RequestContext>);

/// Tokens kept at most.
const VERIFIED_KEPT: usize = 4096;

impl Default for Verified {
    fn default() -> Self {
        Verified(Kept::new(VERIFIED_KEPT))
    }
}

impl Verified {
    /// The caller of `token` if it was verified before and has not expired at `now` (seconds)
    /// with `leeway`, as `jsonwebtoken` counts it.
    fn get(&self, token: &str, now: i64, leeway: u64) -> Option<RequestContext> {
        let kept = self.0.get(token)?;
        let exp = kept.expires_at?;
        (exp >= now.saturating_sub(leeway as i64)).then_some(kept)
    }

    fn keep(&self, token: &str, caller: &RequestContext) {
        self.0.keep(token.into(), caller.clone());
    }
}

impl Inner {
    /// What every token must satisfy, for the one algorithm its key allows.
    fn validation(&self, alg: Algorithm, mut required: Vec<&'static str>) -> Validation {
        let mut validation = Validation::new(alg);
        required.push("exp");
        validation.leeway = 5;
        validation.validate_nbf = true;
        match &self.issuer {
            Some(iss) => {
                validation.set_issuer(&[iss]);
                required.push("iss");
            }
            None => validation.iss = None,
        }
        match &self.audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        validation
    }
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtKeys(..)")
    }
}

impl JwtKeys {
    pub fn hs256(secret: &[u8]) -> Self {
        let mut inner = Inner {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            issuer: None,
            audience: None,
            own: Validation::new(Algorithm::HS256),
            jwks: None,
            verified: Default::default(),
        };
        inner.own = inner.validation(Algorithm::HS256, vec!["sub"]);
        JwtKeys {
            inner: Arc::new(inner),
        }
    }

    /// Tokens carry, and must carry, this issuer and audience.
    pub fn with_issuer_audience(
        mut self,
        issuer: Option<String>,
        audience: Option<String>,
    ) -> Self {
        let inner = Arc::make_mut(&mut self.inner);
        inner.issuer = issuer;
        inner.audience = audience;
        inner.own = inner.validation(Algorithm::HS256, vec!["sub"]);
        inner.verified = Default::default();
        self
    }

    /// Also accepts RS256 / ES256 tokens signed with a key of this set.
    pub fn with_jwks(mut self, jwks: Jwks) -> Self {
        let inner = Arc::make_mut(&mut self.inner);
        inner.jwks = Some(jwks);
        inner.verified = Default::default();
        self
    }

    /// Signs an operator token of generation 0 (tests).
    pub fn issue(
        &self,
        tenant: Uuid,
        user: Uuid,
        role: Role,
        ttl_secs: i64,
    ) -> Result<String, ApiError> {
        self.issue_operator(tenant, user, role, OperatorGrant::default(), ttl_secs)
    }

    /// Signs a token for operators (`gateway token`, `gateway tenant create`).
    pub fn issue_operator(
        &self,
        tenant: Uuid,
        user: Uuid,
        role: Role,
        grant: OperatorGrant,
        ttl_secs: i64,
    ) -> Result<String, ApiError> {
        self.sign(tenant, user, role, None, grant, ttl_secs)
    }

    /// Signs a token, naming the sign-in session it belongs to.
    pub fn issue_for_session(
        &self,
        tenant: Uuid,
        user: Uuid,
        role: Role,
        session: Uuid,
        ttl_secs: i64,
    ) -> Result<String, ApiError> {
        self.sign(
            tenant,
            user,
            role,
            Some(session),
            OperatorGrant::default(),
            ttl_secs,
        )
    }

    fn sign(
        &self,
        tenant: Uuid,
        user: Uuid,
        role: Role,
        session: Option<Uuid>,
        grant: OperatorGrant,
        ttl_secs: i64,
    ) -> Result<String, ApiError> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user.to_string(),
            tenant_id: tenant.to_string(),
            role: role.as_str().to_string(),
            exp: now + ttl_secs,
            iat: Some(now),
            sid: session.map(|s| s.to_string()),
            iss: self.inner.issuer.clone(),
            aud: self.inner.audience.clone().map(serde_json::Value::String),
            platform: grant.platform && session.is_none(),
            gen: session.is_none().then_some(grant.generation),
        };
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.inner.encoding,
        )
        .map_err(|e| ApiError::internal(format!("signing a token: {e}")))
    }

    /// Verifies signature, algorithm and expiry, and reads the caller out of the claims. May
    /// fetch the key set (rate-limited) when an external token names an unknown key.
    pub async fn verify(&self, token: &str) -> Result<RequestContext, ApiError> {
        let now = chrono::Utc::now().timestamp();
        if let Some(caller) = self.inner.verified.get(token, now, self.inner.own.leeway) {
            return Ok(caller);
        }
        let header = decode_header(token).map_err(|e| invalid(&e))?;
        match (header.alg, &self.inner.jwks) {
            (Algorithm::HS256, _) => {
                let caller = self.verify_own(token)?;
                self.inner.verified.keep(token, &caller);
                Ok(caller)
            }
            (Algorithm::RS256 | Algorithm::ES256, Some(jwks)) => {
                self.verify_external(jwks, &header, token).await
            }
            _ => Err(ApiError::unauthenticated("invalid token: wrong algorithm")),
        }
    }

    /// An external token: the key (and with it the algorithm) comes from the set.
    async fn verify_external(
        &self,
        jwks: &Jwks,
        header: &Header,
        token: &str,
    ) -> Result<RequestContext, ApiError> {
        let key = jwks.key_for(header).await?;
        let validation = self.inner.validation(key.alg, Vec::new());
        let data =
            decode::<serde_json::Value>(token, &key.key, &validation).map_err(|e| invalid(&e))?;
        let caller = jwks.claims().caller(&data.claims)?;
        let exp = data
            .claims
            .get("exp")
            .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)));
        Ok(RequestContext {
            tenant_id: caller.tenant_id,
            user_id: caller.user_id,
            role: caller.role,
            client_ip: None,
            user_agent: None,
            expires_at: exp,
            session_id: None,
            // An identity provider's claims never make a platform operator.
            platform: false,
            operator_generation: None,
        })
    }

    /// The gateway's own HS256 token.
    fn verify_own(&self, token: &str) -> Result<RequestContext, ApiError> {
        let data = decode::<Claims>(token, &self.inner.decoding, &self.inner.own)
            .map_err(|e| invalid(&e))?;
        let c = data.claims;
        let user_id = Uuid::parse_str(&c.sub)
            .map_err(|_| ApiError::unauthenticated("invalid token: sub is not a user id"))?;
        let tenant_id = Uuid::parse_str(&c.tenant_id)
            .map_err(|_| ApiError::unauthenticated("invalid token: tenant_id is not an id"))?;
        let role = Role::parse(&c.role)
            .ok_or_else(|| ApiError::unauthenticated("invalid token: unknown role"))?;
        let session_id = match &c.sid {
            None => None,
            Some(s) => Some(
                Uuid::parse_str(s)
                    .map_err(|_| ApiError::unauthenticated("invalid token: sid is not an id"))?,
            ),
        };
        // A session's token is never a platform operator's, whatever it claims.
        let operator = session_id.is_none();
        Ok(RequestContext {
            tenant_id,
            user_id,
            role,
            client_ip: None,
            user_agent: None,
            expires_at: Some(c.exp),
            session_id,
            platform: operator && c.platform,
            operator_generation: operator.then(|| c.gen.unwrap_or(0)),
        })
    }
}

fn invalid(e: &jsonwebtoken::errors::Error) -> ApiError {
    ApiError::unauthenticated(format!("invalid token: {}", reason(e)))
}

fn reason(e: &jsonwebtoken::errors::Error) -> &'static str {
    use jsonwebtoken::errors::ErrorKind;
    match e.kind() {
        ErrorKind::ExpiredSignature => "expired",
        ErrorKind::InvalidSignature => "bad signature",
        ErrorKind::InvalidAlgorithm => "wrong algorithm",
        ErrorKind::ImmatureSignature => "not yet valid",
        ErrorKind::MissingRequiredClaim(_) => "missing claim",
        ErrorKind::InvalidIssuer => "wrong issuer",
        ErrorKind::InvalidAudience => "wrong audience",
        _ => "malformed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"unit-test-secret-unit-test-secret-0123";

    fn ids() -> (Uuid, Uuid) {
        (Uuid::now_v7(), Uuid::now_v7())
    }

    #[tokio::test]
    async fn issuer_and_audience_are_required_when_configured() {
        let plain = JwtKeys::hs256(SECRET);
        let strict = JwtKeys::hs256(SECRET)
            .with_issuer_audience(Some("https://gw.example".into()), Some("gateway".into()));
        let other_iss = JwtKeys::hs256(SECRET)
            .with_issuer_audience(Some("https://evil.example".into()), Some("gateway".into()));
        let other_aud = JwtKeys::hs256(SECRET)
            .with_issuer_audience(Some("https://gw.example".into()), Some("billing".into()));
        let (t, u) = ids();
        let good = strict.issue(t, u, Role::User, 60).unwrap();
        assert_eq!(strict.verify(&good).await.unwrap().user_id, u);
        for bad in [
            plain.issue(t, u, Role::User, 60).unwrap(),
            other_iss.issue(t, u, Role::User, 60).unwrap(),
            other_aud.issue(t, u, Role::User, 60).unwrap(),
        ] {
            let e = strict.verify(&bad).await.unwrap_err();
            assert_eq!(e.code(), "UNAUTHENTICATED");
        }
        // Without configuration, a token naming an issuer and audience is still fine.
        assert!(plain.verify(&good).await.is_ok());
    }

    #[tokio::test]
    async fn a_kept_token_is_answered_only_until_it_expires_and_bad_ones_are_never_kept() {
        let keys = JwtKeys::hs256(SECRET);
        let (t, u) = ids();
        let token = keys.issue(t, u, Role::Admin, 60).unwrap();
        let first = keys.verify(&token).await.unwrap();
        let kept = keys.verify(&token).await.unwrap();
        assert_eq!((kept.user_id, kept.role), (first.user_id, first.role));
        let exp = first.expires_at.unwrap();
        let leeway = keys.inner.own.leeway;
        let verified = &keys.inner.verified;
        assert!(verified.get(&token, exp, leeway).is_some());
        assert!(verified.get(&token, exp + leeway as i64, leeway).is_some());
        assert!(verified
            .get(&token, exp + leeway as i64 + 1, leeway)
            .is_none());
        // Refused tokens stay refused: expired past the leeway, and signed with another key.
        let expired = keys.issue(t, u, Role::User, -10).unwrap();
        let forged = JwtKeys::hs256(b"another-secret-another-secret-0123456")
            .issue(t, u, Role::User, 60)
            .unwrap();
        for bad in [expired, forged] {
            for _ in 0..2 {
                let e = keys.verify(&bad).await.unwrap_err();
                assert_eq!(e.code(), "UNAUTHENTICATED");
            }
            assert!(verified.get(&bad, exp - 60, leeway).is_none());
        }
        // Keys that check more start with none kept.
        let strict = keys.with_issuer_audience(Some("https://gw.example".into()), None);
        assert!(strict.verify(&token).await.is_err());
    }
}
