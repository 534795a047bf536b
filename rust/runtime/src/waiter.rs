//! Who waits for a request's answer. A request queued by Python waits on the event loop (its
//! token reaches the loop through `Completions` and its pipe); a request queued by the native
//! gRPC front end waits on a Rust channel and is answered straight from the executor thread,
//! with no pipe, no event loop and no GIL.

use tokio::sync::oneshot;

use crate::completions::Completed;
use crate::{Answer, Completions, Failure};

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
    /// Hands over one batch's answers (and rejected requests').
    fn deliver(&self, answers: Vec<Completed<T, O>>);
}

impl<T: Send + 'static, O: Send + Sync + 'static> Deliver<T, O> for Completions<T, O> {
    fn deliver(&self, answers: Vec<Completed<T, O>>) {
        self.push(answers);
    }
}

/// Delivers native waiters' answers directly and the rest through the host's `Completions`,
/// one wake-up per batch for the host part.
pub struct Routed<P, O> {
    host: Completions<P, O>,
}

impl<P, O> Routed<P, O> {
    /// Routes host answers to `host`.
    pub fn new(host: Completions<P, O>) -> Self {
        Routed { host }
    }

    /// The host's queue of answers.
    pub fn host(&self) -> &Completions<P, O> {
        &self.host
    }
}

impl<P: Send + 'static, O: Send + Sync + 'static> Deliver<Waiter<P, O>, O> for Routed<P, O> {
    fn deliver(&self, answers: Vec<Completed<Waiter<P, O>, O>>) {
        let mut host = Vec::new();
        for (waiter, answer) in answers {
            match waiter {
                Waiter::Host(token) => host.push((token, answer)),
                // A receiver that is gone (client cancelled) drops the answer.
                Waiter::Native(sender) => {
                    let _ = sender.send(answer);
                }
            }
        }
        self.host.push(host);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_answers_skip_the_host_queue() {
        let routed = Routed::new(Completions::<u32, Vec<u8>>::new().expect("pipe"));
        let (sender, mut receiver) = oneshot::channel();
        routed.deliver(vec![
            (Waiter::Host(7), Err(Failure::Internal("host".into()))),
            (
                Waiter::Native(sender),
                Err(Failure::Internal("native".into())),
            ),
        ]);
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
        routed.deliver(vec![(
            Waiter::Native(sender),
            Err(Failure::Internal("x".into())),
        )]);
        assert!(routed.host().is_empty());
    }
}
