// Small DOM helpers: element builder, tables, pagers, filters, formatting.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== undefined && c !== null && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}

export const fmt = {
  time(iso) { return iso ? new Date(iso).toLocaleString() : "—"; },
  ago(iso) {
    if (!iso) return "—";
    const s = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
    if (s < 60) return `${s}s ago`;
    if (s < 3600) return `${Math.round(s / 60)}m ago`;
    return `${Math.round(s / 3600)}h ago`;
  },
  num(n) { return n === undefined || n === null ? "—" : Number(n).toLocaleString(); },
  short(id) { return id ? String(id).slice(0, 8) : "—"; },
  json(v) { return JSON.stringify(v, null, 2); },
};

export function badge(text) { return h("span", { class: `badge ${text}` }, text); }

/** columns: [{title, get(row) -> node|string, num?}] */
export function table(columns, rows, { empty = "nothing here", testid } = {}) {
  if (!rows.length) return h("p", { class: "muted", "data-testid": testid }, empty);
  return h("table", { "data-testid": testid },
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { class: c.num ? "num" : null }, c.title)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, columns.map((c) => h("td", { class: c.num ? "num" : null }, c.get(r)))))));
}

/** "41–60 of 213" with previous/next; `total` may be unknown (null): next is allowed while pages are full. */
export function pager({ total, limit, offset, count }, onPage, testid) {
  const end = offset + count;
  const hasNext = total === null || total === undefined ? count === limit : end < total;
  return h("div", { class: "pager", "data-testid": testid },
    h("button", { class: "secondary", disabled: offset === 0, onclick: () => onPage(Math.max(0, offset - limit)) }, "‹ Prev"),
    h("span", {}, count ? `${offset + 1}–${end}` : "0", total !== null && total !== undefined ? ` of ${total}` : ""),
    h("button", { class: "secondary", disabled: !hasNext, onclick: () => onPage(offset + limit) }, "Next ›"));
}

/** A row of labelled inputs; `fields`: [{name, label, type: "text"|"select", options, value}]. */
export function filters(fields, onApply, testid) {
  const form = h("form", { class: "filters", "data-testid": testid });
  for (const f of fields) {
    const input = f.type === "select"
      ? h("select", { name: f.name }, f.options.map(([v, t]) => h("option", { value: v, selected: v === (f.value || "") }, t)))
      : h("input", { name: f.name, value: f.value || "", placeholder: f.placeholder || "", type: f.input || "text" });
    form.append(h("label", {}, f.label, input));
  }
  form.append(h("button", { type: "submit" }, "Apply"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    onApply(Object.fromEntries(new FormData(form).entries()));
  });
  return form;
}

export function stat(label, value, hint, testid, { small = false } = {}) {
  return h("div", { class: "card stat", "data-testid": testid },
    h("div", { class: "label" }, label), h("div", { class: small ? "value small" : "value" }, value), hint ? h("div", { class: "hint" }, hint) : null);
}

export function errorBox(err) {
  return h("p", { class: "error", role: "alert" }, `Error: ${err.message || err}`);
}

/** Route params of "#/page/a/b?x=1" */
export function route() {
  const [path, qs] = (location.hash.slice(1) || "/overview").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { page: parts[0] || "overview", args: parts.slice(1), query: Object.fromEntries(new URLSearchParams(qs || "")) };
}

export function go(page, args = [], query = {}) {
  const q = new URLSearchParams(Object.entries(query).filter(([, v]) => v !== "" && v !== undefined && v !== null));
  const path = ["", page, ...args.map(encodeURIComponent)].join("/");
  location.hash = q.toString() ? `${path}?${q}` : path;
}
