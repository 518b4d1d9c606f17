// Crons, thread TTL and supersteps through the official JS client, unchanged, against a running
// cogni-server (same environment as js_client.test.mjs).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { pathToFileURL } from "node:url";

const SDK_DIR = process.env.LANGGRAPH_JS_SDK_DIR;
const pkgDir = join(SDK_DIR, "node_modules", "@langchain", "langgraph-sdk");
const pkg = JSON.parse(readFileSync(join(pkgDir, "package.json"), "utf8"));
const { Client } = await import(pathToFileURL(join(pkgDir, pkg.exports["."].import.default)).href);
const client = new Client({ apiUrl: process.env.COGNI_SERVER_URL, apiKey: process.env.COGNI_API_KEY });

test("crons: create, createForThread, update, search, count, delete", async () => {
  const tag = `js-cron-${Date.now()}`;
  const cron = await client.crons.create("echo", {
    schedule: "0 9 * * *",
    input: { messages: [] },
    metadata: { tag },
    onRunCompleted: "keep",
    multitaskStrategy: "enqueue",
    enabled: false,
  });
  assert.equal(cron.thread_id, null);
  assert.equal(cron.on_run_completed, "keep");
  assert.equal(cron.payload.config.configurable.cron_id, cron.cron_id);
  const thread = await client.threads.create();
  const onThread = await client.crons.createForThread(thread.thread_id, "echo", {
    schedule: "*/5 * * * *",
    onRunCompleted: "keep", // the JS client sends it on the thread route too
    enabled: false,
  });
  assert.equal(onThread.thread_id, thread.thread_id);
  assert.equal(onThread.on_run_completed, null);
  const updated = await client.crons.update(cron.cron_id, {
    schedule: "30 8 * * *",
    endTime: "2030-01-01T00:00:00.000Z",
    metadata: { more: 1 },
  });
  assert.equal(updated.schedule, "30 8 * * *");
  assert.equal(updated.end_time, "2030-01-01T00:00:00+00:00");
  assert.deepEqual(updated.metadata, { tag, more: 1 });
  const cleared = await client.crons.update(cron.cron_id, { endTime: null });
  assert.equal(cleared.end_time, null);
  const found = await client.crons.search({ threadId: thread.thread_id });
  assert.deepEqual(found.map((c) => c.cron_id), [onThread.cron_id]);
  assert.equal(await client.crons.count({ threadId: thread.thread_id }), 1);
  await client.crons.delete(onThread.cron_id); // 204: the client does not parse a body
  await client.crons.delete(cron.cron_id);
  assert.equal(await client.crons.count({ threadId: thread.thread_id }), 0);
  await assert.rejects(client.crons.delete(cron.cron_id), /404/);
});

test("threads: ttl in minutes and supersteps", async () => {
  const withTtl = await client.threads.create({ ttl: 5 });
  const res = await fetch(`${process.env.COGNI_SERVER_URL}/threads/${withTtl.thread_id}?include=ttl`, {
    headers: { "x-api-key": process.env.COGNI_API_KEY },
  });
  const body = await res.json();
  assert.deepEqual([body.ttl.ttl, body.ttl.strategy], [5, "delete"]);
  await client.threads.update(withTtl.thread_id, { ttl: { ttl: 10, strategy: "keep_latest" } });
  const seeded = await client.threads.create({
    graphId: "echo",
    supersteps: [
      { updates: [{ values: { messages: [{ role: "user", content: "a" }] }, asNode: "__input__" }] },
      { updates: [{ values: { messages: [{ role: "user", content: "a" }, { role: "ai", content: "b" }] }, asNode: "respond" }] },
    ],
  });
  assert.deepEqual(
    seeded.values.messages.map((m) => m.content),
    ["a", "b"],
  );
  const history = await client.threads.getHistory(seeded.thread_id);
  assert.deepEqual(
    history.map((h) => h.metadata.source),
    ["update", "input"],
  );
});
