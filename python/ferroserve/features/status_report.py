"""`ferroserve features status`'s answer (`FeatureStatusResponse`) for people and for scripts: a
table with a line per view (its snapshot, or its store for a Redis view, lookups and lookup
latency), notes under it per version (failed loads; the Redis store's address, state, calls,
errors and last error), and the same as plain JSON. cli_features.py prints them."""

from __future__ import annotations

from typing import Any

from ferroserve._proto import feature_service_pb2 as pb
from ferroserve.features.redis_counters import REDIS_COUNTERS

# ViewStatus.Store as the JSON and the table write it.
STORE_NAMES = {pb.ViewStatus.EMBEDDED: "embedded", pb.ViewStatus.REDIS: "redis"}

COLUMNS = (
    "MODEL",
    "VERSION",
    "VIEW",
    "STORE",
    "ROWS",
    "MEMORY",
    "NEWEST EVENT AGE",
    "GENERATION",
    "LOOKUPS",
    "HIT %",
    "MISSES",
    "STALE",
    "REJECTED",
    "P50",
    "P99",
)


def size(count: float) -> str:
    """Bytes as people read them: 512 B, 6.2 KiB, 1.5 GiB."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable: the loop returns at GiB")


def age(seconds: float) -> str:
    """A duration as people read it: 42s, 3m 5s, 2h 7m, 4d 1h."""
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"


def latency(seconds: float) -> str:
    """A lookup time as people read it: 850 ns, 1.4 µs, 2.25 ms, 1.20 s."""
    if seconds < 1e-6:
        return f"{seconds * 1e9:.0f} ns"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def _latency_json(view: pb.ViewStatus) -> dict[str, Any]:
    measured = view.latency.count > 0
    return {
        "count": view.latency.count,
        "mean_seconds": view.latency.mean_seconds if measured else None,
        "p50_seconds": view.latency.p50_seconds if measured else None,
        "p99_seconds": view.latency.p99_seconds if measured else None,
    }


def _view_json(view: pb.ViewStatus) -> dict[str, Any]:
    return {
        "view": view.view,
        "store": STORE_NAMES.get(view.store, str(view.store)),
        "source": view.source,
        "loaded": view.loaded,
        "generation": view.generation,
        "rows": view.rows,
        "memory_bytes": view.memory_bytes,
        "values_bytes": view.values_bytes,
        "duplicate_keys": view.duplicate_keys,
        "oldest_event_us": view.oldest_event_us if view.HasField("oldest_event_us") else None,
        "newest_event_us": view.newest_event_us if view.HasField("newest_event_us") else None,
        "lookups": view.lookups,
        "hits": view.hits,
        "misses": view.misses,
        "stale": view.stale,
        "unavailable": view.unavailable,
        "rejected": view.rejected,
        "latency": _latency_json(view),
    }


def _redis_json(redis: pb.RedisStoreStatus) -> dict[str, Any]:
    last_error = None
    if redis.HasField("last_error_us"):
        last_error = {
            "kind": redis.last_error_kind,
            "message": redis.last_error,
            "at_us": redis.last_error_us,
        }
    return {
        "address": redis.address,
        "connected": redis.connected if redis.HasField("connected") else None,
        **{name: getattr(redis, name) for name in REDIS_COUNTERS},
        "last_answer_us": redis.last_answer_us if redis.HasField("last_answer_us") else None,
        "last_error": last_error,
    }


def status_json(status: pb.FeatureStatusResponse) -> dict[str, Any]:
    """The answer as plain JSON: integers stay numbers (protobuf's JSON mapping would quote
    every 64-bit one); a version without Redis views has "redis": null."""
    return {
        "models": [
            {
                "model": entry.model,
                "version": entry.version,
                "reloads": entry.reloads,
                "reload_failures": entry.reload_failures,
                "last_error": entry.last_error or None,
                "views": [_view_json(view) for view in entry.views],
                "redis": _redis_json(entry.redis) if entry.HasField("redis") else None,
            }
            for entry in status.models
        ]
    }


def _view_row(entry: pb.VersionFeatures, view: pb.ViewStatus, now_unix: float) -> list[str]:
    redis = view.store == pb.ViewStatus.REDIS
    newest = age(now_unix - view.newest_event_us / 1e6) if view.HasField("newest_event_us") else "-"
    hit = f"{100 * view.hits / view.lookups:.1f}" if view.lookups else "-"
    measured = view.latency.count > 0
    return [
        entry.model,
        entry.version,
        view.view,
        STORE_NAMES.get(view.store, str(view.store)),
        # A Redis view has no snapshot: its rows are in Redis (the note under the table).
        "-" if redis else f"{view.rows:,}" if view.loaded else "not loaded",
        "-" if redis else size(view.memory_bytes),
        newest,
        "-" if redis else str(view.generation),
        f"{view.lookups:,}",
        hit,
        f"{view.misses:,}",
        f"{view.stale:,}",
        f"{view.rejected:,}",
        latency(view.latency.p50_seconds) if measured else "-",
        latency(view.latency.p99_seconds) if measured else "-",
    ]


def redis_note(entry: pb.VersionFeatures, now_unix: float) -> list[str]:
    """The lines under the table about a version's Redis store."""
    redis = entry.redis
    state = (
        "not asked yet"
        if not redis.HasField("connected")
        else "connected"
        if redis.connected
        else "NOT CONNECTED (its last call failed)"
    )
    lines = [
        f"{entry.model} version {entry.version}: Redis {redis.address} {state}; "
        f"{redis.calls:,} calls in {redis.round_trips:,} round trips, {redis.rows:,} rows "
        f"({redis.found:,} found, "
        f"{redis.missing:,} missing, {redis.unavailable:,} unavailable, {redis.bad_rows:,} bad); "
        f"errors: {redis.timeouts:,} timeouts, {redis.connection_errors:,} connection, "
        f"{redis.protocol_errors:,} protocol"
    ]
    if redis.HasField("last_error_us"):
        ago = age(now_unix - redis.last_error_us / 1e6)
        lines.append(f"  last error {ago} ago ({redis.last_error_kind}): {redis.last_error}")
    return lines


def status_table(status: pb.FeatureStatusResponse, now_unix: float) -> str:
    """One line per view, then notes per version: its Redis store, its failed loads."""
    if not status.models:
        return "no model version with features is loaded"
    rows: list[list[str]] = []
    notes: list[str] = []
    for entry in status.models:
        rows.extend(_view_row(entry, view, now_unix) for view in entry.views)
        if entry.HasField("redis"):
            notes.extend(redis_note(entry, now_unix))
        if entry.reload_failures:
            note = f"{entry.model} version {entry.version}: {entry.reload_failures} failed load(s)"
            if entry.last_error:
                note += f"; the last load failed, previous snapshot serving: {entry.last_error}"
            notes.append(note)
    widths = [max(len(line[i]) for line in (COLUMNS, *rows)) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        for line in (COLUMNS, *rows)
    ]
    return "\n".join([line.rstrip() for line in lines] + notes)
