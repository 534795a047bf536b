//! Fetch latency from a loopback redis-server (started here, like the tests): 64 keys x 32 FP32
//! features in one pipelined call, decoded into `FetchedRows`, on a current-thread tokio runtime
//! (the front end's default: one thread). Prints p50 / p90 / p99 / max over 1000 calls, one
//! caller at a time and 16 callers at once (the perf_analyzer concurrency), plus one key
//! per call, to size the "Redis >= 60% of the throughput, p99 <= 5 ms" end-to-end target,
//! and how many calls shared each round trip (the store coalesces concurrent calls).
//! Not a criterion bench: criterion reports central values, this sizing needs tail latencies.
//!
//! `cargo bench -p ferroserve-feast --bench fetch`. Figures in docs/features.md.

#![allow(missing_docs, clippy::unwrap_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::rc::Rc;
use std::time::{Duration, Instant};

use ferroserve_feast::{
    FeastNames, FeastProject, FeastView, FeatureRow, RedisStore, RedisStoreConfig,
};
use ferroserve_features::{KeyValue, MissingPolicy};
use ferroserve_tensor::DataType;
use support::{OneView, RedisServer, fp32_row, hmget_stat, reset_command_stats};

const KEYS: usize = 64;
const FEATURES: usize = 32;
const CALLS: usize = 1000;
/// Keys in the store: the keys of a call are spread over them.
const STORED: i64 = 10_000;

fn main() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(&server));
}

async fn run(server: &RedisServer) {
    let names: Vec<String> = (0..FEATURES)
        .map(|index| format!("feature_{index}"))
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let one = OneView::new(
        "user",
        DataType::Fp32,
        &names,
        None,
        MissingPolicy::UseDefault,
    );
    let view = Rc::new(
        FeastView::new(
            one.layout(),
            &FeastProject::new("bench"),
            &FeastNames::default(),
        )
        .unwrap(),
    );
    let store = Rc::new(
        RedisStore::new(&RedisStoreConfig {
            url: server.url(),
            timeout: Duration::from_secs(1),
        })
        .unwrap(),
    );
    let values: Vec<Vec<u8>> = (0..STORED)
        .map(|key| {
            fp32_row(
                &(0..FEATURES)
                    .map(|feature| (key as f32) + feature as f32 / 100.0)
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    let keys: Vec<[KeyValue<'_>; 1]> = (0..STORED).map(|key| [KeyValue::Int64(key)]).collect();
    let rows: Vec<FeatureRow<'_>> = (0..STORED as usize)
        .map(|index| FeatureRow {
            key: &keys[index],
            values: &values[index],
            event_time_us: 0,
        })
        .collect();
    store.write(&view, &rows).await.unwrap();

    println!(
        "fetch from a loopback redis-server, {FEATURES} FP32 features per key, {CALLS} calls each"
    );
    println!(
        "{:<28} {:>9} {:>9} {:>9} {:>9} {:>12} {:>14}",
        "case", "p50 µs", "p90 µs", "p99 µs", "max µs", "calls/s", "calls/round trip"
    );
    for (label, keys_per_call, callers) in [
        ("64 keys, 1 caller", KEYS, 1),
        ("64 keys, 16 callers", KEYS, 16),
        ("1 key, 1 caller", 1, 1),
        ("1 key, 16 callers", 1, 16),
    ] {
        // Warm-up: connect, fill the allocator's caches.
        measure(&store, &view, keys_per_call, 1, 100).await;
        let before = store.stats();
        let (mut latencies, elapsed) = measure(&store, &view, keys_per_call, callers, CALLS).await;
        let after = store.stats();
        let coalesced =
            (after.calls - before.calls) as f64 / (after.round_trips - before.round_trips) as f64;
        latencies.sort_unstable();
        let at = |quantile: f64| {
            latencies[((latencies.len() as f64 * quantile) as usize).min(latencies.len() - 1)]
                .as_secs_f64()
                * 1e6
        };
        println!(
            "{label:<28} {:>9.0} {:>9.0} {:>9.0} {:>9.0} {:>12.0} {:>14.1}",
            at(0.50),
            at(0.90),
            at(0.99),
            at(1.0),
            CALLS as f64 / elapsed.as_secs_f64(),
            coalesced
        );
    }
    // The same pipeline through redis-rs alone (no key building, no decoding), and Redis's own
    // time per HMGET: where a call's time goes.
    let mut connection = server.raw().await;
    reset_command_stats(&mut connection).await;
    let mut latencies = Vec::with_capacity(CALLS);
    for call in 0..CALLS {
        let mut pipe = redis::pipe();
        for index in 0..KEYS {
            let mut key = Vec::new();
            view.redis_key(
                &[KeyValue::Int64(
                    ((call * 131 + index * 157) as i64) % STORED,
                )],
                &mut key,
            );
            pipe.cmd("HMGET").arg(key).arg(view.fields());
        }
        let started = Instant::now();
        let answers: Vec<redis::Value> = pipe.query_async(&mut connection).await.unwrap();
        latencies.push(started.elapsed());
        std::hint::black_box(answers);
    }
    latencies.sort_unstable();
    let per_call = hmget_stat(&mut connection, "usec_per_call")
        .await
        .unwrap_or_else(|| "?".to_owned());
    println!(
        "{:<28} {:>9.0} {:>9.0} {:>9.0} {:>9.0}",
        "64 keys, redis-rs only",
        latencies[CALLS / 2].as_secs_f64() * 1e6,
        latencies[CALLS * 9 / 10].as_secs_f64() * 1e6,
        latencies[CALLS * 99 / 100].as_secs_f64() * 1e6,
        latencies[CALLS - 1].as_secs_f64() * 1e6,
    );
    println!(
        "redis-server's own time per HMGET of {} fields: {per_call} µs",
        FEATURES + 1
    );
    let stats = store.stats();
    assert_eq!(
        stats.unavailable + stats.missing + stats.bad_rows,
        0,
        "{stats:?}"
    );
}

/// `calls` fetches of `keys_per_call` keys by `callers` concurrent callers: each call's latency
/// and the wall time of all.
async fn measure(
    store: &Rc<RedisStore>,
    view: &Rc<FeastView>,
    keys_per_call: usize,
    callers: usize,
    calls: usize,
) -> (Vec<Duration>, Duration) {
    let started = Instant::now();
    let tasks = tokio::task::LocalSet::new();
    let mut handles = Vec::new();
    for caller in 0..callers {
        let (store, view) = (Rc::clone(store), Rc::clone(view));
        let share = calls / callers + usize::from(caller < calls % callers);
        handles.push(tasks.spawn_local(async move {
            let mut latencies = Vec::with_capacity(share);
            for call in 0..share {
                // Spread over the store: a call's keys are not neighbours.
                let keys: Vec<u8> = (0..keys_per_call)
                    .map(|index| ((caller * 7919 + call * 131 + index * 157) as i64) % STORED)
                    .flat_map(|key| key.to_le_bytes())
                    .collect();
                let started = Instant::now();
                let rows = store.fetch(&view, &[&keys], keys_per_call).await.unwrap();
                latencies.push(started.elapsed());
                std::hint::black_box(rows);
            }
            latencies
        }));
    }
    let latencies = tasks
        .run_until(async {
            let mut all = Vec::with_capacity(calls);
            for handle in handles {
                all.extend(handle.await.unwrap());
            }
            all
        })
        .await;
    (latencies, started.elapsed())
}
