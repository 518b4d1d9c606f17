// Accounts: a filterable, paged list; one account's balance, credits per day, receipts, ledger, API keys.

import { app } from "../api.js";
import { barChart } from "../charts.js";
import { badge, filters, fmt, go, h, pager, stat, table } from "../ui.js";

const LIMIT = 20;

export async function render(root, { args, query }) {
  if (args[0]) return renderAccount(root, args[0], query);
  const offset = Number(query.offset || 0);
  const data = await app("/console/api/accounts", { query: { q: query.q, balance: query.balance, limit: LIMIT, offset } });
  root.append(
    h("h1", {}, "Accounts"),
    filters([
      { name: "q", label: "Name or id", value: query.q, placeholder: "search" },
      { name: "balance", label: "Balance", type: "select", value: query.balance,
        options: [["", "any"], ["negative", "in debt"], ["positive", "in credit"]] },
    ], (f) => go("accounts", [], f), "accounts-filter"),
    table([
      { title: "Name", get: (a) => h("a", { href: `#/accounts/${a.id}` }, a.name) },
      { title: "Id", get: (a) => h("code", {}, a.id) },
      { title: "Balance (credits)", num: true, get: (a) => fmt.num(a.balanceCredits) },
      { title: "Created", get: (a) => fmt.time(a.createdAt) },
    ], data.items, { empty: "No accounts match.", testid: "accounts-table" }),
    pager({ ...data, count: data.items.length }, (o) => go("accounts", [], { ...query, offset: o }), "accounts-pager"));
}

async function renderAccount(root, id, query) {
  const acct = await app(`/console/api/accounts/${encodeURIComponent(id)}`);
  root.append(
    h("p", {}, h("a", { href: "#/accounts" }, "‹ Accounts")),
    h("h1", {}, acct.name, " ", h("span", { class: "muted mono" }, acct.id)),
    h("div", { class: "cards" },
      stat("Balance", `${fmt.num(acct.balanceCredits)} credits`, null, "account-balance"),
      stat("API keys", fmt.num(acct.apiKeys.length), `${acct.apiKeys.filter((k) => !k.revokedAt).length} active`, "account-keys"),
      h("div", { class: "card stat" }, h("div", { class: "label" }, "Runs and threads"),
        h("a", { href: `#/runs?tenant=${encodeURIComponent(acct.id)}` }, "Open this tenant's threads ›")),
      h("div", { class: "card stat" }, h("div", { class: "label" }, "Data deletion"),
        h("a", { href: `#/deletions?account=${encodeURIComponent(acct.id)}`, "data-testid": "account-delete" }, "Delete this account's data ›"))),
    h("div", { class: "card" }, h("h2", {}, "Credits charged per day (14 days)"),
      barChart(acct.creditsPerDay.map((r) => ({ label: r.day.slice(5), values: [Number(r.charged)] })),
        { title: "credits charged per day", series: ["charged"], width: 640 }),
      h("p", { class: "muted" }, `Issued in these 14 days: ${fmt.num(acct.creditsPerDay.reduce((a, r) => a + Number(r.issued), 0))} credits.`)),
    h("h2", {}, "API keys (prefixes only; the secrets are never stored)"),
    table([
      { title: "Prefix", get: (k) => h("code", {}, `${k.keyPrefix}…`) },
      { title: "Label", get: (k) => k.label },
      { title: "Virtual key", get: (k) => h("code", {}, fmt.short(k.virtualKeyId)) },
      { title: "Created", get: (k) => fmt.time(k.createdAt) },
      { title: "State", get: (k) => (k.revokedAt ? badge("revoked") : badge("active")) },
    ], acct.apiKeys, { empty: "No API keys.", testid: "account-api-keys" }));

  const receipts = h("div", { "data-testid": "account-receipts" });
  const ledger = h("div", { "data-testid": "account-ledger" });
  root.append(h("h2", {}, "Receipts"), receipts, h("h2", {}, "Ledger"), ledger);
  await Promise.all([loadReceipts(receipts, id, {}), loadLedger(ledger, id, {})]);
}

async function loadReceipts(box, id, f, offset = 0) {
  const data = await app(`/console/api/accounts/${encodeURIComponent(id)}/receipts`,
    { query: { provenance: f.provenance, runId: f.runId, limit: LIMIT, offset } });
  box.replaceChildren(
    filters([
      { name: "provenance", label: "Provenance", type: "select", value: f.provenance,
        options: [["", "any"], ["stream", "stream"], ["response", "response"], ["reconcile", "reconcile"]] },
      { name: "runId", label: "Run id", value: f.runId },
    ], (nf) => loadReceipts(box, id, nf), "receipts-filter"),
    table([
      { title: "When", get: (r) => fmt.time(r.createdAt) },
      { title: "Run", get: (r) => h("code", {}, r.runId) },
      { title: "Graph", get: (r) => r.graphId },
      { title: "Model", get: (r) => r.model || "—" },
      { title: "Tokens in/out", num: true, get: (r) => `${fmt.num(r.inputTokens)} / ${fmt.num(r.outputTokens)}` },
      { title: "Cost (USD)", num: true, get: (r) => r.responseCostUsd },
      { title: "Credits", num: true, get: (r) => fmt.num(r.chargedCredits) },
      { title: "Provenance", get: (r) => badge(r.provenance) },
    ], data.items, { empty: "No receipts match." }),
    pager({ ...data, count: data.items.length }, (o) => loadReceipts(box, id, f, o)));
}

async function loadLedger(box, id, f, offset = 0) {
  const data = await app(`/console/api/accounts/${encodeURIComponent(id)}/ledger`,
    { query: { reason: f.reason, limit: LIMIT, offset } });
  box.replaceChildren(
    filters([{ name: "reason", label: "Reason", type: "select", value: f.reason,
      options: [["", "any"], ["charge_receipt", "charge_receipt"], ["grant", "grant"]] }], (nf) => loadLedger(box, id, nf), "ledger-filter"),
    table([
      { title: "When", get: (e) => fmt.time(e.createdAt) },
      { title: "Reason", get: (e) => e.reason },
      { title: "Amount", num: true, get: (e) => h("span", { class: e.amount < 0 ? "error" : "ok" }, fmt.num(e.amount)) },
      { title: "Balance after", num: true, get: (e) => fmt.num(e.balanceAfter) },
      { title: "Reference", get: (e) => h("code", {}, e.reference) },
      { title: "Provenance", get: (e) => (e.metadata && e.metadata.provenance ? badge(e.metadata.provenance) : "—") },
    ], data.items, { empty: "No ledger entries match." }),
    pager({ ...data, count: data.items.length }, (o) => loadLedger(box, id, f, o)));
}
