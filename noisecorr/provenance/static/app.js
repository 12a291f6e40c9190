// noisecorr provenance page: plain JavaScript and SVG, nothing fetched from outside this server.
//
// The page's state is its URL hash, so every view can be linked, reloaded and reached with
// the browser's back and forward buttons (each view is a history entry; `hashchange` renders):
//   #/                         the runs
//   #/run/<run_id>             a run: agents, counts per PE, exports, stored products, search
//   #/entity/<entity_id>       an entity (with its run): metadata, stored product plot, its parents
//   #/lineage/<entity_id>      the same with its ancestors expanded, scrolled to the graph;
//                              ?depth=N (1..25, default 25: all) and ?expand=id,id (nodes
//                              expanded one more level by clicking them: the URL is updated in
//                              place, without a history entry, so back leaves the view)
"use strict";
const $ = (sel) => document.querySelector(sel);
const SVG = "http://www.w3.org/2000/svg";
const ID = /^[0-9a-f]{8,40}$/;
const MAX_DEPTH = 25; // the server's bound on a lineage depth
const TITLE = "noisecorr provenance";
const state = { runsPage: 1, run: null, graph: null };

async function api(path) {
  const r = await fetch(path);
  const text = await r.text();
  let body;
  try { body = JSON.parse(text); } catch (err) { throw new Error(`${path}: ${r.status} ${r.statusText} (not JSON)`); }
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
function showMessage(text) {
  $("#message").hidden = !text;
  $("#message").textContent = text || "";
}

// -- routes ---------------------------------------------------------------------------
function parseRoute(hash) {
  const text = hash.replace(/^#/, "");
  const cut = text.indexOf("?");
  const path = cut < 0 ? text : text.slice(0, cut);
  const query = new URLSearchParams(cut < 0 ? "" : text.slice(cut + 1));
  const parts = path.split("/").filter(Boolean);
  if (!parts.length) return { view: "runs" };
  const [view, id] = parts;
  if (!["run", "entity", "lineage"].includes(view) || parts.length !== 2) return { view: "unknown", text };
  if (!ID.test(id)) return { view: "invalid", what: view === "run" ? "run" : "entity", id };
  const route = { view, id };
  if (view === "lineage") {
    const d = parseInt(query.get("depth") ?? String(MAX_DEPTH), 10);
    route.depth = Number.isFinite(d) ? Math.min(MAX_DEPTH, Math.max(1, d)) : MAX_DEPTH;
    route.expand = (query.get("expand") || "").split(",").filter(Boolean);
  }
  return route;
}
function routeHash(r) {
  if (r.view === "runs") return "#/";
  let h = `#/${r.view}/${r.id}`;
  if (r.view === "lineage") {
    const q = [];
    if (r.depth !== MAX_DEPTH) q.push(`depth=${r.depth}`);
    if (r.expand && r.expand.length) q.push(`expand=${r.expand.join(",")}`);
    if (q.length) h += "?" + q.join("&");
  }
  return h;
}
function navigate(hash) {
  if (location.hash === hash) render(); else location.hash = hash; // a new history entry
}

let renderToken = 0; // a newer navigation makes the answers of an older one stale
async function render() {
  const token = ++renderToken;
  const live = () => token === renderToken;
  const route = parseRoute(location.hash);
  showMessage(null);
  try {
    if (route.view === "runs") {
      state.run = state.graph = null;
      $("#run-panel").hidden = $("#entity-panel").hidden = true;
      markSelected();
      document.title = TITLE;
      return;
    }
    if (route.view === "unknown") throw new Error(`no such view (the views are #/run/ID, #/entity/ID and #/lineage/ID)`);
    if (route.view === "invalid") throw new Error(`invalid ${route.what} id ${route.id}: expected 8 to 40 lowercase hex digits`);
    if (route.view === "run") {
      await showRun(route.id, live);
      if (!live()) return;
      $("#entity-panel").hidden = true;
      state.graph = null;
      document.title = `run ${route.id} \u00b7 ${TITLE}`;
      window.scrollTo(0, 0);
      return;
    }
    const e = await api(`api/entities/${route.id}`);
    if (!live()) return;
    if (!state.run || state.run.run_id !== e.run_id) await showRun(e.run_id, live);
    if (live()) await showEntity(e, route, live);
  } catch (err) {
    if (!live()) return;
    state.run = state.graph = null;
    $("#run-panel").hidden = $("#entity-panel").hidden = true;
    markSelected();
    document.title = TITLE;
    showMessage(`cannot open ${location.hash}: ${err.message}`);
  }
}
window.addEventListener("hashchange", render);

// -- runs -----------------------------------------------------------------------------
function markSelected() {
  const id = state.run && state.run.run_id;
  document.querySelectorAll("tr.run-row").forEach((tr) => tr.classList.toggle("selected", tr.dataset.run === id));
}
async function loadRuns() {
  const page = await api(`api/runs?page=${state.runsPage}&page_size=20`);
  const body = $("#runs tbody");
  body.replaceChildren();
  for (const r of page.items) {
    const tr = el("tr", { class: "run-row", "data-run": r.run_id });
    const link = el("td");
    link.append(el("a", { href: routeHash({ view: "run", id: r.run_id }) }, r.run_id));
    tr.append(link, el("td", {}, (r.started || "").slice(0, 19)), el("td", {}, r.status), el("td", {}, r.mapping));
    tr.addEventListener("click", (ev) => { if (!ev.target.closest("a")) navigate(routeHash({ view: "run", id: r.run_id })); });
    body.append(tr);
  }
  const pages = Math.max(1, Math.ceil(page.total / page.page_size));
  $("#runs-page").textContent = `page ${page.page} of ${pages} (${page.total} runs)`;
  $("#runs-prev").disabled = page.page <= 1;
  $("#runs-next").disabled = page.page >= pages;
  markSelected();
}
$("#runs-prev").addEventListener("click", () => { state.runsPage--; loadRuns().catch((err) => showMessage(err.message)); });
$("#runs-next").addEventListener("click", () => { state.runsPage++; loadRuns().catch((err) => showMessage(err.message)); });

async function showRun(runId, live) {
  const run = await api(`api/runs/${runId}`);
  const products = await api(`api/runs/${runId}/entities?stored=true&page_size=200`);
  if (!live()) return;
  state.run = run;
  markSelected();
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
  const ul = $("#products");
  ul.replaceChildren();
  for (const e of products.items) {
    const li = el("li", { class: "product", "data-entity": e.entity_id });
    const open = el("a", { class: "open-entity button", href: routeHash({ view: "entity", id: e.entity_id }) }, "plot & lineage");
    const a = el("a", { href: `api/entities/${e.entity_id}/download` }, "download");
    li.append(el("span", {}, `${e.pe}: ${e.label}`), document.createTextNode(" "), open, document.createTextNode(" "), a);
    ul.append(li);
  }
  if (!products.items.length) ul.append(el("li", {}, "none (see provenance_rules.store)"));
  if (products.total > products.items.length) ul.append(el("li", {}, `... ${products.total - products.items.length} more`));
  $("#search-results").replaceChildren();
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
      li.append(el("span", {}, `${e.pe}.${e.port}: ${e.label}`), document.createTextNode(" "),
        el("a", { class: "button", href: routeHash({ view: "entity", id: e.entity_id }) }, "open"));
      ul.append(li);
    }
    if (!res.items.length) ul.append(el("li", {}, "no match"));
  } catch (err) { ul.append(el("li", {}, err.message)); }
});

// -- entity: metadata, plot, lineage --------------------------------------------------
async function showEntity(e, route, live) {
  const id = e.entity_id;
  const lineage = route.view === "lineage";
  const product = e.stored ? await fetchProduct(id) : null;
  if (!live()) return;
  const g = { root: id, depth: lineage ? route.depth : 1, expand: [], nodes: new Map([[id, e]]), edges: new Set(),
    expanded: new Set(), truncated: false, ignored: [] };
  await expand(g, id, g.depth);
  for (const x of lineage ? route.expand : []) {
    if (!live()) return;
    if (ID.test(x) && g.nodes.has(x)) { await expand(g, x, 1); g.expand.push(x); } else g.ignored.push(x);
  }
  if (!live()) return;
  state.graph = g;
  $("#entity-panel").hidden = false;
  $("#entity-panel").dataset.entity = id;
  $("#entity-panel").dataset.view = route.view;
  $("#entity-label").textContent = `${e.pe}.${e.port}: ${e.label}`;
  const pairs = [["id", id], ["generated by", e.activity ? `${e.activity.pe} ${e.activity.kind} (instance ${e.activity.instance})` : "run input"],
    ["derived from", `${e.derived_from.length} entities`], ["item", e.summary]];
  for (const [k, v] of Object.entries(e.meta)) pairs.push([k, v]);
  fillDl($("#entity-info"), pairs);
  $("#plot-box").hidden = !product;
  if (product) drawPlot(id, product);
  $("#expand-all").href = routeHash({ view: "lineage", id, depth: MAX_DEPTH });
  draw();
  graphChanged();
  document.title = `${lineage ? "lineage" : "entity"} ${e.pe}.${e.port} ${e.label} \u00b7 ${TITLE}`;
  (lineage ? $("#lineage-heading") : $("#entity-panel")).scrollIntoView();
}

function graphRoute(g) {
  return { view: "lineage", id: g.root, depth: g.depth, expand: g.expand };
}
function graphChanged() {
  const g = state.graph;
  const ignored = g.ignored.length ? `; ${g.ignored.length} id(s) of the link not in this lineage: ${g.ignored.join(", ")}` : "";
  $("#graph-status").textContent = `${g.nodes.size} entities, ${g.edges.size} derivations${g.truncated ? " (more beyond this depth)" : ""}${ignored}`;
  $("#lineage-link").href = routeHash(graphRoute(g));
}

async function fetchProduct(id) {
  const info = await api(`api/entities/${id}/product`);
  const field = "stack" in info.arrays ? "stack" : Object.keys(info.arrays).find((k) => info.arrays[k].shape.length === 1);
  if (!field) return { info, field: null };
  const ys = (await api(`api/entities/${id}/product/${field}`)).values;
  let xs = null;
  if (field === "stack" && "lags" in info.arrays) xs = (await api(`api/entities/${id}/product/lags`)).values;
  if (!xs || xs.length !== ys.length) xs = ys.map((_, i) => i);
  return { info, field, xs, ys };
}

function drawPlot(id, { info, field, xs, ys }) {
  const plot = $("#plot");
  plot.replaceChildren();
  $("#download").href = `api/entities/${id}/download`;
  if (!field) { plot.append(svg("text", { x: 10, y: 20 }, "no 1-D array to plot")); return; }
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

// Adds the ancestors of `id` to `depth` levels to graph `g`; nodes whose parents were all
// fetched are marked expanded.
async function expand(g, id, depth) {
  const res = await api(`api/entities/${id}/ancestors?depth=${depth}`);
  for (const n of res.nodes) if (!g.nodes.has(n.entity_id)) g.nodes.set(n.entity_id, n);
  for (const [a, b] of res.edges) g.edges.add(`${a} ${b}`);
  const levels = new Map([[id, 0]]);
  let frontier = [id];
  for (let d = 0; d < depth && frontier.length; d++) {
    frontier.forEach((n) => g.expanded.add(n));
    const next = [];
    for (const [a, b] of res.edges) if (frontier.includes(a) && !levels.has(b)) { levels.set(b, d + 1); next.push(b); }
    frontier = next;
  }
  if (id === g.root) g.truncated = res.truncated;
}

// A click on a node expands its parents in place; the URL follows without a history entry.
async function expandNode(id) {
  const g = state.graph, at = location.hash;
  try {
    await expand(g, id, 1);
  } catch (err) { showMessage(err.message); return; }
  if (g !== state.graph || location.hash !== at) return; // navigated meanwhile (e.g. a double-click)
  if (id !== g.root && !g.expand.includes(id)) g.expand.push(id);
  draw();
  graphChanged();
  history.replaceState(null, "", routeHash(graphRoute(g)));
}

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
    grp.addEventListener("click", () => expandNode(id));
    grp.addEventListener("dblclick", () => navigate(routeHash({ view: "entity", id })));
    box.append(grp);
  }
}

loadRuns().catch((err) => showMessage(`cannot list the runs: ${err.message}`));
render();
