"""A real browser: JupyterLab on 127.0.0.1, headless Debian Chromium driven by Playwright.

Opens a copy of 01_quickstart.ipynb, runs all cells, drags the explorer's threshold slider and checks that
the rendered grid changed and that no error output appeared; hovers and clicks a head of the grid and checks
its name and details appear. Screenshots go to artifacts/browser/.
Every process started here is stopped (kernel sessions deleted, server terminated by PID).
"""

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "artifacts" / "browser"
pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _api(base, token, path, method="GET"):
    req = urllib.request.Request(f"{base}{path}", method=method, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        body = r.read()
    return json.loads(body) if body else None


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make browser-test` installs Debian's chromium package")
    work = tmp_path_factory.mktemp("lab")
    shutil.copy(ROOT / "notebooks" / "01_quickstart.ipynb", work / "01_quickstart.ipynb")
    settings = work / "settings"  # isolated user settings: render every cell, no news pop-up
    for plugin, values in {
        "notebook-extension/tracker": {"windowingMode": "none"},
        "apputils-extension/notification": {"fetchNews": "false"},
    }.items():
        path = settings / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    port, token = _free_port(), secrets.token_hex(16)
    log = open(work / "lab.log", "w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter",
            "lab",
            "--allow-root",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={port}",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={work}",
            "--ServerApp.open_browser=False",
            f"--LabApp.user_settings_dir={settings}",
            f"--LabApp.workspaces_dir={work / 'workspaces'}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                _api(base, token, "/api/status")
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("JupyterLab did not start: " + (work / "lab.log").read_text()[-500:])
        yield base, token
    finally:
        try:
            for session in _api(base, token, "/api/sessions") or []:
                _api(base, token, f"/api/sessions/{session['id']}", method="DELETE")
        except OSError:
            pass
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def _wait_for_kernel(page, base, token, timeout_s=120):
    """The notebook's kernel exists on the server, is idle, and the page's status bar says so."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        sessions = _api(base, token, "/api/sessions") or []
        if any(s["kernel"]["execution_state"] == "idle" for s in sessions):
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"no idle kernel after {timeout_s} s: {sessions}")
    page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=timeout_s * 1000)
    page.wait_for_timeout(1000)


def _wait_until_all_cells_ran(page, timeout_s):
    """Poll the cell prompts; fail at once on an error output, with a screenshot and the prompts on timeout."""
    # The saved notebook carries execution counts: clear them, so a number means "ran in this kernel".
    page.get_by_role("menuitem", name="Edit", exact=True).click()
    page.get_by_role("menuitem", name="Clear Outputs of All Cells", exact=True).click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].every(p => !/\\d/.test(p.textContent))",
        timeout=30_000,
    )
    deadline = time.monotonic() + timeout_s
    started, prompts = None, []
    while True:
        if started is None or (time.monotonic() - started > 20 and all(p.strip() == "[ ]:" for p in prompts)):
            # (Re)issue Run All: a request sent while the kernel connection is still settling can be dropped.
            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
            started = time.monotonic()
        prompts = page.locator(".jp-CodeCell .jp-InputPrompt").all_inner_texts()
        if prompts and all(re.search(r"\[\d+\]", p) for p in prompts):
            return
        errors = page.locator("[data-mime-type='application/vnd.jupyter.error']")
        if errors.count():
            page.screenshot(path=str(ARTIFACTS / "error.png"), full_page=True)
            pytest.fail("a cell raised: " + errors.first.inner_text()[-400:])
        if time.monotonic() > deadline:
            page.screenshot(path=str(ARTIFACTS / "timeout.png"), full_page=True)
            status = page.locator(".jp-Notebook-ExecutionIndicator").first.get_attribute("data-status")
            pytest.fail(
                f"cells not all run after {timeout_s:.0f} s: prompts {prompts}, kernel status {status}; "
                f"see {ARTIFACTS / 'timeout.png'}"
            )
        page.wait_for_timeout(2000)


GRID = "img.widget-image"  # the explorer's grid: an ipywidgets Image with ipyevents listening


def _grid_png(page, path):
    img = page.locator(GRID).first
    img.scroll_into_view_if_needed()
    img.screenshot(path=str(path))
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def test_quickstart_runs_and_the_slider_redraws_the_grid(lab):
    from playwright.sync_api import sync_playwright

    base, token = lab
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1100})
            page.goto(f"{base}/lab/tree/01_quickstart.ipynb?token={token}")
            page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=120_000)
            _wait_for_kernel(page, base, token)
            _wait_until_all_cells_ran(page, timeout_s=float(os.environ.get("HEADLAB_BROWSER_TIMEOUT", 540)))
            page.screenshot(path=str(ARTIFACTS / "notebook.png"), full_page=True)
            page.locator(GRID).first.wait_for(state="attached", timeout=60_000)
            before = _grid_png(page, ARTIFACTS / "grid_before.png")
            src_before = page.locator(GRID).first.get_attribute("src")

            handle = page.locator(".widget-slider .noUi-handle").first
            handle.scroll_into_view_if_needed()
            box = handle.bounding_box()
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.mouse.down()
            page.mouse.move(box["x"] + 140, box["y"] + box["height"] / 2, steps=8)
            page.mouse.up()
            # the kernel redraws on release; wait for the new PNG to replace the old one
            page.wait_for_function(
                "src => { const img = document.querySelector('img.widget-image');"
                " return img && img.complete && img.src !== src; }",
                arg=src_before,
                timeout=60_000,
            )
            after = _grid_png(page, ARTIFACTS / "grid_after.png")
            page.screenshot(path=str(ARTIFACTS / "explorer_after_slider.png"), full_page=True)

            assert before.shape == after.shape
            changed = np.abs(before - after).sum(-1) > 30
            assert changed.mean() > 0.01, f"only {changed.mean():.2%} of the grid's pixels changed"
            errors = page.locator(
                "[data-mime-type='application/vnd.jupyter.error'], "
                ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
            )
            assert errors.count() == 0, errors.first.inner_text()[:300]
            assert "⚠" not in page.locator(".jp-NotebookPanel").inner_text()
            # hover over the first panel names a head; a click there shows that head's details
            grid = page.locator(GRID).first
            box = grid.bounding_box()
            page.mouse.move(box["x"] + 0.15 * box["width"], box["y"] + 0.3 * box["height"])
            page.get_by_text("click for its attention pattern").wait_for(timeout=30_000)
            page.mouse.click(box["x"] + 0.15 * box["width"], box["y"] + 0.3 * box["height"])
            page.get_by_text(re.compile(r"L\d+\.H\d+ in Knowledge Recall: score")).wait_for(timeout=60_000)
            page.screenshot(path=str(ARTIFACTS / "explorer_after_click.png"), full_page=True)
            # the grid and the head-details pattern really decode in the browser
            widths = page.eval_on_selector_all(
                ".widget-output img, img.widget-image", "imgs => imgs.map(i => i.naturalWidth)"
            )
            assert len(widths) >= 2 and min(widths) > 0, f"undecodable widget images: natural widths {widths}"
        finally:
            browser.close()
