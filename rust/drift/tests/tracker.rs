//! The hot path and the windows: every datatype bins as `numeric_bin` says, bad batches are
//! refused whole, sampling, one recorder per instance, row and time windows, reset, and (as
//! properties) merging per-thread or per-replica counts equals counting everything in one
//! place, and tumbling windows partition the stream.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Random, fp32_batch, int64_bytes, normal_tracker};
use ferroserve_drift::*;
use ferroserve_tensor::DataType;
use proptest::prelude::*;

fn numeric(name: &str, edges: &[f64], datatype: DataType, tensor: usize) -> MonitoredColumn {
    MonitoredColumn {
        name: name.into(),
        tensor,
        column: 0,
        datatype,
        profile: ColumnProfile::Numeric(NumericProfile {
            edges: edges.to_vec(),
            counts: vec![1; edges.len() + 1],
            nan: 0,
            neg_inf: 0,
            pos_inf: 0,
            mean: 0.0,
            std: 1.0,
            min: -10.0,
            max: 10.0,
        }),
    }
}

fn tracker(columns: Vec<MonitoredColumn>, window: WindowPolicy) -> std::sync::Arc<DriftTracker> {
    DriftTracker::new(TrackerConfig {
        columns,
        instances: 2,
        window,
        sample_every: 1,
    })
    .unwrap()
}

const FOREVER: WindowPolicy = WindowPolicy::Rows(u64::MAX);

#[test]
fn every_datatype_bins_by_the_rule() {
    let edges = [-1.5, 0.1, 2.0, 7.25];
    let values: [f64; 10] = [-3.0, -1.5, -1.0, 0.0, 0.1, 1.0, 2.0, 5.0, 7.25, 100.0];
    let tracker = tracker(
        vec![
            numeric("fp32", &edges, DataType::Fp32, 0),
            numeric("fp64", &edges, DataType::Fp64, 1),
            numeric("int64", &edges, DataType::Int64, 2),
            numeric("int32", &edges, DataType::Int32, 3),
            numeric("bf16", &edges, DataType::Bf16, 4),
            numeric("uint8", &[0.5, 3.0], DataType::Uint8, 5),
        ],
        FOREVER,
    );
    let fp32: Vec<u8> = values
        .iter()
        .flat_map(|v| (*v as f32).to_le_bytes())
        .collect();
    let fp64: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let ints: Vec<i64> = values.iter().map(|v| v.floor() as i64).collect();
    let int64 = int64_bytes(&ints);
    let int32: Vec<u8> = ints
        .iter()
        .flat_map(|v| (*v as i32).to_le_bytes())
        .collect();
    let bf16: Vec<u8> = values
        .iter()
        .flat_map(|v| (((*v as f32).to_bits() >> 16) as u16).to_le_bytes())
        .collect();
    let bytes: Vec<u8> = (0..10u8).collect();
    let shape = [10i64, 1];
    let view = |datatype, data| TensorView {
        datatype,
        shape: &shape,
        data,
    };
    let tensors = [
        view(DataType::Fp32, &fp32[..]),
        view(DataType::Fp64, &fp64[..]),
        view(DataType::Int64, &int64[..]),
        view(DataType::Int32, &int32[..]),
        view(DataType::Bf16, &bf16[..]),
        view(DataType::Uint8, &bytes[..]),
    ];
    let mut recorder = tracker.recorder(0).unwrap();
    assert!(recorder.observe(&tensors, Instant::now()).unwrap());
    let counts = tracker.snapshot(Instant::now()).cumulative;
    let expect = |values: &mut dyn Iterator<Item = f64>, edges: &[f64]| {
        let mut bins = vec![0u64; edges.len() + 1];
        values.for_each(|v| bins[numeric_bin(edges, v)] += 1);
        bins
    };
    let as_f32 = values.iter().map(|v| f64::from(*v as f32));
    assert_eq!(counts.columns[0].bins, expect(&mut as_f32.clone(), &edges));
    assert_eq!(
        counts.columns[1].bins,
        expect(&mut values.iter().copied(), &edges)
    );
    let as_int = ints.iter().map(|v| *v as f64);
    assert_eq!(counts.columns[2].bins, expect(&mut as_int.clone(), &edges));
    assert_eq!(counts.columns[3].bins, expect(&mut as_int.clone(), &edges));
    let as_bf16 = values
        .iter()
        .map(|v| f64::from(f32::from_bits(((*v as f32).to_bits() >> 16) << 16)));
    assert_eq!(counts.columns[4].bins, expect(&mut as_bf16.clone(), &edges));
    assert_eq!(counts.columns[5].bins, [1, 2, 7]);
    assert_eq!((counts.rows, counts.batches), (10, 1));
}

#[test]
fn non_finite_values_and_categories_have_their_own_slots() {
    let category = CategoricalProfile {
        values: vec![3, 1],
        counts: vec![5, 5],
        other: 1,
    };
    let tracker = normal_tracker(1, 8, Some(&category), FOREVER, 1);
    let x = fp32_batch(4, 1, |row, _| {
        [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.0][row]
    });
    let c = int64_bytes(&[1, 1, 3, 42]);
    let shape = [4i64, 1];
    let mut recorder = tracker.recorder(0).unwrap();
    let tensors = [
        TensorView {
            datatype: DataType::Fp32,
            shape: &shape,
            data: &x,
        },
        TensorView {
            datatype: DataType::Int64,
            shape: &shape[..1],
            data: &c,
        },
    ];
    recorder.observe(&tensors, Instant::now()).unwrap();
    let counts = tracker.snapshot(Instant::now()).cumulative;
    let x = &counts.columns[0];
    assert_eq!((x.nan, x.pos_inf, x.neg_inf, x.finite()), (1, 1, 1, 1));
    assert_eq!(counts.columns[1].bins, [1, 2, 1]);
}

#[test]
fn a_batch_that_does_not_fit_is_not_counted_at_all() {
    let tracker = normal_tracker(3, 8, None, FOREVER, 1);
    let mut recorder = tracker.recorder(0).unwrap();
    let data = fp32_batch(2, 3, |_, _| 0.0);
    let observe = |recorder: &mut Recorder, datatype, shape: &[i64], data: &[u8]| {
        recorder.observe(
            &[TensorView {
                datatype,
                shape,
                data,
            }],
            Instant::now(),
        )
    };
    assert!(matches!(
        observe(&mut recorder, DataType::Fp64, &[2, 3], &data),
        Err(ObserveError::Datatype { .. })
    ));
    assert!(matches!(
        observe(&mut recorder, DataType::Fp32, &[3, 2], &data),
        Err(ObserveError::Column {
            features: 2,
            column: 2,
            ..
        })
    ));
    assert!(matches!(
        observe(&mut recorder, DataType::Fp32, &[2, 3], &data[..20]),
        Err(ObserveError::Length {
            expected: 24,
            actual: 20,
            ..
        })
    ));
    assert!(matches!(
        observe(&mut recorder, DataType::Fp32, &[1, 2, 3], &data),
        Err(ObserveError::Rank { dims: 3, .. })
    ));
    let error = recorder.observe(&[], Instant::now()).unwrap_err();
    assert!(error.to_string().contains("tensor 0"), "{error}");
    assert_eq!(tracker.snapshot(Instant::now()).cumulative.batches, 0);
    assert_eq!(
        observe(&mut recorder, DataType::Fp32, &[2, 3], &data),
        Ok(true)
    );
}

#[test]
fn load_errors_say_what_to_fix() {
    let mut columns = vec![numeric("x", &[0.0], DataType::Fp16, 0)];
    let config = |columns: Vec<MonitoredColumn>| TrackerConfig {
        columns,
        instances: 1,
        window: FOREVER,
        sample_every: 1,
    };
    let error = DriftTracker::new(config(columns.clone()))
        .unwrap_err()
        .to_string();
    assert!(error.contains("FP16") && error.contains("FP32"), "{error}");
    columns[0].datatype = DataType::Fp32;
    columns.push(numeric("x", &[0.0], DataType::Fp32, 0));
    assert!(matches!(
        DriftTracker::new(config(columns.clone())),
        Err(ProfileError::DuplicateColumn { .. })
    ));
    columns[1] = numeric("y", &[0.0], DataType::Fp64, 0);
    assert!(matches!(
        DriftTracker::new(config(columns)),
        Err(ProfileError::MixedDatatypes { tensor: 0, .. })
    ));
    let categorical = MonitoredColumn {
        profile: ColumnProfile::Categorical(CategoricalProfile {
            values: vec![1],
            counts: vec![1],
            other: 0,
        }),
        ..numeric("c", &[], DataType::Fp32, 0)
    };
    assert!(matches!(
        DriftTracker::new(config(vec![categorical])),
        Err(ProfileError::UnsupportedDatatype {
            kind: "categorical",
            ..
        })
    ));
}

#[test]
fn one_recorder_per_instance() {
    let tracker = normal_tracker(1, 4, None, FOREVER, 2);
    let first = tracker.recorder(0).unwrap();
    assert_eq!(
        tracker.recorder(0).unwrap_err(),
        RecorderError::Taken { instance: 0 }
    );
    assert!(matches!(
        tracker.recorder(2),
        Err(RecorderError::NoSuchInstance { .. })
    ));
    drop(first);
    assert!(tracker.recorder(0).is_ok());
}

#[test]
fn sampling_counts_every_nth_batch() {
    let mut column = numeric("x", &[0.0], DataType::Fp32, 0);
    column.column = 0;
    let tracker = DriftTracker::new(TrackerConfig {
        columns: vec![column],
        instances: 1,
        window: FOREVER,
        sample_every: 3,
    })
    .unwrap();
    let mut recorder = tracker.recorder(0).unwrap();
    let data = fp32_batch(5, 1, |_, _| 1.0);
    let tensors = [TensorView {
        datatype: DataType::Fp32,
        shape: &[5, 1],
        data: &data,
    }];
    let counted: Vec<bool> = (0..7)
        .map(|_| recorder.observe(&tensors, Instant::now()).unwrap())
        .collect();
    assert_eq!(counted, [true, false, false, true, false, false, true]);
    let counts = tracker.snapshot(Instant::now()).cumulative;
    assert_eq!(
        (counts.batches, counts.rows, counts.columns[0].bins[1]),
        (3, 15, 15)
    );
}

#[test]
fn time_windows_roll_on_the_clock_and_reset_restarts() {
    let tracker = normal_tracker(1, 4, None, WindowPolicy::Time(Duration::from_secs(10)), 1);
    let start = Instant::now();
    let mut recorder = tracker.recorder(0).unwrap();
    let data = fp32_batch(4, 1, |_, _| 0.5);
    let tensors = [TensorView {
        datatype: DataType::Fp32,
        shape: &[4, 1],
        data: &data,
    }];
    recorder.observe(&tensors, start).unwrap();
    recorder
        .observe(&tensors, start + Duration::from_secs(3))
        .unwrap();
    assert_eq!(
        tracker.snapshot(start + Duration::from_secs(5)).last_closed,
        None
    );
    // The first batch past the 10 s mark is counted, then rolls: it closes in that window.
    recorder
        .observe(&tensors, start + Duration::from_secs(11))
        .unwrap();
    let snapshot = tracker.snapshot(start + Duration::from_secs(12));
    let closed = snapshot.last_closed.clone().unwrap();
    assert_eq!((closed.index, closed.counts.rows), (0, 12));
    assert_eq!(snapshot.current.rows, 0);
    assert_eq!(snapshot.cumulative.rows, 12);
    // No traffic: a read past the next mark closes an empty window.
    let snapshot = tracker.snapshot(start + Duration::from_secs(25));
    let closed = snapshot.last_closed.unwrap();
    assert_eq!((closed.index, closed.counts.rows), (1, 0));
    tracker.reset(start + Duration::from_secs(26));
    let snapshot = tracker.snapshot(start + Duration::from_secs(27));
    assert_eq!((snapshot.cumulative.rows, snapshot.last_closed), (0, None));
}

#[test]
fn threads_count_concurrently_while_the_exporter_reads() {
    let tracker = normal_tracker(4, 16, None, WindowPolicy::Rows(1000), 4);
    let batches = 200;
    std::thread::scope(|scope| {
        for instance in 0..4 {
            let tracker = &tracker;
            scope.spawn(move || {
                let mut recorder = tracker.recorder(instance).unwrap();
                let mut random = Random::new(instance as u64);
                for _ in 0..batches {
                    let data = fp32_batch(16, 4, |_, _| random.normal() as f32);
                    let tensors = [TensorView {
                        datatype: DataType::Fp32,
                        shape: &[16, 4],
                        data: &data,
                    }];
                    recorder.observe(&tensors, Instant::now()).unwrap();
                }
            });
        }
        scope.spawn(|| {
            for _ in 0..50 {
                let snapshot = tracker.snapshot(Instant::now());
                let report = tracker.evaluate(&snapshot.current, &Thresholds::default());
                assert!(report.is_ok());
            }
        });
    });
    let snapshot = tracker.snapshot(Instant::now());
    assert_eq!(snapshot.cumulative.rows, 4 * batches * 16);
    for column in &snapshot.cumulative.columns {
        assert_eq!(column.total(), 4 * batches * 16);
    }
}

/// A tracker with one FP64 column of fixed edges (and one INT64 categorical), for the
/// properties.
fn property_tracker(instances: usize, window: WindowPolicy) -> std::sync::Arc<DriftTracker> {
    let category = MonitoredColumn {
        name: "c".into(),
        tensor: 1,
        column: 0,
        datatype: DataType::Int64,
        profile: ColumnProfile::Categorical(CategoricalProfile {
            values: vec![0, 2, 4],
            counts: vec![1, 1, 1],
            other: 1,
        }),
    };
    DriftTracker::new(TrackerConfig {
        columns: vec![
            numeric("x", &[-1.0, 0.0, 0.5, 3.0], DataType::Fp64, 0),
            category,
        ],
        instances,
        window,
        sample_every: 1,
    })
    .unwrap()
}

/// A batch: FP64 values (with NaN and infinities) and INT64 categories.
fn batch_strategy() -> impl Strategy<Value = Vec<(f64, i64)>> {
    let value = prop_oneof![
        8 => -5.0f64..5.0,
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
        2 => prop::sample::select(vec![-1.0, 0.0, 0.5, 3.0]),
    ];
    prop::collection::vec((value, 0i64..6), 0..20)
}

fn observe(recorder: &mut Recorder, batch: &[(f64, i64)]) {
    let x: Vec<u8> = batch.iter().flat_map(|(v, _)| v.to_le_bytes()).collect();
    let c = int64_bytes(&batch.iter().map(|(_, c)| *c).collect::<Vec<_>>());
    let shape = [batch.len() as i64, 1];
    let tensors = [
        TensorView {
            datatype: DataType::Fp64,
            shape: &shape,
            data: &x,
        },
        TensorView {
            datatype: DataType::Int64,
            shape: &shape,
            data: &c,
        },
    ];
    recorder.observe(&tensors, Instant::now()).unwrap();
}

proptest! {
    #[test]
    fn per_thread_and_per_replica_counts_merge_to_the_whole(
        batches in prop::collection::vec((batch_strategy(), 0usize..3), 0..30),
    ) {
        let threads = property_tracker(3, FOREVER);
        let mut recorders: Vec<Recorder> = (0..3).map(|i| threads.recorder(i).unwrap()).collect();
        let whole = property_tracker(1, FOREVER);
        let mut one = whole.recorder(0).unwrap();
        let replicas = [property_tracker(1, FOREVER), property_tracker(1, FOREVER)];
        let mut replica_recorders: Vec<Recorder> =
            replicas.iter().map(|r| r.recorder(0).unwrap()).collect();
        for (batch, thread) in &batches {
            observe(&mut recorders[*thread], batch);
            observe(&mut one, batch);
            observe(&mut replica_recorders[thread % 2], batch);
        }
        let now = Instant::now();
        let whole_counts = whole.snapshot(now).cumulative;
        prop_assert_eq!(&threads.snapshot(now).cumulative, &whole_counts);
        let mut merged = replicas[0].snapshot(now).cumulative;
        merged.merge(&replicas[1].snapshot(now).cumulative).unwrap();
        prop_assert_eq!(&merged, &whole_counts);
        // And the counts are the rule's.
        let mut bins = vec![0u64; 5];
        let (mut nan, mut neg, mut pos) = (0, 0, 0);
        for (value, _) in batches.iter().flat_map(|(batch, _)| batch) {
            match *value {
                v if v.is_nan() => nan += 1,
                f64::INFINITY => pos += 1,
                f64::NEG_INFINITY => neg += 1,
                v => bins[numeric_bin(&[-1.0, 0.0, 0.5, 3.0], v)] += 1,
            }
        }
        let x = &whole_counts.columns[0];
        prop_assert_eq!((&x.bins, x.nan, x.neg_inf, x.pos_inf), (&bins, nan, neg, pos));
        let mut categories = vec![0u64; 4];
        for (_, c) in batches.iter().flat_map(|(batch, _)| batch) {
            categories[match c { 0 => 0, 2 => 1, 4 => 2, _ => 3 }] += 1;
        }
        prop_assert_eq!(&whole_counts.columns[1].bins, &categories);
    }

    #[test]
    fn fp32_values_bin_by_the_rule_in_groups_and_alone(
        values in prop::collection::vec(prop_oneof![
            6 => -4.0f32..4.0,
            1 => Just(f32::NAN),
            1 => Just(f32::INFINITY),
            2 => prop::sample::select(vec![-1.0f32, 0.0, 0.5, 0.1]),
        ], 0..40),
    ) {
        let edges = [-1.0, 0.0, 0.1, 0.5, 3.0];
        let tracker = DriftTracker::new(TrackerConfig {
            columns: vec![numeric("x", &edges, DataType::Fp32, 0)],
            instances: 1,
            window: FOREVER,
            sample_every: 1,
        })
        .unwrap();
        let mut recorder = tracker.recorder(0).unwrap();
        // Two columns: the monitored one is column 0 of a [rows, 2] tensor.
        let data = fp32_batch(values.len(), 2, |row, column| if column == 0 { values[row] } else { 9.0 });
        let shape = [values.len() as i64, 2];
        recorder
            .observe(&[TensorView { datatype: DataType::Fp32, shape: &shape, data: &data }], Instant::now())
            .unwrap();
        let mut bins = vec![0u64; edges.len() + 1];
        let (mut nan, mut pos) = (0, 0);
        for value in &values {
            match f64::from(*value) {
                v if v.is_nan() => nan += 1,
                f64::INFINITY => pos += 1,
                v => bins[numeric_bin(&edges, v)] += 1,
            }
        }
        let counts = tracker.snapshot(Instant::now()).cumulative;
        let x = &counts.columns[0];
        prop_assert_eq!((&x.bins, x.nan, x.pos_inf), (&bins, nan, pos));
    }

    #[test]
    fn tumbling_windows_partition_the_stream(
        batches in prop::collection::vec(batch_strategy(), 0..40),
        size in 1u64..60,
    ) {
        let tracker = property_tracker(1, WindowPolicy::Rows(size));
        let mut recorder = tracker.recorder(0).unwrap();
        let mut closed = Vec::new();
        let mut next_index = 0;
        for batch in &batches {
            observe(&mut recorder, batch);
            if let Some(window) = tracker.snapshot(Instant::now()).last_closed
                && window.index == next_index
            {
                prop_assert!(window.counts.rows >= size);
                closed.push(window.counts);
                next_index += 1;
            }
        }
        let snapshot = tracker.snapshot(Instant::now());
        let mut sum = snapshot.current.clone();
        for window in &closed {
            sum.merge(window).unwrap();
        }
        prop_assert_eq!(&sum, &snapshot.cumulative);
        let rows: usize = batches.iter().map(Vec::len).sum();
        prop_assert_eq!(snapshot.cumulative.rows, rows as u64);
    }
}
