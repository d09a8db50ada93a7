// A SIM's data: a chart of every numeric key, a table of entries (JSON pretty-printed, binary
// as hex and base64, what the Binary Parser made of it), paging back through history, a
// category filter, live updates with a pause button, and deleting an entry.
import { control, v1 } from "../api.js";
import { lineChart, numericSeries } from "../chart.js";
import { busy, confirmAction, count, h, localTime, say, section, timeEl } from "../dom.js";
import { inputValue } from "./overview.js";
import { actionForm } from "./sims.js";

const PAGE = 100;
const DEVICE = new Set(["http", "tcp", "udp"]);

/** Bytes of base64 text as hex pairs, or null when it is not base64. */
export function base64ToHex(text) {
  try {
    return Array.from(atob(text), (c) => c.charCodeAt(0).toString(16).padStart(2, "0")).join(" ");
  } catch {
    return null;
  }
}

/** How an entry's content is shown: {kind: "json"|"binary"|"parsed"|"text", ...}. */
export function describe(entry) {
  let value;
  try { value = JSON.parse(entry.content); } catch { return { kind: "text", text: entry.content }; }
  if (value && typeof value === "object" && !Array.isArray(value)) {
    const keys = Object.keys(value);
    if (keys.length === 1 && keys[0] === "payload" && typeof value.payload === "string") {
      const hex = base64ToHex(value.payload);
      if (hex !== null) return { kind: "binary", base64: value.payload, hex };
    }
    if (value.binaryParserEnabled === true) return { kind: "parsed", text: JSON.stringify(value, null, 2) };
  }
  return { kind: "json", text: JSON.stringify(value, null, 2) };
}

function contentCell(entry) {
  const shown = describe(entry);
  if (shown.kind === "binary") {
    return h("dl", { class: "binary" }, h("dt", {}, "hex"), h("dd", {}, h("code", {}, shown.hex)),
      h("dt", {}, "base64"), h("dd", {}, h("code", {}, shown.base64)));
  }
  return h("div", {}, shown.kind === "parsed" ? h("p", { class: "badge parsed" }, "Binary Parser output") : null, h("pre", {}, shown.text));
}

/** Entries merged by time (newest first; a write at the same millisecond replaces). */
export function mergeEntries(known, fresh) {
  const byTime = new Map(known.map((e) => [e.time, e]));
  for (const e of fresh) byTime.set(e.time, e);
  return [...byTime.values()].sort((a, b) => b.time - a.time);
}

export async function render(view, ctx) {
  const imsi = ctx.args[0];
  const base = `/subscribers/${encodeURIComponent(imsi)}/data`;
  let entries = [];
  let nextKey = null;
  let zoom = null;
  let paused = false;
  let missed = 0;
  const hidden = new Set();
  const out = h("p", { class: "message", role: "status" });
  const chartBox = h("div", { class: "chart", id: "chart" });
  const tableBox = h("div");
  const info = h("div");
  const category = h("select", { id: "category" }, h("option", { value: "" }, "all"));
  const from = h("input", { type: "datetime-local", id: "zoom-from", step: "1" });
  const to = h("input", { type: "datetime-local", id: "zoom-to", step: "1" });
  const pause = h("button", { type: "button", id: "pause", "aria-pressed": "false" }, "Pause live updates");
  const older = h("button", { type: "button", id: "older" }, "Older entries");
  const liveNote = h("span", { class: "muted", id: "live-note" });

  const shownEntries = () => entries.filter((e) => !category.value || e.category === category.value);
  const setZoom = (range) => {
    zoom = range;
    from.value = range ? inputValue(range[0]) : "";
    to.value = range ? inputValue(range[1]) : "";
    draw();
  };
  const draw = () => {
    const shown = shownEntries();
    lineChart(chartBox, numericSeries(shown), { domain: zoom, hidden, onZoom: (a, b) => setZoom([a, b]), title: `Data of SIM ${imsi}` });
    const categories = [...new Set(entries.map((e) => e.category).filter(Boolean))].sort();
    const keep = category.value;
    category.replaceChildren(h("option", { value: "" }, "all"), ...categories.map((c) => h("option", { value: c, selected: c === keep }, c)));
    const rows = shown.filter((e) => !zoom || (e.time >= zoom[0] && e.time <= zoom[1]));
    const body = rows.map((e) => h("tr", { "data-time": e.time },
      h("td", { "data-label": "Time" }, timeEl(e.time, true)),
      h("td", { "data-label": "Content type" }, e.contentType, e.category ? h("span", { class: "muted" }, ` · ${e.category}`) : null),
      h("td", { "data-label": "Content" }, contentCell(e)),
      h("td", { "data-label": "" }, deleteButton(e))));
    tableBox.replaceChildren(h("div", { class: "table-wrap" }, h("table", { id: "entries" },
      h("caption", {}, `${rows.length} entr${rows.length === 1 ? "y" : "ies"} shown, ${entries.length} loaded${nextKey ? ", more in history" : ""}`),
      h("thead", {}, h("tr", {}, ["Time (local)", "Content type", "Content", ""].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, body.length ? body : h("tr", {}, h("td", { colspan: 4, class: "empty" }, "No entries yet: write as this SIM and they appear here."))))));
    older.hidden = !nextKey;
  };
  const deleteButton = (entry) => {
    const button = h("button", { type: "button", class: "danger small", "aria-label": `Delete the entry of ${localTime(entry.time, true)}` }, "Delete");
    button.addEventListener("click", () => busy(button, out, async () => {
      if (!(await confirmAction(`Delete the entry of ${localTime(entry.time, true)}? It cannot be restored.`, "Delete"))) return;
      await v1("DELETE", `/data/Subscriber/${encodeURIComponent(imsi)}/${entry.time}`);
      entries = entries.filter((e) => e.time !== entry.time);
      say(out, "Entry deleted.");
      draw();
    }));
    return button;
  };
  const loadInfo = async () => {
    const sim = await control("GET", `/sims/${encodeURIComponent(imsi)}`);
    info.replaceChildren(h("dl", { class: "stats" },
      h("div", { class: "stat" }, h("dt", {}, "Status"), h("dd", { id: "sim-status" }, sim.status, sim.barred ? " · barred" : "")),
      h("div", { class: "stat" }, h("dt", {}, "Group"), h("dd", {}, sim.groupId || "none")),
      h("div", { class: "stat" }, h("dt", {}, "Session address"), h("dd", {}, sim.sessionAddress || "none")),
      h("div", { class: "stat" }, h("dt", {}, "Writes today"), h("dd", {}, count(sim.writesToday)))),
    actionForm(imsi, out, loadInfo));
  };
  const newest = async () => {
    const { data, headers } = await v1("GET", base, { params: { limit: PAGE } });
    if (!entries.length) nextKey = headers.get("x-soracom-next-key");
    entries = mergeEntries(entries, data);
    draw();
  };
  let pending = null;
  const onRequests = (event) => {
    const mine = event.detail.filter((r) => r.imsi === imsi && DEVICE.has(r.protocol) && r.status >= 200 && r.status < 300);
    if (!mine.length) return;
    if (paused) {
      missed += mine.length;
      liveNote.textContent = `${missed} new write(s) while paused`;
      return;
    }
    if (!pending) pending = setTimeout(() => { pending = null; Promise.all([newest(), loadInfo()]).catch((e) => say(out, e.message, true)); }, 150);
  };
  const onGap = () => { if (!paused) newest().catch(() => {}); };

  pause.addEventListener("click", () => {
    paused = !paused;
    pause.setAttribute("aria-pressed", String(paused));
    pause.textContent = paused ? "Resume live updates" : "Pause live updates";
    if (!paused && missed) { missed = 0; liveNote.textContent = ""; newest().catch((e) => say(out, e.message, true)); }
  });
  older.addEventListener("click", () => busy(older, out, async () => {
    const { data, headers } = await v1("GET", base, { params: { limit: PAGE, last_evaluated_key: nextKey } });
    nextKey = headers.get("x-soracom-next-key");
    entries = mergeEntries(entries, data);
    draw();
  }));
  category.addEventListener("change", draw);
  const zoomForm = h("form", { class: "inline", onsubmit: (e) => {
    e.preventDefault();
    const a = new Date(from.value).getTime();
    const b = new Date(to.value).getTime();
    if (Number.isNaN(a) || Number.isNaN(b) || a >= b) { say(out, "Choose a start before the end.", true); return; }
    setZoom([a, b + 999]);
  } }, h("label", { for: "zoom-from" }, "From"), from, h("label", { for: "zoom-to" }, "to"), to,
  h("button", { type: "submit" }, "Zoom"), h("button", { type: "button", id: "zoom-reset", onclick: () => setZoom(null) }, "Show all"));

  await Promise.all([loadInfo(), newest()]);
  view.replaceChildren(
    h("p", { class: "crumbs" }, h("a", { href: "#/sims" }, "SIMs"), " / ", imsi),
    h("h1", {}, `SIM ${imsi}`),
    info,
    out,
    section("Data",
      h("div", { class: "controls" }, pause, liveNote, h("label", { for: "category" }, "Category"), category),
      h("p", { class: "muted" }, "Drag across the chart to zoom to a time range; hover for the UTC time."),
      zoomForm, chartBox),
    section("Entries", tableBox, older),
  );
  draw(); // again, now that the chart's box has its width
  ctx.live.addEventListener("requests", onRequests);
  ctx.live.addEventListener("gap", onGap);
  return () => {
    ctx.live.removeEventListener("requests", onRequests);
    ctx.live.removeEventListener("gap", onGap);
    clearTimeout(pending);
  };
}
