"""The Redis store's counters as `FeatureStore.redis_stats` names them, in the order the metrics
snapshot, the FeatureService status and `features status --json` copy them. No imports: the
command-line client uses it too."""

REDIS_COUNTERS = (
    "calls",
    "round_trips",
    "rows",
    "found",
    "missing",
    "unavailable",
    "bad_rows",
    "null_values",
    "timeouts",
    "connection_errors",
    "protocol_errors",
)
