"""The HTML report in a real headless Chromium: images load, filter/sort/pages/viewer work,
hostile strings from the data stay text. Skips when no Chromium is installed."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import cv2
import pytest
from viz_browser import Chromium, find_chromium

from rem_core.io import read_json
from rem_viz import compare_sets, comparison_report, load_annotation_set

HOSTILE = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">&amp;'
CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium not installed (apt-get install chromium, or set REM_CHROMIUM)",
)

WAIT_IMAGES = """
Promise.all([...document.querySelectorAll(SELECTOR)].map(async img => {
  img.scrollIntoView();
  if (!img.complete) await new Promise(r => { img.onload = img.onerror = r; });
  return img.naturalWidth;
}))
"""


def wait_images(browser, selector):
    return browser.evaluate(WAIT_IMAGES.replace("SELECTOR", json.dumps(selector)))


@pytest.fixture(scope="module")
def report(synth, tmp_path_factory):
    """A comparison report of the synthetic sample whose category 1 has a hostile name."""
    root = tmp_path_factory.mktemp("hostile")
    paths = {}
    for key in ("coarse", "exact"):
        data = read_json(getattr(synth, key))
        for cat in data["categories"]:
            if cat["id"] == 1:
                cat["name"] = HOSTILE
        paths[key] = root / f"{key}.json"
        paths[key].write_text(json.dumps(data))
    out = root / "report"
    a, b = load_annotation_set(paths["coarse"]), load_annotation_set(paths["exact"])
    comparison = compare_sets(
        a, b, image_dir=synth.image_dir, out_dir=out, names=(HOSTILE, "exact"), workers=1
    )
    page = comparison_report(comparison, out, title=f"report {HOSTILE}")
    expected = {}
    for name in {HOSTILE, *(c["name"] for c in read_json(paths["exact"])["categories"])}:
        ids = {c["id"] for c in read_json(paths["exact"])["categories"] if c["name"] == name}
        holders = {
            x["image_id"]
            for f in ("coarse", "exact")
            for x in read_json(paths[f])["annotations"]
            if x["category_id"] in ids
        }
        expected[name] = len(holders)
    drawn = sum(img.composite is not None for img in comparison.images)
    return {"page": page, "expected": expected, "drawn": drawn, "comparison": comparison}


def test_hostile_strings_are_escaped_in_the_file(report):
    text = report["page"].read_text()
    assert "<script>window.__pwned" not in text
    assert 'onerror="window' not in text
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in text  # <title> and <h1>


def test_report_in_chromium(report, tmp_path):
    page: Path = report["page"]
    with Chromium(CHROMIUM, width=1280, height=1000) as browser:
        browser.open(page.as_uri() + "#size=96")
        assert browser.evaluate("document.title") == f"report {HOSTILE}"
        assert browser.evaluate("typeof window.__pwned") == "undefined"
        options = browser.evaluate(
            "[...document.querySelectorAll('#category-filter option')].map(o => o.value)"
        )
        assert HOSTILE in options
        first_cells = browser.evaluate(
            "[...document.querySelectorAll('#summary-table tbody tr')].map(r => r.cells[0].textContent)"
        )
        assert HOSTILE in first_cells

        # Every card of the page is shown and every thumbnail decodes.
        n_cards = browser.evaluate("document.querySelectorAll('.card').length")
        assert n_cards == report["drawn"] > 0
        widths = wait_images(browser, ".card img")
        assert len(widths) == n_cards and min(widths) > 0

        # Default sort: biggest change first.
        keys = browser.evaluate("[...document.querySelectorAll('.card')].map(c => c.dataset.key)")
        data = json.loads(page.read_text().split('id="report-data">')[1].split("</script>")[0])
        change = {c["key"]: c["sort"]["change"] for c in data["cards"]}
        assert sorted(keys) == sorted(change)
        values = [change[k] for k in keys]
        assert values == sorted(values, reverse=True)

        # Filtering by each category shows exactly the images holding it.
        for name, count in report["expected"].items():
            shown = browser.evaluate(
                "(() => { const s = document.getElementById('category-filter');"
                f" s.value = {json.dumps(name)}; s.dispatchEvent(new Event('change'));"
                " return document.querySelectorAll('.card').length; })()"
            )
            assert shown == count, name
        browser.evaluate(
            "(() => { const s = document.getElementById('category-filter'); s.value = '';"
            " s.dispatchEvent(new Event('change')); })()"
        )

        # Pages of 12: the second page holds the rest.
        shown = browser.evaluate(
            "(() => { const s = document.getElementById('page-size'); s.value = '12';"
            " s.dispatchEvent(new Event('change'));"
            " return document.querySelectorAll('.card').length; })()"
        )
        assert shown == min(12, n_cards)
        if n_cards > 12:
            second = browser.evaluate(
                "(() => { document.querySelector('#pager-top .next').click();"
                " return document.querySelectorAll('.card').length; })()"
            )
            assert second == n_cards - 12
            assert "page=2" in browser.evaluate("location.hash")
            browser.evaluate("document.querySelector('#pager-top .prev').click()")

        # Click to enlarge: the viewer shows the full A | B | difference image.
        browser.evaluate("document.querySelector('.card button.thumb').click()")
        assert browser.evaluate("document.getElementById('viewer').hidden") is False
        width = wait_images(browser, "#viewer-image")[0]
        full = browser.evaluate("document.getElementById('viewer-image').getAttribute('src')")
        assert width == cv2.imread(str(page.parent / full)).shape[1]
        rows = browser.evaluate("document.querySelectorAll('#viewer-table tbody tr').length")
        assert rows > 0
        shot = browser.screenshot(tmp_path / "viewer.png")
        browser.evaluate("document.dispatchEvent(new KeyboardEvent('keydown', {key: 'Escape'}))")
        assert browser.evaluate("document.getElementById('viewer').hidden") is True

        browser.evaluate("window.scrollTo(0, 0)")
        gallery = browser.screenshot(tmp_path / "gallery.png")
        assert browser.console_errors() == []
        assert browser.evaluate("typeof window.__pwned") == "undefined"

    for path in (shot, gallery):
        image = cv2.imread(str(path))
        assert image is not None and image.shape[1] == 1280
        assert image.std() > 10  # not a blank page
    artifacts = os.environ.get("REM_TEST_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        for path in (shot, gallery):
            shutil.copy(path, Path(artifacts) / f"rem-viz-report-{path.name}")


def test_embedded_report_stands_alone(report, tmp_path):
    comparison = report["comparison"]
    src = report["page"].parent
    out = tmp_path / "copy"
    shutil.copytree(src, out)
    page = comparison_report(comparison, out, embed=True)
    alone = tmp_path / "alone"
    alone.mkdir()
    moved = alone / "report.html"  # without the image folders next to it
    shutil.copy(page, moved)
    with Chromium(CHROMIUM, width=1000, height=800) as browser:
        browser.open(moved.as_uri())
        widths = wait_images(browser, ".card img")
        assert widths and min(widths) > 0
        assert browser.console_errors() == []
