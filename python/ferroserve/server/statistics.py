"""Converts the Rust batcher's statistics into Triton's `ModelStatistics` message."""

from __future__ import annotations

from typing import Any

from ferroserve._proto import grpc_service_pb2 as pb
from ferroserve.runtime.model import ServedModel


def _duration(stat: Any) -> pb.StatisticDuration:
    count, ns = stat
    return pb.StatisticDuration(count=int(count), ns=int(ns))


def model_statistics(model: ServedModel) -> pb.ModelStatistics:
    """Triton's ModelStatistics for one served version."""
    stats = model.queue.statistics()
    inference = pb.InferStatistics(
        success=_duration(stats["success"]),
        fail=_duration(stats["fail"]),
        queue=_duration(stats["queue"]),
        compute_input=_duration(stats["compute_input"]),
        compute_infer=_duration(stats["compute_infer"]),
        compute_output=_duration(stats["compute_output"]),
    )
    batches = [
        pb.InferBatchStatistics(
            batch_size=int(size),
            compute_input=_duration(entry["compute_input"]),
            compute_infer=_duration(entry["compute_infer"]),
            compute_output=_duration(entry["compute_output"]),
        )
        for size, entry in sorted(stats["batch_stats"].items())
    ]
    return pb.ModelStatistics(
        name=model.name,
        version=model.version_label,
        last_inference=int(stats["last_inference_ms"]),
        inference_count=int(stats["inference_count"]),
        execution_count=int(stats["execution_count"]),
        inference_stats=inference,
        batch_stats=batches,
    )
