// Tiny SVG charts written for the console (no library): a line chart and a grouped bar chart.

const NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

function frame(width, height, title, maxY) {
  const root = svg("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": title });
  root.append(svg("title", {}, title));
  root.append(svg("line", { x1: 40, y1: height - 20, x2: width - 5, y2: height - 20, stroke: "#d8dee6" }));
  root.append(svg("text", { x: 36, y: 12, "text-anchor": "end" }, fmtTick(maxY)));
  root.append(svg("text", { x: 36, y: height - 20, "text-anchor": "end" }, "0"));
  return root;
}

function fmtTick(v) {
  if (v >= 1e6) return `${(v / 1e6).toFixed(1)}M`;
  if (v >= 1e3) return `${(v / 1e3).toFixed(1)}k`;
  return Number.isInteger(v) ? String(v) : v.toFixed(2);
}

/** points: [{label, value}] drawn as one line; the last value is labelled. */
export function lineChart(points, { title = "", width = 560, height = 150, color = "#2f6fdd" } = {}) {
  const maxY = Math.max(1, ...points.map((p) => p.value));
  const root = frame(width, height, title, maxY);
  if (points.length) {
    const step = points.length > 1 ? (width - 50) / (points.length - 1) : 0;
    const xy = points.map((p, i) => [45 + i * step, height - 20 - (p.value / maxY) * (height - 32)]);
    root.append(svg("polyline", { points: xy.map(([x, y]) => `${x},${y}`).join(" "), fill: "none", stroke: color, "stroke-width": 2 }));
    const [lx, ly] = xy[xy.length - 1];
    root.append(svg("circle", { cx: lx, cy: ly, r: 3, fill: color }));
    root.append(svg("text", { x: 45, y: height - 6 }, points[0].label));
    root.append(svg("text", { x: width - 5, y: height - 6, "text-anchor": "end" }, points[points.length - 1].label));
  }
  return root;
}

/** bars: [{label, values: [n, ...]}], one colour per series; labels under every nth bar. */
export function barChart(bars, { title = "", width = 560, height = 160, colors = ["#2f6fdd", "#1e8449"], series = [] } = {}) {
  const maxY = Math.max(1, ...bars.flatMap((b) => b.values));
  const root = frame(width, height, title, maxY);
  const n = Math.max(1, bars.length);
  const slot = (width - 50) / n;
  const per = bars[0] ? bars[0].values.length : 1;
  const bw = Math.max(1, (slot - 2) / per);
  const every = Math.ceil(n / 7);
  bars.forEach((b, i) => {
    b.values.forEach((v, j) => {
      const bh = (v / maxY) * (height - 32);
      const rect = svg("rect", { x: 45 + i * slot + j * bw, y: height - 20 - bh, width: Math.max(1, bw - 1), height: bh, fill: colors[j % colors.length] });
      rect.append(svg("title", {}, `${b.label}: ${series[j] ? series[j] + " " : ""}${v}`));
      root.append(rect);
    });
    if (i % every === 0) root.append(svg("text", { x: 45 + i * slot, y: height - 6 }, b.label));
  });
  series.forEach((s, j) => {
    const legend = svg("text", { x: width - 5, y: 12 + j * 12, "text-anchor": "end" }, `■ ${s}`);
    legend.style.fill = colors[j % colors.length]; // CSSOM, allowed by the page's CSP (no inline style attribute)
    root.append(legend);
  });
  return root;
}
