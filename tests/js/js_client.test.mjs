// The official JS client (@langchain/langgraph-sdk), unchanged, against a running cogni-server.
// Run by tests/js/test_js_client.py: `node --test tests/js/` with
//   COGNI_SERVER_URL   the server (serving packages/server/tests/fixtures/project)
//   COGNI_API_KEY      an API key of that server
//   LANGGRAPH_JS_SDK_DIR  a directory whose node_modules holds the SDK (installed outside the clone)
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import http from "node:http";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { pathToFileURL } from "node:url";

const SERVER_URL = process.env.COGNI_SERVER_URL;
const API_KEY = process.env.COGNI_API_KEY;
const SDK_DIR = process.env.LANGGRAPH_JS_SDK_DIR;
if (!SERVER_URL || !API_KEY || !SDK_DIR) {
  throw new Error("set COGNI_SERVER_URL, COGNI_API_KEY and LANGGRAPH_JS_SDK_DIR");
}

async function loadSdk() {
  const pkgDir = join(SDK_DIR, "node_modules", "@langchain", "langgraph-sdk");
  const pkg = JSON.parse(readFileSync(join(pkgDir, "package.json"), "utf8"));
  return import(pathToFileURL(join(pkgDir, pkg.exports["."].import.default)).href);
}

const { Client } = await loadSdk();
const client = new Client({ apiUrl: SERVER_URL, apiKey: API_KEY });

async function collect(stream) {
  const parts = [];
  for await (const part of stream) parts.push(part);
  return parts;
}

async function waitStatus(threadId, runId, statuses, limitMs = 15000) {
  const deadline = Date.now() + limitMs;
  for (;;) {
    const run = await client.runs.get(threadId, runId);
    if (statuses.includes(run.status)) return run;
    if (Date.now() > deadline) throw new Error(`run ${runId} still ${run.status} (wanted ${statuses})`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

// A loopback proxy that cuts the first run stream after its first `values` event, so the client
// has to reconnect by itself (to the Location header, with Last-Event-ID).
const proxyLog = [];
let cutNextStream = false;
const upstream = new URL(SERVER_URL);
const proxy = http.createServer((req, res) => {
  const cut = cutNextStream && req.method === "POST" && req.url.endsWith("/runs/stream");
  if (cut) cutNextStream = false;
  proxyLog.push({ method: req.method, url: req.url, lastEventId: req.headers["last-event-id"] });
  const forward = http.request(
    { host: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers: req.headers },
    (up) => {
      res.writeHead(up.statusCode, up.headers);
      let seen = "";
      up.on("data", (chunk) => {
        if (!cut) return void res.write(chunk);
        seen += chunk.toString();
        // cut once the client has a values event with its id (after that write reaches the socket)
        if (/event: values\r\ndata: [^\r]*\r\nid: /.test(seen)) {
          up.destroy();
          res.write(chunk, () => res.socket.destroy());
        } else {
          res.write(chunk);
        }
      });
      up.on("end", () => res.end());
    },
  );
  forward.on("error", () => res.destroy());
  req.pipe(forward);
});

before(async () => {
  await new Promise((resolve) => proxy.listen(0, "127.0.0.1", resolve));
});

after(async () => {
  proxy.closeAllConnections();
  await new Promise((resolve) => proxy.close(resolve));
});

test("assistants: every graph has a system assistant; created ones are searchable", async () => {
  const found = await client.assistants.search({ graphId: "echo", limit: 10 });
  const system = found.find((a) => a.metadata?.created_by === "system");
  assert.ok(system, "no system assistant for graph echo");
  assert.equal(system.graph_id, "echo");
  const tag = `js-${Date.now()}`;
  const made = await client.assistants.create({ graphId: "echo", metadata: { tag }, name: "js assistant" });
  const mine = await client.assistants.search({ metadata: { tag } });
  assert.deepEqual(
    mine.map((a) => a.assistant_id),
    [made.assistant_id],
  );
  const schemas = await client.assistants.getSchemas(made.assistant_id);
  assert.equal(schemas.graph_id, "echo");
});

test("runs.stream with values, messages-tuple, updates and custom", async () => {
  const thread = await client.threads.create({ metadata: { suite: "js" } });
  assert.equal(thread.status, "idle");
  let created;
  const parts = await collect(
    client.runs.stream(thread.thread_id, "chat", {
      input: { messages: [{ role: "user", content: "hi" }] },
      streamMode: ["values", "messages-tuple", "updates", "custom"],
      onRunCreated: (meta) => {
        created = meta;
      },
    }),
  );
  assert.equal(parts[0].event, "metadata");
  assert.equal(parts[0].data.run_id, created.run_id);
  assert.equal(created.thread_id, thread.thread_id);
  const events = new Set(parts.map((p) => p.event));
  for (const name of ["values", "messages", "updates"]) assert.ok(events.has(name), `no ${name} event`);
  const tokens = parts.filter((p) => p.event === "messages").map((p) => p.data);
  assert.ok(tokens.length > 1, "the fake model streams several tokens");
  assert.equal(tokens.map(([chunk]) => chunk.content).join(""), "the quick brown fox");
  assert.equal(tokens[0][1].langgraph_node, "model");
  const last = parts.filter((p) => p.event === "values").at(-1).data;
  assert.equal(last.messages.at(-1).content, "the quick brown fox");
  assert.deepEqual(
    parts.filter((p) => p.event === "updates").map((p) => Object.keys(p.data)),
    [["model"]],
  );

  const custom = await collect(
    client.runs.stream(thread.thread_id, "custom", {
      input: { n: 3 },
      streamMode: ["values", "messages-tuple", "updates", "custom"],
    }),
  );
  assert.deepEqual(
    custom.filter((p) => p.event === "custom").map((p) => p.data),
    [{ progress: 0 }, { progress: 1 }, { progress: 2 }],
  );
  assert.equal(custom.filter((p) => p.event === "values").at(-1).data.greeting, "hello");
  const run = await client.runs.get(thread.thread_id, created.run_id);
  assert.equal(run.status, "success");
});

test("runs.wait answers the final values; a failing graph raises", async () => {
  const thread = await client.threads.create();
  const values = await client.runs.wait(thread.thread_id, "echo", {
    input: { messages: [{ role: "user", content: "ping" }] },
  });
  assert.equal(values.messages.at(-1).content, "echo: ping");
  assert.equal(values.count, 1);
  await assert.rejects(client.runs.wait(thread.thread_id, "failing", { input: {} }), /ValueError: boom/);
  assert.equal((await client.threads.get(thread.thread_id)).status, "error");
  const stateless = await client.runs.wait(null, "echo", { input: { messages: [{ role: "user", content: "x" }] } });
  assert.equal(stateless.messages.at(-1).content, "echo: x");
});

test("background run, runs.join and runs.joinStream", async () => {
  const thread = await client.threads.create();
  const run = await client.runs.create(thread.thread_id, "slow", { input: { delay: 0.1, steps: 3 } });
  assert.ok(["pending", "running"].includes(run.status));
  const joined = await client.runs.join(thread.thread_id, run.run_id);
  assert.deepEqual(joined.done, [0, 1, 2]);
  assert.equal((await client.runs.get(thread.thread_id, run.run_id)).status, "success");

  const second = await client.runs.create(thread.thread_id, "slow", {
    input: { delay: 0.15, steps: 6 },
    streamMode: ["values", "updates"],
  });
  const parts = await collect(
    client.runs.joinStream(thread.thread_id, second.run_id, { streamMode: ["values", "updates"] }),
  );
  const updates = parts.filter((p) => p.event === "updates");
  assert.ok(updates.length >= 2, `expected updates while joined, got ${JSON.stringify(parts)}`);
  assert.equal((await waitStatus(thread.thread_id, second.run_id, ["success"])).status, "success");
  const listed = await client.runs.list(thread.thread_id, { select: ["run_id", "status"] });
  assert.deepEqual(new Set(listed.map((r) => r.run_id)), new Set([run.run_id, second.run_id]));
  assert.deepEqual(Object.keys(listed[0]).sort(), ["run_id", "status"]);
});

test("threads.joinStream follows every run of the thread", async () => {
  const thread = await client.threads.create();
  const controller = new AbortController();
  const seen = [];
  const reader = (async () => {
    const parts = client.threads.joinStream(thread.thread_id, { lastEventId: "-1", signal: controller.signal });
    for await (const part of parts) {
      seen.push(part);
      if (part.event === "values" && part.data.done?.length === 2) controller.abort();
    }
  })();
  const run = await client.runs.create(thread.thread_id, "slow", { input: { delay: 0.05, steps: 2 } });
  const timer = setTimeout(() => controller.abort(), 10000);
  await reader;
  clearTimeout(timer);
  assert.equal(seen[0].event, "metadata");
  assert.equal(seen[0].data.run_id, run.run_id);
  assert.deepEqual(seen.filter((p) => p.event === "values").at(-1).data.done, [0, 1]);
});

test("interrupt, thread state and history, then resume with command", async () => {
  const thread = await client.threads.create();
  const waiting = await client.runs.wait(thread.thread_id, "approval", { input: { request: "deploy" } });
  assert.equal(waiting.__interrupt__[0].value.question, "approve deploy?");
  const t = await client.threads.get(thread.thread_id);
  assert.equal(t.status, "interrupted");
  const state = await client.threads.getState(thread.thread_id);
  assert.deepEqual(state.next, ["ask"]);
  assert.equal(state.tasks[0].interrupts[0].value.question, "approve deploy?");
  assert.deepEqual(state.values.log, ["prepared"]);

  const parts = await collect(
    client.runs.stream(thread.thread_id, "approval", { command: { resume: "yes" }, streamMode: "updates" }),
  );
  const nodes = parts.filter((p) => p.event === "updates").flatMap((p) => Object.keys(p.data));
  assert.deepEqual(nodes, ["ask", "finish"]);
  const done = await client.threads.getState(thread.thread_id);
  assert.deepEqual(done.values.log, ["prepared", "asked", "finished:yes"]);
  assert.deepEqual(done.next, []);
  assert.equal((await client.threads.get(thread.thread_id)).status, "idle");

  const history = await client.threads.getHistory(thread.thread_id, { limit: 20 });
  assert.ok(history.length >= 4, `history too short: ${history.length}`);
  assert.deepEqual(history[0].values.log, ["prepared", "asked", "finished:yes"]);
  const older = await client.threads.getState(thread.thread_id, history.at(-1).checkpoint.checkpoint_id);
  assert.equal(older.checkpoint.checkpoint_id, history.at(-1).checkpoint.checkpoint_id);
  const found = await client.threads.search({ status: "idle", metadata: {}, limit: 100 });
  assert.ok(found.some((x) => x.thread_id === thread.thread_id));
});

test("cancel a running run", async () => {
  const thread = await client.threads.create();
  const run = await client.runs.create(thread.thread_id, "slow", { input: { delay: 0.2, steps: 100 } });
  await waitStatus(thread.thread_id, run.run_id, ["running"]);
  await client.runs.cancel(thread.thread_id, run.run_id, true);
  assert.equal((await client.runs.get(thread.thread_id, run.run_id)).status, "interrupted");
  assert.equal((await client.threads.get(thread.thread_id)).status, "idle");
});

test("a dropped resumable stream is resumed by the client (Location + Last-Event-ID)", async () => {
  const viaProxy = new Client({ apiUrl: `http://127.0.0.1:${proxy.address().port}`, apiKey: API_KEY });
  const thread = await client.threads.create();
  cutNextStream = true;
  proxyLog.length = 0;
  const parts = await collect(
    viaProxy.runs.stream(thread.thread_id, "slow", {
      input: { delay: 0.2, steps: 4 },
      streamMode: "values",
      streamResumable: true,
    }),
  );
  const reconnects = proxyLog.filter((r) => r.method === "GET" && r.url.includes("/stream"));
  assert.equal(reconnects.length, 1, JSON.stringify(proxyLog));
  assert.match(reconnects[0].lastEventId ?? "", /^\d+-\d+$/);
  const seen = parts.filter((p) => p.event === "values").map((p) => p.data.done.length);
  assert.deepEqual(seen, [0, 1, 2, 3, 4], "every values event exactly once, in order");
  assert.equal(parts.filter((p) => p.event === "metadata").length, 1);

  // the same stream again, explicitly from the last event id the client saw: nothing is repeated
  const runId = parts[0].data.run_id;
  const lastId = parts.at(-1).id;
  assert.match(lastId ?? "", /^\d+-\d+$/);
  const rest = await collect(client.runs.joinStream(thread.thread_id, runId, { lastEventId: lastId }));
  assert.deepEqual(rest, []);
  const all = await collect(client.runs.joinStream(thread.thread_id, runId, { lastEventId: "-1" }));
  assert.deepEqual(
    all.filter((p) => p.event === "values").map((p) => p.data.done.length),
    [0, 1, 2, 3, 4],
  );
});
