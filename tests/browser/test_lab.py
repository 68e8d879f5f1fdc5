"""A real browser: JupyterLab on 127.0.0.1, headless Debian Chromium driven by Playwright.

1. ``01_quickstart.ipynb`` runs in full; its explorer draws, answers hover and shows a clicked head.
2. An explorer notebook on the embedded model, at 1400×1000 and at 1000×800: every control is driven and its
   result asserted — colour scale sign and range, the grey legend, chips all/none, threshold with its unit,
   top-k / elbow by s and |s|, CI dots, compare side by side and as a difference, the prompt picker,
   readouts cleared after a switch, a long job asked first and cancelled, redraw ≤ 150 ms in the browser
   (median of 10, ``performance.now()`` from the action to the drawn canvas), legibility (the canvas as wide
   as the output, nothing clipped).
3. A page from ``save_html`` opens offline (every network request refused) with hover working.

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
    "import headlab\nfrom headlab import widgets\nfrom headlab.tasks import builtin\n\nmodel = headlab.load_model()\n"
    "tasks = builtin()",
    # the second map is computed here, so that the explorer's compare finds it in the disk cache
    'scores = headlab.score(model, tasks, method="attribution", progress=False)\n'
    'zero = headlab.score(model, tasks, method="attribution", ablation="zero", progress=False)',
    'ex = widgets.explorer(models={"smollm2": model}, tasks=tasks, scores=scores)\nex',
]
EXPLORER_NOTEBOOK = {
    "cells": [
        {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": src}
        for src in EXPLORER_CELLS
    ],
    "metadata": {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}},
    "nbformat": 4,
    "nbformat_minor": 5,
}
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
    before = _draws(page)
    _button(page, "Inference").click()
    _wait_redraw(page, before)
    assert "Inference" not in _data(page, "panels") and page.get_by_text("7 of 8 tasks shown").first.is_visible()
    before = _draws(page)
    _button(page, "Inference").click()
    _wait_redraw(page, before)

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

    # scale clipped at a percentile: the end ticks say "+", the legend names the marks
    before = _draws(page)
    _select(page, "Scale", "clip at 99th pct")
    _wait_redraw(page, before)
    assert "▲▼ beyond the colour scale" in _data(page, "legend")
    before = _draws(page)
    _select(page, "Scale", "full range")
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
    assert len(_data(page, "panels").split(" | ")) == 16
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
            assert scale["label"] == "signed share s/Σ|s|" and scale["cmap"] == "RdBu_r"
            for size, threshold in (((1400, 1000), "0.02"), ((1000, 800), "0.03")):
                _check_size(page, size, latencies)
                try:
                    _walk_controls(page, f"{size[0]}x{size[1]}", threshold)
                except Exception:
                    page.screenshot(path=str(ARTIFACTS / f"failure_{size[0]}x{size[1]}.png"), full_page=True)
                    raise
            (ARTIFACTS / "latency.json").write_text(json.dumps(latencies, indent=1))

            # a long job asks first; Run, then Cancel stops it within a second
            shown = _selected(page, "Method")
            _select(page, "Method", "ablation · resample")
            page.get_by_text(re.compile(r"about .* here \(\d of 8 tasks to compute")).wait_for(timeout=120_000)
            assert _selected(page, "Method") == shown  # the menu names what is on screen meanwhile
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
            assert _selected(page, "Method") == shown
            page.screenshot(path=str(ARTIFACTS / "explorer_cancelled.png"), full_page=False)
            _no_errors(page)
        finally:
            browser.close()


def test_saved_page_opens_offline_with_hover(tmp_path):
    from playwright.sync_api import sync_playwright

    from headlab import widgets
    from headlab.models import ModelInfo
    from headlab.results import HeadScores
    from headlab.tasks import TASK_NAMES

    rng = np.random.default_rng(0)
    values = rng.standard_t(2, (8, 30, 9)) * 0.1
    scores = HeadScores(
        values, list(TASK_NAMES), ModelInfo("demo", 30, 9, 9, 16, 64, 259), "attribution",
        {"ablation": "resample", "metric": "logit_diff"}, [8] * 8, [1.0] * 8, values[:, None],
    )  # fmt: skip
    ex = widgets.explorer(models={"demo": lambda: None}, tasks=None, scores=scores)
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
