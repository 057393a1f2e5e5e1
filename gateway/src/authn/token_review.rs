//! `kubernetesServiceAccount` with `tokenReview: true`: ServiceAccount tokens verified online by
//! the Kubernetes API (TokenReview), audience-bound. Results are cached by token digest for a
//! short time so the hot path does not call the API server on every request.

use futures_util::future::BoxFuture;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::api::{Api, PostParams};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a review result is trusted.
const CACHE_FOR: Duration = Duration::from_secs(60);
const CACHE_MAX: usize = 10_000;

/// Asks the cluster whether a token is valid.
pub trait TokenReviewer: Send + Sync + 'static {
    /// The authenticated username (e.g. `system:serviceaccount:ns:name`), `Ok(None)` when the
    /// token is not valid for `audiences`, `Err` when the API could not answer.
    fn review(
        &self,
        token: &str,
        audiences: &[String],
    ) -> BoxFuture<'static, Result<Option<String>, String>>;
}

/// TokenReview through kube-rs.
pub struct KubeTokenReviewer {
    client: kube::Client,
}

impl KubeTokenReviewer {
    /// With a client (its ServiceAccount needs `create` on `tokenreviews`, e.g. through the
    /// `system:auth-delegator` ClusterRole).
    pub fn new(client: kube::Client) -> Self {
        Self { client }
    }
}

impl TokenReviewer for KubeTokenReviewer {
    fn review(
        &self,
        token: &str,
        audiences: &[String],
    ) -> BoxFuture<'static, Result<Option<String>, String>> {
        let api: Api<TokenReview> = Api::all(self.client.clone());
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_string(),
                audiences: Some(audiences.to_vec()),
            },
            ..Default::default()
        };
        Box::pin(async move {
            let answer = api
                .create(&PostParams::default(), &review)
                .await
                .map_err(|e| format!("TokenReview failed: {e}"))?;
            let status = answer.status.unwrap_or_default();
            if status.authenticated != Some(true) {
                return Ok(None);
            }
            Ok(status.user.and_then(|u| u.username))
        })
    }
}

/// A review result (the username, if authenticated) and when it was obtained.
type Reviewed = (Option<String>, Instant);

/// A short-lived cache of review results, by token digest.
#[derive(Default)]
pub struct ReviewCache {
    entries: Mutex<HashMap<[u8; 32], Reviewed>>,
}

impl ReviewCache {
    /// The cached answer for `token`, or ask `reviewer`.
    pub async fn review(
        &self,
        reviewer: &dyn TokenReviewer,
        token: &str,
        audiences: &[String],
    ) -> Result<Option<String>, String> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some((answer, at)) = self.entries.lock().expect("lock").get(&digest)
            && at.elapsed() < CACHE_FOR
        {
            return Ok(answer.clone());
        }
        let answer = reviewer.review(token, audiences).await?;
        let mut entries = self.entries.lock().expect("lock");
        if entries.len() >= CACHE_MAX {
            entries.retain(|_, (_, at)| at.elapsed() < CACHE_FOR);
            if entries.len() >= CACHE_MAX {
                entries.clear();
            }
        }
        entries.insert(digest, (answer.clone(), Instant::now()));
        Ok(answer)
    }
}
