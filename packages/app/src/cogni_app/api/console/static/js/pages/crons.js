// Crons of one tenant from the Agent Server's API, with the webhook delivery counters of its /metrics.

import { scrape, server } from "../api.js";
import { filters, fmt, go, h, pager, stat, table } from "../ui.js";

const LIMIT = 20;

export async function render(root, { query }) {
  root.append(h("h1", {}, "Crons & webhook deliveries"));
  const m = await scrape();
  const deliveries = m.server.cogni_webhook_deliveries_total || [];
  root.append(h("div", { class: "cards", "data-testid": "webhook-deliveries" },
    ["delivered", "retry", "failed", "refused"].map((o) => stat(`Webhooks ${o}`,
      fmt.num(deliveries.filter((s) => s.labels.outcome === o).reduce((a, s) => a + s.value, 0)), "since the server started"))));
  const tenant = query.tenant || "";
  root.append(filters([{ name: "tenant", label: "Tenant (billing account)", value: tenant, placeholder: "account id" }],
    (f) => go("crons", [], f), "crons-filter"));
  if (!tenant) return null;
  const offset = Number(query.offset || 0);
  const [crons, total] = await Promise.all([
    server(tenant, "/runs/crons/search", { method: "POST", body: { limit: LIMIT, offset } }),
    server(tenant, "/runs/crons/count", { method: "POST", body: {} }),
  ]);
  root.append(table([
    { title: "Cron", get: (c) => h("code", {}, c.cron_id) },
    { title: "Schedule", get: (c) => h("code", {}, c.schedule) },
    { title: "Thread", get: (c) => (c.thread_id ? h("a", { href: `#/threads/${encodeURIComponent(tenant)}/${c.thread_id}` }, fmt.short(c.thread_id)) : "new each run") },
    { title: "Next run", get: (c) => fmt.time(c.next_run_date) },
    { title: "Ends", get: (c) => fmt.time(c.end_time) },
  ], crons, { empty: "No crons.", testid: "crons-table" }),
  pager({ total, limit: LIMIT, offset, count: crons.length }, (o) => go("crons", [], { ...query, offset: o })));
  return null;
}
