//! The native gRPC front end. Python's grpc.aio transport costs ~300 µs of CPU per call on
//! the event loop, whatever the model; this serves the inference RPCs of natively run models
//! from Rust (HTTP/2 by hyper, the request parsed in place, queued to the model's batcher and
//! answered from its executor thread) and forwards every other call, byte for byte, to the
//! Python gRPC server behind it on a Unix socket, so every RPC and every error the Python
//! server words still works unchanged.

mod body;
mod counters;
mod grpc;
mod native;
mod proxy;
mod remote_join;
mod restrict;
mod routes;
mod server;
mod service;

pub use counters::{Counters, Method};
pub use grpc::{Code, Status};
pub use native::{MessageInput, NativeRoute};
pub use remote_join::{JoinFailure, Joined, RemoteJoin, RemoteJoinError};
pub use restrict::{Protocol, Restrictions};
pub use routes::{InferRoute, PendingInfer, RouteTable};
pub use server::{Frontend, FrontendConfig};
