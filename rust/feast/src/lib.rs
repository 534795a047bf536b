//! Feature rows from Redis in **Feast's own online-store layout**, so a team that already runs
//! `feast materialize` points ferroserve at the same Redis and nothing else changes. Pure Rust:
//! the layout (keys, field names, values), an async pipelined reader that decodes into the
//! join's `FetchedRows`, and a writer of the same layout. No Python, no front end here: the
//! front end calls the reader per request on its tokio runtime.
//!
//! # The layout (Feast 0.67.0, `sdk/python/feast/infra/online_stores/redis.py`)
//! - **One hash per entity key and project.** Redis key = `serialize_entity_key(entity_key,
//!   entity_key_serialization_version)` + the project name in UTF-8 (`key` module: versions 3,
//!   Feast's default since 0.38, and 2 are read; 0 and 1 were removed from Feast).
//! - **A field per feature**: the 4 raw bytes of murmur3_x86_32, seed 0, of the UTF-8 text
//!   `"{view}:{feature}"`, little-endian (`field` module); not a hex or decimal string.
//! - **Values**: serialized `feast.types.Value` protobufs (`value` module); Feast writes Float32
//!   as `float_val`, Float64 `double_val`, Int64 `int64_val`, Int32 `int32_val`, and None or
//!   NaN as an empty message.
//! - **`_ts:{view}`** (a text field): the row's event time as a serialized
//!   `google.protobuf.Timestamp`.
//!
//! Every byte string in the unit tests was computed by Feast itself
//! (`rust/feast/tools/feast_vectors.py`), and `tests/e2e/test_feast_layout.py` reads what
//! `feast materialize` wrote.
//!
//! # Serving flow (how the front end calls it)
//! 1. Model load: per Redis-backed view, `FeastView::new(plan.view_layout(view), &project,
//!    &names)`; one `RedisStore::new(&RedisStoreConfig { url, timeout })` per store (inside the
//!    runtime; it connects lazily), shared by `Arc`.
//! 2. Per request: `store.fetch(&view, &key_buffers, rows).await` for each Redis-backed view
//!    (concurrently if several: they share the store's one connection, and the lookups of
//!    concurrent requests share round trips). It never fails on the store's account: a timeout
//!    or a broken connection gives unavailable rows and a counter.
//! 3. `plan.gather_from(&sources, ...)` with `ViewSource::Fetched(&rows)` for those views and
//!    `now_us`: the join serves missing, stale (event time older than the view's max age, which
//!    Feast's own server does not check: feast#1802) and unavailable rows by the view's policy.
//! 4. Metrics: `store.stats()` (calls, rows, found, missing, unavailable, timeouts, errors, bad
//!    rows, null values) beside the join's per-view counters.
//!
//! ```no_run
//! # async fn example(layout: &ferroserve_features::ViewLayout) -> Result<(), ferroserve_feast::FeastError> {
//! use ferroserve_feast::*;
//!
//! let view = FeastView::new(layout, &FeastProject::new("fraud"), &FeastNames::default())?;
//! let store = RedisStore::new(&RedisStoreConfig::new("redis://127.0.0.1:6379/0"))?;
//! let user_ids: Vec<u8> = [7i64, 8].iter().flat_map(|k| k.to_le_bytes()).collect();
//! let rows = store.fetch(&view, &[&user_ids], 2).await?;
//! // ViewSource::Fetched(&rows) for this view in plan.gather_from(...)
//! # Ok(()) }
//! ```
//!
//! # Cost (benches/fetch.rs, 2-core VM, loopback Redis; docs/features.md has the table)
//! 64 keys x 32 FP32 features in one call: p50 1.7 ms (a bare redis-rs pipeline of the same
//! HMGETs: 2.0-2.1 ms; Redis's own ~17 µs per 33-field HMGET dominates). One key per call: p50
//! ~70 µs; 16 concurrent callers reach 32-36k calls/s. Our RESP2 reader (`resp`, `connection`,
//! `live` modules) parses a 33-field answer in ~1.0 µs where the redis crate took ~10 µs
//! (benches/parse.rs).
//!
//! # Decisions
//! - Conversions from Feast's value types into a feature's datatype are by type and exact
//!   (`value` module); any other value serves its row as missing and counts a bad row.
//! - A row with some features absent or null serves their defaults (counted), or is missing
//!   under a reject policy.
//! - The protobuf messages are decoded by hand (`proto` module): two tiny messages do not earn
//!   a code generator or a build-time protoc.
//! - Reads speak RESP2 themselves (`resp`: encoding and an incremental parser into spans of one
//!   buffer per round trip; `connection`, `live`: one pipelined socket, reconnects): the redis
//!   crate's parser built a `Value` and a `Vec` per field, half of the Redis path's server CPU
//!   (docs/benchmarks.md, "Where the Redis path's cost goes"). URLs are still parsed by the
//!   redis crate, and writes (not on the serving path) still use its `ConnectionManager`.

mod client;
mod coalesce;
mod connection;
mod endpoint;
mod error;
mod field;
mod key;
mod live;
mod proto;
// Public for benches/parse.rs only (the parser alone, beside the redis crate's); not an API.
#[doc(hidden)]
pub mod resp;
mod round_trips;
mod row;
mod stats;
mod value;
mod view;
mod writer;

pub use client::{DEFAULT_TIMEOUT, RedisStore, RedisStoreConfig, redact_url};
pub use error::FeastError;
pub use field::{feature_field, murmur3_32, timestamp_field};
pub use key::{EntityValue, EntityValueType, JoinKey, SerializationVersion, serialize_entity_key};
pub use row::StoredRow;
pub use stats::{CallFailure, FailureKind, StoreStatsSnapshot};
pub use value::{FeastValue, ValueError, decode_timestamp, encode_timestamp};
pub use view::{FeastNames, FeastProject, FeastView};
pub use writer::{FeatureRow, Written};
