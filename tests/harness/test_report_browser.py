"""The HTML report opened in headless Chromium (Debian's chromium, driven over
the DevTools protocol): every image loads, the tables render, no console
errors; a missing image is caught."""

import pytest

from test_report import make_results
from usb4fabric import browser, cli
from usb4fabric.cli import main


@pytest.fixture(scope="module", autouse=True)
def chromium():
    if browser.find_chromium() is None:
        pytest.fail("chromium not found: scripts/setup.sh installs it", pytrace=False)


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser")
    res = make_results(tmp / "res", osu_title="usb4 osu_bench (OSU method) MPI Latency Test",
                       osu_version="0.1.0")
    out = tmp / "rep"
    assert main(["report", str(res), "--output", str(out), "--screenshot"]) == 0
    return out


def test_report_loads_in_chromium_with_a_screenshot(report_dir):
    seen = browser.check_page(report_dir / "report.html")
    assert seen.errors == [] and seen.ok
    assert len(seen.images) == 2 and all(i["width"] > 100 for i in seen.images)
    # summary, ratios, gaps, profiles (none: a paragraph), environment, measured, published
    assert len(seen.tables) >= 6 and min(seen.tables) >= 2
    shot = (report_dir / "screenshot.png").read_bytes()
    assert shot.startswith(b"\x89PNG") and len(shot) > 10_000


def test_missing_image_and_script_error_are_reported(report_dir, tmp_path):
    page = (report_dir / "report.html").read_text()
    start = page.index('src="data:image/svg+xml') + len('src="')
    end = page.index('"', start)
    broken = tmp_path / "report.html"
    broken.write_text(page[:start] + "latency-gone.png" + page[end:])
    seen = browser.check_page(broken)
    assert not seen.ok
    assert [i["src"] for i in seen.broken_images] == ["latency-gone.png"]
    assert any("latency-gone.png" in e for e in seen.errors), seen.errors
    # usb4bench report --screenshot's check fails the same way
    assert cli._check_in_browser(broken, tmp_path / "shot.png") == 1
    scripted = tmp_path / "script.html"
    scripted.write_text(page.replace("</body>", "<script>console.error('boom')</script></body>"))
    assert any("boom" in e for e in browser.check_page(scripted).errors)
