// The post's screen: its inbox of open requests, the most urgent first, with the lifecycle actions
// (the same HTTP case actions as the API: same checks, audit and copies as over AMQP), and a form
// to send information or a request to France. Live: the feed says when one of its cases changes.
import { h, clear, visible } from "./dom.js";
import { loadI18n, applyI18n, t } from "./i18n.js";
import { mountHeader, whoAmI } from "./header.js";
import { mountSearch } from "./search.js";
import {
  $, api, errorWords, followFeed, refresher, connState, nextDue, byUrgency, dueLine, stateWords, codes, refPath, wireSendForm,
} from "./parties.js";

const cards = new Map(); // reference → { li, facts, actions, data }
let me = null;
let cases = [];

function facts(c) {
  const urgent = c.priority === "urgent";
  const due = nextDue(c);
  const lines = [];
  if (!c.acknowledged_at) lines.push(dueLine("party.due.ack", c.ack_due_at));
  if (c.due_at) lines.push(dueLine("party.due.answer", c.due_at));
  if (c.clarification_pending) lines.push(h("span", { class: "due paused" }, t("party.due.paused")));
  return [
    h(
      "div",
      { class: "card-head" },
      urgent ? h("span", { class: "pill pill-urgent" }, t("common.priority.urgent")) : null,
      h("code", { class: "ref" }, c.reference),
      h("span", { class: `state state-${c.state}` }, stateWords(c.state)),
      due && due.seconds < 0 ? h("span", { class: "pill pill-down" }, t("party.late")) : null,
    ),
    h("h3", { class: "subject", dir: "auto" }, c.subject),
    h(
      "p",
      { class: "meta" },
      h("span", { class: "from" }, t("party.from", { unit: c.sender })),
      ...codes("country", c.countries),
      ...codes("crime_type", c.crime_types),
    ),
    h("p", { class: "dues" }, ...lines.filter(Boolean)),
  ];
}

function textForm(name, fieldKey, submitKey, send) {
  const area = h("textarea", { name: "text", rows: 3, maxlength: 2000, required: true });
  const form = h(
    "form",
    { class: "action-form", autocomplete: "off" },
    h("label", {}, h("span", {}, t(fieldKey)), area),
    h("button", { type: "submit", class: "primary" }, t(submitKey)),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    send(area.value).then((ok) => {
      if (ok) {
        area.value = "";
        form.closest("details").open = false;
      }
    });
  });
  return h("details", { class: `act act-${name}` }, h("summary", {}, t(`party.action.${name}`)), form);
}

function extendForm(send) {
  const when = h("input", { type: "datetime-local", name: "expected_at", required: true });
  const why = h("input", { name: "reason", maxlength: 2000, required: true });
  const form = h(
    "form",
    { class: "action-form", autocomplete: "off" },
    h("label", {}, h("span", {}, t("party.extend.when")), when),
    h("label", {}, h("span", {}, t("party.extend.reason")), why),
    h("button", { type: "submit", class: "primary" }, t("party.extend.submit")),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const at = new Date(when.value);
    if (Number.isNaN(at.getTime())) return;
    send({ expected_at: at.toISOString(), reason: why.value }).then((ok) => {
      if (ok) {
        why.value = "";
        form.closest("details").open = false;
      }
    });
  });
  return h("details", { class: "act act-extend" }, h("summary", {}, t("party.action.extend")), form);
}

function actions(reference, error) {
  const act = async (action, json) => {
    error.textContent = "";
    try {
      await api(`/api/cases/${refPath(reference)}/${action}`, json === undefined ? { method: "POST" } : { json });
      load();
      return true;
    } catch (err) {
      error.textContent = errorWords(err);
      return false;
    }
  };
  const ack = h("button", { type: "button", class: "primary act-ack" }, t("party.action.ack"));
  ack.addEventListener("click", () => act("ack"));
  const progress = h("button", { type: "button", class: "act-progress" }, t("party.action.progress"));
  progress.addEventListener("click", () => act("progress"));
  const clarify = textForm("clarify", "party.clarify.question", "party.clarify.submit", (text) =>
    act("clarification", { clarification: "request", reason: text }),
  );
  const answer = textForm("answer", "party.answer.text", "party.answer.submit", (text) => act("answer", { reason: text }));
  const extend = extendForm((body) => act("extend", body));
  const open = h("a", { href: `/track/${refPath(reference)}`, class: "open-case" }, t("party.open_case"));
  return { ack, progress, clarify, answer, extend, box: h("div", { class: "actions" }, ack, progress, clarify, answer, extend, open) };
}

function showActions(a, c) {
  const acknowledged = Boolean(c.acknowledged_at);
  a.ack.hidden = acknowledged;
  a.progress.hidden = !acknowledged || c.state !== "acknowledged";
  a.clarify.hidden = c.clarification_pending || Boolean(c.answered_at);
  a.answer.hidden = Boolean(c.answered_at) || c.clarification_pending;
  a.extend.hidden = Boolean(c.answered_at);
}

function render() {
  const list = $("inbox");
  const wanted = [...cases].sort(byUrgency);
  const keep = new Set(wanted.map((c) => c.reference));
  for (const [ref, card] of cards) {
    if (!keep.has(ref)) {
      card.li.remove();
      cards.delete(ref);
    }
  }
  wanted.forEach((c, i) => {
    let card = cards.get(c.reference);
    if (!card) {
      const error = h("p", { class: "error", role: "alert" });
      const box = h("div", { class: "card-facts" });
      const a = actions(c.reference, error);
      const li = h("li", { class: "card", dataset: { reference: c.reference } }, box, a.box, error);
      card = { li, box, a };
      cards.set(c.reference, card);
    }
    card.li.classList.toggle("urgent", c.priority === "urgent");
    const due = nextDue(c);
    card.li.classList.toggle("late", Boolean(due && due.seconds < 0));
    card.li.dataset.state = c.state;
    clear(card.box).append(...facts(c));
    showActions(card.a, c);
    if (list.children[i] !== card.li) list.insertBefore(card.li, list.children[i] || null);
  });
  $("inbox-count").textContent = String(wanted.length);
  $("inbox-empty").hidden = wanted.length > 0;
}

const load = refresher(async () => {
  try {
    const page = await api(`/api/posts/${encodeURIComponent(me.subject)}/inbox?limit=200`);
    cases = page.items;
    $("inbox-error").textContent = "";
    render();
  } catch (err) {
    $("inbox-error").textContent = errorWords(err);
  }
});

async function main() {
  await loadI18n(["party"]);
  applyI18n();
  me = await whoAmI();
  document.title = visible(t("party.post.title", { post: me.where || me.subject }));
  $("inbox-title").textContent = visible(t("party.inbox.title_of", { post: me.where || me.subject }));
  await mountHeader($("header-slot"), me);
  mountSearch($("search"));
  wireSendForm(["information", "request"], () => load());
  await load();
  followFeed(() => load(), connState($("conn")));
  setInterval(render, 30_000); // time left moves on
}

main().catch((err) => {
  $("inbox-error").textContent = errorWords(err);
});
