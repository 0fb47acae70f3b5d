//! Bearer-token authentication for `pail serve` (`PAIL_TOKEN`).
//!
//! On Lambda the Function URL checks IAM signatures before a request reaches the function, so
//! the token is optional there; a local server without a token listens on loopback only (see
//! `super::host`).

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

use super::error::ApiError;

/// The token requests must present as `Authorization: Bearer TOKEN`.
#[derive(Clone)]
pub struct Token(Arc<str>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    /// `None` for an empty token: an empty secret would let every request in.
    pub fn new(secret: &str) -> Option<Token> {
        (!secret.is_empty()).then(|| Token(Arc::from(secret)))
    }

    fn admits(&self, presented: &str) -> bool {
        constant_time_eq(self.0.as_bytes(), presented.as_bytes())
    }
}

/// Compares without stopping at the first difference, so timing does not reveal a prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Middleware: admits requests that carry the token, answers the rest with 401.
pub async fn require(State(token): State<Token>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        Some(p) if token.admits(p.trim()) => next.run(req).await,
        Some(_) => ApiError::unauthorized("wrong bearer token").into_response(),
        None => ApiError::unauthorized("missing Authorization: Bearer <PAIL_TOKEN> header")
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_token_is_admitted() {
        let t = Token::new("s3cret").unwrap();
        assert!(t.admits("s3cret"));
        for wrong in ["", "s3cre", "s3cret!", "S3cret"] {
            assert!(!t.admits(wrong), "{wrong}");
        }
        assert!(Token::new("").is_none());
    }
}
