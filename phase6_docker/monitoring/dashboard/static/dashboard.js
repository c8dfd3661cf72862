// The tasklab dashboard: polls GET /stats (and the latest failed tasks) and redraws the page.
//
// Plain DOM APIs, no framework, no build step. Text from the server always goes in with
// textContent, never innerHTML: an error message is data, and must never become markup.
// The chart is SVG drawn by hand: sixty bars and a few lines need no library.
"use strict";

/** How often the page asks for fresh figures (the issue promises updates within 2 s). */
const REFRESH_MS = 2000;
/** How many of the latest failed tasks the "Recent failures" table lists. */
const FAILURES_SHOWN = 10;
/** The window the page starts with, unless the URL says ?window=. */
const DEFAULT_WINDOW = "1h";
/** Failure rates at or above these are shown as a warning, then as bad. */
const FAILURE_RATE_WARN = 0.05;
const FAILURE_RATE_BAD = 0.2;
/** Margins of the throughput chart, in pixels, around the plot area (room for the axis labels). */
const CHART_MARGIN = { top: 10, right: 8, bottom: 22, left: 36 };
/** One x-axis label every this many minutes. */
const CHART_LABEL_EVERY_MINUTES = 10;
/** Horizontal grid lines (and y-axis labels) above zero. */
const CHART_GRID_LINES = 4;
/** Gap between two bars, as a fraction of a bar's slot. */
const CHART_BAR_GAP = 0.2;

const SVG_NS = "http://www.w3.org/2000/svg";
const STATUSES = ["pending", "running", "retrying", "completed", "failed", "cancelled", "total"];
const WINDOW_NAMES = { "15m": "15 minutes", "1h": "hour", "6h": "6 hours", "24h": "24 hours", "7d": "7 days" };
const numberFormat = new Intl.NumberFormat("en-US");

let currentWindow = new URLSearchParams(window.location.search).get("window") || DEFAULT_WINDOW;
let timer = null;

// ---------------------------------------------------------------------------------------------
// Small helpers

/** An element with attributes and children; strings become text nodes. */
function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== null && value !== undefined) node.setAttribute(name, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

function svg(tag, attributes = {}, text = null) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  if (text !== null) node.textContent = text;
  return node;
}

function formatCount(n) {
  return numberFormat.format(n);
}

/** Seconds as a person reads them: 850 ms, 3.02 s, 4 min 10 s, 2 h 5 min. */
function formatDuration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 0.01) return `${(seconds * 1000).toFixed(1)} ms`;
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds.toFixed(2)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`;
}

function formatRate(rate) {
  return rate === null || rate === undefined ? "–" : `${(rate * 100).toFixed(1)} %`;
}

function rateClass(rate) {
  if (rate === null || rate === undefined) return "none";
  if (rate >= FAILURE_RATE_BAD) return "rate-bad";
  if (rate >= FAILURE_RATE_WARN) return "rate-warn";
  return "rate-ok";
}

/** A timestamp from the API (UTC) in the reader's local time. */
function formatTime(iso, withSeconds = true) {
  if (!iso) return "–";
  const options = withSeconds ? { hour: "2-digit", minute: "2-digit", second: "2-digit" } : { hour: "2-digit", minute: "2-digit" };
  return new Date(iso).toLocaleTimeString([], options);
}

function formatDateTime(iso) {
  if (!iso) return "–";
  return new Date(iso).toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

/** The smallest whole "round" number (1, 2 or 5 times a power of ten) at or above n. */
function niceCeiling(n) {
  if (n <= 1) return 1;
  const power = 10 ** Math.floor(Math.log10(n));
  for (const step of [1, 2, 5, 10]) {
    if (step * power >= n) return step * power;
  }
  return 10 * power;
}

async function fetchJson(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
  if (!response.ok) throw new Error(`${url} answered HTTP ${response.status}`);
  return response.json();
}

function emptyRow(columns, text) {
  return el("tr", { class: "empty-row" }, el("td", { colspan: columns }, text));
}

// ---------------------------------------------------------------------------------------------
// Each part of the page

function renderCounts(counts) {
  for (const status of STATUSES) {
    document.getElementById(`count-${status}`).textContent = formatCount(counts[status]);
  }
}

function renderThroughput(minutes) {
  const chart = document.getElementById("throughput-chart");
  // Draw at the element's real size, so text and lines stay crisp at any width.
  const width = Math.max(chart.clientWidth, 300);
  const height = Math.max(chart.clientHeight, 150);
  chart.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const plotWidth = width - CHART_MARGIN.left - CHART_MARGIN.right;
  const plotHeight = height - CHART_MARGIN.top - CHART_MARGIN.bottom;
  const bottom = CHART_MARGIN.top + plotHeight;
  const peak = Math.max(0, ...minutes.map((m) => m.completed + m.failed));
  // Whole, round steps between grid lines (0, 10, 20 …), high enough for the busiest minute.
  const yStep = Math.max(1, niceCeiling(peak / CHART_GRID_LINES));
  const yMax = yStep * CHART_GRID_LINES;
  const y = (value) => bottom - (value / yMax) * plotHeight;
  const slot = plotWidth / minutes.length;
  const barWidth = Math.max(1, slot * (1 - CHART_BAR_GAP));

  const parts = [];
  for (let line = 0; line <= CHART_GRID_LINES; line += 1) {
    const value = yStep * line;
    parts.push(svg("line", { class: line === 0 ? "axis" : "gridline", x1: CHART_MARGIN.left, x2: width - CHART_MARGIN.right, y1: y(value), y2: y(value) }));
    parts.push(svg("text", { class: "tick", x: CHART_MARGIN.left - 6, y: y(value) + 4, "text-anchor": "end" }, formatCount(value)));
  }
  minutes.forEach((minute, index) => {
    const x = CHART_MARGIN.left + index * slot + (slot - barWidth) / 2;
    const group = svg("g", { class: "minute" });
    group.append(svg("title", {}, `${formatTime(minute.minute, false)}: ${minute.completed} completed, ${minute.failed} failed`));
    // Stacked: completed from the axis up, failed on top of it.
    group.append(svg("rect", { class: "bar-completed", x, width: barWidth, y: y(minute.completed), height: bottom - y(minute.completed) }));
    group.append(svg("rect", { class: "bar-failed", x, width: barWidth, y: y(minute.completed + minute.failed), height: y(minute.completed) - y(minute.completed + minute.failed) }));
    parts.push(group);
    const minuteOfHour = new Date(minute.minute).getMinutes();
    if (minuteOfHour % CHART_LABEL_EVERY_MINUTES === 0) {
      parts.push(svg("text", { class: "tick", x: x + barWidth / 2, y: height - 6, "text-anchor": "middle" }, formatTime(minute.minute, false)));
    }
  });
  if (peak === 0) {
    parts.push(svg("text", { class: "empty", x: CHART_MARGIN.left + plotWidth / 2, y: CHART_MARGIN.top + plotHeight / 2, "text-anchor": "middle" }, "no task ended in the last hour"));
  }
  chart.replaceChildren(...parts);

  const completed = minutes.reduce((sum, m) => sum + m.completed, 0);
  const failed = minutes.reduce((sum, m) => sum + m.failed, 0);
  document.getElementById("throughput-summary").textContent =
    `${formatCount(completed)} completed · ${formatCount(failed)} failed · peak ${formatCount(peak)}/min`;
}

function renderTaskTypes(types) {
  const rows = types.map((type) => {
    const cells = [
      el("td", {}, type.task_type),
      el("td", { class: "num" }, formatCount(type.completed)),
      el("td", { class: "num" }, formatCount(type.failed)),
      el("td", { class: "num" }, formatCount(type.cancelled)),
      el("td", { class: `num ${rateClass(type.failure_rate)}` }, formatRate(type.failure_rate)),
    ];
    for (const durations of [type.run_seconds, type.wait_seconds]) {
      for (const key of ["p50", "p95", "p99"]) cells.push(el("td", { class: "num" }, formatDuration(durations[key])));
    }
    return el("tr", { "data-task-type": type.task_type }, ...cells);
  });
  document.getElementById("types-body").replaceChildren(...rows);
}

/** Priority 5 is the highest: the names make the table readable without the chapter. */
const PRIORITY_NAMES = { 5: "5 · highest", 4: "4", 3: "3 · default", 2: "2", 1: "1 · lowest" };

function renderPriorities(priorities) {
  const rows = priorities.map((level) => {
    const cells = [
      el("td", {}, PRIORITY_NAMES[level.priority] || String(level.priority)),
      el("td", { class: "num" }, formatCount(level.completed)),
    ];
    for (const key of ["p50", "p95", "p99"]) cells.push(el("td", { class: "num" }, formatDuration(level.wait_seconds[key])));
    return el("tr", { "data-priority": String(level.priority) }, ...cells);
  });
  document.getElementById("priorities-body").replaceChildren(...rows);
}

function renderRedis(redis) {
  const state = document.getElementById("redis-state");
  const queuesBody = document.getElementById("queues-body");
  const workers = document.getElementById("workers");
  if (!redis.reachable) {
    state.textContent = redis.detail || "Redis unreachable";
    state.className = "redis-state down";
    queuesBody.replaceChildren(emptyRow(2, "unknown while Redis is unreachable"));
    document.getElementById("workers-alive").textContent = "?";
    workers.replaceChildren();
    return;
  }
  state.textContent = "";
  state.className = "redis-state";
  queuesBody.replaceChildren(
    ...redis.queues.map((queue) => el("tr", {}, el("td", {}, queue.name), el("td", { class: "num", "data-queue": queue.name }, formatCount(queue.queued)))),
  );
  document.getElementById("workers-alive").textContent = formatCount(redis.workers_alive);
  workers.replaceChildren(
    ...redis.workers.map((worker) => {
      const doing = worker.current_task_id
        ? el("a", { href: `/tasks/${worker.current_task_id}`, class: `worker-state ${worker.state}` }, worker.state)
        : el("span", { class: `worker-state ${worker.state}` }, worker.state);
      return el("li", {}, el("span", {}, worker.name), doing);
    }),
  );
}

function renderErrors(errors) {
  const body = document.getElementById("errors-body");
  if (errors.length === 0) {
    body.replaceChildren(emptyRow(3, "no failures in the window"));
    return;
  }
  body.replaceChildren(
    ...errors.map((error) =>
      el("tr", {}, el("td", { class: "error-text" }, error.error), el("td", { class: "num" }, formatCount(error.count)), el("td", {}, formatDateTime(error.last_seen))),
    ),
  );
}

function renderFailures(tasks) {
  const body = document.getElementById("failures-body");
  if (tasks.length === 0) {
    body.replaceChildren(emptyRow(5, "no failed task"));
    return;
  }
  body.replaceChildren(
    ...tasks.map((task) =>
      el(
        "tr",
        { "data-task-id": task.id },
        el("td", {}, el("a", { href: `/tasks/${task.id}`, class: "task-id", title: task.id }, task.id.slice(0, 8))),
        el("td", {}, task.task_type),
        el("td", { class: "error-text" }, task.error || "–"),
        el("td", { class: "num" }, String(task.attempts)),
        el("td", {}, formatDateTime(task.completed_at)),
      ),
    ),
  );
}

function setConnection(kind, text) {
  const pill = document.getElementById("connection");
  pill.className = `pill pill-${kind}`;
  pill.textContent = text;
}

function render(stats, failures) {
  renderCounts(stats.counts);
  renderThroughput(stats.throughput);
  renderTaskTypes(stats.task_types);
  renderPriorities(stats.priorities);
  renderRedis(stats.redis);
  renderErrors(stats.top_errors);
  renderFailures(failures);
  document.getElementById("window-hint").textContent = `ended in the last ${WINDOW_NAMES[currentWindow] || currentWindow}`;
  document.getElementById("footer-text").textContent =
    `Polls /stats every ${REFRESH_MS / 1000} s · last answer computed in ${stats.elapsed_ms.toFixed(1)} ms`;
  // Which /stats answer the page shows: for people (the pill) and for the browser test.
  document.body.dataset.generatedAt = stats.generated_at;
  setConnection("live", `live · ${formatTime(stats.generated_at)}`);
}

// ---------------------------------------------------------------------------------------------
// The loop: the next refresh is scheduled when this one has ended, so a slow answer never
// piles requests up behind it. Changing the window starts a refresh at once; should an older
// one answer after it, its figures (for the old window) are dropped, not drawn.

let latestRefresh = 0;

async function refresh() {
  const mine = ++latestRefresh;
  clearTimeout(timer);
  try {
    const [stats, failures] = await Promise.all([
      fetchJson(`/stats?window=${encodeURIComponent(currentWindow)}`),
      fetchJson(`/tasks?status=failed&limit=${FAILURES_SHOWN}`),
    ]);
    if (mine === latestRefresh) render(stats, failures.items);
  } catch (error) {
    // The API being away is a state to show, not a bug in the page: a warning, not an error.
    setConnection("stale", "no answer from the API · retrying");
    console.warn("dashboard refresh failed:", error);
  } finally {
    if (mine === latestRefresh) {
      clearTimeout(timer);
      timer = setTimeout(refresh, REFRESH_MS);
    }
  }
}

/** Show another window: in the selector, in the address bar (a reload keeps it), in the next refresh. */
function setWindow(value) {
  const select = document.getElementById("window");
  if (![...select.options].some((option) => option.value === value)) {
    console.warn(`unknown window ${value}; showing ${DEFAULT_WINDOW} instead`); // a hand-edited ?window=
    value = DEFAULT_WINDOW;
  }
  currentWindow = value;
  select.value = value;
  const url = new URL(window.location.href);
  url.searchParams.set("window", value);
  window.history.replaceState(null, "", url);
}

document.addEventListener("DOMContentLoaded", () => {
  const select = document.getElementById("window");
  setWindow(currentWindow);
  select.addEventListener("change", () => {
    setWindow(select.value);
    refresh();
  });
  refresh();
});
