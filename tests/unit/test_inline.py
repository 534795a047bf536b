"""InlinePolicy: when a model version's requests may run on the event loop."""

from __future__ import annotations

import logging

import pytest
from ferroserve._proto import model_config_pb2 as mc
from ferroserve.errors import ModelLoadError
from ferroserve.runtime.inline import INLINE_MAX_CALL_NS, INLINE_REVOKE_CALL_NS, InlinePolicy
from google.protobuf import text_format

FAST = INLINE_MAX_CALL_NS // 10
SLOW = INLINE_MAX_CALL_NS * 2


def config(extra: str = "", inline: str | None = None) -> mc.ModelConfig:
    text = f'name: "m" max_batch_size: 8 {extra}'
    if inline is not None:
        text += f' parameters {{ key: "inline_execution" value {{ string_value: "{inline}" }} }}'
    return text_format.Parse(text, mc.ModelConfig())


@pytest.mark.parametrize(
    ("extra", "instances", "warm_call_ns", "enabled"),
    [
        ("", 1, FAST, True),
        ("dynamic_batching { }", 1, FAST, False),  # requests must reach the batcher
        ("", 2, FAST, False),  # inline runs would exceed the configured concurrency
        ("", 1, SLOW, False),  # blocking the loop would cost more than the hand-off
    ],
)
def test_auto_needs_no_batching_one_instance_and_a_fast_call(
    extra: str, instances: int, warm_call_ns: int, enabled: bool
) -> None:
    policy = InlinePolicy.decide(config(extra), instances, warm_call_ns)
    assert policy.enabled is enabled
    assert not policy.forced


@pytest.mark.parametrize(("mode", "enabled"), [("true", True), ("TRUE", True), ("false", False)])
def test_explicit_mode_overrides_auto(mode: str, enabled: bool) -> None:
    policy = InlinePolicy.decide(config("dynamic_batching { }", mode), 4, SLOW)
    assert policy.enabled is enabled
    assert policy.forced is enabled
    assert InlinePolicy.decide(config(inline=mode), 1, FAST).enabled is enabled


def test_unknown_mode_fails_the_load_naming_the_parameter() -> None:
    with pytest.raises(ModelLoadError, match=r"inline_execution.*'sometimes'"):
        InlinePolicy.decide(config(inline="sometimes"), 1, FAST)


def test_one_first_call_spike_does_not_revoke(caplog: pytest.LogCaptureFixture) -> None:
    """onnxruntime's first call with a new shape can cost a few ms once: no revocation."""
    policy = InlinePolicy.decide(config(), 1, FAST)
    policy.observe(INLINE_REVOKE_CALL_NS * 2)
    for _ in range(20):
        policy.observe(FAST)
    assert policy.enabled


def test_sustained_slow_calls_revoke_auto_and_log(caplog: pytest.LogCaptureFixture) -> None:
    policy = InlinePolicy.decide(config(), 1, FAST)
    with caplog.at_level(logging.WARNING, logger="ferroserve.runtime.inline"):
        calls = 0
        while policy.enabled and calls < 50:
            policy.observe(INLINE_REVOKE_CALL_NS * 2)
            calls += 1
    assert not policy.enabled
    assert 3 <= calls <= 10
    assert "model 'm'" in caplog.text


def test_one_very_slow_call_revokes_at_once() -> None:
    """A data-dependent call 8x over the threshold blocks the event loop only once."""
    policy = InlinePolicy.decide(config(), 1, FAST)
    policy.observe(INLINE_REVOKE_CALL_NS * 9)
    assert not policy.enabled


def test_forced_inline_is_never_revoked() -> None:
    policy = InlinePolicy.decide(config(inline="true"), 1, SLOW)
    policy.observe(INLINE_REVOKE_CALL_NS * 100)
    assert policy.enabled
