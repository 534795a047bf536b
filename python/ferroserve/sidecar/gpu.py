"""GPU utilisation and memory through NVML (nvidia-ml-py). Where NVML cannot start (no driver,
no GPU) the families are absent, not zero: a dashboard then shows "no data", never a GPU that
looks idle."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

GPU_LABELS = ("gpu", "uuid", "name")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def start_nvml() -> Any | None:
    """The initialised `pynvml` module, or None where NVML is unavailable."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as error:  # ImportError, or pynvml's NVMLError for no driver / no GPU
        log.info("NVML unavailable (%s): no GPU metrics", error)
        return None
    return pynvml


class GpuCollector(Collector):
    """One reading of every GPU per scrape (a few microseconds each through NVML)."""

    def __init__(self, nvml: Any | None) -> None:
        self._nvml = nvml

    def collect(self) -> Iterator[Metric]:
        nvml = self._nvml
        if nvml is None:
            return
        utilization = GaugeMetricFamily(
            "ferroserve_gpu_utilization_ratio",
            "Fraction of the last sample period the GPU was busy (NVML).",
            labels=GPU_LABELS,
        )
        used = GaugeMetricFamily(
            "ferroserve_gpu_memory_used_bytes", "GPU memory in use (NVML).", labels=GPU_LABELS
        )
        total = GaugeMetricFamily(
            "ferroserve_gpu_memory_total_bytes", "GPU memory installed (NVML).", labels=GPU_LABELS
        )
        try:
            for index in range(nvml.nvmlDeviceGetCount()):
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                labels = [
                    str(index),
                    _text(nvml.nvmlDeviceGetUUID(handle)),
                    _text(nvml.nvmlDeviceGetName(handle)),
                ]
                rates = nvml.nvmlDeviceGetUtilizationRates(handle)
                memory = nvml.nvmlDeviceGetMemoryInfo(handle)
                utilization.add_metric(labels, rates.gpu / 100.0)
                used.add_metric(labels, float(memory.used))
                total.add_metric(labels, float(memory.total))
        except Exception as error:  # a GPU fell off the bus: report nothing rather than lie
            log.warning("NVML query failed: %s", error)
            return
        yield utilization
        yield used
        yield total
