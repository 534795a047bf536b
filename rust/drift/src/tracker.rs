//! The hot path: one `DriftTracker` per model version, shared by its executor threads, each of
//! which holds its own `Recorder` and counts every executed (sampled) batch into its own
//! counters. No lock, no allocation, no counter written by two threads.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ferroserve_tensor::DataType;

use crate::bins::{Binner, EXTRA_SLOTS};
use crate::error::{ObserveError, ProfileError, RecorderError};
use crate::profile::ColumnProfile;
use crate::scan::{bump_by, count_column};
use crate::window::{WindowPolicy, WindowState};

/// Datatypes a numeric column can have.
pub const NUMERIC_DATATYPES: &str =
    "FP32, BF16, FP64, INT64, INT32, INT16, INT8, UINT32, UINT16, UINT8 or BOOL";
/// Datatypes a categorical column can have.
pub const CATEGORICAL_DATATYPES: &str = "INT64, INT32, INT16, INT8, UINT32, UINT16, UINT8 or BOOL";

/// One monitored column: where it sits in the tensors the executor passes, and its reference.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitoredColumn {
    /// Its name in reports and metrics (e.g. `input0[3]` or a feature name).
    pub name: String,
    /// Index of its tensor in the slice passed to `Recorder::observe`.
    pub tensor: usize,
    /// Its index along the tensor's feature axis (dim 1); 0 for a `[batch]` tensor.
    pub column: usize,
    /// The tensor's datatype.
    pub datatype: DataType,
    /// Its reference profile.
    pub profile: ColumnProfile,
}

/// How a model version's drift is tracked.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackerConfig {
    /// The monitored columns, in report order.
    pub columns: Vec<MonitoredColumn>,
    /// Executor threads (engine instances): one recorder each.
    pub instances: usize,
    /// When the tumbling window rolls.
    pub window: WindowPolicy,
    /// Count every Nth batch of each executor thread (1: every batch).
    pub sample_every: u32,
}

/// A batch tensor as the executor holds it: raw little-endian values, row-major.
#[derive(Debug, Clone, Copy)]
pub struct TensorView<'a> {
    /// Its datatype.
    pub datatype: DataType,
    /// `[batch, features]` or `[batch]`.
    pub shape: &'a [i64],
    /// `batch * features` values.
    pub data: &'a [u8],
}

/// A monitored column compiled for counting.
#[derive(Debug)]
pub(crate) struct ColumnPlan {
    tensor: usize,
    /// Its index on the feature axis.
    pub(crate) column: usize,
    /// Its tensor's datatype.
    pub(crate) datatype: DataType,
    /// Its edges or categories.
    pub(crate) binner: Binner,
    /// First slot of this column in an instance's counters.
    offset: usize,
    /// Its bins (its slots are `bins + EXTRA_SLOTS`).
    bins: usize,
}

/// What a referenced tensor must look like.
#[derive(Debug, Clone, Copy)]
struct TensorPlan {
    datatype: DataType,
    /// The highest monitored column index in it.
    max_column: usize,
}

/// One executor thread's counters: written by its recorder only, read by anyone.
#[derive(Debug)]
pub(crate) struct Instance {
    /// Every column's slots, then rows, then batches. Cumulative since load, never reset
    /// (windows are differences of snapshots), so every value is in exactly one window.
    pub(crate) counters: Box<[AtomicU64]>,
    /// Whether a recorder holds this instance.
    claimed: AtomicBool,
}

/// Drift tracking of one model version: its columns and profiles, the counters of each
/// executor thread, and the windows. Share it in an `Arc`; hand each executor thread a
/// `Recorder`; read windows with `snapshot` (see the crate doc).
#[derive(Debug)]
pub struct DriftTracker {
    columns: Box<[ColumnPlan]>,
    /// Indexed by tensor; `None` for tensors no column reads.
    tensors: Box<[Option<TensorPlan>]>,
    pub(crate) names: Box<[String]>,
    pub(crate) profiles: Box<[ColumnProfile]>,
    pub(crate) profile_id: u64,
    /// Counter slots of all columns (the rows and batches counters follow).
    pub(crate) slots: usize,
    pub(crate) instances: Box<[Instance]>,
    sample_every: u64,
    pub(crate) window: WindowPolicy,
    /// When the tracker was made: time windows roll at multiples of their duration from here.
    pub(crate) origin: Instant,
    /// Rows counted by all recorders (row windows roll on it).
    pub(crate) observed_rows: AtomicU64,
    /// The `observed_rows` or nanoseconds since `origin` at which the window is due to roll;
    /// checked without the lock, rechecked under it.
    pub(crate) roll_at: AtomicU64,
    /// Window starts and the last closed window: taken once per roll and by readers, never
    /// per value.
    pub(crate) state: Mutex<WindowState>,
}

impl DriftTracker {
    /// Checks `config` (profiles, datatypes, names) and builds the tracker.
    pub fn new(config: TrackerConfig) -> Result<Arc<DriftTracker>, ProfileError> {
        if config.instances == 0 {
            return Err(ProfileError::NoInstances);
        }
        if config.sample_every == 0 {
            return Err(ProfileError::NoSampling);
        }
        config.window.validate()?;
        let mut columns = Vec::with_capacity(config.columns.len());
        let mut tensors: Vec<Option<(TensorPlan, usize)>> = Vec::new();
        let mut offset = 0;
        for (index, monitored) in config.columns.iter().enumerate() {
            let name = &monitored.name;
            if config.columns[..index]
                .iter()
                .any(|other| &other.name == name)
            {
                return Err(ProfileError::DuplicateColumn {
                    column: name.clone(),
                });
            }
            monitored.profile.validate(name)?;
            check_datatype(monitored)?;
            if tensors.len() <= monitored.tensor {
                tensors.resize(monitored.tensor + 1, None);
            }
            let entry = &mut tensors[monitored.tensor];
            match entry {
                Some((plan, first)) if plan.datatype != monitored.datatype => {
                    return Err(ProfileError::MixedDatatypes {
                        tensor: monitored.tensor,
                        first: config.columns[*first].name.clone(),
                        first_datatype: plan.datatype,
                        second: name.clone(),
                        second_datatype: monitored.datatype,
                    });
                }
                Some((plan, _)) => plan.max_column = plan.max_column.max(monitored.column),
                None => {
                    *entry = Some((
                        TensorPlan {
                            datatype: monitored.datatype,
                            max_column: monitored.column,
                        },
                        index,
                    ));
                }
            }
            let bins = monitored.profile.bins();
            columns.push(ColumnPlan {
                tensor: monitored.tensor,
                column: monitored.column,
                datatype: monitored.datatype,
                binner: Binner::new(&monitored.profile, monitored.datatype),
                offset,
                bins,
            });
            offset += bins + EXTRA_SLOTS;
        }
        let slots = offset;
        let instances = (0..config.instances)
            .map(|_| Instance {
                counters: (0..slots + 2).map(|_| AtomicU64::new(0)).collect(),
                claimed: AtomicBool::new(false),
            })
            .collect();
        let names: Box<[String]> = config.columns.iter().map(|c| c.name.clone()).collect();
        let profiles: Box<[ColumnProfile]> =
            config.columns.iter().map(|c| c.profile.clone()).collect();
        let origin = Instant::now();
        Ok(Arc::new(DriftTracker {
            columns: columns.into_boxed_slice(),
            tensors: tensors
                .into_iter()
                .map(|t| t.map(|(plan, _)| plan))
                .collect(),
            profile_id: profile_id(&config.columns),
            names,
            profiles,
            slots,
            instances,
            sample_every: u64::from(config.sample_every),
            roll_at: AtomicU64::new(config.window.first_roll()),
            window: config.window,
            origin,
            observed_rows: AtomicU64::new(0),
            state: Mutex::new(WindowState::new(slots + 2, origin)),
        }))
    }

    /// The recorder of executor thread `instance`; one at a time per instance (dropping it
    /// frees the instance for a restarted thread, which carries on its counters).
    pub fn recorder(self: &Arc<Self>, instance: usize) -> Result<Recorder, RecorderError> {
        let slot = self
            .instances
            .get(instance)
            .ok_or(RecorderError::NoSuchInstance {
                instance,
                instances: self.instances.len(),
            })?;
        if slot.claimed.swap(true, Ordering::AcqRel) {
            return Err(RecorderError::Taken { instance });
        }
        Ok(Recorder {
            tracker: Arc::clone(self),
            instance,
            skip: 0,
        })
    }

    /// The monitored columns' names, in order.
    pub fn column_names(&self) -> &[String] {
        &self.names
    }

    /// The monitored columns' profiles, in order.
    pub fn profiles(&self) -> &[ColumnProfile] {
        &self.profiles
    }

    /// A fingerprint of the columns and profiles (FNV-1a over names, kinds, edges, categories
    /// and reference counts): window counts carry it so counts of different profiles never
    /// merge. Stable across builds and machines.
    pub fn profile_id(&self) -> u64 {
        self.profile_id
    }

    /// Checks the tensors against the plan; the batch's rows.
    fn check(&self, tensors: &[TensorView<'_>]) -> Result<usize, ObserveError> {
        let mut first: Option<(usize, usize)> = None;
        for (index, plan) in self.tensors.iter().enumerate() {
            let Some(plan) = plan else { continue };
            let view = tensors.get(index).ok_or(ObserveError::MissingTensor {
                given: tensors.len(),
                needed: self.tensors.len() - 1,
            })?;
            if view.datatype != plan.datatype {
                return Err(ObserveError::Datatype {
                    tensor: index,
                    expected: plan.datatype,
                    actual: view.datatype,
                });
            }
            let (rows, features) = dims(index, view)?;
            if features <= plan.max_column {
                return Err(ObserveError::Column {
                    tensor: index,
                    features,
                    column: plan.max_column,
                });
            }
            // Checked at build: every tracked datatype has a fixed size.
            let size = plan.datatype.element_size().unwrap_or(1);
            let expected = rows
                .checked_mul(features)
                .and_then(|values| values.checked_mul(size))
                .unwrap_or(usize::MAX);
            if view.data.len() != expected {
                return Err(ObserveError::Length {
                    tensor: index,
                    expected,
                    actual: view.data.len(),
                });
            }
            match first {
                None => first = Some((index, rows)),
                Some((first_tensor, first_rows)) if first_rows != rows => {
                    return Err(ObserveError::Rows {
                        tensor: index,
                        rows,
                        first_tensor,
                        first_rows,
                    });
                }
                Some(_) => {}
            }
        }
        Ok(first.map_or(0, |(_, rows)| rows))
    }
}

/// One executor thread's handle: the only writer of its instance's counters.
#[derive(Debug)]
pub struct Recorder {
    tracker: Arc<DriftTracker>,
    instance: usize,
    /// Batches to skip before the next counted one (sampling).
    skip: u64,
}

impl Recorder {
    /// Counts one executed batch, unless sampling skips it; whether it was counted. `tensors`
    /// are the batch's tensors in the order the columns were mapped with; `now` is the
    /// executor's clock reading after the batch (time windows roll on it). A batch that does
    /// not fit is not counted at all.
    ///
    /// Cost: per monitored value one load, one binary search over the column's edges (or
    /// categories) and one increment of a counter only this thread writes; per batch one
    /// shared atomic add (row windows) or one clock comparison (time windows).
    pub fn observe(
        &mut self,
        tensors: &[TensorView<'_>],
        now: Instant,
    ) -> Result<bool, ObserveError> {
        if self.skip > 0 {
            self.skip -= 1;
            return Ok(false);
        }
        self.skip = self.tracker.sample_every - 1;
        let tracker = &*self.tracker;
        let rows = tracker.check(tensors)?;
        let counters = &tracker.instances[self.instance].counters;
        for plan in &tracker.columns {
            let Some(view) = tensors.get(plan.tensor) else {
                continue;
            };
            let Some(slots) = counters.get(plan.offset..plan.offset + plan.bins + EXTRA_SLOTS)
            else {
                continue;
            };
            count_column(plan, view, slots);
        }
        let rows64 = rows as u64;
        bump_by(&counters[tracker.slots], rows64);
        bump_by(&counters[tracker.slots + 1], 1);
        tracker.after_batch(rows64, now);
        Ok(true)
    }

    /// The tracker this recorder counts into.
    pub fn tracker(&self) -> &Arc<DriftTracker> {
        &self.tracker
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.tracker.instances[self.instance]
            .claimed
            .store(false, Ordering::Release);
    }
}

/// Rows and features of a `[batch]` or `[batch, features]` tensor.
fn dims(tensor: usize, view: &TensorView<'_>) -> Result<(usize, usize), ObserveError> {
    let dim = |d: i64| usize::try_from(d).unwrap_or(usize::MAX);
    match *view.shape {
        [rows] => Ok((dim(rows), 1)),
        [rows, features] => Ok((dim(rows), dim(features))),
        _ => Err(ObserveError::Rank {
            tensor,
            dims: view.shape.len(),
        }),
    }
}

/// Whether the column's datatype fits its profile kind.
fn check_datatype(column: &MonitoredColumn) -> Result<(), ProfileError> {
    use DataType::{Bf16, Bool, Fp32, Fp64, Int8, Int16, Int32, Int64, Uint8, Uint16, Uint32};
    let integer = matches!(
        column.datatype,
        Int64 | Int32 | Int16 | Int8 | Uint32 | Uint16 | Uint8 | Bool
    );
    let (fits, kind, supported) = match column.profile {
        ColumnProfile::Numeric(_) => (
            integer || matches!(column.datatype, Fp32 | Bf16 | Fp64),
            "numeric",
            NUMERIC_DATATYPES,
        ),
        ColumnProfile::Categorical(_) => (integer, "categorical", CATEGORICAL_DATATYPES),
    };
    if fits {
        Ok(())
    } else {
        Err(ProfileError::UnsupportedDatatype {
            column: column.name.clone(),
            datatype: column.datatype,
            kind,
            supported,
        })
    }
}

/// FNV-1a 64 over everything that decides how values are binned.
fn profile_id(columns: &[MonitoredColumn]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    let mut eat = |bytes: &[u8]| {
        for &byte in bytes {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for column in columns {
        eat(column.name.as_bytes());
        eat(&[0xff]);
        match &column.profile {
            ColumnProfile::Numeric(numeric) => {
                eat(b"n");
                numeric
                    .edges
                    .iter()
                    .for_each(|e| eat(&e.to_bits().to_le_bytes()));
                numeric.counts.iter().for_each(|c| eat(&c.to_le_bytes()));
            }
            ColumnProfile::Categorical(categorical) => {
                eat(b"c");
                categorical
                    .values
                    .iter()
                    .for_each(|v| eat(&v.to_le_bytes()));
                categorical
                    .counts
                    .iter()
                    .for_each(|c| eat(&c.to_le_bytes()));
            }
        }
    }
    hash
}
