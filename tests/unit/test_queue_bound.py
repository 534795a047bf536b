"""Every model's queue is bounded (docs/security.md): a level whose config.pbtxt sets no
max_queue_size gets the server's `--default-max-queue-size`; one that sets it keeps its own;
0 as the default keeps Triton's unbounded queue."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from ferroserve._proto import model_config_pb2 as mc
from ferroserve.errors import ResourceExhaustedError
from ferroserve.runtime.loader import build_queue
from ferroserve.runtime.settings import set_default_max_queue_size
from ferroserve.server.limits import DEFAULT_MAX_QUEUE_SIZE


@pytest.fixture
def default_bound() -> Iterator[None]:
    set_default_max_queue_size(3)
    yield
    set_default_max_queue_size(DEFAULT_MAX_QUEUE_SIZE)


def accepted(config: mc.ModelConfig, attempts: int) -> int:
    queue = build_queue(config)
    count = 0
    for token in range(attempts):
        try:
            queue.submit([b"\0" * 4], [[1, 1]], token)
        except ResourceExhaustedError as error:
            assert "is full" in str(error), str(error)
            break
        count += 1
    queue.close(False)
    return count


@pytest.mark.usefixtures("default_bound")
def test_a_queue_without_a_configured_bound_gets_the_default() -> None:
    assert accepted(mc.ModelConfig(name="plain", max_batch_size=8), 10) == 3
    dynamic = mc.ModelConfig(name="dynamic", max_batch_size=8)
    dynamic.dynamic_batching.SetInParent()
    assert accepted(dynamic, 10) == 3


@pytest.mark.usefixtures("default_bound")
def test_a_configured_bound_is_kept() -> None:
    config = mc.ModelConfig(name="own", max_batch_size=8)
    config.dynamic_batching.default_queue_policy.max_queue_size = 5
    assert accepted(config, 10) == 5


def test_zero_keeps_the_queue_unbounded() -> None:
    set_default_max_queue_size(0)
    try:
        assert accepted(mc.ModelConfig(name="open", max_batch_size=8), 50) == 50
    finally:
        set_default_max_queue_size(DEFAULT_MAX_QUEUE_SIZE)
