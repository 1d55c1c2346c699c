// The modelpilot dashboard: polls the JSON API of `kubectl modelpilot dashboard` and redraws in
// place. Read-only. Every text from the cluster goes in through textContent, never as markup.
// Words and figures come formatted by the API (the terminal views' own text, so both read alike);
// the raw numbers beside them only place the charts' marks.

const POLL_MS = 2000;
const SVG = "http://www.w3.org/2000/svg";
const API = "/api/modeldeployments";

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined && value !== false) node.setAttribute(key, value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function svg(tag, attrs = {}, text = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text !== null) node.textContent = text;
  return node;
}

function table(node, columns, rows, empty) {
  const head = el("tr", {}, ...columns.map((c) => el("th", {}, c)));
  const body = rows.map((cells) => el("tr", {}, ...cells.map((c) => (c instanceof Node ? el("td", {}, c) : el("td", {}, String(c ?? ""))))));
  if (!rows.length && empty) body.push(el("tr", {}, el("td", { colspan: columns.length, class: "muted" }, empty)));
  node.replaceChildren(el("thead", {}, head), el("tbody", {}, ...body));
}

const verdictCell = (verdict) => el("span", { class: `v-${verdict}` }, verdict || "-");
// A chart's axis label only: the figures shown as text come formatted by the API.
const tick = (value) => String(Number(value.toPrecision(3)));
const clock = (stamp) => (stamp ? stamp.slice(11, 19) : "");

// ---------------------------------------------------------------------------------------- state

let selected = decodeURIComponent(location.hash.slice(1)) || null;
let known = new Set();

window.addEventListener("hashchange", () => {
  selected = decodeURIComponent(location.hash.slice(1)) || null;
  refresh();
});

async function getJSON(path) {
  const answer = await fetch(path, { cache: "no-store" });
  const body = await answer.json();
  if (!answer.ok) throw new Error(body.error || `${answer.status} ${answer.statusText}`);
  return body;
}

function showError(message) {
  const banner = $("error");
  banner.hidden = !message;
  banner.textContent = message || "";
}

// ---------------------------------------------------------------------------------------- list

function renderList(data) {
  $("scope").textContent = data.namespace ? `namespace ${data.namespace}` : "all namespaces";
  $("updated").textContent = data.updated ? `updated ${clock(data.updated)} UTC` : "";
  showError(data.error ? `cannot read the cluster: ${data.error}` : "");
  known = new Set(data.items.map((item) => `${item.namespace}/${item.name}`));
  if (!selected && data.items.length === 1) selected = `${data.items[0].namespace}/${data.items[0].name}`;
  const rows = data.items.map((item) => {
    const key = `${item.namespace}/${item.name}`;
    const cells = [
      ["namespace", item.namespace], ["name", item.name], ["model", item.model], ["stable", item.stable ?? "-"],
      ["canary", item.canary ?? "-"], ["state", item.state ?? "-"], ["step", item.step],
      ["weight", item.weightText], ["verdict", item.verdictText], ["phase", item.phase || "-"],
      ["stage", item.stage], ["ready", item.ready ?? "-"], ["age", item.age],
    ].map(([name, text]) => el("td", { class: `c-${name}` }, text));
    cells[8].classList.add(`v-${item.verdict}`);
    cells[9].classList.add(`p-${item.phase}`);
    const row = el("tr", { "data-key": key, class: key === selected ? "selected" : null, tabindex: "0" }, ...cells);
    const open = () => { location.hash = encodeURIComponent(key).replace("%2F", "/"); };
    row.addEventListener("click", open);
    row.addEventListener("keydown", (event) => { if (event.key === "Enter") open(); });
    return row;
  });
  $("mdeps").tBodies[0].replaceChildren(...rows);
  const empty = $("empty");
  empty.hidden = data.items.length > 0;
  empty.textContent = `No modeldeployments found in ${data.namespace ? `namespace ${data.namespace}` : "any namespace"}.`;
}

// ---------------------------------------------------------------------------------------- head and weight

function renderHead(data) {
  const { head } = data;
  $("title").textContent = head.title;
  const facts = [["spec version", head.specVersion], ["stable", head.stableText]];
  const canary = head.canary;
  if (canary) {
    facts.push(["canary", canary.line]);
    if (canary.stage) facts.push(["stage", canary.stage]);
    if (canary.message) facts.push(["last decision", canary.message]);
  } else {
    facts.push(["canary", "none"]);
  }
  $("head").replaceChildren(...facts.flatMap(([term, text]) => [el("dt", {}, term), el("dd", {}, text)]));
  const weight = canary ? canary.weight : 0;
  const bar = $("weight-bar");
  const split = 4 * (100 - weight);
  bar.replaceChildren(svg("rect", { x: 0, y: 0, width: split, height: 14, class: "stable" }),
    svg("rect", { x: split, y: 0, width: 400 - split, height: 14, class: "canary" }));
  $("weight-value").textContent = canary ? data.item.weightText : "no canary";
  $("weight-value").dataset.weight = canary ? String(weight) : "";
  $("weight-note").textContent = canary ? canary.weightText : "";
  $("notes").replaceChildren(...data.notes.map((note) => el("li", {}, note)));
}

// A chart's frame: x from the first sample to now, y from 0 to `top`.
function frame(node, width, height, start, end, top) {
  const pad = { left: 34, right: 8, top: 8, bottom: 18 };
  const span = Math.max(end - start, 1);
  const x = (t) => pad.left + ((t - start) / span) * (width - pad.left - pad.right);
  const y = (v) => height - pad.bottom - (Math.max(0, Math.min(v, top)) / top) * (height - pad.top - pad.bottom);
  node.replaceChildren(
    svg("line", { x1: pad.left, y1: y(0), x2: width - pad.right, y2: y(0), class: "axis" }),
    svg("line", { x1: pad.left, y1: y(top), x2: width - pad.right, y2: y(top), class: "gridline" }),
    svg("text", { x: pad.left - 4, y: y(top) + 4, class: "tick", "text-anchor": "end" }, tick(top)),
    svg("text", { x: pad.left - 4, y: y(0) + 4, class: "tick", "text-anchor": "end" }, "0"),
    svg("text", { x: pad.left, y: height - 4, class: "tick" }, clock(new Date(start).toISOString())),
    svg("text", { x: width - pad.right, y: height - 4, class: "tick", "text-anchor": "end" }, clock(new Date(end).toISOString())),
  );
  return { x, y };
}

function renderWeightChart(samples, now) {
  const node = $("weight-chart");
  const end = Date.parse(now);
  const start = Math.min(end - 60000, ...samples.map((s) => Date.parse(s.time)));
  const { x, y } = frame(node, 480, 140, start, end, 100);
  let path = "";
  samples.forEach((sample, index) => {
    const t = Date.parse(sample.time);
    const next = index + 1 < samples.length ? Date.parse(samples[index + 1].time) : end;
    const weight = sample.weight ?? 0;
    path += `${index ? "L" : "M"}${x(t).toFixed(1)},${y(weight).toFixed(1)} L${x(next).toFixed(1)},${y(weight).toFixed(1)} `;
  });
  if (path) node.append(svg("path", { d: path, class: "weight-line" }));
  for (const sample of samples) {
    if (sample.weight === null) continue;
    const mark = svg("circle", { cx: x(Date.parse(sample.time)), cy: y(sample.weight), r: 3, class: "weight-point", "data-weight": sample.weight });
    mark.append(svg("title", {}, `${clock(sample.time)} ${sample.weight}% step ${sample.step} ${sample.version ?? ""} ${sample.state ?? ""}`));
    node.append(mark);
  }
}

// ---------------------------------------------------------------------------------------- analyses

function metricChart(series) {
  const points = series.points;
  // From the first record to the last (a minute at least): a finished canary's chart keeps its shape.
  const times = points.map((p) => Date.parse(p.time));
  const start = Math.min(...times);
  const end = Math.max(...times, start + 60000);
  const numbers = points.flatMap((p) => [p.value, p.max, p.min]).filter((v) => v !== null && Number.isFinite(v));
  const top = Math.max(...numbers, 0) * 1.15 || 1;
  const node = svg("svg", { viewBox: "0 0 360 120", role: "img", "aria-label": `${series.metric} over time` });
  const { x, y } = frame(node, 360, 120, start, end, top);
  for (const key of ["max", "min"]) {
    let path = "";
    points.forEach((p, index) => {
      if (p[key] === null) return;
      const next = index + 1 < points.length ? Date.parse(points[index + 1].time) : end;
      path += `M${x(Date.parse(p.time)).toFixed(1)},${y(p[key]).toFixed(1)} L${x(next).toFixed(1)},${y(p[key]).toFixed(1)} `;
    });
    if (path) node.append(svg("path", { d: path, class: "limit" }));
  }
  const measured = points.filter((p) => p.value !== null);
  if (measured.length > 1) {
    node.append(svg("polyline", { points: measured.map((p) => `${x(Date.parse(p.time)).toFixed(1)},${y(p.value).toFixed(1)}`).join(" "), class: "value-line" }));
  }
  for (const p of points) {
    const mark = svg("circle", { cx: x(Date.parse(p.time)), cy: y(p.value ?? 0), r: 3.5, class: `point v-${p.verdict}${p.value === null ? " nodata" : ""}` });
    mark.append(svg("title", {}, `${clock(p.time)} ${p.metric}=${p.valueText} (${p.threshold}) ${p.verdict}${p.detail ? `: ${p.detail}` : ""}`));
    node.append(mark);
  }
  const last = points[points.length - 1];
  const caption = el("figcaption", {}, el("strong", {}, series.metric), ` ${last.threshold} · last `,
    el("span", { class: `v-${last.verdict}` }, `${last.valueText} ${last.verdict}`));
  return el("figure", { class: "chart", "data-metric": series.metric }, caption, node);
}

function renderAnalyses(data) {
  const charts = data.series.metrics.map(metricChart);
  if (!charts.length) charts.push(el("p", { class: "muted" }, "no analysis yet"));
  $("metric-charts").replaceChildren(...charts);
  table($("last-analysis"), ["time", "metric", "value", "threshold", "verdict", "detail"],
    data.lastAnalysis.map((r) => [clock(r.time), r.metric, r.valueText, r.threshold, verdictCell(r.verdict), r.detail]),
    "no analysis of this canary yet");
}

// ---------------------------------------------------------------------------------------- sections

function section(id, title, ...children) {
  const node = $(id);
  node.hidden = children.length === 0;
  node.replaceChildren(...(children.length ? [el("h3", {}, title), ...children] : []));
}

function renderExperiment(experiment) {
  if (!experiment) return section("experiment", "");
  const rows = experiment.comparisons.map((c) => [c.metric, c.canary, c.stable, c.difference, c.pValue, c.samples,
    el("span", { class: `e-${c.verdict}` }, c.verdict), c.detail]);
  const grid = el("table", { class: "grid" });
  table(grid, ["metric", "canary", "stable", "difference", "p-value", "samples", "verdict", "detail"], rows, "no comparisons yet");
  section("experiment", experiment.title, grid);
}

function renderServerless(serverless) {
  if (!serverless) return section("serverless", "");
  const grid = el("table", { class: "grid" });
  table(grid, ["", ""], serverless.rows);
  grid.tHead.remove();
  section("serverless", "scale to zero", grid);
}

function renderFleet(fleet) {
  if (!fleet) return section("fleet", "");
  const legend = el("p", {}, fleet.summary, ...fleet.counts.map((c) => el("span", { class: `legend s-${c.state}` }, `■ ${c.legend} ${c.count}`)));
  const cells = fleet.nodes.map((n) => el("span", { class: `node s-${n.state}`, title: `${n.name}: ${n.state}${n.canary ? ", canary node" : ""}` },
    `${n.canary ? "◆" : "■"} ${n.name}`));
  section("fleet", "fleet", legend, el("div", { class: "nodes" }, ...cells));
}

function distribution(d) {
  const largest = Math.max(...d.bins.flatMap((b) => [b.reference, b.live ?? 0]), 0) || 1;
  const height = 16 * d.bins.length + 4;
  const chart = svg("svg", { viewBox: `0 0 360 ${height}`, role: "img", "aria-label": `${d.name}: reference and live shares per bin` });
  d.bins.forEach((b, i) => {
    const top = 2 + 16 * i;
    chart.append(svg("text", { x: 0, y: top + 11, class: "tick" }, b.bin.slice(0, 16)),
      svg("rect", { x: 110, y: top, width: (110 * b.reference) / largest, height: 6, class: "reference" }),
      svg("rect", { x: 110, y: top + 7, width: (110 * (b.live ?? 0)) / largest, height: 6, class: d.drifted ? "drifted" : "live" }),
      svg("text", { x: 240, y: top + 11, class: "tick" }, `${b.referenceText} → ${b.liveText}`));
  });
  const caption = el("figcaption", {}, el("strong", {}, d.name), `  PSI ${d.psi}  p-value ${d.pValue}  `,
    el("span", { class: d.drifted ? "v-Fail" : "v-Pass" }, d.drifted ? "drifted" : "not drifted"));
  return el("figure", { class: "chart" }, caption, d.bins.length ? chart : el("p", { class: "muted" }, "no bins reported"));
}

function renderDrift(drift) {
  if (drift.notShown) return section("drift", "drift", el("p", {}, drift.notShown));
  const conditions = el("table", { class: "grid" });
  table(conditions, ["condition", "status", "reason", "message"],
    drift.conditions.map((c) => [c.type, el("span", { class: `d-${c.status}` }, c.status), c.reason, c.message]),
    "no DataDrift or ConceptDrift condition yet");
  const facts = el("dl", { class: "facts" }, ...drift.facts.flatMap((f) => [el("dt", {}, f.label), el("dd", { class: f.warn ? "warn" : null }, f.text)]));
  const charts = el("div", { class: "charts" }, ...drift.features.map(distribution), ...(drift.prediction ? [distribution(drift.prediction)] : []));
  const accuracy = el("p", {}, drift.accuracy.before, el("span", { class: drift.accuracy.drifted ? "v-Fail" : "live" }, drift.accuracy.live), drift.accuracy.after);
  const unexported = drift.unexported ? el("p", { class: drift.unexported.over ? "v-Fail" : null }, drift.unexported.text) : null;
  section("drift", "drift of the stable track", ...[drift.summary ? el("p", {}, drift.summary) : null, conditions, facts, charts, unexported, accuracy].filter(Boolean));
}

function renderDetail(data) {
  renderHead(data);
  renderWeightChart(data.series.weight, data.now);
  renderAnalyses(data);
  renderExperiment(data.experiment);
  renderServerless(data.serverless);
  renderFleet(data.edge);
  renderDrift(data.drift);
  table($("conditions"), ["type", "status", "reason", "message"], data.conditions.map((c) => [c.type, c.status, c.reason, c.message]), "none yet");
  const events = data.events ? [...data.events].reverse().slice(0, 20) : [];
  const why = data.eventsError ? `cannot read events: ${data.eventsError}` : data.events ? "no events (they expire after an hour)" : "not allowed to list events";
  table($("events"), ["time", "type", "reason", "message", "count"],
    events.map((e) => [e.last || e.time, el("span", { class: `t-${e.type}` }, e.type), e.reason, e.message, e.count]), why);
}

// ---------------------------------------------------------------------------------------- polling

let timer = null;

async function refresh() {
  clearTimeout(timer);
  try {
    renderList(await getJSON(API));
    const show = selected !== null && known.has(selected);
    $("detail").hidden = !show;
    if (show) {
      const [namespace, name] = selected.split("/");
      renderDetail(await getJSON(`${API}/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}`));
    }
    for (const row of $("mdeps").tBodies[0].rows) row.classList.toggle("selected", row.dataset.key === selected);
  } catch (err) {
    showError(`dashboard: ${err.message}`);
  } finally {
    timer = setTimeout(refresh, POLL_MS);
  }
}

refresh();
