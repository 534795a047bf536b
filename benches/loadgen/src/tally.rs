//! What a worker counts: successful answers inside the window with their latency in an HDR
//! histogram of its own (no lock per request), failures by gRPC code; merged at the end.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::grpc;

/// Latencies above this are recorded as this (the histogram's range).
const MAX_LATENCY_US: u64 = 60_000_000;

/// When the window starts and ends.
#[derive(Clone, Copy)]
pub(crate) struct Window {
    /// Answers that end before this are warm-up.
    pub(crate) start: Instant,
    /// Workers send nothing from here on; answers that end after it are not counted.
    pub(crate) end: Instant,
}

/// A failed answer: its gRPC code and what happened.
#[derive(Debug)]
pub(crate) struct Failure {
    /// Code name, or `error_message` for a stream answer that carries one.
    pub(crate) kind: String,
    /// The status message, or what the client saw.
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(code: u32, message: impl Into<String>) -> Self {
        Failure {
            kind: grpc::code_name(code).to_owned(),
            message: message.into(),
        }
    }

    /// A transport error: the connection or the stream broke (gRPC clients say UNAVAILABLE).
    pub(crate) fn transport(error: &hyper::Error) -> Self {
        Failure::new(14, format!("transport: {error}"))
    }

    pub(crate) fn timeout(limit: Duration) -> Self {
        Failure::new(4, format!("no answer within {limit:?}"))
    }
}

/// One worker's counts; merged into the run's at the end.
pub(crate) struct Tally {
    /// Successful answers that ended inside the window.
    pub(crate) requests: u64,
    /// Failures by kind (gRPC code name), warm-up included.
    pub(crate) errors: BTreeMap<String, u64>,
    /// "KIND: message" of the first failure.
    pub(crate) first_error: Option<String>,
    /// Latencies (µs) of the counted answers.
    pub(crate) latency_us: Histogram<u64>,
}

impl Tally {
    pub(crate) fn new() -> Self {
        Tally {
            requests: 0,
            errors: BTreeMap::new(),
            first_error: None,
            latency_us: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                .expect("constant histogram bounds are valid. This is a bug."),
        }
    }

    /// A successful answer to a request sent at `sent`, ending now.
    pub(crate) fn answered(&mut self, sent: Instant, window: Window) {
        let ended = Instant::now();
        if ended >= window.start && ended < window.end {
            self.requests += 1;
            let micros = u64::try_from((ended - sent).as_micros()).unwrap_or(u64::MAX);
            self.latency_us.saturating_record(micros.max(1));
        }
    }

    pub(crate) fn fail(&mut self, failure: &Failure) {
        *self.errors.entry(failure.kind.clone()).or_default() += 1;
        if self.first_error.is_none() {
            self.first_error = Some(format!("{}: {}", failure.kind, failure.message));
        }
    }

    pub(crate) fn merge(&mut self, other: Tally) {
        self.requests += other.requests;
        for (kind, count) in other.errors {
            *self.errors.entry(kind).or_default() += count;
        }
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.latency_us.add(&other.latency_us);
    }
}
