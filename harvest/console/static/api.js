// The console's only ways to the emulator: /_emulator (with the control token, when the
// emulator has one), /v1 (with an API session the control plane issues for the chosen
// operator) and the live-update stream. Nothing else is fetched.

const TOKEN_KEY = "harvest-console.control-token";
const OPERATOR_KEY = "harvest-console.operator";
const store = window.sessionStorage;

export class ApiError extends Error {
  constructor(status, body) {
    const detail = body && typeof body === "object" && body.message
      ? `${body.message} (${body.code})` : `HTTP ${status}`;
    super(detail);
    this.status = status;
    this.code = body && typeof body === "object" ? body.code : undefined;
  }
}

async function send(method, url, body, headers) {
  const init = { method, headers: { ...headers }, cache: "no-store" };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(url, init);
  const text = await response.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = text; }
  }
  return { status: response.status, ok: response.ok, data, headers: response.headers };
}

// --- the control token ------------------------------------------------------------------------
let askToken = async () => { throw new Error("the control plane needs a token"); };
let asking = null;

/** How the page asks for the token (main.js shows a dialog); resolves once it is stored. */
export function onTokenNeeded(ask) { askToken = ask; }

export function setControlToken(token) { store.setItem(TOKEN_KEY, token); }

function tokenHeaders() {
  const token = store.getItem(TOKEN_KEY);
  return token ? { "X-Emulator-Token": token } : {};
}

async function needToken(wrong) {
  if (!asking) asking = askToken(wrong).finally(() => { asking = null; });
  await asking;
}

/** A control-plane call; its JSON answer, or throws ApiError. */
export async function control(method, path, body) {
  for (let tries = 0; ; tries += 1) {
    const r = await send(method, "/_emulator" + path, body, tokenHeaders());
    if (r.status === 401 && r.data && r.data.code === "HEM9001" && tries < 5) {
      await needToken(tries > 0 || store.getItem(TOKEN_KEY) !== null);
      continue;
    }
    if (!r.ok) throw new ApiError(r.status, r.data);
    return r.data;
  }
}

// --- the operator and its /v1 session -----------------------------------------------------------
let session = null;
let opening = null;

export function operatorId() { return store.getItem(OPERATOR_KEY); }

export function setOperator(id) {
  if (id !== operatorId()) session = null;
  store.setItem(OPERATOR_KEY, id);
}

async function openSession() {
  if (!opening) {
    opening = control("POST", `/operators/${encodeURIComponent(operatorId())}/token`, {})
      .then((s) => { session = s; })
      .finally(() => { opening = null; });
  }
  await opening;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const text = q.toString();
  return text ? "?" + text : "";
}

/** A SORACOM API call as the chosen operator: {data, headers}, or throws ApiError. A token
 * that expired (the emulator clock moves tokens' lifetimes too) is renewed once. */
export async function v1(method, path, { params, body } = {}) {
  for (let tries = 0; ; tries += 1) {
    if (!session) await openSession();
    const r = await send(method, "/v1" + path + query(params), body, {
      "X-Soracom-API-Key": session.apiKey, "X-Soracom-Token": session.token,
    });
    if (r.status === 401 && tries === 0) { session = null; continue; }
    if (!r.ok) throw new ApiError(r.status, r.data);
    return { data: r.data, headers: r.headers };
  }
}

export async function get(path, params) { return (await v1("GET", path, { params })).data; }

/** A SORACOM API call whose answer is not JSON (Harvest Files: a body to upload, a file to
 * download through getFile's redirect, getFileMetadata's headers): the fetch Response, after
 * following redirects on the emulator itself; throws ApiError unless it is 2xx. */
export async function v1Raw(method, path, { params, body, headers } = {}) {
  for (let tries = 0; ; tries += 1) {
    if (!session) await openSession();
    const response = await fetch("/v1" + path + query(params), {
      method, body, cache: "no-store",
      headers: { ...headers, "X-Soracom-API-Key": session.apiKey, "X-Soracom-Token": session.token },
    });
    if (response.status === 401 && tries === 0) { session = null; continue; }
    if (!response.ok) {
      let data = null;
      if (method !== "HEAD") {
        const text = await response.text();
        try { data = JSON.parse(text); } catch { data = text || null; }
      }
      throw new ApiError(response.status, data);
    }
    return response;
  }
}

/** Every page of a paged /v1 list (x-soracom-next-key), up to `most` items. */
export async function getAll(path, params = {}, most = 10000) {
  const items = [];
  let key = null;
  do {
    const { data, headers } = await v1("GET", path, {
      params: { ...params, last_evaluated_key: key },
    });
    items.push(...data);
    key = headers.get("x-soracom-next-key");
  } while (key && items.length < most);
  return items;
}

// --- the live-update stream ----------------------------------------------------------------------
function parseEvent(block) {
  const found = { event: "message", data: "" };
  for (const line of block.split("\n")) {
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    const field = line.slice(0, colon);
    const value = line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") found.event = value;
    else if (field === "data") found.data += value;
    else if (field === "retry") found.retry = Number(value);
  }
  return found;
}

/** Read /console/stream (server-sent events, read with fetch so the token travels in a
 * header) and call onEvent(name, data) for each event; reconnects until stopped. */
export function openStream(onEvent, onState) {
  let stopped = false;
  let controller = null;
  let retry = 2000;
  const run = async () => {
    while (!stopped) {
      controller = new AbortController();
      try {
        onState("connecting");
        const response = await fetch("/console/stream", {
          headers: tokenHeaders(), signal: controller.signal, cache: "no-store",
        });
        if (response.status === 401) { await needToken(true); continue; }
        if (!response.ok) throw new ApiError(response.status, null);
        onState("live");
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value.replace(/\r\n?/g, "\n");
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const found = parseEvent(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
            if (found.retry) retry = found.retry;
            if (found.data) onEvent(found.event, JSON.parse(found.data));
          }
        }
      } catch (error) {
        if (stopped) return;
      }
      onState("offline");
      await new Promise((resolve) => { setTimeout(resolve, retry); });
    }
  };
  run();
  return { stop() { stopped = true; if (controller) controller.abort(); } };
}
