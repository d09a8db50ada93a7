// Requests and faults: the request log, live, filtered by SIM and protocol; fault rules (add,
// see hits, remove); the errors of GET /v1/logs.
import { control, getAll } from "../api.js";
import { busy, confirmAction, h, say, section, table, timeEl } from "../dom.js";

const PROTOCOLS = ["http", "tcp", "udp", "api", "dns"];
const EFFECTS = ["status", "delay", "drop", "duplicate", "maintenance"];
const KEEP = 200;

/** A fault rule from the form's fields: empty fields left out, numbers as numbers. */
export function faultRule(fields) {
  const rule = {};
  for (const [key, raw] of Object.entries(fields)) {
    const value = String(raw).trim();
    if (!value) continue;
    rule[key] = ["status", "delayMs", "count", "probability"].includes(key) ? Number(value) : value;
  }
  return rule;
}

/** Whether a request log record passes the filters. */
export function matches(record, imsi, protocol) {
  return (!imsi || (record.imsi || "").includes(imsi)) && (!protocol || record.protocol === protocol);
}

const REQUEST_COLUMNS = [
  { label: "Time", cell: (r) => timeEl(r.time, true) },
  { label: "Protocol", cell: (r) => r.protocol },
  { label: "SIM", cell: (r) => (r.imsi ? h("a", { href: `#/sims/${r.imsi}` }, r.imsi) : "–") },
  { label: "Peer", cell: (r) => r.peer },
  { label: "Status", class: "num", cell: (r) => h("span", { class: r.status >= 400 || r.status === 0 ? "bad" : "" }, String(r.status)) },
  { label: "Target", cell: (r) => r.target },
  { label: "Reason", cell: (r) => r.reason || "" },
  { label: "ms", class: "num", cell: (r) => r.latencyMs.toFixed(1) },
];

function field(id, label, input) {
  return h("div", { class: "field" }, h("label", { for: id }, label), input);
}

export async function render(view, ctx) {
  let records = await control("GET", `/requests?limit=${KEEP}`);
  const imsi = h("input", { id: "req-imsi", type: "search", inputmode: "numeric", autocomplete: "off" });
  const protocol = h("select", { id: "req-protocol" }, h("option", { value: "" }, "any"), PROTOCOLS.map((p) => h("option", { value: p }, p)));
  const log = h("div", { id: "request-log" });
  const drawLog = () => {
    const shown = records.filter((r) => matches(r, imsi.value.trim(), protocol.value));
    log.replaceChildren(table(`Requests, newest first (${shown.length} of the last ${records.length})`, REQUEST_COLUMNS, shown, "No request matches."));
  };
  imsi.addEventListener("input", drawLog);
  protocol.addEventListener("change", drawLog);

  const faultsBox = h("div");
  const faultOut = h("p", { class: "message" });
  const drawFaults = async () => {
    const rules = await control("GET", "/faults");
    faultsBox.replaceChildren(table("Fault rules", [
      { label: "Rule", cell: (r) => r.id },
      { label: "Effect", cell: (r) => `${r.effect}${r.status ? " " + r.status : ""}${r.delayMs ? ` ${r.delayMs} ms` : ""}` },
      { label: "Matches", cell: (r) => ["imsi", "groupId", "protocol", "operation"].filter((k) => r[k]).map((k) => `${k}=${r[k]}`).join(", ") || "everything" },
      { label: "Hits", class: "num", cell: (r) => String(r.hits) },
      { label: "Remaining", class: "num", cell: (r) => (r.remaining === undefined ? "∞" : String(r.remaining)) },
      { label: "", cell: (r) => {
        const remove = h("button", { type: "button", class: "danger small", "aria-label": `Remove rule ${r.id}` }, "Remove");
        remove.addEventListener("click", () => busy(remove, faultOut, async () => {
          if (!(await confirmAction(`Remove fault rule ${r.id}?`, "Remove"))) return;
          await control("DELETE", `/faults/${r.id}`);
          say(faultOut, `Rule ${r.id} removed.`);
          await drawFaults();
        }));
        return remove;
      } },
    ], rules, "No fault rules: every request is answered normally."));
  };
  const inputs = {
    effect: h("select", { id: "f-effect" }, EFFECTS.map((e) => h("option", { value: e }, e))),
    status: h("input", { id: "f-status", type: "number", min: "400", max: "599", value: "500" }),
    delayMs: h("input", { id: "f-delay", type: "number", min: "0" }),
    protocol: h("select", { id: "f-protocol" }, h("option", { value: "" }, "any"), PROTOCOLS.filter((p) => p !== "dns").map((p) => h("option", { value: p }, p))),
    imsi: h("input", { id: "f-imsi", inputmode: "numeric", autocomplete: "off" }),
    operation: h("input", { id: "f-operation", autocomplete: "off", placeholder: "e.g. listSubscribers" }),
    count: h("input", { id: "f-count", type: "number", min: "1" }),
  };
  const addForm = h("form", { class: "fault-form", onsubmit: (e) => {
    e.preventDefault();
    const fields = Object.fromEntries(Object.entries(inputs).map(([k, el]) => [k, el.value]));
    if (fields.effect !== "status") delete fields.status;
    if (fields.effect !== "delay") delete fields.delayMs;
    busy(addForm.querySelector("button"), faultOut, async () => {
      const made = await control("POST", "/faults", faultRule(fields));
      say(faultOut, `Rule ${made.id} added.`);
      await drawFaults();
    });
  } },
  field("f-effect", "Effect", inputs.effect), field("f-status", "Status (effect status)", inputs.status),
  field("f-delay", "Delay, ms (effect delay)", inputs.delayMs), field("f-protocol", "Protocol", inputs.protocol),
  field("f-imsi", "SIM (IMSI)", inputs.imsi), field("f-operation", "API operation", inputs.operation),
  field("f-count", "Only the next N", inputs.count),
  h("div", { class: "buttons" }, h("button", { type: "submit" }, "Add rule")));

  const errors = await getAll("/logs", { limit: 100 }, 300);
  await drawFaults();
  drawLog();
  view.replaceChildren(
    h("h1", {}, "Requests and faults"),
    section("Request log (live)",
      h("div", { class: "controls" }, field("req-imsi", "SIM", imsi), field("req-protocol", "Protocol", protocol)),
      log),
    section("Fault rules", addForm, faultOut, faultsBox),
    section("Errors (GET /v1/logs)", table("Why writes were refused, newest first", [
      { label: "Time", cell: (e) => timeEl(e.time, true) },
      { label: "Service", cell: (e) => e.service },
      { label: "Resource", cell: (e) => `${e.resourceType} ${e.resourceId}` },
      { label: "Level", cell: (e) => e.logLevel },
      { label: "Message", cell: (e) => h("code", {}, JSON.stringify(e.body)) },
    ], errors, "No errors logged.")),
  );
  let faultTimer = null;
  const onRequests = (event) => {
    records = [...event.detail.slice().reverse(), ...records].slice(0, KEEP);
    drawLog();
    // hits change as requests arrive: refresh the rules now and then
    if (!faultTimer) faultTimer = setTimeout(() => { faultTimer = null; drawFaults().catch(() => {}); }, 3000);
  };
  ctx.live.addEventListener("requests", onRequests);
  return () => { ctx.live.removeEventListener("requests", onRequests); clearTimeout(faultTimer); };
}
