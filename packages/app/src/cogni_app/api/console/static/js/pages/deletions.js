// Data deletions: every account's deletion job (its steps, the rows each step touched, who asked, passes,
// the last error), filtered by status and paged; start one for an account once its id is typed again.
// While a job on the page is in progress the list refreshes itself.

import { app } from "../api.js";
import { badge, filters, fmt, go, h, pager, table } from "../ui.js";

const LIMIT = 20;
const STEPS = ["server", "app", "spend_log"];
const REFRESH_MS = 1000;

function stepCell(step) {
  if (!step) return "—";
  const counts = Object.entries(step.counts || {});
  const touched = counts.filter(([, n]) => Number(n) > 0);
  const zero = counts.length - touched.length;
  return h("div", { class: "step" }, badge(step.status),
    touched.length ? h("ul", { class: "counts" }, touched.map(([name, n]) => h("li", {}, h("code", {}, name), ` ${fmt.num(n)}`))) : "",
    zero ? h("div", { class: "hint muted" }, `${touched.length ? "+" : "nothing: "}${zero} table${zero === 1 ? "" : "s"} at 0`) : "",
    step.reason ? h("div", { class: "hint muted" }, step.reason) : "");
}

function stepsDone(job) {
  return STEPS.filter((s) => job.steps[s] && ["done", "skipped"].includes(job.steps[s].status)).length;
}

function startForm(prefill) {
  const account = h("input", { name: "accountId", value: prefill || "", placeholder: "account id", size: 38, autocomplete: "off" });
  const confirm = h("input", { name: "confirm", value: "", placeholder: "type the account id again", size: 38, autocomplete: "off" });
  const button = h("button", { type: "submit", class: "danger", disabled: true }, "Delete this account's data");
  const note = h("p", { class: "muted", "data-testid": "deletion-note" }, "");
  const armed = () => { button.disabled = !account.value.trim() || confirm.value.trim() !== account.value.trim(); };
  account.addEventListener("input", armed);
  confirm.addEventListener("input", armed);
  const form = h("form", { class: "card", "data-testid": "deletion-start" },
    h("h2", {}, "Delete an account's data"),
    h("p", { class: "muted" }, "Revokes its API keys at once, then purges the Agent Server's threads and runs, the app's own rows "
      + "and the spend log's content. The balance, ledger and receipts stay (without content). It cannot be undone."),
    h("div", { class: "filters" }, h("label", {}, "Account id", account), h("label", {}, "Confirm: the account id again", confirm), button),
    note);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (button.disabled) return;
    button.disabled = true;
    const id = account.value.trim();
    try {
      const job = await app("/console/api/deletions", { method: "POST", body: { accountId: id, confirm: confirm.value.trim() } });
      note.className = "ok";
      note.textContent = `deletion of ${id} started (${job.status})`
        + (job.statusToken ? `; status token for the user, shown once: ${job.statusToken}` : "");
      confirm.value = "";
      form.dispatchEvent(new CustomEvent("deletion:started"));
    } catch (err) {
      note.className = "error";
      note.textContent = `refused: ${err.message}`;
      armed();
    }
  });
  return form;
}

export async function render(root, { query }) {
  const offset = Number(query.offset || 0);
  const box = h("div", { "data-testid": "deletions" });
  let timer = null;
  let gone = false;

  async function load() {
    clearTimeout(timer);
    const data = await app("/console/api/deletions", { query: { status: query.status, limit: LIMIT, offset } });
    if (gone) return;
    const busy = data.items.some((j) => j.status === "in_progress");
    box.replaceChildren(
      h("p", { class: "muted", "data-testid": "deletions-refresh" }, busy ? "a job is in progress: refreshing every second" : `as of ${fmt.time(new Date().toISOString())}`),
      table([
        { title: "Account", get: (j) => h("a", { href: `#/accounts/${encodeURIComponent(j.billingAccountId)}` }, h("code", {}, j.billingAccountId)) },
        { title: "Status", get: (j) => badge(j.status) },
        { title: "Steps done", num: true, get: (j) => `${stepsDone(j)} / ${STEPS.length}` },
        ...STEPS.map((s) => ({ title: s === "spend_log" ? "Spend log" : s === "app" ? "App" : "Agent Server", get: (j) => stepCell(j.steps[s]) })),
        { title: "Asked by", get: (j) => j.requestedBy },
        { title: "Requested", get: (j) => fmt.time(j.requestedAt) },
        { title: "Completed", get: (j) => fmt.time(j.completedAt) },
        { title: "Passes", num: true, get: (j) => fmt.num(j.passes) },
        { title: "Last error", get: (j) => (j.lastError ? h("span", { class: "error" }, j.lastError) : "—") },
      ], data.items, { empty: "No deletion jobs match.", testid: "deletions-table" }),
      pager({ ...data, count: data.items.length }, (o) => go("deletions", [], { ...query, offset: o }), "deletions-pager"));
    if (busy) timer = setTimeout(() => load().catch(() => {}), REFRESH_MS);
  }

  const form = startForm(query.account);
  form.addEventListener("deletion:started", () => load().catch(() => {}));
  root.append(
    h("h1", {}, "Data deletions"),
    h("p", { class: "muted" }, "One job per account (docs/compliance.md): asked for by the user (API key) or an operator. "
      + "Counts are rows deleted or blanked per table."),
    form,
    filters([{ name: "status", label: "Status", type: "select", value: query.status,
      options: [["", "any"], ["in_progress", "in progress"], ["done", "done"]] }],
    (f) => go("deletions", [], f), "deletions-filter"),
    box);
  await load();
  return () => { gone = true; clearTimeout(timer); };
}
