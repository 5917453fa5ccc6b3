// The unit's screen (an investigator): the requests it sent, open ones first and the most urgent at
// the top, with state and time left, each opening its tracking page; and a form for a new request.
// Live: the feed says when one of its requests changes.
import { h, clear, visible } from "./dom.js";
import { loadI18n, applyI18n, t, fmtTime } from "./i18n.js";
import { mountHeader, whoAmI } from "./header.js";
import { mountSearch } from "./search.js";
import {
  $, api, errorWords, followFeed, refresher, connState, nextDue, byUrgency, dueLine, stateWords, codes, refPath, wireSendForm,
} from "./parties.js";

const OPEN = new Set(["routed", "triage", "acknowledged", "in_progress"]);
let requests = [];

function row(c) {
  const lines = [];
  if (OPEN.has(c.state)) {
    lines.push(
      c.acknowledged_at
        ? h("span", { class: "due" }, t("party.acknowledged_at", { time: fmtTime(c.acknowledged_at) }))
        : dueLine("party.due.ack_unit", c.ack_due_at),
    );
    if (c.due_at) lines.push(dueLine("party.due.answer_unit", c.due_at));
    if (c.clarification_pending) lines.push(h("span", { class: "due paused" }, t("party.clarification_waiting")));
  } else if (c.answered_at) {
    lines.push(h("span", { class: "due" }, t("party.answered_at", { time: fmtTime(c.answered_at) })));
  }
  const due = nextDue(c);
  return h(
    "li",
    {
      class: `card${c.priority === "urgent" ? " urgent" : ""}${OPEN.has(c.state) && due && due.seconds < 0 ? " late" : ""}`,
      dataset: { reference: c.reference, state: c.state },
    },
    h(
      "div",
      { class: "card-head" },
      c.priority === "urgent" ? h("span", { class: "pill pill-urgent" }, t("common.priority.urgent")) : null,
      h("a", { href: `/track/${refPath(c.reference)}`, class: "ref" }, c.reference),
      h("span", { class: `state state-${c.state}` }, stateWords(c.state)),
    ),
    h("h3", { class: "subject", dir: "auto" }, h("a", { href: `/track/${refPath(c.reference)}` }, c.subject)),
    h(
      "p",
      { class: "meta" },
      h("span", { class: "from" }, t("party.sent_to", { posts: c.recipients.join(", ") })),
      ...codes("country", c.countries),
      ...codes("crime_type", c.crime_types),
    ),
    h("p", { class: "dues" }, ...lines.filter(Boolean)),
  );
}

function render() {
  const open = requests.filter((c) => OPEN.has(c.state)).sort(byUrgency);
  const done = requests.filter((c) => !OPEN.has(c.state));
  clear($("requests")).append(...open.map(row), ...done.map(row));
  $("requests-count").textContent = String(requests.length);
  $("requests-empty").hidden = requests.length > 0;
}

const load = refresher(async () => {
  try {
    requests = (await api("/api/cases?limit=200")).items;
    $("requests-error").textContent = "";
    render();
  } catch (err) {
    $("requests-error").textContent = errorWords(err);
  }
});

async function main() {
  await loadI18n(["party"]);
  applyI18n();
  const me = await whoAmI();
  document.title = visible(t("party.unit.title", { unit: me.where || me.subject }));
  await mountHeader($("header-slot"), me);
  mountSearch($("search"));
  wireSendForm(["request", "information"], () => load());
  await load();
  followFeed(() => load(), connState($("conn")));
  setInterval(render, 30_000); // time left moves on
}

main().catch((err) => {
  $("requests-error").textContent = errorWords(err);
});
