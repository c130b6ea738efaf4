"""The report page: self-contained HTML, every plot present, rendered in real headless Chromium."""

from __future__ import annotations

import importlib
import os
import re
import shutil
from pathlib import Path

import pytest

import rldata
from rldata.sharing import push, report
from tests.sharing.conftest import make_store

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PLOTS = [
    "plot-returns-over-time",
    "plot-returns-hist",
    "plot-lengths",
    "plot-ends",
    "plot-hist-observation",
    "plot-hist-action",
    "plot-hist-next-reward",
]


@pytest.fixture(scope="module")
def pendulum(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small Pendulum dataset recorded by a random policy (3 episodes)."""
    from rldata.envs import GymEnv

    path = tmp_path_factory.mktemp("report") / "pendulum"
    rldata.record(GymEnv("Pendulum-v1"), path, frames=600)
    return path


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is missing: .ci/run installs the distribution's package")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    return found


def test_report_is_self_contained(pendulum: Path, tmp_path: Path) -> None:
    out = report(pendulum, tmp_path / "r.html")
    page = Path(out).read_text()
    for pid in PLOTS:
        assert f'id="{pid}"' in page
    assert page.count('src="data:image/png;base64,') == len(PLOTS)
    assert not re.search(r"(src|href)=\"(?!data:)", page)  # nothing loaded from anywhere
    assert "<script" not in page and "<link" not in page and "@import" not in page
    assert "Histograms use all 600 rows." in page
    assert rldata.api.content_digest(rldata.open(pendulum)) in page
    assert "Pendulum-v1" in page and "observation" in page and "Bounded" in page
    assert 'id="stats"' in page and "<td>600</td>" in page  # recorded statistics: 600 rows
    with rldata.open(pendulum) as store:  # the recorded quantile sketch's median
        median = store.stats()["next.reward"]["quantiles"]["0.5"][0]
    assert "<th>p50</th>" in page and f"<td>{median:.4g}</td>" in page


def test_report_samples_large_stores_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = make_store(tmp_path / "s", [30, 30, 30])
    module = importlib.import_module("rldata.sharing.report")  # the package exports the function
    monkeypatch.setattr(module, "SAMPLE_ROWS", 50)
    page = Path(report(store, tmp_path / "r.html")).read_text()
    assert "uniform random sample of 50 of the 90 rows" in page


def test_report_of_a_store_at_a_url(tmp_path: Path) -> None:
    store = make_store(tmp_path / "s", [12, 8])
    push(store, "memory://report-url/s")
    page = Path(report("memory://report-url/s", tmp_path / "r.html")).read_text()
    assert "memory://report-url/s" in page and 'id="plot-returns-hist"' in page


def test_report_renders_in_headless_chromium(pendulum: Path, tmp_path: Path) -> None:
    """Every plot is in the DOM, loaded and visible; the page makes no request; not blank."""
    exe = _chromium()
    from PIL import Image, ImageStat
    from playwright.sync_api import sync_playwright

    out = Path(report(pendulum, tmp_path / "r.html"))
    shot = tmp_path / "shot.png"
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            page.on("request", lambda r: requests.append(r.url))
            page.goto(out.as_uri(), wait_until="load")
            for pid in PLOTS:
                img = page.locator(f"#{pid} img")
                assert img.count() == 1, pid
                img.scroll_into_view_if_needed()
                assert img.is_visible(), pid
                loaded = img.evaluate(
                    "e => e.complete && e.naturalWidth > 0 && e.naturalHeight > 0"
                )
                assert loaded, f"{pid} did not decode"
                box = img.bounding_box()
                assert box is not None and box["width"] > 100 and box["height"] > 50, pid
            assert page.locator("figure.plot").count() == len(PLOTS)
            assert "600" in page.locator("#card").inner_text()
            for sid in ("about", "load", "specs"):  # the new sections render, in view
                page.locator(f"#{sid}").scroll_into_view_if_needed()
                assert page.locator(f"#{sid}").is_visible(), sid
            assert f"rldata.load({str(pendulum)!r}" in page.locator("#load-python").inner_text()
            assert f"rldata info {pendulum}" in page.locator("#load-cli").inner_text()
            specs = page.locator("#specs").inner_text()
            assert "value in [-2, 2]" in specs and "1 unbounded float" in specs
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == []
    image = Image.open(shot).convert("L")
    assert image.size[0] >= 1300 and image.size[1] > 900
    stat = ImageStat.Stat(image)
    assert stat.stddev[0] > 20  # a blank page is one flat colour
    assert len(image.getcolors(maxcolors=1 << 16) or range(1 << 16)) > 50


def test_report_of_a_discrete_dataset_renders_its_sections_in_headless_chromium(
    tmp_path: Path,
) -> None:
    """CartPole (Discrete(2) actions stored as indices), with a description, author and
    license: the About section, the load snippet, bounds in words and the bar chart of
    action counts render (the chart decoded and sized), and the action has no histogram."""
    exe = _chromium()
    from playwright.sync_api import sync_playwright

    store = tmp_path / "cartpole"
    rldata.api.collect(
        "CartPole-v1",
        frames=300,
        out=str(store),
        seed=0,
        author=["Ada", "Bob"],
        description="Random CartPole.\n\nFor the report test.",
        license="CC-BY-4.0",
        code_link="https://example.org/code",
    )
    out = Path(report(store, tmp_path / "r.html"))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            page.goto(out.as_uri(), wait_until="load")
            about = page.locator("#about").inner_text()
            assert "Random CartPole." in about and "For the report test." in about
            assert "Ada, Bob" in about and "CC-BY-4.0" in about
            assert "https://example.org/code" in about
            assert page.locator("#description p").count() == 2  # one per paragraph
            assert "rldata.load(" in page.locator("#load-python").inner_text()
            assert page.locator("#load-cli").is_visible()
            specs = page.locator("#specs").inner_text()
            assert "integer in 0..1" in specs  # the action, in words
            assert "4 values, each in its own range" in specs  # the observation
            bars = page.locator("#plot-actions-action img")
            bars.scroll_into_view_if_needed()
            assert bars.is_visible()
            assert bars.evaluate("e => e.complete && e.naturalWidth > 0")
            box = bars.bounding_box()
            assert box is not None and box["width"] > 100 and box["height"] > 50
            caption = page.locator("#plot-actions-action figcaption").inner_text()
            assert "how often each action index was taken" in caption
            assert page.locator("#plot-hist-action").count() == 0
        finally:
            browser.close()
