//! The onnxruntime environment (one per process) and session options: the settings a model's
//! config asks for, turned into a session builder.

use std::path::Path;
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::session::Session;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};

use crate::RuntimeError;

/// The process's one onnxruntime environment, created from the first library asked for.
static ENVIRONMENT: OnceLock<Result<Environment, String>> = OnceLock::new();

/// The environment, loading `library` the first time.
pub(crate) fn environment(library: &Path) -> Result<&'static Environment, RuntimeError> {
    ENVIRONMENT
        .get_or_init(|| {
            ort::init_from(library)
                .map_err(|error| error.to_string())?
                .with_name("ferroserve")
                .with_telemetry(false)
                .build()
                .map_err(|error| error.to_string())
        })
        .as_ref()
        .map_err(|message| RuntimeError::Library {
            path: library.display().to_string(),
            message: message.clone(),
        })
}

/// Graph optimisation level (onnxruntime's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptimizationLevel {
    /// No graph optimisation.
    Disable,
    /// Semantics-preserving rewrites.
    Basic,
    /// Plus complex node fusions.
    Extended,
    /// Everything, including layout optimisations.
    All,
}

/// Session options (see docs/configuration.md for the config parameters behind them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSettings {
    /// Threads of one operator (onnxruntime's intra-op pool; 1 = the calling thread only).
    pub intra_op_threads: usize,
    /// Threads running independent operators in parallel execution mode.
    pub inter_op_threads: usize,
    /// Run independent operators in parallel (ORT_PARALLEL).
    pub parallel_execution: bool,
    /// Let pool threads spin while waiting for work.
    pub allow_spinning: bool,
    /// Graph optimisation level.
    pub optimization: OptimizationLevel,
    /// Where to save the optimised graph, if anywhere.
    pub optimized_model_path: Option<String>,
    /// Run on the CPU when a requested GPU provider cannot start (config parameter
    /// `allow_cpu_fallback`); otherwise that is a load error.
    pub allow_cpu_fallback: bool,
}

/// A session builder with `settings`; the error as onnxruntime words it.
pub(crate) fn builder(
    environment: &Environment,
    settings: &SessionSettings,
) -> Result<SessionBuilder, String> {
    let text = |error: ort::Error<SessionBuilder>| error.to_string();
    let level = match settings.optimization {
        OptimizationLevel::Disable => GraphOptimizationLevel::Disable,
        OptimizationLevel::Basic => GraphOptimizationLevel::Level1,
        OptimizationLevel::Extended => GraphOptimizationLevel::Level2,
        OptimizationLevel::All => GraphOptimizationLevel::All,
    };
    let mut builder = Session::builder(environment)
        .map_err(|error| error.to_string())?
        .with_intra_threads(settings.intra_op_threads)
        .map_err(text)?
        .with_inter_threads(settings.inter_op_threads)
        .map_err(text)?
        .with_parallel_execution(settings.parallel_execution)
        .map_err(text)?
        .with_intra_op_spinning(settings.allow_spinning)
        .map_err(text)?
        .with_inter_op_spinning(settings.allow_spinning)
        .map_err(text)?
        .with_optimization_level(level)
        .map_err(text)?;
    if let Some(cache) = &settings.optimized_model_path {
        builder = builder.with_optimized_model_path(cache).map_err(text)?;
    }
    Ok(builder)
}
