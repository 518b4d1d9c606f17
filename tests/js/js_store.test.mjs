// The official JS client's store methods (client.store.*), unchanged, against a running cogni-server.
// Run by tests/js/test_js_store.py: `node --test tests/js/js_store.test.mjs` with
//   COGNI_SERVER_URL   the server (serving packages/server/tests/fixtures/project)
//   COGNI_API_KEY, COGNI_API_KEY_B   API keys of two tenants of that server
//   LANGGRAPH_JS_SDK_DIR  a directory whose node_modules holds the SDK (installed outside the clone)
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { pathToFileURL } from "node:url";

const SERVER_URL = process.env.COGNI_SERVER_URL;
const API_KEY = process.env.COGNI_API_KEY;
const API_KEY_B = process.env.COGNI_API_KEY_B;
const SDK_DIR = process.env.LANGGRAPH_JS_SDK_DIR;
if (!SERVER_URL || !API_KEY || !API_KEY_B || !SDK_DIR) {
  throw new Error("set COGNI_SERVER_URL, COGNI_API_KEY, COGNI_API_KEY_B and LANGGRAPH_JS_SDK_DIR");
}

async function loadSdk() {
  const pkgDir = join(SDK_DIR, "node_modules", "@langchain", "langgraph-sdk");
  const pkg = JSON.parse(readFileSync(join(pkgDir, "package.json"), "utf8"));
  return import(pathToFileURL(join(pkgDir, pkg.exports["."].import.default)).href);
}

const { Client } = await loadSdk();
const client = new Client({ apiUrl: SERVER_URL, apiKey: API_KEY });
const other = new Client({ apiUrl: SERVER_URL, apiKey: API_KEY_B });
const root = () => `js${Date.now()}${Math.floor(Math.random() * 1e6)}`;

test("store: put, get (with camelCase copies), replace, delete; an absent item is null", async () => {
  const ns = [root(), "u1"];
  assert.equal(await client.store.putItem(ns, "k", { text: "hello", n: 1 }), undefined);
  const item = await client.store.getItem(ns, "k");
  assert.deepEqual(item.namespace, ns);
  assert.deepEqual(item.value, { text: "hello", n: 1 });
  assert.equal(item.createdAt, item.created_at);
  assert.equal(item.updatedAt, item.updated_at);
  await client.store.putItem(ns, "k", { text: "again" }, { ttl: 30 });
  const again = await client.store.getItem(ns, "k", { refreshTtl: true });
  assert.deepEqual(again.value, { text: "again" });
  assert.equal(again.created_at, item.created_at);
  assert.equal(await client.store.getItem(ns, "k", { refreshTtl: false }).then((i) => i.key), "k");
  assert.equal(await client.store.deleteItem(ns, "k"), undefined);
  assert.equal(await client.store.getItem(ns, "k"), null);
});

test("store: searchItems and listNamespaces", async () => {
  const top = root();
  await client.store.putItem([top, "docs", "u1"], "a", { tag: "x", n: 5 });
  await client.store.putItem([top, "docs", "u2"], "b", { tag: "y", n: 50 });
  await client.store.putItem([top, "img"], "c", { tag: "x", n: 500 });
  const all = await client.store.searchItems([top]);
  assert.deepEqual(
    all.items.map((i) => i.key),
    ["c", "b", "a"],
  );
  assert.ok(all.items.every((i) => i.score === null && i.createdAt === i.created_at));
  const tagged = await client.store.searchItems([top], { filter: { tag: "x" }, limit: 1, offset: 1 });
  assert.deepEqual(
    tagged.items.map((i) => i.key),
    ["a"],
  );
  const ranged = await client.store.searchItems([top], { filter: { n: { $gt: 10 } }, refreshTtl: false });
  assert.deepEqual(ranged.items.map((i) => i.key).sort(), ["b", "c"]);
  const listed = await client.store.listNamespaces({ prefix: [top], maxDepth: 2 });
  assert.deepEqual(listed.namespaces, [
    [top, "docs"],
    [top, "img"],
  ]);
  const bySuffix = await client.store.listNamespaces({ prefix: [top, "*"], suffix: ["u2"], limit: 5, offset: 0 });
  assert.deepEqual(bySuffix.namespaces, [[top, "docs", "u2"]]);
});

test("store: another tenant sees nothing under the same namespace", async () => {
  const ns = [root()];
  await client.store.putItem(ns, "k", { owner: "a" });
  assert.equal(await other.store.getItem(ns, "k"), null);
  assert.deepEqual((await other.store.searchItems(ns)).items, []);
  assert.deepEqual((await other.store.listNamespaces({ prefix: ns })).namespaces, []);
  await other.store.deleteItem(ns, "k");
  assert.deepEqual((await client.store.getItem(ns, "k")).value, { owner: "a" });
});

test("store: memory a graph writes is read by the client, and the other way round", async () => {
  const ns = [root(), "user"];
  const out = await client.runs.wait(null, "memory", {
    input: { namespace: ns, key: "fact", value: { likes: "tea" } },
  });
  assert.deepEqual(out.seen.value, { likes: "tea" });
  assert.deepEqual((await client.store.getItem(ns, "fact")).value, { likes: "tea" });
  await client.store.putItem(ns, "note", { likes: "coffee" });
  const read = await client.runs.wait(null, "memory", { input: { namespace: ns, key: "note" } });
  assert.deepEqual(read.seen.value, { likes: "coffee" });
});

test("store: bad requests are 422 with a reason; dotted labels are refused by the client itself", async () => {
  await assert.rejects(client.store.putItem([root()], "k", {}, { ttl: 0 }), (err) => {
    assert.equal(err.status, 422);
    assert.match(err.message, /ttl must be null or a whole number of minutes/);
    return true;
  });
  await assert.rejects(client.store.searchItems([root()], { filter: { n: { $in: [1] } } }), (err) => {
    assert.equal(err.status, 422);
    assert.match(err.message, /unsupported operator/);
    return true;
  });
  await assert.rejects(client.store.putItem(["a.b"], "k", {}), /cannot contain periods/);
});
