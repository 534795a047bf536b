"""Brings one model version up: its config checked and completed from the graph, the engine on
the execution provider it asks for (session.py), its Rust batch queue, its executor, warm-up
(warmup.py), and the native front end's route. Blocking: the registry calls `load_version` from
a worker thread. The result is a `ServedModel` (model.py), which only serves.

A model with a `features.pbtxt` (ferroserve.features) is shown to clients with its declared
request inputs, while its executor and warm-up run on the graph's inputs, which each batch
gathers from the feature store. A model with a `drift.pbtxt` (ferroserve.drift) gets a drift
tracker built from its version's reference dataset after warm-up (reference outputs may need
the model), counting every batch its executor runs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from ferroserve import _core
from ferroserve._proto import model_config_pb2 as mc
from ferroserve.classification import read_labels
from ferroserve.config import (
    ModelSignature,
    TensorSpec,
    complete_config,
    warn_unsupported,
)
from ferroserve.config.ensemble import ensemble_graph, is_ensemble
from ferroserve.config.triton_fed import refuse_batch_io
from ferroserve.drift.declaration import DriftDeclaration
from ferroserve.drift.declaration import read_declaration as read_drift_declaration
from ferroserve.drift.tracking import ModelDrift, build_drift
from ferroserve.errors import ConfigError
from ferroserve.features.client import client_config, client_signature
from ferroserve.features.declaration import FeatureDeclaration, read_declaration
from ferroserve.features.store import ModelFeatures
from ferroserve.runtime.binding import BindingExecutor
from ferroserve.runtime.executor import Executor
from ferroserve.runtime.initializers import overridable_initializers, stored_values
from ferroserve.runtime.model import LoadReport, ServedModel
from ferroserve.runtime.native import NativeExecutor
from ferroserve.runtime.sequence import SequenceBatching, sequence_batching
from ferroserve.runtime.session import LoadedSession, create_session
from ferroserve.runtime.settings import (
    native_engine_allowed,
    queue_bound,
    warn_retired_parameters,
)
from ferroserve.runtime.warmup import warm_up

log = logging.getLogger(__name__)


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
    if is_ensemble(config):
        ensemble_graph(config)  # the config's own mistakes first
        raise ConfigError(
            f"ensemble '{config.name}' is loaded by the registry, after its composing models"
        )
    config = _copy(config)
    refuse_batch_io(config)
    ignored = warn_unsupported(config)
    warn_retired_parameters(config)
    declaration = read_declaration(model_dir)
    if declaration is not None and not native_engine_allowed(config):
        raise ConfigError(
            f"model '{config.name}': {declaration.path} declares looked-up features, which "
            'only the native engine gathers; remove parameter native_engine: "false"'
        )
    drift_declaration = read_drift_declaration(model_dir)
    if drift_declaration is not None and not native_engine_allowed(config):
        raise ConfigError(
            f"model '{config.name}': {drift_declaration.path} monitors drift, which only the "
            'native engine counts; remove parameter native_engine: "false"'
        )
    loaded = create_session(config, model_file)
    signature = complete_config(
        config,
        loaded.inputs,
        loaded.outputs,
        initializers=lambda: overridable_initializers(model_file),
    )
    optional = [spec for spec in signature.inputs if spec.optional]
    if optional and loaded.native is not None:
        loaded = _rebind_for_initializers(config, model_file, optional, declaration)
    labels = read_labels(config, model_dir)
    features = _features(config, declaration, loaded, signature)
    sequence = _sequence(config, loaded, signature, features, drift_declaration)
    queue = build_queue(config, sequence)
    executor = _executor(
        f"{config.name}:{version}", loaded, signature, queue, loop, features, sequence
    )
    warmup = warm_up(executor, config, signature, model_dir, version)
    drift = _drift(config, drift_declaration, executor, signature, model_dir / str(version))
    executor.start()
    shown_config, shown_signature = config, signature
    if features is not None:
        features.start_polling()
        shown_config = client_config(config, features.declaration)
        shown_signature = client_signature(features.declaration, signature)
    return ServedModel(
        name=config.name,
        version=version,
        config=shown_config,
        signature=shown_signature,
        queue=queue,
        executor=executor,
        native_route=executor.route(config.name, str(version)),
        report=LoadReport(
            loaded.provider,
            tuple(ignored),
            time.perf_counter() - started,
            warmup.summary,
            warmup.shown,
        ),
        features=features,
        drift=drift,
        labels=labels,
        input_defaults=stored_values(model_file, optional) if optional else {},
    )


def _rebind_for_initializers(
    config: mc.ModelConfig,
    model_file: Path,
    optional: list[TensorSpec],
    declaration: FeatureDeclaration | None,
) -> LoadedSession:
    """The version on onnxruntime's Python binding: only it feeds graph initializers by name,
    which optional inputs are."""
    names = [spec.name for spec in optional]
    if declaration is not None:
        raise ConfigError(
            f"model '{config.name}': optional input(s) {names} override graph initializers, "
            f"which only onnxruntime's Python binding feeds, and {declaration.path} declares "
            "looked-up features, which only the native engine gathers"
        )
    log.info(
        "model '%s': optional input(s) %s override graph initializers, which only "
        "onnxruntime's Python binding feeds; using it",
        config.name,
        names,
    )
    return create_session(config, model_file, allow_native=False)


def _drift(
    config: mc.ModelConfig,
    declaration: DriftDeclaration | None,
    executor: Executor,
    signature: ModelSignature,
    version_dir: Path,
) -> ModelDrift | None:
    """The version's drift tracker, set on its executor before it starts, when the model
    monitors drift."""
    if declaration is None:
        return None
    if not isinstance(executor, NativeExecutor):
        raise ConfigError(
            f"model '{config.name}': {declaration.path} monitors drift, which only the native "
            "engine counts, and the native engine cannot run this model (see the log for why)"
        )
    drift = build_drift(
        config.name,
        version_dir,
        declaration,
        executor.inputs,
        signature.outputs,
        signature.max_batch_size,
        executor.instances,
        executor.run_outputs,
    )
    executor.track_drift(drift)
    return drift


def _sequence(
    config: mc.ModelConfig,
    loaded: LoadedSession,
    signature: ModelSignature,
    features: ModelFeatures | None,
    drift: DriftDeclaration | None,
) -> SequenceBatching | None:
    """The version's sequence batcher, when the config has `sequence_batching`: on the native
    engine only, without looked-up features or drift monitoring (not combined yet)."""
    if not config.HasField("sequence_batching"):
        return None
    where = f"model '{config.name}': sequence_batching"
    if loaded.native is None:
        raise ConfigError(
            f"{where} runs on the native engine only, which cannot run this model (see the "
            'log for why; parameter native_engine: "false" also keeps it off)'
        )
    if features is not None or drift is not None:
        raise ConfigError(
            f"{where} is not supported together with features.pbtxt or drift.pbtxt yet"
        )
    return sequence_batching(
        config, signature, loaded.inputs, loaded.outputs, loaded.native.instances
    )


def _features(
    config: mc.ModelConfig,
    declaration: FeatureDeclaration | None,
    loaded: LoadedSession,
    signature: ModelSignature,
) -> ModelFeatures | None:
    """The version's plan and store with every snapshot loaded, when it declares features."""
    if declaration is None:
        return None
    if loaded.native is None:
        raise ConfigError(
            f"model '{config.name}': {declaration.path} declares looked-up features, which only "
            "the native engine gathers, and the native engine cannot run this model (see the "
            "log for why)"
        )
    return ModelFeatures.load(config.name, declaration, signature)


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
        max_queue_size=queue_bound(int(policy.max_queue_size)),
    )


def build_queue(
    config: mc.ModelConfig, sequence: SequenceBatching | None = None
) -> _core.BatchQueue:
    """A batch queue with the config's dynamic_batching settings. Without `dynamic_batching`,
    requests still queue but each runs as its own batch (Triton's default scheduler), so the
    queue treats them as unbatched whatever their dim 0. A stateful model's queue batches the
    requests its sequencer releases (one per sequence at a time) with its strategy's delay
    and preferred sizes."""
    if sequence is not None:
        return _core.BatchQueue(
            config.name,
            config.max_batch_size,
            preferred_batch_sizes=list(sequence.preferred_batch_sizes),
            max_queue_delay_us=sequence.max_queue_delay_us,
            default_policy=_core.QueuePolicy(max_queue_size=queue_bound(0)),
        )
    if not config.HasField("dynamic_batching"):
        return _core.BatchQueue(
            config.name, 0, default_policy=_core.QueuePolicy(max_queue_size=queue_bound(0))
        )
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
    features: ModelFeatures | None = None,
    sequence: SequenceBatching | None = None,
) -> Executor:
    if sequence is not None:
        assert loaded.native is not None, "sequence batching runs on the native engine only"
        return NativeExecutor(name, loaded.native, signature, queue, loop, sequence=sequence)
    if features is not None:
        assert loaded.native is not None, "features are loaded for native models only"
        return NativeExecutor(
            name,
            loaded.native,
            signature,
            queue,
            loop,
            features=features.binding,
            client_signature=client_signature(features.declaration, signature),
        )
    if loaded.native is not None:
        return NativeExecutor(name, loaded.native, signature, queue, loop)
    assert loaded.session is not None
    return BindingExecutor(name, loaded.session, signature, queue, loop, loaded.instance_count)
