//! Identity. `open` mode (the default, the stub's behaviour) trusts the gateway in front:
//! `X-User-Id` names the REST caller and a socket may name its user in the handshake. `jwt`
//! mode, turned on by configuring a key, requires a signed token everywhere: its `sub` is the
//! account id, and nothing else names anyone.

use std::{io, path::Path};

use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use serde::Deserialize;

use crate::{config::Config, domain::UserId};

/// Verifies bearer tokens.
pub struct Auth {
    key: DecodingKey,
    validation: Validation,
}

/// Why a token was refused; the code is what clients see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("unauthorized")]
    Missing,
    #[error("token_expired")]
    Expired,
    #[error("invalid_token")]
    Invalid,
}

impl AuthError {
    pub fn code(self) -> &'static str {
        match self {
            Self::Missing => "unauthorized",
            Self::Expired => "token_expired",
            Self::Invalid => "invalid_token",
        }
    }
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
}

impl Auth {
    /// `jwt` mode when a secret (HS256) or a public key file (RS256 or ES256) is configured.
    pub fn from_config(config: &Config) -> io::Result<Option<Self>> {
        let (key, algorithm) = match (&config.jwt_secret, &config.jwt_public_key) {
            (None, None) => return Ok(None),
            (Some(_), Some(_)) => {
                return Err(io::Error::other(
                    "configure either --jwt-secret or --jwt-public-key, not both",
                ));
            }
            (Some(secret), None) => (
                DecodingKey::from_secret(secret.as_bytes()),
                Algorithm::HS256,
            ),
            (None, Some(path)) => public_key(path)?,
        };
        let mut validation = Validation::new(algorithm);
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        match &config.jwt_issuer {
            Some(issuer) => validation.set_issuer(&[issuer]),
            None => validation.iss = None,
        }
        match &config.jwt_audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        Ok(Some(Self { key, validation }))
    }

    /// The account a token speaks for.
    pub fn verify(&self, token: &str) -> Result<UserId, AuthError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(
            |e| match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid,
            },
        )?;
        let user = UserId::parse(&data.claims.sub).map_err(|_| AuthError::Invalid)?;
        // `me` is the stub's anonymous caller, who is counted by address only: a token may not
        // claim it.
        if user.is_anonymous() {
            return Err(AuthError::Invalid);
        }
        Ok(user)
    }

    /// Verifies the token of an `Authorization: Bearer <token>` header value.
    pub fn verify_bearer(&self, header: Option<&str>) -> Result<UserId, AuthError> {
        let token = header
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Missing)?;
        self.verify(token)
    }
}

fn public_key(path: &Path) -> io::Result<(DecodingKey, Algorithm)> {
    let pem = std::fs::read(path)?;
    if let Ok(key) = DecodingKey::from_rsa_pem(&pem) {
        return Ok((key, Algorithm::RS256));
    }
    DecodingKey::from_ec_pem(&pem)
        .map(|key| (key, Algorithm::ES256))
        .map_err(|e| {
            io::Error::other(format!(
                "{}: not an RSA or EC public key: {e}",
                path.display()
            ))
        })
}
