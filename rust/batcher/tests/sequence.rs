//! The sequence batcher's rules (Triton's `sequence_batching`): one request of a sequence at a
//! time in arrival order with its state passed along, slots bounding the running sequences
//! with a backlog behind them, the idle timeout, and Triton's errors.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ferroserve_batcher::{
    Admission, CorrelationId, ErrorKind, Released, SequenceConfig, SequenceError, SequenceScheduler,
};
use proptest::prelude::*;

type Scheduler = SequenceScheduler<&'static str, u32>;

fn scheduler(slots: usize) -> Scheduler {
    bounded(slots, 0)
}

fn bounded(slots: usize, max_held: usize) -> Scheduler {
    SequenceScheduler::new(
        "acc",
        SequenceConfig {
            slots,
            max_idle: Duration::from_millis(100),
            max_held,
        },
    )
}

fn id(number: u64) -> CorrelationId {
    CorrelationId::Number(number)
}

/// Submits one row; the released request, or None when it is held.
fn send(
    scheduler: &mut Scheduler,
    sequence: u64,
    (start, end): (bool, bool),
    request: &'static str,
    now: Instant,
) -> Option<Released<&'static str, u32>> {
    match scheduler.submit(id(sequence), start, end, 1, request, now) {
        Ok(Admission::Run(released)) => Some(released),
        Ok(Admission::Held { .. }) => None,
        Err(error) => panic!("refused: {error}"),
    }
}

const START: (bool, bool) = (true, false);
const MIDDLE: (bool, bool) = (false, false);
const END: (bool, bool) = (false, true);

#[test]
fn a_sequence_runs_one_request_at_a_time_in_order_with_its_state() {
    let mut s = scheduler(1);
    let now = Instant::now();
    let first = send(&mut s, 7, START, "a", now).expect("a slot is free");
    assert_eq!((first.controls.start, first.controls.end), (true, false));
    assert_eq!(
        (first.controls.correlation_id.clone(), first.controls.slot),
        (id(7), 0)
    );
    assert_eq!(first.state, None, "a START starts from the initial state");
    // b and c wait for a's answer, whatever their timing.
    assert!(send(&mut s, 7, MIDDLE, "b", now).is_none());
    assert!(send(&mut s, 7, END, "c", now).is_none());
    let next = s.finished(&id(7), Some(10));
    assert_eq!(next.len(), 1);
    assert_eq!((next[0].request, next[0].state), ("b", Some(10)));
    let next = s.finished(&id(7), Some(11));
    assert_eq!((next[0].request, next[0].state), ("c", Some(11)));
    assert!(next[0].controls.end);
    assert!(s.finished(&id(7), Some(12)).is_empty());
    assert_eq!(s.active(), 0, "the END's answer frees the slot");
}

#[test]
fn a_failed_request_keeps_the_state_it_was_given() {
    let mut s = scheduler(1);
    let now = Instant::now();
    send(&mut s, 1, START, "a", now);
    s.finished(&id(1), Some(5));
    send(&mut s, 1, MIDDLE, "b", now).expect("runs");
    s.finished(&id(1), None); // b failed
    let c = send(&mut s, 1, MIDDLE, "c", now).expect("runs");
    assert_eq!(c.state, Some(5));
}

#[test]
fn tritons_errors() {
    let mut s = scheduler(2);
    let now = Instant::now();
    let refused = |s: &mut Scheduler, id, start, rows| {
        s.submit(id, start, false, rows, "x", now)
            .expect_err("refused")
    };
    let none = refused(&mut s, CorrelationId::Number(0), true, 1);
    assert_eq!(
        none.to_string(),
        "inference request to model 'acc' must specify a non-zero or non-empty correlation ID"
    );
    assert!(matches!(
        refused(&mut s, CorrelationId::Text(String::new()), true, 1),
        SequenceError::NoCorrelationId { .. }
    ));
    let unknown = refused(&mut s, id(3), false, 1);
    assert_eq!(
        unknown.to_string(),
        "inference request for sequence 3 to model 'acc' must specify the START flag on the \
         first request of the sequence"
    );
    assert_eq!(unknown.kind(), ErrorKind::InvalidInput);
    let rows = refused(&mut s, id(3), true, 2);
    assert_eq!(
        rows.to_string(),
        "inference request to model 'acc' must specify batch-size 1 due to requirements of \
         sequence batcher"
    );
    // After its END is accepted, the id takes only a new START.
    send(&mut s, 4, START, "a", now);
    assert!(send(&mut s, 4, END, "b", now).is_none());
    assert!(matches!(
        refused(&mut s, id(4), false, 1),
        SequenceError::NotStarted { .. }
    ));
    let text = CorrelationId::Text("user-9".into());
    let unknown_text = refused(&mut s, text, false, 1);
    assert!(unknown_text.to_string().contains("sequence user-9 "));
    assert!(s.close().contains(&"b"));
    let closed = refused(&mut s, id(5), true, 1);
    assert_eq!(closed.kind(), ErrorKind::Unavailable);
}

#[test]
fn slots_bound_the_running_sequences_and_the_backlog_takes_freed_ones_in_order() {
    let mut s = scheduler(2);
    let now = Instant::now();
    let a = send(&mut s, 1, START, "1a", now).expect("slot 0");
    let b = send(&mut s, 2, START, "2a", now).expect("slot 1");
    assert_eq!((a.controls.slot, b.controls.slot), (0, 1));
    assert!(
        send(&mut s, 3, START, "3a", now).is_none(),
        "no slot: backlog"
    );
    assert!(send(&mut s, 4, START, "4a", now).is_none());
    assert!(send(&mut s, 3, END, "3b", now).is_none());
    assert_eq!((s.active(), s.backlogged()), (2, 2));
    // Sequence 1 ends: its slot goes to 3, the first in the backlog.
    assert!(s.finished(&id(1), Some(1)).is_empty());
    assert!(send(&mut s, 1, END, "1b", now).is_some());
    let next = s.finished(&id(1), Some(2));
    assert_eq!(next.len(), 1);
    assert_eq!((next[0].request, next[0].controls.slot), ("3a", 0));
    assert!(next[0].controls.start);
    let next = s.finished(&id(3), Some(3));
    assert_eq!(next[0].request, "3b");
    // 3's END answered: slot 0 goes to 4.
    let next = s.finished(&id(3), Some(4));
    assert_eq!((next[0].request, next[0].controls.slot), ("4a", 0));
    assert_eq!((s.active(), s.backlogged()), (2, 0));
}

#[test]
fn an_idle_sequence_loses_its_slot_and_must_start_again() {
    let mut s = scheduler(1);
    let now = Instant::now();
    send(&mut s, 1, START, "1a", now);
    assert!(send(&mut s, 2, START, "2a", now).is_none(), "backlogged");
    s.finished(&id(1), Some(1));
    assert_eq!(s.next_reap(), Some(now + Duration::from_millis(100)));
    assert!(s.reap(now + Duration::from_millis(99)).is_empty());
    let promoted = s.reap(now + Duration::from_millis(100));
    assert_eq!((promoted[0].request, promoted[0].controls.slot), ("2a", 0));
    let late = s.submit(
        id(1),
        false,
        false,
        1,
        "1b",
        now + Duration::from_millis(101),
    );
    assert!(matches!(late, Err(SequenceError::NotStarted { .. })));
    // A running sequence is never idle, however long its request takes.
    assert!(s.reap(now + Duration::from_secs(10)).is_empty());
}

#[test]
fn a_start_on_a_sequence_that_never_ended_continues_in_its_slot() {
    let mut s = scheduler(1);
    let now = Instant::now();
    send(&mut s, 1, START, "a", now);
    assert!(send(&mut s, 1, START, "again", now).is_none());
    let next = s.finished(&id(1), Some(9));
    assert_eq!((next[0].request, next[0].state), ("again", None));
    assert!(next[0].controls.start);
    assert_eq!(s.active(), 1);
}

#[test]
fn a_withdrawn_request_never_runs() {
    let mut s = scheduler(1);
    let now = Instant::now();
    send(&mut s, 1, START, "1a", now);
    let Ok(Admission::Held { ticket }) = s.submit(id(1), false, false, 1, "1b", now) else {
        panic!("held");
    };
    assert_eq!(s.withdraw(&id(1), ticket), Some("1b"));
    assert_eq!(s.withdraw(&id(1), ticket), None);
    assert!(s.finished(&id(1), None).is_empty());
    // A backlogged sequence whose only request is withdrawn leaves the backlog.
    let Ok(Admission::Held { ticket }) = s.submit(id(2), true, false, 1, "2a", now) else {
        panic!("held");
    };
    assert_eq!(s.withdraw(&id(2), ticket), Some("2a"));
    assert_eq!(s.backlogged(), 0);
}

#[test]
fn held_requests_are_bounded_and_refused_past_the_bound_as_resource_exhausted() {
    let mut s = bounded(1, 3);
    let now = Instant::now();
    send(&mut s, 1, START, "1a", now).expect("the slot is free");
    // Held: one behind 1a in its own sequence, two new sequences in the backlog.
    let mut tickets = Vec::new();
    for (sequence, flags, request) in [(1, MIDDLE, "1b"), (2, START, "2a"), (3, START, "3a")] {
        let Ok(Admission::Held { ticket }) =
            s.submit(id(sequence), flags.0, flags.1, 1, request, now)
        else {
            panic!("{request} is held");
        };
        tickets.push((sequence, ticket));
    }
    assert_eq!((s.held(), s.backlogged()), (3, 2));
    for (sequence, flags) in [(4, START), (1, MIDDLE)] {
        let Err(error) = s.submit(id(sequence), flags.0, flags.1, 1, "over", now) else {
            panic!("sequence {sequence} is refused");
        };
        assert_eq!(error.kind(), ErrorKind::ResourceExhausted);
        assert_eq!(
            error.to_string(),
            "model 'acc': its sequence batcher holds 3 requests already, waiting for a slot or \
             for their sequence's turn; retry later, end idle sequences, or raise the server's \
             --default-max-queue-size"
        );
    }
    assert_eq!(s.backlogged(), 2, "a refused START leaves no trace");
    // Room again once one is withdrawn; the refused sequence 4 may start now.
    let (sequence, ticket) = tickets[1];
    assert_eq!(s.withdraw(&id(sequence), ticket), Some("2a"));
    assert!(s.submit(id(4), true, false, 1, "4a", now).is_ok());
    // A request that runs at once is never refused for the bound.
    let released = s.finished(&id(1), None);
    assert_eq!(released[0].request, "1b");
    assert_eq!(s.held(), 2);
}

#[test]
fn backlogged_sequences_withdrawn_in_any_order_leave_the_rest_in_arrival_order() {
    let mut s = scheduler(1);
    let now = Instant::now();
    send(&mut s, 1, (true, true), "running", now).expect("the slot is free");
    let names: Vec<&'static str> = (0..200)
        .map(|n| &*Box::leak(format!("s{n}").into_boxed_str()))
        .collect();
    let mut tickets = Vec::new();
    for (n, name) in names.iter().enumerate() {
        let sequence = 100 + n as u64;
        let Ok(Admission::Held { ticket }) = s.submit(id(sequence), true, true, 1, *name, now)
        else {
            panic!("held");
        };
        tickets.push((sequence, ticket));
    }
    // Withdraw every third, from the back.
    for (sequence, ticket) in tickets.iter().rev().step_by(3) {
        assert!(s.withdraw(&id(*sequence), *ticket).is_some());
    }
    let mut kept: Vec<u64> = tickets.iter().map(|(sequence, _)| *sequence).collect();
    let withdrawn: Vec<u64> = tickets.iter().rev().step_by(3).map(|(q, _)| *q).collect();
    kept.retain(|q| !withdrawn.contains(q));
    assert_eq!(s.backlogged(), kept.len());
    let mut order = Vec::new();
    let mut current = 1;
    loop {
        let released = s.finished(&id(current), None);
        let Some(next) = released.into_iter().next() else {
            break;
        };
        let CorrelationId::Number(sequence) = next.controls.correlation_id else {
            unreachable!()
        };
        order.push(sequence);
        current = sequence;
    }
    assert_eq!(order, kept);
    assert_eq!((s.held(), s.backlogged()), (0, 0));
}

/// Records released requests as running (at most one per sequence) and run, in order.
fn note(
    released: Vec<Released<u32, u32>>,
    ran: &mut HashMap<u64, Vec<u32>>,
    running: &mut HashMap<u64, u32>,
) {
    for r in released {
        let CorrelationId::Number(seq) = r.controls.correlation_id else {
            unreachable!("numbers only")
        };
        assert!(
            running.insert(seq, r.request).is_none(),
            "two running in {seq}"
        );
        ran.entry(seq).or_default().push(r.request);
    }
}

proptest! {
    /// Whatever the interleaving of submits, answers and reaps: at most `slots` sequences
    /// run, each sequence has at most one request running, and its requests run in the order
    /// they were accepted.
    #[test]
    fn order_and_bounds_hold(
        slots in 1usize..4,
        max_held in 0usize..6,
        steps in proptest::collection::vec((0u64..5, 0u8..5), 1..120),
    ) {
        let mut s: SequenceScheduler<u32, u32> = SequenceScheduler::new(
            "m",
            SequenceConfig { slots, max_idle: Duration::from_millis(5), max_held },
        );
        let mut tickets: Vec<(u64, u64, u32)> = Vec::new();
        let mut withdrawn: Vec<u32> = Vec::new();
        let start = Instant::now();
        let mut accepted: HashMap<u64, Vec<u32>> = HashMap::new();
        let mut ran: HashMap<u64, Vec<u32>> = HashMap::new();
        let mut running: HashMap<u64, u32> = HashMap::new();
        let mut clock = 0u64;
        for (index, (seq, action)) in steps.into_iter().enumerate() {
            let request = u32::try_from(index).unwrap_or(u32::MAX);
            let seq = seq + 1;
            clock += 1;
            let now = start + Duration::from_millis(clock);
            match action {
                0..=1 => {
                    let (is_start, is_end) = (action == 0, index % 3 == 0);
                    match s.submit(CorrelationId::Number(seq), is_start, is_end, 1, request, now) {
                        Ok(admission) => {
                            accepted.entry(seq).or_default().push(request);
                            match admission {
                                Admission::Run(r) => note(vec![r], &mut ran, &mut running),
                                Admission::Held { ticket } => tickets.push((seq, ticket, request)),
                            }
                        }
                        Err(error) if error.kind() == ErrorKind::ResourceExhausted => {
                            prop_assert!(max_held > 0 && s.held() == max_held);
                        }
                        Err(error) => prop_assert_eq!(error.kind(), ErrorKind::InvalidInput),
                    }
                }
                3 if !tickets.is_empty() => {
                    let (seq, ticket, request) = tickets.swap_remove(index % tickets.len());
                    if s.withdraw(&CorrelationId::Number(seq), ticket) == Some(request) {
                        withdrawn.push(request);
                    }
                }
                2 => {
                    if running.remove(&seq).is_some() {
                        let next = s.finished(&CorrelationId::Number(seq), Some(request));
                        note(next, &mut ran, &mut running);
                    }
                }
                _ => note(s.reap(now), &mut ran, &mut running),
            }
            prop_assert!(s.active() <= slots);
            prop_assert!(running.len() <= slots);
            prop_assert!(max_held == 0 || s.held() <= max_held);
        }
        for (seq, order) in &ran {
            let accepted: Vec<u32> =
                accepted[seq].iter().copied().filter(|r| !withdrawn.contains(r)).collect();
            prop_assert_eq!(&accepted[..order.len()], &order[..], "sequence {}", seq);
        }
    }
}
