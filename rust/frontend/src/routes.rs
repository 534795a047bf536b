//! Which (model, version) the front end answers natively, and how.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use bytes::Bytes;
use ferroserve_tensor::wire::InferRequestView;

use crate::grpc::Status;

/// A natively answered request: its serialized response (a `ModelStreamInferResponse` when
/// asked for a stream), or the status it failed with.
pub type PendingInfer = Pin<Box<dyn Future<Output = Result<Vec<u8>, Status>> + Send>>;

/// A model version the front end runs without Python.
pub trait InferRoute: Send + Sync + 'static {
    /// Starts `message` (parsed as `view`) and returns its answer to await, or None when the
    /// request is not one the native path takes (the Python server then answers it, and words
    /// any error). Dropping the future cancels the request.
    fn infer(
        self: Arc<Self>,
        message: Bytes,
        view: InferRequestView,
        deadline: Option<Instant>,
        stream: bool,
    ) -> Option<PendingInfer>;
}

/// model name -> version label ("" for the default version) -> route.
type Table = HashMap<String, HashMap<String, Arc<dyn InferRoute>>>;

/// The routes in force; replaced whole whenever the registry changes.
#[derive(Default)]
pub struct RouteTable {
    table: RwLock<Arc<Table>>,
}

impl RouteTable {
    /// No routes: every call goes to the Python server.
    pub fn new() -> Self {
        RouteTable::default()
    }

    /// Replaces every route with `routes` (name, version label, route).
    pub fn replace(&self, routes: Vec<(String, String, Arc<dyn InferRoute>)>) {
        let mut table = Table::new();
        for (name, version, route) in routes {
            table.entry(name).or_default().insert(version, route);
        }
        *self.table.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(table);
    }

    /// The route for `name` / `version`, if it is served natively.
    pub fn get(&self, name: &str, version: &str) -> Option<Arc<dyn InferRoute>> {
        let table = self.table.read().unwrap_or_else(PoisonError::into_inner);
        table.get(name)?.get(version).cloned()
    }

    /// Whether no model is served natively.
    pub fn is_empty(&self) -> bool {
        self.table
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }
}
