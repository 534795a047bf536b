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

impl QueuePolicy {
    /// The queue timeout of a request at this level that asked for `requested_us` (its
    /// `timeout` parameter; 0: none), in microseconds (0: none). Triton's
    /// `PolicyQueue::Enqueue` (core/src/scheduler_utils.cc): the request's own timeout counts
    /// only where `allow_timeout_override` is set, and only to shorten a non-zero default; a
    /// longer one, or any one at a level without a default, is ignored (not an error).
    pub fn timeout_us(&self, requested_us: u64) -> u64 {
        if self.allow_timeout_override
            && requested_us != 0
            && requested_us < self.default_timeout_us
        {
            requested_us
        } else {
            self.default_timeout_us
        }
    }
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
    /// Answers go back in the order their requests were queued (`preserve_ordering`). The
    /// queue itself ignores it (it numbers every request either way); whoever delivers the
    /// answers reads it (`ferroserve_runtime::Routed`).
    pub preserve_ordering: bool,
}

impl BatcherConfig {
    /// Levels in effect: at least one.
    pub fn levels(&self) -> u32 {
        self.priority_levels.max(1)
    }

    /// The level (1-based) of a request that asked for `priority` (its `priority` parameter, 0
    /// when it has none). As Triton: 0, or a value above `priority_levels`, means
    /// `default_priority_level`, not an error.
    pub fn level(&self, priority: u64) -> u32 {
        match u32::try_from(priority) {
            Ok(level) if (1..=self.levels()).contains(&level) => level,
            _ => self.default_priority_level.max(1),
        }
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn two_levels() -> BatcherConfig {
        BatcherConfig {
            priority_levels: 2,
            default_priority_level: 2,
            ..BatcherConfig::default()
        }
    }

    #[test]
    fn priority_zero_or_beyond_the_levels_means_the_default_level() {
        let config = two_levels();
        let levels: Vec<u32> = [0, 1, 2, 3, u64::from(u32::MAX) + 1, u64::MAX]
            .into_iter()
            .map(|priority| config.level(priority))
            .collect();
        assert_eq!(levels, [2, 1, 2, 2, 2, 2]);
        // No levels configured: one level, whatever the request asks for.
        let single = BatcherConfig::default();
        assert_eq!([0, 1, 7].map(|priority| single.level(priority)), [1, 1, 1]);
    }

    #[test]
    fn a_request_timeout_only_shortens_a_default_it_may_override() {
        let overridable = QueuePolicy {
            default_timeout_us: 1_000,
            allow_timeout_override: true,
            ..QueuePolicy::default()
        };
        assert_eq!(overridable.timeout_us(0), 1_000, "none asked: the default");
        assert_eq!(overridable.timeout_us(10), 10, "shorter: applies");
        assert_eq!(overridable.timeout_us(1_000), 1_000);
        assert_eq!(overridable.timeout_us(5_000), 1_000, "longer: ignored");
        let no_default = QueuePolicy {
            default_timeout_us: 0,
            ..overridable
        };
        assert_eq!(no_default.timeout_us(10), 0, "no default: no timeout");
        let fixed = QueuePolicy {
            allow_timeout_override: false,
            ..overridable
        };
        assert_eq!(fixed.timeout_us(10), 1_000, "no override allowed");
    }

    proptest! {
        #[test]
        fn the_level_always_exists(levels in 0u32..6, default in 0u32..6, priority: u64) {
            let config = BatcherConfig {
                priority_levels: levels,
                default_priority_level: default,
                ..BatcherConfig::default()
            };
            prop_assume!(config.validate("m").is_ok());
            let level = config.level(priority);
            prop_assert!((1..=config.levels()).contains(&level));
            if priority >= 1 && priority <= u64::from(config.levels()) {
                prop_assert_eq!(u64::from(level), priority);
            }
        }

        #[test]
        fn a_timeout_is_never_longer_than_the_default(
            default in 0u64..10_000,
            allow: bool,
            requested in 0u64..20_000,
        ) {
            let policy = QueuePolicy {
                default_timeout_us: default,
                allow_timeout_override: allow,
                ..QueuePolicy::default()
            };
            let timeout = policy.timeout_us(requested);
            prop_assert!(timeout <= default);
            prop_assert_eq!(timeout == 0, default == 0);
        }
    }
}
