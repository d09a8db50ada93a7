// The console's frame: the operator, the clock in the header, the live stream, the pages.
import { control, onTokenNeeded, openStream, operatorId, setControlToken, setOperator } from "./api.js";
import { h, localTime, utcTime } from "./dom.js";
import * as overview from "./pages/overview.js";
import * as sims from "./pages/sims.js";
import * as sim from "./pages/sim.js";
import * as groups from "./pages/groups.js";
import * as billing from "./pages/billing.js";
import * as requests from "./pages/requests.js";
import * as files from "./pages/files.js";

// Pages by the first part of the hash: #/sims/001010000000001 is sims-detail; #/files/logs/
// is the directory /logs/ of Harvest Files.
const PAGES = { "": overview, sims, sim, groups, billing, requests, files };

/** Everything the pages share: live events, the clock as last seen, a way to re-render. */
export const live = new EventTarget();
const clock = { now: null, frozen: true, seenAt: 0 };
let leave = null;

export function clockNow() {
  if (clock.now === null) return Date.now();
  return clock.frozen ? clock.now : clock.now + (performance.now() - clock.seenAt);
}

export function setClock(state) {
  clock.now = state.now;
  clock.frozen = state.frozen;
  clock.seenAt = performance.now();
  showClock();
  live.dispatchEvent(new CustomEvent("clock", { detail: state }));
}

function showClock() {
  const el = document.getElementById("clock");
  if (clock.now === null) return;
  const now = clockNow();
  el.replaceChildren(
    h("span", { class: clock.frozen ? "badge frozen" : "badge running" }, clock.frozen ? "frozen" : "running"),
    " ", h("time", { datetime: new Date(now).toISOString(), title: utcTime(now) }, localTime(now)),
  );
}

async function route() {
  const hash = decodeURIComponent(location.hash.replace(/^#\/?/, ""));
  const [name, ...rest] = hash.split("/");
  const page = name === "sims" && rest.length ? PAGES.sim : PAGES[name] || PAGES[""];
  const view = document.getElementById("view");
  if (leave) { leave(); leave = null; }
  for (const a of document.querySelectorAll("nav a")) {
    const current = a.getAttribute("href") === `#/${name}`;
    if (current) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  view.replaceChildren(h("p", { class: "loading" }, "Loading…"));
  try {
    leave = (await page.render(view, { args: rest, live, clockNow, setClock })) || null;
  } catch (error) {
    view.replaceChildren(h("p", { class: "message error", role: "alert" }, `Could not load this page: ${error.message}`));
  }
  document.title = `${view.querySelector("h1")?.textContent || "Console"} · Harvest emulator`;
}

export function rerender() { route(); }

function askForToken(wrong) {
  const dialog = document.getElementById("login");
  const input = document.getElementById("login-token");
  document.getElementById("login-error").textContent = wrong ? "That token was not accepted." : "";
  input.value = "";
  if (!dialog.open) dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      setControlToken(input.value.trim());
      resolve();
    }, { once: true });
  });
}

async function chooseOperator() {
  const select = document.getElementById("operator");
  const operators = await control("GET", "/operators");
  const current = operatorId();
  const chosen = operators.some((o) => o.operatorId === current) ? current : operators[0].operatorId;
  setOperator(chosen);
  select.replaceChildren(...operators.map((o) => h("option", { value: o.operatorId, selected: o.operatorId === chosen }, `${o.operatorId} (${o.email})`)));
  select.onchange = () => { setOperator(select.value); route(); };
}

function onLive(name, data) {
  if (name === "clock") setClock(data);
  else live.dispatchEvent(new CustomEvent(name, { detail: data }));
}

async function start() {
  onTokenNeeded(askForToken);
  document.getElementById("login-form").addEventListener("submit", () => {});
  await chooseOperator();
  setClock(await control("GET", "/clock"));
  setInterval(showClock, 1000);
  const status = document.getElementById("live");
  openStream(onLive, (state) => {
    status.textContent = state === "live" ? "live" : state;
    status.className = `live ${state}`;
  });
  window.addEventListener("hashchange", route);
  await route();
}

start().catch((error) => {
  document.getElementById("view").replaceChildren(h("p", { class: "message error", role: "alert" }, `The console could not start: ${error.message}`));
});
