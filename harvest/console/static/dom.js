// Small DOM and formatting helpers shared by the pages.

/** An element: h("a", {href: "#/", class: "x", onclick: fn}, "text", child, ...). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else if (value === true) el.setAttribute(name, "");
    else el.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

const pad = (n, width = 2) => String(n).padStart(width, "0");

/** Local time as YYYY-MM-DD HH:MM:SS(.mmm). */
export function localTime(ms, millis = false) {
  const d = new Date(ms);
  const text = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} `
    + `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return millis ? `${text}.${pad(d.getMilliseconds(), 3)}` : text;
}

export function utcTime(ms) { return new Date(ms).toISOString().replace("T", " ").replace("Z", " UTC"); }

/** A <time> showing local time, with the UTC instant on hover. */
export function timeEl(ms, millis = false) {
  return h("time", { datetime: new Date(ms).toISOString(), title: utcTime(ms) }, localTime(ms, millis));
}

/** An amount in USD: two decimals, more only where the figure has them (metered writes). */
export function usd(amount) {
  const n = Number(amount);
  const cents = Math.abs(n * 100 - Math.round(n * 100)) < 1e-9;
  return `${cents ? n.toFixed(2) : String(Number(n.toFixed(6)))} USD`;
}

export function count(n) { return Number(n).toLocaleString("en-US"); }

/** A table: columns [{label, cell(row) -> node|text, class}], rows. */
export function table(caption, columns, rows, empty = "Nothing yet.") {
  const head = h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.class }, c.label))));
  const body = h("tbody", {}, rows.length
    ? rows.map((row) => h("tr", {}, columns.map((c) => h("td", { class: c.class, "data-label": c.label }, c.cell(row)))))
    : h("tr", {}, h("td", { colspan: columns.length, class: "empty" }, empty)));
  return h("div", { class: "table-wrap" }, h("table", {}, h("caption", {}, caption), head, body));
}

/** A status line for a form: role=status for news, role=alert for errors. */
export function say(el, text, isError = false) {
  el.textContent = text;
  el.className = isError ? "message error" : "message ok";
  el.setAttribute("role", isError ? "alert" : "status");
}

/** Ask before something that cannot be undone; resolves true when confirmed. */
export function confirmAction(text, okLabel = "Confirm") {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-ok").textContent = okLabel;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

/** Run an action behind a button: disabled meanwhile, its error shown in `out`. */
export async function busy(button, out, action) {
  button.disabled = true;
  try {
    await action();
  } catch (error) {
    if (out) say(out, error.message, true);
    else throw error;
  } finally {
    button.disabled = false;
  }
}

export function section(title, ...children) {
  const id = "s-" + title.toLowerCase().replace(/[^a-z0-9]+/g, "-");
  return h("section", { "aria-labelledby": id, class: "card" }, h("h2", { id }, title), ...children);
}
