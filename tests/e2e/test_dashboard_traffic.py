"""The built-in dashboard's traffic section: a model with aliases, a 90/10 split and a shadow
shows each way in with the version it reached, its policy share and its requests, the shadow's
copies, and each version card names its aliases (drawn by headless Chromium, as users see it)."""

from __future__ import annotations

import json
import threading
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
from support.admin import CONFIG, MODEL, plus
from support.metrics import dashboard, wait_for
from support.repository import add_model
from support.server import ServerProcess

from e2e.test_dashboard import run_chromium

pytestmark = pytest.mark.timeout(180)

ROUTING = {
    "format": 1,
    "aliases": {
        "production": {"version": 1, "history": [], "updated": "2026-11-30T08:00:00Z"},
        "canary": {"version": 2, "history": [], "updated": "2026-11-30T08:00:00Z"},
        "next": {"version": 3, "history": [], "updated": "2026-11-30T08:00:00Z"},
    },
    "traffic": {"split": {"production": 90, "canary": 10}, "shadow": {"next": 50}},
}


class TrafficReader(HTMLParser):
    """The traffic section's tables (class -> rows of cell texts) and the alias badges of each
    version card (card id -> badge texts)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._table: str | None = None
        self._cell: list[str] | None = None
        self.badges: dict[str, list[str]] = {}
        self._card: str | None = None
        self._badge = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "section" and (attributes.get("id") or "").startswith("model-"):
            self._card = attributes["id"]
        if tag == "table" and attributes.get("class", "") in ("views routes", "views shadows"):
            self._table = (attributes["class"] or "").split()[-1]
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table:
            self._cell = []
        elif tag == "span" and attributes.get("class") == "alias" and self._card:
            self._badge = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table = None
        elif tag in ("td", "th") and self._table and self._cell is not None:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "span":
            self._badge = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._badge and self._card:
            self.badges.setdefault(self._card, []).append(data.strip())


def send(url: str, stop: threading.Event, sent: list[int]) -> None:
    client = triton_grpc.InferenceServerClient(url)
    x = triton_grpc.InferInput("INPUT0", [1, 4], "FP32")
    x.set_data_from_numpy(np.zeros((1, 4), np.float32))
    try:
        while not stop.is_set():
            client.infer(MODEL, [x])  # no version: the split policy draws one
            sent[0] += 1
    finally:
        client.close()


def test_the_dashboard_shows_traffic_per_alias_and_version(tmp_path: Path) -> None:
    repository = tmp_path / "repository"
    add_model(repository, MODEL, plus(1.0), CONFIG, versions=(1, 2, 3))
    (repository / MODEL / "routing.json").write_text(json.dumps(ROUTING))
    flags = ["--metrics-interval-ms", "250"]
    with ServerProcess(repository, tmp_path / "server.log", flags) as server:
        server.wait_ready()
        stop, sent = threading.Event(), [0]
        sender = threading.Thread(target=send, args=(server.url, stop, sent))
        sender.start()
        try:

            def routed() -> dict[str, Any] | None:
                fraud = dashboard(server.metrics_url).get("routing", {}).get(MODEL)
                if fraud is None:
                    return None
                rows = {row["target"]: row for row in fraud["rows"]}
                ok = (
                    rows.get("production", {}).get("total", 0) > 50
                    and rows.get("canary", {}).get("total", 0) > 0
                    and fraud["shadows"]
                    and fraud["shadows"][0]["copies"] > 0
                )
                return fraud if ok else None

            fraud = wait_for(routed, "production, canary and shadow traffic on the dashboard")
            page = run_chromium(server.metrics_url + "/", "--dump-dom", profile=tmp_path / "dom")
        finally:
            stop.set()
            sender.join()
    assert fraud["aliases"] == {"production": "1", "canary": "2", "next": "3"}
    reader = TrafficReader()
    reader.feed(page)
    routes = {row[0]: row for row in reader.tables["routes"][1:]}
    assert routes["production"][1:3] == ["1", "90 %"], routes
    assert routes["canary"][1:3] == ["2", "10 %"], routes
    production_total = float(routes["production"][4].replace(",", ""))
    canary_total = float(routes["canary"][4].replace(",", ""))
    # Roughly 90/10 (a few hundred draws at least).
    assert production_total > 3 * canary_total > 0, routes
    shadows = reader.tables["shadows"]
    assert shadows[1][0:2] == ["3", "50 %"], shadows
    assert float(shadows[1][3].replace(",", "")) > 0  # copies
    assert shadows[1][5] == "0"  # plus(1.0) everywhere: the shadow's answers match
    assert reader.badges[f"model-{MODEL}-1"] == ["production"]
    assert reader.badges[f"model-{MODEL}-2"] == ["canary"]
    assert reader.badges[f"model-{MODEL}-3"] == ["next"]
