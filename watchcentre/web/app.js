// The operator console. Plain ES module, no build step, no dependency. Every piece of text that comes
// from a message is put in the page as text (dom.js), never as markup.
import { h, append, clear, time, dateTime, duration, csv, escapedJson } from "./dom.js";
import { loadWorld, drawMap, legend } from "./map.js";
import { mountSearch, relatedPanel } from "./search.js";

const MAX_ROWS = 500; // rows kept in the feed; older ones drop off the bottom
const SEEN_KEEP = 20000; // audit seqs remembered for de-duplication
const BACKFILL_MARGIN = 100; // re-read a little before the last seq: events from other instances may arrive out of order

const $ = (id) => document.getElementById(id);
const state = {
  rows: new Map(), // key → { data, tr }
  lastSeq: 0,
  seen: new Set(),
  seenOrder: [],
  pending: [], // summaries waiting for the next animation frame
  frameAsked: false,
  retry: 0,
  ws: null,
  view: "feed",
  recipients: [],
  backfilled: 0,
  received: 0,
  freshRows: [],
  lastFlush: 0,
};

// -- HTTP --------------------------------------------------------------------------------------------

class HttpError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `HTTP ${status}`);
    this.status = status;
    this.field = e.field;
  }
}

async function api(path, options = {}) {
  const init = { credentials: "same-origin", headers: { Accept: "application/json" }, ...options };
  if (options.json !== undefined) {
    init.method = init.method || "POST";
    init.body = JSON.stringify(options.json);
    init.headers["Content-Type"] = "application/json";
  }
  const r = await fetch(path, init);
  if (r.status === 401) {
    location.assign("/signin");
    throw new HttpError(401, null);
  }
  const body = (r.headers.get("Content-Type") || "").includes("json") ? await r.json() : null;
  if (!r.ok) throw new HttpError(r.status, body);
  return body;
}

function errorText(err) {
  return err.field ? `${err.field}: ${err.message}` : err.message;
}

// -- the feed ----------------------------------------------------------------------------------------

const keyOf = (m) => `${m.sender || ""}\u0000${m.message_id || ""}\u0000${m.status === "rejected" ? m.id : ""}`;

function remember(seq) {
  if (typeof seq !== "number") return true;
  if (state.seen.has(seq)) return false;
  state.seen.add(seq);
  state.seenOrder.push(seq);
  if (state.seenOrder.length > SEEN_KEEP) state.seen.delete(state.seenOrder.shift());
  if (seq > state.lastSeq) state.lastSeq = seq;
  document.body.dataset.lastSeq = String(state.lastSeq);
  return true;
}

function connect() {
  const url = new URL("/api/console/feed", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  if (state.lastSeq > 0) url.searchParams.set("after", String(Math.max(0, state.lastSeq - BACKFILL_MARGIN)));
  const ws = new WebSocket(url);
  state.ws = ws;
  ws.addEventListener("message", (m) => onFrame(JSON.parse(m.data)));
  ws.addEventListener("close", () => {
    if (state.ws !== ws) return;
    state.ws = null;
    const delay = Math.min(5000, 250 * 2 ** state.retry++);
    setConn("down", `reconnecting in ${(delay / 1000).toFixed(1)} s…`);
    document.body.dataset.feed = "down";
    setTimeout(connect, delay);
  });
}

function onFrame(frame) {
  if (frame.type === "snapshot") {
    state.lastSeq = Math.max(state.lastSeq, frame.cursor);
    for (const m of frame.messages.slice().reverse()) queueRow(m, false);
  } else if (frame.type === "backfill" || frame.type === "events") {
    let n = 0;
    for (const item of frame.items) {
      if (!remember(item.seq)) continue;
      n++;
      onEvent(item, frame.type === "events");
    }
    if (frame.type === "backfill") state.backfilled += n;
    state.received += n;
  } else if (frame.type === "backfilled") {
    state.lastSeq = Math.max(state.lastSeq, frame.cursor);
  } else if (frame.type === "live") {
    state.lastSeq = Math.max(state.lastSeq, frame.cursor);
    state.retry = 0;
    setConn("live", state.backfilled ? `live · ${state.backfilled} back-filled` : "live");
    document.body.dataset.feed = "live";
    document.body.dataset.backfilled = String(state.backfilled);
  }
  document.body.dataset.lastSeq = String(state.lastSeq);
}

function onEvent(item, live) {
  if (item.message) queueRow(item.message, live);
  if (item.type === "triaged" || (item.type === "routed" && item.details && item.details.manual)) refreshTriageSoon();
  if (item.type === "note_added") loadNotes();
  if (item.type === "rejected" || item.type === "replayed") refreshDeadSoon();
}

const FLUSH_EVERY_MS = 200; // under a burst, at most 5 redraws of the table a second; a quiet line shows at once

function queueRow(m, fresh) {
  state.pending.push([m, fresh]);
  if (!state.frameAsked) {
    state.frameAsked = true;
    const wait = Math.max(0, state.lastFlush + FLUSH_EVERY_MS - performance.now());
    setTimeout(() => requestAnimationFrame(flushRows), wait);
  }
}

// One DOM update per frame, whatever the rate: a burst becomes one fragment insert.
function flushRows() {
  state.lastFlush = performance.now();
  state.frameAsked = false;
  const batch = state.pending;
  state.pending = [];
  const latest = new Map(); // key → [summary, fresh], the last word on each message in this batch
  for (const [m, fresh] of batch) {
    const key = keyOf(m);
    latest.delete(key);
    latest.set(key, [m, fresh]);
  }
  const f = filters();
  const made = [];
  for (const tr of state.freshRows) tr.classList.remove("fresh"); // only the latest batch stands out
  state.freshRows = [];
  for (const [key, [m, fresh]] of latest) {
    const old = state.rows.get(key);
    if (old) { old.tr.remove(); state.rows.delete(key); }
    const tr = feedRow(m, fresh);
    if (fresh) state.freshRows.push(tr);
    tr.hidden = !matches(m, f);
    tr.dataset.key = key;
    state.rows.set(key, { data: m, tr });
    made.push(tr);
  }
  // Rows stay ordered by the store's id, newest on top: live rows go on top; a back-filled or
  // re-routed one goes where it belongs (a merge of two lists sorted the same way).
  made.sort((a, b) => Number(b.dataset.id) - Number(a.dataset.id));
  const tbody = $("feed-rows");
  let at = tbody.firstElementChild;
  let frag = document.createDocumentFragment();
  for (const tr of made) {
    const id = Number(tr.dataset.id);
    while (at && Number(at.dataset.id) > id) {
      if (frag.childNodes.length) { at.before(frag); frag = document.createDocumentFragment(); }
      at = at.nextElementSibling;
    }
    frag.append(tr);
  }
  if (at) at.before(frag); else tbody.append(frag);
  while (state.rows.size > MAX_ROWS) {
    const last = tbody.lastElementChild; // the oldest message drops off the bottom
    last.remove();
    state.rows.delete(last.dataset.key);
  }
  $("feed-stats").textContent = `${state.rows.size} shown · last event #${state.lastSeq}`;
}

function badge(text, kind) {
  return h("span", { class: `badge badge-${kind}` }, text);
}

function tags(values) {
  return (values || []).map((v) => h("span", { class: "tag" }, v));
}

function feedRow(m, fresh) {
  const prio = m.priority || "normal";
  const cell = (cls, ...content) => h("span", { role: "cell", class: cls }, ...content);
  return h(
    "div",
    {
      class: `row prio-${prio}${fresh ? " fresh" : ""}`,
      role: "row",
      dataset: { id: String(m.id), sender: m.sender || "", messageId: m.message_id || "", status: m.status },
      onclick: () => openDetail(m.message_id, m.sender),
    },
    cell("c-time", time(m.received_at)),
    cell("c-prio", badge(prio, prio === "urgent" ? "urgent" : "normal")),
    cell("c-sender", m.sender || "?"),
    h("span", { role: "cell", class: "subject", dir: "auto", title: m.subject || "" }, m.subject || (m.status === "rejected" ? "(rejected input)" : "")),
    cell("c-crime", tags(m.crime_types)),
    cell("c-countries", tags(m.countries)),
    cell("c-recipients", tags(m.recipients)),
    cell("c-state", badge(m.status, m.status)),
  );
}

function filters() {
  const form = $("filters");
  return {
    crime: form.crime.value,
    country: form.country.value.trim().toUpperCase(),
    post: form.post.value,
    priority: form.priority.value,
    state: form.state.value,
  };
}

function matches(m, f) {
  if (f.crime && !(m.crime_types || []).includes(f.crime)) return false;
  if (f.country && !(m.countries || []).includes(f.country)) return false;
  if (f.post && !(m.recipients || []).includes(f.post) && m.sender !== f.post.replace(/^post\./, "")) return false;
  if (f.priority && (m.priority || "normal") !== f.priority) return false;
  if (f.state && m.status !== f.state) return false;
  return true;
}

function applyFilters() {
  const f = filters();
  for (const { data, tr } of state.rows.values()) tr.hidden = !matches(data, f);
}

function setConn(kind, text) {
  const el = $("conn");
  el.className = `pill pill-${kind === "live" ? "live" : kind === "down" ? "down" : "wait"}`;
  el.textContent = text;
}

// -- views -------------------------------------------------------------------------------------------

function show(view) {
  state.view = view;
  for (const b of document.querySelectorAll(".tab")) b.classList.toggle("active", b.dataset.view === view);
  for (const s of document.querySelectorAll(".view")) s.hidden = s.id !== `view-${view}`;
  if (view === "triage") loadTriage();
  if (view === "deadlines") loadDeadlines();
  if (view === "glance") loadGlance();
  if (view === "dead") loadDead();
  if (view === "log") loadNotes();
}

// -- triage ------------------------------------------------------------------------------------------

let triageTimer = null;
function refreshTriageSoon() {
  if (triageTimer) return;
  triageTimer = setTimeout(() => { triageTimer = null; loadTriage(); }, 500);
}

async function loadTriage() {
  const body = await api("/api/console/triage");
  $("triage-count").textContent = String(body.items.length);
  $("triage-count").classList.toggle("waiting", body.items.length > 0);
  const tbody = clear($("triage-rows"));
  if (!body.items.length) tbody.append(h("tr", null, h("td", { colspan: 6, class: "empty" }, "Nothing waits for a decision.")));
  for (const m of body.items) {
    tbody.append(
      h(
        "tr",
        { class: `prio-${m.priority || "normal"}`, dataset: { messageId: m.message_id || "", sender: m.sender || "" }, onclick: () => openDetail(m.message_id, m.sender) },
        h("td", null, dateTime(m.received_at)),
        h("td", null, badge(m.priority || "normal", m.priority === "urgent" ? "urgent" : "normal")),
        h("td", null, m.sender),
        h("td", { class: "subject", dir: "auto" }, m.subject || ""),
        h("td", null, tags(m.crime_types)),
        h("td", { class: "why" }, m.why || ""),
      ),
    );
  }
}

// -- message detail ----------------------------------------------------------------------------------

async function openDetail(messageId, sender) {
  if (!messageId) return;
  const panel = $("detail");
  const body = clear($("detail-body"));
  panel.hidden = false;
  body.append(h("p", { class: "muted" }, "loading…"));
  const q = new URLSearchParams({ message_id: messageId });
  if (sender) q.set("sender", sender);
  let m;
  try {
    m = await api(`/api/console/message?${q}`);
  } catch (err) {
    clear(body).append(h("p", { class: "error" }, errorText(err)));
    return;
  }
  clear(body);
  const env = m.envelope || {};
  const routing = m.routing || {};
  append(
    body,
    h("h2", { id: "detail-subject", dir: "auto" }, m.purged_at ? `(purged ${dateTime(m.purged_at)})` : marked(m.highlights.subject)),
    h(
      "p",
      null,
      badge(m.priority || "normal", m.priority === "urgent" ? "urgent" : "normal"),
      badge(m.status, m.status),
      " ",
      h("span", { class: "muted" }, `${m.sender || "?"} · ${m.message_id || ""} · received ${dateTime(m.received_at)}`),
    ),
    m.error ? h("p", { class: "error" }, `Rejected: ${m.error}`) : null,
    h("h3", null, "Body"),
    h("div", { class: "body-text", id: "detail-text", dir: "auto" }, marked(m.highlights.body)),
    h("h3", null, "Envelope"),
    h(
      "dl",
      { class: "kv" },
      ["kind", "reference", "sent_at", "in_reply_to", "handling"].flatMap((k) => (env[k] ? [h("dt", null, k), h("dd", null, String(env[k]))] : [])),
      h("dt", null, "country hints"), h("dd", null, tags(env.countries)),
      h("dt", null, "crime hints"), h("dd", null, tags(env.crime_types)),
    ),
    h("h3", null, "Routing"),
    h(
      "dl",
      { class: "kv" },
      h("dt", null, "crime types"), h("dd", null, tags(routing.crime_types || m.crime_types)),
      h("dt", null, "countries"), h("dd", null, tags(routing.countries || m.countries)),
      h("dt", null, "recipients"), h("dd", { id: "detail-recipients" }, tags(routing.recipients || m.recipients)),
      h("dt", null, "confidence"), h("dd", null, routing.confidence === undefined ? "" : String(routing.confidence)),
    ),
    h("h3", null, "Why"),
    h("ul", { class: "plain", id: "detail-why" }, (routing.explanation || []).map((line) => h("li", null, line))),
    m.status !== "rejected" ? routeForm(m) : null,
    h("h3", null, "Audit timeline"),
    h(
      "ul",
      { class: "plain" },
      m.timeline.map((e) =>
        h("li", null, h("span", { class: "muted" }, `#${e.seq} ${dateTime(e.at)} `), h("b", null, e.type), ` by ${e.actor}`, e.details && e.details.reason ? ` — ${e.details.reason}` : ""),
      ),
    ),
  );
  if (m.status !== "rejected") {
    const related = h("div", { class: "related-panel" });
    append(body, related);
    relatedPanel(related, messageId, sender);
  }
}

function marked(segments) {
  return (segments || []).map((s) =>
    s.mark ? h("mark", { class: s.mark.negated_by ? "negated" : null, title: `${s.mark.target} (${s.mark.rule})${s.mark.negated_by ? ", negated by " + s.mark.negated_by : ""}` }, s.text) : s.text,
  );
}

function routeForm(m) {
  const revision = (m.manual || []).length;
  const current = new Set((m.routing && m.routing.recipients) || []);
  const filter = h("input", { type: "search", placeholder: "filter posts and units", "aria-label": "filter recipients" });
  const boxes = state.recipients.map((r) =>
    h("label", { dataset: { key: r.key } }, h("input", { type: "checkbox", name: "recipient", value: r.key, checked: m.status !== "triage" && current.has(r.key) }), h("span", null, r.key), h("span", { class: "muted" }, r.label)),
  );
  filter.addEventListener("input", () => {
    const q = filter.value.toLowerCase();
    for (const b of boxes) b.hidden = q && !b.textContent.toLowerCase().includes(q);
  });
  const reason = h("textarea", { name: "reason", rows: 2, maxlength: 1000, placeholder: "Why these recipients (recorded in the audit)" });
  const error = h("p", { class: "error", role: "alert" });
  const form = h(
    "form",
    { class: "route-form", id: "route-form" },
    h("h3", null, m.status === "triage" ? "Route this message" : "Re-route this message"),
    filter,
    h("div", { class: "recipients" }, boxes),
    h("label", null, "Reason", reason),
    h("div", { class: "row" }, h("button", { type: "submit", class: "primary" }, m.status === "triage" ? "Route" : "Re-route"), h("span", { class: "muted" }, revision ? `${revision} manual decision(s) so far` : "")),
    error,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const chosen = [...form.querySelectorAll("input[name=recipient]:checked")].map((i) => i.value);
    error.textContent = "";
    try {
      await api("/api/console/route", { json: { sender: m.sender, message_id: m.message_id, recipients: chosen, reason: reason.value, revision } });
      await openDetail(m.message_id, m.sender);
      refreshTriageSoon();
    } catch (err) {
      error.textContent = errorText(err);
    }
  });
  return form;
}

// -- deadlines ---------------------------------------------------------------------------------------

// Every open request: the server pages newest first (each page overdue first); follow `next`, then
// order the whole board again: overdue first, then the least time left.
async function openCases() {
  const items = [];
  let next = null;
  for (let page = 0; page < 40; page++) {
    const body = await api(`/api/cases?open=true${next ? `&before=${encodeURIComponent(next)}` : ""}`);
    items.push(...(body.items || []));
    next = body.next;
    if (!next) break;
  }
  const left = (c) => (typeof c.time_left_seconds === "number" ? c.time_left_seconds : Number.MAX_VALUE);
  return items.sort((a, b) => (a.overdue === b.overdue ? left(a) - left(b) : a.overdue ? -1 : 1));
}

async function loadDeadlines() {
  const box = $("deadlines");
  let body;
  try {
    body = { items: await openCases() };
  } catch (err) {
    clear(box).append(h("p", { class: "empty", id: "lifecycle-missing" }, err.status === 404 ? "Request lifecycle not available on this instance: no deadlines to show." : errorText(err)));
    setOverdue(0);
    return null;
  }
  const items = body.items || [];
  const overdue = items.filter((c) => c.overdue);
  setOverdue(overdue.length);
  clear(box);
  if (!items.length) box.append(h("p", { class: "empty" }, "No open request."));
  box.append(
    h(
      "ol",
      { class: "deadline-list" },
      items.map((c) => {
        const left = c.time_left_seconds;
        const soon = !c.overdue && typeof left === "number" && left < 3600;
        return h(
          "li",
          { class: `deadline${c.overdue ? " overdue" : ""}`, dataset: { reference: c.reference } },
          h("div", { class: `left${soon ? " soon" : ""}` }, c.overdue ? `OVERDUE ${duration(left || 0)}` : typeof left === "number" ? `${duration(left)} left` : "—"),
          h("div", null, h("b", null, c.reference), " ", badge(c.priority || "normal", c.priority === "urgent" ? "urgent" : "normal"), " ", badge(c.state, c.state === "triage" ? "triage" : "normal"), h("div", { class: "subject", dir: "auto" }, c.subject || ""), h("div", { class: "muted" }, `${c.sender} → `, tags(c.recipients))),
          h("div", { class: "muted" }, `due ${dateTime(c.due_at)}`, h("br"), c.acknowledged_at ? `acknowledged ${dateTime(c.acknowledged_at)}` : c.ack_due_at ? `ack due ${dateTime(c.ack_due_at)}` : ""),
        );
      }),
    ),
  );
  return items;
}

function setOverdue(n) {
  const banner = $("overdue-banner");
  banner.hidden = n === 0;
  banner.textContent = n ? `${n} request${n > 1 ? "s" : ""} OVERDUE — see the deadlines board` : "";
  const count = $("overdue-count");
  count.hidden = n === 0;
  count.textContent = String(n);
}

// -- at a glance -------------------------------------------------------------------------------------

function bars(counts, limit) {
  const entries = Object.entries(counts).sort((a, b) => b[1] - a[1]).slice(0, limit);
  const max = Math.max(1, ...entries.map((e) => e[1]));
  const list = h("ul", { class: "bars" });
  for (const [k, n] of entries) {
    const bar = h("div", { class: "bar" });
    bar.style.width = `${(100 * n) / max}%`;
    list.append(h("li", null, h("span", null, k), bar, h("span", { class: "n" }, String(n))));
  }
  if (!entries.length) list.append(h("li", { class: "muted" }, "none"));
  return list;
}

// Which rules operators most often had to correct (GET /api/console/corrections); its words in one place.
const CORRECTIONS_TEXT = { title: "Rules most often corrected", none: "No correction yet.", of: (n) => `${n} message(s) corrected by operators` };

function correctionsCard(c) {
  const title = h("h2", null, CORRECTIONS_TEXT.title);
  if (!c || !c.rules.length) return h("div", { class: "card" }, title, h("p", { class: "muted" }, CORRECTIONS_TEXT.none));
  const counts = {};
  for (const r of c.rules) counts[r.rule] = r.count;
  return h("div", { class: "card" }, title, bars(counts, 10), h("p", { class: "muted" }, CORRECTIONS_TEXT.of(c.corrected)));
}

async function loadGlance() {
  const box = $("glance");
  const [g, cases, corrections] = await Promise.all([
    api("/api/console/glance"),
    openCases().then((items) => ({ items })).catch(() => null),
    api("/api/console/corrections").catch(() => null),
  ]);
  let counts = g.countries, label = `Messages by country, last ${g.hours} h`;
  if (cases && cases.items) {
    counts = {};
    for (const c of cases.items) for (const cc of c.countries || []) counts[cc] = (counts[cc] || 0) + 1;
    label = "Open requests by country";
  }
  const mapCard = h("div", { class: "card map-card" }, h("h2", null, label), h("p", { class: "muted" }, "loading map…"));
  clear(box).append(
    h(
      "div",
      { class: "cards" },
      h("div", { class: "card" }, h("h2", null, `Messages, last ${g.hours} h`), h("div", { class: "big" }, String(g.total)), h("p", { class: "muted" }, `${g.triage} waiting in triage`)),
      h("div", { class: "card" }, h("h2", null, "By crime type"), bars(g.crime_types, 15)),
      h("div", { class: "card" }, h("h2", null, "By country"), bars(g.countries, 15)),
      correctionsCard(corrections),
      mapCard,
    ),
  );
  const world = await loadWorld();
  const max = Math.max(0, ...Object.values(counts));
  clear(mapCard).append(
    h("h2", null, label),
    drawMap(world, counts, label),
    h("div", { class: "legend" }, legend(max).map((l) => { const i = h("i"); i.style.background = l.colour; return h("span", null, i, ` ${l.from}+`); }), h("span", null, "· map: Natural Earth via world-atlas")),
  );
}

// -- dead letters ------------------------------------------------------------------------------------

let deadTimer = null;
function refreshDeadSoon() {
  if (deadTimer) return;
  // only the count: the list an operator may be editing is never redrawn under their hands
  deadTimer = setTimeout(() => { deadTimer = null; countDead().catch(() => {}); }, 1000);
}

function setDeadCount(n) {
  const el = $("dead-count");
  el.hidden = n === 0;
  el.textContent = String(n);
}

async function countDead() {
  const body = await api("/api/console/dead?limit=1000");
  setDeadCount(body.items.length);
  const shown = document.querySelectorAll("#dead .dead-item").length;
  const note = $("dead-refresh");
  if (note) note.hidden = body.items.length === shown;
}

function pretty(text) {
  // escapedJson only where the text is JSON: inside strings an escape is the same character
  try { return escapedJson(JSON.stringify(JSON.parse(text), null, 2)); } catch { return text; }
}

async function loadDead() {
  const box = $("dead");
  let body;
  try {
    body = await api("/api/console/dead");
  } catch (err) {
    clear(box).append(h("p", { class: "error" }, errorText(err)));
    return;
  }
  clear(box);
  setDeadCount(body.items.length);
  box.append(h("p", { id: "dead-refresh", class: "banner", hidden: true }, "The dead-letter queue changed. ", h("button", { type: "button", onclick: () => loadDead() }, "Refresh the list")));
  if (!body.items.length) box.append(h("p", { class: "empty" }, "No dead letter: nothing to correct."));
  for (const d of body.items) box.append(deadItem(d));
}

function deadItem(d) {
  const text = h("textarea", { rows: 14, spellcheck: "false", "aria-label": "envelope" });
  text.value = pretty(d.text);
  const reason = h("input", { name: "reason", size: 60, maxlength: 1000, placeholder: "what you corrected, and why" });
  const error = h("p", { class: "error", role: "alert" });
  const send = async (corrected) => {
    error.textContent = "";
    let envelope;
    if (corrected) {
      try { envelope = JSON.parse(text.value); } catch { error.textContent = "envelope: not valid JSON"; return; }
    }
    try {
      await api(`/api/console/dead/${encodeURIComponent(d.id)}/reinject`, { json: envelope ? { reason: reason.value, envelope } : { reason: reason.value } });
      item.replaceWith(h("p", { class: "okmsg" }, `Re-injected ${d.message_id || d.id}.`));
    } catch (err) {
      error.textContent = errorText(err);
    }
  };
  const item = h(
    "div",
    { class: "dead-item", dataset: { id: d.id } },
    h("div", { class: "reason" }, d.reason || "(no reason recorded)"),
    h("div", { class: "muted" }, `${d.sender || "?"} · ${d.message_id || "no message id"} · ${d.size} bytes · ${d.id}`),
    text,
    h("div", { class: "row" }, reason, h("button", { type: "button", class: "primary", onclick: () => send(true) }, "Re-inject corrected"), h("button", { type: "button", onclick: () => send(false) }, "Re-inject as it was")),
    error,
  );
  return item;
}

// -- shift log ---------------------------------------------------------------------------------------

async function loadNotes() {
  const body = await api("/api/console/notes?limit=50");
  const list = clear($("notes"));
  for (const n of body.items) list.append(noteItem(n));
  const handover = $("handover");
  const recent = body.items.filter((n) => Date.now() - new Date(n.at).getTime() < 24 * 3600 * 1000).slice(0, 3);
  append(clear(handover), h("h2", null, "Handover"), recent.map((n) => h("p", null, h("b", null, `${dateTime(n.at)} ${n.author}: `), n.text)));
  handover.hidden = recent.length === 0;
}

function noteItem(n) {
  return h(
    "li",
    null,
    h("div", { class: "meta" }, `${dateTime(n.at)} · ${n.author}`),
    h("p", null, n.text),
    n.message_ids.length || n.references.length
      ? h(
          "div",
          { class: "meta" },
          n.message_ids.map((id) => h("button", { type: "button", class: "tag", onclick: () => openDetail(id, null) }, `message ${id}`)),
          n.references.map((r) => h("span", { class: "tag" }, `case ${r}`)),
        )
      : null,
  );
}

async function addNote(ev) {
  ev.preventDefault();
  const form = ev.target;
  $("note-error").textContent = "";
  try {
    await api("/api/console/notes", { json: { text: form.text.value, message_ids: csv(form.message_ids.value), references: csv(form.references.value) } });
    form.reset();
    await loadNotes();
  } catch (err) {
    $("note-error").textContent = errorText(err);
  }
}

// -- start -------------------------------------------------------------------------------------------

async function start() {
  for (const b of document.querySelectorAll(".tab")) b.addEventListener("click", () => show(b.dataset.view));
  $("filters").addEventListener("input", applyFilters);
  $("filters").addEventListener("submit", (e) => e.preventDefault());
  $("detail-close").addEventListener("click", () => { $("detail").hidden = true; });
  document.addEventListener("keydown", (e) => { if (e.key === "Escape") $("detail").hidden = true; });
  $("note-form").addEventListener("submit", addNote);
  mountSearch($("search"), { onOpen: (item) => openDetail(item.message_id, item.sender) });
  const tick = () => { $("clock").textContent = new Date().toISOString().slice(0, 16).replace("T", " ") + " UTC"; };
  tick();
  setInterval(tick, 10000);
  let rec;
  try {
    rec = await api("/api/console/recipients");
  } catch (err) {
    setConn("down", err.status === 403 ? "operators only" : errorText(err));
    return;
  }
  state.recipients = rec.items;
  const post = $("filters").post;
  for (const r of rec.items) if (r.key.startsWith("post.")) post.append(h("option", { value: r.key }, r.label));
  const crime = $("filters").crime;
  for (const c of rec.crime_types) crime.append(h("option", { value: c }, c));
  connect();
  loadTriage().catch(() => {});
  loadNotes().catch(() => {});
  loadDeadlines().catch(() => {});
  countDead().catch(() => {});
  setInterval(() => loadDeadlines().catch(() => {}), 60000);
  document.body.dataset.ready = "true";
}

start();
