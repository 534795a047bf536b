//! The reader and writer against a real `redis-server` started by each test on a free loopback
//! port (skipped, saying why, when the binary is absent): round trip, missing keys, values of
//! the wrong type, event-time freshness, a frozen server (timeout) and a killed one (errors,
//! then recovery after restart), 64 keys in one pipelined call, and concurrent calls coalesced
//! into shared round trips (each call its own rows; frozen: each call times out).

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use ferroserve_feast::{
    EntityValueType, FailureKind, FeastNames, FeastProject, FeastValue, FeastView, FeatureRow,
    JoinKey, RedisStore, RedisStoreConfig, StoreStatsSnapshot, Written, encode_timestamp,
    feature_field,
};
use ferroserve_features::{KeyValue, MissingPolicy, unix_micros_now};
use ferroserve_tensor::DataType;
use support::{OneView, RedisServer, fp32_row, hmget_stat, reset_command_stats};

/// The tests' store timeout: short, so the frozen-server test is quick.
const TIMEOUT: Duration = Duration::from_millis(200);

fn store(server: &RedisServer) -> RedisStore {
    RedisStore::new(&RedisStoreConfig {
        url: server.url(),
        timeout: TIMEOUT,
    })
    .unwrap()
}

fn feast_view(one: &OneView, project: &str) -> FeastView {
    FeastView::new(
        one.layout(),
        &FeastProject::new(project),
        &FeastNames::default(),
    )
    .unwrap()
}

/// Writes FP32 rows `(key, values, event time)`.
async fn write(store: &RedisStore, view: &FeastView, rows: &[(i64, &[f32], i64)]) -> Written {
    let keys: Vec<[KeyValue<'_>; 1]> = rows
        .iter()
        .map(|(key, _, _)| [KeyValue::Int64(*key)])
        .collect();
    let values: Vec<Vec<u8>> = rows.iter().map(|(_, values, _)| fp32_row(values)).collect();
    let rows: Vec<FeatureRow<'_>> = rows
        .iter()
        .enumerate()
        .map(|(index, (_, _, time))| FeatureRow {
            key: &keys[index],
            values: &values[index],
            event_time_us: *time,
        })
        .collect();
    store.write(view, &rows).await.unwrap()
}

async fn fetch(
    store: &RedisStore,
    view: &FeastView,
    keys: &[i64],
) -> ferroserve_features::FetchedRows {
    let bytes: Vec<u8> = keys.iter().flat_map(|key| key.to_le_bytes()).collect();
    store.fetch(view, &[&bytes], keys.len()).await.unwrap()
}

/// HMGETs redis-server ran since its counters were last reset (`INFO commandstats`).
async fn hmget_calls(connection: &mut redis::aio::MultiplexedConnection) -> usize {
    hmget_stat(connection, "calls")
        .await
        .and_then(|calls| calls.parse().ok())
        .expect("an HMGET count in INFO commandstats")
}

/// View `user` of one FP32 feature `age`, no max age, defaults for missing rows.
fn user_age() -> OneView {
    OneView::new(
        "user",
        DataType::Fp32,
        &["age"],
        None,
        MissingPolicy::UseDefault,
    )
}

#[tokio::test]
async fn round_trip_writer_to_reader_and_missing_keys() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let one = OneView::new(
        "user",
        DataType::Fp32,
        &["age", "spend", "visits"],
        None,
        MissingPolicy::UseDefault,
    );
    let view = feast_view(&one, "fraud");
    let store = store(&server);
    let now = unix_micros_now();
    write(
        &store,
        &view,
        &[
            (7, &[30.0, 1.5, 3.0], now),
            (8, &[40.0, -2.25, 0.0], now),
            (-9, &[0.5, 0.0, 1e9], now),
        ],
    )
    .await;

    let keys = [8, 12345, 7, -9];
    let rows = fetch(&store, &view, &keys).await;
    let (values, rejected) = one.serve(&keys, &rows, now);
    assert_eq!(rejected, 0);
    assert_eq!(
        values,
        [
            vec![40.0, -2.25, 0.0],
            vec![-1.0, -1.0, -1.0],
            vec![30.0, 1.5, 3.0],
            vec![0.5, 0.0, 1e9]
        ]
    );
    let counters = one.counters();
    assert_eq!(
        (
            counters.hits,
            counters.misses,
            counters.stale,
            counters.unavailable
        ),
        (3, 1, 0, 0)
    );
    let stats = store.stats();
    assert_eq!(stats.connected(), Some(true));
    assert!(stats.last_answer_us.is_some());
    assert_eq!(
        StoreStatsSnapshot {
            last_answer_us: None,
            ..stats
        },
        StoreStatsSnapshot {
            calls: 1,
            round_trips: 1,
            rows: 4,
            found: 3,
            missing: 1,
            ..StoreStatsSnapshot::default()
        }
    );

    // Another project's keys are other Redis keys.
    let other = feast_view(&one, "other");
    let rows = fetch(&store, &other, &[7]).await;
    assert_eq!(one.serve(&[7], &rows, now).0, [vec![-1.0, -1.0, -1.0]]);
}

#[tokio::test]
async fn rows_with_one_key_keep_the_newest_and_a_down_server_fails_the_write() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let one = user_age();
    let view = feast_view(&one, "fraud");
    let store = store(&server);
    let written = write(
        &store,
        &view,
        &[
            (7, &[1.0], 20),
            (8, &[2.0], 5),
            (7, &[3.0], 10),
            (7, &[4.0], 20),
        ],
    )
    .await;
    // Key 7: 4.0 is as new as 1.0 and later; 3.0 is older.
    assert_eq!(
        written,
        Written {
            rows: 2,
            duplicate_keys: 2
        }
    );
    let rows = fetch(&store, &view, &[7, 8]).await;
    assert_eq!(one.serve(&[7, 8], &rows, 30).0, [vec![4.0], vec![2.0]]);

    server.stop();
    let row = FeatureRow {
        key: &[KeyValue::Int64(9)],
        values: &fp32_row(&[9.0]),
        event_time_us: 0,
    };
    let error = store.write(&view, &[row]).await.expect_err("redis is down");
    assert!(
        error.to_string().starts_with("writing to Redis failed"),
        "{error}"
    );
}

#[tokio::test]
async fn feast_names_and_an_int32_join_key() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let one = user_age();
    // The request's INT64 key `id` is Feast's Int32 entity `small`.
    let names = FeastNames {
        view: Some("user_v2".into()),
        features: Some(vec!["age_days".into()]),
        join_keys: Some(vec![JoinKey {
            name: "small".into(),
            value_type: EntityValueType::Int32,
        }]),
    };
    let view = FeastView::new(one.layout(), &FeastProject::new("p"), &names).unwrap();
    assert_eq!(view.fields()[0], feature_field("user_v2", "age_days"));
    assert_eq!(view.fields()[1], b"_ts:user_v2");
    let store = store(&server);
    write(&store, &view, &[(-3, &[2.0], 0)]).await;
    // 1 << 40 cannot be an Int32 entity: missing without asking Redis.
    let keys = [-3, 1 << 40];
    let rows = fetch(&store, &view, &keys).await;
    assert_eq!(one.serve(&keys, &rows, 0).0, [vec![2.0], vec![-1.0]]);
    assert_eq!(store.stats().missing, 1);
    // A key that Int32 cannot hold is refused by the writer.
    let key = [KeyValue::Int64(1 << 40)];
    let values = fp32_row(&[1.0]);
    let row = FeatureRow {
        key: &key,
        values: &values,
        event_time_us: 0,
    };
    assert!(store.write(&view, &[row]).await.is_err());
}

#[tokio::test]
async fn values_of_the_wrong_type_serve_their_row_as_missing() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let one = OneView::new(
        "v",
        DataType::Fp64,
        &["a", "b"],
        None,
        MissingPolicy::UseDefault,
    );
    let view = feast_view(&one, "p");
    let store = store(&server);
    let mut connection = server.raw().await;
    let key = |id: i64| {
        let mut key = Vec::new();
        assert!(view.redis_key(&[KeyValue::Int64(id)], &mut key));
        key
    };
    let value = |value: FeastValue| {
        let mut bytes = Vec::new();
        value.encode(&mut bytes);
        bytes
    };
    let (field_a, field_b) = (
        feature_field("v", "a").to_vec(),
        feature_field("v", "b").to_vec(),
    );
    let hset = |key: Vec<u8>, a: Vec<u8>, b: Option<Vec<u8>>| {
        let mut command = redis::cmd("HSET");
        command.arg(key).arg(&field_a).arg(a);
        if let Some(b) = b {
            command.arg(&field_b).arg(b);
        }
        command
    };
    let commands = [
        // 1: double and float (widened exactly): served.
        hset(
            key(1),
            value(FeastValue::Double(0.25)),
            Some(value(FeastValue::Float(0.5))),
        ),
        // 2: int32 into FP64 is exact: served; b absent: its default (null counted).
        hset(key(2), value(FeastValue::Int32(-4)), None),
        // 3: int64 into FP64 is not accepted: bad row.
        hset(
            key(3),
            value(FeastValue::Int64(5)),
            Some(value(FeastValue::Double(1.0))),
        ),
        // 4: a string_val: bad row.
        hset(
            key(4),
            b"\x12\x01x".to_vec(),
            Some(value(FeastValue::Double(1.0))),
        ),
        // 5: not a protobuf: bad row.
        hset(key(5), b"\xff\xff".to_vec(), None),
        // 6: Feast's null (empty message) for a, b present: a's default.
        hset(key(6), Vec::new(), Some(value(FeastValue::Double(7.0)))),
    ];
    for command in commands {
        command.query_async::<()>(&mut connection).await.unwrap();
    }
    // 7: a key that is not a hash (WRONGTYPE for its HMGET only): bad row.
    redis::cmd("SET")
        .arg(key(7))
        .arg("x")
        .query_async::<()>(&mut connection)
        .await
        .unwrap();

    let keys = [1, 2, 3, 4, 5, 6, 7, 8];
    let rows = fetch(&store, &view, &keys).await;
    let (values, _) = one.serve(&keys, &rows, 0);
    assert_eq!(
        values,
        [
            vec![0.25, 0.5],
            vec![-4.0, -1.0],
            vec![-1.0, -1.0],
            vec![-1.0, -1.0],
            vec![-1.0, -1.0],
            vec![-1.0, 7.0],
            vec![-1.0, -1.0],
            vec![-1.0, -1.0],
        ]
    );
    let stats = store.stats();
    assert_eq!(
        (
            stats.found,
            stats.bad_rows,
            stats.missing,
            stats.null_values
        ),
        (3, 4, 1, 2),
        "{stats:?}"
    );

    // Under REJECT a row with a null feature is missing, so it is rejected.
    let strict = OneView::new(
        "v",
        DataType::Fp64,
        &["a", "b"],
        None,
        MissingPolicy::Reject,
    );
    let strict_view = feast_view(&strict, "p");
    let rows = fetch(&store, &strict_view, &[1, 2]).await;
    let (_, rejected) = strict.serve(&[1, 2], &rows, 0);
    assert_eq!(rejected, 1);
}

#[tokio::test]
async fn event_times_make_rows_stale_after_the_max_age() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let one = OneView::new(
        "user",
        DataType::Fp32,
        &["age"],
        Some(Duration::from_secs(60)),
        MissingPolicy::UseDefault,
    );
    let view = feast_view(&one, "p");
    let store = store(&server);
    let now = unix_micros_now();
    write(
        &store,
        &view,
        &[
            (1, &[10.0], now - 10_000_000),
            (2, &[20.0], now - 3_600_000_000),
        ],
    )
    .await;
    // 3: features without `_ts` (not written by Feast): no event time, never stale.
    let mut key = Vec::new();
    assert!(view.redis_key(&[KeyValue::Int64(3)], &mut key));
    let mut value = Vec::new();
    FeastValue::Float(30.0).encode(&mut value);
    redis::cmd("HSET")
        .arg(key)
        .arg(feature_field("user", "age").as_slice())
        .arg(value)
        .query_async::<()>(&mut server.raw().await)
        .await
        .unwrap();

    let keys = [1, 2, 3];
    let rows = fetch(&store, &view, &keys).await;
    let (values, _) = one.serve(&keys, &rows, now);
    assert_eq!(values, [vec![10.0], vec![-1.0], vec![30.0]]);
    let counters = one.counters();
    assert_eq!((counters.hits, counters.stale), (2, 1));
    // The stored timestamp is Feast's Timestamp message.
    let stored: Vec<u8> = redis::cmd("HGET")
        .arg({
            let mut key = Vec::new();
            view.redis_key(&[KeyValue::Int64(1)], &mut key);
            key
        })
        .arg("_ts:user")
        .query_async(&mut server.raw().await)
        .await
        .unwrap();
    let mut expected = Vec::new();
    encode_timestamp(now - 10_000_000, &mut expected);
    assert_eq!(stored, expected);
}

#[tokio::test]
async fn a_frozen_server_times_out_into_unavailable_rows_then_recovers() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let one = user_age();
    let view = feast_view(&one, "p");
    let store = store(&server);
    write(&store, &view, &[(1, &[10.0], 0)]).await;
    assert_eq!(
        one.serve(&[1, 2], &fetch(&store, &view, &[1, 2]).await, 0)
            .0,
        [vec![10.0], vec![-1.0]]
    );

    server.signal("-STOP");
    let started = std::time::Instant::now();
    let rows = fetch(&store, &view, &[1, 2]).await;
    let waited = started.elapsed();
    assert!(waited >= TIMEOUT && waited < TIMEOUT * 5, "{waited:?}");
    assert_eq!(one.serve(&[1, 2], &rows, 0).0, [vec![-1.0], vec![-1.0]]);
    assert_eq!(one.counters().unavailable, 2);
    let stats = store.stats();
    assert_eq!((stats.timeouts, stats.unavailable, stats.errors), (1, 2, 0));
    assert_eq!(stats.connected(), Some(false));
    let failure = stats.last_failure.expect("the timeout is the last failure");
    assert_eq!(failure.kind, FailureKind::Timeout);
    assert_eq!(failure.message, "no answer within 200 ms");
    // The fetch time the join records as the view's latency: the wait for the timeout.
    assert!(rows.fetch_time().expect("timed") >= TIMEOUT, "{rows:?}");

    server.signal("-CONT");
    let rows = fetch(&store, &view, &[1]).await;
    assert_eq!(one.serve(&[1], &rows, 0).0, [vec![10.0]]);
    assert_eq!(store.stats().connected(), Some(true));
}

#[tokio::test]
async fn a_killed_server_gives_unavailable_rows_and_recovery_after_restart() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let one = user_age();
    let view = feast_view(&one, "p");
    let store = store(&server);
    write(&store, &view, &[(1, &[10.0], 0)]).await;
    assert_eq!(
        one.serve(&[1], &fetch(&store, &view, &[1]).await, 0).0,
        [vec![10.0]]
    );

    server.stop();
    for _ in 0..3 {
        let rows = fetch(&store, &view, &[1]).await;
        assert_eq!(one.serve(&[1], &rows, 0).0, [vec![-1.0]]);
    }
    let stats = store.stats();
    assert_eq!(stats.unavailable, 3);
    assert!(stats.errors + stats.timeouts >= 3, "{stats:?}");
    assert!(stats.errors >= 1, "{stats:?}");
    // A dead server is a connection failure, never a protocol one.
    assert_eq!(
        (stats.connection_errors, stats.protocol_errors),
        (stats.errors, 0),
        "{stats:?}"
    );
    assert_eq!(stats.connected(), Some(false));
    assert!(
        stats
            .last_failure
            .is_some_and(|failure| !failure.message.is_empty())
    );

    // Back (empty: no persistence). The store reconnects by itself within about a second.
    server.restart();
    let started = std::time::Instant::now();
    loop {
        let rows = fetch(&store, &view, &[1]).await;
        one.serve(&[1], &rows, 0);
        if store.stats().missing == 1 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no recovery: {:?}",
            store.stats()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("recovered {:?} after the restart", started.elapsed());
    assert_eq!(store.stats().connected(), Some(true));
    write(&store, &view, &[(1, &[11.0], 0)]).await;
    assert_eq!(
        one.serve(&[1], &fetch(&store, &view, &[1]).await, 0).0,
        [vec![11.0]]
    );
}

#[tokio::test]
async fn sixty_four_keys_in_one_pipelined_call() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let names: Vec<String> = (0..32).map(|index| format!("f{index}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let one = OneView::new(
        "wide",
        DataType::Fp32,
        &names,
        None,
        MissingPolicy::UseDefault,
    );
    let view = feast_view(&one, "p");
    let store = store(&server);
    let rows: Vec<(i64, Vec<f32>)> = (0..64)
        .map(|key| {
            (
                key,
                (0..32)
                    .map(|feature| (key * 100 + feature) as f32)
                    .collect(),
            )
        })
        .collect();
    let write_rows: Vec<(i64, &[f32], i64)> = rows
        .iter()
        .map(|(key, values)| (*key, values.as_slice(), 0))
        .collect();
    write(&store, &view, &write_rows).await;

    let mut connection = server.raw().await;
    reset_command_stats(&mut connection).await;
    let keys: Vec<i64> = (0..64).rev().collect();
    let fetched = fetch(&store, &view, &keys).await;
    let (values, _) = one.serve(&keys, &fetched, 0);
    for (key, row) in keys.iter().zip(&values) {
        let expected: Vec<f64> = (0..32)
            .map(|feature| (key * 100 + feature) as f64)
            .collect();
        assert_eq!(row, &expected);
    }
    assert_eq!(store.stats().calls, 1);
    // One HMGET per key, each asking for 32 fields + `_ts`, all in the one call.
    assert_eq!(hmget_calls(&mut connection).await, 64);
}

/// Fetches `keys` of `view` from 16 concurrent tasks; each task's rows, in task order.
async fn fetch_concurrently(
    store: &Arc<RedisStore>,
    view: &Arc<FeastView>,
    calls: &[Vec<i64>],
) -> Vec<ferroserve_features::FetchedRows> {
    let mut tasks = tokio::task::JoinSet::new();
    for (index, keys) in calls.iter().enumerate() {
        let (store, view, keys) = (Arc::clone(store), Arc::clone(view), keys.clone());
        tasks.spawn(async move { (index, fetch(&store, &view, &keys).await) });
    }
    let mut rows: Vec<_> = tasks.join_all().await;
    rows.sort_by_key(|(index, _)| *index);
    rows.into_iter().map(|(_, rows)| rows).collect()
}

#[tokio::test]
async fn concurrent_calls_share_round_trips_and_each_gets_its_own_rows() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let one = OneView::new(
        "user",
        DataType::Fp32,
        &["age", "spend"],
        None,
        MissingPolicy::UseDefault,
    );
    let view = Arc::new(feast_view(&one, "p"));
    let store = Arc::new(store(&server));
    let stored: Vec<(i64, Vec<f32>)> = (0..20)
        .map(|key| (key, vec![key as f32, -(key as f32)]))
        .collect();
    let rows: Vec<(i64, &[f32], i64)> = stored
        .iter()
        .map(|(key, values)| (*key, values.as_slice(), 0))
        .collect();
    write(&store, &view, &rows).await;
    let mut connection = server.raw().await;
    reset_command_stats(&mut connection).await;

    // 16 calls of 1-3 keys; keys 0-3 recur across calls, 100+ are missing.
    let calls: Vec<Vec<i64>> = (0..16)
        .map(|call| match call % 4 {
            0 => vec![call % 3],
            1 => vec![call, 100 + call],
            2 => vec![2, call, 3],
            _ => vec![call % 3, call],
        })
        .collect();
    let fetched = fetch_concurrently(&store, &view, &calls).await;
    for (keys, rows) in calls.iter().zip(&fetched) {
        let expected: Vec<Vec<f64>> = keys
            .iter()
            .map(|&key| {
                if key < 20 {
                    vec![key as f64, -(key as f64)]
                } else {
                    vec![-1.0, -1.0]
                }
            })
            .collect();
        assert_eq!(one.serve(keys, rows, 0).0, expected, "call {keys:?}");
    }
    let stats = store.stats();
    assert_eq!(stats.calls, 16);
    let asked: usize = calls.iter().map(Vec::len).sum();
    assert_eq!(stats.rows, asked as u64);
    assert!(
        stats.round_trips < stats.calls,
        "the calls queued together were not coalesced: {stats:?}"
    );
    // A key asked by several calls of one round trip is one HMGET.
    let hmgets = hmget_calls(&mut connection).await;
    let distinct: std::collections::HashSet<i64> = calls.iter().flatten().copied().collect();
    assert!(hmgets < asked, "{hmgets} HMGETs for {asked} keys");
    if stats.round_trips == 1 {
        assert_eq!(hmgets, distinct.len());
    }
}

#[tokio::test]
async fn concurrent_calls_to_a_frozen_server_each_time_out_then_recover() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let one = user_age();
    let view = Arc::new(feast_view(&one, "p"));
    let store = Arc::new(store(&server));
    write(&store, &view, &[(1, &[10.0], 0)]).await;

    server.signal("-STOP");
    let started = std::time::Instant::now();
    let calls: Vec<Vec<i64>> = (0..6).map(|call| vec![1, call]).collect();
    let fetched = fetch_concurrently(&store, &view, &calls).await;
    let waited = started.elapsed();
    assert!(waited >= TIMEOUT && waited < TIMEOUT * 5, "{waited:?}");
    for (keys, rows) in calls.iter().zip(&fetched) {
        assert_eq!(one.serve(keys, rows, 0).0, [vec![-1.0], vec![-1.0]]);
    }
    let stats = store.stats();
    assert_eq!((stats.calls, stats.timeouts, stats.unavailable), (6, 6, 12));

    // Queued behind a round trip that Redis never answered: still one timeout, no longer.
    server.signal("-CONT");
    let rows = fetch(&store, &view, &[1]).await;
    assert_eq!(one.serve(&[1], &rows, 0).0, [vec![10.0]]);
    assert_eq!(store.stats().connected(), Some(true));
}
