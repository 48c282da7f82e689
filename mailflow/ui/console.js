/* mailflow operator console: one page, five views, data from /ui/api/* (docs: the README's
 * "Operator console"). Plain DOM and uPlot, no build step: what ships is what runs.
 *
 * Every request goes through api(): a 401 swaps the whole page for the login form (and drops
 * every rendered table and chart, so nothing stays on screen without a token), any other error
 * goes to the role="alert" banner. Nothing is thrown past a view's loader: the page must stay
 * silent in the console. */
"use strict";

const TABS = ["now", "history", "flows", "models", "replies"];
// Okabe-Ito colours (told apart with colour-blindness), darkened where thin lines need contrast
const COLORS = ["#0b62a4", "#c0392b", "#1e7d32", "#8e44ad", "#b35900", "#117a8b", "#555555"];
const BASE_KEYS = ["delivered", "attempts", "sent"];
const HIT_KEYS = ["complaints", "hard_bounces", "blocks", "rate_limited", "unsubscribes"];
const RATE_SIGNALS = [
  ["hard_bounce_rate", "hard bounces"],
  ["complaint_rate", "complaints"],
  ["block_rate", "blocks"],
  ["unsubscribe_rate", "unsubscribes"],
  ["deferral_rate", "deferrals"],
];

const $ = (selector) => document.querySelector(selector);
const state = { authed: false, now: null, changed: new Set(), history: null, stream: null };
const charts = Object.fromEntries(TABS.map((tab) => [tab, []]));
const loads = Object.fromEntries(TABS.map((tab) => [tab, 0])); // newest request per view wins
const errors = new Map(); // source -> message, shown together in the banner

/* ---------- small helpers ---------- */

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value == null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child != null && child !== false)
      node.append(typeof child === "object" ? child : String(child));
  }
  return node;
}

const numberFormat = new Intl.NumberFormat();
const fmtInt = (n) => (n == null ? "—" : numberFormat.format(n));
const fmtNum = (x, digits = 2) => (x == null ? "—" : Number(x).toFixed(digits));

/** A fraction as a percentage with enough digits to tell small rates apart. */
function fmtPct(x) {
  if (x == null) return "—";
  const p = x * 100;
  if (p === 0) return "0%";
  const size = Math.abs(p);
  return p.toFixed(size >= 10 ? 1 : size >= 0.1 ? 2 : 3) + "%";
}

function fmtDuration(seconds) {
  if (seconds == null) return "—";
  if (seconds < 120) return `${Math.round(seconds)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `${(seconds / 3600).toFixed(1).replace(/\.0$/, "")} h`;
  return `${(seconds / 86400).toFixed(1).replace(/\.0$/, "")} days`;
}

/** "7 days", "24 hours": the span a view covers, for its empty message. */
function fmtSpan(start, end, fallback) {
  if (start == null || end == null || end <= start) return fallback;
  const minutes = Math.round((end - start) / 60000);
  if (minutes < 90) return `${minutes} minutes`;
  const hours = Math.round(minutes / 60);
  return hours % 24 === 0 && hours >= 48 ? `${hours / 24} days` : `${hours} hours`;
}

/** Browser-zone time on screen, the UTC instant on hover and for machines. */
function timeEl(ms) {
  if (ms == null) return el("span", { class: "muted" }, "—");
  const date = new Date(ms);
  const iso = date.toISOString();
  return el(
    "time",
    { datetime: iso, title: iso.replace("T", " ").replace(/\.\d+Z$/, " UTC") },
    date.toLocaleString(),
  );
}

const label = (key) => key.replace(/_/g, " ");
const empty = (text) => el("p", { class: "empty" }, text);
const pairHash = (sender, domain) =>
  "#history?" + new URLSearchParams({ sender, domain }).toString();

/** A table with a caption and column headers; a header written "#name" heads a column of
 * numbers (aligned right, like the numbers under it). */
function table(caption, headers, rows, attrs = {}) {
  return el(
    "table",
    attrs,
    el("caption", {}, caption),
    el(
      "thead",
      {},
      el(
        "tr",
        {},
        headers.map((h) =>
          h.startsWith("#")
            ? el("th", { scope: "col", class: "num" }, h.slice(1))
            : el("th", { scope: "col" }, h),
        ),
      ),
    ),
    el("tbody", {}, rows),
  );
}

/* ---------- API, errors, login ---------- */

class AuthRequired extends Error {}

async function api(path) {
  let response;
  try {
    response = await fetch(path, {
      headers: { Accept: "application/json" },
      credentials: "same-origin",
    });
  } catch {
    throw new Error("cannot reach the console server");
  }
  if (response.status === 401) {
    showLogin();
    throw new AuthRequired("a token is needed");
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) throw new Error(body && body.error ? body.error : `HTTP ${response.status}`);
  if (body === null) throw new Error(`${path} did not answer JSON`);
  return body;
}

function setError(source, message) {
  if (message) errors.set(source, message);
  else errors.delete(source);
  const banner = $("#error-banner");
  banner.replaceChildren(...[...errors].map(([where, text]) => el("p", {}, `${where}: ${text}`)));
  banner.hidden = errors.size === 0;
}

/** One request whose failure goes to the banner under `source`: the answer, or null. */
async function fetchPart(source, path) {
  try {
    const data = await api(path);
    setError(source, null);
    return data;
  } catch (error) {
    if (!(error instanceof AuthRequired)) setError(source, error.message);
    return null;
  }
}

const unavailable = (source) => empty(`${source} could not be loaded: see the message above.`);

/** Fetch for one view: a newer request for the same view makes an older answer moot. When it
 * fails, the view's body (if given) is emptied: charts of another window or pair would lie. */
async function load(view, source, path, body) {
  const ticket = ++loads[view];
  const data = await fetchPart(source, path);
  if (ticket !== loads[view] || !state.authed) return null;
  if (!data && body) {
    dropCharts(view);
    body.replaceChildren(unavailable(source));
  }
  return data;
}

function showLogin() {
  state.authed = false;
  state.now = null;
  state.history = null;
  if (state.stream) state.stream.close();
  state.stream = null;
  for (const tab of TABS) dropCharts(tab);
  for (const id of [
    "now-body",
    "history-body",
    "flows-body",
    "models-body",
    "replies-body",
    "tracking-body",
    "now-counts",
    "data-time",
  ])
    $("#" + id).replaceChildren();
  errors.clear();
  setError("", null);
  $("#stream-status").textContent = "signed out";
  $("#app").hidden = true;
  $("#logout").hidden = true;
  $("#login").hidden = false;
  $("#login-failed").hidden = new URLSearchParams(location.search).get("login") !== "failed";
  $("#login-token").focus();
}

async function start() {
  let session;
  try {
    session = await api("/ui/api/session");
  } catch (error) {
    if (!(error instanceof AuthRequired)) setError("Session", error.message);
    return;
  }
  if (!session.signed_in) {
    showLogin(); // the server answers 200 either way: a 401 would be a console error
    return;
  }
  state.authed = true;
  $("#login").hidden = true;
  $("#app").hidden = false;
  $("#logout").hidden = session.auth !== "cookie";
  openStream();
  route();
}

/* ---------- charts ---------- */

function dropCharts(tab) {
  for (const chart of charts[tab]) chart.destroy();
  charts[tab] = [];
}

function chartWidth(figure) {
  return Math.max(260, Math.floor(figure.clientWidth) - 2);
}

/** The x scale covers the span the server answered for (data or not), and any data outside. */
function spanRange(start, end) {
  if (start == null || end == null || end <= start) return {};
  return { range: (u, min, max) => [Math.min(start, min ?? start), Math.max(end, max ?? end)] };
}

/**
 * A uPlot chart in a <figure>: the caption says what it shows, the canvas gets an aria-label
 * summary (a canvas is otherwise mute to a screen reader). Times are epoch ms (`ms: 1`); `span`
 * is the answer's [start, end], so that a few points are seen in their place in the window.
 */
function chart(parent, tab, options) {
  const { caption, summary, series, data, axes, scales, hooks, height = 200, span = [] } = options;
  const figure = el("figure", { class: "chart" }, el("figcaption", {}, caption));
  parent.append(figure);
  const plot = new uPlot(
    {
      width: chartWidth(figure),
      height,
      ms: 1,
      series: [{ label: "time" }, ...series],
      // (time labels such as "10:30am" need more room than uPlot's default tick spacing)
      axes: [{ stroke: "#333", space: 70 }, ...axes.map((axis) => ({ stroke: "#333", ...axis }))],
      scales: { x: { time: true, ...spanRange(...span) }, ...scales },
      hooks,
      cursor: { focus: { prox: 16 } },
    },
    data,
    figure,
  );
  plot.ctx.canvas.setAttribute("role", "img");
  plot.ctx.canvas.setAttribute("aria-label", summary);
  // how many values the chart draws (its series' non-empty points): a check can tell a chart
  // with data from an empty frame without reading pixels
  figure.dataset.points = data
    .slice(1)
    .reduce((n, values) => n + values.filter((v) => v != null).length, 0);
  charts[tab].push(plot);
  return plot;
}

function resizeCharts(tab) {
  for (const plot of charts[tab]) {
    const figure = plot.root.closest("figure");
    if (figure) plot.setSize({ width: chartWidth(figure), height: plot.height });
  }
}

const pctAxis = (name) => ({
  scale: "%",
  label: name,
  size: 60,
  values: (u, ticks) => ticks.map((v) => `${+v.toFixed(3)}%`),
});
const pctSeries = (name, color, extra = {}) => ({
  label: name,
  stroke: color,
  width: 2,
  scale: "%",
  spanGaps: false,
  value: (u, v) => (v == null ? "—" : `${v.toFixed(3)}%`),
  ...extra,
});
const percentOf = (values) => (values || []).map((v) => (v == null ? null : v * 100));

/** Vertical dashed lines at these times (drift events), drawn over the plot area. */
function markTimes(times, color) {
  return (u) => {
    const { ctx, bbox } = u;
    ctx.save();
    ctx.strokeStyle = color;
    ctx.lineWidth = 2 * devicePixelRatio;
    ctx.setLineDash([6 * devicePixelRatio, 4 * devicePixelRatio]);
    for (const ts of times) {
      const x = Math.round(u.valToPos(ts, "x", true));
      if (x < bbox.left || x > bbox.left + bbox.width) continue;
      ctx.beginPath();
      ctx.moveTo(x, bbox.top);
      ctx.lineTo(x, bbox.top + bbox.height);
      ctx.stroke();
    }
    ctx.restore();
  };
}

/** Several (t, value) series on one x axis: uPlot wants one shared, sorted time array. */
function align(list) {
  const xs = [...new Set(list.flatMap((s) => s.t))].sort((a, b) => a - b);
  const columns = list.map((s) => {
    const at = new Map(s.t.map((t, i) => [t, s.values[i]]));
    return xs.map((x) => (at.has(x) ? at.get(x) : null));
  });
  return [xs, ...columns];
}

/* ---------- Now ---------- */

/** Evidence as a person reads it: "complaints 30 of 4,000 delivered in 10m: 0.75%, lower
 * bound 0.50% > threshold 0.30%", then every other key as a name-value pair. */
function evidenceCell(evidence) {
  const ev = evidence || {};
  const hit = HIT_KEYS.find((k) => k in ev);
  const base = BASE_KEYS.find((k) => k in ev);
  const span = ev.horizon || (ev.window_s != null ? fmtDuration(ev.window_s) : null);
  // a burst's threshold is a count of pushbacks, not a rate
  const burst = ev.burst === true && hit && ev.threshold != null;
  const counts = hit && base ? [hit, base] : [...HIT_KEYS, ...BASE_KEYS].filter((k) => k in ev);
  let sentence =
    hit && base
      ? `${label(hit)} ${fmtInt(ev[hit])} of ${fmtInt(ev[base])} ${label(base)}`
      : counts.map((k) => `${label(k)} ${fmtInt(ev[k])}`).join(", ");
  if (span && sentence) sentence += ` in ${span}`;
  const numbers = [];
  if (ev.rate != null) numbers.push(fmtPct(ev.rate));
  const threshold = ev.threshold == null || burst ? "" : `threshold ${fmtPct(ev.threshold)}`;
  if (ev.lower_bound != null) {
    const above = ev.lower_bound > ev.threshold ? ">" : "≤";
    numbers.push(`lower bound ${fmtPct(ev.lower_bound)}${threshold && ` ${above} ${threshold}`}`);
  } else if (threshold) numbers.push(threshold);
  if (burst) numbers.push(`a burst is ${fmtInt(ev.threshold)} ${label(hit)} or more`);
  if (numbers.length) sentence += (sentence ? ": " : "") + numbers.join(", ");
  const used = new Set(["window_s", "horizon", "rate", "lower_bound", "threshold", ...counts]);
  if (burst) used.add("burst");
  const extras = Object.entries(ev).filter(([k]) => !used.has(k));
  return el(
    "td",
    { class: "evidence" },
    sentence && el("span", { class: "sentence" }, sentence),
    // (a space between the pairs: copied or read aloud, they stay apart)
    extras.flatMap(([k, v]) => [
      el(
        "span",
        { class: "kv" },
        el("span", { class: "k" }, label(k.replace(/_s$/, ""))),
        " ",
        evidenceValue(k, v),
      ),
      " ",
    ]),
  );
}

/** One more evidence value as a person reads it: a duration, a rate in %, a count. */
function evidenceValue(key, value) {
  if (typeof value === "number") {
    if (key.endsWith("_s")) return fmtDuration(value);
    return key.endsWith("rate") ? fmtPct(value) : fmtInt(value);
  }
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

/** The action in force; when it is not what the record decided (a pause past its `until`
 * ramps back up), what was decided and why underneath. */
function actionBadge(action, decided, decidedReason) {
  const badge = el("span", { class: `badge ${action}` }, action);
  if (!decided || decided === action) return badge;
  const why = decidedReason ? ` for ${label(decidedReason)}` : "";
  const note = decided === "pause" ? `ramping up after a pause${why}` : `decided ${decided}${why}`;
  return [badge, el("span", { class: "note" }, note)];
}

const fmtFactor = (f) => (f == null ? "—" : `${Math.round(f * 100)}%`);

function decisionRow(d) {
  const key = d.key || `${d.sender}|${d.domain}`;
  const row = el(
    "tr",
    { "data-key": key, class: `action-${d.action}` },
    el("th", { scope: "row" }, el("a", { href: pairHash(d.sender, d.domain) }, d.sender)),
    el("td", {}, d.domain),
    el("td", {}, actionBadge(d.action, d.decided_action, d.decided_reason)),
    el("td", { class: "num" }, fmtFactor(d.rate_factor)),
    el("td", {}, timeEl(d.until)),
    el("td", {}, label(d.reason || "")),
    evidenceCell(d.evidence),
    el("td", {}, timeEl(d.decided_at)),
  );
  if (state.changed.has(key)) row.classList.add("changed");
  return row;
}

function renderNow() {
  const data = state.now;
  const body = $("#now-body");
  if (!data) return;
  const counts = data.counts || {};
  $("#now-counts").textContent = ["pause", "slow", "allow"]
    .map((a) => `${fmtInt(counts[a] || 0)} ${a}`)
    .join(" · ");
  const decisions = data.decisions || [];
  if (!decisions.length) {
    body.replaceChildren(empty("No decisions: every pair sends at full rate."));
    return;
  }
  const query = $("#now-filter").value.trim().toLowerCase();
  const action = $("#now-action").value;
  const shown = decisions.filter(
    (d) =>
      (!action || d.action === action) &&
      (!query ||
        [d.sender, d.domain, d.reason].some((v) => (v || "").toLowerCase().includes(query))),
  );
  if (!shown.length) {
    body.replaceChildren(empty(`No decision matches this filter (${decisions.length} in all).`));
    return;
  }
  body.replaceChildren(
    table(
      `Current effective decisions, newest first (${shown.length} of ${decisions.length}); ` +
        "select a sender for its history",
      ["Sender", "Provider", "Action", "#Rate", "Until", "Reason", "Evidence", "Decided"],
      shown.map(decisionRow),
      { id: "decisions" },
    ),
  );
}

function renderDataTime() {
  const data = state.now;
  const where = $("#data-time");
  if (!data) return where.replaceChildren();
  where.replaceChildren(
    "· data as of ",
    timeEl(data.now),
    data.live === false ? " · decisions still catching up" : "",
  );
  setError("Decisions", data.error || null);
}

async function loadNow(changed = new Set()) {
  const data = await load("now", "Now", "/ui/api/now");
  if (!data) return;
  state.now = data;
  state.changed = changed;
  renderNow();
  renderDataTime();
}

/* ---------- History ---------- */

/** The signal rates (one bucket each), the rate factor stepping at each decision, and a point
 * per decision, all on one time axis: decision times join the buckets' times, and a rate at a
 * decision time is the rate of the bucket it falls in. */
function historyData(data) {
  const signals = data.signals || { t: [] };
  const decisions = data.decisions || [];
  const bucket = (data.bucket_s || 300) * 1000;
  // the decision in force when the span began (made before it) steps in at its start
  const at = (d) => Math.max(d.event_ts, data.start ?? d.event_ts);
  // the window's end too: the rate factor's step line runs to it
  const times = [...signals.t, ...decisions.map(at), data.end ?? []].flat();
  const xs = [...new Set(times)].sort((a, b) => a - b);
  const keys = RATE_SIGNALS.filter(([k]) => signals[k]);
  const rates = keys.map(([k]) => {
    const values = percentOf(signals[k]);
    let i = -1;
    return xs.map((x) => {
      while (i + 1 < signals.t.length && signals.t[i + 1] <= x) i++;
      return i >= 0 && x < signals.t[i] + bucket ? values[i] : null;
    });
  });
  let j = -1;
  const factor = [];
  const marks = [];
  for (const x of xs) {
    while (j + 1 < decisions.length && at(decisions[j + 1]) <= x) j++;
    factor.push(j >= 0 ? decisions[j].rate_factor : null);
    marks.push(j >= 0 && decisions[j].event_ts === x ? decisions[j].rate_factor : null);
  }
  return { keys, data: [xs, ...rates, factor, marks] };
}

function renderHistory(data) {
  const body = $("#history-body");
  dropCharts("history");
  body.replaceChildren();
  const pair = `${data.sender} at ${data.domain}`;
  const decisions = data.decisions || [];
  const signals = (data.signals && data.signals.t) || [];
  const span = fmtSpan(data.start, data.end, "24 hours");
  body.append(
    el("h2", {}, `History: ${data.sender} → ${data.domain}`),
    el(
      "p",
      { class: "muted" },
      "From ",
      timeEl(data.start),
      " to ",
      timeEl(data.end),
      `, ${fmtDuration(data.bucket_s || 300)} buckets`,
      signals.length ? "" : "; no signal volume in this span",
    ),
  );
  if (!signals.length && !decisions.length) {
    body.append(empty(`No signals and no decisions for ${pair} in the last ${span}.`));
    return;
  }
  const { keys, data: columns } = historyData(data);
  const latest = decisions[decisions.length - 1];
  chart(body, "history", {
    span: [data.start, data.end],
    caption:
      "Signal rates (%, left) and the decided rate factor (right: 1 = full rate, " +
      "0 = paused; dots mark decisions)",
    summary:
      `${pair}: ${keys.map(([, name]) => name).join(", ")} rates over ${span}; ` +
      `${decisions.length} decisions` +
      (latest
        ? `, the latest ${latest.action} ` +
          `(rate factor ${latest.rate_factor}) for ${label(latest.reason || "")}`
        : ""),
    height: 280,
    series: [
      ...keys.map(([, name], i) => pctSeries(name, COLORS[i % COLORS.length])),
      {
        label: "rate factor",
        stroke: "#111",
        width: 2,
        dash: [6, 3],
        scale: "factor",
        paths: uPlot.paths.stepped({ align: 1 }),
        points: { show: false },
        value: (u, v) => (v == null ? "—" : v.toFixed(2)),
      },
      {
        label: "decisions",
        stroke: "#111",
        fill: "#111",
        scale: "factor",
        paths: () => null,
        points: { show: true, size: 9, fill: "#f5b700" },
        value: (u, v) => (v == null ? "—" : v.toFixed(2)),
      },
    ],
    data: columns,
    scales: {
      "%": { range: (u, min, max) => [0, Math.max(max || 0, 0.1) * 1.1] },
      factor: { range: [-0.05, 1.05] },
    },
    axes: [
      pctAxis("rate"),
      {
        scale: "factor",
        side: 1,
        label: "rate factor",
        size: 50,
        grid: { show: false },
        values: (u, ticks) => ticks.map((v) => v.toFixed(1)),
      },
    ],
  });
  body.append(
    decisions.length
      ? table(
          `Decisions for ${pair}, oldest first` +
            (decisions[0].event_ts < data.start
              ? " (the first: in force when the span began)"
              : ""),
          ["Event time", "Action", "#Rate", "Until", "Reason", "Evidence"],
          decisions.map((d) =>
            el(
              "tr",
              {},
              el("th", { scope: "row" }, timeEl(d.event_ts)),
              el("td", {}, actionBadge(d.action)),
              el("td", { class: "num" }, fmtFactor(d.rate_factor)),
              el("td", {}, timeEl(d.until)),
              el("td", {}, label(d.reason || "")),
              evidenceCell(d.evidence),
            ),
          ),
        )
      : empty(`No decision for ${pair} in the last ${span}: it sent at full rate.`),
  );
}

async function loadHistory(params) {
  const sender = params.get("sender") || "";
  const domain = params.get("domain") || "";
  const hours = params.get("hours") || "24";
  $("#history-sender").value = sender;
  $("#history-domain").value = domain;
  $("#history-hours").value = hours;
  if (!sender || !domain) {
    // no pair asked for: the newest decision's pair, if any is held
    const now = state.now || (await fetchPart("Now", "/ui/api/now"));
    const newest = now && now.decisions[0];
    if (newest) {
      const pair = new URLSearchParams({ sender: newest.sender, domain: newest.domain, hours });
      location.replace(`#history?${pair}`);
      return;
    }
    dropCharts("history");
    $("#history-body").replaceChildren(
      empty("Choose a pair: select a sender in Now, or type a sender and a provider above."),
    );
    return;
  }
  state.history = { sender, domain };
  const data = await load(
    "history",
    "History",
    "/ui/api/history?" + new URLSearchParams({ sender, domain, hours }).toString(),
    $("#history-body"),
  );
  if (data) renderHistory(data);
}

/* ---------- Flows ---------- */

function renderFlows(data) {
  const body = $("#flows-body");
  dropCharts("flows");
  body.replaceChildren();
  const flows = data.flows || [];
  const span = fmtSpan(data.start, data.end, "7 days");
  if (!flows.length) body.append(empty(`No convergence rows yet in the last ${span}.`));
  for (const flow of flows) {
    const name = flow.flow_id || "(no flow id)";
    const latest = flow.latest || {};
    const section = el(
      "section",
      { class: "flow", "aria-label": `flow ${name}` },
      el("h2", {}, `Flow ${name}`),
      el(
        "p",
        { class: "muted" },
        "Latest ",
        timeEl(latest.as_of),
        `: ${fmtInt(latest.entered)} entered, ${fmtInt(latest.converged)} converged, ` +
          `score ${fmtPct(latest.convergence_score)}, engagement depth ` +
          `${fmtNum(latest.engagement_depth)} human / ` +
          `${fmtNum(latest.engagement_depth_raw)} raw, ` +
          `negative ${fmtPct(latest.negative_rate)}`,
      ),
    );
    const row = el("div", { class: "chart-row" });
    section.append(row);
    body.append(section);
    const t = flow.t || [];
    const common = { height: 170, span: [data.start, data.end] };
    chart(row, "flows", {
      ...common,
      caption: `Convergence score (%), ${data.window} window`,
      summary:
        `flow ${name}: convergence score over ${t.length} points, latest ` +
        fmtPct(latest.convergence_score),
      series: [pctSeries("convergence", COLORS[0], { spanGaps: true })],
      data: [t, percentOf(flow.convergence_score)],
      axes: [pctAxis("score")],
    });
    chart(row, "flows", {
      ...common,
      caption: "Engagement depth: human vs raw (with bots)",
      summary:
        `flow ${name}: engagement depth, latest ${fmtNum(latest.engagement_depth)} human ` +
        `and ${fmtNum(latest.engagement_depth_raw)} raw`,
      series: [
        { label: "human", stroke: COLORS[2], width: 2, spanGaps: true },
        { label: "raw", stroke: COLORS[6], width: 2, dash: [5, 3], spanGaps: true },
      ],
      data: [t, flow.engagement_depth || [], flow.engagement_depth_raw || []],
      axes: [{ label: "depth", size: 50 }],
    });
    chart(row, "flows", {
      ...common,
      caption: "Negative rate (%): complaints, unsubscribes",
      summary: `flow ${name}: negative rate, latest ${fmtPct(latest.negative_rate)}`,
      series: [pctSeries("negative", COLORS[1], { spanGaps: true })],
      data: [t, percentOf(flow.negative_rate)],
      axes: [pctAxis("negative")],
    });
  }
  if (data.lift) body.append(liftTable(data.lift));
}

const pp = (x) => (x == null ? "—" : `${x >= 0 ? "+" : ""}${(x * 100).toFixed(2)} pp`);
const interval = (lo, hi) => (lo == null || hi == null ? "—" : `${pp(lo)} to ${pp(hi)}`);

function liftTable(lift) {
  const section = el(
    "section",
    { class: "lift", "aria-labelledby": "lift-title" },
    el("h2", { id: "lift-title" }, "Lift against the control groups"),
  );
  if (!lift.length) {
    section.append(
      empty("No lift yet: no control group has reported (lift needs control groups)."),
    );
    return section;
  }
  section.append(
    table(
      "Conversion lift of the treated over the control group, with 95% intervals " +
        "(pp: percentage points)",
      [
        "Flow",
        "Window",
        "As of",
        "#Treated",
        "#Control",
        "#Treated rate",
        "#Control rate",
        "#Lift",
        "95% interval",
        "Always-valid 95%",
        "Verdict",
      ],
      lift.map((l) =>
        el(
          "tr",
          { class: l.srm_alarm ? "alarm" : null },
          el("th", { scope: "row" }, l.flow_id === "" ? "all marketing" : l.flow_id),
          el("td", {}, `${l.window_days} d`),
          el("td", {}, timeEl(l.as_of)),
          el("td", { class: "num" }, fmtInt(l.treated_n)),
          el("td", { class: "num" }, fmtInt(l.control_n)),
          el("td", { class: "num" }, fmtPct(l.treated_rate)),
          el("td", { class: "num" }, fmtPct(l.control_rate)),
          el("td", { class: "num" }, pp(l.abs_lift)),
          el("td", {}, interval(l.abs_lo95, l.abs_hi95)),
          el("td", {}, interval(l.av_lo95, l.av_hi95)),
          el(
            "td",
            {},
            l.srm_alarm
              ? el("strong", { class: "alarm-text" }, "SPLIT BROKEN")
              : (l.significant ? "significant" : "not significant") +
                  (l.partial ? " (partial window)" : ""),
          ),
        ),
      ),
    ),
  );
  return section;
}

async function loadFlows(params) {
  const asked = params.get("window");
  const span = ["1h", "24h", "7d"].includes(asked) ? asked : "24h";
  $("#flows-window").value = span;
  const data = await load("flows", "Flows", `/ui/api/flows?window=${span}`, $("#flows-body"));
  if (data) renderFlows(data);
}

/* ---------- Models ---------- */

const family = (model) => model.split("_baseline_")[0];

function renderModels(data) {
  const body = $("#models-body");
  dropCharts("models");
  body.replaceChildren();
  const models = data.models || [];
  const events = data.events || [];
  if (!models.length) {
    body.append(
      empty(`No model evaluations in the last ${fmtSpan(data.start, data.end, "24 hours")}.`),
    );
  }
  const families = [...new Set(models.map((m) => family(m.model)))].sort();
  for (const name of families) {
    // the model itself first (drawn solid), then its baselines (dashed)
    const members = models
      .filter((m) => family(m.model) === name)
      .sort((a, b) =>
        a.model === name ? -1 : b.model === name ? 1 : a.model.localeCompare(b.model),
      );
    const drift = events.filter((e) => family(e.model) === name);
    const series = () =>
      members.map((m, i) => ({
        label: m.model,
        stroke: COLORS[i % COLORS.length],
        width: m.model === name ? 2.5 : 1.5,
        dash: m.model === name ? undefined : [5, 3],
        spanGaps: true,
        value: (u, v) => (v == null ? "—" : v.toFixed(4)),
      }));
    const section = el(
      "section",
      { class: "model", "aria-label": `model ${name}` },
      el("h2", {}, `Model ${name}`),
    );
    const lastOf = (values) => [...(values || [])].reverse().find((v) => v != null);
    section.append(
      table(
        `Latest prequential scores of ${name} and its baselines`,
        ["Model", "#ROC AUC", "#Log loss", "#Examples"],
        members.map((m) =>
          el(
            "tr",
            {},
            el("th", { scope: "row" }, m.model),
            el("td", { class: "num" }, fmtNum(lastOf(m.roc_auc), 4)),
            el("td", { class: "num" }, fmtNum(lastOf(m.log_loss), 4)),
            el("td", { class: "num" }, fmtInt(lastOf(m.n))),
          ),
        ),
        { class: "compact" },
      ),
    );
    const row = el("div", { class: "chart-row two" });
    section.append(row);
    body.append(section);
    const driftNote = drift.length ? `; red dashed lines: ${drift.length} drift events` : "";
    for (const [key, title] of [
      ["roc_auc", "ROC AUC (higher is better)"],
      ["log_loss", "Log loss (lower is better)"],
    ]) {
      chart(row, "models", {
        height: 200,
        span: [data.start, data.end],
        hooks: {
          draw: [
            markTimes(
              drift.map((e) => e.ts),
              "#c0392b",
            ),
          ],
        },
        caption: title + driftNote,
        summary: `${title} of ${name} and ${members.length - 1} baselines over time${driftNote}`,
        series: series(),
        axes: [{ size: 60, values: (u, ticks) => ticks.map((v) => v.toFixed(3)) }],
        data: align(members.map((m) => ({ t: m.t || [], values: m[key] || [] }))),
      });
    }
    if (drift.length) {
      section.append(
        el(
          "ul",
          { class: "events", "aria-label": `drift events of ${name}` },
          drift.map((e) =>
            el(
              "li",
              {},
              timeEl(e.ts),
              ` ${e.event} in ${e.model}`,
              e.detail ? `: ${e.detail}` : "",
            ),
          ),
        ),
      );
    }
  }
}

async function loadModels() {
  const data = await load("models", "Models", "/ui/api/models", $("#models-body"));
  if (data) renderModels(data);
}

/* ---------- Replies & tracking ---------- */

function renderReplies(data) {
  const body = $("#replies-body");
  body.replaceChildren(el("h2", {}, "Replies"));
  const span = fmtSpan(data.start, data.end, "24 hours");
  if (!data.total) {
    body.append(empty(`No replies in the last ${span}.`));
    return;
  }
  const first = data.first_response;
  body.append(
    el(
      "dl",
      { class: "figures" },
      el("dt", {}, "Replies"),
      el("dd", {}, fmtInt(data.total)),
      el("dt", {}, "Handled without a person"),
      el("dd", {}, `${fmtInt(data.automated)} (${fmtPct(data.automation_rate)})`),
      el("dt", {}, "First response by a person"),
      el(
        "dd",
        {},
        first && first.n
          ? `median ${fmtDuration(first.p50_s)}, 90% within ` +
              `${fmtDuration(first.p90_s)} (${fmtInt(first.n)} answered)`
          : "none yet",
      ),
    ),
  );
  const row = el("div", { class: "chart-row two" });
  row.append(
    table(
      `Replies by queue, last ${span}`,
      ["Queue", "#Replies", "#Urgent"],
      (data.queues || []).map((q) =>
        el(
          "tr",
          {},
          el("th", { scope: "row" }, q.queue === "" ? "handled without a person" : q.queue),
          el("td", { class: "num" }, fmtInt(q.replies)),
          el("td", { class: "num" }, fmtInt(q.urgent)),
        ),
      ),
      { class: "compact" },
    ),
  );
  row.append(
    table(
      `Replies by intent, last ${span}`,
      ["Intent", "#Replies"],
      (data.intents || []).map((i) =>
        el(
          "tr",
          {},
          el("th", { scope: "row" }, label(i.intent)),
          el("td", { class: "num" }, fmtInt(i.replies)),
        ),
      ),
      { class: "compact" },
    ),
  );
  body.append(row);
  const t = data.t || [];
  if (t.length) {
    // a bar stands over the middle of its bucket, and the axis shows every bucket whole
    const bucket = (data.bucket_s || 3600) * 1000;
    const per = { 3600000: "hour", 86400000: "day" }[bucket] || fmtDuration(bucket / 1000);
    chart(body, "replies", {
      height: 160,
      span: [Math.min(t[0], data.start), Math.max(t[t.length - 1] + bucket, data.end)],
      caption: `Replies per ${per}`,
      summary: `${fmtInt(data.total)} replies over ${span}, per ${per}`,
      series: [
        {
          label: "replies",
          stroke: COLORS[0],
          fill: "rgba(11, 98, 164, 0.35)",
          paths: uPlot.paths.bars({ size: [0.7, 40] }),
          points: { show: false },
        },
      ],
      data: [t.map((start) => start + bucket / 2), data.by_hour || []],
      axes: [{ label: "replies", size: 50 }],
      scales: { y: { range: (u, min, max) => [0, Math.max(1, max)] } },
    });
  }
}

function renderTracking(data) {
  const body = $("#tracking-body");
  const totals = data.totals || {};
  const span = fmtSpan(data.start, data.end, "24 hours");
  body.replaceChildren(el("h2", {}, "Tracking: clicks and opens, people vs machines"));
  const t = data.t || [];
  if (t.length) {
    chart(body, "replies", {
      height: 200,
      span: [data.start, data.end],
      caption: "Clicks and opens per bucket: people (solid) vs bots and machines (dashed)",
      summary:
        `over ${span}: ${fmtInt(totals.human_clicks)} human clicks, ` +
        `${fmtInt(totals.bot_clicks)} bot clicks, ${fmtInt(totals.human_opens)} human opens, ` +
        `${fmtInt(totals.machine_opens)} machine opens`,
      series: [
        { label: "human clicks", stroke: COLORS[0], width: 2 },
        { label: "bot clicks", stroke: COLORS[0], width: 2, dash: [5, 3] },
        { label: "human opens", stroke: COLORS[4], width: 2 },
        { label: "machine opens", stroke: COLORS[4], width: 2, dash: [5, 3] },
      ],
      data: [
        t,
        data.human_clicks || [],
        data.bot_clicks || [],
        data.human_opens || [],
        data.machine_opens || [],
      ],
      axes: [{ label: "count", size: 50 }],
    });
  } else {
    body.append(empty(`No clicks or opens in the last ${span}.`));
  }
  // the contract's `refusals`, or the tracking edge's own counters as `edge`
  const edge = data.edge;
  const refusals =
    data.refusals || (edge && { total: edge.refused_total, by_reason: edge.refused || {} });
  const since = data.refusals ? `in the last ${span}` : "since the tracking edge started";
  const served = Object.entries((edge && edge.requests) || {});
  if (served.length) {
    body.append(
      table(
        "Requests the tracking edge served, by endpoint (since it started)",
        ["Endpoint", "#Requests"],
        served.map(([endpoint, n]) =>
          el("tr", {}, el("th", { scope: "row" }, endpoint), el("td", { class: "num" }, fmtInt(n))),
        ),
        { class: "compact" },
      ),
    );
  }
  if (!refusals) {
    body.append(empty("Refused redirects: not reported (no tracking server answers)."));
  } else if (!refusals.total) {
    body.append(empty(`No refused redirects ${since}.`));
  } else {
    body.append(
      table(
        `Refused redirects ${since}: ${fmtInt(refusals.total)}`,
        ["Reason", "#Refusals"],
        Object.entries(refusals.by_reason || {})
          .sort((a, b) => b[1] - a[1])
          .map(([reason, n]) =>
            el(
              "tr",
              {},
              el("th", { scope: "row" }, label(reason)),
              el("td", { class: "num" }, fmtInt(n)),
            ),
          ),
        { class: "compact" },
      ),
    );
  }
}

async function loadReplies() {
  const ticket = ++loads.replies;
  const [replies, tracking] = await Promise.all([
    fetchPart("Replies", "/ui/api/replies"),
    fetchPart("Tracking", "/ui/api/tracking"),
  ]);
  if (ticket !== loads.replies || !state.authed) return;
  dropCharts("replies");
  if (replies) renderReplies(replies);
  else $("#replies-body").replaceChildren(unavailable("Replies"));
  if (tracking) renderTracking(tracking);
  else $("#tracking-body").replaceChildren(unavailable("Tracking"));
}

/* ---------- live stream ---------- */

let nowTimer = null;
const pending = new Set();

function streamStatus(text) {
  $("#stream-status").textContent = text;
  $("#stream-status").className = text === "live" ? "live" : "off";
}

/** Each decision on the stream re-reads /ui/api/now (debounced: a burst is one request) and
 * marks the pairs it changed. EventSource reconnects by itself; when it gives up (a non-200
 * answer) the session is checked again, which shows the login form on a 401. */
function openStream() {
  if (state.stream) state.stream.close();
  streamStatus("connecting");
  const stream = new EventSource("/v1/decisions/stream");
  state.stream = stream;
  stream.onopen = () => streamStatus("live");
  stream.onerror = () => {
    if (stream.readyState === EventSource.CONNECTING) {
      streamStatus("reconnecting");
      return;
    }
    stream.close();
    streamStatus("disconnected");
    setTimeout(() => {
      if (state.stream === stream) start();
    }, 5000);
  };
  stream.addEventListener("decision", (event) => {
    let record;
    try {
      record = JSON.parse(event.data);
    } catch {
      return;
    }
    pending.add(record.key || `${record.sender}|${record.domain}`);
    clearTimeout(nowTimer);
    nowTimer = setTimeout(liveUpdate, 250);
  });
}

function liveUpdate() {
  const changed = new Set(pending);
  pending.clear();
  loadNow(changed);
  const pair = state.history;
  if (pair && currentTab() === "history" && changed.has(`${pair.sender}|${pair.domain}`)) route();
}

/* ---------- tabs and the URL hash ---------- */

function parseHash() {
  const [name, query] = location.hash.replace(/^#/, "").split("?");
  return [TABS.includes(name) ? name : "now", new URLSearchParams(query || "")];
}

const currentTab = () => parseHash()[0];

function selectTab(name) {
  for (const tab of document.querySelectorAll('[role="tab"]')) {
    const selected = tab.dataset.tab === name;
    tab.setAttribute("aria-selected", String(selected));
    tab.tabIndex = selected ? 0 : -1;
    $("#" + tab.getAttribute("aria-controls")).hidden = !selected;
  }
}

let lastHistory = "";

function route() {
  if (!state.authed) return;
  const [name, params] = parseHash();
  selectTab(name);
  resizeCharts(name);
  if (name === "now") loadNow();
  else if (name === "history") {
    lastHistory = params.toString();
    loadHistory(params);
  } else if (name === "flows") loadFlows(params);
  else if (name === "models") loadModels();
  else loadReplies();
  if (name !== "now" && !state.now) loadNow(); // the status line's "data as of"
}

function tabHash(name) {
  return name === "history" && lastHistory ? `#history?${lastHistory}` : `#${name}`;
}

function wire() {
  const tablist = $('[role="tablist"]');
  tablist.addEventListener("click", (event) => {
    const tab = event.target.closest('[role="tab"]');
    if (tab) location.hash = tabHash(tab.dataset.tab);
  });
  tablist.addEventListener("keydown", (event) => {
    const moves = { ArrowRight: 1, ArrowLeft: -1, Home: -TABS.length, End: TABS.length };
    if (!(event.key in moves)) return;
    event.preventDefault();
    const at = TABS.indexOf(currentTab());
    const next =
      TABS[
        Math.min(
          TABS.length - 1,
          Math.max(
            0,
            event.key === "ArrowRight" || event.key === "ArrowLeft"
              ? (at + moves[event.key] + TABS.length) % TABS.length
              : at + moves[event.key],
          ),
        )
      ];
    location.hash = tabHash(next);
    $("#tab-" + next).focus();
  });
  window.addEventListener("hashchange", route);
  $("#now-controls").addEventListener("submit", (event) => event.preventDefault());
  $("#now-filter").addEventListener("input", renderNow);
  $("#now-action").addEventListener("change", renderNow);
  $("#now-body").addEventListener("click", (event) => {
    const row = event.target.closest("tr[data-key]");
    if (!row || event.target.closest("a")) return;
    const [sender, domain] = row.dataset.key.split("|");
    location.hash = pairHash(sender, domain);
  });
  $("#history-controls").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    location.hash = "#history?" + new URLSearchParams(form).toString();
  });
  $("#flows-controls").addEventListener("change", () => {
    location.hash = `#flows?window=${$("#flows-window").value}`;
  });
  let resizeTimer = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => resizeCharts(currentTab()), 150);
  });
}

wire();
start();
