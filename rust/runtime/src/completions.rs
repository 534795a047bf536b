//! `Completions`: answers waiting for the event loop, and the pipe that wakes it. Executor
//! threads push without the GIL; the loop watches the pipe (`loop.add_reader`) and takes
//! everything at once, so a whole batch costs one wake-up and no GIL hand-off.

use std::io::{PipeReader, PipeWriter, Read, Write};
use std::ops::Range;
use std::sync::{Arc, Mutex, PoisonError};

use crate::OutputTensor;

/// Why a request got no outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Its queue timeout or deadline passed before it ran (gRPC DEADLINE_EXCEEDED).
    DeadlineExceeded(String),
    /// The model failed (gRPC INTERNAL).
    Internal(String),
    /// An entity key has no usable row in a feature view that rejects misses (gRPC NOT_FOUND).
    NotFound(String),
}

/// One request's outputs: its part of each of the batch's outputs.
#[derive(Debug)]
pub struct Answer<O> {
    /// The batch's outputs, shared by its requests.
    pub outputs: Arc<Vec<OutputTensor<O>>>,
    /// Per output: this request's byte range and its shape as the client sees it.
    pub parts: Vec<(Range<usize>, Vec<i64>)>,
    /// Where its time went (an ensemble adds its steps' up into its own statistics).
    pub timing: Timing,
}

/// A request's time in its queue and its batch's three phases, in nanoseconds (Triton's
/// `InferStatistics` durations).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timing {
    /// Queued, until its batch formed.
    pub queue_ns: u64,
    /// The batch's input preparation.
    pub input_ns: u64,
    /// The batch's model execution.
    pub infer_ns: u64,
    /// The batch's output extraction.
    pub output_ns: u64,
}

impl Timing {
    /// Each duration summed with `other`'s.
    #[must_use]
    pub fn plus(self, other: Timing) -> Timing {
        Timing {
            queue_ns: self.queue_ns.saturating_add(other.queue_ns),
            input_ns: self.input_ns.saturating_add(other.input_ns),
            infer_ns: self.infer_ns.saturating_add(other.infer_ns),
            output_ns: self.output_ns.saturating_add(other.output_ns),
        }
    }
}

/// A request's token and what it gets.
pub type Completed<T, O> = (T, Result<Answer<O>, Failure>);

/// What the lock protects.
struct Pending<T, O> {
    /// Answers not taken yet.
    answers: Vec<Completed<T, O>>,
    /// Wake-up bytes written and not read yet.
    unread: usize,
}

/// Answers on their way to the event loop.
pub struct Completions<T, O> {
    /// Answers and unread wake-ups.
    pending: Mutex<Pending<T, O>>,
    /// Readable whenever answers wait.
    reader: PipeReader,
    /// One byte per wake-up.
    writer: PipeWriter,
}

impl<T, O> Completions<T, O> {
    /// An empty queue with a new pipe.
    pub fn new() -> std::io::Result<Self> {
        let (reader, writer) = std::io::pipe()?;
        Ok(Completions {
            pending: Mutex::new(Pending {
                answers: Vec::new(),
                unread: 0,
            }),
            reader,
            writer,
        })
    }

    /// The pipe's read end, to watch for readability.
    pub fn reader(&self) -> &PipeReader {
        &self.reader
    }

    /// Adds answers; writes a wake-up byte only if none is unread, so a loop that is behind
    /// gets one wake-up for everything.
    pub fn push(&self, answers: impl IntoIterator<Item = Completed<T, O>>) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let before = pending.answers.len();
        pending.answers.extend(answers);
        if pending.answers.len() > before && pending.unread == 0 {
            // Written under the lock so `unread` always matches the pipe; at most one byte is
            // ever unread, so the write never blocks. A failed write (the pipe is gone) leaves
            // nobody to wake.
            if (&self.writer).write_all(&[1]).is_ok() {
                pending.unread = 1;
            }
        }
    }

    /// Every waiting answer, in the order pushed; consumes the wake-up byte so the pipe is
    /// readable again only when new answers arrive.
    pub fn take(&self) -> Vec<Completed<T, O>> {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if pending.unread > 0 {
            let mut byte = [0u8; 1];
            // The byte was written under this lock, so it is there: the read does not block.
            if (&self.reader).read_exact(&mut byte).is_ok() {
                pending.unread = 0;
            }
        }
        std::mem::take(&mut pending.answers)
    }

    /// Answers waiting.
    pub fn len(&self) -> usize {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .answers
            .len()
    }

    /// Whether no answer waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether the pipe has a byte to read right now, without blocking.
    fn readable(completions: &Completions<u32, Vec<u8>>) -> bool {
        use std::os::fd::AsRawFd;
        let fd = completions.reader().as_raw_fd();
        let mut bytes: i32 = 0;
        // SAFETY: FIONREAD writes the readable byte count into `bytes` for a valid pipe fd.
        let status = unsafe { ioctl(fd, 0x541B, &mut bytes) };
        assert_eq!(status, 0);
        bytes > 0
    }

    unsafe extern "C" {
        fn ioctl(fd: i32, request: u64, ...) -> i32;
    }

    #[test]
    fn one_wake_up_for_many_answers_and_none_after_take() {
        let completions = Completions::<u32, Vec<u8>>::new().expect("pipe");
        assert!(!readable(&completions));
        completions.push([(1, Err(Failure::Internal("a".into())))]);
        completions.push([(2, Err(Failure::Internal("b".into())))]);
        assert!(readable(&completions));
        let taken: Vec<u32> = completions.take().into_iter().map(|(t, _)| t).collect();
        assert_eq!(taken, vec![1, 2]);
        assert!(!readable(&completions));
        assert!(completions.is_empty());
        completions.push([(3, Err(Failure::DeadlineExceeded("c".into())))]);
        assert!(readable(&completions));
        assert_eq!(completions.len(), 1);
    }

    #[test]
    fn pushing_nothing_does_not_wake() {
        let completions = Completions::<u32, Vec<u8>>::new().expect("pipe");
        completions.push([]);
        assert!(!readable(&completions));
    }
}
