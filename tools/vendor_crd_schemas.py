"""Writes the OpenAPI schemas of the custom resources our manifests use (KServe's
ClusterServingRuntime and InferenceService, the Prometheus operator's ServiceMonitor and
PrometheusRule) into tests/deploy/schemas/, from those projects' CRD files, so the tests validate
the manifests against them without a cluster or a download. Descriptions are dropped, and so is
what no manifest of ours contains (`status`; an InferenceService's transformer, explainer, canary
list, and the predictor's per-framework and multi-node fields), which keeps the files small: a
manifest that uses a pruned field fails validation as an unknown field, so vendor again with less
pruned when one starts to.

    python tools/vendor_crd_schemas.py --source kserve/kserve@<commit> CRD.yaml [CRD.yaml ...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import yaml

OUT = Path(__file__).resolve().parent.parent / "tests" / "deploy" / "schemas"
# Subtrees that none of our manifests uses: kind -> path of an object schema -> its fields.
PREDICTOR_FRAMEWORKS = (
    "huggingface",
    "lightgbm",
    "onnx",
    "paddle",
    "pmml",
    "pytorch",
    "sklearn",
    "tensorflow",
    "triton",
    "xgboost",
    "workerSpec",
)
PRUNED = {
    "InferenceService": {
        ("spec",): ("transformer", "explainer", "canary"),
        ("spec", "predictor"): PREDICTOR_FRAMEWORKS,
    }
}


def _strip(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip(v) for k, v in node.items() if k != "description"}
    if isinstance(node, list):
        return [_strip(v) for v in node]
    return node


def schemas(crd: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """`{apiVersion: schema}` of every served version of one CRD."""
    group = crd["spec"]["group"]
    kind = crd["spec"]["names"]["kind"]
    found = {}
    for version in crd["spec"]["versions"]:
        if not version.get("served", True):
            continue
        schema = _strip(version["schema"]["openAPIV3Schema"])
        schema["properties"].pop("status", None)
        for path, fields in PRUNED.get(kind, {}).items():
            node = schema
            for step in path:
                node = node["properties"][step]
            for field in fields:
                node["properties"].pop(field, None)
        found[f"{group}/{version['name']}"] = schema
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", required=True, help="where the CRDs came from (recorded)")
    parser.add_argument("crds", nargs="+", type=Path)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    for path in args.crds:
        crd = yaml.safe_load(path.read_text())
        kind = crd["spec"]["names"]["kind"]
        for api_version, schema in schemas(crd).items():
            name = f"{api_version.replace('/', '_')}_{kind}.json"
            document = {"source": f"{args.source}:{path.name}", "kind": kind, "schema": schema}
            (OUT / name).write_text(json.dumps(document, separators=(",", ":"), sort_keys=True))
            print(f"{OUT / name}: {len(json.dumps(schema)) // 1024} KiB")


if __name__ == "__main__":
    main()
