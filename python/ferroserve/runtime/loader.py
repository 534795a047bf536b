"""Brings one model version up: its config checked and completed from the graph, the engine on
the execution provider it asks for (session.py), its Rust batch queue, its executor, warm-up
(warmup.py), and the native front end's route. Blocking: the registry calls `load_version` from
a worker thread. The result is a `ServedModel` (model.py), which only serves.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from ferroserve import _core
from ferroserve._proto import model_config_pb2 as mc
from ferroserve.config import ModelSignature, complete_config, warn_unsupported
from ferroserve.errors import ModelLoadError
from ferroserve.runtime.binding import BindingExecutor
from ferroserve.runtime.executor import Executor
from ferroserve.runtime.model import LoadReport, ServedModel
from ferroserve.runtime.native import NativeExecutor
from ferroserve.runtime.session import LoadedSession, create_session
from ferroserve.runtime.settings import warn_retired_parameters
from ferroserve.runtime.warmup import warmup_feeds


def load_version(
    config: mc.ModelConfig,
    model_dir: Path,
    model_file: Path,
    version: int,
    loop: asyncio.AbstractEventLoop,
) -> ServedModel:
    """Loads and warms up version `version` of the model in `model_dir` (`model_file`: its ONNX
    file) and starts its executor threads; answers go to futures on `loop`. Raises
    ModelLoadError (ConfigError) naming what is wrong."""
    started = time.perf_counter()
    config = _copy(config)
    ignored = warn_unsupported(config)
    warn_retired_parameters(config)
    loaded = create_session(config, model_file)
    signature = complete_config(config, loaded.inputs, loaded.outputs)
    queue = build_queue(config)
    executor = _executor(f"{config.name}:{version}", loaded, signature, queue, loop)
    _warm_up(executor, config, signature, model_dir, version)
    executor.start()
    return ServedModel(
        name=config.name,
        version=version,
        config=config,
        signature=signature,
        queue=queue,
        executor=executor,
        native_route=executor.route(config.name, str(version)),
        report=LoadReport(loaded.provider, tuple(ignored), time.perf_counter() - started),
    )


def _copy(config: mc.ModelConfig) -> mc.ModelConfig:
    """A copy to complete: the repository's parsed config stays as read."""
    copied = mc.ModelConfig()
    copied.CopyFrom(config)
    return copied


def _queue_policy(policy: Any) -> _core.QueuePolicy:
    return _core.QueuePolicy(
        timeout_action="DELAY" if policy.timeout_action == mc.ModelQueuePolicy.DELAY else "REJECT",
        default_timeout_us=int(policy.default_timeout_microseconds),
        allow_timeout_override=bool(policy.allow_timeout_override),
        max_queue_size=int(policy.max_queue_size),
    )


def build_queue(config: mc.ModelConfig) -> _core.BatchQueue:
    """A batch queue with the config's dynamic_batching settings. Without `dynamic_batching`,
    requests still queue but each runs as its own batch (Triton's default scheduler), so the
    queue treats them as unbatched whatever their dim 0."""
    if not config.HasField("dynamic_batching"):
        return _core.BatchQueue(config.name, 0)
    dynamic = config.dynamic_batching
    return _core.BatchQueue(
        config.name,
        config.max_batch_size,
        preferred_batch_sizes=list(dynamic.preferred_batch_size),
        max_queue_delay_us=int(dynamic.max_queue_delay_microseconds),
        priority_levels=int(dynamic.priority_levels),
        default_priority_level=int(dynamic.default_priority_level),
        default_policy=_queue_policy(dynamic.default_queue_policy),
        priority_policies={
            int(level): _queue_policy(policy)
            for level, policy in dynamic.priority_queue_policy.items()
        },
        preserve_ordering=bool(dynamic.preserve_ordering),
    )


def _executor(
    name: str,
    loaded: LoadedSession,
    signature: ModelSignature,
    queue: _core.BatchQueue,
    loop: asyncio.AbstractEventLoop,
) -> Executor:
    if loaded.native is not None:
        return NativeExecutor(name, loaded.native, signature, queue, loop)
    assert loaded.session is not None
    return BindingExecutor(name, loaded.session, signature, queue, loop, loaded.instance_count)


def _warm_up(
    executor: Executor,
    config: mc.ModelConfig,
    signature: ModelSignature,
    model_dir: Path,
    version: int,
) -> None:
    for feeds in warmup_feeds(config, signature, model_dir):
        try:
            executor.warm_up(feeds)
        except Exception as error:
            raise ModelLoadError(
                f"model '{config.name}' version {version}: warm-up inference failed: {error}"
            ) from error
