"""Operating online features on a running server (`ferroserve serve` as a subprocess):
`FeatureService` Status and Reload with their status codes, the `ferroserve features status|load`
commands (table, JSON, exit status and messages), a bad snapshot that keeps the old one serving,
and the feature metrics on the sidecar's /metrics matching the lookups sent."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
from ferroserve._proto import feature_service_pb2 as fpb
from ferroserve._proto import reflection_pb2
from ferroserve.cli import main
from ferroserve.demo import write_demo_repository
from support import features as f
from support.metrics import scrape, value, wait_for
from support.server import ServerProcess
from tritonclient.utils import InferenceServerException

pytestmark = pytest.mark.timeout(120)
SERVICE = "/ferroserve.features.v1.FeatureService"
NOW = time.time()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """`counted` (traffic only from the metrics test), `strict` (REJECT), `reloadable` (no
    poller: only explicit loads) and the demo's `mlp` (no features)."""
    root = write_demo_repository(tmp_path_factory.mktemp("features-ops"))
    f.add_features_model(root, "counted", now=NOW)
    f.add_features_model(root, "strict", on_missing="REJECT", now=NOW)
    f.add_features_model(root, "reloadable", polling=False, now=NOW)
    log = tmp_path_factory.mktemp("logs") / "features-ops.log"
    with ServerProcess(root, log, ["--metrics-interval-ms", "250", "--grpc-reflection"]) as process:
        process.wait_ready()
        yield process


@pytest.fixture()
def client(server: ServerProcess) -> Iterator[triton_grpc.InferenceServerClient]:
    with triton_grpc.InferenceServerClient(server.url) as triton_client:
        yield triton_client


def rpc(server: ServerProcess, method: str, request: Any) -> Any:
    response = {"Status": fpb.FeatureStatusResponse, "Reload": fpb.FeatureReloadResponse}[method]
    with grpc.insecure_channel(server.url) as channel:
        call = channel.unary_unary(
            f"{SERVICE}/{method}",
            request_serializer=type(request).SerializeToString,
            response_deserializer=response.FromString,
        )
        return call(request, timeout=30)


def rpc_error(server: ServerProcess, method: str, request: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        rpc(server, method, request)
    return raised.value


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`ferroserve features ...` in this process: (exit status, stdout, stderr)."""
    capsys.readouterr()
    status = main(["features", *args])
    out, err = capsys.readouterr()
    return status, out, err


def test_status_shows_each_view_as_a_table_and_as_json(
    server: ServerProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = cli(capsys, "status", "--server", server.url)
    assert status == 0
    header, *lines = out.splitlines()
    assert header.split()[:5] == ["MODEL", "VERSION", "VIEW", "STORE", "ROWS"]
    assert header.split()[-2:] == ["P50", "P99"]
    assert [line.split()[:5] for line in lines] == [
        [name, "1", "user", "embedded", str(len(f.snapshot_ids()))]
        for name in ("counted", "reloadable", "strict")
    ]  # the demo's mlp has no features: not listed
    # The newest event was 600 s old when the snapshot was written (at collection: more now).
    minutes = re.search(r"  (\d+)m \d+s  ", lines[0])
    assert minutes is not None and 10 <= int(minutes.group(1)) < 60, lines[0]

    status, out, _ = cli(capsys, "status", "--model", "counted", "--json", "--server", server.url)
    assert status == 0
    (entry,) = json.loads(out)["models"]
    assert (entry["model"], entry["version"], entry["reloads"], entry["reload_failures"]) == (
        "counted",
        "1",
        1,
        0,
    )
    (view,) = entry["views"]
    assert view["view"] == "user" and view["loaded"] and view["source"].endswith("user.parquet")
    assert view["rows"] == len(f.snapshot_ids()) and view["generation"] >= 1
    assert view["memory_bytes"] >= view["values_bytes"] == len(f.snapshot_ids()) * 3 * 4
    assert abs(view["newest_event_us"] / 1e6 - (NOW - f.FRESH_AGE_S)) < 1
    assert abs(view["oldest_event_us"] / 1e6 - (NOW - f.STALE_AGE_S)) < 1
    assert view["store"] == "embedded" and entry["redis"] is None


def test_unknown_models_versions_and_views_are_not_found_and_a_model_is_needed(
    server: ServerProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    error = rpc_error(server, "Status", fpb.FeatureStatusRequest(model="nosuch"))
    assert error.code() == grpc.StatusCode.NOT_FOUND and "nosuch" in (error.details() or "")
    error = rpc_error(server, "Reload", fpb.FeatureReloadRequest(model="counted", version="7"))
    assert error.code() == grpc.StatusCode.NOT_FOUND and "has no version 7" in (
        error.details() or ""
    )
    error = rpc_error(
        server, "Reload", fpb.FeatureReloadRequest(model="counted", views=["user", "card"])
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert "no view 'card'; its views: user" in (error.details() or "")
    for method, request in (
        ("Status", fpb.FeatureStatusRequest(version="1")),
        ("Reload", fpb.FeatureReloadRequest()),
    ):
        error = rpc_error(server, method, request)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "name the model" in (error.details() or "")

    status, out, err = cli(capsys, "status", "--model", "nosuch", "--server", server.url)
    assert (status, out) == (1, "")
    assert err.startswith("ferroserve features status: NOT_FOUND: model 'nosuch'")
    assert "`ferroserve features status` lists the models with features" in err


def test_a_model_without_features_is_a_failed_precondition(
    server: ServerProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    for method, request in (
        ("Status", fpb.FeatureStatusRequest(model="mlp")),
        ("Reload", fpb.FeatureReloadRequest(model="mlp")),
    ):
        error = rpc_error(server, method, request)
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "model 'mlp' version 1 has no features.pbtxt" in (error.details() or "")
    status, _, err = cli(capsys, "load", "--model", "mlp", "--server", server.url)
    assert status == 1 and "FAILED_PRECONDITION" in err and "no features.pbtxt" in err


def test_load_installs_the_new_snapshot_and_a_bad_one_keeps_the_old(
    server: ServerProcess,
    client: triton_grpc.InferenceServerClient,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = server.repository / "reloadable"
    user = np.array([2])  # a fresh row (1 is the first row: stale)

    def served() -> float:
        return float(f.infer_users(client, "reloadable", user)[0, 4])

    assert served() == 1.0
    f.write_snapshot(f.user_snapshot(2.0, NOW), folder / "user.parquet")
    time.sleep(0.3)
    assert served() == 1.0  # no poller: nothing changes until asked
    status, out, _ = cli(capsys, "load", "--model", "reloadable", "--server", server.url)
    assert status == 0
    assert out.startswith(
        f"reloadable version 1: loaded user ({len(f.snapshot_ids())} rows, generation 2) in "
    )
    assert served() == 2.0

    broken = f.user_snapshot(3.0, NOW).drop(columns=["f1"])
    f.write_snapshot(broken, folder / "user.parquet")
    error = rpc_error(server, "Reload", fpb.FeatureReloadRequest(model="reloadable"))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    details = error.details() or ""
    assert "user.parquet" in details and "f1" in details, details
    assert "keeps serving its previous snapshot, generation 2" in details
    assert served() == 2.0
    status, _, err = cli(capsys, "load", "--model", "reloadable", "--view", "user")
    assert status == 1  # the default --server is not this one: UNAVAILABLE, with a hint
    assert "UNAVAILABLE at 127.0.0.1:8001" in err and "--server HOST:PORT" in err

    (entry,) = rpc(server, "Status", fpb.FeatureStatusRequest(model="reloadable")).models
    assert (entry.reloads, entry.reload_failures) == (2, 1)
    assert "f1" in entry.last_error and entry.views[0].generation == 2
    status, out, _ = cli(capsys, "status", "--model", "reloadable", "--server", server.url)
    assert "reloadable version 1: 1 failed load(s); the last load failed" in out

    f.write_snapshot(f.user_snapshot(4.0, NOW), folder / "user.parquet")
    (reloaded,) = rpc(
        server, "Reload", fpb.FeatureReloadRequest(model="reloadable", views=["user"])
    ).reloads
    assert (list(reloaded.views), reloaded.generation) == (["user"], 3)
    assert served() == 4.0


def test_lookup_metrics_on_the_sidecar_match_the_traffic(
    server: ServerProcess,
    client: triton_grpc.InferenceServerClient,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rng = np.random.default_rng(5)
    sent = [rng.integers(0, f.USERS + 10, int(rng.integers(1, 5))) for _ in range(30)]
    for users in sent:
        f.infer_users(client, "counted", users)
    everything = np.concatenate(sent)
    want = f.expected_results(everything)
    assert min(want.values()) > 0  # the traffic has hits, misses and stale rows
    with pytest.raises(InferenceServerException, match="user"):
        f.infer_users(client, "strict", np.array([5]))  # not in the snapshot: rejected

    counted = {"model": "counted", "version": "1"}
    user = {**counted, "view": "user"}

    def scraped() -> Any:
        samples = scrape(server.metrics_url)
        hits = value(samples, "ferroserve_feature_lookups_total", **user, result="hit")
        rejected = value(
            samples, "ferroserve_feature_rejections_total", model="strict", version="1", view="user"
        )
        return samples if hits == want["hit"] and rejected == 1 else None

    samples = wait_for(scraped, "the lookups on /metrics")
    for result in ("hit", "miss", "stale", "unavailable"):
        got = value(samples, "ferroserve_feature_lookups_total", **user, result=result)
        assert got == want.get(result, 0), (result, got, want)
    assert value(samples, "ferroserve_feature_rejections_total", **user) == 0
    assert value(samples, "ferroserve_feature_gathered_rows_total", **counted) == len(everything)
    gathers = value(samples, "ferroserve_feature_gathers_total", **counted) or 0
    assert 1 <= gathers <= len(sent)
    assert (value(samples, "ferroserve_feature_gather_seconds_total", **counted) or 0) > 0
    assert value(samples, "ferroserve_feature_snapshot_rows", **user) == len(f.snapshot_ids())
    assert (value(samples, "ferroserve_feature_snapshot_bytes", **user) or 0) > 0
    newest = value(samples, "ferroserve_feature_snapshot_newest_event_timestamp_seconds", **user)
    assert newest is not None and abs(newest - (NOW - f.FRESH_AGE_S)) < 1
    assert value(samples, "ferroserve_feature_snapshot_generation", **counted) == 1
    assert value(samples, "ferroserve_feature_reloads_total", **counted, result="ok") == 1
    assert value(samples, "ferroserve_feature_reloads_total", **counted, result="failed") == 0
    assert value(samples, "ferroserve_feature_lookups_total", model="mlp", version="1") is None

    _, out, _ = cli(capsys, "status", "--model", "counted", "--json", "--server", server.url)
    (view,) = json.loads(out)["models"][0]["views"]
    assert (view["lookups"], view["hits"], view["misses"], view["stale"]) == (
        len(everything),
        want["hit"],
        want["miss"],
        want["stale"],
    )


def test_reflection_lists_the_feature_service(server: ServerProcess) -> None:
    with grpc.insecure_channel(server.url) as channel:
        info = channel.stream_stream(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        requests = [
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(
                file_containing_symbol="ferroserve.features.v1.FeatureService.Reload"
            ),
        ]
        services, file = list(info(iter(requests), timeout=10))
    names = {service.name for service in services.list_services_response.service}
    assert "ferroserve.features.v1.FeatureService" in names
    assert len(file.file_descriptor_response.file_descriptor_proto) == 1


def test_the_command_runs_as_a_process(server: ServerProcess) -> None:
    command = [sys.executable, "-m", "ferroserve", "features"]
    done = subprocess.run(
        [*command, "status", "--server", server.url], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0 and done.stdout.startswith("MODEL"), done.stderr
    done = subprocess.run(
        [*command, "load", "--server", server.url], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2 and "--model" in done.stderr  # argparse: a required flag
