//! The crate's errors, one enum per stage: a profile or tracker configuration that cannot be
//! used (at model load), a batch that does not fit the tracker (on the executor thread, without
//! allocating), and window counts that do not belong together (at merge or evaluation). Each
//! message says what to change.

use ferroserve_tensor::DataType;
use thiserror::Error;

/// Why a reference profile or a tracker configuration cannot be used; raised when the model
/// version loads.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ProfileError {
    /// A numeric profile was asked for with 0 bins.
    #[error("a numeric profile needs at least 1 bin: ask for 1 or more (10-32 is usual)")]
    NoBins,
    /// The reference values hold no finite value, so there is nothing to take quantiles of.
    #[error(
        "the reference values of column '{column}' hold no finite value ({values} values, all NaN or infinite): profile it from data with finite values, or do not monitor it"
    )]
    NoFiniteValues {
        /// The column.
        column: String,
        /// How many values there were.
        values: usize,
    },
    /// A categorical profile was asked for with top-K of 0.
    #[error("a categorical profile needs top_k >= 1: keep at least the most frequent value")]
    NoCategories,
    /// Bin edges that are not finite and strictly increasing.
    #[error(
        "column '{column}': bin edge {index} ({edge}) is not finite and greater than the one before it: edges must be finite and strictly increasing (merge equal edges)"
    )]
    BadEdge {
        /// The column.
        column: String,
        /// The edge's index.
        index: usize,
        /// The edge.
        edge: f64,
    },
    /// A count vector of the wrong length.
    #[error("column '{column}': {what} has {actual} entries where {expected} are needed ({why})")]
    CountLength {
        /// The column.
        column: String,
        /// Which counts ("reference bin counts", "reference category counts").
        what: &'static str,
        /// The length given.
        actual: usize,
        /// The length needed.
        expected: usize,
        /// Why that length.
        why: &'static str,
    },
    /// A mean, standard deviation, minimum or maximum that is not finite (or a negative std).
    #[error(
        "column '{column}': reference {what} is {value}: give the finite {what} of the finite reference values"
    )]
    BadMoment {
        /// The column.
        column: String,
        /// Which moment.
        what: &'static str,
        /// Its value.
        value: f64,
    },
    /// A category value listed twice.
    #[error("column '{column}': category {value} is listed twice: list each value once")]
    DuplicateCategory {
        /// The column.
        column: String,
        /// The repeated value.
        value: i64,
    },
    /// A reference profile with no rows at all.
    #[error("column '{column}': the reference counts are all 0: profile it from at least one row")]
    EmptyReference {
        /// The column.
        column: String,
    },
    /// Two monitored columns share a name.
    #[error("column '{column}' is monitored twice: give each monitored column a distinct name")]
    DuplicateColumn {
        /// The repeated name.
        column: String,
    },
    /// A column's datatype cannot be tracked with its profile kind.
    #[error("column '{column}' is {datatype}: {kind} columns can be {supported}")]
    UnsupportedDatatype {
        /// The column.
        column: String,
        /// Its datatype.
        datatype: DataType,
        /// "numeric" or "categorical".
        kind: &'static str,
        /// The datatypes that kind supports.
        supported: &'static str,
    },
    /// Two columns of one tensor were declared with different datatypes.
    #[error(
        "columns '{first}' ({first_datatype}) and '{second}' ({second_datatype}) are both in tensor {tensor}: one tensor has one datatype"
    )]
    MixedDatatypes {
        /// The tensor index.
        tensor: usize,
        /// A column.
        first: String,
        /// Its datatype.
        first_datatype: DataType,
        /// Another column of the same tensor.
        second: String,
        /// Its datatype.
        second_datatype: DataType,
    },
    /// A tracker with no executor instance.
    #[error("a drift tracker needs at least 1 instance (one per executor thread)")]
    NoInstances,
    /// Sampling every 0th batch.
    #[error("sample_every is 0: use 1 to count every batch, N to count every Nth")]
    NoSampling,
    /// A window of 0 rows or 0 time.
    #[error("the tumbling window is empty ({0}): give it at least 1 row or a non-zero duration")]
    EmptyWindow(&'static str),
}

/// Why a batch could not be counted. Raised on the executor thread without allocating; the
/// batch is not counted at all (never half of it), and the executor counts the failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ObserveError {
    /// Fewer tensors than the monitored columns refer to.
    #[error(
        "the drift tracker was given {given} tensors but its columns refer to tensor {needed}: pass the tensors in the order the columns were mapped with. This is a bug."
    )]
    MissingTensor {
        /// Tensors given.
        given: usize,
        /// The highest tensor index a column refers to.
        needed: usize,
    },
    /// A tensor of another datatype than its columns were declared with.
    #[error(
        "tensor {tensor} is {actual} but its monitored columns were declared {expected}: map the columns with the model's datatypes. This is a bug."
    )]
    Datatype {
        /// The tensor index.
        tensor: usize,
        /// The declared datatype.
        expected: DataType,
        /// The tensor's datatype.
        actual: DataType,
    },
    /// A tensor that is not [batch] or [batch, features].
    #[error(
        "tensor {tensor} has {dims} dims: drift tracks [batch, features] or [batch] tensors (reshape, or do not monitor it)"
    )]
    Rank {
        /// The tensor index.
        tensor: usize,
        /// Its number of dims.
        dims: usize,
    },
    /// A feature axis narrower than a monitored column needs.
    #[error(
        "tensor {tensor} has {features} features per row but a monitored column is at index {column}: map columns inside the feature axis. This is a bug."
    )]
    Column {
        /// The tensor index.
        tensor: usize,
        /// Its features per row.
        features: usize,
        /// The highest monitored column index.
        column: usize,
    },
    /// A buffer whose length does not match its shape.
    #[error(
        "tensor {tensor} holds {actual} bytes but its shape needs {expected}: pass the whole batch buffer. This is a bug."
    )]
    Length {
        /// The tensor index.
        tensor: usize,
        /// Bytes its shape needs.
        expected: usize,
        /// Bytes given.
        actual: usize,
    },
    /// Two tensors with different batch sizes.
    #[error(
        "tensor {tensor} has {rows} rows but tensor {first_tensor} has {first_rows}: the tensors of one batch share dim 0. This is a bug."
    )]
    Rows {
        /// The tensor index.
        tensor: usize,
        /// Its rows.
        rows: usize,
        /// The first tensor index.
        first_tensor: usize,
        /// Its rows.
        first_rows: usize,
    },
}

/// Why a recorder could not be handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RecorderError {
    /// An instance index past the tracker's instances.
    #[error(
        "instance {instance} is past the tracker's {instances} instances: create the tracker with one instance per executor thread"
    )]
    NoSuchInstance {
        /// The index asked for.
        instance: usize,
        /// The tracker's instances.
        instances: usize,
    },
    /// The instance's recorder is held already (one writer per instance keeps counting
    /// lock-free).
    #[error(
        "instance {instance} already has a recorder: each executor thread holds its own (drop the old one first)"
    )]
    Taken {
        /// The index asked for.
        instance: usize,
    },
}

/// Why window counts cannot be merged or evaluated together.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CountsError {
    /// Counts of two different profiles (another version, or a re-profiled one).
    #[error(
        "the counts were made with profile {actual:016x} but {expected:016x} is expected: merge and evaluate only counts of the same model version's profile"
    )]
    Profile {
        /// The expected profile id.
        expected: u64,
        /// The other counts' profile id.
        actual: u64,
    },
    /// Column names or bin counts that differ.
    #[error(
        "column {index} is '{actual}' with {actual_bins} bins where '{expected}' with {expected_bins} bins is expected: the counts come from another column layout"
    )]
    Layout {
        /// The column's index.
        index: usize,
        /// The expected name.
        expected: String,
        /// The expected bins.
        expected_bins: usize,
        /// The other name.
        actual: String,
        /// The other bins.
        actual_bins: usize,
    },
    /// A different number of columns.
    #[error(
        "the counts have {actual} columns where {expected} are expected: they come from another column layout"
    )]
    Columns {
        /// Columns expected.
        expected: usize,
        /// Columns given.
        actual: usize,
    },
}
