//! Operator mode: Kubernetes decides. A bearer token is authenticated with a TokenReview
//! (`authentication.k8s.io/v1`) and each write authorised with a SubjectAccessReview
//! (`authorization.k8s.io/v1`) for the verb and resource it amounts to
//! ([`super::routes::access`]), in the namespace it writes to, as the reviewed user (name,
//! groups, uid, extra): who may create a TestRun through `/api` is exactly who may with
//! `kubectl`. The operator's ServiceAccount needs `create` on both reviews (the ClusterRole
//! `system:auth-delegator`, bound by `deploy/rbac-auth.yaml` and the chart).
//!
//! TokenReview answers, positive and negative, are kept for [`REVIEW_TTL`] keyed by the
//! token's SHA-256 (never the token), so a burst of writes does not hammer the API server.
//! SubjectAccessReviews are not cached: a revoked permission takes effect at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, UserInfo};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec, SubjectAccessReview,
    SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};

use super::routes::Write;

/// How long a TokenReview's answer is kept.
pub const REVIEW_TTL: Duration = Duration::from_secs(10);
/// Most answers kept; older ones are dropped first when full.
const CACHE_MAX: usize = 4096;

/// A user as the API server authenticated them.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub username: String,
    info: UserInfo,
}

/// What Kubernetes said about a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Refused, with the authorizer's reason when it gave one.
    Denied(Option<String>),
}

/// Token reviews by the token's SHA-256: when asked, and the user (`None`: not authenticated).
type ReviewCache = HashMap<[u8; 32], (Instant, Option<User>)>;

/// The API server could not be asked.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ReviewError(String);

/// The TokenReview and SubjectAccessReview client, with the cache of token answers (shared
/// by clones).
#[derive(Clone)]
pub struct KubeAuth {
    client: kube::Client,
    /// Where the API writes (the operator's namespace).
    namespace: String,
    cache: Arc<Mutex<ReviewCache>>,
}

impl std::fmt::Debug for KubeAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KubeAuth(namespace {})", self.namespace)
    }
}

impl KubeAuth {
    pub fn new(client: kube::Client, namespace: impl Into<String>) -> KubeAuth {
        KubeAuth {
            client,
            namespace: namespace.into(),
            cache: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The user `token` belongs to, `None` when the API server does not accept it.
    pub async fn authenticate(&self, token: &str) -> Result<Option<User>, ReviewError> {
        let key: [u8; 32] = ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
            .as_ref()
            .try_into()
            .expect("SHA-256 is 32 bytes");
        if let Some((at, user)) = self.lock().get(&key)
            && at.elapsed() < REVIEW_TTL
        {
            return Ok(user.clone());
        }
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_string(),
                audiences: None,
            },
            ..TokenReview::default()
        };
        let answer = Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| ReviewError(format!("the TokenReview failed: {e}")))?;
        let user = answer
            .status
            .filter(|s| s.authenticated == Some(true))
            .and_then(|s| s.user)
            .and_then(|info| {
                Some(User {
                    username: info.username.clone().filter(|u| !u.is_empty())?,
                    info,
                })
            });
        let mut cache = self.lock();
        let now = Instant::now();
        cache.retain(|_, (at, _)| now.duration_since(*at) < REVIEW_TTL);
        if cache.len() >= CACHE_MAX
            && let Some(oldest) = cache.iter().min_by_key(|(_, (at, _))| *at).map(|(k, _)| *k)
        {
            cache.remove(&oldest);
        }
        cache.insert(key, (now, user.clone()));
        Ok(user)
    }

    /// Whether `user` may do `write` in the operator's namespace.
    pub async fn authorize(&self, user: &User, write: &Write) -> Result<Verdict, ReviewError> {
        let Some(resource) = write.resource else {
            return Ok(Verdict::Denied(Some(
                "no Kubernetes permission covers this request".into(),
            )));
        };
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(user.username.clone()),
                groups: user.info.groups.clone(),
                uid: user.info.uid.clone(),
                extra: user.info.extra.clone(),
                resource_attributes: Some(ResourceAttributes {
                    namespace: Some(self.namespace.clone()),
                    verb: Some(write.verb.as_str().into()),
                    group: Some(crate::crd::GROUP.into()),
                    resource: Some(resource.plural().into()),
                    name: write.name.clone(),
                    ..ResourceAttributes::default()
                }),
                ..SubjectAccessReviewSpec::default()
            },
            ..SubjectAccessReview::default()
        };
        let answer = Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| ReviewError(format!("the SubjectAccessReview failed: {e}")))?;
        Ok(match answer.status {
            Some(s) if s.allowed => Verdict::Allowed,
            Some(s) => Verdict::Denied(s.reason.filter(|r| !r.is_empty())),
            None => Verdict::Denied(None),
        })
    }

    /// Checks (with SelfSubjectAccessReviews) that this client may create TokenReviews and
    /// SubjectAccessReviews; without, every write through the API would answer 503. The error
    /// says what to bind.
    pub async fn check_permissions(&self) -> Result<(), ReviewError> {
        let mut missing = Vec::new();
        for (group, resource) in [
            ("authentication.k8s.io", "tokenreviews"),
            ("authorization.k8s.io", "subjectaccessreviews"),
        ] {
            let review = SelfSubjectAccessReview {
                spec: SelfSubjectAccessReviewSpec {
                    resource_attributes: Some(ResourceAttributes {
                        group: Some(group.into()),
                        resource: Some(resource.into()),
                        verb: Some("create".into()),
                        ..ResourceAttributes::default()
                    }),
                    ..SelfSubjectAccessReviewSpec::default()
                },
                ..SelfSubjectAccessReview::default()
            };
            let answer = Api::<SelfSubjectAccessReview>::all(self.client.clone())
                .create(&PostParams::default(), &review)
                .await
                .map_err(|e| ReviewError(format!("the SelfSubjectAccessReview failed: {e}")))?;
            if !answer.status.is_some_and(|s| s.allowed) {
                missing.push(format!("create {resource}.{group}"));
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        Err(ReviewError(format!(
            "the operator may not {}, so API writes cannot be authorised (they answer 503): bind \
             the ClusterRole system:auth-delegator to its ServiceAccount (deploy/rbac-auth.yaml)",
            missing.join(" or ")
        )))
    }

    /// The namespace writes go to (what SubjectAccessReviews ask about).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ReviewCache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::http::{Request, Response};
    use kube::client::Body;

    use super::*;

    /// A client whose API server answers every TokenReview itself: `alice-token` is alice, any
    /// other token is not authenticated. Counts the reviews asked.
    fn client(asked: Arc<AtomicUsize>) -> kube::Client {
        let service = tower::service_fn(move |req: Request<Body>| {
            let asked = asked.clone();
            async move {
                assert!(req.uri().path().ends_with("/tokenreviews"), "{}", req.uri());
                asked.fetch_add(1, Ordering::SeqCst);
                let body = req.into_body().collect_bytes().await.expect("the review's body");
                let review: TokenReview = serde_json::from_slice(&body).expect("a TokenReview");
                let status = if review.spec.token == "alice-token" {
                    serde_json::json!({"authenticated": true, "user": {"username": "alice", "groups": ["qa"]}})
                } else {
                    serde_json::json!({"authenticated": false})
                };
                let answer = serde_json::json!({
                    "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                    "spec": {}, "status": status,
                });
                Ok::<_, std::convert::Infallible>(Response::new(Body::from(
                    serde_json::to_vec(&answer).expect("JSON"),
                )))
            }
        });
        kube::Client::new(service, "tomato")
    }

    #[tokio::test]
    async fn a_token_is_reviewed_once_within_the_ttl_whether_accepted_or_not() {
        let asked = Arc::new(AtomicUsize::new(0));
        let auth = KubeAuth::new(client(asked.clone()), "tomato");

        let alice = auth
            .authenticate("alice-token")
            .await
            .unwrap()
            .expect("alice is authenticated");
        assert_eq!(alice.username, "alice");
        assert_eq!(auth.authenticate("alice-token").await.unwrap(), Some(alice));
        assert_eq!(
            asked.load(Ordering::SeqCst),
            1,
            "the second write is answered from the cache"
        );

        assert_eq!(auth.authenticate("stolen").await.unwrap(), None);
        assert_eq!(auth.authenticate("stolen").await.unwrap(), None);
        assert_eq!(
            asked.load(Ordering::SeqCst),
            2,
            "a refused token is remembered too"
        );

        // The cache holds hashes, never a token.
        let cache = auth.lock();
        assert_eq!(cache.len(), 2);
        let alice_key: [u8; 32] = ring::digest::digest(&ring::digest::SHA256, b"alice-token")
            .as_ref()
            .try_into()
            .unwrap();
        assert!(cache.contains_key(&alice_key));
    }

    #[tokio::test]
    async fn an_answer_older_than_the_ttl_is_asked_again() {
        let asked = Arc::new(AtomicUsize::new(0));
        let auth = KubeAuth::new(client(asked.clone()), "tomato");
        auth.authenticate("alice-token").await.unwrap();
        // Age the answer past the TTL rather than sleeping for it.
        for (at, _) in auth.lock().values_mut() {
            *at = at
                .checked_sub(REVIEW_TTL + Duration::from_secs(1))
                .expect("the machine has been up longer than the TTL");
        }
        assert!(auth.authenticate("alice-token").await.unwrap().is_some());
        assert_eq!(asked.load(Ordering::SeqCst), 2);
    }
}
