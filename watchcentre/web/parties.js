// What the parties' screens share (post inbox, unit requests, tracking page): the API with its errors
// in words, the live feed with reconnection and back-fill, and the words for a case's facts.
import { h, visible } from "./dom.js";
import { t, label, fmtTime, fmtDuration, serverText } from "./i18n.js";
import { signinUrl } from "./header.js";

export const $ = (id) => document.getElementById(id);

export class HttpError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `HTTP ${status}`);
    this.status = status;
    this.field = e.field || null;
    this.currentState = e.current_state || null;
  }
}

export async function api(path, options = {}) {
  const init = { credentials: "same-origin", headers: { Accept: "application/json" }, method: options.method || "GET" };
  if (options.json !== undefined) {
    init.method = options.method || "POST";
    init.body = JSON.stringify(options.json);
    init.headers["Content-Type"] = "application/json";
  }
  const r = await fetch(path, init);
  if (r.status === 401) {
    location.assign(signinUrl());
    throw new HttpError(401, null);
  }
  const body = await r.json().catch(() => null);
  if (!r.ok) throw new HttpError(r.status, body);
  return body;
}

// An error in words: the field at fault and the server's reason (which names it).
export function errorWords(err) {
  return visible(errorText(err));
}

function errorText(err) {
  if (err instanceof HttpError && err.status === 409 && err.currentState) {
    return t("party.error.state", { state: t(`common.state.${err.currentState}`) });
  }
  if (err instanceof HttpError && err.field) return t("party.error.field", { field: err.field, message: serverText(err.message) });
  return t("common.error", { message: serverText(err.message || String(err)) });
}

// The live feed (GET /api/feed): `onChange(items)` for each batch of events this party may see;
// `onState("live" | "down")`. Reconnects with ?after=<last seq> so that nothing is missed.
export function followFeed(onChange, onState) {
  let cursor = null;
  let retry = 0;
  let dropped = false;
  const seen = new Set();
  const connect = () => {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const after = cursor === null ? "" : `?after=${cursor}`;
    const ws = new WebSocket(`${scheme}//${location.host}/api/feed${after}`);
    ws.addEventListener("message", (m) => {
      let frame;
      try {
        frame = JSON.parse(m.data);
      } catch (_) {
        return;
      }
      if (typeof frame.cursor === "number") cursor = Math.max(cursor || 0, frame.cursor);
      if (frame.type === "live") {
        if (dropped) onChange([]); // back after a drop: read the lists again
        dropped = false;
        retry = 0;
        onState("live");
      }
      const items = (frame.items || []).filter((i) => !(typeof i.seq === "number" && seen.has(i.seq)));
      for (const i of items) {
        if (typeof i.seq === "number") {
          seen.add(i.seq);
          cursor = Math.max(cursor || 0, i.seq);
        }
      }
      if (items.length) onChange(items);
    });
    ws.addEventListener("close", () => {
      dropped = true;
      onState("down");
      retry = Math.min(retry + 1, 6);
      setTimeout(connect, 500 * 2 ** retry);
    });
  };
  connect();
}

// Coalesces refreshes: one load at a time, one more if asked meanwhile.
export function refresher(load) {
  let running = null;
  let again = false;
  const run = async () => {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        await load();
      } while (again);
    })().finally(() => {
      running = null;
    });
    return running;
  };
  return run;
}

export function connState(el) {
  return (state) => {
    el.dataset.state = state;
    el.className = `pill ${state === "live" ? "pill-live" : "pill-down"}`;
    el.textContent = state === "live" ? t("common.live") : t("common.offline");
    document.body.dataset.feed = state;
  };
}

// The next thing due on an open case: the acknowledgement while not acknowledged, if it comes
// before the answer; else the answer. { kind: "ack" | "answer", at, seconds } or null.
export function nextDue(c, now = Date.now()) {
  const ack = !c.acknowledged_at && c.ack_due_at ? Date.parse(c.ack_due_at) : null;
  const answer = c.due_at && !c.answered_at ? Date.parse(c.due_at) : null;
  if (ack !== null && (answer === null || ack <= answer)) return { kind: "ack", at: c.ack_due_at, seconds: (ack - now) / 1000 };
  if (answer !== null) return { kind: "answer", at: c.due_at, seconds: (answer - now) / 1000 };
  return null;
}

export function byUrgency(a, b) {
  const da = nextDue(a), db = nextDue(b);
  const ka = da ? Date.parse(da.at) : Infinity, kb = db ? Date.parse(db.at) : Infinity;
  if (ka !== kb) return ka - kb;
  return (a.priority === "urgent" ? 0 : 1) - (b.priority === "urgent" ? 0 : 1);
}

// "Acknowledge by 14:05 CET (in 2 h 05 min)", red when late.
export function dueLine(kindKey, iso, now = Date.now()) {
  if (!iso) return null;
  const seconds = (Date.parse(iso) - now) / 1000;
  return h(
    "span",
    { class: seconds < 0 ? "due late" : seconds < 3600 ? "due soon" : "due" },
    t(kindKey, { time: fmtTime(iso), left: fmtDuration(seconds) }),
  );
}

export function stateWords(state) {
  return t(`common.state.${state}`);
}

export function codes(kind, list) {
  return (list || []).map((code) => h("span", { class: "tag", title: code }, label(kind, code)));
}

export function timeEl(iso, withDate = false) {
  return h("time", { datetime: iso, title: iso }, fmtTime(iso, { withDate }));
}

// A case reference in a path: each segment encoded (a reference may hold "/").
export function refPath(reference) {
  return String(reference).split("/").map(encodeURIComponent).join("/");
}

// The "send to France" form (post.html, unit.html), built here once: `kinds` in the order offered
// (the first is preselected). POST /api/send, the sender being the session's.
const SEND_KINDS = { information: "party.send.kind.information", request: "party.send.kind.request" };
const PRIORITIES = { normal: "common.priority.normal", urgent: "common.priority.urgent" };

export function wireSendForm(kinds, onSent = () => {}) {
  const form = $("send-form");
  const field = (key, control, wide = false) => h("label", wide ? { class: "wide" } : null, h("span", null, t(key)), control);
  const choice = (name, words, values) =>
    h("select", { name }, values.map((value) => h("option", { value }, t(words[value]))));
  form.replaceChildren(
    h(
      "div",
      { class: "send-row" },
      field("party.send.kind", choice("kind", SEND_KINDS, kinds)),
      field("party.send.priority", choice("priority", PRIORITIES, Object.keys(PRIORITIES))),
      field(
        "party.send.reference",
        h("input", { name: "reference", maxlength: 80, placeholder: t("party.send.reference.placeholder") }),
      ),
    ),
    field("party.send.subject", h("input", { name: "subject", maxlength: 1000, required: true }), true),
    field("party.send.body", h("textarea", { name: "body", rows: 5, maxlength: 100000, required: true }), true),
    field(
      "party.send.countries",
      h("input", { name: "countries", maxlength: 200, placeholder: t("party.send.countries.placeholder") }),
      true,
    ),
    h(
      "div",
      { class: "send-row" },
      h("button", { type: "submit", class: "primary" }, t("common.send")),
      h("span", { id: "send-result", class: "muted", role: "status", "aria-live": "polite" }),
    ),
    h("p", { id: "send-error", class: "error", role: "alert" }),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const data = new FormData(form);
    const json = {
      kind: data.get("kind"),
      priority: data.get("priority"),
      subject: String(data.get("subject") || ""),
      body: String(data.get("body") || ""),
    };
    const countries = String(data.get("countries") || "").split(/[\s,;]+/).filter(Boolean);
    if (countries.length) json.countries = countries;
    const reference = String(data.get("reference") || "").trim();
    if (reference) json.reference = reference;
    $("send-error").textContent = "";
    $("send-result").textContent = "";
    try {
      const m = (await api("/api/send", { json })).message;
      $("send-result").textContent =
        m.status === "triage" ? t("party.send.triage") : t("party.send.done", { reference: m.reference || m.message_id });
      form.reset();
      onSent(m);
    } catch (err) {
      $("send-error").textContent = errorWords(err);
    }
  });
}
