//! The stands held by an outage, as the leader sees them: over every TestRun the controller
//! watches (every namespace it reconciles), so a hold found in any of them is probed and
//! resolved. The HTTP side's `Backend::stand_holds` answers for the API's own namespace.

use async_trait::async_trait;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::{Client, ResourceExt};

use crate::crd::TestRun;
use crate::outage::Hold;
use crate::store::StoreError;

pub struct ScopedHolds {
    runs: Store<TestRun>,
    client: Client,
}

impl ScopedHolds {
    pub fn new(runs: Store<TestRun>, client: Client) -> ScopedHolds {
        ScopedHolds { runs, client }
    }
}

#[async_trait]
impl crate::stands::Holds for ScopedHolds {
    async fn stand_holds(&self) -> Result<Vec<Hold>, StoreError> {
        let runs = self.runs.state();
        Ok(crate::outage::holds(runs.iter().map(|r| r.as_ref())))
    }

    async fn resume_stand(&self, stand: &str, by: &str) -> Result<usize, StoreError> {
        let stand = crate::queue::stand_key(stand);
        let mut resolved = 0;
        for run in self.runs.state() {
            let Some(mut record) = run.status.as_ref().and_then(|s| s.stand_down.clone()) else {
                continue;
            };
            if record.stand != stand || !crate::outage::resolve(&mut record, by, chrono::Utc::now()) {
                continue;
            }
            let api: Api<TestRun> =
                Api::namespaced(self.client.clone(), &run.namespace().unwrap_or_default());
            let patch = Patch::Merge(serde_json::json!({ "status": { "standDown": record } }));
            match api
                .patch_status(&run.name_any(), &PatchParams::default(), &patch)
                .await
            {
                Ok(_) => resolved += 1,
                Err(kube::Error::Api(a)) if a.code == 404 => {}
                Err(e) => {
                    return Err(StoreError::Task(format!(
                        "cannot resolve the hold of {}: {e}",
                        run.name_any()
                    )));
                }
            }
        }
        Ok(resolved)
    }
}
