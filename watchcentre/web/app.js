// The operator console. Plain ES module, no build step, no dependency. Every piece of text that comes
// from a message is put in the page as text (dom.js), never as markup; every word of our own comes
// from the catalogs (i18n.js: locales/<lang>/console.json and common.json).
import { h, append, clear, escapedJson, csv } from "./dom.js";
import { loadWorld, drawMap, legend } from "./map.js";
import { mountSearch, relatedPanel, kindName } from "./search.js";
import { loadI18n, t, label, applyI18n, fmtTime, fmtDuration, fmtSpan, lang, serverText } from "./i18n.js";
import { mountHeader, signinUrl } from "./header.js";

const MAX_ROWS = 500; // rows kept in the feed; older ones drop off the bottom
const SEEN_KEEP = 20000; // audit seqs remembered for de-duplication
const BACKFILL_MARGIN = 100; // re-read a little before the last seq: events from other instances may arrive out of order
const CASE_EVENTS = new Set([
  "case_opened", "case_acknowledged", "case_in_progress", "case_answered", "case_closed", "case_rejected",
  "case_withdrawn", "clarification_requested", "clarification_answered", "deadline_extended",
]);

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
  crimeTypes: [],
  backfilled: 0,
  received: 0,
  freshRows: [],
  lastFlush: 0,
  alerts: new Map(), // `${reference} ${alert}` → the alert, until an operator acknowledges it
  watchHits: new Map(), // `${watch_id} ${message id}` → the watch-list hit, until an operator acknowledges it
  cases: [], // the open cases, as the board last read them
  inbox: [],
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
    location.assign(signinUrl());
    throw new HttpError(401, null);
  }
  const body = (r.headers.get("Content-Type") || "").includes("json") ? await r.json() : null;
  if (!r.ok) throw new HttpError(r.status, body);
  return body;
}

// An API refusal as a sentence: the field it names, in the operator's language; the server's own
// words (which quote the data at fault) after it when they add something.
const FIELD_SENTENCES = {
  recipients: "console.error.recipients",
  reason: "console.error.reason",
  revision: "console.error.revision",
  subject: "console.error.subject",
  body: "console.error.body",
  countries: "console.error.countries",
  crime_types: "console.error.crime_types",
  alert: "console.error.alert",
  text: "console.error.text",
  override_reason: "console.error.override_reason",
};

function errorText(err) {
  if (err.status === 403) return t("console.error.forbidden");
  const field = err.field || "";
  const message = serverText(err.message);
  if (field.startsWith("envelope.")) return t("console.error.envelope", { field: field.slice(9), problem: message });
  const key = FIELD_SENTENCES[field];
  if (key) return `${t(key)} (${message})`;
  return t("common.error", { message });
}

// -- words -------------------------------------------------------------------------------------------

function badge(text, kind, title) {
  return h("span", { class: `badge badge-${kind}`, title }, text);
}

function prioBadge(p) {
  const prio = p || "normal";
  return badge(prio === "urgent" ? t("common.priority.urgent") : t("common.priority.normal"), prio === "urgent" ? "urgent" : "normal");
}

const STATUS_KEYS = { routed: "console.status.routed", triage: "console.status.triage", rejected: "console.status.rejected" };
function statusBadge(s) {
  return badge(STATUS_KEYS[s] ? t(STATUS_KEYS[s]) : s, s, s);
}

function caseState(s) {
  const key = `common.state.${s}`;
  const words = t(key);
  return words === key ? s : words;
}

// A list of codes as words, the code on hover.
function labelTags(kind, codes) {
  return (codes || []).map((c) => h("span", { class: "tag", title: c }, label(kind, c)));
}

function recipientName(key) {
  const r = state.recipients.find((x) => x.key === key);
  if (key === "centre.inbox") return t("console.recipient.inbox");
  if (key === "centre.triage") return t("console.recipient.triage");
  return r ? r.label : key;
}

// Short ids in lists (the routing key on hover); the whole key where there is room (the detail).
function recipientTags(keys, whole = false) {
  return (keys || []).map((k) => h("span", { class: "tag", title: whole ? recipientName(k) : k }, whole ? k : k.replace(/^(post|unit)\./, "")));
}

function eventName(type) {
  return label("event", type);
}

const ALERT_KEYS = {
  ack_overdue: "console.alert.ack_overdue",
  overdue: "console.alert.overdue",
  warning: "console.alert.warning",
};

// -- the feed ----------------------------------------------------------------------------------------

// fmtTime's words, with its two formatters made once: a burst formats hundreds of rows a second.
const rowFormats = {};
function rowTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso || "");
  const today = d.toDateString() === new Date().toDateString();
  const key = today ? "time" : "date";
  if (!rowFormats[key]) {
    const options = { hour: "2-digit", minute: "2-digit", timeZoneName: "short" };
    if (!today) Object.assign(options, { day: "numeric", month: "short", year: "numeric" });
    rowFormats[key] = new Intl.DateTimeFormat(lang, options);
  }
  return rowFormats[key].format(d);
}

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
    setConn("down", t("console.conn.retry", { s: (delay / 1000).toFixed(1) }));
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
    setConn("live", state.backfilled ? t("console.conn.backfilled", { n: state.backfilled }) : t("common.live"));
    document.body.dataset.feed = "live";
    document.body.dataset.backfilled = String(state.backfilled);
    loadAlerts().catch(() => {}); // what was raised while the page was away
    loadWatchHits().catch(() => {});
  }
  document.body.dataset.lastSeq = String(state.lastSeq);
}

function onEvent(item, live) {
  const type = item.type;
  const d = item.details || {};
  if (item.message && type !== "watch_hit") {
    // a new message sharing identifiers with earlier ones: its event says how many (the feed's mark)
    queueRow(d.cross_matches ? { ...item.message, cross_matches: d.cross_matches } : item.message, live);
  }
  if (type === "overdue" || type === "deadline_warning") onAlertRaised(item);
  if (type === "watch_hit") onWatchHit(item);
  if (type === "alert_acknowledged" && d.alert === "watch_hit") dropWatchHit(d.watch_id, d.id);
  else if (type === "alert_acknowledged") dropAlert(item.reference, d.alert);
  if (type === "triaged" || (type === "routed" && item.details && item.details.manual)) refreshSoon("triage", loadTriage);
  if (type === "inbox_marked" || ((type === "routed" || type === "triaged") && item.message && (item.message.recipients || []).includes("centre.inbox"))) refreshSoon("inbox", loadInbox);
  if (type === "note_added") loadNotes().catch(() => {});
  if (type === "rejected" || type === "replayed") refreshDeadSoon();
  if (item.reference && (CASE_EVENTS.has(type) || type === "overdue" || type === "deadline_warning")) {
    // on the board at once; elsewhere only its counter is at stake: read the cases less often
    refreshSoon("deadlines", loadDeadlines, state.view === "deadlines" ? 400 : 5000);
    refreshCasePanel(item.reference);
  }
}

const timers = {};
function refreshSoon(name, load, delay = 400) {
  if (timers[name]) return;
  timers[name] = setTimeout(() => { timers[name] = null; load().catch(() => {}); }, delay);
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
  for (const [key, [summary, fresh]] of latest) {
    let m = summary;
    const old = state.rows.get(key);
    if (old) {
      old.tr.remove();
      state.rows.delete(key);
      if (old.data.cross_matches && !m.cross_matches) m = { ...m, cross_matches: old.data.cross_matches }; // re-routed: still matched
    }
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
  feedStats();
}

// Counts what the filters let through, not what is kept.
function feedStats() {
  let shown = 0;
  for (const { tr } of state.rows.values()) if (!tr.hidden) shown++;
  $("feed-stats").textContent = shown === state.rows.size
    ? t("console.feed.shown", { n: shown })
    : t("console.feed.shown_of", { n: shown, total: state.rows.size });
}

function feedRow(m, fresh) {
  const prio = m.priority || "normal";
  const cell = (cls, ...content) => h("span", { role: "cell", class: cls }, ...content);
  const rejected = m.status === "rejected";
  const subject = m.subject || (rejected ? t("console.feed.rejected_input") : "");
  const why = rejected && m.error ? serverText(m.error) : "";
  return h(
    "div",
    {
      class: `row prio-${prio}${fresh ? " fresh" : ""}${rejected ? " rejected" : ""}`,
      role: "row",
      dataset: { id: String(m.id), sender: m.sender || "", messageId: m.message_id || "", status: m.status },
      onclick: () => openDetail(m.message_id, m.sender),
    },
    cell("c-time", h("time", { datetime: m.received_at, title: m.received_at }, rowTime(m.received_at))),
    cell("c-prio", prioBadge(prio)),
    cell("c-sender", m.sender || "?"),
    h(
      "span",
      { role: "cell", class: "subject", dir: "auto", title: why ? `${subject} — ${why}` : subject },
      m.cross_matches
        ? h("span", { class: "xmatch", title: t("console.feed.cross_matches_title", { n: m.cross_matches }) }, t("console.feed.cross_matches", { n: m.cross_matches }))
        : null,
      subject,
      why ? h("span", { class: "why-rejected" }, ` — ${why}`) : null,
    ),
    cell("c-crime", labelTags("crime_type", m.crime_types)),
    cell("c-countries", labelTags("country", m.countries)),
    cell("c-recipients", recipientTags(m.recipients)),
    cell("c-state", statusBadge(m.status), m.manual ? badge(t("console.feed.manual"), "manual", t("console.feed.manual_title")) : null),
  );
}

function filters() {
  const form = $("filters");
  return {
    crime: form.crime.value,
    country: form.country.value,
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
  feedStats();
}

function setConn(kind, text) {
  const el = $("conn");
  el.className = `pill pill-${kind === "live" ? "live" : kind === "down" ? "down" : "wait"}`;
  el.textContent = text;
}

// -- deadline alerts: announced on every view until an operator acknowledges them --------------------

const alertKey = (reference, alert) => `${reference} ${alert}`;

function alertOf(item) {
  const d = item.details || {};
  if (item.type === "deadline_warning") return "warning";
  return d.deadline === "acknowledgement" ? "ack_overdue" : "overdue";
}

function onAlertRaised(item) {
  const alert = alertOf(item);
  const d = item.details || {};
  const key = alertKey(item.reference, alert);
  if (!state.alerts.has(key)) {
    state.alerts.set(key, { reference: item.reference, alert, deadline: d.deadline, due_at: d.due_at, raised_at: item.at, subject: "", recipients: d.recipients || [] });
    renderAlerts();
  }
  loadAlerts().catch(() => {}); // the case's subject, and the store's word on it
}

function dropAlert(reference, alert) {
  if (state.alerts.delete(alertKey(reference, alert))) renderAlerts();
}

async function loadAlerts() {
  const body = await api("/api/console/alerts");
  state.alerts = new Map(body.items.map((a) => [alertKey(a.reference, a.alert), a]));
  renderAlerts();
}

async function acknowledge(a, button, error) {
  button.disabled = true;
  error.textContent = "";
  try {
    await api("/api/console/alerts/ack", { json: { reference: a.reference, alert: a.alert } });
    dropAlert(a.reference, a.alert);
  } catch (err) {
    if (err.status === 409 || err.status === 404) { dropAlert(a.reference, a.alert); return; } // done by another operator, or moot
    button.disabled = false;
    error.textContent = errorText(err);
  }
}

function alertLine(a, where) {
  const error = h("span", { class: "error" });
  const ack = h("button", { type: "button", class: "ack" }, t("console.alert.acknowledge"));
  ack.addEventListener("click", (e) => { e.stopPropagation(); acknowledge(a, ack, error); });
  const what = t(ALERT_KEYS[a.alert] || "console.alert.overdue");
  const due = a.due_at ? t("console.alert.due", { time: fmtTime(a.due_at) }) : "";
  return h(
    "div",
    { class: `alert-line alert-${a.alert}`, dataset: { reference: a.reference, alert: a.alert, where } },
    h("b", { class: "ref" }, a.reference),
    " ",
    h("span", { class: "what" }, what),
    due ? h("span", { class: "due" }, ` · ${due}`) : null,
    a.subject ? h("span", { class: "subj", dir: "auto" }, ` · ${a.subject}`) : null,
    h("span", { class: "actions" },
      where === "case" ? null : h("button", { type: "button", onclick: () => openCase(a.reference) }, t("console.alert.open")),
      ack),
    error,
  );
}

// -- watch-list hits: on the same banner, until an operator acknowledges them (docs/search.md) --------

const hitKey = (watchId, id) => `${watchId} ${id}`;

function onWatchHit(item) {
  const d = item.details || {};
  const key = hitKey(d.watch_id, d.id);
  if (state.watchHits.has(key) || !item.message) return;
  state.watchHits.set(key, { watch_id: d.watch_id, label: d.label, watch_kind: d.watch_kind, id_kind: d.id_kind, value: d.value, at: item.at, message: item.message });
  renderAlerts();
}

function dropWatchHit(watchId, id) {
  if (state.watchHits.delete(hitKey(watchId, id))) renderAlerts();
}

async function loadWatchHits() {
  const body = await api("/api/console/watch-hits");
  state.watchHits = new Map(body.items.map((x) => [hitKey(x.watch_id, x.message.id), x]));
  renderAlerts();
}

async function acknowledgeHit(x, button, error) {
  button.disabled = true;
  error.textContent = "";
  try {
    await api("/api/console/watch-hits/ack", { json: { watch_id: x.watch_id, id: x.message.id } });
    dropWatchHit(x.watch_id, x.message.id);
  } catch (err) {
    if (err.status === 409 || err.status === 404) { dropWatchHit(x.watch_id, x.message.id); return; } // done by another operator, or purged
    button.disabled = false;
    error.textContent = errorText(err);
  }
}

function watchHitLine(x) {
  const m = x.message;
  const error = h("span", { class: "error" });
  const ack = h("button", { type: "button", class: "ack" }, t("console.alert.acknowledge"));
  ack.addEventListener("click", (e) => { e.stopPropagation(); acknowledgeHit(x, ack, error); });
  const what = x.watch_kind === "phrase" ? `« ${x.value} »` : `${kindName(x.id_kind)} ${x.value}`;
  return h(
    "div",
    { class: "alert-line alert-watch_hit", dataset: { watchId: String(x.watch_id), id: String(m.id) } },
    h("b", { class: "label", dir: "auto" }, x.label),
    " ",
    h("span", { class: "what" }, t("console.watch_hit.what", { what })),
    h("span", { class: "sender" }, ` · ${m.sender || ""}`),
    m.subject ? h("span", { class: "subj", dir: "auto" }, ` · ${m.subject}`) : null,
    h("span", { class: "actions" }, h("button", { type: "button", onclick: () => openDetail(m.message_id, m.sender) }, t("console.alert.open")), ack),
    error,
  );
}

function renderAlerts() {
  const items = [...state.alerts.values()].sort((a, b) => String(a.raised_at).localeCompare(String(b.raised_at)));
  const hits = [...state.watchHits.values()].sort((a, b) => String(a.at).localeCompare(String(b.at)));
  const box = clear($("alerts"));
  box.hidden = items.length === 0 && hits.length === 0;
  if (items.length) {
    box.append(h("div", { class: "alerts-head" }, t("console.alert.head", { n: items.length })));
    for (const a of items.slice(0, 5)) box.append(alertLine(a, "banner"));
    if (items.length > 5) box.append(h("button", { type: "button", class: "more", onclick: () => show("triage") }, t("console.alert.more", { n: items.length - 5 })));
  }
  if (hits.length) {
    box.append(h("div", { class: "alerts-head watch-head" }, t("console.watch_hit.head", { n: hits.length })));
    for (const x of hits.slice(0, 5)) box.append(watchHitLine(x));
    if (hits.length > 5) box.append(h("p", { class: "more" }, t("console.watch_hit.more", { n: hits.length - 5 })));
  }
  document.body.dataset.watchHits = String(hits.length);
  const list = clear($("triage-alerts"));
  if (!items.length) list.append(h("p", { class: "empty" }, t("console.alert.none")));
  for (const a of items) list.append(alertLine(a, "triage"));
  document.body.dataset.alerts = String(items.length);
}

// -- views -------------------------------------------------------------------------------------------

function show(view) {
  state.view = view;
  for (const b of document.querySelectorAll(".tab")) {
    b.classList.toggle("active", b.dataset.view === view);
    if (b.dataset.view === view) b.setAttribute("aria-current", "page"); else b.removeAttribute("aria-current");
  }
  for (const s of document.querySelectorAll(".view")) s.hidden = s.id !== `view-${view}`;
  const loads = { triage: loadTriage, inbox: loadInbox, deadlines: loadDeadlines, glance: loadGlance, dead: loadDead, log: loadNotes, compose: loadCompose };
  if (loads[view]) loads[view]().catch((err) => console.warn(err));
}

// -- triage ------------------------------------------------------------------------------------------

async function loadTriage() {
  const body = await api("/api/console/triage");
  $("triage-count").textContent = String(body.items.length);
  $("triage-count").classList.toggle("waiting", body.items.length > 0);
  const tbody = clear($("triage-rows"));
  if (!body.items.length) tbody.append(h("tr", null, h("td", { colspan: 6, class: "empty" }, t("console.triage.empty"))));
  for (const m of body.items) {
    tbody.append(
      h(
        "tr",
        { class: `prio-${m.priority || "normal"}`, dataset: { messageId: m.message_id || "", sender: m.sender || "" }, onclick: () => openDetail(m.message_id, m.sender) },
        h("td", null, fmtTime(m.received_at, { withDate: true })),
        h("td", null, prioBadge(m.priority)),
        h("td", null, m.sender),
        h("td", { class: "subject", dir: "auto", title: m.subject || "" }, m.subject || ""),
        h("td", null, labelTags("crime_type", m.crime_types)),
        h("td", { class: "muted" }, serverText(m.why)),
      ),
    );
  }
}

// -- the centre's inbox ------------------------------------------------------------------------------

async function loadInbox() {
  const body = await api("/api/console/inbox");
  state.inbox = body.items;
  renderInbox();
}

function renderInbox() {
  const onlyOpen = $("inbox-filters").open.checked;
  const items = state.inbox.filter((m) => !onlyOpen || !m.handled);
  const unread = state.inbox.filter((m) => !m.read).length;
  const count = $("inbox-count");
  count.hidden = unread === 0;
  count.textContent = String(unread);
  $("inbox-stats").textContent = t("console.inbox.stats", { n: items.length, unread });
  const list = clear($("inbox-rows"));
  if (!items.length) list.append(h("li", { class: "empty" }, t("console.inbox.empty")));
  for (const m of items) list.append(inboxItem(m));
}

function markControl(m, mark) {
  const set = m[mark];
  const text = mark === "read" ? t("console.inbox.read") : t("console.inbox.handled");
  const box = h("input", { type: "checkbox", checked: Boolean(set) });
  const error = h("span", { class: "error" });
  box.addEventListener("click", (e) => e.stopPropagation());
  box.addEventListener("change", async () => {
    error.textContent = "";
    try {
      const updated = await api("/api/console/inbox/mark", { json: { sender: m.sender, message_id: m.message_id, mark, value: box.checked } });
      Object.assign(m, { read: updated.read, handled: updated.handled });
      renderInbox();
    } catch (err) {
      box.checked = !box.checked;
      error.textContent = errorText(err);
    }
  });
  return h(
    "label",
    { class: `mark mark-${mark}${set ? " on" : ""}`, onclick: (e) => e.stopPropagation() },
    box,
    ` ${text}`,
    set ? h("span", { class: "muted by" }, ` ${t("console.inbox.by", { who: set.actor, time: fmtTime(set.at) })}`) : null,
    error,
  );
}

function inboxItem(m) {
  return h(
    "li",
    { class: `inbox-item prio-${m.priority || "normal"}${m.read ? "" : " unread"}${m.handled ? " handled" : ""}`, dataset: { messageId: m.message_id || "", sender: m.sender || "" }, onclick: () => openDetail(m.message_id, m.sender) },
    h("div", { class: "meta" }, fmtTime(m.received_at), " · ", m.sender || "?", " ", prioBadge(m.priority), m.reference ? h("span", { class: "tag" }, m.reference) : null),
    h("div", { class: "subject", dir: "auto" }, m.subject || ""),
    h("div", { class: "marks" }, markControl(m, "read"), markControl(m, "handled")),
  );
}

// -- message detail, with its case -------------------------------------------------------------------

async function openDetail(messageId, sender) {
  if (!messageId) return;
  const panel = $("detail");
  const body = clear($("detail-body"));
  panel.hidden = false;
  body.append(h("p", { class: "muted" }, t("common.loading")));
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
  panel.dataset.kind = "message";
  const env = m.envelope || {};
  const routing = m.routing || {};
  const caseBox = h("div", { id: "detail-case" });
  append(
    body,
    h("h2", { id: "detail-subject", dir: "auto" }, m.purged_at ? t("console.detail.purged", { time: fmtTime(m.purged_at, { withDate: true }) }) : marked(m.highlights.subject)),
    h(
      "p",
      null,
      prioBadge(m.priority),
      statusBadge(m.status),
      " ",
      h("span", { class: "muted" }, `${m.sender || "?"} · ${m.message_id || ""} · ${t("console.detail.received", { time: fmtTime(m.received_at, { withDate: true }) })}`),
    ),
    m.error ? h("p", { class: "error" }, t("console.detail.rejected", { reason: serverText(m.error) })) : null,
    caseBox,
    h("h3", null, t("console.detail.body")),
    h("div", { class: "body-text", id: "detail-text", dir: "auto" }, marked(m.highlights.body)),
    h("h3", null, t("console.detail.envelope")),
    h(
      "dl",
      { class: "kv" },
      ["kind", "reference", "sent_at", "in_reply_to", "handling"].flatMap((k) => (env[k] ? [h("dt", null, t(`console.env.${k}`)), h("dd", null, k === "sent_at" ? fmtTime(env[k], { withDate: true }) : String(env[k]))] : [])),
      h("dt", null, t("console.env.country_hints")), h("dd", null, labelTags("country", env.countries)),
      h("dt", null, t("console.env.crime_hints")), h("dd", null, labelTags("crime_type", env.crime_types)),
    ),
    h("h3", null, t("console.detail.routing")),
    h(
      "dl",
      { class: "kv" },
      h("dt", null, t("console.col.crime")), h("dd", null, labelTags("crime_type", routing.crime_types || m.crime_types)),
      h("dt", null, t("console.col.countries")), h("dd", null, labelTags("country", routing.countries || m.countries)),
      h("dt", null, t("console.col.recipients")), h("dd", { id: "detail-recipients" }, recipientTags(routing.recipients || m.recipients, true)),
      h("dt", null, t("console.detail.confidence")), h("dd", null, routing.confidence === undefined ? "" : String(routing.confidence)),
    ),
    h("h3", null, t("console.detail.why")),
    h("ul", { class: "plain", id: "detail-why" }, (routing.explanation || []).map((line) => h("li", { title: line }, serverText(line)))),
    m.status !== "rejected" ? routeForm(m) : null,
    h("h3", null, t("console.detail.timeline")),
    timeline(m.timeline),
  );
  if (m.reference) caseSummary(m.reference, caseBox).catch(() => {});
  if (m.status !== "rejected") {
    const related = h("div", { class: "related-panel" });
    append(body, related);
    relatedPanel(related, messageId, sender);
  }
}

function timeline(events) {
  return h(
    "ul",
    { class: "plain timeline" },
    (events || []).map((e) =>
      h("li", null, h("span", { class: "muted" }, `${fmtTime(e.at, { withDate: true })} `), h("b", { title: e.type }, eventName(e.type)), ` · ${e.actor}`, e.details && e.details.reason ? ` — ${e.details.reason}` : ""),
    ),
  );
}

function dueLines(c) {
  const now = Date.now();
  const ackMissed = c.ack_due_at && (c.acknowledged_at ? new Date(c.acknowledged_at) > new Date(c.ack_due_at) : new Date(c.ack_due_at).getTime() < now);
  return [
    h("dt", null, t("console.case.ack_due")),
    h("dd", null, fmtTime(c.ack_due_at, { withDate: true }), " ",
      c.acknowledged_at ? h("span", { class: "muted" }, t("console.case.acknowledged_at", { time: fmtTime(c.acknowledged_at, { withDate: true }) })) : null,
      ackMissed ? badge(c.acknowledged_at ? t("console.case.ack_late") : t("console.case.ack_missed"), "urgent") : null),
    h("dt", null, t("console.case.answer_due")),
    h("dd", null, c.due_at ? fmtTime(c.due_at, { withDate: true }) : t("console.case.suspended"), " ",
      typeof c.time_left_seconds === "number" ? h("span", { class: c.overdue ? "late" : "muted" }, fmtDuration(c.time_left_seconds)) : null),
  ];
}

async function caseSummary(reference, box) {
  const c = await api(`/api/requests/${encodeURIComponent(reference)}`);
  append(
    clear(box),
    h("h3", null, t("console.detail.case")),
    h("dl", { class: "kv" },
      h("dt", null, t("console.case.reference")), h("dd", null, h("button", { type: "button", class: "linklike", onclick: () => openCase(reference) }, reference)),
      h("dt", null, t("console.col.state")), h("dd", { id: "detail-case-state" }, caseState(c.state)),
      dueLines(c)),
  );
}

// -- the case panel (from the board, an alert, a message) --------------------------------------------

async function openCase(reference) {
  const panel = $("detail");
  const body = clear($("detail-body"));
  panel.hidden = false;
  panel.dataset.kind = "case";
  panel.dataset.reference = reference;
  body.append(h("p", { class: "muted" }, t("common.loading")));
  let c;
  try {
    c = await api(`/api/requests/${encodeURIComponent(reference)}`);
  } catch (err) {
    clear(body).append(h("p", { class: "error" }, errorText(err)));
    return;
  }
  const messages = new Map();
  for (const e of c.timeline) if (e.message_id && e.sender && !messages.has(`${e.sender} ${e.message_id}`)) messages.set(`${e.sender} ${e.message_id}`, e);
  const clarify = c.timeline.filter((e) => e.type === "clarification_requested" || e.type === "clarification_answered");
  const pending = [...state.alerts.values()].filter((a) => a.reference === reference);
  append(
    clear(body),
    h("h2", { id: "case-title", dir: "auto" }, `${c.reference} · ${c.subject}`),
    h("p", null, prioBadge(c.priority), badge(caseState(c.state), "normal", c.state), " ",
      h("a", { href: `/track/${encodeURIComponent(c.reference)}`, target: "_blank", rel: "noopener" }, t("console.case.track"))),
    pending.map((a) => alertLine(a, "case")),
    h("dl", { class: "kv", id: "case-deadlines" },
      h("dt", null, t("console.case.requester")), h("dd", null, c.sender),
      h("dt", null, t("console.col.recipients")), h("dd", null, recipientTags(c.recipients, true)),
      h("dt", null, t("console.col.countries")), h("dd", null, labelTags("country", c.countries)),
      h("dt", null, t("console.col.crime")), h("dd", null, labelTags("crime_type", c.crime_types)),
      h("dt", null, t("console.case.opened")), h("dd", null, fmtTime(c.opened_at, { withDate: true })),
      dueLines(c),
      c.expected_at ? [h("dt", null, t("console.case.expected")), h("dd", null, fmtTime(c.expected_at, { withDate: true }), c.extension_reason ? ` — ${c.extension_reason}` : "")] : null),
    h("h3", null, t("console.case.clarification")),
    clarify.length
      ? h("ul", { class: "plain" }, clarify.map((e) => h("li", null, h("b", null, eventName(e.type)), ` · ${fmtTime(e.at, { withDate: true })} · ${e.actor}`, e.details && (e.details.reason || e.details.text) ? ` — ${e.details.reason || e.details.text}` : "")))
      : h("p", { class: "muted" }, c.clarification_pending ? t("console.case.clarification_pending") : t("console.case.no_clarification")),
    h("h3", null, t("console.case.messages")),
    h("ul", { class: "plain", id: "case-messages" }, [...messages.values()].map((e) =>
      h("li", null, h("button", { type: "button", class: "linklike", onclick: () => openDetail(e.message_id, e.sender) }, `${e.sender} · ${e.message_id}`), h("span", { class: "muted" }, ` ${eventName(e.type)}`)))),
    h("h3", null, t("console.detail.timeline")),
    timeline(c.timeline),
  );
}

function refreshCasePanel(reference) {
  const panel = $("detail");
  if (!panel.hidden && panel.dataset.kind === "case" && panel.dataset.reference === reference) refreshSoon("case", () => openCase(reference));
}

function marked(segments) {
  return (segments || []).map((s) =>
    s.mark ? h("mark", { class: s.mark.negated_by ? "negated" : null, title: `${s.mark.target} (${s.mark.rule})${s.mark.negated_by ? ", ↯ " + s.mark.negated_by : ""}` }, s.text) : s.text,
  );
}

// -- manual routing ----------------------------------------------------------------------------------

function routeForm(m) {
  const revision = (m.manual || []).length;
  const routing = m.routing || {};
  const current = new Set(routing.recipients || []);
  const filter = h("input", { type: "search", placeholder: t("console.route.filter"), "aria-label": t("console.route.filter") });
  // the current recipients first, so that they are in view without scrolling
  const ordered = [...state.recipients].sort((a, b) => Number(current.has(b.key)) - Number(current.has(a.key)));
  const boxes = ordered.map((r) =>
    h("label", { dataset: { key: r.key }, class: current.has(r.key) ? "current" : null },
      h("input", { type: "checkbox", name: "recipient", value: r.key, checked: m.status !== "triage" && current.has(r.key) }),
      h("span", null, r.key),
      h("span", { class: "muted" }, recipientName(r.key)),
      current.has(r.key) ? h("span", { class: "badge badge-normal" }, t("console.route.current")) : null),
  );
  filter.addEventListener("input", () => {
    const q = filter.value.toLowerCase();
    for (const b of boxes) b.hidden = q && !b.textContent.toLowerCase().includes(q);
  });
  // the classifier's answer, correctable: sent only when changed (older servers do not take them)
  const crimeStart = (routing.crime_types || m.crime_types || []).join(", ");
  const countryStart = (routing.countries || m.countries || []).join(", ");
  const crimes = h("input", { name: "crime_types", value: crimeStart, list: "crime-codes", "aria-describedby": "route-codes-help" });
  const countries = h("input", { name: "countries", value: countryStart, "aria-describedby": "route-codes-help" });
  const reason = h("textarea", { name: "reason", rows: 2, maxlength: 1000, placeholder: t("console.route.reason_placeholder") });
  const error = h("p", { class: "error", role: "alert" });
  const current0 = [...current].map((k) => h("span", { class: "tag", title: k }, recipientName(k)));
  const form = h(
    "form",
    { class: "route-form", id: "route-form", novalidate: true },
    h("h3", null, m.status === "triage" ? t("console.route.title_route") : t("console.route.title_reroute")),
    current.size ? h("p", { class: "current-recipients" }, t("console.route.now"), " ", current0) : null,
    filter,
    h("div", { class: "recipients" }, boxes),
    h("div", { class: "corrections" },
      h("label", null, t("console.route.crime_types"), crimes),
      h("label", null, t("console.route.countries"), countries),
      h("p", { class: "muted", id: "route-codes-help" }, t("console.route.codes_help"))),
    h("label", null, t("console.route.reason"), reason),
    h("div", { class: "row" }, h("button", { type: "submit", class: "primary" }, m.status === "triage" ? t("console.route.route") : t("console.route.reroute")), h("span", { class: "muted" }, revision ? t("console.route.revisions", { n: revision }) : "")),
    error,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const chosen = [...form.querySelectorAll("input[name=recipient]:checked")].map((i) => i.value);
    error.textContent = "";
    const missing = [];
    if (!chosen.length) missing.push(t("console.error.recipients"));
    if (!reason.value.trim()) missing.push(t("console.error.reason"));
    if (missing.length) { error.textContent = missing.join(" "); return; }
    const ask = { sender: m.sender, message_id: m.message_id, recipients: chosen, reason: reason.value, revision };
    if (crimes.value !== crimeStart) ask.crime_types = csv(crimes.value);
    if (countries.value !== countryStart) ask.countries = csv(countries.value).map((c) => c.toUpperCase());
    try {
      await api("/api/console/route", { json: ask });
      await openDetail(m.message_id, m.sender);
      refreshSoon("triage", loadTriage);
    } catch (err) {
      error.textContent = errorText(err);
    }
  });
  return form;
}

// -- deadlines ---------------------------------------------------------------------------------------

// Every open request: the server pages newest first; follow `next`.
async function openCases() {
  const items = [];
  let next = null;
  for (let page = 0; page < 40; page++) {
    const body = await api(`/api/cases?open=true${next ? `&before=${encodeURIComponent(next)}` : ""}`);
    items.push(...(body.items || []));
    next = body.next;
    if (!next) break;
  }
  return items;
}

// The deadline that comes first: the acknowledgement while none was given, else the answer.
function firstDeadline(c) {
  const now = Date.now();
  const answerLeft = typeof c.time_left_seconds === "number" ? c.time_left_seconds : null;
  if (!c.acknowledged_at && c.ack_due_at) {
    const ackLeft = (new Date(c.ack_due_at).getTime() - now) / 1000;
    if (answerLeft === null || ackLeft <= answerLeft) return { which: "ack", left: ackLeft, due: c.ack_due_at, late: ackLeft < 0 };
  }
  return { which: "answer", left: answerLeft, due: c.due_at, late: Boolean(c.overdue) };
}

async function loadDeadlines() {
  const box = $("deadlines");
  try {
    state.cases = await openCases();
  } catch (err) {
    clear(box).append(h("p", { class: "empty", id: "lifecycle-missing" }, err.status === 404 ? t("console.board.missing") : errorText(err)));
    setOverdue(0);
    return null;
  }
  renderBoard();
  return state.cases;
}

function boardFilters() {
  const form = $("board-filters");
  return { urgent: form.urgent.checked, overdue: form.overdue.checked, post: form.post.value };
}

function renderBoard() {
  const box = $("deadlines");
  const rows = state.cases.map((c) => ({ c, first: firstDeadline(c) }));
  rows.sort((a, b) => (a.first.late === b.first.late ? (a.first.left ?? Infinity) - (b.first.left ?? Infinity) : a.first.late ? -1 : 1));
  setOverdue(rows.filter((r) => r.first.late).length);
  if (state.view !== "deadlines" && $("deadlines").childElementCount) {
    clear($("deadlines")); // drawn again when shown; meanwhile only the counter moves
  }
  if (state.view !== "deadlines") return;
  const f = boardFilters();
  const shown = rows.filter(({ c, first }) =>
    (!f.urgent || c.priority === "urgent") && (!f.overdue || first.late) && (!f.post || (c.recipients || []).includes(f.post)));
  $("board-stats").textContent = shown.length === rows.length
    ? t("console.board.shown", { n: shown.length })
    : t("console.board.shown_of", { n: shown.length, total: rows.length });
  clear(box);
  if (!rows.length) box.append(h("p", { class: "empty" }, t("console.board.empty")));
  else if (!shown.length) box.append(h("p", { class: "empty" }, t("console.board.none_match")));
  box.append(h("ol", { class: "deadline-list" }, shown.map(({ c, first }) => boardRow(c, first))));
}

function boardRow(c, first) {
  const soon = !first.late && typeof first.left === "number" && first.left < 3600;
  const which = first.which === "ack" ? t("console.board.ack") : t("console.board.answer");
  const left = typeof first.left === "number"
    ? (first.late ? t("console.board.late", { which, time: fmtSpan(first.left) }) : t("console.board.left", { which, time: fmtSpan(first.left) }))
    : t("console.case.suspended");
  const ackMissed = !c.acknowledged_at && c.ack_due_at && new Date(c.ack_due_at).getTime() < Date.now();
  const li = h(
    "li",
    { class: `deadline${first.late ? " overdue" : ""}`, dataset: { reference: c.reference, which: first.which }, tabindex: 0, role: "button", "aria-label": `${c.reference} · ${left}` },
    h("div", { class: `left${soon ? " soon" : ""}` }, left),
    h("div", { class: "what" },
      h("b", null, c.reference), " ", prioBadge(c.priority), " ", badge(caseState(c.state), c.state === "triage" ? "triage" : "normal", c.state),
      ackMissed ? badge(t("console.case.ack_missed"), "urgent") : null,
      h("div", { class: "subject", dir: "auto" }, c.subject || ""),
      h("div", { class: "muted" }, `${c.sender} → `, recipientTags(c.recipients), " ", labelTags("country", c.countries))),
    h("div", { class: "muted dues" },
      t("console.board.ack_due", { time: c.acknowledged_at ? t("console.board.done", { time: fmtTime(c.acknowledged_at) }) : fmtTime(c.ack_due_at) }),
      h("br"),
      t("console.board.answer_due", { time: c.due_at ? fmtTime(c.due_at) : t("console.case.suspended") })),
  );
  li.addEventListener("click", () => openCase(c.reference));
  li.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); openCase(c.reference); } });
  return li;
}

function setOverdue(n) {
  const banner = $("overdue-banner");
  banner.hidden = n === 0;
  clear(banner);
  if (n) banner.append(t("console.board.banner", { n }), " ", h("button", { type: "button", onclick: () => show("deadlines") }, t("console.board.see")));
  const count = $("overdue-count");
  count.hidden = n === 0;
  count.textContent = String(n);
}

// -- writing a message from the centre ---------------------------------------------------------------

let composeBuilt = false;
async function loadCompose() {
  if (composeBuilt) return;
  composeBuilt = true;
  const box = $("compose");
  const error = h("p", { class: "error", role: "alert", id: "compose-error" });
  const done = h("p", { class: "okmsg", role: "status", id: "compose-done" });
  const crimeOptions = state.crimeTypes.map((c) => h("option", { value: c, title: c }, label("crime_type", c)));
  const boxes = state.recipients.filter((r) => r.key !== "centre.inbox").map((r) =>
    h("label", { dataset: { key: r.key } }, h("input", { type: "checkbox", name: "recipient", value: r.key }), h("span", null, r.key), h("span", { class: "muted" }, r.label)));
  const filter = h("input", { type: "search", placeholder: t("console.route.filter"), "aria-label": t("console.route.filter") });
  filter.addEventListener("input", () => {
    const q = filter.value.toLowerCase();
    for (const b of boxes) b.hidden = q && !b.textContent.toLowerCase().includes(q);
  });
  const form = h(
    "form",
    { id: "compose-form", class: "compose-form", autocomplete: "off", novalidate: true },
    h("h2", { class: "section" }, t("console.compose.title")),
    h("p", { class: "muted" }, t("console.compose.help")),
    h("div", { class: "row" },
      h("label", null, t("console.compose.kind"), " ", h("select", { name: "kind" },
        h("option", { value: "information" }, t("console.compose.kind_information")),
        h("option", { value: "alert" }, t("console.compose.kind_alert")),
        h("option", { value: "request" }, t("console.compose.kind_request")))),
      h("label", null, t("console.filter.priority"), " ", h("select", { name: "priority" },
        h("option", { value: "normal" }, t("common.priority.normal")),
        h("option", { value: "urgent" }, t("common.priority.urgent"))))),
    h("label", { class: "block" }, t("console.col.subject"), h("input", { name: "subject", maxlength: 1000 })),
    h("label", { class: "block" }, t("console.detail.body"), h("textarea", { name: "body", rows: 6 })),
    h("div", { class: "row" },
      h("label", null, t("console.compose.countries"), " ", h("input", { name: "countries", placeholder: "ES, MA" })),
      h("label", null, t("console.col.crime"), " ", h("select", { name: "crime_types", multiple: true, size: 4 }, crimeOptions))),
    h("fieldset", null, h("legend", null, t("console.compose.recipients")), filter, h("div", { class: "recipients" }, boxes)),
    h("div", { class: "row" }, h("button", { type: "submit", class: "primary" }, t("common.send"))),
    error,
    done,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.textContent = "";
    done.textContent = "";
    const missing = [];
    if (!form.subject.value.trim()) missing.push(t("console.error.subject"));
    if (!form.body.value.trim()) missing.push(t("console.error.body"));
    if (missing.length) { error.textContent = missing.join(" "); return; }
    const ask = {
      kind: form.kind.value,
      priority: form.priority.value,
      subject: form.subject.value,
      body: form.body.value,
      countries: csv(form.countries.value).map((c) => c.toUpperCase()),
      crime_types: [...form.crime_types.selectedOptions].map((o) => o.value),
      recipients: [...form.querySelectorAll("input[name=recipient]:checked")].map((i) => i.value),
    };
    try {
      const r = await api("/api/console/compose", { json: ask });
      const m = r.message;
      done.textContent = t("console.compose.sent", { id: m.message_id, recipients: (m.recipients || []).map(recipientName).join(", ") || "—" });
      form.reset();
      openDetail(m.message_id, m.sender);
    } catch (err) {
      error.textContent = errorText(err);
    }
  });
  clear(box).append(form);
}

// -- at a glance -------------------------------------------------------------------------------------

function bars(counts, limit, kind) {
  const entries = Object.entries(counts).sort((a, b) => b[1] - a[1]).slice(0, limit);
  const max = Math.max(1, ...entries.map((e) => e[1]));
  const list = h("ul", { class: "bars" });
  for (const [k, n] of entries) {
    const bar = h("div", { class: "bar" });
    bar.style.width = `${(100 * n) / max}%`;
    list.append(h("li", null, h("span", { title: k }, label(kind, k)), bar, h("span", { class: "n" }, String(n))));
  }
  if (!entries.length) list.append(h("li", { class: "muted" }, t("console.glance.none")));
  return list;
}

// Which rules operators most often had to correct (GET /api/console/corrections); its words in one place.

function correctionsCard(c) {
  const title = h("h2", null, t("console.glance.corrections"));
  if (!c || !c.rules.length) return h("div", { class: "card" }, title, h("p", { class: "muted" }, t("console.glance.corrections_none")));
  const counts = {};
  for (const r of c.rules) counts[r.rule] = r.count;
  return h("div", { class: "card" }, title, bars(counts, 10), h("p", { class: "muted" }, t("console.glance.corrections_of", { n: c.corrected })));
}

async function loadGlance() {
  const box = $("glance");
  const [g, cases, corrections] = await Promise.all([
    api("/api/console/glance"),
    openCases().then((items) => ({ items })).catch(() => null),
    api("/api/console/corrections").catch(() => null),
  ]);
  let counts = g.countries, title = t("console.glance.by_country_hours", { hours: g.hours });
  if (cases && cases.items) {
    counts = {};
    for (const c of cases.items) for (const cc of c.countries || []) counts[cc] = (counts[cc] || 0) + 1;
    title = t("console.glance.open_by_country");
  }
  const mapCard = h("div", { class: "card map-card" }, h("h2", null, title), h("p", { class: "muted" }, t("common.loading")));
  clear(box).append(
    h(
      "div",
      { class: "cards" },
      h("div", { class: "card" }, h("h2", null, t("console.glance.messages", { hours: g.hours })), h("div", { class: "big" }, String(g.total)), h("p", { class: "muted" }, t("console.glance.triage", { n: g.triage }))),
      h("div", { class: "card" }, h("h2", null, t("console.glance.by_crime")), bars(g.crime_types, 15, "crime_type")),
      h("div", { class: "card" }, h("h2", null, t("console.glance.by_country")), bars(g.countries, 15, "country")),
      correctionsCard(corrections),
      mapCard,
    ),
  );
  const world = await loadWorld();
  const max = Math.max(0, ...Object.values(counts));
  clear(mapCard).append(
    h("h2", null, title),
    drawMap(world, counts, title),
    h("div", { class: "legend" }, legend(max).map((l) => { const i = h("i"); i.style.background = l.colour; return h("span", null, i, ` ${l.from}+`); }), h("span", null, t("console.glance.map_credit"))),
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
  box.append(h("p", { id: "dead-refresh", class: "banner", hidden: true }, t("console.dead.changed"), " ", h("button", { type: "button", onclick: () => loadDead() }, t("console.dead.refresh"))));
  if (!body.items.length) box.append(h("p", { class: "empty" }, t("console.dead.empty")));
  else box.append(h("p", { class: "muted" }, t("console.dead.help", { n: body.items.length })));
  box.append(h("ul", { class: "dead-list" }, body.items.map(deadItem)));
}

function deadItem(d) {
  const text = h("textarea", { rows: 12, spellcheck: "false", "aria-label": t("console.dead.envelope") });
  const reason = h("input", { name: "reason", size: 50, maxlength: 1000, placeholder: t("console.dead.reason_placeholder"), "aria-label": t("console.dead.reason") });
  const error = h("p", { class: "error", role: "alert" });
  const send = async (corrected) => {
    error.textContent = "";
    if (!reason.value.trim()) { error.textContent = t("console.error.reason"); return; }
    let envelope;
    if (corrected) {
      try { envelope = JSON.parse(text.value); } catch { error.textContent = t("console.dead.not_json"); return; }
    }
    try {
      await api(`/api/console/dead/${encodeURIComponent(d.id)}/reinject`, { json: envelope ? { reason: reason.value, envelope } : { reason: reason.value } });
      item.replaceWith(h("li", { class: "okmsg" }, t("console.dead.done", { id: d.message_id || d.id })));
    } catch (err) {
      error.textContent = errorText(err);
    }
  };
  const editor = h("div", { class: "dead-editor", hidden: true },
    text,
    h("div", { class: "row" }, reason,
      h("button", { type: "button", class: "primary", onclick: () => send(true) }, t("console.dead.corrected")),
      h("button", { type: "button", onclick: () => send(false) }, t("console.dead.as_is"))),
    error);
  const toggle = h(
    "button",
    { type: "button", class: "dead-summary", "aria-expanded": "false" },
    h("span", { class: "c-time" }, d.arrived_at ? fmtTime(d.arrived_at) : t("console.dead.arrived_unknown")),
    h("span", { class: "c-sender" }, d.sender || "?"),
    h("span", { class: "c-id" }, d.message_id || t("console.dead.no_id")),
    h("span", { class: "reason" }, d.reason ? serverText(d.reason) : t("console.dead.no_reason")),
    h("span", { class: "muted c-size" }, t("console.dead.size", { n: d.size })),
  );
  toggle.addEventListener("click", () => {
    const open = editor.hidden;
    editor.hidden = !open;
    toggle.setAttribute("aria-expanded", String(open));
    if (open && !text.value) text.value = pretty(d.text);
  });
  const item = h("li", { class: "dead-item", dataset: { id: d.id } }, toggle, editor);
  return item;
}

// -- shift log ---------------------------------------------------------------------------------------

async function loadNotes() {
  const body = await api("/api/console/notes?limit=50");
  const list = clear($("notes"));
  for (const n of body.items) list.append(noteItem(n));
  const handover = $("handover");
  const recent = body.items.filter((n) => Date.now() - new Date(n.at).getTime() < 24 * 3600 * 1000).slice(0, 3);
  append(clear(handover), h("h2", null, t("console.log.handover")), recent.map((n) => h("p", null, h("b", null, `${fmtTime(n.at)} ${n.author}: `), n.text)));
  handover.hidden = recent.length === 0;
}

function noteItem(n) {
  return h(
    "li",
    null,
    h("div", { class: "meta" }, `${fmtTime(n.at, { withDate: true })} · ${n.author}`),
    h("p", null, n.text),
    n.message_ids.length || n.references.length
      ? h(
          "div",
          { class: "meta" },
          n.message_ids.map((id) => h("button", { type: "button", class: "tag", onclick: () => openDetail(id, null) }, t("console.log.message", { id }))),
          n.references.map((r) => h("button", { type: "button", class: "tag", onclick: () => openCase(r) }, t("console.log.case", { reference: r }))),
        )
      : null,
  );
}

async function addNote(ev) {
  ev.preventDefault();
  const form = ev.target;
  $("note-error").textContent = "";
  if (!form.text.value.trim()) { $("note-error").textContent = t("console.error.text"); return; }
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
  await loadI18n(["common", "console"]);
  document.title = t("console.title");
  applyI18n(document);
  setConn("wait", t("common.connecting"));
  let me;
  try {
    me = await mountHeader($("header-slot"));
  } catch (err) {
    setConn("down", errorText(err));
    return;
  }
  for (const b of document.querySelectorAll(".tab")) b.addEventListener("click", () => show(b.dataset.view));
  $("filters").addEventListener("input", applyFilters);
  $("filters").addEventListener("submit", (e) => e.preventDefault());
  $("board-filters").addEventListener("input", renderBoard);
  $("board-filters").addEventListener("submit", (e) => e.preventDefault());
  $("inbox-filters").addEventListener("input", renderInbox);
  $("inbox-filters").addEventListener("submit", (e) => e.preventDefault());
  $("detail-close").addEventListener("click", () => { $("detail").hidden = true; });
  document.addEventListener("keydown", (e) => { if (e.key === "Escape") $("detail").hidden = true; });
  $("note-form").addEventListener("submit", addNote);
  mountSearch($("search"), { onOpen: (item) => openDetail(item.message_id, item.sender) });
  const tick = () => { $("clock").textContent = fmtTime(new Date().toISOString()); };
  tick();
  setInterval(tick, 10000);
  if (me.kind !== "operator") {
    setConn("down", t("console.operators_only"));
    return;
  }
  let rec;
  try {
    rec = await api("/api/console/recipients");
  } catch (err) {
    setConn("down", errorText(err));
    return;
  }
  state.recipients = rec.items;
  state.crimeTypes = rec.crime_types;
  for (const sel of [$("filters").post, $("board-filters").post]) {
    for (const r of rec.items) if (r.key.startsWith("post.")) sel.append(h("option", { value: r.key }, r.label));
  }
  const crime = $("filters").crime;
  for (const c of [...rec.crime_types].sort((a, b) => label("crime_type", a).localeCompare(label("crime_type", b)))) crime.append(h("option", { value: c, title: c }, label("crime_type", c)));
  const countries = [...new Set(state.recipients.flatMap((r) => (r.label.match(/\(([A-Z, ]+)\)$/) || ["", ""])[1].split(", ").filter(Boolean)))];
  const country = $("filters").country;
  for (const c of countries.sort((a, b) => label("country", a).localeCompare(label("country", b)))) country.append(h("option", { value: c, title: c }, label("country", c)));
  document.body.append(h("datalist", { id: "crime-codes" }, rec.crime_types.map((c) => h("option", { value: c }, label("crime_type", c)))));
  connect();
  loadAlerts().catch(() => {});
  loadTriage().catch(() => {});
  loadInbox().catch(() => {});
  loadNotes().catch(() => {});
  loadDeadlines().catch(() => {});
  countDead().catch(() => {});
  // the times left move on by themselves; changes come from the live feed (onEvent)
  setInterval(() => { if (state.cases.length) renderBoard(); }, 30000);
  document.body.dataset.ready = "true";
}

start();
