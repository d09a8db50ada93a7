// SIMs: a table (IMSI, status, group, session address, writes today, last write), a filter,
// and the lifecycle actions, with a confirmation for the destructive ones.
import { control, getAll, operatorId, v1 } from "../api.js";
import { busy, confirmAction, count, h, say, section, table, timeEl } from "../dom.js";

/** Every action: label, whether to confirm it, and how it is done (SORACOM API or the
 * control plane for barring, which is the subscriber's own switch). */
export const ACTIONS = {
  activate: { label: "Activate", run: (imsi) => v1("POST", `/subscribers/${imsi}/activate`) },
  suspend: { label: "Suspend", confirm: "Suspend SIM {imsi}? Its writes get no answer until it is activated again.", run: (imsi) => v1("POST", `/subscribers/${imsi}/suspend`) },
  standby: { label: "Set to standby", run: (imsi) => v1("POST", `/subscribers/${imsi}/set_to_standby`) },
  deactivate: { label: "Deactivate", confirm: "Deactivate SIM {imsi}? Its writes get no answer until it is activated again.", run: (imsi) => v1("POST", `/subscribers/${imsi}/deactivate`) },
  terminate: {
    label: "Terminate",
    confirm: "Terminate SIM {imsi}? This is final: a terminated SIM never writes again.",
    run: async (imsi) => {
      await v1("POST", `/subscribers/${imsi}/enable_termination`);
      await v1("POST", `/subscribers/${imsi}/terminate`);
    },
  },
  bar: { label: "Bar", confirm: "Bar SIM {imsi}? It loses its data session at once until unbarred.", run: (imsi) => control("POST", `/sims/${imsi}/block`) },
  unbar: { label: "Unbar", run: (imsi) => control("POST", `/sims/${imsi}/unblock`) },
};

/** Run an action on a SIM, asking first when it is destructive; false when cancelled. */
export async function simAction(name, imsi) {
  const action = ACTIONS[name];
  if (action.confirm && !(await confirmAction(action.confirm.replace("{imsi}", imsi), action.label))) return false;
  await action.run(imsi);
  return true;
}

export function actionForm(imsi, out, done) {
  const id = `action-${imsi}`;
  const select = h("select", { id, name: "action" }, Object.entries(ACTIONS).map(([name, a]) => h("option", { value: name }, a.label)));
  const form = h("form", { class: "inline action", "data-imsi": imsi, onsubmit: (e) => {
    e.preventDefault();
    const button = form.querySelector("button");
    busy(button, out, async () => {
      if (await simAction(select.value, imsi)) {
        say(out, `${ACTIONS[select.value].label}: done for ${imsi}.`);
        await done();
      }
    });
  } }, h("label", { for: id, class: "visually-hidden" }, `Action for ${imsi}`), select, h("button", { type: "submit" }, "Apply"));
  return form;
}

export async function render(view) {
  const out = h("p", { class: "message", role: "status" });
  const filter = h("input", { type: "search", id: "sim-filter", placeholder: "IMSI, status, group or address", autocomplete: "off" });
  const holder = h("div");
  let rows = [];
  let groups = new Map();
  const draw = () => {
    const words = filter.value.trim().toLowerCase().split(/\s+/).filter(Boolean);
    const shown = rows.filter((s) => {
      const text = `${s.imsi} ${s.status} ${s.barred ? "barred" : ""} ${groups.get(s.groupId) || ""} ${s.groupId || ""} ${s.sessionAddress || ""}`.toLowerCase();
      return words.every((w) => text.includes(w));
    });
    holder.replaceChildren(table(`SIMs of ${operatorId()} (${shown.length} of ${rows.length})`, [
      { label: "IMSI", cell: (s) => h("a", { href: `#/sims/${s.imsi}` }, s.imsi) },
      { label: "Status", cell: (s) => h("span", { class: `badge ${s.status}` }, s.status, s.barred ? " · barred" : "") },
      { label: "Group", cell: (s) => (s.groupId ? groups.get(s.groupId) || s.groupId : "none") },
      { label: "Session address", cell: (s) => s.sessionAddress || "none" },
      { label: "Writes today", class: "num", cell: (s) => `${count(s.writesToday)} / ${count(s.included)}` },
      { label: "Last write", cell: (s) => (s.lastWrite ? timeEl(s.lastWrite) : "never") },
      { label: "Actions", cell: (s) => actionForm(s.imsi, out, load) },
    ], shown, "No SIM matches."));
  };
  const load = async () => {
    const op = operatorId();
    const [sims, resources, groupList] = await Promise.all([
      control("GET", `/sims?operatorId=${encodeURIComponent(op)}`),
      getAll("/data/metadata/resources", { resource_type: "Subscriber", limit: 1000 }),
      getAll("/groups"),
    ]);
    const included = sims.length ? (await control("GET", `/sims/${sims[0].imsi}/quota`)).included : 2000;
    const last = new Map(resources.map((r) => [r.resourceId, r.lastModifiedTime]));
    groups = new Map(groupList.map((g) => [g.groupId, (g.tags && g.tags.name) || g.groupId]));
    rows = sims.map((s) => ({ ...s, included, lastWrite: last.get(s.imsi) }));
    draw();
  };
  filter.addEventListener("input", draw);
  const create = h("button", { type: "button", id: "new-sim" }, "New SIM");
  create.addEventListener("click", () => busy(create, out, async () => {
    const made = await control("POST", "/sims", { operatorId: operatorId() });
    say(out, `Created SIM ${made.imsi} at ${made.sessionAddress}.`);
    await load();
  }));
  await load();
  view.replaceChildren(
    h("h1", {}, "SIMs"),
    section("Find and act", h("div", { class: "controls" },
      h("label", { for: "sim-filter" }, "Filter"), filter, create), out),
    holder,
  );
}
