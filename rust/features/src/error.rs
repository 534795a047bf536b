//! The crate's errors, one enum per stage: a declaration that does not fit its model (at model
//! load), a snapshot that cannot be built or installed (at feature load), and request buffers
//! that do not fit the plan (at gather). Each message says what to change.

use ferroserve_tensor::{DataType, TensorError};
use thiserror::Error;

/// Why a declaration does not fit its model; raised once, when the model version loads.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DeclarationError {
    /// Two request inputs, views, features of a view or assembly entries share a name.
    #[error("{what} '{name}' is declared twice: give each a distinct name")]
    Duplicate {
        /// What is named twice ("request input", "feature view", ...).
        what: &'static str,
        /// The repeated name.
        name: String,
    },
    /// A request input with no elements per row.
    #[error("request input '{input}' has 0 columns: give it at least 1")]
    NoColumns {
        /// The request input.
        input: String,
    },
    /// A view's key or a segment names a request input that is not declared.
    #[error("{user} names request input '{name}', which is not declared (declared: {declared})")]
    UnknownRequestInput {
        /// Where the name appears ("the key of view 'user'", "model input 'x'").
        user: String,
        /// The unknown name.
        name: String,
        /// The declared request inputs, comma-separated.
        declared: String,
    },
    /// A segment names a view that is not declared.
    #[error(
        "model input '{model_input}' names feature view '{name}', which is not declared (declared: {declared})"
    )]
    UnknownView {
        /// The model input whose segment names it.
        model_input: String,
        /// The unknown name.
        name: String,
        /// The declared views, comma-separated.
        declared: String,
    },
    /// A view has no key parts.
    #[error("feature view '{view}' has no entity key: name the request input(s) that carry it")]
    EmptyKey {
        /// The view.
        view: String,
    },
    /// A view has no features.
    #[error("feature view '{view}' has no features: declare at least one")]
    NoFeatures {
        /// The view.
        view: String,
    },
    /// A key part is neither INT64 nor BYTES, or has more than one element per row.
    #[error(
        "request input '{input}' is part of the key of view '{view}' but is {datatype} with {columns} column(s): an entity key part is INT64 or BYTES with 1 column"
    )]
    BadKeyInput {
        /// The view.
        view: String,
        /// The request input.
        input: String,
        /// Its declared datatype.
        datatype: DataType,
        /// Its declared columns.
        columns: usize,
    },
    /// A feature's datatype is not one features can have.
    #[error("feature '{view}.{feature}' is {datatype}: features are FP32, FP64, INT64 or INT32")]
    BadFeatureDatatype {
        /// The view.
        view: String,
        /// The feature.
        feature: String,
        /// Its datatype.
        datatype: DataType,
    },
    /// A feature's default is not of its datatype.
    #[error(
        "feature '{view}.{feature}' is {datatype} but its default is an {default} value: give a default of the feature's datatype"
    )]
    DefaultDatatype {
        /// The view.
        view: String,
        /// The feature.
        feature: String,
        /// The feature's datatype.
        datatype: DataType,
        /// The default's datatype.
        default: DataType,
    },
    /// A max age of zero makes every row stale.
    #[error(
        "feature view '{view}' has a max age of 0: leave it unset for no limit, or give a positive duration"
    )]
    ZeroMaxAge {
        /// The view.
        view: String,
    },
    /// An assembly entry names a model input the model does not have.
    #[error("the assembly names model input '{name}', but the model's inputs are: {inputs}")]
    UnknownModelInput {
        /// The unknown name.
        name: String,
        /// The model's inputs, comma-separated.
        inputs: String,
    },
    /// A model input has no assembly entry and no request input of its name.
    #[error(
        "model input '{name}' is not assembled: add an assembly entry for it, or a request input named '{name}' to pass through"
    )]
    UnassembledModelInput {
        /// The model input.
        name: String,
    },
    /// An assembly entry has no segments.
    #[error(
        "model input '{model_input}' has an assembly entry without segments: list what it is made of"
    )]
    NoSegments {
        /// The model input.
        model_input: String,
    },
    /// A segment's datatype differs from its model input's.
    #[error(
        "model input '{model_input}' is {expected} but its segment {segment} is {actual}: declare the segment as {expected}"
    )]
    SegmentDatatype {
        /// The model input.
        model_input: String,
        /// The segment ("request input 'dense'", "feature 'user.age'").
        segment: String,
        /// The model input's datatype.
        expected: DataType,
        /// The segment's datatype.
        actual: DataType,
    },
    /// A model input that cannot be assembled (BYTES, or a shape without a fixed width).
    #[error("model input '{model_input}' is {datatype} with dims {dims:?}: {reason}")]
    UnassemblableModelInput {
        /// The model input.
        model_input: String,
        /// Its datatype.
        datatype: DataType,
        /// Its dims per row.
        dims: Vec<i64>,
        /// Why, and what to do.
        reason: &'static str,
    },
    /// The segments' widths do not add up to the model input's.
    #[error(
        "model input '{model_input}' has {expected} columns but the segments give {actual}: {segments}"
    )]
    Width {
        /// The model input.
        model_input: String,
        /// Its columns per row.
        expected: usize,
        /// The segments' total.
        actual: usize,
        /// Each segment with its width ("request input 'dense' (32) + view 'user' (31)").
        segments: String,
    },
    /// A view lands in no model input, or in more than one place.
    #[error(
        "feature view '{view}' lands in {count} segments: each view must be one segment of one model input"
    )]
    ViewPlacement {
        /// The view.
        view: String,
        /// How many segments name it.
        count: usize,
    },
    /// A request input that is neither a key part nor a segment.
    #[error(
        "request input '{input}' is neither an entity key part nor a segment of a model input: use it or remove it"
    )]
    UnusedRequestInput {
        /// The request input.
        input: String,
    },
}

/// Why a snapshot table could not be built or installed; raised when features load.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TableError {
    /// A column does not belong to the view.
    #[error("column '{column}' is not {what} of feature view '{view}' (expected: {expected})")]
    UnknownColumn {
        /// The view.
        view: String,
        /// The column.
        column: String,
        /// "a key part" or "a feature".
        what: &'static str,
        /// The view's key parts or features, comma-separated.
        expected: String,
    },
    /// A column was given twice.
    #[error("column '{column}' of feature view '{view}' is given twice")]
    DuplicateColumn {
        /// The view.
        view: String,
        /// The column.
        column: String,
    },
    /// A key part or feature has no column.
    #[error("feature view '{view}' needs column '{column}', which was not given")]
    MissingColumn {
        /// The view.
        view: String,
        /// The column.
        column: String,
    },
    /// A column has a different length than the first one.
    #[error(
        "column '{column}' of feature view '{view}' has {actual} rows but the other columns have {expected}"
    )]
    LengthMismatch {
        /// The view.
        view: String,
        /// The column.
        column: String,
        /// Rows of the columns before it.
        expected: usize,
        /// Its rows.
        actual: usize,
    },
    /// A column's datatype is not the one declared.
    #[error(
        "column '{column}' of feature view '{view}' is {actual} but is declared {expected}: convert the column or change the declaration"
    )]
    WrongDatatype {
        /// The view.
        view: String,
        /// The column.
        column: String,
        /// The declared datatype.
        expected: DataType,
        /// The column's datatype.
        actual: DataType,
    },
    /// A BYTES key column is not in the raw v2 layout.
    #[error("key column '{column}' of feature view '{view}' is not valid raw BYTES: {source}")]
    BadBytesColumn {
        /// The view.
        view: String,
        /// The column.
        column: String,
        /// What is wrong with it.
        source: TensorError,
    },
    /// A view with a max age needs event times to tell a stale row.
    #[error(
        "feature view '{view}' has a max age but the snapshot has no event timestamp column: add one, or remove max_age"
    )]
    MissingEventTimes {
        /// The view.
        view: String,
    },
    /// More rows or key bytes than the table's 32-bit row numbers and offsets address.
    #[error(
        "feature view '{view}' has {rows} rows and {key_bytes} key bytes: a snapshot holds at most 4 Gi of each"
    )]
    TooLarge {
        /// The view.
        view: String,
        /// Rows given.
        rows: usize,
        /// Bytes of encoded keys.
        key_bytes: usize,
    },
    /// A table installed into a store that has no view of its name.
    #[error("the store has no feature view '{view}' (views: {views})")]
    UnknownView {
        /// The table's view.
        view: String,
        /// The store's views, comma-separated.
        views: String,
    },
    /// A table built for another declaration of its view.
    #[error(
        "the snapshot of feature view '{view}' was built for another declaration of the view (its key or features differ): rebuild it from the current declaration"
    )]
    LayoutMismatch {
        /// The view.
        view: String,
    },
}

/// Why a batch could not be joined: its buffers do not fit the plan. The front end's matcher
/// checks requests against the signature first, so these mean a caller bug or a snapshot that
/// is not loaded, never a missing key (see `Rejection`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum JoinError {
    /// A different number of request buffers than declared request inputs.
    #[error("{actual} request input buffers for {expected} declared request inputs")]
    RequestInputCount {
        /// Declared.
        expected: usize,
        /// Given.
        actual: usize,
    },
    /// A fixed-size request buffer of the wrong size.
    #[error("request input '{input}' has {actual} bytes, expected {expected} for {rows} rows")]
    RequestInputSize {
        /// The input.
        input: String,
        /// Rows of the batch.
        rows: usize,
        /// Bytes expected.
        expected: usize,
        /// Bytes given.
        actual: usize,
    },
    /// A BYTES key buffer that is not one valid element per row.
    #[error("request input '{input}' is not {rows} raw BYTES elements: {source}")]
    BadBytesKey {
        /// The input.
        input: String,
        /// Rows of the batch.
        rows: usize,
        /// What is wrong with it.
        source: TensorError,
    },
    /// A different number of output buffers than model inputs.
    #[error("{actual} output buffers for {expected} model inputs")]
    OutputCount {
        /// Model inputs.
        expected: usize,
        /// Given.
        actual: usize,
    },
    /// An output buffer of the wrong size.
    #[error("the buffer of model input '{model_input}' has {actual} bytes, expected {expected}")]
    OutputSize {
        /// The model input.
        model_input: String,
        /// Bytes expected.
        expected: usize,
        /// Bytes given.
        actual: usize,
    },
    /// A different number of row sources than declared views.
    #[error("{actual} row sources for {expected} feature views")]
    SourceCount {
        /// Views.
        expected: usize,
        /// Given.
        actual: usize,
    },
    /// An embedded view whose snapshot has not been loaded yet.
    #[error("feature view '{view}' has no snapshot loaded: load its features first")]
    ViewNotLoaded {
        /// The view.
        view: String,
    },
    /// A table or fetched rows whose row size is not the view's.
    #[error(
        "the rows given for feature view '{view}' are {actual} bytes each, but the view's rows are {expected}: they were built for another declaration"
    )]
    RowSize {
        /// The view.
        view: String,
        /// The view's row bytes.
        expected: usize,
        /// The source's row bytes.
        actual: usize,
    },
    /// Fetched rows for a different number of keys than the batch's rows.
    #[error("{actual} fetched rows of feature view '{view}' for {expected} rows")]
    FetchedRowCount {
        /// The view.
        view: String,
        /// Rows of the batch.
        expected: usize,
        /// Rows fetched.
        actual: usize,
    },
}
