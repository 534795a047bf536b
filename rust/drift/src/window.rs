//! Windows over the counters: the cumulative window since load (or the last reset) and the
//! tumbling window, rolled by rows or by time. The counters only ever grow; a window is the
//! difference of two snapshots of them, so every counted value lands in exactly one tumbling
//! window (snapshots are taken under one lock, in order, and each counter reads monotonic).

use std::sync::PoisonError;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::counts::{ColumnCounts, WindowCounts};
use crate::error::ProfileError;
use crate::tracker::DriftTracker;

/// When the tumbling window rolls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowPolicy {
    /// After this many counted rows (all executor threads together): rolled by the executor
    /// thread whose batch reaches it, so a window holds this many rows plus at most the
    /// batches that crossed the mark.
    Rows(u64),
    /// Every this long since the tracker was made (at multiples of it): rolled by the first
    /// batch or reader after the mark. A window with no traffic since the last roll closes
    /// empty on the next read.
    Time(Duration),
}

impl WindowPolicy {
    pub(crate) fn validate(self) -> Result<(), ProfileError> {
        match self {
            WindowPolicy::Rows(0) => Err(ProfileError::EmptyWindow("0 rows")),
            WindowPolicy::Time(period) if period.is_zero() => {
                Err(ProfileError::EmptyWindow("a duration of 0"))
            }
            _ => Ok(()),
        }
    }

    /// The first `roll_at`: rows, or nanoseconds since the tracker was made.
    pub(crate) fn first_roll(self) -> u64 {
        match self {
            WindowPolicy::Rows(rows) => rows,
            WindowPolicy::Time(period) => nanos(period),
        }
    }
}

/// A tumbling window that has closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedWindow {
    /// Its counts.
    pub counts: WindowCounts,
    /// Its number: 0 for the first window since load (or reset).
    pub index: u64,
    /// When it opened, since the tracker was made.
    pub opened: Duration,
    /// When it closed, since the tracker was made.
    pub closed: Duration,
}

/// What the exporter reads: the three windows at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriftSnapshot {
    /// Everything since load (or the last reset).
    pub cumulative: WindowCounts,
    /// The open tumbling window so far.
    pub current: WindowCounts,
    /// The last closed tumbling window, once one has closed.
    pub last_closed: Option<ClosedWindow>,
}

/// The window bookkeeping under the tracker's lock.
#[derive(Debug)]
pub(crate) struct WindowState {
    /// Counter totals at load or the last reset.
    cumulative_start: Vec<u64>,
    /// Counter totals when the open window opened.
    window_start: Vec<u64>,
    /// When the open window opened.
    opened: Instant,
    /// The open window's number.
    index: u64,
    /// The last closed window.
    last_closed: Option<ClosedWindow>,
}

impl WindowState {
    pub(crate) fn new(counters: usize, origin: Instant) -> WindowState {
        WindowState {
            cumulative_start: vec![0; counters],
            window_start: vec![0; counters],
            opened: origin,
            index: 0,
            last_closed: None,
        }
    }
}

impl DriftTracker {
    /// After each counted batch: roll the tumbling window if it is due.
    #[inline]
    pub(crate) fn after_batch(&self, rows: u64, now: Instant) {
        let due = match self.window {
            WindowPolicy::Rows(_) => {
                let total = self.observed_rows.fetch_add(rows, Ordering::Relaxed) + rows;
                total >= self.roll_at.load(Ordering::Relaxed)
            }
            WindowPolicy::Time(_) => self.since_origin(now) >= self.roll_at.load(Ordering::Relaxed),
        };
        if due {
            self.roll_if_due(now);
        }
    }

    /// The three windows now, after rolling a time window that is due at `now`.
    pub fn snapshot(&self, now: Instant) -> DriftSnapshot {
        if matches!(self.window, WindowPolicy::Time(_)) {
            self.roll_if_due(now);
        }
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let totals = self.totals();
        DriftSnapshot {
            cumulative: self.counts_between(&state.cumulative_start, &totals),
            current: self.counts_between(&state.window_start, &totals),
            last_closed: state.last_closed.clone(),
        }
    }

    /// Starts over: the cumulative and the open window restart from now, the last closed
    /// window is forgotten. The counters themselves are never written by readers (that would
    /// race with their single writer); the windows' starting points move instead.
    pub fn reset(&self, now: Instant) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let totals = self.totals();
        state.cumulative_start.clone_from(&totals);
        state.window_start = totals;
        state.opened = now;
        state.index = 0;
        state.last_closed = None;
        self.roll_at.store(self.next_roll(now), Ordering::Relaxed);
    }

    /// Closes the open window if it is still due (another thread may have just rolled it).
    fn roll_if_due(&self, now: Instant) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let due = match self.window {
            WindowPolicy::Rows(_) => self.observed_rows.load(Ordering::Relaxed),
            WindowPolicy::Time(_) => self.since_origin(now),
        } >= self.roll_at.load(Ordering::Relaxed);
        if !due {
            return;
        }
        let totals = self.totals();
        let counts = self.counts_between(&state.window_start, &totals);
        let closed = ClosedWindow {
            counts,
            index: state.index,
            opened: state.opened.saturating_duration_since(self.origin),
            closed: now.saturating_duration_since(self.origin),
        };
        state.last_closed = Some(closed);
        state.window_start = totals;
        state.opened = now;
        state.index += 1;
        self.roll_at.store(self.next_roll(now), Ordering::Relaxed);
    }

    /// The next `roll_at` after a roll or reset at `now`.
    fn next_roll(&self, now: Instant) -> u64 {
        match self.window {
            WindowPolicy::Rows(rows) => self
                .observed_rows
                .load(Ordering::Relaxed)
                .saturating_add(rows),
            WindowPolicy::Time(period) => {
                let period = nanos(period).max(1);
                (self.since_origin(now) / period + 1).saturating_mul(period)
            }
        }
    }

    fn since_origin(&self, now: Instant) -> u64 {
        nanos(now.saturating_duration_since(self.origin))
    }

    /// Every counter summed over the instances (cumulative since load).
    fn totals(&self) -> Vec<u64> {
        let mut totals = vec![0u64; self.slots + 2];
        for instance in &self.instances {
            for (total, counter) in totals.iter_mut().zip(instance.counters.iter()) {
                *total = total.wrapping_add(counter.load(Ordering::Relaxed));
            }
        }
        totals
    }

    /// The window between two counter snapshots.
    fn counts_between(&self, start: &[u64], end: &[u64]) -> WindowCounts {
        let delta: Vec<u64> = end
            .iter()
            .zip(start)
            .map(|(e, s)| e.wrapping_sub(*s))
            .collect();
        let mut offset = 0;
        let columns = self
            .names
            .iter()
            .zip(self.profiles.iter())
            .map(|(name, profile)| {
                let bins = profile.bins();
                let width = bins + crate::bins::EXTRA_SLOTS;
                let column = ColumnCounts::from_slots(name, &delta[offset..offset + width], bins);
                offset += width;
                column
            })
            .collect();
        WindowCounts {
            profile_id: self.profile_id,
            rows: delta[self.slots],
            batches: delta[self.slots + 1],
            columns,
        }
    }
}

/// A duration in nanoseconds, saturating (584 years).
fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}
