"""deploy/kubernetes: rendered by kustomize (kubectl's), every resource valid against Kubernetes'
schemas (1.27 and the newest) or its CRD's, strictly; the pieces agree with each other (probes,
ports, volumes, selectors, the autoscaler's metrics and prometheus-adapter's rules); the
PrometheusRule is the alert rules file; prometheus-adapter's queries compute the per-pod values
(promtool); and the containers' command lines run here: a server and a separate metrics sidecar
sharing a snapshot folder, probed on the health services the probes name."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from ferroserve._proto import health_pb2
from support import models as m
from support.commands import CommandServer, sidecar_process, with_flags
from support.manifests import DEPLOY, ROOT, container, kustomize, one, validation_errors
from support.repository import add_model
from support.server import free_port
from support.tls import Authority
from support.tools import tool

KUBERNETES = DEPLOY / "kubernetes"
ADAPTER_RULES = KUBERNETES / "prometheus-adapter" / "rules.yaml"
KUSTOMIZATIONS = ["base", "overlays/gpu", "overlays/s3", "overlays/tls"]


@pytest.fixture(scope="module", params=KUSTOMIZATIONS)
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return kustomize(KUBERNETES / request.param)


@pytest.fixture(scope="module")
def s3_overlay() -> list[dict[str, Any]]:
    return kustomize(KUBERNETES / "overlays/s3")


@pytest.fixture(scope="module")
def base() -> list[dict[str, Any]]:
    return kustomize(KUBERNETES / "base")


def pod_spec(resources: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = one(resources, "Deployment")["spec"]["template"]["spec"]
    return spec


def flag(args: list[str], name: str) -> str:
    values = [a.split("=", 1)[1] for a in args if a.startswith(f"{name}=")]
    assert len(values) == 1, f"{name}= once in {args}"
    return values[0]


def test_every_resource_is_valid(rendered: list[dict[str, Any]]) -> None:
    kinds = sorted(r["kind"] for r in rendered)
    common = [
        "Deployment",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "PrometheusRule",
        "Service",
        "Service",
        "ServiceAccount",
        "ServiceMonitor",
    ]
    # The shared volume's claim, except where each replica mirrors a bucket of its own.
    s3 = flag(container(pod_spec(rendered), "server")["args"], "--model-repository")
    claims = [] if s3.startswith("s3://") else ["PersistentVolumeClaim"]
    assert kinds == sorted(common + claims)
    errors = [e for resource in rendered for e in validation_errors(resource)]
    assert not errors, "\n".join(errors)


def test_validation_is_strict(base: list[dict[str, Any]]) -> None:
    # A misspelt field must fail, in a built-in kind and in a custom resource alike.
    deployment = copy.deepcopy(one(base, "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    assert any("livenesProbe" in e for e in validation_errors(deployment))
    monitor = copy.deepcopy(one(base, "ServiceMonitor"))
    monitor["spec"]["endpoints"][0]["intervall"] = "15s"
    assert any("intervall" in e for e in validation_errors(monitor))


def test_server_and_sidecar_share_the_snapshot_folder_and_processes(
    rendered: list[dict[str, Any]],
) -> None:
    spec = pod_spec(rendered)
    assert spec["shareProcessNamespace"] is True  # the sidecar's process_* metrics
    server, sidecar = container(spec, "server"), container(spec, "metrics")
    assert server["image"] == sidecar["image"]
    assert server["args"][0] == "serve" and "--no-metrics-sidecar" in server["args"]
    assert sidecar["args"][0] == "metrics-sidecar"
    folder = flag(server["args"], "--metrics-dir")
    assert flag(sidecar["args"], "--metrics-dir") == folder
    mounts = {
        c["name"]: {v["mountPath"]: v["name"] for v in c["volumeMounts"]} for c in (server, sidecar)
    }
    volume = mounts["server"][folder]
    assert mounts["metrics"][folder] == volume
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert "emptyDir" in volumes[volume]


def test_probes_ports_and_services_agree(rendered: list[dict[str, Any]]) -> None:
    spec = pod_spec(rendered)
    server, sidecar = container(spec, "server"), container(spec, "metrics")
    grpc_port = int(flag(server["args"], "--grpc-port"))
    assert {p["name"]: p["containerPort"] for p in server["ports"]} == {"grpc": grpc_port}
    metrics_port = int(flag(sidecar["args"], "--metrics-port"))
    assert {p["name"]: p["containerPort"] for p in sidecar["ports"]} == {"metrics": metrics_port}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        if "exec" in server[probe]:  # TLS: Kubernetes' grpc: probes speak no TLS
            command = server[probe]["exec"]["command"]
            assert "grpc" not in server[probe], probe
            assert command[:2] == ["ferroserve", "health"], probe
            assert command[command.index("--server") + 1] == f"127.0.0.1:{grpc_port}", probe
            assert ("--live" in command) == (probe != "readinessProbe"), probe
        else:
            assert server[probe]["grpc"]["port"] == grpc_port, probe
    if "grpc" in server["livenessProbe"]:
        assert server["livenessProbe"]["grpc"]["service"] == "ferroserve/live"
        assert server["readinessProbe"]["grpc"]["service"] == ""
    pod_labels = one(rendered, "Deployment")["spec"]["template"]["metadata"]["labels"]
    container_ports = {p["name"] for c in spec["containers"] for p in c.get("ports", [])}
    for service in (r for r in rendered if r["kind"] == "Service"):
        selector = service["spec"]["selector"]
        assert selector.items() <= pod_labels.items(), service["metadata"]["name"]
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in container_ports
    for selecting in ("PodDisruptionBudget",):
        labels = one(rendered, selecting)["spec"]["selector"]["matchLabels"]
        assert labels.items() <= pod_labels.items()


def test_the_service_monitor_scrapes_one_service_as_job_ferroserve(
    rendered: list[dict[str, Any]],
) -> None:
    monitor = one(rendered, "ServiceMonitor")["spec"]
    wanted = monitor["selector"]["matchLabels"]
    scraped = [
        s
        for s in rendered
        if s["kind"] == "Service" and wanted.items() <= s["metadata"]["labels"].items()
    ]
    assert [s["metadata"]["name"] for s in scraped] == ["ferroserve"]  # not the headless one too
    assert {e["port"] for e in monitor["endpoints"]} <= {
        p["name"] for p in scraped[0]["spec"]["ports"]
    }
    # The alert rules and dashboards expect job="ferroserve".
    assert scraped[0]["metadata"]["labels"][monitor["jobLabel"]] == "ferroserve"


def test_the_admin_token_comes_from_a_secret(rendered: list[dict[str, Any]]) -> None:
    spec = pod_spec(rendered)
    server = container(spec, "server")
    token = Path(flag(server["args"], "--admin-token-file"))
    mount = next(v for v in server["volumeMounts"] if v["mountPath"] == str(token.parent))
    assert mount["readOnly"] is True
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    assert volume["secret"]["secretName"] == "ferroserve-admin-token"
    assert token.name == "token"  # the Secret's key the docs tell users to create


def test_the_gpu_overlay_asks_for_a_gpu_and_the_cuda_image() -> None:
    spec = pod_spec(kustomize(KUBERNETES / "overlays/gpu"))
    server, sidecar = container(spec, "server"), container(spec, "metrics")
    assert server["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "nvidia.com/gpu" not in sidecar["resources"].get("limits", {})
    assert server["image"] == sidecar["image"] == "ferroserve:cuda"
    assert pod_spec(kustomize(KUBERNETES / "base"))["containers"][0]["image"] == "ferroserve:cpu"


def test_the_prometheus_rule_is_the_alert_rules_file() -> None:
    check = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gen_prometheusrule.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert check.returncode == 0, check.stderr
    rules = yaml.safe_load((DEPLOY / "prometheus" / "ferroserve-alerts.yml").read_text())
    generated = yaml.safe_load((KUBERNETES / "base" / "prometheusrule.yaml").read_text())
    assert generated["spec"]["groups"] == rules["groups"]


def _adapter_rules() -> dict[str, dict[str, Any]]:
    rules = yaml.safe_load(ADAPTER_RULES.read_text())["rules"]
    return {rule["name"]["as"]: rule for rule in rules}


def test_the_autoscaler_scales_on_metrics_the_adapter_provides(base: list[dict[str, Any]]) -> None:
    hpa = one(base, "HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"]["name"] == one(base, "Deployment")["metadata"]["name"]
    names = {metric["pods"]["metric"]["name"] for metric in hpa["metrics"]}
    assert names == set(_adapter_rules())


def _adapter_query(rule: dict[str, Any]) -> str:
    """The PromQL prometheus-adapter runs for one rule, for the pods of namespace `s`."""
    series = rule["seriesQuery"].split("{")[0].strip("'")
    query: str = rule["metricsQuery"]
    return (
        query.replace("<<.Series>>", series)
        .replace("<<.LabelMatchers>>", 'namespace="s"')
        .replace("<<.GroupBy>>", "pod")
    )


ADAPTER_TEST = """
rule_files: [adapter-rules.yaml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      # pod a: two models, 3 + 1 waiting; 600 requests/min queued 3 s in all per minute (5 ms each)
      - series: 'ferroserve_pending_requests{namespace="s",pod="a",model="m"}'
        values: '3x10'
      - series: 'ferroserve_pending_requests{namespace="s",pod="a",model="n"}'
        values: '1x10'
      - series: 'ferroserve_queue_duration_seconds_count{namespace="s",pod="a",model="m"}'
        values: '0+600x10'
      - series: 'ferroserve_queue_duration_seconds_sum{namespace="s",pod="a",model="m"}'
        values: '0+3x10'
      # pod b: idle
      - series: 'ferroserve_pending_requests{namespace="s",pod="b",model="m"}'
        values: '0x10'
      - series: 'ferroserve_queue_duration_seconds_count{namespace="s",pod="b",model="m"}'
        values: '0x10'
      - series: 'ferroserve_queue_duration_seconds_sum{namespace="s",pod="b",model="m"}'
        values: '0x10'
    promql_expr_test:
      - expr: adapter:ferroserve_pending_requests
        eval_time: 5m
        exp_samples:
          - labels: 'adapter:ferroserve_pending_requests{pod="a"}'
            value: 4
          - labels: 'adapter:ferroserve_pending_requests{pod="b"}'
            value: 0
      - expr: adapter:ferroserve_queue_seconds_per_request
        eval_time: 5m
        exp_samples:
          - labels: 'adapter:ferroserve_queue_seconds_per_request{pod="a"}'
            value: 0.005
          - labels: 'adapter:ferroserve_queue_seconds_per_request{pod="b"}'
            value: 0
"""


def test_the_adapter_queries_compute_per_pod_values(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is missing: `make system-deps` installs Debian's prometheus")
    recording = {
        "groups": [
            {
                "name": "adapter",
                "rules": [
                    {"record": f"adapter:{name}", "expr": _adapter_query(rule)}
                    for name, rule in _adapter_rules().items()
                ],
            }
        ]
    }
    (tmp_path / "adapter-rules.yaml").write_text(yaml.safe_dump(recording))
    (tmp_path / "adapter-test.yaml").write_text(ADAPTER_TEST)
    result = subprocess.run(
        [promtool, "test", "rules", "adapter-test.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _health(url: str, service: str) -> int:
    with grpc.insecure_channel(url) as channel:
        check = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        return int(check(health_pb2.HealthCheckRequest(service=service), timeout=10).status)


def test_the_containers_command_lines_run_here(base: list[dict[str, Any]], tmp_path: Path) -> None:
    spec = pod_spec(base)
    server, sidecar = container(spec, "server"), container(spec, "metrics")
    repository = tmp_path / "models"
    add_model(repository, "identity", m.identity_model("FP32", ["batch", 4]))
    snapshots = tmp_path / "metrics"
    token = tmp_path / "admin" / "token"
    token.parent.mkdir()
    token.write_text("s3cret\n")
    metrics_port = free_port()

    def server_argv(grpc_port: int, _metrics_port: int) -> list[str]:
        local = {
            "--model-repository": str(repository),
            "--host": "127.0.0.1",
            "--grpc-port": str(grpc_port),
            "--metrics-dir": str(snapshots),
            "--admin-token-file": str(token),
        }
        return with_flags(server["args"], local)

    sidecar_args = with_flags(
        sidecar["args"],
        {
            "--metrics-dir": str(snapshots),
            "--host": "127.0.0.1",
            "--metrics-port": str(metrics_port),
        },
    )
    with CommandServer(server_argv, repository, tmp_path / "server.log") as process:
        process.wait_ready()
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            service = server[probe]["grpc"]["service"]
            assert _health(process.url, service) == health_pb2.HealthCheckResponse.SERVING, probe
        # The adapter's series and the serving process's own metrics, read across processes
        # (the sidecar exports them once it has read a snapshot that lists the model).
        rules = _adapter_rules().values()
        wanted = [rule["seriesQuery"].split("{")[0].strip("'") for rule in rules]
        wanted += ["ferroserve_queue_duration_seconds_sum", "process_resident_memory_bytes"]
        with sidecar_process(sidecar_args, tmp_path / "sidecar.log", metrics_port) as url:
            deadline = time.monotonic() + 20
            while True:
                with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
                    exposition = response.read().decode()
                missing = [name for name in wanted if name not in exposition]
                if not missing or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        assert not missing, f"{missing} not exported:\n{exposition}"
        # The admin token file of the Secret guards the admin service.
        versions = [tool("ferroserve"), "versions", "--server", process.url]
        env = {k: v for k, v in os.environ.items() if k != "FERROSERVE_ADMIN_TOKEN_FILE"}
        denied = subprocess.run(
            versions, capture_output=True, text=True, timeout=30, check=False, env=env
        )
        assert denied.returncode == 1 and "UNAUTHENTICATED" in denied.stderr
        allowed = subprocess.run(
            [*versions, "--token-file", str(token)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            env=env,
        )
        assert allowed.returncode == 0, allowed.stderr
        assert "identity" in allowed.stdout


def test_the_documented_overlay_renders_valid(tmp_path: Path) -> None:
    # docs/deploying-kubernetes.md's overlay example, with its remote base as a local path.
    text = (ROOT / "docs" / "deploying-kubernetes.md").read_text()
    start = text.index("# my-overlay/kustomization.yaml")
    example = text[start : text.index("```", start)]
    overlay = tmp_path / "my-overlay"
    overlay.mkdir()
    base_line = next(line for line in example.splitlines() if line.startswith("resources:"))
    local = os.path.relpath(KUBERNETES / "overlays" / "gpu", overlay)
    (overlay / "kustomization.yaml").write_text(example.replace(base_line, f"resources: [{local}]"))
    rendered = kustomize(overlay)
    errors = [e for resource in rendered for e in validation_errors(resource)]
    assert not errors, "\n".join(errors)
    server = container(pod_spec(rendered), "server")
    assert server["args"][-1] == "--frontend-threads=2"
    assert server["image"] == "registry.example.com/ferroserve:0.1.0-cuda"
    claim = one(rendered, "PersistentVolumeClaim")
    assert claim["spec"]["storageClassName"] == "nfs-client"
    assert {r["metadata"].get("namespace") for r in rendered} == {"serving"}


def test_every_replica_polls_its_repository(rendered: list[dict[str, Any]]) -> None:
    args = container(pod_spec(rendered), "server")["args"]
    assert flag(args, "--model-control-mode") == "poll"
    assert float(flag(args, "--repository-poll-secs")) > 0


def test_the_s3_overlay_mirrors_the_bucket_into_a_volume_of_its_own(
    s3_overlay: list[dict[str, Any]],
) -> None:
    spec = pod_spec(s3_overlay)
    server = container(spec, "server")
    assert flag(server["args"], "--model-repository").startswith("s3://")
    cache = flag(server["args"], "--repository-cache")
    mount = next(v for v in server["volumeMounts"] if v["mountPath"] == cache)
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    assert set(volume) == {"name", "emptyDir"}
    assert server["envFrom"] == [{"secretRef": {"name": "ferroserve-s3"}}]
    # Apart from the repository, the overlay's args are the base's.
    base_args = container(pod_spec(kustomize(KUBERNETES / "base")), "server")["args"]
    repository_flags = ("--model-repository=", "--repository-cache=")
    assert [a for a in server["args"] if not a.startswith(repository_flags)] == [
        a for a in base_args if not a.startswith(repository_flags)
    ]


def test_the_s3_overlay_command_line_serves_a_bucket(
    s3_overlay: list[dict[str, Any]], tmp_path: Path
) -> None:
    from support.s3 import local_s3

    server = container(pod_spec(s3_overlay), "server")
    model_folder = tmp_path / "upload"
    add_model(model_folder, "identity", m.identity_model("FP32", ["batch", 4]))
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    with local_s3() as s3:
        s3.upload_tree(model_folder, "ferroserve")

        def argv(grpc_port: int, _metrics_port: int) -> list[str]:
            local = {
                "--model-repository": f"s3://{s3.bucket}/ferroserve",
                "--repository-cache": str(tmp_path / "mirror"),
                "--host": "127.0.0.1",
                "--grpc-port": str(grpc_port),
                "--metrics-dir": str(tmp_path / "metrics"),
                "--admin-token-file": str(token),
            }
            return with_flags(server["args"], local)

        env = {**os.environ, **s3.environment()}  # what the Secret `ferroserve-s3` provides
        with CommandServer(argv, tmp_path / "mirror", tmp_path / "server.log", env) as process:
            process.wait_ready()
            assert _health(process.url, "identity") == health_pb2.HealthCheckResponse.SERVING
        assert (tmp_path / "mirror" / "identity" / "1" / "model.onnx").exists()


def test_the_tls_overlay_serves_tls_and_its_probe_commands_pass(tmp_path: Path) -> None:
    """The TLS overlay's server command line, with the Secret's files made here for the
    Service's name only (as a cluster's certificate would be), serves TLS; each probe's
    command, with the container's environment, answers SERVING; without the server name the
    certificate does not match 127.0.0.1 and the probe fails."""
    spec = pod_spec(kustomize(KUBERNETES / "overlays/tls"))
    server = container(spec, "server")
    mounts = {v["name"]: v["mountPath"] for v in server["volumeMounts"]}
    secret = {v["name"]: v for v in spec["volumes"]}["tls"]["secret"]["secretName"]
    assert secret == "ferroserve-tls" and mounts["tls"] == "/etc/ferroserve/tls"
    env = {e["name"]: e["value"] for e in server["env"]}
    service_name = env["FERROSERVE_TLS_SERVER_NAME"]
    services = {
        s["metadata"]["name"]
        for s in kustomize(KUBERNETES / "overlays/tls")
        if s["kind"] == "Service"
    }
    assert service_name in services
    # The Secret's files, for the Service's DNS name only.
    authority = Authority.create("cluster CA")
    secret_dir = tmp_path / "tls"
    leaf = authority.issue(secret_dir, "tls", serial=3, dns_names=(service_name,), loopback=False)
    ca = authority.write(secret_dir / "ca.crt")
    here = {"/etc/ferroserve/tls/tls.crt": leaf.cert, "/etc/ferroserve/tls/tls.key": leaf.key,
            "/etc/ferroserve/tls/ca.crt": ca}  # fmt: skip
    assert flag(server["args"], "--grpc-server-cert") in here
    assert flag(server["args"], "--grpc-server-key") in here
    repository = tmp_path / "models"
    add_model(repository, "identity", m.identity_model("FP32", ["batch", 4]))
    token = tmp_path / "token"
    token.write_text("s3cret\n")

    def server_argv(grpc_port: int, _metrics_port: int) -> list[str]:
        local = {
            "--model-repository": str(repository),
            "--host": "127.0.0.1",
            "--grpc-port": str(grpc_port),
            "--metrics-dir": str(tmp_path / "metrics"),
            "--admin-token-file": str(token),
            "--grpc-server-cert": str(leaf.cert),
            "--grpc-server-key": str(leaf.key),
        }
        return with_flags(server["args"], local)

    options = {
        "ssl": True,
        "root_certificates": str(ca),
        "channel_args": [("grpc.ssl_target_name_override", service_name)],
    }
    probe_env = {**os.environ, **{k: str(here.get(v, v)) for k, v in env.items()}}
    with CommandServer(
        server_argv, repository, tmp_path / "server.log", client_options=options
    ) as process:
        process.wait_ready()
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            command = server[probe]["exec"]["command"]
            argv = [tool("ferroserve"), *with_flags(command[1:], {"--server": process.url})]
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=30, check=False, env=probe_env
            )
            assert done.returncode == 0 and "SERVING" in done.stdout, (probe, done.stdout)
        unnamed = {k: v for k, v in probe_env.items() if k != "FERROSERVE_TLS_SERVER_NAME"}
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=30, check=False, env=unnamed
        )
        assert done.returncode == 1, done.stdout
