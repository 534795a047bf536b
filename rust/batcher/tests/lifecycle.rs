//! Queue policies (size limits, timeouts, deadlines), cancel, close, concurrent executors and
//! statistics.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use ferroserve_batcher::{
    BatchError, BatcherConfig, NextBatch, Outcome, QueuePolicy, TimeoutAction,
};

/// A queue with one level whose policy is `policy`.
fn with_policy(max_batch_size: usize, policy: QueuePolicy) -> Queue {
    queue(BatcherConfig {
        default_policy: policy,
        ..batching(max_batch_size)
    })
}

#[test]
fn a_full_level_is_resource_exhausted_and_other_levels_are_not() {
    let mut policies = BTreeMap::new();
    policies.insert(
        1,
        QueuePolicy {
            max_queue_size: 2,
            ..QueuePolicy::default()
        },
    );
    let queue = queue(BatcherConfig {
        priority_levels: 2,
        default_priority_level: 2,
        priority_policies: policies,
        ..batching(8)
    });
    let high = |token| {
        let mut request = row(token);
        request.priority = 1;
        request
    };
    submit(&queue, high(1));
    submit(&queue, high(2));
    let error = queue.submit(high(3)).expect_err("level 1 is full");
    assert!(matches!(
        error,
        BatchError::QueueFull {
            level: 1,
            max_queue_size: 2,
            ..
        }
    ));
    assert_eq!(
        error.kind(),
        ferroserve_batcher::ErrorKind::ResourceExhausted
    );
    submit(&queue, row(4));
    assert_eq!(queue.pending(), 3);
}

/// A request whose own timeout (1 ms) shortens its level's 60 s default.
fn hasty(token: u32) -> ferroserve_batcher::Request<Vec<u8>, u32> {
    let mut request = row(token);
    request.timeout_us = 1_000;
    request
}

#[test]
fn expired_requests_are_rejected_under_reject() {
    let queue = with_policy(
        8,
        QueuePolicy {
            default_timeout_us: 60_000_000,
            allow_timeout_override: true,
            ..QueuePolicy::default()
        },
    );
    let first = submit(&queue, hasty(1));
    thread::sleep(Duration::from_millis(5));
    submit(&queue, row(2));
    let batch = batch(&queue, Duration::ZERO);
    assert_eq!(batch.rejected, [1]);
    assert_eq!(batch.rejected_ids, [first]);
    assert_eq!(batch.tokens, [2]);
}

#[test]
fn rejected_requests_come_back_even_without_a_batch() {
    let queue = with_policy(
        8,
        QueuePolicy {
            default_timeout_us: 1_000,
            ..QueuePolicy::default()
        },
    );
    submit(&queue, row(1));
    thread::sleep(Duration::from_millis(5));
    let batch = batch(&queue, Duration::ZERO);
    assert!(batch.tokens.is_empty());
    assert_eq!(batch.rejected, [1]);
    assert_eq!(batch.size(), 0);
    assert!(nothing_due(&queue));
}

#[test]
fn expired_requests_run_last_under_delay() {
    let queue = with_policy(
        0,
        QueuePolicy {
            timeout_action: TimeoutAction::Delay,
            default_timeout_us: 60_000_000,
            allow_timeout_override: true,
            ..QueuePolicy::default()
        },
    );
    submit(&queue, hasty(1));
    thread::sleep(Duration::from_millis(5));
    submit(&queue, row(2));
    let first = batch(&queue, Duration::ZERO);
    assert_eq!(first.tokens, [2]);
    assert!(first.rejected.is_empty());
    assert_eq!(tokens_now(&queue), [1]);
}

#[test]
fn a_request_timeout_only_shortens_a_default_it_may_override() {
    // (allow_timeout_override, default_timeout_us, the request's timeout, rejected?)
    let cases = [
        (true, 60_000_000, 1_000, true),
        (false, 60_000_000, 1_000, false),
        (true, 0, 1_000, false), // no default: nothing to shorten (Triton)
        (true, 1_000, 60_000_000, true), // longer than the default: ignored
    ];
    for (allow, default_timeout_us, timeout_us, rejected) in cases {
        let queue = with_policy(
            8,
            QueuePolicy {
                allow_timeout_override: allow,
                default_timeout_us,
                ..QueuePolicy::default()
            },
        );
        let mut request = row(1);
        request.timeout_us = timeout_us;
        let id = submit(&queue, request);
        thread::sleep(Duration::from_millis(5));
        let batch = batch(&queue, Duration::ZERO);
        let expected: &[u32] = if rejected { &[1] } else { &[] };
        assert_eq!(
            batch.rejected, expected,
            "{allow} {default_timeout_us} {timeout_us}"
        );
        let ids: &[u64] = if rejected { &[id] } else { &[] };
        assert_eq!(batch.rejected_ids, ids);
    }
}

#[test]
fn the_earliest_of_timeout_and_caller_deadline_applies() {
    let queue = with_policy(
        8,
        QueuePolicy {
            default_timeout_us: 60_000_000,
            ..QueuePolicy::default()
        },
    );
    let mut request = row(1);
    request.deadline = Some(Instant::now());
    submit(&queue, request);
    let mut later = row(2);
    later.deadline = Some(in_ms(60_000));
    submit(&queue, later);
    let batch = batch(&queue, Duration::ZERO);
    assert_eq!(batch.rejected, [1]);
    assert_eq!(batch.tokens, [2]);
}

#[test]
fn cancel_removes_only_queued_requests() {
    let queue = queue(batching(0));
    let first = submit(&queue, row(1));
    let second = submit(&queue, row(2));
    assert_eq!(tokens_now(&queue), [1]);
    assert!(!queue.cancel(first), "already in a batch");
    assert!(queue.cancel(second));
    assert!(!queue.cancel(second), "already cancelled");
    assert!(!queue.cancel(999));
    assert!(nothing_due(&queue));
}

#[test]
fn close_with_drain_runs_what_is_queued_then_reports_closed() {
    let queue = queue(batching(2));
    for token in 0..3 {
        submit(&queue, row(token));
    }
    assert!(queue.close(true).is_empty());
    assert!(queue.is_closed());
    assert!(matches!(
        queue.submit(row(9)),
        Err(BatchError::Closed { .. })
    ));
    assert_eq!(tokens_now(&queue), [0, 1]);
    assert_eq!(tokens_now(&queue), [2]);
    assert!(matches!(
        queue.next_batch(Duration::ZERO),
        NextBatch::Closed
    ));
}

#[test]
fn draining_does_not_wait_for_the_delay() {
    let queue = queue(BatcherConfig {
        max_queue_delay: Duration::from_secs(60),
        ..batching(8)
    });
    submit(&queue, row(1));
    assert!(nothing_due(&queue));
    queue.close(true);
    assert_eq!(tokens_now(&queue), [1]);
}

#[test]
fn close_without_drain_returns_every_queued_token() {
    let queue = queue(BatcherConfig {
        priority_levels: 2,
        default_priority_level: 2,
        ..batching(8)
    });
    submit(&queue, row(1));
    let mut high = row(2);
    high.priority = 1;
    submit(&queue, high);
    let mut removed = queue.close(false);
    removed.sort_unstable();
    assert_eq!(removed, [1, 2]);
    assert_eq!(queue.pending(), 0);
    assert!(matches!(
        queue.next_batch(Duration::ZERO),
        NextBatch::Closed
    ));
}

#[test]
fn close_without_drain_after_drain_returns_what_is_left() {
    let queue = queue(batching(1));
    submit(&queue, row(1));
    submit(&queue, row(2));
    assert!(queue.close(true).is_empty());
    assert_eq!(queue.close(false), [1, 2]);
}

#[test]
fn close_wakes_blocked_executors() {
    let queue = Arc::new(queue(batching(8)));
    let waiters: Vec<_> = (0..2)
        .map(|_| {
            let queue = Arc::clone(&queue);
            thread::spawn(move || {
                let started = Instant::now();
                let closed = matches!(queue.next_batch(Duration::from_secs(60)), NextBatch::Closed);
                (closed, started.elapsed())
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(20));
    queue.close(true);
    for waiter in waiters {
        let (closed, waited) = waiter.join().expect("executor thread");
        assert!(closed);
        assert!(waited < Duration::from_secs(30), "not woken by close");
    }
}

#[test]
fn concurrent_executors_get_every_request_exactly_once() {
    let queue = Arc::new(queue(BatcherConfig {
        max_queue_delay: Duration::from_micros(100),
        ..batching(16)
    }));
    let executors: Vec<_> = (0..4)
        .map(|_| {
            let queue = Arc::clone(&queue);
            thread::spawn(move || {
                let mut seen = Vec::new();
                loop {
                    match queue.next_batch(Duration::from_secs(10)) {
                        NextBatch::Batch(batch) => {
                            assert!(batch.size() <= 16);
                            assert_eq!(batch.size(), batch.tokens.len());
                            seen.extend(batch.tokens);
                        }
                        NextBatch::Timeout => panic!("stalled with requests queued"),
                        NextBatch::Closed => return seen,
                    }
                }
            })
        })
        .collect();
    let producers: Vec<_> = (0..2u32)
        .map(|producer| {
            let queue = Arc::clone(&queue);
            thread::spawn(move || {
                for i in 0..1000 {
                    submit(&queue, row(producer * 1000 + i));
                }
            })
        })
        .collect();
    for producer in producers {
        producer.join().expect("producer thread");
    }
    queue.close(true);
    let mut seen: Vec<u32> = executors
        .into_iter()
        .flat_map(|executor| executor.join().expect("executor thread"))
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..2000).collect::<Vec<_>>());
}

#[test]
fn statistics_follow_triton_semantics() {
    let queue = queue(batching(8));
    submit(&queue, row(1));
    submit(&queue, row(2));
    assert_eq!(queue.statistics().snapshot().pending, 2);
    let batch = batch(&queue, Duration::ZERO);
    queue.record_execution(batch.size(), 10, 20, 30);
    queue.record_execution(1, 1, 2, 3);
    queue.record_request(Outcome::Success, 100);
    queue.record_request(Outcome::Timeout, 7);
    let stats = queue.statistics().snapshot();
    assert_eq!(stats.pending, 0);
    assert_eq!(stats.inference_count, 3);
    assert_eq!(stats.execution_count, 2);
    assert_eq!((stats.success.count, stats.success.ns), (1, 100));
    assert_eq!((stats.fail.count, stats.fail.ns), (1, 7));
    assert_eq!(stats.queue.count, 2);
    assert_eq!((stats.compute_infer.count, stats.compute_infer.ns), (2, 22));
    assert_eq!(stats.batch_stats.len(), 2);
    assert_eq!(stats.batch_stats[&2].compute_output.ns, 30);
    assert_eq!(stats.batch_stats[&1].compute_input.count, 1);
    assert!(stats.last_inference_ms > 0);
    assert_eq!(stats.outcomes, [1, 0, 1, 0, 0, 0, 0]);
    assert_eq!(stats.histograms.request.count(), 2);
    assert_eq!(stats.histograms.request.sum_ns, 107);
    assert_eq!(stats.histograms.queue.count(), 2);
    assert_eq!(stats.histograms.compute_infer.count(), 2);
    assert_eq!(stats.histograms.compute_infer.sum_ns, 22);
}

#[test]
fn statistics_keep_batch_sizes_beyond_the_slots() {
    let queue = queue(batching(5000));
    queue.record_execution(4096, 1, 2, 3);
    queue.record_execution(4096, 1, 2, 3);
    let stats = queue.statistics().snapshot();
    assert_eq!(stats.batch_stats[&4096].compute_infer.count, 2);
}
