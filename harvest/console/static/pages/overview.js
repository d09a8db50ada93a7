// Overview: the clock and its controls, operators, SIMs by status, writes today against the
// bundle, this month's charges, listeners and storage.
import { control, operatorId } from "../api.js";
import { busy, count, h, localTime, say, section, table, usd, utcTime } from "../dom.js";

const pad = (n) => String(n).padStart(2, "0");

/** A datetime-local input's value for ms, in local time. */
export function inputValue(ms) {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

const UNITS = [["seconds", 1], ["minutes", 60], ["hours", 3600], ["days", 86400]];

function clockCard(state, ctx, redraw) {
  const out = h("p", { class: "message" });
  const shown = h("p", { class: "big", id: "clock-now" },
    h("span", { class: state.frozen ? "badge frozen" : "badge running" }, state.frozen ? "frozen" : "running"), " ",
    h("time", { datetime: new Date(state.now).toISOString() }, localTime(state.now)));
  const after = async (next) => { ctx.setClock(next); await redraw(); };
  const toggle = h("button", { type: "button", id: "clock-toggle" }, state.frozen ? "Let it run" : "Freeze");
  toggle.addEventListener("click", () => busy(toggle, out, async () => after(await control("PUT", "/clock", { frozen: !state.frozen }))));
  const at = h("input", { type: "datetime-local", id: "clock-at", step: "1", value: inputValue(state.now) });
  const set = h("form", { class: "inline", onsubmit: (e) => {
    e.preventDefault();
    const ms = new Date(at.value).getTime();
    if (Number.isNaN(ms)) { say(out, "Choose a date and time.", true); return; }
    busy(e.submitter || set.querySelector("button"), out, async () => after(await control("PUT", "/clock", { now: ms })));
  } }, h("label", { for: "clock-at" }, "Set to (local time)"), at, h("button", { type: "submit" }, "Set"));
  const amount = h("input", { type: "number", id: "advance-by", min: "0", step: "any", value: "1", inputmode: "decimal" });
  const unit = h("select", { id: "advance-unit", "aria-label": "Unit" }, UNITS.map(([name, s]) => h("option", { value: s, selected: name === "days" }, name)));
  const advance = h("form", { class: "inline", onsubmit: (e) => {
    e.preventDefault();
    const seconds = Number(amount.value) * Number(unit.value);
    busy(advance.querySelector("button"), out, async () => after(await control("POST", "/clock/advance", { seconds })));
  } }, h("label", { for: "advance-by" }, "Advance by"), amount, unit, h("button", { type: "submit", id: "advance" }, "Advance"));
  return section("Clock", shown, h("p", { class: "muted" }, `UTC ${utcTime(state.now)}; every timestamp, day, bill and token expiry follows this clock.`),
    h("div", { class: "controls" }, toggle, set, advance), out);
}

function stat(label, value, note) {
  return h("div", { class: "stat" }, h("dt", {}, label), h("dd", {}, value, note ? h("span", { class: "muted" }, ` ${note}`) : null));
}

export async function render(view, ctx) {
  const draw = async () => {
    const op = operatorId();
    const [state, operators, sims, meter, health] = await Promise.all([
      control("GET", "/clock"),
      control("GET", "/operators"),
      control("GET", `/sims?operatorId=${encodeURIComponent(op)}`),
      control("GET", `/operators/${encodeURIComponent(op)}/meter`),
      control("GET", "/health"),
    ]);
    const included = sims.length ? (await control("GET", `/sims/${sims[0].imsi}/quota`)).included : 2000;
    const byStatus = {};
    for (const s of sims) byStatus[s.status] = (byStatus[s.status] || 0) + 1;
    const barred = sims.filter((s) => s.barred).length;
    const writes = sims.reduce((sum, s) => sum + (s.writesToday || 0), 0);
    const listeners = Object.entries(health.listeners);
    view.replaceChildren(
      h("h1", {}, "Overview"),
      clockCard(state, ctx, draw),
      h("div", { class: "grid" },
        section("SIMs", h("dl", { class: "stats", id: "sims-by-status" },
          Object.keys(byStatus).sort().map((status) => stat(status, count(byStatus[status]))),
          stat("barred", count(barred)),
          stat("total", h("a", { href: "#/sims" }, count(sims.length)))),
          h("ul", { class: "sim-links", "aria-label": "SIMs" }, sims.slice(0, 5).map((s) => h("li", {},
            h("a", { href: `#/sims/${s.imsi}` }, s.imsi), ` ${s.status}, ${count(s.writesToday)} writes today`))),
          sims.length > 5 ? h("p", {}, h("a", { href: "#/sims" }, `All ${count(sims.length)} SIMs`)) : null,
        ),
        section("Writes today", h("dl", { class: "stats" },
          stat("writes (UTC day)", h("span", { id: "writes-today" }, count(writes)), `of ${count(included * sims.length)} included`),
          stat("per SIM", `${count(included)} included`, "(air-global-terms, Schedule item 12)"))),
        section("This month", h("dl", { class: "stats" },
          stat("charges so far", h("span", { id: "month-charges" }, usd(meter.charges))),
          stat("balance ceiling", meter.balanceCeiling === null ? "none" : usd(meter.balanceCeiling),
            meter.refusingWrites ? "(passed: writes refused)" : "")),
          h("p", {}, h("a", { href: "#/billing" }, "Usage and bills"))),
      ),
      section("Operators", table("Operators", [
        { label: "Operator", cell: (o) => o.operatorId },
        { label: "Root email", cell: (o) => o.email },
        { label: "", cell: (o) => (o.operatorId === op ? "shown in this console" : "") },
      ], operators)),
      section("Listeners and storage",
        h("p", {}, `Status ${health.status}; storage: ${health.store === "sqlite" ? "SQLite (durable)" : health.store}.`),
        table("Listeners", [
          { label: "Listener", cell: ([name]) => name },
          { label: "Addresses", cell: ([, where]) => where.join(", ") },
        ], listeners)),
    );
  };
  await draw();
  // Writes move the counters: redraw at most every two seconds while they arrive.
  let timer = null;
  const onRequests = (event) => {
    if (timer || !event.detail.some((r) => r.protocol !== "api")) return;
    timer = setTimeout(() => { timer = null; draw().catch(() => {}); }, 2000);
  };
  ctx.live.addEventListener("requests", onRequests);
  return () => { ctx.live.removeEventListener("requests", onRequests); clearTimeout(timer); };
}
