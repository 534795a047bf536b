"""The traffic policy end to end, on the native front end and on the Python server: requests
without a version are split by weight between aliases and versions, a share of them is copied to
a shadow version whose answers are compared with the served ones and discarded, and both show
in the metrics (per alias and version, shadow mismatches and differences); bad policies change
nothing and say why; `ferroserve traffic` sets, shows and clears it."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

import grpc
import pytest
from ferroserve._proto import admin_pb2 as apb
from ferroserve.server.app import Server
from ferroserve.sidecar.exposition import SnapshotCollector
from ferroserve.sidecar.source import SnapshotSource
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry
from support.admin import CONFIG, MODEL, PYTHON_ENGINE, answer, plus, run_cli, tree
from support.inprocess import native_calls, python_calls, serve
from support.repository import add_model

pytestmark = pytest.mark.timeout(120)
REQUESTS = 600


def exported(server: Server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The sidecar's samples for the server's current snapshot."""
    assert server.recorder is not None
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(SnapshotSource(server.recorder.path.parent, 1.0)))
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def answers(url: str, count: int) -> Counter[tuple[float, str]]:
    """`count` requests without a version, 8 at a time: (value, model_version) -> requests."""
    seen: Counter[tuple[float, str]] = Counter()

    def batch(n: int) -> None:
        for _ in range(n):
            seen[answer(url)] += 1

    await asyncio.gather(*(asyncio.to_thread(batch, count // 8) for _ in range(8)))
    return seen


@pytest.mark.parametrize("engine", ["native", "python"])
def test_split_and_shadow(tmp_path: Path, engine: str) -> None:
    root = tmp_path / "models"
    add_model(root, MODEL, plus(1.0), CONFIG + (PYTHON_ENGINE if engine == "python" else ""))
    canary = tmp_path / "v2.onnx"
    canary.write_bytes(plus(2.0))

    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        url = f"127.0.0.1:{server.port}"

        def cli(*argv: str) -> tuple[int, str, str]:
            return run_cli(*argv, "--server", url)

        for argv in (
            ("alias", MODEL, "production", "1"),
            ("push", str(canary), "--model", MODEL, "--alias", "canary"),
        ):
            code, _, err = await asyncio.to_thread(cli, *argv)
            assert code == 0, err
        code, out, err = await asyncio.to_thread(
            cli, "traffic", MODEL, "production=70", "canary=30", "--shadow", "canary=50"
        )
        assert code == 0, err
        assert out.strip() == (
            f"{MODEL}: requests without a version go to production (version 1) 70%, canary "
            "(version 2) 30%; shadow copies to canary (version 2) 50%"
        )
        seen = await answers(url, REQUESTS)
        assert set(seen) == {(1.0, "1"), (2.0, "2")}, seen  # each response names its version
        # Binomial(600, 0.3): mean 180, sd 11.2; 5 sd either side.
        assert 124 <= seen[(2.0, "2")] <= 236, seen
        # Named requests do not follow the split.
        assert await asyncio.to_thread(answer, url, "production") == (1.0, "1")
        served = native_calls(server) if engine == "native" else python_calls(server)
        assert served.get("OK", 0) >= REQUESTS, (native_calls(server), python_calls(server))
        for _ in range(200):  # the copies finish after their requests' answers
            routing = server.routing.snapshot()
            shadows = {(m, v): rest for m, v, *rest in routing["shadows"]}
            sent, failed, mismatched, buckets, _ = shadows[(MODEL, "2")]
            if sum(buckets) + failed == sent:
                break
            await asyncio.sleep(0.01)
        # Only requests served by version 1 are copied (to 2): half of them.
        by_one = seen[(1.0, "1")]
        assert abs(sent - by_one / 2) <= 5 * (by_one * 0.25) ** 0.5, (sent, by_one)
        assert failed == 0 and mismatched == sent  # +1 and +2 differ by exactly 1
        assert buckets[8] == sent  # the "<= 1" bucket (0, 1e-7, ..., 0.1, 1)
        routed = {(alias, v): n for m, alias, v, n in routing["served"] if m == MODEL}
        assert routed[("production", "1")] == seen[(1.0, "1")] + 1
        assert routed[("canary", "2")] == seen[(2.0, "2")]
        # The same through the sidecar's exposition.
        assert server.recorder is not None
        await server.recorder.write_now()
        samples = exported(server)
        key = (("alias", "canary"), ("model", MODEL), ("version", "2"))
        assert samples[("ferroserve_routed_requests_total", key)] == seen[(2.0, "2")]
        shadow = (("model", MODEL), ("version", "2"))
        assert samples[("ferroserve_shadow_requests_total", shadow)] == sent
        assert samples[("ferroserve_shadow_mismatches_total", shadow)] == sent
        bucket = (("le", "1.0"), ("model", MODEL), ("version", "2"))
        assert samples[("ferroserve_shadow_max_abs_difference_bucket", bucket)] == sent
        share = (("kind", "split"), ("model", MODEL), ("target", "canary"), ("version", "2"))
        assert samples[("ferroserve_traffic_percent", share)] == 30
        alias = (("alias", "production"), ("model", MODEL))
        assert samples[("ferroserve_alias_version", alias)] == 1
        # Clearing the policy: production takes everything again.
        code, out, err = await asyncio.to_thread(cli, "traffic", MODEL, "--clear")
        assert code == 0 and "go to production (version 1)" in out, err
        assert set(await answers(url, 16)) == {(1.0, "1")}

    serve(root, scenario)


def test_version_targets_and_a_policy_that_survives_a_restart(tmp_path: Path) -> None:
    root = tmp_path / "models"
    add_model(root, MODEL, plus(1.0), CONFIG)
    for version in (2, 3):
        add_model(root, MODEL, plus(float(version)), versions=(version,))

    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        url = f"127.0.0.1:{server.port}"
        code, _, err = await asyncio.to_thread(
            run_cli, "traffic", MODEL, "1=50", "02=50", "--server", url
        )
        assert code == 0, err
        assert set(await answers(url, 64)) == {(1.0, "1"), (2.0, "2")}
        code, out, err = await asyncio.to_thread(run_cli, "traffic", MODEL, "--server", url)
        assert code == 0 and "go to 1 50%, 2 50%" in out, err
        # Versions in the policy cannot be unloaded.
        code, _, err = await asyncio.to_thread(
            run_cli, "unload", MODEL, "--version", "2", "--server", url
        )
        assert code == 1 and "serves the traffic policy (1=50 2=50)" in err, err

    serve(root, scenario)

    async def restarted(server: Server, channel: grpc.aio.Channel) -> None:
        url = f"127.0.0.1:{server.port}"
        assert set(await answers(url, 64)) == {(1.0, "1"), (2.0, "2")}
        assert server.registry.version_states(MODEL)[3].state.value == "READY"  # latest 1

    serve(root, restarted)


def test_bad_policies_change_nothing(tmp_path: Path) -> None:
    root = tmp_path / "models"
    add_model(root, MODEL, plus(1.0), CONFIG, versions=(1, 2))

    async def scenario(server: Server, channel: grpc.aio.Channel) -> None:
        url = f"127.0.0.1:{server.port}"
        for argv in (("alias", MODEL, "production", "1"), ("alias", MODEL, "canary", "2")):
            code, _, err = await asyncio.to_thread(run_cli, *argv, "--server", url)
            assert code == 0, err
        code, _, err = await asyncio.to_thread(
            run_cli, "traffic", MODEL, "production=90", "canary=10", "--server", url
        )
        assert code == 0, err
        before = tree(root)
        share = apb.TrafficShare
        cases = [
            (
                [share(target="production", percent=110), share(target="canary", percent=-10)],
                [],
                grpc.StatusCode.INVALID_ARGUMENT,
                "not a whole percentage from 0 to 100",
            ),
            (
                [share(target="production", percent=90), share(target="canary", percent=20)],
                [],
                grpc.StatusCode.INVALID_ARGUMENT,
                "sum to 110, not 100",
            ),
            (
                [share(target="staging", percent=100)],
                [],
                grpc.StatusCode.NOT_FOUND,
                "no alias 'staging' (aliases: canary, production)",
            ),
            ([share(target="7", percent=100)], [], grpc.StatusCode.NOT_FOUND, "no version 7"),
            (
                [share(target="canary", percent=50), share(target="canary", percent=50)],
                [],
                grpc.StatusCode.INVALID_ARGUMENT,
                "names 'canary' twice",
            ),
            (
                [],
                [share(target="canary", percent=0)],
                grpc.StatusCode.INVALID_ARGUMENT,
                "mirror 1-100 percent",
            ),
            (
                [share(target="../x", percent=100)],
                [],
                grpc.StatusCode.INVALID_ARGUMENT,
                "starts with a letter",
            ),
        ]
        set_traffic = channel.unary_unary(
            "/ferroserve.admin.v1.AdminService/SetTraffic",
            request_serializer=apb.SetTrafficRequest.SerializeToString,
            response_deserializer=apb.SetTrafficResponse.FromString,
        )
        for split, shadow, code, words in cases:
            with pytest.raises(grpc.aio.AioRpcError) as failure:
                await set_traffic(apb.SetTrafficRequest(model=MODEL, split=split, shadow=shadow))
            assert failure.value.code() is code, (split, shadow, failure.value.details())
            assert words in (failure.value.details() or ""), failure.value.details()
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await set_traffic(apb.SetTrafficRequest(model="a/b"))
        assert failure.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        code, _, err = await asyncio.to_thread(
            run_cli, "alias", MODEL, "canary", "--delete", "--server", url
        )
        assert code == 1 and "FAILED_PRECONDITION" in err and "in the traffic policy" in err, err
        code, _, err = await asyncio.to_thread(
            run_cli, "traffic", MODEL, "production:90", "--server", url
        )
        assert code == 2 and "is not TARGET=PERCENT" in err, err
        assert tree(root) == before
        listed = await asyncio.to_thread(run_cli, "versions", MODEL, "--json", "--server", url)
        split = json.loads(listed[1])["models"][0]["routing"]["split"]
        assert [(s["target"], s["percent"]) for s in split] == [("production", 90), ("canary", 10)]

    serve(root, scenario)
