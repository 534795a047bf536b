//! Ensembles (Triton's `platform: "ensemble"`) on the native path: a DAG of composing model
//! versions run in-process, tensors handed from step to step as `Bytes` without a client
//! round trip or a wire encoding. `EnsemblePlan` is the DAG as Python validated and ordered it
//! (plan.rs); `EnsembleRoute` answers a request by running its steps through the composing
//! versions' routes (route.rs).

mod plan;
mod route;

pub use plan::{EnsemblePlan, EnsembleStep, PlanError};
pub use route::EnsembleRoute;
