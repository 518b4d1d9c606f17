// How the console reaches the system: the app's operator routes (same origin, operator token) and the
// Agent Server's API directly (cross-origin, a short-lived tenant token handed out by the app).

const TOKEN_KEY = "cogni.console.operatorToken";

export const auth = {
  get token() { return sessionStorage.getItem(TOKEN_KEY); },
  set(token) { sessionStorage.setItem(TOKEN_KEY, token); },
  clear() { sessionStorage.removeItem(TOKEN_KEY); access.clear(); },
};

export class ApiError extends Error {
  constructor(status, body) {
    super((body && (body.message || body.detail)) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

function withQuery(path, query) {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== "") params.set(k, v);
  const qs = params.toString();
  return qs ? `${path}?${qs}` : path;
}

async function send(url, token, { method = "GET", body, signal } = {}) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal });
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { message: text }; }
  if (!resp.ok) throw new ApiError(resp.status, data);
  return data;
}

/** The app's operator JSON (same origin). A 401/403 sends the operator back to the login form. */
export async function app(path, { query, ...opts } = {}) {
  try {
    return await send(withQuery(path, query), auth.token, opts);
  } catch (err) {
    if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
      window.dispatchEvent(new CustomEvent("console:unauthorized", { detail: err.message }));
    }
    throw err;
  }
}

const access = new Map(); // tenant ("" for none) -> {serverUrl, serverToken, expiresAt}

/** The Agent Server's address and a bearer for `tenant`, renewed a minute before it expires. */
export async function serverAccess(tenant) {
  const key = tenant || "";
  const cached = access.get(key);
  if (cached && (!cached.expiresAt || cached.expiresAt * 1000 - Date.now() > 60_000)) return cached;
  const fresh = await app("/console/api/config", { query: { tenant: key } });
  access.set(key, fresh);
  return fresh;
}

/** A call to the Agent Server's API as `tenant`. */
export async function server(tenant, path, { query, ...opts } = {}) {
  const { serverUrl, serverToken } = await serverAccess(tenant);
  return send(serverUrl + withQuery(path, query), serverToken, opts);
}

/** Server-sent events from the Agent Server as `tenant` (fetch, since EventSource cannot send a bearer). */
export async function* serverEvents(tenant, path, { method = "GET", body, signal } = {}) {
  const { serverUrl, serverToken } = await serverAccess(tenant);
  const headers = { Accept: "text/event-stream", Authorization: `Bearer ${serverToken}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(serverUrl + path, { method, headers, signal,
    body: body === undefined ? undefined : JSON.stringify(body) });
  if (!resp.ok) throw new ApiError(resp.status, await resp.json().catch(() => null));
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value.replace(/\r\n/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (!data.length) continue;
      let parsed = data.join("\n");
      try { parsed = JSON.parse(parsed); } catch { /* keep the text */ }
      yield { event, data: parsed };
    }
  }
}

/** Prometheus text -> {name: [{labels, value}]} (enough for counters, gauges and histogram sums). */
export function parseMetrics(text) {
  const out = {};
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = line.match(/^([a-zA-Z_:][\w:]*)(\{([^}]*)\})?\s+(\S+)/);
    if (!m) continue;
    const labels = {};
    for (const pair of (m[3] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]] = pair[2];
    (out[m[1]] ||= []).push({ labels, value: Number(m[4]) });
  }
  return out;
}

export function metricSum(metrics, name, filter = () => true) {
  return (metrics[name] || []).filter((s) => filter(s.labels)).reduce((a, s) => a + s.value, 0);
}

/** The app's and the server's /metrics (the server's read cross-origin, as any browser client). */
export async function scrape() {
  const { serverUrl } = await serverAccess("");
  const [appText, serverText] = await Promise.all([
    fetch("/metrics").then((r) => r.text()),
    fetch(`${serverUrl}/metrics`).then((r) => (r.ok ? r.text() : "")).catch(() => ""),
  ]);
  return { app: parseMetrics(appText), server: parseMetrics(serverText), serverReachable: serverText !== "" };
}
