"""The HTML report as a person sees it: headless Chromium renders the page from disk and takes
a screenshot (optional: skipped where Chromium is not installed).

Chromium comes from the system packages (``apt-get install chromium``); the test never installs
it (a browser install inside a test run would cost CI minutes and depend on the network).
``POLYTUNE_SCREENSHOT=path.png`` keeps the screenshot (the README's comes from the bundled
examples/random.yaml group this way: see the README).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from synthetic_groups import make_group
from test_review import needs_matplotlib, png_size

from polytune.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.optional, needs_matplotlib]

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _find() -> str | None:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def chromium() -> str:
    path = _find()
    if path is None:
        pytest.skip("headless Chromium is not installed (apt-get install chromium)")
    return path


def screenshot(browser: str, page: Path, out: Path, width: int = 1200, height: int = 2600) -> None:
    proc = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--disable-extensions",
            f"--user-data-dir={out.parent / 'chromium-profile'}",
            f"--window-size={width},{height}",
            f"--screenshot={out}",
            page.absolute().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.is_file(), proc.stdout + proc.stderr


def test_screenshot_of_the_report(chromium: str, tmp_path: Path) -> None:
    from PIL import Image

    make_group(tmp_path, "shot", n=40, failed_every=9, stopped_every=7, seed=2)
    result = CliRunner().invoke(main, ["report", "shot", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    page = tmp_path / "shot" / "report" / "index.html"
    out = tmp_path / "screenshot.png"
    screenshot(chromium, page, out)
    assert png_size(out) == (1200, 2600)
    with Image.open(out) as image:
        rgb = image.convert("RGB")
        # the figures were loaded and drawn: a blank page or broken-image icons have few colours
        colors = rgb.getcolors(maxcolors=1 << 20) or []
        assert len(colors) > 500, len(colors)
        # the first figure sits below the summary table: its area is not background only
        band = rgb.crop((60, 520, 1100, 900)).getcolors(maxcolors=1 << 20) or []
        assert len(band) > 50, len(band)
    keep = os.environ.get("POLYTUNE_SCREENSHOT")
    if keep:
        shutil.copyfile(out, keep)
