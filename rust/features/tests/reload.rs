//! Hot reload while gathering: every batch comes wholly from one snapshot.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use common::*;
use ferroserve_features::*;
use ferroserve_tensor::DataType;

const KEYS: i64 = 256;
const FEATURES: usize = 16;
const ROWS: usize = 64;

/// Snapshot `n` holds value `n` in every cell of every key.
fn snapshot_table(layout: &ViewLayout, n: u32) -> FeatureTable {
    let keys: Vec<i64> = (0..KEYS).collect();
    let values = vec![vec![n as f32; FEATURES]; KEYS as usize];
    int64_table(layout, &keys, &values, None)
}

#[test]
fn every_batch_comes_wholly_from_one_snapshot() {
    let plan = Arc::new(
        JoinPlan::compile(
            &Declaration {
                request_inputs: vec![input("user_id", DataType::Int64, 1)],
                views: vec![fp32_view(
                    "user",
                    &["user_id"],
                    FEATURES,
                    -1.0,
                    None,
                    MissingPolicy::UseDefault,
                )],
                assembly: vec![assemble("x", vec![view("user")])],
            },
            &ModelSignature {
                inputs: vec![fp32_model_input("x", FEATURES as i64)],
            },
        )
        .expect("compiles"),
    );
    let layout = plan.view_layout("user").expect("declared").clone();
    let store = Arc::new(FeatureStore::new(plan.view_layouts()));
    store
        .install(vec![snapshot_table(&layout, 0)])
        .expect("installs");
    let done = Arc::new(AtomicBool::new(false));

    let gatherers: Vec<_> = (0..3)
        .map(|worker| {
            let (plan, store, done) = (Arc::clone(&plan), Arc::clone(&store), Arc::clone(&done));
            thread::spawn(move || {
                let keys: Vec<i64> = (0..ROWS as i64)
                    .map(|row| (row * 7 + worker) % KEYS)
                    .collect();
                let keys = int64_raw(&keys);
                let mut x = vec![0u8; ROWS * FEATURES * 4];
                let mut batches = 0u64;
                let mut last_seen = 0.0f32;
                while !done.load(Ordering::Relaxed) || batches < 100 {
                    let snapshot = store.load();
                    plan.gather(&snapshot, &[&keys], ROWS, 0, &mut [&mut x])
                        .expect("fits");
                    let values = fp32_values(&x);
                    let first = values[0];
                    assert!(
                        values.iter().all(|&value| value == first),
                        "batch mixes snapshots: {values:?}"
                    );
                    assert!(
                        first >= last_seen,
                        "snapshots went backwards: {first} after {last_seen}"
                    );
                    last_seen = first;
                    batches += 1;
                }
                batches
            })
        })
        .collect();

    for n in 1..=200 {
        assert_eq!(
            store.install(vec![snapshot_table(&layout, n)]),
            Ok(u64::from(n) + 1)
        );
    }
    done.store(true, Ordering::Relaxed);
    for gatherer in gatherers {
        assert!(gatherer.join().expect("gatherer ran") >= 100);
    }
    let stats = plan.stats().snapshot();
    assert_eq!(stats.views[0].misses, 0);
    assert_eq!(stats.views[0].hits, stats.rows);
}
