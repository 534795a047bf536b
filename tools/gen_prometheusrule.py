"""Writes deploy/kubernetes/base/prometheusrule.yaml, the Prometheus operator's PrometheusRule
holding deploy/prometheus/ferroserve-alerts.yml's groups unchanged (the rules file stays the one
source: promtool tests it). `--check` exits 1 when the committed file is stale; the test suite
runs that check (tests/deploy/test_kubernetes.py).

    python tools/gen_prometheusrule.py [--check]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "deploy" / "prometheus" / "ferroserve-alerts.yml"
OUT = ROOT / "deploy" / "kubernetes" / "base" / "prometheusrule.yaml"
HEADER = """\
# Generated from deploy/prometheus/ferroserve-alerts.yml by tools/gen_prometheusrule.py: edit
# that file and run the tool. The alert rules for the Prometheus operator (docs/metrics.md).
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: ferroserve
spec:
"""


def render(rules_text: str) -> str:
    """The PrometheusRule: the rules file from its `groups:` line on, indented under `spec`."""
    lines = rules_text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("groups:")), None)
    if start is None:
        raise ValueError(f"{RULES}: no top-level `groups:` line")
    body = "\n".join(f"  {line}" if line else "" for line in lines[start:])
    return HEADER + body + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    args = parser.parse_args()
    wanted = render(RULES.read_text(encoding="utf-8"))
    if args.check:
        if not OUT.exists() or OUT.read_text(encoding="utf-8") != wanted:
            print(f"{OUT} is stale: run python tools/gen_prometheusrule.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(wanted, encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
