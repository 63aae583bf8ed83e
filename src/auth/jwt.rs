//! HS256 JSON Web Tokens: the credential of every request.

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

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
}

#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtKeys(..)")
    }
}

impl JwtKeys {
    pub fn hs256(secret: &[u8]) -> Self {
        JwtKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        }
    }

    /// Signs a token for operators and tests (`gateway token`).
    pub fn issue(
        &self,
        tenant: Uuid,
        user: Uuid,
        role: Role,
        ttl_secs: i64,
    ) -> Result<String, ApiError> {
        self.issue_for_session(tenant, user, role, None, ttl_secs)
    }

    /// Signs a token, naming the sign-in session it belongs to.
    pub fn issue_for_session(
        &self,
        tenant: Uuid,
        user: Uuid,
        role: Role,
        session: Option<Uuid>,
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
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| ApiError::internal(format!("signing a token: {e}")))
    }

    /// Verifies signature, algorithm and expiry, and reads the caller out of the claims.
    pub fn verify(&self, token: &str) -> Result<RequestContext, ApiError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 5;
        let data = decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|e| ApiError::unauthenticated(format!("invalid token: {}", reason(&e))))?;
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
        Ok(RequestContext {
            tenant_id,
            user_id,
            role,
            client_ip: None,
            user_agent: None,
            expires_at: Some(c.exp),
            session_id,
        })
    }
}

fn reason(e: &jsonwebtoken::errors::Error) -> &'static str {
    use jsonwebtoken::errors::ErrorKind;
    match e.kind() {
        ErrorKind::ExpiredSignature => "expired",
        ErrorKind::InvalidSignature => "bad signature",
        ErrorKind::InvalidAlgorithm => "wrong algorithm",
        ErrorKind::ImmatureSignature => "not yet valid",
        ErrorKind::MissingRequiredClaim(_) => "missing claim",
        _ => "malformed",
    }
}
