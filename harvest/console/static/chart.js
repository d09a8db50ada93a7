// Our own small SVG charts: lines (one per numeric key, legend, local time axis with UTC on
// hover, drag to zoom to a time range) and bars (daily amounts). The pure parts (scales, ticks,
// series, paths) are exported for the tests, which run them in the browser.

const SVG = "http://www.w3.org/2000/svg";
// Every colour has at least 4.5:1 contrast on white (WCAG AA for text).
export const PALETTE = ["#1f5fbf", "#b3261e", "#1b6e2f", "#7b3fa0", "#9a4d00", "#00696f", "#595959", "#a0185f"];

/** A linear map from domain to range, with .invert for the way back. */
export function linearScale([d0, d1], [r0, r1]) {
  const span = d1 - d0 || 1;
  const scale = (v) => r0 + ((v - d0) / span) * (r1 - r0);
  scale.invert = (p) => d0 + ((p - r0) / ((r1 - r0) || 1)) * span;
  return scale;
}

/** A "nice" step (1, 2 or 5 times a power of ten) that cuts span into about count parts. */
export function niceStep(span, count = 5) {
  const raw = Math.abs(span) / Math.max(1, count) || 1;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / magnitude;
  return (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10) * magnitude;
}

/** The domain widened to whole steps; a single value gets room around it. */
export function niceDomain(min, max, count = 5) {
  if (!(max > min)) {
    const pad = Math.abs(min) > 0 ? Math.abs(min) * 0.1 : 1;
    return niceDomain(min - pad, max + pad, count);
  }
  const step = niceStep(max - min, count);
  return [Math.floor(min / step) * step, Math.ceil(max / step) * step];
}

/** Round numbers from min to max (both included when they fall on a step). */
export function niceTicks(min, max, count = 5) {
  if (!(max > min)) return [min];
  const step = niceStep(max - min, count);
  const ticks = [];
  for (let i = Math.ceil(min / step); i * step <= max + step * 1e-9; i += 1) {
    ticks.push(Number((i * step).toPrecision(12)));
  }
  return ticks;
}

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
export const TIME_STEPS = [
  1, 2, 5, 10, 20, 50, 100, 200, 500,
  SECOND, 2 * SECOND, 5 * SECOND, 10 * SECOND, 15 * SECOND, 30 * SECOND,
  MINUTE, 2 * MINUTE, 5 * MINUTE, 10 * MINUTE, 15 * MINUTE, 30 * MINUTE,
  HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR,
  DAY, 2 * DAY, 7 * DAY, 14 * DAY, 30 * DAY, 91 * DAY, 365 * DAY,
];

/** The smallest step of TIME_STEPS that cuts span into at most count parts. */
export function timeStep(span, count = 6) {
  const wanted = span / Math.max(1, count);
  return TIME_STEPS.find((s) => s >= wanted) || TIME_STEPS[TIME_STEPS.length - 1];
}

/** Ticks from t0 to t1 on whole steps of local time (offsetMs: local minus UTC, by default
 * this browser's at t0), e.g. every hour on the hour, every day at local midnight. */
export function timeTicks(t0, t1, count = 6, offsetMs = -new Date(t0).getTimezoneOffset() * MINUTE) {
  const step = timeStep(t1 - t0, count);
  const ticks = [];
  for (let t = Math.ceil((t0 + offsetMs) / step) * step - offsetMs; t <= t1; t += step) ticks.push(t);
  return { step, ticks };
}

const pad = (n, w = 2) => String(n).padStart(w, "0");

/** A tick's label in local time, as precise as the step needs. */
export function timeLabel(ms, step) {
  const d = new Date(ms);
  if (step >= DAY) return `${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  if (step >= MINUTE) return hm;
  if (step >= SECOND) return `${hm}:${pad(d.getSeconds())}`;
  return `${hm}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** Every finite number in a JSON value's objects, by dotted path ("gps.lat"). */
export function numericFields(value, prefix = "", out = {}) {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return out;
  for (const [key, v] of Object.entries(value)) {
    const path = prefix ? `${prefix}.${key}` : key;
    if (typeof v === "number" && Number.isFinite(v)) out[path] = v;
    else if (v && typeof v === "object" && !Array.isArray(v)) numericFields(v, path, out);
  }
  return out;
}

/** Data entries as series: key -> [[time, value], ...] in time order, keys sorted. Entries
 * whose content is not a JSON object are left out. */
export function numericSeries(entries) {
  const series = new Map();
  for (const entry of entries) {
    let value;
    try { value = JSON.parse(entry.content); } catch { continue; }
    for (const [key, n] of Object.entries(numericFields(value))) {
      if (!series.has(key)) series.set(key, []);
      series.get(key).push([entry.time, n]);
    }
  }
  for (const points of series.values()) points.sort((a, b) => a[0] - b[0]);
  return new Map([...series.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** The SVG path of a line through points, through the scales x and y. */
export function linePath(points, x, y) {
  return points.map(([t, v], i) => `${i ? "L" : "M"}${x(t).toFixed(1)},${y(v).toFixed(1)}`).join("");
}

/** [min, max] of the times of every series (null when there are none). */
export function timeExtent(series) {
  let min = Infinity;
  let max = -Infinity;
  for (const points of series.values()) {
    for (const [t] of points) { min = Math.min(min, t); max = Math.max(max, t); }
  }
  return min <= max ? [min, max] : null;
}

function svg(tag, attrs = {}, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

function html(tag, cls, text) {
  const el = document.createElement(tag);
  if (cls) el.className = cls;
  if (text !== undefined) el.textContent = text;
  return el;
}

const MARGIN = { top: 12, right: 16, bottom: 28, left: 56 };

function frame(container, height) {
  const width = Math.max(280, Math.floor(container.clientWidth || 600));
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, class: "chart-svg", role: "img" });
  return { root, width, height, plotW: width - MARGIN.left - MARGIN.right, plotH: height - MARGIN.top - MARGIN.bottom };
}

function yAxis(root, f, y, ticks, format = String) {
  for (const v of ticks) {
    const py = y(v);
    root.append(svg("line", { x1: MARGIN.left, x2: MARGIN.left + f.plotW, y1: py, y2: py, class: "grid" }));
    root.append(svg("text", { x: MARGIN.left - 6, y: py + 4, class: "tick", "text-anchor": "end" }, format(v)));
  }
}

/**
 * Draw a line chart of series (Map key -> [[t, v]]) into container. options.domain: the time
 * range shown ([t0, t1], null for all); options.onZoom(t0, t1): called when the user drags
 * across the plot. Returns {svg, hidden} (hidden: the keys switched off in the legend).
 */
export function lineChart(container, series, options = {}) {
  container.replaceChildren();
  const hidden = options.hidden || new Set();
  const all = timeExtent(series);
  if (!all) {
    container.append(html("p", "empty", "No numeric values to chart yet."));
    return null;
  }
  let [t0, t1] = options.domain || all;
  if (t0 === t1) { t0 -= 30 * SECOND; t1 += 30 * SECOND; }
  const f = frame(container, options.height || 260);
  const x = linearScale([t0, t1], [MARGIN.left, MARGIN.left + f.plotW]);
  const shown = [...series.entries()].filter(([k]) => !hidden.has(k));
  const values = shown.flatMap(([, pts]) => pts.filter(([t]) => t >= t0 && t <= t1).map(([, v]) => v));
  const [v0, v1] = values.length ? niceDomain(Math.min(...values), Math.max(...values)) : [0, 1];
  const y = linearScale([v0, v1], [MARGIN.top + f.plotH, MARGIN.top]);
  const { root } = f;
  root.setAttribute("aria-label", `Line chart of ${series.size} key(s) from ${new Date(t0).toISOString()} to ${new Date(t1).toISOString()}`);
  root.append(svg("title", {}, options.title || "Values over time"));
  yAxis(root, f, y, niceTicks(v0, v1));
  const { step, ticks } = timeTicks(t0, t1, Math.max(2, Math.floor(f.plotW / 110)));
  for (const t of ticks) {
    const px = x(t);
    root.append(svg("line", { x1: px, x2: px, y1: MARGIN.top, y2: MARGIN.top + f.plotH, class: "grid" }));
    root.append(svg("text", { x: px, y: f.height - 8, class: "tick", "text-anchor": "middle" }, timeLabel(t, step)));
  }
  const clip = `clip-${Math.random().toString(36).slice(2)}`;
  root.append(svg("clipPath", { id: clip }, undefined));
  root.lastChild.append(svg("rect", { x: MARGIN.left - 4, y: MARGIN.top - 4, width: f.plotW + 8, height: f.plotH + 8 }));
  const plot = svg("g", { "clip-path": `url(#${clip})` });
  root.append(plot);
  const keys = [...series.keys()];
  for (const [key, points] of shown) {
    const colour = PALETTE[keys.indexOf(key) % PALETTE.length];
    plot.append(svg("path", { d: linePath(points, x, y), class: "line", stroke: colour, "data-key": key }));
    if (points.length <= 400) {
      for (const [t, v] of points) {
        plot.append(svg("circle", { cx: x(t).toFixed(1), cy: y(v).toFixed(1), r: 3, fill: colour, class: "point", "data-key": key, "data-time": t }));
      }
    }
  }
  root.append(svg("rect", { x: MARGIN.left, y: MARGIN.top, width: f.plotW, height: f.plotH, class: "frame" }));
  const guide = svg("line", { y1: MARGIN.top, y2: MARGIN.top + f.plotH, class: "guide", visibility: "hidden" });
  const band = svg("rect", { y: MARGIN.top, height: f.plotH, class: "band", visibility: "hidden" });
  const overlay = svg("rect", { x: MARGIN.left, y: MARGIN.top, width: f.plotW, height: f.plotH, class: "overlay" });
  root.append(guide, band, overlay);

  const wrap = html("div", "chart-wrap");
  const tip = html("div", "chart-tip");
  tip.hidden = true;
  wrap.append(root, tip);
  container.append(wrap, legend(series, keys, hidden, () => lineChart(container, series, { ...options, hidden })));

  const px = (event) => {
    const box = root.getBoundingClientRect();
    const scale = f.width / box.width;
    return Math.min(MARGIN.left + f.plotW, Math.max(MARGIN.left, (event.clientX - box.left) * scale));
  };
  let dragFrom = null;
  overlay.addEventListener("pointermove", (event) => {
    const p = px(event);
    const t = Math.round(x.invert(p));
    guide.setAttribute("x1", p); guide.setAttribute("x2", p); guide.setAttribute("visibility", "visible");
    if (dragFrom !== null) {
      band.setAttribute("x", Math.min(dragFrom, p)); band.setAttribute("width", Math.abs(p - dragFrom));
      band.setAttribute("visibility", "visible");
    }
    tip.hidden = false;
    tip.replaceChildren(...tipLines(t, shown, keys));
    tip.style.left = `${Math.min(p / f.width * 100, 70)}%`;
  });
  overlay.addEventListener("pointerleave", () => { guide.setAttribute("visibility", "hidden"); tip.hidden = true; });
  overlay.addEventListener("pointerdown", (event) => { dragFrom = px(event); overlay.setPointerCapture(event.pointerId); });
  overlay.addEventListener("pointerup", (event) => {
    const to = px(event);
    band.setAttribute("visibility", "hidden");
    if (dragFrom !== null && Math.abs(to - dragFrom) > 6 && options.onZoom) {
      const [a, b] = [x.invert(Math.min(dragFrom, to)), x.invert(Math.max(dragFrom, to))];
      dragFrom = null;
      options.onZoom(Math.floor(a), Math.ceil(b));
      return;
    }
    dragFrom = null;
  });
  return { svg: root, hidden };
}

/** What the hover box says at time t: local time, UTC, and each line's nearest value. */
function tipLines(t, shown, keys) {
  const lines = [html("strong", "", new Date(t).toLocaleString()), html("span", "utc", new Date(t).toISOString().replace("T", " ").replace("Z", " UTC"))];
  for (const [key, points] of shown) {
    let best = null;
    for (const p of points) if (best === null || Math.abs(p[0] - t) < Math.abs(best[0] - t)) best = p;
    if (best) {
      const row = html("span", "tip-row", `${key}: ${best[1]}`);
      row.style.borderLeftColor = PALETTE[keys.indexOf(key) % PALETTE.length];
      lines.push(row);
    }
  }
  return lines;
}

function legend(series, keys, hidden, redraw) {
  const list = html("ul", "legend");
  list.setAttribute("aria-label", "Legend: press a key to show or hide its line");
  for (const [key, points] of series) {
    const button = html("button", "legend-key");
    button.type = "button";
    button.setAttribute("aria-pressed", String(!hidden.has(key)));
    const swatch = html("span", "swatch");
    swatch.style.backgroundColor = PALETTE[keys.indexOf(key) % PALETTE.length];
    const last = points[points.length - 1];
    button.append(swatch, `${key} `, html("span", "last", `(last ${last[1]})`));
    button.addEventListener("click", () => {
      if (hidden.has(key)) hidden.delete(key); else hidden.add(key);
      redraw();
      const again = [...document.querySelectorAll(".legend-key")].find((b) => b.textContent.startsWith(`${key} `));
      if (again) again.focus();
    });
    list.append(html("li", "", undefined));
    list.lastChild.append(button);
  }
  return list;
}

/** Draw bars [{label, value, title}] (e.g. one per day) with a value axis; format: a value's text. */
export function barChart(container, bars, { height = 220, format = String, title = "Bars" } = {}) {
  container.replaceChildren();
  if (!bars.length) {
    container.append(html("p", "empty", "Nothing to show yet."));
    return null;
  }
  const f = frame(container, height);
  const max = Math.max(0, ...bars.map((b) => b.value));
  const [, top] = niceDomain(0, max || 1);
  const y = linearScale([0, top], [MARGIN.top + f.plotH, MARGIN.top]);
  const { root } = f;
  root.setAttribute("aria-label", title);
  root.append(svg("title", {}, title));
  yAxis(root, f, y, niceTicks(0, top, 4), format);
  const slot = f.plotW / bars.length;
  const width = Math.max(2, Math.min(40, slot * 0.7));
  const every = Math.ceil(bars.length / Math.max(1, Math.floor(f.plotW / 36)));
  bars.forEach((bar, i) => {
    const cx = MARGIN.left + slot * (i + 0.5);
    const rect = svg("rect", { x: cx - width / 2, y: y(bar.value), width, height: Math.max(0, y(0) - y(bar.value)), class: "bar", "data-value": bar.value });
    rect.append(svg("title", {}, bar.title || `${bar.label}: ${format(bar.value)}`));
    root.append(rect);
    if (i % every === 0) root.append(svg("text", { x: cx, y: f.height - 8, class: "tick", "text-anchor": "middle" }, bar.label));
  });
  root.append(svg("line", { x1: MARGIN.left, x2: MARGIN.left + f.plotW, y1: y(0), y2: y(0), class: "axis" }));
  container.append(root);
  return root;
}
