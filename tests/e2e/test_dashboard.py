"""The sidecar's built-in dashboard in real headless Chromium (Debian's `chromium`, installed by
`make test`): after traffic, the page's JavaScript has drawn every chart with data points and
shows the model's live figures. The screenshot is kept in test-artifacts/ (or
$FERROSERVE_TEST_ARTIFACTS) for a human to look at."""

from __future__ import annotations

import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from support.metrics import background_traffic, dashboard, wait_for
from support.server import ServerProcess

pytestmark = pytest.mark.timeout(180)

CHARTS = ("throughput", "latency", "errors", "batch")
ARTIFACTS = Path(
    os.environ.get(
        "FERROSERVE_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"
    )
)


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: `make test` installs Debian's chromium package")
        pytest.skip("chromium is not installed (Debian: apt-get install chromium)")
    return found


class PageReader(HTMLParser):
    """Collects the chart canvases' data-points and the figures' texts of one model card."""

    def __init__(self, card_id: str) -> None:
        super().__init__()
        self.card_id = card_id
        self.depth = 0  # > 0 while inside the card's <section>
        self.points: dict[str, int] = {}
        self.figures: dict[str, str] = {}
        self._figure: str | None = None
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "section" and attributes.get("id") == self.card_id:
            self.depth = 1
        elif self.depth:
            if tag == "section":
                self.depth += 1
            if tag == "canvas":
                self.points[attributes["data-chart"] or ""] = int(
                    attributes.get("data-points") or 0
                )
            if tag == "div" and "data-figure" in attributes:
                self._figure = attributes["data-figure"]
            elif tag == "div" and attributes.get("class") == "value" and self._figure:
                self.figures[self._figure] = ""

    def handle_endtag(self, tag: str) -> None:
        if self.depth and tag == "section":
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if not self.depth:
            return
        self.text.append(data)
        if self._figure is not None and self._figure in self.figures and data.strip():
            self.figures[self._figure] = data.strip()
            self._figure = None


def number(text: str) -> float:
    return float(text.replace(",", ""))


def run_chromium(url: str, *args: str, profile: Path) -> str:
    result = subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",  # tests run as root in CI containers
            "--disable-gpu",
            "--disable-dev-shm-usage",
            f"--user-data-dir={profile}",
            "--window-size=1280,1000",
            # Virtual time lets the page's timers (its 2 s refresh) run without waiting.
            "--virtual-time-budget=6000",
            *args,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_dashboard_shows_live_charts_after_traffic(
    demo_server: ServerProcess, tmp_path: Path
) -> None:
    with background_traffic(demo_server, invalid=True):

        def has_series() -> bool:
            rows = dashboard(demo_server.metrics_url)["models"]
            return any(len(r.get("series", {}).get("t", [])) >= 3 for r in rows)

        wait_for(has_series, "three dashboard samples with traffic")
        page = run_chromium(demo_server.metrics_url + "/", "--dump-dom", profile=tmp_path / "dom")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        screenshot = ARTIFACTS / "dashboard.png"
        run_chromium(
            demo_server.metrics_url + "/", f"--screenshot={screenshot}", profile=tmp_path / "shot"
        )

    reader = PageReader("model-mlp-1")
    reader.feed(page)
    assert reader.points, f"no card for mlp version 1 in the page:\n{page[:3000]}"
    for chart in CHARTS:
        assert reader.points.get(chart, 0) > 0, (chart, reader.points)
    assert "READY on CPUExecutionProvider" in "".join(reader.text)
    assert number(reader.figures["throughput"]) > 0
    assert number(reader.figures["requests"]) > 0
    assert number(reader.figures["failures"]) > 0  # the invalid requests
    assert number(reader.figures["errors"]) > 0
    assert 0 < number(reader.figures["p50"]) <= number(reader.figures["p99"])
    assert screenshot.stat().st_size > 10_000
    print(f"dashboard screenshot: {screenshot}")
