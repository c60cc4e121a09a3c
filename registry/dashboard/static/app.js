// The registry dashboard: polls the registry's own origin and draws tables and SVG charts.
// No framework, no build step, no network beyond this origin.
"use strict";

const POLL_MS = 1500;
const COLORS = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#76b7b2", "#edc948", "#9c755f", "#ff9da7", "#bab0ac"];
const EVENT_MARK = {
  version_registered: "R", traffic_changed: "T", version_promoted: "P",
  version_rolled_back: "B", version_archived: "A", deployment_rejected: "X", artifact_rejected: "X",
};
// The trainer's rejection and the registry's refusal of an artifact: no weights, a reason.
const REJECTIONS = new Set(["deployment_rejected", "artifact_rejected"]);

const state = { modelType: null, modelTypes: [], versions: [], versionOrder: [], colorOf: new Map(), busy: false, refreshes: 0 };

// ---------------------------------------------------------------- helpers

function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

function num(value, digits = 4) {
  if (value === null || value === undefined || value === "") return "–";
  if (typeof value !== "number") return esc(value);
  if (Number.isInteger(value)) return value.toLocaleString("en-US");
  return value.toFixed(digits);
}

function when(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return esc(iso);
  return d.toISOString().replace("T", " ").slice(0, 19) + "Z";
}

// A version keeps its colour: the palette follows version order (new versions append), and
// v0.0 ("no model yet") is always grey.
function colorOf(version) {
  if (version === "v0.0") return "#9aa3b2";
  const index = state.versionOrder.indexOf(version);
  if (index >= 0) return COLORS[index % COLORS.length];
  if (!state.colorOf.has(version)) state.colorOf.set(version, COLORS[(state.versionOrder.length + state.colorOf.size) % COLORS.length]);
  return state.colorOf.get(version);
}

function versionKey(v) {
  const m = /^v(\d+)\.(\d+)$/.exec(v || "");
  return m ? Number(m[1]) * 1e6 + Number(m[2]) : -1;
}

async function getJSON(url) {
  const response = await fetch(url, { cache: "no-store" });
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) {
    const detail = body && body.detail ? (typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail)) : `HTTP ${response.status}`;
    const error = new Error(detail);
    error.status = response.status;
    throw error;
  }
  return body;
}

// ---------------------------------------------------------------- notices

function setNotices(list) {
  const box = document.getElementById("notices");
  box.innerHTML = list.map((n) => `<div class="notice ${n.level}" id="notice-${n.id}" role="alert">${esc(n.text)}</div>`).join("");
}

function panelNotice(id, text) {
  const el = document.getElementById(id);
  el.hidden = !text;
  el.textContent = text || "";
}

// ---------------------------------------------------------------- charts

function axisTicks(min, max, count) {
  if (max === min) return [min];
  const out = [];
  for (let i = 0; i <= count; i++) out.push(min + ((max - min) * i) / count);
  return out;
}

// series: [{name, color, dashed, width, step, points: [{x, y, label}]}]; x is a number.
function lineChart(series, opts) {
  const W = opts.width || 900, H = opts.height || 220;
  const m = { l: 46, r: 24, t: 10, b: 26 };
  const xs = series.flatMap((s) => s.points.map((p) => p.x)).concat(opts.xExtra || []);
  const ys = series.flatMap((s) => s.points.map((p) => p.y));
  if (!xs.length) return `<svg viewBox="0 0 ${W} ${H}" data-empty="true"><text class="empty" x="${W / 2}" y="${H / 2}" text-anchor="middle">${esc(opts.empty || "no data yet")}</text></svg>`;
  let x0 = Math.min(...xs), x1 = Math.max(...xs);
  if (x0 === x1) { x0 -= 1; x1 += 1; }
  let y0 = opts.yMin ?? Math.min(...ys), y1 = opts.yMax ?? Math.max(...ys);
  if (opts.yMin === undefined || opts.yMax === undefined) {
    const pad = Math.max((y1 - y0) * 0.1, opts.minSpan || 0.01);
    if (opts.yMin === undefined) y0 = Math.max(opts.yFloor ?? -Infinity, y0 - pad);
    if (opts.yMax === undefined) y1 = y1 + pad;
  }
  if (y0 === y1) y1 = y0 + 1;
  const X = (x) => m.l + ((x - x0) / (x1 - x0)) * (W - m.l - m.r);
  const Y = (y) => H - m.b - ((y - y0) / (y1 - y0)) * (H - m.t - m.b);
  const parts = [`<svg viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(opts.label || "chart")}">`];
  for (const t of axisTicks(y0, y1, 4)) {
    parts.push(`<line class="grid" x1="${m.l}" x2="${W - m.r}" y1="${Y(t)}" y2="${Y(t)}"/>`);
    parts.push(`<text x="${m.l - 4}" y="${Y(t) + 3}" text-anchor="end">${esc(opts.yFormat ? opts.yFormat(t) : num(t, 3))}</text>`);
  }
  parts.push(`<line class="axis" x1="${m.l}" x2="${W - m.r}" y1="${H - m.b}" y2="${H - m.b}"/>`);
  for (const t of opts.xTicks ? opts.xTicks(x0, x1) : axisTicks(x0, x1, 5)) {
    parts.push(`<text x="${X(t.x ?? t)}" y="${H - m.b + 14}" text-anchor="middle">${esc(t.label ?? (opts.xFormat ? opts.xFormat(t) : t))}</text>`);
  }
  const placed = [];
  for (const m2 of opts.markers || []) {
    // Events close in time would hide each other: stack them downwards instead.
    const px = X(m2.x);
    const level = placed.filter((p) => Math.abs(p - px) < 15).length;
    placed.push(px);
    const cy = m.t + 6 + level * 16;
    parts.push(`<g class="marker" data-type="${esc(m2.type)}"><line x1="${px}" x2="${px}" y1="${m.t}" y2="${H - m.b}" stroke="${m2.color}" stroke-dasharray="2,3" stroke-width="1"/>` +
      `<circle cx="${px}" cy="${cy}" r="7" fill="${m2.color}"/><text x="${px}" y="${cy + 3}" text-anchor="middle" style="fill:#fff;font-weight:700">${esc(m2.mark)}</text><title>${esc(m2.title)}</title></g>`);
  }
  for (const s of series) {
    const pts = s.points;
    if (!pts.length) continue;
    let d = `M${X(pts[0].x)},${Y(pts[0].y)}`;
    for (let i = 1; i < pts.length; i++) {
      d += s.step ? `H${X(pts[i].x)}V${Y(pts[i].y)}` : `L${X(pts[i].x)},${Y(pts[i].y)}`;
    }
    if (s.extendTo !== undefined) d += `H${X(s.extendTo)}`;
    const values = JSON.stringify(pts.map((p) => p.y));
    parts.push(`<path class="${s.step ? "step" : "line"}" data-version="${esc(s.version)}" data-series="${esc(s.name)}" data-values='${esc(values)}' d="${d}" fill="none" stroke="${s.color}" stroke-width="${s.width || 2}" ${s.dashed ? 'stroke-dasharray="6,4"' : ""}/>`);
    for (const p of pts) {
      if (s.step && !p.label) continue;
      parts.push(`<circle class="point" data-version="${esc(s.version)}" data-x="${esc(p.key ?? p.x)}" data-value="${p.y}" cx="${X(p.x)}" cy="${Y(p.y)}" r="${s.dashed ? 4 : 3}" fill="${s.dashed ? "#fff" : s.color}" stroke="${s.color}" stroke-width="1.5"><title>${esc(s.name)} ${esc(p.label || p.key || "")}: ${num(p.y)}</title></circle>`);
    }
  }
  parts.push("</svg>");
  return parts.join("");
}

function legend(items) {
  return `<div class="legend">${items.map((i) => `<span style="--c:${i.color}">${esc(i.name)}</span>`).join("")}</div>`;
}

// ---------------------------------------------------------------- panels

function renderTypes(models) {
  const names = models.map((m) => m.model_type);
  if (!state.modelType || !names.includes(state.modelType)) {
    const fromHash = decodeURIComponent(location.hash.slice(1));
    state.modelType = names.includes(fromHash) ? fromHash : names[0] || null;
  }
  if (names.join() !== state.modelTypes.join()) {
    state.modelTypes = names;
    const nav = document.getElementById("model-types");
    nav.innerHTML = names.map((n) => `<button type="button" data-model-type="${esc(n)}">${esc(n)}</button>`).join("");
    nav.querySelectorAll("button").forEach((b) => b.addEventListener("click", () => {
      state.modelType = b.dataset.modelType;
      location.hash = state.modelType;
      state.colorOf = new Map();
      state.versionOrder = [];
      refresh();
    }));
  }
  document.querySelectorAll("#model-types button").forEach((b) => b.classList.toggle("active", b.dataset.modelType === state.modelType));
}

// Offsets read per partition of training-samples ([start, end)); empty ranges are left out.
function lineageText(lineage) {
  if (!lineage || !lineage.offsets) return "–";
  const parts = Object.entries(lineage.offsets)
    .filter(([, r]) => r[1] > r[0])
    .sort((a, b) => Number(a[0]) - Number(b[0]))
    .map(([p, r]) => `p${p}: ${r[0]}–${r[1]}`);
  const seed = lineage.seed !== undefined ? ` · seed ${lineage.seed}` : "";
  return `<span title="${esc(lineage.topic || "")}">${esc(parts.join(", ") || "no offsets")}${esc(seed)}</span>`;
}

function baselineText(baseline) {
  if (!baseline || !Object.keys(baseline).length) return "–";
  return Object.entries(baseline).map(([k, v]) => `${esc(k)} ${num(v)}`).join("<br>");
}

function renderVersions(versions) {
  const rows = [...versions].sort((a, b) => versionKey(b.version) - versionKey(a.version));
  const body = document.querySelector("#versions tbody");
  if (!rows.length) {
    body.innerHTML = `<tr><td colspan="12" class="muted">no version registered yet</td></tr>`;
    return;
  }
  body.innerHTML = rows.map((v) => {
    const m = v.metrics || {};
    const prod = v.status === "production";
    const canPromote = v.status === "staging" || v.status === "archived";
    const canRollback = v.status === "staging" || v.status === "production";
    return `<tr data-version="${esc(v.version)}" data-status="${esc(v.status)}" data-weight="${v.weight}" class="${prod ? "production" : ""}">
      <td><b style="color:${colorOf(v.version)}">${esc(v.version)}</b>${prod ? ' <span class="badge production" title="production">★ production</span>' : ""}</td>
      <td class="status"><span class="badge ${esc(v.status)}">${esc(v.status)}</span></td>
      <td class="num weight">${num(v.weight, 3)}</td>
      <td class="num" data-field="train_loss">${num(m.train_loss)}</td>
      <td class="num" data-field="val_loss">${num(m.val_loss)}</td>
      <td class="num" data-field="test_loss">${num(m.test_loss)}</td>
      <td class="num" data-field="early_stopping_epoch">${num(m.early_stopping_epoch)}</td>
      <td class="num" data-field="parameters">${num(m.parameters)}</td>
      <td class="small nowrap" data-field="baseline">${baselineText(v.baseline_metrics)}</td>
      <td class="small nowrap" data-field="created_at">${when(v.created_at)}</td>
      <td class="small wrap" data-field="lineage" data-topic="${esc(v.lineage ? v.lineage.topic : "")}">${lineageText(v.lineage)}</td>
      <td>${canPromote ? `<button type="button" class="link" data-act="promote" data-version="${esc(v.version)}">promote</button>` : ""}${canRollback ? `<button type="button" class="link danger" data-act="rollback" data-version="${esc(v.version)}">roll back</button>` : ""}</td>
    </tr>`;
  }).join("");
  body.querySelectorAll("button[data-act]").forEach((b) => b.addEventListener("click", () => {
    document.getElementById("action-version").value = b.dataset.version;
    act(b.dataset.act, b.dataset.version);
  }));
}

function renderActionVersions(versions) {
  const select = document.getElementById("action-version");
  const names = [...versions].sort((a, b) => versionKey(b.version) - versionKey(a.version)).map((v) => `${v.version}|${v.status}`);
  if (select.dataset.names === names.join()) return;
  const keep = select.value;
  select.dataset.names = names.join();
  select.innerHTML = names.map((n) => { const [v, s] = n.split("|"); return `<option value="${esc(v)}">${esc(v)} (${esc(s)})</option>`; }).join("");
  if (keep && names.some((n) => n.startsWith(keep + "|"))) select.value = keep;
}

function renderTraffic(history) {
  const steps = history.steps || [];
  const box = document.getElementById("traffic-chart");
  const versions = new Set();
  steps.forEach((s) => { Object.keys(s.weights || {}).forEach((v) => versions.add(v)); if (s.version) versions.add(s.version); });
  const ordered = [...versions].sort((a, b) => versionKey(a) - versionKey(b));
  // The last state is drawn on to now, but a long quiet tail would squeeze every change into
  // the left edge: the tail is capped at a quarter of the span the events cover.
  const times = steps.map((s) => Date.parse(s.occurred_at));
  const first = Math.min(...times), last = Math.max(...times);
  const now = Math.min(Date.now(), last + Math.max((last - first) * 0.25, 5000));
  const series = ordered.map((v) => {
    const points = [];
    let seen = false;
    for (const s of steps) {
      const w = (s.weights || {})[v] || 0;
      if (!seen && !w && s.version !== v) continue;
      seen = true;
      points.push({ x: Date.parse(s.occurred_at), y: w, key: s.occurred_at, label: s.version === v ? s.type : "" });
    }
    return { name: v, version: v, color: colorOf(v), step: true, width: 2.5, points, extendTo: now };
  });
  const markers = steps.map((s) => ({
    x: Date.parse(s.occurred_at), type: s.type, mark: EVENT_MARK[s.type] || "•",
    color: s.type === "version_rolled_back" ? "#d64545" : s.type === "version_promoted" ? "#1f9d55" : "#8792a6",
    title: `${when(s.occurred_at)} ${s.type} ${s.version || ""}: ${s.reason || ""}`,
  }));
  const timeFmt = (t) => new Date(t).toISOString().slice(11, 19);
  box.innerHTML = lineChart(series, {
    width: 1200, height: 220, yMin: 0, yMax: 1.08, markers, xExtra: steps.length ? [now] : [],
    yFormat: (t) => t.toFixed(2), xFormat: timeFmt, label: "traffic weights over time",
    empty: "no registry event seen yet",
  }) + legend(series.map((s) => ({ name: s.name, color: s.color })).concat(
    [{ name: "R registered · T traffic changed · P promoted · B rolled back · A archived", color: "transparent" }]));
  const events = (history.events || []).slice(-40).reverse();
  document.getElementById("events").innerHTML = events.map((e) => {
    const detail = REJECTIONS.has(e.type) ? (e.details && (e.details.detail || e.details.reason)) || "" : Object.entries(e.weights || {}).map(([k, w]) => `${k}=${w}`).join(" ");
    return `<li data-type="${esc(e.type)}" data-version="${esc(e.version || "")}"><time>${when(e.occurred_at)}</time><b>${esc(e.type)}</b> ${esc(e.version || "")} <span class="muted">${esc(e.reason)}</span> <code>${esc(detail)}</code></li>`;
  }).join("") || `<li class="muted">no events yet</li>`;
}

function renderPerformance(rows, productionVersion) {
  const days = [...new Set(rows.map((r) => r.day))].sort();
  const dayIndex = new Map(days.map((d, i) => [d, i]));
  const byVersion = new Map();
  rows.forEach((r) => { if (!byVersion.has(r.version)) byVersion.set(r.version, []); byVersion.get(r.version).push(r); });
  const versions = [...byVersion.keys()].sort((a, b) => versionKey(a) - versionKey(b));
  document.querySelectorAll("#performance .chart").forEach((box) => {
    const metric = box.dataset.metric;
    const series = versions.map((v) => {
      const baseline = v === productionVersion;
      return {
        name: baseline ? `${v} (production baseline)` : v, version: v, color: colorOf(v),
        dashed: baseline, width: baseline ? 3 : 2,
        points: byVersion.get(v).sort((a, b) => a.day.localeCompare(b.day)).map((r) => ({ x: dayIndex.get(r.day), y: r[metric], key: r.day, label: r.day })),
      };
    });
    const rate = metric !== "sample_count";
    box.dataset.days = days.join(",");
    box.innerHTML = lineChart(series, {
      width: 420, height: 200, label: metric, yFloor: 0, minSpan: rate ? 0.02 : 1,
      yMin: rate ? undefined : 0,
      yFormat: (t) => (rate ? t.toFixed(2) : Math.round(t).toLocaleString("en-US")),
      xTicks: () => days.map((d, i) => ({ x: i, label: d.slice(5) })),
      empty: "no outcomes in this window",
    }) + legend(series.map((s) => ({ name: s.name, color: s.color })));
  });
}

function renderAbtest(ab) {
  const box = document.getElementById("abtest");
  if (!ab || !ab.running) {
    box.innerHTML = `<p class="muted" data-field="running" data-value="false">No experiment running: it starts when a staging candidate gets traffic next to production.</p>`;
    return;
  }
  const stats = ab.statistics || null;
  // Rates over matured outcomes only: a waiting cohort is incomplete (fast positives first).
  const arm = (label, version, a) => `<tr data-arm="${label}" data-version="${esc(version)}">
      <td><b style="color:${colorOf(version)}">${esc(version)}</b> <span class="muted small">${label}</span></td>
      <td class="num" data-field="matured">${num(a.matured)}</td>
      <td class="num" data-field="waiting">${num(a.waiting)}</td>
      <td class="num" data-field="rate">${a.positive_outcome_rate == null ? "–" : num(a.positive_outcome_rate, 3)}</td>
      <td class="num" data-field="mse">${a.mean_squared_error == null ? "–" : num(a.mean_squared_error, 4)}</td></tr>`;
  const left = ab.remaining || {};
  let statHtml = `<p class="muted" data-field="next-look">no look yet: the first at ${num(ab.next_look_at)} matured candidate outcomes</p>`;
  if (stats) {
    const b = stats.boundaries || {};
    statHtml = `<dl class="kv" data-field="look" data-value="${stats.look}">
        <dt>look</dt><dd>${num(stats.look)} of ${num(stats.looks_planned)}</dd>
        <dt>rate z (candidate − production)</dt><dd data-field="rate-z">${num(stats.rate_z, 3)} <span class="muted">rollback at ≤ −${num(b.rollback, 3)}, promote at ≥ ${num(stats.step_weight >= 0.5 ? b.promote : b.expand, 3)}</span></dd>
        <dt>squared error z (margin ${num(100 * stats.squared_error_margin, 0)}%)</dt><dd>${num(stats.squared_error_z, 3)} <span class="muted">rollback at ≥ ${num(b.guardrail, 3)}</span></dd>
        <dt>error bounds (whole ramp)</dt><dd>false rollback ≤ ${num(stats.false_rollback_bound, 4)}, false promotion ≤ ${num(stats.false_promotion_bound, 4)}</dd>
      </dl>`;
  }
  box.innerHTML = `<p>decision so far: <span class="badge ${esc(ab.decision)}" data-field="decision">${esc(ab.decision)}</span>
      <span class="muted small">step <b data-field="step">${num(ab.step, 2)}</b> · window ${num(ab.outcome_window_seconds)} s</span></p>
    <table><thead><tr><th>arm</th><th>matured</th><th>waiting</th><th>positive rate (matured)</th><th>MSE (matured)</th></tr></thead>
    <tbody>${arm("production", ab.baseline_version, ab.baseline)}${arm("candidate", ab.candidate_version, ab.candidate)}</tbody></table>
    <p class="small" data-field="remaining" data-outcomes="${left.candidate_outcomes}" data-seconds="${left.seconds}">remaining budget: ${num(left.candidate_outcomes)} matured candidate outcomes or ${num(left.seconds / 86400, 1)} days of event time
      <span class="muted">· late ${num(ab.late)} · without served_at ${num(ab.missing_served_at)}</span></p>${statHtml}`;
}

function renderRetrains(history) {
  const rows = (history.retrain_commands || []).slice(-15).reverse();
  document.querySelector("#retrains tbody").innerHTML = rows.map((r) => `<tr data-command-id="${esc(r.command_id)}">
    <td>${when(r.requested_at)}</td><td>${esc(r.reason)}</td><td class="num">${num(r.new_samples)}</td>
    <td>${esc(r.baseline_version || "–")}</td><td><code>${esc((r.command_id || "").slice(0, 8))}</code></td></tr>`).join("")
    || `<tr><td colspan="5" class="muted">none yet</td></tr>`;
  const rejections = (history.rejections || []).slice(-15).reverse();
  document.querySelector("#rejections tbody").innerHTML = rejections.map((r) => `<tr data-reason="${esc(r.reason)}">
    <td>${when(r.occurred_at)}</td><td><b>${esc(r.reason)}</b></td><td class="small wrap">${esc(r.detail)}</td><td>${esc(r.source)}</td>
    <td><code>${esc((r.command_id || r.deployment_id || "").slice(0, 8))}</code></td></tr>`).join("")
    || `<tr><td colspan="5" class="muted">none</td></tr>`;
}

// ---------------------------------------------------------------- refresh loop

async function refresh() {
  if (state.busy) return;
  state.busy = true;
  const notices = [];
  try {
    let models;
    try {
      models = await getJSON("/models");
    } catch (e) {
      notices.push({ id: "registry", level: "error", text: `The registry does not answer (${e.message}); showing the last data.` });
      setLive(false);
      return;
    }
    renderTypes(models);
    const type = state.modelType;
    if (!type) { notices.push({ id: "empty", level: "warn", text: "No model type configured." }); return; }
    const t = encodeURIComponent(type);
    const days = document.getElementById("days").value;
    const [versions, history, perf, ab, samples, status] = await Promise.allSettled([
      getJSON(`/models/${t}/versions`), getJSON(`/dashboard/api/${t}/history`),
      getJSON(`/dashboard/api/streams/performance/${t}?days=${days}`), getJSON(`/dashboard/api/streams/abtest/${t}`),
      getJSON(`/dashboard/api/streams/samples/${t}`), getJSON("/dashboard/api/status"),
    ]);
    if (type !== state.modelType) return; // the user switched tabs meanwhile
    const model = models.find((m) => m.model_type === type);
    const production = model && model.production ? model.production.version : null;
    if (versions.status === "fulfilled") {
      state.versions = versions.value;
      state.versionOrder = versions.value.map((v) => v.version).sort((a, b) => versionKey(a) - versionKey(b));
      renderVersions(versions.value);
      renderActionVersions(versions.value);
    }
    if (history.status === "fulfilled") { renderTraffic(history.value); renderRetrains(history.value); }
    if (status.status === "fulfilled") {
      const k = status.value.kafka, s = status.value.streams;
      if (k && k.ok === false) notices.push({ id: "kafka", level: "error", text: `Kafka is unreachable: ${k.detail}. Traffic history, retrain commands and rejections are not updating.` });
      if (k && k.ok === null && k.detail && !k.detail.startsWith("not probed")) notices.push({ id: "kafka", level: "warn", text: k.detail });
      if (s && !s.ok) notices.push({ id: "streams", level: "error", text: `Streams is unreachable at ${s.url} (${s.detail}). Daily performance and the A/B test are unavailable.` });
    }
    if (perf.status === "fulfilled") { panelNotice("performance-notice", ""); renderPerformance(perf.value, production); }
    else panelNotice("performance-notice", `Daily performance unavailable: ${perf.reason.message}`);
    if (ab.status === "fulfilled") { panelNotice("abtest-notice", ""); renderAbtest(ab.value); }
    else panelNotice("abtest-notice", `A/B test unavailable: ${ab.reason.message}`);
    document.getElementById("samples").textContent = samples.status === "fulfilled"
      ? `${samples.value.new_samples} new samples since the last retrain (threshold ${samples.value.threshold})` : "";
    if (status.status === "fulfilled" && !notices.some((n) => n.id === "streams") && (perf.status === "rejected" || ab.status === "rejected")) {
      notices.push({ id: "streams", level: "warn", text: `Streams answers but is not ready: ${(perf.reason || ab.reason).message}` });
    }
    state.refreshes += 1;
    document.body.dataset.refreshes = String(state.refreshes);
    setLive(true);
  } finally {
    setNotices(notices);
    state.busy = false;
  }
}

function setLive(ok) {
  document.getElementById("live-dot").className = `dot ${ok ? "ok" : "bad"}`;
  document.getElementById("last-update").textContent = `${ok ? "updated" : "stale since"} ${new Date().toISOString().slice(11, 19)}Z`;
}

// ---------------------------------------------------------------- operator actions

function parseWeights(text) {
  const weights = {};
  for (const part of text.split(/[,\s]+/).filter(Boolean)) {
    const [v, w] = part.split("=");
    if (!v || w === undefined || Number.isNaN(Number(w))) throw new Error(`cannot read "${part}"; write v1.0=0.5, v1.1=0.5`);
    weights[v.trim()] = Number(w);
  }
  if (!Object.keys(weights).length) throw new Error("no weights given");
  return weights;
}

function showResult(text, ok) {
  const out = document.getElementById("action-result");
  out.textContent = text;
  out.className = ok ? "ok" : "error";
}

async function act(kind, versionArg) {
  const token = document.getElementById("token").value.trim();
  if (!token) { showResult("Enter the API token first.", false); document.getElementById("token").focus(); return; }
  const type = encodeURIComponent(state.modelType);
  const version = versionArg || document.getElementById("action-version").value;
  let method = "POST", url, body;
  try {
    if (kind === "promote") {
      url = `/models/${type}/versions/${encodeURIComponent(version)}/promote`;
      const w = document.getElementById("promote-weight").value;
      if (w && Number(w) < 1) {
        const production = state.versions.find((v) => v.status === "production");
        if (!production) throw new Error("a partial weight needs a production version to keep the rest");
        body = { weights: { [version]: Number(w), [production.version]: Math.round((1 - Number(w)) * 1e6) / 1e6 } };
      }
    } else if (kind === "rollback") {
      url = `/models/${type}/versions/${encodeURIComponent(version)}/rollback`;
    } else if (kind === "weights") {
      method = "PUT"; url = `/models/${type}/weights`;
      body = { weights: parseWeights(document.getElementById("weights").value) };
    } else if (kind === "retrain") {
      url = `/models/${type}/retrain`;
    }
  } catch (e) { showResult(e.message, false); return; }
  const label = kind === "retrain" || kind === "weights" ? kind : `${kind} ${version}`;
  if ((kind === "rollback" || kind === "promote") && !version) { showResult("Choose a version.", false); return; }
  try {
    const response = await fetch(url, {
      method, headers: { Authorization: `Bearer ${token}`, ...(body ? { "Content-Type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) {
      const detail = typeof answer.detail === "string" ? answer.detail : JSON.stringify(answer.detail || answer);
      showResult(`${label}: refused (HTTP ${response.status}) ${detail}`, false);
      return;
    }
    sessionStorage.setItem("relearn-token", token);
    showResult(`${label}: done${answer.command_id ? ` (command ${answer.command_id.slice(0, 8)})` : ""}`, true);
    refresh();
  } catch (e) {
    showResult(`${label}: ${e.message}`, false);
  }
}

function init() {
  const token = sessionStorage.getItem("relearn-token");
  if (token) document.getElementById("token").value = token;
  document.getElementById("promote").addEventListener("click", () => act("promote"));
  document.getElementById("rollback").addEventListener("click", () => act("rollback"));
  document.getElementById("set-weights").addEventListener("click", () => act("weights"));
  document.getElementById("retrain").addEventListener("click", () => act("retrain"));
  document.getElementById("days").addEventListener("change", refresh);
  refresh();
  setInterval(refresh, POLL_MS);
}

init();
