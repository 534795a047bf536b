//! Work under the queue lock grows at most logarithmically with the queue: cancelling many
//! queued requests, and forming batches with many requests queued at levels whose deadlines
//! are checked, must not scan the whole queue each time (the bounds here are several times what
//! the O(log n) queue takes in a debug build, and well below what a scan per call takes).

mod common;

use std::time::{Duration, Instant};

use common::*;
use ferroserve_batcher::{QueuePolicy, TimeoutAction};

const QUEUED: usize = 50_000;

#[test]
fn cancelling_every_queued_request_takes_no_scan_each() {
    let queue = queue(batching(8));
    let ids: Vec<u64> = (0..QUEUED as u32).map(|t| submit(&queue, row(t))).collect();
    let started = Instant::now();
    // Newest first: the worst order for a scan from the front.
    for &id in ids.iter().rev() {
        assert!(queue.cancel(id));
    }
    let took = started.elapsed();
    assert_eq!(queue.pending(), 0);
    assert!(
        took < Duration::from_secs(2),
        "{QUEUED} cancels took {took:?}"
    );
}

#[test]
fn forming_batches_from_a_deep_queue_with_deadlines_takes_no_scan_each() {
    let queue = queue(ferroserve_batcher::BatcherConfig {
        default_policy: QueuePolicy {
            timeout_action: TimeoutAction::Reject,
            default_timeout_us: 3_600_000_000,
            ..QueuePolicy::default()
        },
        ..batching(8)
    });
    for token in 0..QUEUED as u32 {
        submit(&queue, row(token));
    }
    let started = Instant::now();
    let mut taken = 0;
    while taken < QUEUED {
        taken += tokens_now(&queue).len();
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "{} batches took {took:?}",
        QUEUED / 8
    );
}

#[test]
fn requests_batched_before_their_deadline_are_never_rejected_later() {
    let queue = queue(ferroserve_batcher::BatcherConfig {
        default_policy: QueuePolicy {
            timeout_action: TimeoutAction::Reject,
            default_timeout_us: 20_000,
            ..QueuePolicy::default()
        },
        ..batching(8)
    });
    // Many requests leave in batches before their deadline (their deadlines stay behind in
    // the queue's bookkeeping until rebuilt), one is cancelled, one expires.
    for token in 0..1000 {
        submit(&queue, row(token));
        assert_eq!(tokens_now(&queue), vec![token]);
    }
    let cancelled = submit(&queue, row(1000));
    assert!(queue.cancel(cancelled));
    submit(&queue, row(1001));
    std::thread::sleep(Duration::from_millis(30));
    submit(&queue, row(1002));
    let batch = batch(&queue, Duration::ZERO);
    assert_eq!(batch.rejected, vec![1001]);
    assert_eq!(batch.tokens, vec![1002]);
    assert_eq!(queue.pending(), 0);
}
