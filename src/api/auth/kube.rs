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
