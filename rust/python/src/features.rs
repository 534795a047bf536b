//! `FeaturePlan`, `FeatureStore` and `FeatureTable`: online feature lookup
//! (`ferroserve-features`) as Python sees it. Python parses the declaration file and reads the
//! snapshot files; this layer only converts their values and maps the errors. A store whose
//! plan has views in Redis (Feast's layout) also holds their join (`feast::RedisJoin`), which
//! the model's native route runs per request and `FeatureStore.join` runs for the Python
//! server.

use std::sync::Arc;
use std::time::Duration;

use ferroserve_feast::{FeastNames, FeastProject, RedisStoreConfig, SerializationVersion};
use ferroserve_features::{
    ColumnValues, Declaration, Feature, FeatureStore, FeatureTable, FeatureValue, FeatureView,
    JoinPlan, KeyColumn, KeyKind, MissingPolicy, ModelInput, ModelInputAssembly, ModelSignature,
    RequestInput, Segment, TableBuilder,
};
use ferroserve_frontend::RemoteJoin;
use ferroserve_runtime::FeatureJoin;
use ferroserve_tensor::DataType;
use numpy::PyReadonlyArray1;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};

use crate::exceptions::InvalidInputError;
use crate::feast::RedisJoin;
use crate::gil::{Work, without_gil};

pub(crate) fn invalid(message: impl std::fmt::Display) -> PyErr {
    InvalidInputError::new_err(message.to_string())
}

/// `dict[key]`, or an error naming the key and `what` it belongs to.
pub(crate) fn item<'py>(
    dict: &Bound<'py, PyDict>,
    key: &str,
    what: &str,
) -> PyResult<Bound<'py, PyAny>> {
    dict.get_item(key)?
        .ok_or_else(|| invalid(format!("{what}: '{key}' is missing")))
}

fn datatype(name: &str, what: &str) -> PyResult<DataType> {
    name.parse()
        .map_err(|_| invalid(format!("{what}: '{name}' is not a v2 datatype")))
}

/// A default value of `datatype` from a Python number.
fn default_value(
    value: &Bound<'_, PyAny>,
    datatype: DataType,
    what: &str,
) -> PyResult<FeatureValue> {
    Ok(match datatype {
        DataType::Fp32 => FeatureValue::Fp32(value.extract::<f64>()? as f32),
        DataType::Fp64 => FeatureValue::Fp64(value.extract()?),
        DataType::Int64 => FeatureValue::Int64(value.extract()?),
        DataType::Int32 => FeatureValue::Int32(value.extract()?),
        other => {
            return Err(invalid(format!(
                "{what}: a feature is FP32, FP64, INT64 or INT32, not {other}"
            )));
        }
    })
}

pub(crate) fn request_input(entry: &Bound<'_, PyDict>) -> PyResult<RequestInput> {
    let name: String = item(entry, "name", "request input")?.extract()?;
    let what = format!("request input '{name}'");
    Ok(RequestInput {
        datatype: datatype(&item(entry, "datatype", &what)?.extract::<String>()?, &what)?,
        columns: item(entry, "columns", &what)?.extract()?,
        name,
    })
}

pub(crate) fn feature_view(entry: &Bound<'_, PyDict>) -> PyResult<FeatureView> {
    let name: String = item(entry, "name", "feature view")?.extract()?;
    let what = format!("feature view '{name}'");
    let features = item(entry, "features", &what)?
        .cast_into::<PyList>()?
        .iter()
        .map(|feature| {
            let feature = feature.cast_into::<PyDict>()?;
            let feature_name: String = item(&feature, "name", &what)?.extract()?;
            let where_ = format!("{what} feature '{feature_name}'");
            let datatype = datatype(
                &item(&feature, "datatype", &where_)?.extract::<String>()?,
                &where_,
            )?;
            let default = match feature.get_item("default")? {
                Some(value) if !value.is_none() => default_value(&value, datatype, &where_)?,
                _ => FeatureValue::zero(datatype).ok_or_else(|| {
                    invalid(format!("{where_}: a feature is FP32, FP64, INT64 or INT32"))
                })?,
            };
            Ok(Feature {
                name: feature_name,
                datatype,
                default,
            })
        })
        .collect::<PyResult<Vec<_>>>()?;
    let max_age = match entry.get_item("max_age_s")? {
        Some(value) if !value.is_none() => {
            let seconds: f64 = value.extract()?;
            Some(Duration::try_from_secs_f64(seconds).map_err(|_| {
                invalid(format!(
                    "{what}: max_age_s must be a positive number of seconds"
                ))
            })?)
        }
        _ => None,
    };
    let on_missing = match entry.get_item("on_missing")? {
        None => MissingPolicy::UseDefault,
        Some(value) => match value.extract::<String>()?.as_str() {
            "default" => MissingPolicy::UseDefault,
            "reject" => MissingPolicy::Reject,
            other => {
                return Err(invalid(format!(
                    "{what}: on_missing is 'default' or 'reject', got '{other}'"
                )));
            }
        },
    };
    Ok(FeatureView {
        key: item(entry, "key", &what)?.extract()?,
        name,
        features,
        max_age,
        on_missing,
    })
}

fn assembly(entry: &Bound<'_, PyDict>) -> PyResult<ModelInputAssembly> {
    let model_input: String = item(entry, "model_input", "assembly")?.extract()?;
    let what = format!("assembly of model input '{model_input}'");
    let segments = item(entry, "segments", &what)?
        .cast_into::<PyList>()?
        .iter()
        .map(|segment| {
            let segment = segment.cast_into::<PyDict>()?;
            match (
                segment.get_item("request_input")?,
                segment.get_item("view")?,
            ) {
                (Some(name), None) => Ok(Segment::RequestInput(name.extract()?)),
                (None, Some(name)) => Ok(Segment::View(name.extract()?)),
                _ => Err(invalid(format!(
                    "{what}: a segment is {{'request_input': name}} or {{'view': name}}"
                ))),
            }
        })
        .collect::<PyResult<Vec<_>>>()?;
    Ok(ModelInputAssembly {
        model_input,
        segments,
    })
}

pub(crate) fn list_of<T>(
    declaration: &Bound<'_, PyDict>,
    key: &str,
    convert: impl Fn(&Bound<'_, PyDict>) -> PyResult<T>,
) -> PyResult<Vec<T>> {
    match declaration.get_item(key)? {
        None => Ok(Vec::new()),
        Some(list) => list
            .cast_into::<PyList>()?
            .iter()
            .map(|entry| convert(&entry.cast_into::<PyDict>()?))
            .collect(),
    }
}

/// A model's feature declaration compiled against its graph inputs.
#[pyclass(frozen, module = "ferroserve._core")]
pub(crate) struct FeaturePlan {
    pub(crate) plan: Arc<JoinPlan>,
}

#[pymethods]
impl FeaturePlan {
    /// Compiles `declaration` (a dict: request_inputs, views, assembly; see
    /// docs/features.md) against `model_inputs`: the graph inputs as (name, datatype, dims
    /// without the batch dim). InvalidInputError says what to change.
    #[new]
    fn new(
        declaration: &Bound<'_, PyDict>,
        model_inputs: Vec<(String, String, Vec<i64>)>,
    ) -> PyResult<Self> {
        let declaration = Declaration {
            request_inputs: list_of(declaration, "request_inputs", request_input)?,
            views: list_of(declaration, "views", feature_view)?,
            assembly: list_of(declaration, "assembly", assembly)?,
        };
        let signature = ModelSignature {
            inputs: model_inputs
                .into_iter()
                .map(|(name, type_name, dims)| {
                    let what = format!("model input '{name}'");
                    Ok(ModelInput {
                        datatype: datatype(&type_name, &what)?,
                        name,
                        dims,
                    })
                })
                .collect::<PyResult<Vec<_>>>()?,
        };
        let plan = JoinPlan::compile(&declaration, &signature).map_err(invalid)?;
        Ok(FeaturePlan {
            plan: Arc::new(plan),
        })
    }

    /// What clients send: (name, datatype, columns), in the order requests are queued.
    #[getter]
    fn request_inputs(&self) -> Vec<(String, &'static str, usize)> {
        self.plan
            .request_inputs()
            .iter()
            .map(|input| (input.name.clone(), input.datatype.as_str(), input.columns))
            .collect()
    }

    /// The graph inputs the join writes, in the order the executor runs them.
    #[getter]
    fn model_inputs(&self) -> Vec<String> {
        self.plan
            .model_inputs()
            .iter()
            .map(|input| input.name().to_owned())
            .collect()
    }

    /// The feature views, in plan order.
    #[getter]
    fn views(&self) -> Vec<String> {
        self.plan
            .view_layouts()
            .iter()
            .map(|layout| layout.view().to_owned())
            .collect()
    }

    /// A view's key parts (name, datatype), features (name, datatype) and whether it has a max
    /// age (its snapshots then need event times).
    #[allow(clippy::type_complexity)]
    fn view_columns(
        &self,
        view: &str,
    ) -> PyResult<(
        Vec<(String, &'static str)>,
        Vec<(String, &'static str)>,
        bool,
    )> {
        let layout = self
            .plan
            .view_layout(view)
            .ok_or_else(|| invalid(format!("no feature view '{view}'")))?;
        let key = layout
            .key()
            .iter()
            .map(|part| {
                let kind = match part.kind {
                    KeyKind::Int64 => "INT64",
                    KeyKind::Bytes => "BYTES",
                };
                (part.name.clone(), kind)
            })
            .collect();
        let features = layout
            .features()
            .iter()
            .map(|slot| (slot.name.clone(), slot.datatype.as_str()))
            .collect();
        Ok((key, features, layout.max_age_us().is_some()))
    }

    /// The lookup counters: {"views": {view: {lookups, hits, misses, stale, unavailable,
    /// rejected, latency: (counts per bucket of LOOKUP_BUCKETS_NS with a last +Inf one, total
    /// ns)}}, "gathers", "rows", "gather_ns"}.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let snapshot = self.plan.stats().snapshot();
        let views = PyDict::new(py);
        for view in &snapshot.views {
            let counts = PyDict::new(py);
            counts.set_item("lookups", view.lookups)?;
            counts.set_item("hits", view.hits)?;
            counts.set_item("misses", view.misses)?;
            counts.set_item("stale", view.stale)?;
            counts.set_item("unavailable", view.unavailable)?;
            counts.set_item("rejected", view.rejected)?;
            counts.set_item(
                "latency",
                (view.latency.counts.clone(), view.latency.sum_ns),
            )?;
            views.set_item(&view.view, counts)?;
        }
        let out = PyDict::new(py);
        out.set_item("views", views)?;
        out.set_item("gathers", snapshot.gathers)?;
        out.set_item("rows", snapshot.rows)?;
        out.set_item("gather_ns", snapshot.gather_ns)?;
        Ok(out)
    }
}

/// One view's snapshot, built and ready to install.
#[pyclass(name = "FeatureTable", frozen, module = "ferroserve._core")]
pub(crate) struct PyFeatureTable {
    table: std::sync::Mutex<Option<FeatureTable>>,
    /// Rows (distinct keys).
    #[pyo3(get)]
    rows: usize,
    /// Bytes it holds: values, keys and index, event times.
    #[pyo3(get)]
    memory_bytes: usize,
    /// Rows dropped because a later (or newer) row had the same key.
    #[pyo3(get)]
    duplicate_keys: usize,
}

/// The embedded feature store of one model version: one table per view, swapped atomically.
#[pyclass(name = "FeatureStore", frozen, module = "ferroserve._core")]
pub(crate) struct PyFeatureStore {
    plan: Arc<JoinPlan>,
    store: Arc<FeatureStore>,
    /// The per-request join of the views in Redis; None when every view is embedded.
    redis: Option<RedisJoin>,
}

/// A Feast project from its name and `entity_key_serialization_version`.
pub(crate) fn feast_project(name: String, serialization_version: u32) -> PyResult<FeastProject> {
    Ok(FeastProject {
        name,
        serialization_version: SerializationVersion::from_number(serialization_version)
            .map_err(invalid)?,
    })
}

/// Feast's names of a view, from its entry in the `views` of the `redis` dict: {name?,
/// features?}.
pub(crate) fn feast_names(names: &Bound<'_, PyDict>) -> PyResult<FeastNames> {
    Ok(FeastNames {
        view: names.get_item("name")?.map(|v| v.extract()).transpose()?,
        features: names
            .get_item("features")?
            .map(|v| v.extract())
            .transpose()?,
        join_keys: None,
    })
}

/// The join of `plan`'s Redis views from the `redis` dict of `FeatureStore(plan, redis)`.
fn remote_join(
    plan: &Arc<JoinPlan>,
    store: &Arc<FeatureStore>,
    redis: &Bound<'_, PyDict>,
) -> PyResult<RemoteJoin> {
    let what = "redis";
    let url: String = item(redis, "url", what)?.extract()?;
    let timeout_ms: u64 = item(redis, "timeout_ms", what)?.extract()?;
    let project = feast_project(
        item(redis, "project", what)?.extract()?,
        item(redis, "serialization_version", what)?.extract()?,
    )?;
    let mut views = Vec::new();
    for (view, names) in item(redis, "views", what)?.cast_into::<PyDict>()?.iter() {
        views.push((view.extract()?, feast_names(&names.cast_into::<PyDict>()?)?));
    }
    let config = RedisStoreConfig {
        url,
        timeout: Duration::from_millis(timeout_ms),
    };
    RemoteJoin::new(
        Arc::clone(plan),
        Arc::clone(store),
        config,
        &project,
        &views,
    )
    .map_err(invalid)
}

/// A key column's values in the raw BYTES layout: each element a 4-byte little-endian length
/// and its bytes (str elements as UTF-8).
pub(crate) fn bytes_key_column(
    values: &Bound<'_, PyAny>,
    name: &str,
) -> PyResult<(Vec<u8>, usize)> {
    let mut raw = Vec::new();
    let mut count = 0;
    for value in values.try_iter()? {
        let value = value?;
        let element: &[u8] = if let Ok(bytes) = value.cast::<PyBytes>() {
            bytes.as_bytes()
        } else if let Ok(text) = value.cast::<PyString>() {
            text.to_str()?.as_bytes()
        } else {
            return Err(invalid(format!(
                "key column '{name}' holds a {}; a BYTES key is bytes or str",
                value.get_type().name()?
            )));
        };
        let length = u32::try_from(element.len())
            .map_err(|_| invalid(format!("key column '{name}': a key of 4 GiB or more")))?;
        raw.extend_from_slice(&length.to_le_bytes());
        raw.extend_from_slice(element);
        count += 1;
    }
    Ok((raw, count))
}

/// A numeric column borrowed from a numpy array of exactly the feature's dtype.
pub(crate) enum Column<'py> {
    Fp32(PyReadonlyArray1<'py, f32>),
    Fp64(PyReadonlyArray1<'py, f64>),
    Int64(PyReadonlyArray1<'py, i64>),
    Int32(PyReadonlyArray1<'py, i32>),
}

impl<'py> Column<'py> {
    pub(crate) fn extract(
        values: &Bound<'py, PyAny>,
        datatype: DataType,
        name: &str,
    ) -> PyResult<Self> {
        let wrong = || {
            invalid(format!(
                "feature column '{name}' must be a 1-D numpy array of {datatype} \
                 (convert it with numpy first)"
            ))
        };
        Ok(match datatype {
            DataType::Fp32 => Column::Fp32(values.extract().map_err(|_| wrong())?),
            DataType::Fp64 => Column::Fp64(values.extract().map_err(|_| wrong())?),
            DataType::Int64 => Column::Int64(values.extract().map_err(|_| wrong())?),
            DataType::Int32 => Column::Int32(values.extract().map_err(|_| wrong())?),
            _ => return Err(wrong()),
        })
    }

    pub(crate) fn values(&self, name: &str) -> PyResult<ColumnValues<'_>> {
        let contiguous = |_| invalid(format!("feature column '{name}' must be C-contiguous"));
        Ok(match self {
            Column::Fp32(array) => ColumnValues::Fp32(array.as_slice().map_err(contiguous)?),
            Column::Fp64(array) => ColumnValues::Fp64(array.as_slice().map_err(contiguous)?),
            Column::Int64(array) => ColumnValues::Int64(array.as_slice().map_err(contiguous)?),
            Column::Int32(array) => ColumnValues::Int32(array.as_slice().map_err(contiguous)?),
        })
    }
}

/// One request's graph inputs for Python: a buffer per graph input and its shape, in the plan's
/// model-input order.
type GraphInputs<'py> = (Vec<Bound<'py, PyBytes>>, Vec<Vec<i64>>);

#[pymethods]
impl PyFeatureStore {
    /// An empty store for `plan`'s views (a batch before the first install fails: load the
    /// snapshots before serving). With `redis` ({url, project, timeout_ms,
    /// serialization_version, views: {view: {name?, features?}}}), the views named there are
    /// read from Redis in Feast's layout by the front end per request (Feast's view and
    /// feature names where given), the others from this store.
    #[new]
    #[pyo3(signature = (plan, redis = None))]
    fn new(plan: &FeaturePlan, redis: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        let store = Arc::new(FeatureStore::new(plan.plan.view_layouts()));
        let redis = redis
            .map(|redis| remote_join(&plan.plan, &store, redis).map(RedisJoin::new))
            .transpose()?;
        Ok(PyFeatureStore {
            store,
            plan: Arc::clone(&plan.plan),
            redis,
        })
    }

    /// Whether some views are read from Redis (each request is then joined before it is
    /// queued: by the native route, or by `join` for the Python server).
    #[getter]
    fn remote(&self) -> bool {
        self.redis.is_some()
    }

    /// The graph inputs of one request for a store with Redis views, joined as the native
    /// front end joins them, through a Redis connection of the Python server's own. Blocks
    /// without the GIL up to about the store's timeout: call it from a worker thread.
    #[pyo3(name = "join")]
    fn join_request<'py>(
        &self,
        py: Python<'py>,
        request: Vec<PyBackedBytes>,
        rows: usize,
    ) -> PyResult<GraphInputs<'py>> {
        let redis = self
            .redis
            .as_ref()
            .ok_or_else(|| invalid("the store has no Redis views: its executor joins"))?;
        let request: Vec<&[u8]> = request.iter().map(|buffer| &buffer[..]).collect();
        let joined = without_gil(py, Work::Blocking, || redis.join(&request, rows))?;
        let buffers = joined
            .buffers
            .iter()
            .map(|buffer| PyBytes::new(py, buffer))
            .collect();
        Ok((buffers, joined.shapes))
    }

    /// The Redis store's counters: {calls, round_trips, rows, found, missing, unavailable,
    /// timeouts, errors, connection_errors, protocol_errors, bad_rows, null_values}, its state
    /// (connected: whether Redis answered the last call, None before the first; last_answer_us;
    /// last_failure: {kind, message, at_us} or None); None without Redis views.
    fn redis_stats<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some(redis) = &self.redis else {
            return Ok(None);
        };
        let stats = redis.stats();
        let out = PyDict::new(py);
        out.set_item("calls", stats.calls)?;
        out.set_item("round_trips", stats.round_trips)?;
        out.set_item("rows", stats.rows)?;
        out.set_item("found", stats.found)?;
        out.set_item("missing", stats.missing)?;
        out.set_item("unavailable", stats.unavailable)?;
        out.set_item("timeouts", stats.timeouts)?;
        out.set_item("errors", stats.errors)?;
        out.set_item("connection_errors", stats.connection_errors)?;
        out.set_item("protocol_errors", stats.protocol_errors)?;
        out.set_item("bad_rows", stats.bad_rows)?;
        out.set_item("null_values", stats.null_values)?;
        out.set_item("connected", stats.connected())?;
        out.set_item("last_answer_us", stats.last_answer_us)?;
        let failure = match &stats.last_failure {
            None => None,
            Some(failure) => {
                let entry = PyDict::new(py);
                entry.set_item("kind", failure.kind.name())?;
                entry.set_item("message", &failure.message)?;
                entry.set_item("at_us", failure.at_us)?;
                Some(entry)
            }
        };
        out.set_item("last_failure", failure)?;
        Ok(Some(out))
    }

    /// Builds view `view`'s table from columns: `keys` by key part (int64 arrays for INT64
    /// parts, sequences of bytes or str for BYTES parts), `features` by name (1-D arrays of
    /// exactly the feature's dtype), `event_times_us` (int64 Unix microseconds) when given.
    /// The build runs without the GIL.
    #[pyo3(signature = (view, keys, features, event_times_us = None))]
    fn build(
        &self,
        py: Python<'_>,
        view: &str,
        keys: &Bound<'_, PyDict>,
        features: &Bound<'_, PyDict>,
        event_times_us: Option<PyReadonlyArray1<'_, i64>>,
    ) -> PyResult<PyFeatureTable> {
        let layout = self
            .plan
            .view_layout(view)
            .ok_or_else(|| invalid(format!("no feature view '{view}'")))?;
        // Key columns: INT64 ones borrowed, BYTES ones framed here.
        let mut int_keys = Vec::new();
        let mut byte_keys = Vec::new();
        for part in layout.key() {
            let values = keys.get_item(&part.name)?.ok_or_else(|| {
                invalid(format!(
                    "feature view '{view}': key column '{}' is missing",
                    part.name
                ))
            })?;
            match part.kind {
                KeyKind::Int64 => {
                    let array: PyReadonlyArray1<'_, i64> = values.extract().map_err(|_| {
                        invalid(format!(
                            "key column '{}' must be a 1-D numpy array of int64",
                            part.name
                        ))
                    })?;
                    int_keys.push((part.name.clone(), array));
                }
                KeyKind::Bytes => {
                    byte_keys.push((part.name.clone(), bytes_key_column(&values, &part.name)?))
                }
            }
        }
        let mut columns = Vec::new();
        for slot in layout.features() {
            let values = features.get_item(&slot.name)?.ok_or_else(|| {
                invalid(format!(
                    "feature view '{view}': feature column '{}' is missing",
                    slot.name
                ))
            })?;
            columns.push((
                slot.name.clone(),
                Column::extract(&values, slot.datatype, &slot.name)?,
            ));
        }
        let mut builder = TableBuilder::new(layout);
        for (name, array) in &int_keys {
            let values = array
                .as_slice()
                .map_err(|_| invalid(format!("key column '{name}' must be C-contiguous")))?;
            builder = builder
                .key(name, KeyColumn::Int64(values))
                .map_err(invalid)?;
        }
        for (name, (raw, count)) in &byte_keys {
            builder = builder
                .key(name, KeyColumn::Bytes { raw, count: *count })
                .map_err(invalid)?;
        }
        for (name, column) in &columns {
            builder = builder
                .feature(name, column.values(name)?)
                .map_err(invalid)?;
        }
        if let Some(times) = &event_times_us {
            let times = times
                .as_slice()
                .map_err(|_| invalid("event_times_us must be C-contiguous"))?;
            builder = builder.event_times_us(times);
        }
        let table = py.detach(|| builder.build()).map_err(invalid)?;
        Ok(PyFeatureTable {
            rows: table.rows(),
            memory_bytes: table.memory().total(),
            duplicate_keys: table.duplicate_keys(),
            table: std::sync::Mutex::new(Some(table)),
        })
    }

    /// Installs `tables` (each built by `build`, installed once) in one atomic swap: a batch
    /// sees every table of the old snapshot or every one of the new. Returns the generation.
    fn install(&self, tables: Vec<Bound<'_, PyFeatureTable>>) -> PyResult<u64> {
        let mut taken = Vec::with_capacity(tables.len());
        for table in &tables {
            let table = table
                .get()
                .table
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take()
                .ok_or_else(|| invalid("a FeatureTable can be installed once"))?;
            taken.push(table);
        }
        self.store.install(taken).map_err(invalid)
    }

    /// Per view: {"view", "loaded", "rows", "memory_bytes", "values_bytes", "duplicate_keys",
    /// "oldest_us", "newest_us", "generation"}.
    fn status<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let snapshot = self.store.load();
        let rows = PyList::empty(py);
        for (layout, table) in self.plan.view_layouts().iter().zip(snapshot.tables()) {
            let entry = PyDict::new(py);
            entry.set_item("view", layout.view())?;
            entry.set_item("loaded", table.is_some())?;
            entry.set_item("generation", snapshot.generation())?;
            let range = table.and_then(FeatureTable::event_time_range_us);
            entry.set_item("rows", table.map_or(0, FeatureTable::rows))?;
            entry.set_item("memory_bytes", table.map_or(0, |t| t.memory().total()))?;
            entry.set_item("values_bytes", table.map_or(0, |t| t.memory().values))?;
            entry.set_item(
                "duplicate_keys",
                table.map_or(0, FeatureTable::duplicate_keys),
            )?;
            entry.set_item("oldest_us", range.map(|(oldest, _)| oldest))?;
            entry.set_item("newest_us", range.map(|(_, newest)| newest))?;
            rows.append(entry)?;
        }
        Ok(rows)
    }
}

impl PyFeatureStore {
    /// The per-request join of a store with Redis views.
    pub(crate) fn remote_join(&self) -> Option<Arc<RemoteJoin>> {
        self.redis.as_ref().map(RedisJoin::remote_join)
    }

    /// The join an executor runs with this store.
    pub(crate) fn join(&self) -> FeatureJoin {
        FeatureJoin {
            plan: Arc::clone(&self.plan),
            store: Arc::clone(&self.store),
        }
    }
}
