//! submit -> next_batch -> split for 1-row MLP-sized requests (64 f32 in, 10 f32 out) at batch
//! sizes 1, 16 and 64: the batcher's whole per-request cost, without a model. Prints the cost
//! per request next to criterion's per-iteration figure. Target: <= 5 µs per request.

// criterion_group! and criterion_main! generate undocumented functions.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ferroserve_batcher::{BatchQueue, BatcherConfig, NextBatch, Request};

/// Input bytes of one request: 64 f32.
const INPUT_BYTES: usize = 64 * 4;
/// Output bytes of one request: 10 f32.
const OUTPUT_BYTES: usize = 10 * 4;

/// Queues `batch_size` requests, takes them as one batch and splits a fake output.
fn round_trip(queue: &BatchQueue<Vec<u8>, u64>, batch_size: usize, output: &[u8]) {
    for token in 0..batch_size as u64 {
        let submitted = queue.submit(Request {
            inputs: vec![vec![0u8; INPUT_BYTES]],
            shapes: vec![vec![1, 64]],
            token,
            priority: 0,
            timeout_us: 0,
            deadline: None,
        });
        black_box(submitted.is_ok());
    }
    let NextBatch::Batch(batch) = queue.next_batch(Duration::ZERO) else {
        panic!("a full batch must be due at once");
    };
    assert_eq!(
        batch.size(),
        batch_size,
        "the batch must take every request"
    );
    let output = &output[..batch_size * OUTPUT_BYTES];
    let pieces = batch.split(output, batch_size).map(|pieces| pieces.len());
    black_box((pieces.is_ok(), batch.tokens.len()));
}

fn bench_queue(c: &mut Criterion) {
    let output = vec![0u8; 64 * OUTPUT_BYTES];
    let mut group = c.benchmark_group("submit_next_batch_split");
    let mut per_request = Vec::new();
    for batch_size in [1usize, 16, 64] {
        let queue = BatchQueue::new(
            "mlp",
            BatcherConfig {
                max_batch_size: batch_size,
                // A delay that never ends: batches go only because they are full.
                max_queue_delay: Duration::from_secs(3600),
                ..BatcherConfig::default()
            },
        )
        .expect("valid config");
        group.throughput(Throughput::Elements(batch_size as u64));
        group.bench_function(format!("batch_{batch_size}"), |b| {
            b.iter(|| round_trip(&queue, batch_size, &output));
        });
        // A plain timed loop for the per-request figure printed below.
        let rounds = 20_000 / batch_size + 100;
        let started = Instant::now();
        for _ in 0..rounds {
            round_trip(&queue, batch_size, &output);
        }
        let ns = started.elapsed().as_nanos() as f64 / (rounds * batch_size) as f64;
        per_request.push((batch_size, ns));
    }
    group.finish();
    println!("\nper-request cost of submit -> next_batch -> split (64 f32 in, 10 f32 out):");
    println!("{:>10} {:>14}", "batch size", "ns / request");
    for (batch_size, ns) in per_request {
        println!("{batch_size:>10} {ns:>14.0}");
    }
}

criterion_group!(benches, bench_queue);
criterion_main!(benches);
