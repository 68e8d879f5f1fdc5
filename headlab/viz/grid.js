// The head grid drawn in the browser from numbers (headlab.viz.canvas): the explorer's anywidget and
// saved HTML pages run this same module. It draws the panels the kernel computed (colours, marks, one
// colour bar, a legend), answers hover from the numbers it holds, and sends clicks back to the kernel.
//
// State (traits): spec (JSON: panels, columns, scale, legend, hint), colors (RGBA uint8 per cell),
// cells (float32 raw, shown per cell), ranks (int32 per cell), flags (uint8 per cell, FLAG bits), status.
// Each draw stamps el.dataset.draws (a count), el.dataset.drawnAt (performance.now()) and el.dataset.drawMs
// (how long the drawing itself took).
//
// Cells are one small image per panel (an RGBA pixel a head) scaled up without smoothing: a redraw costs
// the same at 80 × 64 as at 30 × 9. Marks are drawn inside their cell, and only where a cell is at least
// MARK_MIN px (hover names them at any size).

const FLAG = { selected: 1, significant: 2, above: 4, below: 8, verified: 16, missing: 32 };
const FONT = "12px sans-serif";
const TICK_FONT = "11px sans-serif";
const MIN_W = 320;
const MIN_CELL = 6; // px: fewer columns until a head's cell is at least this wide
const MIN_ROW = 5.5; // px: a layer's row at least this tall
const MARK_MIN = 5; // px: smaller cells carry no mark
const LEGEND_LINE = 18;

function bytes(view) {
  if (!view) return new Uint8Array(0);
  if (view instanceof DataView) return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
  if (view instanceof ArrayBuffer) return new Uint8Array(view);
  return new Uint8Array(view.buffer || view);
}

function typed(view, Type) {
  const b = bytes(view);
  const copy = new Uint8Array(b); // aligned copy
  return new Type(copy.buffer);
}

function fmt(v) {
  if (!Number.isFinite(v)) return "NaN";
  const a = Math.abs(v);
  const s = a !== 0 && (a < 1e-3 || a >= 1e4) ? v.toExponential(2) : v.toPrecision(4);
  return s.replace("-", "\u2212");
}

function layout(spec, width) {
  const panels = spec.panels;
  const n = panels.length;
  const cbarW = 110;
  const left = 44, gap = 26, top = 40, rowGap = 62;
  let cols = Math.min(spec.cols || 4, n);
  const maxL = Math.max(...panels.map((p) => p.L));
  const maxH = Math.max(...panels.map((p) => p.H));
  // never narrower than ~150 px a panel nor MIN_CELL px a head: fewer columns on a narrow output
  const panelW = (c) => (width - left - cbarW - (c - 1) * gap) / c;
  while (cols > 1 && (panelW(cols) < 150 || panelW(cols) / maxH < MIN_CELL)) cols -= spec.pair && cols > 2 ? 2 : 1;
  cols = Math.max(cols, 1);
  const pw = Math.floor(panelW(cols));
  // as tall as the width suggests, within 120–340 px, and never under MIN_ROW px a layer (tall models scroll)
  const ph = Math.round(Math.max(120, MIN_ROW * maxL, Math.min(340, pw * Math.min(1.1, Math.max(0.6, maxL / 30)))));
  const rows = Math.ceil(n / cols);
  const boxes = panels.map((p, i) => ({
    x: left + (i % cols) * (pw + gap),
    y: top + Math.floor(i / cols) * (ph + rowGap),
    w: pw,
    h: ph,
  }));
  const legendY = top + rows * ph + (rows - 1) * rowGap + 40;
  const height = legendY + 2 * LEGEND_LINE + 6;
  const cbH = Math.min(rows * ph + (rows - 1) * rowGap, Math.max(2 * ph, 200));
  return { boxes, cols, rows, height, legendY, cbar: { x: width - cbarW + 14, y: top, w: 14, h: cbH } };
}

// one RGBA image per panel, a pixel a head (layer = row), from the colours the kernel sent
function panelImages(spec, colors) {
  const offs = offsets(spec);
  return spec.panels.map((p, i) => {
    const img = document.createElement("canvas");
    img.width = p.H;
    img.height = p.L;
    const data = new ImageData(p.H, p.L);
    data.data.set(colors.subarray(offs[i] * 4, (offs[i] + p.L * p.H) * 4));
    img.getContext("2d").putImageData(data, 0, 0);
    return img;
  });
}

// CI dots, verified squares and clip triangles, each inside its cell; a dot shares a clipped cell's corner
function drawMarks(ctx, flags, o, p, b, cw, ch) {
  const m = Math.min(cw, ch);
  for (let l = 0; l < p.L; l++) {
    for (let h = 0; h < p.H; h++) {
      const f = flags[o + l * p.H + h];
      if (!(f & (FLAG.verified | FLAG.significant | FLAG.above | FLAG.below))) continue;
      const x0 = b.x + h * cw, y0 = b.y + l * ch;
      const cx = x0 + cw / 2, cy = y0 + ch / 2;
      const clipped = f & (FLAG.above | FLAG.below);
      if (f & FLAG.verified) {
        ctx.strokeStyle = "#000";
        ctx.lineWidth = 1;
        ctx.strokeRect(x0 + 1.5, y0 + 1.5, cw - 3, ch - 3);
      }
      if (f & FLAG.significant) {
        const r = clipped ? m * 0.16 : m * 0.24;
        const dx = clipped ? x0 + r + 1.5 : cx, dy = clipped ? y0 + r + 1.5 : cy;
        ctx.beginPath();
        ctx.arc(dx, dy, r, 0, 2 * Math.PI);
        ctx.fillStyle = "#fff";
        ctx.fill();
        ctx.strokeStyle = "#000";
        ctx.lineWidth = 1;
        ctx.stroke();
      }
      if (clipped) {
        const up = f & FLAG.above ? -1 : 1;
        const r = m * 0.3;
        ctx.beginPath();
        ctx.moveTo(cx - r, cy - up * r * 0.8);
        ctx.lineTo(cx + r, cy - up * r * 0.8);
        ctx.lineTo(cx, cy + up * r);
        ctx.closePath();
        ctx.fillStyle = "#000";
        ctx.fill();
        ctx.strokeStyle = "#fff";
        ctx.lineWidth = 0.8;
        ctx.stroke();
      }
    }
  }
}

function offsets(spec) {
  let at = 0;
  return spec.panels.map((p) => {
    const o = at;
    at += p.L * p.H;
    return o;
  });
}

export function draw(state, el) {
  const t0 = performance.now();
  const spec = state.spec;
  const root = el.querySelector(".hl-root");
  const canvas = root.querySelector("canvas");
  const readout = root.querySelector(".hl-readout");
  if (!spec || !spec.panels || !spec.panels.length) {
    canvas.width = 0;
    canvas.style.height = "0px";
    readout.textContent = spec && spec.empty ? spec.empty : "";
    el.dataset.panels = "";
    el.dataset.draws = String(Number(el.dataset.draws || 0) + 1);
    el.dataset.drawnAt = String(performance.now());
    return;
  }
  const width = Math.max(MIN_W, Math.floor(root.clientWidth || el.clientWidth || 900));
  if (!state.images || state.imagesOf !== state.colors) {
    state.images = panelImages(spec, bytes(state.colors));
    state.imagesOf = state.colors;
  }
  const lay = layout(spec, width);
  const dpr = window.devicePixelRatio || 1;
  const pxW = Math.round(width * dpr), pxH = Math.round(lay.height * dpr);
  if (canvas.width !== pxW || canvas.height !== pxH) {
    // resizing reallocates the canvas: only when the size changes
    canvas.style.width = width + "px";
    canvas.style.height = lay.height + "px";
    canvas.width = pxW;
    canvas.height = pxH;
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, width, lay.height);
  const flags = bytes(state.flags);
  const offs = offsets(spec);
  ctx.imageSmoothingEnabled = false;
  spec.panels.forEach((p, i) => {
    const b = lay.boxes[i];
    const cw = b.w / p.H, ch = b.h / p.L, o = offs[i];
    ctx.drawImage(state.images[i], b.x, b.y, b.w, b.h);
    if (Math.min(cw, ch) >= MARK_MIN) drawMarks(ctx, flags, o, p, b, cw, ch);
    ctx.strokeStyle = "#222";
    ctx.lineWidth = 1;
    ctx.strokeRect(b.x + 0.5, b.y + 0.5, b.w - 1, b.h - 1);
    if (state.pick && state.pick.panel === i) {
      ctx.strokeStyle = "#ff8c00";
      ctx.lineWidth = 2.5;
      ctx.strokeRect(b.x + state.pick.head * cw, b.y + state.pick.layer * ch, cw, ch);
    }
    // titles and ticks
    ctx.fillStyle = "#111";
    ctx.font = "bold " + FONT;
    ctx.textBaseline = "bottom";
    ctx.textAlign = "left";
    const titleW = ctx.measureText(p.title).width;
    ctx.fillText(p.title, b.x, b.y - 5, b.w);
    ctx.font = FONT;
    ctx.fillStyle = "#444";
    ctx.textAlign = "right";
    // the selection label right of the title, or above it where both do not fit on one line
    const labelW = ctx.measureText(p.label || "").width;
    ctx.fillText(p.label || "", b.x + b.w, titleW + labelW + 10 > b.w ? b.y - 20 : b.y - 5, b.w);
    ctx.font = TICK_FONT;
    ctx.fillStyle = "#222";
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    for (const h of p.xticks) ctx.fillText(String(h), b.x + (h + 0.5) * cw, b.y + b.h + 3);
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (const l of p.yticks) ctx.fillText(String(l), b.x - 4, b.y + (l + 0.5) * ch);
    if (i % lay.cols === 0) {
      ctx.save();
      ctx.translate(b.x - 30, b.y + b.h / 2);
      ctx.rotate(-Math.PI / 2);
      ctx.textAlign = "center";
      ctx.fillText(p.ylabel || "Layer", 0, 0);
      ctx.restore();
    }
    if (i + lay.cols >= spec.panels.length) {
      ctx.textAlign = "center";
      ctx.textBaseline = "top";
      ctx.fillText("Head", b.x + b.w / 2, b.y + b.h + 17);
    }
  });
  // colour bar
  const s = spec.scale, cb = lay.cbar;
  const lut = s.lut;
  for (let k = 0; k < lut.length; k++) {
    ctx.fillStyle = lut[lut.length - 1 - k];
    ctx.fillRect(cb.x, cb.y + (k * cb.h) / lut.length, cb.w, Math.ceil(cb.h / lut.length));
  }
  ctx.strokeStyle = "#222";
  ctx.strokeRect(cb.x + 0.5, cb.y + 0.5, cb.w - 1, cb.h - 1);
  ctx.fillStyle = "#222";
  ctx.font = TICK_FONT;
  ctx.textAlign = "left";
  ctx.textBaseline = "middle";
  for (const t of s.ticks) {
    const y = cb.y + cb.h * (1 - (t.v - s.lo) / (s.hi - s.lo || 1));
    ctx.fillText(t.text, cb.x + cb.w + 4, y);
  }
  for (const t of s.ticks) {
    const y = Math.round(cb.y + cb.h * (1 - (t.v - s.lo) / (s.hi - s.lo || 1))) + 0.5;
    ctx.beginPath();
    ctx.moveTo(cb.x + cb.w - 3, y);
    ctx.lineTo(cb.x + cb.w + 2, y);
    ctx.stroke();
  }
  ctx.save();
  ctx.translate(cb.x + cb.w + 58, cb.y + cb.h / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  ctx.fillText(s.label, 0, 0, cb.h + 40);
  ctx.restore();
  // legend under the grid: what the colours mean, then the marks in use (with a grey swatch)
  let x = 44;
  let y = lay.legendY;
  ctx.font = FONT;
  ctx.textBaseline = "middle";
  ctx.textAlign = "left";
  ctx.fillStyle = "#222";
  ctx.fillText(spec.meaning || "", x, y, width - x - 8);
  y += LEGEND_LINE;
  for (const entry of spec.legend) {
    const w = ctx.measureText(entry.text).width + (entry.swatch ? 16 : 0);
    if (x > 44 && x + w > width - 8) {
      break; // one line; the hover readout names every mark of a head
    }
    if (entry.swatch) {
      ctx.fillStyle = entry.swatch;
      ctx.fillRect(x, y - 6, 12, 12);
      ctx.strokeStyle = "#666";
      ctx.strokeRect(x + 0.5, y - 5.5, 11, 11);
      x += 16;
    }
    ctx.fillStyle = "#333";
    ctx.fillText(entry.text, x, y);
    x += ctx.measureText(entry.text).width + 22;
  }
  state.layout = lay;
  state.offsets = offs;
  el.dataset.scale = JSON.stringify({ lo: s.lo, hi: s.hi, label: s.label, cmap: s.cmap });
  el.dataset.legend = [spec.meaning || "", ...spec.legend.map((e) => e.text)].join(" | ");
  el.dataset.panels = spec.panels.map((p) => p.title).join(" | ");
  el.dataset.draws = String(Number(el.dataset.draws || 0) + 1);
  el.dataset.drawnAt = String(performance.now());
  el.dataset.drawMs = String(performance.now() - t0);
}

export function hit(state, x, y) {
  const lay = state.layout, spec = state.spec;
  if (!lay) return null;
  for (let i = 0; i < spec.panels.length; i++) {
    const b = lay.boxes[i], p = spec.panels[i];
    if (x >= b.x && x < b.x + b.w && y >= b.y && y < b.y + b.h) {
      const head = Math.min(p.H - 1, Math.floor(((x - b.x) / b.w) * p.H));
      const layer = Math.min(p.L - 1, Math.floor(((y - b.y) / b.h) * p.L));
      return { panel: i, layer, head };
    }
  }
  return null;
}

export function describe(state, at) {
  const spec = state.spec, p = spec.panels[at.panel];
  const idx = state.offsets[at.panel] + at.layer * p.H + at.head;
  const cells = typed(state.cells, Float32Array);
  const ranks = typed(state.ranks, Int32Array);
  const f = bytes(state.flags)[idx];
  const raw = cells[2 * idx], shown = cells[2 * idx + 1];
  let text = `L${at.layer}.H${at.head} \u00b7 ${p.title}: ${p.value_name || "score"} ${fmt(raw)}`;
  if (spec.raw_unit) text += ` ${spec.raw_unit}`;
  if (p.show_shown) text += ` (shown ${fmt(shown)} ${spec.unit})`;
  if (ranks[idx] > 0) text += `, rank ${ranks[idx]} of ${p.L * p.H} by s`;
  if (spec.selecting) text += f & FLAG.selected ? " \u00b7 selected" : " \u00b7 not selected";
  if (f & FLAG.significant) text += " \u00b7 95% CI excludes 0";
  if (f & FLAG.verified) text += " \u00b7 verified (exact)";
  else if (spec.has_verified) text += " \u00b7 estimate";
  if (f & FLAG.missing) text += " \u00b7 missing";
  return text + (spec.clickable ? " \u2014 click for details" : "");
}

function ensureRoot(el) {
  let root = el.querySelector(".hl-root");
  if (root) return root;
  root = document.createElement("div");
  root.className = "hl-root";
  root.style.cssText = "width:100%;font:13px sans-serif;color:#222;";
  root.innerHTML =
    '<div class="hl-hint" style="color:#555;margin:2px 0 4px"></div>' +
    '<canvas style="display:block;cursor:crosshair"></canvas>' +
    '<div class="hl-readout" style="min-height:1.5em;margin-top:4px;font-family:monospace"></div>' +
    '<div class="hl-status" style="height:1.4em;overflow:hidden;white-space:nowrap;text-overflow:ellipsis;color:#555"></div>';
  el.appendChild(root);
  return root;
}

// model: anywidget's model, or a stand-in with get/on/send (saved pages)
export function mount(model, el) {
  const root = ensureRoot(el);
  const canvas = root.querySelector("canvas");
  const readout = root.querySelector(".hl-readout");
  const hint = root.querySelector(".hl-hint");
  const status = root.querySelector(".hl-status");
  const state = {};
  el.headlabState = state; // for tests and the curious: what is drawn, and where
  let queued = false;
  const redraw = () => {
    queued = false;
    state.spec = model.get("spec");
    state.colors = model.get("colors");
    state.cells = model.get("cells");
    state.ranks = model.get("ranks");
    state.flags = model.get("flags");
    if (state.spec && state.spec.version !== state.version) {
      state.version = state.spec.version;
      state.pick = null;
      readout.textContent = ""; // a readout of other numbers is never left standing
    }
    hint.textContent = (state.spec && state.spec.hint) || "";
    draw(state, el);
  };
  const schedule = () => {
    if (!queued) {
      queued = true;
      queueMicrotask(redraw);
    }
  };
  for (const name of ["spec", "colors", "cells", "ranks", "flags"]) model.on("change:" + name, schedule);
  const showStatus = () => {
    status.textContent = model.get("status") || "";
  };
  model.on("change:status", showStatus);
  canvas.addEventListener("mousemove", (ev) => {
    const r = canvas.getBoundingClientRect();
    const at = hit(state, ev.clientX - r.left, ev.clientY - r.top);
    readout.textContent = at ? describe(state, at) : "";
  });
  canvas.addEventListener("mouseleave", () => {
    readout.textContent = "";
  });
  canvas.addEventListener("click", (ev) => {
    if (!state.spec || !state.spec.clickable) return;
    const r = canvas.getBoundingClientRect();
    const at = hit(state, ev.clientX - r.left, ev.clientY - r.top);
    if (!at) return;
    state.pick = at;
    draw(state, el);
    const p = state.spec.panels[at.panel];
    status.textContent = `\u23f3 loading head details of L${at.layer}.H${at.head} \u00b7 ${p.title} \u2026`;
    model.send({ event: "click", panel: at.panel, layer: at.layer, head: at.head });
  });
  let width = 0;
  const resize = new ResizeObserver(() => {
    const w = Math.floor(root.clientWidth);
    if (w && Math.abs(w - width) > 2) {
      width = w;
      schedule();
    }
  });
  resize.observe(root);
  redraw();
  showStatus();
  return () => resize.disconnect();
}

export default {
  render({ model, el }) {
    return mount(model, el);
  },
};
