//! Who waits for a request's answer. A request queued by Python waits on the event loop (its
//! token reaches the loop through `Completions` and its pipe); a request queued by the native
//! gRPC front end waits on a Rust channel and is answered straight from the executor thread,
//! with no pipe, no event loop and no GIL. For a `preserve_ordering` model both kinds pass the
//! same release gate (`InOrder`), since both share the queue whose order it keeps.

use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

use crate::completions::Completed;
use crate::{Answer, Completions, Failure, InOrder};

/// What a native waiter receives.
pub type NativeAnswer<O> = Result<Answer<O>, Failure>;

/// A queued request's waiter: a host token `P` (a Python future) or a native channel.
#[derive(Debug)]
pub enum Waiter<P, O> {
    /// Answered through `Completions` (the event loop's pipe).
    Host(P),
    /// Answered at once on the executor thread.
    Native(oneshot::Sender<NativeAnswer<O>>),
}

/// Where executor threads hand their answers.
pub trait Deliver<T, O>: Send + Sync + 'static {
    /// Hands over one batch's answers (or its rejected requests'); `ids[i]` is the queue id
    /// (`BatchQueue::submit`) of `answers[i]`'s request.
    fn deliver(&self, ids: &[u64], answers: Vec<Completed<T, O>>);
}

impl<T: Send + 'static, O: Send + Sync + 'static> Deliver<T, O> for Completions<T, O> {
    fn deliver(&self, _ids: &[u64], answers: Vec<Completed<T, O>>) {
        self.push(answers);
    }
}

/// A request's waiter and its answer, as the release gate holds it.
type Held<P, O> = Completed<Waiter<P, O>, O>;

/// Delivers native waiters' answers directly and the rest through the host's `Completions`,
/// one wake-up per batch for the host part; with `preserve_ordering`, each only in its turn.
pub struct Routed<P, O> {
    host: Completions<P, O>,
    /// The release gate of a `preserve_ordering` model. Its lock is held while the answers it
    /// lets go are handed over (a channel send each, one `Completions` push), so two executor
    /// threads never hand released answers over out of order; lock order: this, then `host`'s.
    order: Option<Mutex<InOrder<Held<P, O>>>>,
}

impl<P, O> Routed<P, O> {
    /// Routes host answers to `host`, each as soon as it is there.
    pub fn new(host: Completions<P, O>) -> Self {
        Routed { host, order: None }
    }

    /// Routes host answers to `host`, and every answer in the order its request was queued
    /// (`preserve_ordering`).
    pub fn in_order(host: Completions<P, O>) -> Self {
        Routed {
            host,
            order: Some(Mutex::new(InOrder::new())),
        }
    }

    /// The host's queue of answers.
    pub fn host(&self) -> &Completions<P, O> {
        &self.host
    }

    /// Whether answers go in queue order.
    pub fn preserves_order(&self) -> bool {
        self.order.is_some()
    }

    /// The gate. A panic while it was held cannot leave it half-updated for the next holder
    /// (each step moves whole slots), so a poisoned lock is still usable.
    fn gate(order: &Mutex<InOrder<Held<P, O>>>) -> MutexGuard<'_, InOrder<Held<P, O>>> {
        order.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<P: Send + 'static, O: Send + Sync + 'static> Routed<P, O> {
    /// The request `id` left the queue without an answer (its caller cancelled it, and
    /// `BatchQueue::cancel` removed it): in queue order, nobody waits for it any more. Call it
    /// for every successful cancel; a no-op without `preserve_ordering`.
    pub fn withdraw(&self, id: u64) {
        if let Some(order) = &self.order {
            let mut gate = Self::gate(order);
            let mut host = Vec::new();
            gate.withdraw(id, |held| self.hand_over(held, &mut host));
            self.host.push(host);
        }
    }

    /// Lets every held answer go, and later ones as they come: after the queue was closed and
    /// its last requests handed back unanswered (unload), nothing is left to wait for.
    pub fn stop_ordering(&self) {
        if let Some(order) = &self.order {
            let mut gate = Self::gate(order);
            let mut host = Vec::new();
            gate.open(|held| self.hand_over(held, &mut host));
            self.host.push(host);
        }
    }

    /// Sends a native answer now; collects a host one for the next `Completions` push.
    fn hand_over(&self, (waiter, answer): Held<P, O>, host: &mut Vec<Completed<P, O>>) {
        match waiter {
            Waiter::Host(token) => host.push((token, answer)),
            // A receiver that is gone (client cancelled) drops the answer.
            Waiter::Native(sender) => {
                let _ = sender.send(answer);
            }
        }
    }
}

impl<P: Send + 'static, O: Send + Sync + 'static> Deliver<Waiter<P, O>, O> for Routed<P, O> {
    fn deliver(&self, ids: &[u64], answers: Vec<Held<P, O>>) {
        let mut host = Vec::new();
        match &self.order {
            None => {
                for held in answers {
                    self.hand_over(held, &mut host);
                }
                self.host.push(host);
            }
            Some(order) => {
                debug_assert_eq!(ids.len(), answers.len(), "an id per answer. This is a bug.");
                let mut gate = Self::gate(order);
                for (&id, held) in ids.iter().zip(answers) {
                    gate.finish(id, held, |held| self.hand_over(held, &mut host));
                }
                // Still under the gate's lock: see `order`.
                self.host.push(host);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_answers_skip_the_host_queue() {
        let routed = Routed::new(Completions::<u32, Vec<u8>>::new().expect("pipe"));
        let (sender, mut receiver) = oneshot::channel();
        routed.deliver(
            &[1, 2],
            vec![
                (Waiter::Host(7), Err(Failure::Internal("host".into()))),
                (
                    Waiter::Native(sender),
                    Err(Failure::Internal("native".into())),
                ),
            ],
        );
        let host: Vec<u32> = routed.host().take().into_iter().map(|(t, _)| t).collect();
        assert_eq!(host, vec![7]);
        match receiver.try_recv() {
            Ok(Err(Failure::Internal(message))) => assert_eq!(message, "native"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_gone_native_waiter_is_skipped() {
        let routed = Routed::new(Completions::<u32, Vec<u8>>::new().expect("pipe"));
        let (sender, receiver) = oneshot::channel();
        drop(receiver);
        routed.deliver(
            &[1],
            vec![(Waiter::Native(sender), Err(Failure::Internal("x".into())))],
        );
        assert!(routed.host().is_empty());
    }

    fn failed(waiter: Waiter<u32, Vec<u8>>, text: &str) -> Held<u32, Vec<u8>> {
        (waiter, Err(Failure::Internal(text.into())))
    }

    fn host_tokens(routed: &Routed<u32, Vec<u8>>) -> Vec<u32> {
        routed.host().take().into_iter().map(|(t, _)| t).collect()
    }

    #[test]
    fn in_order_holds_both_kinds_of_answer_until_their_turn() {
        let routed = Routed::in_order(Completions::<u32, Vec<u8>>::new().expect("pipe"));
        assert!(routed.preserves_order());
        let (sender, mut receiver) = oneshot::channel();
        // Requests 2 (native) and 3 (host) finish before request 1.
        routed.deliver(
            &[3, 2],
            vec![
                failed(Waiter::Host(3), "three"),
                failed(Waiter::Native(sender), "two"),
            ],
        );
        assert!(routed.host().is_empty());
        assert!(receiver.try_recv().is_err(), "held: request 1 is not done");
        routed.deliver(&[1], vec![failed(Waiter::Host(1), "one")]);
        assert_eq!(host_tokens(&routed), [1, 3]);
        assert!(receiver.try_recv().is_ok());
    }

    #[test]
    fn a_withdrawn_request_and_stop_ordering_release_what_waits() {
        let routed = Routed::in_order(Completions::<u32, Vec<u8>>::new().expect("pipe"));
        routed.deliver(&[2], vec![failed(Waiter::Host(2), "two")]);
        routed.deliver(&[4], vec![failed(Waiter::Host(4), "four")]);
        assert!(routed.host().is_empty());
        routed.withdraw(1);
        assert_eq!(host_tokens(&routed), [2]);
        routed.stop_ordering();
        assert_eq!(host_tokens(&routed), [4], "request 3 never ends: unloaded");
        routed.deliver(&[6], vec![failed(Waiter::Host(6), "six")]);
        assert_eq!(host_tokens(&routed), [6]);
    }

    #[test]
    fn withdraw_is_a_no_op_without_preserve_ordering() {
        let routed = Routed::new(Completions::<u32, Vec<u8>>::new().expect("pipe"));
        assert!(!routed.preserves_order());
        routed.withdraw(1);
        routed.stop_ordering();
        routed.deliver(&[2], vec![failed(Waiter::Host(2), "two")]);
        assert_eq!(host_tokens(&routed), [2]);
    }
}
