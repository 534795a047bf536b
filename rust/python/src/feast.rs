//! Redis in Feast's layout (`ferroserve-feast`) as Python sees it: the Redis join of the
//! requests the Python server answers (the native front end's `RemoteJoin`, through a store of
//! the Python server's own), and `feast_write`, which writes a view's rows the way `feast
//! materialize` does (`ferroserve features load --file`). Both run on one tokio runtime that this
//! module owns, without the GIL.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ferroserve_feast::{
    FeastError, FeastView, FeatureRow, RedisStore, RedisStoreConfig, StoreStatsSnapshot, Written,
    redact_url,
};
use ferroserve_features::{KeyKind, KeyValue, ViewLayout};
use ferroserve_frontend::{JoinFailure, Joined, RemoteJoin};
use numpy::PyReadonlyArray1;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::exceptions::RustError;
use crate::features::{
    Column, bytes_key_column, feast_names, feast_project, feature_view, invalid, item, list_of,
    request_input,
};
use crate::gil::{Work, without_gil};

/// The runtime of every Redis call made from Python: one worker thread drives the connections
/// (their tasks live here) and the timers; callers block on it from their own threads.
fn runtime() -> Result<&'static tokio::runtime::Runtime, RustError> {
    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("ferroserve-redis")
                .enable_all()
                .build()
                .map_err(|error| error.to_string())
        })
        .as_ref()
        .map_err(|error| RustError::Runtime(error.clone()))
}

/// A model version's Redis join on both front ends: the native front end runs `remote_join` on
/// its runtime with the join's own store; the Python server runs the same join (keys,
/// defaults, max age, reject and store-down rules, per-view counters) through `python_store`,
/// a connection on this module's runtime, so neither side's connection task lives on the
/// other's threads.
pub(crate) struct RedisJoin {
    /// The join, shared with the native route.
    remote_join: Arc<RemoteJoin>,
    /// The Python server's store, created on its first request (or why it cannot be: a bad
    /// URL, answered as the native front end answers it).
    python_store: OnceLock<Result<Arc<RedisStore>, String>>,
}

impl RedisJoin {
    pub(crate) fn new(remote_join: RemoteJoin) -> Self {
        RedisJoin {
            remote_join: Arc::new(remote_join),
            python_store: OnceLock::new(),
        }
    }

    /// The join the native route runs.
    pub(crate) fn remote_join(&self) -> Arc<RemoteJoin> {
        Arc::clone(&self.remote_join)
    }

    /// Both stores' counters together.
    pub(crate) fn stats(&self) -> StoreStatsSnapshot {
        let python = match self.python_store.get() {
            Some(Ok(store)) => store.stats(),
            _ => StoreStatsSnapshot::default(),
        };
        self.remote_join.redis_stats() + python
    }

    /// Joins one request (its request inputs `request`, `rows` rows), blocking the calling
    /// thread until Redis answers or the store's timeout passes.
    pub(crate) fn join(&self, request: &[&[u8]], rows: usize) -> Result<Joined, RustError> {
        let runtime = runtime()?;
        let store = self
            .python_store
            .get_or_init(|| {
                // The store's connection task is spawned on the runtime it is created in.
                let _entered = runtime.enter();
                RedisStore::new(self.remote_join.redis_config())
                    .map(Arc::new)
                    .map_err(|error| format!("feature store: {error}"))
            })
            .as_ref()
            .map_err(|error| JoinFailure::Internal(error.clone()))?;
        Ok(runtime.block_on(self.remote_join.join_with(store, request, rows))?)
    }
}

/// Why `feast_write` wrote nothing, or not everything.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WriteError {
    /// Redis refused or failed the write (or cannot be reached).
    #[error("Redis at {url} did not take the rows: {source}")]
    Failed {
        /// The store's URL, its password hidden.
        url: String,
        /// What failed (boxed: a Redis error is large, and every `RustError` pays its size).
        source: Box<FeastError>,
    },
    /// The rows cannot be written as they are (a key Feast cannot store in its join key's
    /// type, such as BYTES that are not UTF-8 for a String entity), or the URL is unusable.
    #[error(transparent)]
    Refused(Box<FeastError>),
    /// The write did not finish in time.
    #[error("Redis at {url} did not take the rows within {seconds} s")]
    TimedOut {
        /// The store's URL, its password hidden.
        url: String,
        /// The time allowed.
        seconds: f64,
    },
}

/// A declared view's layout, from the declaration dict `FeaturePlan` takes (its request inputs
/// and views; the assembly is not needed to write).
fn view_layout(declaration: &Bound<'_, PyDict>, view: &str) -> PyResult<ViewLayout> {
    let request_inputs = list_of(declaration, "request_inputs", request_input)?;
    let views = list_of(declaration, "views", feature_view)?;
    let declared = views
        .iter()
        .find(|declared| declared.name == view)
        .ok_or_else(|| {
            let names: Vec<&str> = views.iter().map(|v| v.name.as_str()).collect();
            invalid(format!(
                "no feature view '{view}'; the declared views: {}",
                names.join(", ")
            ))
        })?;
    ViewLayout::new(declared, &request_inputs).map_err(invalid)
}

/// The elements of a BYTES column in the raw layout (a 4-byte little-endian length, then the
/// bytes), as `bytes_key_column` frames them.
fn framed_elements(raw: &[u8]) -> Vec<&[u8]> {
    let mut elements = Vec::new();
    let mut rest = raw;
    while let Some((length, tail)) = rest.split_first_chunk::<4>() {
        let (element, tail) = tail.split_at(u32::from_le_bytes(*length) as usize);
        elements.push(element);
        rest = tail;
    }
    elements
}

/// One key part's values, one per row.
enum KeyValues<'py> {
    Int64(PyReadonlyArray1<'py, i64>),
    /// The raw layout, framed by `bytes_key_column`.
    Bytes(Vec<u8>),
}

/// Writes rows of view `view` into Redis in Feast's layout, as `feast materialize` does; see
/// the `.pyi` for the arguments.
#[pyfunction]
#[pyo3(signature = (declaration, redis, view, keys, features, event_times_us, *, timeout_s = 600.0))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn feast_write(
    py: Python<'_>,
    declaration: &Bound<'_, PyDict>,
    redis: &Bound<'_, PyDict>,
    view: &str,
    keys: &Bound<'_, PyDict>,
    features: &Bound<'_, PyDict>,
    event_times_us: PyReadonlyArray1<'_, i64>,
    timeout_s: f64,
) -> PyResult<(usize, usize)> {
    let layout = view_layout(declaration, view)?;
    let url: String = item(redis, "url", "redis")?.extract()?;
    let project = feast_project(
        item(redis, "project", "redis")?.extract()?,
        item(redis, "serialization_version", "redis")?.extract()?,
    )?;
    let names = item(redis, "views", "redis")?
        .cast_into::<PyDict>()?
        .get_item(view)?
        .ok_or_else(|| {
            invalid(format!(
                "feature view '{view}' is not stored in Redis (store: REDIS)"
            ))
        })?;
    let feast = FeastView::new(
        &layout,
        &project,
        &feast_names(&names.cast_into::<PyDict>()?)?,
    )
    .map_err(invalid)?;
    let timeout = Duration::try_from_secs_f64(timeout_s)
        .ok()
        .filter(|timeout| !timeout.is_zero())
        .ok_or_else(|| invalid("timeout_s must be a positive number of seconds"))?;
    let times = event_times_us
        .as_slice()
        .map_err(|_| invalid("event_times_us must be C-contiguous"))?;
    let rows = times.len();
    let wrong_length = |what: &str, name: &str, length: usize| {
        invalid(format!(
            "{what} column '{name}' has {length} values but event_times_us has {rows}: give \
             every column one value per row"
        ))
    };

    let mut key_values = Vec::with_capacity(layout.key().len());
    for part in layout.key() {
        let values = keys.get_item(&part.name)?.ok_or_else(|| {
            invalid(format!(
                "feature view '{view}': key column '{}' is missing",
                part.name
            ))
        })?;
        key_values.push(match part.kind {
            KeyKind::Int64 => KeyValues::Int64(values.extract().map_err(|_| {
                invalid(format!(
                    "key column '{}' must be a 1-D numpy array of int64",
                    part.name
                ))
            })?),
            KeyKind::Bytes => KeyValues::Bytes(bytes_key_column(&values, &part.name)?.0),
        });
    }
    let mut key_columns: Vec<Vec<KeyValue<'_>>> = Vec::with_capacity(key_values.len());
    for (part, values) in layout.key().iter().zip(&key_values) {
        let column: Vec<KeyValue<'_>> = match values {
            KeyValues::Int64(array) => array
                .as_slice()
                .map_err(|_| invalid(format!("key column '{}' must be C-contiguous", part.name)))?
                .iter()
                .map(|&key| KeyValue::Int64(key))
                .collect(),
            KeyValues::Bytes(raw) => framed_elements(raw)
                .into_iter()
                .map(KeyValue::Bytes)
                .collect(),
        };
        if column.len() != rows {
            return Err(wrong_length("key", &part.name, column.len()));
        }
        key_columns.push(column);
    }

    let mut columns = Vec::with_capacity(layout.features().len());
    for slot in layout.features() {
        let values = features.get_item(&slot.name)?.ok_or_else(|| {
            invalid(format!(
                "feature view '{view}': feature column '{}' is missing",
                slot.name
            ))
        })?;
        columns.push(Column::extract(&values, slot.datatype, &slot.name)?);
    }
    let mut values = vec![0u8; rows * layout.row_bytes()];
    for (slot, column) in layout.features().iter().zip(&columns) {
        let column = column.values(&slot.name)?;
        if column.len() != rows {
            return Err(wrong_length("feature", &slot.name, column.len()));
        }
        let width = slot.datatype.element_size().unwrap_or(0);
        for (row, out) in values.chunks_exact_mut(layout.row_bytes()).enumerate() {
            column.write_le(row, &mut out[slot.offset..slot.offset + width]);
        }
    }

    let row_keys: Vec<Vec<KeyValue<'_>>> = (0..rows)
        .map(|row| key_columns.iter().map(|column| column[row]).collect())
        .collect();
    without_gil(py, Work::Blocking, || {
        let rows: Vec<FeatureRow<'_>> = row_keys
            .iter()
            .zip(values.chunks_exact(layout.row_bytes()))
            .zip(times)
            .map(|((key, values), &event_time_us)| FeatureRow {
                key,
                values,
                event_time_us,
            })
            .collect();
        write(&url, &feast, &rows, timeout)
    })
}

/// Writes `rows` of `feast` into the store at `url`, all within `timeout` (connecting
/// included): (rows written, rows dropped as duplicate keys).
fn write(
    url: &str,
    feast: &FeastView,
    rows: &[FeatureRow<'_>],
    timeout: Duration,
) -> Result<(usize, usize), RustError> {
    let failed = |source| match source {
        FeastError::Write(_) => WriteError::Failed {
            url: redact_url(url),
            source: Box::new(source),
        },
        refused => WriteError::Refused(Box::new(refused)),
    };
    let config = RedisStoreConfig {
        url: url.to_owned(),
        timeout,
    };
    let written = runtime()?.block_on(async {
        let store = RedisStore::new(&config).map_err(failed)?;
        tokio::time::timeout(timeout, store.write(feast, rows))
            .await
            .map_err(|_| WriteError::TimedOut {
                url: redact_url(url),
                seconds: timeout.as_secs_f64(),
            })?
            .map_err(failed)
    })?;
    let Written {
        rows,
        duplicate_keys,
    } = written;
    Ok((rows, duplicate_keys))
}
