// The head grid drawn in the browser from numbers (headlab.viz.canvas): the explorer's anywidget and
// saved HTML pages run this same module. It draws the panels the kernel computed (colours, marks, one
// colour bar, a legend), answers hover from the numbers it holds, and sends clicks back to the kernel.
//
// State (traits): spec (JSON: panels, columns, scale, legend, hint), colors (RGBA uint8 per cell),
// cells (float32 raw, shown per cell), ranks (int32 per cell), flags (uint8 per cell, FLAG bits), status.
// Each draw stamps el.dataset.draws (a count) and el.dataset.drawnAt (performance.now()).

const FLAG = { selected: 1, significant: 2, above: 4, below: 8, verified: 16, missing: 32 };
const FONT = "12px sans-serif";
const TICK_FONT = "11px sans-serif";
const MIN_W = 560;

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
  // never narrower than ~150 px a panel: fewer columns on a narrow output
  while (cols > 1 && (width - left - cbarW - (cols - 1) * gap) / cols < 150) cols -= spec.pair ? 2 : 1;
  cols = Math.max(cols, 1);
  const pw = Math.floor((width - left - cbarW - (cols - 1) * gap) / cols);
  const maxL = Math.max(...panels.map((p) => p.L));
  const ph = Math.max(120, Math.min(340, Math.round(pw * Math.min(1.1, Math.max(0.6, maxL / 30)))));
  const rows = Math.ceil(n / cols);
  const boxes = panels.map((p, i) => ({
    x: left + (i % cols) * (pw + gap),
    y: top + Math.floor(i / cols) * (ph + rowGap),
    w: pw,
    h: ph,
  }));
  const height = top + rows * ph + (rows - 1) * rowGap + 62;
  return { boxes, cols, rows, height, cbar: { x: width - cbarW + 14, y: top, w: 14, h: Math.min(height - top - 62, 2 * ph) } };
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
  const colors = bytes(state.colors);
  const flags = bytes(state.flags);
  const offs = offsets(spec);
  spec.panels.forEach((p, i) => {
    const b = lay.boxes[i];
    const cw = b.w / p.H, ch = b.h / p.L, o = offs[i];
    for (let l = 0; l < p.L; l++) {
      for (let h = 0; h < p.H; h++) {
        const c = (o + l * p.H + h) * 4;
        ctx.fillStyle = `rgb(${colors[c]},${colors[c + 1]},${colors[c + 2]})`;
        ctx.fillRect(b.x + h * cw, b.y + l * ch, Math.ceil(cw), Math.ceil(ch));
      }
    }
    for (let l = 0; l < p.L; l++) {
      for (let h = 0; h < p.H; h++) {
        const f = flags[o + l * p.H + h];
        const cx = b.x + (h + 0.5) * cw, cy = b.y + (l + 0.5) * ch;
        const r = Math.max(2.5, Math.min(cw, ch) * 0.28);
        if (f & FLAG.verified) {
          ctx.strokeStyle = "#000";
          ctx.lineWidth = 1.2;
          ctx.strokeRect(b.x + h * cw + 1, b.y + l * ch + 1, cw - 2, ch - 2);
        }
        if (f & FLAG.significant) {
          ctx.beginPath();
          ctx.arc(cx, cy, r, 0, 2 * Math.PI);
          ctx.fillStyle = "#fff";
          ctx.fill();
          ctx.strokeStyle = "#000";
          ctx.lineWidth = 1;
          ctx.stroke();
        }
        if (f & (FLAG.above | FLAG.below)) {
          const up = f & FLAG.above ? -1 : 1;
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
  ctx.save();
  ctx.translate(cb.x + cb.w + 58, cb.y + cb.h / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  ctx.fillText(s.label, 0, 0);
  ctx.restore();
  // legend under the grid, with a grey swatch
  let x = 44;
  const y = lay.height - 11;
  ctx.font = FONT;
  ctx.textBaseline = "middle";
  ctx.textAlign = "left";
  for (const entry of spec.legend) {
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
  el.dataset.legend = spec.legend.map((e) => e.text).join(" | ");
  el.dataset.panels = spec.panels.map((p) => p.title).join(" | ");
  el.dataset.draws = String(Number(el.dataset.draws || 0) + 1);
  el.dataset.drawnAt = String(performance.now());
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
    '<div class="hl-status" style="min-height:1.2em;color:#555"></div>';
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
