// noisecorr provenance page: plain JavaScript and SVG, nothing fetched from outside this server.
"use strict";
const $ = (sel) => document.querySelector(sel);
const SVG = "http://www.w3.org/2000/svg";
const state = { runsPage: 1, run: null, graph: null };

async function api(path) {
  const r = await fetch(path);
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}
function el(tag, attrs = {}, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}
function svg(tag, attrs = {}, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}
function fillDl(dl, pairs) {
  dl.replaceChildren();
  for (const [k, v] of pairs) { dl.append(el("dt", {}, k), el("dd", {}, v === null || v === undefined ? "" : String(v))); }
}

// -- runs ---------------------------------------------------------------------------
async function loadRuns() {
  const page = await api(`api/runs?page=${state.runsPage}&page_size=20`);
  const body = $("#runs tbody");
  body.replaceChildren();
  for (const r of page.items) {
    const tr = el("tr", { class: "run-row", "data-run": r.run_id });
    tr.append(el("td", {}, r.run_id), el("td", {}, (r.started || "").slice(0, 19)), el("td", {}, r.status), el("td", {}, r.mapping));
    tr.addEventListener("click", () => openRun(r.run_id));
    body.append(tr);
  }
  const pages = Math.max(1, Math.ceil(page.total / page.page_size));
  $("#runs-page").textContent = `page ${page.page} of ${pages} (${page.total} runs)`;
  $("#runs-prev").disabled = page.page <= 1;
  $("#runs-next").disabled = page.page >= pages;
}
$("#runs-prev").addEventListener("click", () => { state.runsPage--; loadRuns(); });
$("#runs-next").addEventListener("click", () => { state.runsPage++; loadRuns(); });

async function openRun(runId) {
  const run = await api(`api/runs/${runId}`);
  state.run = run;
  document.querySelectorAll("tr.run-row").forEach((tr) => tr.classList.toggle("selected", tr.dataset.run === runId));
  $("#run-panel").hidden = false;
  $("#run-id").textContent = runId;
  const agents = run.agents.map((a) => `${a.type} ${a.name || a.mapping}${a.version ? " " + a.version : ""}`).join("; ");
  fillDl($("#run-info"), [["status", run.status], ["started", run.started], ["finished", run.finished],
    ["mapping", `${run.mapping} (${run.processes || "default"} processes)`], ["host", run.host], ["agents", agents],
    ["stored", (run.rules && run.rules.store || []).join(", ")]]);
  const body = $("#run-counts tbody");
  body.replaceChildren();
  for (const [pe, c] of Object.entries(run.counts)) {
    const ents = Object.entries(c.entities).map(([p, n]) => `${p}: ${n}`).join(", ");
    const tr = el("tr");
    tr.append(el("td", {}, pe), el("td", {}, c.activities), el("td", {}, ents), el("td", {}, c.stored));
    body.append(tr);
  }
  for (const f of ["json", "provn", "xml"]) $(`#export-${f}`).href = `api/runs/${runId}/export?format=${f}`;
  const products = await api(`api/runs/${runId}/entities?stored=true&page_size=200`);
  const ul = $("#products");
  ul.replaceChildren();
  for (const e of products.items) {
    const li = el("li", { class: "product", "data-entity": e.entity_id });
    const b = el("button", { class: "open-entity" }, "plot & lineage");
    b.addEventListener("click", () => openEntity(e.entity_id));
    const a = el("a", { href: `api/entities/${e.entity_id}/download` }, "download");
    li.append(el("span", {}, `${e.pe}: ${e.label}`), b, document.createTextNode(" "), a);
    ul.append(li);
  }
  if (!products.items.length) ul.append(el("li", {}, "none (see provenance_rules.store)"));
  if (products.total > products.items.length) ul.append(el("li", {}, `... ${products.total - products.items.length} more`));
}

$("#search-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  if (!state.run) return;
  const key = encodeURIComponent($("#search-key").value.trim());
  const value = encodeURIComponent($("#search-value").value.trim());
  const ul = $("#search-results");
  ul.replaceChildren();
  try {
    const res = await api(`api/search?run=${state.run.run_id}&key=${key}&value=${value}&page_size=100`);
    for (const e of res.items) {
      const li = el("li", { class: "search-hit" });
      const b = el("button", {}, "open");
      b.addEventListener("click", () => openEntity(e.entity_id));
      li.append(el("span", {}, `${e.pe}.${e.port}: ${e.label}`), b);
      ul.append(li);
    }
    if (!res.items.length) ul.append(el("li", {}, "no match"));
  } catch (err) { ul.append(el("li", {}, err.message)); }
});

// -- entity: metadata, plot, lineage --------------------------------------------------
async function openEntity(id) {
  const e = await api(`api/entities/${id}`);
  $("#entity-panel").hidden = false;
  $("#entity-label").textContent = `${e.pe}.${e.port}: ${e.label}`;
  const pairs = [["id", e.entity_id], ["generated by", e.activity ? `${e.activity.pe} ${e.activity.kind} (instance ${e.activity.instance})` : "run input"],
    ["derived from", `${e.derived_from.length} entities`], ["item", e.summary]];
  for (const [k, v] of Object.entries(e.meta)) pairs.push([k, v]);
  fillDl($("#entity-info"), pairs);
  $("#plot-box").hidden = !e.stored;
  if (e.stored) await plotProduct(id);
  state.graph = { root: id, nodes: new Map([[id, e]]), edges: new Set(), expanded: new Set() };
  await expand(id, 1);
  $("#entity-panel").scrollIntoView();
}

async function plotProduct(id) {
  const plot = $("#plot");
  plot.replaceChildren();
  $("#download").href = `api/entities/${id}/download`;
  const info = await api(`api/entities/${id}/product`);
  const field = "stack" in info.arrays ? "stack" : Object.keys(info.arrays).find((k) => info.arrays[k].shape.length === 1);
  if (!field) { plot.append(svg("text", { x: 10, y: 20 }, "no 1-D array to plot")); return; }
  const ys = (await api(`api/entities/${id}/product/${field}`)).values;
  let xs = null;
  if (field === "stack" && "lags" in info.arrays) xs = (await api(`api/entities/${id}/product/lags`)).values;
  if (!xs || xs.length !== ys.length) xs = ys.map((_, i) => i);
  const W = +plot.getAttribute("width"), H = +plot.getAttribute("height"), m = 30;
  const x0 = Math.min(...xs), x1 = Math.max(...xs);
  const amp = Math.max(1e-30, ...ys.map(Math.abs));
  const px = (x) => m + (W - 2 * m) * (x - x0) / ((x1 - x0) || 1);
  const py = (y) => H / 2 - (H / 2 - m) * y / amp;
  plot.append(svg("line", { x1: m, x2: W - m, y1: H / 2, y2: H / 2, class: "axis" }));
  if (x0 < 0 && x1 > 0) plot.append(svg("line", { x1: px(0), x2: px(0), y1: m / 2, y2: H - m / 2, class: "axis" }));
  const pts = ys.map((y, i) => `${px(xs[i]).toFixed(1)},${py(y).toFixed(1)}`).join(" ");
  plot.append(svg("polyline", { points: pts, "data-n": ys.length }));
  plot.append(svg("text", { x: m, y: H - 4, "font-size": 11 }, `${x0.toFixed(1)}`));
  plot.append(svg("text", { x: W - m - 30, y: H - 4, "font-size": 11 }, `${x1.toFixed(1)} ${field === "stack" ? "s lag" : ""}`));
  plot.append(svg("text", { x: W / 2 - 60, y: 14, "font-size": 11 }, `${info.fields.key || ""} n_windows ${info.fields.n_windows ?? ""}`));
}

async function expand(id, depth) {
  const g = state.graph;
  const res = await api(`api/entities/${id}/ancestors?depth=${depth}`);
  for (const n of res.nodes) if (!g.nodes.has(n.entity_id)) g.nodes.set(n.entity_id, n);
  for (const [a, b] of res.edges) g.edges.add(`${a} ${b}`);
  // nodes whose parents were all fetched are expanded
  const levels = new Map([[id, 0]]);
  let frontier = [id];
  for (let d = 0; d < depth && frontier.length; d++) {
    frontier.forEach((n) => g.expanded.add(n));
    const next = [];
    for (const [a, b] of res.edges) if (frontier.includes(a) && !levels.has(b)) { levels.set(b, d + 1); next.push(b); }
    frontier = next;
  }
  $("#graph-status").textContent = `${g.nodes.size} entities, ${g.edges.size} derivations${res.truncated ? " (more beyond this depth)" : ""}`;
  draw();
}
$("#expand-all").addEventListener("click", () => state.graph && expand(state.graph.root, 25));

function draw() {
  const g = state.graph, box = $("#graph");
  box.replaceChildren();
  const parents = new Map();
  for (const e of g.edges) { const [a, b] = e.split(" "); if (!parents.has(a)) parents.set(a, []); parents.get(a).push(b); }
  // level = longest path from the root (columns right to left: the root on the right)
  const level = new Map([[g.root, 0]]);
  let changed = true, guard = 0;
  while (changed && guard++ < 100) {
    changed = false;
    for (const [a, ps] of parents) {
      if (!level.has(a)) continue;
      for (const b of ps) if ((level.get(b) ?? -1) < level.get(a) + 1) { level.set(b, level.get(a) + 1); changed = true; }
    }
  }
  const columns = [];
  for (const [id, l] of level) { (columns[l] = columns[l] || []).push(id); }
  const colW = 190, rowH = 34, nw = 176, nh = 28;
  const ncol = columns.length, nrow = Math.max(...columns.map((c) => (c ? c.length : 0)));
  box.setAttribute("width", Math.max(760, ncol * colW + 20));
  box.setAttribute("height", Math.max(120, nrow * rowH + 20));
  const pos = new Map();
  columns.forEach((ids, l) => {
    ids.sort((p, q) => String(g.nodes.get(p)?.label).localeCompare(String(g.nodes.get(q)?.label)));
    ids.forEach((id, i) => pos.set(id, [10 + (ncol - 1 - l) * colW, 10 + i * rowH]));
  });
  for (const e of g.edges) {
    const [a, b] = e.split(" ");
    if (!pos.has(a) || !pos.has(b)) continue;
    const [ax, ay] = pos.get(a), [bx, by] = pos.get(b);
    box.append(svg("path", { class: "edge", d: `M${bx + nw},${by + nh / 2} C${bx + nw + 10},${by + nh / 2} ${ax - 10},${ay + nh / 2} ${ax},${ay + nh / 2}` }));
  }
  for (const [id, [x, y]] of pos) {
    const n = g.nodes.get(id) || { pe: "?", label: id };
    const cls = ["node"];
    if (g.expanded.has(id)) cls.push("expanded");
    if (id === g.root) cls.push("root");
    const grp = svg("g", { class: cls.join(" "), "data-id": id, "data-pe": n.pe, "data-port": n.port, "data-label": n.label || "",
      "data-seed-id": (n.meta && n.meta.seed_id) || "", transform: `translate(${x},${y})` });
    grp.append(svg("rect", { width: nw, height: nh }));
    grp.append(svg("text", { x: 4, y: 11 }, `${n.pe}.${n.port}`));
    const label = String(n.label || "");
    grp.append(svg("text", { x: 4, y: 23 }, label.length > 30 ? label.slice(0, 29) + "\u2026" : label));
    grp.append(svg("title", {}, `${n.pe}.${n.port} ${label}\n${id}`));
    grp.addEventListener("click", () => expand(id, 1));
    grp.addEventListener("dblclick", () => openEntity(id));
    box.append(grp);
  }
}

loadRuns().catch((err) => { document.body.append(el("p", {}, `error: ${err.message}`)); });
