// The tracking page of one request (/track/{reference}): its state, due times and time left in the
// reader's language and local time, the clarification asked and its answer, the answer's text, the
// close reason, and the timeline in order. Live: refreshed when the feed says the case changed.
import { h, clear, visible } from "./dom.js";
import { loadI18n, applyI18n, t, label, fmtTime, fmtDuration } from "./i18n.js";
import { mountHeader, whoAmI } from "./header.js";
import { $, api, errorWords, followFeed, refresher, connState, stateWords, codes, refPath, timeEl } from "./parties.js";

const reference = decodeURIComponent(location.pathname.replace(/^\/track\//, ""));
let me = null;
let detail = null;
const answers = new Map(); // message_id → text of a reply that answered the case (over AMQP)

function last(type) {
  const found = (detail.timeline || []).filter((e) => e.type === type);
  return found.length ? found[found.length - 1] : null;
}

function fact(key, ...value) {
  return [h("dt", {}, t(key)), h("dd", { dir: "auto" }, ...value)];
}

function timeOr(iso, otherKey) {
  return iso ? timeEl(iso, true) : t(otherKey);
}

function renderFacts(d) {
  const rows = [
    fact("party.track.from", d.sender),
    fact("party.track.to", d.recipients.join(", ")),
    fact("party.track.countries", ...codes("country", d.countries)),
    fact("party.track.crime_types", ...codes("crime_type", d.crime_types)),
    fact("party.track.opened", timeEl(d.opened_at, true)),
    fact("party.track.ack_due", timeEl(d.ack_due_at, true)),
    fact("party.track.acknowledged", timeOr(d.acknowledged_at, "common.not_yet")),
    fact("party.track.answer_due", d.due_at ? timeEl(d.due_at, true) : t(d.answered_at ? "common.none" : "party.track.suspended")),
  ];
  if (d.time_left_seconds !== null && d.time_left_seconds !== undefined) {
    rows.push(
      fact(
        "party.track.time_left",
        h("span", { class: d.time_left_seconds < 0 ? "due late" : "due" }, fmtDuration(d.time_left_seconds)),
      ),
    );
  }
  rows.push(fact("party.track.answered", timeOr(d.answered_at, "common.not_yet")));
  if (d.expected_at) {
    rows.push(fact("party.track.expected", timeEl(d.expected_at, true), " — ", h("q", { dir: "auto" }, d.extension_reason || "")));
  }
  clear($("facts")).append(...rows.flat());
}

function said(event, key, text = event.details && event.details.reason) {
  return h(
    "div",
    { class: "said" },
    h("p", { class: "muted" }, t(key, { time: fmtTime(event.at, { withDate: true }), who: event.actor })),
    text ? h("blockquote", { dir: "auto", class: "text" }, text) : h("p", { class: "muted" }, t("party.track.no_text")),
  );
}

async function answerText(event) {
  if (!event || (event.details && event.details.reason) || !event.message_id) return null;
  if (!answers.has(event.message_id)) {
    try {
      const q = event.sender ? `?sender=${encodeURIComponent(event.sender)}` : "";
      const m = await api(`/api/messages/${encodeURIComponent(event.message_id)}${q}`);
      answers.set(event.message_id, (m.envelope && m.envelope.body) || "");
    } catch (_) {
      answers.set(event.message_id, "");
    }
  }
  return answers.get(event.message_id) || null;
}

function unitActions(d) {
  const box = clear($("unit-actions-body"));
  const mine = me && me.kind === "unit" && me.subject === d.sender;
  const items = [];
  const act = async (action, json, error) => {
    error.textContent = "";
    try {
      await api(`/api/cases/${refPath(d.reference)}/${action}`, { json });
      load();
    } catch (err) {
      error.textContent = errorWords(err);
    }
  };
  const form = (fieldKey, submitKey, send) => {
    const area = h("textarea", { rows: 3, maxlength: 2000, required: true });
    const error = h("p", { class: "error", role: "alert" });
    const f = h(
      "form",
      { class: "action-form", autocomplete: "off" },
      h("label", {}, h("span", {}, t(fieldKey)), area),
      h("button", { type: "submit", class: "primary" }, t(submitKey)),
      error,
    );
    f.addEventListener("submit", (e) => {
      e.preventDefault();
      send(area.value, error);
    });
    return f;
  };
  if (mine && d.clarification_pending) {
    items.push(
      form("party.clarify.answer", "party.clarify.answer_submit", (text, error) =>
        act("clarification", { clarification: "answer", reason: text }, error),
      ),
    );
  }
  if (mine && d.state === "answered") {
    items.push(form("party.close.reason", "party.close.submit", (text, error) => act("close", { reason: text }, error)));
  }
  box.append(...items);
  $("unit-actions").hidden = items.length === 0;
}

async function render(d) {
  document.title = visible(`${d.reference} · ${stateWords(d.state)}`);
  $("reference").textContent = visible(d.reference);
  $("priority").hidden = d.priority !== "urgent";
  $("priority").textContent = t("common.priority.urgent");
  $("state").textContent =
    stateWords(d.state) + (d.clarification_pending ? ` · ${t("party.track.waiting_clarification")}` : "");
  $("state").className = `state state-${d.state}`;
  $("subject").textContent = visible(d.subject);
  renderFacts(d);

  const asked = last("clarification_requested");
  const replied = last("clarification_answered");
  const c = clear($("clarification-body"));
  if (asked) {
    c.append(said(asked, "party.track.asked"));
    if (replied && replied.seq > asked.seq) c.append(said(replied, "party.track.replied"));
    else c.append(h("p", { class: "due paused" }, t("party.track.waiting_clarification")));
  }
  $("clarification").hidden = !asked;

  const answered = last("case_answered");
  const a = clear($("answer-body"));
  if (answered) {
    const text = (answered.details && answered.details.reason) || (await answerText(answered));
    a.append(said(answered, "party.track.answered_by", text));
  }
  $("answer").hidden = !answered;

  const closed = last("case_closed") || last("case_withdrawn") || last("case_rejected");
  clear($("closed-body")).append(closed ? said(closed, `party.track.${closed.type}`) : "");
  $("closed").hidden = !closed;

  unitActions(d);

  const events = [...(d.timeline || [])].sort(
    (x, y) => (x.type === "case_opened" ? 0 : 1) - (y.type === "case_opened" ? 0 : 1) || x.seq - y.seq,
  );
  clear($("timeline")).append(
    ...events.map((e) =>
      h(
        "li",
        { dataset: { type: e.type } },
        timeEl(e.at, true),
        " ",
        h("strong", { title: e.type }, label("event", e.type)),
        " ",
        h("span", { class: "muted" }, t("party.track.by", { who: e.actor })),
        e.details && e.details.reason && !["clarification_requested", "clarification_answered", "case_answered", "case_closed"].includes(e.type)
          ? h("span", { class: "reason", dir: "auto" }, ` — ${e.details.reason}`)
          : null,
      ),
    ),
  );
}

const load = refresher(async () => {
  try {
    detail = await api(`/api/requests/${refPath(reference)}`);
    $("track-error").textContent = "";
    await render(detail);
    document.body.dataset.state = detail.state;
  } catch (err) {
    $("track-error").textContent = errorWords(err);
  }
});

async function main() {
  await loadI18n(["party"]);
  applyI18n();
  me = await whoAmI();
  await mountHeader($("header-slot"), me);
  await load();
  followFeed((items) => {
    if (!items.length || items.some((i) => i.reference === reference)) load();
  }, connState($("conn")));
  setInterval(() => detail && render(detail), 30_000); // time left moves on
}

main().catch((err) => {
  $("track-error").textContent = errorWords(err);
});
