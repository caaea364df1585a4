"""report.html opens in headless Chromium without console errors and shows the confusion matrix
(slow: starts a browser, may install Debian's chromium first)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from voxpop.reports.baselines import majority_baseline
from voxpop.reports.evaluation import ModelOutput, build_report
from voxpop.reports.render import write_report

pytestmark = [pytest.mark.slow, pytest.mark.needs_root]  # root installs chromium if absent

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--enable-logging=stderr",
    "--v=0",
]
# Runs first in <head>: records every error event (scripts and failed resources), then on load
# writes what it saw, and the confusion-matrix image's decoded size, onto <body>.
PROBE = """<script>
const seen = [];
window.addEventListener("error", e => seen.push(e.message || (e.target && e.target.tagName)), true);
window.addEventListener("load", () => {
  const img = document.getElementById("confusion_matrix");
  document.body.dataset.errors = String(seen.length);
  document.body.dataset.image = img ? `${img.complete}:${img.naturalWidth}x${img.naturalHeight}` : "none";
});
</script>"""


def chromium() -> str:
    """Path of a Chromium binary, installing Debian's package when root; else skip."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip(
            "chromium is not installed and this test may only install it as root with apt-get"
        )
    result = subprocess.run(
        ["apt-get", "install", "-y", "--no-install-recommends", "chromium"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if result.returncode != 0 or not shutil.which("chromium"):
        pytest.skip(f"could not install chromium with apt-get: {result.stderr.strip()[-300:]}")
    return shutil.which("chromium")


def small_report() -> dict:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 90)
    logits = rng.normal(size=(90, 3))
    logits[np.arange(90), y] += 1.5
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return build_report(
        y_true=y,
        labels=["negative", "neutral", "positive"],
        votes={"soft": ModelOutput(probs)},
        members={"m1": ModelOutput(probs)},
        baselines={"majority": majority_baseline(y, n_rows=90, n_classes=3)},
        texts=[f"text {i}" for i in range(90)],
        ids=[str(i) for i in range(90)],
        primary="soft",
    )


def test_report_html_renders_in_headless_chromium(tmp_path):
    browser = chromium()
    write_report(small_report(), tmp_path / "report", formats=["html"], title="browser check")
    html = (tmp_path / "report" / "report.html").read_text(encoding="utf-8")
    assert "<script" not in html  # the probe below is the only script on the page
    page = tmp_path / "probed.html"
    page.write_text(html.replace("<head>", "<head>" + PROBE, 1), encoding="utf-8")
    result = subprocess.run(
        [browser, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    body = re.search(r"<body[^>]*>", result.stdout).group(0)
    assert 'data-errors="0"' in body
    width, height = map(int, re.search(r'data-image="true:(\d+)x(\d+)"', body).groups())
    assert width > 100 and height > 100  # the embedded PNG decoded to a real picture
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []
