//! Snapshot tables built from columns: errors, duplicate keys, memory, key kinds.

mod common;

use std::time::Duration;

use common::*;
use ferroserve_features::*;
use ferroserve_tensor::DataType;

fn plan_for(views: Vec<FeatureView>, request_inputs: Vec<RequestInput>) -> JoinPlan {
    let assembly = views
        .iter()
        .map(|v| assemble(&v.name, vec![view(&v.name)]))
        .collect();
    let inputs = views
        .iter()
        .map(|v| fp32_model_input(&v.name, v.features.len() as i64))
        .collect();
    JoinPlan::compile(
        &Declaration {
            request_inputs,
            views,
            assembly,
        },
        &ModelSignature { inputs },
    )
    .expect("compiles")
}

fn user_plan(max_age: Option<Duration>) -> JoinPlan {
    plan_for(
        vec![fp32_view(
            "user",
            &["user_id"],
            2,
            0.0,
            max_age,
            MissingPolicy::UseDefault,
        )],
        vec![input("user_id", DataType::Int64, 1)],
    )
}

#[test]
fn build_errors_name_the_column() {
    let plan = user_plan(None);
    let layout = plan.view_layout("user").expect("declared");
    let short = TableBuilder::new(layout)
        .key("user_id", KeyColumn::Int64(&[1, 2, 3]))
        .and_then(|b| b.feature("f0", ColumnValues::Fp32(&[1.0, 2.0, 3.0])))
        .and_then(|b| b.feature("f1", ColumnValues::Fp32(&[1.0, 2.0])))
        .and_then(TableBuilder::build)
        .expect_err("f1 is short");
    assert_eq!(
        short.to_string(),
        "column 'f1' of feature view 'user' has 2 rows but the other columns have 3"
    );
    let wrong_type = TableBuilder::new(layout)
        .feature("f0", ColumnValues::Fp64(&[1.0]))
        .expect_err("f0 is FP32");
    assert_eq!(
        wrong_type.to_string(),
        "column 'f0' of feature view 'user' is FP64 but is declared FP32: convert the column or change the declaration"
    );
    let unknown = TableBuilder::new(layout)
        .feature("age", ColumnValues::Fp32(&[1.0]))
        .expect_err("no feature age");
    assert_eq!(
        unknown.to_string(),
        "column 'age' is not a feature of feature view 'user' (expected: f0, f1)"
    );
    let missing = TableBuilder::new(layout)
        .key("user_id", KeyColumn::Int64(&[1]))
        .and_then(|b| b.feature("f0", ColumnValues::Fp32(&[1.0])))
        .and_then(TableBuilder::build)
        .expect_err("f1 missing");
    assert_eq!(
        missing.to_string(),
        "feature view 'user' needs column 'f1', which was not given"
    );
    let bytes_key = TableBuilder::new(layout)
        .key("user_id", KeyColumn::Bytes { raw: b"", count: 0 })
        .expect_err("user_id is INT64");
    assert!(
        bytes_key
            .to_string()
            .contains("is BYTES but is declared INT64")
    );
}

#[test]
fn a_view_with_a_max_age_needs_event_times() {
    let plan = user_plan(Some(Duration::from_secs(60)));
    let layout = plan.view_layout("user").expect("declared");
    let built = TableBuilder::new(layout)
        .key("user_id", KeyColumn::Int64(&[1]))
        .and_then(|b| b.feature("f0", ColumnValues::Fp32(&[1.0])))
        .and_then(|b| b.feature("f1", ColumnValues::Fp32(&[1.0])))
        .and_then(TableBuilder::build);
    assert!(matches!(built, Err(TableError::MissingEventTimes { .. })));
}

#[test]
fn duplicate_keys_keep_the_last_row_without_event_times() {
    let plan = user_plan(None);
    let layout = plan.view_layout("user").expect("declared");
    let table = int64_table(
        layout,
        &[5, 6, 5],
        &[vec![1.0, 1.0], vec![2.0, 2.0], vec![3.0, 3.0]],
        None,
    );
    assert_eq!(table.rows(), 2);
    assert_eq!(table.duplicate_keys(), 1);
    let row = table.get(&[KeyValue::Int64(5)]).expect("present");
    assert_eq!(fp32_values(row.values), [3.0, 3.0]);
}

#[test]
fn duplicate_keys_keep_the_newest_row_by_event_time() {
    let plan = user_plan(None);
    let layout = plan.view_layout("user").expect("declared");
    let table = int64_table(
        layout,
        &[5, 5, 5],
        &[vec![1.0, 1.0], vec![2.0, 2.0], vec![3.0, 3.0]],
        Some(&[10, 30, 20]),
    );
    assert_eq!(table.rows(), 1);
    assert_eq!(table.duplicate_keys(), 2);
    let row = table.get(&[KeyValue::Int64(5)]).expect("present");
    assert_eq!(fp32_values(row.values), [2.0, 2.0]);
    assert_eq!(row.event_time_us, Some(30));
    assert_eq!(table.event_time_range_us(), Some((30, 30)));
}

#[test]
fn composite_and_bytes_keys_are_found() {
    let plan = plan_for(
        vec![fp32_view(
            "card",
            &["user_id", "card"],
            1,
            0.0,
            None,
            MissingPolicy::UseDefault,
        )],
        vec![
            input("user_id", DataType::Int64, 1),
            input("card", DataType::Bytes, 1),
        ],
    );
    let layout = plan.view_layout("card").expect("declared");
    let cards = bytes_raw(&["abc", "", "abc"]);
    let table = TableBuilder::new(layout)
        .key("user_id", KeyColumn::Int64(&[1, 1, 2]))
        .and_then(|b| {
            b.key(
                "card",
                KeyColumn::Bytes {
                    raw: &cards,
                    count: 3,
                },
            )
        })
        .and_then(|b| b.feature("f0", ColumnValues::Fp32(&[10.0, 20.0, 30.0])))
        .and_then(TableBuilder::build)
        .expect("builds");
    assert_eq!(table.rows(), 3);
    let find = |user, card: &str| {
        table
            .get(&[KeyValue::Int64(user), KeyValue::Bytes(card.as_bytes())])
            .map(|row| fp32_values(row.values)[0])
    };
    assert_eq!(find(1, "abc"), Some(10.0));
    assert_eq!(find(1, ""), Some(20.0));
    assert_eq!(find(2, "abc"), Some(30.0));
    assert_eq!(find(2, ""), None);
    let bad = TableBuilder::new(layout)
        .key("user_id", KeyColumn::Int64(&[1]))
        .and_then(|b| {
            b.key(
                "card",
                KeyColumn::Bytes {
                    raw: &[9, 0, 0, 0, b'x'],
                    count: 1,
                },
            )
        })
        .and_then(|b| b.feature("f0", ColumnValues::Fp32(&[1.0])))
        .and_then(TableBuilder::build)
        .expect_err("element overruns");
    assert!(
        bad.to_string()
            .starts_with("key column 'card' of feature view 'card' is not valid raw BYTES")
    );
}

/// 100k keys x 32 FP32 features: values + keys + index within 1.5x the raw values.
#[test]
fn memory_is_within_one_and_a_half_times_the_values() {
    let plan = plan_for(
        vec![fp32_view(
            "user",
            &["user_id"],
            32,
            0.0,
            Some(Duration::from_secs(1)),
            MissingPolicy::UseDefault,
        )],
        vec![input("user_id", DataType::Int64, 1)],
    );
    let layout = plan.view_layout("user").expect("declared");
    let rows = 100_000usize;
    let keys: Vec<i64> = (0..rows as i64).map(|k| k * 7919 + 13).collect();
    let column: Vec<f32> = (0..rows).map(|r| r as f32).collect();
    let times = vec![0i64; rows];
    let mut builder = TableBuilder::new(layout)
        .key("user_id", KeyColumn::Int64(&keys))
        .expect("key")
        .event_times_us(&times);
    for slot in layout.features() {
        builder = builder
            .feature(&slot.name, ColumnValues::Fp32(&column))
            .expect("feature");
    }
    let table = builder.build().expect("builds");
    let memory = table.memory();
    let raw_values = rows * 32 * 4;
    assert_eq!(memory.values, raw_values);
    let ratio = memory.total() as f64 / raw_values as f64;
    println!(
        "100k keys x 32 FP32: values {} B, keys + index {} B, event times {} B, total {:.3}x the raw values",
        memory.values, memory.keys_and_index, memory.event_times, ratio
    );
    assert!(ratio <= 1.5, "memory is {ratio:.3}x the raw values");
    let without_times = memory.values + memory.keys_and_index;
    assert!((without_times as f64 / raw_values as f64) < 1.15);
}

#[test]
fn the_store_installs_only_tables_of_its_layouts() {
    let plan = user_plan(None);
    let store = FeatureStore::new(plan.view_layouts());
    assert_eq!(store.load().generation(), 0);
    assert!(store.load().table(0).is_none());
    let other = plan_for(
        vec![fp32_view(
            "user",
            &["user_id"],
            3,
            0.0,
            None,
            MissingPolicy::UseDefault,
        )],
        vec![input("user_id", DataType::Int64, 1)],
    );
    let foreign = int64_table(
        other.view_layout("user").expect("declared"),
        &[1],
        &[vec![0.0; 3]],
        None,
    );
    assert!(matches!(
        store.install(vec![foreign]),
        Err(TableError::LayoutMismatch { .. })
    ));
    let stranger = plan_for(
        vec![fp32_view(
            "card",
            &["user_id"],
            2,
            0.0,
            None,
            MissingPolicy::UseDefault,
        )],
        vec![input("user_id", DataType::Int64, 1)],
    );
    let unknown = int64_table(
        stranger.view_layout("card").expect("declared"),
        &[1],
        &[vec![0.0; 2]],
        None,
    );
    assert_eq!(
        store
            .install(vec![unknown])
            .expect_err("no view card")
            .to_string(),
        "the store has no feature view 'card' (views: user)"
    );
    let table = int64_table(
        plan.view_layout("user").expect("declared"),
        &[1],
        &[vec![0.0; 2]],
        None,
    );
    assert_eq!(store.install(vec![table]), Ok(1));
    assert_eq!(store.load().table(0).map(FeatureTable::rows), Some(1));
}
