"""The head grid in the browser: numbers in, pixels drawn there (``grid.js``, an anywidget).

The kernel decides what every panel shows (``viz.display``: colours, selection, marks, one colour scale)
and sends it as one JSON spec and four small binary arrays — per head 4 bytes of colour, two float32
values, an int32 rank and a byte of flags — never an image. The browser draws them on a canvas as wide as
the output, answers hover from the same numbers without asking the kernel, and sends clicks back.

``HeadGrid``: the widget (``show(state)``, ``on_click(callback)``); ``state(panels, scale, ...)``: the
traits it shows; ``page(state)``: a standalone HTML page of the same grid — the same ``grid.js`` inlined
with the numbers, for workshops and papers: no kernel, no internet, hover working.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import anywidget
import numpy as np
import traitlets

from . import display
from .display import LEGEND, Panel, Scale

__all__ = ["BINARY", "FLAG", "HeadGrid", "PAGE", "page", "state", "ticks"]

ESM = Path(__file__).with_name("grid.js")
FLAG = {"selected": 1, "significant": 2, "above": 4, "below": 8, "verified": 16, "missing": 32}  # as grid.js
SWATCH = {"grey": "#d0d0d0", "missing": "#545454"}
BINARY = ("colors", "cells", "ranks", "flags")


def ticks(n: int) -> list[int]:
    """Tick positions for an axis of n layers or heads (every one up to 12, else ~6)."""
    step = 1 if n <= 12 else -(-n // 6)
    return list(range(0, n, step))


def end_ticks(scale: Scale) -> list[float]:
    """The colour bar's ticks, its two ends always among them (an inner tick too close to an end is dropped)."""
    ticks = [float(t) for t in scale.ticks()]
    gap = 0.12 * (scale.hi - scale.lo)
    inner = [t for t in ticks if scale.lo + gap < t < scale.hi - gap]
    return [scale.lo, *inner, scale.hi]


def state(
    panels: list[Panel],
    scale: Scale,
    *,
    unit: str,
    label: str,
    raw_unit: str = "",
    meaning: str = "",
    cols: int = 4,
    pair: bool = False,
    hint: str = "hover a head · click for details",
    clickable: bool = True,
    version: int = 0,
    show_shown: bool = True,
    marks: str = "selected",
) -> dict:
    """The traits of a ``HeadGrid`` showing ``panels`` on ``scale`` (``label``: the colour bar's title in words,
    ``unit``: of displayed values, ``raw_unit``: of the raw score on hover, ``meaning``: the legend's first line,
    what the colours mean; ``pair``: panels go two by two, compared maps side by side; ``marks``: CI dots,
    verified squares and ▲▼ on the "selected" heads only, where a selection is active (a greyed head shows no
    colour to be beyond the scale), or on "all")."""
    colors, cells, ranks, flags, specs = [], [], [], [], []
    for p in panels:
        L, H = p.shown.shape
        colors.append(display.shade(p.shown, scale, p.selected).reshape(-1))
        cells.append(np.stack([p.raw, p.shown], axis=-1).astype(np.float32).reshape(-1))
        ranks.append((p.rank if p.rank is not None else np.zeros((L, H))).astype(np.int32).reshape(-1))
        out = display.beyond(p.shown, scale)
        f = np.zeros((L, H), dtype=np.uint8)
        only = p.selected if marks == "selected" and p.selected is not None else np.ones((L, H), dtype=bool)
        for name, mask in (
            ("selected", p.selected),
            ("significant", None if p.significant is None else p.significant & only),
            ("above", (out > 0) & only),
            ("below", (out < 0) & only),
            ("verified", None if p.verified is None else p.verified & only),
            ("missing", np.isnan(p.shown)),
        ):
            if mask is not None:
                f |= np.where(mask, FLAG[name], 0).astype(np.uint8)
        flags.append(f.reshape(-1))
        specs.append(
            {
                "title": p.title,
                "label": p.label,
                "L": int(L),
                "H": int(H),
                "xticks": ticks(H),
                "yticks": ticks(L),
                "ylabel": p.ylabel,
                "value_name": p.value_name,
                "show_shown": show_shown,
            }
        )
    keys = display.legend_keys(panels, scale)
    spec = {
        "panels": specs,
        "cols": int(cols),
        "pair": bool(pair),
        "scale": {
            "lo": scale.lo,
            "hi": scale.hi,
            "lut": scale.lut(),
            "ticks": [{"v": t, "text": scale.tick_text(t)} for t in end_ticks(scale)],
            "label": label,
            "cmap": scale.cmap,
        },
        "meaning": meaning,
        "legend": [{"text": LEGEND[k], **({"swatch": SWATCH[k]} if k in SWATCH else {})} for k in keys],
        "unit": unit,
        "raw_unit": raw_unit,
        "hint": hint,
        "clickable": bool(clickable),
        "selecting": any(p.selected is not None for p in panels),
        "has_verified": any(p.verified is not None for p in panels),
        "version": int(version),
    }
    join = lambda parts, dtype: np.concatenate(parts).astype(dtype).tobytes() if parts else b""  # noqa: E731
    return {
        "spec": spec,
        "colors": join(colors, np.uint8),
        "cells": join(cells, np.float32),
        "ranks": join(ranks, np.int32),
        "flags": join(flags, np.uint8),
    }


class HeadGrid(anywidget.AnyWidget):
    """The grid widget: ``show(state(...))`` replaces what it draws in one message; ``on_click(fn)`` calls
    ``fn(panel, layer, head)`` for a click on a head; ``status`` is the line under the grid."""

    _esm = ESM
    spec = traitlets.Dict().tag(sync=True)
    colors = traitlets.Bytes().tag(sync=True)
    cells = traitlets.Bytes().tag(sync=True)
    ranks = traitlets.Bytes().tag(sync=True)
    flags = traitlets.Bytes().tag(sync=True)
    status = traitlets.Unicode("").tag(sync=True)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._clicks = []
        self.on_msg(self._on_msg)

    def show(self, new: dict) -> None:
        with self.hold_sync():
            for name, value in new.items():
                setattr(self, name, value)

    def on_click(self, callback) -> None:
        self._clicks.append(callback)

    def _on_msg(self, _widget, content, _buffers) -> None:
        if isinstance(content, dict) and content.get("event") == "click":
            for callback in self._clicks:
                callback(int(content["panel"]), int(content["layer"]), int(content["head"]))

    def state(self) -> dict:
        return {"spec": self.spec, **{name: getattr(self, name) for name in BINARY}}


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font:14px sans-serif;margin:24px;color:#222}} h1{{font-size:18px}} p.note{{color:#555}}</style>
</head><body>
<h1>{title}</h1>
<p class="note">{note}</p>
<div id="grid"></div>
<script type="module">
{esm}
const data = {data};
function decode(b64) {{
  const raw = atob(b64), out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return new DataView(out.buffer);
}}
const values = {{ spec: data.spec, status: "" }};
for (const name of {binary}) values[name] = decode(data[name]);
const model = {{ get: (name) => values[name], on: () => {{}}, send: () => {{}} }};
mount(model, document.getElementById("grid"));
</script>
</body></html>
"""


def page(grid_state: dict, title: str, note: str = "") -> str:
    """A standalone HTML page of the grid in ``grid_state`` (``state(...)`` or ``HeadGrid.state()``):
    ``grid.js`` and the numbers inlined, hover working, nothing fetched."""
    spec = {**grid_state["spec"], "clickable": False, "hint": "hover a head for its score and rank"}
    data = {"spec": spec, **{k: base64.b64encode(bytes(grid_state[k])).decode("ascii") for k in BINARY}}
    esm = ESM.read_text(encoding="utf-8").replace("export default", "const _default =").replace("export ", "")
    return PAGE.format(
        title=html.escape(title),
        note=html.escape(note),
        esm=esm,
        data=json.dumps(data).replace("</", "<\\/"),
        binary=json.dumps(list(BINARY)),
    )
