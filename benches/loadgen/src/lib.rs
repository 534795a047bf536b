//! The peer benchmark's load generator (`ferroserve-loadgen`). A Python gRPC client saturates
//! near 3k requests/s on one core, below what a native server answers, and Triton's
//! perf_analyzer refuses servers without the ModelConfig RPC (KServe, MLServer); this client
//! drives any KServe v2 server through ModelInfer / ModelStreamInfer alone, closed loop, with
//! hyper's HTTP/2 client and hand-written protobuf (`run`), or through the v2 REST endpoint
//! (`run --http json|binary`: hyper's HTTP/1.1 client, one keep-alive connection per worker),
//! and `echo` is the native transport ceiling it is compared against.

mod call;
pub mod cli;
pub mod echo;
pub mod grpc;
pub mod proto;
pub mod report;
pub mod rest;
mod rest_call;
pub mod run;
mod tally;

pub use echo::{Canned, Echo, EchoConfig};
pub use proto::TensorSpec;
pub use rest::Encoding;
pub use run::{RunConfig, RunError, Summary, default_connections, run};
