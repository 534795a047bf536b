//! Online feature lookup in pure Rust: a model's declaration of entity keys, feature views and
//! how their values land in its inputs (checked against the model once, at load), the embedded
//! feature store (one row-major table per view with a key -> row index, swapped atomically on
//! reload), and the join that writes a batch's model inputs from its request inputs and the
//! looked-up rows. Used by the executor at batch forming (embedded views) and by the front end
//! per request (views fetched from Redis); the Python bindings only adapt. It knows nothing of
//! Python, protobuf or files.
//!
//! # Flow
//! 1. Model load: `JoinPlan::compile(&declaration, &signature)` (errors say what to change),
//!    then `FeatureStore::new(plan.view_layouts())`.
//! 2. Feature load (and every reload): per view, `TableBuilder::new(plan.view_layout(view))`,
//!    its columns by name (keys as `i64` slices or raw BYTES, one value slice per feature,
//!    optional event times in Unix **microseconds**), `build()`, then `store.install(tables)`:
//!    one atomic swap, however many views it replaces.
//! 3. Each batch: `let snapshot = store.load();` once, then
//!    `plan.gather(&snapshot, &request_buffers, rows, now_us, &mut model_input_buffers)`.
//!    Rows of reject-policy views that could not be served come back as `Rejection`s (the
//!    batch runs; answer those requests NOT_FOUND with the rejection's message).
//! 4. Per request with fetched views: fill a `FetchedRows` per fetched view (one row per request
//!    row, decoded into `ViewLayout::features`' layout), then `plan.gather_from(&sources, ...)`
//!    with `ViewSource::Fetched` for those and `ViewSource::Embedded` for the others.
//! 5. Metrics: `plan.stats().snapshot()` (lookups, hits, misses, stale, unavailable, rejected and
//!    a lookup latency histogram per view; gathers, rows and gather time).
//!
//! ```
//! use ferroserve_features::*;
//! use ferroserve_tensor::DataType;
//!
//! let declaration = Declaration {
//!     request_inputs: vec![
//!         RequestInput { name: "user_id".into(), datatype: DataType::Int64, columns: 1 },
//!         RequestInput { name: "dense".into(), datatype: DataType::Fp32, columns: 2 },
//!     ],
//!     views: vec![FeatureView {
//!         name: "user".into(),
//!         key: vec!["user_id".into()],
//!         features: vec![Feature {
//!             name: "age".into(),
//!             datatype: DataType::Fp32,
//!             default: FeatureValue::Fp32(-1.0),
//!         }],
//!         max_age: None,
//!         on_missing: MissingPolicy::UseDefault,
//!     }],
//!     assembly: vec![ModelInputAssembly {
//!         model_input: "x".into(),
//!         segments: vec![Segment::RequestInput("dense".into()), Segment::View("user".into())],
//!     }],
//! };
//! let model = ModelSignature {
//!     inputs: vec![ModelInput { name: "x".into(), datatype: DataType::Fp32, dims: vec![3] }],
//! };
//! let plan = JoinPlan::compile(&declaration, &model)?;
//! let store = FeatureStore::new(plan.view_layouts());
//! let layout = plan.view_layout("user").expect("declared");
//! let table = TableBuilder::new(layout)
//!     .key("user_id", KeyColumn::Int64(&[7, 8]))?
//!     .feature("age", ColumnValues::Fp32(&[30.0, 40.0]))?
//!     .build()?;
//! store.install(vec![table])?;
//!
//! // A batch of two rows: user 8 (known) and user 9 (missing: the default, counted).
//! let user_id: Vec<u8> = [8i64, 9].iter().flat_map(|k| k.to_le_bytes()).collect();
//! let dense: Vec<u8> = [1f32, 2., 3., 4.].iter().flat_map(|v| v.to_le_bytes()).collect();
//! let mut x = vec![0u8; 2 * plan.model_inputs()[0].row_bytes()];
//! let snapshot = store.load();
//! let rejected = plan.gather(&snapshot, &[&user_id, &dense], 2, 0, &mut [&mut x])?;
//! assert!(rejected.is_empty());
//! let x: Vec<f32> = x.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
//! assert_eq!(x, [1., 2., 40., 3., 4., -1.]);
//! assert_eq!(plan.stats().snapshot().views[0].misses, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Decisions
//! - A view's rows are stored in the datatypes of the model input they land in (the plan
//!   checks that the features' datatypes match), so serving a key is one copy of its row.
//! - Duplicate keys in a snapshot keep one row: the newest by event time, else the last
//!   (`FeatureTable::duplicate_keys` counts the others).
//! - Event times and `now` are Unix microseconds. A row without an event time is never stale.
//! - One missing-key policy per view covers missing, stale and unavailable rows.

mod builder;
mod declaration;
mod error;
mod fetched;
mod index;
mod join;
mod keys;
mod layout;
mod plan;
mod rejection;
mod stats;
mod store;
mod table;

pub use builder::{ColumnValues, KeyColumn, TableBuilder};
pub use declaration::{
    Declaration, FEATURE_DATATYPES, Feature, FeatureValue, FeatureView, MissingPolicy, ModelInput,
    ModelInputAssembly, ModelSignature, RequestInput, Segment,
};
pub use error::{DeclarationError, JoinError, TableError};
pub use fetched::FetchedRows;
pub use join::ViewSource;
pub use keys::{KeyKind, KeyPart, KeyValue, encode_key};
pub use layout::{FeatureSlot, ViewLayout};
pub use plan::{JoinPlan, ModelInputLayout};
pub use rejection::{RejectReason, Rejection};
pub use stats::{JoinStats, JoinStatsSnapshot, LOOKUP_BOUNDS_NS, ViewStatsSnapshot};
pub use store::{FeatureStore, Snapshot};
pub use table::{FeatureTable, TableMemory, TableRow};

/// Now, in Unix microseconds: the `now_us` of a gather in serving (tests pass their own).
pub fn unix_micros_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_micros()).unwrap_or(i64::MAX)
        })
}
