"""The snapshot's routing part -> Prometheus families: requests per model, alias and version
(both paths summed), each model's aliases and traffic shares, and each shadow version's
comparisons with the served answers (copies, failures, mismatches, and a histogram of the
largest absolute difference per compared request)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)


def routing_families(data: dict[str, Any]) -> Iterator[Metric]:
    routing = data.get("routing")
    if routing is None:  # a snapshot from a server that predates routing
        return
    routed = CounterMetricFamily(
        "ferroserve_routed_requests",
        "Inference requests routed to a version, by the alias they came through (empty: a "
        "version number, or the newest version).",
        labels=["model", "alias", "version"],
    )
    for model, alias, version, count in routing["served"]:
        routed.add_metric([model, alias, version], float(count))
    yield routed
    aliases = GaugeMetricFamily(
        "ferroserve_alias_version",
        "The version each alias points at.",
        labels=["model", "alias"],
    )
    for model, alias, version in routing["aliases"]:
        aliases.add_metric([model, alias], float(version))
    yield aliases
    shares = GaugeMetricFamily(
        "ferroserve_traffic_percent",
        "The traffic policy: each target's share of the requests without a version (kind "
        "split), or the share copied to it (kind shadow).",
        labels=["model", "kind", "target", "version"],
    )
    for model, kind, target, version, percent in routing["traffic"]:
        shares.add_metric([model, kind, target, str(version)], float(percent))
    yield shares
    yield from _shadow_families(routing)


def _shadow_families(routing: dict[str, Any]) -> Iterator[Metric]:
    labels = ["model", "version"]
    sent = CounterMetricFamily(
        "ferroserve_shadow_requests", "Copies of requests sent to a shadow version.", labels=labels
    )
    failed = CounterMetricFamily(
        "ferroserve_shadow_failures",
        "Shadow copies with nothing to compare: the copy or the served request failed.",
        labels=labels,
    )
    mismatched = CounterMetricFamily(
        "ferroserve_shadow_mismatches",
        "Shadow answers that differ from the served ones (any value, shape or datatype).",
        labels=labels,
    )
    difference = HistogramMetricFamily(
        "ferroserve_shadow_max_abs_difference",
        "Per compared request, the largest absolute difference between the shadow's outputs "
        "and the served ones (+Inf: not comparable value by value).",
        labels=labels,
    )
    bounds = routing["difference_bounds"]
    for model, version, copies, failures, mismatches, buckets, sum_micros in routing["shadows"]:
        key = [model, version]
        sent.add_metric(key, float(copies))
        failed.add_metric(key, float(failures))
        mismatched.add_metric(key, float(mismatches))
        cumulative, running = [], 0
        for bound, count in zip([*bounds, float("inf")], buckets, strict=True):
            running += count
            cumulative.append(("+Inf" if bound == float("inf") else repr(float(bound)), running))
        difference.add_metric(key, cumulative, sum_micros / 1e6)
    yield sent
    yield failed
    yield mismatched
    yield difference
