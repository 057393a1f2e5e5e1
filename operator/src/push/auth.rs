//! Who is calling the push server: the bearer token, checked with a TokenReview (audience
//! `gatehouse`), must belong to the ServiceAccount the operator created for the gateway asked for.

use crate::names;
use gatehouse_api::config::GatewayId;
use gatehouse_api::push::TOKEN_AUDIENCE;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::api::PostParams;
use kube::{Api, Client};

/// Why a request was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No usable `Authorization: Bearer` header.
    #[error(
        "missing bearer token: send the pod's projected ServiceAccount token (audience gatehouse) as Authorization: Bearer"
    )]
    Missing,
    /// TokenReview said no.
    #[error("token rejected by TokenReview: {0}")]
    Rejected(String),
    /// Valid token, wrong ServiceAccount.
    #[error("{user} may not fetch snapshots of {id}: only {expected} may")]
    Forbidden {
        /// Who the token belongs to.
        user: String,
        /// The gateway asked for.
        id: String,
        /// Who may.
        expected: String,
    },
    /// The pod header disagrees with the token's bound pod.
    #[error("token is bound to pod {bound}, but the request names pod {claimed}")]
    PodMismatch {
        /// Pod in the token.
        bound: String,
        /// Pod in the header.
        claimed: String,
    },
    /// The TokenReview call failed.
    #[error("TokenReview failed: {0}")]
    Review(#[from] kube::Error),
}

impl AuthError {
    /// The HTTP status for this error.
    pub fn status(&self) -> http::StatusCode {
        match self {
            AuthError::Missing | AuthError::Rejected(_) => http::StatusCode::UNAUTHORIZED,
            AuthError::Forbidden { .. } | AuthError::PodMismatch { .. } => {
                http::StatusCode::FORBIDDEN
            }
            AuthError::Review(_) => http::StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// The bearer token of a request, if any.
pub fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    let v = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim())
}

/// Checks that `token` belongs to the ServiceAccount of `id` (and, when the token is bound to a
/// pod, to `pod`).
pub async fn authorize(
    client: &Client,
    token: &str,
    id: &GatewayId,
    pod: Option<&str>,
) -> Result<(), AuthError> {
    let review = TokenReview {
        spec: TokenReviewSpec {
            token: token.to_string(),
            audiences: Some(vec![TOKEN_AUDIENCE.to_string()]),
        },
        ..Default::default()
    };
    let answer = Api::<TokenReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await?;
    let status = answer.status.unwrap_or_default();
    if status.authenticated != Some(true) {
        return Err(AuthError::Rejected(
            status.error.unwrap_or_else(|| "not authenticated".into()),
        ));
    }
    if let Some(auds) = &status.audiences
        && !auds.iter().any(|a| a == TOKEN_AUDIENCE)
    {
        return Err(AuthError::Rejected(format!(
            "token audiences {auds:?} do not include {TOKEN_AUDIENCE}"
        )));
    }
    let user = status.user.unwrap_or_default();
    let username = user.username.unwrap_or_default();
    let expected = names::service_account_user(id);
    if username != expected {
        return Err(AuthError::Forbidden {
            user: username,
            id: id.to_string(),
            expected,
        });
    }
    let bound = user
        .extra
        .as_ref()
        .and_then(|e| e.get("authentication.kubernetes.io/pod-name"))
        .and_then(|v| v.first());
    if let (Some(bound), Some(claimed)) = (bound, pod)
        && bound != claimed
    {
        return Err(AuthError::PodMismatch {
            bound: bound.clone(),
            claimed: claimed.to_string(),
        });
    }
    Ok(())
}
