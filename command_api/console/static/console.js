// The ordertrail ops console: plain DOM, no framework, no inline code (the page's CSP forbids it).
// Everything shown comes from the ops routes of this origin, called with the token the user
// pasted (sessionStorage only). Text from the server goes in with textContent, never as HTML.
"use strict";

const TOKEN_KEY = "ordertrail.console.token";
const PAGES = ["subscribers", "parked", "jobs", "streams", "audit"];
const POLL_MS = 1000;
const SPARK_POINTS = 60; // a minute of lag at one sample a second

const state = { token: sessionStorage.getItem(TOKEN_KEY), timer: null, lag: {}, stream: null };

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function flash(message, error = false) {
  const box = $("flash");
  box.textContent = message;
  box.className = error ? "error" : "";
}

class ApiError extends Error {
  constructor(status, body) {
    super(typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail));
    this.status = status;
    this.code = body.code;
  }
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${state.token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
  });
  const payload = await response.json().catch(() => ({ detail: response.statusText }));
  if (response.status === 401) {
    logout("The token is missing, invalid or expired: log in again.");
  }
  if (!response.ok) throw new ApiError(response.status, payload);
  return payload;
}

function subjectOf(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part)).sub || "?";
  } catch {
    return "?";
  }
}

// ---- log in and out ----

async function login(token) {
  state.token = token.trim();
  try {
    await api("GET", "/api/v1/ops/status");
  } catch (error) {
    state.token = null;
    const why = error.code === "insufficient_scope" ? "the token lacks the ops:admin scope" : error.message;
    flash(`Cannot log in: ${why}`, true);
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, state.token);
  flash("");
  show(location.hash.slice(1) || "subscribers");
}

function logout(message = "") {
  state.token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  stopPolling();
  flash(message, Boolean(message));
  show("login");
}

async function tradeLoginCode(code) {
  // `ordertrail dev` prints a link with a one-time code in the fragment: trade it once.
  history.replaceState(null, "", location.pathname + "#subscribers");
  const response = await fetch("/console/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ code }),
  });
  if (!response.ok) {
    flash("That login link was used already or is not valid: paste a token instead.", true);
    show("login");
    return;
  }
  await login((await response.json()).token);
}

// ---- pages ----

function show(page) {
  const loggedIn = Boolean(state.token);
  if (!loggedIn) page = "login";
  if (loggedIn && !PAGES.includes(page)) page = "subscribers";
  for (const name of ["login", ...PAGES]) $(`page-${name}`).hidden = name !== page;
  $("nav").hidden = !loggedIn;
  $("who").hidden = !loggedIn;
  if (loggedIn) $("who-name").textContent = `signed in as ${subjectOf(state.token)}`;
  for (const link of document.querySelectorAll("nav a")) {
    if (link.dataset.page === page) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  stopPolling();
  const load = { subscribers: pollSubscribers, parked: loadParked, jobs: pollJobs, audit: loadAudit }[page];
  if (load) load();
  if (page !== "login") $(`${page}-title`).focus({ preventScroll: true });
}

function stopPolling() {
  if (state.timer) clearTimeout(state.timer);
  state.timer = null;
}

function every(work) {
  // Polls while its page is shown; a failed poll says so and tries again.
  const tick = async () => {
    try {
      await work();
    } catch (error) {
      flash(`Refresh failed: ${error.message}`, true);
    }
    if (state.token) state.timer = setTimeout(tick, POLL_MS);
  };
  stopPolling();
  tick();
}

// Subscribers: state, lag with a sparkline, owner, parked, last error; every second.
function pollSubscribers() {
  every(async () => {
    const report = await api("GET", "/api/v1/ops/status");
    const body = $("subscribers-table").tBodies[0];
    body.replaceChildren();
    for (const [name, sub] of Object.entries(report.subscribers)) {
      const history = (state.lag[name] = [...(state.lag[name] || []), sub.lag_events].slice(-SPARK_POINTS));
      const parked = sub.parked > 0 ? el("a", { href: "#parked", text: String(sub.parked) }) : "0";
      const stateText = sub.failure ? `failing ${Math.round(sub.failure.failing_seconds)} s` : sub.state;
      body.append(
        el("tr", { "data-subscriber": name },
          el("th", { scope: "row", text: name }),
          el("td", { class: `state-${sub.state.replace(" ", "-")}`, text: stateText }),
          el("td", { class: "num", text: String(sub.lag_events) }),
          el("td", { class: "num", text: String(sub.lag_seconds) }),
          el("td", {}, sparkline(history, `${name} lag over the last minute`)),
          el("td", { text: sub.owner ? sub.owner.worker : "none" }),
          el("td", { class: "num" }, parked),
          el("td", { class: "error", text: sub.last_error || "" }),
        ),
      );
    }
    $("store-head").textContent = `Store head ${report.store.head || "(empty)"}.`;
  });
}

function sparkline(values, label) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", "0 0 120 24");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  const top = Math.max(1, ...values);
  const step = 120 / Math.max(1, SPARK_POINTS - 1);
  const offset = SPARK_POINTS - values.length; // the newest sample at the right edge
  const points = values.map((v, i) => `${((i + offset) * step).toFixed(1)},${(22 - (v / top) * 20).toFixed(1)}`);
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("points", points.join(" "));
  svg.append(line);
  return svg;
}

// Parked events: inspect, retry a subscriber's, skip one; each mutation confirmed first.
async function loadParked() {
  const report = await api("GET", "/api/v1/ops/parked");
  const list = $("parked-list");
  list.replaceChildren();
  let waiting = 0;
  for (const [name, found] of Object.entries(report.subscribers)) {
    if (found.events.length === 0) continue;
    waiting += found.waiting;
    const rows = found.events.map((event) =>
      el("tr", { "data-position": event.position },
        el("td", { text: event.position }),
        el("td", { text: event.stream_id }),
        el("td", { text: `${event.type} v${event.version}` }),
        el("td", { class: "num", text: String(event.attempts) }),
        el("td", { text: event.parked_at }),
        el("td", { class: "error", text: event.error }),
        el("td", {},
          el("button", { type: "button", text: "Inspect", onclick: () => inspect(event) }), " ",
          el("button", { type: "button", class: "danger", text: "Skip", onclick: () => skip(name, event) }),
        ),
      ),
    );
    list.append(
      el("h3", { text: `${name}: ${found.waiting} waiting` }),
      el("button", { type: "button", class: "primary", "data-retry": name, text: `Retry ${name}'s parked events`, onclick: () => retry(name, found.waiting) }),
      el("table", {},
        el("thead", {}, el("tr", {}, ...["Position", "Stream", "Event", "Attempts", "Parked at", "Error", ""].map((h) => el("th", { scope: "col", text: h })))),
        el("tbody", {}, ...rows),
      ),
    );
  }
  if (waiting === 0) list.append(el("p", { id: "parked-none", text: "No parked events." }));
}

async function inspect(event) {
  const page = await api("GET", `/api/v1/ops/streams/${event.stream_id}/events?from_version=${event.version}&limit=1`);
  const stored = page.events[0];
  $("detail-position").textContent = event.position;
  const facts = $("detail-facts");
  facts.replaceChildren();
  for (const [term, value] of [["Subscriber", event.projection], ["Stream", event.stream_id], ["Type", event.type], ["Version", event.version], ["Attempts", event.attempts], ["Parked at", event.parked_at]]) {
    facts.append(el("dt", { text: term }), el("dd", { text: String(value) }));
  }
  $("detail-error").textContent = event.error;
  $("detail-event").textContent = JSON.stringify(stored, null, 2);
  $("parked-detail").hidden = false;
  $("detail-close").focus();
}

async function retry(name, count) {
  if (!confirm(`Retry the ${count} parked event(s) of ${name}?`)) return;
  try {
    // A worker runs the retry (it refolds documents with the projection's code): follow its job.
    const started = await api("POST", `/api/v1/ops/parked/${name}/retry`);
    flash(`Retrying ${name}'s parked events (job ${started.job_id.slice(0, 8)})…`);
    const job = await finished(started.status_url);
    if (job.status !== "done") throw new Error(job.error || `the job is ${job.status}`);
    const result = job.result;
    const failing = result.still_failing.length;
    flash(`${name}: ${result.fixed} of ${result.retried} parked event(s) applied` + (failing ? `; ${failing} still failing` : ""), failing > 0);
  } catch (error) {
    flash(`Retry failed: ${error.message}`, true);
  }
  await loadParked();
}

async function finished(url, seconds = 120) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const job = await api("GET", url);
    if (job.status === "done" || job.status === "failed" || Date.now() > deadline) return job;
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
}

async function skip(name, event) {
  const reason = prompt(`${name} will never apply ${event.type} at ${event.position}. Why skip it?`, "");
  if (reason === null) return;
  try {
    await api("POST", `/api/v1/ops/parked/${name}/skip`, { position: event.position, reason });
    flash(`${name}: the event at ${event.position} is skipped.`);
  } catch (error) {
    flash(`Skip failed: ${error.message}`, true);
  }
  await loadParked();
}

// Jobs: start a rebuild or a replay; progress bars with rate and ETA; history.
function pollJobs() {
  every(async () => {
    const { jobs } = await api("GET", "/api/v1/ops/jobs?limit=20");
    const body = $("jobs-table").tBodies[0];
    body.replaceChildren();
    for (const job of jobs) {
      const total = job.total ?? 0;
      const done = job.done ?? 0;
      const bar = el("progress", { max: String(Math.max(total, 1)), value: String(job.status === "done" ? Math.max(total, 1) : done) });
      const percent = job.status === "done" ? 100 : total ? Math.floor((100 * done) / total) : 0;
      bar.setAttribute("aria-label", `${job.kind} ${job.target}: ${percent} %`);
      body.append(
        el("tr", { "data-job": job.job_id, "data-status": job.status, "data-percent": String(percent) },
          el("td", { text: job.job_id.slice(0, 8) }),
          el("td", { text: job.kind }),
          el("td", { text: job.target }),
          el("td", { class: `state-${job.status}`, text: job.status + (job.error ? `: ${job.error}` : "") }),
          el("td", {}, bar, ` ${percent} %`),
          el("td", { class: "num", text: job.rate ? `${Math.round(job.rate).toLocaleString()} ev/s` : "" }),
          el("td", { class: "num", text: job.eta_seconds != null && job.status === "running" ? `${Math.ceil(job.eta_seconds)} s` : "" }),
          el("td", { text: job.created_at || "" }),
        ),
      );
    }
  });
}

async function startRebuild(event) {
  event.preventDefault();
  const projection = $("rebuild-projection").value;
  if (!confirm(`Rebuild ${projection}? Readers keep the current view until the swap.`)) return;
  try {
    const started = await api("POST", `/api/v1/ops/projections/${projection}/rebuild`);
    flash(`Rebuild of ${projection} queued (job ${started.job_id.slice(0, 8)}).`);
  } catch (error) {
    flash(`Cannot start the rebuild: ${error.message}`, true);
  }
}

async function startReplay(event) {
  event.preventDefault();
  const stream = $("replay-stream").value.trim();
  if (!confirm(`Replay stream ${stream} into every projection that handles it?`)) return;
  try {
    const started = await api("POST", `/api/v1/ops/streams/${stream}/replay`);
    flash(`Replay of ${stream} queued (job ${started.job_id.slice(0, 8)}).`);
  } catch (error) {
    flash(`Cannot start the replay: ${error.message}`, true);
  }
}

// Streams: by id, or by SKU (its product and stock item); events a page at a time.
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

async function findStream(event) {
  event.preventDefault();
  const query = $("stream-query").value.trim();
  const choices = $("stream-choices");
  choices.replaceChildren();
  $("stream-events").replaceChildren();
  if (UUID_RE.test(query)) return openStream(query, 1, true);
  try {
    const found = await api("GET", `/api/v1/ops/streams?sku=${encodeURIComponent(query)}`);
    if (found.streams.length === 0) return flash(`No stream for SKU ${query}.`, true);
    flash("");
    for (const stream of found.streams) {
      choices.append(el("li", {}, el("button", { type: "button", "data-stream": stream.stream_id, text: `${stream.stream_type} ${stream.stream_id}`, onclick: () => openStream(stream.stream_id, 1, true) })));
    }
  } catch (error) {
    flash(`Lookup failed: ${error.message}`, true);
  }
}

async function openStream(streamId, fromVersion, fresh) {
  let page;
  try {
    page = await api("GET", `/api/v1/ops/streams/${streamId}/events?from_version=${fromVersion}&limit=50`);
  } catch (error) {
    return flash(error.status === 404 ? `No stream ${streamId}.` : `Cannot read the stream: ${error.message}`, true);
  }
  flash("");
  const box = $("stream-events");
  if (fresh) {
    box.replaceChildren(
      el("h3", { text: `Stream ${streamId}` }),
      el("table", { id: "stream-table" },
        el("thead", {}, el("tr", {}, ...["Version", "Type", "Position", "Recorded", "Data", "Metadata"].map((h) => el("th", { scope: "col", text: h })))),
        el("tbody"),
      ),
    );
  }
  const body = $("stream-table").tBodies[0];
  for (const e of page.events) {
    body.append(el("tr", { "data-version": String(e.version) },
      el("td", { class: "num", text: String(e.version) }),
      el("td", { text: e.type }),
      el("td", { text: e.position }),
      el("td", { text: e.recorded_at }),
      el("td", {}, el("pre", { text: JSON.stringify(e.data, null, 1) })),
      el("td", {}, el("pre", { text: JSON.stringify(e.metadata, null, 1) })),
    ));
  }
  const more = $("stream-more");
  more.hidden = page.next_from_version == null;
  state.stream = more.hidden ? null : [streamId, page.next_from_version];
}

// Audit: newest first, by actor, type and correlation id.
async function loadAudit(event) {
  if (event) event.preventDefault();
  const params = new URLSearchParams();
  for (const name of ["actor", "type", "correlation_id"]) {
    const value = $("audit-form").elements[name].value.trim();
    if (value) params.set(name, value);
  }
  try {
    const { entries } = await api("GET", `/api/v1/ops/audit?${params}`);
    const body = $("audit-table").tBodies[0];
    body.replaceChildren();
    for (const entry of entries) {
      const correlation = el("button", { type: "button", class: "link", text: entry.correlation_id || "", onclick: () => { $("audit-correlation").value = entry.correlation_id; loadAudit(); } });
      body.append(el("tr", {},
        el("td", { text: entry.recorded_at }),
        el("td", { text: entry.type }),
        el("td", { text: `${entry.stream_type} ${entry.stream_id}` }),
        el("td", { text: entry.actor || "" }),
        el("td", {}, correlation),
        el("td", { text: entry.causation_id || "" }),
      ));
    }
    if (entries.length === 0) body.append(el("tr", {}, el("td", { colspan: "6", text: "No entries." })));
  } catch (error) {
    flash(`Cannot read the audit log: ${error.message}`, true);
  }
}

// ---- wiring ----

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    login($("token").value);
    $("token").value = "";
  });
  $("logout").addEventListener("click", () => logout());
  $("detail-close").addEventListener("click", () => { $("parked-detail").hidden = true; });
  $("parked-refresh").addEventListener("click", () => loadParked().catch((error) => flash(error.message, true)));
  $("rebuild-form").addEventListener("submit", startRebuild);
  $("replay-form").addEventListener("submit", startReplay);
  $("stream-form").addEventListener("submit", findStream);
  $("stream-more").addEventListener("click", () => state.stream && openStream(state.stream[0], state.stream[1], false));
  $("audit-form").addEventListener("submit", loadAudit);
  window.addEventListener("hashchange", () => show(location.hash.slice(1)));
  const code = new URLSearchParams(location.hash.slice(1)).get("code");
  if (code) tradeLoginCode(code);
  else show(location.hash.slice(1) || "subscribers");
});
