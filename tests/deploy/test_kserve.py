"""deploy/kserve: the ClusterServingRuntime and the InferenceService examples are valid against
KServe's CRD schemas (vendored, strict), the InferenceServices select the runtime by KServe's
own rules (name, model format, protocol), the canary example differs from the first only in
its model and traffic split, the runtime claims only the protocols ferroserve serves, and its
command line, with KServe's {{.Name}} filled in, serves each layout KServe's storage initializer
can leave in /mnt/models (a repository, one model's folder, a single model.onnx)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
from support import models as m
from support.commands import CommandServer, with_flags
from support.manifests import DEPLOY, container, load_documents, validation_errors
from support.repository import add_model
from support.tools import tool

KSERVE = DEPLOY / "kserve"
MOUNT = "/mnt/models"  # where KServe's storage initializer puts the storageUri's files


def document(name: str) -> dict[str, Any]:
    (found,) = load_documents((KSERVE / name).read_text())
    return found


@pytest.fixture(scope="module")
def runtime() -> dict[str, Any]:
    return document("clusterservingruntime.yaml")


@pytest.fixture(scope="module")
def services() -> list[dict[str, Any]]:
    return [document("inferenceservice.yaml"), document("inferenceservice-canary.yaml")]


def test_every_resource_is_valid(runtime: dict[str, Any], services: list[dict[str, Any]]) -> None:
    assert runtime["kind"] == "ClusterServingRuntime"
    errors = [e for resource in (runtime, *services) for e in validation_errors(resource)]
    assert not errors, "\n".join(errors)


def test_the_inference_services_select_the_runtime(
    runtime: dict[str, Any], services: list[dict[str, Any]]
) -> None:
    spec = runtime["spec"]
    formats = {f["name"] for f in spec["supportedModelFormats"]}
    for service in services:
        model = service["spec"]["predictor"]["model"]
        # KServe's predictor_model.go: a named runtime must support the model's format and
        # protocol (autoSelect only matters when no runtime is named).
        assert model["runtime"] == runtime["metadata"]["name"]
        assert model["modelFormat"]["name"] in formats
        assert model["protocolVersion"] in spec["protocolVersions"]
    assert formats == {"onnx"}
    # KServe merges an InferenceService's model spec into the container of this name.
    assert [c["name"] for c in spec["containers"]] == ["kserve-container"]


def test_the_canary_changes_only_the_model_and_its_share(services: list[dict[str, Any]]) -> None:
    first, canary = services
    assert first["metadata"] == canary["metadata"]  # the same InferenceService, updated
    assert "canaryTrafficPercent" not in first["spec"]["predictor"]
    share = canary["spec"]["predictor"].pop("canaryTrafficPercent")
    assert 0 < share < 100
    first_model = first["spec"]["predictor"].pop("model")
    canary_model = canary["spec"]["predictor"].pop("model")
    assert first["spec"] == canary["spec"]
    assert first_model.pop("storageUri") != canary_model.pop("storageUri")
    assert first_model == canary_model


def test_the_runtime_claims_only_the_protocols_ferroserve_serves(runtime: dict[str, Any]) -> None:
    serve_help = subprocess.run(
        [tool("ferroserve"), "serve", "--help"], capture_output=True, text=True, check=True
    ).stdout
    serves_rest = "--http-port" in serve_help  # the REST endpoint of issue 19
    expected = ["grpc-v2", "v2"] if serves_rest else ["grpc-v2"]
    assert sorted(runtime["spec"]["protocolVersions"]) == expected, (
        "ferroserve serves REST now: add `v2` to the runtime's protocolVersions and its HTTP "
        "port to its args and ports"
        if serves_rest
        else "the runtime claims a protocol ferroserve does not serve"
    )


def test_the_runtime_exports_metrics_where_its_annotations_say(runtime: dict[str, Any]) -> None:
    spec = runtime["spec"]
    args = container(spec, "kserve-container")["args"]
    assert f"--metrics-port={spec['annotations']['prometheus.kserve.io/port']}" in args
    assert spec["annotations"]["prometheus.kserve.io/path"] == "/metrics"
    ports = container(spec, "kserve-container")["ports"]
    assert [(p["name"], f"--grpc-port={p['containerPort']}") for p in ports] == [
        ("h2c", next(a for a in args if a.startswith("--grpc-port=")))
    ]


def _write_layout(layout: str, root: Path) -> str:
    """Lays out `root` as the storage initializer would for a storageUri holding `layout`;
    returns the model name clients call ("" : the InferenceService's name)."""
    model = m.identity_model("FP32", ["batch", 4])
    if layout == "repository":
        add_model(root, "scorer", model)
        return "scorer"
    if layout == "model-folder":
        add_model(root.parent, root.name, model, config="max_batch_size: 8\n")
        return ""
    root.mkdir(parents=True)
    (root / "model.onnx").write_bytes(model.SerializeToString())
    return ""


@pytest.mark.parametrize("layout", ["repository", "model-folder", "model-file"])
def test_the_runtime_serves_each_storage_layout(
    runtime: dict[str, Any], services: list[dict[str, Any]], layout: str, tmp_path: Path
) -> None:
    service_name = services[0]["metadata"]["name"]
    args: list[str] = container(runtime["spec"], "kserve-container")["args"]
    # KServe renders the container as a Go template over the InferenceService's metadata.
    rendered = [a.replace("{{.Name}}", service_name) for a in args]
    assert not any("{{" in a for a in rendered), rendered
    assert f"--model-repository={MOUNT}" in rendered
    mount = tmp_path / "mnt-models"
    model_name = _write_layout(layout, mount) or service_name

    def argv(grpc_port: int, metrics_port: int) -> list[str]:
        local = {
            "--model-repository": str(mount),
            "--host": "127.0.0.1",
            "--grpc-port": str(grpc_port),
            "--metrics-port": str(metrics_port),
        }
        return with_flags(rendered, local)

    with CommandServer(argv, mount, tmp_path / "server.log") as server:
        server.wait_ready()
        rows = np.arange(8, dtype=np.float32).reshape(2, 4)
        with triton_grpc.InferenceServerClient(server.url) as client:
            assert [
                model["name"] for model in client.get_model_repository_index(as_json=True)["models"]
            ] == [model_name]
            x = triton_grpc.InferInput("INPUT0", [2, 4], "FP32")
            x.set_data_from_numpy(rows)
            result = client.infer(model_name, [x])
        np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), rows)
