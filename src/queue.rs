//! Admission: which queued runs start now. A pure function of (queued runs, active runs,
//! limits), shared by the standalone driver and the operator.
//!
//! Semantics (DESIGN.md "Queue semantics"):
//! - one queue per service, ordered by `priority` ascending, then creation time, then name;
//! - a service runs at most `concurrency` runs at once;
//! - a stand hosts at most `standConcurrency` runs at once, across services.
//!
//! Runs are considered in that order globally. A run whose stand is full does not hold back
//! a later run of the same service on a free stand (the free stand would otherwise idle), but
//! it keeps its place: it is admitted first as soon as its stand frees. When two services'
//! runs want the same stand, the global order (priority, creation, name) decides.
//!
//! A sharded run takes one slot per shard (`Entry::slots`) and starts only when all of them
//! are free; while it waits, later runs of its service (or on its stand) do not take the
//! slots it waits for.
//!
//! Cost: one sort of the queued runs plus hash lookups, O(n log n); see `benches/queue.rs`.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};

use crate::crd::{Priority, TestRun};

/// What admission needs to know of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub service: String,
    /// Normalized stand (see [`stand_key`]).
    pub stand: String,
    pub priority: Priority,
    pub created: DateTime<Utc>,
    /// True when the run already holds its slots (admitted and unfinished).
    pub active: bool,
    /// Slots of its service and stand it takes: one per shard (1 for an unsharded run).
    /// Never more than the smaller of the two limits, or it could never start.
    pub slots: u32,
}

impl Entry {
    /// `run` as admission sees it; `active` when it already holds its slots. Both drivers
    /// build their entries here.
    pub fn of(run: &TestRun, active: bool, limits: &impl Limits) -> Entry {
        Entry {
            name: run.metadata.name.clone().unwrap_or_default(),
            service: run.spec.template.service.clone(),
            stand: stand_key(&run.spec.template.stand),
            priority: run.spec.template.priority,
            created: crate::crd::created(run),
            active,
            slots: limits.slots(run),
        }
    }

    /// The admission order: priority, then creation time, then name.
    pub fn order_key(&self) -> (Priority, DateTime<Utc>, &str) {
        (self.priority, self.created, &self.name)
    }
}

/// Concurrency limits, per service (from packs_config).
pub trait Limits {
    /// How many runs of `service` may be active at once.
    fn service_concurrency(&self, service: &str) -> u32;
    /// How many runs may be active at once on one stand, as configured for `service`.
    fn stand_concurrency(&self, service: &str) -> u32;
    /// Slots `run` takes (one per shard it will get); 1 for a service no longer configured.
    fn slots(&self, run: &TestRun) -> u32;
}

/// The outcome of one admission pass.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Admission {
    /// Names of runs to start now, in admission order.
    pub admitted: Vec<String>,
    /// Runs left waiting, in admission order.
    pub waiting: Vec<Waiting>,
}

/// A run left in the queue: where it is and what it waits for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waiting {
    pub name: String,
    /// 1-based position in its service's queue.
    pub position: u32,
    pub reason: WaitReason,
}

/// Why a queued run did not start: the first thing someone asks of a waiting run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WaitReason {
    /// Its service already runs `limit` runs (or earlier runs take the free slots).
    Service { service: String, limit: u32 },
    /// Its stand already hosts `limit` runs, of any service.
    Stand { stand: String, limit: u32 },
    /// Its stand is held: a run found it down ([`crate::outage`]); `reason` says how.
    StandDown { stand: String, reason: String },
}

impl std::fmt::Display for WaitReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let runs = |n: u32| {
            if n == 1 {
                "1 run".to_string()
            } else {
                format!("{n} runs")
            }
        };
        match self {
            WaitReason::Service { service, limit } => {
                write!(f, "waiting: {service} runs {limit} at a time")
            }
            WaitReason::Stand { stand, limit } => {
                write!(
                    f,
                    "waiting for stand {stand}: it takes {} at a time, of any service",
                    runs(*limit)
                )
            }
            WaitReason::StandDown { stand, reason } => write!(
                f,
                "held: {reason}; runs on {stand} wait until its probe answers or someone resumes it"
            ),
        }
    }
}

/// Decides which queued runs start now. Pure: same input, same answer.
/// `held` are the stands held by an outage ([`crate::outage::held`]): their queued runs wait,
/// whatever the free slots.
pub fn admit(entries: &[Entry], limits: &impl Limits, held: &BTreeMap<String, String>) -> Admission {
    let mut service_load: HashMap<&str, u32> = HashMap::new();
    let mut stand_load: HashMap<&str, u32> = HashMap::new();
    for e in entries.iter().filter(|e| e.active) {
        *service_load.entry(&e.service).or_default() += e.slots.max(1);
        *stand_load.entry(&e.stand).or_default() += e.slots.max(1);
    }

    let mut queued: Vec<&Entry> = entries.iter().filter(|e| !e.active).collect();
    queued.sort_unstable_by(|a, b| a.order_key().cmp(&b.order_key()));

    let mut admission = Admission::default();
    let mut positions: HashMap<&str, u32> = HashMap::new();
    // Limits are looked up once per service, not once per run.
    let mut service_limits: HashMap<&str, (u32, u32)> = HashMap::new();
    for e in queued {
        let (svc_limit, stand_limit) = *service_limits.entry(&e.service).or_insert_with(|| {
            (
                limits.service_concurrency(&e.service),
                limits.stand_concurrency(&e.service),
            )
        });
        if let Some(reason) = held.get(&e.stand) {
            let pos = positions.entry(&e.service).or_default();
            *pos += 1;
            admission.waiting.push(Waiting {
                name: e.name.clone(),
                position: *pos,
                reason: WaitReason::StandDown {
                    stand: e.stand.clone(),
                    reason: reason.clone(),
                },
            });
            continue;
        }
        let svc = service_load.entry(&e.service).or_default();
        let stand = stand_load.entry(&e.stand).or_default();
        // A sharded run waits until all its shards fit (the driver never launches more
        // shards than the smaller limit, so a run asking for more is taken at that).
        let need = e.slots.clamp(1, svc_limit.min(stand_limit).max(1));
        if *svc + need <= svc_limit && *stand + need <= stand_limit {
            *svc += need;
            *stand += need;
            admission.admitted.push(e.name.clone());
        } else {
            let pos = positions.entry(&e.service).or_default();
            *pos += 1;
            let service_full = *svc + need > svc_limit;
            // A run of several shards reserves what it waits for: a later one-slot run must
            // not take each slot as it frees, or the sharded run would never start.
            if need > 1 {
                if service_full {
                    *svc = svc_limit;
                } else {
                    *stand = (*stand).max(stand_limit);
                }
            }
            let reason = if service_full {
                WaitReason::Service {
                    service: e.service.clone(),
                    limit: svc_limit,
                }
            } else {
                WaitReason::Stand {
                    stand: e.stand.clone(),
                    limit: stand_limit,
                }
            };
            admission.waiting.push(Waiting {
                name: e.name.clone(),
                position: *pos,
                reason,
            });
        }
    }
    admission
}

/// Normalizes a stand so that `https://QA1.example.com/`, `qa1.example.com` and
/// `qa1.example.com/path` count as one stand: scheme, user info and path are dropped and the
/// host is lower-cased; an explicit port is kept (two ports are two stands).
pub fn stand_key(stand: &str) -> String {
    let s = stand.trim();
    let s = s.split_once("://").map_or(s, |(_, rest)| rest);
    let s = s.split(['/', '?', '#']).next().unwrap_or_default();
    let s = s.rsplit_once('@').map_or(s, |(_, host)| host);
    s.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;
    use std::collections::HashSet;

    /// Limits from a table; unknown services get 1/1.
    #[derive(Default, Debug)]
    struct Table(BTreeMap<String, (u32, u32)>);
    impl Limits for Table {
        fn service_concurrency(&self, s: &str) -> u32 {
            self.0.get(s).map_or(1, |l| l.0)
        }
        fn stand_concurrency(&self, s: &str) -> u32 {
            self.0.get(s).map_or(1, |l| l.1)
        }
        fn slots(&self, _run: &TestRun) -> u32 {
            1
        }
    }

    #[test]
    fn an_entry_is_built_from_the_run_with_its_stand_normalised_and_its_slots() {
        let mut run = TestRun::test(
            "demo-1",
            crate::crd::RunTemplate::test("demo")
                .stand("LocalHost:8080")
                .priority(1),
        );
        run.metadata.annotations = Some(
            [(
                crate::crd::ANNOTATION_CREATED.to_string(),
                "2026-12-06T10:00:00.000000001Z".to_string(),
            )]
            .into(),
        );
        let e = Entry::of(&run, true, &Table::default());
        assert_eq!(e.name, "demo-1");
        assert_eq!(e.stand, stand_key("LocalHost:8080"));
        assert_eq!((e.priority.get(), e.active, e.slots), (1, true, 1));
        assert_eq!(e.created, crate::crd::created(&run));
    }

    /// `(name, position)` of the waiting runs.
    fn places(adm: &Admission) -> Vec<(String, u32)> {
        adm.waiting.iter().map(|w| (w.name.clone(), w.position)).collect()
    }

    fn entry(name: &str, service: &str, stand: &str, priority: u8, t: i64, active: bool) -> Entry {
        Entry {
            name: name.into(),
            service: service.into(),
            stand: stand.into(),
            priority: Priority::new(priority).unwrap(),
            slots: 1,
            created: Utc.timestamp_opt(1_700_000_000 + t, 0).unwrap(),
            active,
        }
    }

    #[test]
    fn runs_on_a_held_stand_wait_with_its_reason_and_free_no_slot_for_it() {
        let runs = vec![
            entry("held", "demo", "s1", 1, 0, false),
            entry("other", "demo", "s2", 2, 1, false),
        ];
        let held = BTreeMap::from([(
            "s1".to_string(),
            "stand s1 looks down: DNS, 3 of 3 failures".to_string(),
        )]);
        let limits = Table(BTreeMap::from([("demo".to_string(), (5, 5))]));
        let adm = admit(&runs, &limits, &held);
        assert_eq!(adm.admitted, vec!["other"], "the other stand's run starts");
        assert_eq!(places(&adm), vec![("held".to_string(), 1)]);
        let reason = adm.waiting[0].reason.to_string();
        assert_eq!(
            reason,
            "held: stand s1 looks down: DNS, 3 of 3 failures; runs on s1 wait until its probe answers or someone resumes it"
        );
        assert_eq!(
            admit(&runs, &limits, &BTreeMap::new()).admitted,
            vec!["held", "other"]
        );
    }

    #[test]
    fn lower_priority_number_runs_first_then_older_then_name() {
        let runs = vec![
            entry("c", "demo", "s1", 2, 1, false),
            entry("a", "demo", "s1", 1, 5, false),
            entry("b", "demo", "s1", 2, 0, false),
            entry("d", "demo", "s1", 2, 1, false),
        ];
        let adm = admit(&runs, &Table::default(), &BTreeMap::new());
        assert_eq!(adm.admitted, vec!["a"]);
        assert_eq!(
            places(&adm),
            vec![("b".to_string(), 1), ("c".to_string(), 2), ("d".to_string(), 3)]
        );
    }

    #[test]
    fn each_shard_of_a_run_takes_a_slot_of_its_service_and_stand() {
        let limits = Table([("demo".to_string(), (3, 3))].into_iter().collect());
        let sharded = |name, t, active| Entry {
            slots: 2,
            ..entry(name, "demo", "s1", 2, t, active)
        };
        // One run of two shards runs; a second needs two more slots, only one is free.
        let runs = vec![
            sharded("a", 0, true),
            sharded("b", 1, false),
            entry("c", "demo", "s1", 2, 2, false),
        ];
        let adm = admit(&runs, &limits, &BTreeMap::new());
        assert!(adm.admitted.is_empty(), "{adm:?}");
        assert_eq!(
            adm.waiting[0].reason.to_string(),
            "waiting: demo runs 3 at a time"
        );
        // Asking for more shards than the limits allow is taken as the limit, never stuck.
        let greedy = vec![Entry {
            slots: 64,
            ..entry("g", "demo", "s1", 2, 0, false)
        }];
        assert_eq!(admit(&greedy, &limits, &BTreeMap::new()).admitted, vec!["g"]);
    }

    #[test]
    fn an_active_run_holds_the_service_slot() {
        let runs = vec![
            entry("r", "demo", "s1", 5, 0, true),
            entry("q", "demo", "s2", 0, 1, false),
        ];
        let adm = admit(&runs, &Table::default(), &BTreeMap::new());
        assert!(adm.admitted.is_empty());
        assert_eq!(places(&adm), vec![("q".to_string(), 1)]);
        assert_eq!(
            adm.waiting[0].reason.to_string(),
            "waiting: demo runs 1 at a time"
        );
    }

    #[test]
    fn service_concurrency_admits_several() {
        let limits = Table([("demo".to_string(), (2, 5))].into());
        let runs = vec![
            entry("a", "demo", "s1", 2, 0, false),
            entry("b", "demo", "s1", 2, 1, false),
            entry("c", "demo", "s1", 2, 2, false),
        ];
        let adm = admit(&runs, &limits, &BTreeMap::new());
        assert_eq!(adm.admitted, vec!["a", "b"]);
        assert_eq!(places(&adm), vec![("c".to_string(), 1)]);
    }

    #[test]
    fn a_busy_stand_is_shared_across_services() {
        let runs = vec![
            entry("x", "cal", "qa1", 2, 0, true),
            entry("y", "demo", "qa1", 0, 1, false),
            entry("z", "demo", "qa2", 3, 2, false),
        ];
        let adm = admit(&runs, &Table::default(), &BTreeMap::new());
        // y waits for its stand; z may use the free stand meanwhile.
        assert_eq!(adm.admitted, vec!["z"]);
        assert_eq!(places(&adm), vec![("y".to_string(), 1)]);
        assert_eq!(
            adm.waiting[0].reason,
            WaitReason::Stand {
                stand: "qa1".into(),
                limit: 1
            }
        );
    }

    #[test]
    fn global_order_decides_between_services_for_one_stand() {
        let limits = Table([("a".to_string(), (1, 1)), ("b".to_string(), (1, 1))].into());
        let runs = vec![
            entry("late", "a", "qa", 2, 10, false),
            entry("early", "b", "qa", 2, 0, false),
        ];
        assert_eq!(admit(&runs, &limits, &BTreeMap::new()).admitted, vec!["early"]);
    }

    #[test]
    fn stand_keys_ignore_scheme_path_case_and_userinfo() {
        assert_eq!(stand_key("https://QA1.example.com/mail?x=1"), "qa1.example.com");
        assert_eq!(stand_key("user@qa1.example.com"), "qa1.example.com");
        assert_eq!(stand_key("localhost:8080"), "localhost:8080");
        assert_ne!(stand_key("localhost:8080"), stand_key("localhost:8081"));
    }

    fn arb_entries() -> impl Strategy<Value = Vec<Entry>> {
        let one = (0u8..3, 0u8..4, 0u8..10, 0i64..20, proptest::bool::weighted(0.2));
        proptest::collection::vec(one, 0..60).prop_map(|v| {
            v.into_iter()
                .enumerate()
                .map(|(i, (svc, stand, prio, t, active))| {
                    entry(
                        &format!("r{i:03}"),
                        &format!("svc{svc}"),
                        &format!("stand{stand}"),
                        prio,
                        t,
                        active,
                    )
                })
                .collect()
        })
    }

    fn arb_limits() -> impl Strategy<Value = Table> {
        proptest::collection::vec((1u32..4, 1u32..3), 3).prop_map(|v| {
            Table(
                v.into_iter()
                    .enumerate()
                    .map(|(i, l)| (format!("svc{i}"), l))
                    .collect(),
            )
        })
    }

    proptest! {
        /// Every queued run is either admitted or waiting, exactly once; active runs are neither.
        #[test]
        fn every_queued_run_is_accounted_for_once(runs in arb_entries(), limits in arb_limits()) {
            let adm = admit(&runs, &limits, &BTreeMap::new());
            let mut seen = HashSet::new();
            for n in adm.admitted.iter().chain(adm.waiting.iter().map(|w| &w.name)) {
                prop_assert!(seen.insert(n.clone()), "{} appears twice", n);
            }
            let queued: HashSet<String> = runs.iter().filter(|e| !e.active).map(|e| e.name.clone()).collect();
            prop_assert_eq!(seen, queued);
        }

        /// After admission no service and no stand exceeds its limit (unless it already did).
        #[test]
        fn limits_are_never_exceeded(runs in arb_entries(), limits in arb_limits()) {
            let adm = admit(&runs, &limits, &BTreeMap::new());
            let admitted: HashSet<&str> = adm.admitted.iter().map(String::as_str).collect();
            let holding: Vec<&Entry> = runs.iter().filter(|e| e.active || admitted.contains(e.name.as_str())).collect();
            for e in &holding {
                let svc = holding.iter().filter(|o| o.service == e.service).count() as u32;
                let svc_before = runs.iter().filter(|o| o.active && o.service == e.service).count() as u32;
                prop_assert!(svc <= limits.service_concurrency(&e.service).max(svc_before));
                let newly_on_stand: Vec<&&Entry> = holding.iter().filter(|o| o.stand == e.stand && !o.active).collect();
                for n in newly_on_stand {
                    // A run admitted onto a stand saw the stand below its service's stand limit.
                    let before = holding.iter().filter(|o| o.stand == e.stand && (o.active || o.order_key() < n.order_key())).count() as u32;
                    prop_assert!(before < limits.stand_concurrency(&n.service), "{} overfilled {}", n.name, n.stand);
                }
            }
        }

        /// No waiting run could have been admitted: it is blocked by its service or its stand.
        #[test]
        fn admission_is_work_conserving(runs in arb_entries(), limits in arb_limits()) {
            let adm = admit(&runs, &limits, &BTreeMap::new());
            let admitted: HashSet<&str> = adm.admitted.iter().map(String::as_str).collect();
            let holding: Vec<&Entry> = runs.iter().filter(|e| e.active || admitted.contains(e.name.as_str())).collect();
            for Waiting { name, .. } in &adm.waiting {
                let e = runs.iter().find(|e| &e.name == name).unwrap();
                let svc = holding.iter().filter(|o| o.service == e.service).count() as u32;
                let stand = holding.iter().filter(|o| o.stand == e.stand).count() as u32;
                prop_assert!(svc >= limits.service_concurrency(&e.service) || stand >= limits.stand_concurrency(&e.service),
                    "{} waits although its service ({}) and stand ({}) have room", name, svc, stand);
            }
        }

        /// Within a service, a run is never admitted while an earlier run of the same service
        /// and stand waits (order is kept where the same resources are wanted).
        #[test]
        fn order_is_kept_per_service_and_stand(runs in arb_entries(), limits in arb_limits()) {
            let adm = admit(&runs, &limits, &BTreeMap::new());
            for Waiting { name, .. } in &adm.waiting {
                let w = runs.iter().find(|e| &e.name == name).unwrap();
                for a in &adm.admitted {
                    let a = runs.iter().find(|e| &e.name == a).unwrap();
                    if a.service == w.service && a.stand == w.stand {
                        prop_assert!(a.order_key() < w.order_key(), "{} jumped ahead of {}", a.name, w.name);
                    }
                }
            }
        }

        /// Positions in each service's queue are 1..=n in admission order.
        #[test]
        fn positions_count_up_per_service(runs in arb_entries(), limits in arb_limits()) {
            let adm = admit(&runs, &limits, &BTreeMap::new());
            let mut next: BTreeMap<String, u32> = BTreeMap::new();
            for Waiting { name, position: pos, .. } in &adm.waiting {
                let e = runs.iter().find(|e| &e.name == name).unwrap();
                let n = next.entry(e.service.clone()).or_insert(0);
                *n += 1;
                prop_assert_eq!(*n, *pos);
            }
        }
    }
}
