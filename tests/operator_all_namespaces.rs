//! `tomato operator --all-namespaces` with `deploy/rbac-cluster.yaml` against a real Kubernetes
//! control plane (`tests/cluster/up`; this test needs it). A binary of its own: an operator
//! watching every namespace would reconcile the runs of other tests sharing its cluster.

mod support;

use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, PostParams};
use support::REPO;
use support::cluster::TestNs;
use support::operator::*;
use tomato::crd::TestRun;

/// With `--all-namespaces` a run lives outside the operator's namespace: its Job's upload
/// must reach it (and its token and results) there, not in the operator's own namespace.
/// The operator has the ClusterRole of `deploy/rbac-cluster.yaml` (and the ServiceAccount of
/// `deploy/rbac.yaml`) and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_all_namespaces_a_run_in_another_namespace_receives_its_jobs_upload() {
    let namespaced = std::fs::read_to_string(format!("{REPO}/deploy/rbac.yaml")).unwrap();
    let service_account = namespaced.split("\n---\n").next().unwrap();
    assert!(
        service_account.contains("kind: ServiceAccount"),
        "{service_account}"
    );
    let cluster_wide = std::fs::read_to_string(format!("{REPO}/deploy/rbac-cluster.yaml")).unwrap();
    let k = TestNs::with_rbac("op", &format!("{service_account}\n---\n{cluster_wide}")).await;
    let team_a = format!("{}-team-a", k.ns);
    k.cluster.kubectl_ok(&["create", "namespace", &team_a], None);
    let (_dir, config) = demo_config(&k, "");
    let _replica = start_replica_scoped(&k, config, "tomato-0", &[], tomato::operator::Scope::All).await;
    let team: Api<TestRun> = Api::namespaced(k.client(), &team_a);
    let mut run = TestRun::new(
        "elsewhere",
        tomato::crd::TestRunSpec {
            template: template("demo"),
            run_type: tomato::crd::RunType::Regular,
            timeout: None,
            cancel: false,
            retention: None,
        },
    );
    run.metadata.namespace = Some(team_a.clone());
    team.create(&PostParams::default(), &run).await.unwrap();
    let job_api: Api<Job> = Api::namespaced(k.client(), &team_a);
    let job = eventually("the Job in team-a", WAIT, || async {
        job_api.get_opt("elsewhere-1").await.unwrap()
    })
    .await;
    assert!(
        env(&job)["TOMATO_UPLOAD_URL"]["value"]
            .as_str()
            .unwrap()
            .ends_with(&format!(
                "/api/v1/runs/elsewhere/attempts/1/results?namespace={team_a}"
            )),
        "{:?}",
        env(&job)["TOMATO_UPLOAD_URL"]
    );
    assert_eq!(run_job(&k, &job).await, 1, "the demo suite has a failing test");
    let run = eventually("attempt 1 read from the upload", WAIT, || async {
        let r = team.get("elsewhere").await.unwrap();
        r.status
            .as_ref()
            .and_then(|s| s.attempts.first())
            .is_some_and(|a| a.summary.is_some())
            .then_some(r)
    })
    .await;
    let attempt = &run.status.unwrap().attempts[0];
    assert!(
        !attempt.message.as_deref().unwrap_or_default().contains("pod"),
        "the results came by upload, not from the pod log: {attempt:?}"
    );
}
