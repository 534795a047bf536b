"""The metrics path in-process: outcome and gRPC-code counting in the serving process, the
snapshot file, and the sidecar's exposition, dashboard arithmetic and GPU collector."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import grpc
import pytest
from ferroserve import _core
from ferroserve.errors import (
    DeadlineExceededError,
    FeatureNotFoundError,
    InternalError,
    InvalidInputError,
    RequestCancelledError,
    ResourceExhaustedError,
    UnavailableError,
)
from ferroserve.metrics import snapshot
from ferroserve.metrics.rpc import RpcCounter
from ferroserve.outcomes import SUCCESS, failure_outcome
from ferroserve.sidecar.exposition import SnapshotCollector, batch_size_buckets, duration_buckets
from ferroserve.sidecar.gpu import GpuCollector
from ferroserve.sidecar.history import History, histogram_quantile
from ferroserve.sidecar.source import SnapshotSource
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

BOUNDS_NS = list(_core.DURATION_BUCKETS_NS)


# -- serving side ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (InvalidInputError("x"), "invalid"),
        (FeatureNotFoundError("x"), "invalid"),
        (ResourceExhaustedError("x"), "rejected"),
        (DeadlineExceededError("x"), "timeout"),
        (RequestCancelledError("x"), "cancelled"),
        (asyncio.CancelledError(), "cancelled"),
        (UnavailableError("x"), "unavailable"),
        (InternalError("x"), "internal"),
        (RuntimeError("x"), "internal"),
    ],
)
def test_every_error_has_a_failure_reason(error: BaseException, reason: str) -> None:
    assert _core.REQUEST_OUTCOMES[failure_outcome(error)] == reason
    assert _core.REQUEST_OUTCOMES[SUCCESS] == "success"


def test_queue_counts_outcomes_and_rejects_unknown_ones() -> None:
    queue = _core.BatchQueue("m", 4)
    queue.record_request(SUCCESS, 1_000)
    queue.record_request(failure_outcome(ResourceExhaustedError("full")), 20_000_000_000)
    stats = queue.statistics()
    assert stats["outcomes"]["success"] == 1
    assert stats["outcomes"]["rejected"] == 1
    counts, total_ns = stats["histograms"]["request"]
    assert len(counts) == len(BOUNDS_NS) + 1
    assert counts[0] == 1 and counts[-1] == 1  # 1 µs in the first bucket, 20 s in +Inf
    assert total_ns == 20_000_001_000
    with pytest.raises(ValueError, match="REQUEST_OUTCOMES"):
        queue.record_request(len(_core.REQUEST_OUTCOMES), 1)


class FakeContext:
    def __init__(self, code: grpc.StatusCode | None = None) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode | None:
        return self._code


def test_rpc_counter_counts_codes_of_unary_calls() -> None:
    counter = RpcCounter()

    async def ok(request: Any, context: Any) -> str:
        return "done"

    async def aborted(request: Any, context: Any) -> str:
        raise grpc.aio.AbortError()

    async def raising(request: Any, context: Any) -> str:
        raise InvalidInputError("bad")

    async def main() -> None:
        wrapped_ok = counter.wrap("svc", "Ok", "unary", ok)
        assert await wrapped_ok(None, FakeContext()) == "done"
        assert await wrapped_ok(None, FakeContext()) == "done"
        with pytest.raises(grpc.aio.AbortError):
            await counter.wrap("svc", "Abort", "unary", aborted)(
                None, FakeContext(grpc.StatusCode.NOT_FOUND)
            )
        with pytest.raises(InvalidInputError):
            await counter.wrap("svc", "Raise", "unary", raising)(None, FakeContext())

    asyncio.run(main())
    assert counter.counts() == {
        ("svc", "Ok", "unary", "OK"): 2,
        ("svc", "Abort", "unary", "NOT_FOUND"): 1,
        ("svc", "Raise", "unary", "INVALID_ARGUMENT"): 1,
    }


def test_rpc_counter_counts_a_stream_once_when_it_ends() -> None:
    counter = RpcCounter()

    async def stream(requests: Any, context: Any) -> AsyncIterator[int]:
        for i in range(3):
            yield i

    async def main() -> list[int]:
        wrapped = counter.wrap("svc", "Stream", "bidi_stream", stream)
        return [item async for item in wrapped(None, FakeContext())]

    assert asyncio.run(main()) == [0, 1, 2]
    assert counter.counts() == {("svc", "Stream", "bidi_stream", "OK"): 1}


def test_snapshot_is_replaced_atomically_and_checked(tmp_path: Path) -> None:
    path = tmp_path / snapshot.SNAPSHOT_FILE
    assert snapshot.read(path) is None
    snapshot.write(path, {"format": snapshot.FORMAT, "value": 1})
    assert snapshot.read(path) == {"format": snapshot.FORMAT, "value": 1}
    assert [p.name for p in tmp_path.iterdir()] == [snapshot.SNAPSHOT_FILE]
    path.write_text(json.dumps({"format": snapshot.FORMAT + 1}))
    assert snapshot.read(path) is None
    path.write_text("{not json")
    assert snapshot.read(path) is None


# -- sidecar --------------------------------------------------------------------------------


def test_histogram_quantile_interpolates_like_prometheus() -> None:
    bounds = [1.0, 2.0, 4.0]
    assert histogram_quantile(0.5, bounds, [0, 0, 0, 0]) is None
    assert histogram_quantile(0.5, bounds, [0, 10, 0, 0]) == pytest.approx(1.5)
    assert histogram_quantile(0.25, bounds, [10, 10, 0, 0]) == pytest.approx(0.5)
    assert histogram_quantile(0.75, bounds, [10, 10, 0, 0]) == pytest.approx(1.5)
    assert histogram_quantile(0.99, bounds, [0, 0, 0, 5]) == 4.0  # +Inf: the last bound


def test_buckets_are_cumulative_with_fixed_bounds() -> None:
    counts = [1, 0, 2] + [0] * (len(BOUNDS_NS) - 3) + [4]
    buckets = duration_buckets(BOUNDS_NS, counts)
    assert buckets[0] == ("5e-05", 1.0)
    assert buckets[2] == ("0.0001", 3.0)
    assert buckets[-2] == ("10.0", 3.0)
    assert buckets[-1] == ("+Inf", 7.0)
    batch = dict(batch_size_buckets({1: 5, 3: 2, 2000: 1}))
    assert (batch["1.0"], batch["2.0"], batch["4.0"], batch["1024.0"], batch["+Inf"]) == (
        5.0,
        5.0,
        7.0,
        7.0,
        8.0,
    )


def model_stats(requests: int, failures: int, fast: int, slow: int) -> dict[str, Any]:
    """A BatchQueue.statistics() dict, as the recorder writes it to JSON."""
    counts = [0] * (len(BOUNDS_NS) + 1)
    counts[2] = fast  # <= 100 µs
    counts[9] = slow  # <= 1 ms
    return {
        "inference_count": requests * 2,
        "execution_count": requests,
        "pending": 3,
        "batch_stats": {"2": {"compute_infer": [requests, 1000]}},
        "outcomes": {"success": requests - failures, "timeout": failures},
        "histograms": {
            key: [counts, 5_000_000]
            for key in ("request", "queue", "compute_input", "compute_infer", "compute_output")
        },
    }


def write_snapshot(directory: Path, stats: dict[str, Any], written: float) -> None:
    snapshot.write(
        directory / snapshot.SNAPSHOT_FILE,
        {
            "format": snapshot.FORMAT,
            "pid": 1,
            "started_unix": written - 100,
            "written_unix": written,
            "duration_buckets_ns": BOUNDS_NS,
            "outcomes": list(_core.REQUEST_OUTCOMES),
            "models": [
                {
                    "model": "m",
                    "version": "3",
                    "state": "READY",
                    "provider": "CPUExecutionProvider",
                    "load_seconds": 0.5,
                    "stats": stats,
                },
                {"model": "broken", "version": "1", "state": "UNAVAILABLE", "reason": "bad"},
            ],
            "rpcs": [["svc", "ModelInfer", "unary", "OK", 9]],
        },
    )


def exported(source: SnapshotSource) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(source))
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_collector_exports_a_fresh_snapshot_and_withholds_a_stale_one(tmp_path: Path) -> None:
    source = SnapshotSource(tmp_path, interval_s=1.0)
    assert exported(source) == {}
    write_snapshot(tmp_path, model_stats(10, 2, 6, 4), time.time())
    samples = exported(source)
    labels = (("model", "m"), ("version", "3"))
    assert samples[("ferroserve_requests_total", labels)] == 10
    assert (
        samples[
            ("ferroserve_request_failures_total", (*labels[:1], ("reason", "timeout"), *labels[1:]))
        ]
        == 2
    )
    assert samples[("ferroserve_request_duration_seconds_count", labels)] == 10
    assert samples[("ferroserve_request_duration_seconds_sum", labels)] == 0.005
    assert samples[("ferroserve_batch_size_sum", labels)] == 20
    assert samples[("ferroserve_pending_requests", labels)] == 3
    info = (("model", "broken"), ("provider", ""), ("state", "UNAVAILABLE"), ("version", "1"))
    assert samples[("ferroserve_model_info", info)] == 1
    assert not any(
        name.startswith("ferroserve_requests") and dict(pairs).get("model") == "broken"
        for name, pairs in samples
    )
    code = (
        ("grpc_code", "OK"),
        ("grpc_method", "ModelInfer"),
        ("grpc_service", "svc"),
        ("grpc_type", "unary"),
    )
    assert samples[("grpc_server_handled_total", code)] == 9
    # A snapshot the serving process stopped refreshing: only its age is exported.
    write_snapshot(tmp_path, model_stats(10, 2, 6, 4), time.time() - 60)
    stale = exported(source)
    assert list(stale) == [("ferroserve_metrics_snapshot_age_seconds", ())]
    assert stale[("ferroserve_metrics_snapshot_age_seconds", ())] >= 60


def test_history_turns_samples_into_rates_and_percentiles(tmp_path: Path) -> None:
    source = SnapshotSource(tmp_path, interval_s=1.0)
    history = History(source, keep_s=60, interval_s=1.0)
    now = time.time()
    write_snapshot(tmp_path, model_stats(10, 0, 10, 0), now - 2)
    history.sample()
    history.sample()  # same snapshot: no new sample
    write_snapshot(tmp_path, model_stats(30, 4, 20, 10), now)
    history.sample()
    board = history.dashboard()
    assert board["serving"] and board["samples"] == 2
    row = next(m for m in board["models"] if m["model"] == "m")
    current = row["current"]
    assert current["throughput"] == pytest.approx(10.0)  # 20 requests in 2 s
    assert current["errors_per_s"] == pytest.approx(2.0)
    assert current["batch_size"] == pytest.approx(2.0)
    # 10 new fast (<= 100 µs) and 10 new slow (<= 1 ms) requests: p50 at the fast bucket's top
    assert current["p50_ms"] == pytest.approx(0.1)
    assert 0.75 < current["p99_ms"] <= 1.0
    assert row["totals"] == {
        "requests": 30,
        "failures": 4,
        "inferences": 60,
        "executions": 30,
        "pending": 3,
    }
    broken = next(m for m in board["models"] if m["model"] == "broken")
    assert broken["state"] == "UNAVAILABLE" and "series" not in broken
    # The serving process restarted: counters start again from zero, no negative rate.
    write_snapshot(tmp_path, model_stats(4, 0, 4, 0), now + 2)
    history.sample()
    rates = history.dashboard()["models"][0]["series"]["throughput"]
    assert rates[-1] == pytest.approx(2.0)


class FakeNvml:
    def nvmlDeviceGetCount(self) -> int:
        return 1

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetUUID(self, handle: int) -> bytes:
        return b"GPU-1234"

    def nvmlDeviceGetName(self, handle: int) -> str:
        return "NVIDIA H100"

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> Any:
        return SimpleNamespace(gpu=37, memory=10)

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> Any:
        return SimpleNamespace(used=2 * 2**30, total=80 * 2**30, free=78 * 2**30)


class BrokenNvml(FakeNvml):
    def nvmlDeviceGetMemoryInfo(self, handle: int) -> Any:
        raise RuntimeError("GPU is lost")


def gpu_samples(nvml: Any) -> dict[str, float]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(GpuCollector(nvml))
    text = generate_latest(registry).decode()
    return {
        s.name: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.labels.get("uuid") == "GPU-1234"
    }


def test_gpu_metrics_come_from_nvml_and_are_absent_without_it() -> None:
    assert gpu_samples(FakeNvml()) == {
        "ferroserve_gpu_utilization_ratio": 0.37,
        "ferroserve_gpu_memory_used_bytes": 2 * 2**30,
        "ferroserve_gpu_memory_total_bytes": 80 * 2**30,
    }
    assert gpu_samples(None) == {}
    assert gpu_samples(BrokenNvml()) == {}
