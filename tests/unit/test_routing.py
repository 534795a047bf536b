"""routing.json and its rules: aliases with history, rollback, the traffic policy's checks, the
routes built from it, and the atomic file that survives a restart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ferroserve.errors import (
    ConfigError,
    FailedPreconditionError,
    InvalidInputError,
    ModelNotFoundError,
)
from ferroserve.registry.routes import build_routes
from ferroserve.registry.routing import (
    MAX_HISTORY,
    ROUTING_FILE,
    Routing,
    Share,
    check_alias_name,
    read_routing,
    write_routing,
)


def test_aliases_keep_their_history_and_roll_back() -> None:
    routing = Routing().with_alias("production", 1).with_alias("production", 2)
    routing = routing.with_alias("production", 2).with_alias("production", 3)
    assert routing.aliases["production"].version == 3
    assert routing.aliases["production"].history == (1, 2)  # pointing at 2 again: no entry
    back = routing.rolled_back("production")
    assert (back.aliases["production"].version, back.aliases["production"].history) == (2, (1,))
    back = back.rolled_back("production")
    assert back.aliases["production"].version == 1
    with pytest.raises(FailedPreconditionError, match="no earlier target"):
        back.rolled_back("production")
    with pytest.raises(ModelNotFoundError, match=r"no alias 'canary' \(aliases: production\)"):
        back.rolled_back("canary")


def test_history_is_bounded() -> None:
    routing = Routing()
    for version in range(1, MAX_HISTORY + 10):
        routing = routing.with_alias("production", version)
    assert len(routing.aliases["production"].history) == MAX_HISTORY


@pytest.mark.parametrize("name", ["", "3", "1abc", "-x", "a/b", "a b", "x" * 65, "é"])
def test_bad_alias_names(name: str) -> None:
    with pytest.raises(InvalidInputError, match="starts with a letter"):
        check_alias_name(name)
    with pytest.raises(InvalidInputError):
        Routing().with_alias(name, 1)


def test_traffic_checks() -> None:
    routing = Routing().with_alias("production", 1).with_alias("canary", 2)
    good = routing.with_traffic(
        (Share("production", 90), Share("canary", 10)), (Share("canary", 5),)
    )
    assert good.needed_versions() == {1, 2}
    assert good.policy_text() == "production=90 canary=10 shadow canary=5"
    for split, shadows, error, words in [
        ((Share("production", 90), Share("canary", 20)), (), InvalidInputError, "sum to 110"),
        ((Share("production", 110), Share("canary", -10)), (), InvalidInputError, "0 to 100"),
        ((Share("production", 50), Share("production", 50)), (), InvalidInputError, "twice"),
        ((Share("staging", 100),), (), ModelNotFoundError, "no alias 'staging'"),
        ((), (Share("canary", 0),), InvalidInputError, "1-100"),
        ((Share("", 100),), (), InvalidInputError, "no target"),
    ]:
        with pytest.raises(error, match=words):
            routing.with_traffic(split, shadows)
    with pytest.raises(FailedPreconditionError, match="in the traffic policy"):
        good.without_alias("canary")
    assert "canary" not in good.with_traffic((), ()).without_alias("canary").aliases


def test_the_file_round_trips_and_is_replaced_atomically(tmp_path: Path) -> None:
    assert read_routing(tmp_path) == Routing()
    routing = (
        Routing()
        .with_alias("production", 1)
        .with_alias("production", 2)
        .with_alias("canary", 3)
        .with_traffic((Share("production", 80), Share("3", 20)), (Share("canary", 5),))
    )
    write_routing(tmp_path, routing)
    assert read_routing(tmp_path) == routing
    assert [p.name for p in tmp_path.iterdir()] == [ROUTING_FILE]  # no temporary left
    data = json.loads((tmp_path / ROUTING_FILE).read_text())
    assert data["aliases"]["production"]["history"] == [1]
    assert data["traffic"] == {"split": {"production": 80, "3": 20}, "shadow": {"canary": 5}}


@pytest.mark.parametrize(
    "text",
    [
        "{",
        '{"format": 2}',
        '{"format": 1, "aliases": {"production": {"version": "3"}}}',
        '{"format": 1, "traffic": {"split": {"production": 100}}}',
        '{"format": 1, "aliases": {"9": {"version": 3}}}',
    ],
)
def test_a_bad_file_is_a_config_error(tmp_path: Path, text: str) -> None:
    (tmp_path / ROUTING_FILE).write_text(text)
    with pytest.raises(ConfigError, match="not a valid routing file"):
        read_routing(tmp_path)


class Version:
    """Stands in for a ServedModel: build_routes only hands models around."""

    def __init__(self, number: int) -> None:
        self.version = number


def test_routes_follow_the_policy() -> None:
    ready: dict[int, object] = {v: Version(v) for v in (1, 2, 3)}
    latest = build_routes(ready, Routing())  # type: ignore[arg-type]
    assert latest is not None
    primary = latest.primary()
    assert primary is not None and primary.model is ready[3] and primary.alias == ""
    routing = Routing().with_alias("production", 1).with_alias("canary", 2)
    routes = build_routes(ready, routing)  # type: ignore[arg-type]
    assert routes is not None
    assert [(t.alias, t.percent) for t in routes.default] == [("production", 100)]
    named = routes.named("canary")
    assert named is not None and named.model is ready[2]
    assert routes.named("2") is not None and routes.named("7") is None
    assert routes.named("staging") is None
    split = routing.with_traffic((Share("production", 90), Share("3", 10)), (Share("canary", 5),))
    routes = build_routes(ready, split)  # type: ignore[arg-type]
    assert routes is not None
    chosen = [routes.choose(draw / 100) for draw in range(100)]
    assert sum(1 for t in chosen if t is not None and t.model is ready[1]) == 90
    assert sum(1 for t in chosen if t is not None and t.model is ready[3]) == 10
    assert [(t.alias, t.percent) for t in routes.shadows] == [("canary", 5)]
    # A target that is not ready gets nothing; the others share its traffic.
    del ready[3]
    routes = build_routes(ready, split)  # type: ignore[arg-type]
    assert routes is not None
    assert {routes.choose(d / 10).model for d in range(10)} == {ready[1]}  # type: ignore[union-attr]
