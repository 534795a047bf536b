//! Calls answered natively, by method and status code: the Python server counts the calls it
//! answers itself, and the metrics snapshot adds these (`grpc_server_handled_total`).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::grpc::Code;

/// The methods the front end answers itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Unary `ModelInfer`.
    ModelInfer = 0,
    /// Bidirectional `ModelStreamInfer`.
    ModelStreamInfer = 1,
}

impl Method {
    /// Every method, in index order.
    pub const ALL: [Method; 2] = [Method::ModelInfer, Method::ModelStreamInfer];

    /// The gRPC method name.
    pub fn name(self) -> &'static str {
        match self {
            Method::ModelInfer => "ModelInfer",
            Method::ModelStreamInfer => "ModelStreamInfer",
        }
    }

    /// The RPC type as grpc metrics label it.
    pub fn rpc_type(self) -> &'static str {
        match self {
            Method::ModelInfer => "unary",
            Method::ModelStreamInfer => "bidi_stream",
        }
    }
}

/// Per method and code: calls ended.
#[derive(Debug, Default)]
pub struct Counters {
    counts: [[AtomicU64; Code::ALL.len()]; Method::ALL.len()],
}

impl Counters {
    /// Counts one ended call.
    pub fn count(&self, method: Method, code: Code) {
        self.counts[method as usize][code as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// (method, code, calls) for every pair counted at least once.
    pub fn snapshot(&self) -> Vec<(Method, Code, u64)> {
        let mut out = Vec::new();
        for method in Method::ALL {
            for (slot, &code) in Code::ALL.iter().enumerate() {
                let calls = self.counts[method as usize][slot].load(Ordering::Relaxed);
                if calls > 0 {
                    out.push((method, code, calls));
                }
            }
        }
        out
    }
}

/// Counts a call when it ends: with the code it finished with, or CANCELLED when it is dropped
/// first (the client went away).
pub struct CallCount<'a> {
    counters: &'a Counters,
    method: Method,
    done: bool,
}

impl<'a> CallCount<'a> {
    /// A call of `method` that started.
    pub fn new(counters: &'a Counters, method: Method) -> Self {
        CallCount {
            counters,
            method,
            done: false,
        }
    }

    /// The call ended with `code`.
    pub fn finish(mut self, code: Code) {
        self.done = true;
        self.counters.count(self.method, code);
    }

    /// The call is counted elsewhere (it was forwarded to the Python server).
    pub fn forget(mut self) {
        self.done = true;
    }
}

impl Drop for CallCount<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.counters.count(self.method, Code::Cancelled);
        }
    }
}
