//! The `dynamic_batching` settings of a model (Triton `ModelDynamicBatching` and
//! `ModelQueuePolicy` in model_config.proto), validated once when the queue is built.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::BatchError;

/// What happens to a request whose queue timeout expired (`ModelQueuePolicy.TimeoutAction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimeoutAction {
    /// Remove it from the queue and hand it back as rejected (DEADLINE_EXCEEDED).
    #[default]
    Reject,
    /// Keep it, but schedule it only after every request that has not expired.
    Delay,
}

/// Queue policy of one priority level (`ModelQueuePolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueuePolicy {
    /// Action on timeout.
    pub timeout_action: TimeoutAction,
    /// Queue timeout of requests at this level, in microseconds; 0 means none.
    pub default_timeout_us: u64,
    /// Whether a request's own `timeout` parameter replaces `default_timeout_us`.
    pub allow_timeout_override: bool,
    /// Most requests queued at this level; 0 means unbounded.
    pub max_queue_size: u32,
}

/// Dynamic batching settings of one model.
#[derive(Debug, Clone, Default)]
pub struct BatcherConfig {
    /// Rows per batch at most; 0 means the model does not batch (each request runs alone).
    pub max_batch_size: usize,
    /// Batch sizes formed as soon as they are reached (`preferred_batch_size`).
    pub preferred_batch_sizes: Vec<usize>,
    /// How long the oldest request may wait for a batch to fill (`max_queue_delay_microseconds`).
    pub max_queue_delay: Duration,
    /// Number of priority levels; 0 and 1 both mean a single level. Level 1 is the highest.
    pub priority_levels: u32,
    /// Level of requests that ask for priority 0.
    pub default_priority_level: u32,
    /// Policy of levels without their own entry in `priority_policies`.
    pub default_policy: QueuePolicy,
    /// Per-level policy overrides (`priority_queue_policy`).
    pub priority_policies: BTreeMap<u32, QueuePolicy>,
}

impl BatcherConfig {
    /// Levels in effect: at least one.
    pub fn levels(&self) -> u32 {
        self.priority_levels.max(1)
    }

    /// The policy of `level` (1-based).
    pub fn policy(&self, level: u32) -> &QueuePolicy {
        self.priority_policies
            .get(&level)
            .unwrap_or(&self.default_policy)
    }

    /// Checks the rules Triton enforces on `dynamic_batching` at model load.
    pub(crate) fn validate(&self, model: &str) -> Result<(), BatchError> {
        let invalid = |reason: String| BatchError::InvalidConfig {
            model: model.to_owned(),
            reason,
        };
        if self.max_batch_size > 0 {
            if let Some(size) = self
                .preferred_batch_sizes
                .iter()
                .find(|&&size| size == 0 || size > self.max_batch_size)
            {
                return Err(invalid(format!(
                    "preferred_batch_size {size} is outside 1..={}",
                    self.max_batch_size
                )));
            }
        }
        let levels = self.levels();
        if self.default_priority_level > levels
            || (self.priority_levels > 1 && self.default_priority_level == 0)
        {
            return Err(invalid(format!(
                "default_priority_level {} is outside 1..={levels}",
                self.default_priority_level
            )));
        }
        if let Some(level) = self
            .priority_policies
            .keys()
            .find(|&&level| level == 0 || level > levels)
        {
            return Err(invalid(format!(
                "priority_queue_policy has level {level}, outside 1..={levels}"
            )));
        }
        Ok(())
    }
}
