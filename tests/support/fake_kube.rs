//! An in-process Kubernetes API for the operator tests: `kube-fake-client` (an in-memory fake
//! modelled on controller-runtime's fake client, speaking the real JSON wire format), wrapped
//! in a tower `Service` that adds what a real `kube_runtime::Controller` needs and the fake
//! lacks:
//!
//! - **watch**: `?watch=true` answers a stream of `{"type", "object"}` lines: the current list
//!   first (as `ADDED`), then every successful write as it happens (a broadcast of writes,
//!   filtered by the watch's namespace and selectors);
//! - **selectors**: kube sends `labelSelector` form-encoded (`+` for spaces), which the fake
//!   misreads for set-based selectors (`key in (a,b)`); they are re-encoded before forwarding;
//! - **generateName**: filled in on create;
//! - **finalizers**: deleting an object with finalizers marks it (`deletionTimestamp`) instead
//!   of removing it; it goes once an update leaves its finalizers empty (the fake would delete
//!   it at once);
//! - **cascade deletion** is announced: dependents the fake removed by owner reference get
//!   their `DELETED` watch events;
//! - **JSON Patch `test` against null** passes for a missing field, as on the API server
//!   (kube's finalizer helper tests `/metadata/finalizers` for null before adding the first);
//! - **pod logs**: `pods/{name}/log` answers what a test set with [`FakeKube::set_pod_log`].
//!
//! What this does NOT cover (a real API server would): admission and CEL / OpenAPI schema
//! validation of custom resources (bad objects are stored as given; the CRD schemas are
//! checked separately by tests/crds.rs), defaulting, `stringData` conversion, resource
//! quotas, RBAC, and every controller of the cluster — there is no Job controller and no
//! kubelet: tests create a Job's pod and mark the Job complete themselves (`tests/operator.rs`
//! runs the pod's command as a real process). It also differs where it bumps
//! `metadata.generation`: on every write of the main resource, metadata-only ones (finalizers,
//! labels) included, where an API server bumps it only for a changed spec.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::body::Bytes;
use futures::future::BoxFuture;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use kube::client::Body;
use serde_json::{Value, json};
use tokio::sync::broadcast;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A written object, announced to watches.
#[derive(Clone, Debug)]
struct WriteEvent {
    /// `ADDED`, `MODIFIED` or `DELETED`.
    kind: &'static str,
    /// The collection (`/apis/g/v` or `/api/v1`, and the plural) and namespace of the object.
    collection: Collection,
    object: Value,
}

/// Where an object lives: `prefix` (`/api/v1`, `/apis/batch/v1`), `namespace` (empty for
/// cluster-scoped or an all-namespaces list) and `plural`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Collection {
    prefix: String,
    namespace: String,
    plural: String,
}

impl Collection {
    fn path(&self) -> String {
        if self.namespace.is_empty() {
            format!("{}/{}", self.prefix, self.plural)
        } else {
            format!("{}/namespaces/{}/{}", self.prefix, self.namespace, self.plural)
        }
    }
}

/// A parsed request path: the collection, then the object's name and a subresource.
fn parse_path(path: &str) -> Option<(Collection, Option<String>, Option<String>)> {
    let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (prefix, rest) = match *parts.first()? {
        "api" => (format!("/api/{}", parts.get(1)?), &parts[2..]),
        "apis" => (format!("/apis/{}/{}", parts.get(1)?, parts.get(2)?), &parts[3..]),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (ns.to_string(), rest),
        rest => (String::new(), rest),
    };
    let plural = rest.first()?.to_string();
    Some((
        Collection {
            prefix,
            namespace,
            plural,
        },
        rest.get(1).map(|s| s.to_string()),
        rest.get(2).map(|s| s.to_string()),
    ))
}

#[derive(Default)]
struct Overlay {
    /// uid → deletionTimestamp of objects being deleted (finalizers pending).
    terminating: HashMap<String, String>,
    /// uid → (collection, last written object), for cascade announcements.
    known: HashMap<String, (Collection, Value)>,
}

struct Shared {
    inner: kube::Client,
    events: broadcast::Sender<WriteEvent>,
    /// Writes are serialized so that watch events come in write order.
    write_lock: tokio::sync::Mutex<()>,
    overlay: Mutex<Overlay>,
    pod_logs: Mutex<HashMap<(String, String), String>>,
    /// `"<kind> <name>"` of every deletion, in the order the fake carried them out.
    deletions: Mutex<Vec<String>>,
}

/// The fake API. Clone the [`kube::Client`] from [`FakeKube::client`] freely: every clone
/// (and every operator instance built on one) shares the same objects.
#[derive(Clone)]
pub struct FakeKube {
    shared: Arc<Shared>,
    client: kube::Client,
}

impl FakeKube {
    pub async fn new() -> FakeKube {
        use k8s_openapi::api::batch::v1::Job;
        use tomato::crd::{NightlySchedule, TestRun};
        // The builder's `with_status_subresource` wants `Default`, which the CRD types lack;
        // the fake also turns the status subresource on for a kind when it is given an
        // object with a status, so one placeholder of each kind (in a namespace no test
        // uses) does that.
        let mut run: TestRun = serde_json::from_value(json!({
            "apiVersion": "tomato.dev/v1alpha1", "kind": "TestRun",
            "metadata": {"name": "status-subresource", "namespace": "fake-system"},
            "spec": {"service": "none", "stand": "none"}
        }))
        .expect("a placeholder TestRun");
        run.status = Some(Default::default());
        let mut schedule: NightlySchedule = serde_json::from_value(json!({
            "apiVersion": "tomato.dev/v1alpha1", "kind": "NightlySchedule",
            "metadata": {"name": "status-subresource", "namespace": "fake-system"},
            "spec": {"service": "none", "stand": "none"}
        }))
        .expect("a placeholder NightlySchedule");
        schedule.status = Some(Default::default());
        let mut regression: tomato::crd::Regression = serde_json::from_value(json!({
            "apiVersion": "tomato.dev/v1alpha1", "kind": "Regression",
            "metadata": {"name": "status-subresource", "namespace": "fake-system"},
            "spec": {"service": "none", "version": "0", "stand": "none", "assessors": []}
        }))
        .expect("a placeholder Regression");
        regression.status = Some(Default::default());
        let inner = kube_fake_client::ClientBuilder::new()
            .with_resource::<TestRun>()
            .with_resource::<NightlySchedule>()
            .with_resource::<tomato::crd::Regression>()
            .with_object(run)
            .with_object(schedule)
            .with_object(regression)
            .with_status_subresource::<Job>()
            .build()
            .await
            .expect("the fake API builds");
        let shared = Arc::new(Shared {
            inner,
            events: broadcast::channel(16 * 1024).0,
            write_lock: tokio::sync::Mutex::new(()),
            overlay: Mutex::default(),
            pod_logs: Mutex::default(),
            deletions: Mutex::default(),
        });
        let client = kube::Client::new(FakeService(shared.clone()), "default");
        FakeKube { shared, client }
    }

    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// `"<kind> <name>"` of every object deleted so far, in the order of deletion (one ordered
    /// log: two watches of different kinds cannot tell which deletion came first).
    pub fn deletions(&self) -> Vec<String> {
        self.shared.deletions.lock().unwrap().clone()
    }

    /// What `pods/{name}/log` answers for that pod.
    pub fn set_pod_log(&self, namespace: &str, pod: &str, log: &str) {
        self.shared
            .pod_logs
            .lock()
            .unwrap()
            .insert((namespace.into(), pod.into()), log.into());
    }
}

#[derive(Clone)]
struct FakeService(Arc<Shared>);

impl tower::Service<Request<Body>> for FakeService {
    type Response = Response<BoxBody<Bytes, BoxError>>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Self::Response, BoxError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let shared = self.0.clone();
        Box::pin(async move { shared.handle(req).await })
    }
}

fn full(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<BoxBody<Bytes, BoxError>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)).map_err(|e| match e {}).boxed())
        .expect("a valid response")
}

fn json_response(status: StatusCode, v: &Value) -> Response<BoxBody<Bytes, BoxError>> {
    full(status, "application/json", v.to_string().into_bytes())
}

fn not_found(what: &str) -> Response<BoxBody<Bytes, BoxError>> {
    json_response(
        StatusCode::NOT_FOUND,
        &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "message": format!("{what} not found"), "reason": "NotFound", "code": 404}),
    )
}

/// Percent-encodes a query value (spaces as `%20`, which the fake decodes).
fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn labels_of(obj: &Value) -> std::collections::BTreeMap<String, String> {
    obj["metadata"]["labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether an object matches a watch's selectors.
fn selected(obj: &Value, labels: Option<&str>, fields: Option<&str>) -> bool {
    if let Some(sel) = labels
        && !kube_fake_client::label_selector::matches_label_selector(&labels_of(obj), sel).unwrap_or(false)
    {
        return false;
    }
    if let Some(sel) = fields {
        for req in sel.split(',').filter(|r| !r.is_empty()) {
            let (key, want, negate) = match req.split_once("!=") {
                Some((k, v)) => (k, v, true),
                None => match req.split_once("==").or_else(|| req.split_once('=')) {
                    Some((k, v)) => (k, v, false),
                    None => continue,
                },
            };
            let have = match key {
                "metadata.name" => obj["metadata"]["name"].as_str(),
                "metadata.namespace" => obj["metadata"]["namespace"].as_str(),
                _ => continue,
            };
            if (have == Some(want)) == negate {
                return false;
            }
        }
    }
    true
}

impl Shared {
    async fn handle(
        self: Arc<Self>,
        req: Request<Body>,
    ) -> Result<Response<BoxBody<Bytes, BoxError>>, BoxError> {
        let (parts, body) = req.into_parts();
        let body = body.collect().await?.to_bytes();
        let path = parts.uri.path().to_string();
        let query: Vec<(String, String)> = serde_urlencoded::from_str(parts.uri.query().unwrap_or_default())?;
        let param = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let Some((collection, name, sub)) = parse_path(&path) else {
            return Ok(not_found(&path));
        };
        if parts.method == Method::GET && param("watch").is_some_and(|w| w == "true" || w == "1") {
            return Ok(self
                .watch(collection, param("labelSelector"), param("fieldSelector"))
                .await);
        }
        if parts.method == Method::GET && collection.plural == "pods" && sub.as_deref() == Some("log") {
            return self
                .pod_log(&collection, name.as_deref().unwrap_or_default())
                .await;
        }
        // Re-encode the query for the fake (it reads `+` literally).
        let reencoded: Vec<String> = query.iter().map(|(k, v)| format!("{k}={}", encode(v))).collect();
        let uri = if reencoded.is_empty() {
            path.clone()
        } else {
            format!("{path}?{}", reencoded.join("&"))
        };
        let forward = |body: Vec<u8>| {
            let mut r = Request::builder().method(parts.method.clone()).uri(uri.clone());
            for (k, v) in &parts.headers {
                r = r.header(k, v);
            }
            r.body(Body::from(body)).expect("a valid request")
        };

        if parts.method == Method::GET {
            let (status, mut value) = self.send(forward(body.to_vec())).await?;
            self.decorate(&mut value);
            return Ok(json_response(status, &value));
        }

        let _guard = self.write_lock.lock().await;
        match parts.method {
            Method::DELETE if name.is_some() => {
                let item = format!("{}/{}", collection.path(), name.clone().unwrap_or_default());
                let (status, current) = self.send(get(&item)).await?;
                if !status.is_success() {
                    return Ok(json_response(status, &current));
                }
                let has_finalizers = current["metadata"]["finalizers"]
                    .as_array()
                    .is_some_and(|f| !f.is_empty());
                if has_finalizers {
                    let uid = current["metadata"]["uid"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                    self.overlay.lock().unwrap().terminating.entry(uid).or_insert(now);
                    let mut obj = current;
                    self.decorate(&mut obj);
                    self.announce("MODIFIED", &collection, &obj);
                    return Ok(json_response(StatusCode::OK, &obj));
                }
                let (status, mut value) = self.send(forward(body.to_vec())).await?;
                if status.is_success() {
                    self.deleted(&collection, &value).await?;
                    self.decorate(&mut value);
                }
                Ok(json_response(status, &value))
            }
            _ => {
                let mut body_value: Value = if body.is_empty() {
                    Value::Null
                } else {
                    serde_json::from_slice(&body).unwrap_or(Value::Null)
                };
                if parts.method == Method::POST
                    && body_value["metadata"]["name"].is_null()
                    && let Some(prefix) = body_value["metadata"]["generateName"].as_str()
                {
                    let name = format!("{prefix}{}", tomato::store::random_suffix(5));
                    body_value["metadata"]["name"] = json!(name);
                }
                let json_patch = parts
                    .headers
                    .get("content-type")
                    .is_some_and(|v| v.as_bytes().starts_with(b"application/json-patch+json"));
                if json_patch && let Some(ops) = body_value.as_array().cloned() {
                    let item = format!("{}/{}", collection.path(), name.clone().unwrap_or_default());
                    let (_, current) = self.send(get(&item)).await?;
                    let kept: Vec<Value> = ops
                        .into_iter()
                        .filter(|op| {
                            let missing_null_test = op["op"] == "test"
                                && op["value"].is_null()
                                && op["path"].as_str().is_some_and(|p| current.pointer(p).is_none());
                            !missing_null_test
                        })
                        .collect();
                    body_value = Value::Array(kept);
                }
                // The fake keeps no deletionTimestamp (the overlay does): never send one.
                if let Some(meta) = body_value.get_mut("metadata").and_then(Value::as_object_mut) {
                    meta.remove("deletionTimestamp");
                }
                let bytes = if body_value.is_null() {
                    body.to_vec()
                } else {
                    body_value.to_string().into_bytes()
                };
                let (status, mut value) = self.send(forward(bytes)).await?;
                if !status.is_success() {
                    return Ok(json_response(status, &value));
                }
                let uid = value["metadata"]["uid"].as_str().unwrap_or_default().to_string();
                let object_collection = Collection {
                    namespace: value["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or(&collection.namespace)
                        .to_string(),
                    ..collection.clone()
                };
                let (terminating, seen) = {
                    let o = self.overlay.lock().unwrap();
                    (o.terminating.contains_key(&uid), o.known.contains_key(&uid))
                };
                let finalizers_left = value["metadata"]["finalizers"]
                    .as_array()
                    .is_some_and(|f| !f.is_empty());
                if terminating && !finalizers_left {
                    // The last finalizer is gone: now it really goes.
                    let item = format!(
                        "{}/{}",
                        object_collection.path(),
                        value["metadata"]["name"].as_str().unwrap_or_default()
                    );
                    let (_, deleted) = self.send(delete(&item)).await?;
                    self.deleted(&object_collection, &deleted).await?;
                    self.decorate(&mut value);
                    return Ok(json_response(status, &value));
                }
                self.overlay
                    .lock()
                    .unwrap()
                    .known
                    .insert(uid, (object_collection.clone(), value.clone()));
                self.decorate(&mut value);
                let kind = if parts.method == Method::POST || !seen {
                    "ADDED"
                } else {
                    "MODIFIED"
                };
                self.announce(kind, &object_collection, &value);
                Ok(json_response(status, &value))
            }
        }
    }

    async fn send(&self, req: Request<Body>) -> Result<(StatusCode, Value), BoxError> {
        let resp = self.inner.send(req).await?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| json!({"raw": String::from_utf8_lossy(&bytes)}));
        Ok((status, value))
    }

    /// Adds `deletionTimestamp` to objects being deleted (in an object or a list).
    fn decorate(&self, v: &mut Value) {
        let overlay = self.overlay.lock().unwrap();
        let mut one = |obj: &mut Value| {
            if let Some(ts) = obj["metadata"]["uid"]
                .as_str()
                .and_then(|u| overlay.terminating.get(u))
            {
                obj["metadata"]["deletionTimestamp"] = json!(ts);
            }
        };
        match v.get_mut("items").and_then(Value::as_array_mut) {
            Some(items) => items.iter_mut().for_each(&mut one),
            None => one(v),
        }
    }

    fn announce(&self, kind: &'static str, collection: &Collection, object: &Value) {
        if kind == "DELETED" {
            let name = format!(
                "{} {}",
                object["kind"].as_str().unwrap_or("?"),
                object["metadata"]["name"].as_str().unwrap_or_default()
            );
            self.deletions.lock().unwrap().push(name);
        }
        let _ = self.events.send(WriteEvent {
            kind,
            collection: collection.clone(),
            object: object.clone(),
        });
    }

    /// Announces a deletion and those of the dependents the fake removed with it.
    async fn deleted(&self, collection: &Collection, object: &Value) -> Result<(), BoxError> {
        let mut gone: Vec<(Collection, Value)> = vec![(collection.clone(), object.clone())];
        let mut i = 0;
        while i < gone.len() {
            let uid = gone[i].1["metadata"]["uid"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            {
                let mut o = self.overlay.lock().unwrap();
                o.terminating.remove(&uid);
                o.known.remove(&uid);
            }
            let dependents: Vec<(Collection, Value)> = self
                .overlay
                .lock()
                .unwrap()
                .known
                .values()
                .filter(|(_, v)| {
                    v["metadata"]["ownerReferences"]
                        .as_array()
                        .is_some_and(|refs| refs.iter().any(|r| r["uid"] == json!(uid)))
                })
                .cloned()
                .collect();
            for (c, v) in dependents {
                let item = format!(
                    "{}/{}",
                    c.path(),
                    v["metadata"]["name"].as_str().unwrap_or_default()
                );
                let (status, _) = self.send(get(&item)).await?;
                if status == StatusCode::NOT_FOUND {
                    gone.push((c, v));
                }
            }
            i += 1;
        }
        for (c, v) in &gone {
            self.announce("DELETED", c, v);
        }
        Ok(())
    }

    async fn pod_log(
        &self,
        collection: &Collection,
        pod: &str,
    ) -> Result<Response<BoxBody<Bytes, BoxError>>, BoxError> {
        let item = format!("{}/{pod}", collection.path());
        let (status, _) = self.send(get(&item)).await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(not_found(&format!("pod {pod}")));
        }
        let log = self
            .pod_logs
            .lock()
            .unwrap()
            .get(&(collection.namespace.clone(), pod.to_string()))
            .cloned()
            .unwrap_or_default();
        Ok(full(StatusCode::OK, "text/plain", log.into_bytes()))
    }

    /// A watch: the current list as `ADDED`, then every matching write.
    async fn watch(
        self: Arc<Self>,
        collection: Collection,
        labels: Option<String>,
        fields: Option<String>,
    ) -> Response<BoxBody<Bytes, BoxError>> {
        let rx = self.events.subscribe();
        let list_uri = match &labels {
            Some(l) => format!("{}?labelSelector={}", collection.path(), encode(l)),
            None => collection.path(),
        };
        let initial: Vec<Value> = match self.send(get(&list_uri)).await {
            Ok((status, mut list)) if status.is_success() => {
                self.decorate(&mut list);
                list["items"].as_array().cloned().unwrap_or_default()
            }
            _ => Vec::new(),
        };
        let matches = {
            let collection = collection.clone();
            move |e: &WriteEvent| {
                e.collection.prefix == collection.prefix
                    && e.collection.plural == collection.plural
                    && (collection.namespace.is_empty() || e.collection.namespace == collection.namespace)
                    && selected(&e.object, labels.as_deref(), fields.as_deref())
            }
        };
        let mut seen_initial: HashSet<String> = HashSet::new();
        let initial_lines: std::collections::VecDeque<Bytes> = initial
            .into_iter()
            .filter(|o| seen_initial.insert(o["metadata"]["uid"].as_str().unwrap_or_default().to_string()))
            .map(|o| Bytes::from(format!("{}\n", json!({"type": "ADDED", "object": o}))))
            .collect();
        let stream = futures::stream::unfold((initial_lines, rx), move |(mut initial, mut rx)| {
            let matches = matches.clone();
            async move {
                if let Some(line) = initial.pop_front() {
                    return Some((Ok::<_, BoxError>(http_body::Frame::data(line)), (initial, rx)));
                }
                loop {
                    match rx.recv().await {
                        Ok(e) if matches(&e) => {
                            let line = format!("{}\n", json!({"type": e.kind, "object": e.object}));
                            return Some((Ok(http_body::Frame::data(Bytes::from(line))), (initial, rx)));
                        }
                        Ok(_) => continue,
                        // Lagged or closed: end the watch; the watcher lists again.
                        Err(_) => return None,
                    }
                }
            }
        });
        Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/json")
            .body(BoxBody::new(StreamBody::new(stream)))
            .expect("a valid response")
    }
}

fn get(uri: &str) -> Request<Body> {
    Request::builder()
        .method(Method::GET)
        .uri(uri)
        .body(Body::from(Vec::new()))
        .expect("a valid request")
}

fn delete(uri: &str) -> Request<Body> {
    Request::builder()
        .method(Method::DELETE)
        .uri(uri)
        .body(Body::from(Vec::new()))
        .expect("a valid request")
}
