// The Lifecycle page: fetches /lifecycle/api/* (same Airflow login cookie) and draws it.
// No framework and no network beyond this app: plain DOM and SVG.
"use strict";

const ENDPOINTS = ["status", "funnel", "transitions", "lead-score", "audiences", "quality", "freshness"];
const SVG = "http://www.w3.org/2000/svg";

const fmt = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"));
const pct = (x) => (x === null || x === undefined ? "–" : (x * 100).toFixed(1) + "%");
// A stage's conversion to the next, rounded once from the counts: the API's ratio is
// already rounded to 4 places, and rounding that again can move the shown tenth
// (4 of 21 is 19.05%: the ratio 0.1905 would show 19.1%, the counts 19.0%).
const conversion = (r, stages) => {
  const next = stages.find((x) => x.stage === r.next_stage);
  return next && r.reached ? next.reached / r.reached : r.conversion_to_next;
};
const days = (x) => (x === null || x === undefined ? "–" : x.toFixed(1) + " d");
const when = (iso) => (iso ? iso.replace("T", " ").replace(/(\.\d+)?(\+00:00|Z)$/, " UTC") : "–");

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== null && v !== undefined) el.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// A link to an Airflow page. Inside Airflow's frame (same origin, sandboxed without
// top navigation) move the Airflow UI itself through its router instead of loading
// Airflow inside the frame; opened on its own, a plain link.
function airflowLink(href, text, cls) {
  const a = h("a", { href, class: cls }, text);
  a.addEventListener("click", (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.button !== 0) return;
    try {
      if (window.top !== window && window.top.location.origin === location.origin) {
        ev.preventDefault();
        window.top.history.pushState({}, "", href);
        window.top.dispatchEvent(new PopStateEvent("popstate", { state: {} }));
      }
    } catch (e) {
      /* another origin: let the link navigate the frame */
    }
  });
  return a;
}

function table(el, head, rows) {
  el.replaceChildren(
    h("thead", {}, h("tr", {}, head.map((c) => h("th", {}, c)))),
    h("tbody", {}, rows),
  );
}

function empty(el, text, colspan) {
  table(el, [], [h("tr", { class: "empty" }, h("td", { colspan: colspan || 1 }, text))]);
}

function cell(field, value, display, cls) {
  return h("td", { "data-field": field, "data-value": value === null || value === undefined ? "" : value, class: cls },
    display === undefined ? fmt(value) : display);
}

function badge(status) {
  return h("span", { class: "badge " + (status || "unknown") }, status || "unknown");
}

// ---- charts -----------------------------------------------------------------------

function columns(box, id, points, opts) {
  // points: [{label, value, title}]
  const W = 460, H = 130, left = 34, bottom = 22, top = 8;
  const max = Math.max(1, ...points.map((p) => p.value || 0));
  const bw = (W - left - 4) / Math.max(points.length, 1);
  const svg = s("svg", { id, viewBox: `0 0 ${W} ${H}`, class: "columns", role: "img", "aria-label": opts.label });
  svg.append(s("text", { x: left - 4, y: top + 4, class: "axis", "text-anchor": "end" }, fmt(max)));
  svg.append(s("text", { x: left - 4, y: H - bottom, class: "axis", "text-anchor": "end" }, "0"));
  svg.append(s("line", { x1: left, x2: W - 2, y1: H - bottom, y2: H - bottom, class: "base" }));
  points.forEach((p, i) => {
    const v = p.value || 0;
    const bh = ((H - bottom - top) * v) / max;
    const x = left + i * bw;
    const g = s("g", { class: "col", "data-label": p.label, "data-value": p.value === null ? "" : p.value });
    g.append(s("rect", { x: x + 1, y: H - bottom - bh, width: Math.max(bw - 2, 1), height: bh,
      class: i === points.length - 1 && opts.highlightLast ? "bar last" : "bar" },
      s("title", {}, `${p.title || p.label}: ${fmt(p.value)}`)));
    if (opts.valueLabels && v > 0) {
      g.append(s("text", { x: x + bw / 2, y: H - bottom - bh - 2, class: "val", "text-anchor": "middle" }, fmt(v)));
    }
    const last = points.length - 1;
    if (opts.every ? (i % opts.every === 0 && last - i >= opts.every / 2) || i === last : true) {
      g.append(s("text", { x: x + bw / 2, y: H - 6, class: "axis", "text-anchor": "middle" }, p.short || p.label));
    }
    svg.append(g);
  });
  box.replaceChildren(svg);
}

function funnelChart(box, stages) {
  const forward = stages.filter((r) => r.kind === "forward");
  const states = stages.filter((r) => r.kind !== "forward");
  const rows = [...forward, ...states];
  // name | bar | its counts | median days: the bar never runs into the text beside it
  const W = 760, row = 30, gap = 16, label = 130, counts = 175, right = 105;
  const H = rows.length * row + (states.length ? gap : 0) + 8;
  const max = Math.max(1, ...rows.map((r) => Math.max(r.reached || 0, r.contacts || 0)));
  const width = W - label - counts - right;
  const svg = s("svg", { id: "funnel-chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "Lifecycle funnel" });
  let y = 4;
  rows.forEach((r, i) => {
    if (i === forward.length && states.length) {
      svg.append(s("line", { x1: 0, x2: W, y1: y + gap / 2 - 2, y2: y + gap / 2 - 2, class: "divider" }));
      y += gap;
    }
    const g = s("g", { class: "stage " + r.kind, "data-stage": r.stage });
    const total = r.kind === "forward" ? r.reached || 0 : r.contacts;
    const wTotal = (width * total) / max;
    const wNow = (width * r.contacts) / max;
    g.append(s("text", { x: label - 8, y: y + row / 2 + 4, "text-anchor": "end", class: "name" }, r.stage));
    if (r.kind === "forward") g.append(s("rect", { x: label, y: y + 3, width: wTotal, height: row - 8, class: "reached" }));
    g.append(s("rect", { x: label, y: y + 3, width: wNow, height: row - 8, class: "now" },
      s("title", {}, `${r.stage}: ${fmt(r.contacts)} now` + (r.kind === "forward" ? `, ${fmt(r.reached)} reached` : ""))));
    const text = r.kind === "forward" ? `${fmt(r.reached)} reached · ${fmt(r.contacts)} now` : `${fmt(r.contacts)} now`;
    g.append(s("text", { x: label + Math.max(wTotal, wNow) + 6, y: y + row / 2 + 4, class: "count",
      "data-contacts": r.contacts, "data-reached": r.reached === null ? "" : r.reached }, text));
    g.append(s("text", { x: W - 4, y: y + row / 2 + 4, "text-anchor": "end", class: "days" },
      r.median_days_in_stage === null ? "" : `median ${days(r.median_days_in_stage)}`));
    if (r.conversion_to_next !== null && r.conversion_to_next !== undefined) {
      g.append(s("text", { x: label + 4, y: y + row + 1, class: "conv", "data-conversion": r.conversion_to_next },
        `↓ ${pct(conversion(r, stages))} reach ${r.next_stage}`));
    }
    svg.append(g);
    y += row;
  });
  box.replaceChildren(svg);
}

function sparkline(history) {
  const W = 160, H = 28;
  const vals = history.map((p) => p.size);
  const known = vals.filter((v) => v !== null);
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "spark", role: "img",
    "aria-label": `${known.length} nights recorded` });
  if (!known.length) return svg;
  const max = Math.max(1, ...known);
  const x = (i) => 2 + (i * (W - 4)) / Math.max(vals.length - 1, 1);
  const y = (v) => H - 3 - ((H - 6) * v) / max;
  let path = "";
  vals.forEach((v, i) => {
    if (v === null) return;
    path += (path && vals[i - 1] !== null ? " L" : " M") + `${x(i).toFixed(1)},${y(v).toFixed(1)}`;
    svg.append(s("circle", { cx: x(i), cy: y(v), r: 1.8 }, s("title", {}, `${history[i].night}: ${fmt(v)}`)));
  });
  svg.prepend(s("path", { d: path.trim() }));
  return svg;
}

// ---- sections ---------------------------------------------------------------------

function renderStatus(st) {
  const banner = document.getElementById("banner");
  const night = document.getElementById("night");
  const snap = st.snapshot;
  night.replaceChildren(
    snap
      ? h("span", {}, "Snapshot of night ", h("strong", { id: "snapshot-night" }, snap.night),
        ` · published ${when(snap.published_at)} · `,
        snap.run_id ? airflowLink(`${st.airflow_base}/dags/${encodeURIComponent(st.dag_id)}/runs/${encodeURIComponent(snap.run_id)}`, "its DAG run") : "published outside Airflow")
      : h("span", { id: "snapshot-night" }, "No serving snapshot yet."),
  );
  const parts = [h("strong", {}, st.message)];
  if (st.failed_tasks && st.failed_tasks.length) {
    parts.push(" Failed: ", ...st.failed_tasks.flatMap((t, i) => [i ? ", " : "", airflowLink(t.url, t.label)]));
  }
  if (st.latest_run) parts.push(" ", airflowLink(st.latest_run.url, "Open the run"));
  const syncs = st.syncs || { not_ok: 0 };
  if (syncs.not_ok) {
    const kinds = Object.entries(syncs.by_status).map(([k, n]) => `${n} ${k}`).join(", ");
    parts.push(h("br"), h("span", { id: "sync-warning" },
      `${syncs.not_ok} of ${syncs.total} audience syncs did not fully succeed (${kinds}): see Audiences.`));
  }
  const level = { ok: "ok", no_run: "info", no_airflow_run: "info", running: "info",
    failed: "bad", partly_failed: "bad" }[st.state] || "info";
  banner.className = "banner " + (syncs.not_ok && level === "ok" ? "warn" : level);
  banner.dataset.state = st.state;
  banner.replaceChildren(...parts);
  banner.hidden = false;
}

function renderFunnel(f) {
  const box = document.getElementById("funnel-chart-box");
  const tbl = document.getElementById("funnel-table");
  if (!f.stages.length) {
    box.replaceChildren(h("p", { class: "muted" }, "No contacts yet."));
    empty(tbl, "No night published yet.");
    return;
  }
  funnelChart(box, f.stages);
  table(tbl, ["stage", "contacts now", "reached", "conversion to next", "median days in stage", "spells"],
    f.stages.map((r) => h("tr", { "data-stage": r.stage },
      h("td", {}, r.stage, r.kind !== "forward" ? h("span", { class: "muted" }, ` (${r.kind})`) : null),
      cell("contacts", r.contacts),
      cell("reached", r.reached),
      cell("conversion_to_next", r.conversion_to_next,
        r.conversion_to_next === null ? "–" : `${pct(conversion(r, f.stages))} → ${r.next_stage}`),
      cell("median_days_in_stage", r.median_days_in_stage, days(r.median_days_in_stage)),
      cell("spells", r.spells))));
  tbl.append(h("tfoot", {}, h("tr", {}, h("td", {}, "all contacts"), cell("total_contacts", f.total_contacts),
    h("td", { colspan: 4 }))));
}

function renderTransitions(t) {
  const tbl = document.getElementById("transitions-table");
  if (!t.last_night) {
    empty(tbl, "No night published yet.");
    document.getElementById("transitions-chart-box").replaceChildren();
    return;
  }
  document.getElementById("transitions-last-title").textContent =
    `Night ${t.night} (moves on ${t.last_night.from.slice(0, 10)}): ${fmt(t.last_night.transitions)}`;
  if (!t.last_night.moves.length) empty(tbl, "No stage moves that day.", 3);
  else table(tbl, ["from", "to", "contacts"], t.last_night.moves.map((m) =>
    h("tr", { "data-from": m.from_stage, "data-to": m.to_stage },
      h("td", {}, m.from_stage), h("td", {}, m.to_stage), cell("contacts", m.contacts))));
  columns(document.getElementById("transitions-chart-box"), "transitions-chart",
    t.trend.map((p) => ({ label: p.night, short: p.night.slice(5), value: p.transitions,
      title: `night ${p.night}: ` + (Object.entries(p.by_to_stage).map(([k, n]) => `${n} → ${k}`).join(", ") || "none") })),
    { label: "Stage moves per night", every: 7, highlightLast: true });
}

function renderLeadScore(l) {
  const grade = document.getElementById("grade-table");
  if (!l.distribution.length) {
    document.getElementById("score-chart-box").replaceChildren();
    document.getElementById("mql-chart-box").replaceChildren();
    empty(grade, "No night published yet.");
    return;
  }
  columns(document.getElementById("score-chart-box"), "score-chart",
    l.distribution.map((b) => ({ label: b.label, value: b.contacts })), { label: "Lead-score histogram", valueLabels: true });
  const by = Object.fromEntries(l.grades.map((g) => [g.grade, g.contacts]));
  const max = Math.max(1, ...l.grades.map((g) => g.contacts));
  table(grade, ["fit \\ engagement", "1 (most)", "2", "3 (least)"], ["A", "B", "C"].map((fit) =>
    h("tr", {}, h("th", {}, fit), ["1", "2", "3"].map((e) => {
      const n = by[fit + e] || 0;
      const td = cell("grade", n);
      td.dataset.grade = fit + e;
      td.style.setProperty("--heat", (n / max).toFixed(3));
      return td;
    }))));
  columns(document.getElementById("mql-chart-box"), "mql-chart",
    l.mqls_per_night.map((p) => ({ label: p.night, short: p.night.slice(5), value: p.mqls })),
    { label: "MQLs per night", every: 7, highlightLast: true });
}

function renderAudiences(a) {
  const at = document.getElementById("audience-table");
  const st = document.getElementById("sync-table");
  if (!a.audiences.length) empty(at, "No audiences in the snapshot.");
  else table(at, ["audience", "members now", "last 30 nights", "nights recorded"], a.audiences.map((x) => {
    const known = x.history.filter((p) => p.size !== null);
    return h("tr", { "data-audience": x.audience },
      h("td", {}, x.audience), cell("size", x.size), h("td", {}, sparkline(x.history)),
      cell("nights", known.length));
  }));
  if (!a.syncs.length) {
    empty(st, a.night ? "No sync has run for a published night yet." : "No night published yet.", 12);
    return;
  }
  table(st, ["audience", "destination", "mode", "planned", "sent", "accepted", "rejected", "match rate",
    "status", "error", "started", "links"], a.syncs.map((r) => h("tr", {
    "data-audience": r.audience, "data-destination": r.destination, "data-status": r.status,
    class: r.status === "success" ? null : "problem" },
  h("td", {}, r.audience), h("td", {}, r.destination), h("td", {}, r.mode || "–"),
  cell("planned", r.planned, fmt(r.planned)),
  cell("sent", r.sent), cell("accepted", r.accepted), cell("rejected", r.rejected),
  cell("match_rate", r.match_rate, pct(r.match_rate)),
  h("td", { "data-field": "status" }, badge(r.status)),
  h("td", { "data-field": "error", class: "error", title: r.error || "" }, r.error || ""),
  h("td", { class: "nowrap" }, when(r.started_at)),
  h("td", { class: "nowrap" }, r.run_url
    ? [airflowLink(r.run_url, "run", "run-link"), " · ", airflowLink(r.log_url, "log", "log-link")]
    : h("span", { class: "muted", title: "not run by an Airflow task (e.g. lifecycle sync)" }, "no Airflow run")))));
}

function renderQuality(q) {
  const summary = document.getElementById("quality-summary");
  const tbl = document.getElementById("quality-table");
  const docs = q.data_docs_url ? h("a", { href: q.data_docs_url, id: "data-docs-link" }, "Data Docs") : null;
  if (!q.night) {
    summary.replaceChildren("No night published yet. ", ...(docs ? [docs] : []));
    empty(tbl, "–");
    return;
  }
  const c = q.counts;
  summary.replaceChildren(
    h("span", { id: "quality-counts" }, badge("pass"), ` ${c.pass}  `, badge("warn"), ` ${c.warn}  `, badge("fail"), ` ${c.fail}`),
    ` checks for night ${q.night}. `, ...(docs ? ["Details: ", docs] : []));
  const row = (r) => h("tr", { "data-status": r.status, "data-check": r.check_name },
    h("td", {}, badge(r.status)), h("td", {}, r.suite), h("td", {}, r.check_name),
    h("td", { class: "target" }, r.target || ""), cell("offending_rows", r.offending_rows));
  const bad = q.checks.filter((r) => r.status !== "pass");
  const good = q.checks.filter((r) => r.status === "pass");
  table(tbl, ["status", "suite", "check", "target", "offending"], [
    ...bad.map(row),
    good.length ? h("tr", { class: "fold" }, h("td", { colspan: 5 }, h("button", { type: "button", id: "show-passing" },
      `show ${good.length} passing checks`))) : null,
    ...good.map((r) => { const tr = row(r); tr.classList.add("passing"); tr.hidden = true; return tr; }),
  ]);
  const btn = document.getElementById("show-passing");
  if (btn) btn.addEventListener("click", () => {
    tbl.querySelectorAll("tr.passing").forEach((tr) => { tr.hidden = !tr.hidden; });
  });
}

function renderFreshness(f) {
  document.getElementById("freshness-night").replaceChildren(f.night
    ? h("span", {}, "The snapshot holds night ", h("strong", {}, f.night), ` (data before ${f.night} 00:00 UTC), published ${when(f.published_at)}.`)
    : "No night published yet.");
  const tbl = document.getElementById("freshness-table");
  if (!f.sources.length) {
    empty(tbl, f.night ? "No freshness checks recorded for this night." : "–");
    return;
  }
  table(tbl, ["source", "status", "age at cutoff", "limit", "tables"], f.sources.map((r) =>
    h("tr", { "data-source": r.source },
      h("td", {}, r.source), h("td", {}, badge(r.status)),
      cell("age_hours", r.age_hours, r.age_hours === null || r.age_hours === undefined ? (r.error || "–") : `${r.age_hours} h`),
      cell("limit_hours", r.limit_hours, r.limit_hours === null || r.limit_hours === undefined ? "–" : `${r.limit_hours} h`),
      h("td", { class: "target" }, r.tables || ""))));
}

// ---- load -------------------------------------------------------------------------

async function fetchAll() {
  const responses = await Promise.all(ENDPOINTS.map((e) =>
    fetch(`api/${e}`, { credentials: "same-origin", headers: { Accept: "application/json" } })));
  const denied = responses.find((r) => r.status === 401 || r.status === 403);
  if (denied) throw Object.assign(new Error("not logged in"), { status: denied.status });
  const bad = responses.find((r) => !r.ok);
  if (bad) throw new Error(`${bad.url}: HTTP ${bad.status}`);
  return Object.fromEntries(await Promise.all(responses.map(async (r, i) => [ENDPOINTS[i], await r.json()])));
}

async function load() {
  const started = performance.now();
  const main = document.getElementById("sections");
  try {
    let data = await fetchAll();
    // a new night swapped in between two requests: read again so all sections agree
    if (new Set(Object.values(data).map((d) => d.night)).size > 1) data = await fetchAll();
    renderStatus(data.status);
    renderFunnel(data.funnel);
    renderTransitions(data.transitions);
    renderLeadScore(data["lead-score"]);
    renderAudiences(data.audiences);
    renderQuality(data.quality);
    renderFreshness(data.freshness);
    main.setAttribute("aria-busy", "false");
    // when the page was whole, from the frame's and from the Airflow tab's navigation
    document.body.dataset.readyMs = Math.round(performance.now());
    try {
      document.body.dataset.readyTopMs = Math.round(window.top.performance.now());
    } catch (e) {
      /* not inside Airflow's frame */
    }
    document.body.dataset.loaded = "true";
    document.getElementById("loaded").textContent =
      `Loaded ${new Date().toISOString().slice(0, 19).replace("T", " ")} UTC in ${Math.round(performance.now() - started)} ms.`;
  } catch (err) {
    const banner = document.getElementById("banner");
    banner.className = "banner bad";
    banner.hidden = false;
    banner.dataset.state = err.status ? "unauthenticated" : "error";
    const base = location.pathname.replace(/\/lifecycle\/.*$/, "");
    banner.replaceChildren(err.status
      ? h("span", {}, "Your Airflow session has ended: ", h("a", { href: `${base}/auth/login?next=${encodeURIComponent(location.href)}` }, "log in again"), ".")
      : `Could not load the page's data: ${err.message}`);
    document.body.dataset.loaded = "error";
  }
}

load();
