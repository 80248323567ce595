//! The API server is killed and started again mid-run (`tests/cluster/up` on SIGUSR1: same
//! port and etcd data): the operator's watches recover (a relist after the dropped connection)
//! and the run reaches its verdict. Needs the real control plane; a binary of its own, since
//! the restart would disturb every other test sharing the cluster.

mod support;

use support::cluster::TestNs;
use support::operator::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_completes_when_the_api_server_restarts_while_its_first_attempt_runs() {
    let k = TestNs::new("restart").await;
    let (_dir, config) = demo_config(&k, "");
    let _replica = start_replica(&k, config, "tomato-0").await;
    create_run(&k, "weathered", template("demo")).await;
    let first = wait_job(&k, "weathered-1").await;
    wait_phase(&k, "weathered", "Running").await;
    // Its container runs (its env resolved, waiting at the gate) when the API server goes.
    wait_container_running(&k, &first).await;

    let cluster = k.cluster;
    tokio::task::spawn_blocking(move || cluster.restart_api_server())
        .await
        .unwrap();

    // The attempt ends while the operator's watches are coming back; it must still see it.
    assert_eq!(run_job(&k, &first).await, 1, "the demo suite has a failing test");
    let second = eventually("the rerun's Job", RUN_WAIT, || async {
        jobs(&k).get_opt("weathered-2").await.unwrap()
    })
    .await;
    run_job(&k, &second).await;
    let run = eventually("the verdict", RUN_WAIT, || async {
        let r = runs(&k).get("weathered").await.unwrap();
        (r.status.as_ref().map(|s| s.phase.to_string()).as_deref() == Some("Failed")).then_some(r)
    })
    .await;
    let summary = run.status.unwrap().summary.unwrap();
    assert_eq!(
        (summary.total, summary.failed, summary.flaky),
        (6, 1, 1),
        "{summary:?}"
    );
    assert_eq!(
        job_names(&k).await,
        ["weathered-1", "weathered-2"],
        "no duplicate Job"
    );
}
