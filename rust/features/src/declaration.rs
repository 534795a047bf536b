//! What a model declares about its looked-up features, as plain values: the request inputs
//! clients send, the feature views (entity key, features, defaults, max age, missing-key
//! policy) and how the gathered values land in the model's inputs. The server parses these from
//! a protobuf-text file beside `config.pbtxt`; `JoinPlan::compile` checks them against the model.

use std::time::Duration;

use ferroserve_tensor::DataType;

/// Everything a model version declares about feature lookup.
#[derive(Debug, Clone, PartialEq)]
pub struct Declaration {
    /// The inputs clients send (entity keys and request-time features), in the order the
    /// request buffers are handed to the join; ModelMetadata shows these, not the model's own.
    pub request_inputs: Vec<RequestInput>,
    /// The feature views read for each row.
    pub views: Vec<FeatureView>,
    /// How model inputs are made of request inputs and views. A model input not listed here is
    /// the request input of the same name, passed through.
    pub assembly: Vec<ModelInputAssembly>,
}

/// One input a client sends, with one row per batch row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestInput {
    /// The input's name in the request.
    pub name: String,
    /// Its datatype; an entity key part is INT64 or BYTES.
    pub datatype: DataType,
    /// Elements per row: 1 for a key part, the feature count for request-time features.
    pub columns: usize,
}

/// What to do when a key has no row in a view, or its row is older than the view's max age.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissingPolicy {
    /// Serve the features' default values and count the miss (or the stale row).
    #[default]
    UseDefault,
    /// Reject the request (NOT_FOUND naming the key and the view); the other rows of its batch
    /// are served.
    Reject,
}

/// A named group of features stored and looked up together under one entity key.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureView {
    /// The view's name (Feast's feature view name).
    pub name: String,
    /// The request inputs whose values, together and in this order, form the entity key.
    pub key: Vec<String>,
    /// The features, in the order they land in the model input.
    pub features: Vec<Feature>,
    /// Rows whose event time is older than this (relative to the `now` of a lookup) are stale.
    pub max_age: Option<Duration>,
    /// Missing and stale keys: defaults (counted) or rejection.
    pub on_missing: MissingPolicy,
}

/// One feature of a view.
#[derive(Debug, Clone, PartialEq)]
pub struct Feature {
    /// The feature's name in the view.
    pub name: String,
    /// Its datatype: FP32, FP64, INT64 or INT32, and the datatype of the model input it lands in.
    pub datatype: DataType,
    /// Served when the key is missing or its row is stale; of the feature's datatype.
    pub default: FeatureValue,
}

/// A single feature value: a default, or a value to store.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FeatureValue {
    /// An FP32 value.
    Fp32(f32),
    /// An FP64 value.
    Fp64(f64),
    /// An INT64 value.
    Int64(i64),
    /// An INT32 value.
    Int32(i32),
}

impl FeatureValue {
    /// The datatype of this value.
    pub const fn datatype(self) -> DataType {
        match self {
            FeatureValue::Fp32(_) => DataType::Fp32,
            FeatureValue::Fp64(_) => DataType::Fp64,
            FeatureValue::Int64(_) => DataType::Int64,
            FeatureValue::Int32(_) => DataType::Int32,
        }
    }

    /// The zero of `datatype`, or `None` if features cannot have that datatype.
    pub const fn zero(datatype: DataType) -> Option<FeatureValue> {
        match datatype {
            DataType::Fp32 => Some(FeatureValue::Fp32(0.0)),
            DataType::Fp64 => Some(FeatureValue::Fp64(0.0)),
            DataType::Int64 => Some(FeatureValue::Int64(0)),
            DataType::Int32 => Some(FeatureValue::Int32(0)),
            _ => None,
        }
    }

    /// Appends the value's little-endian bytes (the raw tensor layout) to `out`.
    pub fn write_le(self, out: &mut Vec<u8>) {
        match self {
            FeatureValue::Fp32(value) => out.extend_from_slice(&value.to_le_bytes()),
            FeatureValue::Fp64(value) => out.extend_from_slice(&value.to_le_bytes()),
            FeatureValue::Int64(value) => out.extend_from_slice(&value.to_le_bytes()),
            FeatureValue::Int32(value) => out.extend_from_slice(&value.to_le_bytes()),
        }
    }
}

/// The datatypes a feature may have.
pub const FEATURE_DATATYPES: [DataType; 4] = [
    DataType::Fp32,
    DataType::Fp64,
    DataType::Int64,
    DataType::Int32,
];

/// How one model input is made: its segments, concatenated along the last (feature) axis in
/// this order. A single segment makes a separate model input of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInputAssembly {
    /// The model input's name in the model's signature.
    pub model_input: String,
    /// The segments, first to last along the feature axis.
    pub segments: Vec<Segment>,
}

/// A run of columns of a model input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// All columns of the named request input.
    RequestInput(String),
    /// All features of the named view, in the view's order.
    View(String),
}

/// A model's inputs as the model declares them (from its ONNX graph or `config.pbtxt`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSignature {
    /// The model's inputs.
    pub inputs: Vec<ModelInput>,
}

/// One model input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInput {
    /// Its name.
    pub name: String,
    /// Its datatype.
    pub datatype: DataType,
    /// Its shape per row, without the batch dimension (Triton's `dims` of a batching model; a
    /// model without batching passes its shape without the leading 1).
    pub dims: Vec<i64>,
}
