// Overview: runs per minute, error rate, queue, billing lag, unbilled calls, credits today, small charts.

import { app, scrape, metricSum } from "../api.js";
import { barChart, lineChart } from "../charts.js";
import { fmt, h, stat } from "../ui.js";

const SAMPLE_MS = 5000;

function rates(samples) {
  // runs created per minute between consecutive scrapes of the server's counter
  const out = [];
  for (let i = 1; i < samples.length; i++) {
    const dt = (samples[i].at - samples[i - 1].at) / 60000;
    out.push({ label: new Date(samples[i].at).toLocaleTimeString(), value: Math.max(0, (samples[i].runs - samples[i - 1].runs) / dt) });
  }
  return out;
}

export async function render(root) {
  root.append(h("h1", {}, "Overview"));
  const body = h("div", { "data-testid": "overview" });
  root.append(body);
  const samples = [];

  async function refresh() {
    const [data, m] = await Promise.all([app("/console/api/overview"), scrape()]);
    const s = m.server;
    const runs = metricSum(s, "cogni_runs_created_total");
    const finished = metricSum(s, "cogni_runs_finished_total");
    const failed = metricSum(s, "cogni_runs_finished_total", (l) => l.status === "error");
    samples.push({ at: Date.now(), runs });
    if (samples.length > 60) samples.shift();
    const perMinute = rates(samples);
    const lagCount = metricSum(m.app, "cogni_billing_lag_seconds_count");
    const lag = lagCount ? metricSum(m.app, "cogni_billing_lag_seconds_sum") / lagCount : null;
    const last = data.reconcile.lastSweep;
    const today = data.today;
    const prov = today.receiptsByProvenance || {};

    body.replaceChildren(
      m.serverReachable ? "" : h("p", { class: "error" }, "The Agent Server's /metrics is not reachable from this browser (check COGNI_CORS_ALLOW_ORIGINS)."),
      h("div", { class: "cards" },
        stat("Runs per minute", perMinute.length ? perMinute[perMinute.length - 1].value.toFixed(1) : "…",
          `${fmt.num(runs)} runs created since the server started`, "stat-runs-per-minute"),
        stat("Error rate", finished ? `${((100 * failed) / finished).toFixed(1)}%` : "0%", `${fmt.num(failed)} of ${fmt.num(finished)} finished runs`, "stat-error-rate"),
        stat("Queue depth", fmt.num(metricSum(s, "cogni_run_queue_depth")), "runs pending and due", "stat-queue-depth"),
        stat("Oldest queued", `${metricSum(s, "cogni_run_queue_oldest_age_seconds").toFixed(1)} s`, "age of the oldest due run", "stat-queue-age"),
        stat("Billing lag", lag === null ? "—" : `${lag.toFixed(2)} s`, `call end to receipt, mean over ${fmt.num(lagCount)} reconciled calls`, "stat-billing-lag"),
        stat("Unbilled calls", last ? fmt.num(last.missing) : fmt.num(metricSum(m.app, "cogni_unbilled_calls")),
          last ? `at the last sweep, ${fmt.ago(last.startedAt)}` : "no sweep yet", "stat-unbilled"),
        stat("Credits issued today", fmt.num(today.issued), "grants and top-ups", "stat-issued"),
        stat("Credits charged today", fmt.num(today.charged),
          `${fmt.num(today.receipts)} receipts: ${Object.entries(prov).map(([k, v]) => `${k} ${v}`).join(", ") || "none"}`, "stat-charged")),
      h("div", { class: "grid2" },
        h("div", { class: "card" }, h("h2", {}, "Runs per minute (while this page is open)"),
          lineChart(perMinute, { title: "runs per minute" })),
        h("div", { class: "card" }, h("h2", {}, "Credits charged per hour (24 h)"),
          barChart(data.chargedPerHour.map((r) => ({ label: new Date(r.hour).getHours() + "h", values: [Number(r.charged)] })),
            { title: "credits charged per hour", series: ["charged"] })),
        h("div", { class: "card" }, h("h2", {}, "Credits charged per day (14 days)"),
          barChart(data.creditsPerDay.map((r) => ({ label: r.day.slice(5), values: [Number(r.charged)] })),
            { title: "credits charged per day", series: ["charged"] })),
        h("div", { class: "card" }, h("h2", {}, "Credits issued per day (14 days)"),
          barChart(data.creditsPerDay.map((r) => ({ label: r.day.slice(5), values: [Number(r.issued)] })),
            { title: "credits issued per day", series: ["issued"], colors: ["#1e8449"] }))));
  }

  await refresh();
  let stopped = false;
  let timer = setTimeout(function again() { // a second sample soon, so the rate shows at once; then every 5 s
    refresh().catch(() => {}).finally(() => { if (!stopped) timer = setTimeout(again, SAMPLE_MS); });
  }, 1000);
  return () => { stopped = true; clearTimeout(timer); };
}
