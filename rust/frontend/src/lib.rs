//! The native gRPC front end. Python's grpc.aio transport costs ~300 µs of CPU per call on
//! the event loop, whatever the model; this serves the inference RPCs of natively run models
//! from Rust (HTTP/2 by hyper, the request parsed in place, routed by version, alias or the
//! model's traffic policy, queued to the model's batcher and answered from its executor thread;
//! shadow copies compared off the request's path) and forwards every other call, byte for
//! byte, to the Python gRPC server behind it on a Unix socket, so every RPC and every error the
//! Python server words still works unchanged.

mod body;
mod compression;
mod connections;
mod counters;
mod ensemble;
pub mod grpc;
pub mod http;
mod native;
mod native_step;
mod proxy;
mod remote_join;
mod restrict;
mod routes;
mod sequence_route;
mod sequencer;
mod server;
mod service;
mod shadow;
mod stream;
mod tls;

pub use connections::ConnectionLimits;
pub use counters::{Counters, Method};
pub use ensemble::{EnsemblePlan, EnsembleRoute, EnsembleStep, PlanError};
pub use grpc::{Code, Status};
pub use native::{MessageInput, NativeRoute};
pub use remote_join::{JoinFailure, Joined, RemoteJoin, RemoteJoinError};
pub use restrict::{Protocol, Restrictions};
pub use routes::{
    InferRoute, ModelSpec, PendingInfer, PendingStep, RouteTable, StepAnswer, StepRequest,
    TargetSpec,
};
pub use sequence_route::SequenceRoute;
pub use sequencer::{ControlKind, CorrelationType, SequencePlan, Sequencer, StateTensor};
pub use server::{Frontend, FrontendConfig};
pub use shadow::{DIFFERENCE_BOUNDS, ShadowCounts, largest_difference};
pub use tls::{ServerTls, TlsError, TlsFiles, server_config};
