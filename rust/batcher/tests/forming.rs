//! Batch forming: sizes, delay, preferred sizes, shapes, multi-row requests and priorities.

mod common;

use std::time::{Duration, Instant};

use common::*;
use ferroserve_batcher::{BatchData, BatcherConfig, NextBatch};

#[test]
fn without_batching_every_request_is_its_own_batch() {
    let queue = queue(batching(0));
    submit(&queue, request(1, 3, &[2]));
    submit(&queue, request(2, 5, &[2]));
    let first = batch(&queue, Duration::ZERO);
    assert_eq!(first.tokens, [1]);
    assert_eq!(first.rows(), [1]);
    assert_eq!(first.size(), 1);
    assert_eq!(first.inputs[0].shape, [3, 2], "shape taken as-is");
    assert_eq!(tokens_now(&queue), [2]);
    assert!(nothing_due(&queue));
}

#[test]
fn lone_request_on_an_idle_queue_is_not_delayed() {
    let queue = queue(batching(8));
    submit(&queue, row(1));
    assert_eq!(tokens_now(&queue), [1]);
}

#[test]
fn requests_queued_during_execution_are_batched_together() {
    let queue = queue(batching(8));
    submit(&queue, row(1));
    let _executing = batch(&queue, Duration::ZERO);
    for token in 2..5 {
        submit(&queue, row(token));
    }
    assert_eq!(tokens_now(&queue), [2, 3, 4]);
}

#[test]
fn a_full_batch_goes_at_once_despite_the_delay() {
    let queue = queue(BatcherConfig {
        max_queue_delay: Duration::from_secs(60),
        ..batching(4)
    });
    for token in 0..6 {
        submit(&queue, row(token));
    }
    assert_eq!(tokens_now(&queue), [0, 1, 2, 3]);
    assert!(nothing_due(&queue), "2 rows wait for more or for the delay");
}

#[test]
fn a_partial_batch_waits_for_the_oldest_request_delay() {
    // Long enough that a descheduled test thread cannot see it expire between two calls.
    let delay = Duration::from_millis(250);
    let queue = queue(BatcherConfig {
        max_queue_delay: delay,
        ..batching(8)
    });
    let submitted = Instant::now();
    submit(&queue, row(1));
    assert!(nothing_due(&queue));
    submit(&queue, row(2));
    let batch = batch(&queue, Duration::from_secs(10));
    assert!(submitted.elapsed() >= delay, "sent before the delay ended");
    assert_eq!(batch.tokens, [1, 2]);
}

#[test]
fn the_delay_runs_from_the_oldest_queued_request_even_if_it_cannot_join() {
    let delay = Duration::from_millis(30);
    let queue = queue(BatcherConfig {
        max_queue_delay: delay,
        priority_levels: 2,
        default_priority_level: 2,
        ..batching(8)
    });
    submit(&queue, request(1, 1, &[4]));
    std::thread::sleep(delay + Duration::from_millis(5));
    let mut high = row(2);
    high.priority = 1;
    submit(&queue, high);
    assert_eq!(
        tokens_now(&queue),
        [2],
        "request 1 waited its delay: no more waiting"
    );
    assert_eq!(tokens_now(&queue), [1]);
}

#[test]
fn the_largest_preferred_size_reached_goes_at_once() {
    let queue = queue(BatcherConfig {
        preferred_batch_sizes: vec![2, 4],
        max_queue_delay: Duration::from_secs(60),
        ..batching(8)
    });
    for token in 0..5 {
        submit(&queue, row(token));
    }
    assert_eq!(tokens_now(&queue), [0, 1, 2, 3]);
    assert!(nothing_due(&queue), "1 row is no preferred size");
    submit(&queue, row(5));
    assert_eq!(tokens_now(&queue), [4, 5]);
}

#[test]
fn after_the_delay_the_largest_possible_batch_goes() {
    let queue = queue(BatcherConfig {
        preferred_batch_sizes: vec![4],
        max_queue_delay: Duration::from_millis(20),
        ..batching(8)
    });
    for token in 0..3 {
        submit(&queue, row(token));
    }
    assert_eq!(batch(&queue, Duration::from_secs(10)).tokens, [0, 1, 2]);
}

#[test]
fn incompatible_shapes_never_mix_and_keep_their_place() {
    let queue = queue(batching(8));
    submit(&queue, request(1, 1, &[3]));
    submit(&queue, request(2, 1, &[4]));
    submit(&queue, request(3, 1, &[3]));
    submit(&queue, request(4, 1, &[4]));
    let first = batch(&queue, Duration::ZERO);
    assert_eq!(first.tokens, [1, 3]);
    assert_eq!(first.inputs[0].shape, [2, 3]);
    let second = batch(&queue, Duration::ZERO);
    assert_eq!(second.tokens, [2, 4]);
    assert_eq!(second.inputs[0].shape, [2, 4]);
}

#[test]
fn requests_with_a_different_number_of_inputs_never_mix() {
    let queue = queue(batching(8));
    submit(&queue, row(1));
    let mut two_inputs = row(2);
    two_inputs.inputs.push(vec![0; 2]);
    two_inputs.shapes.push(vec![1, 2]);
    submit(&queue, two_inputs);
    assert_eq!(tokens_now(&queue), [1]);
    assert_eq!(tokens_now(&queue), [2]);
}

#[test]
fn multi_row_requests_fill_the_batch_in_order() {
    let queue = queue(batching(8));
    submit(&queue, request(1, 3, &[2]));
    submit(&queue, request(2, 4, &[2]));
    submit(&queue, request(3, 2, &[2]));
    let first = batch(&queue, Duration::ZERO);
    assert_eq!(first.tokens, [1, 2], "the 2-row request does not fit in 8");
    assert_eq!(first.rows(), [3, 4]);
    assert_eq!(first.size(), 7);
    assert_eq!(first.inputs[0].shape, [7, 2]);
    assert_eq!(tokens_now(&queue), [3]);
}

#[test]
fn a_request_of_max_batch_size_rows_is_a_full_batch() {
    let queue = queue(BatcherConfig {
        max_queue_delay: Duration::from_secs(60),
        ..batching(4)
    });
    submit(&queue, request(1, 4, &[1]));
    assert_eq!(tokens_now(&queue), [1]);
}

#[test]
fn one_request_passes_its_buffer_through_and_several_are_concatenated() {
    let queue = queue(batching(8));
    submit(&queue, row(1));
    let single = batch(&queue, Duration::ZERO);
    assert!(matches!(&single.inputs[0].data, BatchData::Single(buffer) if buffer == &[1, 1]));
    submit(&queue, row(2));
    submit(&queue, row(3));
    let several = batch(&queue, Duration::ZERO);
    assert!(matches!(&several.inputs[0].data, BatchData::Owned(bytes) if bytes == &[2, 2, 3, 3]));
}

#[test]
fn priorities_fill_from_the_highest_level() {
    let queue = queue(BatcherConfig {
        priority_levels: 3,
        default_priority_level: 3,
        ..batching(3)
    });
    let at = |token, priority| {
        let mut request = row(token);
        request.priority = priority;
        request
    };
    submit(&queue, at(1, 0));
    submit(&queue, at(2, 3));
    submit(&queue, at(3, 2));
    submit(&queue, at(4, 1));
    submit(&queue, at(5, 2));
    assert_eq!(tokens_now(&queue), [4, 3, 5]);
    assert_eq!(
        tokens_now(&queue),
        [1, 2],
        "priority 0 means the default level 3"
    );
}

#[test]
fn a_priority_above_the_levels_means_the_default_level() {
    // Triton: not an error; the request queues at default_priority_level.
    let queue = queue(BatcherConfig {
        priority_levels: 2,
        default_priority_level: 2,
        ..batching(3)
    });
    let at = |token, priority| {
        let mut request = row(token);
        request.priority = priority;
        request
    };
    submit(&queue, at(1, 3));
    submit(&queue, at(2, u64::MAX));
    submit(&queue, at(3, 1));
    // Level 1 first, then level 2 in arrival order.
    assert_eq!(tokens_now(&queue), [3, 1, 2]);
}

#[test]
fn malformed_requests_are_invalid_input() {
    let queue = queue(batching(4));
    let mut cases = Vec::new();
    cases.push(request(1, 5, &[2]));
    cases.push(request(2, 0, &[2]));
    let mut missing_dim = row(3);
    missing_dim.shapes[0].clear();
    cases.push(missing_dim);
    let mut mismatch = row(4);
    mismatch.inputs.push(vec![0; 4]);
    mismatch.shapes.push(vec![2, 2]);
    cases.push(mismatch);
    let mut negative = row(5);
    negative.shapes[0][1] = -1;
    cases.push(negative);
    let mut count = row(6);
    count.shapes.push(vec![1]);
    cases.push(count);
    for request in cases {
        let error = queue.submit(request).expect_err("malformed");
        assert_eq!(
            error.kind(),
            ferroserve_batcher::ErrorKind::InvalidInput,
            "{error}"
        );
    }
    assert_eq!(queue.pending(), 0);
}

#[test]
fn invalid_configs_are_refused() {
    let refused = |config: BatcherConfig| {
        ferroserve_batcher::BatchQueue::<Vec<u8>, u32>::new("m", config).is_err()
    };
    assert!(refused(BatcherConfig {
        preferred_batch_sizes: vec![9],
        ..batching(8)
    }));
    assert!(refused(BatcherConfig {
        preferred_batch_sizes: vec![0],
        ..batching(8)
    }));
    assert!(refused(BatcherConfig {
        priority_levels: 2,
        default_priority_level: 0,
        ..batching(8)
    }));
    assert!(refused(BatcherConfig {
        priority_levels: 2,
        default_priority_level: 3,
        ..batching(8)
    }));
    let mut policies = std::collections::BTreeMap::new();
    policies.insert(3, ferroserve_batcher::QueuePolicy::default());
    assert!(refused(BatcherConfig {
        priority_levels: 2,
        default_priority_level: 1,
        priority_policies: policies,
        ..batching(8)
    }));
}

#[test]
fn an_empty_queue_times_out() {
    let queue = queue(batching(8));
    let started = Instant::now();
    assert!(matches!(
        queue.next_batch(Duration::from_millis(20)),
        NextBatch::Timeout
    ));
    assert!(started.elapsed() >= Duration::from_millis(20));
}
