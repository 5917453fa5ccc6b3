// Search and related messages: a self-contained ES module the console and the post/unit screens import.
//   mountSearch(container, {onOpen})        a search box, filters, results with highlighted fragments, paging;
//                                           without onOpen a hit opens its identifiers and related messages inline
//   relatedPanel(container, messageId, sender)  the messages sharing an identifier with one message, and why
// Everything from the server is set as text (dom.js builds text nodes): a highlighted fragment is a
// <mark> element whose text is the fragment, never markup. Need-to-know is the server's (the same
// calls answer a post with its own messages only). Words from the common catalog (i18n.js), which
// every screen loads.
import { h, append, clear } from "./dom.js";
import { t, fmtTime } from "./i18n.js";

const KINDS = {
  phone: "common.identifier.phone",
  email: "common.identifier.email",
  iban: "common.identifier.iban",
  document: "common.identifier.document",
  imo: "common.identifier.imo",
  plate: "common.identifier.plate",
  btc: "common.identifier.btc",
  eth: "common.identifier.eth",
};

async function getJson(path) {
  const r = await fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (r.status === 401) {
    location.assign("/signin");
    throw new Error("signed out");
  }
  const body = (r.headers.get("Content-Type") || "").includes("json") ? await r.json() : null;
  if (!r.ok) {
    const e = (body && body.error) || {};
    throw new Error(e.field ? `${e.field}: ${e.message}` : e.message || `HTTP ${r.status}`);
  }
  return body;
}

// Fragments [{text, hit}] as text nodes, hits inside <mark>.
export function fragments(list) {
  return (list || []).map((f) => (f.hit ? h("mark", null, f.text) : f.text));
}

export function kindName(kind) {
  return KINDS[kind] ? t(KINDS[kind]) : kind;
}

function result(item, onOpen) {
  const link = h("button", { type: "button", class: "linklike search-subject", "aria-expanded": "false" }, fragments(item.subject_fragments));
  const li = h(
    "li",
    { class: "search-hit", dataset: { id: String(item.id) } },
    h("div", { class: "search-head" }, link, " ", h("span", { class: "muted" }, item.sender || "", " · ", h("time", { datetime: item.received_at }, fmtTime(item.received_at, { withDate: true })))),
    h("p", { class: "search-body", dir: "auto" }, fragments(item.body_fragments)),
  );
  link.addEventListener("click", () => onOpen(item, li, link));
  return li;
}

// A hit's identifiers and related messages, under it; a second click folds them away.
function openInline(item, li, link) {
  const shown = li.querySelector(".search-detail");
  if (shown) {
    shown.remove();
    link.setAttribute("aria-expanded", "false");
    return;
  }
  const box = h("div", { class: "search-detail" });
  li.append(box);
  link.setAttribute("aria-expanded", "true");
  relatedPanel(box, item.message_id, item.sender);
}

export function mountSearch(container, { onOpen } = {}) {
  const open = onOpen || openInline;
  const q = h("input", {
    type: "search",
    name: "q",
    maxlength: "200",
    required: true,
    placeholder: t("common.search.placeholder"),
    "aria-label": t("common.search.words"),
  });
  const since = h("input", { type: "date", name: "since", "aria-label": t("common.search.since"), title: t("common.search.since") });
  const until = h("input", { type: "date", name: "until", "aria-label": t("common.search.until"), title: t("common.search.until") });
  const country = h("input", { name: "country", maxlength: "2", size: "3", placeholder: "ES", "aria-label": t("common.search.country"), title: t("common.search.country") });
  const status = h("p", { class: "muted", role: "status", "aria-live": "polite" });
  const list = h("ol", { class: "search-results" });
  const more = h("button", { type: "button", hidden: true }, t("common.search.more"));
  let next = null;
  let params = null;

  async function load(append_) {
    status.textContent = t("common.search.searching");
    const p = new URLSearchParams(params);
    if (append_ && next) p.set("after", next);
    try {
      const page = await getJson(`/api/search?${p}`);
      if (!append_) clear(list);
      append(list, page.items.map((item) => result(item, open)));
      next = page.next;
      more.hidden = !next;
      status.textContent = list.childElementCount ? "" : t("common.search.none");
    } catch (err) {
      status.textContent = t("common.search.failed", { message: err.message });
      more.hidden = true;
    }
  }

  const form = h(
    "form",
    {
      class: "search-form",
      role: "search",
      autocomplete: "off",
      onsubmit: (ev) => {
        ev.preventDefault();
        params = { q: q.value, limit: "20" };
        if (since.value) params.since = `${since.value}T00:00:00Z`;
        if (until.value) params.until = `${until.value}T00:00:00Z`;
        if (country.value) params.country = country.value;
        next = null;
        load(false);
      },
    },
    q,
    " ",
    since,
    " ",
    until,
    " ",
    country,
    " ",
    h("button", { type: "submit", class: "primary" }, t("common.search.submit")),
  );
  more.addEventListener("click", () => load(true));
  clear(container);
  append(container, form, status, list, more);
  return { form, list };
}

export async function relatedPanel(container, messageId, sender) {
  clear(container);
  const p = new URLSearchParams();
  if (sender) p.set("sender", sender);
  let detail;
  try {
    detail = await getJson(`/api/messages/${encodeURIComponent(messageId)}?${p}`);
  } catch (err) {
    append(container, h("p", { class: "error" }, err.message));
    return;
  }
  const ids = detail.identifiers || [];
  if (ids.length) {
    append(
      container,
      h("h3", null, t("common.search.identifiers")),
      h("ul", { class: "identifiers" }, ids.map((i) => h("li", null, h("span", { class: "tag" }, kindName(i.kind)), " ", h("code", null, i.value)))),
    );
  }
  append(container, h("h3", null, t("common.search.related")));
  const related = detail.related || [];
  if (!related.length) {
    append(container, h("p", { class: "muted" }, t("common.search.no_related")));
    return;
  }
  append(
    container,
    h(
      "ul",
      { class: "related" },
      related.map((m) =>
        h(
          "li",
          { dataset: { id: String(m.id) } },
          h("strong", null, m.subject || m.message_id || ""),
          " ",
          h("span", { class: "muted" }, m.sender || "", " · ", h("time", { datetime: m.received_at }, fmtTime(m.received_at, { withDate: true }))),
          h("div", { class: "why" }, t("common.search.shares", { what: m.shared.map((i) => `${kindName(i.kind)} ${i.value}`).join(", ") })),
        ),
      ),
    ),
  );
}
