// Groups: their SoracomHarvest, SoracomAir (Binary Parser) and UnifiedEndpoint settings,
// edited as JSON and saved through the SORACOM API, whose validation and messages apply.
import { getAll, v1 } from "../api.js";
import { busy, h, say, section } from "../dom.js";

export const NAMESPACES = [
  ["SoracomHarvest", 'Harvest on or off, custom timestamp, batch write, category: {"enabled": true}'],
  ["SoracomAir", 'Binary Parser: {"binaryParserEnabled": true, "binaryParserFormat": "temp::int:16"}'],
  ["UnifiedEndpoint", 'The Unified Endpoint\'s reply format: {"responseFormat": "unified"}'],
];

/** The calls that turn `before` into `after` (objects of one namespace): a PUT of every
 * key that is new or changed, a DELETE of every key that is gone. */
export function configurationCalls(before, after) {
  const put = Object.entries(after)
    .filter(([key, value]) => JSON.stringify(before[key]) !== JSON.stringify(value))
    .map(([key, value]) => ({ key, value }));
  const removed = Object.keys(before).filter((key) => !(key in after));
  return { put, removed };
}

function namespaceForm(group, namespace, hint, reload) {
  const id = `cfg-${group.groupId}-${namespace}`;
  const before = (group.configuration && group.configuration[namespace]) || {};
  const area = h("textarea", { id, rows: 4, spellcheck: "false", "aria-describedby": `${id}-hint` });
  area.value = JSON.stringify(before, null, 2);
  const out = h("p", { class: "message" });
  const form = h("form", { class: "namespace", "data-namespace": namespace, onsubmit: (e) => {
    e.preventDefault();
    busy(form.querySelector("button"), out, async () => {
      let after;
      try { after = JSON.parse(area.value || "{}"); } catch (error) { throw new Error(`Not JSON: ${error.message}`); }
      if (!after || typeof after !== "object" || Array.isArray(after)) throw new Error("The settings must be one JSON object.");
      const { put, removed } = configurationCalls(before, after);
      const path = `/groups/${group.groupId}/configuration/${namespace}`;
      if (put.length) await v1("PUT", path, { body: put });
      for (const key of removed) await v1("DELETE", `${path}/${encodeURIComponent(key)}`);
      say(out, put.length || removed.length ? `${namespace} saved.` : "Nothing changed.");
      await reload(`${namespace} of ${(group.tags && group.tags.name) || group.groupId} saved.`);
    });
  } },
  h("label", { for: id }, namespace), h("p", { id: `${id}-hint`, class: "muted" }, hint), area,
  h("div", { class: "buttons" }, h("button", { type: "submit" }, `Save ${namespace}`)), out);
  return form;
}

export async function render(view) {
  const news = h("p", { class: "message", role: "status" });
  const draw = async (message) => {
    const groups = await getAll("/groups");
    const name = h("input", { id: "group-name", required: true, autocomplete: "off" });
    const create = h("form", { class: "inline", onsubmit: (e) => {
      e.preventDefault();
      busy(create.querySelector("button"), news, async () => {
        await v1("POST", "/groups", { body: { tags: { name: name.value } } });
        await draw(`Group ${name.value} created.`);
      });
    } }, h("label", { for: "group-name" }, "New group named"), name, h("button", { type: "submit" }, "Create"));
    view.replaceChildren(
      h("h1", {}, "Groups"),
      section("New group", create, news),
      ...groups.map((g) => section(`Group ${(g.tags && g.tags.name) || g.groupId}`,
        h("p", { class: "muted" }, `id ${g.groupId}`),
        h("div", { class: "namespaces" }, NAMESPACES.map(([ns, hint]) => namespaceForm(g, ns, hint, draw))))),
    );
    if (message) say(news, message);
  };
  await draw();
}
