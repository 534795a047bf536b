//! Helpers shared by the batcher's integration tests; each test file uses a subset.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use ferroserve_batcher::{Batch, BatchQueue, BatcherConfig, NextBatch, Request};

/// The queue under test: byte vectors as buffers, integers as tokens.
pub type Queue = BatchQueue<Vec<u8>, u32>;

/// A queue for model "m".
pub fn queue(config: BatcherConfig) -> Queue {
    BatchQueue::new("m", config).expect("valid config")
}

/// A batching config without delay.
pub fn batching(max_batch_size: usize) -> BatcherConfig {
    BatcherConfig {
        max_batch_size,
        ..BatcherConfig::default()
    }
}

/// A one-input request of `rows` rows of shape [rows, tail...], filled with `token` bytes.
pub fn request(token: u32, rows: i64, tail: &[i64]) -> Request<Vec<u8>, u32> {
    let mut shape = vec![rows];
    shape.extend_from_slice(tail);
    let elements: i64 = shape.iter().product();
    Request {
        inputs: vec![vec![token as u8; elements as usize]],
        shapes: vec![shape],
        token,
        priority: 0,
        timeout_us: 0,
        deadline: None,
    }
}

/// A one-row request with shape [1, 2].
pub fn row(token: u32) -> Request<Vec<u8>, u32> {
    request(token, 1, &[2])
}

/// Submits, panicking on refusal.
pub fn submit(queue: &Queue, request: Request<Vec<u8>, u32>) -> u64 {
    queue.submit(request).expect("accepted")
}

/// The next batch within `wait`, panicking on Timeout or Closed.
pub fn batch(queue: &Queue, wait: Duration) -> Batch<Vec<u8>, u32> {
    match queue.next_batch(wait) {
        NextBatch::Batch(batch) => batch,
        other => panic!("expected a batch, got {other:?}"),
    }
}

/// The next batch's tokens, without waiting.
pub fn tokens_now(queue: &Queue) -> Vec<u32> {
    batch(queue, Duration::ZERO).tokens
}

/// Whether `next_batch` without waiting finds nothing due.
pub fn nothing_due(queue: &Queue) -> bool {
    matches!(queue.next_batch(Duration::ZERO), NextBatch::Timeout)
}

/// A deadline `ms` milliseconds from now.
pub fn in_ms(ms: u64) -> Instant {
    Instant::now() + Duration::from_millis(ms)
}
