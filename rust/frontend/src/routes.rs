//! Which requests the front end answers natively, and where they go: per model, the version
//! number or alias a request names, and for a request that names none, the model's traffic
//! policy: a target drawn by weight per request (a cumulative table and a thread-local
//! generator: no lock, no shared counter), and the shadows that get a copy of a share of those
//! requests. The registry (Python) describes every model's routes and replaces the whole table
//! on each change; the counts of requests per model, alias and version, and the shadows'
//! comparisons, outlive those replacements.

use std::cell::Cell;
use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Instant;

use bytes::Bytes;
use ferroserve_runtime::Timing;
use ferroserve_tensor::wire::{FastSignature, InferRequestView};

use crate::grpc::Status;
use crate::shadow::{ShadowCounts, ShadowStats};

/// A natively answered request: its serialized response (a `ModelStreamInferResponse` when
/// asked for a stream), or the status it failed with.
pub type PendingInfer = Pin<Box<dyn Future<Output = Result<Vec<u8>, Status>> + Send>>;

/// One step of an ensemble as a composing version gets it: its inputs in that version's
/// signature order, already in the raw layout (no wire message is built).
pub struct StepRequest {
    /// Each input's bytes: a part of the client's message or of an earlier step's output.
    pub inputs: Vec<Bytes>,
    /// Each input's full shape (the batch dim included for a batching model).
    pub shapes: Vec<Vec<i64>>,
    /// The ensemble request's `priority` parameter, as sent.
    pub priority: u64,
    /// The ensemble request's `timeout` parameter (µs), as sent.
    pub timeout_us: u64,
    /// The client's deadline, shared by every step of the request.
    pub deadline: Option<Instant>,
}

/// A composing version's answer to one step: per output, in its signature order, the bytes
/// (a view into the executed batch's output, not a copy) and the shape.
pub struct StepAnswer {
    /// (bytes, shape) per output.
    pub outputs: Vec<(Bytes, Vec<i64>)>,
    /// The step's time queued and its batch's phases.
    pub timing: Timing,
}

/// A step's answer to await; dropping it cancels the step.
pub type PendingStep = Pin<Box<dyn Future<Output = Result<StepAnswer, Status>> + Send>>;

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

    /// The signature a step request must follow, when the route can run ensemble steps.
    fn step_signature(&self) -> Option<&FastSignature> {
        None
    }

    /// Starts one ensemble step (inputs in `step_signature` order) and returns its answer to
    /// await, or None when this route cannot run steps (a stateful model, a model whose
    /// features are joined from Redis per request, an ensemble).
    fn step(self: Arc<Self>, _request: StepRequest) -> Option<PendingStep> {
        None
    }
}

/// One target of a model's routes as the registry describes it.
pub struct TargetSpec {
    /// The alias requests reach it through ("" for a version number, or the newest version):
    /// the label its requests are counted under.
    pub alias: String,
    /// The version that answers (its number).
    pub version: String,
    /// How it answers.
    pub route: Arc<dyn InferRoute>,
}

/// One model's routes as the registry describes them.
pub struct ModelSpec {
    /// The model's name.
    pub model: String,
    /// What a non-empty `model_version` names: a version number or an alias.
    pub named: Vec<(String, TargetSpec)>,
    /// Where requests with an empty `model_version` go, each with its weight (> 0). Empty:
    /// the front end forwards them (the Python server says why none is ready).
    pub split: Vec<(u32, TargetSpec)>,
    /// Versions that get a copy of that percentage (1-100) of those requests.
    pub shadows: Vec<(u32, TargetSpec)>,
}

/// A version requests reach one way, and the count of them it took natively.
pub struct Target {
    /// How it answers.
    pub route: Arc<dyn InferRoute>,
    /// The version that answers.
    version: String,
    /// Requests it took natively this way (model, alias, version): counted by `count`.
    served: Arc<AtomicU64>,
}

impl Target {
    /// Counts one request the route took.
    pub fn count(&self) {
        self.served.fetch_add(1, Ordering::Relaxed);
    }
}

/// A version that gets a copy of a share of a model's policy-routed requests.
pub struct Shadow {
    /// Its share, in percent.
    percent: u32,
    /// The version that answers the copies.
    version: String,
    /// How it answers.
    pub route: Arc<dyn InferRoute>,
    /// Its comparisons, kept across table replacements.
    pub stats: Arc<ShadowStats>,
}

/// One model's routes.
struct ModelRoutes {
    named: HashMap<String, Target>,
    /// The policy's targets with their cumulative weights: a draw below a bound picks it.
    split: Vec<(u32, Target)>,
    /// The sum of the weights.
    total: u32,
    shadows: Vec<Shadow>,
}

/// Where one request goes.
pub struct Routed<'a> {
    /// The version that answers it.
    pub target: &'a Target,
    /// The shadows drawn for it (a request following the policy only, never its own version).
    pub copies: Vec<&'a Shadow>,
}

/// Every model's routes at one moment.
#[derive(Default)]
pub struct Table {
    models: HashMap<String, ModelRoutes>,
}

impl Table {
    /// Where a request for `name` / `version` goes, if that is routed natively.
    pub fn route(&self, name: &str, version: &str) -> Option<Routed<'_>> {
        let model = self.models.get(name)?;
        if !version.is_empty() {
            return Some(Routed {
                target: model.named.get(version)?,
                copies: Vec::new(),
            });
        }
        let target = match model.split.as_slice() {
            [(_, only)] => only,
            split => {
                let point = draw(model.total);
                &split.iter().find(|(bound, _)| point < *bound)?.1
            }
        };
        let mut copies = Vec::new();
        for shadow in &model.shadows {
            if shadow.version != target.version && draw(100) < shadow.percent {
                copies.push(shadow);
            }
        }
        Some(Routed { target, copies })
    }
}

/// The routes in force; replaced whole whenever the registry changes.
#[derive(Default)]
pub struct RouteTable {
    table: RwLock<Arc<Table>>,
    /// (model, alias, version) -> requests taken natively; kept across replacements.
    served: Mutex<HashMap<(String, String, String), Arc<AtomicU64>>>,
    /// (model, shadow version) -> its comparisons; kept across replacements.
    shadow_stats: Mutex<HashMap<(String, String), Arc<ShadowStats>>>,
}

impl RouteTable {
    /// No routes: every call goes to the Python server.
    pub fn new() -> Self {
        RouteTable::default()
    }

    /// Replaces every model's routes with `models`.
    pub fn replace(&self, models: Vec<ModelSpec>) {
        let mut table = Table::default();
        for spec in models {
            let model = spec.model;
            let named = spec
                .named
                .into_iter()
                .map(|(label, target)| (label, self.target(&model, target)))
                .collect();
            let mut total = 0u32;
            let mut split = Vec::with_capacity(spec.split.len());
            for (weight, target) in spec.split {
                if weight > 0 {
                    total = total.saturating_add(weight);
                    split.push((total, self.target(&model, target)));
                }
            }
            let shadows = spec
                .shadows
                .into_iter()
                .map(|(percent, target)| Shadow {
                    percent: percent.min(100),
                    stats: self.shadow_stats(&model, &target.version),
                    version: target.version,
                    route: target.route,
                })
                .collect();
            let routes = ModelRoutes {
                named,
                split,
                total,
                shadows,
            };
            table.models.insert(model, routes);
        }
        *self.table.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(table);
    }

    /// The routes in force now (a request keeps them for its whole lookup).
    pub fn current(&self) -> Arc<Table> {
        Arc::clone(&self.table.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Whether no model is served natively.
    pub fn is_empty(&self) -> bool {
        let table = self.table.read().unwrap_or_else(PoisonError::into_inner);
        table.models.is_empty()
    }

    /// Requests taken natively: (model, alias, version, requests), sorted.
    pub fn served_counts(&self) -> Vec<(String, String, String, u64)> {
        let served = self.served.lock().unwrap_or_else(PoisonError::into_inner);
        let mut counts: Vec<_> = served
            .iter()
            .map(|((model, alias, version), count)| {
                let count = count.load(Ordering::Relaxed);
                (model.clone(), alias.clone(), version.clone(), count)
            })
            .collect();
        counts.sort();
        counts
    }

    /// Each shadow version's comparisons: (model, version, counts), sorted.
    pub fn shadow_counts(&self) -> Vec<(String, String, ShadowCounts)> {
        let stats = self
            .shadow_stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut counts: Vec<_> = stats
            .iter()
            .map(|((model, version), stats)| (model.clone(), version.clone(), stats.counts()))
            .collect();
        counts.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        counts
    }

    fn target(&self, model: &str, spec: TargetSpec) -> Target {
        let key = (model.to_owned(), spec.alias, spec.version.clone());
        let mut served = self.served.lock().unwrap_or_else(PoisonError::into_inner);
        Target {
            route: spec.route,
            version: spec.version,
            served: Arc::clone(served.entry(key).or_default()),
        }
    }

    fn shadow_stats(&self, model: &str, version: &str) -> Arc<ShadowStats> {
        let key = (model.to_owned(), version.to_owned());
        let mut stats = self
            .shadow_stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Arc::clone(stats.entry(key).or_default())
    }
}

thread_local! {
    /// This thread's xorshift64* state: never 0.
    static DRAWS: Cell<u64> = Cell::new(RandomState::new().hash_one(std::thread::current().id()) | 1);
}

/// A uniform draw in `0..bound` (bound > 0) from this thread's generator: a few nanoseconds,
/// nothing shared between threads.
fn draw(bound: u32) -> u32 {
    DRAWS.with(|state| {
        let mut x = state.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        state.set(x);
        let bits = x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32;
        // Lemire's multiply-shift: bits * bound / 2^32, unbiased enough for traffic shares
        // (the bias is below bound / 2^32).
        u32::try_from((bits * u64::from(bound)) >> 32).unwrap_or(0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in route (never called here).
    struct Stub;

    impl InferRoute for Stub {
        fn infer(
            self: Arc<Self>,
            _message: Bytes,
            _view: InferRequestView,
            _deadline: Option<Instant>,
            _stream: bool,
        ) -> Option<PendingInfer> {
            None
        }
    }

    fn target(alias: &str, version: &str, route: &Arc<dyn InferRoute>) -> TargetSpec {
        TargetSpec {
            alias: alias.into(),
            version: version.into(),
            route: Arc::clone(route),
        }
    }

    fn is(target: &Target, route: &Arc<dyn InferRoute>) -> bool {
        Arc::ptr_eq(&target.route, route)
    }

    #[test]
    fn draws_are_uniform() {
        let mut counts = [0u32; 10];
        for _ in 0..100_000 {
            counts[draw(10) as usize] += 1;
        }
        // Each of 10 buckets expects 10,000; 5 sigma is ~475.
        assert!(
            counts.iter().all(|&n| (9_500..10_500).contains(&n)),
            "{counts:?}"
        );
    }

    #[test]
    fn named_routes_split_and_shadows() {
        let one: Arc<dyn InferRoute> = Arc::new(Stub);
        let two: Arc<dyn InferRoute> = Arc::new(Stub);
        let table = RouteTable::new();
        table.replace(vec![ModelSpec {
            model: "m".into(),
            named: vec![
                ("1".into(), target("", "1", &one)),
                ("production".into(), target("production", "1", &one)),
                ("canary".into(), target("canary", "2", &two)),
            ],
            split: vec![
                (90, target("production", "1", &one)),
                (10, target("canary", "2", &two)),
            ],
            shadows: vec![(50, target("", "2", &two))],
        }]);
        let current = table.current();
        assert!(is(
            current.route("m", "production").expect("routed").target,
            &one
        ));
        assert!(is(
            current.route("m", "canary").expect("routed").target,
            &two
        ));
        assert!(current.route("m", "2").is_none()); // not routed natively: forwarded
        assert!(current.route("other", "").is_none());
        let (mut to_two, mut copies) = (0u64, 0u64);
        for _ in 0..10_000 {
            let routed = current.route("m", "").expect("routed");
            if is(routed.target, &two) {
                to_two += 1;
                // A copy never goes to the version that answers.
                assert!(routed.copies.is_empty());
            }
            copies += routed.copies.len() as u64;
            routed.target.count();
        }
        assert!((800..1200).contains(&to_two), "{to_two}");
        let expected = (10_000 - to_two) / 2;
        assert!(
            copies.abs_diff(expected) < 300,
            "{copies} copies, {expected} expected"
        );
        // Named requests never get copies.
        assert!(
            current
                .route("m", "production")
                .expect("routed")
                .copies
                .is_empty()
        );
        let counts = table.served_counts();
        let canary = ("m".to_owned(), "canary".to_owned(), "2".to_owned(), to_two);
        assert!(counts.contains(&canary), "{counts:?}");
        // Counts survive a replacement.
        table.replace(vec![]);
        assert!(table.is_empty());
        assert!(table.served_counts().contains(&canary));
        assert_eq!(table.shadow_counts()[0].1, "2");
    }
}
