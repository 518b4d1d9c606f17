// Runs and threads of one tenant, straight from the Agent Server's API: search by status, graph and time;
// a thread's messages, state, checkpoint history and runs; a live view of a run's stream; resume an interrupt.

import { app, server, serverEvents } from "../api.js";
import { badge, errorBox, filters, fmt, go, h, pager, table } from "../ui.js";

const LIMIT = 20;
const SINCE = { "": null, "15m": 15, "1h": 60, "24h": 1440 };
const resumedLogs = new Map(); // thread id -> the resumed run's events, shown again after the page reloads

async function tenantPicker(current, onPick) {
  const accounts = await app("/console/api/accounts", { query: { limit: 200 } });
  const list = h("datalist", { id: "tenants" }, accounts.items.map((a) => h("option", { value: a.id }, a.name)));
  const form = h("form", { class: "filters", "data-testid": "tenant-form" },
    h("label", {}, "Tenant (billing account)", h("input", { name: "tenant", list: "tenants", value: current || "", size: 40, placeholder: "account id" })),
    h("button", { type: "submit" }, "Open"), list);
  form.addEventListener("submit", (e) => { e.preventDefault(); onPick(new FormData(form).get("tenant").trim()); });
  return form;
}

export async function render(root, { page, args, query }) {
  if (page === "threads" && args.length >= 2) return renderThread(root, args[0], args[1], query);
  root.append(h("h1", {}, "Runs & threads"));
  const tenant = query.tenant || "";
  root.append(await tenantPicker(tenant, (t) => go("runs", [], { tenant: t })));
  if (!tenant) {
    root.append(h("p", { class: "muted" }, "Pick a tenant: the Agent Server answers each tenant for its own threads only."));
    return null;
  }
  const offset = Number(query.offset || 0);
  const body = { limit: LIMIT, offset, sort_by: "updated_at", sort_order: "desc" };
  if (query.status) body.status = query.status;
  if (query.graph) body.metadata = { graph_id: query.graph };
  const countBody = { ...(body.status ? { status: body.status } : {}), ...(body.metadata ? { metadata: body.metadata } : {}) };
  const [threads, total] = await Promise.all([
    server(tenant, "/threads/search", { method: "POST", body }),
    server(tenant, "/threads/count", { method: "POST", body: countBody }),
  ]);
  const minutes = SINCE[query.since || ""];
  const shown = minutes ? threads.filter((t) => Date.now() - new Date(t.updated_at).getTime() <= minutes * 60000) : threads;
  root.append(
    filters([
      { name: "status", label: "Status", type: "select", value: query.status,
        options: [["", "any"], ["idle", "idle"], ["busy", "busy"], ["interrupted", "interrupted"], ["error", "error"]] },
      { name: "graph", label: "Graph", value: query.graph, placeholder: "e.g. chat" },
      { name: "since", label: "Updated within", type: "select", value: query.since,
        options: [["", "any time"], ["15m", "15 minutes"], ["1h", "1 hour"], ["24h", "24 hours"]] },
    ], (f) => go("runs", [], { tenant, ...f }), "threads-filter"),
    table([
      { title: "Thread", get: (t) => h("a", { href: `#/threads/${encodeURIComponent(tenant)}/${t.thread_id}` }, h("code", {}, t.thread_id)) },
      { title: "Status", get: (t) => badge(t.status) },
      { title: "Graph", get: (t) => (t.metadata && t.metadata.graph_id) || "—" },
      { title: "Messages", num: true, get: (t) => fmt.num(((t.values && t.values.messages) || []).length) },
      { title: "Updated", get: (t) => fmt.time(t.updated_at) },
    ], shown, { empty: "No threads match.", testid: "threads-table" }),
    pager({ total, limit: LIMIT, offset, count: threads.length }, (o) => go("runs", [], { ...query, offset: o }), "threads-pager"));
  return null;
}

function content(m) {
  if (typeof m.content === "string") return m.content;
  return (m.content || []).map((p) => (typeof p === "string" ? p : p.text || JSON.stringify(p))).join("");
}

function messages(values) {
  const list = (values && values.messages) || [];
  if (!list.length) return h("p", { class: "muted" }, "No messages in this thread's state.");
  return h("div", { "data-testid": "thread-messages" }, list.map((m) =>
    h("div", { class: `msg ${m.type || m.role}` }, h("div", { class: "role" }, m.type || m.role, m.name ? ` · ${m.name}` : ""), content(m) ||
      (m.tool_calls && m.tool_calls.length ? `→ ${m.tool_calls.map((c) => c.name).join(", ")}` : ""))));
}

/** The server records a run's webhook outcome in `metadata.webhook_delivery` (docs/server.md). */
function webhookCell(run) {
  const d = run.metadata && run.metadata.webhook_delivery;
  if (!d) return "—";
  return h("div", { "data-testid": "run-webhook" }, badge(d.status),
    ` ${fmt.num(d.attempts)} attempt${d.attempts === 1 ? "" : "s"}`,
    d.error ? h("div", { class: "error" }, `last error: ${d.error}`) : (d.response_status ? ` · HTTP ${d.response_status}` : ""));
}

async function renderThread(root, tenant, tid, query) {
  const stop = new AbortController();
  const thread = await server(tenant, `/threads/${tid}`);
  const log = h("pre", { id: "stream-log", "data-testid": "stream-log" }, "");
  const streamState = h("span", { class: "muted", "data-testid": "stream-state" }, "not watching");
  const graph = (thread.metadata && (thread.metadata.assistant_id || thread.metadata.graph_id)) || "";

  async function pump(path, opts) {
    streamState.textContent = "live";
    log.textContent = "";
    try {
      for await (const ev of serverEvents(tenant, path, { ...opts, signal: stop.signal })) {
        log.textContent += `${ev.event}: ${typeof ev.data === "string" ? ev.data : JSON.stringify(ev.data)}\n`;
        log.scrollTop = log.scrollHeight;
      }
      streamState.textContent = "ended";
    } catch (err) {
      if (!stop.signal.aborted) streamState.textContent = `failed: ${err.message}`;
    }
  }

  root.append(
    h("p", {}, h("a", { href: `#/runs?tenant=${encodeURIComponent(tenant)}` }, "‹ Threads")),
    h("h1", {}, "Thread ", h("code", {}, tid), " ", badge(thread.status)),
    h("p", { class: "muted" }, `graph ${(thread.metadata && thread.metadata.graph_id) || "—"} · created ${fmt.time(thread.created_at)} · updated ${fmt.time(thread.updated_at)}`),
    thread.error ? h("pre", { class: "error", "data-testid": "thread-error" }, typeof thread.error === "string" ? thread.error : fmt.json(thread.error)) : "");

  const pending = Object.values(thread.interrupts || {}).flat();
  if (thread.status === "interrupted") {
    const input = h("textarea", { name: "resume", rows: 2, cols: 60, placeholder: 'a JSON value or plain text, e.g. "yes"' });
    const form = h("form", { class: "card", "data-testid": "resume-form" },
      h("h2", {}, "Waiting for an answer"),
      pending.length ? pending.map((i) => h("pre", {}, fmt.json(i.value))) : h("p", { class: "muted" }, "Paused before a node (no interrupt value)."),
      h("label", {}, "Resume with ", input), " ", h("button", { type: "submit" }, "Resume run"));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      let value = input.value;
      try { value = JSON.parse(value); } catch { /* plain text */ }
      form.querySelector("button").disabled = true;
      await pump(`/threads/${tid}/runs/stream`, { method: "POST",
        body: { assistant_id: graph, command: { resume: value }, stream_mode: ["updates", "values"] } });
      resumedLogs.set(tid, log.textContent);
      go("threads", [tenant, tid], { resumed: Date.now() });
    });
    root.append(form);
  }

  if (resumedLogs.has(tid)) {
    log.textContent = resumedLogs.get(tid);
    streamState.textContent = "the resumed run's events";
    resumedLogs.delete(tid);
  }
  root.append(h("div", { class: "card" }, h("h2", {}, "Live stream ", streamState), log));

  const runsBox = h("div", { "data-testid": "thread-runs" });
  root.append(h("h2", {}, "Runs"), runsBox);
  async function loadRuns(f = {}, offset = 0) {
    const runs = await server(tenant, `/threads/${tid}/runs`, { query: { limit: LIMIT, offset, status: f.status } });
    runsBox.replaceChildren(
      filters([{ name: "status", label: "Status", type: "select", value: f.status,
        options: [["", "any"], ["pending", "pending"], ["running", "running"], ["success", "success"], ["error", "error"], ["interrupted", "interrupted"]] }],
      (nf) => loadRuns(nf), "runs-filter"),
      table([
        { title: "Run", get: (r) => h("code", {}, r.run_id) },
        { title: "Status", get: (r) => badge(r.status) },
        { title: "Created", get: (r) => fmt.time(r.created_at) },
        { title: "Webhook", get: webhookCell },
        { title: "", get: (r) => (["pending", "running"].includes(r.status)
          ? h("button", { class: "secondary", onclick: () => pump(`/threads/${tid}/runs/${r.run_id}/stream`) }, "Watch live") : "") },
      ], runs, { empty: "No runs match." }),
      pager({ total: null, limit: LIMIT, offset, count: runs.length }, (o) => loadRuns(f, o)));
    return runs;
  }
  const runs = await loadRuns();

  const state = await server(tenant, `/threads/${tid}/state`);
  root.append(h("h2", {}, "Messages"), messages(state.values),
    h("h2", {}, "State"), h("pre", { "data-testid": "thread-state" }, fmt.json({ values: state.values, next: state.next, tasks: state.tasks })));

  const historyBox = h("div", { "data-testid": "thread-history" });
  root.append(h("h2", {}, "Checkpoint history"), historyBox);
  async function loadHistory(before, page = 0) {
    const body = { limit: 10 };
    if (before) body.before = { configurable: { checkpoint_id: before } };
    const items = await server(tenant, `/threads/${tid}/history`, { method: "POST", body });
    const last = items[items.length - 1];
    historyBox.replaceChildren(
      table([
        { title: "Checkpoint", get: (c) => h("code", {}, c.checkpoint && c.checkpoint.checkpoint_id) },
        { title: "Step", num: true, get: (c) => (c.metadata ? c.metadata.step : "—") },
        { title: "Source", get: (c) => (c.metadata && c.metadata.source) || "—" },
        { title: "Next", get: (c) => (c.next || []).join(", ") || "—" },
        { title: "Created", get: (c) => fmt.time(c.created_at) },
      ], items, { empty: "No checkpoints." }),
      h("div", { class: "pager" },
        h("span", {}, `page ${page + 1}`),
        h("button", { class: "secondary", disabled: items.length < 10, onclick: () => loadHistory(last.checkpoint.checkpoint_id, page + 1) }, "Older ›")));
  }
  await loadHistory();

  const live = runs.find((r) => ["pending", "running"].includes(r.status));
  if (live && query.watch !== "no") pump(`/threads/${tid}/runs/${live.run_id}/stream`).catch((e) => root.append(errorBox(e)));
  return () => stop.abort();
}
