//! A row a reject-policy view could not serve, and its message: the request that row belongs to
//! is answered NOT_FOUND with it, while the rest of its batch is served.

use std::fmt;

/// Why a row was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// The view has no row for the key.
    Missing,
    /// The key's row is older than the view's max age.
    Stale {
        /// How old it is, microseconds.
        age_us: i64,
        /// The view's max age, microseconds.
        max_age_us: i64,
    },
    /// The view's store could not be asked.
    Unavailable,
}

/// A row whose key a reject-policy view could not serve: its request gets NOT_FOUND with this
/// message. The row's model inputs hold the defaults, so the rest of the batch runs as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The row in the gather call (a batch row: the executor maps it to its request).
    pub row: usize,
    /// The view.
    pub view: String,
    /// The key, rendered (`user_id=42`, `card="abc"`).
    pub key: String,
    /// Why.
    pub reason: RejectReason,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Rejection {
            view, key, reason, ..
        } = self;
        match reason {
            RejectReason::Missing => write!(f, "no row for {key} in feature view '{view}'"),
            RejectReason::Stale { age_us, max_age_us } => write!(
                f,
                "the row for {key} in feature view '{view}' is {} s old, older than the view's max age of {} s",
                seconds(*age_us),
                seconds(*max_age_us)
            ),
            RejectReason::Unavailable => write!(
                f,
                "the store of feature view '{view}' could not be asked for {key}"
            ),
        }
    }
}

/// Microseconds as seconds with up to 6 decimals, trailing zeros dropped.
fn seconds(micros: i64) -> String {
    let text = format!("{:.6}", micros as f64 / 1e6);
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}
