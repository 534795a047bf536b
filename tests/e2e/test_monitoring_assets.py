"""deploy/grafana and deploy/prometheus against a real Prometheus (Debian's `prometheus`
package, installed by `make test`): Prometheus scrapes a ferroserve sidecar during traffic (to
the demo's MLP, to a model with looked-up features, to one whose view is in Redis and to one
that drifts), every Grafana panel query evaluates without error, the traffic, feature, Redis
and drift panels return data, and every alerting rule loads and evaluates healthily (the drift
alert pending); every metric a panel queries is documented in docs/metrics.md. promtool's unit
test checks when the drift alert fires."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ferroserve.demo import write_demo_repository
from support.drift import add_drift_model, drift_traffic
from support.features import add_features_model, feature_traffic
from support.metrics import background_traffic, get, scrape, wait_for
from support.redis import RedisServer, redis_server_binary
from support.redis_features import add_redis_features_model
from support.server import ServerProcess, free_port

pytestmark = pytest.mark.timeout(240)

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "ferroserve-dashboard.json"
ALERTS = ROOT / "deploy" / "prometheus" / "ferroserve-alerts.yml"
METRICS_DOC = ROOT / "docs" / "metrics.md"
# Panels that must show data after traffic on a CPU-only machine (GPU panels may be empty).
MUST_HAVE_DATA = (
    "Throughput (requests/s)",
    "Rows inferred per second",
    "Error ratio",
    "Request latency p50 / p95 / p99",
    "Queue time p50 / p99",
    "Model execution p50 / p99 (onnxruntime)",
    "Input / output handling (mean per execution)",
    "Mean batch size (rows per execution)",
    "Pending requests",
    "Failures by reason (requests/s)",
    "gRPC calls by method and code",
    "Serving process CPU (cores)",
    "Serving process memory (RSS)",
    "Metrics snapshot age",
    "Model versions",
    "Feature lookups by result (rows/s)",
    "Feature hit ratio",
    "Feature rejections (rows/s)",
    "Feature gather time per batch (mean)",
    "Feature snapshot rows",
    "Feature snapshot age (newest event)",
    "Feature snapshot memory",
    "Feature snapshot loads",
    "Feature lookup latency p50 / p99 by view",
    "Redis store calls and rows (per s)",
    "Redis store errors by kind (calls/s)",
    "Redis store up",
    "Drift status by window",
    "Top drift scores (PSI, last closed window)",
    "Columns by verdict (last closed window)",
    "Rows in the drift windows",
    "Batches not counted for drift (per s)",
    "Drifting columns (last closed window)",
)
RULES = 9
# A histogram's or counter's series names in PromQL, and the family name the docs list.
_SERIES_SUFFIXES = ("_bucket", "_sum", "_count")


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is missing: `make test` installs Debian's prometheus package")
        pytest.skip(f"{name} is not installed (Debian: apt-get install prometheus)")
    return found


def panel_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) for every panel target, with the dashboard's variables set to
    match everything and Grafana's $__rate_interval to a window this test's scrapes fill."""
    dashboard = json.loads(DASHBOARD.read_text())
    queries = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            expr = re.sub(r"\$(job|model|version)\b", ".*", expr)
            expr = expr.replace("$__rate_interval", "10s")
            assert "$" not in expr, expr
            queries.append((panel["title"], expr))
    return queries


def test_dashboard_json_is_importable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] == "ferroserve"
    names = [v["name"] for v in dashboard["templating"]["list"]]
    assert names == ["datasource", "job", "model", "version"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    titles = {p["title"] for p in dashboard["panels"]}
    assert set(MUST_HAVE_DATA) <= titles
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def test_every_dashboard_metric_is_documented() -> None:
    """Every ferroserve metric a panel queries is in docs/metrics.md's tables (so it is a
    family the sidecar exports, and a reader can look it up)."""
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    queried = set(re.findall(r"\bferroserve_[a-z_]+", " ".join(exprs)))
    documented = METRICS_DOC.read_text()
    missing = []
    for name in sorted(queried):
        family = name
        for suffix in _SERIES_SUFFIXES:
            family = family.removesuffix(suffix)
        if f"`{name}" not in documented and f"`{family}" not in documented:
            missing.append(name)
    assert missing == []
    assert {
        "ferroserve_feature_lookups_total",
        "ferroserve_feature_gather_seconds_total",
        "ferroserve_feature_snapshot_newest_event_timestamp_seconds",
        "ferroserve_drift_status",
        "ferroserve_drift_score",
        "ferroserve_feature_lookup_duration_seconds_bucket",
        "ferroserve_feature_redis_errors_total",
    } <= queried


@pytest.fixture()
def monitored_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """The demo's MLP, a model with looked-up features (`fraud`) and one whose view is in a
    redis-server started here (`scored`), metrics every 250 ms."""
    tool("prometheus")  # skip before starting anything where it is missing
    redis = RedisServer(redis_server_binary())
    redis.start()
    try:
        repository = write_demo_repository(tmp_path / "repository")
        add_features_model(repository, "fraud")
        add_drift_model(repository, "drifty")
        add_redis_features_model(repository, "scored", redis.url)
        log = tmp_path / "server.log"
        with ServerProcess(repository, log, ["--metrics-interval-ms", "250"]) as process:
            process.wait_ready()
            yield process
    finally:
        redis.stop()


def test_alert_rules_pass_promtool() -> None:
    result = subprocess.run(
        [tool("promtool"), "check", "rules", str(ALERTS)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {RULES} rules found" in result.stdout


class Prometheus:
    """A Prometheus server scraping one sidecar every second, with our alerting rules."""

    def __init__(self, workdir: Path, target: str) -> None:
        self.port = free_port()
        config = workdir / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            f"rule_files: ['{ALERTS}']\n"
            "scrape_configs:\n  - job_name: ferroserve\n"
            f"    static_configs: [{{targets: ['{target}']}}]\n"
        )
        binary = tool("prometheus")  # before opening the log: a skip must not leak the file
        self.log = (workdir / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        status, _, body = get(f"http://127.0.0.1:{self.port}/api/v1/{path}?{query}")
        answer = json.loads(body)
        assert status == 200 and answer["status"] == "success", answer
        return answer["data"]

    def __enter__(self) -> Prometheus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait(timeout=20)
        self.log.close()


def test_panels_and_alerts_evaluate_in_prometheus(
    monitored_server: ServerProcess, tmp_path: Path
) -> None:
    wait_for(lambda: scrape(monitored_server.metrics_url), "the sidecar")
    with (
        Prometheus(tmp_path, f"127.0.0.1:{monitored_server.metrics_port}") as prometheus,
        background_traffic(monitored_server, rows=2, invalid=True, pause_s=0.002),
        feature_traffic(monitored_server.url, "fraud", pause_s=0.005),
        drift_traffic(monitored_server.url, "drifty", shift=1.0, pause_s=0.005),
        feature_traffic(monitored_server.url, "scored", pause_s=0.005),
    ):

        def throughput_visible() -> bool:
            result = prometheus.api("query", query="sum(rate(ferroserve_requests_total[10s])) > 0")[
                "result"
            ]
            return bool(result)

        wait_for(throughput_visible, "Prometheus to see traffic", timeout_s=60, interval_s=0.5)
        time.sleep(3)  # a few more scrapes, so every rate window holds several samples
        empty = []
        for title, expr in panel_queries():
            result = prometheus.api("query", query=expr)["result"]
            if title in MUST_HAVE_DATA and not result:
                empty.append((title, expr))
        assert empty == []

        def rules_evaluated() -> list[dict[str, Any]] | None:
            groups = prometheus.api("rules", type="alert")["groups"]
            rules = [rule for group in groups for rule in group["rules"]]
            evaluated = all(rule.get("lastEvaluation", "").startswith("20") for rule in rules)
            return rules if rules and evaluated else None

        rules = wait_for(rules_evaluated, "every alerting rule to be evaluated", timeout_s=30)
        assert len(rules) == RULES
        for rule in rules:
            assert rule["health"] == "ok", rule

        def drift_pending() -> list[dict[str, Any]] | None:
            groups = prometheus.api("rules", type="alert")["groups"]
            rules = [rule for group in groups for rule in group["rules"]]
            states = {rule["name"]: rule["state"] for rule in rules}
            return rules if states["FerroserveModelDrift"] == "pending" else None

        # Half of the requests are invalid on purpose, and the drift model's rows are shifted by
        # one standard deviation: only those two alerts may be pending, and the drift one is
        # (it fires after 10 minutes of it).
        rules = wait_for(drift_pending, "FerroserveModelDrift pending", timeout_s=30)
        active = {rule["name"] for rule in rules if rule["state"] != "inactive"}
        assert active <= {"FerroserveInvalidRequests", "FerroserveModelDrift"}


# promtool's unit test of FerroserveModelDrift, one sample a minute:
# (instance, model, version, window, ferroserve_drift_status values).
DRIFT_SERIES = (
    ("a", "fraud", "1", "last_closed", "0x4 2x30"),  # drifts from minute 4, on one replica
    ("b", "fraud", "1", "last_closed", "0x34"),
    ("a", "scored", "1", "last_closed", "1x34"),  # in warning only
    ("a", "flaky", "1", "last_closed", "2 0" + " 2 0" * 16 + " 2"),  # every other window
    ("a", "quiet", "1", "current", "2x34"),  # the open window alone
    ("a", "reset", "1", "last_closed", "2x19 _x15"),  # reset at minute 20: no last closed window
)
# Minute -> the models FerroserveModelDrift fires for (after 10 minutes of drift).
DRIFT_FIRING = {9: [], 10: ["reset"], 16: ["fraud", "reset"], 30: ["fraud"]}


def drift_annotations(model: str) -> dict[str, str]:
    """FerroserveModelDrift's summary and description for `model` version 1, job ferroserve."""
    return {
        "summary": f"{model} v1: its traffic drifted from the reference data",
        "description": (
            f"In the last closed drift window of {model} version 1, at least drift_share of the "
            "judged input and output columns drifted from the reference dataset, for 10 "
            f"minutes. `ferroserve drift {model}` (with --server HOST:PORT of an instance of "
            "job ferroserve) lists the columns and their statistics; the sidecar's dashboard "
            "draws each column's histogram against the reference. Look for an upstream change "
            "first (a client, a feature pipeline, a unit or encoding) before retraining; once "
            f"handled, `ferroserve drift {model} --reset` restarts the windows."
        ),
    }


def test_the_drift_alert_fires_on_a_drifted_closed_window_only(tmp_path: Path) -> None:
    """promtool test rules: FerroserveModelDrift fires after 10 minutes of DRIFT in a version's
    last closed window (once per version, whichever replica), not before, not for a warning, a
    window that drifts every other time or the open window alone, and no more after a reset."""
    series = [
        {
            "series": f'ferroserve_drift_status{{job="ferroserve", instance="{instance}:8002", '
            f'model="{model}", version="{version}", window="{window}"}}',
            "values": values,
        }
        for instance, model, version, window, values in DRIFT_SERIES
    ]
    expectations = [
        {
            "eval_time": f"{minute}m",
            "alertname": "FerroserveModelDrift",
            "exp_alerts": [
                {
                    "exp_labels": {
                        "severity": "warning",
                        "job": "ferroserve",
                        "model": model,
                        "version": "1",
                    },
                    "exp_annotations": drift_annotations(model),
                }
                for model in models
            ],
        }
        for minute, models in DRIFT_FIRING.items()
    ]
    tests = tmp_path / "drift-alert-tests.yml"  # YAML: JSON is a subset of it
    tests.write_text(
        json.dumps(
            {
                "rule_files": [str(ALERTS)],
                "evaluation_interval": "1m",
                "tests": [
                    {"interval": "1m", "input_series": series, "alert_rule_test": expectations}
                ],
            },
            indent=2,
        )
    )
    result = subprocess.run(
        [tool("promtool"), "test", "rules", str(tests)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
