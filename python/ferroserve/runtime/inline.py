"""When a request may run on the event loop itself instead of being handed to an executor
thread. The hand-off (wake the executor, pass the GIL back and forth, wake the loop) costs more
CPU than a small model's whole onnxruntime call: measured on 2 cores with the MLP (64 -> 256 ->
256 -> 10, ~12 µs per call) without dynamic batching, inline execution served ~3,900 infer/s
against ~3,100 through the executor at concurrency 16. Blocking the loop is only acceptable for
short calls, so the policy is decided per model version from a timed warm-up call and revoked
if a real call turns out slow.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ferroserve._proto import model_config_pb2 as mc
from ferroserve.errors import ModelLoadError
from ferroserve.runtime.session import parameter

log = logging.getLogger(__name__)

# A call using this little CPU blocks the event loop for less than the hand-off it saves costs.
INLINE_MAX_CALL_NS = 100_000
# When the moving average of real calls' CPU time passes this (inputs larger or data-dependent),
# inline execution stops for good. CPU time of the calling thread, not wall time: a busy core
# must not revoke it; an average, not one call: onnxruntime's first call with a new shape plans
# its memory (measured: ~2 ms once for the MLP at 64 rows) and must not revoke it either.
INLINE_REVOKE_CALL_NS = 1_000_000
# Weight of the newest call in that average: one call of 8x the threshold revokes at once.
INLINE_AVERAGE_WEIGHT = 1 / 8
_MODES = ("auto", "true", "false")


@dataclass(slots=True)
class InlinePolicy:
    """Whether one model version runs requests inline while its executor is idle."""

    enabled: bool
    forced: bool
    model: str
    average_ns: float = 0.0
    """Exponential moving average of the CPU time of inline calls."""

    @classmethod
    def decide(cls, config: mc.ModelConfig, instance_count: int, warm_call_ns: int) -> InlinePolicy:
        """`inline_execution` parameter: "false" never, "true" whenever the executor is idle,
        "auto" (default) only for models without dynamic_batching (each request runs alone
        anyway), one instance (so inline runs never exceed the configured concurrency), and a
        warm call using less than INLINE_MAX_CALL_NS of CPU."""
        mode = (parameter(config, "inline_execution") or "auto").lower()
        if mode not in _MODES:
            raise ModelLoadError(
                f"model '{config.name}': parameter inline_execution must be one of {_MODES}, "
                f"got '{mode}'"
            )
        if mode != "auto":
            return cls(mode == "true", mode == "true", config.name, warm_call_ns)
        enabled = (
            not config.HasField("dynamic_batching")
            and instance_count == 1
            and warm_call_ns < INLINE_MAX_CALL_NS
        )
        if enabled:
            log.info(
                "model '%s': warm call %.0f us of CPU; requests run inline while the executor "
                "is idle",
                config.name,
                warm_call_ns / 1e3,
            )
        return cls(enabled, False, config.name, warm_call_ns)

    def observe(self, call_ns: int) -> None:
        """Adds one inline call's CPU time to the average and revokes inline execution when
        the average passes INLINE_REVOKE_CALL_NS (unless the config forced it)."""
        self.average_ns += (call_ns - self.average_ns) * INLINE_AVERAGE_WEIGHT
        if self.average_ns > INLINE_REVOKE_CALL_NS and not self.forced:
            self.enabled = False
            log.warning(
                "model '%s': inline calls now average %.2f ms of CPU (last %.2f ms); running "
                "its requests on the executor thread from now on",
                self.model,
                self.average_ns / 1e6,
                call_ns / 1e6,
            )
