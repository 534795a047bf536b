//! The join against a naive reference (a HashMap per view), for random snapshots and batches
//! with missing and stale keys, composite and BYTES keys; rejections; fetched rows.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use ferroserve_features::*;
use ferroserve_tensor::DataType;
use proptest::prelude::*;

const NOW_US: i64 = 1_000;

/// user_id (INT64), card (BYTES), dense (FP32 x 3) -> x = [dense | user(4) | card(2)],
/// m = [merchant(3)]. user: max age 100 µs, default -1; card: composite key, default -2;
/// merchant: BYTES key, max age 50 µs, default -3.
fn declaration(on_missing: MissingPolicy) -> Declaration {
    Declaration {
        request_inputs: vec![
            input("user_id", DataType::Int64, 1),
            input("card", DataType::Bytes, 1),
            input("dense", DataType::Fp32, 3),
        ],
        views: vec![
            fp32_view(
                "user",
                &["user_id"],
                4,
                -1.0,
                Some(Duration::from_micros(100)),
                on_missing,
            ),
            fp32_view("card", &["user_id", "card"], 2, -2.0, None, on_missing),
            fp32_view(
                "merchant",
                &["card"],
                3,
                -3.0,
                Some(Duration::from_micros(50)),
                on_missing,
            ),
        ],
        assembly: vec![
            assemble("x", vec![req("dense"), view("user"), view("card")]),
            assemble("m", vec![view("merchant")]),
        ],
    }
}

fn model() -> ModelSignature {
    ModelSignature {
        inputs: vec![fp32_model_input("x", 9), fp32_model_input("m", 3)],
    }
}

/// One snapshot row: its key parts, values and event time.
#[derive(Debug, Clone)]
struct Row {
    user: i64,
    card: String,
    values: Vec<f32>,
    time: i64,
}

/// A view's snapshot rows (as loaded, duplicates included).
#[derive(Debug, Clone)]
struct Data {
    user: Vec<Row>,
    card: Vec<Row>,
    merchant: Vec<Row>,
}

/// A batch's rows.
#[derive(Debug, Clone)]
struct Batch {
    users: Vec<i64>,
    cards: Vec<String>,
    dense: Vec<f32>,
}

fn card_name() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["", "a", "visa", "mc\u{0}x", "amex-long-name"]).prop_map(String::from)
}

fn rows(features: usize, count: std::ops::Range<usize>) -> impl Strategy<Value = Vec<Row>> {
    prop::collection::vec(
        (
            0i64..12,
            card_name(),
            prop::collection::vec(-100.0f32..100.0, features),
            800i64..1_000,
        ),
        count,
    )
    .prop_map(|rows| {
        rows.into_iter()
            .map(|(user, card, values, time)| Row {
                user,
                card,
                values,
                time,
            })
            .collect()
    })
}

fn data() -> impl Strategy<Value = Data> {
    (rows(4, 0..30), rows(2, 0..30), rows(3, 0..10)).prop_map(|(user, card, merchant)| Data {
        user,
        card,
        merchant,
    })
}

fn batch() -> impl Strategy<Value = Batch> {
    (1usize..12).prop_flat_map(|rows| {
        (
            prop::collection::vec(0i64..16, rows),
            prop::collection::vec(prop_oneof![card_name(), Just("unknown".to_owned())], rows),
            prop::collection::vec(-10.0f32..10.0, rows * 3),
        )
            .prop_map(|(users, cards, dense)| Batch {
                users,
                cards,
                dense,
            })
    })
}

/// Builds the three tables of `data` for `plan`.
fn tables(plan: &JoinPlan, data: &Data) -> Vec<FeatureTable> {
    let build = |view: &str, rows: &[Row], keys: &[&str]| {
        let layout = plan.view_layout(view).expect("declared");
        let users: Vec<i64> = rows.iter().map(|row| row.user).collect();
        let cards = bytes_raw(
            &rows
                .iter()
                .map(|row| row.card.as_bytes())
                .collect::<Vec<_>>(),
        );
        let times: Vec<i64> = rows.iter().map(|row| row.time).collect();
        let columns: Vec<Vec<f32>> = (0..layout.features().len())
            .map(|feature| rows.iter().map(|row| row.values[feature]).collect())
            .collect();
        let mut builder = TableBuilder::new(layout).event_times_us(&times);
        for key in keys {
            let column = match *key {
                "user_id" => KeyColumn::Int64(&users),
                _ => KeyColumn::Bytes {
                    raw: &cards,
                    count: rows.len(),
                },
            };
            builder = builder.key(key, column).expect("key column");
        }
        for (slot, column) in layout.features().iter().zip(&columns) {
            builder = builder
                .feature(&slot.name, ColumnValues::Fp32(column))
                .expect("feature");
        }
        builder.build().expect("builds")
    };
    vec![
        build("user", &data.user, &["user_id"]),
        build("card", &data.card, &["user_id", "card"]),
        build("merchant", &data.merchant, &["card"]),
    ]
}

/// The reference: newest row per key (ties: the later one), HashMap lookups.
fn reference_lookup<K: std::hash::Hash + Eq>(
    rows: &[Row],
    key_of: impl Fn(&Row) -> K,
) -> HashMap<K, (Vec<f32>, i64)> {
    let mut map: HashMap<K, (Vec<f32>, i64)> = HashMap::new();
    for row in rows {
        let entry = map
            .entry(key_of(row))
            .or_insert_with(|| (row.values.clone(), row.time));
        if row.time >= entry.1 {
            *entry = (row.values.clone(), row.time);
        }
    }
    map
}

/// Expected x and m, and per view (misses, stale).
fn reference(data: &Data, batch: &Batch) -> (Vec<f32>, Vec<f32>, [(u64, u64); 3]) {
    let user = reference_lookup(&data.user, |row| row.user);
    let card = reference_lookup(&data.card, |row| (row.user, row.card.clone()));
    let merchant = reference_lookup(&data.merchant, |row| row.card.clone());
    let mut counts = [(0u64, 0u64); 3];
    let mut serve =
        |found: Option<&(Vec<f32>, i64)>, max_age: Option<i64>, width, default, view: usize| {
            match found {
                None => {
                    counts[view].0 += 1;
                    vec![default; width]
                }
                Some((_, time)) if max_age.is_some_and(|age| NOW_US - time > age) => {
                    counts[view].1 += 1;
                    vec![default; width]
                }
                Some((values, _)) => values.clone(),
            }
        };
    let mut x = Vec::new();
    let mut m = Vec::new();
    for (row, (user_id, card_name)) in batch.users.iter().zip(&batch.cards).enumerate() {
        x.extend_from_slice(&batch.dense[row * 3..row * 3 + 3]);
        x.extend(serve(user.get(user_id), Some(100), 4, -1.0, 0));
        x.extend(serve(
            card.get(&(*user_id, card_name.clone())),
            None,
            2,
            -2.0,
            1,
        ));
        m.extend(serve(merchant.get(card_name), Some(50), 3, -3.0, 2));
    }
    (x, m, counts)
}

fn request_buffers(batch: &Batch) -> [Vec<u8>; 3] {
    [
        int64_raw(&batch.users),
        bytes_raw(&batch.cards),
        fp32_raw(&batch.dense),
    ]
}

fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|value| value.to_bits()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn gather_equals_the_reference_join(data in data(), batch in batch()) {
        let plan = JoinPlan::compile(&declaration(MissingPolicy::UseDefault), &model())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let store = FeatureStore::new(plan.view_layouts());
        store.install(tables(&plan, &data)).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let rows = batch.users.len();
        let [users, cards, dense] = request_buffers(&batch);
        let mut x = vec![0u8; rows * 36];
        let mut m = vec![0u8; rows * 12];
        let snapshot = store.load();
        let rejected = plan
            .gather(&snapshot, &[&users, &cards, &dense], rows, NOW_US, &mut [&mut x, &mut m])
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(rejected.is_empty());
        let (expected_x, expected_m, counts) = reference(&data, &batch);
        prop_assert_eq!(bits(&fp32_values(&x)), bits(&expected_x));
        prop_assert_eq!(bits(&fp32_values(&m)), bits(&expected_m));
        let stats = plan.stats().snapshot();
        for (view, (misses, stale)) in stats.views.iter().zip(counts) {
            prop_assert_eq!(view.lookups, rows as u64);
            prop_assert_eq!(view.misses, misses);
            prop_assert_eq!(view.stale, stale);
            prop_assert_eq!(view.hits, rows as u64 - misses - stale);
        }
        prop_assert_eq!(stats.gathers, 1);
        prop_assert_eq!(stats.rows, rows as u64);
    }

    /// The front end's path: the same rows, fetched elsewhere, give the same model inputs.
    #[test]
    fn fetched_rows_join_like_embedded_ones(data in data(), batch in batch()) {
        let plan = JoinPlan::compile(&declaration(MissingPolicy::UseDefault), &model())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let tables = tables(&plan, &data);
        let rows = batch.users.len();
        let [users, cards, dense] = request_buffers(&batch);
        // Fetch the user view "from Redis": look each key up in its table by hand.
        let mut fetched = FetchedRows::with_capacity(tables[0].layout(), rows);
        for user in &batch.users {
            match tables[0].get(&[KeyValue::Int64(*user)]) {
                Some(row) => fetched.push_found(row.values, row.event_time_us),
                None => fetched.push_missing(),
            }
        }
        let sources = [ViewSource::Fetched(&fetched), ViewSource::Embedded(&tables[1]), ViewSource::Embedded(&tables[2])];
        let mut x = vec![0u8; rows * 36];
        let mut m = vec![0u8; rows * 12];
        plan.gather_from(&sources, &[&users, &cards, &dense], rows, NOW_US, &mut [&mut x, &mut m])
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let (expected_x, expected_m, _) = reference(&data, &batch);
        prop_assert_eq!(bits(&fp32_values(&x)), bits(&expected_x));
        prop_assert_eq!(bits(&fp32_values(&m)), bits(&expected_m));
    }

    /// Under the reject policy exactly the rows the reference serves defaults to are rejected.
    #[test]
    fn reject_policy_reports_every_defaulted_row(data in data(), batch in batch()) {
        let plan = JoinPlan::compile(&declaration(MissingPolicy::Reject), &model())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let store = FeatureStore::new(plan.view_layouts());
        store.install(tables(&plan, &data)).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let rows = batch.users.len();
        let [users, cards, dense] = request_buffers(&batch);
        let mut x = vec![0u8; rows * 36];
        let mut m = vec![0u8; rows * 12];
        let rejected = plan
            .gather(&store.load(), &[&users, &cards, &dense], rows, NOW_US, &mut [&mut x, &mut m])
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let (_, _, counts) = reference(&data, &batch);
        let expected: u64 = counts.iter().map(|(misses, stale)| misses + stale).sum();
        prop_assert_eq!(rejected.len() as u64, expected);
        let stats = plan.stats().snapshot();
        prop_assert_eq!(stats.views.iter().map(|view| view.rejected).sum::<u64>(), expected);
    }
}

/// A one-view plan for the unit tests below: user_id -> x = [user(2)].
fn user_plan(on_missing: MissingPolicy) -> (JoinPlan, FeatureStore) {
    let plan = JoinPlan::compile(
        &Declaration {
            request_inputs: vec![input("user_id", DataType::Int64, 1)],
            views: vec![fp32_view(
                "user",
                &["user_id"],
                2,
                0.5,
                Some(Duration::from_secs(60)),
                on_missing,
            )],
            assembly: vec![assemble("x", vec![view("user")])],
        },
        &ModelSignature {
            inputs: vec![fp32_model_input("x", 2)],
        },
    )
    .expect("compiles");
    let store = FeatureStore::new(plan.view_layouts());
    let table = int64_table(
        plan.view_layout("user").expect("declared"),
        &[42, 7],
        &[vec![1.0, 2.0], vec![3.0, 4.0]],
        Some(&[0, 100_000_000]),
    );
    store.install(vec![table]).expect("installs");
    (plan, store)
}

#[test]
fn rejections_name_the_key_and_the_view() {
    let (plan, store) = user_plan(MissingPolicy::Reject);
    let keys = int64_raw(&[7, 42, 9]);
    let mut x = vec![0u8; 3 * 8];
    let rejected = plan
        .gather(&store.load(), &[&keys], 3, 100_000_000, &mut [&mut x])
        .expect("buffers fit");
    let messages: Vec<(usize, String)> = rejected.iter().map(|r| (r.row, r.to_string())).collect();
    assert_eq!(
        messages,
        [
            (1, "the row for user_id=42 in feature view 'user' is 100 s old, older than the view's max age of 60 s".to_owned()),
            (2, "no row for user_id=9 in feature view 'user'".to_owned()),
        ]
    );
    // The rejected rows hold defaults; the served one its values.
    assert_eq!(fp32_values(&x), [3.0, 4.0, 0.5, 0.5, 0.5, 0.5]);
}

#[test]
fn a_view_not_loaded_is_an_error_not_defaults() {
    let (plan, _) = user_plan(MissingPolicy::UseDefault);
    let empty = FeatureStore::new(plan.view_layouts());
    let keys = int64_raw(&[7]);
    let mut x = vec![0u8; 8];
    let error = plan
        .gather(&empty.load(), &[&keys], 1, 0, &mut [&mut x])
        .expect_err("nothing loaded");
    assert_eq!(
        error.to_string(),
        "feature view 'user' has no snapshot loaded: load its features first"
    );
}

#[test]
fn malformed_buffers_are_errors_before_anything_is_written() {
    let (plan, store) = user_plan(MissingPolicy::UseDefault);
    let snapshot = store.load();
    let keys = int64_raw(&[7, 42]);
    let mut x = vec![0u8; 8];
    let error = plan
        .gather(&snapshot, &[&keys], 1, 0, &mut [&mut x])
        .expect_err("2 keys, 1 row");
    assert_eq!(
        error.to_string(),
        "request input 'user_id' has 16 bytes, expected 8 for 1 rows"
    );
    let mut short = vec![0u8; 4];
    let error = plan
        .gather(&snapshot, &[&keys], 2, 0, &mut [&mut short])
        .expect_err("x too small");
    assert_eq!(
        error.to_string(),
        "the buffer of model input 'x' has 4 bytes, expected 16"
    );
    let error = plan
        .gather(&snapshot, &[], 2, 0, &mut [&mut short])
        .expect_err("no inputs");
    assert!(matches!(
        error,
        JoinError::RequestInputCount {
            expected: 1,
            actual: 0
        }
    ));
}

#[test]
fn unavailable_fetched_rows_are_counted_apart_and_served_defaults() {
    let (plan, _) = user_plan(MissingPolicy::UseDefault);
    let layout = plan.view_layout("user").expect("declared");
    let mut fetched = FetchedRows::with_capacity(layout, 2);
    fetched.push_unavailable();
    fetched.push_found(&fp32_raw(&[8.0, 9.0]), None);
    let keys = int64_raw(&[1, 2]);
    let mut x = vec![0u8; 16];
    plan.gather_from(
        &[ViewSource::Fetched(&fetched)],
        &[&keys],
        2,
        0,
        &mut [&mut x],
    )
    .expect("fits");
    assert_eq!(fp32_values(&x), [0.5, 0.5, 8.0, 9.0]);
    let view = &plan.stats().snapshot().views[0];
    assert_eq!(
        (view.lookups, view.hits, view.unavailable, view.misses),
        (2, 1, 1, 0)
    );
    let mut one_row = FetchedRows::with_capacity(layout, 1);
    one_row.push_missing();
    let error = plan
        .gather_from(
            &[ViewSource::Fetched(&one_row)],
            &[&keys],
            2,
            0,
            &mut [&mut x],
        )
        .expect_err("1 fetched row for 2 rows");
    assert_eq!(
        error.to_string(),
        "1 fetched rows of feature view 'user' for 2 rows"
    );
}

#[test]
fn bytes_key_rejections_render_the_string() {
    let plan = JoinPlan::compile(
        &Declaration {
            request_inputs: vec![input("card", DataType::Bytes, 1)],
            views: vec![fp32_view(
                "merchant",
                &["card"],
                1,
                0.0,
                None,
                MissingPolicy::Reject,
            )],
            assembly: vec![assemble("x", vec![view("merchant")])],
        },
        &ModelSignature {
            inputs: vec![fp32_model_input("x", 1)],
        },
    )
    .expect("compiles");
    let layout = plan.view_layout("merchant").expect("declared");
    let stored = bytes_raw(&["abc"]);
    let table = TableBuilder::new(layout)
        .key(
            "card",
            KeyColumn::Bytes {
                raw: &stored,
                count: 1,
            },
        )
        .and_then(|b| b.feature("f0", ColumnValues::Fp32(&[5.0])))
        .and_then(TableBuilder::build)
        .expect("builds");
    let cards = bytes_raw(&["abc", "x\"y"]);
    let mut x = vec![0u8; 8];
    let rejected = plan
        .gather_from(
            &[ViewSource::Embedded(&table)],
            &[&cards],
            2,
            0,
            &mut [&mut x],
        )
        .expect("fits");
    assert_eq!(rejected.len(), 1);
    assert_eq!(
        rejected[0].to_string(),
        r#"no row for card="x\"y" in feature view 'merchant'"#
    );
    assert_eq!(fp32_values(&x), [5.0, 0.0]);
    let error = plan
        .gather_from(
            &[ViewSource::Embedded(&table)],
            &[&cards],
            3,
            0,
            &mut [&mut [0u8; 12]],
        )
        .expect_err("2 elements for 3 rows");
    assert!(
        error
            .to_string()
            .starts_with("request input 'card' is not 3 raw BYTES elements")
    );
}

#[test]
fn each_gather_records_one_lookup_latency_per_view() {
    let (plan, store) = user_plan(MissingPolicy::UseDefault);
    let keys = int64_raw(&[7, 42]);
    let mut x = vec![0u8; 16];
    for _ in 0..3 {
        plan.gather(&store.load(), &[&keys], 2, 0, &mut [&mut x])
            .expect("fits");
    }
    let stats = plan.stats().snapshot();
    let latency = &stats.views[0].latency;
    assert_eq!(latency.counts.len(), LOOKUP_BOUNDS_NS.len() + 1);
    assert_eq!(latency.count(), 3);
    // The view's part of each gather: no longer than the whole gather.
    assert!(
        latency.sum_ns <= stats.gather_ns,
        "{latency:?} vs {stats:?}"
    );

    // A fetched view's latency is the fetch time its fetcher reported, as is.
    let layout = plan.view_layout("user").expect("declared");
    let mut fetched = FetchedRows::with_capacity(layout, 2);
    fetched.push_missing();
    fetched.push_missing();
    fetched.set_fetch_time(Duration::from_micros(300));
    plan.gather_from(
        &[ViewSource::Fetched(&fetched)],
        &[&keys],
        2,
        0,
        &mut [&mut x],
    )
    .expect("fits");
    let latency = plan.stats().snapshot().views[0].latency.clone();
    assert_eq!(latency.count(), 4);
    let bucket = LOOKUP_BOUNDS_NS.partition_point(|&bound| bound < 300_000);
    assert_eq!(latency.counts[bucket], 1, "{latency:?}");

    // Rows whose fetcher did not say how long it took add no latency.
    let mut silent = FetchedRows::with_capacity(layout, 2);
    silent.push_missing();
    silent.push_missing();
    plan.gather_from(
        &[ViewSource::Fetched(&silent)],
        &[&keys],
        2,
        0,
        &mut [&mut x],
    )
    .expect("fits");
    let view = &plan.stats().snapshot().views[0];
    assert_eq!((view.lookups, view.latency.count()), (10, 4));
}
