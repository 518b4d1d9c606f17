// Reconcile: the last sweep (window, when, what it found and billed), and a button to sweep now.

import { app } from "../api.js";
import { badge, fmt, h, pager, stat, table } from "../ui.js";

const LIMIT = 20;

function view(box, status, offset = 0) {
  const last = status.lastSweep;
  const diffs = last ? last.differences : [];
  const page = diffs.slice(offset, offset + LIMIT);
  box.replaceChildren(
    h("div", { class: "cards" },
      stat("Last sweep", last ? fmt.ago(last.startedAt) : "never", last ? `${last.trigger} · ${fmt.time(last.startedAt)}` : "", "reconcile-last"),
      stat("Cursor", last && last.windowStart ? fmt.time(last.windowStart) : "—", "the last sweep read the spend log from this committed position", "reconcile-cursor", { small: true }),
      stat("Calls examined", last ? fmt.num(last.examined) : "—", null, "reconcile-examined"),
      stat("Differences found", last ? fmt.num(last.missing) : "—",
        last && last.missing > diffs.length ? `the first ${diffs.length} are listed` : "spend-log calls without a receipt", "reconcile-differences"),
      stat("Receipts created", last ? fmt.num(last.created) : "—", last && last.error ? `failed: ${last.error}` : (last && last.finishedAt ? "finished" : ""), "reconcile-created"),
      stat("Periodic sweep", status.intervalSeconds ? `every ${status.intervalSeconds} s` : "off", "RECONCILE_INTERVAL setting")),
    last && last.error ? h("p", { class: "error", "data-testid": "reconcile-error" }, `Last sweep failed: ${last.error}`) : "",
    h("h2", {}, "Differences at the last sweep"),
    table([
      { title: "Call", get: (d) => h("code", {}, d.callId) },
      { title: "Account", get: (d) => h("a", { href: `#/accounts/${d.billingAccountId}` }, fmt.short(d.billingAccountId)) },
      { title: "Run", get: (d) => h("code", {}, d.runId) },
      { title: "Model", get: (d) => d.model || "—" },
      { title: "Cost (USD)", num: true, get: (d) => d.costUsd ?? "—" },
      { title: "Ended", get: (d) => fmt.time(d.endedAt) },
      { title: "Now", get: () => badge("reconcile") },
    ], page, { empty: "No differences: every spend-log call had its receipt.", testid: "reconcile-table" }),
    pager({ total: diffs.length, limit: LIMIT, offset, count: page.length }, (o) => view(box, status, o)));
}

export async function render(root) {
  const box = h("div", { "data-testid": "reconcile" });
  const button = h("button", { "data-testid": "reconcile-run" }, "Run reconcile now");
  const note = h("span", { class: "muted", "data-testid": "reconcile-note" }, "");
  button.addEventListener("click", async () => {
    button.disabled = true;
    note.textContent = "sweeping…";
    try {
      const status = await app("/console/api/reconcile/run", { method: "POST" });
      const last = status.lastSweep;
      note.textContent = last.error ? `sweep failed: ${last.error}` : `sweep done: ${last.created} receipt(s) created`;
      view(box, status);
    } finally {
      button.disabled = false;
    }
  });
  root.append(h("h1", {}, "Reconcile"),
    h("p", { class: "muted" }, "The reconciler bills LiteLLM spend-log calls that have no receipt yet (provenance ", badge("reconcile"), ")."),
    h("p", {}, button, " ", note), box);
  view(box, await app("/console/api/reconcile"));
  return null;
}
