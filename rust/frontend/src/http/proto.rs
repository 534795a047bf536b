//! The v2 protocol's protobuf messages the HTTP front end builds (requests to the shared
//! inference path and to the Python server) and reads (inference answers), with Triton's
//! field numbers (protos/grpc_service.proto). Control answers are read generically from the
//! descriptor set instead (`control.rs`).

use std::collections::HashMap;

use bytes::Bytes;

/// `inference.InferParameter`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InferParameter {
    /// The value.
    #[prost(oneof = "ParameterChoice", tags = "1, 2, 3, 4, 5")]
    pub choice: Option<ParameterChoice>,
}

/// `InferParameter.parameter_choice`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum ParameterChoice {
    /// `bool_param`.
    #[prost(bool, tag = "1")]
    Bool(bool),
    /// `int64_param`.
    #[prost(int64, tag = "2")]
    Int64(i64),
    /// `string_param`.
    #[prost(string, tag = "3")]
    String(String),
    /// `double_param`.
    #[prost(double, tag = "4")]
    Double(f64),
    /// `uint64_param`.
    #[prost(uint64, tag = "5")]
    Uint64(u64),
}

/// `ModelInferRequest.InferInputTensor` (raw contents only: the HTTP front end writes every
/// input into `raw_input_contents`, and both servers answer with raw contents).
#[derive(Clone, PartialEq, prost::Message)]
pub struct InferInputTensor {
    /// Input name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// v2 datatype.
    #[prost(string, tag = "2")]
    pub datatype: String,
    /// Shape.
    #[prost(int64, repeated, tag = "3")]
    pub shape: Vec<i64>,
    /// Input parameters.
    #[prost(map = "string, message", tag = "4")]
    pub parameters: HashMap<String, InferParameter>,
}

/// `ModelInferRequest.InferRequestedOutputTensor`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InferRequestedOutputTensor {
    /// Output name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Output parameters (`classification`).
    #[prost(map = "string, message", tag = "2")]
    pub parameters: HashMap<String, InferParameter>,
}

/// `inference.ModelInferRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelInferRequest {
    /// Model name.
    #[prost(string, tag = "1")]
    pub model_name: String,
    /// Version, alias or empty.
    #[prost(string, tag = "2")]
    pub model_version: String,
    /// Request id, echoed.
    #[prost(string, tag = "3")]
    pub id: String,
    /// Request parameters (`priority`, `timeout`, ...).
    #[prost(map = "string, message", tag = "4")]
    pub parameters: HashMap<String, InferParameter>,
    /// Inputs.
    #[prost(message, repeated, tag = "5")]
    pub inputs: Vec<InferInputTensor>,
    /// Requested outputs (empty: all).
    #[prost(message, repeated, tag = "6")]
    pub outputs: Vec<InferRequestedOutputTensor>,
    /// Each input's bytes, in `inputs` order.
    #[prost(bytes = "bytes", repeated, tag = "7")]
    pub raw_input_contents: Vec<Bytes>,
}

/// `ModelInferResponse.InferOutputTensor`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InferOutputTensor {
    /// Output name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// v2 datatype.
    #[prost(string, tag = "2")]
    pub datatype: String,
    /// Shape.
    #[prost(int64, repeated, tag = "3")]
    pub shape: Vec<i64>,
    /// Output parameters.
    #[prost(map = "string, message", tag = "4")]
    pub parameters: HashMap<String, InferParameter>,
}

/// `inference.ModelInferResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelInferResponse {
    /// Model name.
    #[prost(string, tag = "1")]
    pub model_name: String,
    /// The version that answered.
    #[prost(string, tag = "2")]
    pub model_version: String,
    /// The request's id.
    #[prost(string, tag = "3")]
    pub id: String,
    /// Response parameters.
    #[prost(map = "string, message", tag = "4")]
    pub parameters: HashMap<String, InferParameter>,
    /// Outputs.
    #[prost(message, repeated, tag = "5")]
    pub outputs: Vec<InferOutputTensor>,
    /// Each output's bytes, in `outputs` order.
    #[prost(bytes = "bytes", repeated, tag = "6")]
    pub raw_output_contents: Vec<Bytes>,
}

/// A request naming a model and version: `ModelReadyRequest`, `ModelMetadataRequest`,
/// `ModelConfigRequest` and `ModelStatisticsRequest` share this layout.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelRequest {
    /// Model name (empty: every model, for statistics).
    #[prost(string, tag = "1")]
    pub name: String,
    /// Version (empty: the server's choice).
    #[prost(string, tag = "2")]
    pub version: String,
}

/// `RepositoryIndexRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RepositoryIndexRequest {
    /// Repository name (empty: the server's).
    #[prost(string, tag = "1")]
    pub repository_name: String,
    /// Only ready models.
    #[prost(bool, tag = "2")]
    pub ready: bool,
}

/// `ModelRepositoryParameter`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelRepositoryParameter {
    /// The value.
    #[prost(oneof = "RepositoryParameterChoice", tags = "1, 2, 3, 4")]
    pub choice: Option<RepositoryParameterChoice>,
}

/// `ModelRepositoryParameter.parameter_choice`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum RepositoryParameterChoice {
    /// `bool_param`.
    #[prost(bool, tag = "1")]
    Bool(bool),
    /// `int64_param`.
    #[prost(int64, tag = "2")]
    Int64(i64),
    /// `string_param`.
    #[prost(string, tag = "3")]
    String(String),
    /// `bytes_param` (a `file:` override's content).
    #[prost(bytes = "bytes", tag = "4")]
    Bytes(Bytes),
}

/// `RepositoryModelLoadRequest` and `RepositoryModelUnloadRequest` (same layout).
#[derive(Clone, PartialEq, prost::Message)]
pub struct RepositoryModelRequest {
    /// Repository name (empty: the server's).
    #[prost(string, tag = "1")]
    pub repository_name: String,
    /// Model name.
    #[prost(string, tag = "2")]
    pub model_name: String,
    /// Parameters.
    #[prost(map = "string, message", tag = "3")]
    pub parameters: HashMap<String, ModelRepositoryParameter>,
}

/// `ServerReadyResponse` and `ModelReadyResponse`: `ready = 1` (`ServerLiveResponse`'s
/// `live = 1` too).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReadyResponse {
    /// Whether it is ready.
    #[prost(bool, tag = "1")]
    pub ready: bool,
}
