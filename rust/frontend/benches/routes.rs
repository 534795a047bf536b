//! The route lookup on the native path, per request: the table in force, the model, the target
//! (a version label, an alias, or a draw over the traffic policy's cumulative weights with a
//! shadow draw), and the request counter. Beside it, the lookup it replaced (a two-level map
//! behind a lock, the route cloned out), rebuilt here so the two are measured in one run.

// criterion_group! and criterion_main! generate undocumented functions.
#![allow(missing_docs)]

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use ferroserve_frontend::{InferRoute, ModelSpec, PendingInfer, RouteTable, TargetSpec};
use ferroserve_tensor::wire::InferRequestView;

/// A route that is never called: only lookups are measured.
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

/// Ten models like a busy server's, `mlp` among them with two versions and two aliases.
fn table(split: bool) -> RouteTable {
    let one: Arc<dyn InferRoute> = Arc::new(Stub);
    let two: Arc<dyn InferRoute> = Arc::new(Stub);
    let mut models: Vec<ModelSpec> = (0..9)
        .map(|i| ModelSpec {
            model: format!("model_{i}"),
            named: vec![("1".into(), target("", "1", &one))],
            split: vec![(100, target("", "1", &one))],
            shadows: Vec::new(),
        })
        .collect();
    models.push(ModelSpec {
        model: "mlp".into(),
        named: vec![
            ("1".into(), target("", "1", &one)),
            ("2".into(), target("", "2", &two)),
            ("production".into(), target("production", "1", &one)),
            ("canary".into(), target("canary", "2", &two)),
        ],
        split: if split {
            vec![
                (90, target("production", "1", &one)),
                (10, target("canary", "2", &two)),
            ]
        } else {
            vec![(100, target("production", "1", &one))]
        },
        shadows: if split {
            vec![(5, target("", "2", &two))]
        } else {
            Vec::new()
        },
    });
    let table = RouteTable::new();
    table.replace(models);
    table
}

/// The lookup before aliases and policies: model -> label -> route behind a lock.
type Before = RwLock<Arc<HashMap<String, HashMap<String, Arc<dyn InferRoute>>>>>;

fn before_table() -> Before {
    let route: Arc<dyn InferRoute> = Arc::new(Stub);
    let mut table = HashMap::new();
    for name in (0..9).map(|i| format!("model_{i}")).chain(["mlp".into()]) {
        let mut labels = HashMap::new();
        labels.insert("1".to_owned(), Arc::clone(&route));
        labels.insert(String::new(), Arc::clone(&route));
        table.insert(name, labels);
    }
    RwLock::new(Arc::new(table))
}

fn lookups(c: &mut Criterion) {
    let before = before_table();
    c.bench_function("before: model + label, route cloned", |b| {
        b.iter(|| {
            let table = before.read().unwrap_or_else(PoisonError::into_inner);
            let route = table
                .get(black_box("mlp"))
                .and_then(|m| m.get(black_box("")));
            black_box(route.cloned())
        });
    });
    let single = table(false);
    for (name, version) in [
        ("production alias (default)", ""),
        ("alias", "canary"),
        ("version", "2"),
    ] {
        c.bench_function(&format!("after: {name}, route cloned, counted"), |b| {
            b.iter(|| {
                let current = single.current();
                let routed = current.route(black_box("mlp"), black_box(version));
                let routed = routed.map(|r| {
                    r.target.count();
                    Arc::clone(&r.target.route)
                });
                black_box(routed)
            });
        });
    }
    let split = table(true);
    c.bench_function(
        "after: split 90/10 + 5% shadow draw, route cloned, counted",
        |b| {
            b.iter(|| {
                let current = split.current();
                let routed = current.route(black_box("mlp"), black_box(""));
                let routed = routed.map(|r| {
                    r.target.count();
                    (Arc::clone(&r.target.route), r.copies.len())
                });
                black_box(routed)
            });
        },
    );
}

criterion_group!(benches, lookups);
criterion_main!(benches);
