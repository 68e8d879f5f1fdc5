"""A real browser: JupyterLab on 127.0.0.1, headless Debian Chromium driven by Playwright.

1. ``01_quickstart.ipynb`` runs in full; its explorer draws, answers hover and shows a clicked head.
2. An explorer notebook on the embedded model, at 1400×1000 and at 1000×800: every control is driven and its
   result asserted — colour scale sign, plain-word title and default 99th-percentile clip, the legend line in
   words, chips all/none, threshold with its range and unit, top-k / elbow by s and |s|, CI dots, compare with
   a map not computed yet (map A stays in the menu and on the grid, B arrives beside it) side by side and as a
   difference, the prompt picker, readouts cleared after a switch, redraw ≤ 150 ms median in the browser
   (``performance.now()`` from the action to the drawn canvas), legibility (the canvas as wide as the output,
   nothing clipped). Then a compare with a long job: asked first, run, cancelled within a second, and the state
   is the one from before (no compare, map A alone); and a faithfulness curve asked first (the notebook's last
   cell lowers ``jobs.ASK_ABOVE_S`` to 1 s, so that a curve of the embedded model asks), its live counter of
   masked passes, cancelled.
3. Synthetic maps of the seed figures' shapes (32 × 32, 48 × 32, 28 × 24) and of 80 × 64 at both sizes: canvas
   within its output, cells ≥ 5 px, hover on the right head in the corners and middle of the first and last
   panels, the redraw time per shape printed (p90 from the pick to the drawn canvas, and of the drawing alone,
   which must stay ≤ 50 ms at 32 × 32).
4. A page from ``save_html`` opens offline (every network request refused) with hover working.

Screenshots and measured latencies go to artifacts/browser/. Every process started here is stopped (kernel
sessions deleted, server terminated by PID).
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
from statistics import median

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
    (work / "explorer_check.ipynb").write_text(json.dumps(EXPLORER_NOTEBOOK))
    (work / "shapes.ipynb").write_text(json.dumps(notebook(SHAPE_CELLS)))
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


EXPLORER_CELLS = [
    "import headlab\nfrom headlab.tasks import builtin\n\nmodel = headlab.load_model()\ntasks = builtin()",
    # the second map is computed here, so that the explorer's compare finds it in the disk cache
    'scores = headlab.score(model, tasks, method="attribution", progress=False)\n'
    'zero = headlab.score(model, tasks, method="attribution", ablation="zero", progress=False)',
    'ex = headlab.explorer(models={"smollm2": model}, tasks=tasks, scores=scores)\nex',
    "from headlab.viz.explorer import jobs\n\njobs.ASK_ABOVE_S = 1.0  # every job over a second asks: the test sees it",
]


def notebook(cells):
    return {
        "cells": [
            {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": src}
            for src in cells
        ],
        "metadata": {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


EXPLORER_NOTEBOOK = notebook(EXPLORER_CELLS)
# The seed figures' shapes (Llama-3.1-8B, Yi-1.5-9B, Llama-3.2-3B) and NDIF's Llama-3.1-70B, as synthetic maps:
# heavy-tailed signed scores over 6 items, top 10 selected, CI dots on.
SHAPES = ((32, 32), (48, 32), (28, 24), (80, 64))
SHAPE_CELLS = [
    "import numpy as np\nimport headlab\nfrom headlab.models import ModelInfo\n"
    "from headlab.results import HeadScores\nfrom headlab.tasks import TASK_NAMES\n\n\n"
    "def show(L, H, seed=0):\n"
    "    items = np.random.default_rng(seed).standard_t(2, (8, 6, L, H)) * 0.1\n"
    "    info = ModelInfo(f'synthetic-{L}x{H}', L, H, H, 64, 64 * H, 1000)\n"
    "    params = {'ablation': 'resample', 'metric': 'logit_diff'}\n"
    "    scores = HeadScores(items.mean(1), list(TASK_NAMES), info, 'attribution', params, [6] * 8, [1.0] * 8, items)\n"
    "    ex = headlab.explorer(models={f'synthetic {L}x{H}': lambda: None}, scores=scores)\n"
    "    ex.state.select, ex.state.ci = 'top_k', True\n"
    "    return ex",
    *[f"show({L}, {H})" for L, H in SHAPES],
    # the floor under every redraw: a value sent to the kernel and echoed back by a widget, nothing drawn
    "import ipywidgets as W\n\n"
    "ping, pong = W.IntText(0, continuous_update=True), W.IntText(0)\n"
    "ping.observe(lambda change: setattr(pong, 'value', change['new']), 'value')\n"
    "ping.add_class('hl-ping')\n"
    "pong.add_class('hl-pong')\n"
    "W.HBox([ping, pong])",
]
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT_EL = "() => document.querySelector('.hl-root').parentElement"
# JS: run an action on the page and resolve with the ms from it to the canvas's next draw
TIMED = """async ([kind, arg, value]) => {
  const el = document.querySelector('.hl-root').parentElement;
  const before = Number(el.dataset.draws || 0);
  const t0 = performance.now();
  if (kind === 'button') {
    [...document.querySelectorAll('button')].find(b => b.textContent.trim() === arg).click();
  } else if (kind === 'select') {
    const box = [...document.querySelectorAll('.widget-dropdown')]
      .find(d => d.querySelector('label')?.textContent === arg);
    const select = box.querySelector('select');
    const option = [...select.options].find(o => o.textContent.replace(/\u00a0/g, ' ').trim() === value);
    if (!option) throw new Error(`no option ${value} in ${[...select.options].map(o => o.textContent)}`);
    select.value = option.value;
    select.dispatchEvent(new Event('change', { bubbles: true }));
  }
  while (Number(el.dataset.draws || 0) <= before) await new Promise(r => requestAnimationFrame(r));
  return Number(el.dataset.drawnAt) - t0;
}"""


def _root(page):
    return page.evaluate_handle(ROOT_EL)


def _data(page, key):
    return page.evaluate(f"() => document.querySelector('.hl-root').parentElement.dataset.{key} || ''")


def _draws(page):
    return int(_data(page, "draws") or 0)


def _wait_redraw(page, before, timeout=60_000):
    page.wait_for_function(
        "n => Number(document.querySelector('.hl-root').parentElement.dataset.draws || 0) > n",
        arg=before,
        timeout=timeout,
    )


def _button(page, name):
    return page.locator("button", has_text=re.compile(rf"^\s*{re.escape(name)}\s*$")).first


def _dropdown(page, label):
    return page.locator(".widget-dropdown", has_text=label).locator("select").first


def _select(page, label, option):
    """Pick ``option`` (its text; ipywidgets writes spaces as no-break spaces) in the dropdown ``label``."""
    page.evaluate(
        """([label, value]) => {
          const box = [...document.querySelectorAll('.widget-dropdown')]
            .find(d => d.querySelector('label')?.textContent === label);
          const select = box.querySelector('select');
          const option = [...select.options].find(o => o.textContent.replace(/\u00a0/g, ' ').trim() === value);
          if (!option) throw new Error(`no option ${value} in ${label}`);
          select.value = option.value;
          select.dispatchEvent(new Event('change', { bubbles: true }));
        }""",
        [label, option],
    )


def _selected(page, label):
    return page.evaluate(
        """label => { const box = [...document.querySelectorAll('.widget-dropdown')]
          .find(d => d.querySelector('label')?.textContent === label);
          const s = box.querySelector('select'); return s.options[s.selectedIndex].textContent.replace(/\u00a0/g, ' ');
        }""",
        label,
    )


def _cell_centre(page, panel, layer, head):
    """Page coordinates of one head's cell, from what the canvas drew (scrolled into view first)."""
    page.evaluate("() => document.querySelector('.hl-root canvas').scrollIntoView({block: 'start'})")
    page.wait_for_timeout(200)
    box = page.locator(".hl-root canvas").first.bounding_box()
    b = page.evaluate(
        "([i]) => { const s = document.querySelector('.hl-root').parentElement.headlabState;"
        " const b = s.layout.boxes[i], p = s.spec.panels[i];"
        " return {x: b.x, y: b.y, w: b.w, h: b.h, L: p.L, H: p.H}; }",
        [panel],
    )
    return box["x"] + b["x"] + (head + 0.5) * b["w"] / b["H"], box["y"] + b["y"] + (layer + 0.5) * b["h"] / b["L"]


def _pixel(page, x, y):
    """The canvas's RGB at page coordinates (x, y)."""
    return page.evaluate(
        "([x, y]) => { const c = document.querySelector('.hl-root canvas'); const r = c.getBoundingClientRect();"
        " const d = c.width / r.width; const p = c.getContext('2d').getImageData(Math.floor((x - r.left) * d),"
        " Math.floor((y - r.top) * d), 1, 1).data; return [p[0], p[1], p[2]]; }",
        [x, y],
    )


def _no_errors(page):
    errors = page.locator(
        "[data-mime-type='application/vnd.jupyter.error'], "
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
    )
    assert errors.count() == 0, errors.first.inner_text()[:300]


def _error_line(page):
    return page.locator(".widget-html", has_text="⚠").all_inner_texts()


def _open(pw, base, token, notebook, size):
    browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=BROWSER_ARGS)
    page = browser.new_page(viewport={"width": size[0], "height": size[1]})
    # a workspace of its own: the layout saved by an earlier test (its notebook open too) stays out of it
    page.goto(f"{base}/lab/workspaces/{Path(notebook).stem}/tree/{notebook}?reset&token={token}")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=120_000)
    _wait_for_kernel(page, base, token)
    return browser, page


def test_quickstart_runs_and_its_explorer_answers(lab):
    from playwright.sync_api import sync_playwright

    base, token = lab
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser, page = _open(pw, base, token, "01_quickstart.ipynb", (1400, 1000))
        try:
            _wait_until_all_cells_ran(page, timeout_s=float(os.environ.get("HEADLAB_BROWSER_TIMEOUT", 540)))
            page.locator(".hl-root canvas").first.wait_for(state="visible", timeout=60_000)
            page.wait_for_function("() => Number(document.querySelector('.hl-root').parentElement.dataset.draws) > 0")
            page.locator(".hl-root").first.scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "quickstart.png"), full_page=True)
            _no_errors(page)
            assert len(_data(page, "panels").split(" | ")) == 8
            x, y = _cell_centre(page, 0, 20, 3)
            page.mouse.move(x, y)
            readout = page.locator(".hl-readout").first
            assert re.match(r"L20\.H3 · Knowledge Recall: score ", readout.inner_text())
            page.mouse.click(x, y)
            page.get_by_text(re.compile(r"L20\.H3 in Knowledge Recall · attribution · resample")).wait_for(
                timeout=60_000
            )
            widths = page.eval_on_selector_all(".widget-output img", "imgs => imgs.map(i => i.naturalWidth)")
            assert widths and min(widths) > 0, f"undecodable head-details images: natural widths {widths}"
        finally:
            browser.close()


def _check_size(page, size, latencies):
    """Everything that depends on the window size: legibility, and the redraw latency."""
    w, h = size
    page.set_viewport_size({"width": w, "height": h})
    page.wait_for_timeout(800)
    root = page.locator(".hl-root").first
    root.scroll_into_view_if_needed()
    sizes = page.evaluate(
        "() => { const r = document.querySelector('.hl-root'); const c = r.querySelector('canvas');"
        " const out = r.closest('.jp-OutputArea-output'); const vbox = r.closest('.widget-vbox');"
        " return {root: r.clientWidth, css: c.getBoundingClientRect().width, px: c.width, dpr: devicePixelRatio,"
        " out: out.clientWidth, scroll: vbox.scrollWidth, client: vbox.clientWidth}; }"
    )
    # the canvas is as wide as the output, drawn at its displayed size (no downscaling), nothing clipped
    assert abs(sizes["css"] - sizes["root"]) <= 1 and sizes["css"] <= sizes["out"]
    assert sizes["px"] == round(sizes["css"] * sizes["dpr"])
    assert sizes["scroll"] <= sizes["client"] + 2, sizes
    assert "hover a head · click for details" in page.locator(".hl-hint").first.inner_text()
    page.screenshot(path=str(ARTIFACTS / f"explorer_{w}x{h}.png"), full_page=False)
    for kind, arg, values in (("button", "Retrieval", None), ("select", "Colour", ("z-score", "signed share s/Σ|s|"))):
        times = [page.evaluate(TIMED, [kind, arg, None if values is None else values[i % 2]]) for i in range(10)]
        latencies[f"{w}x{h} {kind} {arg}"] = times
        assert median(times) <= 150, f"{kind} {arg} at {w}×{h}: redraw median {median(times):.0f} ms > 150 ms: {times}"


def _label(page, panel):
    return page.evaluate(
        "i => document.querySelector('.hl-root').parentElement.headlabState.spec.panels[i].label", panel
    )


def _walk_controls(page, tag, threshold):
    """Every view control once, each result asserted; screenshots tagged with the window size."""
    # chips: none → nothing drawn and one error line; all → 8 panels
    before = _draws(page)
    page.locator("button[title='clear, then pick tasks']").click()  # the chips' "none"
    _wait_redraw(page, before)
    page.get_by_text("no task selected: tick at least one task").first.wait_for(timeout=10_000)
    assert _data(page, "panels") == ""
    before = _draws(page)
    page.locator("button[title='show every task']").click()
    _wait_redraw(page, before)
    page.wait_for_function(
        "() => ![...document.querySelectorAll('.widget-html')].some(h => h.textContent.includes('⚠'))"
    )
    assert len(_data(page, "panels").split(" | ")) == 8
    # a chip: one task off, the status counts what is shown
    _button(page, "Inference").click()  # (a draw may come from a resize: wait for what the click draws)
    page.wait_for_function(
        "() => !document.querySelector('.hl-root').parentElement.dataset.panels.includes('Inference')"
    )
    page.get_by_text("7 of 8 tasks shown").first.wait_for(timeout=10_000)
    _button(page, "Inference").click()
    page.wait_for_function(
        "() => document.querySelector('.hl-root').parentElement.dataset.panels.includes('Inference')"
    )

    # top-k by s: greyed heads, a legend that says so; by |s| says so too
    for name in ("by s (signed)", "top-k"):
        if "mod-active" in (_button(page, name).get_attribute("class") or ""):
            continue  # already chosen (the walk at the other size left it so)
        before = _draws(page)
        _button(page, name).click()
        _wait_redraw(page, before)
    assert "greyed: not selected" in _data(page, "legend") and _label(page, 0) == "top 10 by s"
    for layer, head in ((0, 0), (15, 6), (29, 8)):
        x, y = _cell_centre(page, 0, layer, head)
        page.mouse.move(x, y)
        text = page.locator(".hl-readout").first.inner_text()
        if "not selected" in text:
            r, g, b = _pixel(page, x, y)
            assert max(r, g, b) - min(r, g, b) <= 2 and 200 <= r <= 232, (r, g, b)  # desaturated, light
    before = _draws(page)
    _button(page, "by |s|").click()
    _wait_redraw(page, before)
    assert _label(page, 0) == "top 10 by |s|"
    before = _draws(page)
    _button(page, "elbow").click()
    _wait_redraw(page, before)
    assert re.fullmatch(r"elbow: \d+ by \|s\|", _label(page, 0))
    page.screenshot(path=str(ARTIFACTS / f"explorer_{tag}_elbow.png"), full_page=False)

    # threshold: log slider, typed value, unit
    before = _draws(page)
    _button(page, "threshold").click()
    _wait_redraw(page, before)
    assert page.get_by_text("share of Σ|s|").first.is_visible()
    typed = page.locator(".widget-hbox", has_text="Threshold").locator("input").first
    before = _draws(page)
    typed.fill(threshold)
    typed.press("Enter")
    _wait_redraw(page, before)
    assert re.fullmatch(rf"\d+ with \|s\| ≥ {re.escape(threshold)}", _label(page, 1)), _label(page, 1)
    page.screenshot(path=str(ARTIFACTS / f"explorer_{tag}_threshold.png"), full_page=False)

    # the scale: clipped at the 99th percentile by default (▲▼ named in the legend), or the full range
    assert _selected(page, "Scale") == "clip at 99th pct" and "▲▼ beyond the colour scale" in _data(page, "legend")
    clipped = json.loads(_data(page, "scale"))["hi"]
    before = _draws(page)
    _select(page, "Scale", "full range")
    _wait_redraw(page, before)
    assert "▲▼" not in _data(page, "legend") and json.loads(_data(page, "scale"))["hi"] > clipped
    before = _draws(page)
    _select(page, "Scale", "clip at 99th pct")
    _wait_redraw(page, before)

    # CI dots with their legend (the bootstrap runs once per map: wait for it)
    _button(page, "CI dots").click()
    page.wait_for_function(
        "() => (document.querySelector('.hl-root').parentElement.dataset.legend || '').includes('CI excludes 0')",
        timeout=120_000,
    )
    before = _draws(page)
    _button(page, "CI dots").click()
    _wait_redraw(page, before)

    # compare: side by side (16 panels), then the difference (8)
    current = _selected(page, "Method")
    other = "attribution · zero" if current == "attribution · resample" else "attribution · resample"
    _select(page, "Compare with", f"method: {other}")
    side = _button(page, "side by side")
    side.wait_for(state="visible", timeout=60_000)
    if "mod-active" not in (side.get_attribute("class") or ""):
        side.click()  # the mode a walk at the other size left
    page.wait_for_function(
        "() => (document.querySelector('.hl-root').parentElement.dataset.panels || '').includes(' · B')",
        timeout=180_000,
    )
    panels = _data(page, "panels").split(" | ")
    assert len(panels) == 16 and all(f" · B: {other}" in p for p in panels[1::2])
    assert all(f" · A: {current}" in p for p in panels[::2]) and _selected(page, "Method") == current  # A stays
    assert _selected(page, "Compare with") == f"method: {other}"
    page.screenshot(path=str(ARTIFACTS / f"explorer_{tag}_compare.png"), full_page=False)
    before = _draws(page)
    _button(page, "difference A − B").click()
    _wait_redraw(page, before)
    panels = _data(page, "panels").split(" | ")
    assert len(panels) == 8 and all(p.endswith(": A − B") for p in panels)
    before = _draws(page)
    _select(page, "Compare with", "— none —")
    _wait_redraw(page, before)

    # a click: the busy line at once, then the details; the form follows; another prompt
    x, y = _cell_centre(page, 1, 12, 4)
    busy = page.evaluate(
        """([x, y]) => { const c = document.querySelector('.hl-root canvas');
          c.dispatchEvent(new MouseEvent('click', {clientX: x, clientY: y, bubbles: true}));
          return document.querySelector('.hl-status').textContent; }""",
        [x, y],
    )
    assert busy.startswith("⏳ loading head details of L12.H4 · Retrieval"), busy
    page.get_by_text(re.compile(r"L12\.H4 in Retrieval · attribution · \w+ on smollm2")).wait_for(timeout=60_000)
    assert page.locator(".widget-text", has_text="Layer").locator("input").first.input_value() == "12"
    _dropdown(page, "Prompt").select_option(index=1)  # its options are prompts: picked by position
    _button(page, "Show head").click()
    page.get_by_text(re.compile(r"pattern of prompt 1")).wait_for(timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / f"explorer_{tag}_details.png"), full_page=False)

    # readouts belong to the scores on screen: a method switch clears hover and details
    x, y = _cell_centre(page, 0, 5, 5)
    page.mouse.move(x, y)
    assert page.locator(".hl-readout").first.inner_text().startswith("L5.H5")
    _select(page, "Method", other)
    page.get_by_text(f"{other} on smollm2").first.wait_for(timeout=180_000)
    assert page.locator(".hl-readout").first.inner_text() == ""
    page.get_by_text("(head details cleared: the scores changed").wait_for(timeout=10_000)
    _no_errors(page)


def test_every_explorer_control_at_two_sizes(lab):
    from playwright.sync_api import sync_playwright

    base, token = lab
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    latencies = {}
    with sync_playwright() as pw:
        browser, page = _open(pw, base, token, "explorer_check.ipynb", (1400, 1000))
        try:
            _wait_until_all_cells_ran(page, timeout_s=float(os.environ.get("HEADLAB_BROWSER_TIMEOUT", 540)))
            page.wait_for_function("() => Number(document.querySelector('.hl-root')?.parentElement.dataset.draws) > 0")
            _no_errors(page)
            status = page.locator(".widget-html", has_text="tasks shown").first
            assert "8 of 8 tasks shown" in status.inner_text()
            # signed by default: a diverging scale symmetric about 0
            scale = json.loads(_data(page, "scale"))
            assert scale["lo"] < 0 < scale["hi"] and scale["lo"] == pytest.approx(-scale["hi"])
            assert scale["label"] == "share of the task's total effect" and scale["cmap"] == "RdBu_r"
            assert _data(page, "legend").startswith("red: ablating the head lowers the task's metric (the head helps)")
            for size, threshold in (((1400, 1000), "0.02"), ((1000, 800), "0.03")):
                try:
                    _check_size(page, size, latencies)
                    _walk_controls(page, f"{size[0]}x{size[1]}", threshold)
                except Exception:
                    page.screenshot(path=str(ARTIFACTS / f"failure_{size[0]}x{size[1]}.png"), full_page=True)
                    raise
            (ARTIFACTS / "latency.json").write_text(json.dumps(latencies, indent=1))

            # compare with a long job: asked first, Run, then Cancel stops it within a second and the state is the
            # one from before (no compare, map A alone, nothing said about B)
            shown, drawn = _selected(page, "Method"), _data(page, "panels")
            _select(page, "Compare with", "method: ablation · resample")
            page.get_by_text(re.compile(r"about .* here \(\d of 8 tasks to compute")).wait_for(timeout=120_000)
            assert _selected(page, "Method") == shown and _selected(page, "Compare with") == "— none —"
            page.screenshot(path=str(ARTIFACTS / "explorer_ask.png"), full_page=False)
            _button(page, "Run it").click()
            page.get_by_text(re.compile(r"task 1 of 8 · ")).wait_for(timeout=120_000)
            page.wait_for_timeout(1500)
            page.screenshot(path=str(ARTIFACTS / "explorer_job.png"), full_page=False)
            took = page.evaluate(
                """async () => {
                  const cancel = [...document.querySelectorAll('button')].find(b => b.textContent.trim() === 'Cancel');
                  const t0 = performance.now();
                  cancel.click();
                  const done = () => [...document.querySelectorAll('.widget-html')].some(
                    h => h.textContent.includes('cancelled ablation · resample'));
                  while (!done()) await new Promise(r => setTimeout(r, 10));
                  return performance.now() - t0;
                }"""
            )
            latencies["cancel"] = took
            (ARTIFACTS / "latency.json").write_text(json.dumps(latencies, indent=1))
            assert took <= 1000, f"cancel took {took:.0f} ms"
            page.wait_for_function(
                "() => !document.querySelector('.widget-dropdown select').disabled", timeout=10_000
            )  # the menus are back
            assert _selected(page, "Method") == shown and _selected(page, "Compare with") == "— none —"
            assert _data(page, "panels") == drawn and not page.get_by_text(re.compile(r"\| B: ")).count()
            page.screenshot(path=str(ARTIFACTS / "explorer_cancelled.png"), full_page=False)

            # the faithfulness curve as a job: its question (the notebook's last cell asks of every job over 1 s),
            # then a live counter of its masked passes; Cancel
            if "mod-active" not in (_button(page, "top-k").get_attribute("class") or ""):
                before = _draws(page)
                _button(page, "top-k").click()
                _wait_redraw(page, before)
            _button(page, "faithfulness curve").click()
            page.get_by_text(re.compile(r"faithfulness curve of \w[\w ]*: about .* here \(\d+ masked runs")).wait_for(
                timeout=120_000
            )
            page.screenshot(path=str(ARTIFACTS / "explorer_curve_ask.png"), full_page=False)
            _button(page, "Run it").click()
            page.get_by_text(re.compile(r"faithfulness · \w[\w ]* · [1-9]\d*/\d+")).wait_for(timeout=240_000)
            page.screenshot(path=str(ARTIFACTS / "explorer_curve_job.png"), full_page=False)
            _button(page, "Cancel").click()
            page.get_by_text("cancelled faithfulness curve of").wait_for(timeout=10_000)
            assert "mod-active" not in (_button(page, "faithfulness curve").get_attribute("class") or "")
            page.screenshot(path=str(ARTIFACTS / "explorer_cancelled.png"), full_page=False)
            _no_errors(page)
        finally:
            browser.close()


def test_saved_page_opens_offline_with_hover(tmp_path):
    from playwright.sync_api import sync_playwright

    import headlab
    from headlab.models import ModelInfo
    from headlab.results import HeadScores
    from headlab.tasks import TASK_NAMES

    rng = np.random.default_rng(0)
    values = rng.standard_t(2, (8, 30, 9)) * 0.1
    scores = HeadScores(
        values, list(TASK_NAMES), ModelInfo("demo", 30, 9, 9, 16, 64, 259), "attribution",
        {"ablation": "resample", "metric": "logit_diff"}, [8] * 8, [1.0] * 8, values[:, None],
    )  # fmt: skip
    ex = headlab.explorer(models={"demo": lambda: None}, tasks=None, scores=scores)
    ex.controls["select"].value = "top_k"
    path = ex.save_html(tmp_path / "map.html")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            asked = []
            page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:") else (
                asked.append(route.request.url), route.abort()))  # fmt: skip
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(path.as_uri())
            page.wait_for_function("() => Number(document.querySelector('#grid').dataset.draws) > 0")
            x, y = _cell_centre(page, 1, 10, 2)
            page.mouse.move(x, y)
            text = page.locator(".hl-readout").inner_text()
            found = re.match(r"L10\.H2 · Retrieval: score (\S+) ", text)
            assert found and float(found.group(1).replace("−", "-")) == pytest.approx(values[1, 10, 2], rel=2e-3), text
            page.screenshot(path=str(ARTIFACTS / "saved_page.png"), full_page=True)
            assert asked == [] and errors == []
        finally:
            browser.close()


# JS: pick ``value`` in explorer ``i``'s dropdown ``label``; resolve with [ms from the pick to its canvas's next
# draw, ms the drawing itself took]
TIMED_IN = """async ([i, label, value]) => {
  const root = document.querySelectorAll('.hl-root')[i], el = root.parentElement;
  const out = root.closest('.jp-OutputArea-output');
  const box = [...out.querySelectorAll('.widget-dropdown')].find(d => d.querySelector('label')?.textContent === label);
  const select = box.querySelector('select');
  const option = [...select.options].find(o => o.textContent.replace(/\\u00a0/g, ' ').trim() === value);
  const before = Number(el.dataset.draws || 0);
  const t0 = performance.now();
  select.value = option.value;
  select.dispatchEvent(new Event('change', { bubbles: true }));
  while (Number(el.dataset.draws || 0) <= before) await new Promise(r => setTimeout(r, 1));
  return [Number(el.dataset.drawnAt) - t0, Number(el.dataset.drawMs)];
}"""


ROUND_TRIP = """async n => {
  const ping = document.querySelector('.hl-ping input'), pong = document.querySelector('.hl-pong input');
  const tick = () => new Promise(r => {  // a yield without setTimeout's 4 ms clamp
    const c = new MessageChannel(); c.port1.onmessage = r; c.port2.postMessage(0);
  });
  const t0 = performance.now();
  ping.value = String(n);
  ping.dispatchEvent(new Event('input', { bubbles: true }));
  while (pong.value !== String(n)) await tick();
  return performance.now() - t0;
}"""


def _p90(values):
    return float(np.percentile(values, 90))


def _geometry(page, i):
    """Explorer ``i``'s canvas, output and layout: widths, per-panel boxes, the colour bar."""
    return page.evaluate(
        """i => { const r = document.querySelectorAll('.hl-root')[i], c = r.querySelector('canvas');
          const s = r.parentElement.headlabState, out = r.closest('.jp-OutputArea-output');
          return {root: r.clientWidth, css: c.getBoundingClientRect().width, px: c.width, dpr: devicePixelRatio,
                  out: out.clientWidth, scroll: out.scrollWidth, boxes: s.layout.boxes, cbar: s.layout.cbar,
                  panels: s.spec.panels.map(p => ({L: p.L, H: p.H})), height: s.layout.height}; }""",
        i,
    )


# JS: scroll the notebook until head (layer, head) of panel ``panel`` of explorer ``i`` is mid-window; its
# client coordinates
CELL_IN_VIEW = """([i, panel, layer, head]) => {
  const r = document.querySelectorAll('.hl-root')[i], c = r.querySelector('canvas');
  const s = r.parentElement.headlabState, b = s.layout.boxes[panel], p = s.spec.panels[panel];
  const at = () => { const k = c.getBoundingClientRect();
    return [k.left + b.x + (head + 0.5) * b.w / p.H, k.top + b.y + (layer + 0.5) * b.h / p.L]; };
  let el = r;
  while (el && !(el.scrollHeight > el.clientHeight + 4 && /auto|scroll/.test(getComputedStyle(el).overflowY)))
    el = el.parentElement;
  (el || document.scrollingElement).scrollTop += at()[1] - innerHeight / 2;
  return at();
}"""


def _hover(page, i, panel, layer, head):
    """Move the mouse over one head of explorer ``i`` and return its readout."""
    page.evaluate(CELL_IN_VIEW, [i, panel, layer, head])
    page.wait_for_timeout(100)
    x, y = page.evaluate(CELL_IN_VIEW, [i, panel, layer, head])
    page.mouse.move(x, y)
    return page.locator(".hl-readout").nth(i).inner_text()


def test_synthetic_shapes_at_two_sizes(lab):
    """The seed shapes and 80 × 64 at 1400×1000 and 1000×800: the canvas as wide as its output, nothing past it,
    cells at least 5 px (marks drawn inside them), hover on the right head in the first and last panel's
    corners and middle, and the redraw time per shape (p90 ≤ 50 ms drawing at 32 × 32)."""
    from playwright.sync_api import sync_playwright

    base, token = lab
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    timings = {}
    with sync_playwright() as pw:
        browser, page = _open(pw, base, token, "shapes.ipynb", (1400, 1000))
        try:
            _wait_until_all_cells_ran(page, timeout_s=float(os.environ.get("HEADLAB_BROWSER_TIMEOUT", 540)))
            page.wait_for_function(
                "n => [...document.querySelectorAll('.hl-root')].filter(r => Number(r.parentElement.dataset.draws) > 0)"
                ".length === n",
                arg=len(SHAPES),
                timeout=60_000,
            )
            _no_errors(page)
            for w, h in ((1400, 1000), (1000, 800)):
                page.set_viewport_size({"width": w, "height": h})
                page.wait_for_timeout(800)
                for i, (L, H) in enumerate(SHAPES):
                    g = _geometry(page, i)
                    assert abs(g["css"] - g["root"]) <= 1 and g["css"] <= g["out"], g
                    assert g["scroll"] <= g["out"] + 1 and g["px"] == round(g["css"] * g["dpr"]), g
                    right = max(b["x"] + b["w"] for b in g["boxes"])
                    assert right < g["cbar"]["x"] and g["cbar"]["x"] + g["cbar"]["w"] + 70 <= g["css"], g
                    cell = min(min(b["w"] / p["H"], b["h"] / p["L"]) for b, p in zip(g["boxes"], g["panels"]))
                    assert cell >= 5, f"{L}×{H} at {w}×{h}: cells of {cell:.1f} px"
                    last = len(g["boxes"]) - 1
                    for panel in (0, last):
                        for layer, head in ((0, 0), (L - 1, H - 1), (L // 2, H // 3)):
                            text = _hover(page, i, panel, layer, head)
                            assert text.startswith(f"L{layer}.H{head} · "), (L, H, w, h, panel, text)
                    assert " logit diff (shown " in text  # units on hover
                    page.evaluate("i => document.querySelectorAll('.hl-root')[i].scrollIntoView({block: 'start'})", i)
                    page.wait_for_timeout(150)
                    page.screenshot(path=str(ARTIFACTS / f"shape_{L}x{H}_{w}x{h}.png"))
                    runs = [
                        page.evaluate(TIMED_IN, [i, "Colour", ("z-score", "signed share s/Σ|s|")[k % 2]])
                        for k in range(12)
                    ][2:]  # the first two warm the path
                    total, drawing = [r[0] for r in runs], [r[1] for r in runs]
                    timings[f"{L}x{H} at {w}x{h}"] = {
                        "action_to_drawn_ms": total,
                        "drawing_ms": drawing,
                        "p90_action_to_drawn_ms": _p90(total),
                        "p90_drawing_ms": _p90(drawing),
                    }
                    print(
                        f"redraw {L}×{H} at {w}×{h}: p90 {_p90(total):.1f} ms from the pick to the drawn canvas, "
                        f"p90 {_p90(drawing):.1f} ms drawing"
                    )
            trips = [page.evaluate(ROUND_TRIP, n) for n in range(1, 23)][2:]
            timings["kernel round trip, nothing drawn"] = {"ms": trips, "p90_ms": _p90(trips)}
            print(f"a widget value to the kernel and back, nothing drawn: p90 {_p90(trips):.1f} ms")
            (ARTIFACTS / "shapes_latency.json").write_text(json.dumps(timings, indent=1))
            assert all(t > 0 for t in trips)  # the echo came back each time
            for w, h in ((1400, 1000), (1000, 800)):
                p90 = timings[f"32x32 at {w}x{h}"]["p90_drawing_ms"]
                assert p90 <= 50, f"32×32 at {w}×{h}: drawing p90 {p90:.1f} ms > 50 ms"
            _no_errors(page)
        finally:
            browser.close()
